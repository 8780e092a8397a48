//! Architecture invariants (see ARCHITECTURE.md): dependencies only point down.
//!
//! Reads `cargo metadata` and fails when a workspace crate depends on a crate of
//! its own layer or above.

use std::collections::BTreeMap;
use std::process::Command;

/// Layer of each workspace crate; a crate may depend only on crates of a lower layer,
/// with the exception of the pairs listed in [`ALLOWED_SAME_LAYER`].
fn layers() -> BTreeMap<&'static str, u8> {
    BTreeMap::from([
        ("snn-core", 0),
        ("datasets", 0),
        ("sparse-bp", 0),
        ("snn-delays", 1),
        ("snn-eventprop", 2),
        ("bench-suite", 3),
        ("xtask", 3),
    ])
}

/// Who may depend on whom, in words, for the error message.
const RULES: &str = "snn-core, datasets and sparse-bp depend on no workspace crate; \
snn-delays only on snn-core; snn-eventprop on snn-core and snn-delays; \
bench-suite and xtask on anything below them but not on each other";

fn workspace_edges() -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages array");
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = Vec::new();
    for p in packages {
        let from = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let to = d["name"].as_str().unwrap_or_default();
            // dev-dependencies may not point up either: a test of a low crate must not pull in a high one.
            if names.contains(&to) {
                edges.push((from.to_owned(), to.to_owned()));
            }
        }
    }
    edges
}

#[test]
fn every_workspace_crate_has_a_layer() {
    let layers = layers();
    for (from, to) in workspace_edges() {
        assert!(layers.contains_key(from.as_str()), "crate `{from}` has no layer in this test");
        assert!(layers.contains_key(to.as_str()), "crate `{to}` has no layer in this test");
    }
}

#[test]
fn dependencies_point_down() {
    let layers = layers();
    let violations: Vec<String> = workspace_edges()
        .into_iter()
        .filter(|(from, to)| {
            let (Some(lf), Some(lt)) = (layers.get(from.as_str()), layers.get(to.as_str())) else {
                return false;
            };
            lt >= lf
        })
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(violations.is_empty(), "upward or sideways dependencies: {violations:?}\nrules: {RULES}");
}

#[test]
fn the_checker_catches_an_upward_edge() {
    // The rule itself, applied to edges that must be refused.
    let layers = layers();
    for (from, to) in [("snn-core", "snn-eventprop"), ("datasets", "snn-core"), ("sparse-bp", "datasets")] {
        assert!(layers[to] >= layers[from], "{from} -> {to} would not be caught");
    }
}
