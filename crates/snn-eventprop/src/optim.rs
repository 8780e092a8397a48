//! Optimisers (spec §4): Adam for weights and a separate Adam, with its own learning rate and
//! schedule, for delays; delays are clamped to `[0, max_delay]` after each step.
//!
//! Everything here is `serde`-serialisable so that a checkpoint restores the exact state
//! (moments, step count) and training resumes bit for bit.

use serde::{Deserialize, Serialize};
use snn_core::{ConnectionId, Network};
use snn_delays::DelayConstraint;

use crate::error::{EventPropError, Result};
use crate::gradients::Gradients;

fn bad(param: &'static str, value: f64, reason: &'static str) -> EventPropError {
    EventPropError::InvalidHyperparameter { param, value, reason }
}

/// Hyperparameters of Adam (Kingma & Ba 2015), bias-corrected.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `lr` | 1e-3 | final (peak) learning rate; the schedule scales it | finite, > 0 |
/// | `beta1` | 0.9 | decay of the first-moment estimate | `[0, 1)` |
/// | `beta2` | 0.999 | decay of the second-moment estimate | `[0, 1)` |
/// | `eps` | 1e-8 | added to `sqrt(v_hat)` | finite, > 0 |
///
/// The paper: weights `lr = 1e-3`; delays `lr = 0.1` (SHD/SSC), `1.0` (sequence detection),
/// `10` (Yin-Yang).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator offset.
    pub eps: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

impl AdamParams {
    /// Default Adam with learning rate `lr`.
    pub fn with_lr(lr: f64) -> Self {
        Self { lr, ..Self::default() }
    }

    /// Validates the values (see the table above).
    pub fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr, "must be finite and > 0"));
        }
        for (param, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(bad(param, b, "must be in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(bad("eps", self.eps, "must be finite and > 0"));
        }
        Ok(())
    }
}

/// Learning-rate warm-up: the rate of step `t` (0-based) is scaled by
/// `min(1, start_fraction * factor^t)`.
///
/// | field | default (paper) | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `start_fraction` | 0.001 | scale of the first step | `(0, 1]` |
/// | `factor` | 1.05 | growth per step (batch) | finite, `>= 1` |
///
/// With the defaults the full rate is reached after `ceil(ln 1000 / ln 1.05) = 142` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmUp {
    /// Scale of the first step.
    pub start_fraction: f64,
    /// Growth factor per step.
    pub factor: f64,
}

impl Default for WarmUp {
    fn default() -> Self {
        Self { start_fraction: 1e-3, factor: 1.05 }
    }
}

/// How the learning rate changes: optional per-step warm-up times a per-epoch decay.
///
/// `rate(base, step, epoch) = base * min(1, start_fraction * factor^step) * epoch_decay^epoch`
/// (the warm-up factor is 1 without warm-up). The rate is a closed-form function of the step
/// and epoch counters, so a resumed run computes the very same rates.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `warmup` | `None` | per-step warm-up ([`WarmUp`]) | see there |
/// | `epoch_decay` | 1 (none) | factor per completed epoch; the paper uses 0.9975 for Yin-Yang delays | `(0, 1]` |
///
/// ```
/// use snn_eventprop::optim::LrSchedule;
/// let s = LrSchedule::paper_warmup();
/// assert!((s.rate(1e-3, 0, 0) - 1e-6).abs() < 1e-18);
/// assert!((s.rate(1e-3, 10, 0) - 1e-6 * 1.05f64.powi(10)).abs() < 1e-18);
/// assert_eq!(s.rate(1e-3, 200, 0), 1e-3);
/// let d = LrSchedule::epoch_decay(0.9975);
/// assert_eq!(d.rate(10.0, 5, 2), 10.0 * 0.9975 * 0.9975);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Per-step warm-up.
    pub warmup: Option<WarmUp>,
    /// Per-epoch multiplicative decay.
    pub epoch_decay: f64,
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self::constant()
    }
}

impl LrSchedule {
    /// The base rate throughout.
    pub fn constant() -> Self {
        Self { warmup: None, epoch_decay: 1.0 }
    }

    /// The paper's weight schedule: warm-up ×1.05 per batch from 0.001× the base rate.
    pub fn paper_warmup() -> Self {
        Self { warmup: Some(WarmUp::default()), epoch_decay: 1.0 }
    }

    /// Multiply the rate by `factor` after every epoch.
    pub fn epoch_decay(factor: f64) -> Self {
        Self { warmup: None, epoch_decay: factor }
    }

    /// Validates the values.
    pub fn check(&self) -> Result<()> {
        if let Some(w) = self.warmup {
            if !(w.start_fraction > 0.0 && w.start_fraction <= 1.0) {
                return Err(bad("warmup.start_fraction", w.start_fraction, "must be in (0, 1]"));
            }
            if !(w.factor.is_finite() && w.factor >= 1.0) {
                return Err(bad("warmup.factor", w.factor, "must be finite and >= 1"));
            }
        }
        if !(self.epoch_decay > 0.0 && self.epoch_decay <= 1.0) {
            return Err(bad("epoch_decay", self.epoch_decay, "must be in (0, 1]"));
        }
        Ok(())
    }

    /// Learning rate of step `step` (0-based, counted over the whole run) in epoch `epoch` (0-based).
    pub fn rate(&self, base: f64, step: u64, epoch: usize) -> f64 {
        let warm = match self.warmup {
            None => 1.0,
            Some(w) => {
                // powf of a large step overflows to inf, and min(1, inf) = 1: no special case.
                let s = w.start_fraction * w.factor.powf(step as f64);
                s.min(1.0)
            }
        };
        let decay = if self.epoch_decay == 1.0 { 1.0 } else { self.epoch_decay.powf(epoch as f64) };
        base * warm * decay
    }
}

/// First and second moments of one parameter matrix (flat, column-major like nalgebra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Moments {
    m: Vec<f64>,
    v: Vec<f64>,
}

/// Adam over a list of parameter matrices ("slots"); a slot may be absent (not trained).
///
/// Use it in two phases per optimiser step: [`Adam::begin_step`] advances the step counter and
/// returns the learning rate; [`Adam::update`] then applies
///
/// ```text
/// m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
/// p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// ```
///
/// to each slot, `t` being the 1-based step count.
///
/// ```
/// use snn_eventprop::optim::{Adam, AdamParams, LrSchedule};
/// let mut adam = Adam::new(AdamParams::with_lr(0.1), LrSchedule::constant(), &[Some(2)]).unwrap();
/// let mut p = [1.0, -1.0];
/// let lr = adam.begin_step(0);
/// adam.update(0, &mut p, &[0.5, -2.0], lr).unwrap();
/// // The first bias-corrected step moves every parameter by lr * g/(|g| + eps) ~ lr * sign(g).
/// assert!((p[0] - 0.9).abs() < 1e-7 && (p[1] + 0.9).abs() < 1e-7);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    params: AdamParams,
    schedule: LrSchedule,
    steps: u64,
    slots: Vec<Option<Moments>>,
}

impl Adam {
    /// An Adam for slots of the given lengths (`None`: slot not trained).
    pub fn new(params: AdamParams, schedule: LrSchedule, slot_lens: &[Option<usize>]) -> Result<Self> {
        params.check()?;
        schedule.check()?;
        let slots = slot_lens.iter().map(|l| l.map(|n| Moments { m: vec![0.0; n], v: vec![0.0; n] })).collect();
        Ok(Self { params, schedule, steps: 0, slots })
    }

    /// Hyperparameters.
    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    /// Schedule.
    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Whether slot `k` is trained.
    pub fn is_trained(&self, k: usize) -> bool {
        self.slots.get(k).is_some_and(Option::is_some)
    }

    /// Learning rate the next step will use in epoch `epoch`.
    pub fn next_rate(&self, epoch: usize) -> f64 {
        self.schedule.rate(self.params.lr, self.steps, epoch)
    }

    /// Starts a step: returns its learning rate and advances the step counter.
    pub fn begin_step(&mut self, epoch: usize) -> f64 {
        let lr = self.next_rate(epoch);
        self.steps += 1;
        lr
    }

    /// Applies the current step to slot `k` (call after [`Adam::begin_step`]).
    ///
    /// Errors if the slot is not trained or the lengths differ.
    pub fn update(&mut self, k: usize, param: &mut [f64], grad: &[f64], lr: f64) -> Result<()> {
        let AdamParams { beta1, beta2, eps, .. } = self.params;
        let t = self.steps.max(1);
        let Some(Some(mo)) = self.slots.get_mut(k) else {
            return Err(EventPropError::ShapeMismatch { what: "optimiser slot (not trained)", expected: 0, got: k });
        };
        if param.len() != mo.m.len() || grad.len() != mo.m.len() {
            return Err(EventPropError::ShapeMismatch {
                what: "parameter/gradient length",
                expected: mo.m.len(),
                got: if param.len() != mo.m.len() { param.len() } else { grad.len() },
            });
        }
        // t fits i32 for any realistic run; powf keeps it exact enough otherwise.
        let c1 = 1.0 - beta1.powf(t as f64);
        let c2 = 1.0 - beta2.powf(t as f64);
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(mo.m.iter_mut()).zip(mo.v.iter_mut()) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
        Ok(())
    }
}

/// Which parameters of one connection learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Trainable {
    /// Weights learn.
    pub weights: bool,
    /// Delays learn.
    pub delays: bool,
}

impl Trainable {
    /// Weights and delays.
    pub const BOTH: Trainable = Trainable { weights: true, delays: true };
    /// Weights only.
    pub const WEIGHTS: Trainable = Trainable { weights: true, delays: false };
    /// Delays only (e.g. sequence detection).
    pub const DELAYS: Trainable = Trainable { weights: false, delays: true };
    /// Frozen.
    pub const NONE: Trainable = Trainable { weights: false, delays: false };

    /// Whether anything learns.
    pub fn any(&self) -> bool {
        self.weights || self.delays
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Learning rate used for weights.
    pub weight_lr: f64,
    /// Learning rate used for delays.
    pub delay_lr: f64,
    /// Delays the clamp moved back into `[0, max_delay]`.
    pub clamped: usize,
}

/// The paper's optimiser: Adam on weights, a separate Adam on delays, delays clamped after
/// each step.
///
/// ```
/// use nalgebra::DMatrix;
/// use snn_core::{LiParams, NetworkBuilder};
/// use snn_delays::DelayConstraint;
/// use snn_eventprop::Gradients;
/// use snn_eventprop::optim::{AdamParams, LrSchedule, Optimiser, Trainable};
///
/// let mut b = NetworkBuilder::new();
/// let i = b.input("in", 2);
/// let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
/// b.connect(i, o, DMatrix::from_element(2, 2, 1.0), DMatrix::from_element(2, 2, 0.5));
/// let mut net = b.build().unwrap();
/// let mut opt = Optimiser::new(
///     &net, &[Trainable::DELAYS],
///     (AdamParams::default(), LrSchedule::constant()),
///     (AdamParams::with_lr(1.0), LrSchedule::constant()),
///     DelayConstraint::new(15.0).unwrap(),
/// ).unwrap();
/// let mut g = Gradients::zeros(&net);
/// g.delays[0].fill(1.0); // a positive gradient pushes every delay down by ~1 ms ...
/// g.weights[0].fill(1.0); // ... and frozen weights ignore their gradient
/// let info = opt.step(&mut net, &g, 0).unwrap();
/// assert_eq!(info.clamped, 4); // ... 0.5 - 1 < 0: clamped to 0
/// assert!(net.connections()[0].delays().iter().all(|&d| d == 0.0));
/// assert!(net.connections()[0].weights().iter().all(|&w| w == 1.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimiser {
    weights: Adam,
    delays: Adam,
    constraint: DelayConstraint,
    trainable: Vec<Trainable>,
}

impl Optimiser {
    /// An optimiser for `net` with per-connection flags `trainable` (one per connection).
    ///
    /// Errors: flag count differs from the connection count, nothing trainable, invalid
    /// hyperparameters.
    pub fn new(
        net: &Network,
        trainable: &[Trainable],
        weights: (AdamParams, LrSchedule),
        delays: (AdamParams, LrSchedule),
        constraint: DelayConstraint,
    ) -> Result<Self> {
        constraint.check()?;
        let conns = net.connections();
        if trainable.len() != conns.len() {
            return Err(EventPropError::TrainableCountMismatch { connections: conns.len(), flags: trainable.len() });
        }
        if !trainable.iter().any(Trainable::any) {
            return Err(EventPropError::NothingToTrain);
        }
        let lens = |pick: fn(&Trainable) -> bool| -> Vec<Option<usize>> {
            conns.iter().zip(trainable).map(|(c, t)| pick(t).then(|| c.num_synapses())).collect()
        };
        Ok(Self {
            weights: Adam::new(weights.0, weights.1, &lens(|t| t.weights))?,
            delays: Adam::new(delays.0, delays.1, &lens(|t| t.delays))?,
            constraint,
            trainable: trainable.to_vec(),
        })
    }

    /// Checks that this optimiser fits `net` — e.g. both just read from a checkpoint: valid
    /// hyperparameters and schedules, one flag per connection, a moment slot exactly for each
    /// trained matrix, with that matrix's length, and finite moments.
    pub fn check_fits(&self, net: &Network) -> Result<()> {
        self.constraint.check()?;
        let conns = net.connections();
        if self.trainable.len() != conns.len() {
            return Err(EventPropError::TrainableCountMismatch {
                connections: conns.len(),
                flags: self.trainable.len(),
            });
        }
        for (adam, pick, what) in [
            (&self.weights, (|t: &Trainable| t.weights) as fn(&Trainable) -> bool, "weight optimiser slots"),
            (&self.delays, |t: &Trainable| t.delays, "delay optimiser slots"),
        ] {
            adam.params.check()?;
            adam.schedule.check()?;
            if adam.slots.len() != conns.len() {
                return Err(EventPropError::ShapeMismatch { what, expected: conns.len(), got: adam.slots.len() });
            }
            for ((slot, c), t) in adam.slots.iter().zip(conns).zip(&self.trainable) {
                let want = pick(t).then(|| c.num_synapses());
                let got = slot.as_ref().map(|m| m.m.len());
                if want != got || slot.as_ref().is_some_and(|m| m.v.len() != m.m.len()) {
                    return Err(EventPropError::ShapeMismatch {
                        what,
                        expected: want.unwrap_or(0),
                        got: got.unwrap_or(0),
                    });
                }
                if let Some(&bad) = slot.iter().flat_map(|m| m.m.iter().chain(&m.v)).find(|x| !x.is_finite()) {
                    return Err(EventPropError::InvalidHyperparameter {
                        param: "Adam moment",
                        value: bad,
                        reason: "must be finite",
                    });
                }
            }
        }
        Ok(())
    }

    /// Per-connection flags.
    pub fn trainable(&self) -> &[Trainable] {
        &self.trainable
    }

    /// The delay constraint.
    pub fn constraint(&self) -> &DelayConstraint {
        &self.constraint
    }

    /// The weight optimiser.
    pub fn weight_adam(&self) -> &Adam {
        &self.weights
    }

    /// The delay optimiser.
    pub fn delay_adam(&self) -> &Adam {
        &self.delays
    }

    /// One step on every trainable matrix of `net` with gradients `grads` (same network),
    /// then clamps the trained delays. `epoch` (0-based) drives the per-epoch decay.
    pub fn step(&mut self, net: &mut Network, grads: &Gradients, epoch: usize) -> Result<StepInfo> {
        let n = self.trainable.len();
        if net.connections().len() != n || grads.weights.len() != n || grads.delays.len() != n {
            return Err(EventPropError::ShapeMismatch {
                what: "connections (network or gradients vs optimiser)",
                expected: n,
                got: net.connections().len().min(grads.weights.len()).min(grads.delays.len()),
            });
        }
        let any_w = self.trainable.iter().any(|t| t.weights);
        let any_d = self.trainable.iter().any(|t| t.delays);
        // Only advance an Adam that has something to train (keeps its bias correction honest).
        let weight_lr = if any_w { self.weights.begin_step(epoch) } else { 0.0 };
        let delay_lr = if any_d { self.delays.begin_step(epoch) } else { 0.0 };
        let mut clamped = 0;
        for k in 0..n {
            let t = self.trainable[k];
            if t.weights {
                self.weights.update(
                    k,
                    net.weight_values_mut(ConnectionId(k)),
                    grads.weights[k].as_slice(),
                    weight_lr,
                )?;
            }
            if t.delays {
                let d = net.delay_values_mut(ConnectionId(k));
                self.delays.update(k, d, grads.delays[k].as_slice(), delay_lr)?;
                clamped += self.constraint.apply_mut(d);
            }
        }
        Ok(StepInfo { weight_lr, delay_lr, clamped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Adam written out for a scalar, the textbook way, for comparison.
    fn reference(g: &[f64], lr: f64, p0: f64) -> f64 {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let (mut m, mut v, mut p) = (0.0, 0.0, p0);
        for (t, &gt) in g.iter().enumerate() {
            let t = (t + 1) as i32;
            m = b1 * m + (1.0 - b1) * gt;
            v = b2 * v + (1.0 - b2) * gt * gt;
            let mh = m / (1.0 - b1.powi(t));
            let vh = v / (1.0 - b2.powi(t));
            p -= lr * mh / (vh.sqrt() + eps);
        }
        p
    }

    #[test]
    fn adam_matches_the_textbook_and_minimises_a_quadratic() {
        let grads = [0.3, -1.0, 2.5, 0.0, 1e-3];
        let mut adam = Adam::new(AdamParams::with_lr(0.01), LrSchedule::constant(), &[Some(1)]).unwrap();
        let mut p = [0.7];
        for g in grads {
            let lr = adam.begin_step(0);
            adam.update(0, &mut p, &[g], lr).unwrap();
        }
        assert!((p[0] - reference(&grads, 0.01, 0.7)).abs() < 1e-15);

        // f(p) = (p - 3)^2 / 2, gradient p - 3.
        let mut adam = Adam::new(AdamParams::with_lr(0.05), LrSchedule::constant(), &[Some(1)]).unwrap();
        let mut p = [0.0];
        for _ in 0..2000 {
            let g = [p[0] - 3.0];
            let lr = adam.begin_step(0);
            adam.update(0, &mut p, &g, lr).unwrap();
        }
        assert!((p[0] - 3.0).abs() < 1e-2, "{}", p[0]);
    }

    #[test]
    fn bad_settings_and_shapes() {
        for p in [
            AdamParams::with_lr(0.0),
            AdamParams::with_lr(f64::NAN),
            AdamParams { beta1: 1.0, ..AdamParams::default() },
            AdamParams { beta2: -0.1, ..AdamParams::default() },
            AdamParams { eps: 0.0, ..AdamParams::default() },
        ] {
            assert!(Adam::new(p, LrSchedule::constant(), &[]).is_err(), "{p:?}");
        }
        for s in [
            LrSchedule::epoch_decay(0.0),
            LrSchedule::epoch_decay(1.1),
            LrSchedule { warmup: Some(WarmUp { start_fraction: 0.0, factor: 1.05 }), epoch_decay: 1.0 },
            LrSchedule { warmup: Some(WarmUp { start_fraction: 0.1, factor: 0.9 }), epoch_decay: 1.0 },
        ] {
            assert!(s.check().is_err(), "{s:?}");
        }
        let mut adam = Adam::new(AdamParams::default(), LrSchedule::constant(), &[Some(2), None]).unwrap();
        let lr = adam.begin_step(0);
        assert!(adam.update(0, &mut [0.0; 3], &[0.0; 3], lr).is_err());
        assert!(adam.update(1, &mut [0.0; 2], &[0.0; 2], lr).is_err());
        assert!(adam.update(7, &mut [0.0; 2], &[0.0; 2], lr).is_err());
    }

    #[test]
    fn warmup_reaches_full_rate_after_142_steps() {
        let s = LrSchedule::paper_warmup();
        assert!(s.rate(1.0, 141, 0) < 1.0);
        assert_eq!(s.rate(1.0, 142, 0), 1.0);
        assert_eq!(s.rate(1.0, u64::MAX, 0), 1.0);
        let both = LrSchedule { warmup: Some(WarmUp::default()), epoch_decay: 0.5 };
        assert_eq!(both.rate(1.0, 1000, 3), 0.125);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Serialising mid-run and continuing gives bitwise the same trajectory.
        #[test]
        fn adam_state_roundtrips_through_bincode(gs in prop::collection::vec(-5.0..5.0f64, 2..30), cut in 0usize..30) {
            let cut = cut % gs.len();
            let mk = || Adam::new(AdamParams::with_lr(0.1), LrSchedule::paper_warmup(), &[Some(1)]).unwrap();
            let (mut a, mut pa) = (mk(), [1.0]);
            for &g in &gs {
                let lr = a.begin_step(0);
                a.update(0, &mut pa, &[g], lr).unwrap();
            }
            let (mut b, mut pb) = (mk(), [1.0]);
            for &g in &gs[..cut] {
                let lr = b.begin_step(0);
                b.update(0, &mut pb, &[g], lr).unwrap();
            }
            let bytes = bincode::serde::encode_to_vec(&b, bincode::config::standard()).unwrap();
            let (mut b, _): (Adam, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            for &g in &gs[cut..] {
                let lr = b.begin_step(0);
                b.update(0, &mut pb, &[g], lr).unwrap();
            }
            prop_assert_eq!(pa[0].to_bits(), pb[0].to_bits());
            prop_assert_eq!(a, b);
        }
    }
}
