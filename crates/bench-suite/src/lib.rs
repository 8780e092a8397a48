//! Shared configuration for the criterion benchmarks of the workspace (see `benches/`).
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
