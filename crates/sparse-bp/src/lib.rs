//! Group Basis Pursuit: batched solvers, coherence, stability guarantees, certificates,
//! multi-layer pursuit and implicit differentiation.
//!
//! This crate is the theory half of Szeghy, Aslan, Fóthi, Mészáros, Milacski, Lőrincz,
//! *Structural Extensions of Basis Pursuit: Guarantees on Adversarial Robustness*
//! (DeLTA 2022, arXiv 2205.08955), made checkable, plus the Deep Pursuit of Cazenavette,
//! Murdock & Lucey (CVPR 2021). Workspace spec: `shared/spec/sparse-bp.md`, sections 1–3.
//!
//! | module | paper / spec part |
//! | --- | --- |
//! | [`groups`] | §1 the regulariser `sum_i gamma_i l_i(Gamma_{G_i})`: disjoint groups, per-group weights and norms (l1, weighted l1, group l2, sparse-group `beta l1 + (1-beta) l2` — our reading of `l_{beta,1,2}`), non-negative variants |
//! | [`prox`] | §1 soft, block-soft and sparse-group proximal operators |
//! | [`solver`] | §1 FISTA (restart), ISTA, coordinate descent, exact homotopy (LARS-lasso) for the lasso; batched over signals; duality-gap stopping |
//! | [`coherence`] | §2 mutual coherence, Welch bound, block and sub-coherence, ERC, group ERC |
//! | [`stability`] | §2 the BP stability theorem, **our derived group version** for l2, l1, weighted-l1 and sparse-group group norms (statement, proof and what is/ isn't proven are in that module's docs), certificates |
//! | [`implicit`] | §4 (used by attacks) Jacobian / VJP of the code w.r.t. the input by implicit differentiation; unrolled-FISTA reference |
//! | [`multilayer`] | §3 layered BP, Deep Pursuit, the stacked shallow group-BP form |
//! | [`synthetic`] | random instances: Gaussian and two-orthobasis dictionaries, group-sparse codes |
//! | [`models`] | §4 BP / GBP / pooled-GBP classifiers and the approximators' [`models::Classifier`] interface |
//! | [`nn`] | §4 dense, deep dense and linear-transformer approximators, hand-written backward, Adam |
//! | [`attack`] | §4 I-FGSM (`l_inf`, `l2`) and the dual-projection certified radius |
//! | [`train`] | §4 dictionary learning, classifier / approximator training, bincode model files |
//!
//! Architecture invariant: `sparse-bp` depends on no other workspace crate.
//!
//! # Entry points for models and attacks (spec §4)
//!
//! * [`Solver::new`]`(D, GroupSpec, SolverParams)` then [`Solver::solve`]`(&X)` for a batch
//!   (columns of `X`), [`Solver::solve_warm`], [`Solver::solve_vector`]; the [`Solution`]
//!   carries codes, per-signal gaps and convergence flags. `Solver` is `Send + Sync` and
//!   serde-serialisable; [`Solver::with_groups`] reuses `D^T D` for new weights.
//! * [`GroupSpec`]: [`GroupSpec::lasso`], [`GroupSpec::contiguous_blocks`],
//!   [`GroupSpec::from_sizes`], [`GroupSpec::new`]; [`GroupSpec::group_norms`] is the pooled
//!   code of PGBP.
//! * [`implicit::vjp`] / [`implicit::vjp_batch`] (gradient w.r.t. the input for I-FGSM),
//!   [`implicit::vjp_full`] (also w.r.t. the dictionary and the group weights, for training).
//! * [`stability::local_certificate`] and [`stability::LocalCertificate::class_radius`]
//!   (per-sample certified radius of the support / of a linear classifier on the code or
//!   on group norms); [`stability::GroupStability::certified_eps`] (theorem-based, needs the
//!   generating code).
//!
//! # Choosing a solver
//!
//! Coordinate descent is the fastest for the lasso (an active-set inner loop plus *support
//! polishing*: the closed-form solution on a stable signed support, accepted only when its
//! duality gap meets the tolerance) and for small groups; FISTA is the batched
//! matrix–matrix method and the better choice when many atoms are active or the Gram
//! matrix is well conditioned. Measured on this (shared, heavily loaded: load average
//! 10–12 on 2 cores) machine, 10,000 signals, 100 × 300 Gaussian unit-norm dictionary,
//! codes with 8 active groups of 4 (entries U[1, 2]), relative gap `1e-8`
//! (`cargo run --release -p sparse-bp --example lasso_throughput 10000 <lambda>`):
//!
//! | lambda | coordinate descent | FISTA | scikit-learn `Lasso` (one call per signal, same data) |
//! | --- | --- | --- | --- |
//! | 1.0 | 2,500–3,450 signals/s | ~530 signals/s | ~215 signals/s |
//! | 0.5 | 1,000–1,500 signals/s | ~260 signals/s | 150–270 signals/s |
//! | 0.1 | ~100 signals/s | ~120 signals/s | 40–47 signals/s |
//!
//! # Example
//!
//! Solve a group-l2 problem for a batch of signals, then certify one of them.
//!
//! ```
//! use rand::{SeedableRng, rngs::StdRng};
//! use sparse_bp::{GroupNorm, GroupSpec, Solver, SolverParams, synthetic, stability};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let d = synthetic::gaussian_dictionary(40, 80, &mut rng);              // 40 x 80, unit atoms
//! let groups = GroupSpec::contiguous_blocks(80, 4, 0.2, GroupNorm::L2)?; // 20 groups of 4
//! let (codes, x) = synthetic::group_sparse_signals(&d, &groups, 2, 16, 1.0, 2.0, &mut rng)?;
//! let solver = Solver::new(d, groups, SolverParams::builder().tol(1e-10).build()?)?;
//! let sol = solver.solve(&x)?;                                             // 16 signals at once
//! assert!(sol.all_converged() && sol.max_gap() <= 1e-10);
//!
//! // per-sample certificate: the active groups cannot change for ||E||_2 < radius
//! let cert = stability::local_certificate(
//!     &solver,
//!     &x.column(0).into_owned(),
//!     &sol.codes.column(0).into_owned(),
//! )?;
//! assert!(cert.radius >= 0.0);
//! # let _ = codes;
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```
#![warn(missing_docs)]

pub mod coherence;
pub mod error;
pub mod groups;
pub mod implicit;
pub mod multilayer;
pub mod prox;
pub mod solver;
pub mod stability;
pub mod synthetic;
// robust classifiers, attacks and training (issue 7, spec section 4)
pub mod attack;
pub mod models;
pub mod nn;
pub mod train;

pub use error::{Result, SparseBpError};
pub use groups::{Group, GroupNorm, GroupSpec};
/// Re-export so that dependants (benchmarks, experiments) use the same nalgebra.
pub use nalgebra;
pub use solver::{Algorithm, Solution, Solver, SolverParams, SolverParamsBuilder, StoppingRule};
