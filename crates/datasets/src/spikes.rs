//! [`SpikeDataset`]: a flat, CSR-like batch of event streams (SHD, SSC, synthetic).

use serde::{Deserialize, Serialize};

use crate::error::{DatasetError, Result};

/// A batch of labelled event streams stored flat, like a CSR matrix.
///
/// Sample `i` owns the events `offsets[i]..offsets[i + 1]` of `times` and `units`.
/// Times are in **seconds**, sorted ascending within each sample; units are input
/// channel indices `< num_units`.
///
/// Invariants (checked by [`SpikeDataset::new`], kept by every function of this crate):
/// `offsets.len() == labels.len() + 1`, `offsets[0] == 0`, `offsets` non-decreasing,
/// `*offsets.last() == times.len() == units.len()`, every label `< num_classes`,
/// every unit `< num_units`, every time finite and `>= 0`.
///
/// ```
/// use datasets::SpikeDataset;
/// let mut d = SpikeDataset::empty(4, 2);
/// d.push(&[0.001, 0.002], &[3, 1], 1).unwrap();
/// d.push(&[0.5], &[0], 0).unwrap();
/// assert_eq!(d.len(), 2);
/// let s = d.sample(0);
/// assert_eq!((s.times, s.units, s.label), (&[0.001f32, 0.002][..], &[3u16, 1][..], 1));
/// assert_eq!(d.stats().events_max, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeDataset {
    /// Number of input channels; every unit is `< num_units`.
    pub num_units: usize,
    /// Number of classes; every label is `< num_classes`.
    pub num_classes: usize,
    /// One label per sample.
    pub labels: Vec<u32>,
    /// Sample boundaries into `times`/`units`, length `samples + 1`.
    pub offsets: Vec<usize>,
    /// Event times in seconds, ascending within each sample.
    pub times: Vec<f32>,
    /// Event channels.
    pub units: Vec<u16>,
}

/// A borrowed view of one sample of a [`SpikeDataset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeSample<'a> {
    /// Event times in seconds, ascending.
    pub times: &'a [f32],
    /// Event channels, same length as `times`.
    pub units: &'a [u16],
    /// The class label.
    pub label: u32,
}

impl SpikeSample<'_> {
    /// Number of events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.times.len()
    }
    /// Whether the sample has no events.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Summary statistics of a [`SpikeDataset`] (what `cargo xtask dataset-info` prints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeStats {
    /// Number of samples.
    pub samples: usize,
    /// Number of classes.
    pub classes: usize,
    /// Samples per class, indexed by class.
    pub label_counts: Vec<usize>,
    /// Mean number of events per sample (0 if there are no samples).
    pub events_mean: f64,
    /// Fewest events in a sample (0 if there are no samples).
    pub events_min: usize,
    /// Most events in a sample.
    pub events_max: usize,
    /// Largest unit index present (0 if there are no events).
    pub units_max: u16,
    /// Latest event time in seconds (0 if there are no events).
    pub time_max: f32,
}

impl SpikeDataset {
    /// An empty data set with the given number of channels and classes.
    #[must_use]
    pub fn empty(num_units: usize, num_classes: usize) -> Self {
        SpikeDataset {
            num_units,
            num_classes,
            labels: Vec::new(),
            offsets: vec![0],
            times: Vec::new(),
            units: Vec::new(),
        }
    }

    /// Builds a data set from its parts, checking every invariant listed on the type.
    ///
    /// Times that are not sorted within a sample are an error (use
    /// [`SpikeDataset::push`], which sorts, to build from unsorted events).
    pub fn new(
        num_units: usize,
        num_classes: usize,
        labels: Vec<u32>,
        offsets: Vec<usize>,
        times: Vec<f32>,
        units: Vec<u16>,
    ) -> Result<Self> {
        let d = SpikeDataset { num_units, num_classes, labels, offsets, times, units };
        d.check()?;
        Ok(d)
    }

    /// Checks the invariants listed on the type.
    pub fn check(&self) -> Result<()> {
        if self.offsets.len() != self.labels.len() + 1 || self.offsets.first() != Some(&0) {
            return Err(DatasetError::param(
                "offsets",
                format!("len {}", self.offsets.len()),
                "must have len labels.len() + 1 and start at 0",
            ));
        }
        if self.times.len() != self.units.len() || self.offsets.last() != Some(&self.times.len()) {
            return Err(DatasetError::param(
                "times/units",
                format!("{}/{}", self.times.len(), self.units.len()),
                "times and units must both have offsets.last() elements",
            ));
        }
        if self.offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(DatasetError::param("offsets", "decreasing", "must be non-decreasing"));
        }
        if let Some(&l) = self.labels.iter().find(|&&l| l as usize >= self.num_classes) {
            return Err(DatasetError::param("labels", l, "must be < num_classes"));
        }
        if let Some(&u) = self.units.iter().find(|&&u| usize::from(u) >= self.num_units) {
            return Err(DatasetError::param("units", u, "must be < num_units"));
        }
        if let Some(&t) = self.times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(DatasetError::param("times", t, "must be finite and >= 0"));
        }
        for w in self.offsets.windows(2) {
            if !self.times[w[0]..w[1]].is_sorted() {
                return Err(DatasetError::param("times", "unsorted", "must ascend within each sample"));
            }
        }
        Ok(())
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Total number of events.
    #[must_use]
    pub fn num_events(&self) -> usize {
        self.times.len()
    }

    /// Sample `i`. Panics if `i >= self.len()` (like slice indexing).
    #[must_use]
    pub fn sample(&self, i: usize) -> SpikeSample<'_> {
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        SpikeSample { times: &self.times[a..b], units: &self.units[a..b], label: self.labels[i] }
    }

    /// Iterates over all samples in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SpikeSample<'_>> + '_ {
        (0..self.len()).map(move |i| self.sample(i))
    }

    /// Appends one sample; events are sorted by time (stable) if they are not already.
    ///
    /// Errors if lengths differ, a unit is `>= num_units`, a label `>= num_classes`,
    /// or a time is negative or not finite.
    pub fn push(&mut self, times: &[f32], units: &[u16], label: u32) -> Result<()> {
        if times.len() != units.len() {
            return Err(DatasetError::param("units", units.len(), "must have as many entries as times"));
        }
        if label as usize >= self.num_classes {
            return Err(DatasetError::param("label", label, "must be < num_classes"));
        }
        if let Some(&u) = units.iter().find(|&&u| usize::from(u) >= self.num_units) {
            return Err(DatasetError::param("units", u, "must be < num_units"));
        }
        if let Some(&t) = times.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(DatasetError::param("times", t, "must be finite and >= 0"));
        }
        if times.is_sorted() {
            self.times.extend_from_slice(times);
            self.units.extend_from_slice(units);
        } else {
            let mut idx: Vec<usize> = (0..times.len()).collect();
            idx.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
            self.times.extend(idx.iter().map(|&i| times[i]));
            self.units.extend(idx.iter().map(|&i| units[i]));
        }
        self.labels.push(label);
        self.offsets.push(self.times.len());
        Ok(())
    }

    /// A new data set holding the samples at `indices` (in that order, repeats allowed).
    /// Panics if an index is out of bounds.
    #[must_use]
    pub fn select(&self, indices: &[usize]) -> SpikeDataset {
        let mut out = SpikeDataset::empty(self.num_units, self.num_classes);
        let total: usize = indices.iter().map(|&i| self.offsets[i + 1] - self.offsets[i]).sum();
        out.times.reserve(total);
        out.units.reserve(total);
        for &i in indices {
            let s = self.sample(i);
            out.times.extend_from_slice(s.times);
            out.units.extend_from_slice(s.units);
            out.labels.push(s.label);
            out.offsets.push(out.times.len());
        }
        out
    }

    /// Samples per class, indexed by class (length `num_classes`).
    #[must_use]
    pub fn label_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.num_classes];
        for &l in &self.labels {
            if let Some(x) = c.get_mut(l as usize) {
                *x += 1;
            }
        }
        c
    }

    /// Summary statistics: samples, classes, label counts, events per sample, ranges.
    #[must_use]
    pub fn stats(&self) -> SpikeStats {
        let counts = self.offsets.windows(2).map(|w| w[1] - w[0]);
        let n = self.len();
        SpikeStats {
            samples: n,
            classes: self.num_classes,
            label_counts: self.label_counts(),
            events_mean: if n == 0 { 0.0 } else { self.times.len() as f64 / n as f64 },
            events_min: counts.clone().min().unwrap_or(0),
            events_max: counts.max().unwrap_or(0),
            units_max: self.units.iter().copied().max().unwrap_or(0),
            time_max: self.times.iter().copied().fold(0.0f32, f32::max),
        }
    }

    /// Drops every event at or after `t_end` seconds (in place).
    pub fn truncate_time(&mut self, t_end: f32) {
        let mut out = 0usize;
        let mut start = 0usize;
        for i in 0..self.len() {
            let end = self.offsets[i + 1];
            for k in start..end {
                if self.times[k] < t_end {
                    self.times[out] = self.times[k];
                    self.units[out] = self.units[k];
                    out += 1;
                }
            }
            start = end;
            self.offsets[i + 1] = out;
        }
        self.times.truncate(out);
        self.units.truncate(out);
    }
}
