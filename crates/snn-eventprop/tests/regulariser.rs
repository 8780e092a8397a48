//! The spike-count regulariser: its jump term by hand, its direction in training, that it
//! changes nothing when off, and its typed errors.

use nalgebra::DMatrix;
use snn_core::{
    ClockedEngine, ExactEngine, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    Simulator, SpikeTrains,
};
use snn_eventprop::optim::{AdamParams, LrSchedule, Trainable};
use snn_eventprop::regularise::{CountAverage, SpikeCountReg};
use snn_eventprop::train::{BatchWorkspace, Labelled, TrainConfig, TrainData, TrainableParams, Trainer};
use snn_eventprop::{Adjoint, EventPropError, Gradients, Loss, evaluate};

const T_END: f64 = 40.0;

/// One input -> one LIF (weight 7, delay 2) -> one LI output (weight 1, delay 0).
fn single_neuron() -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 1);
    let h = b.lif("hid", 1, LifParams::default());
    let o = b.li("out", 1, LiParams::default());
    b.connect(i, h, DMatrix::from_element(1, 1, 7.0), DMatrix::from_element(1, 1, 2.0));
    b.connect(h, o, DMatrix::from_element(1, 1, 1.0), DMatrix::zeros(1, 1));
    b.build().unwrap()
}

fn grads_with<E: Adjoint>(
    engine: &E,
    net: &Network,
    x: &SpikeTrains,
    bias: Option<&[f64]>,
) -> (Gradients, ForwardRecord) {
    let rec = engine.run(net, x.sample(0)).unwrap();
    let v = Loss::ExpIntegralCrossEntropy.evaluate(&rec.readout, 0, 0, T_END).unwrap();
    let mut g = Gradients::zeros(net);
    let mut sc = engine.adjoint_scratch(net);
    engine.backward_into_with(net, x.sample(0), &rec, &v.d_readout, bias, &mut sc, &mut g).unwrap();
    (g, rec)
}

/// Hand-derived: a jump bias `b` at the single spike `t_k` adds `Δlambda_V = b` just before it;
/// back to the input's arrival `t_a` (no event in between), in reversed time `s = t_k - t_a`,
/// `Δlambda_V = b e^{-s/tau_m}`, `Δlambda_I = b tau_m/(tau_m - tau_s) (e^{-s/tau_m} - e^{-s/tau_s})`,
/// so `Δ dL/dw = -tau_s Δlambda_I` and `Δ dL/dd = -w (Δlambda_I - Δlambda_V)`; the output
/// connection's gradients do not change.
fn check_hand_case<E: Adjoint>(engine: &E, what: &str) {
    let net = single_neuron();
    let mut x = SpikeTrains::new(1);
    x.push_sample(&[1.0], &[0]).unwrap();
    let b = -0.37;
    let (g0, rec) = grads_with(engine, &net, &x, None);
    assert_eq!(rec.spikes.len(), 1, "{what}: the LIF neuron must spike exactly once");
    let (g1, _) = grads_with(engine, &net, &x, Some(&[0.0, b, 0.0]));
    let (tm, ts, w, t_a) = (20.0, 5.0, 7.0, 3.0);
    let s = rec.spikes.times[0] - t_a;
    assert!(s > 1.0, "{what}: spike at {}", rec.spikes.times[0]);
    let (em, es) = ((-s / tm).exp(), (-s / ts).exp());
    let dlv = b * em;
    let dli = b * tm / (tm - ts) * (em - es);
    let want_w = -ts * dli;
    let want_d = -w * (dli - dlv);
    let got_w = g1.weights[0][(0, 0)] - g0.weights[0][(0, 0)];
    let got_d = g1.delays[0][(0, 0)] - g0.delays[0][(0, 0)];
    println!(
        "{what}: t_k {} Δw {got_w:.12e} (hand {want_w:.12e}) Δd {got_d:.12e} (hand {want_d:.12e})",
        rec.spikes.times[0]
    );
    assert!((got_w - want_w).abs() <= 1e-10 * want_w.abs(), "{what}: Δ dL/dw {got_w} vs {want_w}");
    assert!((got_d - want_d).abs() <= 1e-10 * want_d.abs(), "{what}: Δ dL/dd {got_d} vs {want_d}");
    assert_eq!(g1.weights[1], g0.weights[1], "{what}: output weights must not change");
    assert_eq!(g1.delays[1], g0.delays[1], "{what}: output delays must not change");
}

#[test]
fn jump_bias_matches_the_hand_derived_change_of_the_gradients() {
    let cfg = SimConfig::new(T_END, ReadoutKind::ExpIntegral);
    check_hand_case(&ExactEngine::new(cfg.clone()).unwrap(), "exact");
    check_hand_case(&ClockedEngine::new(cfg.clone(), 0.1).unwrap(), "clocked dt 0.1");
    check_hand_case(&ClockedEngine::new(cfg, 1.0).unwrap(), "clocked dt 1");
}

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// 12 inputs -> 8 LIF -> 2 LI with **zero** output weights: the task loss cannot reach the
/// hidden layer, so the input weights' gradient is the regulariser's alone.
fn isolated_hidden(w_scale: f64, seed: &mut u64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 12);
    let h = b.lif("hid", 8, LifParams::default());
    let o = b.li("out", 2, LiParams::default());
    let w = DMatrix::from_fn(8, 12, |_, _| w_scale * (0.5 + lcg(seed)));
    let d = DMatrix::from_fn(8, 12, |_, _| 10.0 * lcg(seed));
    b.connect(i, h, w, d);
    b.connect(h, o, DMatrix::zeros(2, 8), DMatrix::zeros(2, 8));
    b.build().unwrap()
}

fn data(samples: usize, seed: &mut u64) -> Labelled {
    let mut x = SpikeTrains::new(12);
    for _ in 0..samples {
        let times: Vec<f64> = (0..60).map(|_| 60.0 * lcg(seed)).collect();
        let neurons: Vec<u32> = (0..60).map(|_| (12.0 * lcg(seed)) as u32).collect();
        x.push_unsorted(&times, &neurons).unwrap();
    }
    let labels = (0..samples).map(|s| s % 2).collect();
    Labelled::new(x, labels).unwrap()
}

fn mean_hidden<S: Simulator>(engine: &S, net: &Network, set: &Labelled) -> f64 {
    let m = evaluate(engine, net, set, &Loss::ExpIntegralCrossEntropy, 8).unwrap();
    m.spikes_per_sample[1] / 8.0
}

/// Trains the input weights with the regulariser only; returns (mean hidden spikes per neuron
/// per sample before, after, per-epoch metric).
fn train_reg_only<E: Adjoint>(engine: &E, w_scale: f64, reg: SpikeCountReg) -> (f64, f64, Vec<f64>) {
    let mut seed = 11;
    let net = isolated_hidden(w_scale, &mut seed);
    let set = data(16, &mut seed);
    let before = mean_hidden(engine, &net, &set);
    let config = TrainConfig::builder()
        .epochs(8)
        .batch_size(8)
        .weight_adam(AdamParams::with_lr(0.1))
        .weight_schedule(LrSchedule::constant())
        .trainable(TrainableParams::PerConnection(vec![Trainable::WEIGHTS, Trainable::NONE]))
        .silent_boost(None)
        .spike_count_reg(Some(reg))
        .build()
        .unwrap();
    let mut t = Trainer::new(engine, Loss::ExpIntegralCrossEntropy, config, net).unwrap();
    t.fit(&TrainData { train: &set, validation: None, test: None }).unwrap();
    let after = mean_hidden(engine, t.network(), &set);
    (before, after, t.history().iter().map(|m| m.hidden_spikes_per_neuron.unwrap()).collect())
}

#[test]
fn regulariser_alone_moves_the_spike_count_towards_the_target() {
    let cfg = SimConfig::new(T_END + 30.0, ReadoutKind::ExpIntegral);
    let exact = ExactEngine::new(cfg.clone()).unwrap();
    let clocked = ClockedEngine::new(cfg, 1.0).unwrap();
    for average in [CountAverage::Batch, CountAverage::Sample] {
        // Far above the target: counts fall.
        let down = SpikeCountReg { target: 1.0, strength_upper: 1e-3, strength_lower: 1e-3, average };
        let (b, a, h) = train_reg_only(&exact, 3.0, down);
        println!("exact {average:?} above target: {b:.2} -> {a:.2} spikes/neuron/sample, epochs {h:.2?}");
        assert!(b > 5.0 && a < 0.7 * b, "exact {average:?}: {b} -> {a}");
        let (b, a, h) = train_reg_only(&clocked, 3.0, down);
        println!("clocked {average:?} above target: {b:.2} -> {a:.2}, epochs {h:.2?}");
        assert!(b > 5.0 && a < 0.7 * b, "clocked {average:?}: {b} -> {a}");
        // Far below the target (but firing): counts rise (two-sided).
        let up = SpikeCountReg { target: 40.0, ..down };
        let (b, a, h) = train_reg_only(&exact, 1.0, up);
        println!("exact {average:?} below target: {b:.2} -> {a:.2}, epochs {h:.2?}");
        assert!(b > 0.2 && b < 20.0 && a > 1.3 * b, "exact {average:?}: {b} -> {a}");
        let (b, a, h) = train_reg_only(&clocked, 1.0, up);
        println!("clocked {average:?} below target: {b:.2} -> {a:.2}, epochs {h:.2?}");
        assert!(b > 0.2 && b < 20.0 && a > 1.3 * b, "clocked {average:?}: {b} -> {a}");
        // Upper-only: below the target nothing moves.
        let upper_only = SpikeCountReg { strength_lower: 0.0, ..up };
        let (b, a, _) = train_reg_only(&exact, 1.0, upper_only);
        assert_eq!(a, b, "upper-only regulariser moved a neuron below its target");
    }
}

#[test]
fn above_target_every_input_weight_gradient_is_non_negative() {
    // With the task loss cut off, every path from a spike's bias back to an input weight has a
    // positive factor (I/(I - theta) at earlier spikes, positive propagators), so b < 0 gives
    // dL/dw >= 0 everywhere.
    let mut seed = 3;
    let net = isolated_hidden(3.0, &mut seed);
    let set = data(8, &mut seed);
    let idx: Vec<usize> = (0..8).collect();
    let cfg = SimConfig::new(T_END, ReadoutKind::ExpIntegral);
    let reg = SpikeCountReg { target: 0.0, strength_upper: 1e-3, strength_lower: 1e-3, average: CountAverage::Batch };
    fn run<E: Adjoint>(engine: &E, net: &Network, set: &Labelled, idx: &[usize], reg: SpikeCountReg) {
        let mut ws = BatchWorkspace::<E>::new(net, 3).unwrap();
        ws.set_regulariser(Some(reg)).unwrap();
        ws.compute(engine, net, set.spikes(), set.labels(), idx, &Loss::ExpIntegralCrossEntropy, None).unwrap();
        let g = &ws.gradients().weights[0];
        assert!(g.iter().all(|&x| x >= 0.0), "negative entry: {g}");
        assert!(g.iter().filter(|&&x| x > 0.0).count() > g.len() / 2, "too few positive entries: {g}");
    }
    run(&ExactEngine::new(cfg.clone()).unwrap(), &net, &set, &idx, reg);
    run(&ClockedEngine::new(cfg, 0.5).unwrap(), &net, &set, &idx, reg);
}

fn bits(g: &Gradients) -> Vec<u64> {
    g.weights.iter().chain(&g.delays).flat_map(|m| m.iter().map(|x| x.to_bits())).collect()
}

/// 4 inputs -> 6 LIF (recurrent) -> 3 LI, spiking.
fn recurrent(seed: &mut u64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 4);
    let h = b.lif("hid", 6, LifParams::default());
    let o = b.li("out", 3, LiParams::default());
    let m = |r, c, seed: &mut u64, f: &dyn Fn(f64) -> f64| DMatrix::from_fn(r, c, |_, _| f(lcg(seed)));
    b.connect(i, h, m(6, 4, seed, &|u| 5.0 * u), m(6, 4, seed, &|u| 5.0 * u));
    b.connect(h, h, m(6, 6, seed, &|u| 2.0 * u - 1.0), m(6, 6, seed, &|u| 4.0 * u));
    b.connect(h, o, m(3, 6, seed, &|u| 2.0 * u - 0.8), m(3, 6, seed, &|u| 3.0 * u));
    b.build().unwrap()
}

fn off_is_unchanged<E: Adjoint>(engine: &E) {
    let mut seed = 21;
    let net = recurrent(&mut seed);
    let mut x = SpikeTrains::new(4);
    let mut labels = Vec::new();
    for s in 0..5 {
        let times: Vec<f64> = (0..16).map(|_| 20.0 * lcg(&mut seed)).collect();
        let neurons: Vec<u32> = (0..16).map(|_| (4.0 * lcg(&mut seed)) as u32).collect();
        x.push_unsorted(&times, &neurons).unwrap();
        labels.push(s % 3);
    }
    let loss = Loss::ExpIntegralCrossEntropy;
    // The plain backward pass, summed in order, as the batch workspace sums one chunk.
    let mut manual = Gradients::zeros(&net);
    let mut zero_bias = Gradients::zeros(&net);
    let mut spikes = 0;
    for (s, &label) in labels.iter().enumerate() {
        let rec = engine.run(&net, x.sample(s)).unwrap();
        spikes += rec.spikes.len();
        let v = loss.evaluate(&rec.readout, label, s, T_END).unwrap();
        let mut sc = engine.adjoint_scratch(&net);
        engine.backward_into(&net, x.sample(s), &rec, &v.d_readout, &mut sc, &mut manual).unwrap();
        let mut with_none = Gradients::zeros(&net);
        let mut plain = Gradients::zeros(&net);
        engine.backward_into(&net, x.sample(s), &rec, &v.d_readout, &mut sc, &mut plain).unwrap();
        engine.backward_into_with(&net, x.sample(s), &rec, &v.d_readout, None, &mut sc, &mut with_none).unwrap();
        assert_eq!(bits(&plain), bits(&with_none));
        let zeros = vec![0.0; net.num_neurons()];
        engine
            .backward_into_with(&net, x.sample(s), &rec, &v.d_readout, Some(&zeros), &mut sc, &mut zero_bias)
            .unwrap();
    }
    assert!(spikes >= 10, "only {spikes} spikes");
    // A zero bias changes no value (signed zeros aside).
    assert_eq!(zero_bias, manual);
    let mut expected = Gradients::zeros(&net);
    expected.add_assign(&manual);
    expected.scale_mut(1.0 / x.len() as f64);
    let idx: Vec<usize> = (0..x.len()).collect();
    let mut ws = BatchWorkspace::<E>::new(&net, 8).unwrap();
    ws.set_regulariser(None).unwrap();
    ws.compute(engine, &net, &x, &labels, &idx, &loss, None).unwrap();
    assert_eq!(bits(ws.gradients()), bits(&expected));
    // A regulariser with zero strengths: the same values again.
    ws.set_regulariser(Some(SpikeCountReg::new(14.0, 0.0).unwrap())).unwrap();
    ws.compute(engine, &net, &x, &labels, &idx, &loss, None).unwrap();
    assert_eq!(ws.gradients(), &expected);
}

#[test]
fn regulariser_off_leaves_the_gradients_bit_for_bit_unchanged() {
    let cfg = SimConfig::new(T_END, ReadoutKind::ExpIntegral);
    off_is_unchanged(&ExactEngine::new(cfg.clone()).unwrap());
    off_is_unchanged(&ClockedEngine::new(cfg.clone(), 1.0).unwrap());
    off_is_unchanged(&ClockedEngine::new(cfg, 0.1).unwrap());
}

#[test]
fn bad_settings_are_typed_errors() {
    let bad = |r: Result<SpikeCountReg, EventPropError>, param: &str| match r {
        Err(EventPropError::InvalidHyperparameter { param: p, .. }) => assert!(p.ends_with(param), "{p}"),
        other => panic!("expected an InvalidHyperparameter error for {param}, got {other:?}"),
    };
    bad(SpikeCountReg::new(14.0, -5e-11), "strength_upper");
    bad(SpikeCountReg::new(f64::NAN, 5e-11), "target");
    bad(SpikeCountReg::new(f64::INFINITY, 5e-11), "target");
    bad(SpikeCountReg::new(-1.0, 5e-11), "target");
    let lower = SpikeCountReg { strength_lower: f64::NAN, ..SpikeCountReg::paper() };
    assert!(matches!(lower.check(), Err(EventPropError::InvalidHyperparameter { .. })));
    assert!(matches!(
        TrainConfig::builder().spike_count_reg(Some(lower)).build(),
        Err(EventPropError::InvalidHyperparameter { .. })
    ));
    let net = single_neuron();
    let mut ws = BatchWorkspace::<ExactEngine>::new(&net, 2).unwrap();
    assert!(matches!(ws.set_regulariser(Some(lower)), Err(EventPropError::InvalidHyperparameter { .. })));
    assert!(ws.regulariser().is_none());
    // Jump biases of the wrong length or not finite.
    let engine = ExactEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral)).unwrap();
    let clocked = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), 1.0).unwrap();
    let mut x = SpikeTrains::new(1);
    x.push_sample(&[1.0], &[0]).unwrap();
    let rec = engine.run(&net, x.sample(0)).unwrap();
    let mut g = Gradients::zeros(&net);
    let mut sc = engine.adjoint_scratch(&net);
    let e = engine.backward_into_with(&net, x.sample(0), &rec, &[0.1], Some(&[0.0; 2]), &mut sc, &mut g);
    assert!(matches!(e, Err(EventPropError::ShapeMismatch { expected: 3, got: 2, .. })), "{e:?}");
    let e = engine.backward_into_with(&net, x.sample(0), &rec, &[0.1], Some(&[0.0, f64::NAN, 0.0]), &mut sc, &mut g);
    assert!(matches!(e, Err(EventPropError::InvalidHyperparameter { .. })), "{e:?}");
    let rec = clocked.run(&net, x.sample(0)).unwrap();
    let mut sc = clocked.adjoint_scratch(&net);
    let e = clocked.backward_into_with(&net, x.sample(0), &rec, &[0.1], Some(&[0.0; 4]), &mut sc, &mut g);
    assert!(matches!(e, Err(EventPropError::ShapeMismatch { expected: 3, got: 4, .. })), "{e:?}");
}

#[test]
fn regularised_batch_gradients_do_not_depend_on_the_thread_count() {
    let mut seed = 5;
    let net = isolated_hidden(2.0, &mut seed);
    let set = data(12, &mut seed);
    let idx: Vec<usize> = (0..12).collect();
    let engine = ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), 1.0).unwrap();
    for average in [CountAverage::Batch, CountAverage::Sample] {
        let reg = SpikeCountReg { target: 3.0, strength_upper: 1e-3, strength_lower: 2e-3, average };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut ws = BatchWorkspace::<ClockedEngine>::new(&net, 2).unwrap();
                ws.set_regulariser(Some(reg)).unwrap();
                ws.compute(&engine, &net, set.spikes(), set.labels(), &idx, &Loss::ExpIntegralCrossEntropy, None)
                    .unwrap();
                bits(ws.gradients())
            })
        };
        assert_eq!(run(1), run(3), "{average:?}");
    }
}
