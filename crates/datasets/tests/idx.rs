//! IDX / MNIST reader: files written by the test itself (gzipped and raw), plus fuzzing.

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::{DatasetError, encode_idx, load_mnist, parse_idx};
use proptest::prelude::*;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("datasets-idx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a tiny MNIST-like directory: `n_train`/`n_test` images of 4x3, label i % 10.
fn write_mnist(dir: &Path, n_train: u32, n_test: u32, gzip: bool) {
    let files = [
        (
            "train-images-idx3-ubyte",
            encode_idx(&[n_train, 4, 3], &(0..n_train * 12).map(|v| v as u8).collect::<Vec<_>>()),
        ),
        ("train-labels-idx1-ubyte", encode_idx(&[n_train], &(0..n_train).map(|v| (v % 10) as u8).collect::<Vec<_>>())),
        ("t10k-images-idx3-ubyte", encode_idx(&[n_test, 4, 3], &vec![7u8; (n_test * 12) as usize])),
        ("t10k-labels-idx1-ubyte", encode_idx(&[n_test], &(0..n_test).map(|v| (v % 3) as u8).collect::<Vec<_>>())),
    ];
    for (name, bytes) in files {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn mnist_raw_and_gzip_load_identically() {
    let (a, b) = (tmp_dir("raw"), tmp_dir("gz"));
    write_mnist(&a, 25, 7, false);
    write_mnist(&b, 25, 7, true);
    let ma = load_mnist(&a).unwrap();
    let mb = load_mnist(&b).unwrap();
    assert_eq!(ma, mb);
    assert_eq!((ma.train.len(), ma.test.len(), ma.train.rows, ma.train.cols), (25, 7, 4, 3));
    assert_eq!(ma.train.image(1), &[12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
    assert_eq!(ma.train.stats().label_counts, vec![3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
    assert_eq!(ma.test.stats().label_counts, vec![3, 2, 2, 0, 0, 0, 0, 0, 0, 0]);
    let f = ma.train.images_f32();
    assert!((f[12] - 12.0 / 255.0).abs() < 1e-7 && f.iter().all(|v| (0.0..=1.0).contains(v)));
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn mnist_label_image_count_mismatch_is_an_error() {
    let d = tmp_dir("mismatch");
    write_mnist(&d, 10, 5, false);
    std::fs::write(d.join("train-labels-idx1-ubyte"), encode_idx(&[9], &[0; 9])).unwrap();
    let err = load_mnist(&d).unwrap_err();
    assert!(matches!(err, DatasetError::LengthMismatch { .. }), "{err}");
    assert!(err.to_string().contains("train-labels-idx1-ubyte"));
    std::fs::write(d.join("train-labels-idx1-ubyte"), encode_idx(&[10], &[11; 10])).unwrap();
    assert!(matches!(load_mnist(&d).unwrap_err(), DatasetError::InvalidValue { .. }));
    std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap();
    let err = load_mnist(&d).unwrap_err();
    assert!(matches!(err, DatasetError::NotFound { .. }) && err.to_string().contains("t10k-images"), "{err}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn header_checks() {
    let p = Path::new("h.idx");
    // bad magic: type 0x0D (float) is not accepted, nor a non-zero first byte
    assert!(matches!(parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], p), Err(DatasetError::BadMagic { .. })));
    assert!(matches!(parse_idx(&[1, 0, 8, 1, 0, 0, 0, 0], p), Err(DatasetError::BadMagic { .. })));
    assert!(matches!(parse_idx(&[0, 0, 8, 0], p), Err(DatasetError::BadMagic { .. })));
    // a lying header: 10^12 bytes claimed, refused before allocating
    let lie = encode_idx(&[1_000_000, 1_000_000], &[1, 2, 3]);
    let err = parse_idx(&lie, p).unwrap_err();
    assert!(matches!(err, DatasetError::TooLarge { claimed: 1_000_000_000_000, .. }), "{err}");
    let err = parse_idx(&gz(&lie), p).unwrap_err();
    assert!(matches!(err, DatasetError::TooLarge { .. }));
    // a header under the limit but more than the stream holds: truncated
    let short = encode_idx(&[1000, 1000], &[1, 2, 3]);
    assert!(matches!(parse_idx(&short, p), Err(DatasetError::Truncated { found: 3, .. })));
    // trailing bytes
    let mut long = encode_idx(&[2], &[1, 2]);
    long.push(9);
    assert!(matches!(parse_idx(&long, p), Err(DatasetError::TrailingBytes { .. })));
    assert!(parse_idx(&[], p).unwrap_err().to_string().contains("h.idx"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip(dims in proptest::collection::vec(0u32..6, 1..4), seed in any::<u8>(), gzip in any::<bool>()) {
        let n: u32 = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let mut b = encode_idx(&dims, &data);
        if gzip { b = gz(&b); }
        let a = parse_idx(&b, Path::new("r.idx")).unwrap();
        prop_assert_eq!(a.dims, dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
        prop_assert_eq!(a.data, data);
    }

    #[test]
    fn truncated_bit_flipped_random_never_panic(
        dims in proptest::collection::vec(0u32..8, 1..4),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        gzip in any::<bool>(),
        random in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let n: u32 = dims.iter().product();
        let mut b = encode_idx(&dims, &vec![5u8; n as usize]);
        if gzip { b = gz(&b); }
        let cut = cut.index(b.len() + 1);
        let mut t = b[..cut].to_vec();
        if !t.is_empty() {
            let len = t.len();
            for (i, bit) in &flips { t[i.index(len)] ^= 1 << bit; }
        }
        for bytes in [t, random] {
            if let Err(e) = parse_idx(&bytes, Path::new("fuzz.idx")) {
                prop_assert!(e.to_string().contains("fuzz.idx"));
            }
        }
        if cut < b.len() && flips.is_empty() {
            prop_assert!(parse_idx(&b[..cut], Path::new("fuzz.idx")).is_err());
        }
    }
}

/// The real MNIST files, when present on this machine (not in a user's clone): run with
/// `cargo test -p datasets --release -- --ignored`.
#[test]
#[ignore = "needs ../shared/data/mnist"]
fn real_mnist_label_counts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    let m = load_mnist(&dir).unwrap();
    assert_eq!(m.train.stats().label_counts, vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    assert_eq!(m.test.stats().label_counts, vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert_eq!((m.train.rows, m.train.cols), (28, 28));
}
