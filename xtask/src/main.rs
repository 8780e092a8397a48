//! `cargo xtask`: project automation (reproduction runs, CI, data-set inspection).

use std::process::{Command, ExitCode};

mod attack_log;
mod cluster;
mod dataset_info;
mod exp_snn;
mod exp_sparse;
mod exp_sparse_deep;
mod exp_sparse_store;
mod exp_sparse_timing;
mod fetch;
mod harness;
mod plot;
mod pyref;
mod report;
mod reproduce;
mod shard;

const TASKS: &str = "\
cargo xtask <task>

tasks:
  ci                      run exactly what .ci/run runs (fmt check, clippy, tests)
  reproduce [EXP] [--quick | --medium] [--seed N] [--out DIR] [--data PATH] [--save-models DIR] [--load-models DIR] [--shard I/N] [--thesis-sizes]
                          reproduce an experiment of the papers
  collect DIR... [--out OUT]
                          merge the outputs of `reproduce EXP --shard I/N` (I = 0..N-1) into the
                          reports of one unsharded run
  fetch <mnist|shd|ssc> [--dir DIR]
                          download, verify and cache a data set (DIR, else $EVENTPROP_DATA, else the user cache)
  dataset-info <shd|ssc|mnist> [PATH]
                          print a data set's statistics as one JSON object (without PATH: the cached copy)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => {
            print!("{TASKS}");
            ExitCode::SUCCESS
        }
        Some("ci") => ci(),
        Some("reproduce") => {
            // MPI (feature `mpi`) starts before any experiment and ends after the last one.
            let session = match cluster::init() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if !cluster::is_root() {
                harness::hide_progress(); // rank 0 of an MPI job draws
            }
            let code = reproduce::main(&args[1..]);
            if code != ExitCode::SUCCESS {
                session.abort_if_distributed(1);
            }
            code
        }
        Some("collect") => match shard::prepare_collect(&args[1..]) {
            Ok(line) => {
                shard::set_mode(shard::Mode::Collect);
                reproduce::main(&line)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Some("dataset-info") => dataset_info::run(&args[1..]),
        Some("fetch") => fetch::run(&args[1..]),
        Some(other) => {
            eprintln!("unknown task `{other}`\n\n{TASKS}");
            ExitCode::from(2)
        }
    }
}

/// The test command of the README (what `.ci/run` runs): format and lint checks, the test
/// suite in release mode with the CI proptest seed (unless one is set), the docs with
/// warnings as errors, the README's first command on a fresh clone (`.ci/fresh-clone`) and
/// `.ci/mpi-check` (the `mpi` feature under mpirun).
fn ci() -> ExitCode {
    let seed = std::env::var("PROPTEST_RNG_SEED").unwrap_or_else(|_| "20261128".into());
    // (cargo arguments, one environment variable for that step)
    type Step<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>);
    let steps: [Step; 4] = [
        (&["fmt", "--all", "--", "--check"], None),
        (&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], None),
        (&["test", "--workspace", "--release"], Some(("PROPTEST_RNG_SEED", seed.as_str()))),
        (&["doc", "--workspace", "--no-deps"], Some(("RUSTDOCFLAGS", "-D warnings"))),
    ];
    for (step, env) in steps {
        eprintln!("$ cargo {}", step.join(" "));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(step);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        if !cmd.status().is_ok_and(|s| s.success()) {
            eprintln!("step failed: cargo {}", step.join(" "));
            return ExitCode::FAILURE;
        }
    }
    eprintln!("$ bash .ci/fresh-clone");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    if !Command::new("bash").arg(".ci/fresh-clone").current_dir(root).status().is_ok_and(|s| s.success()) {
        eprintln!("step failed: bash .ci/fresh-clone");
        return ExitCode::FAILURE;
    }
    // The `mpi` feature (installs Open MPI and libclang when missing, builds, runs mpirun -n 1/2/3).
    eprintln!("$ bash .ci/mpi-check");
    if !Command::new("bash").arg(".ci/mpi-check").current_dir(root).status().is_ok_and(|s| s.success()) {
        eprintln!("step failed: bash .ci/mpi-check");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
