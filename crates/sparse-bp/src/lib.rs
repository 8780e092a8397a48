//! Group Basis Pursuit: solvers, coherence, stability guarantees, certificates.
#![warn(missing_docs)]

pub mod error;
pub mod groups;
pub mod prox;
pub mod solver;

pub use error::{Result, SparseBpError};
pub use groups::{Group, GroupNorm, GroupSpec};
pub use solver::{Algorithm, Solution, Solver, SolverParams, SolverParamsBuilder, StoppingRule};
