//! `cargo xtask fetch <mnist|shd|ssc> [--dir DIR]`: download, verify and cache a data set;
//! the helpers `reproduce` and `dataset-info` use to find (or fetch) data on demand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use datasets::DatasetError;
use datasets::fetch::{DATA_DIR_ENV, DatasetKind, Places, Progress, Source};
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: cargo xtask fetch <mnist|shd|ssc> [--dir DIR]   (--data-dir DIR is the same)
  downloads the data set's files from their official sources, checks each file's published MD5,
  unpacks them and keeps them in DIR/<name> (default: $EVENTPROP_DATA, else the user cache folder,
  e.g. ~/.cache/eventprop-delays). Files already there are not downloaded again.
  mnist  the four IDX files, from torchvision's mirrors
  shd    shd_train.h5, shd_test.h5, from zenkelab.org (the archives tonic downloads)
  ssc    ssc_train.h5, ssc_valid.h5, ssc_test.h5, from zenkelab.org";

/// Runs the task; `args` are the arguments after `fetch`.
pub fn run(args: &[String]) -> ExitCode {
    let (kind, dir) = match parse(args) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut places = Places::from_env(None, Some(&repository_root()));
    if let Some(d) = dir {
        places.env = Some(d);
    }
    let Some(root) = places.download_root().map(Path::to_path_buf) else {
        eprintln!("error: no user cache folder on this platform; pass --dir DIR or set {DATA_DIR_ENV}");
        return ExitCode::FAILURE;
    };
    let target = root.join(kind.name());
    let source = Source::official(kind);
    match datasets::fetch::fetch(&source, &target, &mut Bar::default()) {
        Ok(0) => {
            println!("{kind}: already in {}", target.display());
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("{kind}: {n} file(s) downloaded, verified and unpacked into {}", target.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", unavailable_message(kind, &e, &target));
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(DatasetKind, Option<PathBuf>), String> {
    let mut kind = None;
    let mut dir = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" | "--data-dir" => dir = Some(PathBuf::from(it.next().ok_or(format!("{a} needs a value"))?)),
            s if s.starts_with("--") => return Err(format!("unknown option `{s}`")),
            s if kind.is_none() => {
                kind = Some(s.parse::<DatasetKind>().map_err(|_| format!("unknown data set `{s}`"))?)
            }
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    Ok((kind.ok_or("which data set? mnist, shd or ssc")?, dir))
}

/// The repository's root folder (the parent of `xtask/`).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files a data set's folder holds, for messages.
pub fn file_list(kind: DatasetKind) -> String {
    Source::official(kind).files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The message of a failed download: the error (which names the URL and the target path),
/// then where to get the files by hand and how to pass them with `--data`.
pub fn unavailable_message(kind: DatasetKind, err: &DatasetError, target: &Path) -> String {
    let source = Source::official(kind);
    let urls: Vec<String> = source.files.iter().map(|f| format!("  {}", f.urls.join("  or  "))).collect();
    format!(
        "{err}\n{kind} could not be downloaded into {}. Without network, download these files by hand and \
         unpack them (gunzip / unzip):\n{}\nthen pass --data DIR (a folder with {}), or put them in {}.",
        target.display(),
        urls.join("\n"),
        file_list(kind),
        target.display(),
    )
}

/// A data set an experiment needs is not on this machine and could not be downloaded; the
/// message names the URL, the target path and how to pass `--data`. `reproduce --quick`
/// without an experiment name reports such an experiment as skipped instead of failed.
#[derive(Debug)]
pub struct DataUnavailable(pub String);

impl std::fmt::Display for DataUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataUnavailable {}

/// Where data set `kind` is (`--data`, `$EVENTPROP_DATA`, the user cache, `shared/data` beside the
/// repository), downloading it into the cache when it is nowhere.
pub fn locate_or_fetch(kind: DatasetKind, explicit: Option<&Path>) -> Result<PathBuf, DataUnavailable> {
    let places = Places::from_env(explicit, Some(&repository_root()));
    let source = Source::official(kind);
    datasets::fetch::locate_or_fetch(&places, &source, &mut Bar::default()).map_err(|e| {
        let target = places.download_root().map(|r| r.join(kind.name())).unwrap_or_default();
        DataUnavailable(unavailable_message(kind, &e, &target))
    })
}

/// An indicatif progress bar of bytes, on standard error (hidden when it is not a terminal).
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn start(&mut self, what: &str, total: Option<u64>) {
        let (bar, template) = match total {
            Some(n) => (ProgressBar::new(n), "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})"),
            None => (ProgressBar::new_spinner(), "{msg} {spinner} {bytes} {bytes_per_sec}"),
        };
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_owned());
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            eprintln!("{} ({} bytes)", b.message(), b.position());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&args("shd")).unwrap(), (DatasetKind::Shd, None));
        assert_eq!(parse(&args("mnist --dir /x")).unwrap(), (DatasetKind::Mnist, Some(PathBuf::from("/x"))));
        assert_eq!(parse(&args("--dir /x SSC")).unwrap(), (DatasetKind::Ssc, Some(PathBuf::from("/x"))));
        assert_eq!(parse(&args("shd --data-dir /y")).unwrap(), (DatasetKind::Shd, Some(PathBuf::from("/y"))));
        for (bad, msg) in [
            ("", "which data set?"),
            ("cifar", "unknown data set `cifar`"),
            ("shd --dir", "--dir needs a value"),
            ("shd --data-dir", "--data-dir needs a value"),
            ("shd ssc", "unexpected argument `ssc`"),
            ("shd --force", "unknown option `--force`"),
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert!(e.contains(msg), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_unavailable_message_names_url_target_and_data_option() {
        let target = Path::new("/cache/eventprop-delays/shd");
        let err = DatasetError::HttpStatus {
            url: "https://zenkelab.org/datasets/shd_train.h5.zip".into(),
            path: target.join("shd_train.h5"),
            status: 503,
        };
        let m = unavailable_message(DatasetKind::Shd, &err, target);
        assert!(m.contains("https://zenkelab.org/datasets/shd_train.h5.zip"), "{m}");
        assert!(m.contains("https://zenkelab.org/datasets/shd_test.h5.zip"), "{m}");
        assert!(m.contains("/cache/eventprop-delays/shd"), "{m}");
        assert!(m.contains("--data DIR (a folder with shd_train.h5, shd_test.h5)"), "{m}");
    }
}
