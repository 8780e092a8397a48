//! Loaders refuse what is not a regular file before reading, check the magic first, read with
//! bounds, and every damaged variant of a file (bit flips, truncation at any offset, appended
//! bytes) gives a typed error or content that is provably what the bytes say.

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::{DatasetError, SpikeLoadOptions, encode_idx, load_mnist, load_spike_h5, load_spike_h5_bytes, read_idx};
use proptest::prelude::*;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("datasets-hard-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

#[test]
fn special_files_are_refused_before_reading() {
    let dir = tmp_dir("special");
    let opts = SpikeLoadOptions::shd();
    assert!(matches!(read_idx(&dir), Err(DatasetError::NotAFile { what: "directory", .. })));
    assert!(matches!(load_spike_h5(&dir, &opts), Err(DatasetError::NotAFile { what: "directory", .. })));
    #[cfg(target_os = "linux")]
    {
        // would read until memory runs out
        let r = read_idx("/dev/zero");
        assert!(matches!(r, Err(DatasetError::NotAFile { what: "character device", .. })), "{r:?}");
        let r = load_spike_h5("/dev/zero", &opts);
        assert!(matches!(r, Err(DatasetError::NotAFile { what: "character device", .. })), "{r:?}");
        // would block forever
        let fifo = dir.join("fifo");
        if mkfifo(&fifo) {
            assert!(matches!(read_idx(&fifo), Err(DatasetError::NotAFile { what: "FIFO", .. })));
            assert!(matches!(load_spike_h5(&fifo, &opts), Err(DatasetError::NotAFile { what: "FIFO", .. })));
        }
    }
    // a missing file is still "not found", with the path
    let e = read_idx(dir.join("nope")).unwrap_err();
    assert!(matches!(e, DatasetError::NotFound { .. }) && e.to_string().contains("nope"), "{e}");
    // not HDF5 at all: refused from its first bytes
    let junk = dir.join("junk.h5");
    std::fs::write(&junk, vec![0u8; 5000]).unwrap();
    let r = load_spike_h5(&junk, &opts);
    assert!(matches!(r, Err(DatasetError::InvalidValue { what: "HDF5 signature", .. })), "{r:?}");
    std::fs::remove_dir_all(&dir).ok();
}

fn write_split(dir: &Path, prefix: &str, n: u32, rows: u32, cols: u32) {
    let (img, lab) = if prefix == "train" {
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    } else {
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    };
    std::fs::write(dir.join(img), encode_idx(&[n, rows, cols], &vec![3u8; (n * rows * cols) as usize])).unwrap();
    std::fs::write(dir.join(lab), encode_idx(&[n], &vec![1u8; n as usize])).unwrap();
}

#[test]
fn mnist_geometry_must_agree_and_folders_are_not_files() {
    let dir = tmp_dir("geometry");
    write_split(&dir, "train", 5, 28, 28);
    write_split(&dir, "test", 3, 14, 56);
    let e = load_mnist(&dir).unwrap_err();
    assert!(matches!(e, DatasetError::InvalidValue { what: "test image size (rows x cols)", .. }), "{e}");
    assert!(e.to_string().contains("14x56") && e.to_string().contains("t10k-images"), "{e}");
    write_split(&dir, "test", 3, 28, 28);
    let m = load_mnist(&dir).unwrap();
    m.check_geometry(28, 28).unwrap();
    write_split(&dir, "train", 5, 14, 14);
    write_split(&dir, "test", 3, 14, 14);
    let m = load_mnist(&dir).unwrap();
    let e = m.check_geometry(28, 28).unwrap_err();
    assert!(e.to_string().contains("14x14"), "{e}");
    // a folder where a file should be: named as such, not "does not exist"
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::create_dir(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_mnist(&dir).unwrap_err();
    assert!(matches!(e, DatasetError::NotAFile { what: "directory", .. }), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

fn idx_bytes() -> Vec<u8> {
    encode_idx(&[6, 3, 2], &(0..36).map(|v| (v * 7) as u8).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Raw IDX has no checksum: a flip is an error (header) or changes exactly the flipped
    /// data byte — the loader reads what the bytes say, nothing else.
    #[test]
    fn raw_idx_variants(at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>(), extra in 1usize..9) {
        let dir = tmp_dir("rawprop");
        let good = idx_bytes();
        let original = datasets::parse_idx(&good, Path::new("x")).unwrap();
        let p = dir.join("x.idx");
        let mut flipped = good.clone();
        let i = at.index(good.len());
        flipped[i] ^= 1 << bit;
        std::fs::write(&p, &flipped).unwrap();
        match read_idx(&p) {
            Err(_) => prop_assert!(i < 16, "a data flip at {i} was refused"),
            Ok(a) => {
                let mut expected = original.clone();
                prop_assert!(i >= 16, "a header flip at {i} was accepted: {:?}", a.dims);
                expected.data[i - 16] ^= 1 << bit;
                prop_assert_eq!(a, expected);
            }
        }
        std::fs::write(&p, &good[..cut.index(good.len())]).unwrap();
        prop_assert!(read_idx(&p).is_err());
        let mut longer = good.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        std::fs::write(&p, &longer).unwrap();
        let r = read_idx(&p);
        prop_assert!(matches!(r, Err(DatasetError::TrailingBytes { .. })), "{:?}", r);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Gzipped IDX: the gzip CRC-32 and length guard the data, so a flip is an error or leaves
    /// the content identical (e.g. a flip in the gzip header's time stamp).
    #[test]
    fn gzip_idx_variants(at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>(), extra in 1usize..9) {
        let dir = tmp_dir("gzprop");
        let good = gz(&idx_bytes());
        let original = datasets::parse_idx(&idx_bytes(), Path::new("x")).unwrap();
        let p = dir.join("x.idx.gz");
        let mut flipped = good.clone();
        flipped[at.index(good.len())] ^= 1 << bit;
        for variant in [flipped, good[..cut.index(good.len())].to_vec(), {
            let mut v = good.clone();
            v.extend(std::iter::repeat_n(0xA5u8, extra));
            v
        }] {
            std::fs::write(&p, &variant).unwrap();
            if let Ok(a) = read_idx(&p) {
                prop_assert_eq!(a, original.clone());
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// HDF5 fixtures (no checksum on raw data): every variant is a typed error, identical
    /// content, or a data set that passes its own structural checks — never a panic or hang.
    #[test]
    fn hdf5_variants(which in 0usize..4, at in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>(), extra in 1usize..64) {
        const GOOD: [&str; 4] = ["shd_tiny_f16.h5", "shd_tiny_f32_gzip.h5", "shd_tiny_f64_latest.h5", "ssc_tiny_f16.h5"];
        let opts = SpikeLoadOptions::default().t_end(f32::MAX);
        let path = fixture(GOOD[which]);
        let good = std::fs::read(&path).unwrap();
        let (original, _) = load_spike_h5_bytes(good.clone(), &path, &opts).unwrap();
        let mut flipped = good.clone();
        flipped[at.index(good.len())] ^= 1 << bit;
        let mut longer = good.clone();
        longer.extend(std::iter::repeat_n(0x5Au8, extra));
        for (k, variant) in [flipped, good[..cut.index(good.len())].to_vec(), longer].into_iter().enumerate() {
            if let Ok((d, _)) = load_spike_h5_bytes(variant, &path, &opts) {
                if k > 0 {
                    // cut or extended: either refused or exactly the same data
                    prop_assert_eq!(&d, &original);
                } else {
                    prop_assert!(d.check().is_ok());
                }
            }
        }
    }
}
