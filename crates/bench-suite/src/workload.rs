//! SHD-shaped workloads for the clocked engine (issues 2 and 3): 700 input channels with about
//! 8000 spikes per 1 s sample, the 700-512(recurrent)-20 and 700-256-256-20 networks, `dt = 1 ms`.
#![allow(missing_docs)]

use nalgebra::DMatrix;
use rayon::prelude::*;
use snn_core::{
    ClockedEngine, ClockedState, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SparseSynapses, SpikeTrains,
};
use snn_delays::DelayConstraint;
use snn_eventprop::optim::{AdamParams, LrSchedule, Optimiser, Trainable};
use snn_eventprop::{Adjoint, Gradients, Loss, backward_planned};

pub const N_IN: usize = 700;
pub const SPIKES_PER_SAMPLE: usize = 8000;
pub const T_END: f64 = 1000.0;
pub const DT: f64 = 1.0;
/// Mean input weight, set for ~10-20 hidden spikes per neuron per second.
pub const W_IN: f64 = 0.027;
/// Mean h1 -> h2 weight of the feedforward network.
pub const W_HH: f64 = 0.05;

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, clock ticks of
/// 1/100 s): per-sample costs that stay meaningful when the shared machine is loaded.
pub fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux)");
    let rest = &s[s.rfind(')').expect("stat has a command field") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime")) / 100.0
}

/// CPU seconds of this process so far, every thread, user + system, from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (nanosecond resolution, unlike the 10 ms ticks of
/// [`cpu_seconds`], so that short configurations are timed as well as long ones); on a platform
/// without it, [`cpu_seconds`]. Like it, robust to other processes' load on a shared machine.
pub fn process_cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        /// `struct timespec` of 64-bit Linux (glibc and musl).
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        /// `CLOCK_PROCESS_CPUTIME_ID` of `<time.h>` on Linux.
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable `struct timespec`; the C library's `clock_gettime`
        // (linked by std on Linux) writes only it.
        let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    cpu_seconds()
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    pub fn matrix(&mut self, rows: usize, cols: usize, f: impl Fn(&mut Self) -> f64) -> DMatrix<f64> {
        DMatrix::from_fn(rows, cols, |_, _| f(self))
    }
}

/// `n` samples of SHD-like input: 700 channels, ~8000 spikes over 1 s, channel rates varying smoothly.
pub fn shd_like_batch(n: usize, rng: &mut Rng) -> SpikeTrains {
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
pub fn recurrent_net(rng: &mut Rng, max_delay: f64) -> Network {
    recurrent_net_sized(rng, 512, 20, max_delay)
}

/// 700 -> `hidden` LIF (recurrent) -> `n_out` LI, drawn as [`recurrent_net`] draws its 512 and 20
/// (the same weight and delay distributions, the same order of draws): e.g. 256 and 20, or an
/// SSC-like 1024 and 35.
pub fn recurrent_net_sized(rng: &mut Rng, hidden: usize, n_out: usize, max_delay: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", N_IN);
    let h = b.lif("hidden", hidden, LifParams::default());
    let o = b.li("out", n_out, LiParams::default());
    b.connect(
        i,
        h,
        rng.matrix(hidden, N_IN, |r| r.normal(W_IN, 0.01)),
        rng.matrix(hidden, N_IN, |r| r.uniform() * max_delay),
    );
    b.connect(
        h,
        h,
        rng.matrix(hidden, hidden, |r| r.normal(0.0, 0.02)),
        rng.matrix(hidden, hidden, |r| r.uniform() * max_delay),
    );
    b.connect(h, o, rng.matrix(n_out, hidden, |r| r.normal(0.0, 0.03)), DMatrix::zeros(n_out, hidden));
    b.build().unwrap()
}

/// 700 -> 256 -> 256 -> 20 feedforward, delays U(0, max_delay) on the two hidden connections.
pub fn feedforward_net(rng: &mut Rng, max_delay: f64) -> Network {
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

/// The synapses of connection `k` (`rows x cols`) that `sparsify` and `mask_dense` keep at
/// probability `p` (`SparseSynapses::fixed_probability`, seed `1 + k`), and the weight scale `1/p`
/// (1 at `p = 0`, where no synapse is kept and the scale is irrelevant).
fn kept(rows: usize, cols: usize, k: usize, p: f64) -> (DMatrix<bool>, f64) {
    let pattern = SparseSynapses::fixed_probability(rows, cols, p, 1 + k as u64).expect("valid p");
    let mask = DMatrix::from_fn(rows, cols, |j, i| pattern.index(j, i).is_some());
    (mask, if p > 0.0 { 1.0 / p } else { 1.0 })
}

/// `dense`'s populations in a new builder, and their ids in it.
fn same_populations(dense: &Network) -> (NetworkBuilder, Vec<snn_core::PopulationId>) {
    let mut b = NetworkBuilder::new();
    let pops = dense
        .populations()
        .iter()
        .map(|q| match q.kind() {
            snn_core::NeuronKind::Input => b.input(q.name(), q.size()),
            snn_core::NeuronKind::Lif(l) => b.lif(q.name(), q.size(), *l),
            snn_core::NeuronKind::Li(l) => b.li(q.name(), q.size(), *l),
        })
        .collect();
    (b, pops)
}

/// `dense` with its input and hidden projections (every one but the readout's) stored sparse,
/// kept with probability `p` (`SparseSynapses::fixed_probability`, seed `1 + connection index`)
/// and their weights scaled by `1/p`, so that every hidden neuron gets about the same drive and
/// the hidden activity stays comparable (otherwise a 10 % network is simply silent and "fast").
/// `p = 0` keeps no input or hidden synapse.
pub fn sparsify(dense: &Network, p: f64) -> Network {
    let (mut b, pops) = same_populations(dense);
    for (k, c) in dense.connections().iter().enumerate() {
        let (pre, post) = (pops[c.pre().0], pops[c.post().0]);
        if c.post() == dense.output() {
            b.connect(pre, post, c.weights().clone(), c.delays().clone());
            continue;
        }
        let (rows, cols) = c.shape();
        let (mask, scale) = kept(rows, cols, k, p);
        let s = SparseSynapses::from_dense(&(c.weights() * scale), c.delays(), &mask).expect("same shapes");
        b.connect_sparse(pre, post, s);
    }
    b.build().expect("valid network")
}

/// The network of [`sparsify`]`(dense, p)` stored dense: the same synapses, weights and delays,
/// every other weight of the input and hidden projections zero (a dense, masked projection). It
/// computes what the sparse one computes (up to the summation order), at the dense path's cost.
/// Returns the network and its number of synapses with the mask's, i.e. the sparse network's,
/// count (the readout's included).
pub fn mask_dense(dense: &Network, p: f64) -> (Network, usize) {
    let (mut b, pops) = same_populations(dense);
    let mut kept_synapses = 0;
    for (k, c) in dense.connections().iter().enumerate() {
        let (pre, post) = (pops[c.pre().0], pops[c.post().0]);
        if c.post() == dense.output() {
            kept_synapses += c.weights().len();
            b.connect(pre, post, c.weights().clone(), c.delays().clone());
            continue;
        }
        let (rows, cols) = c.shape();
        let (mask, scale) = kept(rows, cols, k, p);
        kept_synapses += mask.iter().filter(|&&m| m).count();
        let w = DMatrix::from_fn(rows, cols, |j, i| if mask[(j, i)] { c.weights()[(j, i)] * scale } else { 0.0 });
        b.connect(pre, post, w, c.delays().clone());
    }
    (b.build().expect("valid network"), kept_synapses)
}

/// The paper's SSC network: 700 -> 1024 -> 1024 -> 35 feedforward, delays U(0, max_delay) on the
/// two hidden connections; the h1 -> h2 weights scaled to the 4x larger fan-in (mean / 4, sd / 2).
pub fn ssc_net(rng: &mut Rng, max_delay: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", N_IN);
    let h1 = b.lif("h1", 1024, LifParams::default());
    let h2 = b.lif("h2", 1024, LifParams::default());
    let o = b.li("out", 35, LiParams::default());
    b.connect(
        i,
        h1,
        rng.matrix(1024, N_IN, |r| r.normal(W_IN, 0.01)),
        rng.matrix(1024, N_IN, |r| r.uniform() * max_delay),
    );
    b.connect(
        h1,
        h2,
        rng.matrix(1024, 1024, |r| r.normal(W_HH / 4.0, 0.02)),
        rng.matrix(1024, 1024, |r| r.uniform() * max_delay),
    );
    b.connect(h2, o, rng.matrix(35, 1024, |r| r.normal(0.0, 0.03)), DMatrix::zeros(35, 1024));
    b.build().unwrap()
}

/// Prints spikes per hidden neuron per second and record bytes per sample.
pub fn describe(name: &str, engine: &ClockedEngine, net: &Network, batch: &SpikeTrains) {
    let recs = engine.run_batch(net, batch).unwrap();
    let hidden: usize =
        net.populations().iter().filter(|p| matches!(p.kind(), snn_core::NeuronKind::Lif(_))).map(|p| p.size()).sum();
    let spikes: usize = recs.iter().map(|r| r.spikes.len()).sum();
    let bytes: usize = recs.iter().map(record_bytes).sum();
    let n = recs.len() as f64;
    let (ev_in, ev_hid) = delivered_events(net, batch, &recs);
    eprintln!(
        "[{name}] {:.1} spikes/hidden neuron/s, {:.0} recorded spikes/sample, {:.0} bytes retained per sample \
         (T x N x 16 would be {} bytes); {:.2} M synaptic events/sample ({:.2} M from the input, {:.2} M from \
         hidden spikes)",
        spikes as f64 / n / hidden as f64 / (T_END / 1000.0),
        spikes as f64 / n,
        bytes as f64 / n,
        engine.num_steps() * net.num_neurons() * 16,
        (ev_in + ev_hid) / 1e6,
        ev_in / 1e6,
        ev_hid / 1e6,
    );
}

/// Synaptic events delivered per sample, `(from the input, from hidden spikes)`: each input spike
/// before `T_END` and each recorded spike times its synapses in every connection from its
/// population (the target population's size for a dense connection).
pub fn delivered_events(net: &Network, batch: &SpikeTrains, recs: &[ForwardRecord]) -> (f64, f64) {
    let (mut input, mut hidden) = (0usize, 0usize);
    for (s, r) in recs.iter().enumerate() {
        for c in net.connections() {
            // Each spike times its fan-out (all targets if dense, its stored synapses if sparse).
            if c.pre() == net.input() {
                let x = batch.sample(s);
                input += x
                    .times
                    .iter()
                    .zip(x.neurons)
                    .filter(|&(&t, _)| t < T_END)
                    .map(|(_, &i)| c.fan_out(i as usize).len)
                    .sum::<usize>();
            } else {
                let off = net.offset(c.pre());
                let range = off..off + net.population(c.pre()).size();
                hidden += r
                    .spikes
                    .neurons
                    .iter()
                    .filter(|&&g| range.contains(&(g as usize)))
                    .map(|&g| c.fan_out(g as usize - off).len)
                    .sum::<usize>();
            }
        }
    }
    let n = recs.len().max(1) as f64;
    (input as f64 / n, hidden as f64 / n)
}

pub fn record_bytes(r: &ForwardRecord) -> usize {
    r.spikes.heap_bytes() + 8 * (r.readout.values.capacity() + r.readout.times.capacity())
}

/// One training step's worth of work: forward, loss, backward for every sample; gradients
/// summed per thread (one chunk of the batch per rayon thread), then reduced.
pub fn train_step(engine: &ClockedEngine, net: &Network, batch: &SpikeTrains) -> Gradients {
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
            let n_out = net.population(net.output()).size();
            for s in t * chunk..((t + 1) * chunk).min(batch.len()) {
                engine.run_planned(net, &plan, batch.sample(s), &mut state, &mut rec).unwrap();
                let v = loss.evaluate(&rec.readout, s % n_out, s, T_END).unwrap();
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

/// The clocked engine of the workloads: `T = 1 s`, `dt = 1 ms`, exp-integral readout.
pub fn engine() -> ClockedEngine {
    ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), DT).expect("valid settings")
}

/// Which parameters learn in both workload networks: weights and delays of the two hidden
/// connections (input->hidden and recurrent, or input->h1 and h1->h2), weights only of the readout.
pub const TRAINABLE: [Trainable; 3] = [Trainable::BOTH, Trainable::BOTH, Trainable::WEIGHTS];

/// The paper's optimiser pair for the workloads: Adam (lr 1e-3, `weight_schedule`) on weights,
/// Adam (lr 0.1, constant) on delays, delays clamped to `[0, max_delay]`.
pub fn paper_optimiser(net: &Network, weight_schedule: LrSchedule, max_delay: f64) -> Optimiser {
    Optimiser::new(
        net,
        &TRAINABLE,
        (AdamParams::with_lr(1e-3), weight_schedule),
        (AdamParams::with_lr(0.1), LrSchedule::constant()),
        DelayConstraint::new(max_delay).expect("valid max delay"),
    )
    .expect("valid optimiser settings")
}
