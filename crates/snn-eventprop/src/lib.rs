//! EventProp with delays: exact gradients of spiking-network losses with respect to
//! weights **and** delays, from an adjoint pass that keeps only spike records.
//!
//! This crate implements spec `eventprop-delays.md` §2–4: the backward passes of both
//! engines of `snn-core` (the [`Adjoint`] trait), the losses of the paper's tasks
//! ([`Loss`]), optimisers and a training loop.
//!
//! Module map:
//! - [`gradients`]: [`Gradients`] and the [`Adjoint`] trait of the backward passes;
//! - [`exact`]: the backward pass of the exact engine;
//! - [`loss`]: the losses on the readout;
//! - [`optim`]: Adam for weights and a separate Adam for delays, schedules, delay clamp;
//! - [`init`]: the paper's weight and delay initialisation;
//! - [`regularise`]: the optional spike-count regulariser of hidden neurons (a surrogate term
//!   in the adjoint jumps, as in the reference);
//! - [`distributed`]: data-parallel training over ranks (threads, or MPI with the `mpi`
//!   feature) with an ordered reduction, bit-identical to one process;
//! - [`train`]: deterministic parallel batch gradients, the epoch loop, metrics, early
//!   stopping and checkpoints (see its example: sequence detection).
#![warn(missing_docs)]

pub mod clocked;
pub mod distributed;
pub mod error;
pub mod exact;
pub mod gradients;
pub mod init;
pub mod loss;
pub mod optim;
pub mod paper;
pub mod regularise;
pub mod train;

pub use clocked::{ClockedAdjointScratch, GradientSweep, backward_planned, backward_planned_with};
pub use error::{EventPropError, Result};
pub use exact::ExactAdjointScratch;
pub use gradients::{Adjoint, Gradients};
pub use loss::{FirstSpikeParams, Loss, LossValue};
pub use optim::{Adam, AdamParams, LrSchedule, Optimiser, Trainable};
pub use regularise::{CountAverage, SpikeCountReg};
pub use train::{
    EarlyStopping, EpochMetrics, Labelled, Monitor, TrainConfig, TrainData, TrainableParams, Trainer, evaluate,
    loss_and_gradients,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
