//! Delay parameterisation for spiking networks: constraints, initialisation, quantisation, statistics.
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
