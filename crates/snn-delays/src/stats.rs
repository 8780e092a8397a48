//! Summaries of a set of delays: moments, bounds, histogram.

use serde::{Deserialize, Serialize};

use crate::constraint::DelayConstraint;
use crate::{DelayError, Result};

/// Summary statistics of a set of delays (ms), relative to their [`DelayConstraint`].
///
/// | field | meaning |
/// | --- | --- |
/// | `count` | number of delays |
/// | `mean` | arithmetic mean (ms) |
/// | `std` | population standard deviation (divides by `count`) (ms) |
/// | `min`, `max` | extremes (ms) |
/// | `frac_at_lower` | fraction exactly at 0 ms (clamped or never moved) |
/// | `frac_at_upper` | fraction exactly at `max_delay` |
///
/// "At a bound" means equal to it: the clamp of [`DelayConstraint::apply`] writes the bound
/// exactly, so a delay pushed against a bound is counted. When `max_delay = 0` every delay is at
/// both bounds.
///
/// ```
/// use snn_delays::{DelayConstraint, DelayStats};
/// let c = DelayConstraint::new(10.0).unwrap();
/// let s = DelayStats::of([0.0, 0.0, 5.0, 10.0], &c).unwrap();
/// assert_eq!((s.count, s.mean, s.min, s.max), (4, 3.75, 0.0, 10.0));
/// assert_eq!((s.frac_at_lower, s.frac_at_upper), (0.5, 0.25));
/// assert!((s.std - 4.1457809879442495).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Number of delays.
    pub count: usize,
    /// Mean (ms).
    pub mean: f64,
    /// Population standard deviation (ms).
    pub std: f64,
    /// Smallest delay (ms).
    pub min: f64,
    /// Largest delay (ms).
    pub max: f64,
    /// Fraction of delays equal to 0.
    pub frac_at_lower: f64,
    /// Fraction of delays equal to `max_delay`.
    pub frac_at_upper: f64,
}

impl DelayStats {
    /// Statistics of `delays`; errors on an empty set or a non-finite value.
    ///
    /// One pass, Welford's update (stable for large, clustered delays).
    pub fn of(delays: impl IntoIterator<Item = f64>, constraint: &DelayConstraint) -> Result<Self> {
        let (mut n, mut mean, mut m2) = (0usize, 0.0, 0.0);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut lower, mut upper) = (0usize, 0usize);
        for (index, d) in delays.into_iter().enumerate() {
            if !d.is_finite() {
                return Err(DelayError::NonFiniteDelay { index, value: d });
            }
            n += 1;
            let delta = d - mean;
            mean += delta / n as f64;
            m2 += delta * (d - mean);
            min = min.min(d);
            max = max.max(d);
            lower += usize::from(d == 0.0);
            upper += usize::from(d == constraint.max_delay());
        }
        if n == 0 {
            return Err(DelayError::Empty);
        }
        let nf = n as f64;
        Ok(Self {
            count: n,
            mean,
            std: (m2 / nf).max(0.0).sqrt(),
            min,
            max,
            frac_at_lower: lower as f64 / nf,
            frac_at_upper: upper as f64 / nf,
        })
    }
}

/// A fixed-bin histogram of delays, for plots of the delay distribution before and after
/// training.
///
/// `bins` equal bins cover `[lo, hi]`; bin `k` is `[lo + k w, lo + (k+1) w)` with
/// `w = (hi - lo) / bins`, except that the last bin also holds `hi`. Values outside
/// `[lo, hi]` are counted in `below` / `above`, never dropped silently; non-finite values
/// are an error.
///
/// ```
/// use snn_delays::DelayHistogram;
/// let mut h = DelayHistogram::new(0.0, 10.0, 5).unwrap();
/// h.extend([0.0, 1.9, 2.0, 9.99, 10.0, 11.0]).unwrap();
/// assert_eq!(h.counts(), &[2, 1, 0, 0, 2]);
/// assert_eq!((h.below(), h.above(), h.total()), (0, 1, 6));
/// assert_eq!(h.edges(), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayHistogram {
    lo: f64,
    hi: f64,
    counts: Vec<u64>,
    below: u64,
    above: u64,
}

impl DelayHistogram {
    /// An empty histogram of `bins` equal bins over `[lo, hi]` (finite, `lo < hi`, `bins >= 1`).
    pub fn new(lo: f64, hi: f64, bins: usize) -> Result<Self> {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(DelayError::InvalidRange { lo, hi, reason: "histogram range must be finite with lo < hi" });
        }
        if bins == 0 {
            return Err(DelayError::InvalidSetting { param: "bins", value: 0.0, reason: "must be >= 1" });
        }
        Ok(Self { lo, hi, counts: vec![0; bins], below: 0, above: 0 })
    }

    /// A histogram over the feasible set `[0, max_delay]` of `constraint`, filled with `delays`.
    ///
    /// With `max_delay = 0` the range is widened to `[0, 1]` ms so that it is not empty.
    pub fn of(delays: impl IntoIterator<Item = f64>, constraint: &DelayConstraint, bins: usize) -> Result<Self> {
        let hi = if constraint.max_delay() > 0.0 { constraint.max_delay() } else { 1.0 };
        let mut h = Self::new(0.0, hi, bins)?;
        h.extend(delays)?;
        Ok(h)
    }

    /// Adds one delay.
    pub fn add(&mut self, d: f64) -> Result<()> {
        if !d.is_finite() {
            return Err(DelayError::NonFiniteDelay { index: self.total() as usize, value: d });
        }
        if d < self.lo {
            self.below += 1;
        } else if d > self.hi {
            self.above += 1;
        } else {
            let bins = self.counts.len();
            let k = ((d - self.lo) / (self.hi - self.lo) * bins as f64) as usize;
            self.counts[k.min(bins - 1)] += 1;
        }
        Ok(())
    }

    /// Adds many delays (stops at the first non-finite one, reporting its position).
    pub fn extend(&mut self, delays: impl IntoIterator<Item = f64>) -> Result<()> {
        delays.into_iter().try_for_each(|d| self.add(d))
    }

    /// Counts per bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Values below `lo`.
    pub fn below(&self) -> u64 {
        self.below
    }

    /// Values above `hi`.
    pub fn above(&self) -> u64 {
        self.above
    }

    /// All values added.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.below + self.above
    }

    /// The `bins + 1` bin edges (ms).
    pub fn edges(&self) -> Vec<f64> {
        let n = self.counts.len();
        (0..=n).map(|k| if k == n { self.hi } else { self.lo + (self.hi - self.lo) * k as f64 / n as f64 }).collect()
    }

    /// Centre of each bin (ms), for plotting.
    pub fn centres(&self) -> Vec<f64> {
        self.edges().windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }

    /// Counts as fractions of all values added (0 for an empty histogram).
    pub fn fractions(&self) -> Vec<f64> {
        let t = self.total();
        self.counts.iter().map(|&c| if t == 0 { 0.0 } else { c as f64 / t as f64 }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn errors() {
        let c = DelayConstraint::new(5.0).unwrap();
        assert_eq!(DelayStats::of([], &c), Err(DelayError::Empty));
        assert!(matches!(DelayStats::of([1.0, f64::NAN], &c), Err(DelayError::NonFiniteDelay { index: 1, .. })));
        assert!(DelayHistogram::new(1.0, 1.0, 3).is_err());
        assert!(DelayHistogram::new(0.0, 1.0, 0).is_err());
        let mut h = DelayHistogram::new(0.0, 1.0, 2).unwrap();
        assert!(h.add(f64::INFINITY).is_err());
        assert_eq!(h.fractions(), vec![0.0, 0.0]);
        let z = DelayConstraint::new(0.0).unwrap();
        let s = DelayStats::of([0.0, 0.0], &z).unwrap();
        assert_eq!((s.frac_at_lower, s.frac_at_upper, s.std), (1.0, 1.0, 0.0));
        let h = DelayHistogram::of([0.0, 0.0], &z, 4).unwrap();
        assert_eq!(h.counts(), &[2, 0, 0, 0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn stats_match_two_pass_formulas(v in prop::collection::vec(0.0..50.0f64, 1..200), bins in 1usize..40) {
            let c = DelayConstraint::new(50.0).unwrap();
            let s = DelayStats::of(v.iter().copied(), &c).unwrap();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
            prop_assert!((s.mean - mean).abs() <= 1e-12 * 50.0);
            prop_assert!((s.std - var.sqrt()).abs() <= 1e-9);
            prop_assert!(s.min <= s.mean && s.mean <= s.max);
            let h = DelayHistogram::of(v.iter().copied(), &c, bins).unwrap();
            prop_assert_eq!(h.total(), v.len() as u64);
            prop_assert_eq!(h.below() + h.above(), 0);
            prop_assert!((h.fractions().iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // Every value lies within the edges of the bin it was counted in.
            let edges = h.edges();
            for &d in &v {
                let mut one = DelayHistogram::new(0.0, 50.0, bins).unwrap();
                one.add(d).unwrap();
                let k = one.counts().iter().position(|&x| x == 1).unwrap();
                prop_assert!(edges[k] <= d && (d < edges[k + 1] || k == bins - 1));
            }
        }
    }
}
