//! `cargo xtask`: project automation (reproduction runs, CI, data-set inspection).

use std::process::{Command, ExitCode};

mod dataset_info;
mod exp_snn;
mod exp_sparse;
mod exp_sparse_deep;
mod plot;
mod report;
mod reproduce;

const TASKS: &str = "\
cargo xtask <task>

tasks:
  ci                      run exactly what .ci/run runs (fmt check, clippy, tests)
  reproduce [EXP] [--quick] [--seed N] [--out DIR] [--data PATH] [--save-models DIR] [--load-models DIR]
                          reproduce an experiment of the papers
  dataset-info <shd|ssc|mnist> PATH
                          print a data set's statistics as one JSON object
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => {
            print!("{TASKS}");
            ExitCode::SUCCESS
        }
        Some("ci") => ci(),
        Some("reproduce") => reproduce::main(&args[1..]),
        Some("dataset-info") => dataset_info::run(&args[1..]),
        Some(other) => {
            eprintln!("unknown task `{other}`\n\n{TASKS}");
            ExitCode::from(2)
        }
    }
}

/// The test command of the README, preceded by the format and lint checks.
fn ci() -> ExitCode {
    let steps: [&[&str]; 3] = [
        &["fmt", "--all", "--", "--check"],
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        &["test", "--workspace", "--release"],
    ];
    for step in steps {
        eprintln!("$ cargo {}", step.join(" "));
        let ok = Command::new(env!("CARGO")).args(step).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("step failed: cargo {}", step.join(" "));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
