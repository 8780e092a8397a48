//! CPU time per sample of the clocked engine on the workloads of `benches/clocked_engine.rs`
//! (same data generators, batch of 64): process CPU seconds from `/proc/self/stat` divided by
//! samples, which stays meaningful when the shared machine is loaded and wall-clock figures are not.
//!
//! `cargo run --release -p bench-suite --example clocked_profile [fwd|ff]`
//! (no argument: recurrent 700-512r-20 forward and forward+backward; `fwd`: forward only;
//! `ff`: 700-256-256-20 feedforward).

use bench_suite::workload::*;
use snn_core::Simulator;

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let engine = engine();
    let mut rng = Rng(42);
    let net = if which == "ff" { feedforward_net(&mut rng, 250.0) } else { recurrent_net(&mut rng, 150.0) };
    let batch = shd_like_batch(64, &mut rng);
    describe(&which, &engine, &net, &batch);
    for _ in 0..2 {
        let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
        let r = engine.run_batch(&net, &batch).unwrap();
        let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
        eprintln!(
            "forward: {:.2} ms CPU/sample, wall {:.1} samples/s ({})",
            1e3 * (c1 - c0) / 64.0,
            64.0 / w1,
            r.len()
        );
        if which == "fwd" {
            continue;
        }
        let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
        let g = train_step(&engine, &net, &batch);
        let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
        eprintln!(
            "fwd+bwd: {:.2} ms CPU/sample, wall {:.1} samples/s ({})",
            1e3 * (c1 - c0) / 64.0,
            64.0 / w1,
            g.weights.len()
        );
    }
}
