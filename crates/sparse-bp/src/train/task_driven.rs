//! Task-driven dictionary learning and the gap regulariser (spec section 4, "Training").
//!
//! **Task-driven learning** ([`train_task_driven`]) updates the dictionary of a
//! [`PursuitClassifier`] through the task loss: the code `z(x; D)` is differentiated by
//! [`crate::implicit::vjp_full`] (implicit differentiation at the solution), so
//! `dL/dD = sum_samples vjp_full(x, z, dL/dz).dictionary`. Optionally the linear classifier
//! is trained jointly (Adam on both), a reconstruction term `1/(2n) ||X - D Z||_F^2`
//! (differentiated through the code too, [`task_driven_gradient`]) and the gap
//! regulariser are added; the penalty can be warmed up from near 0. After every step the
//! atoms are renormalised to unit norm. [`deep`] does the same for the 3-layer models:
//! layered pursuit through the chain of layer solutions, Deep Pursuit through its stacked
//! shallow problem.
//!
//! **Gap regulariser** ([`gap_regulariser`], our concrete reading of "push apart the
//! smallest active and the largest inactive group norm"). At the solution inactive
//! groups have norm exactly 0, so we use for every group the *signed group score*
//!
//! ```text
//! s_g = ||z_g||_2                      if group g is active,
//! s_g = ||D_g^T (x - D z)||_2 - gamma_g   (<= 0) if it is inactive,
//! ```
//!
//! which is continuous where a group enters or leaves the support (an active group whose
//! norm goes to 0 has `||D_g^T r|| -> gamma_g`). The *gap* is
//! `min_{g active} s_g - max_{g inactive} s_g` = smallest active norm + smallest dual slack
//! — the two quantities the stability theorem and the certificate of [`crate::attack`]
//! need to be large. The gap itself jumps when a group crosses the threshold (the
//! crossing group becomes the new minimum on the other side), so the regulariser uses
//! the continuous `min_g |s_g| = min(smallest active norm, smallest inactive slack)`,
//! which is positive exactly when the gap is, and is at most the gap:
//! `value = max(0, margin - min_g |s_g|)` per sample (also when no group, or every
//! group, is active). Lowering it pushes the group nearest to the threshold away from it — the
//! smallest active norm up or the largest inactive score down — and so pushes the two
//! apart. Its gradient with respect to `x` and `D` combines the direct terms of `s_g`
//! with a `vjp_full` through the code; it is checked against central finite differences
//! in the tests.
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use sparse_bp::train::task_driven::gap_regulariser;
//! use sparse_bp::{GroupNorm, GroupSpec, Solver, SolverParams};
//! let s = Solver::new(DMatrix::identity(4, 4), GroupSpec::contiguous_blocks(4, 2, 0.5, GroupNorm::L2)?,
//!                     SolverParams::default())?;
//! let x = DVector::from_vec(vec![3.0, 0.0, 0.1, 0.2]);
//! let z = s.solve_vector(&x)?.codes.column(0).into_owned();
//! let g = gap_regulariser(&s, &x, &z, 10.0)?;
//! // active group norm 2.5, inactive slack 0.5 - ||(0.1, 0.2)|| = 0.276 -> gap 2.776
//! let slack = 0.5 - 0.05f64.sqrt();
//! assert!((g.gap - (2.5 + slack)).abs() < 1e-6);
//! assert!((g.value - (10.0 - slack)).abs() < 1e-6); // the slack is the closer one
//! assert_eq!(gap_regulariser(&s, &x, &z, 0.1)?.value, 0.0);
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::error::{Result, SparseBpError, check_finite};
use crate::implicit::vjp_full;
use crate::models::{CodeKind, LinearClassifier, PursuitClassifier};
use crate::solver::Solver;

/// The gap regulariser of one sample and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct GapValue {
    /// `max(0, margin - min_g |s_g|)`.
    pub value: f64,
    /// `min_{active} s_g - max_{inactive} s_g` (a missing side counts 0).
    pub gap: f64,
    /// `d value / d x`.
    pub d_x: DVector<f64>,
    /// `d value / d D` (`m x M`).
    pub d_dict: DMatrix<f64>,
}

/// The gap regulariser (module docs) at the solution `z` for the signal `x`.
pub fn gap_regulariser(solver: &Solver, x: &DVector<f64>, z: &DVector<f64>, margin: f64) -> Result<GapValue> {
    if !margin.is_finite() {
        return Err(SparseBpError::InvalidParam { name: "gap margin", value: margin, expected: "finite" });
    }
    let d = solver.dictionary();
    let (m, big_m) = d.shape();
    if x.len() != m || z.len() != big_m {
        return Err(SparseBpError::ShapeMismatch {
            what: "gap signal / code",
            expected: (m, big_m),
            got: (x.len(), z.len()),
        });
    }
    check_finite("gap signal", x.as_slice())?;
    check_finite("gap code", z.as_slice())?;
    let zero = GapValue { value: 0.0, gap: 0.0, d_x: DVector::zeros(m), d_dict: DMatrix::zeros(m, big_m) };
    let r = x - d * z;
    let groups = solver.groups().groups();
    // (score, group) of the smallest active and the largest inactive group
    let mut act: Option<(f64, usize)> = None;
    let mut inact: Option<(f64, usize)> = None;
    for (gi, g) in groups.iter().enumerate() {
        let n = g.atoms.iter().map(|&a| z[a] * z[a]).sum::<f64>().sqrt();
        if n > 0.0 {
            if act.is_none_or(|(s, _)| n < s) {
                act = Some((n, gi));
            }
        } else {
            let c = g.atoms.iter().map(|&a| d.column(a).dot(&r).powi(2)).sum::<f64>().sqrt();
            let s = c - g.weight;
            if inact.is_none_or(|(t, _)| s > t) {
                inact = Some((s, gi));
            }
        }
    }
    // a missing side (no active or no inactive group) is at +inf distance from the threshold
    let (s_act, ga) = act.unwrap_or((f64::INFINITY, usize::MAX));
    let (s_in, gh) = inact.unwrap_or((f64::NEG_INFINITY, usize::MAX));
    let gap = act.map_or(0.0, |a| a.0) - inact.map_or(0.0, |i| i.0);
    let closest_active = s_act <= -s_in;
    let value = (margin - s_act.min(-s_in)).max(0.0);
    if value == 0.0 || !value.is_finite() {
        return Ok(GapValue { gap, ..zero });
    }
    let mut d_x = DVector::zeros(m);
    let mut d_dict = DMatrix::zeros(m, big_m);
    let mut v = DVector::zeros(big_m);
    if closest_active {
        // value = margin - ||z_a||
        for &a in &groups[ga].atoms {
            v[a] -= z[a] / s_act;
        }
    }
    // otherwise value = margin + s_in, s_in = ||u|| - gamma, u = D_h^T r
    let h: &[usize] = if closest_active { &[] } else { &groups[gh].atoms };
    let u = DVector::from_fn(h.len(), |k, _| d.column(h[k]).dot(&r));
    let un = u.norm();
    if !closest_active && un > 0.0 {
        let w = u / un;
        let mut c = DVector::zeros(m); // D_h w: cotangent of r
        for (k, &a) in h.iter().enumerate() {
            c += d.column(a) * w[k];
            // direct: d(w^T D_h^T r)/dD_h = r w^T
            let mut col = d_dict.column_mut(a);
            col += &r * w[k];
        }
        // r = x - D z
        d_x += &c;
        d_dict -= &c * z.transpose();
        v -= d.tr_mul(&c);
    }
    let full = vjp_full(solver, x, z, &v)?;
    d_x += full.x;
    d_dict += full.dictionary;
    Ok(GapValue { value, gap, d_x, d_dict })
}

/// Parameters of [`train_task_driven`].
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `epochs` | 5 | passes over the data | `>= 1` |
/// | `lr` | `1e-3` | Adam learning rate of the dictionary | finite, `> 0` |
/// | `clf_lr` | `Some(1e-2)` | Adam learning rate of the classifier; `None` keeps it fixed | finite, `> 0` |
/// | `batch_size` | 64 | samples per step | `>= 1` |
/// | `task_weight` | 1 | weight of the task loss (mean over the batch) | finite, `>= 0` |
/// | `recon_weight` | 0 | weight of `1/(2n) ||X - D Z||_F^2` | finite, `>= 0` |
/// | `gap_weight` | 0 | weight of the mean gap regulariser | finite, `>= 0` |
/// | `gap_margin` | 1 | the gap the regulariser asks for | finite |
/// | `warmup_steps` | 0 | steps over which the penalty rises linearly to its target ([`warmup_lambda`]) | any |
/// | `seed` | 0 | shuffling | any |
/// | `warm_start` | `true` | from the second epoch on, start each training image's pursuit from its codes of the previous epoch (same solver tolerance; memory: one stacked code per training image, [`trainer::EndToEnd::code_rows`] `x n` f64) | any |
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDrivenParams {
    /// Passes over the data.
    pub epochs: usize,
    /// Dictionary learning rate.
    pub lr: f64,
    /// Classifier learning rate (`None`: classifier fixed).
    pub clf_lr: Option<f64>,
    /// Samples per step.
    pub batch_size: usize,
    /// Task-loss weight.
    pub task_weight: f64,
    /// Reconstruction weight.
    pub recon_weight: f64,
    /// Gap-regulariser weight.
    pub gap_weight: f64,
    /// Gap margin.
    pub gap_margin: f64,
    /// Penalty warm-up steps (0: none).
    pub warmup_steps: usize,
    /// Seed.
    pub seed: u64,
    /// Warm-start every training image's pursuit from its codes of the previous epoch.
    pub warm_start: bool,
}

impl Default for TaskDrivenParams {
    fn default() -> Self {
        Self {
            epochs: 5,
            lr: 1e-3,
            clf_lr: Some(1e-2),
            batch_size: 64,
            task_weight: 1.0,
            recon_weight: 0.0,
            gap_weight: 0.0,
            gap_margin: 1.0,
            warmup_steps: 0,
            seed: 0,
            warm_start: true,
        }
    }
}

impl TaskDrivenParams {
    /// Checks the fields against the table.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(SparseBpError::InvalidParam { name: "epochs/batch_size", value: 0.0, expected: ">= 1" });
        }
        for (name, v) in [("lr", self.lr), ("clf_lr", self.clf_lr.unwrap_or(1.0))] {
            if !(v.is_finite() && v > 0.0) {
                return Err(SparseBpError::InvalidParam { name, value: v, expected: "finite, > 0" });
            }
        }
        for (name, v) in
            [("task_weight", self.task_weight), ("recon_weight", self.recon_weight), ("gap_weight", self.gap_weight)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(SparseBpError::InvalidParam { name, value: v, expected: "finite, >= 0" });
            }
        }
        if !self.gap_margin.is_finite() {
            return Err(SparseBpError::InvalidParam { name: "gap_margin", value: self.gap_margin, expected: "finite" });
        }
        Ok(())
    }
}

/// The objective terms of a model on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskDrivenLoss {
    /// Mean task loss.
    pub task: f64,
    /// `1/(2n) ||X - D Z||_F^2`.
    pub recon: f64,
    /// Mean gap regulariser.
    pub gap: f64,
}

impl TaskDrivenLoss {
    /// The weighted total.
    #[must_use]
    pub fn total(&self, p: &TaskDrivenParams) -> f64 {
        p.task_weight * self.task + p.recon_weight * self.recon + p.gap_weight * self.gap
    }
}

/// Evaluates the objective terms of [`train_task_driven`] for `model` on `(x, labels)`.
pub fn task_driven_loss(
    model: &PursuitClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    gap_margin: f64,
) -> Result<TaskDrivenLoss> {
    let z = model.codes(x)?;
    let logits = model.classifier.logits(&model.features_from_codes(&z))?;
    let (task, _) = model.task.value_and_grad(&logits, labels)?;
    let n = x.ncols().max(1) as f64;
    let recon = 0.5 * (x - model.solver().dictionary() * &z).norm_squared() / n;
    let mut gap = 0.0;
    for j in 0..x.ncols() {
        let g = gap_regulariser(model.solver(), &x.column(j).into_owned(), &z.column(j).into_owned(), gap_margin)?;
        gap += g.value / n;
    }
    Ok(TaskDrivenLoss { task, recon, gap })
}

fn normalise_columns(d: &mut DMatrix<f64>) {
    for mut c in d.column_iter_mut() {
        let n = c.norm();
        if n > 0.0 {
            c /= n;
        }
    }
}

/// Gradient of the training objective of [`train_task_driven`] on one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDrivenGradient {
    /// The objective terms on the batch (`total(p)` is what the gradient differentiates).
    pub loss: TaskDrivenLoss,
    /// `d total / d D` (`m x M`), the Euclidean gradient with respect to the unconstrained entries.
    pub dictionary: DMatrix<f64>,
    /// `d total / d W`.
    pub w: DMatrix<f64>,
    /// `d total / d b`.
    pub b: DVector<f64>,
}

/// Cotangent on the code from a cotangent `df` on the features (column `j`): the features
/// themselves (BP, GBP) or the group norms (PGBP, `d||z_g|| / dz_g = z_g / ||z_g||`).
pub(crate) fn code_cotangent(
    kind: CodeKind,
    group_size: usize,
    z: &DMatrix<f64>,
    f: &DMatrix<f64>,
    df: &DMatrix<f64>,
    j: usize,
) -> DVector<f64> {
    match kind {
        CodeKind::Bp | CodeKind::Gbp => df.column(j).into_owned(),
        CodeKind::Pgbp => DVector::from_fn(z.nrows(), |a, _| {
            let g = a / group_size;
            if f[(g, j)] > 0.0 { df[(g, j)] * z[(a, j)] / f[(g, j)] } else { 0.0 }
        }),
    }
}

/// Adds the dictionary cotangent of one sample, `r y^T - (D_S y) z_S^T` on the active
/// atoms `S` of the solution `z` (with `y` from [`crate::implicit::adjoint`] and the
/// residual `r = x - D z`), to the blocks of `D` being trained, and returns `D_S y` (the
/// input cotangent). Block `k` is `acc[k]`, occupying rows `row0..row0 + rows` and columns
/// `col0..col0 + acc[k].ncols()` of `D` (`blocks[k] = (row0, col0, rows)`): the whole `D`
/// for a shallow model, each layer's diagonal block of the stacked Deep Pursuit dictionary.
pub(crate) fn accumulate_dictionary(
    d: &DMatrix<f64>,
    support: &[usize],
    y: &DVector<f64>,
    r: &DVector<f64>,
    z: &DVector<f64>,
    acc: &mut [DMatrix<f64>],
    blocks: &[(usize, usize, usize)],
) -> DVector<f64> {
    let mut dy = DVector::zeros(d.nrows());
    for (k, &s) in support.iter().enumerate() {
        dy.axpy(y[k], &d.column(s), 1.0);
    }
    for (g, &(row0, col0, rows)) in acc.iter_mut().zip(blocks) {
        for (k, &s) in support.iter().enumerate() {
            if s < col0 || s >= col0 + g.ncols() {
                continue;
            }
            let mut col = g.column_mut(s - col0);
            for i in 0..rows {
                col[i] += r[row0 + i] * y[k] - dy[row0 + i] * z[s];
            }
        }
    }
    dy
}

/// The objective of [`train_task_driven`] on the batch `(x, labels)` and its exact gradient
/// with respect to the dictionary and the classifier (module docs). The reconstruction
/// term `1/(2n) ||X - D Z(D)||_F^2` is differentiated through the code as well
/// (`d/dD = -R Z^T / n + (dZ/dD)^T (-D^T R) / n`): the envelope theorem alone would give
/// the gradient of the lasso energy, not of the reconstruction error.
pub fn task_driven_gradient(
    model: &PursuitClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<TaskDrivenGradient> {
    task_driven_gradient_warm(model, x, labels, p, None).map(|(g, _)| g)
}

/// [`task_driven_gradient`] with the pursuit started from `init` (`M x batch`, e.g. the
/// codes of the same images from the previous epoch; `None`: from 0). The solver stops on
/// the same relative duality gap either way. Also returns the batch's codes.
///
/// ```
/// use nalgebra::DMatrix;
/// use sparse_bp::models::{CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
/// use sparse_bp::train::task_driven::{TaskDrivenParams, task_driven_gradient, task_driven_gradient_warm};
/// let clf = LinearClassifier::zeros(2, 3);
/// let d = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8]);
/// let m = PursuitClassifier::new(CodeKind::Bp, d, 1, 0.1, clf, TaskLoss::CrossEntropy)?;
/// let x = DMatrix::from_column_slice(2, 2, &[1.0, 0.5, -0.3, 2.0]);
/// let p = TaskDrivenParams::default();
/// let (cold, z) = task_driven_gradient_warm(&m, &x, &[0, 1], &p, None)?;
/// assert_eq!(cold, task_driven_gradient(&m, &x, &[0, 1], &p)?);
/// let (warm, _) = task_driven_gradient_warm(&m, &x, &[0, 1], &p, Some(&z))?;
/// assert!((warm.dictionary - cold.dictionary).amax() < 1e-6);
/// # Ok::<(), sparse_bp::SparseBpError>(())
/// ```
pub fn task_driven_gradient_warm(
    model: &PursuitClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
    init: Option<&DMatrix<f64>>,
) -> Result<(TaskDrivenGradient, DMatrix<f64>)> {
    p.check()?;
    trainer::check_labelled(model, x, labels, "training batch")?;
    let solver = model.solver();
    let d = solver.dictionary();
    let z = match init {
        Some(z0) => solver.solve_warm(x, z0)?.codes,
        None => solver.solve(x)?.codes,
    };
    let f = model.features_from_codes(&z);
    let logits = model.classifier.logits(&f)?;
    let (task, dl) = model.task.value_and_grad(&logits, labels)?; // mean over the batch
    let dl = dl * p.task_weight;
    let df = model.classifier.w.tr_mul(&dl);
    let n = x.ncols() as f64;
    let c = p.recon_weight / n;
    let resid = x - d * &z;
    let recon = 0.5 * resid.norm_squared() / n;
    let (m, big_m) = d.shape();
    let (kind, gs) = (model.kind, model.group_size);
    let zero = || (vec![DMatrix::zeros(m, big_m)], 0.0);
    let fold = |(mut acc, mut gap): (Vec<DMatrix<f64>>, f64), j: usize| -> Result<(Vec<DMatrix<f64>>, f64)> {
        let zj = z.column(j).into_owned();
        let rj = resid.column(j).into_owned();
        let mut v = code_cotangent(kind, gs, &z, &f, &df, j);
        if c > 0.0 {
            v -= d.tr_mul(&rj) * c;
            for (s, &zs) in zj.iter().enumerate() {
                if zs != 0.0 {
                    acc[0].column_mut(s).axpy(-c * zs, &rj, 1.0);
                }
            }
        }
        if let Some((support, y)) = crate::implicit::adjoint(solver, &zj, &v)? {
            accumulate_dictionary(d, &support, &y, &rj, &zj, &mut acc, &[(0, 0, m)]);
        }
        if p.gap_weight > 0.0 {
            let g = gap_regulariser(solver, &x.column(j).into_owned(), &zj, p.gap_margin)?;
            acc[0] += g.d_dict * (p.gap_weight / n);
            gap += g.value / n;
        }
        Ok((acc, gap))
    };
    let (acc, gap) = ordered_par_sum(x.ncols(), zero, fold, |(mut a, ga), (b, gb)| {
        a[0] += &b[0];
        (a, ga + gb)
    })?;
    let w = &dl * f.transpose();
    let b = DVector::from_fn(dl.nrows(), |i, _| dl.row(i).sum());
    let dictionary = acc.into_iter().next().unwrap_or_else(|| DMatrix::zeros(m, big_m));
    Ok((TaskDrivenGradient { loss: TaskDrivenLoss { task, recon, gap }, dictionary, w, b }, z))
}

/// The penalty of step `t` (0-based) under a warm-up of `warmup` steps: linear from
/// `lambda / (warmup + 1)` to `lambda` (thresholds warmed up from near 0; exactly 0 would
/// make the code non-unique).
#[must_use]
pub fn warmup_lambda(lambda: f64, t: usize, warmup: usize) -> f64 {
    lambda * ((t + 1) as f64 / (warmup + 1) as f64).min(1.0)
}

impl trainer::EndToEnd for PursuitClassifier {
    fn check_params(p: &TaskDrivenParams) -> Result<()> {
        p.check()
    }
    fn objective(&self, x: &DMatrix<f64>, labels: &[usize], p: &TaskDrivenParams) -> Result<TaskDrivenLoss> {
        task_driven_loss(self, x, labels, p.gap_margin)
    }
    fn gradient_warm(
        &self,
        x: &DMatrix<f64>,
        labels: &[usize],
        p: &TaskDrivenParams,
        init: Option<&DMatrix<f64>>,
    ) -> Result<(deep::MultiLayerGradient, DMatrix<f64>)> {
        let (g, z) = task_driven_gradient_warm(self, x, labels, p, init)?;
        Ok((deep::MultiLayerGradient { loss: g.loss, dictionaries: vec![g.dictionary], w: g.w, b: g.b }, z))
    }
    fn code_rows(&self) -> usize {
        self.solver().dictionary().ncols()
    }
    fn dictionary_list(&self) -> Vec<DMatrix<f64>> {
        vec![self.solver().dictionary().clone()]
    }
    fn linear(&self) -> &LinearClassifier {
        &self.classifier
    }
    fn rebuilt(&self, dicts: &[DMatrix<f64>], clf: LinearClassifier, t: usize, warmup: usize) -> Result<Self> {
        let [d] = dicts else {
            return Err(SparseBpError::ShapeMismatch {
                what: "shallow dictionaries",
                expected: (1, 1),
                got: (dicts.len(), 1),
            });
        };
        let lambda = warmup_lambda(self.lambda, t, warmup);
        let mut next = PursuitClassifier::new(self.kind, d.clone(), self.group_size, lambda, clf, self.task)?;
        next.set_solver_params(self.solver().params().clone())?;
        Ok(next)
    }
    fn label(&self) -> &'static str {
        match self.kind {
            CodeKind::Bp => "bp",
            CodeKind::Gbp => "gbp",
            CodeKind::Pgbp => "pgbp",
        }
    }
}

/// Task-driven training of `model`'s dictionary (and optionally its classifier), see the
/// module docs: Adam on [`task_driven_gradient`] per mini-batch, atoms renormalised to
/// unit norm after every step, the penalty warmed up over the first `warmup_steps` steps
/// ([`warmup_lambda`]). Returns the objective terms on the whole training set (at the
/// target penalty) after every epoch (entry 0: before training).
/// [`early_stopping::train_validated`] is the same with early stopping on a
/// held-out set.
pub fn train_task_driven(
    model: &mut PursuitClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<Vec<TaskDrivenLoss>> {
    trainer::train_epochs(model, x, labels, p)
}

/// Columns per work unit of the gradient sums over a batch: fixed, so that the partial sums and
/// the order they are added in depend neither on the number of threads nor on rayon's work
/// stealing (a `try_reduce` adds its partials in whatever order the splitting happened, and as
/// float addition is not associative, one seed gave different losses from run to run).
const SUM_CHUNK: usize = 16;

/// Folds `0..n` in fixed chunks of [`SUM_CHUNK`] indices, the chunks in parallel, each from
/// `zero()`; then adds the chunks' results with `add` in chunk order on the calling thread.
/// The result is the same for any number of threads.
pub(crate) fn ordered_par_sum<T: Send>(
    n: usize,
    zero: impl Fn() -> T + Sync,
    fold: impl Fn(T, usize) -> Result<T> + Sync,
    add: impl Fn(T, T) -> T,
) -> Result<T> {
    let parts: Vec<Result<T>> = (0..n.div_ceil(SUM_CHUNK))
        .into_par_iter()
        .map(|c| (c * SUM_CHUNK..n.min((c + 1) * SUM_CHUNK)).try_fold(zero(), &fold))
        .collect();
    parts.into_iter().try_fold(zero(), |acc, part| Ok(add(acc, part?)))
}

pub mod deep;
pub mod early_stopping;
pub mod trainer;

/// Test data shared by the trainers' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use nalgebra::DMatrix;
    use rand::RngExt;
    use rand::rngs::StdRng;
    use rand_distr::StandardNormal;

    /// An `r x c` matrix of N(0, 1) entries.
    pub(crate) fn rand_mat(r: usize, c: usize, rng: &mut StdRng) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| rng.sample::<f64, _>(StandardNormal))
    }

    /// `n` images of a 3-class teacher problem drawn with `rng`: image `j` has class
    /// `c = j % 3` and is a random atom of the `c`-th third of `teacher`'s atoms scaled by
    /// U[1, 2) plus half a random atom (so the class is which third carries the largest code).
    pub(crate) fn teacher_images(teacher: &DMatrix<f64>, n: usize, rng: &mut StdRng) -> (DMatrix<f64>, Vec<usize>) {
        let (rows, atoms) = teacher.shape();
        let third = atoms / 3;
        let mut x = DMatrix::zeros(rows, n);
        let mut labels = Vec::with_capacity(n);
        for j in 0..n {
            let c = j % 3;
            let a = third * c + rng.random_range(0..third);
            let b = rng.random_range(0..atoms);
            let col = teacher.column(a) * rng.random_range(1.0..2.0) + teacher.column(b) * 0.5;
            x.set_column(j, &col);
            labels.push(c);
        }
        (x, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{rand_mat, teacher_images};
    use super::*;
    use crate::groups::{GroupNorm, GroupSpec};
    use crate::models::TaskLoss;
    use crate::solver::SolverParams;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;

    fn tight() -> SolverParams {
        SolverParams { tol: 1e-15, max_iter: 400_000, ..SolverParams::default() }
    }

    /// Central finite differences of the gap regulariser in `x` and in every entry of `D`
    /// (re-solving the code each time) against the analytic gradient.
    #[test]
    fn gap_regulariser_gradient_matches_finite_differences() {
        let mut checked = 0;
        for (seed, norm, gs) in [(1u64, GroupNorm::L2, 3usize), (2, GroupNorm::L1, 1), (3, GroupNorm::L2, 2)] {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = rand_mat(8, 12, &mut rng);
            normalise_columns(&mut d);
            let groups = GroupSpec::contiguous_blocks(12, gs, 0.6, norm).unwrap();
            let x = DVector::from_fn(8, |_, _| rng.sample::<f64, _>(StandardNormal)) * 2.0;
            let value = |d: &DMatrix<f64>, x: &DVector<f64>| {
                let s = Solver::new(d.clone(), groups.clone(), tight()).unwrap();
                let z = s.solve_vector(x).unwrap().codes.column(0).into_owned();
                gap_regulariser(&s, x, &z, 5.0).unwrap()
            };
            let g = value(&d, &x);
            assert!(g.value > 0.0 && g.gap.is_finite(), "seed {seed}: inactive hinge ({g:?})");
            let h = 1e-6;
            let tol = |fd: f64| 1e-5 * (1.0 + fd.abs());
            for i in 0..8 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (value(&d, &xp).value - value(&d, &xm).value) / (2.0 * h);
                assert!((fd - g.d_x[i]).abs() < tol(fd), "seed {seed} x[{i}]: fd {fd} vs {}", g.d_x[i]);
                checked += 1;
            }
            for i in 0..d.len() {
                let (mut dp, mut dm) = (d.clone(), d.clone());
                dp[i] += h;
                dm[i] -= h;
                let fd = (value(&dp, &x).value - value(&dm, &x).value) / (2.0 * h);
                assert!((fd - g.d_dict[i]).abs() < tol(fd), "seed {seed} D[{i}]: fd {fd} vs {}", g.d_dict[i]);
                checked += 1;
            }
        }
        assert_eq!(checked, 3 * (8 + 96));
    }

    fn problem(seed: u64) -> (PursuitClassifier, DMatrix<f64>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut teacher = rand_mat(8, 12, &mut rng);
        normalise_columns(&mut teacher);
        let (x, labels) = teacher_images(&teacher, 90, &mut rng);
        let mut d = rand_mat(8, 12, &mut rng);
        normalise_columns(&mut d);
        let clf = LinearClassifier { w: rand_mat(3, 4, &mut rng), b: DVector::zeros(3) };
        let mut m = PursuitClassifier::new(CodeKind::Pgbp, d, 3, 0.3, clf, TaskLoss::CrossEntropy).unwrap();
        m.set_solver_params(SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() }).unwrap();
        (m, x, labels)
    }

    #[test]
    fn task_driven_training_lowers_the_task_loss_with_a_fixed_classifier() {
        let (mut m, x, labels) = problem(7);
        let p = TaskDrivenParams { epochs: 15, lr: 2e-2, clf_lr: None, batch_size: 30, ..TaskDrivenParams::default() };
        let w0 = m.classifier.clone();
        let hist = train_task_driven(&mut m, &x, &labels, &p).unwrap();
        let (first, last) = (hist[0].task, hist.last().unwrap().task);
        assert!(last < 0.8 * first, "task loss {first} -> {last}");
        assert_eq!(m.classifier, w0, "classifier must stay fixed");
        assert!(m.solver().dictionary().column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-12));
    }

    /// Central differences of the whole objective (task + reconstruction + gap) in every
    /// dictionary entry (re-solving the code) and every classifier entry, for BP, GBP, PGBP.
    #[test]
    fn task_driven_gradient_matches_finite_differences() {
        let p = TaskDrivenParams { recon_weight: 0.7, gap_weight: 0.3, gap_margin: 5.0, ..TaskDrivenParams::default() };
        let mut checked = 0;
        for (seed, kind) in [(21u64, CodeKind::Bp), (22, CodeKind::Gbp), (23, CodeKind::Pgbp)] {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = rand_mat(8, 12, &mut rng);
            normalise_columns(&mut d);
            let nf = if kind == CodeKind::Pgbp { 4 } else { 12 };
            let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng), b: DVector::from_element(3, 0.1) };
            let build = |d: &DMatrix<f64>, clf: &LinearClassifier| {
                let mut m =
                    PursuitClassifier::new(kind, d.clone(), 3, 0.4, clf.clone(), TaskLoss::CrossEntropy).unwrap();
                m.set_solver_params(tight()).unwrap();
                m
            };
            let x = rand_mat(8, 3, &mut rng) * 2.0;
            let labels = [0, 1, 2];
            let total = |m: &PursuitClassifier| task_driven_loss(m, &x, &labels, p.gap_margin).unwrap().total(&p);
            let m = build(&d, &clf);
            let g = task_driven_gradient(&m, &x, &labels, &p).unwrap();
            assert!((g.loss.total(&p) - total(&m)).abs() < 1e-12);
            assert!(g.loss.gap > 0.0 && g.loss.recon > 0.0, "{kind:?}: every term must contribute ({:?})", g.loss);
            let h = 1e-6;
            let tol = |fd: f64| 1e-5 * (1.0 + fd.abs());
            for i in 0..d.len() {
                let (mut dp, mut dm) = (d.clone(), d.clone());
                dp[i] += h;
                dm[i] -= h;
                let fd = (total(&build(&dp, &clf)) - total(&build(&dm, &clf))) / (2.0 * h);
                assert!((fd - g.dictionary[i]).abs() < tol(fd), "{kind:?} D[{i}]: fd {fd} vs {}", g.dictionary[i]);
                checked += 1;
            }
            for i in 0..clf.w.len() {
                let (mut cp, mut cm) = (clf.clone(), clf.clone());
                cp.w[i] += h;
                cm.w[i] -= h;
                let fd = (total(&build(&d, &cp)) - total(&build(&d, &cm))) / (2.0 * h);
                assert!((fd - g.w[i]).abs() < tol(fd), "{kind:?} W[{i}]: fd {fd} vs {}", g.w[i]);
            }
            for i in 0..3 {
                let (mut cp, mut cm) = (clf.clone(), clf.clone());
                cp.b[i] += h;
                cm.b[i] -= h;
                let fd = (total(&build(&d, &cp)) - total(&build(&d, &cm))) / (2.0 * h);
                assert!((fd - g.b[i]).abs() < tol(fd), "{kind:?} b[{i}]: fd {fd} vs {}", g.b[i]);
            }
        }
        assert_eq!(checked, 3 * 96);
    }

    /// The batch gradient is the same bit for bit on 1, 2 and 3 threads and from run to run
    /// (the sums over columns are taken in fixed chunks and a fixed order: same seed, same numbers).
    #[test]
    fn gradient_does_not_depend_on_the_thread_count() {
        let (m, x, labels) = problem(5);
        let p = TaskDrivenParams { recon_weight: 0.7, gap_weight: 0.3, gap_margin: 5.0, ..TaskDrivenParams::default() };
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let g = pool.install(|| task_driven_gradient(&m, &x, &labels, &p)).unwrap();
            (g.dictionary, g.w, g.b, g.loss.total(&p).to_bits())
        };
        let one = on(1);
        for threads in [2, 3, 2, 3] {
            assert!(on(threads) == one, "{threads} threads differ from one");
        }
    }

    #[test]
    fn joint_training_with_reconstruction_and_warmup_lowers_the_objective() {
        for (kind, seed) in [(CodeKind::Bp, 31u64), (CodeKind::Gbp, 32), (CodeKind::Pgbp, 33)] {
            let (m0, x, labels) = problem(seed);
            let nf = if kind == CodeKind::Pgbp { 4 } else { 12 };
            let mut rng = StdRng::seed_from_u64(seed);
            let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng) * 0.1, b: DVector::zeros(3) };
            let d = m0.solver().dictionary().clone();
            let mut m = PursuitClassifier::new(kind, d, 3, 0.3, clf, TaskLoss::CrossEntropy).unwrap();
            m.set_solver_params(SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() }).unwrap();
            let p = TaskDrivenParams {
                epochs: 10,
                lr: 1e-2,
                clf_lr: Some(5e-2),
                batch_size: 30,
                recon_weight: 0.1,
                warmup_steps: 6,
                ..TaskDrivenParams::default()
            };
            let hist = train_task_driven(&mut m, &x, &labels, &p).unwrap();
            let (first, last) = (hist[0].total(&p), hist.last().unwrap().total(&p));
            assert!(last < 0.7 * first, "{kind:?}: objective {first} -> {last}");
            assert_eq!(m.lambda, 0.3, "target penalty after the warm-up");
            assert_eq!(m.solver().groups().groups()[0].weight, 0.3);
        }
        assert!((warmup_lambda(1.0, 0, 3) - 0.25).abs() < 1e-15 && warmup_lambda(1.0, 3, 3) == 1.0);
        assert_eq!(warmup_lambda(0.5, 0, 0), 0.5);
    }

    #[test]
    fn gap_term_lowers_the_gap_regulariser_monotonically() {
        let (mut m, x, labels) = problem(8);
        let p = TaskDrivenParams {
            epochs: 20,
            lr: 5e-4,
            clf_lr: None,
            batch_size: 90,
            task_weight: 0.0,
            gap_weight: 1.0,
            gap_margin: 3.0,
            ..TaskDrivenParams::default()
        };
        let hist = train_task_driven(&mut m, &x, &labels, &p).unwrap();
        let (first, last) = (hist[0].gap, hist.last().unwrap().gap);
        assert!(last < first, "gap regulariser {first} -> {last}");
        // full batch, small steps: every epoch lowers it
        assert!(hist.windows(2).all(|w| w[1].gap < w[0].gap), "{hist:?}");
        assert!(TaskDrivenParams { gap_weight: -1.0, ..p.clone() }.check().is_err());
        assert!(train_task_driven(&mut m, &x, &labels[1..], &p).is_err());
    }
}
