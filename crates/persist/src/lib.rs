//! One framing for every file this workspace writes and reads back (training checkpoints,
//! model files, their metadata): a fixed header — magic, framing version, payload kind and
//! kind version, payload length, CRC-32 — followed by a bincode-2 payload.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic [`MAGIC`] |
//! | 8 | 2 | framing version [`FRAMING_VERSION`] (little endian) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 16 | payload kind, ASCII, NUL-padded ([`Kind`]) |
//! | 28 | 4 | kind version (format version of that payload) |
//! | 32 | 8 | payload length in bytes |
//! | 40 | 4 | CRC-32 (IEEE) of bytes 8..40 and of the payload |
//! | 44 | length | payload: bincode 2, standard configuration |
//!
//! Reading never trusts the file: [`read_file`] refuses what is not a regular file before
//! reading (a directory, a FIFO, `/dev/zero`), checks the magic before reading the rest,
//! compares the declared length with the file's size and reads at most that many bytes;
//! [`decode`] checks the checksum, then the kind, then decodes with bincode's byte limit set
//! to a small multiple of the payload's size, so that a lying length inside the payload can
//! never allocate more than that. No byte string makes these functions panic, abort or hang:
//! each gives a [`PersistError`] that names the file and what is wrong.
//!
//! Writing is atomic ([`write_atomic`]): a temporary file `.NAME.tmp-PID` in the target's
//! folder, `fsync`, rename over the target, `fsync` of the folder. A process killed mid-write
//! leaves its temporary file behind; [`remove_stale_temps`] removes those of dead processes.
//!
//! ```
//! use persist::{Kind, PersistError};
//! const NOTE: Kind = Kind::new("example-note", 1);
//! const OTHER: Kind = Kind::new("example-other", 1);
//!
//! let dir = std::env::temp_dir().join(format!("persist-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("note.bin");
//! persist::save(&path, NOTE, &(String::from("hello"), vec![1.5f64, 2.5])).unwrap();
//! let back: (String, Vec<f64>) = persist::load(&path, NOTE).unwrap();
//! assert_eq!(back.0, "hello");
//! // a file of another kind is refused, whatever it contains
//! assert!(matches!(persist::load::<(String, Vec<f64>)>(&path, OTHER), Err(PersistError::WrongKind { .. })));
//! // so is a folder
//! assert!(matches!(persist::load::<u8>(&dir, NOTE), Err(PersistError::NotAFile { .. })));
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Magic bytes at the start of every framed file.
pub const MAGIC: [u8; 8] = *b"EPSBFILE";
/// Version of the framing itself (the header layout).
pub const FRAMING_VERSION: u16 = 1;
/// Bytes of the header before the payload.
pub const HEADER_LEN: usize = 44;
/// Longest kind name (bytes).
pub const KIND_LEN: usize = 16;

/// What errors of this crate say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    /// The path is empty.
    #[error("empty path: name a file")]
    EmptyPath,
    /// An I/O operation failed.
    #[error("{path}: {op} failed ({kind})")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`"open"`, `"read"`, `"write"`, `"rename"`, ...).
        op: &'static str,
        /// The operating system's error kind.
        kind: std::io::ErrorKind,
    },
    /// The path exists but is not a regular file.
    #[error("{path} is not a regular file but a {what}")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`"directory"`, `"FIFO"`, `"character device"`, ...).
        what: &'static str,
    },
    /// The file does not start with [`MAGIC`].
    #[error("{path} is not a file of this project (bad magic bytes)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The header was written by another framing version.
    #[error("{path}: framing version {found} is not supported (this build reads {supported})")]
    FramingVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The file is shorter than its header says.
    #[error("{path} is truncated: {got} bytes, expected {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces (header + payload).
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The file is longer than its header says.
    #[error("{path} has {extra} unexpected bytes after its payload")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Extra bytes.
        extra: u64,
    },
    /// The checksum does not match the header and payload.
    #[error("{path} is damaged: checksum {got:#010x} does not match the recorded {expected:#010x}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Checksum in the header.
        expected: u32,
        /// Checksum of what was read.
        got: u32,
    },
    /// The file holds another kind of payload.
    #[error("{path} holds a `{found}` file, expected a `{expected}` file")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// Kind the caller asked for.
        expected: String,
        /// Kind recorded in the file.
        found: String,
    },
    /// The payload's format version is not the one this build reads.
    #[error("{path}: `{kind}` format version {found} is not supported (this build reads {supported})")]
    KindVersion {
        /// The file.
        path: PathBuf,
        /// The payload kind.
        kind: String,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The payload is larger than this build decodes.
    #[error("{path}: payload of {len} bytes is larger than the {max}-byte maximum")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Declared payload length.
        len: u64,
        /// Largest payload accepted.
        max: u64,
    },
    /// The payload passed the checksum but does not decode as the expected type.
    #[error("{path}: payload does not decode as a `{kind}`: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The payload kind.
        kind: String,
        /// The decoder's message.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("{path}: cannot encode a `{kind}`: {reason}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The payload kind.
        kind: String,
        /// The encoder's message.
        reason: String,
    },
}

/// `Result` with [`PersistError`].
pub type Result<T> = std::result::Result<T, PersistError>;

/// The kind of a payload and its format version, recorded in every header and checked on
/// reading: loading a file of another kind is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    name: &'static str,
    version: u32,
}

impl Kind {
    /// A kind: `name` is 1 to [`KIND_LEN`] printable ASCII bytes; `version` is the payload's
    /// format version (bump it when the payload's Rust types change).
    ///
    /// Meant for constants: `const K: Kind = Kind::new(..)` refuses a bad name at compile time.
    ///
    /// ```
    /// const CKPT: persist::Kind = persist::Kind::new("checkpoint", 3);
    /// assert_eq!(CKPT.name(), "checkpoint");
    /// ```
    pub const fn new(name: &'static str, version: u32) -> Self {
        let b = name.as_bytes();
        assert!(!b.is_empty() && b.len() <= KIND_LEN, "kind names have 1 to 16 bytes");
        let mut i = 0;
        while i < b.len() {
            assert!(b[i] > b' ' && b[i] < 0x7f, "kind names are printable ASCII without spaces");
            i += 1;
        }
        Self { name, version }
    }

    /// The name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The payload format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn bytes(&self) -> [u8; KIND_LEN] {
        let mut out = [0u8; KIND_LEN];
        out[..self.name.len()].copy_from_slice(self.name.as_bytes());
        out
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// Largest payload this build decodes (1 TiB).
pub const MAX_PAYLOAD: u64 = 1 << 40;

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[8..40]);
    h.update(payload);
    h.finalize()
}

/// Encodes `value` as a framed file in memory (`path` only names it in errors).
pub fn encode<T: Serialize + ?Sized>(path: &Path, kind: Kind, value: &T) -> Result<Vec<u8>> {
    let payload = bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
        PersistError::Encode { path: path.to_owned(), kind: kind.name.to_owned(), reason: e.to_string() }
    })?;
    Ok(frame(kind, &payload))
}

/// Frames an already encoded payload: the header (magic, framing version, `kind`, length,
/// CRC-32) followed by `payload`. [`encode`] is this after bincode; tests use it to craft files
/// whose framing is valid around a payload they chose, so that only the decoder's checks of the
/// payload stand between the bytes and a value.
///
/// ```
/// let kind = persist::Kind::new("example", 1);
/// let framed = persist::frame(kind, &[7]); // bincode's encoding of the u8 7
/// assert_eq!(persist::decode::<u8>(std::path::Path::new("x"), kind, &framed).unwrap(), 7);
/// ```
#[must_use]
pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FRAMING_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&kind.bytes());
    out.extend_from_slice(&kind.version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let sum = checksum(&out, payload);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A parsed, not yet verified header.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: [u8; KIND_LEN],
    kind_version: u32,
    len: u64,
    sum: u32,
}

fn kind_text(kind: &[u8; KIND_LEN]) -> String {
    let end = kind.iter().position(|&b| b == 0).unwrap_or(KIND_LEN);
    kind[..end].iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// Checks the magic, the framing version and the declared length of the first bytes of a file.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] || bytes.is_empty() {
        return Err(PersistError::BadMagic { path: path.to_owned() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(PersistError::Truncated {
            path: path.to_owned(),
            expected: HEADER_LEN as u64,
            got: bytes.len() as u64,
        });
    }
    let le = |at: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b)
    };
    let version = le(8, 2) as u16;
    if version != FRAMING_VERSION || le(10, 2) != 0 {
        return Err(PersistError::FramingVersion { path: path.to_owned(), found: version, supported: FRAMING_VERSION });
    }
    let mut kind = [0u8; KIND_LEN];
    kind.copy_from_slice(&bytes[12..28]);
    let len = le(32, 8);
    if len > MAX_PAYLOAD {
        return Err(PersistError::TooLarge { path: path.to_owned(), len, max: MAX_PAYLOAD });
    }
    Ok(Header { kind, kind_version: le(28, 4) as u32, len, sum: le(40, 4) as u32 })
}

/// Decodes a framed file held in memory (`path` only names it in errors): checks the magic,
/// framing version, length, checksum, kind and kind version, then decodes the payload with a
/// byte limit (see the crate doc). The payload must decode exactly, with no byte left over.
pub fn decode<T: DeserializeOwned>(path: &Path, kind: Kind, bytes: &[u8]) -> Result<T> {
    let h = parse_header(path, bytes)?;
    let expected = HEADER_LEN as u64 + h.len;
    let got = bytes.len() as u64;
    if got < expected {
        return Err(PersistError::Truncated { path: path.to_owned(), expected, got });
    }
    if got > expected {
        return Err(PersistError::TrailingBytes { path: path.to_owned(), extra: got - expected });
    }
    let payload = &bytes[HEADER_LEN..];
    let actual = checksum(bytes, payload);
    if actual != h.sum {
        return Err(PersistError::Checksum { path: path.to_owned(), expected: h.sum, got: actual });
    }
    check_kind(path, kind, &h)?;
    decode_payload(path, kind, payload)
}

fn check_kind(path: &Path, kind: Kind, h: &Header) -> Result<()> {
    if h.kind != kind.bytes() {
        return Err(PersistError::WrongKind {
            path: path.to_owned(),
            expected: kind.name.to_owned(),
            found: kind_text(&h.kind),
        });
    }
    if h.kind_version != kind.version {
        return Err(PersistError::KindVersion {
            path: path.to_owned(),
            kind: kind.name.to_owned(),
            found: h.kind_version,
            supported: kind.version,
        });
    }
    Ok(())
}

/// Decodes `payload` exactly, with bincode's byte limit set to the next power of two of
/// `max(4 x payload, 64 KiB)`: no container announced inside the payload can claim more.
fn decode_payload<T: DeserializeOwned>(path: &Path, kind: Kind, payload: &[u8]) -> Result<T> {
    fn with_limit<T: DeserializeOwned, const N: usize>(
        payload: &[u8],
    ) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(payload, bincode::config::standard().with_limit::<N>())
    }
    let bound = (payload.len() as u64).saturating_mul(4).max(1 << 16).next_power_of_two();
    macro_rules! dispatch {
        ($($e:literal)*) => {
            match bound.trailing_zeros() {
                $($e => Some(with_limit::<T, { 1usize << $e }>(payload)),)*
                _ => None,
            }
        };
    }
    let err = |reason: String| PersistError::Decode { path: path.to_owned(), kind: kind.name.to_owned(), reason };
    // A checked payload decodes without panicking; the guard is for third-party `Deserialize`
    // impls that assert on what they read (e.g. an unchecked product of two lengths).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(target_pointer_width = "64")]
        {
            dispatch!(16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42)
        }
        #[cfg(not(target_pointer_width = "64"))]
        {
            dispatch!(16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
        }
    }))
    .map_err(|_| err("the decoder failed on an inconsistent value".into()))?
    .ok_or(PersistError::TooLarge { path: path.to_owned(), len: payload.len() as u64, max: MAX_PAYLOAD })?;
    let (value, read) = decoded.map_err(|e| err(e.to_string()))?;
    if read != payload.len() {
        return Err(err(format!("{} of {} payload bytes left over", payload.len() - read, payload.len())));
    }
    Ok(value)
}

/// What a path that is not a regular file is (`"directory"`, `"FIFO"`, `"character device"`,
/// ...), for error messages.
pub fn file_type_name(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_dir() { "directory" } else { "special file" }
}

/// Opens `path` for reading if it is a regular file, without reading from it (a FIFO is
/// opened non-blocking on Unix so that opening cannot hang); returns the file and its size.
///
/// Errors: [`PersistError::EmptyPath`], [`PersistError::Io`] (e.g. not found),
/// [`PersistError::NotAFile`].
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    if path.as_os_str().is_empty() {
        return Err(PersistError::EmptyPath);
    }
    let io = |op, e: std::io::Error| PersistError::Io { path: path.to_owned(), op, kind: e.kind() };
    // Look before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(PersistError::NotAFile { path: path.to_owned(), what: file_type_name(meta.file_type()) });
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o4000); // O_NONBLOCK: the path may have been swapped for a FIFO since
    }
    let file = options.open(path).map_err(|e| io("open", e))?;
    let meta = file.metadata().map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(PersistError::NotAFile { path: path.to_owned(), what: file_type_name(meta.file_type()) });
    }
    Ok((file, meta.len()))
}

/// Reads a framed file: refuses what is not a regular file, reads and checks the header first,
/// then reads exactly the declared payload (never more than the file's size). Returns the whole
/// file's bytes, header included, ready for [`decode`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    let io = |op, e: std::io::Error| PersistError::Io { path: path.to_owned(), op, kind: e.kind() };
    let mut r = file.take(size.min(MAX_PAYLOAD + HEADER_LEN as u64) + 1);
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut r).take(HEADER_LEN as u64).read_to_end(&mut head).map_err(|e| io("read", e))?;
    let h = parse_header(path, &head)?;
    let expected = HEADER_LEN as u64 + h.len;
    if size < expected {
        return Err(PersistError::Truncated { path: path.to_owned(), expected, got: size });
    }
    // `size >= expected`: the allocation is bounded by the file's size.
    let mut bytes = head;
    bytes.reserve_exact(h.len as usize);
    r.take(h.len + 1).read_to_end(&mut bytes).map_err(|e| io("read", e))?;
    let got = bytes.len() as u64;
    if got < expected {
        return Err(PersistError::Truncated { path: path.to_owned(), expected, got });
    }
    if got > expected || size > expected {
        return Err(PersistError::TrailingBytes { path: path.to_owned(), extra: size.max(got) - expected });
    }
    Ok(bytes)
}

/// Reads and decodes a framed file of `kind` ([`read_file`] then [`decode`]).
pub fn load<T: DeserializeOwned>(path: &Path, kind: Kind) -> Result<T> {
    let bytes = read_file(path)?;
    decode(path, kind, &bytes)
}

/// Encodes `value` as `kind` and writes it to `path` atomically ([`encode`], [`write_atomic`]).
pub fn save<T: Serialize + ?Sized>(path: &Path, kind: Kind, value: &T) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(PersistError::EmptyPath);
    }
    let bytes = encode(path, kind, value)?;
    write_atomic(path, &bytes)
}

/// The folder and file name of a target path (`"."` for a bare name).
fn split(path: &Path) -> Result<(PathBuf, String)> {
    if path.as_os_str().is_empty() {
        return Err(PersistError::EmptyPath);
    }
    let name = path.file_name().ok_or_else(|| PersistError::NotAFile { path: path.to_owned(), what: "folder path" })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// The temporary file [`write_atomic`] uses for `path` in this process: `.NAME.tmp-PID` in the
/// same folder.
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let (dir, name) = split(path)?;
    Ok(dir.join(format!(".{name}.tmp-{}", std::process::id())))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, `fsync`, rename over
/// `path`, then `fsync` of the folder (Unix). A crash leaves the old file or the new one, never a
/// partial file; the temporary file is removed on any error this process sees.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (dir, _) = split(path)?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_dir()
    {
        return Err(PersistError::NotAFile { path: path.to_owned(), what: "directory" });
    }
    let tmp = temp_path(path)?;
    let mut op = "create";
    let write = |op: &mut &'static str| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        *op = "write";
        f.write_all(bytes)?;
        *op = "fsync";
        f.sync_all()?;
        drop(f);
        *op = "rename";
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        {
            *op = "fsync of the folder";
            std::fs::File::open(&dir)?.sync_all()?;
        }
        Ok(())
    };
    write(&mut op).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        let at = if op == "create" { tmp.clone() } else { path.to_owned() };
        PersistError::Io { path: at, op, kind: e.kind() }
    })
}

/// Whether process `pid` may still be running: this process, or (Linux) one with a `/proc/PID`
/// entry. Without `/proc` every process is assumed running, so nothing is removed.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") { Path::new("/proc").join(pid.to_string()).exists() } else { true }
}

/// The process id of a temporary-file name `.NAME.tmp-PID`, if it is one.
fn temp_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    let (stem, pid) = rest.rsplit_once(".tmp-")?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temporary files `.NAME.tmp-PID` left in `dir` by killed writes ([`write_atomic`]
/// of processes that are no longer running; on systems without `/proc` nothing is removed).
/// Returns the removed paths. A missing folder has nothing to remove.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("persist-stale-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let stale = dir.join(".model.bin.tmp-4294967295"); // no process has this id
/// std::fs::write(&stale, b"half a file").unwrap();
/// let removed = persist::remove_stale_temps(&dir).unwrap();
/// assert_eq!(removed.len(), usize::from(cfg!(target_os = "linux")));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PersistError::Io { path: dir.to_owned(), op: "list", kind: e.kind() }),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_owner(&name.to_string_lossy()) else { continue };
        if process_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PersistError::Io { path, op: "remove", kind: e.kind() }),
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        assert_eq!(temp_owner(".ckpt.bin.tmp-123"), Some(123));
        assert_eq!(temp_owner(".a.tmp-1"), Some(1));
        assert_eq!(temp_owner("ckpt.bin.tmp-123"), None);
        assert_eq!(temp_owner(".ckpt.bin.tmp-"), None);
        assert_eq!(temp_owner(".ckpt.bin.tmp-12a"), None);
        assert_eq!(temp_owner("..tmp-12"), None);
        let t = temp_path(Path::new("dir/x.bin")).unwrap();
        assert_eq!(temp_owner(&t.file_name().unwrap().to_string_lossy()), Some(std::process::id()));
    }

    #[test]
    fn header_layout_is_the_documented_one() {
        const K: Kind = Kind::new("layout", 7);
        let b = encode(Path::new("x"), K, &0xABu8).unwrap();
        assert_eq!(&b[..8], b"EPSBFILE");
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..18], b"layout");
        assert!(b[18..28].iter().all(|&x| x == 0));
        assert_eq!(&b[28..32], &7u32.to_le_bytes());
        assert_eq!(&b[32..40], &1u64.to_le_bytes());
        assert_eq!(b.len(), HEADER_LEN + 1);
        assert_eq!(b[44], 0xAB);
        let want = crc32fast::hash(&[&b[8..40], &b[44..]].concat());
        assert_eq!(&b[40..44], &want.to_le_bytes());
    }
}
