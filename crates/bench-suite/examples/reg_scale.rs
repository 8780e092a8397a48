//! How large is the paper's spike-count regulariser (target 14, strength 5e-11) against the task
//! gradient, in this workspace's loss normalisation? SHD-shaped batch (700 inputs, ~8000 spikes
//! per 1 s sample), 700-512(recurrent)-20, clocked engine, dt = 1 ms, exp-integral cross-entropy.
//!
//! `cargo run --release -p bench-suite --example reg_scale [samples]`
//!
//! The regulariser's part of the gradient is linear in its strength, so it is measured once as
//! `g(reg) - g(off)` and reported against the task gradient `g(off)`.

use bench_suite::workload::{DT, Rng, T_END, recurrent_net, shd_like_batch};
use snn_core::{ClockedEngine, ReadoutKind, SimConfig};
use snn_eventprop::regularise::{SpikeCountReg, mean_hidden_spikes};
use snn_eventprop::train::BatchWorkspace;
use snn_eventprop::{Gradients, Loss};

fn main() {
    let samples: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let mut rng = Rng(7);
    let net = recurrent_net(&mut rng, 150.0);
    let batch = shd_like_batch(samples, &mut rng);
    let labels: Vec<usize> = (0..samples).map(|s| s % 20).collect();
    let idx: Vec<usize> = (0..samples).collect();
    let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), DT).unwrap();
    let loss = Loss::ExpIntegralCrossEntropy;
    let mut ws = BatchWorkspace::<ClockedEngine>::new(&net, 8).unwrap();
    let t0 = std::time::Instant::now();
    ws.compute(&engine, &net, &batch, &labels, &idx, &loss, None).unwrap();
    let secs_off = t0.elapsed().as_secs_f64();
    let task: Gradients = ws.gradients().clone();
    let counts = ws.spike_counts().to_vec();
    let nbar = mean_hidden_spikes(&net, &counts, samples).unwrap_or(f64::NAN);
    let reg = SpikeCountReg::paper();
    ws.set_regulariser(Some(reg)).unwrap();
    let t0 = std::time::Instant::now();
    ws.compute(&engine, &net, &batch, &labels, &idx, &loss, None).unwrap();
    let secs_on = t0.elapsed().as_secs_f64();
    println!(
        "batch gradient: {secs_off:.2} s without the regulariser, {secs_on:.2} s with it (batch-mean counts: a counting pass first, its records reused by the backward passes)"
    );
    let mut reg_part = ws.gradients().clone();
    let mut neg = task.clone();
    neg.scale_mut(-1.0);
    reg_part.add_assign(&neg);
    let per_neuron: Vec<f64> = counts[700..700 + 512].iter().map(|&c| c as f64 / samples as f64).collect();
    let above = per_neuron.iter().filter(|&&n| n > reg.target).count();
    println!(
        "{samples} samples; hidden spikes per neuron per sample: mean {nbar:.2}, {above}/512 neurons above the target 14"
    );
    for (c, name) in [(0, "input->hidden"), (1, "recurrent")] {
        for (what, t, r) in
            [("weights", &task.weights[c], &reg_part.weights[c]), ("delays", &task.delays[c], &reg_part.delays[c])]
        {
            let mut ratios: Vec<f64> =
                t.iter().zip(r.iter()).filter(|(a, _)| **a != 0.0).map(|(a, b)| (b / a).abs()).collect();
            ratios.sort_by(f64::total_cmp);
            let med = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
            println!(
                "{name} {what}: |g_reg| / |g_task| (norms) = {:.3e}, median per entry {med:.3e} at strength {:.0e}; strength for norm ratio 1: {:.2e}",
                r.norm() / t.norm(),
                reg.strength_upper,
                reg.strength_upper * t.norm() / r.norm()
            );
        }
    }
}
