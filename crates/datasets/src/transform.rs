//! Encodings and augmentations of event streams: binning, SHD channel shift and blend,
//! shuffled mini-batches.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{DatasetError, Result};
use crate::spikes::{SpikeDataset, SpikeSample};

/// Spike counts of one sample on a `dt` grid, row-major `[step][unit]`, `steps * num_units`
/// values. Event at time `t` (s) goes to step `floor(t / dt)`; events at or after
/// `steps * dt` are dropped, as are units `>= num_units`.
///
/// ```
/// let mut d = datasets::SpikeDataset::empty(2, 1);
/// d.push(&[0.0, 0.0015, 0.0025, 0.5], &[0, 1, 1, 0], 0).unwrap();
/// let c = datasets::bin_counts(d.sample(0), 2, 0.001, 3);
/// assert_eq!(c, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
/// ```
#[must_use]
pub fn bin_counts(sample: SpikeSample<'_>, num_units: usize, dt: f32, steps: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; steps * num_units];
    bin_counts_into(sample, num_units, dt, &mut out);
    out
}

/// [`bin_counts`] into a caller-owned buffer (zeroed first) of `steps * num_units` values,
/// with `steps = out.len() / num_units`.
pub fn bin_counts_into(sample: SpikeSample<'_>, num_units: usize, dt: f32, out: &mut [f32]) {
    out.fill(0.0);
    if num_units == 0 || dt.is_nan() || dt <= 0.0 {
        return;
    }
    let steps = out.len() / num_units;
    for (&t, &u) in sample.times.iter().zip(sample.units) {
        let k = (t / dt).floor();
        if k >= 0.0 && (k as usize) < steps && usize::from(u) < num_units {
            out[k as usize * num_units + usize::from(u)] += 1.0;
        }
    }
}

/// A copy of the data set with every time snapped down to the `dt` grid
/// (`floor(t / dt) * dt`, seconds) — what a clocked engine with step `dt` sees.
pub fn quantize_times(data: &SpikeDataset, dt: f32) -> Result<SpikeDataset> {
    if !(dt.is_finite() && dt > 0.0) {
        return Err(DatasetError::param("dt", dt, "must be finite and > 0"));
    }
    let mut out = data.clone();
    for t in &mut out.times {
        *t = (*t / dt).floor() * dt;
    }
    Ok(out)
}

/// The SHD channel-shift range of the paper: shifts in `-40..=40` channels.
pub const SHD_MAX_SHIFT: u16 = 40;

/// SHD channel shift: every sample gets its own shift drawn uniformly from
/// `-max_shift..=max_shift` (40 in the paper) and each unit `u` becomes
/// `clamp(u + shift, 0, num_units - 1)`. Deterministic for `seed`.
///
/// ```
/// let d = datasets::synthetic_shd(&datasets::SyntheticShdParams::small()).unwrap();
/// let s = datasets::channel_shift(&d, 40, 1);
/// assert_eq!(s.times, d.times);
/// assert!(s.units.iter().all(|&u| (u as usize) < d.num_units));
/// ```
#[must_use]
pub fn channel_shift(data: &SpikeDataset, max_shift: u16, seed: u64) -> SpikeDataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = data.clone();
    let top = data.num_units.saturating_sub(1) as i64;
    let m = i64::from(max_shift);
    for i in 0..out.len() {
        let shift = rng.random_range(-m..=m);
        let (a, b) = (out.offsets[i], out.offsets[i + 1]);
        for u in &mut out.units[a..b] {
            *u = (i64::from(*u) + shift).clamp(0, top) as u16;
        }
    }
    out
}

fn centre_of_mass(s: SpikeSample<'_>) -> (f64, f64) {
    if s.is_empty() {
        return (0.0, 0.0);
    }
    let n = s.len() as f64;
    let t = s.times.iter().map(|&t| f64::from(t)).sum::<f64>() / n;
    let u = s.units.iter().map(|&u| f64::from(u)).sum::<f64>() / n;
    (t, u)
}

/// Blends two samples (of the same class): both are moved so that their centres of
/// mass (in time and channel) meet at the mean of the two, then each event of `a` is
/// kept with probability `p_a` and each event of `b` with probability `1 - p_a`.
/// Units are clamped to `0..num_units`, events moved before 0 s are dropped.
/// Returns sorted `(times, units)`.
pub fn blend(
    a: SpikeSample<'_>,
    b: SpikeSample<'_>,
    p_a: f64,
    num_units: usize,
    rng: &mut impl rand::Rng,
) -> (Vec<f32>, Vec<u16>) {
    let (ca, cb) = (centre_of_mass(a), centre_of_mass(b));
    let target = ((ca.0 + cb.0) / 2.0, (ca.1 + cb.1) / 2.0);
    let top = num_units.saturating_sub(1) as f64;
    let mut ev: Vec<(f32, u16)> = Vec::with_capacity((a.len() + b.len()) / 2 + 8);
    for (s, c, p) in [(a, ca, p_a), (b, cb, 1.0 - p_a)] {
        let (dt, du) = ((target.0 - c.0) as f32, (target.1 - c.1).round());
        for (&t, &u) in s.times.iter().zip(s.units) {
            if rng.random::<f64>() < p {
                let t = t + dt;
                if t >= 0.0 && t.is_finite() {
                    ev.push((t, (f64::from(u) + du).clamp(0.0, top) as u16));
                }
            }
        }
    }
    ev.sort_by(|x, y| x.0.total_cmp(&y.0));
    ev.into_iter().unzip()
}

/// Appends `n_new` blended samples to a copy of `data`: each blends two random samples
/// of the same class with `p_a = 0.5` (see [`blend`]). Deterministic for `seed`.
/// Classes with no sample are skipped; returns the data unchanged if it is empty.
pub fn blend_augment(data: &SpikeDataset, n_new: usize, seed: u64) -> Result<SpikeDataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.num_classes];
    for (i, &l) in data.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut out = data.clone();
    if data.is_empty() {
        return Ok(out);
    }
    for _ in 0..n_new {
        let i = rng.random_range(0..data.len());
        let pool = &by_class[data.labels[i] as usize];
        let j = pool[rng.random_range(0..pool.len())];
        let (t, u) = blend(data.sample(i), data.sample(j), 0.5, data.num_units, &mut rng);
        out.push(&t, &u, data.labels[i])?;
    }
    Ok(out)
}

/// Shuffled mini-batches of the indices `0..n`, deterministic for `seed`.
///
/// Every index appears exactly once per pass; the last batch is shorter unless
/// `drop_last` is set. Use a different seed per epoch (e.g. `seed + epoch`).
///
/// ```
/// let b: Vec<Vec<usize>> = datasets::MiniBatches::new(10, 4, 3).collect();
/// assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
/// let mut all: Vec<usize> = b.concat();
/// all.sort();
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// assert_eq!(datasets::MiniBatches::new(10, 4, 3).drop_last(true).count(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct MiniBatches {
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    drop_last: bool,
}

impl MiniBatches {
    /// Shuffles `0..n` with a Fisher–Yates shuffle seeded by `seed`. A `batch_size` of 0
    /// is treated as 1.
    #[must_use]
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        MiniBatches { order, batch_size: batch_size.max(1), pos: 0, drop_last: false }
    }
    /// Whether to skip a final batch smaller than `batch_size`.
    #[must_use]
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }
}

impl Iterator for MiniBatches {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        let rest = self.order.len() - self.pos;
        if rest == 0 || (self.drop_last && rest < self.batch_size) {
            return None;
        }
        let k = rest.min(self.batch_size);
        let b = self.order[self.pos..self.pos + k].to_vec();
        self.pos += k;
        Some(b)
    }
}
