//! Delay parameterisation for spiking networks: constraints, initialisation, quantisation
//! and statistics of learnable synaptic delays (spec `eventprop-delays.md` §1, §4).
#![warn(missing_docs)]

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
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DelayError>;
