//! `cargo xtask dataset-info <shd|ssc|mnist> PATH`: one JSON object of data-set statistics.

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask dataset-info <shd|ssc|mnist> PATH
  shd|ssc  PATH = an HDF5 file of the SHD/SSC layout
  mnist    PATH = the directory holding the four MNIST IDX files (gzipped or raw)
prints one JSON object: samples, classes, label_counts (+ events_mean, events_min,
events_max, units_max, time_max in seconds for spike data; train/test for mnist)";

/// Runs the task; `args` are the arguments after `dataset-info`.
pub fn run(args: &[String]) -> ExitCode {
    let (kind, path) = match args {
        [k, p] => (k.as_str(), Path::new(p)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let value = match kind {
        "shd" => datasets::load_shd(path).map(|d| serde_json::to_value(d.stats())),
        "ssc" => datasets::load_ssc(path).map(|d| serde_json::to_value(d.stats())),
        "mnist" => datasets::load_mnist(path).map(|m| {
            Ok(serde_json::json!({
                "train": m.train.stats(),
                "test": m.test.stats(),
            }))
        }),
        other => {
            eprintln!("unknown data set `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match value {
        Ok(Ok(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: cannot serialise statistics: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
