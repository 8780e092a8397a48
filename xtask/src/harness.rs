//! What every experiment shares with the driver: the run options, an experiment's outcome, the
//! registry entry type and the progress bars. Depends on no other module of `xtask` but
//! `report`, so that the experiments (`exp_*`) and the driver (`reproduce`) both import it and
//! imports only point down (checked by `tests/architecture.rs`).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::report::RunDir;

/// The error type of experiments: anything, with its message.
pub type DynResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options shared by every experiment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reduced sizes that finish in minutes.
    pub quick: bool,
    /// `sparse-mnist` only: the intermediate preset (6,000 training-split images with 1,000
    /// held out, 1,000 test images; the full run's recipe). Excludes `quick`.
    pub medium: bool,
    /// `sparse-mnist` only: the 3-layer models at the thesis's layer sizes
    /// (`sparse_bp::paper::mnist_thesis_sizes`) instead of the preset's; combines with any run size.
    pub thesis_sizes: bool,
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Output root; each experiment writes to `out/<experiment>/`.
    pub out: PathBuf,
    /// Data file or folder, for experiments that read real data.
    pub data: Option<PathBuf>,
    /// Use synthetic data instead of real files (SHD/SSC).
    pub synthetic: bool,
    /// Training epochs of the spiking experiments instead of their preset's (sequence detection
    /// 30; Yin-Yang 300, quick 60; SHD/SSC 100, quick 40). The full SHD/SSC runs take hours to
    /// days on two cores; a shorter run is still the paper's configuration, trained for less.
    pub epochs: Option<usize>,
    /// Spike-count regulariser of the SHD/SSC runs: `None` = the preset's (the paper's target
    /// 14 / strength 5e-11 in full runs, off in `--quick`); `Some(0.0)` = off; `Some(k)` =
    /// strength `k` on both sides, target 14.
    pub spike_reg: Option<f64>,
    /// Connection probability of the SHD/SSC input and hidden projections (`None`: dense, the
    /// paper's network; `Some(p)`, `p` in `[0, 1]`: sparse with fixed probability `p`).
    pub connectivity: Option<f64>,
    /// Where `sparse-mnist` and `sparse-synthetic` write their trained models (default: `<out>/<experiment>/models`).
    pub save_models: Option<PathBuf>,
    /// `sparse-mnist`: load the models a previous run saved in this folder instead of training.
    pub load_models: Option<PathBuf>,
    /// `epoch-time`: measure only this configuration (its label, e.g. `ff-700-256-256-20`; checked
    /// by the command line against `snn_eventprop::paper`'s speed configurations).
    pub config: Option<String>,
}

impl Default for Options {
    /// The command line's defaults: full run, seed 0, output in `results/`.
    fn default() -> Self {
        Self {
            quick: false,
            medium: false,
            thesis_sizes: false,
            seed: 0,
            out: PathBuf::from("results"),
            data: None,
            synthetic: false,
            epochs: None,
            spike_reg: None,
            connectivity: None,
            save_models: None,
            load_models: None,
            config: None,
        }
    }
}

impl Options {
    /// The run-size preset's name: `quick`, `medium` or `full`.
    pub fn preset(&self) -> &'static str {
        if self.quick {
            "quick"
        } else if self.medium {
            "medium"
        } else {
            "full"
        }
    }
}

/// What an experiment hands back to the harness.
pub struct Outcome {
    /// Experiment-specific keys of `results.json` (`final`, `sweep`, `curves`, ...).
    pub results: Map<String, Value>,
    /// Markdown body of `summary.md` (tables with the paper's numbers beside ours).
    pub summary: String,
}

/// An experiment's entry point.
pub type Run = fn(&Options, &RunDir) -> DynResult<Outcome>;

/// A registered experiment (the registry itself is `reproduce::experiments`).
pub struct Experiment {
    /// Name on the command line.
    pub name: &'static str,
    /// One line of description.
    pub about: &'static str,
    /// Entry point.
    pub run: Run,
    /// Whether `--epochs` sets this experiment's training length.
    pub takes_epochs: bool,
    /// Whether `--quick` without an experiment runs it (not `efficiency`, whose reference needs
    /// a 3 GB PyTorch download on first use).
    pub in_quick_all: bool,
}

static HIDE_PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Hides every progress bar from now on: ranks other than 0 of an MPI job print only errors.
pub fn hide_progress() {
    HIDE_PROGRESS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A progress bar for epochs or batches, drawn on stderr.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if HIDE_PROGRESS.load(std::sync::atomic::Ordering::Relaxed) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}
