//! Neuron models: current-based leaky integrate-and-fire (LIF) and leaky integrator (LI).
//!
//! Both share the dynamics (spec §1)
//!
//! ```text
//! tau_m dV/dt = -V + I        tau_s dI/dt = -I
//! ```
//!
//! A LIF neuron spikes when `V` reaches `theta` from below and is reset to `V = 0`
//! (`I` does not jump); a LI neuron never spikes.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// What happens to the membrane voltage at a spike.
///
/// Only reset to zero is implemented: the adjoint jump of `snn-eventprop` is derived for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Reset {
    /// `V := 0` after a spike; `I` unchanged.
    #[default]
    ToZero,
}

/// Time constants shared by LIF and LI neurons, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    tau_m: f64,
    tau_s: f64,
}

impl Leak {
    /// Checked constructor: both constants finite, `> 0`, and different.
    ///
    /// ```
    /// # use snn_core::Leak;
    /// assert!(Leak::new(20.0, 5.0).is_ok());
    /// assert!(Leak::new(5.0, 5.0).is_err());
    /// assert!(Leak::new(f64::NAN, 5.0).is_err());
    /// ```
    pub fn new(tau_m: f64, tau_s: f64) -> Result<Self> {
        positive("tau_m", tau_m)?;
        positive("tau_s", tau_s)?;
        // Relative closeness, not just equality: c = tau_s/(tau_s - tau_m) explodes otherwise.
        if (tau_m - tau_s).abs() <= 1e-9 * tau_m.max(tau_s) {
            return Err(CoreError::EqualTimeConstants { tau: tau_m });
        }
        Ok(Self { tau_m, tau_s })
    }

    /// Membrane time constant (ms).
    pub fn tau_m(&self) -> f64 {
        self.tau_m
    }

    /// Synaptic time constant (ms).
    pub fn tau_s(&self) -> f64 {
        self.tau_s
    }

    /// The coupling `c = tau_s / (tau_s - tau_m)` of the closed form.
    pub fn coupling(&self) -> f64 {
        self.tau_s / (self.tau_s - self.tau_m)
    }

    /// State `(V, I)` after `s >= 0` ms without input, from `(v0, i0)`:
    ///
    /// ```text
    /// I(s) = I0 e^{-s/tau_s}
    /// V(s) = (V0 - c I0) e^{-s/tau_m} + c I0 e^{-s/tau_s}
    /// ```
    ///
    /// ```
    /// # use snn_core::Leak;
    /// let leak = Leak::new(20.0, 5.0).unwrap();
    /// let (v, i) = leak.propagate(0.0, 1.0, 0.0);
    /// assert_eq!((v, i), (0.0, 1.0));
    /// ```
    #[inline]
    #[must_use]
    pub fn propagate(&self, v0: f64, i0: f64, s: f64) -> (f64, f64) {
        let em = (-s / self.tau_m).exp();
        let es = (-s / self.tau_s).exp();
        let c = self.coupling();
        ((v0 - c * i0) * em + c * i0 * es, i0 * es)
    }
}

/// Parameters of a LIF neuron population.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `tau_m` | 20 ms | membrane time constant | finite, > 0, != `tau_s` |
/// | `tau_s` | 5 ms | synaptic time constant | finite, > 0 |
/// | `theta` | 1 | firing threshold | finite, > 0 |
/// | `reset` | to zero | voltage after a spike | [`Reset::ToZero`] |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifParams {
    leak: Leak,
    theta: f64,
    reset: Reset,
}

impl LifParams {
    /// Checked constructor.
    ///
    /// ```
    /// # use snn_core::LifParams;
    /// let p = LifParams::new(20.0, 5.0, 1.0).unwrap();
    /// assert_eq!(p.theta(), 1.0);
    /// assert!(LifParams::new(20.0, 5.0, 0.0).is_err());
    /// ```
    pub fn new(tau_m: f64, tau_s: f64, theta: f64) -> Result<Self> {
        let leak = Leak::new(tau_m, tau_s)?;
        positive("theta", theta)?;
        Ok(Self { leak, theta, reset: Reset::ToZero })
    }

    /// Time constants.
    pub fn leak(&self) -> &Leak {
        &self.leak
    }

    /// Membrane time constant (ms).
    pub fn tau_m(&self) -> f64 {
        self.leak.tau_m
    }

    /// Synaptic time constant (ms).
    pub fn tau_s(&self) -> f64 {
        self.leak.tau_s
    }

    /// Threshold.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// Reset rule.
    pub fn reset(&self) -> Reset {
        self.reset
    }
}

impl Default for LifParams {
    /// The paper's defaults: `tau_m = 20 ms`, `tau_s = 5 ms`, `theta = 1`.
    fn default() -> Self {
        Self { leak: Leak { tau_m: 20.0, tau_s: 5.0 }, theta: 1.0, reset: Reset::ToZero }
    }
}

/// Parameters of a leaky-integrator (non-spiking readout) population.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `tau_m` | 20 ms | membrane time constant | finite, > 0, != `tau_s` |
/// | `tau_s` | 5 ms | synaptic time constant | finite, > 0 |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiParams {
    leak: Leak,
}

impl LiParams {
    /// Checked constructor.
    ///
    /// ```
    /// # use snn_core::LiParams;
    /// assert!(LiParams::new(10.0, 5.0).is_ok());
    /// assert!(LiParams::new(-1.0, 5.0).is_err());
    /// ```
    pub fn new(tau_m: f64, tau_s: f64) -> Result<Self> {
        Ok(Self { leak: Leak::new(tau_m, tau_s)? })
    }

    /// Time constants.
    pub fn leak(&self) -> &Leak {
        &self.leak
    }

    /// Membrane time constant (ms).
    pub fn tau_m(&self) -> f64 {
        self.leak.tau_m
    }

    /// Synaptic time constant (ms).
    pub fn tau_s(&self) -> f64 {
        self.leak.tau_s
    }
}

impl Default for LiParams {
    /// `tau_m = 20 ms`, `tau_s = 5 ms` (SHD/SSC readout).
    fn default() -> Self {
        Self { leak: Leak { tau_m: 20.0, tau_s: 5.0 } }
    }
}

fn positive(param: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(CoreError::InvalidNeuronParam { param, value }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_solves_the_ode() {
        // Compare with a fine RK4 integration of the two linear ODEs.
        let leak = Leak::new(20.0, 5.0).unwrap();
        let (mut v, mut i) = (0.3, 1.7);
        let h = 1e-4;
        let f = |v: f64, i: f64| ((-v + i) / 20.0, -i / 5.0);
        for _ in 0..100_000 {
            let (a1, b1) = f(v, i);
            let (a2, b2) = f(v + 0.5 * h * a1, i + 0.5 * h * b1);
            let (a3, b3) = f(v + 0.5 * h * a2, i + 0.5 * h * b2);
            let (a4, b4) = f(v + h * a3, i + h * b3);
            v += h / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4);
            i += h / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4);
        }
        let (vc, ic) = leak.propagate(0.3, 1.7, 10.0);
        assert!((vc - v).abs() < 1e-12, "{vc} vs {v}");
        assert!((ic - i).abs() < 1e-12, "{ic} vs {i}");
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(matches!(LifParams::new(0.0, 5.0, 1.0), Err(CoreError::InvalidNeuronParam { param: "tau_m", .. })));
        assert!(matches!(
            LifParams::new(20.0, f64::INFINITY, 1.0),
            Err(CoreError::InvalidNeuronParam { param: "tau_s", .. })
        ));
        assert!(matches!(
            LifParams::new(20.0, 5.0, f64::NAN),
            Err(CoreError::InvalidNeuronParam { param: "theta", .. })
        ));
        assert!(matches!(LiParams::new(7.0, 7.0), Err(CoreError::EqualTimeConstants { .. })));
    }
}
