//! Sparse connectivity (issue 19) on the SHD-shaped 700-512r-20 (recurrent) and 700-256-256-20
//! (feedforward) networks with delays: forward and training throughput of the dense network and of
//! sparse ones at connection probability 1.0, 0.5, 0.1 and 0 on the input and hidden projections
//! (readout dense), each repetition running every configuration in turn, and the cost per stored
//! synapse relative to the dense path of the same repetition — also net of the p = 0 network's
//! cost (no input or hidden synapse: what does not scale with synapses, i.e. neuron updates,
//! readout, the adjoint's per-step work and the per-target set-up of pull delivery). Net of the
//! floor, the ratio per synapse is `((T(p) - T(0)) / (S(p) - S(0))) / ((T(1) - T(0)) / (S(1) -
//! S(0)))` for times `T` and stored synapses `S` (the readout's stay in `S(0)`): with `S(p) - S(0)`
//! about `p` times the dense network's input and hidden synapses, this is `((T(p) - T(0)) / p) /
//! (T(1) - T(0))` with the measured fraction of synapses for `p`. The last column is the floor's
//! share of each configuration's time, `T(0) / T(p)`.
//!
//! The sparse networks keep the dense network's values on a random mask (`workload::sparsify`:
//! `fixed_probability`, seed 1 and 2) with the sparse weights scaled by `1/p`, so that every hidden neuron gets about
//! the same drive and the hidden activity stays comparable (otherwise a 10 % network is simply
//! silent and "fast"). Costs are CPU seconds of this process (user + system, 10 ms ticks: use
//! enough samples) per sample, robust to other load on a shared machine; compare the ratios
//! within one run. Under the default pull delivery the feedforward network pulls every
//! projection (sparse ones through `SparsePull`) and trains with the layered sweep; the
//! recurrent one pulls its input projection and pushes the others.
//!
//! `cargo run --release -p bench-suite --example sparse_connectivity [samples] [repetitions]`
//! (default 16 and 3).

use bench_suite::workload::{self, Rng, sparsify};
use snn_core::{ClockedState, ConnectionId, ForwardRecord, Network, SpikeTrains};
use snn_eventprop::optim::LrSchedule;

/// Synaptic events delivered per sample: each presynaptic spike (input or recorded) times the
/// number of its stored synapses, over every connection.
fn events(net: &Network, batch: &SpikeTrains, recs: &[ForwardRecord]) -> f64 {
    let (input, hidden) = workload::delivered_events(net, batch, recs);
    input + hidden
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

/// The networks of one workload: dense, then sparse at each of `ps`.
fn workload_nets(dense: &Network, ps: &[f64]) -> Vec<(String, Network)> {
    let mut nets = vec![("dense (p = 1.0)".to_string(), dense.clone())];
    for &p in ps {
        let net = sparsify(dense, p);
        assert!(net.connection(ConnectionId(0)).is_sparse());
        nets.push((format!("sparse p = {p}"), net));
    }
    nets
}

/// A quantity of a measured row.
type Of = fn(&Row) -> f64;

/// Median, minimum and maximum of `x` as `m (lo-hi)`.
fn spread(mut x: Vec<f64>) -> String {
    x.sort_by(f64::total_cmp);
    format!("{:.2} ({:.2}-{:.2})", x[x.len() / 2], x[0], x[x.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let mut rng = Rng(19);
    let batch = workload::shd_like_batch(samples, &mut rng);
    let ps = [1.0, 0.5, 0.1, 0.0];
    let workloads = [
        ("700-512r-20 (recurrent: input projection pulled, the rest pushed)", workload::recurrent_net(&mut rng, 150.0)),
        (
            "700-256-256-20 (feedforward: every projection pulled, layered sweep)",
            workload::feedforward_net(&mut rng, 150.0),
        ),
    ];
    println!(
        "delays U(0, 150) ms, T = 1 s, dt = 1 ms, {samples} SHD-like samples, {reps} repetitions (configurations \
         interleaved); CPU seconds per sample (threads: {}). p = 0 keeps no input or hidden synapse (the dense \
         readout stays): its cost is the part that does not scale with synapses. Ratios: median (min-max) over \
         the repetitions, each against the dense and p = 0 runs of the same repetition.",
        rayon::current_num_threads()
    );
    for (name, dense) in &workloads {
        let nets = workload_nets(dense, &ps);
        let mut runs: Vec<Vec<Row>> = (0..nets.len()).map(|_| Vec::new()).collect();
        for _ in 0..reps {
            for ((label, net), runs) in nets.iter().zip(&mut runs) {
                runs.push(measure(label, net, &batch));
            }
        }
        println!("\n{name}");
        println!(
            "| connectivity | synapses | hidden spikes / sample | synaptic events / sample | forward samples/s (CPU) | \
             training samples/s (CPU) | time per synapse vs dense, forward / training | the same net of p = 0 | \
             time per event vs dense, net of p = 0 | p = 0's share of the time, forward / training |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let (dense_runs, floor) = (&runs[0], &runs[runs.len() - 1]);
        for rows in &runs {
            // Per repetition, against the dense and p = 0 runs of the same repetition; `per`
            // picks the unit (synapses or delivered events), `net` subtracts the p = 0 run.
            let ratio = |f: Of, per: Of, net: bool| {
                let x: Vec<f64> = (0..reps)
                    .map(|k| {
                        let (r, d, z) = (&rows[k], &dense_runs[k], &floor[k]);
                        let (zt, zu) = if net { (f(z), per(z)) } else { (0.0, 0.0) };
                        ((f(r) - zt) / (per(r) - zu)) / ((f(d) - zt) / (per(d) - zu))
                    })
                    .collect();
                if x.iter().all(|v| v.is_finite()) { spread(x) } else { "-".into() }
            };
            let fwd: Of = |r| r.forward_cpu;
            let train: Of = |r| r.train_cpu;
            let syn: Of = |r| r.synapses as f64;
            let ev: Of = |r| r.events;
            // The floor's share of this configuration's time, per repetition.
            let share = |f: Of| spread((0..reps).map(|k| f(&floor[k]) / f(&rows[k])).collect());
            let r = &rows[0];
            println!(
                "| {} | {} | {:.0} | {:.2} M | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} |",
                r.label,
                r.synapses,
                r.spikes,
                r.events / 1e6,
                spread(rows.iter().map(|r| 1.0 / r.forward_cpu).collect()),
                spread(rows.iter().map(|r| 1.0 / r.train_cpu).collect()),
                ratio(fwd, syn, false),
                ratio(train, syn, false),
                ratio(fwd, syn, true),
                ratio(train, syn, true),
                ratio(fwd, ev, true),
                ratio(train, ev, true),
                share(fwd),
                share(train),
            );
        }
    }
}
