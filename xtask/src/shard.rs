//! Sweeps split over Slurm job-array tasks: `reproduce EXP --shard I/N` trains only the runs
//! `k` of the experiment (in its own order: Yin-Yang's hidden sizes x with/without delays,
//! SHD/SSC's with/without delays) with `k % N == I`, saves each as a part file
//! (`<label>-seed<S>-<quick|full>.run` beside where its checkpoint would be) and writes
//! `OUT/shard.json` instead of the reports; `collect DIR... [--out OUT]` checks that the shards
//! are the N slices of one command line, copies their parts into `OUT/<experiment>/` and runs
//! the experiment again, loading every run from its part instead of training: the same
//! `results.json`, `summary.md`, plots and `SUMMARY.md` as one unsharded run (timings aside).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use snn_core::Network;
use snn_eventprop::train::EpochMetrics;

/// Experiments whose runs can be split.
pub const SHARDABLE: [&str; 4] = ["yin-yang", "shd", "ssc", "sparse-mnist"];

/// Relative cost of each unit of `sparse-mnist` ([`sparse_bp::paper::MNIST_UNITS`], same order),
/// in hundredths of an hour: the quick run's projection of a full run after the exact Deep
/// Pursuit kernels (2026-12-04, 7.2 h upper bound at load 2.5-3.7; README, "Time of a full
/// `sparse-mnist` run"), each stage counted for the unit whose model it trains or attacks: the
/// shallow unit 1.49 h (dictionaries, shallow training, approximators, shallow attacks,
/// certificates), LBP 0.26, LGBP 0.91, LPGBP 0.91, DP 0.37, GDP 1.68, PGDP 1.41 (each with its
/// codes, classifier, end-to-end training and attacks; the 3-layer chains, 0.13 h, are
/// recomputed by each shard that needs them and not counted). Only their order and rough ratios
/// matter: they balance the shards ([`mnist_units`]).
const MNIST_UNIT_COST: [u32; 7] = [149, 26, 91, 91, 37, 168, 141];

/// The `sparse-mnist` units ([`sparse_bp::paper::MNIST_UNITS`]) of shard `s`: the units are dealt
/// longest first ([`MNIST_UNIT_COST`], ties in unit order), each to the shard with the least
/// cost so far (the lowest index among equals). Every unit lands in exactly one shard; with
/// N > 7 the shards from 7 on get none. For N = 2 this deals 3.5 / 3.53 h of the projection
/// (`k % 2` would deal 4.18 / 2.85 h), for N = 3 at most 2.4 h (`k % 3`: 3.81 h); the shared
/// stages each shard recomputes (dictionaries, 3-layer chains) are not counted.
pub fn mnist_units(s: Shard) -> sparse_bp::paper::Units {
    let units = sparse_bp::paper::MNIST_UNITS;
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(MNIST_UNIT_COST[k])); // stable: ties in unit order
    let mut load = vec![0u32; s.count];
    let mut mine = Vec::new();
    for k in order {
        let target = (0..s.count).min_by_key(|&i| (load[i], i)).unwrap_or(0);
        load[target] += MNIST_UNIT_COST[k];
        if target == s.index {
            mine.push(units[k]);
        }
    }
    sparse_bp::paper::Units::new(&mine).unwrap_or(sparse_bp::paper::Units::ALL)
}

/// Records the files (relative to `OUT/<experiment>/`) an experiment wrote as this shard's parts.
pub fn record_parts(parts: impl IntoIterator<Item = String>) {
    state().parts.extend(parts);
}

/// Slice `index` of `count` (0-based: `--shard 0/4` ... `--shard 3/4`, as Slurm's
/// `$SLURM_ARRAY_TASK_ID` with `--array=0-3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which slice, `0..count`.
    pub index: usize,
    /// Number of slices, `>= 1`.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard expects I/N with whole numbers 0 <= I < N (e.g. 0/4), got `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.parse::<usize>().map_err(|_| bad())?, n.parse::<usize>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What this process does with the independent runs of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Train every run (the default).
    All,
    /// Train the runs of this slice, save them as parts, skip the others.
    Shard(Shard),
    /// Load every run from its part (`collect`).
    Collect,
}

struct State {
    mode: Mode,
    next: usize,
    parts: Vec<String>,
}

static STATE: Mutex<State> = Mutex::new(State { mode: Mode::All, next: 0, parts: Vec::new() });

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the mode of this process (before the first experiment).
pub fn set_mode(mode: Mode) {
    state().mode = mode;
}

/// The mode of this process.
pub fn mode() -> Mode {
    state().mode
}

/// Starts counting an experiment's runs from 0.
pub fn begin_experiment() {
    let mut s = state();
    s.next = 0;
    s.parts.clear();
}

/// Whether this process writes reports and plots (rank 0, not a shard).
pub fn writes_reports() -> bool {
    crate::cluster::is_root() && !matches!(mode(), Mode::Shard(_))
}

/// What to do with the next run of the experiment.
pub enum Claim {
    /// Train it; save it as a part at this path when `Some`.
    Train(Option<PathBuf>),
    /// Another shard's run: skip it.
    Skip,
    /// Load it from this part.
    Load(PathBuf),
}

/// Claims the next run, whose checkpoint would be `checkpoint` (its part file sits beside it).
pub fn claim(checkpoint: Option<&Path>) -> Result<Claim, String> {
    let mut s = state();
    let k = s.next;
    s.next += 1;
    let part = checkpoint.map(|p| p.with_extension("run"));
    match (s.mode, part) {
        (Mode::All, _) => Ok(Claim::Train(None)),
        (Mode::Shard(sh), Some(p)) if k % sh.count == sh.index => {
            s.parts.push(p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
            Ok(Claim::Train(Some(p)))
        }
        (Mode::Shard(_), Some(_)) => Ok(Claim::Skip),
        (Mode::Collect, Some(p)) => Ok(Claim::Load(p)),
        (_, None) => Err("this run has no checkpoint path, so it cannot be sharded".into()),
    }
}

/// The part files this process trained in the current experiment.
pub fn trained_parts() -> Vec<String> {
    state().parts.clone()
}

/// One finished run, as saved in a part file.
#[derive(Serialize, Deserialize)]
pub struct Part {
    /// Metrics of every epoch.
    pub history: Vec<EpochMetrics>,
    /// The trained network.
    pub net: Network,
    /// Networks after each epoch (if the run kept them).
    pub snapshots: Vec<Network>,
}

const PART_MAGIC: &str = "xtask-run-part-v1";

/// Writes a part atomically.
pub fn save_part(path: &Path, part: &Part) -> Result<(), String> {
    let bytes = bincode::serde::encode_to_vec((PART_MAGIC, part), bincode::config::standard())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    crate::report::write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a part.
pub fn load_part(path: &Path) -> Result<Part, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("part file {}: {e}", path.display()))?;
    let ((magic, part), _): ((String, Part), usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| format!("part file {}: {e}", path.display()))?;
    if magic != PART_MAGIC {
        return Err(format!("part file {}: not a {PART_MAGIC} file", path.display()));
    }
    Ok(part)
}

/// The manifest a shard writes to `OUT/shard.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The experiment.
    pub experiment: String,
    /// This shard.
    pub shard: Shard,
    /// The command line of `reproduce` without `--shard` and `--out`.
    pub args: Vec<String>,
    /// Part files written, relative to `OUT/<experiment>/`.
    pub parts: Vec<String>,
}

/// `args` without `--shard X` and `--out X`.
pub fn strip_shard_and_out(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--shard" || a == "--out" {
            it.next();
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Writes `out/shard.json`.
pub fn write_manifest(out: &Path, m: &Manifest) -> std::io::Result<()> {
    crate::report::write_json(&out.join("shard.json"), &json!(m))
}

/// `cargo xtask collect DIR... [--out OUT]`: checks the shards, copies their parts into
/// `OUT/<experiment>/` and returns the `reproduce` command line that assembles them.
/// Nothing is written when a check fails.
pub fn prepare_collect(args: &[String]) -> Result<Vec<String>, String> {
    let mut dirs = Vec::new();
    let mut out = PathBuf::from("results");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s => dirs.push(PathBuf::from(s)),
        }
    }
    if dirs.is_empty() {
        return Err("name the shards' output folders: cargo xtask collect DIR... [--out OUT]".into());
    }
    let mut manifests = Vec::new();
    for d in &dirs {
        if !d.is_dir() {
            return Err(format!("shard folder {} does not exist", d.display()));
        }
        let p = d.join("shard.json");
        let text = std::fs::read_to_string(&p)
            .map_err(|e| format!("{}: {e} (not the --out folder of a `reproduce --shard` run?)", p.display()))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        manifests.push(m);
    }
    let first = &manifests[0];
    let count = first.shard.count;
    let mut seen = vec![None; count];
    for (m, d) in manifests.iter().zip(&dirs) {
        if m.experiment != first.experiment || m.args != first.args || m.shard.count != count {
            return Err(format!(
                "{} is a shard of `reproduce {} --shard {}/{}`, {} one of `reproduce {} --shard {}/{}`",
                d.display(),
                m.args.join(" "),
                m.shard.index,
                m.shard.count,
                dirs[0].display(),
                first.args.join(" "),
                first.shard.index,
                count
            ));
        }
        if let Some(other) = seen[m.shard.index].replace(d) {
            return Err(format!(
                "shard {}/{count} given twice: {} and {}",
                m.shard.index,
                other.display(),
                d.display()
            ));
        }
    }
    let missing: Vec<usize> = (0..count).filter(|&i| seen[i].is_none()).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| format!("{i}/{count}")).collect();
        let units = if first.experiment == "sparse-mnist" {
            let names: Vec<&str> =
                missing.iter().flat_map(|&index| mnist_units(Shard { index, count }).names()).collect();
            format!(
                "; its units {} would be missing",
                if names.is_empty() { "(none)".into() } else { names.join(", ") }
            )
        } else {
            String::new()
        };
        return Err(format!(
            "shard{} {} {} missing (folder not given){units}",
            if missing.len() > 1 { "s" } else { "" },
            list.join(", "),
            if missing.len() > 1 { "are" } else { "is" }
        ));
    }
    if first.experiment == "sparse-mnist" {
        let shards: Vec<(&Manifest, &Path)> = manifests.iter().zip(dirs.iter().map(PathBuf::as_path)).collect();
        merge_sparse_mnist(&shards, &out.join(&first.experiment))?;
        let mut line = first.args.clone();
        line.extend(["--out".to_owned(), out.to_string_lossy().into_owned()]);
        return Ok(line);
    }
    let mut copies = Vec::new();
    for (m, d) in manifests.iter().zip(&dirs) {
        for part in &m.parts {
            let from = d.join(&m.experiment).join(part);
            if !from.is_file() {
                return Err(format!("part {} of shard {}/{count} is missing", from.display(), m.shard.index));
            }
            copies.push((from, out.join(&m.experiment).join(part)));
        }
    }
    for (from, to) in &copies {
        let bytes = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
        crate::report::write_atomic(to, &bytes).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    let mut line = first.args.clone();
    line.extend(["--out".to_owned(), out.to_string_lossy().into_owned()]);
    Ok(line)
}

/// `collect` of `sparse-mnist`: merges the shards' training folders and attack logs into `out`
/// (`OUT/sparse-mnist`), which may hold an earlier collect's. Every shard's training identity
/// must be the same; a stage two shards (or a shard and `out`) hold must be the same result
/// (a shared stage such as `dictionary-bp` may differ in its measured seconds only:
/// [`sparse_bp::paper::same_stage_result`]); the attack logs must merge
/// ([`crate::attack_log::merge`]). Everything is checked before anything is written.
fn merge_sparse_mnist(shards: &[(&Manifest, &Path)], out: &Path) -> Result<(), String> {
    let identity_name = format!("training/{}", crate::exp_sparse_store::IDENTITY_FILE);
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let parse_identity = |p: &Path| -> Result<Value, String> {
        serde_json::from_slice(&read(p)?).map_err(|e| format!("{}: not a training identity ({e})", p.display()))
    };
    // (relative path, bytes, where from)
    let mut files: Vec<(String, Vec<u8>, PathBuf)> = Vec::new();
    let mut identity: Option<(Value, PathBuf)> = None;
    let existing = out.join(&identity_name);
    if existing.is_file() {
        identity = Some((parse_identity(&existing)?, existing));
    }
    let mut logs = Vec::new();
    for (m, d) in shards {
        let run = d.join(&m.experiment);
        for part in &m.parts {
            let from = run.join(part);
            if !from.is_file() {
                return Err(format!("part {} of shard {}/{} is missing", from.display(), m.shard.index, m.shard.count));
            }
            if *part == identity_name {
                let id = parse_identity(&from)?;
                match &identity {
                    Some((first, where_)) if *first != id => {
                        return Err(format!(
                            "{} and {} are training folders of different runs (identity.json differs: preset, seed, \
                             data or recipe)",
                            from.display(),
                            where_.display()
                        ));
                    }
                    Some(_) => {}
                    None => identity = Some((id, from.clone())),
                }
            } else if part == "attack-log.json" {
                logs.push(from);
            } else if let Some(stage) = part.strip_prefix("training/").and_then(|p| p.strip_suffix(".bin")) {
                let bytes = read(&from)?;
                let earlier = files.iter().find(|(p, ..)| p == part).map(|(_, b, w)| (b.clone(), w.clone()));
                let earlier = match earlier {
                    Some(e) => Some(e),
                    None if out.join(part).is_file() => Some((read(&out.join(part))?, out.join(part))),
                    None => None,
                };
                match earlier {
                    Some((first, where_)) => {
                        let same = sparse_bp::paper::same_stage_result(stage, &first, &bytes)
                            .map_err(|e| format!("{} or {}: {e}", where_.display(), from.display()))?;
                        if !same {
                            return Err(format!(
                                "training stage {stage} conflicts: {} and {} hold different results",
                                where_.display(),
                                from.display()
                            ));
                        }
                    }
                    None => files.push((part.clone(), bytes, from)),
                }
            } else {
                return Err(format!("shard {}/{}: unexpected part {part}", m.shard.index, m.shard.count));
            }
        }
    }
    let merged = crate::attack_log::merge(&logs, &out.join("attack-log.json")).map_err(|e| e.to_string())?;
    if let Some((_, from)) = &identity {
        let to = out.join(&identity_name);
        if *from != to {
            files.push((identity_name.clone(), read(from)?, from.clone()));
        }
    }
    for (part, bytes, _) in &files {
        let to = out.join(part);
        crate::report::write_atomic(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    let points = merged.write().map_err(|e| e.to_string())?;
    eprintln!(
        "collect sparse-mnist: {} shard(s), {} training file(s) and {points} attack point(s) merged into {}",
        shards.len(),
        files.len(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_syntax() {
        assert_eq!(Shard::parse("0/4"), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(Shard::parse("3/4"), Ok(Shard { index: 3, count: 4 }));
        for bad in ["3/2", "0/0", "2/2", "1", "a/2", "1/b", "-1/2", ""] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains(&format!("got `{bad}`")), "{bad}: {e}");
        }
    }

    /// The `sparse-mnist` shards k/N for N in {1, 2, 3, 7} (and 9: two shards idle) cover every
    /// unit exactly once; N = 1 is every unit; the balance is the one documented.
    #[test]
    fn mnist_shards_cover_every_unit_once() {
        use sparse_bp::paper::MNIST_UNITS;
        for count in [1, 2, 3, 7, 9] {
            let mut seen = vec![0; MNIST_UNITS.len()];
            let mut loads = Vec::new();
            for index in 0..count {
                let units = mnist_units(Shard { index, count });
                let mut load = 0;
                for (k, u) in MNIST_UNITS.iter().enumerate() {
                    if units.contains(u) {
                        seen[k] += 1;
                        load += MNIST_UNIT_COST[k];
                    }
                }
                assert_eq!(units.names().is_empty(), index >= 7, "{index}/{count}");
                loads.push(load);
            }
            assert_eq!(seen, vec![1; MNIST_UNITS.len()], "N = {count}");
            match count {
                1 => assert_eq!(mnist_units(Shard { index: 0, count: 1 }), sparse_bp::paper::Units::ALL),
                2 => assert_eq!(loads, [350, 353]),
                3 => assert_eq!(*loads.iter().max().unwrap(), 240),
                _ => {}
            }
        }
        assert_eq!(mnist_units(Shard { index: 0, count: 7 }).names(), ["gdp"]);
    }

    #[test]
    fn stripping_keeps_everything_but_shard_and_out() {
        let a: Vec<String> =
            "shd --quick --shard 1/2 --seed 3 --out /x --epochs 2".split(' ').map(String::from).collect();
        assert_eq!(strip_shard_and_out(&a), ["shd", "--quick", "--seed", "3", "--epochs", "2"]);
    }
}
