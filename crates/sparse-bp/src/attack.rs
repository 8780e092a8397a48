//! Iterative FGSM attacks (Kurakin et al. 2017) and a per-sample robustness certificate
//! for the pursuit classifiers (spec section 4).
//!
//! **Attack.** `Y_0 = X`; `T` steps of size `a = eps / T`:
//! `l_inf`: `Y_t = clip_{B_inf(X, eps)}(Y_{t-1} + a sign(grad))`;
//! `l2`: `Y_t = proj_{B_2(X, eps)}(Y_{t-1} + a grad / ||grad||_2)`, per sample; optional
//! box clipping (valid pixel range) after the projection (this keeps the iterate in the
//! ball because the clean input is inside the box).
//!
//! [`protocol`] wraps these in labelled protocols (`ifgsm-linf-std`, `ifgsm-linf-px`,
//! `ifgsm-l2-std`, `pgd-linf-std`, ...) that carry the input standardisation and the pixel
//! box, so that `eps` is given in standardised or in pixel units explicitly, and adds PGD
//! with random restarts.
//!
//! **Certificate** ([`certified_radius_l2`]). For `P(z) = 1/2||x - D z||^2 + sum gamma_g l_g(z_g)`
//! the dual optimum is `theta(x) = proj_C(x)` onto the convex set
//! `C = {theta : l_g^*(D_g^T theta) <= gamma_g for all g}` and `D z(x) = x - theta(x)`.
//! Both `proj_C` and `I - proj_C` are firmly non-expansive, so for a perturbation `e`:
//! 1. `l_g^*(D_g^T theta(x+e)) <= l_g^*(D_g^T theta(x)) + ||D_g||_2 ||e||_2`: a group with slack
//!    `s_g = gamma_g - l_g^*(D_g^T theta(x)) > 0` stays **inactive** while `||e||_2 < s_g / ||D_g||_2`
//!    (strict dual feasibility forces `z_g = 0`);
//! 2. while every certified group stays inactive, both codes live on the remaining atoms
//!    `S_0`; if `D_{S_0}` has full column rank with smallest singular value `sigma`,
//!    `||z(x+e) - z(x)||_2 <= ||D (z(x+e) - z(x))||_2 / sigma <= ||e||_2 / sigma`;
//! 3. the classifier input moves by at most as much (group norms are 1-Lipschitz), so a
//!    linear classifier keeps its class while `||e||_2 < sigma * min_k (f_y - f_k) / ||w_y - w_k||_2`.
//!
//! The certified radius is the minimum of (1) over certified groups and (3); it is 0 for
//! a misclassified sample. The solver's duality gap bounds `||theta_approx - theta^*||_2 <= sqrt(2 gap)`
//! (the dual is 1-strongly concave), which we subtract from the slacks; the classifier
//! margin is taken at the computed code (exact up to the solver tolerance). An `l_inf`
//! budget `eps` is certified when `sqrt(m) eps` is below the `l2` radius. This is our
//! own certificate (not the paper's theorem, whose group constants are in its supplement).
//!
//! ```
//! use nalgebra::DMatrix;
//! use sparse_bp::attack::{AttackNorm, Ifgsm, ifgsm};
//! use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
//! let clf = LinearClassifier { w: DMatrix::from_row_slice(1, 2, &[1.0, -1.0]), b: nalgebra::DVector::zeros(1) };
//! let m = PursuitClassifier::new(CodeKind::Bp, DMatrix::identity(2, 2), 1, 0.1, clf, TaskLoss::Hinge).unwrap();
//! let x = DMatrix::from_column_slice(2, 1, &[1.0, 0.5]);
//! let adv = ifgsm(&m, &x, &[1], &Ifgsm { eps: 0.3, steps: 3, norm: AttackNorm::Linf, bounds: None }).unwrap();
//! assert!((&adv - &x).amax() <= 0.3 + 1e-12);
//! assert!(m.predict(&adv).unwrap()[0] == 0); // margin 0.5 broken by 0.3 on each coordinate
//! ```

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError};
use crate::groups::GroupNorm;
use crate::models::{Classifier, PursuitClassifier, TaskLoss, check_batch};

pub mod protocol;

/// The attack budget's norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttackNorm {
    /// `||Y - X||_inf <= eps`, sign steps.
    Linf,
    /// `||Y - X||_2 <= eps` per sample, normalised-gradient steps.
    L2,
}

/// I-FGSM parameters.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `eps` | budget | finite, `>= 0` |
/// | `steps` | `T` (step size `eps/T`) | `>= 1` |
/// | `norm` | budget norm | any |
/// | `bounds` | optional box `[lo, hi]` every entry is clipped to | `lo <= hi` |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ifgsm {
    /// Budget.
    pub eps: f64,
    /// Number of steps `T`.
    pub steps: usize,
    /// Budget norm.
    pub norm: AttackNorm,
    /// Optional valid input range.
    pub bounds: Option<(f64, f64)>,
}

impl Ifgsm {
    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        if !self.eps.is_finite() || self.eps < 0.0 {
            return Err(SparseBpError::InvalidParam { name: "eps", value: self.eps, expected: "finite and >= 0" });
        }
        if self.steps == 0 {
            return Err(SparseBpError::InvalidParam { name: "steps", value: 0.0, expected: ">= 1" });
        }
        if let Some((lo, hi)) = self.bounds
            && (lo > hi || lo.is_nan() || hi.is_nan())
        {
            return Err(SparseBpError::InvalidParam { name: "bounds", value: lo, expected: "lo <= hi" });
        }
        Ok(())
    }
}

/// Runs I-FGSM against `model` (white-box: its own input gradient) from the clean batch
/// `x` with true `labels`; returns the adversarial batch.
pub fn ifgsm<C: Classifier + ?Sized>(model: &C, x: &DMatrix<f64>, labels: &[usize], p: &Ifgsm) -> Result<DMatrix<f64>> {
    p.check()?;
    if x.nrows() != model.n_inputs() {
        return Err(SparseBpError::ShapeMismatch {
            what: "attack input",
            expected: (model.n_inputs(), x.ncols()),
            got: x.shape(),
        });
    }
    crate::error::check_finite("attack input", x.as_slice())?;
    if p.eps == 0.0 {
        return Ok(x.clone());
    }
    iterate(model, x, x.clone(), labels, p.eps / p.steps as f64, p)
}

/// The projected iteration shared by [`ifgsm`] and [`protocol::Pgd`]: from `y`, `p.steps`
/// steps of size `step` (sign steps for `l_inf`, normalised-gradient steps for `l2`), each
/// projected onto the `p.eps`-ball around `x` and then clipped to `p.bounds`.
pub(crate) fn iterate<C: Classifier + ?Sized>(
    model: &C,
    x: &DMatrix<f64>,
    mut y: DMatrix<f64>,
    labels: &[usize],
    step: f64,
    p: &Ifgsm,
) -> Result<DMatrix<f64>> {
    let a = step;
    // each step's solve starts from the previous step's codes (the input moved by one step)
    let mut warm = None;
    for _ in 0..p.steps {
        let g = model.input_gradient_warm(&y, labels, &mut warm)?;
        match p.norm {
            AttackNorm::Linf => {
                for i in 0..y.len() {
                    let s = if g[i] > 0.0 {
                        1.0
                    } else if g[i] < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    y[i] = (y[i] + a * s).clamp(x[i] - p.eps, x[i] + p.eps);
                }
            }
            AttackNorm::L2 => {
                for j in 0..y.ncols() {
                    let gn = g.column(j).norm();
                    if gn > 0.0 {
                        let step = g.column(j) * (a / gn);
                        let mut c = y.column_mut(j);
                        c += step;
                    }
                    let delta = y.column(j) - x.column(j);
                    let dn = delta.norm();
                    if dn > p.eps {
                        let proj = x.column(j) + delta * (p.eps / dn);
                        y.column_mut(j).copy_from(&proj);
                    }
                }
            }
        }
        if let Some((lo, hi)) = p.bounds {
            y.apply(|v| *v = v.clamp(lo, hi));
        }
    }
    Ok(y)
}

/// Certified `l2` radius of every sample (0 if misclassified); see the module docs.
pub fn certified_radius_l2(model: &PursuitClassifier, x: &DMatrix<f64>, labels: &[usize]) -> Result<Vec<f64>> {
    check_batch(model, x)?;
    if labels.len() != x.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (x.ncols(), 1), got: (labels.len(), 1) });
    }
    let solver = model.solver();
    let d = solver.dictionary();
    let groups = solver.groups().groups();
    let op_norms: Vec<f64> = groups
        .iter()
        .map(|g| {
            let sub = solver.gram_block(&g.atoms);
            sub.symmetric_eigenvalues().max().max(0.0).sqrt()
        })
        .collect();
    let sol = solver.solve(x)?;
    let feats = model.features_from_codes(&sol.codes);
    let logits = model.classifier.logits(&feats)?;
    let preds = model.task.predict(&logits);
    let w = &model.classifier.w;
    let out: Vec<f64> = (0..x.ncols())
        .into_par_iter()
        .map(|j| {
            if preds[j] != labels[j] {
                return 0.0;
            }
            let xj = x.column(j);
            let z = sol.codes.column(j);
            let delta = (sol.gaps[j].max(0.0)).sqrt() * xj.norm();
            let r: DVector<f64> = xj - d * z;
            let corr = d.tr_mul(&r);
            let ratio = groups
                .iter()
                .map(|g| {
                    let v: Vec<f64> = g.atoms.iter().map(|&a| corr[a]).collect();
                    g.norm.dual(&v, false) / g.weight
                })
                .fold(0.0, f64::max);
            let scale = if ratio > 1.0 { 1.0 / ratio } else { 1.0 };
            let mut r_inactive = f64::INFINITY;
            let mut s0 = Vec::new();
            for (gi, g) in groups.iter().enumerate() {
                let active = g.atoms.iter().any(|&a| z[a] != 0.0);
                let v: Vec<f64> = g.atoms.iter().map(|&a| corr[a] * scale).collect();
                let dual = match g.norm {
                    GroupNorm::L1 | GroupNorm::L2 => g.norm.dual(&v, false),
                    _ => f64::INFINITY,
                };
                let slack = g.weight - dual - op_norms[gi] * delta;
                if active || slack <= 0.0 || op_norms[gi] == 0.0 {
                    s0.extend_from_slice(&g.atoms);
                } else {
                    r_inactive = r_inactive.min(slack / op_norms[gi]);
                }
            }
            let sigma = if s0.is_empty() {
                f64::INFINITY
            } else if s0.len() > d.nrows() {
                0.0
            } else {
                let sub = solver.gram_block(&s0);
                sub.symmetric_eigenvalues().min().max(0.0).sqrt()
            };
            let f = logits.column(j);
            let cls_radius = match model.task {
                TaskLoss::Hinge => {
                    let wn = w.row(0).norm();
                    if wn == 0.0 { f64::INFINITY } else { f[0].abs() / wn }
                }
                TaskLoss::CrossEntropy => {
                    let y = labels[j];
                    (0..f.len())
                        .filter(|&k| k != y)
                        .map(|k| {
                            let wn = (w.row(y) - w.row(k)).norm();
                            if wn == 0.0 { f64::INFINITY } else { (f[y] - f[k]) / wn }
                        })
                        .fold(f64::INFINITY, f64::min)
                }
            };
            let code_radius = if sigma.is_infinite() { f64::INFINITY } else { cls_radius * sigma };
            r_inactive.min(code_radius).max(0.0)
        })
        .collect();
    Ok(out)
}

/// Fraction of samples certified at each `l2` budget (`radius > eps`).
#[must_use]
pub fn certified_accuracy(radii: &[f64], eps: f64) -> f64 {
    radii.iter().filter(|&&r| r > eps).count() as f64 / radii.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CodeKind, LinearClassifier};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;

    fn model(kind: CodeKind, seed: u64) -> PursuitClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = DMatrix::from_fn(12, 16, |_, _| rng.sample::<f64, _>(StandardNormal));
        for mut c in d.column_iter_mut() {
            let n = c.norm();
            c /= n;
        }
        let nf = if kind == CodeKind::Pgbp { 4 } else { 16 };
        let w = DMatrix::from_fn(3, nf, |_, _| rng.sample::<f64, _>(StandardNormal));
        let clf = LinearClassifier { w, b: DVector::zeros(3) };
        PursuitClassifier::new(kind, d, 4, 0.4, clf, TaskLoss::CrossEntropy).unwrap()
    }

    #[test]
    fn attacks_stay_in_the_ball_and_box() {
        let m = model(CodeKind::Pgbp, 1);
        let mut rng = StdRng::seed_from_u64(2);
        let x = DMatrix::from_fn(12, 5, |_, _| rng.random_range(-1.0..1.0));
        let labels = m.predict(&x).unwrap();
        for norm in [AttackNorm::Linf, AttackNorm::L2] {
            let p = Ifgsm { eps: 0.3, steps: 4, norm, bounds: Some((-1.0, 1.0)) };
            let y = ifgsm(&m, &x, &labels, &p).unwrap();
            assert!(y.iter().all(|v| (-1.0..=1.0).contains(v)));
            for j in 0..5 {
                let d = y.column(j) - x.column(j);
                let size = if norm == AttackNorm::Linf { d.amax() } else { d.norm() };
                assert!(size <= 0.3 + 1e-12, "{norm:?}: {size}");
            }
        }
        assert!(ifgsm(&m, &x, &labels, &Ifgsm { eps: -1.0, steps: 1, norm: AttackNorm::L2, bounds: None }).is_err());
    }

    #[test]
    fn attack_lowers_accuracy_on_bp() {
        let m = model(CodeKind::Bp, 3);
        let mut rng = StdRng::seed_from_u64(4);
        let x = DMatrix::from_fn(12, 20, |_, _| rng.sample::<f64, _>(StandardNormal));
        let labels = m.predict(&x).unwrap();
        let y = ifgsm(&m, &x, &labels, &Ifgsm { eps: 1.0, steps: 5, norm: AttackNorm::L2, bounds: None }).unwrap();
        assert!(m.accuracy(&y, &labels).unwrap() < 1.0);
    }

    /// The certificate is a witness-checked guarantee: attacks (and random perturbations)
    /// inside the certified radius never change the class.
    #[test]
    fn certified_samples_survive_attacks_inside_the_radius() {
        for (kind, seed) in [(CodeKind::Bp, 5), (CodeKind::Gbp, 6), (CodeKind::Pgbp, 7)] {
            let m = model(kind, seed);
            let mut rng = StdRng::seed_from_u64(seed + 100);
            let x = DMatrix::from_fn(12, 20, |_, _| rng.sample::<f64, _>(StandardNormal));
            let labels = m.predict(&x).unwrap();
            let radii = certified_radius_l2(&m, &x, &labels).unwrap();
            assert!(radii.iter().any(|&r| r > 0.0), "{kind:?}: nothing certified");
            for j in 0..20 {
                if radii[j] <= 1e-9 {
                    continue;
                }
                let xj = x.columns(j, 1).into_owned();
                let eps = 0.999 * radii[j];
                let p = Ifgsm { eps, steps: 10, norm: AttackNorm::L2, bounds: None };
                let y = ifgsm(&m, &xj, &labels[j..=j], &p).unwrap();
                assert_eq!(m.predict(&y).unwrap()[0], labels[j], "{kind:?} sample {j} radius {}", radii[j]);
                for _ in 0..5 {
                    let mut e = DVector::from_fn(12, |_, _| rng.sample::<f64, _>(StandardNormal));
                    e *= eps / e.norm();
                    let yr = &xj + DMatrix::from_column_slice(12, 1, e.as_slice());
                    assert_eq!(m.predict(&yr).unwrap()[0], labels[j]);
                }
            }
        }
    }
}
