//! Group Basis Pursuit solvers, coherence and stability certificates, robust classifiers, I-FGSM.
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
