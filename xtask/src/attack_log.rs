//! The attack log of `sparse-mnist`: every finished (model, attack column, budget) point, kept
//! in the run folder so that an interrupted run resumes its attacks where it stopped.
//!
//! A full run attacks for hours; the log (`attack-log.json`, rewritten atomically after every
//! point) holds each point's accuracy, its measured seconds and, for PGBP's transfer columns,
//! the approximators' accuracies on the same adversarial images. A restarted run with the same
//! models, preset, seed and attack columns reads the finished points back instead of attacking
//! again, so it ends with the very numbers of an uninterrupted run. The log's identity is
//! compared when it is opened: the run's settings (preset, seed, test images, columns) must be
//! the same, and so must the content hash of every model both the log and the run know (one
//! entry per model, format 2): a different run in the same folder is an error that names what
//! differs. Models only one side knows are fine, so that the logs of the shards of a run
//! (`reproduce sparse-mnist --shard I/N`, each with some of the models) merge ([`merge`]) and
//! the run of every model accepts the merged log.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::DynResult;

/// Format of the log file (bumped when its meaning changes; 2: one identity entry per model).
const FORMAT: u64 = 2;

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
    /// Content hash of every model whose points the log may hold, by model (`shallow/bp`, ...).
    models: BTreeMap<String, String>,
    points: BTreeMap<String, Point>,
}

/// What the points of a run depend on: its settings, which every log it reads must share, and
/// each model's content hash (by `part/model`, e.g. `shallow/pgbp`, `3-layer/gdp`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// Preset, seed, test images, columns (field name -> value).
    pub settings: BTreeMap<String, String>,
    /// Content hash of every model of the run.
    pub models: BTreeMap<String, String>,
}

/// The log of one run folder.
pub struct AttackLog {
    path: PathBuf,
    identity: BTreeMap<String, String>,
    models: BTreeMap<String, String>,
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
    /// settings and models): an existing log with the same settings and the same hash for
    /// every model it shares with the run is read back (its other models' entries and points
    /// are kept); a missing one starts empty. A log of another run, or one that is not a log
    /// (bad JSON, unknown format), is an error naming the file and, for another run, every
    /// field and model that differs.
    pub fn open(path: &Path, identity: Identity) -> DynResult<Self> {
        let Identity { settings, models } = identity;
        let mut log = Self { path: path.to_owned(), identity: settings, models, points: BTreeMap::new(), resumed: 0 };
        let Some(file) = read(path)? else { return Ok(log) };
        let diffs = differences(&file, &log.identity, &log.models, "this run");
        if !diffs.is_empty() {
            return Err(format!(
                "{} belongs to another run ({}); use another --out or delete the file to attack afresh",
                path.display(),
                diffs.join("; ")
            )
            .into());
        }
        for (m, h) in file.models {
            log.models.entry(m).or_insert(h);
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
        let file = File {
            format: FORMAT,
            identity: self.identity.clone(),
            models: self.models.clone(),
            points: self.points.clone(),
        };
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

/// The log at `path`, `None` if there is none; an unreadable file, bad JSON or another format
/// is an error naming the file.
fn read(path: &Path) -> DynResult<Option<File>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    Ok(Some(file))
}

/// Every setting that differs between `file` and `settings`, and every model both know with
/// different hashes, as `what: log A vs OTHER B`.
fn differences(
    file: &File,
    settings: &BTreeMap<String, String>,
    models: &BTreeMap<String, String>,
    other: &str,
) -> Vec<String> {
    let show = |v: Option<&String>| v.map_or("(absent)".to_owned(), |s| abbreviate(s));
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&String> = file.identity.keys().chain(settings.keys()).collect();
    for k in keys {
        let (a, b) = (file.identity.get(k), settings.get(k));
        if a != b {
            diffs.push(format!("{k}: log {} vs {other} {}", show(a), show(b)));
        }
    }
    for (m, h) in models {
        if let Some(a) = file.models.get(m).filter(|a| *a != h) {
            diffs.push(format!("model {m}: log {} vs {other} {}", abbreviate(a), abbreviate(h)));
        }
    }
    diffs
}

/// Merges the logs `sources` (the shards of one run) into one log at `out`, which may exist
/// already (a collect run again: it is merged too): the logs must have the same settings and
/// the same hash for every model two of them know, and a point two of them hold must be the
/// same point; otherwise nothing is written and the error names the logs and what differs.
/// Checks only: [`MergedLog::write`] writes.
pub fn merge(sources: &[PathBuf], out: &Path) -> DynResult<MergedLog> {
    let mut files: Vec<(PathBuf, File)> = Vec::new();
    for p in sources.iter().map(PathBuf::as_path).chain(std::iter::once(out)) {
        if let Some(f) = read(p)? {
            files.push((p.to_owned(), f));
        } else if p != out {
            return Err(format!("attack log {} is missing", p.display()).into());
        }
    }
    let Some((first_path, first)) = files.first() else {
        return Ok(MergedLog { out: out.to_owned(), file: None });
    };
    let mut merged =
        File { format: FORMAT, identity: first.identity.clone(), models: BTreeMap::new(), points: BTreeMap::new() };
    let mut origin: BTreeMap<String, &Path> = BTreeMap::new();
    for (path, f) in &files {
        let diffs = differences(f, &merged.identity, &merged.models, "the merged logs");
        if !diffs.is_empty() {
            return Err(format!(
                "attack logs {} and {} are of different runs ({})",
                path.display(),
                first_path.display(),
                diffs.join("; ")
            )
            .into());
        }
        for (m, h) in &f.models {
            merged.models.entry(m.clone()).or_insert_with(|| h.clone());
        }
        for (k, p) in &f.points {
            match merged.points.get(k) {
                Some(q) if q != p => {
                    return Err(format!(
                        "attack point {k} conflicts: {} has accuracy {} ({} s), {} has accuracy {} ({} s)",
                        origin[k].display(),
                        q.accuracy,
                        q.seconds,
                        path.display(),
                        p.accuracy,
                        p.seconds
                    )
                    .into());
                }
                Some(_) => {}
                None => {
                    merged.points.insert(k.clone(), p.clone());
                    origin.insert(k.clone(), path);
                }
            }
        }
    }
    Ok(MergedLog { out: out.to_owned(), file: Some(merged) })
}

/// Logs merged by [`merge`], not yet written.
pub struct MergedLog {
    out: PathBuf,
    file: Option<File>,
}

impl MergedLog {
    /// Writes the merged log (atomically; nothing if there were no logs); returns its points.
    pub fn write(self) -> DynResult<usize> {
        let Some(f) = self.file else { return Ok(0) };
        crate::report::write_json(&self.out, &f)
            .map_err(|e| format!("cannot write the attack log {}: {e}", self.out.display()))?;
        Ok(f.points.len())
    }
}

/// A long identity value shortened for an error message.
fn abbreviate(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_owned() } else { format!("{}...", s.chars().take(77).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(seed: &str) -> Identity {
        with_models(seed, &[("shallow/bp", "abc")])
    }

    fn with_models(seed: &str, models: &[(&str, &str)]) -> Identity {
        Identity {
            settings: [("seed".to_owned(), seed.to_owned())].into_iter().collect(),
            models: models.iter().map(|(m, h)| ((*m).to_owned(), (*h).to_owned())).collect(),
        }
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
        std::fs::write(&path, text.replace("\"format\": 2", "\"format\": 7")).unwrap();
        let err = AttackLog::open(&path, identity("0")).err().unwrap().to_string();
        assert!(err.contains("format 7"), "{err}");
    }

    /// Per-model identity (format 2): the logs of two shards (different models) merge; a run of
    /// every model accepts the merged log and reads back every point; a model with another hash
    /// is refused by name, in `open` and in `merge`; two logs with the same point at different
    /// accuracies are refused naming the point and both logs, and nothing is written; a log of
    /// format 1 (one hash over all models) is refused.
    #[test]
    fn shard_logs_merge_and_conflicts_are_refused() {
        let (a, b, out) = (temp("shard-a"), temp("shard-b"), temp("merged"));
        let p = |acc: f64| Point { accuracy: acc, seconds: 1.0, transfer: vec![] };
        let mut la = AttackLog::open(&a, with_models("0", &[("shallow/bp", "h1")])).unwrap();
        la.put(key("shallow", "bp", "x", 0.1), p(0.5)).unwrap();
        let mut lb = AttackLog::open(&b, with_models("0", &[("3-layer/gdp", "h2")])).unwrap();
        lb.put(key("3-layer", "gdp", "x", 0.1), p(0.25)).unwrap();
        assert_eq!(merge(&[a.clone(), b.clone()], &out).unwrap().write().unwrap(), 2);
        let all = with_models("0", &[("shallow/bp", "h1"), ("3-layer/gdp", "h2")]);
        let mut full = AttackLog::open(&out, all.clone()).unwrap();
        assert_eq!(full.get(&key("shallow", "bp", "x", 0.1)), Some(p(0.5)));
        assert_eq!(full.get(&key("3-layer", "gdp", "x", 0.1)), Some(p(0.25)));
        // merging again into the merged log is the same log
        assert_eq!(merge(&[a.clone(), b.clone()], &out).unwrap().write().unwrap(), 2);
        // another gdp
        let other = with_models("0", &[("shallow/bp", "h1"), ("3-layer/gdp", "h3")]);
        let err = AttackLog::open(&out, other).err().unwrap().to_string();
        assert!(err.contains("model 3-layer/gdp: log h2 vs this run h3"), "{err}");
        // another seed
        let c = temp("shard-c");
        AttackLog::open(&c, with_models("1", &[])).unwrap().put("k".into(), p(1.0)).unwrap();
        let err = merge(&[a.clone(), c.clone()], &temp("m2")).err().unwrap().to_string();
        assert!(err.contains("different runs") && err.contains("seed: log 1"), "{err}");
        // the same point at another accuracy
        let d = temp("shard-d");
        let mut ld = AttackLog::open(&d, with_models("0", &[("shallow/bp", "h1")])).unwrap();
        ld.put(key("shallow", "bp", "x", 0.1), p(0.75)).unwrap();
        let m3 = temp("m3");
        let err = merge(&[a.clone(), d.clone()], &m3).err().unwrap().to_string();
        assert!(err.contains("shallow/bp/x/0.1 conflicts") && err.contains("0.5") && err.contains("0.75"), "{err}");
        assert!(!m3.exists(), "nothing written");
        let text = std::fs::read_to_string(&a).unwrap();
        std::fs::write(&a, text.replace("\"format\": 2", "\"format\": 1")).unwrap();
        let err = AttackLog::open(&a, identity("0")).err().unwrap().to_string();
        assert!(err.contains("format 1 (this build reads 2)"), "{err}");
    }

    #[test]
    fn fingerprints_see_the_split_between_parts() {
        assert_ne!(fingerprint([&b"ab"[..], b"c"]), fingerprint([&b"a"[..], b"bc"]));
        assert_eq!(fingerprint([&b"ab"[..]]).len(), 64);
    }
}
