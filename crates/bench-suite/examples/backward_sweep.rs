//! The gradient sweeps of the clocked backward pass on the SHD-shaped workloads: CPU time per
//! sample of the backward pass alone (forward records computed beforehand), for
//! `GradientSweep::PerEvent` and the default `GradientSweep::Deferred` of the push engine
//! (`Delivery::Push`: the step-by-step sweep), and the default of the pull engine (for a network
//! without recurrent loops the layered sweep, otherwise the same step-by-step sweep), alternating
//! so that all see the same machine load (best of 5 reported), and the largest difference between
//! their gradients and the per-event sweep's relative to each matrix's largest entry. Run with `RAYON_NUM_THREADS=1` for the
//! single-core figure; the default uses both cores, which share caches.
//!
//! With `p=P` the network's input and hidden projections are sparse, kept with probability `P`
//! and scaled by `1/P` (`workload::sparsify`): the per-event sweep walks their fan-outs, the
//! deferred sums their per-target views block by block. Times: best and median of the 5.
//!
//! `cargo run --release -p bench-suite --example backward_sweep [ff] [p=P]`

use bench_suite::workload::*;
use rayon::prelude::*;
use snn_core::{ClockedEngine, ClockedState, Delivery, ForwardRecord};
use snn_eventprop::{Adjoint, GradientSweep, Gradients, Loss, backward_planned};

fn main() {
    let ff = std::env::args().any(|a| a == "ff");
    let pull = engine();
    let engine = pull.clone().with_delivery(Delivery::Push);
    let mut rng = Rng(42);
    let p: Option<f64> = std::env::args().find_map(|a| a.strip_prefix("p=").map(|v| v.parse().expect("p=P, a number")));
    let net = if ff { feedforward_net(&mut rng, 250.0) } else { recurrent_net(&mut rng, 150.0) };
    let net = match p {
        Some(p) => sparsify(&net, p),
        None => net,
    };
    let batch = shd_like_batch(64, &mut rng);
    let name = if ff { "ff" } else { "recurrent" };
    describe(&p.map_or(name.to_string(), |p| format!("{name}, sparse p = {p}")), &engine, &net, &batch);
    let plan = engine.plan(&net).unwrap();
    let loss = Loss::ExpIntegralCrossEntropy;
    let recs: Vec<(ForwardRecord, Vec<f64>)> = (0..batch.len())
        .into_par_iter()
        .map_init(ClockedState::default, |st, s| {
            let mut rec = ForwardRecord::default();
            engine.run_planned(&net, &plan, batch.sample(s), st, &mut rec).unwrap();
            let v = loss.evaluate(&rec.readout, s % 20, s, T_END).unwrap();
            (rec, v.d_readout)
        })
        .collect();
    let threads = rayon::current_num_threads().max(1);
    let chunk = batch.len().div_ceil(threads);
    let run = |engine: &ClockedEngine, sweep: GradientSweep| -> Gradients {
        (0..threads)
            .into_par_iter()
            .map(|t| {
                let mut adj = engine.adjoint_scratch(&net);
                let engine = engine.clone();
                adj.set_sweep(sweep);
                let mut g = Gradients::zeros(&net);
                let first = t * chunk;
                for (s, (rec, d)) in recs.iter().enumerate().skip(first).take(chunk) {
                    backward_planned(&engine, &net, &plan, batch.sample(s), rec, d, &mut adj, &mut g).unwrap();
                }
                g
            })
            .reduce_with(|mut a, b| {
                a.add_assign(&b);
                a
            })
            .unwrap()
    };
    let n = batch.len() as f64;
    let mut last = Vec::new();
    let mut times: [Vec<f64>; 3] = Default::default();
    let variants = [
        ("push per-event", &engine, GradientSweep::PerEvent),
        ("push deferred", &engine, GradientSweep::DEFAULT),
        ("pull (default)", &pull, GradientSweep::DEFAULT),
    ];
    for rep in 0..5 {
        for (v, &(name, e, sweep)) in variants.iter().enumerate() {
            let c0 = cpu_seconds();
            let g = run(e, sweep);
            let ms = 1e3 * (cpu_seconds() - c0) / n;
            times[v].push(ms);
            eprintln!("rep {rep} {name}: backward {ms:.2} ms CPU/sample");
            if rep == 0 {
                last.push(g);
            }
        }
    }
    let [best, median] = [0, 2].map(|k| {
        times.clone().map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[k]
        })
    });
    eprintln!(
        "best of 5: push per-event {:.2}, push deferred {:.2}, pull {:.2} ms CPU/sample",
        best[0], best[1], best[2]
    );
    eprintln!(
        "median of 5: push per-event {:.2}, push deferred {:.2}, pull {:.2} ms CPU/sample",
        median[0], median[1], median[2]
    );
    for (k, other) in last.iter().enumerate().skip(1) {
        let a = &last[0];
        let mut worst = 0.0f64;
        for (x, y) in a.weights.iter().zip(&other.weights).chain(a.delays.iter().zip(&other.delays)) {
            let scale = x.amax().max(1e-300);
            worst = worst.max((x - y).amax() / scale);
        }
        eprintln!(
            "largest difference to the per-event sweep, {}, relative to each matrix's largest entry: {worst:.2e}",
            variants[k].0
        );
    }
}
