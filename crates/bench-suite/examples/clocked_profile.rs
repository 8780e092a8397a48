//! CPU time per sample of the clocked engine on the workloads of `benches/clocked_engine.rs`
//! (same data generators, batch of 64): process CPU seconds from `/proc/self/stat` divided by
//! samples, which stays meaningful when the shared machine is loaded and wall-clock figures are not.
//!
//! `cargo run --release -p bench-suite --example clocked_profile [fwd|ff]`
//! (no argument: recurrent 700-512r-20 forward and forward+backward; `fwd`: forward only;
//! `ff`: 700-256-256-20 feedforward).

use nalgebra::DMatrix;
use rayon::prelude::*;
use snn_core::{
    ClockedEngine, ClockedState, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SpikeTrains,
};
use snn_eventprop::{Adjoint, Gradients, Loss, backward_planned};

const N_IN: usize = 700;
const SPIKES_PER_SAMPLE: usize = 8000;
const T_END: f64 = 1000.0;
const DT: f64 = 1.0;
/// Mean input weight, set for ~10-20 hidden spikes per neuron per second.
const W_IN: f64 = 0.027;
/// Mean h1 -> h2 weight of the feedforward network.
const W_HH: f64 = 0.05;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn matrix(&mut self, rows: usize, cols: usize, f: impl Fn(&mut Self) -> f64) -> DMatrix<f64> {
        DMatrix::from_fn(rows, cols, |_, _| f(self))
    }
}

/// `n` samples of SHD-like input: 700 channels, ~8000 spikes over 1 s, channel rates varying smoothly.
fn shd_like_batch(n: usize, rng: &mut Rng) -> SpikeTrains {
    let mut batch = SpikeTrains::new(N_IN);
    for _ in 0..n {
        let count = SPIKES_PER_SAMPLE - 500 + (rng.uniform() * 1000.0) as usize;
        let centre = rng.uniform() * N_IN as f64;
        let mut times = Vec::with_capacity(count);
        let mut neurons = Vec::with_capacity(count);
        for _ in 0..count {
            times.push(rng.uniform() * 0.95 * T_END);
            let ch = (centre + rng.normal(0.0, 150.0)).rem_euclid(N_IN as f64) as u32;
            neurons.push(ch.min(N_IN as u32 - 1));
        }
        batch.push_unsorted(&times, &neurons).unwrap();
    }
    batch
}

/// 700 -> 512 LIF (recurrent) -> 20 LI; input->hidden and recurrent delays U(0, max_delay).
fn recurrent_net(rng: &mut Rng, max_delay: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", N_IN);
    let h = b.lif("hidden", 512, LifParams::default());
    let o = b.li("out", 20, LiParams::default());
    b.connect(
        i,
        h,
        rng.matrix(512, N_IN, |r| r.normal(W_IN, 0.01)),
        rng.matrix(512, N_IN, |r| r.uniform() * max_delay),
    );
    b.connect(h, h, rng.matrix(512, 512, |r| r.normal(0.0, 0.02)), rng.matrix(512, 512, |r| r.uniform() * max_delay));
    b.connect(h, o, rng.matrix(20, 512, |r| r.normal(0.0, 0.03)), DMatrix::zeros(20, 512));
    b.build().unwrap()
}

/// 700 -> 256 -> 256 -> 20 feedforward, delays U(0, max_delay) on the two hidden connections.
fn feedforward_net(rng: &mut Rng, max_delay: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", N_IN);
    let h1 = b.lif("h1", 256, LifParams::default());
    let h2 = b.lif("h2", 256, LifParams::default());
    let o = b.li("out", 20, LiParams::default());
    b.connect(
        i,
        h1,
        rng.matrix(256, N_IN, |r| r.normal(W_IN, 0.01)),
        rng.matrix(256, N_IN, |r| r.uniform() * max_delay),
    );
    b.connect(
        h1,
        h2,
        rng.matrix(256, 256, |r| r.normal(W_HH, 0.04)),
        rng.matrix(256, 256, |r| r.uniform() * max_delay),
    );
    b.connect(h2, o, rng.matrix(20, 256, |r| r.normal(0.0, 0.03)), DMatrix::zeros(20, 256));
    b.build().unwrap()
}

/// Prints spikes per hidden neuron per second and record bytes per sample.
fn describe(name: &str, engine: &ClockedEngine, net: &Network, batch: &SpikeTrains) {
    let recs = engine.run_batch(net, batch).unwrap();
    let hidden: usize =
        net.populations().iter().filter(|p| matches!(p.kind(), snn_core::NeuronKind::Lif(_))).map(|p| p.size()).sum();
    let spikes: usize = recs.iter().map(|r| r.spikes.len()).sum();
    let bytes: usize = recs.iter().map(record_bytes).sum();
    let n = recs.len() as f64;
    eprintln!(
        "[{name}] {:.1} spikes/hidden neuron/s, {:.0} recorded spikes/sample, {:.0} bytes retained per sample \
         (T x N x 16 would be {} bytes)",
        spikes as f64 / n / hidden as f64 / (T_END / 1000.0),
        spikes as f64 / n,
        bytes as f64 / n,
        engine.num_steps() * net.num_neurons() * 16,
    );
}

fn record_bytes(r: &ForwardRecord) -> usize {
    r.spikes.heap_bytes() + 8 * (r.readout.values.capacity() + r.readout.times.capacity())
}

/// One training step's worth of work: forward, loss, backward for every sample; gradients
/// summed per thread (one chunk of the batch per rayon thread), then reduced.
fn train_step(engine: &ClockedEngine, net: &Network, batch: &SpikeTrains) -> Gradients {
    let plan = engine.plan(net).unwrap();
    let threads = rayon::current_num_threads().max(1);
    let chunk = batch.len().div_ceil(threads);
    let loss = Loss::ExpIntegralCrossEntropy;
    (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut state = ClockedState::default();
            let mut adj = engine.adjoint_scratch(net);
            let mut grads = Gradients::zeros(net);
            let mut rec = ForwardRecord::default();
            for s in t * chunk..((t + 1) * chunk).min(batch.len()) {
                engine.run_planned(net, &plan, batch.sample(s), &mut state, &mut rec).unwrap();
                let v = loss.evaluate(&rec.readout, s % 20, s, T_END).unwrap();
                backward_planned(engine, net, &plan, batch.sample(s), &rec, &v.d_readout, &mut adj, &mut grads)
                    .unwrap();
            }
            grads
        })
        .reduce_with(|mut a, b| {
            a.add_assign(&b);
            a
        })
        .unwrap()
}

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), DT).unwrap();
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
