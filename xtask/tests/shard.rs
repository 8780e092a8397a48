//! `reproduce --shard I/N` + `collect` give the results of one unsharded run (timings aside);
//! bad shard specifications and incomplete shard sets are errors that write nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn xtask(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("xtask runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xtask-shard-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `results.json` without the keys that measure time or memory.
fn metrics(path: &Path) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| {
                        !["wall_seconds", "peak_rss_bytes", "seconds", "epoch_seconds"].contains(&k.as_str())
                    })
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            v => v.clone(),
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    strip(&serde_json::from_str(&text).unwrap())
}

const RUN: [&str; 6] = ["shd", "--quick", "--epochs", "1", "--seed", "4"];

#[test]
fn shards_collected_give_the_unsharded_results() {
    let root = scratch("same");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let full = root.join("full");
    let (ok, err) = xtask(&[&["reproduce"][..], &RUN, &["--out", &s(&full)]].concat());
    assert!(ok, "{err}");
    let shards: Vec<PathBuf> = (0..2).map(|i| root.join(format!("shard{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        let spec = format!("{i}/2");
        let (ok, err) = xtask(&[&["reproduce"][..], &RUN, &["--shard", &spec, "--out", &s(dir)]].concat());
        assert!(ok, "{err}");
        assert!(dir.join("shard.json").is_file());
        assert!(!dir.join("shd/results.json").exists(), "a shard writes no report");
    }
    let merged = root.join("merged");
    let (ok, err) = xtask(&["collect", &s(&shards[1]), &s(&shards[0]), "--out", &s(&merged)]);
    assert!(ok, "{err}");
    let want = metrics(&full.join("shd/results.json"));
    assert!(want["final"]["parameters_sha256"].as_str().is_some_and(|h| h.len() == 64), "{want}");
    assert_eq!(metrics(&merged.join("shd/results.json")), want);
    for f in ["summary.md", "accuracy.png", "delays.svg"] {
        assert!(merged.join("shd").join(f).is_file(), "{f} missing");
    }
    assert!(merged.join("SUMMARY.md").is_file());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_shards_are_errors_that_write_nothing() {
    let root = scratch("bad");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let out = root.join("out");
    for (spec, says) in [("3/2", "got `3/2`"), ("0/0", "got `0/0`"), ("1/x", "got `1/x`")] {
        let (ok, err) = xtask(&[&["reproduce"][..], &RUN, &["--shard", spec, "--out", &s(&out)]].concat());
        assert!(!ok && err.contains(says), "--shard {spec}: {err}");
    }
    let (ok, err) = xtask(&["reproduce", "epoch-time", "--quick", "--shard", "0/2", "--out", &s(&out)]);
    assert!(!ok && err.contains("--shard applies to one named experiment of yin-yang, shd, ssc"), "{err}");
    // sparse-mnist: an index out of range, and --shard with --load-models
    let (ok, err) = xtask(&["reproduce", "sparse-mnist", "--quick", "--shard", "2/2", "--out", &s(&out)]);
    assert!(!ok && err.contains("got `2/2`"), "{err}");
    let (ok, err) = xtask(&[
        "reproduce",
        "sparse-mnist",
        "--quick",
        "--shard",
        "0/2",
        "--load-models",
        &s(&root.join("models")),
        "--out",
        &s(&out),
    ]);
    assert!(!ok && err.contains("--shard and --load-models exclude each other"), "{err}");
    assert!(!out.exists(), "a refused command line wrote {}", out.display());

    // One of two shards, and a folder that does not exist.
    let shard0 = root.join("shard0");
    let (ok, err) = xtask(&[&["reproduce"][..], &RUN, &["--shard", "0/2", "--out", &s(&shard0)]].concat());
    assert!(ok, "{err}");
    let merged = root.join("merged");
    let (ok, err) = xtask(&["collect", &s(&shard0), "--out", &s(&merged)]);
    assert!(!ok && err.contains("shard 1/2 is missing"), "{err}");
    let (ok, err) = xtask(&["collect", &s(&shard0), &s(&root.join("nowhere")), "--out", &s(&merged)]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    let (ok, err) = xtask(&["collect", &s(&shard0), &s(&shard0), "--out", &s(&merged)]);
    assert!(!ok && err.contains("given twice"), "{err}");
    assert!(!merged.exists(), "a failed collect wrote {}", merged.display());
    let _ = std::fs::remove_dir_all(&root);
}
