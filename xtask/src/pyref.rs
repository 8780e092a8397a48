//! The PyTorch reference of `reproduce efficiency`: a private Python environment with a pinned
//! PyTorch, the spike data handed over as `.npy` files, and runs of
//! `xtask/reference/dilated_conv_delays.py` whose JSON answer is read back as a typed value.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// The PyTorch version the reference is measured with (pinned in `xtask/reference/requirements.txt`).
pub const TORCH_VERSION: &str = "2.15.0";

/// Why the reference could not be set up or run.
#[derive(Debug)]
pub enum RefError {
    /// A command could not be started or failed; `log` holds its output.
    Command { what: String, log: PathBuf },
    /// An I/O error on a named path.
    Io { path: PathBuf, source: io::Error },
    /// The script's JSON answer could not be read.
    Answer { path: PathBuf, reason: String },
}

impl std::fmt::Display for RefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefError::Command { what, log } => write!(f, "{what} (output in {})", log.display()),
            RefError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            RefError::Answer { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for RefError {}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RefError + '_ {
    move |source| RefError::Io { path: path.to_owned(), source }
}

/// `xtask/reference/` in this checkout.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference")
}

/// Where the private environment lives: `$CARGO_TARGET_DIR/reference-venv`, else
/// `<workspace>/target/reference-venv` (it is a build product: `cargo clean` removes it).
pub fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("reference-venv")
}

/// The environment's interpreter if it imports the pinned torch and numpy.
fn ready(venv: &Path) -> Option<PathBuf> {
    let python = venv.join("bin").join("python");
    let out = Command::new(&python)
        .args(["-c", "import numpy, torch; print(torch.__version__)"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    (out.status.success() && version.trim().starts_with(TORCH_VERSION)).then_some(python)
}

/// Runs `cmd`, appending its output to `log`; an error names `what` failed.
fn logged(cmd: &mut Command, what: &str, log: &Path) -> Result<(), RefError> {
    let file = fs::OpenOptions::new().create(true).append(true).open(log).map_err(io_at(log))?;
    let err_file = file.try_clone().map_err(io_at(log))?;
    let status = cmd.stdout(file).stderr(err_file).status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(RefError::Command { what: format!("{what} failed ({s})"), log: log.to_owned() }),
        Err(e) => {
            let program = cmd.get_program().to_string_lossy().into_owned();
            Err(RefError::Command { what: format!("{what}: cannot run `{program}`: {e}"), log: log.to_owned() })
        }
    }
}

/// Returns the interpreter of the private environment, creating it on first use: a venv made
/// by `$XTASK_PYTHON` (default `python3`) and `pip install -r requirements.txt` from PyPI
/// (about 3 GB, as PyPI's Linux torch wheels bring their CUDA libraries). An environment that
/// does not import the pinned torch (an interrupted install, another version) is removed and
/// made afresh.
pub fn ensure_env(log: &Path) -> Result<PathBuf, RefError> {
    let venv = venv_dir();
    if let Some(python) = ready(&venv) {
        return Ok(python);
    }
    let base = std::env::var_os("XTASK_PYTHON").unwrap_or_else(|| "python3".into());
    if venv.exists() {
        fs::remove_dir_all(&venv).map_err(io_at(&venv))?;
    }
    eprintln!(
        "setting up the PyTorch {TORCH_VERSION} reference in {} (once; about 3 GB from PyPI; log {})",
        venv.display(),
        log.display()
    );
    logged(Command::new(&base).arg("-m").arg("venv").arg(&venv), "creating a Python venv", log)?;
    logged(
        Command::new(venv.join("bin").join("python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(reference_dir().join("requirements.txt")),
        "pip install of the reference's requirements",
        log,
    )?;
    ready(&venv).ok_or_else(|| RefError::Command {
        what: format!("the new environment does not import torch {TORCH_VERSION}"),
        log: log.to_owned(),
    })
}

/// Runs the script's `--self-test` (the delay direction of its convolution and the sign of its
/// delay gradient on the installed torch) before any figure of it is used.
pub fn self_test(python: &Path, log: &Path) -> Result<(), RefError> {
    let script = reference_dir().join("dilated_conv_delays.py");
    logged(Command::new(python).arg(script).arg("--self-test"), "the reference's self-test", log)
}

/// The bytes of a version-1.0 `.npy` file holding the 1-D array `data` of numpy type `descr`
/// (e.g. `<f4`), each element appended by `put` in that type's little-endian encoding.
fn npy<T: Copy>(descr: &str, data: &[T], put: impl Fn(T, &mut Vec<u8>)) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}", data.len());
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
    // 64 and ended by a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &x in data {
        put(x, &mut out);
    }
    out
}

/// Writes `data` as the script reads it: `times_s.npy` (f32 seconds), `units.npy` (u16),
/// `offsets.npy` (u64, samples + 1) and `labels.npy` (u32) in `dir`, each atomically.
pub fn write_spike_npy(dir: &Path, data: &datasets::SpikeDataset) -> Result<(), RefError> {
    let files = [
        ("times_s", npy("<f4", &data.times, |x, o| o.extend_from_slice(&x.to_le_bytes()))),
        ("units", npy("<u2", &data.units, |x, o| o.extend_from_slice(&x.to_le_bytes()))),
        ("offsets", npy("<u8", &data.offsets, |x, o| o.extend_from_slice(&(x as u64).to_le_bytes()))),
        ("labels", npy("<u4", &data.labels, |x, o| o.extend_from_slice(&x.to_le_bytes()))),
    ];
    for (name, bytes) in files {
        let path = dir.join(format!("{name}.npy"));
        crate::report::write_atomic(&path, &bytes).map_err(io_at(&path))?;
    }
    Ok(())
}

/// One configuration of the reference run.
#[derive(Debug, Clone, Copy)]
pub struct RefRun {
    /// Time bin (ms): the convolutions' resolution.
    pub bin_ms: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Timed training steps after one untimed warm-up step.
    pub steps: usize,
    /// Input channels of the network.
    pub inputs: usize,
    /// Classes (output neurons).
    pub classes: usize,
    /// Length of a sample (ms); later events are dropped.
    pub t_end_ms: f64,
}

/// What the script reports (the keys `results.json` keeps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefAnswer {
    /// One line naming the method.
    pub method: String,
    /// `torch.__version__`.
    pub torch_version: String,
    /// Intra-op threads.
    pub threads: usize,
    /// `inputs-hidden-hidden-classes`.
    pub architecture: String,
    /// Time bin (ms).
    pub bin_ms: f64,
    /// Time bins per sample.
    pub time_bins: usize,
    /// Taps of each synapse's kernel: `max_delay / bin + 1`.
    pub kernel_taps: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Wall time of each timed step (s).
    pub step_seconds: Vec<f64>,
    /// Their median (s).
    pub median_step_seconds: f64,
    /// `batch_size / median_step_seconds`.
    pub samples_per_second: f64,
    /// Loss of every step, warm-up included.
    pub losses: Vec<f64>,
    /// Mean spikes per neuron and sample of the two hidden layers in the last step.
    pub hidden_spikes_per_neuron_last_step: Vec<f64>,
    /// Peak resident memory of the Python process (`ru_maxrss`).
    pub peak_rss_bytes: u64,
}

impl RefAnswer {
    /// Reads and checks an answer: finite positive timings, one per step.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RefError> {
        let bad = |reason: String| RefError::Answer { path: path.to_owned(), reason };
        let a: RefAnswer = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if a.step_seconds.is_empty() || !a.step_seconds.iter().all(|&s| positive(s)) {
            return Err(bad(format!("step times must be finite and > 0, got {:?}", a.step_seconds)));
        }
        if !positive(a.samples_per_second) || a.batch_size == 0 {
            return Err(bad(format!("samples_per_second {} with batch {}", a.samples_per_second, a.batch_size)));
        }
        Ok(a)
    }
}

/// Runs the script with `python` on the `.npy` data in `data_dir`; its progress lines go to
/// `on_line` and to `log`, its answer to `answer_path` (written by the script atomically).
pub fn run(
    python: &Path,
    data_dir: &Path,
    cfg: RefRun,
    seed: u64,
    answer_path: &Path,
    log: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<RefAnswer, RefError> {
    let script = reference_dir().join("dilated_conv_delays.py");
    let threads = rayon::current_num_threads();
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--data")
        .arg(data_dir)
        .args(["--bin-ms", &cfg.bin_ms.to_string(), "--batch", &cfg.batch.to_string()])
        .args(["--steps", &cfg.steps.to_string(), "--threads", &threads.to_string(), "--seed", &seed.to_string()])
        .args(["--inputs", &cfg.inputs.to_string(), "--classes", &cfg.classes.to_string()])
        .args(["--t-end-ms", &cfg.t_end_ms.to_string()])
        .arg("--out")
        .arg(answer_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let what = format!("the reference at {} ms bins", cfg.bin_ms);
    let mut child = cmd
        .spawn()
        .map_err(|e| RefError::Command { what: format!("{what} could not start: {e}"), log: log.to_owned() })?;
    let mut log_file = fs::OpenOptions::new().create(true).append(true).open(log).map_err(io_at(log))?;
    // The last non-empty line of its stderr: on failure, the exception.
    let mut last = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let line = line.map_err(io_at(&script))?;
            writeln!(log_file, "{line}").map_err(io_at(log))?;
            on_line(&line);
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait().map_err(io_at(python))?;
    if !status.success() {
        return Err(RefError::Command { what: format!("{what} failed ({status}): {last}"), log: log.to_owned() });
    }
    let text = fs::read_to_string(answer_path).map_err(io_at(answer_path))?;
    RefAnswer::parse(&text, answer_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_the_documented_layout() {
        let bytes = npy("<u2", &[1u16, 2, 0xABCD], |x, o| o.extend_from_slice(&x.to_le_bytes()));
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        // The data start 64-byte aligned, right after a header that ends in a newline.
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(&bytes[10 + hlen..], &[1, 0, 2, 0, 0xCD, 0xAB]);
        // An empty array is still a valid file.
        let empty = npy("<f4", &[] as &[f32], |x, o| o.extend_from_slice(&x.to_le_bytes()));
        assert!(std::str::from_utf8(&empty[10..]).unwrap().contains("'shape': (0,)"));
    }

    #[test]
    fn spike_data_round_trips_through_the_files() {
        let mut d = datasets::SpikeDataset::new(700, 3, vec![], vec![0], vec![], vec![]).unwrap();
        d.push(&[0.001, 0.5], &[3, 699], 2).unwrap();
        d.push(&[], &[], 0).unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        write_spike_npy(&dir, &d).unwrap();
        let body = |name: &str| {
            let b = fs::read(dir.join(format!("{name}.npy"))).unwrap();
            let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
            b[10 + hlen..].to_vec()
        };
        assert_eq!(body("offsets"), [0u64, 2, 2].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>());
        assert_eq!(body("units"), [3u16, 699].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>());
        assert_eq!(body("labels"), [2u32, 0].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>());
        assert_eq!(body("times_s"), [0.001f32, 0.5].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_answers_are_refused_with_the_reason() {
        let p = Path::new("answer.json");
        let good = r#"{"method": "m", "torch_version": "2.15.0", "threads": 2, "architecture": "700-256-256-20",
            "bin_ms": 10.0, "time_bins": 100, "kernel_taps": 26, "batch_size": 256, "step_seconds": [5.0, 6.0],
            "median_step_seconds": 5.5, "samples_per_second": 46.5, "losses": [3.0, 2.9],
            "hidden_spikes_per_neuron_last_step": [5.5, 5.7], "peak_rss_bytes": 1800000000}"#;
        assert_eq!(RefAnswer::parse(good, p).unwrap().kernel_taps, 26);
        for (text, says) in [
            (good.replace("[5.0, 6.0]", "[]"), "step times"),
            (good.replace("[5.0, 6.0]", "[5.0, -1.0]"), "step times"),
            (good.replace("46.5", "0.0"), "samples_per_second"),
            (good.replace("\"threads\": 2,", ""), "missing field `threads`"),
            ("not json".into(), "expected"),
        ] {
            let e = RefAnswer::parse(&text, p).unwrap_err().to_string();
            assert!(e.starts_with("answer.json: ") && e.contains(says), "{e}");
        }
    }
}
