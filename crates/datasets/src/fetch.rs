//! Data sets on first use: where they are looked for, where they are downloaded from, and
//! how a download is verified and cached.
//!
//! * [`Source::official`] is the registry: the URLs (mirrors in order) and the published
//!   MD5 of every file of MNIST, SHD and SSC.
//! * [`Places`] is the lookup order of a data set's folder: an explicit path (`--data`),
//!   then [`DATA_DIR_ENV`], then the platform's user cache folder, then a `shared/data`
//!   folder beside the repository. [`locate`] finds the first complete folder,
//!   [`locate_or_fetch`] downloads into the cache when none is.
//! * [`fetch`] downloads each missing file to a temporary file in the target folder
//!   (`<name>.part`), checks its MD5, unpacks it (`.gz` or `.zip`) to a second temporary file
//!   and renames that into place only when everything succeeded. Every error path removes
//!   the temporary files, so the cache never holds a half file; a temporary file left by a
//!   killed process is truncated and rewritten by the next attempt.
//!
//! Checksums apply to downloads. Folders found by lookup are used as they are (the
//! development copy of MNIST, for example, is recompressed and so has other MD5s).
//!
//! ```no_run
//! use datasets::fetch::{DatasetKind, NoProgress, Places, Source, locate_or_fetch};
//!
//! let places = Places::from_env(None, None);
//! let dir = locate_or_fetch(&places, &Source::official(DatasetKind::Mnist), &mut NoProgress).unwrap();
//! let mnist = datasets::load_mnist(&dir).unwrap();
//! assert_eq!(mnist.test.len(), 10_000);
//! ```

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{DatasetError, Result};

/// The environment variable naming the cache folder (the data sets go to `$EVENTPROP_DATA/<name>`).
pub const DATA_DIR_ENV: &str = "EVENTPROP_DATA";

/// The name of this project's folder inside the platform's user cache folder.
pub const CACHE_SUBDIR: &str = "eventprop-delays";

/// The MNIST mirrors, in torchvision's order of trial (`MNIST.mirrors` in
/// `torchvision/datasets/mnist.py`, pytorch/vision commit 01977a187961243eaf66ead246fd92a5c6c7ccfc).
pub const MNIST_MIRRORS: [&str; 2] =
    ["http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"];

/// The four MNIST files and the MD5 of each `.gz` as served (`MNIST.resources` in
/// torchvision's `torchvision/datasets/mnist.py`, same commit as [`MNIST_MIRRORS`]).
pub const MNIST_FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
];

/// The Zenke lab's download folder of the Heidelberg spiking data sets (`HSD.base_url` in
/// tonic's `tonic/datasets/hsd.py`).
pub const ZENKE_LAB_URL: &str = "https://zenkelab.org/datasets/";

/// The SHD files (`<name>.zip` on [`ZENKE_LAB_URL`]) and the MD5 of each archive as tonic
/// checks it (`SHD.train_md5`/`test_md5` in `tonic/datasets/hsd.py`, neuromorphs/tonic
/// commit c36b017). Tonic's published checksums are those of the `.h5.zip` archives, so these
/// are what is downloaded (the `.h5.gz` copies on the same server have other checksums).
pub const SHD_FILES: [(&str, &str); 2] =
    [("shd_train.h5", "f3252aeb598ac776c1b526422d90eecb"), ("shd_test.h5", "1503a5064faa34311c398fb0a1ed0a6f")];

/// The SSC files (`<name>.zip` on [`ZENKE_LAB_URL`]) and the MD5 of each archive as tonic
/// checks it (`SSC.train_md5`/`valid_md5`/`test_md5` in `tonic/datasets/hsd.py`, same commit).
pub const SSC_FILES: [(&str, &str); 3] = [
    ("ssc_train.h5", "d102be95e7144fcc0553d1f45ba94170"),
    ("ssc_valid.h5", "b4eee3516a4a90dd0c71a6ac23a8ae43"),
    ("ssc_test.h5", "a35ff1e9cffdd02a20eb850c17c37748"),
];

/// How long a connection attempt may take before the download fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a single read of the response may wait for bytes before the download fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The data sets that can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// MNIST (four IDX files).
    Mnist,
    /// Spiking Heidelberg Digits (`shd_train.h5`, `shd_test.h5`).
    Shd,
    /// Spiking Speech Commands (`ssc_train.h5`, `ssc_valid.h5`, `ssc_test.h5`).
    Ssc,
}

impl DatasetKind {
    /// All kinds, in the order of the command line's help.
    pub const ALL: [DatasetKind; 3] = [DatasetKind::Mnist, DatasetKind::Shd, DatasetKind::Ssc];

    /// The name on the command line and of the folder in the cache (`mnist`, `shd`, `ssc`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Shd => "shd",
            DatasetKind::Ssc => "ssc",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    /// Parses `mnist`, `shd` or `ssc` (case-insensitive).
    ///
    /// ```
    /// use datasets::fetch::DatasetKind;
    /// assert_eq!("SHD".parse::<DatasetKind>().unwrap(), DatasetKind::Shd);
    /// assert!("cifar".parse::<DatasetKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| DatasetError::param("data set", s, "expected mnist, shd or ssc"))
    }
}

/// How a downloaded file is unpacked into the file the loaders read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packing {
    /// A gzip stream of the file.
    Gzip,
    /// A zip archive; the member whose file name (last path component) is this is extracted.
    Zip {
        /// The member's file name.
        member: String,
    },
}

impl Packing {
    fn suffix(&self) -> &'static str {
        match self {
            Packing::Gzip => ".gz",
            Packing::Zip { .. } => ".zip",
        }
    }
}

/// One file of a data set: where to download it and what its download must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file name the loaders read, in the data set's folder (e.g. `shd_train.h5`).
    pub name: String,
    /// Download URLs, tried in order until one succeeds (mirrors).
    pub urls: Vec<String>,
    /// MD5 of the downloaded bytes, 32 lowercase hex digits.
    pub md5: String,
    /// How the download is unpacked into `name`.
    pub packing: Packing,
}

impl RemoteFile {
    /// A file, checked: `name` must be a plain file name, `urls` non-empty `http://` or
    /// `https://` URLs, `md5` 32 hex digits.
    ///
    /// ```
    /// use datasets::fetch::{Packing, RemoteFile};
    /// let f = RemoteFile::new("a.h5", vec!["http://127.0.0.1:1/a.h5.gz".into()], "00112233445566778899aabbccddeeff", Packing::Gzip);
    /// assert!(f.is_ok());
    /// assert!(RemoteFile::new("a.h5", vec![], "00", Packing::Gzip).is_err());
    /// ```
    pub fn new(name: impl Into<String>, urls: Vec<String>, md5: impl Into<String>, packing: Packing) -> Result<Self> {
        let f = RemoteFile { name: name.into(), urls, md5: md5.into().to_ascii_lowercase(), packing };
        f.check()?;
        Ok(f)
    }

    /// Checks the fields (see [`RemoteFile::new`]).
    pub fn check(&self) -> Result<()> {
        let plain = !self.name.is_empty()
            && self.name != "."
            && self.name != ".."
            && !self.name.contains(['/', '\\'])
            && !self.name.starts_with('.');
        if !plain {
            return Err(DatasetError::param("file name", &self.name, "must be a plain file name"));
        }
        if self.urls.is_empty() {
            return Err(DatasetError::param("urls", &self.name, "at least one download URL is needed"));
        }
        if let Some(u) = self.urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            return Err(DatasetError::param("url", u, "must start with http:// or https://"));
        }
        if self.md5.len() != 32 || !self.md5.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DatasetError::param("md5", &self.md5, "must be 32 hexadecimal digits"));
        }
        Ok(())
    }
}

/// Where a data set's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The data set.
    pub kind: DatasetKind,
    /// Its files; the data set's folder is complete when all of them are present.
    pub files: Vec<RemoteFile>,
}

impl Source {
    /// The official sources and checksums of a data set (see [`MNIST_MIRRORS`],
    /// [`MNIST_FILES`], [`SHD_FILES`], [`SSC_FILES`]).
    ///
    /// ```
    /// use datasets::fetch::{DatasetKind, Source};
    /// let s = Source::official(DatasetKind::Mnist);
    /// assert_eq!(s.files.len(), 4);
    /// assert_eq!(s.files[0].urls[1], "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz");
    /// ```
    #[must_use]
    pub fn official(kind: DatasetKind) -> Source {
        match kind {
            DatasetKind::Mnist => Source::from_table(kind, &MNIST_MIRRORS, &MNIST_FILES, false),
            DatasetKind::Shd => Source::from_table(kind, &[ZENKE_LAB_URL], &SHD_FILES, true),
            DatasetKind::Ssc => Source::from_table(kind, &[ZENKE_LAB_URL], &SSC_FILES, true),
        }
    }

    /// The official file names and checksums of a data set, downloaded from `base_url`
    /// instead (a local mirror, or a test server): each file is `base_url` + its archive name.
    ///
    /// ```
    /// use datasets::fetch::{DatasetKind, Source};
    /// let s = Source::with_base_url(DatasetKind::Shd, "http://127.0.0.1:8000/");
    /// assert_eq!(s.files[0].urls, ["http://127.0.0.1:8000/shd_train.h5.zip"]);
    /// assert_eq!(s.files[0].md5, Source::official(DatasetKind::Shd).files[0].md5);
    /// ```
    #[must_use]
    pub fn with_base_url(kind: DatasetKind, base_url: &str) -> Source {
        let mut s = Source::official(kind);
        let base = if base_url.ends_with('/') { base_url.to_string() } else { format!("{base_url}/") };
        for f in &mut s.files {
            f.urls = vec![format!("{base}{}{}", f.name, f.packing.suffix())];
        }
        s
    }

    fn from_table(kind: DatasetKind, mirrors: &[&str], files: &[(&str, &str)], zip: bool) -> Source {
        let files = files
            .iter()
            .map(|&(name, md5)| {
                let packing = if zip { Packing::Zip { member: name.to_string() } } else { Packing::Gzip };
                let urls = mirrors.iter().map(|m| format!("{m}{name}{}", packing.suffix())).collect();
                RemoteFile { name: name.to_string(), urls, md5: md5.to_string(), packing }
            })
            .collect();
        Source { kind, files }
    }

    /// Checks every file (see [`RemoteFile::check`]); a source needs at least one file.
    pub fn check(&self) -> Result<()> {
        if self.files.is_empty() {
            return Err(DatasetError::param("files", self.kind, "a source needs at least one file"));
        }
        self.files.iter().try_for_each(RemoteFile::check)
    }

    /// Whether `dir` holds every file of the data set: as its unpacked name, or, for a
    /// gzip-packed file (whose loader reads gzip, as MNIST's does), as `<name>.gz`.
    #[must_use]
    pub fn is_complete(&self, dir: &Path) -> bool {
        self.files.iter().all(|f| Source::is_present(dir, f))
    }

    /// The URLs of every file, one per line, for messages.
    #[must_use]
    pub fn url_list(&self) -> String {
        self.files.iter().map(|f| f.urls.join(" or ")).collect::<Vec<_>>().join("\n")
    }
}

/// Receives the progress of downloads and unpacking (bytes); the library draws nothing
/// itself, a command-line tool can show a progress bar.
pub trait Progress {
    /// A step begins: `what` describes it (e.g. `download shd_train.h5.zip`), `total` is its
    /// size in bytes when known.
    fn start(&mut self, what: &str, total: Option<u64>);
    /// `bytes` more bytes were processed.
    fn advance(&mut self, bytes: u64);
    /// The step ended (successfully or not).
    fn finish(&mut self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _what: &str, _total: Option<u64>) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// Where a data set was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The explicit path (`--data`).
    Explicit,
    /// `$EVENTPROP_DATA/<name>`.
    EnvVar,
    /// The platform's user cache folder.
    Cache,
    /// `shared/data/<name>` beside the repository.
    BesideRepository,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Explicit => "--data",
            Place::EnvVar => DATA_DIR_ENV,
            Place::Cache => "the user cache folder",
            Place::BesideRepository => "shared/data beside the repository",
        })
    }
}

/// The folders a data set is looked for in, in this order:
///
/// | field | folder of data set `<name>` | set by |
/// |---|---|---|
/// | `explicit` | the path itself | `--data PATH` |
/// | `env` | `<env>/<name>` | [`DATA_DIR_ENV`] |
/// | `cache` | `<cache>/<name>` | the platform's user cache folder + [`CACHE_SUBDIR`] |
/// | `beside_repository` | `<beside>/<name>` | `<repository>/../shared/data`, when present |
///
/// Downloads go to the first of `env` and `cache` that is set ([`Places::download_root`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    /// An explicit data-set path; when set it is used as it is and nothing else is tried.
    pub explicit: Option<PathBuf>,
    /// The cache root named by the environment variable.
    pub env: Option<PathBuf>,
    /// The platform's cache root.
    pub cache: Option<PathBuf>,
    /// A `shared/data` folder beside the repository.
    pub beside_repository: Option<PathBuf>,
}

impl Places {
    /// The places of this process: `explicit` (`--data`), the environment variable
    /// [`DATA_DIR_ENV`] (when set and non-empty), the platform's user cache folder (e.g.
    /// `$XDG_CACHE_HOME` or `~/.cache` on Linux) + [`CACHE_SUBDIR`], and
    /// `<repository>/../shared/data` when `repository` is given and that folder exists.
    #[must_use]
    pub fn from_env(explicit: Option<&Path>, repository: Option<&Path>) -> Places {
        let env = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache = dirs::cache_dir().map(|d| d.join(CACHE_SUBDIR));
        let beside_repository = repository
            .and_then(|r| r.canonicalize().ok())
            .and_then(|r| r.parent().map(|p| p.join("shared").join("data")))
            .filter(|p| p.is_dir());
        Places { explicit: explicit.map(Path::to_path_buf), env, cache, beside_repository }
    }

    /// The cache root downloads go to: `env` if set, else `cache`.
    #[must_use]
    pub fn download_root(&self) -> Option<&Path> {
        self.env.as_deref().or(self.cache.as_deref())
    }

    /// The candidate folders of data set `kind`, in lookup order.
    #[must_use]
    pub fn candidates(&self, kind: DatasetKind) -> Vec<(Place, PathBuf)> {
        if let Some(p) = &self.explicit {
            return vec![(Place::Explicit, p.clone())];
        }
        let mut out = Vec::new();
        if let Some(e) = &self.env {
            out.push((Place::EnvVar, e.join(kind.name())));
        }
        if let Some(c) = &self.cache {
            out.push((Place::Cache, c.join(kind.name())));
        }
        if let Some(b) = &self.beside_repository {
            out.push((Place::BesideRepository, b.join(kind.name())));
        }
        out
    }
}

/// Finds data set `source.kind`: the explicit path if one is given (as it is, unchecked —
/// the loaders report what is wrong with it), else the first candidate folder of `places`
/// that holds every file of `source` ([`Source::is_complete`]). `None` when no folder does.
#[must_use]
pub fn locate(places: &Places, source: &Source) -> Option<(Place, PathBuf)> {
    if let Some(p) = &places.explicit {
        return Some((Place::Explicit, p.clone()));
    }
    places.candidates(source.kind).into_iter().find(|(_, dir)| source.is_complete(dir))
}

/// [`locate`], or, when the data set is nowhere, [`fetch`] into the download folder
/// (`<download root>/<name>`, see [`Places::download_root`]). Returns the data set's folder.
///
/// Errors: the download's errors (see [`fetch`]), or [`DatasetError::NoCacheFolder`] when
/// neither the environment variable nor a user cache folder is available.
pub fn locate_or_fetch(places: &Places, source: &Source, progress: &mut dyn Progress) -> Result<PathBuf> {
    if let Some((_, dir)) = locate(places, source) {
        return Ok(dir);
    }
    let root = places.download_root().ok_or(DatasetError::NoCacheFolder { var: DATA_DIR_ENV })?;
    let dir = root.join(source.kind.name());
    fetch(source, &dir, progress)?;
    Ok(dir)
}

/// Downloads into `dir` every file of `source` that is not there yet (see
/// [`Source::is_complete`] for what counts as present), verifying each download's MD5 and unpacking
/// it. Returns the number of files downloaded (0 on a cache hit: the network is not used).
///
/// For each missing file, the mirrors are tried in order; the error of the last one is
/// returned when all fail. Errors: [`DatasetError::Download`] (no connection, DNS, TLS,
/// timeout), [`DatasetError::HttpStatus`], [`DatasetError::DownloadTruncated`],
/// [`DatasetError::ChecksumMismatch`], [`DatasetError::Io`], [`DatasetError::Zip`],
/// [`DatasetError::ArchiveMember`]. Temporary files are removed on every error.
pub fn fetch(source: &Source, dir: &Path, progress: &mut dyn Progress) -> Result<usize> {
    source.check()?;
    let missing: Vec<&RemoteFile> = source.files.iter().filter(|f| !Source::is_present(dir, f)).collect();
    if missing.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let agent = agent();
    for f in &missing {
        if let Err(e) = fetch_file(&agent, f, dir, progress) {
            // Leave no empty folder behind (a folder with files in it stays).
            let _ = std::fs::remove_dir(dir);
            return Err(e);
        }
    }
    Ok(missing.len())
}

impl Source {
    fn is_present(dir: &Path, f: &RemoteFile) -> bool {
        dir.join(&f.name).is_file() || (f.packing == Packing::Gzip && dir.join(format!("{}.gz", f.name)).is_file())
    }
}

fn io_err(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io { path: path.to_path_buf(), source }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(READ_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        // Statuses are checked here, to report them with the URL and the target.
        .http_status_as_error(false)
        .user_agent(concat!("eventprop-delays-datasets/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A temporary file that is removed when dropped unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// Creates (or truncates a stale) `path`.
    fn create(path: PathBuf) -> Result<(TempFile, File)> {
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        Ok((TempFile { path, keep: false }, file))
    }

    fn rename_to(mut self, target: &Path) -> Result<()> {
        std::fs::rename(&self.path, target).map_err(|e| io_err(target, e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn fetch_file(agent: &ureq::Agent, f: &RemoteFile, dir: &Path, progress: &mut dyn Progress) -> Result<()> {
    let target = dir.join(&f.name);
    let archive_path = dir.join(format!("{}{}.part", f.name, f.packing.suffix()));
    let mut last = None;
    for url in &f.urls {
        match download(agent, url, &archive_path, &target, &f.md5, progress) {
            Ok(archive) => {
                tracing::info!(url = %url, target = %target.display(), "downloaded and verified");
                return unpack(archive, &f.packing, &target, progress);
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "download failed");
                last = Some(e);
            }
        }
    }
    Err(last.expect("RemoteFile::check guarantees at least one URL"))
}

/// Downloads `url` to `part`, hashing as it goes; returns the verified temporary file.
fn download(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    target: &Path,
    md5: &str,
    progress: &mut dyn Progress,
) -> Result<TempFile> {
    let path = || target.to_path_buf();
    let response = agent.get(url).call().map_err(|e| DatasetError::Download {
        url: url.to_string(),
        path: path(),
        source: Box::new(e),
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DatasetError::HttpStatus { url: url.to_string(), path: path(), status });
    }
    let expected = response.body().content_length();
    let (temp, file) = TempFile::create(part.to_path_buf())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut body = response.into_body().into_reader();
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    progress.start(&format!("download {url}"), expected);
    let result = loop {
        match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(io_err(part, e));
                }
                received += n as u64;
                progress.advance(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(DatasetError::DownloadTruncated {
                    url: url.to_string(),
                    path: path(),
                    received,
                    expected,
                    reason: e.to_string(),
                });
            }
        }
    };
    progress.finish();
    result?;
    if let Some(n) = expected
        && received != n
    {
        return Err(DatasetError::DownloadTruncated {
            url: url.to_string(),
            path: path(),
            received,
            expected,
            reason: "the connection closed early".into(),
        });
    }
    let file = out.into_inner().map_err(|e| io_err(part, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(part, e))?;
    drop(file);
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(md5) {
        return Err(DatasetError::ChecksumMismatch {
            url: url.to_string(),
            path: path(),
            expected: md5.to_string(),
            actual,
        });
    }
    Ok(temp)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks the verified `archive` into `target` (via `<target>.part`); the archive is
/// removed in every case.
fn unpack(archive: TempFile, packing: &Packing, target: &Path, progress: &mut dyn Progress) -> Result<()> {
    let part = target.with_file_name(format!(
        "{}.part",
        target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let (temp, file) = TempFile::create(part.clone())?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let src = File::open(&archive.path).map_err(|e| io_err(&archive.path, e))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let copied = match packing {
        Packing::Gzip => {
            progress.start(&format!("unpack {name}"), None);
            let mut dec = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, src));
            let r = copy_with_progress(&mut dec, &mut out, progress).map_err(|e| match e {
                Side::Read(e) => io_err(&archive.path, e),
                Side::Write(e) => io_err(&part, e),
            });
            progress.finish();
            r.map(|_| ())
        }
        Packing::Zip { member } => unzip(src, &archive.path, member, &part, &name, &mut out, progress),
    };
    copied?;
    let file = out.into_inner().map_err(|e| io_err(&part, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(&part, e))?;
    drop(file);
    temp.rename_to(target)?;
    drop(archive);
    Ok(())
}

fn unzip(
    src: File,
    archive: &Path,
    member: &str,
    part: &Path,
    name: &str,
    out: &mut impl Write,
    progress: &mut dyn Progress,
) -> Result<()> {
    let zip_err = |source| DatasetError::Zip { path: archive.to_path_buf(), source };
    let mut zip = zip::ZipArchive::new(BufReader::new(src)).map_err(zip_err)?;
    let index = (0..zip.len())
        .find(|&i| {
            zip.name_for_index(i)
                .and_then(std::result::Result::ok)
                .is_some_and(|n| !n.ends_with('/') && n.rsplit(['/', '\\']).next() == Some(member))
        })
        .ok_or_else(|| DatasetError::ArchiveMember { path: archive.to_path_buf(), member: member.to_string() })?;
    let mut entry = zip.by_index(index).map_err(zip_err)?;
    progress.start(&format!("unpack {name}"), Some(entry.size()));
    let r = copy_with_progress(&mut entry, out, progress).map_err(|e| match e {
        Side::Read(e) => io_err(archive, e),
        Side::Write(e) => io_err(part, e),
    });
    progress.finish();
    r.map(|_| ())
}

enum Side {
    Read(std::io::Error),
    Write(std::io::Error),
}

fn copy_with_progress(
    r: &mut impl Read,
    w: &mut impl Write,
    progress: &mut dyn Progress,
) -> std::result::Result<u64, Side> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Side::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(Side::Write)?;
        total += n as u64;
        progress.advance(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_registry_is_well_formed() {
        for kind in DatasetKind::ALL {
            let s = Source::official(kind);
            s.check().unwrap();
            assert_eq!(s.kind, kind);
        }
        let m = Source::official(DatasetKind::Mnist);
        assert_eq!(m.files[3].urls[0], "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz");
        assert_eq!(m.files[3].md5, "ec29112dd5afa0611ce80d1b7f02629c");
        let ssc = Source::official(DatasetKind::Ssc);
        let names: Vec<&str> = ssc.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"]);
        assert_eq!(ssc.files[1].urls, ["https://zenkelab.org/datasets/ssc_valid.h5.zip"]);
        assert_eq!(ssc.files[1].packing, Packing::Zip { member: "ssc_valid.h5".into() });
    }

    #[test]
    fn file_names_that_escape_the_folder_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden"] {
            let r = RemoteFile::new(bad, vec!["http://127.0.0.1:1/x".into()], "0".repeat(32), Packing::Gzip);
            assert!(r.is_err(), "{bad:?} accepted");
        }
        let r = RemoteFile::new("x", vec!["ftp://127.0.0.1/x".into()], "0".repeat(32), Packing::Gzip);
        assert!(r.is_err());
        let r = RemoteFile::new("x", vec!["http://127.0.0.1:1/x".into()], "g".repeat(32), Packing::Gzip);
        assert!(r.is_err());
    }
}
