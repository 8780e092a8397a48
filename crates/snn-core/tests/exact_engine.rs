//! Tests of the exact event-driven engine against hand-derived closed forms and
//! independent reference computations.

use nalgebra::DMatrix;
use proptest::prelude::*;
use snn_core::exact::next_crossing;
use snn_core::{
    CoreError, ExactEngine, ForwardRecord, Leak, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SpikeProblem, SpikeTrains,
};

const TM: f64 = 20.0;
const TS: f64 = 5.0;

/// `V(s)` of a neuron at rest that received `w` at `s = 0`: `c w (e^{-s/ts} - e^{-s/tm})`.
fn psp(w: f64, s: f64) -> f64 {
    if s < 0.0 {
        return 0.0;
    }
    let c = TS / (TS - TM);
    c * w * ((-s / TS).exp() - (-s / TM).exp())
}

fn one_to_one(w: f64, d: f64, lif: bool) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 1);
    let o = if lif { b.lif("out", 1, LifParams::default()) } else { b.li("out", 1, LiParams::default()) };
    b.connect(i, o, DMatrix::from_element(1, 1, w), DMatrix::from_element(1, 1, d));
    b.build().unwrap()
}

fn train(times: &[f64], neurons: &[u32], n: usize) -> SpikeTrains {
    let mut s = SpikeTrains::new(n);
    s.push_sample(times, neurons).unwrap();
    s
}

fn run(net: &Network, cfg: SimConfig, input: &SpikeTrains) -> ForwardRecord {
    ExactEngine::new(cfg).unwrap().run(net, input.sample(0)).unwrap()
}

#[test]
fn single_li_neuron_matches_closed_form() {
    let (w, d, t0) = (0.8, 1.7, 2.25);
    let net = one_to_one(w, d, false);
    let ts: Vec<f64> = (0..=60).map(|k| 0.5 * k as f64).collect();
    let rec = run(&net, SimConfig::new(30.0, ReadoutKind::VoltageAt(ts.clone())), &train(&[t0], &[0], 1));
    for (k, &t) in ts.iter().enumerate() {
        let expect = psp(w, t - t0 - d);
        assert!((rec.readout.values[k] - expect).abs() < 1e-12, "t={t}: {} vs {expect}", rec.readout.values[k]);
    }
    assert!(rec.spikes.is_empty());
}

#[test]
fn exp_integral_and_max_match_quadrature() {
    // Two arrivals, one inhibitory, so that the max is a kink.
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 2);
    let o = b.li("out", 1, LiParams::default());
    b.connect(i, o, DMatrix::from_row_slice(1, 2, &[1.0, -3.0]), DMatrix::from_row_slice(1, 2, &[0.0, 1.5]));
    let net = b.build().unwrap();
    let input = train(&[1.0, 2.0], &[0, 1], 2);
    let t_end = 40.0;
    let v = |t: f64| psp(1.0, t - 1.0) + psp(-3.0, t - 3.5);
    // Composite Simpson on a fine grid, split at the kink.
    let simpson = |a: f64, b: f64, n: usize| {
        let h = (b - a) / n as f64;
        let f = |t: f64| (-t / t_end).exp() * v(t);
        let mut s = f(a) + f(b);
        for k in 1..n {
            s += f(a + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    };
    let quad = (simpson(0.0, 1.0, 2) + simpson(1.0, 3.5, 20_000) + simpson(3.5, t_end, 200_000)) / t_end;
    let rec = run(&net, SimConfig::new(t_end, ReadoutKind::ExpIntegral), &input);
    assert!((rec.readout.values[0] - quad).abs() < 1e-12, "{} vs {quad}", rec.readout.values[0]);

    let rec = run(&net, SimConfig::new(t_end, ReadoutKind::MaxVoltage), &input);
    // V is rising at 3.5 ms (peak of a lone PSP is at 9.24 ms after arrival) and the -3 arrival
    // turns it down: the max is the kink at 3.5 ms.
    assert!((rec.readout.times[0] - 3.5).abs() < 1e-15);
    assert!((rec.readout.values[0] - v(3.5)).abs() < 1e-14);
    let kink = rec.readout.kinks[0].expect("kink");
    assert_eq!((kink.pre, kink.spike, kink.connection.0), (1, 1, 0));
    let slope = (psp(1.0, 2.5 + 1e-6) - psp(1.0, 2.5 - 1e-6)) / 2e-6;
    assert!((kink.slope_before - slope).abs() < 1e-8);

    // Without the inhibitory input: interior max at ln(4)/0.15 ms after the arrival.
    let rec = run(&net, SimConfig::new(t_end, ReadoutKind::MaxVoltage), &train(&[1.0], &[0], 2));
    let s_star = 4f64.ln() / (1.0 / TS - 1.0 / TM);
    assert!((rec.readout.times[0] - 1.0 - s_star).abs() < 1e-12);
    assert!((rec.readout.values[0] - psp(1.0, s_star)).abs() < 1e-14);
    assert!(rec.readout.kinks[0].is_none());
}

/// Crossing time by 200 bisection steps on the closed form over the rising branch.
fn bisect_crossing(w: f64, theta: f64) -> f64 {
    let s_star = (4f64).ln() / (1.0 / TS - 1.0 / TM);
    let (mut lo, mut hi) = (0.0, s_star);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if psp(w, mid) < theta { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

#[test]
fn single_lif_crossing_matches_bisection() {
    for &(w, d, t0) in &[(8.0, 1.0, 0.5), (6.4, 0.0, 3.0), (20.0, 7.3, 11.1), (6.36, 2.0, 0.0)] {
        let net = one_to_one(w, d, true);
        let rec = run(&net, SimConfig::new(60.0, ReadoutKind::FirstSpike), &train(&[t0], &[0], 1));
        let expect = t0 + d + bisect_crossing(w, 1.0);
        assert!((rec.spikes.times[0] - expect).abs() < 1e-12, "w={w}: {} vs {expect}", rec.spikes.times[0]);
        assert_eq!(rec.readout.values[0], rec.spikes.times[0]);
        // I - V just before the spike.
        let s = rec.spikes.times[0] - t0 - d;
        assert!((rec.spikes.i_minus_v[0] - (w * (-s / TS).exp() - 1.0)).abs() < 1e-12);
    }
    // Sub-threshold: the peak of a unit PSP is 0.1575, so 6.3 * 0.1575 < 1.
    let net = one_to_one(6.3, 0.0, true);
    let rec = run(&net, SimConfig::new(60.0, ReadoutKind::FirstSpike), &train(&[0.0], &[0], 1));
    assert!(rec.spikes.is_empty());
    assert_eq!(rec.readout.values[0], f64::INFINITY);
}

/// Independent single-neuron reference: piecewise closed form, a 1e-3 ms scan for sign
/// changes, then bisection. Arrivals sorted by time.
fn reference_lif(arrivals: &[(f64, f64)], t_end: f64) -> Vec<f64> {
    let leak = Leak::new(TM, TS).unwrap();
    let (mut v, mut i, mut t) = (0.0, 0.0, 0.0);
    let mut spikes = Vec::new();
    let mut k = 0;
    while t < t_end {
        let next = arrivals.get(k).map_or(t_end, |a| a.0.min(t_end));
        // Scan [t, next).
        let h = 1e-3;
        let mut s = 0.0;
        let mut spiked = false;
        while t + s < next {
            let s2 = (s + h).min(next - t);
            let (v2, _) = leak.propagate(v, i, s2);
            if v2 >= 1.0 {
                let (mut lo, mut hi) = (s, s2);
                for _ in 0..200 {
                    let m = 0.5 * (lo + hi);
                    if leak.propagate(v, i, m).0 < 1.0 { lo = m } else { hi = m }
                }
                let (_, ii) = leak.propagate(v, i, hi);
                t += hi;
                spikes.push(t);
                v = 0.0;
                i = ii;
                spiked = true;
                break;
            }
            s = s2;
        }
        if spiked {
            continue;
        }
        let (v2, i2) = leak.propagate(v, i, next - t);
        v = v2;
        i = i2;
        t = next;
        if k < arrivals.len() && arrivals[k].0 < t_end {
            i += arrivals[k].1;
            k += 1;
        } else {
            break;
        }
    }
    spikes
}

#[test]
fn many_spikes_per_neuron_match_reference() {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 2);
    let o = b.lif("out", 1, LifParams::default());
    b.connect(i, o, DMatrix::from_row_slice(1, 2, &[25.0, 10.0]), DMatrix::from_row_slice(1, 2, &[0.5, 3.0]));
    let net = b.build().unwrap();
    let input = train(&[0.0, 6.0, 14.0], &[0, 1, 0], 2);
    let rec = run(&net, SimConfig::new(50.0, ReadoutKind::FirstSpike), &input);
    let reference = reference_lif(&[(0.5, 25.0), (9.0, 10.0), (14.5, 25.0)], 50.0);
    assert!(rec.spikes.len() >= 4, "{:?}", rec.spikes.times);
    assert_eq!(rec.spikes.len(), reference.len());
    for (a, b) in rec.spikes.times.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
}

#[test]
fn zero_delay_loops() {
    // A drives B with zero delay; B inhibits A with zero delay; A excites itself with zero delay.
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 1);
    let h = b.lif("h", 2, LifParams::default());
    b.connect(i, h, DMatrix::from_row_slice(2, 1, &[14.0, 0.0]), DMatrix::zeros(2, 1));
    b.connect(h, h, DMatrix::from_row_slice(2, 2, &[1.5, -2.0, 7.0, 0.0]), DMatrix::zeros(2, 2));
    let net = b.build().unwrap();
    let rec = run(&net, SimConfig::new(60.0, ReadoutKind::FirstSpike), &train(&[1.0], &[0], 1));
    let a: Vec<f64> =
        rec.spikes.times.iter().zip(&rec.spikes.neurons).filter(|(_, n)| **n == 1).map(|(t, _)| *t).collect();
    let bb: Vec<f64> =
        rec.spikes.times.iter().zip(&rec.spikes.neurons).filter(|(_, n)| **n == 2).map(|(t, _)| *t).collect();
    assert!(!a.is_empty() && !bb.is_empty());
    // Reference for A: its own arrivals are the input, its own spikes (+0.5 at the spike time)
    // and B's spikes (-0.7): iterate to a fixed point of the spike lists.
    let mut arr: Vec<(f64, f64)> = vec![(1.0, 14.0)];
    arr.extend(a.iter().map(|&t| (t, 1.5)));
    arr.extend(bb.iter().map(|&t| (t, -2.0)));
    arr.sort_by(|x, y| x.0.total_cmp(&y.0));
    let ref_a = reference_lif(&arr, 60.0);
    assert_eq!(ref_a.len(), a.len());
    for (x, y) in a.iter().zip(&ref_a) {
        assert!((x - y).abs() < 1e-9);
    }
    let arr_b: Vec<(f64, f64)> = a.iter().map(|&t| (t, 7.0)).collect();
    let ref_b = reference_lif(&arr_b, 60.0);
    assert_eq!(ref_b.len(), bb.len());
    for (x, y) in bb.iter().zip(&ref_b) {
        assert!((x - y).abs() < 1e-9);
    }

    // An excitatory zero-delay self-loop runs away: typed error at the cap.
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 1);
    let h = b.lif("h", 1, LifParams::default());
    b.connect(i, h, DMatrix::from_element(1, 1, 10.0), DMatrix::zeros(1, 1));
    b.connect(h, h, DMatrix::from_element(1, 1, 10.0), DMatrix::zeros(1, 1));
    let net = b.build().unwrap();
    let cfg = SimConfig { max_spikes: 1000, ..SimConfig::new(1000.0, ReadoutKind::FirstSpike) };
    let err = ExactEngine::new(cfg).unwrap().run(&net, train(&[0.0], &[0], 1).sample(0)).unwrap_err();
    assert_eq!(err, CoreError::SpikeCapExceeded { cap: 1000 });
}

#[test]
fn inputs_at_the_end_and_empty_trains() {
    let t_end = 20.0;
    let ts = vec![19.0, 20.0];
    let net = one_to_one(1.0, 0.0, false);
    let cfg = SimConfig::new(t_end, ReadoutKind::VoltageAt(ts.clone()));
    // An input exactly at t_end is ignored; one arriving exactly at t_end too.
    let r1 = run(&net, cfg.clone(), &train(&[5.0, 20.0], &[0, 0], 1));
    let r0 = run(&net, cfg.clone(), &train(&[5.0], &[0], 1));
    assert_eq!(r1, r0);
    assert!((r0.readout.values[1] - psp(1.0, 15.0)).abs() < 1e-14);
    let net_d = one_to_one(1.0, 2.0, false);
    let r2 = run(&net_d, cfg.clone(), &train(&[3.0, 18.0], &[0, 0], 1));
    assert!((r2.readout.values[1] - psp(1.0, 15.0)).abs() < 1e-14, "arrival at t_end ignored");
    // Just before the end it counts (V is continuous, so only I has moved at t_end).
    let r3 = run(&net, SimConfig::new(t_end, ReadoutKind::ExpIntegral), &train(&[19.999], &[0], 1));
    assert!(r3.readout.values[0] > 0.0);
    // Empty train.
    for kind in [ReadoutKind::ExpIntegral, ReadoutKind::MaxVoltage, ReadoutKind::VoltageAt(ts)] {
        let r = run(&net, SimConfig::new(t_end, kind), &train(&[], &[], 1));
        assert!(r.spikes.is_empty());
        assert!(r.readout.values.iter().all(|&v| v == 0.0));
    }
    let net_lif = one_to_one(1.0, 0.0, true);
    let r = run(&net_lif, SimConfig::new(t_end, ReadoutKind::FirstSpike), &train(&[], &[], 1));
    assert_eq!(r.readout.values, vec![f64::INFINITY]);
}

#[test]
fn bad_input_gets_typed_errors() {
    let net = one_to_one(1.0, 0.0, false);
    let engine = ExactEngine::new(SimConfig::new(20.0, ReadoutKind::ExpIntegral)).unwrap();
    let times = [1.0, 0.5];
    let neurons = [0u32, 0];
    let bad = snn_core::SpikeTrain { times: &times, neurons: &neurons };
    assert!(matches!(
        engine.run(&net, bad),
        Err(CoreError::InvalidSpikes { event: 1, reason: SpikeProblem::Unsorted { .. }, .. })
    ));
    let neurons = [0u32, 1];
    let times = [0.5, 1.0];
    let bad = snn_core::SpikeTrain { times: &times, neurons: &neurons };
    assert!(matches!(
        engine.run(&net, bad),
        Err(CoreError::InvalidSpikes { reason: SpikeProblem::NeuronOutOfRange { index: 1, len: 1 }, .. })
    ));
    let times = [f64::NAN];
    let bad = snn_core::SpikeTrain { times: &times, neurons: &neurons[..1] };
    assert!(matches!(engine.run(&net, bad), Err(CoreError::InvalidSpikes { .. })));
    let bad = snn_core::SpikeTrain { times: &times[..0], neurons: &neurons[..1] };
    assert!(matches!(engine.run(&net, bad), Err(CoreError::InvalidOffsets(_))));
    // Readout / output kind mismatches.
    let e = ExactEngine::new(SimConfig::new(20.0, ReadoutKind::FirstSpike)).unwrap();
    assert!(matches!(e.run(&net, train(&[], &[], 1).sample(0)), Err(CoreError::InvalidNetwork(_))));
    let lif = one_to_one(1.0, 0.0, true);
    assert!(matches!(engine.run(&lif, train(&[], &[], 1).sample(0)), Err(CoreError::InvalidNetwork(_))));
    assert!(matches!(
        ExactEngine::new(SimConfig::new(f64::NAN, ReadoutKind::ExpIntegral)),
        Err(CoreError::InvalidSetting { .. })
    ));
}

#[test]
fn crossing_finder_edge_cases() {
    let leak = Leak::new(TM, TS).unwrap();
    assert_eq!(next_crossing(&leak, 1.0, 1.0, 0.0, 10.0), Some(0.0));
    assert_eq!(next_crossing(&leak, 1.0, 0.5, 0.5, 10.0), None, "V' = 0");
    assert_eq!(next_crossing(&leak, 1.0, -0.5, -0.1, 10.0), None);
    // Crossing beyond the horizon.
    let s = next_crossing(&leak, 1.0, 0.0, 8.0, 100.0).unwrap();
    assert_eq!(next_crossing(&leak, 1.0, 0.0, 8.0, s * 0.999), None);
    // Grazing: threshold just below the peak.
    let s_star = 4f64.ln() / (1.0 / TS - 1.0 / TM);
    let peak = psp(3.0, s_star);
    let s = next_crossing(&leak, peak - 1e-9, 0.0, 3.0, 100.0).unwrap();
    assert!((psp(3.0, s) - (peak - 1e-9)).abs() < 1e-15 && s < s_star);
}

// ---------------------------------------------------------------- property: delay shift

fn ff_net(layers: &[usize], weights: &[f64], delays: &[f64]) -> Network {
    let mut b = NetworkBuilder::new();
    let mut prev = b.input("in", layers[0]);
    let (mut wk, mut dk) = (0, 0);
    for (l, &n) in layers.iter().enumerate().skip(1) {
        let p = b.lif(&format!("l{l}"), n, LifParams::default());
        let m = n * layers[l - 1];
        let w = DMatrix::from_column_slice(n, layers[l - 1], &weights[wk..wk + m]);
        let d = DMatrix::from_column_slice(n, layers[l - 1], &delays[dk..dk + m]);
        wk += m;
        dk += m;
        b.connect(prev, p, w, d);
        prev = p;
    }
    b.build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Adding `delta` to every delay shifts every spike of layer `l` (1-based) by exactly `l * delta`.
    #[test]
    fn shifting_delays_shifts_spikes(
        weights in prop::collection::vec(-4.0f64..16.0, 3 * 4 + 4 * 3),
        delays in prop::collection::vec(0.0f64..8.0, 3 * 4 + 4 * 3),
        times in prop::collection::vec(0.0f64..10.0, 1..8),
        delta in 0.0f64..5.0,
    ) {
        let layers = [3, 4, 3];
        let net = ff_net(&layers, &weights, &delays);
        let shifted: Vec<f64> = delays.iter().map(|d| d + delta).collect();
        let net2 = ff_net(&layers, &weights, &shifted);
        let mut ts = times.clone();
        ts.sort_by(f64::total_cmp);
        let ns: Vec<u32> = (0..ts.len() as u32).map(|k| k % 3).collect();
        let input = train(&ts, &ns, 3);
        // Long enough for all activity to die out in both runs.
        let cfg = SimConfig::new(400.0, ReadoutKind::FirstSpike);
        let a = run(&net, cfg.clone(), &input);
        let b = run(&net2, cfg, &input);
        prop_assert_eq!(a.spikes.len(), b.spikes.len());
        // Compare per neuron, in time order.
        for g in 3..10u32 {
            let layer = if g < 7 { 1.0 } else { 2.0 };
            let ta: Vec<f64> = a.spikes.times.iter().zip(&a.spikes.neurons).filter(|p| *p.1 == g).map(|p| *p.0).collect();
            let tb: Vec<f64> = b.spikes.times.iter().zip(&b.spikes.neurons).filter(|p| *p.1 == g).map(|p| *p.0).collect();
            prop_assert_eq!(ta.len(), tb.len());
            for (x, y) in ta.iter().zip(&tb) {
                prop_assert!((y - x - layer * delta).abs() < 1e-9, "neuron {}: {} vs {} (+{})", g, x, y, layer * delta);
            }
        }
    }
}
