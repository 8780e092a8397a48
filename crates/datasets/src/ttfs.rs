//! Yin-Yang, sequence detection and time-to-first-spike (TTFS) encoding.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::{DatasetError, Result};

/// Radius of the two dots of the Yin-Yang symbol.
pub const YIN_YANG_R_SMALL: f64 = 0.1;
/// Radius of the Yin-Yang symbol (centred at (0.5, 0.5)).
pub const YIN_YANG_R_BIG: f64 = 0.5;

/// Yin-Yang class of the point `(x, y)` (Kriener et al. 2021, `dataset.py`):
/// 0 = yang, 1 = yin, 2 = dot. Points outside the big circle are classified too;
/// the generator only produces points inside it.
///
/// ```
/// use datasets::yin_yang_class;
/// assert_eq!(yin_yang_class(0.75, 0.5), 2); // centre of the right dot
/// assert_eq!(yin_yang_class(0.25, 0.5), 2);
/// assert_eq!(yin_yang_class(0.5, 0.9), 1);  // upper half, far from the right dot
/// assert_eq!(yin_yang_class(0.5, 0.1), 0);
/// ```
#[must_use]
pub fn yin_yang_class(x: f64, y: f64) -> u32 {
    let (r_small, r_big) = (YIN_YANG_R_SMALL, YIN_YANG_R_BIG);
    let d_right = ((x - 1.5 * r_big).powi(2) + (y - r_big).powi(2)).sqrt();
    let d_left = ((x - 0.5 * r_big).powi(2) + (y - r_big).powi(2)).sqrt();
    let criterion1 = d_right <= r_small;
    let criterion2 = d_left > r_small && d_left <= 0.5 * r_big;
    let criterion3 = y > r_big && d_right > 0.5 * r_big;
    let is_yin = criterion1 || criterion2 || criterion3;
    let is_circles = d_right < r_small || d_left < r_small;
    if is_circles { 2 } else { u32::from(is_yin) }
}

/// Yin-Yang points and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct YinYang {
    /// Points `(x, y)` in `[0, 1]^2`, inside the circle of radius 0.5 around (0.5, 0.5).
    pub points: Vec<(f64, f64)>,
    /// Labels: 0 yang, 1 yin, 2 dot.
    pub labels: Vec<u32>,
}

impl YinYang {
    /// Number of points.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no points.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The four standard inputs `(x, y, 1 - x, 1 - y)` of point `i`.
    #[must_use]
    pub fn inputs(&self, i: usize) -> [f64; 4] {
        let (x, y) = self.points[i];
        [x, y, 1.0 - x, 1.0 - y]
    }
}

/// Generates `n` Yin-Yang points, deterministic for `seed`.
///
/// As in the reference implementation: the class is drawn first (uniformly over the
/// three classes), then points are drawn uniformly in the big circle until one of that
/// class is found — so the classes are balanced in expectation.
///
/// ```
/// let d = datasets::yin_yang(100, 1).unwrap();
/// assert_eq!(d.len(), 100);
/// assert_eq!(d, datasets::yin_yang(100, 1).unwrap());
/// ```
pub fn yin_yang(n: usize, seed: u64) -> Result<YinYang> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut points = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let goal: u32 = rng.random_range(0..3u32);
        // The dots cover ~8 % of the circle, so this ends quickly; bound it anyway.
        let mut found = false;
        for _ in 0..100_000 {
            let x = rng.random::<f64>() * 2.0 * YIN_YANG_R_BIG;
            let y = rng.random::<f64>() * 2.0 * YIN_YANG_R_BIG;
            if ((x - YIN_YANG_R_BIG).powi(2) + (y - YIN_YANG_R_BIG).powi(2)).sqrt() > YIN_YANG_R_BIG {
                continue;
            }
            if yin_yang_class(x, y) == goal {
                points.push((x, y));
                labels.push(goal);
                found = true;
                break;
            }
        }
        if !found {
            return Err(DatasetError::SamplingFailed { what: "Yin-Yang point of the drawn class", attempts: 100_000 });
        }
    }
    Ok(YinYang { points, labels })
}

/// Seeds of the standard splits (train, validation, test), as in the reference code.
pub const YIN_YANG_SEEDS: [u64; 3] = [42, 41, 40];

/// The standard splits: 5000 training, 1000 validation and 1000 test points,
/// each from a different seed ([`YIN_YANG_SEEDS`]).
pub fn yin_yang_splits() -> Result<(YinYang, YinYang, YinYang)> {
    Ok((yin_yang(5000, YIN_YANG_SEEDS[0])?, yin_yang(1000, YIN_YANG_SEEDS[1])?, yin_yang(1000, YIN_YANG_SEEDS[2])?))
}

/// Samples of one spike per input neuron: times in **milliseconds** (`f64`).
///
/// Sample `i` has `inputs` spike times `times[i * inputs..(i + 1) * inputs]`
/// (input neuron `k` spikes once, at `times[i * inputs + k]`) and label `labels[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TtfsDataset {
    /// Number of input neurons.
    pub inputs: usize,
    /// Number of classes.
    pub classes: usize,
    /// Spike times in ms, `len() * inputs` values.
    pub times: Vec<f64>,
    /// Labels.
    pub labels: Vec<u32>,
}

impl TtfsDataset {
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
    /// Spike times (ms, one per input neuron) and label of sample `i`.
    #[must_use]
    pub fn sample(&self, i: usize) -> (&[f64], u32) {
        (&self.times[i * self.inputs..(i + 1) * self.inputs], self.labels[i])
    }
}

/// Time-to-first-spike encoding `t = t_early + (t_late - t_early) * v` (ms) of values
/// `v` in `[0, 1]`.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `t_early` | 1.5 ms | spike time of `v = 0` |
/// | `t_late` | 20.0 ms | spike time of `v = 1` |
/// | `bias` | `None` | `Some(t)`: one extra input that always spikes at `t` ms |
///
/// ```
/// let enc = datasets::YinYangEncoder::default();
/// assert_eq!(enc.encode_values(&[0.0, 1.0, 0.5]), vec![1.5, 20.0, 10.75]);
/// let with_bias = enc.with_bias(0.0);
/// assert_eq!(with_bias.encode_values(&[1.0]), vec![20.0, 0.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YinYangEncoder {
    /// Spike time (ms) of value 0.
    pub t_early: f64,
    /// Spike time (ms) of value 1.
    pub t_late: f64,
    /// Time (ms) of an optional bias spike appended as the last input.
    pub bias: Option<f64>,
}

impl Default for YinYangEncoder {
    fn default() -> Self {
        YinYangEncoder { t_early: 1.5, t_late: 20.0, bias: None }
    }
}

impl YinYangEncoder {
    /// The same encoder with a bias spike at `t` ms.
    #[must_use]
    pub fn with_bias(self, t: f64) -> Self {
        YinYangEncoder { bias: Some(t), ..self }
    }
    /// Checks that the times are finite and `t_early <= t_late`.
    pub fn check(&self) -> Result<()> {
        if !(self.t_early.is_finite() && self.t_late.is_finite() && self.t_early <= self.t_late) {
            return Err(DatasetError::param(
                "t_early/t_late",
                format!("{}/{}", self.t_early, self.t_late),
                "must be finite with t_early <= t_late",
            ));
        }
        if self.bias.is_some_and(|b| !b.is_finite()) {
            return Err(DatasetError::param("bias", format!("{:?}", self.bias), "must be finite"));
        }
        Ok(())
    }
    /// Spike times (ms) of `values`, plus the bias spike if any.
    #[must_use]
    pub fn encode_values(&self, values: &[f64]) -> Vec<f64> {
        let mut out: Vec<f64> = values.iter().map(|&v| self.t_early + (self.t_late - self.t_early) * v).collect();
        out.extend(self.bias);
        out
    }
    /// Number of input neurons for the Yin-Yang task (4, or 5 with a bias).
    #[must_use]
    pub fn inputs(&self) -> usize {
        4 + usize::from(self.bias.is_some())
    }
    /// Encodes Yin-Yang points as the spike times of `(x, y, 1 - x, 1 - y)` (+ bias).
    #[must_use]
    pub fn encode(&self, data: &YinYang) -> TtfsDataset {
        let mut times = Vec::with_capacity(data.len() * self.inputs());
        for i in 0..data.len() {
            times.extend(self.encode_values(&data.inputs(i)));
        }
        TtfsDataset { inputs: self.inputs(), classes: 3, times, labels: data.labels.clone() }
    }
}

/// Interval (ms) between the two input spikes of the sequence-detection task.
pub const SEQUENCE_INTERVAL_MS: f64 = 10.0;

/// Length (ms) of one sequence-detection run in the paper's setup (`max_delay` is 15 ms).
pub const SEQUENCE_DURATION_MS: f64 = 25.0;

/// Spike times (ms) of the two inputs for a sequence-detection class:
/// class 0 = input 0 at 0 ms then input 1 at 10 ms; class 1 = the reverse.
///
/// ```
/// assert_eq!(datasets::sequence_pattern(0), [0.0, 10.0]);
/// assert_eq!(datasets::sequence_pattern(1), [10.0, 0.0]);
/// ```
#[must_use]
pub fn sequence_pattern(class: u32) -> [f64; 2] {
    if class == 0 { [0.0, SEQUENCE_INTERVAL_MS] } else { [SEQUENCE_INTERVAL_MS, 0.0] }
}

/// The sequence-detection task: `n` samples with labels drawn uniformly from {0, 1}
/// (deterministic for `seed`); `n = 2` with any seed is not guaranteed to hold both
/// classes — use [`sequence_detection_both`] for the two canonical samples.
#[must_use]
pub fn sequence_detection(n: usize, seed: u64) -> TtfsDataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..2u32)).collect();
    let times = labels.iter().flat_map(|&c| sequence_pattern(c)).collect();
    TtfsDataset { inputs: 2, classes: 2, times, labels }
}

/// The two canonical sequence-detection samples, class 0 then class 1.
#[must_use]
pub fn sequence_detection_both() -> TtfsDataset {
    TtfsDataset {
        inputs: 2,
        classes: 2,
        times: [sequence_pattern(0), sequence_pattern(1)].concat(),
        labels: vec![0, 1],
    }
}
