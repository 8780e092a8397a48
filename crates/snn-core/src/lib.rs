//! Leaky integrate-and-fire networks with per-synapse delays: exact and clocked forward engines.
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
