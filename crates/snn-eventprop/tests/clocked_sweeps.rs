//! The deferred gradient sums of the clocked backward pass against the per-event sweep: on random
//! feedforward and recurrent networks with delays (zeros included), for every readout, with and
//! without a jump bias, with a whole-run window and with windows as short as the longest delay
//! allows, the gradients agree to floating-point reassociation.

use nalgebra::DMatrix;
use proptest::prelude::*;
use snn_core::{
    ClockedEngine, Delivery, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SpikeTrains,
};
use snn_eventprop::{Adjoint, GradientSweep, Gradients};

mod common;
use common::sweep::{gradients, readout_for};

const T_END: f64 = 60.0;

fn matrix(rows: usize, cols: usize, vals: &[f64]) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |r, c| vals[(r * cols + c) % vals.len()])
}

/// Input(4) -> LIF(h1) [-> LIF(h2)] -> out, with a recurrent h1 -> h1 connection if asked; the
/// output is LIF for first-spike readouts and LI otherwise. Weights and delays cycle through the
/// given values (delays scaled to [0, max_delay], some exactly zero).
fn network(h1: usize, h2: usize, recurrent: bool, lif_out: bool, w: &[f64], d: &[f64], max_delay: f64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 4);
    let p1 = b.lif("h1", h1, LifParams::default());
    let delays = |r, c, k: usize| {
        DMatrix::from_fn(r, c, |a, b| {
            let u = d[(a * c + b + k) % d.len()];
            if u < 0.15 { 0.0 } else { u * max_delay }
        })
    };
    b.connect(i, p1, matrix(h1, 4, w).map(|x| 2.0 * x + 1.5), delays(h1, 4, 0));
    if recurrent {
        b.connect(p1, p1, matrix(h1, h1, &w[1..]).map(|x| 0.6 * x), delays(h1, h1, 1));
    }
    let (last, n_last) = if h2 > 0 {
        let p2 = b.lif("h2", h2, LifParams::default());
        b.connect(p1, p2, matrix(h2, h1, &w[2..]).map(|x| 2.0 * x + 1.2), delays(h2, h1, 2));
        (p2, h2)
    } else {
        (p1, h1)
    };
    // The output population is the last one added.
    let out = if lif_out { b.lif("out", 3, LifParams::default()) } else { b.li("out", 3, LiParams::default()) };
    b.connect(last, out, matrix(3, n_last, &w[3..]).map(|x| x + 0.7), delays(3, n_last, 3));
    b.build().unwrap()
}

fn inputs(times: &[f64], chans: &[u32]) -> SpikeTrains {
    let mut s = SpikeTrains::new(4);
    s.push_unsorted(times, chans).unwrap();
    s
}

fn assert_close(a: &Gradients, b: &Gradients, what: &str) -> Result<(), TestCaseError> {
    for (k, (x, y)) in a.weights.iter().zip(&b.weights).chain(a.delays.iter().zip(&b.delays)).enumerate() {
        let scale = x.amax().max(y.amax());
        let diff = (x - y).amax();
        prop_assert!(diff <= 1e-12 * scale + 1e-300, "{what}, matrix {k}: difference {diff:e} at scale {scale:e}");
    }
    Ok(())
}

static SPIKES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deferred_sums_equal_per_event_updates(
        h1 in 2usize..7,
        h2 in 0usize..5,
        recurrent in any::<bool>(),
        readout in 0usize..4,
        dt in prop::sample::select(vec![1.0, 0.5, 0.1]),
        // 80 ms: longer than the 60 ms run, so the history holds more steps than the run has.
        max_delay in prop::sample::select(vec![0.0, 3.0, 12.0, 40.0, 80.0]),
        w in prop::collection::vec(-0.5f64..1.0, 8..24),
        d in prop::collection::vec(0.0f64..1.0, 5..17),
        times in prop::collection::vec(0.0f64..T_END, 6..30),
        chans in prop::collection::vec(0u32..4, 30),
        with_bias in any::<bool>(),
    ) {
        let (readout_kind, lif_out, n_readout) = readout_for(readout);
        let net = network(h1, h2, recurrent, lif_out, &w, &d, max_delay);
        let engine = ClockedEngine::new(SimConfig::new(T_END, readout_kind), dt).unwrap();
        let batch = {
            let mut b = inputs(&times, &chans[..times.len()]);
            let late: Vec<f64> = times.iter().map(|t| (t * 0.7 + 5.0).min(T_END - 1e-9)).collect();
            b.push_unsorted(&late, &chans[..times.len()]).unwrap();
            b
        };
        // Arbitrary (not loss-derived) readout gradients exercise every forcing path.
        let records: Vec<(ForwardRecord, Vec<f64>)> = (0..batch.len())
            .map(|s| {
                let rec = engine.run(&net, batch.sample(s)).unwrap();
                let g = (0..n_readout).map(|k| w[k % w.len()] - 0.2 * s as f64).collect();
                (rec, g)
            })
            .collect();
        let spikes: usize = records.iter().map(|(r, _)| r.spikes.len()).sum();
        SPIKES.fetch_add(spikes, std::sync::atomic::Ordering::Relaxed);
        CASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bias: Vec<f64> = (0..net.num_neurons()).map(|g| 0.01 * (g as f64 - 3.0)).collect();
        let bias = with_bias.then_some(bias.as_slice());

        let reference = gradients(&engine, &net, &batch, &records, bias, GradientSweep::PerEvent);
        // The default (pull) engine sweeps networks without recurrent loops population by
        // population; the push engine keeps the step-by-step deferred sweep for every network.
        let push = engine.clone().with_delivery(Delivery::Push);
        for (e, name) in [(&engine, "pull"), (&push, "push")] {
            let whole = gradients(e, &net, &batch, &records, bias, GradientSweep::DEFAULT);
            assert_close(&reference, &whole, &format!("{name}, whole-run window, {spikes} spikes"))?;
            // A 1-byte budget: windows of max_delay_steps + 1 steps, the adjoint rows wrapping.
            let short = gradients(e, &net, &batch, &records, bias, GradientSweep::Deferred { max_bytes: 1 });
            assert_close(&reference, &short, &format!("{name}, shortest windows, {spikes} spikes"))?;
            // A window between the two.
            let mid = gradients(e, &net, &batch, &records, bias, GradientSweep::Deferred { max_bytes: 40_000 });
            assert_close(&reference, &mid, &format!("{name}, medium windows, {spikes} spikes"))?;
        }
        let (n, total) = (CASES.load(std::sync::atomic::Ordering::Relaxed), SPIKES.load(std::sync::atomic::Ordering::Relaxed));
        if n == 256 {
            println!("{n} cases, {:.1} spikes per case (two samples)", total as f64 / n as f64);
            prop_assert!(total >= 256 * 10, "too few spikes to exercise the sums: {total} in {n} cases");
        }
    }
}

/// The sweeps are not trivially equal: the networks above spike, and a gradient that the deferred
/// sums leave out (here: the input spikes' weights) would show.
#[test]
fn the_compared_gradients_are_not_trivial() {
    let w: Vec<f64> = (0..17).map(|k| ((k * 7) % 11) as f64 / 11.0 - 0.2).collect();
    let d: Vec<f64> = (0..13).map(|k| ((k * 5) % 13) as f64 / 13.0).collect();
    let net = network(5, 3, true, false, &w, &d, 12.0);
    let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), 0.5).unwrap();
    let times: Vec<f64> = (0..24).map(|k| 2.1 * k as f64 + 0.3).collect();
    let chans: Vec<u32> = (0..24).map(|k| (k % 4) as u32).collect();
    let batch = inputs(&times, &chans);
    let rec = engine.run(&net, batch.sample(0)).unwrap();
    assert!(rec.spikes.len() >= 10, "{} spikes", rec.spikes.len());
    let records = vec![(rec, vec![0.3, -0.2, 0.1])];
    let a = gradients(&engine, &net, &batch, &records, None, GradientSweep::PerEvent);
    let b = gradients(&engine, &net, &batch, &records, None, GradientSweep::Deferred { max_bytes: 1 });
    for g in a.weights.iter().chain(&a.delays[..3]) {
        assert!(g.amax() > 1e-6, "{g}");
    }
    assert_close(&a, &b, "fixed case").unwrap();
}

/// One scratch carried across networks of other shapes, delays and window geometries gives
/// bit-for-bit what a fresh scratch gives (no state of an earlier run leaks into a later one).
#[test]
fn a_scratch_reused_across_networks_leaks_nothing() {
    let w: Vec<f64> = (0..19).map(|k| ((k * 7) % 11) as f64 / 11.0 - 0.2).collect();
    let d: Vec<f64> = (0..13).map(|k| ((k * 5) % 13) as f64 / 13.0).collect();
    let nets = [
        network(5, 3, true, false, &w, &d, 40.0),
        network(6, 0, false, false, &w[1..], &d[2..], 80.0),
        network(3, 4, true, false, &w[2..], &d, 12.0),
    ];
    let times: Vec<f64> = (0..24).map(|k| 2.3 * k as f64 + 0.4).collect();
    let chans: Vec<u32> = (0..24).map(|k| (k * 3 % 4) as u32).collect();
    let batch = inputs(&times, &chans);
    // Both deliveries: the feedforward network goes through the layered sweep with pull, the
    // step-by-step one with push.
    for (delivery, sweep) in [Delivery::Pull, Delivery::Push].into_iter().flat_map(|d| {
        [
            GradientSweep::DEFAULT,
            GradientSweep::Deferred { max_bytes: 1 },
            GradientSweep::Deferred { max_bytes: 50_000 },
        ]
        .map(|s| (d, s))
    }) {
        let engines = [0.5, 1.0].map(|dt| {
            ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), dt).unwrap().with_delivery(delivery)
        });
        let mut shared = engines[0].adjoint_scratch(&nets[0]);
        shared.set_sweep(sweep);
        for round in 0..2 {
            for (k, net) in nets.iter().enumerate() {
                let engine = &engines[(k + round) % 2];
                let rec = engine.run(net, batch.sample(0)).unwrap();
                let d_readout = [0.4, -0.3, 0.1];
                let mut fresh = engine.adjoint_scratch(net);
                fresh.set_sweep(sweep);
                let (mut a, mut b) = (Gradients::zeros(net), Gradients::zeros(net));
                engine.backward_into(net, batch.sample(0), &rec, &d_readout, &mut fresh, &mut a).unwrap();
                engine.backward_into(net, batch.sample(0), &rec, &d_readout, &mut shared, &mut b).unwrap();
                assert_eq!(a, b, "{delivery:?}, {sweep:?}, round {round}, network {k}");
            }
        }
    }
}
