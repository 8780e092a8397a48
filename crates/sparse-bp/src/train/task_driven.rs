//! Task-driven dictionary learning and the gap regulariser (spec section 4, "Training").
//!
//! **Task-driven learning** ([`train_task_driven`]) updates the dictionary of a
//! [`PursuitClassifier`] through the task loss: the code `z(x; D)` is differentiated by
//! [`crate::implicit::vjp_full`] (implicit differentiation at the solution), so
//! `dL/dD = sum_samples vjp_full(x, z, dL/dz).dictionary`. Optionally the linear classifier
//! is trained jointly (Adam on both), a reconstruction term `1/(2n) ||X - D Z||_F^2`
//! (its gradient at the solution is `-(X - DZ) Z^T / n` by the envelope theorem) and the
//! gap regulariser are added. After every step the atoms are renormalised to unit norm.
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
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{Result, SparseBpError, check_finite};
use crate::implicit::vjp_full;
use crate::models::{CodeKind, LinearClassifier, PursuitClassifier};
use crate::nn::Adam;
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
/// | `seed` | 0 | shuffling | any |
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
    /// Seed.
    pub seed: u64,
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
            seed: 0,
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

/// Task-driven training of `model`'s dictionary (and optionally its classifier), see the
/// module docs. Returns the objective terms on the whole training set after every epoch
/// (entry 0: before training).
pub fn train_task_driven(
    model: &mut PursuitClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<Vec<TaskDrivenLoss>> {
    p.check()?;
    crate::models::check_batch(&*model, x)?;
    if labels.len() != x.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (x.ncols(), 1), got: (labels.len(), 1) });
    }
    if labels.is_empty() {
        return Err(SparseBpError::Empty { what: "training set" });
    }
    let mut history = vec![task_driven_loss(model, x, labels, p.gap_margin)?];
    let mut d = model.solver().dictionary().clone();
    let mut w = model.classifier.w.clone();
    let mut b = DMatrix::from_column_slice(model.classifier.b.len(), 1, model.classifier.b.as_slice());
    let mut adam_d = Adam::new(p.lr);
    let mut adam_c = Adam::new(p.clf_lr.unwrap_or(1.0));
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut order: Vec<usize> = (0..x.ncols()).collect();
    let solver_params = model.solver().params().clone();
    let (kind, gs, lambda, task) = (model.kind, model.group_size, model.lambda, model.task);
    for epoch in 0..p.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(p.batch_size) {
            let xb = DMatrix::from_fn(x.nrows(), chunk.len(), |i, j| x[(i, chunk[j])]);
            let lb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let solver = model.solver();
            let z = solver.solve(&xb)?.codes;
            let f = model.features_from_codes(&z);
            let logits = model.classifier.logits(&f)?;
            let (_, dl) = task.value_and_grad(&logits, &lb)?; // mean over the batch
            let dl = dl * p.task_weight;
            let df = model.classifier.w.tr_mul(&dl);
            let n = chunk.len() as f64;
            let per_sample: Vec<Result<DMatrix<f64>>> = (0..chunk.len())
                .into_par_iter()
                .map(|j| {
                    let zj = z.column(j).into_owned();
                    let xj = xb.column(j).into_owned();
                    let v = match kind {
                        CodeKind::Bp | CodeKind::Gbp => df.column(j).into_owned(),
                        CodeKind::Pgbp => DVector::from_fn(zj.len(), |a, _| {
                            let g = a / gs;
                            if f[(g, j)] > 0.0 { df[(g, j)] * zj[a] / f[(g, j)] } else { 0.0 }
                        }),
                    };
                    let mut gd = vjp_full(solver, &xj, &zj, &v)?.dictionary;
                    if p.gap_weight > 0.0 {
                        let gap = gap_regulariser(solver, &xj, &zj, p.gap_margin)?;
                        gd += gap.d_dict * (p.gap_weight / n);
                    }
                    Ok(gd)
                })
                .collect();
            let mut gd = DMatrix::zeros(d.nrows(), d.ncols());
            for g in per_sample {
                gd += g?;
            }
            if p.recon_weight > 0.0 {
                gd -= (&xb - &d * &z) * z.transpose() * (p.recon_weight / n);
            }
            adam_d.step(std::iter::once(&mut d), &[&gd]);
            normalise_columns(&mut d);
            if p.clf_lr.is_some() {
                let gw = &dl * f.transpose();
                let gb = DMatrix::from_fn(w.nrows(), 1, |i, _| dl.row(i).sum());
                adam_c.step([&mut w, &mut b].into_iter(), &[&gw, &gb]);
            }
            let clf = LinearClassifier { w: w.clone(), b: b.column(0).into_owned() };
            let mut next = PursuitClassifier::new(kind, d.clone(), gs, lambda, clf, task)?;
            next.set_solver_params(solver_params.clone())?;
            *model = next;
        }
        let l = task_driven_loss(model, x, labels, p.gap_margin)?;
        tracing::info!(epoch, task = l.task, recon = l.recon, gap = l.gap, "task-driven epoch");
        history.push(l);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{GroupNorm, GroupSpec};
    use crate::models::TaskLoss;
    use crate::solver::SolverParams;
    use rand::RngExt;
    use rand_distr::StandardNormal;

    fn rand_mat(r: usize, c: usize, rng: &mut StdRng) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| rng.sample::<f64, _>(StandardNormal))
    }

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
        // labels: which third of the teacher's atoms carries the largest code
        let n = 90;
        let mut x = DMatrix::zeros(8, n);
        let mut labels = Vec::with_capacity(n);
        for j in 0..n {
            let c = j % 3;
            let a = 4 * c + rng.random_range(0..4);
            let b = rng.random_range(0..12);
            let col = teacher.column(a) * rng.random_range(1.0..2.0) + teacher.column(b) * 0.5;
            x.set_column(j, &col);
            labels.push(c);
        }
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
