//! Group Basis Pursuit: solvers, coherence, stability guarantees, certificates.
#![warn(missing_docs)]

pub mod coherence;
pub mod error;
pub mod implicit;
pub mod multilayer;
pub mod stability;
pub mod synthetic;
pub mod groups;
pub mod prox;
pub mod solver;
// robust classifiers, attacks and training (issue 7)
pub mod attack;
pub mod models;
pub mod nn;
pub mod train;

pub use error::{Result, SparseBpError};
pub use groups::{Group, GroupNorm, GroupSpec};
pub use solver::{Algorithm, Solution, Solver, SolverParams, SolverParamsBuilder, StoppingRule};
