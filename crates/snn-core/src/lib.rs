//! Leaky integrate-and-fire networks with per-synapse delays, simulated by an exact
//! event-driven engine and by a clocked engine.
//!
//! This crate implements the forward model of the EventProp-with-delays paper
//! (spec `eventprop-delays.md` §1): current-based LIF neurons with exponential synapses,
//! reset to zero, any number of spikes per neuron, feedforward and recurrent connections
//! whose every synapse has a weight and a delay. It knows nothing of gradients: the
//! forward passes record exactly what the adjoint pass of `snn-eventprop` needs — per spike
//! its time, neuron and `I - V` just before it — and the readout, never the trajectory.
//!
//! Module map:
//! - [`neuron`]: LIF/LI parameters and the closed-form propagator;
//! - [`network`]: populations, connections (weights and delays, `post x pre`), checks;
//! - [`spikes`]: batches of input spike trains (flat, CSR-like);
//! - [`record`]: what a forward pass keeps;
//! - [`engine`]: the [`Simulator`] trait and shared settings;
//! - [`clocked`]: the clocked (time-stepped) engine [`ClockedEngine`];
//! - [`exact`]: the exact event-driven engine [`ExactEngine`].
#![warn(missing_docs)]

pub mod clocked;
pub mod engine;
pub mod error;
pub mod exact;
pub mod network;
pub mod neuron;
pub mod record;
pub mod spikes;

pub use clocked::{ClockedEngine, ClockedPlan, ClockedScratch, ClockedState};
pub use engine::{Engine, EngineScratch, SimConfig, Simulator, check_input};
pub use error::{CoreError, Result, SpikeProblem};
pub use exact::{DelayOrder, ExactEngine, ExactScratch};
pub use network::{Connection, ConnectionId, Network, NetworkBuilder, NeuronKind, Population, PopulationId};
pub use neuron::{Leak, LiParams, LifParams, Reset};
pub use record::{ForwardRecord, MaxKink, ReadoutKind, ReadoutValues, SpikeRecord};
pub use spikes::{SpikeTrain, SpikeTrains};
