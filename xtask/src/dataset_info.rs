//! `cargo xtask dataset-info <shd|ssc|mnist> [PATH]`: one JSON object of data-set statistics.

use std::path::Path;
use std::process::ExitCode;

use datasets::fetch::{DatasetKind, Places, Source};
use serde_json::{Map, Value};

const USAGE: &str = "usage: cargo xtask dataset-info <shd|ssc|mnist> [PATH]
  shd|ssc  PATH = an HDF5 file of the SHD/SSC layout
  mnist    PATH = the directory holding the four MNIST IDX files (gzipped or raw)
  without PATH, the data set is looked up by name ($EVENTPROP_DATA, the user cache folder,
  shared/data beside the repository; `cargo xtask fetch NAME` puts it there) and every
  split is described: {\"shd_train.h5\": {...}, \"shd_test.h5\": {...}}
prints one JSON object: samples, classes, label_counts (+ events_mean, events_min,
events_max, units_max, time_max in seconds for spike data; train/test for mnist)";

type DynResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs the task; `args` are the arguments after `dataset-info`.
pub fn run(args: &[String]) -> ExitCode {
    let (kind, path) = match args {
        [k] => (k.as_str(), None),
        [k, p] => (k.as_str(), Some(Path::new(p))),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(named) = kind.parse::<DatasetKind>() else {
        eprintln!("unknown data set `{kind}`\n{USAGE}");
        return ExitCode::from(2);
    };
    let value = match path {
        Some(p) => stats(named, p),
        None => by_name(named),
    };
    match value {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The statistics of the file (SHD/SSC) or folder (MNIST) at `path`.
fn stats(kind: DatasetKind, path: &Path) -> DynResult<Value> {
    Ok(match kind {
        DatasetKind::Shd => serde_json::to_value(datasets::load_shd(path)?.stats())?,
        DatasetKind::Ssc => serde_json::to_value(datasets::load_ssc(path)?.stats())?,
        DatasetKind::Mnist => {
            let m = datasets::load_mnist(path)?;
            serde_json::json!({ "train": m.train.stats(), "test": m.test.stats() })
        }
    })
}

/// The statistics of every split of the copy found by name (no download).
fn by_name(kind: DatasetKind) -> DynResult<Value> {
    let places = Places::from_env(None, Some(&crate::fetch::repository_root()));
    let source = Source::official(kind);
    let Some((place, dir)) = datasets::fetch::locate(&places, &source) else {
        let looked: Vec<String> = places.candidates(kind).iter().map(|(_, d)| d.display().to_string()).collect();
        return Err(format!(
            "{kind} is not cached (looked in: {}); run `cargo xtask fetch {kind}` or pass PATH",
            if looked.is_empty() { "nowhere, no cache folder".to_string() } else { looked.join(", ") }
        )
        .into());
    };
    eprintln!("{kind}: {} (from {place})", dir.display());
    if kind == DatasetKind::Mnist {
        return stats(kind, &dir);
    }
    let mut out = Map::new();
    for f in &source.files {
        out.insert(f.name.clone(), stats(kind, &dir.join(&f.name))?);
    }
    Ok(Value::Object(out))
}
