//! EventProp with delays: exact gradients of spiking-network losses with respect to
//! weights **and** delays, from an adjoint pass that keeps only spike records.
//!
//! This crate implements spec `eventprop-delays.md` §2–4: the backward passes of both
//! engines of `snn-core` (the [`Adjoint`] trait), the losses of the paper's tasks
//! ([`Loss`]), optimisers and a training loop.
#![warn(missing_docs)]

pub mod clocked;
pub mod error;
pub mod exact;
pub mod gradients;
pub mod init;
pub mod loss;
pub mod optim;
pub mod train;

pub use clocked::{ClockedAdjointScratch, backward_planned};
pub use error::{EventPropError, Result};
pub use exact::ExactAdjointScratch;
pub use gradients::{Adjoint, Gradients};
pub use loss::{FirstSpikeParams, Loss, LossValue};
pub use optim::{Adam, AdamParams, LrSchedule, Optimiser, Trainable};
pub use train::{
    EarlyStopping, EpochMetrics, Labelled, Monitor, TrainConfig, TrainData, TrainableParams, Trainer, evaluate,
    loss_and_gradients,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
