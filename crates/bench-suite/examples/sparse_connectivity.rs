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
//! The same networks are also run stored dense, masked (`workload::mask_dense`: the sparse
//! network's synapses, weights and delays in dense matrices, zeros elsewhere; the same
//! computation up to summation order, at the dense path's cost), at p = 0.5, 0.1 and 0. The
//! "synaptic part" column takes each configuration net of the p = 0 floor of its own storage:
//! `((T(p) - T(0)) / (S(p) - S(0)))` with sparse `T(0)` for the sparse rows and masked-dense `T(0)`
//! for the dense and masked rows (`S` counting the mask's synapses), over the same for the dense
//! network. A dense projection with zero weights still delivers every input event, so the dense
//! storage's floor keeps that work: its synaptic part is what hidden activity adds, and the masked
//! rows show how the dense path's cost follows the kept synapses (it barely does).
//!
//! The sparse networks keep the dense network's values on a random mask (`workload::sparsify`:
//! `fixed_probability`, seed 1 and 2) with the sparse weights scaled by `1/p`, so that every hidden neuron gets about
//! the same drive and the hidden activity stays comparable (otherwise a 10 % network is simply
//! silent and "fast"). Costs are CPU seconds of this process (user + system, all threads,
//! `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` through `workload::process_cpu_seconds`) per sample, robust to other load on a shared machine; compare the ratios
//! within one run. Under the default pull delivery the feedforward network pulls every
//! projection (sparse ones through `SparsePull`) and trains with the layered sweep; the
//! recurrent one pulls its input projection and pushes the others.
//!
//! Training is timed through the trainer's own batch step (`BatchWorkspace::compute` with the
//! default chunks of 8 samples, whose workers keep their buffers from batch to batch, and an Adam
//! step on weights and delays): one untimed step, then two timed ones on the same batch, per
//! configuration and repetition. Until 2026-12-05 it was one cold step of
//! `workload::train_step` (a fresh plan and fresh per-thread buffers, half the batch per thread):
//! its p = 0.1 training ratio of 700-512r-20 spread over 1.44-2.44 in 4 runs, this one's over
//! 1.55-1.63 in the same sitting (medians 1.61 and 1.56). The trainer's step was the slower of
//! the two at p = 0.1 in those runs (159 against 175 training samples/s; dense 28.8 both). A
//! closer look on 700-512r-20 at p = 0.1 (a throwaway driver, 2 rounds of 8 warm steps each way,
//! load 1.1-1.4): 6.55 / 6.00 ms per sample against 5.97 / 5.71 for `train_step`, 5.85 / 5.99 with
//! chunks of 16, 5.99 / 5.88 without the Adam step (the plan then stays); each worker rebuilds
//! its own plan after every Adam step (`perf`: 0.11 against 0.02 ms per sample). So up to ~10 %,
//! within the rounds' spread.
//!
//! `cargo run --release -p bench-suite --example sparse_connectivity [samples] [repetitions]`
//! (default 16 and 3).

use bench_suite::workload::{self, Rng, sparsify};
use snn_core::{ClockedState, ConnectionId, ForwardRecord, Network, SpikeTrains};
use snn_eventprop::Loss;
use snn_eventprop::optim::LrSchedule;
use snn_eventprop::train::{BatchWorkspace, DEFAULT_CHUNK_SIZE};

/// Timed training steps per configuration and repetition, after one untimed step.
const TRAIN_STEPS: usize = 2;

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

/// One configuration: label, network, synapses (stored, or kept by the mask for a masked dense
/// network) and the index of its storage's p = 0 floor in the list.
struct Config {
    label: String,
    net: Network,
    synapses: usize,
    floor: usize,
}

fn measure(config: &Config, batch: &SpikeTrains) -> Row {
    let Config { label, net, synapses, .. } = config;
    let engine = workload::engine();
    let plan = engine.plan(net).expect("plan");
    // Forward: every sample once to warm up, then timed.
    let mut state = ClockedState::default();
    let mut recs = vec![ForwardRecord::default(); batch.len()];
    for (s, r) in recs.iter_mut().enumerate() {
        engine.run_planned(net, &plan, batch.sample(s), &mut state, r).expect("forward");
    }
    let t0 = workload::process_cpu_seconds();
    for (s, r) in recs.iter_mut().enumerate() {
        engine.run_planned(net, &plan, batch.sample(s), &mut state, r).expect("forward");
    }
    let forward_cpu = (workload::process_cpu_seconds() - t0) / batch.len() as f64;
    // Training: the trainer's batch step (`BatchWorkspace::compute`, its workers and their
    // buffers kept from batch to batch as `Trainer` keeps them, the plan refreshed as the delays
    // move) and an Adam step on weights and delays; one step untimed, then `TRAIN_STEPS` timed.
    let mut trained = net.clone();
    let mut opt = workload::paper_optimiser(&trained, LrSchedule::constant(), 150.0);
    let mut ws = BatchWorkspace::new(&trained, DEFAULT_CHUNK_SIZE).expect("workspace");
    let n_out = trained.population(trained.output()).size();
    let labels: Vec<usize> = (0..batch.len()).map(|s| s % n_out).collect();
    let idx: Vec<usize> = (0..batch.len()).collect();
    let mut step = |trained: &mut Network| {
        let loss = Loss::ExpIntegralCrossEntropy;
        ws.compute(&engine, trained, batch, &labels, &idx, &loss, Some(&workload::TRAINABLE)).expect("batch");
        opt.step(trained, ws.gradients(), 0).expect("optimiser step");
    };
    step(&mut trained);
    let t0 = workload::process_cpu_seconds();
    for _ in 0..TRAIN_STEPS {
        step(&mut trained);
    }
    let train_cpu = (workload::process_cpu_seconds() - t0) / (TRAIN_STEPS * batch.len()) as f64;
    let spikes = recs.iter().map(|r| r.spikes.len()).sum::<usize>() as f64 / recs.len() as f64;
    Row { label: label.clone(), synapses: *synapses, events: events(net, batch, &recs), spikes, forward_cpu, train_cpu }
}

/// The configurations of one workload: dense, then sparse at each of `ps` (the last being 0),
/// then the dense network masked as the sparse ones at each of `masked` (the last being 0): the
/// same synapses stored dense (`workload::mask_dense`). Each configuration's floor is the p = 0
/// configuration of its storage (the dense network's that of the masked ones).
fn workload_nets(dense: &Network, ps: &[f64], masked: &[f64]) -> Vec<Config> {
    let sparse_floor = ps.len();
    let dense_floor = ps.len() + masked.len();
    let mut nets = vec![Config {
        label: "dense (p = 1.0)".into(),
        net: dense.clone(),
        synapses: dense.num_synapses(),
        floor: dense_floor,
    }];
    for &p in ps {
        let net = sparsify(dense, p);
        assert!(net.connection(ConnectionId(0)).is_sparse());
        let synapses = net.num_synapses();
        nets.push(Config { label: format!("sparse p = {p}"), net, synapses, floor: sparse_floor });
    }
    for &p in masked {
        let (net, synapses) = workload::mask_dense(dense, p);
        nets.push(Config { label: format!("dense masked p = {p}"), net, synapses, floor: dense_floor });
    }
    nets
}

/// A quantity of a measured row.
type Of = fn(&Row) -> f64;

/// Median (of an even count, the mean of the middle two), minimum and maximum of `x` as `m
/// (lo-hi)`.
fn spread(mut x: Vec<f64>) -> String {
    x.sort_by(f64::total_cmp);
    let n = x.len();
    let median = if n.is_multiple_of(2) { 0.5 * (x[n / 2 - 1] + x[n / 2]) } else { x[n / 2] };
    format!("{median:.2} ({:.2}-{:.2})", x[0], x[n - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let mut rng = Rng(19);
    let batch = workload::shd_like_batch(samples, &mut rng);
    let ps = [1.0, 0.5, 0.1, 0.0];
    // The dense network masked as the sparse ones (1.0 is the dense network itself).
    let masked = [0.5, 0.1, 0.0];
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
        let nets = workload_nets(dense, &ps, &masked);
        let mut runs: Vec<Vec<Row>> = (0..nets.len()).map(|_| Vec::new()).collect();
        for _ in 0..reps {
            for (config, runs) in nets.iter().zip(&mut runs) {
                runs.push(measure(config, &batch));
            }
        }
        println!("\n{name}");
        println!(
            "| connectivity | synapses | hidden spikes / sample | synaptic events / sample | forward samples/s (CPU) | \
             training samples/s (CPU) | time per synapse vs dense, forward / training | the same net of p = 0 | \
             synaptic part per synapse vs dense, each storage net of its own p = 0, forward / training | \
             time per event vs dense, net of p = 0 | p = 0's share of the time, forward / training |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let sparse_floor = nets[1].floor;
        let (dense_runs, floor) = (&runs[0], &runs[sparse_floor]);
        for (config, rows) in nets.iter().zip(&runs) {
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
            // The synaptic part: this configuration net of its own storage's floor, per synapse
            // over the floor's, against the dense network net of the dense storage's floor.
            let (own, dense_own) = (&runs[config.floor], &runs[nets[0].floor]);
            let synaptic = |f: Of| {
                let x: Vec<f64> = (0..reps)
                    .map(|k| {
                        let (r, z, d, dz) = (&rows[k], &own[k], &dense_runs[k], &dense_own[k]);
                        let part = |r: &Row, z: &Row| (f(r) - f(z)) / (r.synapses as f64 - z.synapses as f64);
                        part(r, z) / part(d, dz)
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
                "| {} | {} | {:.0} | {:.2} M | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {} / {} |",
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
                synaptic(fwd),
                synaptic(train),
                ratio(fwd, ev, true),
                ratio(train, ev, true),
                share(fwd),
                share(train),
            );
        }
    }
}
