//! MNIST in the IDX format (gzipped or raw), with magic, dimension and length checks.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};

/// Largest payload an IDX header may announce (1 GiB); larger headers are refused
/// before anything is allocated.
pub const IDX_MAX_BYTES: u64 = 1 << 30;

/// An IDX array of unsigned bytes (type code 0x08), the only type MNIST uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major data, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Hint of [`DatasetError::NotFound`] for a missing IDX file.
const IDX_HINT: &str = "give the path of an IDX file (MNIST: train-images-idx3-ubyte, train-labels-idx1-ubyte, \
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz)";

/// Reads an IDX file of unsigned bytes; gzip is detected from the file's first bytes.
///
/// What is not a regular file (a directory, a FIFO, `/dev/zero`) is refused before reading;
/// the magic number is checked before the rest is read, and no more than the header announces
/// (bounded by [`IDX_MAX_BYTES`]) is read.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    use std::io::BufRead;
    let path = path.as_ref();
    let (file, _) = crate::files::open_regular(path, IDX_HINT)?;
    let mut r = std::io::BufReader::new(file);
    let head = r.fill_buf().map_err(|e| io_err(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::bufread::MultiGzDecoder::new(r);
        read_idx_stream(&mut dec, path)
    } else {
        read_idx_stream(&mut r, path)
    }
}

/// Parses the bytes of an IDX file (gzipped or raw); `path` is only used in errors.
///
/// The header (magic `0x00 0x00 0x08 ndims`, then `ndims` big-endian `u32` sizes) is
/// checked, the announced size is bounded by [`IDX_MAX_BYTES`] before allocation, and
/// the payload must be exactly that long.
///
/// ```
/// use std::path::Path;
/// let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let a = datasets::parse_idx(&bytes, Path::new("x.idx")).unwrap();
/// assert_eq!(a.dims, vec![2, 3]);
/// assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
/// assert!(datasets::parse_idx(&bytes[..10], Path::new("x.idx")).is_err());
/// ```
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::read::MultiGzDecoder::new(bytes);
        read_idx_stream(&mut dec, path)
    } else {
        let mut r = bytes;
        read_idx_stream(&mut r, path)
    }
}

fn io_err(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io { path: path.to_path_buf(), source }
}

/// Reads up to `buf.len()` bytes; returns how many were read (short only at end of stream).
fn read_full(r: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    Ok(got)
}

fn read_idx_stream(r: &mut impl Read, path: &Path) -> Result<IdxArray> {
    let p = || path.to_path_buf();
    let mut magic = [0u8; 4];
    let got = read_full(r, &mut magic, path)?;
    if got < 4 {
        return Err(DatasetError::Truncated { path: p(), what: "IDX magic number", expected: 4, found: got as u64 });
    }
    let m = u32::from_be_bytes(magic);
    let ndims = usize::from(magic[3]);
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || ndims == 0 {
        return Err(DatasetError::BadMagic { path: p(), magic: m });
    }
    let mut hdr = vec![0u8; 4 * ndims];
    let got = read_full(r, &mut hdr, path)?;
    if got < hdr.len() {
        return Err(DatasetError::Truncated {
            path: p(),
            what: "IDX dimensions",
            expected: hdr.len() as u64,
            found: got as u64,
        });
    }
    let dims: Vec<usize> = hdr.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let claimed: u128 = dims.iter().map(|&d| d as u128).product();
    if claimed > u128::from(IDX_MAX_BYTES) {
        return Err(DatasetError::TooLarge { path: p(), claimed, limit: IDX_MAX_BYTES });
    }
    let len = claimed as usize;
    // Grow the buffer as data arrives, so a lying header cannot make us allocate
    // more than the stream really holds (plus one read block).
    let mut data = Vec::with_capacity(len.min(1 << 20));
    let got = r.take(len as u64).read_to_end(&mut data).map_err(|e| io_err(path, e))?;
    if got < len {
        return Err(DatasetError::Truncated { path: p(), what: "IDX data", expected: len as u64, found: got as u64 });
    }
    let mut extra = [0u8; 1];
    if read_full(r, &mut extra, path)? > 0 {
        return Err(DatasetError::TrailingBytes { path: p(), extra: 1 });
    }
    Ok(IdxArray { dims, data })
}

/// One split of MNIST: `len()` images of `rows x cols` bytes and their labels 0..=9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistSplit {
    /// Row-major images, `len() * rows * cols` bytes, 0 = background.
    pub images: Vec<u8>,
    /// Labels 0..=9.
    pub labels: Vec<u8>,
    /// Image height (28).
    pub rows: usize,
    /// Image width (28).
    pub cols: usize,
}

/// Label statistics of a split (what `cargo xtask dataset-info mnist` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelStats {
    /// Number of samples.
    pub samples: usize,
    /// Number of classes (10).
    pub classes: usize,
    /// Samples per class, indexed by class.
    pub label_counts: Vec<usize>,
}

impl MnistSplit {
    /// Number of images.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixels of image `i` (`rows * cols` bytes). Panics if `i >= len()`.
    #[must_use]
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }
    /// All images as `f32` in `[0, 1]` (pixel / 255), row-major.
    #[must_use]
    pub fn images_f32(&self) -> Vec<f32> {
        self.images.iter().map(|&p| f32::from(p) / 255.0).collect()
    }
    /// Samples, classes (10) and per-class counts.
    #[must_use]
    pub fn stats(&self) -> LabelStats {
        let mut label_counts = vec![0usize; 10];
        for &l in &self.labels {
            label_counts[usize::from(l).min(9)] += 1;
        }
        LabelStats { samples: self.len(), classes: 10, label_counts }
    }
}

/// MNIST: 60,000 training and 10,000 test images of 28 x 28 pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training split.
    pub train: MnistSplit,
    /// The test split.
    pub test: MnistSplit,
}

/// File stems of the four MNIST files.
const STEMS: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Finds `stem` in `dir` as `stem.gz`, `stem`, or with the `.idx3-ubyte` spelling.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [format!("{stem}.gz"), stem.to_string(), format!("{dotted}.gz"), dotted.clone()];
    for c in &candidates {
        let p = dir.join(c);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => return Ok(p),
            // There, but not a file: say so rather than "does not exist".
            Ok(m) => {
                return Err(DatasetError::NotAFile { path: p, what: crate::files::file_type_name(m.file_type()) });
            }
            Err(_) => {}
        }
    }
    Err(DatasetError::NotFound {
        path: dir.join(format!("{stem}.gz")),
        hint: "MNIST needs train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz) in one directory",
    })
}

fn load_split(images: &Path, labels: &Path) -> Result<MnistSplit> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(DatasetError::LengthMismatch {
            path: images.to_path_buf(),
            what: "number of IDX dimensions of an image file",
            expected: 3,
            found: img.dims.len() as u64,
        });
    }
    if lab.dims.len() != 1 {
        return Err(DatasetError::LengthMismatch {
            path: labels.to_path_buf(),
            what: "number of IDX dimensions of a label file",
            expected: 1,
            found: lab.dims.len() as u64,
        });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DatasetError::LengthMismatch {
            path: labels.to_path_buf(),
            what: "number of labels vs number of images",
            expected: img.dims[0] as u64,
            found: lab.dims[0] as u64,
        });
    }
    if let Some(&l) = lab.data.iter().find(|&&l| l > 9) {
        return Err(DatasetError::InvalidValue {
            path: labels.to_path_buf(),
            what: "MNIST label",
            value: l.to_string(),
            valid: "0..=9",
        });
    }
    Ok(MnistSplit { images: img.data, labels: lab.data, rows: img.dims[1], cols: img.dims[2] })
}

/// Loads MNIST from a directory holding the four IDX files (gzipped or raw).
///
/// ```no_run
/// let m = datasets::load_mnist("../shared/data/mnist").unwrap();
/// assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
/// ```
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<Mnist> {
    let dir = dir.as_ref();
    let f: Vec<PathBuf> = STEMS.iter().map(|s| find_file(dir, s)).collect::<Result<_>>()?;
    let (train, test) = (load_split(&f[0], &f[1])?, load_split(&f[2], &f[3])?);
    if (test.rows, test.cols) != (train.rows, train.cols) {
        return Err(DatasetError::InvalidValue {
            path: f[2].clone(),
            what: "test image size (rows x cols)",
            value: format!("{}x{}", test.rows, test.cols),
            valid: "the training images' size",
        });
    }
    Ok(Mnist { train, test })
}

impl Mnist {
    /// Checks that the images are `rows x cols` (the MNIST experiments need 28 x 28); the
    /// error names the training image file of `dir`'s layout.
    ///
    /// ```no_run
    /// let m = datasets::load_mnist("../shared/data/mnist").unwrap();
    /// m.check_geometry(28, 28).unwrap();
    /// ```
    pub fn check_geometry(&self, rows: usize, cols: usize) -> Result<()> {
        if (self.train.rows, self.train.cols) != (rows, cols) {
            return Err(DatasetError::InvalidValue {
                path: PathBuf::from(STEMS[0]),
                what: "MNIST image size (rows x cols)",
                value: format!("{}x{} (expected {rows}x{cols})", self.train.rows, self.train.cols),
                valid: "the image size the experiment is built for",
            });
        }
        Ok(())
    }
}

/// The development copy of MNIST, `../shared/data/mnist` relative to the current
/// directory or one of its ancestors, **only if it exists** (a user's clone has none):
/// experiments take the directory as an argument and fall back to this.
#[must_use]
pub fn default_mnist_dir() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("../shared/data/mnist"))
        .find(|d| d.join("train-labels-idx1-ubyte.gz").is_file() || d.join("train-labels-idx1-ubyte").is_file())
}

/// Encodes an IDX array of unsigned bytes (for tests and fixtures).
#[must_use]
pub fn encode_idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
