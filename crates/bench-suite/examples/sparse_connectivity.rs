//! Sparse connectivity (issue 19) on the SHD-shaped 700-512r-20 network with delays: forward and
//! training throughput at connection probability 1.0 (the dense path), and sparse with p = 1.0,
//! 0.5 and 0.1 on the input and recurrent projections (readout dense), all in one run, and the
//! cost per stored synapse and per delivered synaptic event relative to the dense path.
//!
//! The sparse networks keep the dense network's values on a random mask (`fixed_probability`,
//! seed 1 and 2) with the input and recurrent weights scaled by `1/p`, so that every hidden
//! neuron gets about the same drive and the hidden activity stays comparable (otherwise a 10 %
//! network is simply silent and "fast"). Costs are CPU seconds of this process (user + system)
//! per sample, robust to other load on a shared machine; compare the ratios within one run.
//! Sparse projections are pushed through their fan-outs and trained with the per-event sweep
//! (the dense path pulls the input projection and uses the deferred sweep).
//!
//! `cargo run --release -p bench-suite --example sparse_connectivity [samples]` (default 16).
//!
//! Measured with 64 samples on the shared 2-core machine at load average 9.7-9.8 (CPU samples/s
//! = 1 / CPU seconds per sample; forward single-threaded, training on 2 rayon threads):
//!
//! | connectivity | synapses | events / sample | forward samples/s | training samples/s | forward / training time per synapse vs dense |
//! | --- | --- | --- | --- | --- | --- |
//! | dense | 630,784 | 9.15 M | 37.2 | 14.6 | 1.00 / 1.00 |
//! | sparse p = 1.0 | 630,784 | 9.15 M | 47.1 | 14.4 | 0.79 / 1.02 |
//! | sparse p = 0.5 | 320,225 | 4.66 M | 88.9 | 24.2 | 0.82 / 1.19 |
//! | sparse p = 0.1 | 72,164 | 1.15 M | 213.3 | 78.0 | 1.52 / 1.64 |
//!
//! Time falls with the synapses down to p = 0.5; at p = 0.1 the fixed per-step and per-spike
//! costs (state updates of 532 neurons x 1000 steps, the adjoint's per-step work, spike handling)
//! dominate, so the time per synapse rises to ~1.5x.

use bench_suite::workload::{self, Rng, T_END};
use nalgebra::DMatrix;
use snn_core::{ClockedState, ConnectionId, ForwardRecord, Network, NetworkBuilder, SparseSynapses, SpikeTrains};
use snn_eventprop::optim::LrSchedule;

/// `dense` with its input and recurrent projections kept with probability `p` and scaled by `1/p`.
fn sparsify(dense: &Network, p: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let pops: Vec<_> = dense
        .populations()
        .iter()
        .map(|q| match q.kind() {
            snn_core::NeuronKind::Input => b.input(q.name(), q.size()),
            snn_core::NeuronKind::Lif(l) => b.lif(q.name(), q.size(), *l),
            snn_core::NeuronKind::Li(l) => b.li(q.name(), q.size(), *l),
        })
        .collect();
    for (k, c) in dense.connections().iter().enumerate() {
        let (pre, post) = (pops[c.pre().0], pops[c.post().0]);
        if c.post() == dense.output() {
            b.connect(pre, post, c.weights().clone(), c.delays().clone());
            continue;
        }
        let (rows, cols) = c.shape();
        let pattern = SparseSynapses::fixed_probability(rows, cols, p, 1 + k as u64).expect("valid p");
        let mask = DMatrix::from_fn(rows, cols, |j, i| pattern.index(j, i).is_some());
        let s = SparseSynapses::from_dense(&(c.weights() / p), c.delays(), &mask).expect("same shapes");
        b.connect_sparse(pre, post, s);
    }
    b.build().expect("valid network")
}

/// Synaptic events delivered per sample: each presynaptic spike (input or recorded) times the
/// number of its stored synapses, over every connection.
fn events(net: &Network, batch: &SpikeTrains, recs: &[ForwardRecord]) -> f64 {
    let mut total = 0usize;
    for (s, r) in recs.iter().enumerate() {
        for c in net.connections() {
            if c.pre() == net.input() {
                let x = batch.sample(s);
                total += x
                    .times
                    .iter()
                    .zip(x.neurons)
                    .filter(|&(&t, _)| t < T_END)
                    .map(|(_, &i)| c.fan_out(i as usize).len)
                    .sum::<usize>();
            } else {
                let off = net.offset(c.pre());
                let n = net.population(c.pre()).size();
                total += r
                    .spikes
                    .neurons
                    .iter()
                    .filter(|&&g| (off..off + n).contains(&(g as usize)))
                    .map(|&g| c.fan_out(g as usize - off).len)
                    .sum::<usize>();
            }
        }
    }
    total as f64 / recs.len().max(1) as f64
}

struct Row {
    label: String,
    synapses: usize,
    events: f64,
    spikes: f64,
    forward_cpu: f64,
    train_cpu: f64,
}

fn measure(label: &str, net: &Network, batch: &SpikeTrains) -> Row {
    let engine = workload::engine();
    let plan = engine.plan(net).expect("plan");
    // Forward: every sample once to warm up, then timed.
    let mut state = ClockedState::default();
    let mut recs = vec![ForwardRecord::default(); batch.len()];
    for (s, r) in recs.iter_mut().enumerate() {
        engine.run_planned(net, &plan, batch.sample(s), &mut state, r).expect("forward");
    }
    let t0 = workload::cpu_seconds();
    for (s, r) in recs.iter_mut().enumerate() {
        engine.run_planned(net, &plan, batch.sample(s), &mut state, r).expect("forward");
    }
    let forward_cpu = (workload::cpu_seconds() - t0) / batch.len() as f64;
    // Training: forward + backward of the batch and one optimiser step.
    let mut trained = net.clone();
    let mut opt = workload::paper_optimiser(&trained, LrSchedule::constant(), 150.0);
    let t0 = workload::cpu_seconds();
    let mut g = workload::train_step(&engine, &trained, batch);
    g.scale_mut(1.0 / batch.len() as f64);
    opt.step(&mut trained, &g, 0).expect("optimiser step");
    let train_cpu = (workload::cpu_seconds() - t0) / batch.len() as f64;
    let spikes = recs.iter().map(|r| r.spikes.len()).sum::<usize>() as f64 / recs.len() as f64;
    Row {
        label: label.into(),
        synapses: net.num_synapses(),
        events: events(net, batch, &recs),
        spikes,
        forward_cpu,
        train_cpu,
    }
}

fn main() {
    let samples: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let mut rng = Rng(19);
    let batch = workload::shd_like_batch(samples, &mut rng);
    let dense = workload::recurrent_net(&mut rng, 150.0);
    let mut rows = vec![measure("dense (p = 1.0)", &dense, &batch)];
    for p in [1.0, 0.5, 0.1] {
        let net = sparsify(&dense, p);
        assert!(net.connection(ConnectionId(0)).is_sparse());
        rows.push(measure(&format!("sparse p = {p}"), &net, &batch));
    }
    let base = &rows[0];
    println!(
        "700-512r-20, delays U(0, 150) ms, T = 1 s, dt = 1 ms, {samples} SHD-like samples; CPU seconds per sample \
         (threads: {})",
        rayon::current_num_threads()
    );
    println!(
        "| connectivity | synapses | hidden spikes / sample | synaptic events / sample | forward samples/s (CPU) | \
         training samples/s (CPU) | forward time per synapse vs dense | training time per synapse vs dense | \
         forward time per event vs dense | training time per event vs dense |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let per_syn = |t: f64, tb: f64| (t / r.synapses as f64) / (tb / base.synapses as f64);
        let per_ev = |t: f64, tb: f64| (t / r.events) / (tb / base.events);
        println!(
            "| {} | {} | {:.0} | {:.2} M | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.label,
            r.synapses,
            r.spikes,
            r.events / 1e6,
            1.0 / r.forward_cpu,
            1.0 / r.train_cpu,
            per_syn(r.forward_cpu, base.forward_cpu),
            per_syn(r.train_cpu, base.train_cpu),
            per_ev(r.forward_cpu, base.forward_cpu),
            per_ev(r.train_cpu, base.train_cpu),
        );
    }
}
