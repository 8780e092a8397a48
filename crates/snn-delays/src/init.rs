//! Initial delays, and the validated pair (constraint, initialisation).

use nalgebra::DMatrix;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::constraint::DelayConstraint;
use crate::{DelayError, Result, non_negative};

/// How the delays of a connection start.
///
/// | variant | paper use | valid values |
/// | --- | --- | --- |
/// | `Zeros` | recurrent delays; Yin-Yang | — |
/// | `Constant(d)` | hand-built networks (sequence detection's worst case uses 0 and 10 ms) | `d` finite, `>= 0` |
/// | `Uniform { lo, hi }` | feedforward delays: `U(0, 150)` ms on SHD, `U(0, 50)` ms on SSC | finite, `0 <= lo <= hi` |
///
/// Draws come from a caller-supplied random number generator, so a seeded generator gives
/// the same delays on every run. `Uniform` samples the closed interval `[lo, hi]`.
///
/// ```
/// use rand::SeedableRng;
/// use rand_chacha::ChaCha8Rng;
/// use snn_delays::DelayInit;
/// let mut rng = ChaCha8Rng::seed_from_u64(1);
/// let shd = DelayInit::Uniform { lo: 0.0, hi: 150.0 }.sample(20, 700, &mut rng).unwrap();
/// assert!(shd.iter().all(|&d| (0.0..=150.0).contains(&d)));
/// assert_eq!(DelayInit::Constant(10.0).sample(2, 2, &mut rng).unwrap()[(1, 0)], 10.0);
/// assert!(DelayInit::Uniform { lo: 5.0, hi: 1.0 }.check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum DelayInit {
    /// Every delay 0 ms.
    #[default]
    Zeros,
    /// Every delay the given value (ms).
    Constant(f64),
    /// Independent draws from `U(lo, hi)` (ms).
    Uniform {
        /// Lower end (ms).
        lo: f64,
        /// Upper end (ms).
        hi: f64,
    },
}

impl DelayInit {
    /// The paper's SHD feedforward initialisation, `U(0, 150)` ms.
    pub const SHD: DelayInit = DelayInit::Uniform { lo: 0.0, hi: 150.0 };
    /// The paper's SSC feedforward initialisation, `U(0, 50)` ms.
    pub const SSC: DelayInit = DelayInit::Uniform { lo: 0.0, hi: 50.0 };

    /// Validates the values (see the table above).
    pub fn check(&self) -> Result<()> {
        match *self {
            DelayInit::Zeros => Ok(()),
            DelayInit::Constant(d) => non_negative("constant delay", d).map(|_| ()),
            DelayInit::Uniform { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite()) {
                    Err(DelayError::InvalidRange { lo, hi, reason: "ends must be finite" })
                } else if lo < 0.0 {
                    Err(DelayError::InvalidRange { lo, hi, reason: "delays cannot be negative" })
                } else if hi < lo {
                    Err(DelayError::InvalidRange { lo, hi, reason: "empty range (hi < lo)" })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Largest delay this scheme can produce (ms).
    pub fn upper(&self) -> f64 {
        match *self {
            DelayInit::Zeros => 0.0,
            DelayInit::Constant(d) => d,
            DelayInit::Uniform { hi, .. } => hi,
        }
    }

    /// Overwrites `delays` (any layout) with fresh initial values.
    pub fn fill<R: Rng + ?Sized>(&self, delays: &mut [f64], rng: &mut R) -> Result<()> {
        self.check()?;
        match *self {
            DelayInit::Zeros => delays.fill(0.0),
            DelayInit::Constant(d) => delays.fill(d),
            DelayInit::Uniform { lo, hi } => delays.iter_mut().for_each(|d| *d = rng.random_range(lo..=hi)),
        }
        Ok(())
    }

    /// A fresh `rows x cols` (`post x pre`) delay matrix, drawn column-major.
    #[must_use = "the sampled matrix is the result"]
    pub fn sample<R: Rng + ?Sized>(&self, rows: usize, cols: usize, rng: &mut R) -> Result<DMatrix<f64>> {
        let mut m = DMatrix::zeros(rows, cols);
        self.fill(m.as_mut_slice(), rng)?;
        Ok(m)
    }
}

/// Validated delay settings of a connection: where delays start and where they may go.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `max_delay` | 0 ms (delays disabled) | upper bound of the feasible set `[0, max_delay]` | finite, `>= 0` |
/// | `init` | [`DelayInit::Zeros`] | initialisation scheme | see [`DelayInit`]; its largest value must be `<= max_delay` |
///
/// ```
/// use snn_delays::{DelayInit, DelayParams};
/// let p = DelayParams::builder().max_delay(15.0).init(DelayInit::Constant(10.0)).build().unwrap();
/// assert_eq!(p.constraint().max_delay(), 15.0);
/// // Starting outside the feasible set is an error, not a silent clamp.
/// assert!(DelayParams::builder().max_delay(10.0).init(DelayInit::SSC).build().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DelayParams {
    constraint: DelayConstraint,
    init: DelayInit,
}

impl Default for DelayParams {
    fn default() -> Self {
        Self { constraint: DelayConstraint::new(0.0).expect("0 is a valid bound"), init: DelayInit::Zeros }
    }
}

impl DelayParams {
    /// A builder starting from the defaults.
    pub fn builder() -> DelayParamsBuilder {
        DelayParamsBuilder::default()
    }

    /// Validates the settings (useful after deserialising).
    pub fn check(&self) -> Result<()> {
        self.constraint.check()?;
        self.init.check()?;
        if self.init.upper() > self.constraint.max_delay() {
            return Err(DelayError::InvalidSetting {
                param: "init",
                value: self.init.upper(),
                reason: "initial delays would exceed max_delay",
            });
        }
        Ok(())
    }

    /// The feasible set.
    pub fn constraint(&self) -> &DelayConstraint {
        &self.constraint
    }

    /// The initialisation scheme.
    pub fn init(&self) -> &DelayInit {
        &self.init
    }
}

/// Builder of [`DelayParams`]; [`DelayParamsBuilder::build`] runs [`DelayParams::check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DelayParamsBuilder {
    max_delay: Option<f64>,
    init: Option<DelayInit>,
}

impl DelayParamsBuilder {
    /// Sets the upper bound (ms).
    pub fn max_delay(&mut self, max_delay: f64) -> &mut Self {
        self.max_delay = Some(max_delay);
        self
    }

    /// Sets the initialisation scheme.
    pub fn init(&mut self, init: DelayInit) -> &mut Self {
        self.init = Some(init);
        self
    }

    /// Validates and builds.
    pub fn build(&self) -> Result<DelayParams> {
        let max_delay = self.max_delay.unwrap_or(0.0);
        // `new` reports a bad bound with its own message; the combined check follows.
        let p = DelayParams { constraint: DelayConstraint::new(max_delay)?, init: self.init.unwrap_or_default() };
        p.check()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn same_seed_same_delays_and_moments_of_uniform() {
        let init = DelayInit::Uniform { lo: 0.0, hi: 150.0 };
        let a = init.sample(100, 100, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = init.sample(100, 100, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let c = init.sample(100, 100, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // U(0,150): mean 75, sd 150/sqrt(12) = 43.30; 10^4 draws give standard errors 0.43 and ~0.3.
        let n = a.len() as f64;
        let mean = a.iter().sum::<f64>() / n;
        let sd = (a.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - 75.0).abs() < 2.0, "mean {mean}");
        assert!((sd - 150.0 / 12f64.sqrt()).abs() < 1.5, "sd {sd}");
    }

    #[test]
    fn invalid_schemes_are_typed_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for bad in [
            DelayInit::Constant(-1.0),
            DelayInit::Constant(f64::NAN),
            DelayInit::Uniform { lo: -1.0, hi: 2.0 },
            DelayInit::Uniform { lo: 0.0, hi: f64::INFINITY },
            DelayInit::Uniform { lo: 3.0, hi: 2.0 },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
            assert!(bad.sample(2, 2, &mut rng).is_err(), "{bad:?}");
        }
        // A degenerate range is fine and gives the constant.
        let m = DelayInit::Uniform { lo: 2.5, hi: 2.5 }.sample(3, 1, &mut rng).unwrap();
        assert!(m.iter().all(|&d| d == 2.5));
        assert!(DelayParams::builder().max_delay(-1.0).build().is_err());
        assert!(DelayParams::builder().max_delay(10.0).init(DelayInit::Constant(10.0)).build().is_ok());
        assert_eq!(DelayParams::builder().build().unwrap(), DelayParams::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn uniform_draws_stay_in_range(lo in 0.0..100.0f64, width in 0.0..100.0f64, seed in any::<u64>()) {
            let hi = lo + width;
            let m = DelayInit::Uniform { lo, hi }.sample(7, 5, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            prop_assert!(m.iter().all(|&d| lo <= d && d <= hi));
        }
    }
}
