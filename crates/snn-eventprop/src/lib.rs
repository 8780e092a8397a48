//! EventProp adjoint engine: exact gradients with respect to weights and delays, losses, optimisers, training.
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
