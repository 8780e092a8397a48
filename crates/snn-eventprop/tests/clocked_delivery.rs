//! Pull delivery (the default) against push delivery (the ring buffer for every projection) of
//! the clocked engine, on random networks: feedforward ones with skip connections and populations
//! out of topological order (all projections pulled, simulated population by population), and
//! recurrent ones (self-loops and longer loops; only the input projections pulled), with zero
//! delays, delays longer than the run, multiple spikes per neuron, empty samples and every readout.
//!
//! - Networks without recurrent loops: the records (spikes, `I - V`, readouts) are equal **bit
//!   for bit** — pull delivery sums each step's arrivals in the ring's order — and so are the
//!   gradients computed from them.
//! - Recurrent networks: pull delivery adds a step's pulled input arrivals after its recurrent
//!   ones instead of interleaved in emission order, so currents may differ by a rounding
//!   (~1e-16 relative); spike times and neurons must still be identical, `I - V`, readouts and
//!   gradients agree to 1e-12 relative to each quantity's scale (a few roundings, propagated).

use nalgebra::DMatrix;
use proptest::prelude::*;
use snn_core::{
    ClockedEngine, Delivery, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SparseSynapses, SpikeTrains,
};
use snn_eventprop::{Adjoint, Gradients};

const T_END: f64 = 60.0;

/// The shape of a random network.
#[derive(Debug, Clone, Copy)]
struct Shape {
    h1: usize,
    /// Second LIF layer (0: none).
    h2: usize,
    /// `h1 -> h1`.
    self_loop: bool,
    /// `h2 -> h1` (with `h2 > 0`): a loop through two populations.
    back_loop: bool,
    /// `in -> out`, `in -> h2`, `h1 -> out` (with `h2 > 0`).
    skips: bool,
    /// The output population is added before `h2`, so population order is not topological.
    out_first: bool,
    lif_out: bool,
}

impl Shape {
    fn recurrent(&self) -> bool {
        self.self_loop || (self.back_loop && self.h2 > 0)
    }
}

fn network(s: Shape, w: &[f64], d: &[f64], max_delay: f64) -> Network {
    network_stored(s, w, d, max_delay, None)
}

/// Connectivity of a sparse variant of [`network`]: each connection keeps synapse `(a, b)` where
/// `draws[(a * cols + b + 7 k) % len] < density[k % density.len()]` (`k` its number).
#[derive(Debug, Clone, Copy)]
struct Masks<'a> {
    draws: &'a [f64],
    density: &'a [f64],
}

/// [`network`], with every connection sparse (`masks` given) or dense (`None`).
fn network_stored(s: Shape, w: &[f64], d: &[f64], max_delay: f64, masks: Option<Masks<'_>>) -> Network {
    let mut k = 0usize;
    let mut weights = |r: usize, c: usize, scale: f64, shift: f64| {
        k += 1;
        DMatrix::from_fn(r, c, |a, b| scale * w[(a * c + b + 3 * k) % w.len()] + shift)
    };
    let mut j = 0usize;
    let mut delays = |r: usize, c: usize| {
        j += 1;
        DMatrix::from_fn(r, c, |a, b| {
            let u = d[(a * c + b + 5 * j) % d.len()];
            if u < 0.15 { 0.0 } else { u * max_delay }
        })
    };
    let mut m = 0usize;
    let mut connect = |b: &mut NetworkBuilder, pre, post, w: DMatrix<f64>, d: DMatrix<f64>| {
        let Some(Masks { draws, density }) = masks else {
            b.connect(pre, post, w, d);
            return;
        };
        let (rows, cols) = w.shape();
        let p = density[m % density.len()];
        let mask = DMatrix::from_fn(rows, cols, |a, b| draws[(a * cols + b + 7 * m) % draws.len()] < p);
        m += 1;
        b.connect_sparse(pre, post, SparseSynapses::from_dense(&w, &d, &mask).unwrap());
    };
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 4);
    let p1 = b.lif("h1", s.h1, LifParams::default());
    let add_out = |b: &mut NetworkBuilder| {
        if s.lif_out { b.lif("out", 3, LifParams::default()) } else { b.li("out", 3, LiParams::default()) }
    };
    let mut out = None;
    if s.out_first {
        out = Some(add_out(&mut b));
    }
    let p2 = (s.h2 > 0).then(|| b.lif("h2", s.h2, LifParams::default()));
    let out = out.unwrap_or_else(|| add_out(&mut b));
    b.output(out);
    connect(&mut b, i, p1, weights(s.h1, 4, 2.0, 1.5), delays(s.h1, 4));
    if s.self_loop {
        connect(&mut b, p1, p1, weights(s.h1, s.h1, 0.6, 0.0), delays(s.h1, s.h1));
    }
    if let Some(p2) = p2 {
        connect(&mut b, p1, p2, weights(s.h2, s.h1, 2.0, 1.2), delays(s.h2, s.h1));
        if s.back_loop {
            connect(&mut b, p2, p1, weights(s.h1, s.h2, 0.8, 0.1), delays(s.h1, s.h2));
        }
        if s.skips {
            connect(&mut b, i, p2, weights(s.h2, 4, 1.0, 0.3), delays(s.h2, 4));
            connect(&mut b, p1, out, weights(3, s.h1, 1.0, 0.2), delays(3, s.h1));
        }
        connect(&mut b, p2, out, weights(3, s.h2, 1.0, 0.7), delays(3, s.h2));
    } else {
        connect(&mut b, p1, out, weights(3, s.h1, 1.0, 0.7), delays(3, s.h1));
    }
    if s.skips {
        connect(&mut b, i, out, weights(3, 4, 0.5, 0.1), delays(3, 4));
    }
    b.build().unwrap()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * scale.max(1e-300)
}

/// Compares two records: bit for bit with `exact`, otherwise identical spike times and neurons
/// with `I - V` and readouts within 1e-12 of their scale.
fn assert_records(push: &ForwardRecord, pull: &ForwardRecord, exact: bool, what: &str) -> Result<(), TestCaseError> {
    if exact {
        prop_assert_eq!(push, pull, "{}", what);
        return Ok(());
    }
    prop_assert_eq!(&push.spikes.times, &pull.spikes.times, "{}", what);
    prop_assert_eq!(&push.spikes.neurons, &pull.spikes.neurons, "{}", what);
    let scale = push.spikes.i_minus_v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (a, b) in push.spikes.i_minus_v.iter().zip(&pull.spikes.i_minus_v) {
        prop_assert!(close(*a, *b, scale), "{what}: I - V {a} vs {b}");
    }
    let r = (&push.readout, &pull.readout);
    let scale = r.0.values.iter().fold(0.0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
    prop_assert_eq!(r.0.values.len(), r.1.values.len());
    for (a, b) in r.0.values.iter().zip(&r.1.values) {
        prop_assert!(close(*a, *b, scale), "{what}: readout {a} vs {b}");
    }
    prop_assert_eq!(&r.0.times, &r.1.times, "{}", what);
    Ok(())
}

fn assert_gradients(a: &Gradients, b: &Gradients, exact: bool, what: &str) -> Result<(), TestCaseError> {
    for (k, (x, y)) in a.weights.iter().zip(&b.weights).chain(a.delays.iter().zip(&b.delays)).enumerate() {
        if exact {
            prop_assert!(x == y, "{what}, matrix {k}: {x} vs {y}");
        } else {
            let scale = x.amax().max(y.amax());
            let diff = (x - y).amax();
            prop_assert!(diff <= 1e-12 * scale + 1e-300, "{what}, matrix {k}: difference {diff:e} at scale {scale:e}");
        }
    }
    Ok(())
}

/// Spikes and cases seen by one of the property tests below (each checks that its cases had
/// spikes to compare).
struct Tally {
    spikes: std::sync::atomic::AtomicUsize,
    cases: std::sync::atomic::AtomicUsize,
}

impl Tally {
    const fn new() -> Self {
        Self { spikes: std::sync::atomic::AtomicUsize::new(0), cases: std::sync::atomic::AtomicUsize::new(0) }
    }
}

static NARROW: Tally = Tally::new();
static WIDE: Tally = Tally::new();
static SPARSE: Tally = Tally::new();
static SPARSE_WIDE: Tally = Tally::new();

/// One drawn network and input of the property tests below.
#[derive(Debug, Clone)]
struct Case {
    shape: Shape,
    /// 0: exp integral, 1: max voltage, 2: voltage at three times, 3: first spike (LIF output).
    readout: usize,
    dt: f64,
    max_delay: f64,
    w: Vec<f64>,
    d: Vec<f64>,
    times: Vec<f64>,
    chans: Vec<u32>,
}

prop_compose! {
    /// Narrow networks (populations of at most 6 neurons), every `dt` down to 0.1 ms.
    fn narrow_case()(
        h1 in 1usize..7,
        h2 in 0usize..5,
        self_loop in prop::sample::select(vec![false, false, true]),
        back_loop in prop::sample::select(vec![false, false, true]),
        skips in any::<bool>(),
        out_first in any::<bool>(),
        readout in 0usize..4,
        dt in prop::sample::select(vec![1.0, 0.5, 0.1]),
        // 80 ms: longer than the 60 ms run.
        max_delay in prop::sample::select(vec![0.0, 3.0, 12.0, 40.0, 80.0]),
        w in prop::collection::vec(-0.5f64..1.0, 8..24),
        d in prop::collection::vec(0.0f64..1.0, 5..17),
        times in prop::collection::vec(0.0f64..T_END + 5.0, 6..30),
        chans in prop::collection::vec(0u32..4, 30),
    ) -> Case {
        let shape = Shape { h1, h2, self_loop, back_loop, skips, out_first, lif_out: readout == 3 };
        Case { shape, readout, dt, max_delay, w, d, times, chans }
    }
}

prop_compose! {
    /// Populations wider than a block of 8 targets and of every size modulo 8, so that the
    /// forward kernel runs with 4, 2 and 1 lanes and the backward reads pairs and single
    /// targets, in first and later blocks.
    fn wide_case()(
        h1 in 9usize..26,
        h2 in prop::sample::select(vec![0usize, 5, 7, 8, 11, 14, 17]),
        self_loop in prop::sample::select(vec![false, false, false, true]),
        back_loop in prop::sample::select(vec![false, false, true]),
        skips in any::<bool>(),
        out_first in any::<bool>(),
        readout in 0usize..4,
        dt in prop::sample::select(vec![1.0, 0.5]),
        max_delay in prop::sample::select(vec![0.0, 12.0, 40.0, 80.0]),
        w in prop::collection::vec(-0.5f64..1.0, 8..40),
        d in prop::collection::vec(0.0f64..1.0, 5..29),
        times in prop::collection::vec(0.0f64..T_END + 5.0, 6..30),
        chans in prop::collection::vec(0u32..4, 30),
    ) -> Case {
        let shape = Shape { h1, h2, self_loop, back_loop, skips, out_first, lif_out: readout == 3 };
        Case { shape, readout, dt, max_delay, w, d, times, chans }
    }
}

/// One case of the property tests: push against pull on three samples (records, gradients) and
/// the batch path against single runs. After `total` cases of `tally`, checks that they had at
/// least 10 spikes per case on average.
fn push_against_pull(case: &Case, tally: &Tally, total: usize, masks: Option<Masks<'_>>) -> Result<(), TestCaseError> {
    let Case { shape, readout, dt, max_delay, ref w, ref d, ref times, ref chans } = *case;
    let (w, d, times, chans) = (w.as_slice(), d.as_slice(), times.as_slice(), chans.as_slice());
    let readout_kind = match readout {
        0 => ReadoutKind::ExpIntegral,
        1 => ReadoutKind::MaxVoltage,
        2 => ReadoutKind::VoltageAt(vec![10.0, 33.3, 59.0]),
        _ => ReadoutKind::FirstSpike,
    };
    let n_readout = if let ReadoutKind::VoltageAt(ts) = &readout_kind { 3 * ts.len() } else { 3 };
    let net = network_stored(shape, w, d, max_delay, masks);
    let pull = ClockedEngine::new(SimConfig::new(T_END, readout_kind), dt).unwrap();
    prop_assert_eq!(pull.delivery(), Delivery::Pull);
    let push = pull.clone().with_delivery(Delivery::Push);
    let plan = pull.plan(&net).unwrap();
    prop_assert_eq!(plan.is_layered(), !shape.recurrent());
    // Samples: the drawn spikes (some after t_end), a denser copy, and an empty one.
    let mut batch = SpikeTrains::new(4);
    batch.push_unsorted(times, &chans[..times.len()]).unwrap();
    let dense: Vec<f64> = times.iter().flat_map(|&t| [t * 0.5, t * 0.5 + 1.0]).collect();
    let dense_chans: Vec<u32> = chans[..times.len()].iter().flat_map(|&c| [c, (c + 1) % 4]).collect();
    batch.push_unsorted(&dense, &dense_chans).unwrap();
    batch.push_sample(&[], &[]).unwrap();
    // Sparse projections are pulled target by target, source by source: a step's arrivals are
    // summed in another order than on the ring (see `SparsePull`), so not bit for bit.
    let exact = !shape.recurrent() && masks.is_none();
    let mut grads = [Gradients::zeros(&net), Gradients::zeros(&net)];
    // One pull scratch reused across the samples (its buffers sized by the previous sample's
    // spikes: the per-neuron S slots, the event groupings) against a fresh one per sample.
    let (mut reused, mut reused_grads) = (pull.adjoint_scratch(&net), Gradients::zeros(&net));
    for s in 0..batch.len() {
        let what = format!("{shape:?}, sample {s}");
        let (a, b) = (push.run(&net, batch.sample(s)).unwrap(), pull.run(&net, batch.sample(s)).unwrap());
        assert_records(&a, &b, exact, &what)?;
        tally.spikes.fetch_add(a.spikes.len(), std::sync::atomic::Ordering::Relaxed);
        // Arbitrary (not loss-derived) readout gradients exercise every forcing path.
        let g: Vec<f64> = (0..n_readout).map(|k| w[k % w.len()] - 0.2 * s as f64).collect();
        let [g_push, g_pull] = &mut grads;
        for (engine, rec, grads) in [(&push, &a, g_push), (&pull, &b, g_pull)] {
            let mut scratch = engine.adjoint_scratch(&net);
            engine.backward_into(&net, batch.sample(s), rec, &g, &mut scratch, grads).unwrap();
        }
        pull.backward_into(&net, batch.sample(s), &b, &g, &mut reused, &mut reused_grads).unwrap();
        if s == 2 {
            prop_assert!(a.spikes.is_empty());
        }
    }
    assert_gradients(&grads[0], &grads[1], exact, &format!("{shape:?}"))?;
    assert_gradients(&grads[1], &reused_grads, true, &format!("{shape:?}, one scratch for every sample"))?;
    // The batch path (one plan, parallel samples) gives the single runs.
    let all = pull.run_batch(&net, &batch).unwrap();
    for (s, r) in all.iter().enumerate() {
        prop_assert_eq!(r, &pull.run(&net, batch.sample(s)).unwrap());
    }
    let n = tally.cases.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n == total {
        let spikes = tally.spikes.load(std::sync::atomic::Ordering::Relaxed);
        println!("{n} cases, {:.1} spikes per case (three samples)", spikes as f64 / n as f64);
        prop_assert!(spikes >= total * 10, "too few spikes to compare: {spikes} in {n} cases");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pull_delivery_equals_push_delivery(case in narrow_case()) {
        push_against_pull(&case, &NARROW, 256, None)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same on wide populations ([`wide_case`]); bit for bit without recurrent loops.
    #[test]
    fn pull_delivery_equals_push_delivery_on_wide_populations(case in wide_case()) {
        push_against_pull(&case, &WIDE, 64, None)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Sparse projections (every connection sparse, each with its own density from 0 — no
    /// synapse — to 1, so empty columns and single synapses occur): pull delivery (sparse
    /// projections pulled target by target through `SparsePull`, networks without loops layered,
    /// their gradients from the layered sweep) against push delivery (fan-outs through the ring,
    /// per-event sweep). Spike times and neurons identical, `I - V`, readouts and gradients to
    /// 1e-12 of their scale: pull sums a step's arrivals at a target source by source, push in
    /// emission order.
    #[test]
    fn sparse_pull_delivery_equals_push_delivery(
        case in narrow_case(),
        draws in prop::collection::vec(0.0f64..1.0, 7..31),
        density in prop::collection::vec(prop::sample::select(vec![0.0, 0.3, 0.6, 0.9, 1.0]), 1..8),
    ) {
        push_against_pull(&case, &SPARSE, 256, Some(Masks { draws: &draws, density: &density }))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The sparse comparison on wide populations ([`wide_case`]).
    #[test]
    fn sparse_pull_delivery_equals_push_delivery_on_wide_populations(
        case in wide_case(),
        draws in prop::collection::vec(0.0f64..1.0, 7..61),
        density in prop::collection::vec(prop::sample::select(vec![0.0, 0.3, 0.6, 0.9, 1.0]), 1..8),
    ) {
        push_against_pull(&case, &SPARSE_WIDE, 64, Some(Masks { draws: &draws, density: &density }))?;
    }
}

/// The spike cap is the same typed error on both paths, and a network whose output population
/// comes before a hidden one in population order still records spikes in the ring's order.
#[test]
fn spike_cap_and_record_order() {
    let w: Vec<f64> = (0..17).map(|k| ((k * 7) % 11) as f64 / 11.0 - 0.1).collect();
    let d: Vec<f64> = (0..13).map(|k| ((k * 5) % 13) as f64 / 13.0).collect();
    let shape = Shape { h1: 5, h2: 4, self_loop: false, back_loop: false, skips: true, out_first: true, lif_out: true };
    let net = network(shape, &w, &d, 12.0);
    let times: Vec<f64> = (0..24).map(|k| 2.1 * k as f64 + 0.3).collect();
    let chans: Vec<u32> = (0..24).map(|k| (k % 4) as u32).collect();
    let mut batch = SpikeTrains::new(4);
    batch.push_unsorted(&times, &chans).unwrap();
    let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::FirstSpike), 0.5).unwrap();
    let rec = engine.run(&net, batch.sample(0)).unwrap();
    assert_eq!(rec, engine.clone().with_delivery(Delivery::Push).run(&net, batch.sample(0)).unwrap());
    // Spikes of all three LIF populations (global neurons: input 0..4, h1 4..9, out 9..12,
    // h2 12..16), in (time, neuron) order.
    let pops = [4..9, 9..12, 12..16].map(|r| rec.spikes.neurons.iter().filter(|&&g| r.contains(&(g as usize))).count());
    assert!(pops.iter().all(|&c| c >= 2), "{pops:?}");
    let keys: Vec<(f64, u32)> = rec.spikes.times.iter().copied().zip(rec.spikes.neurons.iter().copied()).collect();
    assert!(keys.windows(2).all(|k| k[0].0 < k[1].0 || (k[0].0 == k[1].0 && k[0].1 < k[1].1)));
    let mut cfg = SimConfig::new(T_END, ReadoutKind::FirstSpike);
    cfg.max_spikes = rec.spikes.len() - 1;
    for delivery in [Delivery::Pull, Delivery::Push] {
        let e = ClockedEngine::new(cfg.clone(), 0.5).unwrap().with_delivery(delivery);
        assert!(
            matches!(e.run(&net, batch.sample(0)), Err(snn_core::CoreError::SpikeCapExceeded { cap }) if cap == cfg.max_spikes)
        );
        cfg.max_spikes = rec.spikes.len();
        let ok = ClockedEngine::new(cfg.clone(), 0.5).unwrap().with_delivery(delivery);
        assert_eq!(ok.run(&net, batch.sample(0)).unwrap(), rec);
        cfg.max_spikes = rec.spikes.len() - 1;
    }
}

/// The target-major weight rows that a plan caches for pull delivery
/// (`ClockedPlan::refresh_weights`) are never used once the weights have changed: after a
/// change through each path that writes weights — `Network::weights_mut` directly, the
/// optimiser's step, the initialisers, and a network restored from its serialised form (a
/// checkpoint) — the plan and scratches that ran before give exactly (bit for bit) what fresh
/// ones give, and that differs from the first run (so a stale row would be caught).
#[test]
fn cached_weight_rows_follow_every_weight_change() {
    use rand::SeedableRng;
    use snn_core::{ClockedState, ConnectionId};
    use snn_delays::DelayConstraint;
    use snn_eventprop::backward_planned;
    use snn_eventprop::init::init_weights_paper;
    use snn_eventprop::optim::{AdamParams, LrSchedule, Optimiser, Trainable};

    let w: Vec<f64> = (0..29).map(|k| ((k * 7) % 11) as f64 / 11.0 - 0.1).collect();
    let d: Vec<f64> = (0..23).map(|k| ((k * 5) % 13) as f64 / 13.0).collect();
    let times: Vec<f64> = (0..40).map(|k| 1.4 * k as f64 + 0.3).collect();
    let chans: Vec<u32> = (0..40).map(|k| (k % 4) as u32).collect();
    let mut batch = SpikeTrains::new(4);
    batch.push_unsorted(&times, &chans).unwrap();
    let x = batch.sample(0);
    let layered =
        Shape { h1: 13, h2: 10, self_loop: false, back_loop: false, skips: true, out_first: true, lif_out: false };
    let recurrent = Shape { self_loop: true, ..layered };
    type Change = fn(&mut Network);
    let changes: [(&str, Change); 4] = [
        ("weights_mut", |net| net.weights_mut(ConnectionId(0))[(3, 1)] += 0.75),
        ("optimiser step", |net| {
            let flags = vec![Trainable::WEIGHTS; net.connections().len()];
            let adam = (AdamParams::with_lr(0.05), LrSchedule::constant());
            let mut opt = Optimiser::new(net, &flags, adam, adam, DelayConstraint::new(100.0).unwrap()).unwrap();
            let mut g = Gradients::zeros(net);
            for m in &mut g.weights {
                m.iter_mut().enumerate().for_each(|(k, x)| *x = (k % 3) as f64 - 1.0);
            }
            opt.step(net, &g, 0).unwrap();
        }),
        ("initialiser", |net| {
            init_weights_paper(net, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7)).unwrap();
            for c in 0..net.connections().len() {
                *net.weights_mut(ConnectionId(c)) *= 4.0; // keep the hidden layers spiking
            }
        }),
        ("restored from its serialised form", |net| {
            let mut changed = net.clone();
            changed.weights_mut(ConnectionId(1))[(2, 5)] -= 1.5;
            let bytes = bincode::serde::encode_to_vec(&changed, bincode::config::standard()).unwrap();
            *net = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap().0;
        }),
    ];
    for shape in [layered, recurrent] {
        for (what, change) in changes {
            let what = format!("{what}, recurrent {}", shape.recurrent());
            let mut net = network(shape, &w, &d, 12.0);
            let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), 0.5).unwrap();
            let g = [0.3, -0.7, 0.4];
            // A plan (weights gathered), a forward scratch and an adjoint scratch, all used once.
            let plan = engine.plan(&net).unwrap();
            assert!(plan.weights_cached_for(&net), "{what}");
            let (mut state, mut sim) = (ClockedState::default(), engine.scratch(&net));
            let mut adj = engine.adjoint_scratch(&net);
            let mut before = ForwardRecord::default();
            engine.run_planned(&net, &plan, x, &mut state, &mut before).unwrap();
            let mut rec = ForwardRecord::default();
            engine.run_into(&net, x, &mut sim, &mut rec).unwrap();
            assert!(rec == before, "{what}");
            assert!(before.spikes.len() >= 20, "{what}: {} spikes", before.spikes.len());
            let mut grads_before = Gradients::zeros(&net);
            engine.backward_into(&net, x, &before, &g, &mut adj, &mut grads_before).unwrap();

            change(&mut net);
            assert!(!plan.weights_cached_for(&net), "{what}");
            // Fresh plan and scratches.
            let fresh_plan = engine.plan(&net).unwrap();
            let fresh = engine.run(&net, x).unwrap();
            assert!(fresh != before, "{what}: the change must show in the record");
            let mut fresh_grads = Gradients::zeros(&net);
            let mut fresh_adj = engine.adjoint_scratch(&net);
            engine.backward_into(&net, x, &fresh, &g, &mut fresh_adj, &mut fresh_grads).unwrap();
            assert!(fresh_grads != grads_before, "{what}");
            // The used plan (stale rows: it must gather), and the used scratches (they refresh).
            engine.run_planned(&net, &plan, x, &mut state, &mut rec).unwrap();
            assert!(rec == fresh, "{what}: run_planned with the old plan");
            engine.run_planned(&net, &fresh_plan, x, &mut state, &mut rec).unwrap();
            assert!(rec == fresh, "{what}: run_planned with a fresh plan");
            engine.run_into(&net, x, &mut sim, &mut rec).unwrap();
            assert!(rec == fresh, "{what}: run_into with the old scratch");
            assert!(sim.plan.weights_cached_for(&net), "{what}");
            for (label, plan) in [("old plan", &plan), ("fresh plan", &fresh_plan)] {
                let mut grads = Gradients::zeros(&net);
                backward_planned(&engine, &net, plan, x, &fresh, &g, &mut adj, &mut grads).unwrap();
                assert!(grads == fresh_grads, "{what}: backward_planned with the {label}");
            }
            let mut grads = Gradients::zeros(&net);
            engine.backward_into(&net, x, &fresh, &g, &mut adj, &mut grads).unwrap();
            assert!(grads == fresh_grads, "{what}: backward_into with the old scratch");
        }
    }
}
