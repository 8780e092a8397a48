//! The feasible set of delays and the projection onto it.

use serde::{Deserialize, Serialize};

use crate::{DelayError, Result, non_negative};

/// Delays live in `[0, max_delay]` (ms); after each optimiser step they are **clamped** back.
///
/// Clamping is the Euclidean projection onto the box, so "gradient step, then clamp" is
/// projected gradient descent: no chain rule is involved, the gradient is taken with respect
/// to the delay itself. A delay sitting at a bound stays there while its gradient pushes
/// outwards and leaves as soon as the gradient turns ([`crate::DelayStats`] reports how many
/// sit at each bound). `NaN` is mapped to `0` (the lower bound) so that a corrupted value
/// can never reach the simulator; the training loop stops on non-finite gradients before
/// this matters.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `max_delay` | none (required) | upper bound of every delay (ms); the paper uses 15 ms (sequence detection), 10 ms (Yin-Yang), up to 250 ms (SHD/SSC) | finite, `>= 0` |
///
/// ```
/// use snn_delays::{DelayConstraint, DelayError};
/// let c = DelayConstraint::new(15.0).unwrap();
/// assert_eq!(c.apply(-1.0), 0.0);
/// assert_eq!(c.apply(7.5), 7.5);
/// assert_eq!(c.apply(20.0), 15.0);
/// assert!(matches!(DelayConstraint::new(f64::NAN), Err(DelayError::InvalidSetting { .. })));
/// assert!(DelayConstraint::new(-1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelayConstraint {
    max_delay: f64,
}

impl DelayConstraint {
    /// Checked constructor: `max_delay` finite and `>= 0` (ms).
    pub fn new(max_delay: f64) -> Result<Self> {
        Ok(Self { max_delay: non_negative("max_delay", max_delay)? })
    }

    /// Validates a value that did not come through [`DelayConstraint::new`] (e.g. deserialised).
    pub fn check(&self) -> Result<()> {
        non_negative("max_delay", self.max_delay).map(|_| ())
    }

    /// Upper bound (ms).
    pub fn max_delay(&self) -> f64 {
        self.max_delay
    }

    /// Whether `d` is feasible.
    pub fn contains(&self, d: f64) -> bool {
        (0.0..=self.max_delay).contains(&d)
    }

    /// `d` clamped to `[0, max_delay]`; `NaN` becomes `0`.
    #[inline]
    #[must_use]
    pub fn apply(&self, d: f64) -> f64 {
        if d.is_nan() { 0.0 } else { d.clamp(0.0, self.max_delay) }
    }

    /// Clamps every delay in place and returns how many were changed.
    ///
    /// Takes a slice so that it works on any storage; for a nalgebra matrix pass
    /// `m.as_mut_slice()`.
    pub fn apply_mut(&self, delays: &mut [f64]) -> usize {
        let mut changed = 0;
        for d in delays {
            let c = self.apply(*d);
            // `!=` is true for NaN, which is the intent: NaN counts as changed.
            if c != *d || d.is_nan() {
                changed += 1;
            }
            *d = c;
        }
        changed
    }

    /// The first infeasible delay of `delays`, as an error (for checking user-supplied
    /// starting values).
    ///
    /// ```
    /// # use snn_delays::{DelayConstraint, DelayError};
    /// let c = DelayConstraint::new(10.0).unwrap();
    /// assert!(c.check_values(&[0.0, 10.0]).is_ok());
    /// assert!(matches!(c.check_values(&[0.0, 10.5]), Err(DelayError::InvalidSetting { value: 10.5, .. })));
    /// ```
    pub fn check_values(&self, delays: &[f64]) -> Result<()> {
        match delays.iter().find(|&&d| !self.contains(d)) {
            None => Ok(()),
            Some(&value) => Err(DelayError::InvalidSetting { param: "delay", value, reason: "outside [0, max_delay]" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nan_and_infinities() {
        let c = DelayConstraint::new(5.0).unwrap();
        assert_eq!(c.apply(f64::NAN), 0.0);
        assert_eq!(c.apply(f64::INFINITY), 5.0);
        assert_eq!(c.apply(f64::NEG_INFINITY), 0.0);
        let mut v = [f64::NAN, 1.0, 6.0, 5.0, 0.0];
        assert_eq!(c.apply_mut(&mut v), 2);
        assert_eq!(v, [0.0, 1.0, 5.0, 5.0, 0.0]);
        assert!(DelayConstraint::new(f64::INFINITY).is_err());
        assert!(DelayConstraint::new(0.0).is_ok());
        let bad: DelayConstraint = DelayConstraint { max_delay: -2.0 };
        assert!(bad.check().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn clamp_is_an_idempotent_projection(max in 0.0..300.0f64, d in -1e3..1e3f64, e in -1e3..1e3f64) {
            let c = DelayConstraint::new(max).unwrap();
            let p = c.apply(d);
            prop_assert!(c.contains(p));
            prop_assert_eq!(c.apply(p), p);
            if c.contains(d) {
                prop_assert_eq!(p, d);
            }
            // A projection onto an interval is non-expansive and monotone.
            prop_assert!((c.apply(d) - c.apply(e)).abs() <= (d - e).abs());
            if d <= e {
                prop_assert!(c.apply(d) <= c.apply(e));
            }
        }
    }
}
