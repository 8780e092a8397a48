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
//! - [`sparse`]: sparse projections (CSC `sprs` matrices, one pattern for weights and delays);
//! - [`spikes`]: batches of input spike trains (flat, CSR-like);
//! - [`record`]: what a forward pass keeps;
//! - [`engine`]: the [`Simulator`] trait and shared settings;
//! - [`clocked`]: the clocked (time-stepped) engine [`ClockedEngine`];
//! - [`exact`]: the exact event-driven engine [`ExactEngine`].
//!
//! A recurrent network with delays on both engines:
//!
//! ```
//! use nalgebra::DMatrix;
//! use snn_core::{
//!     ClockedEngine, ExactEngine, LiParams, LifParams, NetworkBuilder, ReadoutKind, SimConfig, Simulator,
//!     SpikeTrains,
//! };
//!
//! // 2 inputs -> 3 LIF with a recurrent loop -> 2 LI outputs. Matrices are post x pre; delays in ms.
//! let mut b = NetworkBuilder::new();
//! let inp = b.input("in", 2);
//! let hid = b.lif("hidden", 3, LifParams::new(20.0, 5.0, 1.0)?);
//! let out = b.li("out", 2, LiParams::new(20.0, 5.0)?);
//! let d_in = DMatrix::from_row_slice(3, 2, &[0.0, 2.0, 1.0, 3.0, 2.5, 0.5]);
//! b.connect(inp, hid, DMatrix::from_element(3, 2, 4.0), d_in);
//! b.connect(hid, hid, DMatrix::from_element(3, 3, 1.0), DMatrix::from_element(3, 3, 4.0));
//! b.connect(hid, out, DMatrix::from_element(2, 3, 0.5), DMatrix::zeros(2, 3));
//! let net = b.build()?;
//!
//! let mut x = SpikeTrains::new(2);
//! x.push_sample(&[1.0, 2.0, 3.0], &[0, 1, 0])?;
//!
//! let cfg = SimConfig::new(50.0, ReadoutKind::MaxVoltage);
//! let exact = ExactEngine::new(cfg.clone())?.run(&net, x.sample(0))?;
//! // Per spike: time, global neuron index, I - V just before it; and the readout per output.
//! assert_eq!(exact.spikes.len(), 12);
//! assert_eq!(exact.readout.values.len(), 2);
//!
//! // The clocked engine has the same spikes, each a little late: input binning, delays rounded
//! // to steps and threshold tests at step ends add up along the chain of 12 spikes. The lag
//! // shrinks in proportion to dt.
//! let worst_lag = |dt: f64| -> snn_core::Result<f64> {
//!     let clocked = ClockedEngine::new(cfg.clone(), dt)?.run(&net, x.sample(0))?;
//!     assert_eq!(clocked.spikes.len(), exact.spikes.len());
//!     let lags = exact.spikes.times.iter().zip(&clocked.spikes.times).map(|(a, b)| (a - b).abs());
//!     Ok(lags.fold(0.0, f64::max))
//! };
//! let (coarse, fine) = (worst_lag(0.1)?, worst_lag(0.01)?);
//! assert!(fine < 0.1 && fine < coarse / 5.0, "{coarse} -> {fine}");
//! # Ok::<(), snn_core::CoreError>(())
//! ```
#![warn(missing_docs)]

pub mod buckets;
pub mod clocked;
pub mod engine;
pub mod error;
pub mod exact;
pub mod network;
pub mod neuron;
pub mod record;
pub mod sparse;
pub mod spikes;

pub use buckets::Buckets;
pub use clocked::{ClockedEngine, ClockedPlan, ClockedScratch, ClockedState, Delivery};
pub use engine::{Engine, EngineScratch, SimConfig, Simulator, check_input};
pub use error::{CoreError, Result, SpikeProblem, TripletProblem};
pub use exact::{DelayOrder, ExactEngine, ExactScratch};
pub use network::{Connection, ConnectionId, Network, NetworkBuilder, NeuronKind, Population, PopulationId};
pub use neuron::{Leak, LiParams, LifParams, Reset};
pub use record::{ForwardRecord, MaxKink, ReadoutKind, ReadoutValues, SpikeRecord};
pub use sparse::{SparseSynapses, Synapse};
pub use spikes::{SpikeTrain, SpikeTrains};
