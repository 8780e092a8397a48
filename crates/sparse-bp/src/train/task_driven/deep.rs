//! End-to-end (task-driven) training of the 3-layer models of [`crate::models::deep`]:
//! every layer's dictionary and the classifier, on cross-entropy + reconstruction, by
//! implicit differentiation at the pursuit's solution (issue 20).
//!
//! The objective on a batch of `n` samples is
//! `task_weight * mean task loss + recon_weight * 1/(2n) sum_j ||Gamma_{j-1} - D_j Gamma_j||_F^2`
//! (`Gamma_0 = X`); for Deep Pursuit the reconstruction term is exactly the stacked
//! problem's `1/(2n) ||[X; 0; ...] - A Gamma||_F^2`.
//!
//! * **Layered** (LBP, LGBP, LPGBP): `Gamma_j = BP(D_j, Gamma_{j-1})`. Back-propagation
//!   runs through the chain of layer solutions: at layer `j` the cotangent `v_j` on
//!   `Gamma_j` gives, by [`crate::implicit::vjp_full`]'s formulas for that layer's problem,
//!   `dL/dD_j` and the cotangent `D_{j,S} y` handed to `Gamma_{j-1}`. The reconstruction
//!   terms add their direct partials (`-D_j^T r_j` on `Gamma_j`, `r_j` on `Gamma_{j-1}`,
//!   `-r_j Gamma_j^T` on `D_j`).
//! * **Deep** (DP, GDP, PGDP): the joint problem is one group-BP problem on the stacked code
//!   with the block dictionary `A` (`D_j` on the diagonal, fixed `-I` blocks below it). One
//!   adjoint solve at the stacked solution gives `dL/dA`; each layer's gradient is its
//!   diagonal block. So every DP-family model is trained on its own (joint) objective.
//!
//! Both gradients are checked against central finite differences in the tests (re-solving
//! the pursuit for every perturbed entry). Group-gap regularisation is not supported here.
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use sparse_bp::models::deep::{MultiLayerClassifier, Pursuit};
//! use sparse_bp::models::{CodeKind, LinearClassifier, TaskLoss};
//! use sparse_bp::train::task_driven::{TaskDrivenParams, deep::train_multilayer};
//! let dicts = vec![DMatrix::<f64>::identity(4, 4), DMatrix::<f64>::identity(4, 4)];
//! let clf = LinearClassifier { w: DMatrix::from_fn(2, 4, |i, j| if i == j % 2 { 1.0 } else { -1.0 }), b: DVector::zeros(2) };
//! let mut m = MultiLayerClassifier::new(Pursuit::Deep, CodeKind::Bp, dicts, 1, vec![0.05, 0.05], clf, TaskLoss::CrossEntropy)?;
//! let x = DMatrix::from_column_slice(4, 2, &[1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.5]);
//! let p = TaskDrivenParams { epochs: 3, batch_size: 2, recon_weight: 0.1, ..TaskDrivenParams::default() };
//! let hist = train_multilayer(&mut m, &x, &[0, 1], &p)?;
//! assert_eq!(hist.len(), 4);
//! assert!(m.dictionaries().iter().all(|d| d.column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-12)));
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```

use nalgebra::{DMatrix, DVector};

use super::trainer::{EndToEnd, check_labelled, train_epochs};
use super::{TaskDrivenLoss, TaskDrivenParams, accumulate_dictionary, code_cotangent, warmup_lambda};
use crate::error::{Result, SparseBpError};
use crate::implicit::adjoint;
use crate::models::LinearClassifier;
use crate::models::deep::{MultiLayerClassifier, Pursuit};

/// Gradient of the multi-layer training objective on one batch (the end-to-end trainers'
/// gradient of a shallow model too, with one dictionary).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiLayerGradient {
    /// The objective terms on the batch (`gap` is always 0).
    pub loss: TaskDrivenLoss,
    /// `d total / d D_j` for every layer (Euclidean, unconstrained entries).
    pub dictionaries: Vec<DMatrix<f64>>,
    /// `d total / d W`.
    pub w: DMatrix<f64>,
    /// `d total / d b`.
    pub b: DVector<f64>,
}

/// Per-layer matrices (codes or residuals).
type Layers = Vec<DMatrix<f64>>;

/// Every layer's code and residual `r_j = Gamma_{j-1} - D_j Gamma_j`.
fn codes_and_residuals(model: &MultiLayerClassifier, x: &DMatrix<f64>) -> Result<(Layers, Layers)> {
    residuals(model, x, model.codes(x)?)
}

/// The residuals `r_j = Gamma_{j-1} - D_j Gamma_j` of every layer's `codes`.
fn residuals(model: &MultiLayerClassifier, x: &DMatrix<f64>, codes: Layers) -> Result<(Layers, Layers)> {
    let res = codes
        .iter()
        .zip(model.dictionaries())
        .enumerate()
        .map(|(j, (z, d))| {
            let prev = if j == 0 { x } else { &codes[j - 1] };
            prev - d * z
        })
        .collect();
    Ok((codes, res))
}

/// The objective terms of [`train_multilayer`] for `model` on `(x, labels)`.
pub fn multilayer_loss(model: &MultiLayerClassifier, x: &DMatrix<f64>, labels: &[usize]) -> Result<TaskDrivenLoss> {
    let (codes, res) = codes_and_residuals(model, x)?;
    let last = codes.last().ok_or(SparseBpError::Empty { what: "layers" })?;
    let logits = model.classifier.logits(&model.features_from_last(last))?;
    let (task, _) = model.task.value_and_grad(&logits, labels)?;
    let n = x.ncols().max(1) as f64;
    let recon = res.iter().map(|r| 0.5 * r.norm_squared()).sum::<f64>() / n;
    Ok(TaskDrivenLoss { task, recon, gap: 0.0 })
}

pub(crate) fn check_params(p: &TaskDrivenParams) -> Result<()> {
    p.check()?;
    if p.gap_weight != 0.0 {
        return Err(SparseBpError::InvalidParam {
            name: "gap_weight",
            value: p.gap_weight,
            expected: "0 for multi-layer models (the gap regulariser is shallow-only)",
        });
    }
    Ok(())
}

/// The objective of [`train_multilayer`] on the batch `(x, labels)` and its exact gradient
/// with respect to every layer's dictionary and the classifier (module docs).
pub fn multilayer_gradient(
    model: &MultiLayerClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<MultiLayerGradient> {
    multilayer_gradient_warm(model, x, labels, p, None).map(|(g, _)| g)
}

/// [`multilayer_gradient`] with the pursuit started from `init` (every layer's code stacked,
/// first layer on top, `sum_j M_j x batch`: e.g. the codes of the same images from the
/// previous epoch; `None`: from 0). Layered models warm-start each layer's problem from its
/// block, Deep Pursuit models the joint problem from the whole stacked code; the solvers stop
/// on the same relative duality gap either way. Also returns the batch's stacked codes.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use sparse_bp::models::deep::{MultiLayerClassifier, Pursuit};
/// use sparse_bp::models::{CodeKind, LinearClassifier, TaskLoss};
/// use sparse_bp::train::task_driven::TaskDrivenParams;
/// use sparse_bp::train::task_driven::deep::multilayer_gradient_warm;
/// let dicts = vec![DMatrix::<f64>::identity(3, 3), DMatrix::<f64>::identity(3, 3)];
/// let clf = LinearClassifier { w: DMatrix::from_fn(2, 3, |i, j| (i + j) as f64 - 1.0), b: DVector::zeros(2) };
/// let m = MultiLayerClassifier::new(Pursuit::Deep, CodeKind::Bp, dicts, 1, vec![0.1, 0.1], clf, TaskLoss::CrossEntropy)?;
/// let x = DMatrix::from_column_slice(3, 2, &[1.0, 0.2, 0.0, 0.0, 0.5, 2.0]);
/// let p = TaskDrivenParams { recon_weight: 0.1, ..TaskDrivenParams::default() };
/// let (cold, z) = multilayer_gradient_warm(&m, &x, &[0, 1], &p, None)?;
/// assert_eq!(z.shape(), (6, 2)); // both layers' codes, stacked
/// let (warm, _) = multilayer_gradient_warm(&m, &x, &[0, 1], &p, Some(&z))?;
/// assert!((&warm.dictionaries[1] - &cold.dictionaries[1]).amax() < 1e-6);
/// # Ok::<(), sparse_bp::SparseBpError>(())
/// ```
pub fn multilayer_gradient_warm(
    model: &MultiLayerClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
    init: Option<&DMatrix<f64>>,
) -> Result<(MultiLayerGradient, DMatrix<f64>)> {
    check_params(p)?;
    check_labelled(model, x, labels, "training batch")?;
    let dicts = model.dictionaries();
    let nl = dicts.len();
    let rows: usize = dicts.iter().map(|d| d.ncols()).sum();
    if let Some(z0) = init
        && z0.shape() != (rows, x.ncols())
    {
        return Err(SparseBpError::ShapeMismatch { what: "warm start", expected: (rows, x.ncols()), got: z0.shape() });
    }
    let mut warm = init.cloned();
    let codes = model.codes_warm(x, &mut warm)?;
    let stacked = warm.ok_or(SparseBpError::Empty { what: "layers" })?;
    let (codes, res) = residuals(model, x, codes)?;
    let last = &codes[nl - 1];
    let f = model.features_from_last(last);
    let logits = model.classifier.logits(&f)?;
    let (task, dl) = model.task.value_and_grad(&logits, labels)?;
    let dl = dl * p.task_weight;
    let df = model.classifier.w.tr_mul(&dl);
    let n = x.ncols() as f64;
    let c = p.recon_weight / n;
    let recon = res.iter().map(|r| 0.5 * r.norm_squared()).sum::<f64>() / n;
    let (kind, gs) = (model.kind, model.group_size);
    let solvers = model.solvers();
    // offsets of each layer's block in the stacked code and input
    let mut blocks = Vec::with_capacity(nl);
    let (mut r0, mut c0) = (0, 0);
    for d in dicts {
        blocks.push((r0, c0, d.nrows()));
        r0 += d.nrows();
        c0 += d.ncols();
    }
    let (total_rows, total_cols) = (r0, c0);
    // the non-zero rows of each column of the stacked dictionary (Deep Pursuit): `A^T r` skips
    // its zero blocks, bit for bit as `A.tr_mul(r)`
    let a_rows = match model.pursuit {
        Pursuit::Deep => crate::solver::kernels::column_ranges(solvers[0].dictionary()),
        Pursuit::Layered => Vec::new(),
    };
    let zero = || dicts.iter().map(|d| DMatrix::zeros(d.nrows(), d.ncols())).collect::<Vec<_>>();
    let fold = |mut acc: Vec<DMatrix<f64>>, j: usize| -> Result<Vec<DMatrix<f64>>> {
        let v_last = code_cotangent(kind, gs, last, &f, &df, j);
        let z: Vec<DVector<f64>> = codes.iter().map(|z| z.column(j).into_owned()).collect();
        let r: Vec<DVector<f64>> = res.iter().map(|r| r.column(j).into_owned()).collect();
        // direct partials of the reconstruction terms on the dictionaries
        if c > 0.0 {
            for l in 0..nl {
                for (s, &zs) in z[l].iter().enumerate() {
                    if zs != 0.0 {
                        acc[l].column_mut(s).axpy(-c * zs, &r[l], 1.0);
                    }
                }
            }
        }
        match model.pursuit {
            Pursuit::Layered => {
                let mut cot: Vec<DVector<f64>> = z.iter().map(|zl| DVector::zeros(zl.len())).collect();
                cot[nl - 1] += &v_last;
                if c > 0.0 {
                    for l in 0..nl {
                        cot[l] -= dicts[l].tr_mul(&r[l]) * c;
                        if l > 0 {
                            cot[l - 1].axpy(c, &r[l], 1.0);
                        }
                    }
                }
                for l in (0..nl).rev() {
                    let adj = adjoint(&solvers[l], &z[l], &cot[l]).map_err(SparseBpError::in_layer(Some(l + 1), j))?;
                    if let Some((support, y)) = adj {
                        let dy = accumulate_dictionary(
                            &dicts[l],
                            &support,
                            &y,
                            &r[l],
                            &z[l],
                            std::slice::from_mut(&mut acc[l]),
                            &[(0, 0, dicts[l].nrows())],
                        );
                        if l > 0 {
                            cot[l - 1] += dy;
                        }
                    }
                }
            }
            Pursuit::Deep => {
                let a = solvers[0].dictionary();
                let mut zs = DVector::zeros(total_cols);
                let mut rs = DVector::zeros(total_rows);
                for (l, &(row0, col0, rows)) in blocks.iter().enumerate() {
                    zs.rows_mut(col0, z[l].len()).copy_from(&z[l]);
                    rs.rows_mut(row0, rows).copy_from(&r[l]);
                }
                let mut v = DVector::zeros(total_cols);
                v.rows_mut(total_cols - v_last.len(), v_last.len()).copy_from(&v_last);
                if c > 0.0 {
                    v -= crate::solver::kernels::tr_mul_vec(a, &a_rows, &rs) * c;
                }
                let adj = adjoint(&solvers[0], &zs, &v).map_err(SparseBpError::in_layer(None, j))?;
                if let Some((support, y)) = adj {
                    accumulate_dictionary(a, &support, &y, &rs, &zs, &mut acc, &blocks);
                }
            }
        }
        Ok(acc)
    };
    let acc = super::ordered_par_sum(x.ncols(), zero, fold, |mut a, b| {
        for (x, y) in a.iter_mut().zip(&b) {
            *x += y;
        }
        a
    })?;
    let w = &dl * f.transpose();
    let b = DVector::from_fn(dl.nrows(), |i, _| dl.row(i).sum());
    Ok((MultiLayerGradient { loss: TaskDrivenLoss { task, recon, gap: 0.0 }, dictionaries: acc, w, b }, stacked))
}

impl EndToEnd for MultiLayerClassifier {
    fn check_params(p: &TaskDrivenParams) -> Result<()> {
        check_params(p)
    }
    fn objective(&self, x: &DMatrix<f64>, labels: &[usize], _p: &TaskDrivenParams) -> Result<TaskDrivenLoss> {
        multilayer_loss(self, x, labels)
    }
    fn gradient_warm(
        &self,
        x: &DMatrix<f64>,
        labels: &[usize],
        p: &TaskDrivenParams,
        init: Option<&DMatrix<f64>>,
    ) -> Result<(MultiLayerGradient, DMatrix<f64>)> {
        multilayer_gradient_warm(self, x, labels, p, init)
    }
    fn code_rows(&self) -> usize {
        self.dictionaries().iter().map(|d| d.ncols()).sum()
    }
    fn dictionary_list(&self) -> Vec<DMatrix<f64>> {
        self.dictionaries().to_vec()
    }
    fn linear(&self) -> &LinearClassifier {
        &self.classifier
    }
    fn rebuilt(&self, dicts: &[DMatrix<f64>], clf: LinearClassifier, t: usize, warmup: usize) -> Result<Self> {
        let lw: Vec<f64> = self.weights.iter().map(|&l| warmup_lambda(l, t, warmup)).collect();
        MultiLayerClassifier::with_solver_params(
            self.pursuit,
            self.kind,
            dicts.to_vec(),
            self.group_size,
            lw,
            clf,
            self.task,
            self.solvers()[0].params().clone(),
        )
    }
    fn label(&self) -> &'static str {
        self.name()
    }
}

/// End-to-end training of a 3-layer (any depth) model: Adam on every layer's dictionary
/// (learning rate `p.lr`) and, unless `p.clf_lr` is `None`, on the classifier, with
/// [`multilayer_gradient`] per mini-batch; atoms renormalised to unit norm after every
/// step; every layer's penalty warmed up over `p.warmup_steps` steps
/// ([`super::warmup_lambda`]). Returns the objective terms on the whole training set (at
/// the target penalties) after every epoch (entry 0: before training).
/// [`super::early_stopping::train_validated`] is the same with early stopping on
/// a held-out set.
pub fn train_multilayer(
    model: &mut MultiLayerClassifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<Vec<TaskDrivenLoss>> {
    train_epochs(model, x, labels, p)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{rand_mat, teacher_images};
    use super::super::normalise_columns;
    use super::*;
    use crate::models::deep::Pursuit;
    use crate::models::{Classifier, CodeKind, TaskLoss};
    use crate::solver::SolverParams;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn tight() -> SolverParams {
        // exact homotopy for the l1 problems, coordinate descent for the group ones
        SolverParams {
            algorithm: crate::solver::Algorithm::Auto,
            tol: 1e-15,
            max_iter: 400_000,
            ..SolverParams::default()
        }
    }

    fn model(pursuit: Pursuit, kind: CodeKind, seed: u64, params: SolverParams) -> MultiLayerClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dicts = vec![rand_mat(8, 10, &mut rng), rand_mat(10, 6, &mut rng)];
        dicts.iter_mut().for_each(normalise_columns);
        let nf = if kind == CodeKind::Pgbp { 3 } else { 6 };
        let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng), b: DVector::from_element(3, 0.1) };
        MultiLayerClassifier::with_solver_params(
            pursuit,
            kind,
            dicts,
            2,
            vec![0.15, 0.08],
            clf,
            TaskLoss::CrossEntropy,
            params,
        )
        .unwrap()
    }

    fn rebuilt(m: &MultiLayerClassifier, dicts: Vec<DMatrix<f64>>, clf: LinearClassifier) -> MultiLayerClassifier {
        MultiLayerClassifier::with_solver_params(
            m.pursuit,
            m.kind,
            dicts,
            m.group_size,
            m.weights.clone(),
            clf,
            m.task,
            m.solvers()[0].params().clone(),
        )
        .unwrap()
    }

    /// The central difference of `total` in entry `i` (column-major) of layer `l`'s dictionary,
    /// each side a model rebuilt with the moved dictionary (its pursuit solved again).
    fn fd_dictionary_entry(
        m: &MultiLayerClassifier,
        l: usize,
        i: usize,
        h: f64,
        total: &dyn Fn(&MultiLayerClassifier) -> f64,
    ) -> f64 {
        let (mut dp, mut dm) = (m.dictionaries().to_vec(), m.dictionaries().to_vec());
        dp[l][i] += h;
        dm[l][i] -= h;
        (total(&rebuilt(m, dp, m.classifier.clone())) - total(&rebuilt(m, dm, m.classifier.clone()))) / (2.0 * h)
    }

    /// The end-to-end gradient through a layer more than twice overcomplete (10 -> 40 atoms,
    /// Gram-free working-set solves; for Deep Pursuit the stacked 18 x 50 problem): central
    /// differences of `task + recon_weight * recon` in every tenth dictionary entry of both layers.
    #[test]
    fn gradient_through_a_gram_free_layer_matches_finite_differences() {
        let p = TaskDrivenParams { recon_weight: 0.7, ..TaskDrivenParams::default() };
        for (seed, pursuit, kind) in [
            (61u64, Pursuit::Layered, CodeKind::Bp),
            (62, Pursuit::Layered, CodeKind::Gbp),
            (63, Pursuit::Deep, CodeKind::Bp),
            (64, Pursuit::Deep, CodeKind::Pgbp),
        ] {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut dicts = vec![rand_mat(8, 10, &mut rng), rand_mat(10, 40, &mut rng)];
            dicts.iter_mut().for_each(normalise_columns);
            let nf = if kind == CodeKind::Pgbp { 20 } else { 40 };
            let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng), b: DVector::from_element(3, 0.1) };
            let m = MultiLayerClassifier::with_solver_params(
                pursuit,
                kind,
                dicts,
                2,
                vec![0.15, 0.05],
                clf,
                TaskLoss::CrossEntropy,
                tight(),
            )
            .unwrap();
            assert!(m.solvers().last().unwrap().gram_free(), "{}", m.name());
            let x = rand_mat(8, 3, &mut rng) * 2.0;
            let labels = vec![0, 1, 2];
            assert!(m.codes(&x).unwrap()[1].iter().any(|v| *v != 0.0), "{}: layer 2 empty", m.name());
            let g = multilayer_gradient(&m, &x, &labels, &p).unwrap();
            let total = |m: &MultiLayerClassifier| {
                let l = multilayer_loss(m, &x, &labels).unwrap();
                l.task + p.recon_weight * l.recon
            };
            let h = 1e-6;
            for l in 0..2 {
                assert!(g.dictionaries[l].norm() > 0.0, "{} layer {l}: zero gradient", m.name());
                // every 10th entry (each one re-solves the pursuit twice at tolerance 1e-15)
                for i in (l..m.dictionaries()[l].len()).step_by(10) {
                    let fd = fd_dictionary_entry(&m, l, i, h, &total);
                    let an = g.dictionaries[l][i];
                    assert!((fd - an).abs() < 1e-5 * (1.0 + fd.abs()), "{} D_{l}[{i}]: fd {fd} vs {an}", m.name());
                }
            }
        }
    }

    /// Central differences of `task + recon_weight * recon` in every dictionary entry of
    /// every layer (re-solving the pursuit) and every classifier entry, for all six models.
    #[test]
    fn multilayer_gradient_matches_finite_differences() {
        let p = TaskDrivenParams { recon_weight: 0.7, ..TaskDrivenParams::default() };
        let mut checked = 0;
        for (s, pursuit) in [(30u64, Pursuit::Layered), (40, Pursuit::Deep)] {
            for (k, kind) in [CodeKind::Bp, CodeKind::Gbp, CodeKind::Pgbp].into_iter().enumerate() {
                let seed = s + k as u64;
                let m = model(pursuit, kind, seed, tight());
                let mut rng = StdRng::seed_from_u64(seed + 100);
                let x = rand_mat(8, 3, &mut rng) * 2.0;
                let labels = vec![0, 1, 2];
                let codes = m.codes(&x).unwrap();
                assert!(codes.iter().all(|c| c.iter().any(|v| *v != 0.0)), "{}: a layer is empty", m.name());
                let g = multilayer_gradient(&m, &x, &labels, &p).unwrap();
                let total = |m: &MultiLayerClassifier| {
                    let l = multilayer_loss(m, &x, &labels).unwrap();
                    l.task + p.recon_weight * l.recon
                };
                assert!((g.loss.task + p.recon_weight * g.loss.recon - total(&m)).abs() < 1e-12);
                assert!(g.dictionaries.iter().all(|d| d.norm() > 0.0), "{}: a zero layer gradient", m.name());
                let h = 1e-6;
                let tol = |fd: f64| 1e-5 * (1.0 + fd.abs());
                for l in 0..2 {
                    for i in 0..m.dictionaries()[l].len() {
                        let fd = fd_dictionary_entry(&m, l, i, h, &total);
                        let an = g.dictionaries[l][i];
                        assert!((fd - an).abs() < tol(fd), "{} D_{l}[{i}]: fd {fd} vs {an}", m.name());
                        checked += 1;
                    }
                }
                for i in 0..m.classifier.w.len() {
                    let (mut cp, mut cm) = (m.classifier.clone(), m.classifier.clone());
                    cp.w[i] += h;
                    cm.w[i] -= h;
                    let fd = (total(&rebuilt(&m, m.dictionaries().to_vec(), cp))
                        - total(&rebuilt(&m, m.dictionaries().to_vec(), cm)))
                        / (2.0 * h);
                    assert!((fd - g.w[i]).abs() < tol(fd), "{} W[{i}]: fd {fd} vs {}", m.name(), g.w[i]);
                }
                for i in 0..3 {
                    let (mut cp, mut cm) = (m.classifier.clone(), m.classifier.clone());
                    cp.b[i] += h;
                    cm.b[i] -= h;
                    let fd = (total(&rebuilt(&m, m.dictionaries().to_vec(), cp))
                        - total(&rebuilt(&m, m.dictionaries().to_vec(), cm)))
                        / (2.0 * h);
                    assert!((fd - g.b[i]).abs() < tol(fd), "{} b[{i}]: fd {fd} vs {}", m.name(), g.b[i]);
                }
            }
        }
        assert_eq!(checked, 6 * (80 + 60));
    }

    /// A 3-class problem: the class is which third of a teacher's atoms carries the largest code.
    fn problem(seed: u64) -> (DMatrix<f64>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut teacher = rand_mat(8, 12, &mut rng);
        normalise_columns(&mut teacher);
        teacher_images(&teacher, 60, &mut rng)
    }

    /// The batch gradient of layered and Deep Pursuit models is the same bit for bit on 1, 2 and
    /// 3 threads (fixed chunks, fixed order of the sums).
    #[test]
    fn gradient_does_not_depend_on_the_thread_count() {
        let (x, labels) = problem(9);
        let p = TaskDrivenParams { recon_weight: 0.7, ..TaskDrivenParams::default() };
        for (pursuit, kind, seed) in [(Pursuit::Layered, CodeKind::Gbp, 60), (Pursuit::Deep, CodeKind::Pgbp, 61)] {
            let m = model(pursuit, kind, seed, tight());
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let g = pool.install(|| multilayer_gradient(&m, &x, &labels, &p)).unwrap();
                (g.dictionaries, g.w, g.b)
            };
            let one = on(1);
            for threads in [2, 3, 2] {
                assert!(on(threads) == one, "{pursuit:?} {kind:?}: {threads} threads differ from one");
            }
        }
    }

    #[test]
    fn end_to_end_training_lowers_the_objective_for_layered_and_deep_models() {
        let (x, labels) = problem(9);
        let params = SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() };
        for (pursuit, kind, seed) in [(Pursuit::Layered, CodeKind::Bp, 50), (Pursuit::Deep, CodeKind::Pgbp, 51)] {
            let mut m = model(pursuit, kind, seed, params.clone());
            let p = TaskDrivenParams {
                epochs: 12,
                lr: 1e-2,
                clf_lr: Some(2e-2),
                batch_size: 20,
                recon_weight: 0.1,
                warmup_steps: 6,
                ..TaskDrivenParams::default()
            };
            let acc0 = m.accuracy(&x, &labels).unwrap();
            let hist = train_multilayer(&mut m, &x, &labels, &p).unwrap();
            let total = |l: &TaskDrivenLoss| l.total(&p);
            let (first, last) = (total(&hist[0]), total(hist.last().unwrap()));
            assert!(last < 0.8 * first, "{}: objective {first} -> {last} ({hist:?})", m.name());
            assert!(m.accuracy(&x, &labels).unwrap() > acc0, "{}: training accuracy did not rise", m.name());
            assert_eq!(m.weights, vec![0.15, 0.08], "target penalties restored after the warm-up");
            assert!(m.dictionaries().iter().all(|d| d.column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-12)));
        }
    }

    #[test]
    fn typed_errors() {
        let (x, labels) = problem(1);
        let mut m = model(Pursuit::Deep, CodeKind::Bp, 1, SolverParams::default());
        let p = TaskDrivenParams { gap_weight: 1.0, ..TaskDrivenParams::default() };
        assert!(matches!(
            train_multilayer(&mut m, &x, &labels, &p),
            Err(SparseBpError::InvalidParam { name: "gap_weight", .. })
        ));
        let p = TaskDrivenParams::default();
        assert!(matches!(train_multilayer(&mut m, &x, &labels[1..], &p), Err(SparseBpError::ShapeMismatch { .. })));
        assert!(multilayer_gradient(&m, &x.columns(0, 0).into_owned(), &[], &p).is_err());
    }
}
