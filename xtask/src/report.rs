//! What every reproduction run writes: an output folder, atomic JSON/Markdown files,
//! a log file, peak memory and wall time.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// Writes `bytes` to `path` atomically ([`persist::write_atomic`]: a temporary file
/// `.NAME.tmp-PID` in the same folder, fsync, rename), creating the folder; errors name the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_dir(dir)?;
    persist::write_atomic(path, bytes).map_err(io::Error::other)
}

/// `fs::create_dir_all` with an error that names the folder (e.g. a file in the way).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty folder path"));
    }
    fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create folder {}: {e}", dir.display())))
}

/// Serialises `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, text.as_bytes())
}

/// Peak resident set size of this process in bytes (`VmHWM`), if the platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak-RSS high-water mark (Linux >= 4.0), so that each experiment of a
/// multi-experiment run reports its own peak. Best effort: ignored where unsupported.
pub fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// A `tracing` writer whose target file can be switched between experiments.
#[derive(Clone, Default)]
pub struct LogFile(Arc<Mutex<Option<File>>>);

impl LogFile {
    /// Sends further log lines to `path` (appending).
    pub fn switch_to(&self, path: &Path) -> io::Result<()> {
        let f = fs::OpenOptions::new().create(true).append(true).open(path)?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global `tracing` subscriber writing to `log` (level from `RUST_LOG`, default `info`).
pub fn init_tracing(log: &LogFile) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(log.clone()).try_init();
}

/// The output folder of one experiment and its clock.
pub struct RunDir {
    /// `OUT/<experiment>`.
    pub dir: PathBuf,
    started: Instant,
}

impl RunDir {
    /// Creates `out/<experiment>`, points the log there and resets the memory high-water mark
    /// (ranks other than 0 of an MPI job only name the folder: rank 0 writes).
    pub fn create(out: &Path, experiment: &str, log: &LogFile) -> io::Result<Self> {
        let dir = out.join(experiment);
        if crate::cluster::is_root() {
            create_dir(&dir)?;
            // Temporary files of writes killed in an earlier run of this experiment.
            for stale in persist::remove_stale_temps(&dir).map_err(io::Error::other)? {
                eprintln!("removed {} (left by an interrupted write)", stale.display());
            }
            log.switch_to(&dir.join("run.log"))?;
        }
        reset_peak_rss();
        Ok(Self { dir, started: Instant::now() })
    }

    /// Seconds since the run started.
    pub fn wall_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Path of a file in the run folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A Markdown table from a header and rows.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), " --- |".repeat(header.len()));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// Formats a fraction as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}
