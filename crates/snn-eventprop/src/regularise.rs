//! Spike-count regularisation of hidden neurons (spec §3, "optional spike-count regularisation";
//! the paper: a target of about 14 spikes per hidden neuron per example, strength ~5e-11 on SHD).
//!
//! # What the reference does
//!
//! mlGeNN's EventProp compiler (`genn-team/ml_genn`, `ml_genn/compilers/event_prop_compiler.py`,
//! parameters `reg_lambda_upper`, `reg_lambda_lower`, `reg_nu_upper`; the paper's `shd.py` in
//! `mbalazs98/deventprop` sets both strengths to `k_reg = 5e-11` and `reg_nu_upper = 14`), in the
//! LIF code used for the paper, does this for every **hidden** LIF neuron `i` (not outputs):
//!
//! - the forward pass counts the spikes of `i` in every example; the counts are summed over the
//!   batch (`SpikeCountBackBatch = C_i`), and the target is scaled to the batch
//!   (`RegNuUpperBatch = nu B`);
//! - in the backward pass, at each spike of `i`, **after** the EventProp jump
//!   `LambdaV += (Vthresh LambdaV + RevISyn) / (I - V)`, it applies
//!   `LambdaV -= lambda_up/low / B^2 * (C_i - nu B)` (the upper strength when `C_i > nu B`,
//!   the lower one otherwise).
//!
//! With `nbar_i = C_i / B` the batch-mean count, that is `LambdaV -= (k/B) (nbar_i - nu)` per
//! batch lane; the lanes' gradients are summed, and the task loss's drive carries the same
//! `1/B` (batch-mean loss). Per sample, in a gradient that is averaged over the batch — this
//! crate's normalisation ([`crate::train::BatchWorkspace`] divides the summed per-sample
//! gradients by the batch size) — the reference's term is therefore
//!
//! ```text
//! lambda_V^- = lambda_V^+ + (theta lambda_V^+ + S) / (I - V)  +  b_i,
//! b_i = -k (nbar_i - nu),   k = strength_upper if nbar_i > nu, else strength_lower
//! ```
//!
//! in Wunderlich–Pehle scaling (`lambda_V = -(1/tau_m) dL/dV`, `dL/dw = -tau_s Σ lambda_I`).
//! That is the scaling of the reference's code of that version (hidden jump as above,
//! `Gradient -= LambdaI * TauSyn`, and the exp-weighted readout's forcing
//! `drive = g e^{-t/T} / (TauM num_batch T)`, i.e. our `Vbar = (1/T) ∫ e^{-t/T} V dt` with a
//! batch-mean loss) and of this crate. So [`SpikeCountReg::strength_upper`] / `strength_lower`
//! are the reference's `reg_lambda_upper` / `reg_lambda_lower` one to one, and
//! [`SpikeCountReg::target`] is `reg_nu_upper` (spikes per neuron per example). The engines apply
//! `b_i` through [`crate::Adjoint::backward_into_with`]'s jump bias.
//!
//! Note on the spec's wording ("enters as an `l_p`-type term"): in the version above the term
//! is *not* a `dl_p/dt_k` in the numerator of the jump (it would then be divided by `I - V`);
//! it is added to `lambda_V^-` after the jump — equivalently `b_i (I - V)` in the numerator.
//! Later mlGeNN versions (the generic "auto" neuron compiler) put a time-scaled term inside the
//! numerator instead (`drive_reg / (t + dt)`); this module follows the version of the paper.
//!
//! **Two-sided.** With both strengths positive, neurons firing more than `nu` per example are
//! pushed down and those firing less are pushed up. A neuron that does not fire at all has no
//! spike to carry the term and gets nothing from it (the training loop's silent-neuron boost
//! handles those).
//!
//! **Sign.** `b_i < 0` when a neuron fires too much: `dL/dV = -tau_m lambda_V` just before
//! each of its spikes grows by `tau_m k (nbar_i - nu)`, so descent lowers the voltage at its
//! spike times — fewer spikes. Tested in `tests/regulariser.rs`.
//!
//! # This is a surrogate, not the gradient of a loss
//!
//! A spike count is piecewise constant in the weights and delays: its exact derivative is zero
//! almost everywhere (and undefined where a spike appears or disappears). The term above is
//! the reference's heuristic: it behaves as if each spike's count contribution had derivative
//! `tau_m k (nbar - nu)` with respect to the membrane voltage just before the spike. No loss
//! function has this as its gradient, so the regulariser adds nothing to the reported loss, and
//! finite-difference checks do not apply to it. The task-loss gradients are untouched: with the
//! regulariser off (the default) the engines run exactly the code they ran before (bit for bit
//! the same gradients; also tested).
//!
//! # What counts, and when
//!
//! [`CountAverage::Batch`] (the reference): `nbar_i` is the mean count over the **same** batch
//! whose gradient is being computed. The training loop gets it from a forward-only pass over
//! the batch before the backward passes and keeps that pass's records for them (the per-spike
//! records only: about 300 kB per SHD sample, ~75 MB for a batch of 256), so the regulariser
//! costs that memory, not a second forward pass.
//! [`CountAverage::Sample`]: `nbar_i` is the sample's own count — no extra pass, but every
//! example (rather than the batch average) is pulled towards `nu`.
//!
//! # Scale
//!
//! `k = 5e-11` is tiny against the task gradient in this normalisation. Measured on an
//! SHD-shaped batch (32 samples, 700 inputs with ~8000 spikes per 1 s, 700-512(recurrent)-20,
//! clocked engine, `dt = 1 ms`, exp-integral cross-entropy; 19 spikes per hidden neuron per
//! sample on average, 493 of 512 neurons above the target 14), the regulariser's share of the
//! gradient is `|g_reg| / |g_task| ≈ 1.3e-5` (input weights and delays) and `≈ 1e-5` (recurrent
//! weights); the two are comparable at `k ≈ 4e-6`
//! (`cargo run --release -p bench-suite --example reg_scale`). Adam normalises each parameter's
//! step, so it is this ratio that matters: at the paper's strength the term only acts when
//! activity runs orders of magnitude away from the target (with the one-to-one mapping above,
//! the same holds for the reference on the same network and data). With the counting pass's
//! records reused, batch-mean counts cost no measurable time (0.91 s without, 0.87 s with the
//! regulariser for that 32-sample batch, one measurement on the 2-core machine; re-running the
//! forward pass instead cost about a third more).
//!
//! ```
//! use snn_eventprop::regularise::{CountAverage, SpikeCountReg};
//! let reg = SpikeCountReg::paper();
//! assert_eq!((reg.target, reg.strength_upper, reg.average), (14.0, 5e-11, CountAverage::Batch));
//! // A neuron firing 20 times per example on average: b = -5e-11 * (20 - 14).
//! assert!((reg.bias(20.0) + 3e-10).abs() < 1e-24);
//! assert!(SpikeCountReg::new(14.0, -1.0).is_err());
//! ```

use serde::{Deserialize, Serialize};
use snn_core::{Network, NeuronKind, PopulationId};

use crate::error::{EventPropError, Result};

/// Over what the spike count of a hidden neuron is averaged before it is compared with the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CountAverage {
    /// Mean over the samples of the batch (the reference; a counting pass first, whose records
    /// the backward passes reuse).
    #[default]
    Batch,
    /// The sample's own count.
    Sample,
}

/// The spike-count regulariser of hidden LIF neurons (see the [module docs](self)).
///
/// | field | paper (SHD) | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `target` | 14 | `nu`: target spikes per hidden neuron per example | finite, >= 0 |
/// | `strength_upper` | 5e-11 | `k` when the count is above the target | finite, >= 0 |
/// | `strength_lower` | 5e-11 | `k` when the count is at or below the target (0: upper-only) | finite, >= 0 |
/// | `average` | `Batch` | see [`CountAverage`] | — |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpikeCountReg {
    /// Target spikes per hidden neuron per example.
    pub target: f64,
    /// Strength above the target.
    pub strength_upper: f64,
    /// Strength at or below the target.
    pub strength_lower: f64,
    /// What count is compared with the target.
    pub average: CountAverage,
}

impl SpikeCountReg {
    /// Two-sided regulariser with equal strengths, batch-mean counts; checked.
    pub fn new(target: f64, strength: f64) -> Result<Self> {
        let r = Self { target, strength_upper: strength, strength_lower: strength, average: CountAverage::Batch };
        r.check()?;
        Ok(r)
    }

    /// The paper's SHD setting: target 14, strengths 5e-11 both sides, batch-mean counts.
    pub fn paper() -> Self {
        Self { target: 14.0, strength_upper: 5e-11, strength_lower: 5e-11, average: CountAverage::Batch }
    }

    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        for (param, value) in [
            ("spike_count_reg.target", self.target),
            ("spike_count_reg.strength_upper", self.strength_upper),
            ("spike_count_reg.strength_lower", self.strength_lower),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(EventPropError::InvalidHyperparameter { param, value, reason: "must be finite and >= 0" });
            }
        }
        Ok(())
    }

    /// The jump bias `b = -k (count - target)` of a neuron with (mean) spike count `count`.
    #[inline]
    pub fn bias(&self, count: f64) -> f64 {
        let dev = count - self.target;
        let k = if dev > 0.0 { self.strength_upper } else { self.strength_lower };
        -k * dev
    }

    /// Fills `out` (one entry per global neuron) with the jump bias of every regularised neuron
    /// ([`regularised`]) from its spike count `counts[g]` divided by `samples`; 0 elsewhere.
    pub fn jump_bias_into(&self, net: &Network, counts: &[u64], samples: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(net.num_neurons(), 0.0);
        let per = 1.0 / samples.max(1) as f64;
        for p in 0..net.populations().len() {
            let id = PopulationId(p);
            if !regularised(net, id) {
                continue;
            }
            let (o, n) = (net.offset(id), net.population(id).size());
            for (g, b) in out.iter_mut().enumerate().skip(o).take(n) {
                *b = self.bias(counts.get(g).copied().unwrap_or(0) as f64 * per);
            }
        }
    }
}

/// Whether the neurons of population `id` are regularised: LIF populations other than the output.
pub fn regularised(net: &Network, id: PopulationId) -> bool {
    id != net.output() && matches!(net.population(id).kind(), NeuronKind::Lif(_))
}

/// Mean spikes per regularised (hidden LIF) neuron per sample, from per-neuron spike counts
/// summed over `samples` samples; `None` if the network has no hidden LIF neuron.
pub fn mean_hidden_spikes(net: &Network, counts: &[u64], samples: usize) -> Option<f64> {
    let (mut spikes, mut neurons) = (0u64, 0usize);
    for p in 0..net.populations().len() {
        let id = PopulationId(p);
        if regularised(net, id) {
            let (o, n) = (net.offset(id), net.population(id).size());
            spikes += counts.get(o..o + n).map_or(0, |c| c.iter().sum::<u64>());
            neurons += n;
        }
    }
    (neurons > 0).then(|| spikes as f64 / (neurons * samples.max(1)) as f64)
}
