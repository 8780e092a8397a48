//! `reproduce shd|ssc --data DIR` on files in the real SHD/SSC HDF5 layout (the small fixtures of
//! `datasets`): SHD holds every 10th training sample out for validation, SSC validates on
//! `ssc_valid.h5`, and the reported test accuracy is the one of the best validation epoch.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/datasets/tests/fixtures").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xtask-speech-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `reproduce <exp> --quick --epochs 2 --data <data>` and returns its `results.json`.
fn run(exp: &str, data: &Path, out: &Path) -> Result<Value, String> {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", exp, "--quick", "--epochs", "2", "--seed", "3", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("xtask runs");
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let text = std::fs::read_to_string(out.join(exp).join("results.json")).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn check_selection(r: &Value, validation_samples: u64, train_samples: u64) {
    let config = &r["config"];
    assert_eq!(config["validation_samples"], validation_samples, "{config}");
    assert_eq!(config["train_samples"], train_samples, "{config}");
    for (part, curve) in [(&r["final"], "delays"), (&r["ablation"]["no_delays"], "no_delays")] {
        let best = part["best_validation_epoch"].as_u64().expect("a validated run has a best epoch") as usize;
        let epochs = r["epochs"][curve].as_array().unwrap();
        assert_eq!(epochs.len(), 2);
        assert_eq!(part["test_accuracy"], epochs[best]["test_accuracy"], "{part}");
        let valid: Vec<f64> = epochs.iter().map(|e| e["validation_accuracy"].as_f64().unwrap()).collect();
        assert_eq!(part["validation_accuracy"].as_f64(), valid.iter().copied().reduce(f64::max));
        assert!(valid[..best].iter().all(|&v| v < valid[best]), "not the first best epoch: {valid:?}");
    }
}

#[test]
fn shd_holds_out_every_tenth_training_sample() {
    let dir = scratch("shd");
    for name in ["shd_train.h5", "shd_test.h5"] {
        std::fs::copy(fixture("shd_tiny_f16.h5"), dir.join(name)).unwrap();
    }
    let r = run("shd", &dir, &dir.join("out")).unwrap();
    // 40 samples: 4 held out (indices 9, 19, 29, 39), 36 trained on.
    check_selection(&r, 4, 36);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ssc_validates_on_its_own_split_and_needs_it() {
    let dir = scratch("ssc");
    for name in ["ssc_train.h5", "ssc_test.h5"] {
        std::fs::copy(fixture("ssc_tiny_f16.h5"), dir.join(name)).unwrap();
    }
    let err = run("ssc", &dir, &dir.join("out0")).unwrap_err();
    assert!(err.contains("ssc_valid.h5"), "{err}");
    std::fs::copy(fixture("ssc_tiny_f16.h5"), dir.join("ssc_valid.h5")).unwrap();
    let r = run("ssc", &dir, &dir.join("out")).unwrap();
    let n = r["config"]["test_samples"].as_u64().unwrap();
    check_selection(&r, n, n);
    let _ = std::fs::remove_dir_all(&dir);
}
