//! Checkpoints never crash a run nor resume silently from garbage or from another run:
//! every damaged variant (bit flips, truncation at any offset, appended bytes, a file of another
//! kind, crafted payloads with a valid checksum and lying lengths) gives a typed error, or a
//! state that passes the structural checks and trains on without panicking; a resume with any
//! result-changing setting changed is refused with the list of differences.

use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use persist::{HEADER_LEN, PersistError};
use proptest::prelude::*;
use snn_core::{ExactEngine, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig, SpikeTrains};
use snn_eventprop::train::{CHECKPOINT_KIND, EarlyStopping, Labelled, Monitor, TrainConfig, TrainData, Trainer};
use snn_eventprop::{EventPropError, Loss, SpikeCountReg};

fn network(scale: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 3);
    let h = b.lif("hidden", 4, LifParams::default());
    let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
    let w1 = DMatrix::from_fn(4, 3, |r, c| scale * (1.0 + 0.3 * r as f64 - 0.2 * c as f64));
    let d1 = DMatrix::from_fn(4, 3, |r, c| (r + 2 * c) as f64);
    b.connect(i, h, w1, d1);
    b.connect(h, o, DMatrix::from_fn(2, 4, |r, c| 0.5 + 0.1 * (r as f64 - c as f64)), DMatrix::from_element(2, 4, 1.0));
    b.build().unwrap()
}

fn data() -> Labelled {
    let mut x = SpikeTrains::new(3);
    for s in 0..6 {
        let t0 = s as f64;
        x.push_sample(&[t0, t0 + 2.0, t0 + 4.0, t0 + 5.0], &[(s % 3) as u32, 1, 2, 0]).unwrap();
    }
    Labelled::new(x, vec![0, 1, 0, 1, 1, 0]).unwrap()
}

fn engine() -> ExactEngine {
    ExactEngine::new(SimConfig::new(30.0, ReadoutKind::MaxVoltage)).unwrap()
}

const LOSS: Loss = Loss::MaxVoltageCrossEntropy;

fn config(path: &Path) -> TrainConfig {
    TrainConfig::builder()
        .epochs(3)
        .batch_size(4)
        .chunk_size(2)
        .weight_lr(0.05)
        .delay_lr(0.5)
        .max_delay(12.0)
        .seed(5)
        .early_stopping(EarlyStopping { patience: 5, monitor: Monitor::TrainLoss })
        .checkpoint(path)
        .identity("train data", format!("{:016x}", data().content_hash()))
        .build()
        .unwrap()
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("snn-ckpt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A checkpoint after two epochs, as bytes (made once).
fn checkpoint_bytes(_dir: &Path) -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(make_checkpoint).clone()
}

fn make_checkpoint() -> Vec<u8> {
    let dir = tmp_dir("base");
    let path = dir.join("base.ckpt");
    let engine = engine();
    let set = data();
    let mut t = Trainer::new(&engine, LOSS, TrainConfig { epochs: 2, ..config(&path) }, network(1.0)).unwrap();
    t.fit(&TrainData { train: &set, validation: None, test: None }).unwrap();
    assert!(t.best().is_some(), "the checkpoint holds a best network too");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

/// Writes `bytes` as a checkpoint and resumes it: a typed error, or a trainer that finishes its
/// run without panicking (training may still fail with a typed error, e.g. runaway activity).
fn resume_bytes(dir: &Path, bytes: &[u8], case: usize) -> Result<bool, TestCaseError> {
    let path = dir.join(format!("case{case}.ckpt"));
    std::fs::write(&path, bytes).unwrap();
    let engine = engine();
    let set = data();
    let r = Trainer::resume(&engine, LOSS, TrainConfig { checkpoint: None, ..config(&path) }, &path);
    std::fs::remove_file(&path).ok();
    match r {
        Ok(mut t) => {
            let _ = t.fit(&TrainData { train: &set, validation: None, test: Some(&set) });
            Ok(true)
        }
        Err(
            EventPropError::CheckpointFile(_)
            | EventPropError::Checkpoint { .. }
            | EventPropError::ResumeMismatch { .. }
            | EventPropError::Core(_)
            | EventPropError::Delays(_)
            | EventPropError::TrainableCountMismatch { .. }
            | EventPropError::NothingToTrain,
        ) => Ok(false),
        Err(e) => Err(TestCaseError::fail(format!("unexpected error {e:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Single bit flips, truncations and appended bytes are always refused (CRC-32 catches every
    /// single-bit error), so no damaged file resumes with different numbers.
    #[test]
    fn damaged_checkpoints_are_refused(at in any::<usize>(), bit in 0u8..8, cut in any::<usize>(), extra in 1usize..64) {
        let dir = tmp_dir("damaged");
        let bytes = checkpoint_bytes(&dir);
        let mut flipped = bytes.clone();
        flipped[at % bytes.len()] ^= 1 << bit;
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0xA5, extra));
        for (k, v) in [flipped, bytes[..cut % bytes.len()].to_vec(), longer].iter().enumerate() {
            let resumed = resume_bytes(&dir, v, k)?;
            prop_assert!(!resumed, "variant {k} resumed");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Crafted payloads with a valid checksum — random bytes changed, a lying varint length
    /// inserted, a cut — give typed errors or a state that trains on without a panic or abort.
    #[test]
    fn crafted_checkpoints_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        lie_at in any::<usize>(),
        cut in any::<usize>(),
    ) {
        let dir = tmp_dir("crafted");
        let bytes = checkpoint_bytes(&dir);
        let payload = &bytes[HEADER_LEN..];
        let mut edited = payload.to_vec();
        for &(at, v) in &edits {
            let i = at % edited.len();
            edited[i] = v;
        }
        let i = lie_at % payload.len();
        let mut lying = payload[..i].to_vec();
        lying.push(0xFD);
        lying.extend_from_slice(&(u64::MAX / 5).to_le_bytes());
        lying.extend_from_slice(&payload[i..]);
        let mut lying32 = payload[..i].to_vec();
        lying32.push(0xFC); // a u32 length: up to 4 GiB
        lying32.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        lying32.extend_from_slice(&payload[i..]);
        let cut_payload = payload[..cut % payload.len()].to_vec();
        for (k, p) in [edited, lying, lying32, cut_payload].iter().enumerate() {
            resume_bytes(&dir, &persist::frame(CHECKPOINT_KIND, p), 10 + k)?;
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn an_intact_checkpoint_resumes_and_special_files_are_refused() {
    let dir = tmp_dir("intact");
    let bytes = checkpoint_bytes(&dir);
    assert!(resume_bytes(&dir, &bytes, 0).unwrap());
    let engine = engine();
    let r = Trainer::resume(&engine, LOSS, config(&dir.join("x")), &dir);
    assert!(
        matches!(r, Err(EventPropError::CheckpointFile(PersistError::NotAFile { what: "directory", .. }))),
        "{r:?}"
    );
    #[cfg(target_os = "linux")]
    {
        let r = Trainer::resume(&engine, LOSS, config(&dir.join("x")), "/dev/zero");
        assert!(matches!(r, Err(EventPropError::CheckpointFile(PersistError::NotAFile { .. }))), "{r:?}");
    }
    // a framed file of another kind (a model file, say) is not a checkpoint
    let other = persist::encode(Path::new("m"), persist::Kind::new("sbp-pursuit", 1), &1u8).unwrap();
    let p = dir.join("other.ckpt");
    std::fs::write(&p, other).unwrap();
    let r = Trainer::resume(&engine, LOSS, config(&p), &p);
    assert!(matches!(r, Err(EventPropError::CheckpointFile(PersistError::WrongKind { .. }))), "{r:?}");
    assert_eq!(CHECKPOINT_KIND.name(), "snn-checkpoint");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every result-changing setting is compared on resume; the error lists each difference and
/// says how to start afresh. A larger `epochs` trains on; a smaller one than done is refused.
#[test]
fn resume_refuses_other_settings_with_the_list_of_differences() {
    let dir = tmp_dir("settings");
    let path = dir.join("run.ckpt");
    let engine = engine();
    let set = data();
    let train = TrainData { train: &set, validation: None, test: None };
    let mut t = Trainer::new(&engine, LOSS, TrainConfig { epochs: 2, ..config(&path) }, network(1.0)).unwrap();
    t.fit(&train).unwrap();
    drop(t);
    let names = |r: Result<Trainer<'_, ExactEngine>, EventPropError>| match r {
        Err(EventPropError::ResumeMismatch { differences, .. }) => {
            differences.into_iter().map(|d| d.name).collect::<Vec<_>>()
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|t| t.epochs_done())),
    };
    let resume = |c: TrainConfig| Trainer::resume(&engine, LOSS, c, &path);
    let with_reg = TrainConfig { spike_count_reg: Some(SpikeCountReg::paper()), ..config(&path) };
    assert_eq!(names(resume(with_reg)), ["spike-count regulariser"]);
    assert_eq!(names(resume(TrainConfig { batch_size: 3, seed: 6, ..config(&path) })), ["batch_size", "seed"]);
    assert_eq!(names(resume(TrainConfig { epochs: 1, ..config(&path) })), ["epochs"]);
    let other_data = TrainConfig::builder().identity("train data", "another set").build().unwrap();
    let c = TrainConfig { identity: other_data.identity, ..config(&path) };
    assert_eq!(names(resume(c)), ["identity: train data"]);
    let mut c = config(&path);
    c.identity.insert("validation data".into(), "v".into());
    assert_eq!(names(resume(c)), ["identity: validation data"]);
    let r = Trainer::resume(&engine, Loss::MaxVoltageCrossEntropy, config(&path), &path);
    assert!(r.is_ok());
    let e = resume(TrainConfig { silent_boost: None, ..config(&path) }).err().unwrap();
    let msg = e.to_string();
    assert!(msg.contains("silent boost") && msg.contains("start afresh") && msg.contains("run.ckpt"), "{msg}");
    // the caller's network: another initial network or shape is refused
    let matching = |net| Trainer::resume_matching(&engine, LOSS, config(&path), net, &path);
    assert_eq!(names(matching(network(1.5))), ["initial network"]);
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 3);
    let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
    b.connect(i, o, DMatrix::from_element(2, 3, 1.0), DMatrix::zeros(2, 3));
    assert_eq!(names(matching(b.build().unwrap())), ["network shape", "initial network"]);
    // the same settings, more epochs: trains on to the new target
    let mut t = matching(network(1.0)).unwrap();
    assert_eq!(t.epochs_done(), 2);
    t.fit(&train).unwrap();
    assert_eq!(t.epochs_done(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stale_temporary_files_are_removed_at_the_next_start() {
    let dir = tmp_dir("stale");
    let path = dir.join("run.ckpt");
    let stale = dir.join(".run.ckpt.tmp-4294967295"); // no process has this id
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let engine = engine();
    let _t = Trainer::new(&engine, LOSS, config(&path), network(1.0)).unwrap();
    assert_eq!(stale.exists(), !cfg!(target_os = "linux"));
    std::fs::remove_dir_all(&dir).ok();
}
