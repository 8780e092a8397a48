//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, generating or transforming data.
///
/// File errors carry the path of the offending file, so that a message printed
/// to a user always says *which* file is wrong and *what* is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be read from disk.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A data file does not exist; `hint` says where to get it.
    #[error("{path} does not exist; {hint}")]
    NotFound {
        /// The missing file.
        path: PathBuf,
        /// Where the data set can be obtained.
        hint: &'static str,
    },
    /// A download could not start or get a response: no network, name resolution, refused
    /// connection, TLS failure or timeout.
    #[error("cannot download {url} to {path}: {source}")]
    Download {
        /// The URL tried.
        url: String,
        /// The file the download was for.
        path: PathBuf,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered a download with an error status.
    #[error("cannot download {url} to {path}: the server answered HTTP {status}")]
    HttpStatus {
        /// The URL tried.
        url: String,
        /// The file the download was for.
        path: PathBuf,
        /// The HTTP status code.
        status: u16,
    },
    /// A download's body ended or failed before it was complete.
    #[error(
        "download of {url} to {path} was cut off after {received} bytes{}: {reason}",
        .expected.map(|n| format!(" of {n}")).unwrap_or_default()
    )]
    DownloadTruncated {
        /// The URL tried.
        url: String,
        /// The file the download was for.
        path: PathBuf,
        /// Bytes received.
        received: u64,
        /// Bytes announced by the server (`Content-Length`), when it did.
        expected: Option<u64>,
        /// What ended the body.
        reason: String,
    },
    /// A download's MD5 differs from the published one.
    #[error("download of {url} to {path}: MD5 checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL tried.
        url: String,
        /// The file the download was for.
        path: PathBuf,
        /// The published MD5 (hex).
        expected: String,
        /// The MD5 of the bytes received (hex).
        actual: String,
    },
    /// A zip archive could not be read.
    #[error("{path}: not a readable zip archive: {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// The zip reader's error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A zip archive lacks the file it should contain.
    #[error("{path}: the archive has no member `{member}`")]
    ArchiveMember {
        /// The archive.
        path: PathBuf,
        /// The member looked for.
        member: String,
    },
    /// Neither the environment variable nor the platform provides a cache folder to download to.
    #[error("no folder to download data sets to: set {var} to one")]
    NoCacheFolder {
        /// The environment variable that names the cache folder.
        var: &'static str,
    },
    /// The HDF5 reader refused the file (damaged, truncated or unsupported structure).
    #[error("{path}: not a readable HDF5 file: {source}")]
    Hdf5 {
        /// The file that failed.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: hdf5_reader::error::Error,
    },
    /// A data set expected in the file layout is absent.
    #[error(
        "{path}: missing HDF5 data set `{name}` (expected the SHD/SSC layout /spikes/times, /spikes/units, /labels)"
    )]
    MissingDataset {
        /// The file that failed.
        path: PathBuf,
        /// The missing data set, e.g. `/spikes/units`.
        name: &'static str,
    },
    /// A data set has a type this loader does not accept.
    #[error("{path}: data set `{name}` has type {found}, expected {expected}")]
    UnsupportedType {
        /// The file that failed.
        path: PathBuf,
        /// The data set concerned.
        name: &'static str,
        /// A description of the type found.
        found: String,
        /// A description of the types accepted.
        expected: &'static str,
    },
    /// Two quantities that must agree do not (e.g. number of labels and samples).
    #[error("{path}: length mismatch in {what}: expected {expected}, found {found}")]
    LengthMismatch {
        /// The file that failed.
        path: PathBuf,
        /// What was compared.
        what: &'static str,
        /// The expected length.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// A value in the file is outside its valid range (NaN time, unit >= number of units...).
    #[error("{path}: invalid value in {what}: {value} (valid: {valid})")]
    InvalidValue {
        /// The file that failed.
        path: PathBuf,
        /// Where the value was found.
        what: &'static str,
        /// The offending value, formatted.
        value: String,
        /// The valid range.
        valid: &'static str,
    },
    /// An IDX file does not start with a valid magic number.
    #[error("{path}: bad IDX magic number {magic:#010x} (expected 0x0000TTNN with type 0x08 = unsigned byte)")]
    BadMagic {
        /// The file that failed.
        path: PathBuf,
        /// The first four bytes, big endian.
        magic: u32,
    },
    /// A header claims more data than this reader is willing to allocate.
    #[error("{path}: header claims {claimed} bytes of data, more than the limit of {limit}")]
    TooLarge {
        /// The file that failed.
        path: PathBuf,
        /// The byte count the header claims (may overflow `usize`, hence `u128`).
        claimed: u128,
        /// The largest accepted size.
        limit: u64,
    },
    /// A file ends before the data its header announces.
    #[error("{path}: truncated: expected {expected} bytes of {what}, found {found}")]
    Truncated {
        /// The file that failed.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// Bytes expected.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// A file has bytes after the data its header announces.
    #[error("{path}: {extra} unexpected trailing bytes after the data")]
    TrailingBytes {
        /// The file that failed.
        path: PathBuf,
        /// Number of extra bytes (at least this many).
        extra: u64,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// The valid range / why it is rejected.
        reason: &'static str,
    },
    /// Rejection sampling gave up (e.g. a margin too large to be met).
    #[error("sampling gave up after {attempts} attempts: {what}")]
    SamplingFailed {
        /// What was being sampled.
        what: &'static str,
        /// The number of attempts made.
        attempts: u64,
    },
    /// The path exists but is not a regular file (refused before anything is read).
    #[error("{path} is not a regular file but a {what}")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`"directory"`, `"FIFO"`, `"character device"`, ...).
        what: &'static str,
    },
}

/// `Result` with [`DatasetError`].
pub type Result<T> = std::result::Result<T, DatasetError>;

impl DatasetError {
    /// Shorthand for an [`DatasetError::InvalidParameter`].
    pub(crate) fn param(name: &'static str, value: impl std::fmt::Display, reason: &'static str) -> Self {
        DatasetError::InvalidParameter { name, value: value.to_string(), reason }
    }
}
