//! Losses on the readout (spec §3).
//!
//! A loss is a function of the readout vector only. It reports its value, its
//! derivative with respect to each readout value (`d_readout`), which the engine's
//! adjoint pass turns into `dl_V/dV` forcing (voltage readouts) or `dl_p/dt_k` jumps
//! (spike-time readouts), and the predicted class.

use serde::{Deserialize, Serialize};
use snn_core::{ReadoutKind, ReadoutValues};

use crate::error::{EventPropError, Result};

/// Parameters of the first-spike-time loss of Wunderlich & Pehle (2021):
/// `L = -log softmax(-t / tau0)_c + alpha (e^{t_c / tau1} - 1)`.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `tau0` | 0.5 ms | temperature of the softmax over negative spike times | finite, > 0 |
/// | `tau1` | 6.4 ms | time scale of the early-spike regulariser | finite, > 0 |
/// | `alpha` | 3e-3 | strength of the early-spike regulariser | finite, >= 0 |
///
/// **Outputs that never spike** are read as spiking at `t_end` (so a silent correct output
/// is penalised as the latest possible), and get no gradient through their time: there is
/// no spike whose time could move. Silent outputs therefore learn only once they spike;
/// the training loop's "boost silent neurons" rule exists for that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirstSpikeParams {
    /// Softmax temperature (ms).
    pub tau0: f64,
    /// Regulariser time scale (ms).
    pub tau1: f64,
    /// Regulariser strength.
    pub alpha: f64,
}

impl Default for FirstSpikeParams {
    fn default() -> Self {
        Self { tau0: 0.5, tau1: 6.4, alpha: 3e-3 }
    }
}

impl FirstSpikeParams {
    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        for (param, value, ok) in [
            ("tau0", self.tau0, self.tau0 > 0.0),
            ("tau1", self.tau1, self.tau1 > 0.0),
            ("alpha", self.alpha, self.alpha >= 0.0),
        ] {
            if !(value.is_finite() && ok) {
                return Err(EventPropError::InvalidHyperparameter { param, value, reason: "out of range" });
            }
        }
        Ok(())
    }
}

/// The losses of the paper's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// Softmax cross-entropy on the exp-weighted integral of LI voltages (SHD, SSC).
    ExpIntegralCrossEntropy,
    /// Softmax cross-entropy on the maximum LI voltage (sequence detection).
    MaxVoltageCrossEntropy,
    /// First-spike-time loss on LIF outputs (Yin-Yang).
    FirstSpikeTime(FirstSpikeParams),
}

/// A loss evaluated on one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossValue {
    /// The loss.
    pub loss: f64,
    /// `dL/d(readout value)` per output neuron.
    pub d_readout: Vec<f64>,
    /// Predicted class.
    pub prediction: usize,
}

impl LossValue {
    /// Whether the prediction equals `label`.
    pub fn correct(&self, label: usize) -> bool {
        self.prediction == label
    }
}

impl Loss {
    /// Short name, for reports and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::ExpIntegralCrossEntropy => "exp-integral cross-entropy",
            Loss::MaxVoltageCrossEntropy => "max-voltage cross-entropy",
            Loss::FirstSpikeTime(_) => "first-spike time",
        }
    }

    /// The readout the forward engine must produce for this loss.
    pub fn readout_kind(&self) -> ReadoutKind {
        match self {
            Loss::ExpIntegralCrossEntropy => ReadoutKind::ExpIntegral,
            Loss::MaxVoltageCrossEntropy => ReadoutKind::MaxVoltage,
            Loss::FirstSpikeTime(_) => ReadoutKind::FirstSpike,
        }
    }

    /// Evaluates the loss of one sample with class `label`; `t_end` is the simulated duration (ms).
    ///
    /// ```
    /// use snn_core::ReadoutValues;
    /// use snn_eventprop::Loss;
    /// let r = ReadoutValues { values: vec![0.0, 0.0], ..Default::default() };
    /// let v = Loss::MaxVoltageCrossEntropy.evaluate(&r, 1, 0, 25.0).unwrap();
    /// assert!((v.loss - 2f64.ln()).abs() < 1e-15);
    /// assert_eq!(v.d_readout, vec![0.5, -0.5]);
    /// ```
    pub fn evaluate(&self, readout: &ReadoutValues, label: usize, sample: usize, t_end: f64) -> Result<LossValue> {
        let n = readout.values.len();
        if n == 0 {
            return Err(EventPropError::ReadoutMismatch {
                loss: self.name(),
                expected: "one value per output neuron",
                got: "no values".into(),
            });
        }
        if label >= n {
            return Err(EventPropError::LabelOutOfRange { sample, label, classes: n });
        }
        match self {
            Loss::ExpIntegralCrossEntropy | Loss::MaxVoltageCrossEntropy => {
                let (loss, d) = softmax_cross_entropy(&readout.values, label, 1.0);
                Ok(LossValue { loss, d_readout: d, prediction: argmax(&readout.values) })
            }
            Loss::FirstSpikeTime(p) => {
                p.check()?;
                // Silent outputs are read at t_end and get no gradient (see FirstSpikeParams).
                let t: Vec<f64> = readout.values.iter().map(|&t| if t.is_finite() { t } else { t_end }).collect();
                // Scores -t/tau0; dL/dt = -(1/tau0) dL/dscore.
                let scores: Vec<f64> = t.iter().map(|&t| -t / p.tau0).collect();
                let (ce, d_scores) = softmax_cross_entropy(&scores, label, 1.0);
                let reg = p.alpha * ((t[label] / p.tau1).exp() - 1.0);
                let mut d: Vec<f64> = d_scores.iter().map(|g| -g / p.tau0).collect();
                d[label] += p.alpha / p.tau1 * (t[label] / p.tau1).exp();
                for (dk, tk) in d.iter_mut().zip(&readout.values) {
                    if !tk.is_finite() {
                        *dk = 0.0;
                    }
                }
                let prediction = argmax(&scores);
                Ok(LossValue { loss: ce + reg, d_readout: d, prediction })
            }
        }
    }
}

/// `(-log softmax(x)_label, d/dx)`, numerically stable.
fn softmax_cross_entropy(x: &[f64], label: usize, scale: f64) -> (f64, Vec<f64>) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| ((v - m) * scale).exp()).collect();
    let z: f64 = e.iter().sum();
    let loss = -((x[label] - m) * scale - z.ln());
    let d = e.iter().enumerate().map(|(k, &ek)| scale * (ek / z - f64::from(u8::from(k == label)))).collect();
    (loss, d)
}

/// Index of the largest value (first one on ties).
fn argmax(x: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(loss: Loss, values: &[f64], label: usize) {
        let r = ReadoutValues { values: values.to_vec(), ..Default::default() };
        let v = loss.evaluate(&r, label, 0, 30.0).unwrap();
        for k in 0..values.len() {
            let h = 1e-6;
            let mut p = r.clone();
            p.values[k] += h;
            let mut m = r.clone();
            m.values[k] -= h;
            let num = (loss.evaluate(&p, label, 0, 30.0).unwrap().loss
                - loss.evaluate(&m, label, 0, 30.0).unwrap().loss)
                / (2.0 * h);
            assert!((num - v.d_readout[k]).abs() < 1e-7, "k={k}: {num} vs {}", v.d_readout[k]);
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        fd(Loss::ExpIntegralCrossEntropy, &[0.3, -1.2, 2.0], 2);
        fd(Loss::MaxVoltageCrossEntropy, &[0.3, -1.2, 2.0], 0);
        fd(Loss::FirstSpikeTime(FirstSpikeParams::default()), &[3.1, 2.5, 4.0], 1);
    }

    #[test]
    fn silent_outputs_and_bad_labels() {
        let r = ReadoutValues { values: vec![f64::INFINITY, 5.0, 6.0], ..Default::default() };
        let v = Loss::FirstSpikeTime(FirstSpikeParams::default()).evaluate(&r, 0, 0, 30.0).unwrap();
        assert_eq!(v.d_readout[0], 0.0);
        assert_eq!(v.prediction, 1);
        assert!(v.loss.is_finite());
        assert!(matches!(
            Loss::MaxVoltageCrossEntropy.evaluate(&r, 3, 7, 30.0),
            Err(EventPropError::LabelOutOfRange { sample: 7, label: 3, classes: 3 })
        ));
    }
}
