//! What a forward pass keeps: per-spike records and the readout — never a state trajectory.

use serde::{Deserialize, Serialize};

use crate::network::ConnectionId;

/// What the forward pass reports about the output population (spec §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReadoutKind {
    /// `Vbar_k = (1/T) ∫_0^T e^{-t/T} V_k(t) dt` of LI outputs (SHD/SSC); clocked engine:
    /// `(1/N_T) Σ_n e^{-t_n/T} V_k(t_n)`.
    ExpIntegral,
    /// `max_{0 <= t <= T} V_k(t)` of LI outputs and the time it is attained (sequence detection).
    MaxVoltage,
    /// First spike time of each LIF output, `f64::INFINITY` when it never spikes (Yin-Yang).
    FirstSpike,
    /// `V_k(t)` of LI outputs at the given times (ms, non-decreasing, within `[0, T]`).
    VoltageAt(Vec<f64>),
}

/// Flat per-spike records of the non-input neurons, in time order (struct of arrays).
///
/// This is all the backward pass needs about hidden activity: the spike time, the
/// global neuron index and `I - V` just before the spike (`tau_m dV/dt` there).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpikeRecord {
    /// Spike times (ms), non-decreasing.
    pub times: Vec<f64>,
    /// Global neuron index (see [`crate::Network::offset`]).
    pub neurons: Vec<u32>,
    /// `I - V` just before each spike (positive for a crossing from below).
    pub i_minus_v: Vec<f64>,
}

impl SpikeRecord {
    /// Number of recorded spikes.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether no spike was recorded.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Forgets the spikes, keeps the allocations.
    pub fn clear(&mut self) {
        self.times.clear();
        self.neurons.clear();
        self.i_minus_v.clear();
    }

    /// Appends one spike.
    #[inline]
    pub fn push(&mut self, time: f64, neuron: u32, i_minus_v: f64) {
        self.times.push(time);
        self.neurons.push(neuron);
        self.i_minus_v.push(i_minus_v);
    }

    /// Bytes held by the records (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.times.capacity() * 8 + self.neurons.capacity() * 4 + self.i_minus_v.capacity() * 8
    }
}

/// The spike that made a `max V` readout sit on a kink (see [`ReadoutValues::kinks`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MaxKink {
    /// `dV/dt` of the output just before the arrival.
    pub slope_before: f64,
    /// Connection the arriving spike travelled on.
    pub connection: ConnectionId,
    /// Presynaptic neuron, local index in the connection's presynaptic population.
    pub pre: u32,
    /// The arriving spike: its index in the input train if the presynaptic population is the
    /// input, otherwise its index in [`SpikeRecord`].
    pub spike: u32,
}

/// The readout of the output population.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReadoutValues {
    /// One value per output neuron (`ExpIntegral`, `MaxVoltage`, `FirstSpike`), or
    /// `n_out x n_times` neuron-major for `VoltageAt`.
    pub values: Vec<f64>,
    /// `MaxVoltage`: time of each maximum; `FirstSpike`: the spike times again; else empty.
    pub times: Vec<f64>,
    /// `MaxVoltage` only: `Some` when output `k`'s maximum is attained exactly at a spike
    /// arrival that turns a rising voltage into a falling one. There the envelope argument
    /// fails and the delay gradient needs the extra term of spec §3. Empty otherwise.
    pub kinks: Vec<Option<MaxKink>>,
}

impl ReadoutValues {
    /// Forgets the values, keeps the allocations.
    pub fn clear(&mut self) {
        self.values.clear();
        self.times.clear();
        self.kinks.clear();
    }
}

/// Everything one forward pass of one sample keeps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForwardRecord {
    /// Spikes of every LIF neuron, in time order.
    pub spikes: SpikeRecord,
    /// The readout of the output population.
    pub readout: ReadoutValues,
}

impl ForwardRecord {
    /// Forgets the contents, keeps the allocations (reuse across samples).
    pub fn clear(&mut self) {
        self.spikes.clear();
        self.readout.clear();
    }

    /// Spike count of each global neuron in `range` (e.g. one population).
    pub fn spike_counts(&self, range: std::ops::Range<usize>) -> Vec<u32> {
        let mut counts = vec![0; range.len()];
        for &n in &self.spikes.neurons {
            let n = n as usize;
            if range.contains(&n) {
                counts[n - range.start] += 1;
            }
        }
        counts
    }
}
