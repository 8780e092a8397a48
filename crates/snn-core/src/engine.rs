//! One interface over the two forward engines.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::network::Network;
use crate::record::{ForwardRecord, ReadoutKind};
use crate::spikes::{SpikeTrain, SpikeTrains};

/// Settings shared by both engines.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `t_end` | 1000 ms | simulated duration `T`; events at or after `T` are ignored | finite, > 0 |
/// | `readout` | `ExpIntegral` | what is reported about the output population | see [`ReadoutKind`] |
/// | `max_spikes` | 10,000,000 | cap on recorded spikes per sample (guards runaway recurrence) | >= 1 |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Simulated duration `T` (ms).
    pub t_end: f64,
    /// Readout of the output population.
    pub readout: ReadoutKind,
    /// Cap on recorded spikes per sample.
    pub max_spikes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { t_end: 1000.0, readout: ReadoutKind::ExpIntegral, max_spikes: 10_000_000 }
    }
}

impl SimConfig {
    /// Settings with duration `t_end` (ms) and the given readout.
    pub fn new(t_end: f64, readout: ReadoutKind) -> Self {
        Self { t_end, readout, ..Self::default() }
    }

    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        if !(self.t_end.is_finite() && self.t_end > 0.0) {
            return Err(CoreError::InvalidSetting {
                param: "t_end",
                value: self.t_end,
                reason: "must be finite and > 0",
            });
        }
        if self.max_spikes == 0 {
            return Err(CoreError::InvalidSetting { param: "max_spikes", value: 0.0, reason: "must be >= 1" });
        }
        if let ReadoutKind::VoltageAt(ts) = &self.readout {
            let mut prev = 0.0;
            for &t in ts {
                if !(t.is_finite() && t >= prev && t <= self.t_end) {
                    return Err(CoreError::InvalidSetting {
                        param: "readout times",
                        value: t,
                        reason: "must be finite, non-decreasing and within [0, t_end]",
                    });
                }
                prev = t;
            }
        }
        Ok(())
    }
}

/// A forward engine: simulates one sample into a reusable [`ForwardRecord`].
///
/// `Scratch` holds the engine's working buffers; make one per thread and reuse it, so
/// that a batch allocates once per thread, not once per sample or per event.
pub trait Simulator: Send + Sync {
    /// Working buffers of the engine.
    type Scratch: Send;

    /// Settings of this engine.
    fn config(&self) -> &SimConfig;

    /// Fresh working buffers sized for `net`.
    fn scratch(&self, net: &Network) -> Self::Scratch;

    /// Simulates one sample; `out` is cleared first and reuses its allocations.
    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        scratch: &mut Self::Scratch,
        out: &mut ForwardRecord,
    ) -> Result<()>;

    /// Simulates one sample.
    fn run(&self, net: &Network, input: SpikeTrain<'_>) -> Result<ForwardRecord> {
        let mut scratch = self.scratch(net);
        let mut out = ForwardRecord::default();
        self.run_into(net, input, &mut scratch, &mut out)?;
        Ok(out)
    }

    /// Simulates a batch in parallel over samples (rayon); results in sample order.
    fn run_batch(&self, net: &Network, batch: &SpikeTrains) -> Result<Vec<ForwardRecord>> {
        check_input(net, batch)?;
        (0..batch.len())
            .into_par_iter()
            .map_init(
                || self.scratch(net),
                |scratch, s| {
                    let mut out = ForwardRecord::default();
                    self.run_into(net, batch.sample(s), scratch, &mut out).map(|()| out)
                },
            )
            .collect()
    }
}

/// Checks that a batch fits the network's input population.
pub fn check_input(net: &Network, batch: &SpikeTrains) -> Result<()> {
    let expected = net.population(net.input()).size();
    if batch.num_neurons() != expected {
        return Err(CoreError::InputSizeMismatch { expected, got: batch.num_neurons() });
    }
    Ok(())
}

/// Either engine, chosen at run time (e.g. from a command-line flag).
///
/// ```
/// use snn_core::{Engine, ReadoutKind, SimConfig, Simulator};
/// let cfg = SimConfig::new(50.0, ReadoutKind::MaxVoltage);
/// let exact = Engine::exact(cfg.clone()).unwrap();
/// let clocked = Engine::clocked(cfg, 0.1).unwrap();
/// assert_eq!(exact.config().t_end, clocked.config().t_end);
/// assert_eq!(clocked.dt(), Some(0.1));
/// ```
#[derive(Debug, Clone)]
pub enum Engine {
    /// The exact event-driven engine.
    Exact(crate::ExactEngine),
    /// The clocked engine.
    Clocked(crate::ClockedEngine),
}

/// Working buffers of an [`Engine`].
pub enum EngineScratch {
    /// Buffers of the exact engine.
    Exact(crate::ExactScratch),
    /// Buffers of the clocked engine.
    Clocked(crate::ClockedScratch),
}

impl Engine {
    /// The exact engine with these settings.
    pub fn exact(config: SimConfig) -> Result<Self> {
        crate::ExactEngine::new(config).map(Engine::Exact)
    }

    /// The clocked engine with these settings and time step `dt` (ms).
    pub fn clocked(config: SimConfig, dt: f64) -> Result<Self> {
        crate::ClockedEngine::new(config, dt).map(Engine::Clocked)
    }

    /// Time step of the clocked engine; `None` for the exact engine.
    pub fn dt(&self) -> Option<f64> {
        match self {
            Engine::Exact(_) => None,
            Engine::Clocked(e) => Some(e.dt()),
        }
    }
}

impl Simulator for Engine {
    type Scratch = EngineScratch;

    fn config(&self) -> &SimConfig {
        match self {
            Engine::Exact(e) => e.config(),
            Engine::Clocked(e) => e.config(),
        }
    }

    fn scratch(&self, net: &Network) -> EngineScratch {
        match self {
            Engine::Exact(e) => EngineScratch::Exact(e.scratch(net)),
            Engine::Clocked(e) => EngineScratch::Clocked(e.scratch(net)),
        }
    }

    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        scratch: &mut EngineScratch,
        out: &mut ForwardRecord,
    ) -> Result<()> {
        // A scratch made by the other engine is replaced rather than refused.
        match (self, &mut *scratch) {
            (Engine::Exact(e), EngineScratch::Exact(s)) => e.run_into(net, input, s, out),
            (Engine::Clocked(e), EngineScratch::Clocked(s)) => e.run_into(net, input, s, out),
            _ => {
                *scratch = self.scratch(net);
                self.run_into(net, input, scratch, out)
            }
        }
    }
}
