//! Synthetic SHD-like data whose classes differ only in the *timing* between channel groups.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::error::{DatasetError, Result};
use crate::spikes::SpikeDataset;

/// Parameters of [`synthetic_shd`].
///
/// The channels are split into `num_groups` contiguous groups. In every sample each
/// group emits one burst; the burst onsets are `t0 + lag_step * slot[class][group]`,
/// where `slot[class]` is a class-specific permutation of `0..num_groups` (fixed by
/// `structure_seed`) and `t0` is a random per-sample start. Each event is, with
/// probability `noise_fraction`, background (uniform time and channel), otherwise it
/// belongs to a uniformly chosen group: uniform channel in the group, time = onset +
/// N(0, `jitter`). Hence the expected count of every channel is the **same for every
/// class**: only the relative timing (order and lags) between groups tells classes apart,
/// which a network with learnable delays (up to `(num_groups - 1) * lag_step`) can pick up.
///
/// | field | default | `small()` | meaning | valid |
/// |---|---|---|---|---|
/// | `seed` | 0 | 0 | seed of the samples | any |
/// | `structure_seed` | 0 | 0 | seed of the class patterns (share it between train and test) | any |
/// | `num_units` | 700 | 64 | channels | `num_groups..=65536` |
/// | `num_classes` | 20 | 4 | classes | `1..=num_groups!` (and `<= 10_000`) |
/// | `samples` | 1000 | 256 | samples | any |
/// | `events_per_sample` | 500 | 120 | mean events per sample (uniform in ±20 %) | `>= 1` |
/// | `duration` | 1.0 s | 0.3 s | events lie in `[0, duration)` | `> 0` |
/// | `num_groups` | 8 | 4 | channel groups | `2..=num_units` |
/// | `lag_step` | 0.02 s | 0.025 s | lag between consecutive onset slots | `> 0` |
/// | `jitter` | 0.003 s | 0.003 s | s.d. of event times around an onset | `>= 0` |
/// | `noise_fraction` | 0.2 | 0.2 | share of background events | `0..=1` |
///
/// `duration` must leave room for the pattern: `(num_groups - 1) * lag_step + 8 * jitter < duration`.
///
/// ```
/// let p = datasets::SyntheticShdParams::default().samples(10).events_per_sample(100);
/// let d = datasets::synthetic_shd(&p).unwrap();
/// assert_eq!((d.len(), d.num_units, d.num_classes), (10, 700, 20));
/// assert!(d.times.iter().all(|&t| (0.0..1.0).contains(&t)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticShdParams {
    /// Seed of the samples.
    pub seed: u64,
    /// Seed of the class patterns.
    pub structure_seed: u64,
    /// Number of channels.
    pub num_units: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Number of samples.
    pub samples: usize,
    /// Mean events per sample.
    pub events_per_sample: usize,
    /// Length of a sample in seconds.
    pub duration: f32,
    /// Number of channel groups.
    pub num_groups: usize,
    /// Lag between onset slots, seconds.
    pub lag_step: f32,
    /// Standard deviation of event times around an onset, seconds.
    pub jitter: f32,
    /// Share of background events.
    pub noise_fraction: f64,
}

impl Default for SyntheticShdParams {
    fn default() -> Self {
        SyntheticShdParams {
            seed: 0,
            structure_seed: 0,
            num_units: 700,
            num_classes: 20,
            samples: 1000,
            events_per_sample: 500,
            duration: 1.0,
            num_groups: 8,
            lag_step: 0.02,
            jitter: 0.003,
            noise_fraction: 0.2,
        }
    }
}

impl SyntheticShdParams {
    /// A small, fast variant: 64 channels, 4 groups, 4 classes, 256 samples of ~120 events, 0.3 s.
    #[must_use]
    pub fn small() -> Self {
        SyntheticShdParams {
            num_units: 64,
            num_classes: 4,
            samples: 256,
            events_per_sample: 120,
            duration: 0.3,
            num_groups: 4,
            lag_step: 0.025,
            ..Self::default()
        }
    }
    setter!(seed, u64);
    setter!(structure_seed, u64);
    setter!(num_units, usize);
    setter!(num_classes, usize);
    setter!(samples, usize);
    setter!(events_per_sample, usize);
    setter!(duration, f32);
    setter!(num_groups, usize);
    setter!(lag_step, f32);
    setter!(jitter, f32);
    setter!(noise_fraction, f64);

    /// Checks the ranges in the table on the type; returns the parameters if valid.
    pub fn check(self) -> Result<Self> {
        let p = &self;
        if p.num_groups < 2 || p.num_groups > p.num_units {
            return Err(DatasetError::param("num_groups", p.num_groups, "must be in 2..=num_units"));
        }
        if p.num_units > 65536 {
            return Err(DatasetError::param("num_units", p.num_units, "must be <= 65536"));
        }
        let perms = (1..=p.num_groups).try_fold(1usize, |a, k| a.checked_mul(k)).unwrap_or(usize::MAX);
        if p.num_classes == 0 || p.num_classes > perms || p.num_classes > 10_000 {
            return Err(DatasetError::param("num_classes", p.num_classes, "must be in 1..=min(num_groups!, 10000)"));
        }
        if p.events_per_sample == 0 {
            return Err(DatasetError::param("events_per_sample", 0, "must be >= 1"));
        }
        if !(p.duration.is_finite() && p.duration > 0.0) {
            return Err(DatasetError::param("duration", p.duration, "must be finite and > 0"));
        }
        if !(p.lag_step.is_finite() && p.lag_step > 0.0) {
            return Err(DatasetError::param("lag_step", p.lag_step, "must be finite and > 0"));
        }
        if !(p.jitter.is_finite() && p.jitter >= 0.0) {
            return Err(DatasetError::param("jitter", p.jitter, "must be finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&p.noise_fraction) {
            return Err(DatasetError::param("noise_fraction", p.noise_fraction, "must be in [0, 1]"));
        }
        if p.pattern_span() + 8.0 * p.jitter >= p.duration {
            return Err(DatasetError::param(
                "duration",
                p.duration,
                "must exceed (num_groups - 1) * lag_step + 8 * jitter",
            ));
        }
        Ok(self)
    }

    /// Longest lag between two onsets of a pattern: `(num_groups - 1) * lag_step` seconds.
    #[must_use]
    pub fn pattern_span(&self) -> f32 {
        (self.num_groups - 1) as f32 * self.lag_step
    }

    /// Channel range `[start, end)` of group `g`.
    #[must_use]
    pub fn group_channels(&self, g: usize) -> (usize, usize) {
        (g * self.num_units / self.num_groups, (g + 1) * self.num_units / self.num_groups)
    }

    /// The class patterns: `slots[c][g]` = onset slot of group `g` in class `c`
    /// (distinct permutations of `0..num_groups`, fixed by `structure_seed`).
    pub fn class_slots(&self) -> Result<Vec<Vec<usize>>> {
        let p = self.clone().check()?;
        let mut rng = StdRng::seed_from_u64(p.structure_seed ^ 0x05EE_DC1A_55E5);
        let mut out: Vec<Vec<usize>> = Vec::with_capacity(p.num_classes);
        let mut attempts = 0u64;
        while out.len() < p.num_classes {
            attempts += 1;
            if attempts > 1_000_000 {
                return Err(DatasetError::SamplingFailed { what: "distinct class permutations", attempts });
            }
            let mut perm: Vec<usize> = (0..p.num_groups).collect();
            for i in (1..perm.len()).rev() {
                let j = rng.random_range(0..=i);
                perm.swap(i, j);
            }
            if !out.contains(&perm) {
                out.push(perm);
            }
        }
        Ok(out)
    }
}

/// Generates synthetic SHD-like data (see [`SyntheticShdParams`]); labels are drawn
/// uniformly; deterministic for `(seed, structure_seed)`.
pub fn synthetic_shd(params: &SyntheticShdParams) -> Result<SpikeDataset> {
    let p = params.clone().check()?;
    let slots = p.class_slots()?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let jitter = Normal::new(0.0f32, p.jitter.max(f32::MIN_POSITIVE))
        .map_err(|_| DatasetError::param("jitter", p.jitter, "must be finite and >= 0"))?;
    let mut out = SpikeDataset::empty(p.num_units, p.num_classes);
    let (lo, hi) = (0.8 * p.events_per_sample as f64, 1.2 * p.events_per_sample as f64);
    out.times.reserve(p.samples * p.events_per_sample);
    out.units.reserve(p.samples * p.events_per_sample);
    let t0_min = 4.0 * p.jitter;
    let t0_max = p.duration - p.pattern_span() - 4.0 * p.jitter;
    let mut times: Vec<f32> = Vec::new();
    let mut units: Vec<u16> = Vec::new();
    for _ in 0..p.samples {
        let label = rng.random_range(0..p.num_classes);
        let t0 = t0_min + (t0_max - t0_min) * rng.random::<f32>();
        let n = rng.random_range(lo..=hi).round().max(1.0) as usize;
        times.clear();
        units.clear();
        for _ in 0..n {
            let (t, u) = if rng.random::<f64>() < p.noise_fraction {
                (p.duration * rng.random::<f32>(), rng.random_range(0..p.num_units))
            } else {
                let g = rng.random_range(0..p.num_groups);
                let (a, b) = p.group_channels(g);
                let onset = t0 + p.lag_step * slots[label][g] as f32;
                let dt = if p.jitter > 0.0 { jitter.sample(&mut rng) } else { 0.0 };
                (onset + dt, rng.random_range(a..b))
            };
            if (0.0..p.duration).contains(&t) {
                times.push(t);
                units.push(u as u16);
            }
        }
        out.push(&times, &units, label as u32)?;
    }
    Ok(out)
}
