//! Architecture invariants (see ARCHITECTURE.md): dependencies only point down.
//!
//! Reads `cargo metadata` and fails when a workspace crate depends on a crate of
//! its own layer or above; reads the `crate::...` paths of `xtask/src/*.rs` and fails when
//! the modules of `xtask` import each other in a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Layer of each workspace crate; a crate may depend only on crates of a lower layer,
/// with the exception of the pairs listed in [`ALLOWED_SAME_LAYER`].
fn layers() -> BTreeMap<&'static str, u8> {
    BTreeMap::from([
        ("persist", 0),
        ("snn-core", 0),
        ("datasets", 0),
        ("sparse-bp", 0),
        ("snn-delays", 1),
        ("snn-eventprop", 2),
        ("bench-suite", 3),
        ("xtask", 3),
    ])
}

/// Same-layer edges that are allowed: the file framing (and its check of what may be opened for
/// reading) is shared by both stacks and the data loaders.
const ALLOWED_SAME_LAYER: &[(&str, &str)] = &[("sparse-bp", "persist"), ("datasets", "persist")];

/// Who may depend on whom, in words, for the error message.
const RULES: &str = "persist and snn-core depend on no workspace crate; datasets and sparse-bp only on persist; \
snn-delays only on snn-core; snn-eventprop on snn-core, snn-delays and persist; \
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
            lt >= lf && !ALLOWED_SAME_LAYER.contains(&(from.as_str(), to.as_str()))
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

// ---------------------------------------------------------------------------------------------
// Modules of xtask: imports only point down (no loop)
// ---------------------------------------------------------------------------------------------

/// The modules a source text names through `crate::module` (in `use` lines, `use crate::{a, b}`
/// groups, and inline paths), without itself.
fn crate_refs(text: &str, own: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut rest = text;
    while let Some(k) = rest.find("crate::") {
        let after = &rest[k + "crate::".len()..];
        // `crate::` must start a path, not end another identifier (`some_crate::x`).
        let starts_path = !rest[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if starts_path {
            if let Some(group) = after.strip_prefix('{') {
                let body = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(body.split(',').map(|p| ident(p.trim())).filter(|m| !m.is_empty()));
            } else {
                out.insert(ident(after));
            }
        }
        rest = after;
    }
    out.retain(|m| !m.is_empty() && m != own);
    out
}

/// Module → the modules it imports, for every `xtask/src/*.rs` but the crate root.
fn xtask_module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("xtask/src is readable") {
        let path = entry.expect("directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_none_or(|e| e != "rs") || stem == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source is readable");
        graph.insert(stem.to_owned(), crate_refs(&text, stem));
    }
    graph
}

/// A loop of the graph (as a path that returns to its start), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the current path, 2 done
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n).copied().unwrap_or(0) {
            1 => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            2 => return None,
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph.keys().find_map(|n| visit(n, graph, &mut state, &mut Vec::new()))
}

#[test]
fn xtask_modules_import_without_loops() {
    let graph = xtask_module_graph();
    assert!(graph.contains_key("reproduce") && graph.contains_key("harness"), "modules not found: {graph:?}");
    for (m, deps) in &graph {
        for d in deps {
            assert!(graph.contains_key(d), "`{m}` names `crate::{d}`, which is no module file of xtask/src");
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "xtask modules import each other in a loop: {}\nshared types belong in a lower module \
             (harness.rs: Options, Outcome, Experiment, progress); imports: {graph:?}",
            cycle.join(" -> ")
        );
    }
    // The harness is below every experiment and the driver.
    assert!(graph["harness"].iter().all(|d| d == "report"), "harness imports {:?}", graph["harness"]);
}

#[test]
fn the_loop_checker_catches_a_loop() {
    let refs = crate_refs("use crate::b::X;\nuse crate::{c, a};\nlet v = crate::d::f(); other_crate::e", "a");
    assert_eq!(refs, BTreeSet::from(["b".to_owned(), "c".to_owned(), "d".to_owned()]));
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned()).or_default().insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert!(find_cycle(&g(&[("reproduce", "exp"), ("exp", "harness")])).is_none());
    let c = find_cycle(&g(&[("reproduce", "exp"), ("exp", "reproduce")])).expect("loop found");
    assert_eq!(c.first(), c.last());
}
