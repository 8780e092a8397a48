//! SHD/SSC loader against the committed fixture files and their manifest.

use std::path::{Path, PathBuf};

use datasets::{DatasetError, SpikeLoadOptions, load_spike_h5, load_spike_h5_bytes};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn manifest() -> serde_json::Value {
    let s = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

const GOOD: [&str; 4] = ["shd_tiny_f16.h5", "shd_tiny_f32_gzip.h5", "shd_tiny_f64_latest.h5", "ssc_tiny_f16.h5"];

/// Options that keep every event (the manifest counts all of them).
fn keep_all() -> SpikeLoadOptions {
    SpikeLoadOptions::default().t_end(f32::MAX)
}

#[test]
fn good_files_match_manifest() {
    let m = manifest();
    for name in GOOD {
        let e = &m[name];
        let (d, _) = load_spike_h5(fixture(name), &keep_all()).unwrap();
        let n = e["n_samples"].as_u64().unwrap() as usize;
        assert_eq!(d.len(), n, "{name}");
        for i in 0..n {
            let s = d.sample(i);
            assert_eq!(u64::from(s.label), e["labels"][i].as_u64().unwrap(), "{name} label {i}");
            assert_eq!(s.len() as u64, e["events"][i].as_u64().unwrap(), "{name} events {i}");
            for k in 0..3.min(s.len()) {
                let t = e["first_times"][i][k].as_f64().unwrap();
                assert!((f64::from(s.times[k]) - t).abs() <= 1e-6 * t.abs().max(1e-3), "{name} t {i} {k}");
                assert_eq!(u64::from(s.units[k]), e["first_units"][i][k].as_u64().unwrap());
            }
            let su: u64 = s.units.iter().map(|&u| u64::from(u)).sum();
            assert_eq!(su, e["sum_units"][i].as_u64().unwrap(), "{name} sum units {i}");
            let st: f64 = s.times.iter().map(|&t| f64::from(t)).sum();
            let want = e["sum_times"][i].as_f64().unwrap();
            assert!((st - want).abs() <= 1e-4 * want.abs().max(1.0), "{name} sum times {i}: {st} vs {want}");
            assert!(s.times.is_sorted());
        }
        d.check().unwrap();
    }
}

#[test]
fn default_options_drop_events_at_or_after_one_second() {
    for name in GOOD {
        let (all, _) = load_spike_h5(fixture(name), &keep_all()).unwrap();
        let (cut, _) = load_spike_h5(fixture(name), &SpikeLoadOptions::default()).unwrap();
        let expected = all.times.iter().filter(|&&t| t < 1.0).count();
        assert_eq!(cut.num_events(), expected);
        assert!(cut.times.iter().all(|&t| t < 1.0));
        let (half, _) = load_spike_h5(fixture(name), &SpikeLoadOptions::default().t_end(0.5)).unwrap();
        assert_eq!(half.num_events(), all.times.iter().filter(|&&t| t < 0.5).count());
    }
}

#[test]
fn shd_and_ssc_class_counts() {
    let d = datasets::load_shd(fixture("shd_tiny_f16.h5")).unwrap();
    assert_eq!(d.num_classes, 20);
    assert_eq!(d.stats().label_counts.len(), 20);
    let d = datasets::load_ssc(fixture("ssc_tiny_f16.h5")).unwrap();
    assert_eq!(d.num_classes, 35);
}

#[test]
fn bad_files_are_refused_with_the_file_name() {
    for name in ["damaged_truncated.h5", "damaged_header.h5", "bad_missing_units.h5", "bad_length_mismatch.h5"] {
        let err = load_spike_h5(fixture(name), &SpikeLoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        eprintln!("{name}: {msg}");
        assert!(msg.contains(name), "{msg}");
    }
    let err = load_spike_h5(fixture("bad_missing_units.h5"), &SpikeLoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingDataset { name: "/spikes/units", .. }), "{err}");
    let err = load_spike_h5(fixture("bad_length_mismatch.h5"), &SpikeLoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::LengthMismatch { .. }), "{err}");
}

#[test]
fn missing_file_says_where_to_get_it() {
    let err = datasets::load_shd("/definitely/not/here/shd_train.h5").unwrap_err();
    assert!(matches!(err, DatasetError::NotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains("https://zenkelab.org/datasets/") && msg.contains("shd_train.h5"), "{msg}");
}

fn good_bytes() -> Vec<Vec<u8>> {
    GOOD.iter().map(|n| std::fs::read(fixture(n)).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn truncated_files_give_errors_not_panics(which in 0usize..4, frac in 0.0f64..1.0) {
        let b = &good_bytes()[which];
        let cut = ((b.len() as f64) * frac) as usize;
        let r = load_spike_h5_bytes(b[..cut].to_vec(), Path::new("trunc.h5"), &SpikeLoadOptions::default());
        if let Err(e) = r {
            prop_assert!(e.to_string().contains("trunc.h5"));
        }
    }

    #[test]
    fn bit_flipped_files_give_errors_not_panics(which in 0usize..4, flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..8)) {
        let mut b = good_bytes()[which].clone();
        let n = b.len();
        for (i, bit) in flips {
            b[i.index(n)] ^= 1 << bit;
        }
        match load_spike_h5_bytes(b, Path::new("flip.h5"), &SpikeLoadOptions::default()) {
            Ok((d, _)) => prop_assert!(d.check().is_ok()),
            Err(e) => prop_assert!(e.to_string().contains("flip.h5")),
        }
    }

    /// Flips land in the part of the file that holds the global heap (the event data),
    /// which exercises the loader's own heap parser, not only the HDF5 metadata.
    #[test]
    fn bit_flips_in_heap_region(which in 0usize..4, flips in proptest::collection::vec((0.3f64..1.0, 0u8..8), 1..16)) {
        let mut b = good_bytes()[which].clone();
        let n = b.len();
        for (pos, bit) in flips {
            b[((n as f64 * pos) as usize).min(n - 1)] ^= 1 << bit;
        }
        match load_spike_h5_bytes(b, Path::new("heap.h5"), &SpikeLoadOptions::default()) {
            Ok((d, _)) => prop_assert!(d.check().is_ok()),
            Err(e) => prop_assert!(e.to_string().contains("heap.h5")),
        }
    }

    #[test]
    fn random_bytes_give_errors(bytes in proptest::collection::vec(any::<u8>(), 0..4096), with_magic in any::<bool>()) {
        let mut b = bytes;
        if with_magic {
            let sig = [0x89u8, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];
            b.splice(0..0, sig);
        }
        let r = load_spike_h5_bytes(b, Path::new("rand.h5"), &SpikeLoadOptions::default());
        prop_assert!(r.is_err());
        prop_assert!(r.unwrap_err().to_string().contains("rand.h5"));
    }
}

/// Every place where the file stores the sample count as an 8-byte length (the dataspace
/// dimensions among them) is patched to claim 10^12 samples: the loader must refuse the
/// file (or ignore the field) without trying to allocate for 10^12 samples.
#[test]
fn lying_dimension_is_refused_before_allocating() {
    for name in GOOD {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let n = manifest()[name]["n_samples"].as_u64().unwrap();
        let pattern = n.to_le_bytes();
        let hits: Vec<usize> = (0..bytes.len() - 8).filter(|&i| bytes[i..i + 8] == pattern).collect();
        assert!(!hits.is_empty(), "{name}");
        let mut refused = 0;
        for &i in &hits {
            let mut b = bytes.clone();
            b[i..i + 8].copy_from_slice(&1_000_000_000_000u64.to_le_bytes());
            match load_spike_h5_bytes(b, Path::new("lying.h5"), &SpikeLoadOptions::default()) {
                Ok((d, _)) => assert!(d.len() as u64 <= n),
                Err(e) => {
                    assert!(e.to_string().contains("lying.h5"));
                    refused += 1;
                }
            }
        }
        assert!(refused >= 1, "{name}: no patched dimension was refused");
    }
}
