//! Delays rounded to whole time steps, for the clocked engine.

use serde::{Deserialize, Serialize};

use crate::{DelayError, Result};

/// The delay `d` (ms) as a whole number of steps of `dt` ms: `round(d / dt)` clamped to
/// `[0, max_steps]`.
///
/// Rounding is half away from zero (`f64::round`), so `d = 0.5 dt` gives one step.
/// `NaN` gives 0 steps. `dt` must be finite and `> 0` — use [`Quantisation`] for a checked
/// version; with an invalid `dt` the result is meaningless (but still within range).
///
/// ```
/// use snn_delays::quantise;
/// assert_eq!(quantise(2.4, 1.0, 10), 2);
/// assert_eq!(quantise(2.5, 1.0, 10), 3);
/// assert_eq!(quantise(0.26, 0.1, 10), 3);
/// assert_eq!(quantise(42.0, 1.0, 10), 10);
/// assert_eq!(quantise(-3.0, 1.0, 10), 0);
/// ```
#[inline]
pub fn quantise(d: f64, dt: f64, max_steps: usize) -> usize {
    let steps = (d / dt).round();
    // `as` saturates and maps NaN to 0; clamp against max_steps in f64 first so that huge
    // values do not depend on the saturation bound of usize.
    if steps.is_nan() || steps <= 0.0 {
        0
    } else if steps >= max_steps as f64 {
        max_steps
    } else {
        steps as usize
    }
}

/// A checked pair `(dt, max_steps)` for quantising delays.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `dt` | none (required) | time step of the clocked engine (ms) | finite, `> 0` |
/// | `max_steps` | none (required) | largest delay in steps: `round(max_delay / dt)` | any |
///
/// ```
/// use snn_delays::Quantisation;
/// let q = Quantisation::from_max_delay(0.1, 15.0).unwrap();
/// assert_eq!(q.max_steps(), 150);
/// assert_eq!(q.steps(9.96), 100);
/// assert!((q.quantised(9.96) - 10.0).abs() < 1e-12);
/// assert!(Quantisation::new(0.0, 10).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantisation {
    dt: f64,
    max_steps: usize,
}

impl Quantisation {
    /// Checked constructor.
    pub fn new(dt: f64, max_steps: usize) -> Result<Self> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(DelayError::InvalidSetting { param: "dt", value: dt, reason: "must be finite and > 0" });
        }
        Ok(Self { dt, max_steps })
    }

    /// Steps `dt` and the bound `max_steps = round(max_delay / dt)`.
    pub fn from_max_delay(dt: f64, max_delay: f64) -> Result<Self> {
        let q = Self::new(dt, 0)?;
        let max_delay = crate::non_negative("max_delay", max_delay)?;
        let steps = (max_delay / dt).round();
        if steps > u32::MAX as f64 {
            return Err(DelayError::InvalidSetting {
                param: "max_delay",
                value: max_delay,
                reason: "more than 2^32 time steps",
            });
        }
        Ok(Self { max_steps: steps as usize, ..q })
    }

    /// Time step (ms).
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Largest delay in steps.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }

    /// `d` in whole steps (see [`quantise`]).
    #[inline]
    pub fn steps(&self, d: f64) -> usize {
        quantise(d, self.dt, self.max_steps)
    }

    /// `d` rounded to the grid, in ms.
    #[inline]
    pub fn quantised(&self, d: f64) -> f64 {
        self.steps(d) as f64 * self.dt
    }

    /// Quantises a whole delay slice into `out` (cleared first, allocation reused).
    ///
    /// Non-finite delays are an error naming their position.
    pub fn steps_into(&self, delays: &[f64], out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        out.reserve(delays.len());
        for (index, &d) in delays.iter().enumerate() {
            if !d.is_finite() {
                return Err(DelayError::NonFiniteDelay { index, value: d });
            }
            // max_steps fits u32 when built by from_max_delay; saturate otherwise.
            out.push(u32::try_from(self.steps(d)).unwrap_or(u32::MAX));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edge_cases() {
        assert_eq!(quantise(f64::NAN, 1.0, 5), 0);
        assert_eq!(quantise(f64::INFINITY, 1.0, 5), 5);
        assert_eq!(quantise(1e300, 1e-300, 5), 5);
        assert_eq!(quantise(0.49999, 1.0, 5), 0);
        assert_eq!(quantise(4.6, 1.0, 0), 0);
        let q = Quantisation::from_max_delay(1.0, 3.0).unwrap();
        let mut out = vec![9; 10];
        q.steps_into(&[0.0, 1.4, 1.6, 99.0], &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3]);
    }

    #[test]
    fn non_finite_delay_reports_its_position() {
        let q = Quantisation::from_max_delay(1.0, 3.0).unwrap();
        let mut out = Vec::new();
        match q.steps_into(&[0.0, 2.0, f64::INFINITY], &mut out) {
            Err(DelayError::NonFiniteDelay { index: 2, value }) => assert_eq!(value, f64::INFINITY),
            other => panic!("{other:?}"),
        }
        assert!(Quantisation::from_max_delay(1e-12, 1e6).is_err());
        assert!(Quantisation::from_max_delay(1.0, -1.0).is_err());
        assert!(Quantisation::new(f64::NAN, 1).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn quantisation_error_is_at_most_half_a_step(d in 0.0..20.0f64, dt in 0.01..2.0f64) {
            let q = Quantisation::from_max_delay(dt, 20.0).unwrap();
            let k = q.steps(d);
            prop_assert!(k <= q.max_steps());
            // Inside the range the grid point is the nearest one (half a step, plus rounding slack).
            if d <= q.max_steps() as f64 * dt {
                prop_assert!((q.quantised(d) - d).abs() <= 0.5 * dt * (1.0 + 1e-12));
            }
            // Monotone in d.
            prop_assert!(q.steps(d + dt) >= k);
        }
    }
}
