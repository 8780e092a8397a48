//! Attack protocols with explicit units (issue 20): which norm, which units `eps` is
//! measured in, the valid input box, and the attack itself (I-FGSM or PGD with random
//! restarts), as one documented value whose [`AttackProtocol::label`] names the column it
//! fills in `results.json`.
//!
//! **Units.** The models read *standardised* inputs `s = (p - mean) / std` (one scalar
//! mean and standard deviation for the whole data set, [`Standardisation`]), where `p` is
//! the raw pixel value in the box `[lo, hi]` (`[0, 1]` on MNIST). A budget `eps` is either
//!
//! * in **standardised units** ([`EpsUnit::Standardised`], label suffix `-std`): the
//!   ball has radius `eps` in the model's input space, so a pixel moves by at most
//!   `eps * std` (the thesis's protocol: Aslan & Mészáros 2022 standardise the inputs and
//!   apply `eps` to the standardised input), or
//! * in **pixel units** ([`EpsUnit::Pixel`], suffix `-px`): a pixel moves by at most
//!   `eps`, i.e. radius `eps / std` in the model's input space — a budget `1 / std`
//!   times larger (about 3.2 on MNIST, `std = 0.3081`).
//!
//! Either way the adversarial input is clipped to the pixel box mapped into standardised
//! units, `[(lo - mean) / std, (hi - mean) / std]` ([`InputSpace::model_box`]).
//!
//! **Attacks** ([`Method`]):
//!
//! * I-FGSM (Kurakin et al. 2017): from the clean input, `T` steps of size `eps / T`;
//!   sign steps for `l_inf`, normalised-gradient steps for `l2`; each step projected onto
//!   the ball and then clipped to the box ([`crate::attack::ifgsm`]).
//! * PGD with random restarts ([`Pgd`], Madry et al. 2018): every restart starts at a
//!   uniformly random point of the ball (clipped to the box; optionally restart 0 starts
//!   at the clean input) and takes `T` projected steps of size `step_scale * eps / T`;
//!   per sample the worst restart is kept — a misclassified result over a correct one,
//!   otherwise the larger attack objective ([`crate::models::TaskLoss::attack_objective`]).
//!   With `clean_start` and `step_scale = 1` restart 0 *is* I-FGSM, so the result is never
//!   weaker than I-FGSM on any sample. PGD is the stronger check beside the paper
//!   protocol: a model whose input gradient vanishes near the clean input (gradient
//!   masking) resists I-FGSM but not random starts.
//!
//! | label | method | norm | `eps` units |
//! | --- | --- | --- | --- |
//! | `ifgsm-linf-std` | I-FGSM | `l_inf` (sign steps) | standardised (the thesis's protocol, the paper-comparison column) |
//! | `ifgsm-linf-px` | I-FGSM | `l_inf` | pixels (`1/std` times the budget of `-std`) |
//! | `ifgsm-l2-std` | I-FGSM | `l2` (literal radius) | standardised |
//! | `ifgsm-l2-px` | I-FGSM | `l2` | pixels |
//! | `pgd-linf-std`, `pgd-linf-px`, `pgd-l2-std`, `pgd-l2-px` | PGD with random restarts | as named | as named |
//!
//! ```
//! use nalgebra::DMatrix;
//! use sparse_bp::attack::AttackNorm;
//! use sparse_bp::attack::protocol::{AttackProtocol, EpsUnit, InputSpace, Standardisation};
//! use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
//!
//! let space = InputSpace::new(Standardisation::new(0.1307, 0.3081)?, Some((0.0, 1.0)))?;
//! let paper = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 10, space);
//! assert_eq!(paper.label(), "ifgsm-linf-std");
//! assert_eq!(paper.eps_model(0.15)?, 0.15); // a pixel moves by at most 0.15 * 0.3081
//! let px = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Pixel, 10, space);
//! assert!((px.eps_model(0.15)? - 0.15 / 0.3081).abs() < 1e-15);
//!
//! // a tiny BP model on standardised 2-pixel images
//! let clf = LinearClassifier { w: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 1.0]), b: nalgebra::DVector::zeros(2) };
//! let m = PursuitClassifier::new(CodeKind::Bp, DMatrix::identity(2, 2), 1, 0.01, clf, TaskLoss::CrossEntropy)?;
//! let pixels = DMatrix::from_column_slice(2, 1, &[0.9, 0.2]);
//! let x = space.standardisation.standardise(&pixels);
//! let adv = paper.run(&m, &x, &[0], 0.15)?;
//! let moved = space.standardisation.to_pixels(&adv) - &pixels;
//! assert!(moved.amax() <= 0.15 * 0.3081 + 1e-12);
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{AttackNorm, Ifgsm, ifgsm, iterate};
use crate::error::{Result, SparseBpError, check_finite};
use crate::models::Classifier;

/// The affine map from raw pixels to the model's input, `s = (p - mean) / std`, with one
/// scalar mean and standard deviation for every input entry.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `mean` | subtracted from every pixel | finite |
/// | `std` | divides every centred pixel | finite, `> 0` |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardisation {
    /// Mean pixel value.
    pub mean: f64,
    /// Pixel standard deviation.
    pub std: f64,
}

impl Standardisation {
    /// No standardisation (`mean = 0`, `std = 1`): model units are pixel units.
    pub const IDENTITY: Self = Self { mean: 0.0, std: 1.0 };

    /// Checked constructor.
    pub fn new(mean: f64, std: f64) -> Result<Self> {
        let s = Self { mean, std };
        s.check()?;
        Ok(s)
    }

    /// Validates the fields against the table.
    pub fn check(&self) -> Result<()> {
        if !self.mean.is_finite() {
            return Err(SparseBpError::InvalidParam {
                name: "standardisation mean",
                value: self.mean,
                expected: "finite",
            });
        }
        if !(self.std.is_finite() && self.std > 0.0) {
            return Err(SparseBpError::InvalidParam {
                name: "standardisation std",
                value: self.std,
                expected: "finite and > 0",
            });
        }
        Ok(())
    }

    /// One pixel value in model units.
    #[must_use]
    pub fn standardise_value(&self, p: f64) -> f64 {
        (p - self.mean) / self.std
    }

    /// A batch of pixels in model units.
    #[must_use]
    pub fn standardise(&self, pixels: &DMatrix<f64>) -> DMatrix<f64> {
        pixels.map(|p| self.standardise_value(p))
    }

    /// A batch in model units back in pixels, `p = mean + std * s`.
    #[must_use]
    pub fn to_pixels(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        x.map(|s| self.mean + self.std * s)
    }
}

/// Where valid inputs live: the standardisation the model reads and the raw pixel box.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `standardisation` | pixel -> model-input map | see [`Standardisation`] |
/// | `pixel_box` | `[lo, hi]` every raw pixel stays in (`None`: unbounded) | finite, `lo <= hi` |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputSpace {
    /// The standardisation.
    pub standardisation: Standardisation,
    /// The raw pixel box.
    pub pixel_box: Option<(f64, f64)>,
}

impl InputSpace {
    /// Checked constructor.
    pub fn new(standardisation: Standardisation, pixel_box: Option<(f64, f64)>) -> Result<Self> {
        let s = Self { standardisation, pixel_box };
        s.check()?;
        Ok(s)
    }

    /// Validates the fields against the table.
    pub fn check(&self) -> Result<()> {
        self.standardisation.check()?;
        if let Some((lo, hi)) = self.pixel_box
            && !(lo.is_finite() && hi.is_finite() && lo <= hi)
        {
            return Err(SparseBpError::InvalidParam { name: "pixel_box", value: lo, expected: "finite, lo <= hi" });
        }
        Ok(())
    }

    /// The pixel box in model (standardised) units.
    #[must_use]
    pub fn model_box(&self) -> Option<(f64, f64)> {
        self.pixel_box
            .map(|(lo, hi)| (self.standardisation.standardise_value(lo), self.standardisation.standardise_value(hi)))
    }

    /// Checks that a clean batch in model units lies inside [`InputSpace::model_box`] (up
    /// to `1e-9` of the box width, for rounding in the standardisation).
    pub fn check_inside(&self, x: &DMatrix<f64>) -> Result<()> {
        let Some((lo, hi)) = self.model_box() else { return Ok(()) };
        let tol = 1e-9 * (hi - lo).max(1.0);
        match x.iter().enumerate().find(|(_, v)| **v < lo - tol || **v > hi + tol) {
            Some((index, &value)) => Err(SparseBpError::OutsideBox { index, value, lo, hi }),
            None => Ok(()),
        }
    }
}

/// The units an attack budget `eps` is given in (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpsUnit {
    /// Radius `eps` in the standardised input (a pixel moves by at most `eps * std`).
    Standardised,
    /// Radius `eps` in raw pixels (`eps / std` in the standardised input).
    Pixel,
}

/// PGD with random restarts (module docs).
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `restarts` | 5 | number of starts; per sample the worst result is kept | `>= 1` |
/// | `step_scale` | 2.5 | step size in units of `eps / T` (Madry et al. use `2.5 eps / T`) | finite, `> 0` |
/// | `clean_start` | `true` | restart 0 starts at the clean input instead of a random point | any |
/// | `seed` | 0 | random starts (restart `r` draws from its own stream, [`Pgd::start`]) | any |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pgd {
    /// Number of starts.
    pub restarts: usize,
    /// Step size in units of `eps / T`.
    pub step_scale: f64,
    /// Whether restart 0 starts at the clean input.
    pub clean_start: bool,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for Pgd {
    fn default() -> Self {
        Self { restarts: 5, step_scale: 2.5, clean_start: true, seed: 0 }
    }
}

impl Pgd {
    /// Validates the fields against the table.
    pub fn check(&self) -> Result<()> {
        if self.restarts == 0 {
            return Err(SparseBpError::InvalidParam { name: "restarts", value: 0.0, expected: ">= 1" });
        }
        if !(self.step_scale.is_finite() && self.step_scale > 0.0) {
            return Err(SparseBpError::InvalidParam {
                name: "step_scale",
                value: self.step_scale,
                expected: "finite and > 0",
            });
        }
        Ok(())
    }

    /// The starting point of restart `r` for the clean batch `x` and the budget `b` (model
    /// units): `x` itself for `r = 0` with `clean_start`, otherwise a uniform point of the
    /// ball around every column (`l_inf`: uniform per entry; `l2`: uniform in the ball),
    /// clipped to `b.bounds`. Deterministic in `(seed, r, x)`.
    #[must_use]
    pub fn start(&self, x: &DMatrix<f64>, b: &Ifgsm, r: usize) -> DMatrix<f64> {
        if r == 0 && self.clean_start {
            return x.clone();
        }
        let stream = (r as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(self.seed ^ stream);
        let mut y = x.clone();
        match b.norm {
            AttackNorm::Linf => {
                for v in y.iter_mut() {
                    *v += rng.random_range(-1.0..=1.0) * b.eps;
                }
            }
            AttackNorm::L2 => {
                let m = x.nrows();
                for mut c in y.column_iter_mut() {
                    let mut dir: Vec<f64> = (0..m).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
                    let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
                    let radius = b.eps * rng.random::<f64>().powf(1.0 / m.max(1) as f64);
                    if n > 0.0 {
                        dir.iter_mut().for_each(|v| *v *= radius / n);
                        for (ci, d) in c.iter_mut().zip(&dir) {
                            *ci += d;
                        }
                    }
                }
            }
        }
        if let Some((lo, hi)) = b.bounds {
            y.apply(|v| *v = v.clamp(lo, hi));
        }
        y
    }

    /// Restart `r` alone: [`Pgd::start`] followed by `b.steps` projected steps of size
    /// `step_scale * b.eps / b.steps`. `b` is in model units.
    pub fn run_restart<C: Classifier + ?Sized>(
        &self,
        model: &C,
        x: &DMatrix<f64>,
        labels: &[usize],
        b: &Ifgsm,
        r: usize,
    ) -> Result<DMatrix<f64>> {
        self.check()?;
        check_attack_input(model, x, labels, b)?;
        if b.eps == 0.0 {
            return Ok(x.clone());
        }
        let y0 = self.start(x, b, r);
        iterate(model, x, y0, labels, self.step_scale * b.eps / b.steps as f64, b)
    }

    /// All restarts; per sample the worst result ([`worse`] order: misclassified first, then
    /// the larger attack objective). `b` is in model units.
    pub fn run<C: Classifier + ?Sized>(
        &self,
        model: &C,
        x: &DMatrix<f64>,
        labels: &[usize],
        b: &Ifgsm,
    ) -> Result<DMatrix<f64>> {
        self.check()?;
        check_attack_input(model, x, labels, b)?;
        let mut best = self.run_restart(model, x, labels, b, 0)?;
        if b.eps == 0.0 || self.restarts == 1 {
            return Ok(best);
        }
        let mut best_score = sample_scores(model, &best, labels)?;
        for r in 1..self.restarts {
            let y = self.run_restart(model, x, labels, b, r)?;
            let score = sample_scores(model, &y, labels)?;
            for j in 0..x.ncols() {
                if worse(score[j], best_score[j]) {
                    best.set_column(j, &y.column(j));
                    best_score[j] = score[j];
                }
            }
        }
        Ok(best)
    }
}

/// Per sample of an (adversarial) batch: (misclassified, attack objective).
pub fn sample_scores<C: Classifier + ?Sized>(
    model: &C,
    y: &DMatrix<f64>,
    labels: &[usize],
) -> Result<Vec<(bool, f64)>> {
    let logits = model.logits(y)?;
    let task = model.loss();
    let pred = task.predict(&logits);
    if labels.len() != pred.len() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (pred.len(), 1), got: (labels.len(), 1) });
    }
    (0..y.ncols())
        .map(|j| {
            let (obj, _) = task.attack_objective(&logits.columns(j, 1).into_owned(), &labels[j..=j])?;
            Ok((pred[j] != labels[j], obj))
        })
        .collect()
}

/// Whether score `a` is a strictly stronger attack result than `b`: misclassified beats
/// correctly classified, otherwise the larger attack objective wins.
#[must_use]
pub fn worse(a: (bool, f64), b: (bool, f64)) -> bool {
    match (a.0, b.0) {
        (true, false) => true,
        (false, true) => false,
        _ => a.1 > b.1,
    }
}

fn check_attack_input<C: Classifier + ?Sized>(model: &C, x: &DMatrix<f64>, labels: &[usize], b: &Ifgsm) -> Result<()> {
    b.check()?;
    if x.nrows() != model.n_inputs() {
        return Err(SparseBpError::ShapeMismatch {
            what: "attack input",
            expected: (model.n_inputs(), x.ncols()),
            got: x.shape(),
        });
    }
    if labels.len() != x.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (x.ncols(), 1), got: (labels.len(), 1) });
    }
    check_finite("attack input", x.as_slice())
}

/// The attack algorithm of a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// I-FGSM with `steps` steps of size `eps / steps`.
    Ifgsm {
        /// Number of steps `T`.
        steps: usize,
    },
    /// PGD with random restarts, `steps` steps each.
    Pgd {
        /// Number of steps `T` per restart.
        steps: usize,
        /// Restarts, step size, seed.
        pgd: Pgd,
    },
}

/// One labelled attack protocol: method, norm, units of `eps` and input space (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttackProtocol {
    /// The algorithm.
    pub method: Method,
    /// The budget norm.
    pub norm: AttackNorm,
    /// The units of `eps`.
    pub unit: EpsUnit,
    /// Standardisation and pixel box.
    pub space: InputSpace,
}

impl AttackProtocol {
    /// I-FGSM with `steps` steps.
    #[must_use]
    pub fn ifgsm(norm: AttackNorm, unit: EpsUnit, steps: usize, space: InputSpace) -> Self {
        Self { method: Method::Ifgsm { steps }, norm, unit, space }
    }

    /// PGD with random restarts, `steps` steps per restart.
    #[must_use]
    pub fn pgd(norm: AttackNorm, unit: EpsUnit, steps: usize, pgd: Pgd, space: InputSpace) -> Self {
        Self { method: Method::Pgd { steps, pgd }, norm, unit, space }
    }

    /// The column label in `results.json` (`{method}-{norm}-{unit}`, module table).
    #[must_use]
    pub fn label(&self) -> &'static str {
        let pgd = matches!(self.method, Method::Pgd { .. });
        match (pgd, self.norm, self.unit) {
            (false, AttackNorm::Linf, EpsUnit::Standardised) => "ifgsm-linf-std",
            (false, AttackNorm::Linf, EpsUnit::Pixel) => "ifgsm-linf-px",
            (false, AttackNorm::L2, EpsUnit::Standardised) => "ifgsm-l2-std",
            (false, AttackNorm::L2, EpsUnit::Pixel) => "ifgsm-l2-px",
            (true, AttackNorm::Linf, EpsUnit::Standardised) => "pgd-linf-std",
            (true, AttackNorm::Linf, EpsUnit::Pixel) => "pgd-linf-px",
            (true, AttackNorm::L2, EpsUnit::Standardised) => "pgd-l2-std",
            (true, AttackNorm::L2, EpsUnit::Pixel) => "pgd-l2-px",
        }
    }

    /// Validates the protocol.
    pub fn check(&self) -> Result<()> {
        self.space.check()?;
        let steps = match self.method {
            Method::Ifgsm { steps } => steps,
            Method::Pgd { steps, pgd } => {
                pgd.check()?;
                steps
            }
        };
        if steps == 0 {
            return Err(SparseBpError::InvalidParam { name: "steps", value: 0.0, expected: ">= 1" });
        }
        Ok(())
    }

    /// The radius of a budget `eps` (in this protocol's units) in the model's
    /// (standardised) input space: `eps`, or `eps / std` for pixel units.
    pub fn eps_model(&self, eps: f64) -> Result<f64> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(SparseBpError::InvalidParam { name: "eps", value: eps, expected: "finite and >= 0" });
        }
        self.space.check()?;
        Ok(match self.unit {
            EpsUnit::Standardised => eps,
            EpsUnit::Pixel => eps / self.space.standardisation.std,
        })
    }

    /// The budget in model units that [`AttackProtocol::run`] hands to the attack.
    pub fn budget(&self, eps: f64) -> Result<Ifgsm> {
        self.check()?;
        let steps = match self.method {
            Method::Ifgsm { steps } | Method::Pgd { steps, .. } => steps,
        };
        Ok(Ifgsm { eps: self.eps_model(eps)?, steps, norm: self.norm, bounds: self.space.model_box() })
    }

    /// Attacks the clean batch `x` (model units, inside the box) with true `labels` at the
    /// budget `eps` (this protocol's units); returns the adversarial batch in model units.
    pub fn run<C: Classifier + ?Sized>(
        &self,
        model: &C,
        x: &DMatrix<f64>,
        labels: &[usize],
        eps: f64,
    ) -> Result<DMatrix<f64>> {
        let b = self.budget(eps)?;
        check_attack_input(model, x, labels, &b)?;
        self.space.check_inside(x)?;
        match self.method {
            Method::Ifgsm { .. } => ifgsm(model, x, labels, &b),
            Method::Pgd { pgd, .. } => pgd.run(model, x, labels, &b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
    use nalgebra::DVector;
    use proptest::prelude::*;

    const MNIST: Standardisation = Standardisation { mean: 0.1307, std: 0.3081 };

    fn mnist_space() -> InputSpace {
        InputSpace::new(MNIST, Some((0.0, 1.0))).unwrap()
    }

    /// `logits = W x`: a model whose input gradient is `W^T dl`, nowhere zero for these `W`.
    struct Linear(DMatrix<f64>);

    impl Classifier for Linear {
        fn n_inputs(&self) -> usize {
            self.0.ncols()
        }
        fn logits(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
            Ok(&self.0 * x)
        }
        fn loss(&self) -> TaskLoss {
            TaskLoss::CrossEntropy
        }
        fn input_gradient(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<DMatrix<f64>> {
            let (_, dl) = TaskLoss::CrossEntropy.attack_objective(&self.logits(x)?, labels)?;
            Ok(self.0.tr_mul(&dl))
        }
    }

    /// The hand-made case of the issue: a perturbation of `eps` in standardised units
    /// changes a pixel by `eps * std`; in pixel units by `eps`; the box is respected.
    #[test]
    fn eps_in_standardised_units_moves_a_pixel_by_eps_times_std() {
        // class 0 scores -p0 - p1, class 1 scores p0 + p1: for label 0 the loss rises
        // with every pixel, so every sign step is +1 on both pixels
        let model = Linear(DMatrix::from_row_slice(2, 2, &[-1.0, -1.0, 1.0, 1.0]));
        let pixels = DMatrix::from_column_slice(2, 1, &[0.5, 0.99]);
        let x = MNIST.standardise(&pixels);
        let space = mnist_space();
        let std_attack = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 3, space);
        let adv = std_attack.run(&model, &x, &[0], 0.15).unwrap();
        let moved = MNIST.to_pixels(&adv) - &pixels;
        // pixel 0: 0.5 -> 0.5 + 0.15 * 0.3081 = 0.546215; pixel 1: clipped at 1.0
        assert!((moved[0] - 0.15 * 0.3081).abs() < 1e-12, "{}", moved[0]);
        assert!((moved[1] - 0.01).abs() < 1e-12, "{}", moved[1]);
        assert!((adv[0] - x[0] - 0.15).abs() < 1e-12, "standardised input moves by eps itself");
        let px_attack = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Pixel, 3, space);
        let adv = px_attack.run(&model, &x, &[0], 0.15).unwrap();
        let moved = MNIST.to_pixels(&adv) - &pixels;
        assert!((moved[0] - 0.15).abs() < 1e-12, "{}", moved[0]);
        assert!((moved[1] - 0.01).abs() < 1e-12);
        // l2 in standardised units: both pixels would move equally; radius 0.15 -> each
        // standardised coordinate by 0.15/sqrt(2), before the box; pixel 1 hits the box
        let l2 = AttackProtocol::ifgsm(AttackNorm::L2, EpsUnit::Standardised, 1, space);
        let adv = l2.run(&model, &x, &[0], 0.15).unwrap();
        let moved = MNIST.to_pixels(&adv) - &pixels;
        assert!((moved[0] - 0.15 / 2f64.sqrt() * 0.3081).abs() < 1e-12, "{}", moved[0]);
        assert!((moved[1] - 0.01).abs() < 1e-12);
        assert_eq!(
            [std_attack.label(), px_attack.label(), l2.label()],
            ["ifgsm-linf-std", "ifgsm-linf-px", "ifgsm-l2-std"]
        );
        let (lo, hi) = space.model_box().unwrap();
        assert!((lo + 0.1307 / 0.3081).abs() < 1e-15 && (hi - 0.8693 / 0.3081).abs() < 1e-15);
    }

    #[test]
    fn typed_errors() {
        assert!(Standardisation::new(0.0, 0.0).is_err());
        assert!(Standardisation::new(f64::NAN, 1.0).is_err());
        assert!(InputSpace::new(MNIST, Some((1.0, 0.0))).is_err());
        let model = Linear(DMatrix::identity(2, 2));
        let space = mnist_space();
        let p = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 3, space);
        // a clean input above the box (pixel 1.5)
        let x = MNIST.standardise(&DMatrix::from_column_slice(2, 1, &[0.5, 1.5]));
        assert!(matches!(p.run(&model, &x, &[0], 0.1), Err(SparseBpError::OutsideBox { index: 1, .. })));
        let x = MNIST.standardise(&DMatrix::from_column_slice(2, 1, &[0.5, 0.5]));
        assert!(p.run(&model, &x, &[0], -0.1).is_err());
        assert!(p.run(&model, &x, &[0, 1], 0.1).is_err());
        let bad = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 0, space);
        assert!(bad.run(&model, &x, &[0], 0.1).is_err());
        let bad =
            AttackProtocol::pgd(AttackNorm::Linf, EpsUnit::Pixel, 3, Pgd { restarts: 0, ..Pgd::default() }, space);
        assert!(bad.run(&model, &x, &[0], 0.1).is_err());
        assert_eq!(bad.label(), "pgd-linf-px");
    }

    fn random_model(kind: CodeKind, seed: u64) -> PursuitClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = DMatrix::from_fn(12, 16, |_, _| rng.sample::<f64, _>(StandardNormal));
        for mut c in d.column_iter_mut() {
            let n = c.norm();
            c /= n;
        }
        let nf = if kind == CodeKind::Pgbp { 4 } else { 16 };
        let w = DMatrix::from_fn(3, nf, |_, _| rng.sample::<f64, _>(StandardNormal));
        let clf = LinearClassifier { w, b: DVector::zeros(3) };
        PursuitClassifier::new(kind, d, 4, 0.3, clf, TaskLoss::CrossEntropy).unwrap()
    }

    fn random_pixels(seed: u64, n: usize) -> DMatrix<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        // some pixels exactly at the box edges, like MNIST's 0 background and 1 strokes
        DMatrix::from_fn(12, n, |_, _| match rng.random_range(0..4) {
            0 => 0.0,
            1 => 1.0,
            _ => rng.random_range(0.0..1.0),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// Every protocol keeps the result inside the budget (in its own units, measured
        /// on raw pixels) and inside the pixel box.
        #[test]
        fn budget_and_box_are_respected(
            seed in 0u64..10_000,
            kind in 0usize..3,
            eps in 0.0f64..1.5,
            linf in any::<bool>(),
            pixel_units in any::<bool>(),
            pgd in any::<bool>(),
            steps in 1usize..5,
        ) {
            let kind = [CodeKind::Bp, CodeKind::Gbp, CodeKind::Pgbp][kind];
            let model = random_model(kind, seed);
            let pixels = random_pixels(seed + 1, 3);
            let space = mnist_space();
            let x = MNIST.standardise(&pixels);
            let labels = model.predict(&x).unwrap();
            let norm = if linf { AttackNorm::Linf } else { AttackNorm::L2 };
            let unit = if pixel_units { EpsUnit::Pixel } else { EpsUnit::Standardised };
            let p = if pgd {
                AttackProtocol::pgd(norm, unit, steps, Pgd { restarts: 3, seed, ..Pgd::default() }, space)
            } else {
                AttackProtocol::ifgsm(norm, unit, steps, space)
            };
            let adv = p.run(&model, &x, &labels, eps).unwrap();
            let adv_px = MNIST.to_pixels(&adv);
            prop_assert!(adv_px.iter().all(|v| (-1e-12..=1.0 + 1e-12).contains(v)), "outside the pixel box");
            // the budget in pixels: eps (pixel units) or eps * std (standardised units)
            let px_budget = if pixel_units { eps } else { eps * MNIST.std };
            for j in 0..3 {
                let d = adv_px.column(j) - pixels.column(j);
                let size = if linf { d.amax() } else { d.norm() };
                prop_assert!(size <= px_budget * (1.0 + 1e-9) + 1e-12, "{}: {size} > {px_budget}", p.label());
                let dm = adv.column(j) - x.column(j);
                let size_m = if linf { dm.amax() } else { dm.norm() };
                prop_assert!(size_m <= p.eps_model(eps).unwrap() * (1.0 + 1e-12) + 1e-12);
            }
        }
    }

    /// Gradient masking, by hand: `D = I`, lasso weight 1, so the code is `soft(x, 1)` and
    /// is zero (with zero input gradient) for `|x_i| < 1`. Class 1 scores `z_0 - 0.1`,
    /// class 0 scores 0. At `x = (0.5, 0)` with label 0, I-FGSM sees a zero gradient and
    /// never moves, but an `l_inf` budget of 0.7 reaches `x_0 = 1.2`, `z_0 = 0.2`, class 1.
    /// A random start beyond `x_0 = 1` (probability 1/7 per restart) finds it.
    #[test]
    fn pgd_with_random_restarts_breaks_a_masked_gradient_that_stops_ifgsm() {
        let clf = LinearClassifier {
            w: DMatrix::from_row_slice(2, 2, &[0.0, 0.0, 1.0, 0.0]),
            b: DVector::from_vec(vec![0.0, -0.1]),
        };
        let model =
            PursuitClassifier::new(CodeKind::Bp, DMatrix::identity(2, 2), 1, 1.0, clf, TaskLoss::CrossEntropy).unwrap();
        let x = DMatrix::from_column_slice(2, 1, &[0.5, 0.0]);
        assert_eq!(model.predict(&x).unwrap(), vec![0]);
        let space = InputSpace::new(Standardisation::IDENTITY, None).unwrap();
        let ifgsm = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 10, space);
        let adv = ifgsm.run(&model, &x, &[0], 0.7).unwrap();
        assert_eq!(adv, x, "zero gradient: I-FGSM does not move");
        let pgd = AttackProtocol::pgd(
            AttackNorm::Linf,
            EpsUnit::Standardised,
            10,
            Pgd { restarts: 40, seed: 3, ..Pgd::default() },
            space,
        );
        let adv = pgd.run(&model, &x, &[0], 0.7).unwrap();
        assert_eq!(model.predict(&adv).unwrap(), vec![1], "{adv}");
        assert!((adv[0] - 1.2).abs() < 1e-12, "the gradient pushes x_0 to the ball's edge: {adv}");
        assert!((&adv - &x).amax() <= 0.7 + 1e-12);
    }

    /// PGD keeps, per sample, the worst of its restarts; with `clean_start` and
    /// `step_scale = 1` restart 0 is I-FGSM, so PGD is never weaker than I-FGSM.
    #[test]
    fn pgd_returns_the_worst_restart_and_is_never_weaker_than_ifgsm() {
        for (kind, seed) in [(CodeKind::Bp, 11u64), (CodeKind::Gbp, 12), (CodeKind::Pgbp, 13)] {
            let model = random_model(kind, seed);
            let mut rng = StdRng::seed_from_u64(seed + 50);
            let x = DMatrix::from_fn(12, 16, |_, _| rng.sample::<f64, _>(StandardNormal));
            let labels = model.predict(&x).unwrap();
            let b = Ifgsm { eps: 0.4, steps: 4, norm: AttackNorm::Linf, bounds: None };
            let pgd = Pgd { restarts: 4, step_scale: 1.0, clean_start: true, seed };
            assert_eq!(pgd.run_restart(&model, &x, &labels, &b, 0).unwrap(), ifgsm(&model, &x, &labels, &b).unwrap());
            let best = pgd.run(&model, &x, &labels, &b).unwrap();
            assert_eq!(best, pgd.run(&model, &x, &labels, &b).unwrap(), "seeded: reproducible");
            let best_scores = sample_scores(&model, &best, &labels).unwrap();
            let runs: Vec<DMatrix<f64>> =
                (0..4).map(|r| pgd.run_restart(&model, &x, &labels, &b, r).unwrap()).collect();
            let mut any_random_restart_won = false;
            for (r, y) in runs.iter().enumerate() {
                let s = sample_scores(&model, y, &labels).unwrap();
                for j in 0..16 {
                    // (the solver's result for a column depends on its batch only at the
                    // level of the solver tolerance, so objectives compare with a tolerance)
                    let (a, bs) = (s[j], best_scores[j]);
                    let tol = 1e-9 * (1.0 + bs.1.abs());
                    assert!(
                        (!a.0 || bs.0) && (a.0 != bs.0 || a.1 <= bs.1 + tol),
                        "{kind:?} restart {r} sample {j}: {a:?} beats {bs:?}"
                    );
                    if r > 0 && best.column(j) == y.column(j) && y.column(j) != runs[0].column(j) {
                        any_random_restart_won = true;
                    }
                }
            }
            for j in 0..16 {
                assert!(
                    runs.iter().any(|y| y.column(j) == best.column(j)),
                    "{kind:?} sample {j}: not one of the restarts"
                );
            }
            assert!(any_random_restart_won, "{kind:?}: the test should exercise a random restart winning");
            let adv_ifgsm = ifgsm(&model, &x, &labels, &b).unwrap();
            let acc_ifgsm = model.accuracy(&adv_ifgsm, &labels).unwrap();
            let acc_pgd = model.accuracy(&best, &labels).unwrap();
            assert!(acc_pgd <= acc_ifgsm, "{kind:?}: PGD {acc_pgd} vs I-FGSM {acc_ifgsm}");
        }
    }
}
