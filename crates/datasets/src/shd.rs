//! SHD / SSC loader: the Spiking Heidelberg Digits / Spiking Speech Commands HDF5 layout.
//!
//! Layout read (as written by h5py): `/spikes/times` — variable-length float arrays
//! (float16, float32 or float64), seconds; `/spikes/units` — variable-length unsigned
//! integer arrays; `/labels` — unsigned integers of any width; `/extra/speaker` —
//! optional. Contiguous, chunked + gzip and newest-format files are read by the pure-Rust
//! [`hdf5_reader`]; no system HDF5 library is needed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5_reader::messages::datatype::VarLenKind;
use hdf5_reader::{ByteOrder, Dataset, Datatype, Hdf5File, OpenOptions};

use crate::error::{DatasetError, Result};
use crate::spikes::SpikeDataset;

/// Where to get the real files (printed when a file is missing).
pub const SHD_DOWNLOAD_HINT: &str = "the SHD/SSC HDF5 files (shd_train.h5, shd_test.h5, ssc_train.h5, ...) can be downloaded from https://zenkelab.org/datasets/ (gunzip them after download)";

/// Largest single read (labels, or the table of variable-length references) the loader
/// lets the HDF5 reader allocate: 1 GiB, i.e. 67 million samples. A header that claims
/// more is refused before allocating.
pub const MAX_READ_BYTES: usize = 1 << 30;

/// Largest number of classes the loader accepts (labels must be below it).
pub const MAX_CLASSES: usize = 65536;

/// Number of input channels in SHD and SSC.
pub const SHD_UNITS: usize = 700;
/// Number of classes of SHD.
pub const SHD_CLASSES: usize = 20;
/// Number of classes of SSC.
pub const SSC_CLASSES: usize = 35;

/// Options of the SHD/SSC loader.
///
/// | field | default | meaning | valid |
/// |---|---|---|---|
/// | `t_end` | 1.0 s | events at or after this time are dropped | finite, > 0 |
/// | `num_units` | 700 | channels; a unit `>= num_units` is an error | 1..=65536 |
/// | `num_classes` | `None` | classes; `None` = largest label + 1 | `1..=65536`; a label `>=` it is an error |
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeLoadOptions {
    /// Events at or after this time (seconds) are dropped. Default 1.0.
    pub t_end: f32,
    /// Number of channels. Default 700.
    pub num_units: usize,
    /// Number of classes; `None` infers largest label + 1.
    pub num_classes: Option<usize>,
}

impl Default for SpikeLoadOptions {
    fn default() -> Self {
        SpikeLoadOptions { t_end: 1.0, num_units: SHD_UNITS, num_classes: None }
    }
}

impl SpikeLoadOptions {
    /// Options for SHD: 700 units, 20 classes, events before 1 s.
    #[must_use]
    pub fn shd() -> Self {
        SpikeLoadOptions { num_classes: Some(SHD_CLASSES), ..Self::default() }
    }
    /// Options for SSC: 700 units, 35 classes, events before 1 s.
    #[must_use]
    pub fn ssc() -> Self {
        SpikeLoadOptions { num_classes: Some(SSC_CLASSES), ..Self::default() }
    }
    /// Sets `t_end` (seconds).
    #[must_use]
    pub fn t_end(mut self, t_end: f32) -> Self {
        self.t_end = t_end;
        self
    }
    /// Checks the ranges in the table above.
    pub fn check(&self) -> Result<()> {
        if !(self.t_end.is_finite() && self.t_end > 0.0) {
            return Err(DatasetError::param("t_end", self.t_end, "must be finite and > 0"));
        }
        if self.num_units == 0 || self.num_units > usize::from(u16::MAX) + 1 {
            return Err(DatasetError::param("num_units", self.num_units, "must be in 1..=65536"));
        }
        if let Some(c) = self.num_classes.filter(|&c| c == 0 || c > MAX_CLASSES) {
            return Err(DatasetError::param("num_classes", c, "must be in 1..=65536"));
        }
        Ok(())
    }
}

/// Optional per-sample metadata from `/extra`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpikeExtra {
    /// `/extra/speaker`, when present and an unsigned integer data set of the right length.
    pub speaker: Option<Vec<u32>>,
}

/// Loads an SHD file (20 classes, 700 units, events before 1 s).
///
/// A missing file gives [`DatasetError::NotFound`] with a download hint.
///
/// ```
/// let err = datasets::load_shd("/no/such/shd_train.h5").unwrap_err();
/// assert!(err.to_string().contains("zenkelab.org"));
/// ```
pub fn load_shd(path: impl AsRef<Path>) -> Result<SpikeDataset> {
    load_spike_h5(path, &SpikeLoadOptions::shd()).map(|(d, _)| d)
}

/// Loads an SSC file (35 classes, 700 units, events before 1 s).
pub fn load_ssc(path: impl AsRef<Path>) -> Result<SpikeDataset> {
    load_spike_h5(path, &SpikeLoadOptions::ssc()).map(|(d, _)| d)
}

/// Loads a file of the SHD/SSC layout with explicit options; also returns `/extra` data.
pub fn load_spike_h5(path: impl AsRef<Path>, opts: &SpikeLoadOptions) -> Result<(SpikeDataset, SpikeExtra)> {
    let path = path.as_ref();
    opts.check()?;
    let bytes = read_hdf5_file(path)?;
    load_spike_h5_bytes(bytes, path, opts)
}

/// The HDF5 format signature; the superblock starts at byte 0 or, after a user block, at
/// 512, 1024, 2048, ... bytes.
const HDF5_SIGNATURE: [u8; 8] = *b"\x89HDF\r\n\x1a\n";

/// Reads an HDF5 file: refuses what is not a regular file before reading, looks for the HDF5
/// signature before reading the rest, and reads no more than the file's size.
fn read_hdf5_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let (mut file, size) = crate::files::open_regular(path, SHD_DOWNLOAD_HINT)?;
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let mut found = false;
    let mut at = 0u64;
    while at.saturating_add(8) <= size {
        let mut sig = [0u8; 8];
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        file.read_exact(&mut sig).map_err(io)?;
        if sig == HDF5_SIGNATURE {
            found = true;
            break;
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    if !found {
        return Err(DatasetError::InvalidValue {
            path: path.to_path_buf(),
            what: "HDF5 signature",
            value: "absent".to_string(),
            valid: "\\x89HDF\\r\\n\\x1a\\n at byte 0, 512, 1024, ...",
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let cap = usize::try_from(size).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(cap);
    file.take(size).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Parses the bytes of an SHD/SSC-layout HDF5 file; `path` is only used in errors.
///
/// Never panics on any input: malformed bytes give a typed error naming `path`.
pub fn load_spike_h5_bytes(bytes: Vec<u8>, path: &Path, opts: &SpikeLoadOptions) -> Result<(SpikeDataset, SpikeExtra)> {
    opts.check()?;
    // The reader is designed not to panic on corrupt input; this is a second line of
    // defence so that a bug there still becomes an error naming the file.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(bytes, path, opts)));
    match result {
        Ok(r) => r,
        Err(_) => Err(DatasetError::InvalidValue {
            path: path.to_path_buf(),
            what: "HDF5 structure",
            value: "the HDF5 reader panicked on this file".to_string(),
            valid: "a well-formed HDF5 file",
        }),
    }
}

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn p(&self) -> PathBuf {
        self.path.to_path_buf()
    }
    fn h5(&self, source: hdf5_reader::error::Error) -> DatasetError {
        DatasetError::Hdf5 { path: self.p(), source }
    }
    fn dataset(&self, file: &Hdf5File, name: &'static str) -> Result<Dataset> {
        file.dataset(name).map_err(|e| {
            if is_absent(file, name) { DatasetError::MissingDataset { path: self.p(), name } } else { self.h5(e) }
        })
    }
}

/// Whether `name` (an absolute path like `/spikes/units`) is absent from a readable file.
fn is_absent(file: &Hdf5File, name: &str) -> bool {
    let mut group = match file.root_group() {
        Ok(g) => g,
        Err(_) => return false,
    };
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    for (k, part) in parts.iter().enumerate() {
        let Ok((groups, sets)) = group.member_names() else {
            return false;
        };
        let last = k + 1 == parts.len();
        if last {
            return !sets.iter().any(|s| s == part) && !groups.iter().any(|s| s == part);
        }
        if !groups.iter().any(|g| g == part) {
            return true;
        }
        group = match group.group(part) {
            Ok(g) => g,
            Err(_) => return false,
        };
    }
    false
}

fn describe(dt: &Datatype) -> String {
    format!("{dt:?}")
}

/// Decodes unsigned integers of width 1, 2, 4 or 8 bytes.
fn decode_uint(bytes: &[u8], size: usize, order: ByteOrder, out: &mut Vec<u64>) {
    for c in bytes.chunks_exact(size) {
        let mut buf = [0u8; 8];
        match order {
            ByteOrder::LittleEndian => {
                buf[..size].copy_from_slice(c);
                out.push(u64::from_le_bytes(buf));
            }
            ByteOrder::BigEndian => {
                buf[8 - size..].copy_from_slice(c);
                out.push(u64::from_be_bytes(buf));
            }
        }
    }
}

/// Decodes channel indices of width 1, 2, 4 or 8 bytes into `out`; returns the first value
/// that is `>= num_units` (or negative for signed types) as an error.
fn decode_units(
    bytes: &[u8],
    size: usize,
    order: ByteOrder,
    signed: bool,
    num_units: usize,
    out: &mut Vec<u16>,
) -> std::result::Result<(), u64> {
    let le = matches!(order, ByteOrder::LittleEndian);
    let limit = num_units as u64;
    // Signed types: reinterpreted as unsigned of the same width, a negative value is huge
    // and fails the `< num_units` test (num_units <= 65536 < 2^(8 size - 1) for size >= 4;
    // for size 1 and 2 the sign bit is checked explicitly).
    let sign_bit = if signed { 1u64 << (8 * size - 1) } else { u64::MAX };
    let check = |v: u64| if v < limit && (v & sign_bit == 0 || !signed) { Ok(v as u16) } else { Err(v) };
    out.reserve(bytes.len() / size);
    match (size, le) {
        (1, _) => {
            for &b in bytes {
                out.push(check(u64::from(b))?);
            }
        }
        (2, true) => {
            // The SHD case: decode without branches (vectorises), then check the maximum.
            let start = out.len();
            out.extend(bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
            let max = out[start..].iter().copied().fold(0u16, u16::max);
            if u64::from(max) >= limit || (signed && max & 0x8000 != 0) {
                let bad = out[start..].iter().find(|&&u| check(u64::from(u)).is_err()).copied().unwrap_or(max);
                return Err(u64::from(bad));
            }
        }
        (2, false) => {
            for c in bytes.chunks_exact(2) {
                out.push(check(u64::from(u16::from_be_bytes([c[0], c[1]])))?);
            }
        }
        (4, true) => {
            for c in bytes.chunks_exact(4) {
                out.push(check(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))?);
            }
        }
        (4, false) => {
            for c in bytes.chunks_exact(4) {
                out.push(check(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))?);
            }
        }
        _ => {
            let mut v = Vec::with_capacity(bytes.len() / size);
            decode_uint(bytes, size, order, &mut v);
            for x in v {
                out.push(check(x)?);
            }
        }
    }
    Ok(())
}

fn decode_float(bytes: &[u8], size: usize, order: ByteOrder, out: &mut Vec<f32>) {
    let le = matches!(order, ByteOrder::LittleEndian);
    match size {
        2 => {
            use half::slice::HalfFloatSliceExt;
            let bits: Vec<half::f16> = bytes
                .chunks_exact(2)
                .map(|c| {
                    let b = [c[0], c[1]];
                    half::f16::from_bits(if le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
                })
                .collect();
            let start = out.len();
            out.resize(start + bits.len(), 0.0);
            bits.convert_to_f32_slice(&mut out[start..]);
        }
        4 => out.extend(bytes.chunks_exact(4).map(|c| {
            let b = [c[0], c[1], c[2], c[3]];
            if le { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) }
        })),
        _ => out.extend(bytes.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            (if le { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) }) as f32
        })),
    }
}

fn uint_type(ctx: &Ctx, dt: &Datatype, name: &'static str) -> Result<(usize, ByteOrder)> {
    match dt {
        Datatype::FixedPoint { size, signed, byte_order } if matches!(size, 1 | 2 | 4 | 8) => {
            // h5py writes non-negative labels; accept signed integer types and refuse negatives later.
            let _ = signed;
            Ok((usize::from(*size), *byte_order))
        }
        other => Err(DatasetError::UnsupportedType {
            path: ctx.p(),
            name,
            found: describe(other),
            expected: "integers of 1, 2, 4 or 8 bytes",
        }),
    }
}

fn is_signed(dt: &Datatype) -> bool {
    matches!(dt, Datatype::FixedPoint { signed: true, .. })
}

/// Reads a 1-D data set of (unsigned) integers.
fn read_uints(ctx: &Ctx, ds: &Dataset, name: &'static str) -> Result<Vec<u64>> {
    let (size, order) = uint_type(ctx, ds.dtype(), name)?;
    let raw = ds.read_raw_bytes().map_err(|e| ctx.h5(e))?;
    let mut out = Vec::with_capacity(raw.len() / size);
    decode_uint(&raw, size, order, &mut out);
    if is_signed(ds.dtype()) {
        let bits = 8 * size as u32;
        if let Some(&v) = out.iter().find(|&&v| bits < 64 && (v >> (bits - 1)) & 1 == 1 || bits == 64 && (v as i64) < 0)
        {
            return Err(DatasetError::InvalidValue {
                path: ctx.p(),
                what: name,
                value: format!("negative (raw {v:#x})"),
                valid: "non-negative integers",
            });
        }
    }
    Ok(out)
}

/// The base type of a variable-length sequence data set.
fn vlen_base<'d>(ctx: &Ctx, ds: &'d Dataset, name: &'static str) -> Result<&'d Datatype> {
    match ds.dtype() {
        Datatype::VarLen { base, kind: VarLenKind::Sequence, .. } => Ok(base),
        other => Err(DatasetError::UnsupportedType {
            path: ctx.p(),
            name,
            found: describe(other),
            expected: "a variable-length sequence",
        }),
    }
}

fn parse(bytes: Vec<u8>, path: &Path, opts: &SpikeLoadOptions) -> Result<(SpikeDataset, SpikeExtra)> {
    let ctx = Ctx { path };
    let file_len = bytes.len();
    let shared = SharedBytes(Arc::new(bytes));
    let file = Hdf5File::from_owner(shared.clone(), OpenOptions::default().with_max_read_bytes(MAX_READ_BYTES))
        .map_err(|e| ctx.h5(e))?;
    let sb = file.superblock();
    let mut heap = HeapIndex {
        bytes: shared.as_ref(),
        base: sb.base_address,
        offset_size: usize::from(sb.offset_size),
        length_size: usize::from(sb.length_size),
        collections: HashMap::new(),
    };
    let times_ds = ctx.dataset(&file, "/spikes/times")?;
    let units_ds = ctx.dataset(&file, "/spikes/units")?;
    let labels_ds = ctx.dataset(&file, "/labels")?;

    // Types first, so that a wrong type is reported before anything large is read.
    let (t_size, t_order) = match vlen_base(&ctx, &times_ds, "/spikes/times")? {
        Datatype::FloatingPoint { size, byte_order } if matches!(size, 2 | 4 | 8) => (usize::from(*size), *byte_order),
        other => {
            return Err(DatasetError::UnsupportedType {
                path: ctx.p(),
                name: "/spikes/times",
                found: describe(other),
                expected: "variable-length float16, float32 or float64",
            });
        }
    };
    let units_base = vlen_base(&ctx, &units_ds, "/spikes/units")?.clone();
    let (u_size, u_order) = uint_type(&ctx, &units_base, "/spikes/units")?;
    let u_signed = is_signed(&units_base);

    let labels = read_uints(&ctx, &labels_ds, "/labels")?;
    let n = labels.len();
    let n_times = times_ds.num_elements().map_err(|e| ctx.h5(e))?;
    let n_units = units_ds.num_elements().map_err(|e| ctx.h5(e))?;
    if n_times != n as u64 {
        return Err(DatasetError::LengthMismatch {
            path: ctx.p(),
            what: "number of samples in /spikes/times vs /labels",
            expected: n as u64,
            found: n_times,
        });
    }
    if n_units != n as u64 {
        return Err(DatasetError::LengthMismatch {
            path: ctx.p(),
            what: "number of samples in /spikes/units vs /labels",
            expected: n as u64,
            found: n_units,
        });
    }
    let num_classes = match opts.num_classes {
        Some(c) => c,
        None => match labels.iter().max() {
            None => 1,
            Some(&m) if m < MAX_CLASSES as u64 => m as usize + 1,
            Some(&m) => {
                return Err(DatasetError::InvalidValue {
                    path: ctx.p(),
                    what: "/labels",
                    value: m.to_string(),
                    valid: "labels < 65536",
                });
            }
        },
    };
    if let Some(&l) = labels.iter().find(|&&l| l >= num_classes as u64) {
        return Err(DatasetError::InvalidValue {
            path: ctx.p(),
            what: "/labels",
            value: l.to_string(),
            valid: "labels < number of classes",
        });
    }

    let t_refs = times_ds.read_raw_bytes().map_err(|e| ctx.h5(e))?;
    let u_refs = units_ds.read_raw_bytes().map_err(|e| ctx.h5(e))?;
    let rs_t = times_ds.vlen_reference_size();
    let rs_u = units_ds.vlen_reference_size();
    if t_refs.len() != n * rs_t || u_refs.len() != n * rs_u {
        return Err(DatasetError::LengthMismatch {
            path: ctx.p(),
            what: "bytes of variable-length references",
            expected: (n * rs_t) as u64,
            found: t_refs.len() as u64,
        });
    }

    let mut out = SpikeDataset::empty(opts.num_units, num_classes);
    // Reserve the announced number of events (the first 4 bytes of each reference), but
    // never more than the file could hold, so a lying reference cannot force a huge allocation.
    let announced: u64 =
        t_refs.chunks_exact(rs_t).map(|r| u64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]]))).sum();
    let cap = announced.min((file_len / t_size) as u64) as usize;
    out.times.reserve(cap);
    out.units.reserve(cap);
    out.labels.reserve(n);
    out.offsets.reserve(n);
    let mut t_buf: Vec<f32> = Vec::new();
    let mut u_buf: Vec<u16> = Vec::new();
    for i in 0..n {
        let (t_ref, u_ref) = (&t_refs[i * rs_t..(i + 1) * rs_t], &u_refs[i * rs_u..(i + 1) * rs_u]);
        // Fast path: slice the global heap in place; anything unusual goes to the reader,
        // which resolves it or says what is wrong.
        let tb: Cow<'_, [u8]> = match heap.resolve(t_ref, t_size) {
            Some(b) => Cow::Borrowed(b),
            None => Cow::Owned(times_ds.resolve_vlen_reference_bytes(t_ref, t_size).map_err(|e| ctx.h5(e))?),
        };
        let ub: Cow<'_, [u8]> = match heap.resolve(u_ref, u_size) {
            Some(b) => Cow::Borrowed(b),
            None => Cow::Owned(units_ds.resolve_vlen_reference_bytes(u_ref, u_size).map_err(|e| ctx.h5(e))?),
        };
        let (nt, nu) = (tb.len() / t_size, ub.len() / u_size);
        if nt != nu {
            return Err(DatasetError::LengthMismatch {
                path: ctx.p(),
                what: "events in /spikes/times vs /spikes/units of one sample",
                expected: nt as u64,
                found: nu as u64,
            });
        }
        t_buf.clear();
        u_buf.clear();
        decode_float(&tb, t_size, t_order, &mut t_buf);
        if let Err(u) = decode_units(&ub, u_size, u_order, u_signed, opts.num_units, &mut u_buf) {
            return Err(DatasetError::InvalidValue {
                path: ctx.p(),
                what: "/spikes/units",
                value: format!("{u} (sample {i})"),
                valid: "units < num_units (700 for SHD/SSC)",
            });
        }
        // Branch-free test first (vectorises); look for the culprit only on failure.
        let all_ok = t_buf.iter().fold(true, |ok, &t| ok & (t.is_finite() & (t >= 0.0)));
        if let Some(t) = (!all_ok).then(|| t_buf.iter().find(|t| !(t.is_finite() && **t >= 0.0))).flatten() {
            return Err(DatasetError::InvalidValue {
                path: ctx.p(),
                what: "/spikes/times",
                value: format!("{t} (sample {i})"),
                valid: "finite times >= 0 s",
            });
        }
        let start = out.times.len();
        if t_buf.is_sorted() {
            // The usual case: keep the prefix before t_end in one copy.
            let k = t_buf.partition_point(|&t| t < opts.t_end);
            out.times.extend_from_slice(&t_buf[..k]);
            out.units.extend_from_slice(&u_buf[..k]);
        } else {
            for (&t, &u) in t_buf.iter().zip(&u_buf) {
                if t < opts.t_end {
                    out.times.push(t);
                    out.units.push(u);
                }
            }
        }
        let s = &mut out.times[start..];
        if !s.is_sorted() {
            let mut idx: Vec<usize> = (0..s.len()).collect();
            idx.sort_by(|&a, &b| s[a].total_cmp(&s[b]));
            let ts: Vec<f32> = idx.iter().map(|&k| out.times[start + k]).collect();
            let us: Vec<u16> = idx.iter().map(|&k| out.units[start + k]).collect();
            out.times[start..].copy_from_slice(&ts);
            out.units[start..].copy_from_slice(&us);
        }
        out.labels.push(labels[i] as u32);
        out.offsets.push(out.times.len());
    }

    let mut extra = SpikeExtra::default();
    if let Ok(v) =
        file.dataset("/extra/speaker").map_err(|e| ctx.h5(e)).and_then(|sp| read_uints(&ctx, &sp, "/extra/speaker"))
        && v.len() == n
    {
        extra.speaker = Some(v.into_iter().map(|x| x as u32).collect());
    }
    tracing::debug!(path = %path.display(), samples = n, events = out.times.len(), "loaded spike file");
    Ok((out, extra))
}

/// The file's bytes, shared between the HDF5 reader and the global-heap fast path.
#[derive(Clone)]
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// (object index, data start, data length) of the objects of one global heap collection.
type ObjectTable = Vec<(u16, usize, usize)>;

/// Resolves variable-length references by slicing global heap collections in the file's
/// bytes, without copying. Returns `None` for anything it does not fully understand or
/// that fails a bound check; the caller then asks the HDF5 reader, which either resolves
/// the reference or reports what is wrong.
struct HeapIndex<'a> {
    bytes: &'a [u8],
    base: u64,
    offset_size: usize,
    length_size: usize,
    /// Collection address -> its object table, `None` if it could not be parsed.
    collections: HashMap<u64, Option<ObjectTable>>,
}

fn le_uint(b: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = b.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(buf)
}

impl<'a> HeapIndex<'a> {
    fn resolve(&mut self, reference: &[u8], elem: usize) -> Option<&'a [u8]> {
        let os = self.offset_size;
        if reference.len() != 8 + os || !matches!(os, 2 | 4 | 8) {
            return None;
        }
        let count = le_uint(&reference[..4]);
        let addr_bytes = &reference[4..4 + os];
        let index = le_uint(&reference[4 + os..]);
        if addr_bytes.iter().all(|&b| b == 0xff) || index == 0 {
            return None;
        }
        let addr = le_uint(addr_bytes);
        let index = u16::try_from(index).ok()?;
        let need = usize::try_from(count).ok()?.checked_mul(elem)?;
        let (bytes, base, ls) = (self.bytes, self.base, self.length_size);
        let table = self
            .collections
            .entry(addr)
            .or_insert_with(|| base.checked_add(addr).and_then(|a| parse_collection(bytes, a, ls)))
            .as_ref()?;
        let &(_, start, len) = table.iter().find(|o| o.0 == index)?;
        if need > len {
            return None;
        }
        bytes.get(start..start.checked_add(need)?)
    }
}

/// Parses the object table of the global heap collection at absolute position `pos`
/// (signature `GCOL`, version 1, collection size, then objects: index u16, reference
/// count u16, 4 reserved bytes, size, data padded to 8 bytes; index 0 ends the list).
fn parse_collection(bytes: &[u8], pos: u64, ls: usize) -> Option<ObjectTable> {
    if !matches!(ls, 2 | 4 | 8) {
        return None;
    }
    let pos = usize::try_from(pos).ok()?;
    let head = bytes.get(pos..pos.checked_add(8 + ls)?)?;
    if &head[..4] != b"GCOL" || head[4] != 1 {
        return None;
    }
    let size = usize::try_from(le_uint(&head[8..8 + ls])).ok()?;
    let end = pos.checked_add(size)?.min(bytes.len());
    let mut p = pos + 8 + ls;
    let mut out = Vec::new();
    while p.checked_add(8 + ls)? <= end {
        let index = le_uint(&bytes[p..p + 2]) as u16;
        if index == 0 {
            break;
        }
        let len = usize::try_from(le_uint(&bytes[p + 8..p + 8 + ls])).ok()?;
        let start = p + 8 + ls;
        let stop = start.checked_add(len)?;
        if stop > end {
            return None;
        }
        out.push((index, start, len));
        p = stop.checked_add(len.wrapping_neg() & 7)?;
    }
    Some(out)
}
