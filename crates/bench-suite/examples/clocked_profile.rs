//! CPU time per sample of the clocked engine on the workloads of `benches/clocked_engine.rs`
//! (same data generators, batch of 64): process CPU seconds from `/proc/self/stat` divided by
//! samples, which stays meaningful when the shared machine is loaded and wall-clock figures are not.
//!
//! `cargo run --release -p bench-suite --example clocked_profile [fwd|ff|ssc] [trainer]`
//! (no argument: recurrent 700-512r-20 forward and forward+backward; `fwd`: forward only;
//! `ff`: 700-256-256-20 feedforward; `ssc`: the paper's SSC network 700-1024-1024-35 with
//! delays `U(0, 50)` clamped to 150 ms as the SSC preset; `trainer` adds a third figure: one
//! training step through
//! the real training path, `snn_eventprop::train::BatchWorkspace::compute` plus an Adam step on
//! weights and delays — what `Trainer` does per batch). `in-scale=F` multiplies the input weights
//! by `F`, to measure at another hidden firing rate (the paper's regulariser aims at about 14 Hz;
//! the workloads start at 19-21 Hz). Peak RSS (`VmHWM`) is printed at the end.
//!
//! Every figure is measured for both deliveries of the clocked engine, push (the ring buffer for
//! every projection) and pull (the default), alternating within each of the two rounds so that
//! both see the same machine load; the ratio pull/push of the samples per CPU second is printed.

use bench_suite::workload::*;
use snn_core::{ConnectionId, Delivery, Simulator};
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
    let (ff, ssc, fwd_only, trainer) = (has("ff"), has("ssc"), has("fwd"), has("trainer"));
    let pull = engine();
    let push = pull.clone().with_delivery(Delivery::Push);
    let mut rng = Rng(42);
    // (name, initial delays U(0, d) ms, delay clamp of the optimiser ms)
    let (name, init, max_delay) = if ssc {
        ("ssc", 50.0, 150.0)
    } else if ff {
        ("ff", 250.0, 250.0)
    } else {
        ("recurrent", 150.0, 150.0)
    };
    let mut net = if ssc {
        ssc_net(&mut rng, init)
    } else if ff {
        feedforward_net(&mut rng, init)
    } else {
        recurrent_net(&mut rng, init)
    };
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
    describe(name, &pull, &net, &batch);
    eprintln!("pull layered (no recurrent loop): {}", pull.plan(&net).unwrap().is_layered());
    // All configurations learn the delays of their two hidden connections, not of the readout.
    let flags = TRAINABLE.to_vec();
    let n_out = net.population(net.output()).size();
    let labels: Vec<usize> = (0..batch.len()).map(|s| s % n_out).collect();
    let idx: Vec<usize> = (0..batch.len()).collect();
    // One optimiser and workspace per delivery: both train the same network from the same state
    // (the Adam step is applied to a copy, so both paths see identical weights every round).
    let mut ws = BatchWorkspace::new(&net, 8).unwrap();
    // ms CPU per sample: [forward, fwd+bwd, trainer] x [push, pull], best of the rounds.
    let mut best = [[f64::MAX; 2]; 3];
    for round in 0..2 {
        for (k, engine) in [&push, &pull].into_iter().enumerate() {
            let label = ["push", "pull"][k];
            let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
            let r = engine.run_batch(&net, &batch).unwrap();
            let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
            best[0][k] = best[0][k].min(1e3 * (c1 - c0) / n);
            eprintln!(
                "round {round} {label} forward: {:.2} ms CPU/sample, wall {:.1} samples/s ({})",
                1e3 * (c1 - c0) / n,
                n / w1,
                r.len()
            );
            if fwd_only {
                continue;
            }
            let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
            let g = train_step(engine, &net, &batch);
            let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
            best[1][k] = best[1][k].min(1e3 * (c1 - c0) / n);
            eprintln!(
                "round {round} {label} fwd+bwd: {:.2} ms CPU/sample, wall {:.1} samples/s ({})",
                1e3 * (c1 - c0) / n,
                n / w1,
                g.weights.len()
            );
            if trainer {
                let mut opt = paper_optimiser(&net, LrSchedule::constant(), max_delay);
                let mut copy = net.clone();
                let (c0, w0) = (cpu_seconds(), std::time::Instant::now());
                let s = ws
                    .compute(engine, &copy, &batch, &labels, &idx, &Loss::ExpIntegralCrossEntropy, Some(&flags))
                    .unwrap();
                opt.step(&mut copy, ws.gradients(), 0).unwrap();
                let (c1, w1) = (cpu_seconds(), w0.elapsed().as_secs_f64());
                best[2][k] = best[2][k].min(1e3 * (c1 - c0) / n);
                eprintln!(
                    "round {round} {label} trainer step (BatchWorkspace::compute + Adam): {:.2} ms CPU/sample, wall \
                     {:.1} samples/s (loss {:.3}, delay[0][0] {:.3})",
                    1e3 * (c1 - c0) / n,
                    n / w1,
                    s.loss,
                    copy.connection(ConnectionId(0)).delays()[(0, 0)]
                );
            }
        }
    }
    for (what, b) in ["forward", "fwd+bwd", "trainer step"].iter().zip(best) {
        if b[0] < f64::MAX && b[1] < f64::MAX {
            eprintln!(
                "best of 2, {what}: push {:.2}, pull {:.2} ms CPU/sample (pull {:.2}x push)",
                b[0],
                b[1],
                b[0] / b[1]
            );
        }
    }
    let (ev_in, ev_hid) = delivered_events(&net, &batch, &pull.run_batch(&net, &batch).unwrap());
    let ns = |ms: f64| ms * 1e6 / (ev_in + ev_hid);
    eprintln!(
        "forward per delivered event, everything included ({:.2} M events/sample): push {:.2}, pull {:.2} ns",
        (ev_in + ev_hid) / 1e6,
        ns(best[0][0]),
        ns(best[0][1])
    );
    if best[1][0] < f64::MAX && best[1][1] < f64::MAX {
        // The backward pass alone: fwd+bwd minus forward (each the best of its rounds).
        eprintln!(
            "backward per delivered event (fwd+bwd minus forward): push {:.2}, pull {:.2} ns",
            ns(best[1][0] - best[0][0]),
            ns(best[1][1] - best[0][1])
        );
    }
    eprintln!("peak RSS (VmHWM): {}", vm_hwm());
}
