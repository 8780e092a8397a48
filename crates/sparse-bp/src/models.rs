//! Robust classifiers of spec section 4: a sparse-coding layer followed by a linear
//! classifier (BP, GBP, pooled GBP), and the feedforward approximators of the pooled
//! code classified by the PGBP classifier.
//!
//! | model | code | classifier input |
//! | --- | --- | --- |
//! | [`CodeKind::Bp`] | `l1` (lasso) | full code (`M`) |
//! | [`CodeKind::Gbp`] | group `l2` | full code (`M`) |
//! | [`CodeKind::Pgbp`] | group `l2` | per-group `l2` norms (`K`) |
//! | [`Approximator`] | network output (trained to predict the PGBP norms) | `K` |
//! | [`deep::MultiLayerClassifier`] | 3-layer codes: layered BP or joint Deep Pursuit (`l1` or group `l2`) | last layer's code or group norms |
//!
//! Both implement [`Classifier`]: logits, predictions, and the gradient of the task loss
//! with respect to the **input** (for attacks); the pursuit models differentiate through
//! the code with [`crate::implicit::vjp`].
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use sparse_bp::models::{CodeKind, Classifier, LinearClassifier, PursuitClassifier, TaskLoss};
//! let d = DMatrix::<f64>::identity(4, 4);
//! let clf = LinearClassifier::zeros(2, 2);
//! let m = PursuitClassifier::new(CodeKind::Pgbp, d, 2, 0.1, clf, TaskLoss::CrossEntropy).unwrap();
//! let x = DMatrix::from_column_slice(4, 1, &[1.0, 0.0, 0.0, 0.5]);
//! assert_eq!(m.features(&x).unwrap().shape(), (2, 1));
//! assert_eq!(m.predict(&x).unwrap().len(), 1);
//! ```

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError, check_finite};
use crate::groups::{GroupNorm, GroupSpec};
use crate::nn::Network;
use crate::solver::{Solver, SolverParams};

pub mod deep;

/// The task loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskLoss {
    /// Binary hinge `max(0, 1 - y s)` on one output `s`, `y = +1` for label 1 and `-1` for label 0.
    Hinge,
    /// Softmax cross-entropy over `K >= 2` outputs.
    CrossEntropy,
}

impl TaskLoss {
    /// Mean loss over the batch and its gradient with respect to the logits (`k x n`).
    pub fn value_and_grad(&self, logits: &DMatrix<f64>, labels: &[usize]) -> Result<(f64, DMatrix<f64>)> {
        check_labels(labels, logits.ncols(), self.n_classes(logits.nrows()))?;
        let n = labels.len().max(1) as f64;
        let mut g = DMatrix::zeros(logits.nrows(), logits.ncols());
        let mut total = 0.0;
        match self {
            TaskLoss::Hinge => {
                for (j, &l) in labels.iter().enumerate() {
                    let y = if l == 1 { 1.0 } else { -1.0 };
                    let m = 1.0 - y * logits[(0, j)];
                    if m > 0.0 {
                        total += m;
                        g[(0, j)] = -y / n;
                    }
                }
            }
            TaskLoss::CrossEntropy => {
                for (j, &l) in labels.iter().enumerate() {
                    let c = logits.column(j);
                    let mx = c.max();
                    let z: f64 = c.iter().map(|v| (v - mx).exp()).sum();
                    total += -(c[l] - mx - z.ln());
                    for k in 0..c.len() {
                        g[(k, j)] = ((c[k] - mx).exp() / z - if k == l { 1.0 } else { 0.0 }) / n;
                    }
                }
            }
        }
        Ok((total / n, g))
    }

    /// The objective an attack ascends, summed over the batch, and its gradient with
    /// respect to the logits: the cross-entropy itself, or for the hinge task the margin
    /// loss `-y s` (the hinge without its flat part, so that samples beyond the margin
    /// still have a gradient).
    pub fn attack_objective(&self, logits: &DMatrix<f64>, labels: &[usize]) -> Result<(f64, DMatrix<f64>)> {
        match self {
            TaskLoss::CrossEntropy => {
                let (v, g) = self.value_and_grad(logits, labels)?;
                let n = labels.len() as f64;
                Ok((v * n, g * n))
            }
            TaskLoss::Hinge => {
                check_labels(labels, logits.ncols(), 2)?;
                let mut g = DMatrix::zeros(logits.nrows(), logits.ncols());
                let mut total = 0.0;
                for (j, &l) in labels.iter().enumerate() {
                    let y = if l == 1 { 1.0 } else { -1.0 };
                    total -= y * logits[(0, j)];
                    g[(0, j)] = -y;
                }
                Ok((total, g))
            }
        }
    }

    /// Predicted classes from logits.
    #[must_use]
    pub fn predict(&self, logits: &DMatrix<f64>) -> Vec<usize> {
        match self {
            TaskLoss::Hinge => logits.row(0).iter().map(|&s| usize::from(s > 0.0)).collect(),
            TaskLoss::CrossEntropy => logits.column_iter().map(|c| c.argmax().0).collect(),
        }
    }

    /// Number of classes for `k` outputs.
    #[must_use]
    pub fn n_classes(&self, k: usize) -> usize {
        match self {
            TaskLoss::Hinge => 2,
            TaskLoss::CrossEntropy => k,
        }
    }
}

fn check_labels(labels: &[usize], n: usize, n_classes: usize) -> Result<()> {
    if labels.len() != n {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (n, 1), got: (labels.len(), 1) });
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        return Err(SparseBpError::LabelOutOfRange { index, label, n_classes });
    }
    Ok(())
}

/// `logits = W f + b` on a feature matrix (`features x batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearClassifier {
    /// Weights, `outputs x features`.
    pub w: DMatrix<f64>,
    /// Bias, `outputs`.
    pub b: DVector<f64>,
}

impl LinearClassifier {
    /// All-zero classifier.
    #[must_use]
    pub fn zeros(outputs: usize, features: usize) -> Self {
        Self { w: DMatrix::zeros(outputs, features), b: DVector::zeros(outputs) }
    }
    /// Logits of a feature batch.
    pub fn logits(&self, f: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        if f.nrows() != self.w.ncols() {
            return Err(SparseBpError::ShapeMismatch {
                what: "classifier features",
                expected: (self.w.ncols(), f.ncols()),
                got: f.shape(),
            });
        }
        let mut y = &self.w * f;
        for mut c in y.column_iter_mut() {
            c += &self.b;
        }
        Ok(y)
    }
}

/// Anything the attacks and the experiments can evaluate.
pub trait Classifier: Sync {
    /// Input length.
    fn n_inputs(&self) -> usize;
    /// Logits (`outputs x batch`) of an input batch (`n_inputs x batch`).
    fn logits(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>>;
    /// The task loss.
    fn loss(&self) -> TaskLoss;
    /// Gradient of the summed attack objective ([`TaskLoss::attack_objective`]) with
    /// respect to each input column.
    fn input_gradient(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<DMatrix<f64>>;
    /// [`Classifier::input_gradient`] for an iterative attack, whose inputs move little from
    /// one call to the next: `warm` carries the model's sparse codes of the previous call
    /// (`None` on the first) and they warm-start this call's solve, which meets the same
    /// solver tolerance as a cold one; the codes of `x` are left in `warm`. The default
    /// ignores `warm`.
    fn input_gradient_warm(&self, x: &DMatrix<f64>, labels: &[usize], warm: &mut WarmCodes) -> Result<DMatrix<f64>> {
        let _ = warm;
        self.input_gradient(x, labels)
    }
    /// Predicted classes.
    fn predict(&self, x: &DMatrix<f64>) -> Result<Vec<usize>> {
        Ok(self.loss().predict(&self.logits(x)?))
    }
    /// Fraction of correct predictions.
    fn accuracy(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<f64> {
        let p = self.predict(x)?;
        if p.len() != labels.len() {
            return Err(SparseBpError::ShapeMismatch {
                what: "labels",
                expected: (p.len(), 1),
                got: (labels.len(), 1),
            });
        }
        Ok(p.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / p.len().max(1) as f64)
    }
}

/// The sparse codes an iterative attack carries from one step to the next
/// ([`Classifier::input_gradient_warm`]); `None` before the first step.
pub type WarmCodes = Option<DMatrix<f64>>;

/// Which sparse code and which classifier input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeKind {
    /// `l1` code, classifier on the full code.
    Bp,
    /// Group-`l2` code, classifier on the full code.
    Gbp,
    /// Group-`l2` code, classifier on the group norms.
    Pgbp,
}

/// Sparse coding (by [`Solver`]) followed by a [`LinearClassifier`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PursuitClassifier {
    /// Code and classifier input.
    pub kind: CodeKind,
    /// Group size (contiguous blocks of atoms; 1 for BP).
    pub group_size: usize,
    /// Penalty weight (`lambda` for BP, `gamma` per group for GBP/PGBP).
    pub lambda: f64,
    /// The classifier.
    pub classifier: LinearClassifier,
    /// The task loss.
    pub task: TaskLoss,
    solver: Solver,
}

/// Solver settings used by [`PursuitClassifier`] (FISTA, relative duality gap `1e-7`).
#[must_use]
pub fn default_solver_params() -> SolverParams {
    SolverParams { tol: 1e-7, max_iter: 5000, ..SolverParams::default() }
}

impl PursuitClassifier {
    /// Build from a dictionary `D` (`m x M`), group size (ignored for BP), penalty and
    /// classifier. Errors if `M` is not a multiple of the group size or the classifier
    /// does not take `M` (BP/GBP) or `M / group_size` (PGBP) features.
    pub fn new(
        kind: CodeKind,
        d: DMatrix<f64>,
        group_size: usize,
        lambda: f64,
        classifier: LinearClassifier,
        task: TaskLoss,
    ) -> Result<Self> {
        let gs = if kind == CodeKind::Bp { 1 } else { group_size };
        if gs == 0 || !d.ncols().is_multiple_of(gs) {
            return Err(SparseBpError::UnequalGroupSize { group: 0, size: gs, expected: d.ncols() });
        }
        let groups = if kind == CodeKind::Bp {
            GroupSpec::lasso(d.ncols(), lambda)?
        } else {
            GroupSpec::contiguous_blocks(d.ncols(), gs, lambda, GroupNorm::L2)?
        };
        let n_feat = if kind == CodeKind::Pgbp { d.ncols() / gs } else { d.ncols() };
        if classifier.w.ncols() != n_feat || classifier.b.len() != classifier.w.nrows() {
            return Err(SparseBpError::ShapeMismatch {
                what: "classifier weights",
                expected: (classifier.w.nrows(), n_feat),
                got: classifier.w.shape(),
            });
        }
        let solver = Solver::new(d, groups, default_solver_params())?;
        Ok(Self { kind, group_size: gs, lambda, classifier, task, solver })
    }

    /// Replace the solver parameters (e.g. a looser tolerance for quick runs).
    pub fn set_solver_params(&mut self, p: SolverParams) -> Result<()> {
        self.solver = self.solver.with_params(p)?;
        Ok(())
    }

    /// The solver (dictionary, groups).
    #[must_use]
    pub fn solver(&self) -> &Solver {
        &self.solver
    }

    /// Number of classifier features.
    #[must_use]
    pub fn n_features(&self) -> usize {
        self.classifier.w.ncols()
    }

    /// Sparse codes (`M x batch`).
    pub fn codes(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        Ok(self.solver.solve(x)?.codes)
    }

    /// Classifier input computed from codes: the codes themselves, or the group norms (PGBP).
    #[must_use]
    pub fn features_from_codes(&self, z: &DMatrix<f64>) -> DMatrix<f64> {
        match self.kind {
            CodeKind::Bp | CodeKind::Gbp => z.clone(),
            CodeKind::Pgbp => group_norms(z, self.group_size),
        }
    }

    /// Classifier input of an input batch.
    pub fn features(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        Ok(self.features_from_codes(&self.codes(x)?))
    }
}

/// Per-group `l2` norms of contiguous blocks of `group_size` rows (`M/gs x batch`).
#[must_use]
pub fn group_norms(z: &DMatrix<f64>, group_size: usize) -> DMatrix<f64> {
    let k = z.nrows() / group_size;
    DMatrix::from_fn(k, z.ncols(), |g, j| {
        (0..group_size).map(|a| z[(g * group_size + a, j)].powi(2)).sum::<f64>().sqrt()
    })
}

impl Classifier for PursuitClassifier {
    fn n_inputs(&self) -> usize {
        self.solver.dictionary().nrows()
    }
    fn logits(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.classifier.logits(&self.features(x)?)
    }
    fn loss(&self) -> TaskLoss {
        self.task
    }
    fn input_gradient(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<DMatrix<f64>> {
        self.input_gradient_at(x, labels, &self.codes(x)?)
    }
    fn input_gradient_warm(&self, x: &DMatrix<f64>, labels: &[usize], warm: &mut WarmCodes) -> Result<DMatrix<f64>> {
        check_batch(self, x)?;
        let z = match warm.as_ref() {
            Some(w) if w.shape() == (self.solver.dictionary().ncols(), x.ncols()) => {
                self.solver.solve_warm(x, w)?.codes
            }
            _ => self.codes(x)?,
        };
        let g = self.input_gradient_at(x, labels, &z)?;
        *warm = Some(z);
        Ok(g)
    }
}

impl PursuitClassifier {
    /// The input gradient of the attack objective at the codes `z` of `x`.
    fn input_gradient_at(&self, x: &DMatrix<f64>, labels: &[usize], z: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let f = self.features_from_codes(z);
        let logits = self.classifier.logits(&f)?;
        let (_, dl) = self.task.attack_objective(&logits, labels)?;
        let df = self.classifier.w.tr_mul(&dl);
        let cols: Vec<Result<DVector<f64>>> = (0..x.ncols())
            .into_par_iter()
            .map(|j| {
                let zj = z.column(j).into_owned();
                let dz = match self.kind {
                    CodeKind::Bp | CodeKind::Gbp => df.column(j).into_owned(),
                    CodeKind::Pgbp => DVector::from_fn(zj.len(), |a, _| {
                        let g = a / self.group_size;
                        let nrm = f[(g, j)];
                        if nrm > 0.0 { df[(g, j)] * zj[a] / nrm } else { 0.0 }
                    }),
                };
                crate::implicit::vjp(&self.solver, &zj, &dz)
            })
            .collect();
        let mut out = DMatrix::zeros(x.nrows(), x.ncols());
        for (j, c) in cols.into_iter().enumerate() {
            out.column_mut(j).copy_from(&c?);
        }
        Ok(out)
    }
}

/// A feedforward network predicting the PGBP group norms, classified by the PGBP classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approximator {
    /// The network (input -> `K` non-negative norms).
    pub net: Network,
    /// The PGBP classifier (fixed).
    pub classifier: LinearClassifier,
    /// The task loss.
    pub task: TaskLoss,
}

impl Approximator {
    /// Checks that the network output feeds the classifier.
    pub fn new(net: Network, classifier: LinearClassifier, task: TaskLoss) -> Result<Self> {
        if net.n_out() != classifier.w.ncols() {
            return Err(SparseBpError::ShapeMismatch {
                what: "approximator output vs classifier",
                expected: (classifier.w.ncols(), 1),
                got: (net.n_out(), 1),
            });
        }
        Ok(Self { net, classifier, task })
    }
}

impl Classifier for Approximator {
    fn n_inputs(&self) -> usize {
        self.net.n_in()
    }
    fn logits(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.classifier.logits(&self.net.forward(x)?)
    }
    fn loss(&self) -> TaskLoss {
        self.task
    }
    fn input_gradient(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<DMatrix<f64>> {
        // Evaluation-mode batch norm is a per-feature affine map: replace it by that map
        // so the (training-mode) tape differentiates exactly the evaluation function.
        let net = eval_affine(&self.net);
        let mut tmp = net.clone();
        let (y, tape) = tmp.forward_train(x)?;
        let logits = self.classifier.logits(&y)?;
        let (_, dl) = self.task.attack_objective(&logits, labels)?;
        let dy = self.classifier.w.tr_mul(&dl);
        let mut grads = net.zero_grads();
        net.backward(&tape, &dy, &mut grads)
    }
}

/// A copy of `net` whose batch norms are replaced by their evaluation-mode affine maps
/// (a diagonal linear layer), so that training-mode passes compute the evaluation function.
fn eval_affine(net: &Network) -> Network {
    use crate::nn::{Layer, LayerKind};
    let layers = net
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::BatchNorm { running_mean, running_var, .. } => {
                let n = l.n_in;
                let scale: Vec<f64> = (0..n).map(|i| l.params[0][(i, 0)] / (running_var[i] + 1e-5).sqrt()).collect();
                let w = DMatrix::from_fn(n, n, |i, j| if i == j { scale[i] } else { 0.0 });
                let b = DMatrix::from_fn(n, 1, |i, _| l.params[1][(i, 0)] - scale[i] * running_mean[i]);
                Layer { kind: LayerKind::Linear, params: vec![w, b], n_in: n, n_out: n }
            }
            _ => l.clone(),
        })
        .collect();
    Network { layers }
}

/// Checks an input batch against a classifier (shape and finiteness).
pub fn check_batch(c: &impl Classifier, x: &DMatrix<f64>) -> Result<()> {
    if x.nrows() != c.n_inputs() {
        return Err(SparseBpError::ShapeMismatch {
            what: "input batch",
            expected: (c.n_inputs(), x.ncols()),
            got: x.shape(),
        });
    }
    check_finite("input batch", x.as_slice())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;

    pub(crate) fn rand_mat(r: usize, c: usize, rng: &mut StdRng) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| rng.sample::<f64, _>(StandardNormal))
    }

    pub(crate) fn unit_cols(mut d: DMatrix<f64>) -> DMatrix<f64> {
        for mut c in d.column_iter_mut() {
            let n = c.norm();
            c /= n;
        }
        d
    }

    fn fd_check(m: &dyn Fn(&DMatrix<f64>) -> f64, x: &DMatrix<f64>, g: &DMatrix<f64>, tol: f64) {
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (m(&xp) - m(&xm)) / (2.0 * h);
            assert!((fd - g[i]).abs() < tol * (1.0 + fd.abs()), "entry {i}: fd {fd} vs {}", g[i]);
        }
    }

    fn pursuit_input_gradient(kind: CodeKind, task: TaskLoss, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = unit_cols(rand_mat(10, 16, &mut rng));
        let k = if task == TaskLoss::Hinge { 1 } else { 3 };
        let nf = if kind == CodeKind::Pgbp { 4 } else { 16 };
        let clf = LinearClassifier { w: rand_mat(k, nf, &mut rng), b: DVector::from_element(k, 0.1) };
        let mut m = PursuitClassifier::new(kind, d, 4, 0.3, clf, task).unwrap();
        m.set_solver_params(SolverParams { tol: 1e-14, max_iter: 200_000, ..SolverParams::default() }).unwrap();
        let x = rand_mat(10, 2, &mut rng);
        let labels = if task == TaskLoss::Hinge { vec![0, 1] } else { vec![2, 0] };
        let g = m.input_gradient(&x, &labels).unwrap();
        let f = |x: &DMatrix<f64>| {
            let l = m.logits(x).unwrap();
            task.attack_objective(&l, &labels).unwrap().0
        };
        fd_check(&f, &x, &g, 1e-5);
        // the warm-started gradient (from the codes of a nearby input, as in an attack's next step)
        let mut warm = None;
        m.input_gradient_warm(&(&x * 0.97), &labels, &mut warm).unwrap();
        let gw = m.input_gradient_warm(&x, &labels, &mut warm).unwrap();
        assert_eq!(warm.as_ref().map(DMatrix::shape), Some((16, 2)));
        fd_check(&f, &x, &gw, 1e-5);
    }

    #[test]
    fn bp_input_gradient_matches_finite_differences() {
        pursuit_input_gradient(CodeKind::Bp, TaskLoss::CrossEntropy, 1);
    }
    #[test]
    fn gbp_input_gradient_matches_finite_differences() {
        pursuit_input_gradient(CodeKind::Gbp, TaskLoss::Hinge, 2);
    }
    #[test]
    fn pgbp_input_gradient_matches_finite_differences() {
        pursuit_input_gradient(CodeKind::Pgbp, TaskLoss::CrossEntropy, 3);
    }

    #[test]
    fn approximator_input_gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut net = Network::linear_transformer(9, 4, 3, 4, 5).unwrap();
        // give the batch norm non-trivial running statistics
        let _ = net.forward_train(&rand_mat(9, 8, &mut rng)).unwrap();
        let clf = LinearClassifier { w: rand_mat(3, 4, &mut rng), b: DVector::zeros(3) };
        let a = Approximator::new(net, clf, TaskLoss::CrossEntropy).unwrap();
        let x = rand_mat(9, 3, &mut rng);
        let labels = vec![0, 1, 2];
        let g = a.input_gradient(&x, &labels).unwrap();
        let f = |x: &DMatrix<f64>| TaskLoss::CrossEntropy.attack_objective(&a.logits(x).unwrap(), &labels).unwrap().0;
        fd_check(&f, &x, &g, 1e-5);
    }

    #[test]
    fn typed_errors() {
        let d = DMatrix::<f64>::identity(4, 4);
        let bad = LinearClassifier::zeros(2, 3);
        assert!(PursuitClassifier::new(CodeKind::Gbp, d.clone(), 2, 0.1, bad, TaskLoss::CrossEntropy).is_err());
        let m = PursuitClassifier::new(CodeKind::Gbp, d, 2, 0.1, LinearClassifier::zeros(2, 4), TaskLoss::CrossEntropy)
            .unwrap();
        let mut x = DMatrix::zeros(4, 1);
        x[2] = f64::NAN;
        assert!(matches!(m.predict(&x), Err(SparseBpError::NonFinite { .. })));
        assert!(matches!(m.predict(&DMatrix::zeros(3, 1)), Err(SparseBpError::ShapeMismatch { .. })));
        assert!(matches!(
            m.input_gradient(&DMatrix::zeros(4, 1), &[5]),
            Err(SparseBpError::LabelOutOfRange { label: 5, .. })
        ));
    }
}
