//! Gradients of the clocked backward pass against finite differences of the clocked loss.
//!
//! Without hidden spikes the clocked forward pass is linear in the weights and the backward
//! pass is its exact discrete adjoint: weight gradients match central differences to ~1e-7.
//! With hidden spikes, the backward pass is the discretised continuous adjoint; with a fine
//! grid it approaches central differences of the (nearly continuous) clocked loss.

use nalgebra::DMatrix;
use snn_core::{
    ClockedEngine, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig, Simulator,
    SpikeTrains,
};
use snn_eventprop::{Adjoint, Gradients, Loss};

/// Small deterministic pseudo-random numbers in [0, 1).
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

fn matrix(rows: usize, cols: usize, seed: &mut u64, f: impl Fn(f64) -> f64) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| f(lcg(seed)))
}

fn loss_and_grads(
    engine: &ClockedEngine,
    net: &Network,
    batch: &SpikeTrains,
    loss: Loss,
    label: usize,
) -> (f64, Gradients, ForwardRecord) {
    let rec = engine.run(net, batch.sample(0)).unwrap();
    let v = loss.evaluate(&rec.readout, label, 0, engine.config().t_end).unwrap();
    let mut grads = Gradients::zeros(net);
    let mut scratch = engine.adjoint_scratch(net);
    engine.backward_into(net, batch.sample(0), &rec, &v.d_readout, &mut scratch, &mut grads).unwrap();
    (v.loss, grads, rec)
}

fn loss_only(engine: &ClockedEngine, net: &Network, batch: &SpikeTrains, loss: Loss, label: usize) -> f64 {
    let rec = engine.run(net, batch.sample(0)).unwrap();
    loss.evaluate(&rec.readout, label, 0, engine.config().t_end).unwrap().loss
}

fn inputs(n_in: usize, n_spikes: usize, t_max: f64, seed: &mut u64) -> SpikeTrains {
    let times: Vec<f64> = (0..n_spikes).map(|_| lcg(seed) * t_max).collect();
    let neurons: Vec<u32> = (0..n_spikes).map(|_| (lcg(seed) * n_in as f64) as u32).collect();
    let mut b = SpikeTrains::new(n_in);
    b.push_unsorted(&times, &neurons).unwrap();
    b
}

#[test]
fn linear_network_weight_gradients_equal_finite_differences() {
    let mut seed = 7;
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 3);
    let o = b.li("out", 2, LiParams::new(20.0, 5.0).unwrap());
    b.connect(i, o, matrix(2, 3, &mut seed, |u| u - 0.3), matrix(2, 3, &mut seed, |u| 8.0 * u));
    let net = b.build().unwrap();
    let batch = inputs(3, 12, 25.0, &mut seed);
    for (loss, label) in [(Loss::ExpIntegralCrossEntropy, 1), (Loss::MaxVoltageCrossEntropy, 0)] {
        let engine = ClockedEngine::new(SimConfig::new(40.0, loss.readout_kind()), 0.5).unwrap();
        let (_, grads, rec) = loss_and_grads(&engine, &net, &batch, loss, label);
        assert!(rec.spikes.is_empty());
        let h = 1e-6;
        for k in 0..6 {
            let mut p = net.clone();
            p.weights_mut(snn_core::ConnectionId(0))[k] += h;
            let mut m = net.clone();
            m.weights_mut(snn_core::ConnectionId(0))[k] -= h;
            let fd =
                (loss_only(&engine, &p, &batch, loss, label) - loss_only(&engine, &m, &batch, loss, label)) / (2.0 * h);
            let g = grads.weights[0][k];
            assert!((fd - g).abs() < 1e-7 + 1e-6 * fd.abs(), "{loss:?} w[{k}]: adjoint {g} vs fd {fd}");
        }
    }
}

#[test]
fn voltage_at_readout_gradient_equals_finite_differences() {
    // L = Σ_q a_q V_0(t_q): d_readout = a.
    let mut seed = 11;
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 2);
    let o = b.li("out", 1, LiParams::new(10.0, 5.0).unwrap());
    b.connect(i, o, matrix(1, 2, &mut seed, |u| u), matrix(1, 2, &mut seed, |u| 4.0 * u));
    let net = b.build().unwrap();
    let batch = inputs(2, 6, 10.0, &mut seed);
    let ts = vec![5.0, 12.3, 20.0];
    let a = [0.7, -1.1, 0.4];
    let engine = ClockedEngine::new(SimConfig::new(25.0, ReadoutKind::VoltageAt(ts)), 0.1).unwrap();
    let lossf = |net: &Network| {
        let r = engine.run(net, batch.sample(0)).unwrap();
        r.readout.values.iter().zip(&a).map(|(v, a)| v * a).sum::<f64>()
    };
    let rec = engine.run(&net, batch.sample(0)).unwrap();
    let mut grads = Gradients::zeros(&net);
    let mut scratch = engine.adjoint_scratch(&net);
    engine.backward_into(&net, batch.sample(0), &rec, &a, &mut scratch, &mut grads).unwrap();
    // The readout is linear in the weights: the finite difference is exact up to rounding.
    for k in 0..2 {
        let mut p = net.clone();
        p.weights_mut(snn_core::ConnectionId(0))[k] += 1.0;
        let fd = lossf(&p) - lossf(&net);
        assert!((fd - grads.weights[0][k]).abs() < 1e-12, "w[{k}]: {} vs {fd}", grads.weights[0][k]);
    }
}

/// A recurrent network with delays and hidden spikes.
fn recurrent_net(seed: &mut u64) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 4);
    let h = b.lif("hid", 5, LifParams::default());
    let o = b.li("out", 3, LiParams::default());
    b.connect(i, h, matrix(5, 4, seed, |u| 6.0 * u), matrix(5, 4, seed, |u| 5.0 * u));
    b.connect(h, h, matrix(5, 5, seed, |u| 2.0 * u - 1.0), matrix(5, 5, seed, |u| 4.0 * u));
    b.connect(h, o, matrix(3, 5, seed, |u| 2.0 * u - 0.8), matrix(3, 5, seed, |u| 3.0 * u));
    b.build().unwrap()
}

/// Per connection: worst |adjoint - fd| and largest |fd| over its weights (`delays == false`) or delays.
fn compare(
    engine: &ClockedEngine,
    net: &Network,
    batch: &SpikeTrains,
    grads: &Gradients,
    delays: bool,
    h: f64,
) -> Vec<(f64, f64)> {
    let loss = Loss::ExpIntegralCrossEntropy;
    (0..net.connections().len())
        .map(|c| {
            let id = snn_core::ConnectionId(c);
            let mut worst: f64 = 0.0;
            let mut scale: f64 = 0.0;
            for k in 0..net.connection(id).weights().len() {
                let eval = |delta: f64| {
                    let mut p = net.clone();
                    if delays {
                        p.delays_mut(id)[k] = (p.delays_mut(id)[k] + delta).max(0.0);
                    } else {
                        p.weights_mut(id)[k] += delta;
                    }
                    loss_only(engine, &p, batch, loss, 2)
                };
                let fd = (eval(h) - eval(-h)) / (2.0 * h);
                let g = if delays { grads.delays[c][k] } else { grads.weights[c][k] };
                worst = worst.max((fd - g).abs());
                scale = scale.max(fd.abs());
            }
            println!(
                "{} conn {c}: worst abs error {worst:.3e}, largest |fd| {scale:.3e}",
                if delays { "delay" } else { "weight" }
            );
            (worst, scale)
        })
        .collect()
}

#[test]
fn spiking_network_gradients_approach_finite_differences_on_a_fine_grid() {
    // dt = 0.5 us: spike times move by whole steps, so the clocked loss is a fine staircase;
    // finite differences use steps much wider than the stairs (h = 0.02 in weight, 0.1 ms in delay).
    let mut seed = 3;
    let net = recurrent_net(&mut seed);
    let batch = inputs(4, 16, 20.0, &mut seed);
    let loss = Loss::ExpIntegralCrossEntropy;
    let engine = ClockedEngine::new(SimConfig::new(40.0, loss.readout_kind()), 0.0005).unwrap();
    let (_, grads, rec) = loss_and_grads(&engine, &net, &batch, loss, 2);
    assert!(rec.spikes.len() >= 5, "{} spikes", rec.spikes.len());
    for (c, (worst, scale)) in compare(&engine, &net, &batch, &grads, false, 2e-2).into_iter().enumerate() {
        assert!(worst < 0.1 * scale, "weights of connection {c}: worst {worst} vs scale {scale}");
    }
    for (c, (worst, scale)) in compare(&engine, &net, &batch, &grads, true, 0.1).into_iter().enumerate() {
        assert!(worst < 0.15 * scale, "delays of connection {c}: worst {worst} vs scale {scale}");
    }
}

#[test]
fn reused_scratches_follow_delay_changes() {
    // One forward scratch and one adjoint scratch for a sequence of networks, as the trainer
    // uses them: the cached delivery plans must be rebuilt when the delays change (and only
    // then may they be reused), so every result equals that of fresh scratches.
    let mut seed = 3;
    let mut net = recurrent_net(&mut seed);
    let batch = inputs(net.population(net.input()).size(), 12, 30.0, &mut seed);
    let engine = ClockedEngine::new(SimConfig::new(60.0, ReadoutKind::ExpIntegral), 0.5).unwrap();
    let loss = Loss::ExpIntegralCrossEntropy;
    let mut sim = engine.scratch(&net);
    let mut adj = engine.adjoint_scratch(&net);
    let mut rec = ForwardRecord::default();
    for round in 0..4 {
        match round {
            1 => net.weights_mut(snn_core::ConnectionId(0)).iter_mut().for_each(|w| *w *= 1.1),
            2 | 3 => net.delays_mut(snn_core::ConnectionId(1)).iter_mut().for_each(|d| *d += 2.6),
            _ => {}
        }
        engine.run_into(&net, batch.sample(0), &mut sim, &mut rec).unwrap();
        let v = loss.evaluate(&rec.readout, 1, 0, 60.0).unwrap();
        let mut grads = Gradients::zeros(&net);
        engine.backward_into(&net, batch.sample(0), &rec, &v.d_readout, &mut adj, &mut grads).unwrap();
        let (fresh_loss, fresh_grads, fresh_rec) = loss_and_grads(&engine, &net, &batch, loss, 1);
        assert_eq!(rec, fresh_rec, "round {round}");
        assert_eq!(v.loss, fresh_loss, "round {round}");
        assert_eq!(grads, fresh_grads, "round {round}");
    }
}

#[test]
fn a_reused_scratch_follows_the_layered_geometry() {
    // A feedforward network (the layered sweep) with one adjoint scratch for a sequence of runs
    // whose timelines change length: longer delays (more slots), a finer grid (more steps), then
    // back; the sweep keeps its timelines' tails zero across calls of one geometry, so every
    // result must equal that of a fresh scratch.
    let mut seed = 11;
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 4);
    let h = b.lif("hid", 9, LifParams::default());
    let o = b.li("out", 3, LiParams::default());
    b.connect(i, h, matrix(9, 4, &mut seed, |u| 6.0 * u), matrix(9, 4, &mut seed, |u| 20.0 * u));
    b.connect(h, o, matrix(3, 9, &mut seed, |u| 2.0 * u - 0.8), matrix(3, 9, &mut seed, |u| 20.0 * u));
    let mut net = b.build().unwrap();
    // Spikes up to the end of the run: their arrivals after it read the timelines' tails.
    let batch = inputs(4, 40, 60.0, &mut seed);
    let coarse = ClockedEngine::new(SimConfig::new(60.0, ReadoutKind::ExpIntegral), 0.5).unwrap();
    let fine = ClockedEngine::new(SimConfig::new(60.0, ReadoutKind::ExpIntegral), 0.25).unwrap();
    let loss = Loss::ExpIntegralCrossEntropy;
    let mut adj = coarse.adjoint_scratch(&net);
    let mut spiked = false;
    for round in 0..5 {
        if round == 1 {
            net.delays_mut(snn_core::ConnectionId(1)).iter_mut().for_each(|d| *d += 7.3);
        }
        let engine = if round == 2 || round == 3 { &fine } else { &coarse };
        let rec = engine.run(&net, batch.sample(0)).unwrap();
        spiked |= !rec.spikes.is_empty();
        let v = loss.evaluate(&rec.readout, 1, 0, 60.0).unwrap();
        let mut grads = Gradients::zeros(&net);
        engine.backward_into(&net, batch.sample(0), &rec, &v.d_readout, &mut adj, &mut grads).unwrap();
        let (_, fresh_grads, _) = loss_and_grads(engine, &net, &batch, loss, 1);
        assert_eq!(grads, fresh_grads, "round {round}");
    }
    assert!(spiked, "the hidden layer spiked (the sweep's jumps were exercised)");
}
