//! CPU time per sample of the clocked engine on the workloads of `benches/clocked_engine.rs`
//! (same data generators, batch of 64): process CPU seconds from `/proc/self/stat` divided by
//! samples, which stays meaningful when the shared machine is loaded and wall-clock figures are not.
//!
//! `cargo run --release -p bench-suite --example clocked_profile [fwd|ff] [trainer]`
//! (no argument: recurrent 700-512r-20 forward and forward+backward; `fwd`: forward only;
//! `ff`: 700-256-256-20 feedforward; `trainer` adds a third figure: one training step through
//! the real training path, `snn_eventprop::train::BatchWorkspace::compute` plus an Adam step on
//! weights and delays — what `Trainer` does per batch). `in-scale=F` multiplies the input weights
//! by `F`, to measure at another hidden firing rate (the paper's regulariser aims at about 14 Hz;
//! the workloads start at 19-21 Hz). Peak RSS (`VmHWM`) is printed at the end.

use bench_suite::workload::*;
use snn_core::{ConnectionId, Simulator};
use snn_eventprop::Loss;
use snn_eventprop::optim::LrSchedule;
use snn_eventprop::train::BatchWorkspace;

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let (ff, fwd_only, trainer) = (has("ff"), has("fwd"), has("trainer"));
    let engine = engine();
    let mut rng = Rng(42);
    let mut net = if ff { feedforward_net(&mut rng, 250.0) } else { recurrent_net(&mut rng, 150.0) };
    let in_scale = args.iter().find_map(|a| a.strip_prefix("in-scale=")).map(|f| f.parse::<f64>());
    match in_scale {
        Some(Ok(f)) if f.is_finite() => *net.weights_mut(ConnectionId(0)) *= f,
        Some(_) => {
            eprintln!("in-scale=F needs a finite number F");
            std::process::exit(2);
        }
        None => {}
    }
    let batch = shd_like_batch(64, &mut rng);
    let n = batch.len() as f64;
    describe(if ff { "ff" } else { "recurrent" }, &engine, &net, &batch);
    // Both configurations learn the delays of their two hidden connections, not of the readout.
    let flags = TRAINABLE.to_vec();
    let mut opt = paper_optimiser(&net, LrSchedule::constant(), if ff { 250.0 } else { 150.0 });
    let mut ws = BatchWorkspace::new(&net, 8).unwrap();
    let labels: Vec<usize> = (0..batch.len()).map(|s| s % 20).collect();
    let idx: Vec<usize> = (0..batch.len()).collect();
    for _ in 0..2 {
        let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
        let r = engine.run_batch(&net, &batch).unwrap();
        let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
        eprintln!("forward: {:.2} ms CPU/sample, wall {:.1} samples/s ({})", 1e3 * (c1 - c0) / n, n / w1, r.len());
        if fwd_only {
            continue;
        }
        let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
        let g = train_step(&engine, &net, &batch);
        let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
        eprintln!(
            "fwd+bwd: {:.2} ms CPU/sample, wall {:.1} samples/s ({})",
            1e3 * (c1 - c0) / n,
            n / w1,
            g.weights.len()
        );
        if trainer {
            let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
            let s =
                ws.compute(&engine, &net, &batch, &labels, &idx, &Loss::ExpIntegralCrossEntropy, Some(&flags)).unwrap();
            opt.step(&mut net, ws.gradients(), 0).unwrap();
            let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
            eprintln!(
                "trainer step (BatchWorkspace::compute + Adam): {:.2} ms CPU/sample, wall {:.1} samples/s (loss {:.3}, \
                 delay[0][0] {:.3})",
                1e3 * (c1 - c0) / n,
                n / w1,
                s.loss,
                net.connection(ConnectionId(0)).delays()[(0, 0)]
            );
        }
    }
    eprintln!("peak RSS (VmHWM): {}", vm_hwm());
}
