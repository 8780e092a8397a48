//! Input spike data: a batch of spike trains stored flat (CSR-like).
//!
//! Sample `s` owns the events `offsets[s] .. offsets[s + 1]` of the parallel arrays
//! `times` (ms) and `neurons` (input-neuron index). Within a sample, times are
//! non-decreasing; events at equal times keep their order.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, SpikeProblem};

/// A validated batch of input spike trains.
///
/// ```
/// use snn_core::SpikeTrains;
/// let mut batch = SpikeTrains::new(2);
/// batch.push_sample(&[0.0, 10.0], &[0, 1]).unwrap();
/// batch.push_sample(&[0.0, 10.0], &[1, 0]).unwrap();
/// assert_eq!(batch.len(), 2);
/// assert_eq!(batch.sample(1).neurons, &[1, 0]);
/// assert!(batch.push_sample(&[f64::NAN], &[0]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpikeTrains {
    num_neurons: usize,
    offsets: Vec<usize>,
    times: Vec<f64>,
    neurons: Vec<u32>,
}

/// One sample's spike train, borrowed from a [`SpikeTrains`] batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeTrain<'a> {
    /// Spike times (ms), non-decreasing.
    pub times: &'a [f64],
    /// Input-neuron index of each spike.
    pub neurons: &'a [u32],
}

impl<'a> SpikeTrain<'a> {
    /// Number of spikes.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether the train has no spike.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// `(time, neuron)` pairs in time order.
    pub fn iter(&self) -> impl Iterator<Item = (f64, u32)> + 'a {
        self.times.iter().copied().zip(self.neurons.iter().copied())
    }
}

impl SpikeTrains {
    /// An empty batch for `num_neurons` input neurons.
    pub fn new(num_neurons: usize) -> Self {
        Self { num_neurons, offsets: vec![0], times: Vec::new(), neurons: Vec::new() }
    }

    /// Builds a batch from its flat arrays, validating everything.
    pub fn from_parts(num_neurons: usize, offsets: Vec<usize>, times: Vec<f64>, neurons: Vec<u32>) -> Result<Self> {
        if offsets.first() != Some(&0) {
            return Err(CoreError::InvalidOffsets("must start with 0"));
        }
        if offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(CoreError::InvalidOffsets("must be non-decreasing"));
        }
        if offsets.last() != Some(&times.len()) || times.len() != neurons.len() {
            return Err(CoreError::InvalidOffsets(
                "last offset must equal the number of events in `times` and `neurons`",
            ));
        }
        let batch = Self { num_neurons, offsets, times, neurons };
        for s in 0..batch.len() {
            let t = batch.sample(s);
            validate(num_neurons, s, t.times, t.neurons)?;
        }
        Ok(batch)
    }

    /// Appends one sample; times must be non-decreasing (see [`SpikeTrains::push_unsorted`]).
    pub fn push_sample(&mut self, times: &[f64], neurons: &[u32]) -> Result<()> {
        if times.len() != neurons.len() {
            return Err(CoreError::InvalidOffsets("`times` and `neurons` differ in length"));
        }
        validate(self.num_neurons, self.len(), times, neurons)?;
        self.times.extend_from_slice(times);
        self.neurons.extend_from_slice(neurons);
        self.offsets.push(self.times.len());
        Ok(())
    }

    /// Appends one sample given in any order; it is sorted by time (stable).
    pub fn push_unsorted(&mut self, times: &[f64], neurons: &[u32]) -> Result<()> {
        if times.len() != neurons.len() {
            return Err(CoreError::InvalidOffsets("`times` and `neurons` differ in length"));
        }
        // Validate values before sorting so that NaN is reported, not sorted.
        let mut order: Vec<usize> = (0..times.len()).collect();
        for (e, &t) in times.iter().enumerate() {
            check_time(self.len(), e, t)?;
        }
        order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
        let t: Vec<f64> = order.iter().map(|&k| times[k]).collect();
        let n: Vec<u32> = order.iter().map(|&k| neurons[k]).collect();
        self.push_sample(&t, &n)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the batch has no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of input neurons the indices refer to.
    pub fn num_neurons(&self) -> usize {
        self.num_neurons
    }

    /// Total number of spikes in the batch.
    pub fn num_spikes(&self) -> usize {
        self.times.len()
    }

    /// Sample `s`. Panics if `s >= len()` (an indexing error of the caller, like slices).
    pub fn sample(&self, s: usize) -> SpikeTrain<'_> {
        let r = self.offsets[s]..self.offsets[s + 1];
        SpikeTrain { times: &self.times[r.clone()], neurons: &self.neurons[r] }
    }

    /// Iterator over the samples.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SpikeTrain<'_>> + '_ {
        (0..self.len()).map(|s| self.sample(s))
    }
}

fn check_time(sample: usize, event: usize, t: f64) -> Result<()> {
    let reason = if !t.is_finite() {
        SpikeProblem::NonFiniteTime(t)
    } else if t < 0.0 {
        SpikeProblem::NegativeTime(t)
    } else {
        return Ok(());
    };
    Err(CoreError::InvalidSpikes { sample, event, reason })
}

/// Checks one sample: finite non-negative sorted times, neurons in range.
pub(crate) fn validate(num_neurons: usize, sample: usize, times: &[f64], neurons: &[u32]) -> Result<()> {
    let mut previous = 0.0_f64;
    for (event, (&t, &n)) in times.iter().zip(neurons).enumerate() {
        check_time(sample, event, t)?;
        if t < previous {
            return Err(CoreError::InvalidSpikes {
                sample,
                event,
                reason: SpikeProblem::Unsorted { time: t, previous },
            });
        }
        previous = t;
        if n as usize >= num_neurons {
            return Err(CoreError::InvalidSpikes {
                sample,
                event,
                reason: SpikeProblem::NeuronOutOfRange { index: n, len: num_neurons },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_spikes_are_typed_errors() {
        let mut b = SpikeTrains::new(3);
        let e = b.push_sample(&[1.0, 0.5], &[0, 1]).unwrap_err();
        assert!(matches!(e, CoreError::InvalidSpikes { event: 1, reason: SpikeProblem::Unsorted { .. }, .. }));
        let e = b.push_sample(&[1.0], &[3]).unwrap_err();
        assert!(matches!(
            e,
            CoreError::InvalidSpikes { reason: SpikeProblem::NeuronOutOfRange { index: 3, len: 3 }, .. }
        ));
        let e = b.push_sample(&[f64::INFINITY], &[0]).unwrap_err();
        assert!(matches!(e, CoreError::InvalidSpikes { reason: SpikeProblem::NonFiniteTime(_), .. }));
        let e = b.push_sample(&[-1.0], &[0]).unwrap_err();
        assert!(matches!(e, CoreError::InvalidSpikes { reason: SpikeProblem::NegativeTime(_), .. }));
        let e = b.push_unsorted(&[2.0, f64::NAN], &[0, 0]).unwrap_err();
        assert!(matches!(e, CoreError::InvalidSpikes { event: 1, reason: SpikeProblem::NonFiniteTime(_), .. }));
        assert!(b.is_empty(), "failed pushes leave the batch unchanged");
        assert!(SpikeTrains::from_parts(3, vec![0, 2], vec![0.0], vec![0]).is_err());
        assert!(SpikeTrains::from_parts(3, vec![1, 1], vec![0.0], vec![0]).is_err());
    }

    #[test]
    fn unsorted_input_is_sorted_and_empty_trains_are_fine() {
        let mut b = SpikeTrains::new(3);
        b.push_unsorted(&[3.0, 1.0, 2.0], &[0, 1, 2]).unwrap();
        b.push_sample(&[], &[]).unwrap();
        assert_eq!(b.sample(0).times, &[1.0, 2.0, 3.0]);
        assert_eq!(b.sample(0).neurons, &[1, 2, 0]);
        assert!(b.sample(1).is_empty());
        let c = SpikeTrains::from_parts(3, vec![0, 3, 3], b.sample(0).times.to_vec(), vec![1, 2, 0]).unwrap();
        assert_eq!(c, b);
    }
}
