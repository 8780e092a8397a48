//! Exactness of the exact engine's adjoint: every `dL/dw` and `dL/dd` against central
//! finite differences of the loss computed with the exact forward engine, on random
//! networks (feedforward with 1 and 2 hidden layers, recurrent with delays), for the three
//! losses; plus a hand-derived case.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
use snn_core::{ExactEngine, LiParams, LifParams, Network, NetworkBuilder, SimConfig, Simulator, SpikeTrains};
use snn_eventprop::{Adjoint, FirstSpikeParams, Gradients, Loss};

mod common;

use common::{Ctx, Outcome, REFINED, T_END, check};

/// Checked max-voltage cases in which some output's maximum sits on a kink (all properties).
static KINK_CASES: AtomicUsize = AtomicUsize::new(0);
const N_IN: usize = 3;

/// Population sizes (input first, output last) and connections `(pre, post, w_lo, w_hi)`.
struct Layout {
    name: &'static str,
    hidden: &'static [usize],
    n_out: usize,
    conns: &'static [(usize, usize, f64, f64)],
}

impl Layout {
    fn sizes(&self) -> Vec<usize> {
        let mut s = vec![N_IN];
        s.extend_from_slice(self.hidden);
        s.push(self.n_out);
        s
    }

    fn n_synapses(&self) -> usize {
        let s = self.sizes();
        self.conns.iter().map(|&(a, b, ..)| s[a] * s[b]).sum()
    }

    /// Builds the network from uniform numbers `u` (mapped to each connection's weight range)
    /// and raw delays (negative ones clamped to 0, so about a fifth of the delays are exactly 0).
    fn build(&self, u: &[f64], d: &[f64], lif_out: bool) -> Network {
        let s = self.sizes();
        let mut b = NetworkBuilder::new();
        let mut pops = vec![b.input("in", N_IN)];
        for (l, &n) in self.hidden.iter().enumerate() {
            pops.push(b.lif(&format!("h{l}"), n, LifParams::default()));
        }
        pops.push(if lif_out {
            b.lif("out", self.n_out, LifParams::default())
        } else {
            b.li("out", self.n_out, LiParams::default())
        });
        let mut k = 0;
        for &(pre, post, lo, hi) in self.conns {
            let m = s[pre] * s[post];
            let w = DMatrix::from_iterator(s[post], s[pre], u[k..k + m].iter().map(|x| lo + (hi - lo) * x));
            let dd = DMatrix::from_iterator(s[post], s[pre], d[k..k + m].iter().map(|x| x.max(0.0)));
            b.connect(pops[pre], pops[post], w, dd);
            k += m;
        }
        b.output(pops[pops.len() - 1]).build().unwrap()
    }
}

const FF1: Layout =
    Layout { name: "feedforward 3-5-3", hidden: &[5], n_out: 3, conns: &[(0, 1, -2.0, 12.0), (1, 2, -3.0, 9.0)] };
const FF2: Layout = Layout {
    name: "feedforward 3-4-4-3",
    hidden: &[4, 4],
    n_out: 3,
    conns: &[(0, 1, -2.0, 12.0), (1, 2, -3.0, 10.0), (2, 3, -3.0, 9.0)],
};
const REC: Layout = Layout {
    name: "recurrent 3-5(rec)-3",
    hidden: &[5],
    n_out: 3,
    conns: &[(0, 1, -2.0, 12.0), (1, 1, -4.0, 4.0), (1, 2, -3.0, 9.0)],
};

fn run_property(layout: &Layout, loss: Loss) {
    let n_syn = layout.n_synapses();
    let lif_out = matches!(loss, Loss::FirstSpikeTime(_));
    let mut config = ProptestConfig::with_cases(256);
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions")));
    config.source_file = Some(file!());
    config.max_global_rejects = 100_000;
    // Fixed seed: the same networks on every run (house rule); regressions still replay first.
    config.rng_seed = RngSeed::Fixed(0x5eed_e7e7);
    let mut runner = TestRunner::new(config);
    let checked = AtomicUsize::new(0);
    let skipped = AtomicUsize::new(0);
    let spikes = AtomicUsize::new(0);
    let strategy = (
        prop::collection::vec(0.0f64..1.0, n_syn),
        prop::collection::vec(-2.0f64..8.0, n_syn),
        prop::collection::vec((0.0f64..15.0, 0u32..N_IN as u32), 2..8),
        0..layout.n_out,
    );
    let result = runner.run(&strategy, |(u, d, events, label)| {
        let net = layout.build(&u, &d, lif_out);
        let mut input = SpikeTrains::new(N_IN);
        let (t, nr): (Vec<f64>, Vec<u32>) = events.into_iter().unzip();
        input.push_unsorted(&t, &nr).unwrap();
        let cfg = SimConfig { max_spikes: 2000, ..SimConfig::new(T_END, loss.readout_kind()) };
        let ctx = Ctx { engine: ExactEngine::new(cfg).unwrap(), loss, input: &input, label };
        match check(&ctx, &net).map_err(TestCaseError::fail)? {
            Outcome::Checked { kink } => {
                if kink {
                    KINK_CASES.fetch_add(1, Relaxed);
                }
                checked.fetch_add(1, Relaxed);
                spikes.fetch_add(ctx.forward(&net).map_or(0, |r| r.spikes.len()), Relaxed);
                Ok(())
            }
            Outcome::Skipped(why) => {
                skipped.fetch_add(1, Relaxed);
                Err(TestCaseError::reject(why))
            }
        }
    });
    let (c, s) = (checked.load(Relaxed), skipped.load(Relaxed));
    eprintln!(
        "{} / {}: {c} cases checked, {s} skipped; {:.1} spikes per checked case; \
         so far (all properties) {} components needed a step below 1e-5 and {} checked cases had a max-voltage kink",
        layout.name,
        loss.name(),
        spikes.load(Relaxed) as f64 / c.max(1) as f64,
        REFINED.load(Relaxed),
        KINK_CASES.load(Relaxed)
    );
    if let Err(e) = result {
        panic!("{} / {}: {e}", layout.name, loss.name());
    }
    assert!(c >= 256, "only {c} cases checked");
    assert!(c >= s, "{s} of {} cases skipped: the test proves too little", c + s);
}

const FIRST_SPIKE: Loss = Loss::FirstSpikeTime(FirstSpikeParams { tau0: 0.5, tau1: 6.4, alpha: 3e-3 });

#[test]
fn gradcheck_ff1_exp_integral() {
    run_property(&FF1, Loss::ExpIntegralCrossEntropy);
}
#[test]
fn gradcheck_ff1_max_voltage() {
    run_property(&FF1, Loss::MaxVoltageCrossEntropy);
}
#[test]
fn gradcheck_ff1_first_spike() {
    run_property(&FF1, FIRST_SPIKE);
}
#[test]
fn gradcheck_ff2_exp_integral() {
    run_property(&FF2, Loss::ExpIntegralCrossEntropy);
}
#[test]
fn gradcheck_ff2_max_voltage() {
    run_property(&FF2, Loss::MaxVoltageCrossEntropy);
}
#[test]
fn gradcheck_ff2_first_spike() {
    run_property(&FF2, FIRST_SPIKE);
}
#[test]
fn gradcheck_recurrent_exp_integral() {
    run_property(&REC, Loss::ExpIntegralCrossEntropy);
}
#[test]
fn gradcheck_recurrent_max_voltage() {
    run_property(&REC, Loss::MaxVoltageCrossEntropy);
}
#[test]
fn gradcheck_recurrent_first_spike() {
    run_property(&REC, FIRST_SPIKE);
}

// ---------------------------------------------------------------- hand-derived case

/// One input spike at `t0` -> one LIF (weight `w1`, delay `d0`) -> one LI (weight `w2`, delay `d`).
///
/// With `K(u) = c (e^{-u/ts} - e^{-u/tm})`, `c = ts/(ts - tm)` (the voltage after a unit
/// arrival at rest), the LIF spikes once at `t1 = t0 + d0 + s1`, `w1 K(s1) = 1`, and the
/// output receives `w2` at `a = t1 + d`. Implicit differentiation: `ds1/dw1 = -K(s1)/(w1 K'(s1))`.
/// - exp-integral readout `R = (1/T) ∫ e^{-t/T} V dt = (w2/T) e^{-a/T} J(T - a)` with
///   `J(x) = c [(1 - e^{-x r_s})/r_s - (1 - e^{-x r_m})/r_m]`:
///   `dR/dw2 = R/w2`, `dR/da = -R/T - (w2/T) e^{-1} K(T - a)`;
/// - voltage readout `R = V(t_r) = w2 K(t_r - a)`: `dR/dw2 = K(t_r - a)`, `dR/da = -w2 K'(t_r - a)`;
///
/// and in both `dR/dd = dR/dd0 = dR/da`, `dR/dw1 = dR/da ds1/dw1`.
#[test]
fn hand_derived_single_chain() {
    let (tm, ts) = (20.0, 5.0);
    let c = ts / (ts - tm);
    let k = |u: f64| c * ((-u / ts).exp() - (-u / tm).exp());
    let dk = |u: f64| c * (-(-u / ts).exp() / ts + (-u / tm).exp() / tm);
    let (t0, w1, d0, w2, d, t_end, t_r) = (1.5, 9.0, 2.0, 0.7, 3.5, 30.0, 17.0);
    // s1 by bisection on the rising branch (peak at ln(4)/0.15 ms).
    let (mut lo, mut hi) = (0.0, 4f64.ln() / (1.0 / ts - 1.0 / tm));
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if w1 * k(m) < 1.0 { lo = m } else { hi = m }
    }
    let s1 = 0.5 * (lo + hi);
    let a = t0 + d0 + s1 + d;
    let ds1_dw1 = -k(s1) / (w1 * dk(s1));

    let mut b = NetworkBuilder::new();
    let i = b.input("in", 1);
    let h = b.lif("h", 1, LifParams::default());
    let o = b.li("out", 1, LiParams::default());
    b.connect(i, h, DMatrix::from_element(1, 1, w1), DMatrix::from_element(1, 1, d0));
    b.connect(h, o, DMatrix::from_element(1, 1, w2), DMatrix::from_element(1, 1, d));
    let net = b.build().unwrap();
    let mut input = SpikeTrains::new(1);
    input.push_sample(&[t0], &[0]).unwrap();

    let (rm, rs) = (1.0 / tm + 1.0 / t_end, 1.0 / ts + 1.0 / t_end);
    let x = t_end - a;
    let j = c * (-(-x * rs).exp_m1() / rs + (-x * rm).exp_m1() / rm);
    let r_int = w2 / t_end * (-a / t_end).exp() * j;
    let da_int = -r_int / t_end - w2 / t_end * (-1f64).exp() * k(t_end - a);
    let r_at = w2 * k(t_r - a);
    let da_at = -w2 * dk(t_r - a);

    for (kind, r, dw2, da) in [
        (snn_core::ReadoutKind::ExpIntegral, r_int, r_int / w2, da_int),
        (snn_core::ReadoutKind::VoltageAt(vec![t_r]), r_at, k(t_r - a), da_at),
    ] {
        let engine = ExactEngine::new(SimConfig::new(t_end, kind)).unwrap();
        let rec = engine.run(&net, input.sample(0)).unwrap();
        assert_eq!(rec.spikes.len(), 1);
        assert!((rec.spikes.times[0] - (t0 + d0 + s1)).abs() < 1e-12);
        assert!((rec.readout.values[0] - r).abs() < 1e-13, "{} vs {r}", rec.readout.values[0]);
        let mut g = Gradients::zeros(&net);
        let mut sc = engine.adjoint_scratch(&net);
        engine.backward_into(&net, input.sample(0), &rec, &[1.0], &mut sc, &mut g).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-10 * y.abs().max(1e-3);
        assert!(close(g.weights[1][(0, 0)], dw2), "dR/dw2 {} vs {dw2}", g.weights[1][(0, 0)]);
        assert!(close(g.delays[1][(0, 0)], da), "dR/dd {} vs {da}", g.delays[1][(0, 0)]);
        assert!(close(g.delays[0][(0, 0)], da), "dR/dd0 {} vs {da}", g.delays[0][(0, 0)]);
        let dw1 = da * ds1_dw1;
        assert!(close(g.weights[0][(0, 0)], dw1), "dR/dw1 {} vs {dw1}", g.weights[0][(0, 0)]);
    }
}

/// Wrong-shaped inputs to the backward pass are typed errors.
#[test]
fn backward_rejects_mismatched_inputs() {
    let net = FF1.build(&[0.5; 30], &[1.0; 30], false);
    let engine = ExactEngine::new(SimConfig::new(T_END, snn_core::ReadoutKind::ExpIntegral)).unwrap();
    let mut input = SpikeTrains::new(N_IN);
    input.push_sample(&[1.0], &[0]).unwrap();
    let rec = engine.run(&net, input.sample(0)).unwrap();
    let mut g = Gradients::zeros(&net);
    let mut sc = engine.adjoint_scratch(&net);
    let e = engine.backward_into(&net, input.sample(0), &rec, &[1.0], &mut sc, &mut g);
    assert!(matches!(e, Err(snn_eventprop::EventPropError::ReadoutMismatch { .. })));
    assert!(engine.backward_into(&net, input.sample(0), &rec, &[1.0, 0.0, 0.0], &mut sc, &mut g).is_ok());
}
