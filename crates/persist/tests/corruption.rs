//! Every damaged variant of a framed file gives a typed error or provably the same content:
//! bit flips, truncation at any offset, appended bytes, a swapped file of another kind, lying
//! lengths inside a re-checksummed payload. Never a panic, an abort or a hang.

use std::path::{Path, PathBuf};

use persist::{HEADER_LEN, Kind, PersistError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const SAMPLE: Kind = Kind::new("test-sample", 1);
const OTHER: Kind = Kind::new("test-other", 1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sample {
    name: String,
    values: Vec<f64>,
    nested: Vec<Vec<u32>>,
    flag: Option<bool>,
    count: usize,
}

fn sample(n: usize) -> Sample {
    Sample {
        name: "a sample".into(),
        values: (0..n).map(|i| i as f64 * 0.25 - 1.0).collect(),
        nested: (0..n % 5).map(|i| (0..i as u32).collect()).collect(),
        flag: Some(n.is_multiple_of(2)),
        count: n * 1000,
    }
}

fn path() -> &'static Path {
    Path::new("sample.bin")
}

fn encoded(n: usize) -> Vec<u8> {
    persist::encode(path(), SAMPLE, &sample(n)).unwrap()
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("persist-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_flipped_bit_is_an_error(n in 0usize..40, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut b = encoded(n);
        let i = at.index(b.len());
        b[i] ^= 1 << bit;
        // CRC-32 detects every single-bit error: no flip may decode.
        let r = persist::decode::<Sample>(path(), SAMPLE, &b);
        prop_assert!(r.is_err(), "flip at {i} decoded: {r:?}");
    }

    #[test]
    fn any_truncation_is_an_error(n in 0usize..40, at in any::<prop::sample::Index>()) {
        let b = encoded(n);
        let cut = at.index(b.len());
        let r = persist::decode::<Sample>(path(), SAMPLE, &b[..cut]);
        prop_assert!(
            matches!(r, Err(PersistError::Truncated { .. } | PersistError::BadMagic { .. })),
            "cut at {cut}: {r:?}"
        );
    }

    #[test]
    fn appended_bytes_are_an_error(n in 0usize..40, extra in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut b = encoded(n);
        b.extend_from_slice(&extra);
        let r = persist::decode::<Sample>(path(), SAMPLE, &b);
        prop_assert_eq!(r, Err(PersistError::TrailingBytes { path: path().into(), extra: extra.len() as u64 }));
    }

    /// A crafted payload with a valid checksum: mutated bytes, including lengths set to
    /// huge values, decode to something or fail with a typed error, within the byte limit.
    #[test]
    fn crafted_payloads_never_panic(
        n in 0usize..40,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        huge in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let full = encoded(n);
        let mut payload = full[HEADER_LEN..].to_vec();
        for (at, v) in &edits {
            let i = at.index(payload.len());
            payload[i] = *v;
        }
        // a lying varint length: 0xFD announces a u64 that follows
        let i = huge.index(payload.len());
        let mut lying = payload[..i].to_vec();
        lying.push(0xFD);
        lying.extend_from_slice(&(u64::MAX / 3).to_le_bytes());
        lying.extend_from_slice(&payload[i..]);
        for p in [payload.clone(), lying, payload[..cut.index(payload.len() + 1)].to_vec()] {
            match persist::decode::<Sample>(path(), SAMPLE, &persist::frame(SAMPLE, &p)) {
                Ok(_) | Err(PersistError::Decode { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }

    #[test]
    fn random_bytes_are_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256), magic in any::<bool>()) {
        let mut b = bytes;
        if magic {
            let mut head = encoded(1);
            head.truncate(40);
            b.splice(0..0, head);
        }
        prop_assert!(persist::decode::<Sample>(path(), SAMPLE, &b).is_err());
    }
}

#[test]
fn round_trip_on_disk_and_kind_checks() {
    let dir = tmp_dir("roundtrip");
    let p = dir.join("s.bin");
    persist::save(&p, SAMPLE, &sample(7)).unwrap();
    assert_eq!(persist::load::<Sample>(&p, SAMPLE).unwrap(), sample(7));
    // another kind: refused before decoding
    let r = persist::load::<Sample>(&p, OTHER);
    assert_eq!(
        r,
        Err(PersistError::WrongKind { path: p.clone(), expected: "test-other".into(), found: "test-sample".into() })
    );
    // same name, another version
    let r = persist::load::<Sample>(&p, Kind::new("test-sample", 2));
    assert!(matches!(r, Err(PersistError::KindVersion { found: 1, supported: 2, .. })));
    // truncated and extended on disk
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    assert!(matches!(persist::load::<Sample>(&p, SAMPLE), Err(PersistError::Truncated { .. })));
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 5]);
    std::fs::write(&p, &longer).unwrap();
    assert!(matches!(persist::load::<Sample>(&p, SAMPLE), Err(PersistError::TrailingBytes { extra: 5, .. })));
    // a header that lies about a huge payload: refused from the file size, nothing allocated
    let mut lying = bytes[..HEADER_LEN].to_vec();
    lying[32..40].copy_from_slice(&(1u64 << 39).to_le_bytes());
    std::fs::write(&p, &lying).unwrap();
    assert!(matches!(persist::load::<Sample>(&p, SAMPLE), Err(PersistError::Truncated { .. })));
    lying[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &lying).unwrap();
    assert!(matches!(persist::load::<Sample>(&p, SAMPLE), Err(PersistError::TooLarge { .. })));
    // not ours at all
    std::fs::write(&p, b"PK\x03\x04 a zip file").unwrap();
    assert!(matches!(persist::load::<Sample>(&p, SAMPLE), Err(PersistError::BadMagic { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn special_files_are_refused_before_reading() {
    let dir = tmp_dir("special");
    assert!(matches!(persist::load::<Sample>(&dir, SAMPLE), Err(PersistError::NotAFile { what: "directory", .. })));
    assert_eq!(persist::load::<Sample>(Path::new(""), SAMPLE), Err(PersistError::EmptyPath));
    let missing = dir.join("missing.bin");
    let r = persist::load::<Sample>(&missing, SAMPLE);
    assert!(matches!(&r, Err(PersistError::Io { kind: std::io::ErrorKind::NotFound, .. })));
    assert!(r.unwrap_err().to_string().contains("missing.bin"));
    #[cfg(target_os = "linux")]
    {
        let r = persist::load::<Sample>(Path::new("/dev/zero"), SAMPLE);
        assert!(matches!(r, Err(PersistError::NotAFile { what: "character device", .. })), "{r:?}");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // would block forever if it were opened for reading
            let r = persist::load::<Sample>(&fifo, SAMPLE);
            assert!(matches!(r, Err(PersistError::NotAFile { what: "FIFO", .. })), "{r:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writes_are_atomic_and_stale_temps_are_removed() {
    let dir = tmp_dir("atomic");
    let p = dir.join("m.bin");
    persist::save(&p, SAMPLE, &sample(3)).unwrap();
    persist::save(&p, SAMPLE, &sample(4)).unwrap();
    assert_eq!(persist::load::<Sample>(&p, SAMPLE).unwrap(), sample(4));
    let names = || {
        let mut v: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(), vec!["m.bin".to_string()]);
    // a killed writer's leftover (no process has id u32::MAX) and a live one's (ours)
    std::fs::write(dir.join(".m.bin.tmp-4294967295"), b"half").unwrap();
    let ours = persist::temp_path(&p).unwrap();
    std::fs::write(&ours, b"in progress").unwrap();
    let removed = persist::remove_stale_temps(&dir).unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(removed, vec![dir.join(".m.bin.tmp-4294967295")]);
        assert!(ours.exists());
    }
    std::fs::remove_file(&ours).unwrap();
    // saving onto a folder, or into a missing folder, names the path
    let r = persist::save(&dir, SAMPLE, &sample(1));
    assert!(matches!(r, Err(PersistError::NotAFile { .. })), "{r:?}");
    let r = persist::save(&dir.join("no/such/m.bin"), SAMPLE, &sample(1));
    assert!(r.as_ref().is_err_and(|e| e.to_string().contains("no/such")), "{r:?}");
    assert_eq!(persist::save(Path::new(""), SAMPLE, &sample(1)), Err(PersistError::EmptyPath));
    assert!(persist::remove_stale_temps(&dir.join("missing")).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
