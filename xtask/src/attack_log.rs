//! The attack log of `sparse-mnist`: every finished (model, attack column, budget) point, kept
//! in the run folder so that an interrupted run resumes its attacks where it stopped.
//!
//! A full run attacks for hours; the log (`attack-log.json`, rewritten atomically after every
//! point) holds each point's accuracy, its measured seconds and, for PGBP's transfer columns,
//! the approximators' accuracies on the same adversarial images. A restarted run with the same
//! models, preset, seed and attack columns reads the finished points back instead of attacking
//! again, so it ends with the very numbers of an uninterrupted run. The log's identity (the
//! models' content hash and the columns' full description) is compared when it is opened: a
//! different run in the same folder is an error that names what differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::DynResult;

/// Format of the log file (bumped when its meaning changes).
const FORMAT: u64 = 1;

/// One finished point: a model under one attack column at one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Accuracy on the column's images at this budget.
    pub accuracy: f64,
    /// Measured seconds of the attack (and of the transfer replays).
    pub seconds: f64,
    /// Accuracy of each approximator (by name) on these adversarial images, for a column with
    /// a transfer; empty otherwise.
    pub transfer: Vec<(String, f64)>,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u64,
    identity: BTreeMap<String, String>,
    points: BTreeMap<String, Point>,
}

/// The log of one run folder.
pub struct AttackLog {
    path: PathBuf,
    identity: BTreeMap<String, String>,
    points: BTreeMap<String, Point>,
    resumed: usize,
}

/// The hex SHA-256 of a sequence of byte strings (each length-prefixed, so that the split
/// between them counts).
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a point: part (`shallow`, `3-layer`), model, column label and budget (exact).
pub fn key(part: &str, model: &str, label: &str, eps: f64) -> String {
    format!("{part}/{model}/{label}/{eps:?}")
}

impl AttackLog {
    /// Opens the log at `path` for a run with this `identity` (what the results depend on:
    /// models, preset, seed, columns, images): an existing log with the same identity is read
    /// back; a missing one starts empty. A log of another run, or one that is not a log (bad
    /// JSON, unknown format), is an error naming the file and, for another run, every field
    /// that differs.
    pub fn open(path: &Path, identity: BTreeMap<String, String>) -> DynResult<Self> {
        let mut log = Self { path: path.to_owned(), identity, points: BTreeMap::new(), resumed: 0 };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(format!("cannot read the attack log {}: {e}", path.display()).into()),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not an attack log ({e}); delete it to attack afresh", path.display()))?;
        if value["format"].as_u64() != Some(FORMAT) {
            return Err(format!(
                "{}: attack log format {} (this build reads {FORMAT}); delete it to attack afresh",
                path.display(),
                value["format"]
            )
            .into());
        }
        let file: File = serde_json::from_value(value)
            .map_err(|e| format!("{}: not an attack log ({e}); delete it to attack afresh", path.display()))?;
        let mut diffs = Vec::new();
        let keys: std::collections::BTreeSet<&String> = file.identity.keys().chain(log.identity.keys()).collect();
        for k in keys {
            let (a, b) = (file.identity.get(k), log.identity.get(k));
            if a != b {
                let show = |v: Option<&String>| v.map_or("(absent)".to_owned(), |s| abbreviate(s));
                diffs.push(format!("{k}: log {} vs this run {}", show(a), show(b)));
            }
        }
        if !diffs.is_empty() {
            return Err(format!(
                "{} belongs to another run ({}); use another --out or delete the file to attack afresh",
                path.display(),
                diffs.join("; ")
            )
            .into());
        }
        log.points = file.points;
        Ok(log)
    }

    /// The finished point under `key`, if the log has it (counted as resumed).
    pub fn get(&mut self, key: &str) -> Option<Point> {
        let p = self.points.get(key).cloned();
        self.resumed += usize::from(p.is_some());
        p
    }

    /// Records a finished point and rewrites the log atomically.
    pub fn put(&mut self, key: String, point: Point) -> DynResult<()> {
        self.points.insert(key, point);
        let file = File { format: FORMAT, identity: self.identity.clone(), points: self.points.clone() };
        crate::report::write_json(&self.path, &file)
            .map_err(|e| format!("cannot write the attack log {}: {e}", self.path.display()))?;
        Ok(())
    }

    /// How many points [`AttackLog::get`] served from the log.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A long identity value shortened for an error message.
fn abbreviate(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_owned() } else { format!("{}...", s.chars().take(77).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(seed: &str) -> BTreeMap<String, String> {
        [("seed".to_owned(), seed.to_owned()), ("models".to_owned(), "abc".to_owned())].into_iter().collect()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-attack-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("attack-log.json")
    }

    /// Points written by one run are read back by the next with the same identity, exactly.
    #[test]
    fn points_survive_a_restart() {
        let path = temp("restart");
        let mut log = AttackLog::open(&path, identity("0")).unwrap();
        assert_eq!(log.get("a"), None);
        let p = Point { accuracy: 0.1 + 0.2, seconds: 1.5, transfer: vec![("dense".into(), 1.0 / 3.0)] };
        log.put(key("shallow", "bp", "ifgsm-linf-std", 0.15), p.clone()).unwrap();
        let mut again = AttackLog::open(&path, identity("0")).unwrap();
        assert_eq!(again.get(&key("shallow", "bp", "ifgsm-linf-std", 0.15)), Some(p));
        assert_eq!(again.get(&key("shallow", "bp", "ifgsm-linf-std", 0.1)), None);
        assert_eq!(again.resumed(), 1);
    }

    /// Another run's log is refused with the field that differs; a damaged file is refused
    /// with its path.
    #[test]
    fn other_runs_and_damaged_logs_are_errors() {
        let path = temp("other");
        let mut log = AttackLog::open(&path, identity("0")).unwrap();
        log.put("k".into(), Point { accuracy: 1.0, seconds: 0.0, transfer: vec![] }).unwrap();
        let err = AttackLog::open(&path, identity("1")).err().unwrap().to_string();
        assert!(err.contains("seed: log 0 vs this run 1"), "{err}");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let err = AttackLog::open(&path, identity("0")).err().unwrap().to_string();
        assert!(err.contains("not an attack log") && err.contains(&path.display().to_string()), "{err}");
        std::fs::write(&path, text.replace("\"format\": 1", "\"format\": 7")).unwrap();
        let err = AttackLog::open(&path, identity("0")).err().unwrap().to_string();
        assert!(err.contains("format 7"), "{err}");
    }

    #[test]
    fn fingerprints_see_the_split_between_parts() {
        assert_ne!(fingerprint([&b"ab"[..], b"c"]), fingerprint([&b"a"[..], b"bc"]));
        assert_eq!(fingerprint([&b"ab"[..]]).len(), 64);
    }
}
