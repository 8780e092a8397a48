//! Delay parameterisation for spiking networks: constraints, initialisation, quantisation
//! and statistics of learnable synaptic delays (spec `eventprop-delays.md` §1, §4).
//!
//! In the paper every synapse `j <- i` has a delay `d_ji >= 0` (ms) that is learned by
//! gradient descent alongside its weight. This crate holds everything about those numbers
//! that is not a gradient:
//!
//! - [`DelayConstraint`]: the feasible set `[0, max_delay]` and the projection (clamp) the
//!   optimiser applies after every step;
//! - [`DelayInit`]: the initialisation schemes of the paper (zeros for recurrent delays,
//!   `U(0, 150)` ms on SHD, `U(0, 50)` ms on SSC, constants for hand-built networks);
//! - [`DelayParams`]: both of the above, validated together (builder + [`DelayParams::check`]);
//! - [`quantise`] / [`Quantisation`]: delays rounded to whole steps of the clocked engine;
//! - [`DelayStats`] and [`DelayHistogram`]: what a user watches during training.
//!
//! ```
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use snn_delays::{DelayInit, DelayParams, DelayStats};
//!
//! // SSC-style feedforward delays: U(0, 50) ms, clamped to [0, 250] ms while training.
//! let params = DelayParams::builder().max_delay(250.0).init(DelayInit::Uniform { lo: 0.0, hi: 50.0 }).build().unwrap();
//! let mut rng = ChaCha8Rng::seed_from_u64(7);
//! let mut d = params.init().sample(64, 32, &mut rng).unwrap();
//! assert!(d.iter().all(|&x| (0.0..=50.0).contains(&x)));
//!
//! // An optimiser step may leave the feasible set; the constraint projects back.
//! d[(0, 0)] = -3.0;
//! d[(1, 0)] = 400.0;
//! let clamped = params.constraint().apply_mut(d.as_mut_slice());
//! assert_eq!(clamped, 2);
//! let stats = DelayStats::of(d.iter().copied(), params.constraint()).unwrap();
//! assert_eq!(stats.max, 250.0);
//! assert!(stats.frac_at_lower > 0.0 && stats.frac_at_upper > 0.0);
//! ```
#![warn(missing_docs)]

mod constraint;
mod init;
mod quantise;
mod stats;

pub use constraint::DelayConstraint;
pub use init::{DelayInit, DelayParams, DelayParamsBuilder};
pub use quantise::{Quantisation, quantise};
pub use stats::{DelayHistogram, DelayStats};

use thiserror::Error;

/// Everything that can go wrong with delay parameters.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DelayError {
    /// A delay setting is invalid.
    #[error("delay setting `{param}` = {value}: {reason}")]
    InvalidSetting {
        /// Name of the setting.
        param: &'static str,
        /// Value.
        value: f64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A uniform initialisation range is empty or leaves the feasible set.
    #[error("delay range [{lo}, {hi}] ms: {reason}")]
    InvalidRange {
        /// Lower end (ms).
        lo: f64,
        /// Upper end (ms).
        hi: f64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A delay value is NaN or infinite (statistics and quantisation need finite delays).
    #[error("delay #{index} = {value} is not finite")]
    NonFiniteDelay {
        /// Position of the value in the sequence given (column-major for matrices).
        index: usize,
        /// The value.
        value: f64,
    },
    /// Statistics of no delay at all were asked for.
    #[error("no delays to summarise")]
    Empty,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DelayError>;

/// `Ok(value)` if `value` is finite and `>= 0`, else [`DelayError::InvalidSetting`].
pub(crate) fn non_negative(param: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(DelayError::InvalidSetting { param, value, reason: "must be finite and >= 0" })
    }
}
