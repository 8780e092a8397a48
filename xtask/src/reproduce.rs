//! `cargo xtask reproduce [EXPERIMENT] [--quick | --medium] [--seed N] [--out DIR] [--data PATH]
//! [--synthetic] [--epochs N] [--spike-reg off|paper|STRENGTH] [--save-models DIR]
//! [--load-models DIR] [--shard I/N] [--config NAME] [--connectivity P]`.
//!
//! The driver: the experiment registry, argument handling, one output folder, `results.json`
//! and `summary.md` per experiment, and `SUMMARY.md`. The shared types are in `harness`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::exp_snn;
use crate::exp_sparse;
use crate::harness::{DynResult, Experiment, Options};
use crate::report::{self, LogFile, RunDir};
use crate::shard;

/// Every experiment `reproduce` knows, in the order `--quick` runs them.
pub fn experiments() -> Vec<Experiment> {
    vec![
        Experiment {
            name: "sequence-detection",
            about: "2 inputs -> 2 LI outputs, only delays learn (exact engine)",
            run: exp_snn::sequence_detection,
            takes_epochs: true,
            in_quick_all: true,
        },
        Experiment {
            name: "yin-yang",
            about: "Yin-Yang, hidden-size sweep with and without delays (exact engine)",
            run: exp_snn::yin_yang,
            takes_epochs: true,
            in_quick_all: true,
        },
        Experiment {
            name: "shd",
            about: "SHD: 1 recurrent layer with delays vs no delays (clocked engine)",
            run: exp_snn::shd,
            takes_epochs: true,
            in_quick_all: true,
        },
        Experiment {
            name: "ssc",
            about: "SSC: 2 feedforward layers with delays vs no delays (clocked engine)",
            run: exp_snn::ssc,
            takes_epochs: true,
            in_quick_all: true,
        },
        Experiment {
            name: "epoch-time",
            about: "speed: forward pass and one training epoch of 700-512r-20 and 700-256-256-20 on SHD-shaped data",
            run: exp_snn::epoch_time,
            takes_epochs: false,
            in_quick_all: true,
        },
        Experiment {
            name: "efficiency",
            about: "speed and memory against dilated-convolution delays (PyTorch, set up on first use), 700-256-256-20",
            run: exp_snn::efficiency,
            takes_epochs: false,
            in_quick_all: false,
        },
        Experiment {
            name: "sparse-synthetic",
            about: "BP/GBP/PGBP + approximators under I-FGSM, synthetic group-sparse task",
            run: exp_sparse::synthetic,
            takes_epochs: false,
            in_quick_all: true,
        },
        Experiment {
            name: "sparse-mnist",
            about: "BP/GBP/PGBP + approximators under I-FGSM on MNIST",
            run: exp_sparse::mnist,
            takes_epochs: false,
            in_quick_all: true,
        },
    ]
}

fn usage() -> String {
    let mut s = String::from(
        "cargo xtask reproduce [EXPERIMENT] [--quick | --medium] [--seed N] [--out DIR] [--data PATH] [--synthetic]\n\
         \x20                    [--epochs N] [--spike-reg off|paper|STRENGTH] [--save-models DIR] [--load-models DIR]\n\
         \x20                    [--shard I/N] [--config NAME] [--connectivity P] [--thesis-sizes]\n\n\
         With no EXPERIMENT and --quick, runs the quick version of every experiment but efficiency;\n\
         one whose data set is neither found nor downloadable is then skipped (with its reason).\n\
         --medium  sparse-mnist only: 6,000 training images (1,000 of them held out for early\n\
         \x20         stopping) and 1,000 test images with the full run's recipe (full: 60,000 with\n\
         \x20         5,000 held out, 10,000 test); --quick and --medium print an estimate of the\n\
         \x20         full run's time on this machine.\n\
         --thesis-sizes  sparse-mnist only (with any run size, --shard, collect): the 3-layer models at\n\
         \x20         the thesis's sizes, 128 -> 256 -> 4096 atoms (pooled LPGBP/PGDP 128 -> 256 -> 512,\n\
         \x20         groups of 8) with layer-1 dictionaries of their own, instead of the preset's\n\
         \x20         256 -> 128 -> 256 (layer 1 = the shallow dictionaries); everything else as in the\n\
         \x20         preset. Much longer (the README's sparse-mnist section says how much).\n\
         --data PATH  the data set (MNIST, SHD, SSC); default: $EVENTPROP_DATA/<name>, the user cache,\n\
         \x20            shared/data/<name> beside the repository, else downloaded (cargo xtask fetch).\n\
         --epochs N  training epochs of sequence-detection, yin-yang, shd and ssc instead of their\n\
         \x20           defaults (30; 300, quick 60; 100, quick 40); an interrupted run resumed with a\n\
         \x20           larger N trains on from its checkpoint.\n\
         --spike-reg: spike-count regulariser of the SHD/SSC hidden neurons (target 14 spikes per\n\
         neuron per example; paper strength 5e-11); default: paper in full runs, off in --quick.\n\
         --connectivity P  shd, ssc: input and hidden projections sparse, each synapse present with\n\
         \x20                 probability P (seeded); default dense (the paper's network).\n\
         --save-models DIR  sparse-*: write the trained models there (default <out>/<experiment>/models)\n\
         --load-models DIR  sparse-mnist: load the models of an earlier run (same --quick setting) and skip training\n\
         sparse-mnist keeps every finished training stage in <out>/sparse-mnist/training (kept after the run)\n\
         \x20 and every finished attack point in <out>/sparse-mnist/attack-log.json:\n\
         \x20 restarted with the same --out, preset, --seed and data, a run resumes there (training, attacks);\n\
         \x20 a folder or log of another run is refused (delete it or choose another --out to start afresh).\n\
         --config NAME  epoch-time: measure only this configuration (shd-700-512r-20, ff-700-256-256-20\n\
         \x20              or ssc-700-1024-1024-35; the part after the first `-` suffices, e.g. 700-256-256-20)\n\
         --shard I/N  yin-yang, shd, ssc: train only the runs k with k % N == I (I = 0..N-1, e.g. a\n\
         \x20           Slurm array task); `cargo xtask collect DIR... --out OUT` then writes the reports.\n\
         \x20           sparse-mnist: its 7 units (shallow, lbp, lgbp, lpgbp, dp, gdp, pgdp) dealt over the\n\
         \x20           N shards by their projected cost; a shard trains and attacks its units only (its\n\
         \x20           training stages and attack log; not with --load-models); collect merges them\n\
         \x20           and runs sparse-mnist there, resuming every stage and point\n\
         \nexperiments:\n",
    );
    for e in experiments() {
        s.push_str(&format!("  {:<20} {}\n", e.name, e.about));
    }
    s
}

/// `--shard I/N`, checked: one named experiment among [`shard::SHARDABLE`].
fn take_shard(args: &[String], all: &[Experiment]) -> Result<Option<shard::Shard>, String> {
    let Some(k) = args.iter().position(|a| a == "--shard") else { return Ok(None) };
    let s = shard::Shard::parse(args.get(k + 1).ok_or("--shard needs a value")?)?;
    let named: Vec<&str> =
        args.iter().filter(|a| all.iter().any(|e| e.name == a.as_str())).map(String::as_str).collect();
    match named.as_slice() {
        [e] if shard::SHARDABLE.contains(e) => Ok(Some(s)),
        _ => Err(format!("--shard applies to one named experiment of {}", shard::SHARDABLE.join(", "))),
    }
}

/// Options that exclude `--shard`: `--load-models` (a shard trains its units; the loaded models
/// would leave it nothing to do that `collect` could merge).
fn check_shard_options(shard: Option<shard::Shard>, opts: &Options) -> Result<(), String> {
    if shard.is_some() && opts.load_models.is_some() {
        return Err("--shard and --load-models exclude each other: a shard trains and attacks its own units \
                    (attack loaded models in one unsharded run)"
            .into());
    }
    Ok(())
}

/// What the command line asked for.
enum Request {
    /// Print the usage text.
    Help,
    /// Run these experiments (indices into [`experiments`]) with these options.
    Run(Box<Options>, Vec<usize>),
}

/// Parses the arguments of `reproduce` and picks the experiments; `Err` is the message for a
/// usage error.
fn parse(args: &[String], all: &[Experiment]) -> Result<Request, String> {
    let mut opts = Options::default();
    let mut chosen: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let mut path = |flag: &str| match value(flag)? {
            v if v.is_empty() => Err(format!("{flag} needs a path, got an empty one")),
            v => Ok(PathBuf::from(v)),
        };
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--medium" => opts.medium = true,
            "--thesis-sizes" => opts.thesis_sizes = true,
            "--synthetic" => opts.synthetic = true,
            "--seed" => {
                let v = value("--seed")?;
                opts.seed = v.parse().map_err(|_| format!("--seed expects a whole number >= 0, got `{v}`"))?;
            }
            "--epochs" => {
                let v = value("--epochs")?;
                match v.parse::<usize>() {
                    Ok(n) if n >= 1 => opts.epochs = Some(n),
                    _ => return Err(format!("--epochs expects a whole number >= 1, got `{v}`")),
                }
            }
            "--out" => opts.out = path("--out")?,
            "--data" => opts.data = Some(path("--data")?),
            "--spike-reg" => {
                let v = value("--spike-reg")?;
                let k = match v.as_str() {
                    "off" => 0.0,
                    "paper" => snn_eventprop::SpikeCountReg::paper().strength_upper,
                    _ => v
                        .parse::<f64>()
                        .map_err(|_| format!("--spike-reg expects off, paper or a number, got `{v}`"))?,
                };
                if !(k.is_finite() && k >= 0.0) {
                    return Err(format!("--spike-reg strength must be finite and >= 0, got `{v}`"));
                }
                opts.spike_reg = Some(k);
            }
            "--connectivity" => {
                let v = value("--connectivity")?;
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => opts.connectivity = Some(p),
                    _ => return Err(format!("--connectivity expects a probability in [0, 1], got `{v}`")),
                }
            }
            "--save-models" => opts.save_models = Some(path("--save-models")?),
            "--load-models" => opts.load_models = Some(path("--load-models")?),
            "--config" => {
                let v = value("--config")?;
                let labels = crate::exp_snn::speed_config_labels();
                match labels.iter().find(|l| crate::exp_snn::config_matches(l, &v)) {
                    Some(l) => opts.config = Some((*l).to_owned()),
                    None => return Err(format!("--config expects one of {}, got `{v}`", labels.join(", "))),
                }
            }
            "-h" | "--help" => return Ok(Request::Help),
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s if chosen.is_none() => chosen = Some(s.to_owned()),
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    let selected: Vec<usize> = match &chosen {
        Some(name) => match all.iter().position(|e| e.name == name) {
            Some(k) => vec![k],
            None => return Err(format!("unknown experiment `{name}`")),
        },
        None if opts.quick => (0..all.len()).filter(|&k| all[k].in_quick_all).collect(),
        None => return Err("name an experiment, or pass --quick to run the quick version of all".into()),
    };
    if opts.quick && opts.medium {
        return Err("--quick and --medium exclude each other: pick one run size".into());
    }
    if opts.medium && selected.iter().any(|&k| all[k].name != "sparse-mnist") {
        return Err("--medium applies to sparse-mnist only".into());
    }
    if opts.thesis_sizes && selected.iter().any(|&k| all[k].name != "sparse-mnist") {
        return Err("--thesis-sizes applies to sparse-mnist only (name it)".into());
    }
    if opts.epochs.is_some() && !selected.iter().any(|&k| all[k].takes_epochs) {
        let takers: Vec<&str> = all.iter().filter(|e| e.takes_epochs).map(|e| e.name).collect();
        return Err(format!("--epochs applies to {} only", takers.join(", ")));
    }
    if opts.config.is_some() && selected.iter().any(|&k| all[k].name != "epoch-time") {
        return Err("--config applies to epoch-time only (name it)".into());
    }
    Ok(Request::Run(Box::new(opts), selected))
}

/// Parses the arguments and runs the chosen experiments.
pub fn main(args: &[String]) -> ExitCode {
    let all = experiments();
    let shard = match take_shard(args, &all) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    // What collect re-runs: the command line without --shard and --out.
    let manifest_args = shard::strip_shard_and_out(args);
    let without_shard: Vec<String> = match args.iter().position(|a| a == "--shard") {
        Some(k) => args[..k].iter().chain(&args[k + 2..]).cloned().collect(),
        None => args.to_vec(),
    };
    let args = &without_shard[..];
    let (opts, selected) = match parse(args, &all) {
        Ok(Request::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Ok(Request::Run(opts, selected)) => (*opts, selected),
        Err(e) => {
            eprintln!("error: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_shard_options(shard, &opts) {
        eprintln!("error: {e}\n\n{}", usage());
        return ExitCode::from(2);
    }
    // `--quick` without a name runs every quick experiment; there, one whose data is neither on
    // this machine nor downloadable is skipped (with its reason) instead of failing the run.
    let quick_all: Vec<usize> = (0..all.len()).filter(|&k| all[k].in_quick_all).collect();
    let named = !(opts.quick && selected == quick_all);
    let selected: Vec<&Experiment> = selected.iter().map(|&k| &all[k]).collect();
    if let Some(s) = shard {
        shard::set_mode(shard::Mode::Shard(s));
    }

    let log = LogFile::default();
    report::init_tracing(&log);
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    let mut index = Vec::new();
    let selected_names: Vec<&str> = selected.iter().map(|e| e.name).collect();
    let mut shard_parts = Vec::new();
    let root = crate::cluster::is_root();
    for e in selected {
        // Other ranks of an MPI job compute their share and print only errors.
        if root {
            eprintln!("== {} ({}) -> {}", e.name, opts.preset(), opts.out.join(e.name).display());
        }
        shard::begin_experiment();
        let done = run_one(e, &opts, &log);
        shard_parts.extend(shard::trained_parts());
        match done {
            Ok(summary) => index.push(summary),
            Err(err) => match err.downcast_ref::<crate::fetch::DataUnavailable>() {
                Some(why) if !named => {
                    if root {
                        eprintln!("skipped: experiment {}: {why}", e.name);
                    }
                    index.push(format!("## {}\n\nskipped: {why}\n", e.name));
                    skipped.push(e.name);
                }
                _ => {
                    eprintln!("error: experiment {} failed: {err}", e.name);
                    failed.push(e.name);
                }
            },
        }
    }
    if let (Some(s), [e], true, true) = (shard, selected_names.as_slice(), failed.is_empty(), root) {
        let m = shard::Manifest {
            experiment: (*e).to_owned(),
            shard: s,
            args: manifest_args.clone(),
            parts: shard_parts.clone(),
        };
        if let Err(err) = shard::write_manifest(&opts.out, &m) {
            eprintln!("error: cannot write {}: {err}", opts.out.join("shard.json").display());
            failed.push(e);
        } else {
            eprintln!("shard {}/{}: {} part file(s) in {}", s.index, s.count, m.parts.len(), opts.out.display());
        }
    }
    if !index.is_empty() && root && shard.is_none() {
        let text = format!("# Reproduction runs\n\nseed {}, {}\n\n{}", opts.seed, opts.preset(), index.join("\n"));
        if let Err(e) = report::write_atomic(&opts.out.join("SUMMARY.md"), text.as_bytes()) {
            eprintln!("error: cannot write {}: {e}", opts.out.join("SUMMARY.md").display());
        }
        eprintln!("summary: {}", opts.out.join("SUMMARY.md").display());
    }
    if !skipped.is_empty() && root {
        eprintln!("skipped (data not available, see above): {}", skipped.join(", "));
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

fn run_one(e: &Experiment, opts: &Options, log: &LogFile) -> DynResult<String> {
    let dir = RunDir::create(&opts.out, e.name, log)?;
    let span = tracing::info_span!("experiment", name = e.name, seed = opts.seed, quick = opts.quick);
    let _g = span.enter();
    let outcome = (e.run)(opts, &dir)?;
    let wall = dir.wall_seconds();
    // An experiment that resets the high-water mark between its parts (epoch-time) reports the
    // peak of the earlier parts itself.
    let earlier = outcome.results.get("peak_rss_bytes").and_then(Value::as_u64);
    let rss = report::peak_rss_bytes().max(earlier);
    let mut results = Map::new();
    results.insert("experiment".into(), json!(e.name));
    results.insert("seed".into(), json!(opts.seed));
    results.insert("quick".into(), json!(opts.quick));
    results.insert("preset".into(), json!(opts.preset()));
    results.insert("ranks".into(), json!(crate::cluster::size()));
    results.insert("threads_per_rank".into(), json!(rayon::current_num_threads()));
    results.extend(outcome.results);
    results.insert("wall_seconds".into(), json!(wall));
    results.insert("peak_rss_bytes".into(), json!(rss));
    if !shard::writes_reports() {
        return Ok(String::new());
    }
    report::write_json(&dir.path("results.json"), &Value::Object(results))?;
    let rss_mib = rss.map_or("n/a".to_owned(), |b| format!("{:.0} MiB", b as f64 / 1048576.0));
    let md = format!(
        "## {}\n\n{}\n\nwall time {wall:.1} s, peak resident memory {rss_mib}; files in `{}`\n",
        e.name,
        outcome.summary,
        dir.dir.display()
    );
    report::write_atomic(&dir.path("summary.md"), md.as_bytes())?;
    eprintln!("{md}");
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<(Options, Vec<&'static str>), String> {
        let all = experiments();
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        match parse(&args, &all)? {
            Request::Help => Err("help".into()),
            Request::Run(o, sel) => Ok((*o, sel.iter().map(|&k| all[k].name).collect())),
        }
    }

    #[test]
    fn defaults_and_values() {
        let (o, sel) = run("shd --seed 3 --epochs 7 --data /d --out /o --spike-reg off").unwrap();
        assert_eq!(sel, ["shd"]);
        assert_eq!(o.connectivity, None);
        assert_eq!((o.seed, o.epochs, o.spike_reg, o.quick), (3, Some(7), Some(0.0), false));
        assert_eq!((o.data.unwrap(), o.out), (PathBuf::from("/d"), PathBuf::from("/o")));
        let (o, _) = run("ssc --connectivity 0.25").unwrap();
        assert_eq!(o.connectivity, Some(0.25));
        for bad in ["1.5", "-0.1", "NaN", "x"] {
            let e = run(&format!("shd --connectivity {bad}")).err().unwrap();
            assert!(e.contains("--connectivity expects a probability"), "{e}");
        }
        let (o, sel) = run("--quick").unwrap();
        // Every experiment but `efficiency`, which downloads PyTorch, and only when named.
        assert_eq!(sel.len(), experiments().len() - 1);
        assert!(!sel.contains(&"efficiency"));
        assert_eq!(run("efficiency --quick").unwrap().1, ["efficiency"]);
        assert_eq!((o.seed, o.epochs, o.spike_reg), (0, None, None));
        assert!(matches!(run("yin-yang --help"), Err(e) if e == "help"));
        for name in ["700-256-256-20", "ff-700-256-256-20"] {
            let (o, sel) = run(&format!("epoch-time --quick --config {name}")).unwrap();
            assert_eq!((o.config.as_deref(), sel.as_slice()), (Some("ff-700-256-256-20"), &["epoch-time"][..]));
        }
        assert_eq!(
            run("epoch-time --config 700-1024-1024-35").unwrap().0.config.as_deref(),
            Some("ssc-700-1024-1024-35")
        );
        assert_eq!(run("epoch-time").unwrap().0.config, None);
        let (o, sel) = run("sparse-mnist --medium --seed 2").unwrap();
        assert_eq!((sel, o.medium, o.quick, o.preset()), (vec!["sparse-mnist"], true, false, "medium"));
        assert_eq!(run("sparse-mnist").unwrap().0.preset(), "full");
        assert_eq!(run("sparse-mnist --quick").unwrap().0.preset(), "quick");
        assert!(!run("sparse-mnist --quick").unwrap().0.thesis_sizes);
        let (o, sel) = run("sparse-mnist --thesis-sizes --quick --seed 1").unwrap();
        assert_eq!((sel, o.thesis_sizes, o.preset(), o.seed), (vec!["sparse-mnist"], true, "quick", 1));
        assert!(run("sparse-mnist --medium --thesis-sizes").unwrap().0.thesis_sizes);
    }

    #[test]
    fn usage_errors_name_the_problem() {
        for (line, says) in [
            ("shd --epochs 0", "--epochs expects a whole number >= 1, got `0`"),
            ("shd --epochs x", "--epochs expects"),
            ("shd --epochs", "--epochs needs a value"),
            ("sparse-mnist --epochs 3", "--epochs applies to sequence-detection, yin-yang, shd, ssc only"),
            ("epoch-time --epochs 3", "--epochs applies to"),
            ("epoch-time --config 700-256-256", "--config expects one of shd-700-512r-20, ff-700-256-256-20"),
            ("epoch-time --config", "--config needs a value"),
            ("shd --config 700-256-256-20", "--config applies to epoch-time only"),
            ("--quick --config 700-256-256-20", "--config applies to epoch-time only"),
            ("shd --seed -1", "--seed expects a whole number >= 0, got `-1`"),
            ("shd --spike-reg -1", "--spike-reg strength must be finite and >= 0"),
            ("shd --spike-reg nan", "--spike-reg strength must be finite"),
            ("shd --frobnicate", "unknown option `--frobnicate`"),
            ("shd ssc", "unexpected argument `ssc`"),
            ("nope", "unknown experiment `nope`"),
            ("", "name an experiment"),
            ("sparse-mnist --quick --medium", "--quick and --medium exclude each other"),
            ("shd --medium", "--medium applies to sparse-mnist only"),
            ("--medium", "name an experiment"),
            ("shd --thesis-sizes", "--thesis-sizes applies to sparse-mnist only"),
            ("--quick --thesis-sizes", "--thesis-sizes applies to sparse-mnist only"),
        ] {
            match run(line) {
                Err(e) => assert!(e.contains(says), "`{line}`: got `{e}`, expected `{says}`"),
                Ok(_) => panic!("`{line}` was accepted"),
            }
        }
        // With every experiment (--quick), --epochs applies to those that train.
        assert_eq!(run("--quick --epochs 2").unwrap().0.epochs, Some(2));
    }

    #[test]
    fn empty_paths_are_refused_and_path_errors_name_the_path() {
        let all = experiments();
        for flag in ["--out", "--data", "--save-models", "--load-models"] {
            let args = vec!["shd".to_string(), flag.to_string(), String::new()];
            match parse(&args, &all) {
                Err(e) => assert!(e.contains(flag) && e.contains("empty"), "{e}"),
                Ok(_) => panic!("an empty {flag} was accepted"),
            }
        }
        // `--out FILE`: the error names the folder that cannot be created
        let dir = std::env::temp_dir().join(format!("xtask-out-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let log = crate::report::LogFile::default();
        let e = crate::report::RunDir::create(&file, "shd", &log).err().unwrap();
        assert!(e.to_string().contains(&file.join("shd").display().to_string()), "{e}");
        // stale temporary files of killed writes in the run folder are removed at the start
        let stale = dir.join("shd").join(".results.json.tmp-4294967295");
        std::fs::create_dir_all(dir.join("shd")).unwrap();
        std::fs::write(&stale, b"half").unwrap();
        crate::report::RunDir::create(&dir, "shd", &log).unwrap();
        assert_eq!(stale.exists(), !cfg!(target_os = "linux"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
