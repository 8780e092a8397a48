//! Training for the robust classifiers (spec section 4): dictionary learning with
//! unit-norm atoms and threshold warm-up, linear classifiers on codes or group norms
//! (hinge / cross-entropy, Adam), MSE training of the approximators, and model files
//! (serde + bincode 2, written atomically).
//!
//! Dictionary learning alternates a sparse-coding step (the batched [`Solver`]) and an
//! Adam step on `1/(2n) ||X - D Gamma||_F^2 + c ||I - D^T D||_F^2` (optional coherence
//! loss), then renormalises the atoms. The penalty is warmed up linearly from
//! `lambda / (warmup + 1)` to `lambda` over the first `warmup` epochs.
//!
//! Task-driven learning (the task loss back-propagated into `D` through the code by
//! implicit differentiation) and the gap regulariser are in [`task_driven`].
//!
//! ```
//! use nalgebra::DMatrix;
//! use sparse_bp::models::TaskLoss;
//! use sparse_bp::train::{FitParams, train_linear};
//! let f = DMatrix::from_column_slice(1, 4, &[-2.0, -1.0, 1.0, 2.0]);
//! let clf = train_linear(&f, &[0, 0, 1, 1], TaskLoss::Hinge, &FitParams::default()).unwrap();
//! assert!(clf.w[(0, 0)] > 0.0);
//! ```

use std::path::Path;

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, SparseBpError, check_finite};
use crate::groups::{GroupNorm, GroupSpec};
use crate::models::deep::MultiLayerClassifier;
use crate::models::{Approximator, LinearClassifier, PursuitClassifier, TaskLoss};
use crate::nn::{Adam, Network};
use crate::solver::{Algorithm, Solver, SolverParams};

pub mod task_driven;

/// Parameters of a gradient-based fit (classifiers and approximators).
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `epochs` | 50 | passes over the data | `>= 1` |
/// | `lr` | `1e-2` | Adam learning rate | finite, `> 0` |
/// | `batch_size` | 64 | samples per step | `>= 1` |
/// | `weight_decay` | `1e-4` | L2 penalty on weights (classifiers only) | finite, `>= 0` |
/// | `seed` | 0 | shuffling / initialisation | any |
#[derive(Debug, Clone, PartialEq)]
pub struct FitParams {
    /// Passes over the data.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Samples per step.
    pub batch_size: usize,
    /// L2 penalty on the classifier weights.
    pub weight_decay: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for FitParams {
    fn default() -> Self {
        Self { epochs: 50, lr: 1e-2, batch_size: 64, weight_decay: 1e-4, seed: 0 }
    }
}

impl FitParams {
    /// Validates the parameters.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(SparseBpError::InvalidParam { name: "epochs/batch_size", value: 0.0, expected: ">= 1" });
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(SparseBpError::InvalidParam { name: "lr", value: self.lr, expected: "finite, > 0" });
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(SparseBpError::InvalidParam {
                name: "weight_decay",
                value: self.weight_decay,
                expected: "finite, >= 0",
            });
        }
        Ok(())
    }
}

fn columns(x: &DMatrix<f64>, idx: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(x.nrows(), idx.len(), |i, j| x[(i, idx[j])])
}

/// Standardise features: returns per-row mean and scale so that the classifier can be
/// trained on `(f - mean) / scale` and folded back.
fn row_stats(f: &DMatrix<f64>) -> (Vec<f64>, Vec<f64>) {
    let n = f.ncols().max(1) as f64;
    let mean: Vec<f64> = (0..f.nrows()).map(|i| f.row(i).sum() / n).collect();
    let sd: Vec<f64> = (0..f.nrows())
        .map(|i| {
            let v = f.row(i).iter().map(|x| (x - mean[i]).powi(2)).sum::<f64>() / n;
            if v > 1e-12 { v.sqrt() } else { 1.0 }
        })
        .collect();
    (mean, sd)
}

/// Trains a linear classifier on features (`features x n`) with Adam; `task` decides the
/// number of outputs (1 for hinge, `max(label) + 1` for cross-entropy). Features are
/// standardised internally and the scaling is folded into the returned weights.
pub fn train_linear(f: &DMatrix<f64>, labels: &[usize], task: TaskLoss, p: &FitParams) -> Result<LinearClassifier> {
    p.check()?;
    check_finite("features", f.as_slice())?;
    if labels.len() != f.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (f.ncols(), 1), got: (labels.len(), 1) });
    }
    if labels.is_empty() {
        return Err(SparseBpError::Empty { what: "training set" });
    }
    let k = match task {
        TaskLoss::Hinge => 1,
        TaskLoss::CrossEntropy => labels.iter().max().map_or(2, |m| m + 1).max(2),
    };
    let (mean, sd) = row_stats(f);
    let fs = DMatrix::from_fn(f.nrows(), f.ncols(), |i, j| (f[(i, j)] - mean[i]) / sd[i]);
    let mut w = DMatrix::zeros(k, f.nrows());
    let mut b = DMatrix::zeros(k, 1);
    let mut adam = Adam::new(p.lr);
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    for _ in 0..p.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(p.batch_size) {
            let xb = columns(&fs, chunk);
            let lb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let mut logits = &w * &xb;
            for mut c in logits.column_iter_mut() {
                c += b.column(0);
            }
            let (_, g) = task.value_and_grad(&logits, &lb)?;
            let gw = &g * xb.transpose() + &w * p.weight_decay;
            let gb = DMatrix::from_fn(k, 1, |i, _| g.row(i).sum());
            adam.step([&mut w, &mut b].into_iter(), &[&gw, &gb]);
        }
    }
    // fold standardisation: w (f - m)/s + b = (w/s) f + (b - sum w m / s)
    let mut wf = w.clone();
    let mut bf = b.column(0).into_owned();
    for i in 0..f.nrows() {
        for r in 0..k {
            wf[(r, i)] = w[(r, i)] / sd[i];
            bf[r] -= w[(r, i)] * mean[i] / sd[i];
        }
    }
    Ok(LinearClassifier { w: wf, b: bf })
}

/// Trains `net` to predict `targets` (`n_out x n`) from `x` with the mean squared error.
/// Returns the final training MSE.
pub fn train_regression(net: &mut Network, x: &DMatrix<f64>, targets: &DMatrix<f64>, p: &FitParams) -> Result<f64> {
    p.check()?;
    if targets.shape() != (net.n_out(), x.ncols()) {
        return Err(SparseBpError::ShapeMismatch {
            what: "regression targets",
            expected: (net.n_out(), x.ncols()),
            got: targets.shape(),
        });
    }
    check_finite("regression targets", targets.as_slice())?;
    let mut adam = Adam::new(p.lr);
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut order: Vec<usize> = (0..x.ncols()).collect();
    let mut last = f64::NAN;
    for _ in 0..p.epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(p.batch_size) {
            if chunk.len() < 2 {
                continue; // batch norm needs two samples
            }
            let xb = columns(x, chunk);
            let tb = columns(targets, chunk);
            let (y, tape) = net.forward_train(&xb)?;
            let diff = &y - &tb;
            total += diff.norm_squared();
            let dy = diff * (2.0 / (chunk.len() * net.n_out()) as f64);
            let mut grads = net.zero_grads();
            net.backward(&tape, &dy, &mut grads)?;
            adam.step_network(net, &grads);
        }
        last = total / (x.ncols() * net.n_out()) as f64;
    }
    Ok(last)
}

/// Dictionary-learning parameters.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `atoms` | 256 | number of atoms `M` | `>= 1`, multiple of `group_size` |
/// | `group_size` | 1 | 1 = `l1`, otherwise group `l2` on contiguous blocks | `>= 1` |
/// | `lambda` | 1.0 | final penalty | finite, `> 0` |
/// | `epochs` | 3 | passes | `>= 1` |
/// | `warmup_epochs` | 1 | epochs of linear penalty warm-up | any |
/// | `lr` | `1e-3` | Adam learning rate on `D` | finite, `> 0` |
/// | `batch_size` | 256 | signals per step | `>= 1` |
/// | `coherence_weight` | 0 | weight of `||I - D^T D||_F^2` | finite, `>= 0` |
/// | `code_tol` | `1e-4` | relative duality gap of the coding step | finite, `> 0` |
/// | `seed` | 0 | initialisation / shuffling | any |
#[derive(Debug, Clone, PartialEq)]
pub struct DictParams {
    /// Number of atoms.
    pub atoms: usize,
    /// Group size (1 = l1).
    pub group_size: usize,
    /// Final penalty.
    pub lambda: f64,
    /// Passes.
    pub epochs: usize,
    /// Warm-up epochs.
    pub warmup_epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Signals per step.
    pub batch_size: usize,
    /// Coherence-loss weight.
    pub coherence_weight: f64,
    /// Coding tolerance.
    pub code_tol: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for DictParams {
    fn default() -> Self {
        Self {
            atoms: 256,
            group_size: 1,
            lambda: 1.0,
            epochs: 3,
            warmup_epochs: 1,
            lr: 1e-3,
            batch_size: 256,
            coherence_weight: 0.0,
            code_tol: 1e-4,
            seed: 0,
        }
    }
}

/// The group structure for `atoms` atoms in blocks of `group_size` (l1 if 1).
pub fn group_spec(atoms: usize, group_size: usize, lambda: f64) -> Result<GroupSpec> {
    if group_size <= 1 {
        GroupSpec::lasso(atoms, lambda)
    } else {
        GroupSpec::contiguous_blocks(atoms, group_size, lambda, GroupNorm::L2)
    }
}

fn normalise_columns(d: &mut DMatrix<f64>) {
    for mut c in d.column_iter_mut() {
        let n = c.norm();
        if n > 0.0 {
            c /= n;
        }
    }
}

/// The solver of the coding step of [`learn_dictionary_with`] (stopping on the relative duality
/// gap `DictParams::code_tol`, at most 500 iterations or epochs).
///
/// | field | default | meaning |
/// | --- | --- | --- |
/// | `algorithm` | `Fista` | the [`Algorithm`] |
/// | `factored` | `false` | FISTA / ISTA products `D^T (D y)` instead of `G y` ([`Solver::with_factored_products`]) |
/// | `warm_start` | `false` | start each signal's pursuit from its code of the previous epoch (kept sparse: its non-zeros); a batch with a signal not yet coded starts from zero |
/// | `gram_free` | `false` | no Gram matrix: working-set solves ([`Solver::new_gram_free`]) with `algorithm` on each working set (`factored` is then moot) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeStep {
    /// Which solver.
    pub algorithm: Algorithm,
    /// Factored products (FISTA / ISTA).
    pub factored: bool,
    /// Warm starts from the previous epoch's codes.
    pub warm_start: bool,
    /// Gram-free working-set solves ([`Solver::new_gram_free`]).
    pub gram_free: bool,
}

impl Default for CodeStep {
    fn default() -> Self {
        Self { algorithm: Algorithm::Fista, factored: false, warm_start: false, gram_free: false }
    }
}

/// Learns a unit-norm dictionary for signals `x` (`m x n`); returns `D` and the final
/// mean reconstruction error `||X - D Gamma||^2 / n` of the last epoch. The coding step is
/// FISTA on `G = D^T D` ([`CodeStep::default`]; [`learn_dictionary_with`] chooses another).
pub fn learn_dictionary(x: &DMatrix<f64>, p: &DictParams) -> Result<(DMatrix<f64>, f64)> {
    learn_dictionary_with(x, p, CodeStep::default())
}

/// [`learn_dictionary`] with the coding step's solver `code`: every solver stops on the same
/// relative duality gap `p.code_tol`, so the codes differ from FISTA's only within that
/// tolerance, and so does the dictionary learned from them.
pub fn learn_dictionary_with(x: &DMatrix<f64>, p: &DictParams, code: CodeStep) -> Result<(DMatrix<f64>, f64)> {
    check_finite("training signals", x.as_slice())?;
    if x.ncols() == 0 || x.nrows() == 0 {
        return Err(SparseBpError::Empty { what: "training signals" });
    }
    if !(p.lambda.is_finite() && p.lambda > 0.0) {
        return Err(SparseBpError::InvalidParam { name: "lambda", value: p.lambda, expected: "finite, > 0" });
    }
    let fit = FitParams { epochs: p.epochs, lr: p.lr, batch_size: p.batch_size, weight_decay: 0.0, seed: p.seed };
    fit.check()?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    // initialise with random training signals plus noise
    let mut d = DMatrix::from_fn(x.nrows(), p.atoms, |_, _| 0.1 * rng.sample::<f64, _>(StandardNormal));
    for j in 0..p.atoms {
        let s = rng.random_range(0..x.ncols());
        let mut c = d.column_mut(j);
        c += x.column(s);
    }
    normalise_columns(&mut d);
    let mut adam = Adam::new(p.lr);
    let mut order: Vec<usize> = (0..x.ncols()).collect();
    let sp = SolverParams { tol: p.code_tol, max_iter: 500, algorithm: code.algorithm, ..SolverParams::default() };
    let mut last = f64::NAN;
    // each signal's last code, sparse (atom, value), with `code.warm_start`
    let mut warm: Option<Vec<Vec<(u32, f64)>>> = code.warm_start.then(|| vec![Vec::new(); x.ncols()]);
    for epoch in 0..p.epochs {
        let lam = p.lambda * ((epoch + 1) as f64 / (p.warmup_epochs + 1) as f64).min(1.0);
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(p.batch_size) {
            let xb = columns(x, chunk);
            let groups = group_spec(p.atoms, p.group_size, lam)?;
            let solver = if code.gram_free {
                Solver::new_gram_free(d.clone(), groups, sp.clone())?
            } else {
                Solver::new(d.clone(), groups, sp.clone())?.with_factored_products(code.factored)
            };
            let z = match warm.as_ref().filter(|w| chunk.iter().all(|&i| !w[i].is_empty())) {
                Some(w) => {
                    let mut init = DMatrix::zeros(p.atoms, chunk.len());
                    for (k, &i) in chunk.iter().enumerate() {
                        w[i].iter().for_each(|&(a, v)| init[(a as usize, k)] = v);
                    }
                    solver.solve_warm(&xb, &init)?.codes
                }
                None => solver.solve(&xb)?.codes,
            };
            if let Some(w) = warm.as_mut() {
                for (k, &i) in chunk.iter().enumerate() {
                    w[i] = z
                        .column(k)
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v != 0.0)
                        .map(|(a, &v)| (a as u32, v))
                        .collect();
                }
            }
            let r = &xb - &d * &z;
            total += r.norm_squared();
            let mut g = -(&r * z.transpose()) / chunk.len() as f64;
            if p.coherence_weight > 0.0 {
                let gram = d.tr_mul(&d);
                let e = DMatrix::<f64>::identity(p.atoms, p.atoms) - gram;
                g -= &d * e * (4.0 * p.coherence_weight);
            }
            adam.step(std::iter::once(&mut d), &[&g]);
            normalise_columns(&mut d);
        }
        last = total / x.ncols() as f64;
        tracing::info!(epoch, lambda = lam, recon = last, "dictionary epoch");
    }
    Ok((d, last))
}

/// A model that can be saved as a model file: its [`persist::Kind`] is recorded in the file
/// and checked on loading (a file of another kind is an error), and the decoded model is
/// re-checked ([`ModelFile::validated`]) before it is handed out.
pub trait ModelFile: Serialize + DeserializeOwned {
    /// The kind recorded in the file header.
    const KIND: persist::Kind;

    /// The model rebuilt from its primary fields by its checked constructor (derived state
    /// such as solver Gram matrices and Lipschitz constants is recomputed, not trusted), or
    /// the constructor's error.
    fn validated(self) -> Result<Self>;
}

impl ModelFile for PursuitClassifier {
    const KIND: persist::Kind = persist::Kind::new("sbp-pursuit", 1);

    fn validated(self) -> Result<Self> {
        check_classifier(&self.classifier)?;
        let params = self.solver().params().clone();
        let d = self.solver().dictionary().clone();
        let mut m = PursuitClassifier::new(self.kind, d, self.group_size, self.lambda, self.classifier, self.task)?;
        m.set_solver_params(params)?;
        Ok(m)
    }
}

impl ModelFile for Approximator {
    const KIND: persist::Kind = persist::Kind::new("sbp-approximator", 1);

    fn validated(self) -> Result<Self> {
        check_classifier(&self.classifier)?;
        self.net.check()?;
        Approximator::new(Network::new(self.net.layers)?, self.classifier, self.task)
    }
}

impl ModelFile for MultiLayerClassifier {
    const KIND: persist::Kind = persist::Kind::new("sbp-multilayer", 1);

    fn validated(self) -> Result<Self> {
        check_classifier(&self.classifier)?;
        let params = self.solvers().first().ok_or(SparseBpError::Empty { what: "model solvers" })?.params().clone();
        MultiLayerClassifier::with_solver_params(
            self.pursuit,
            self.kind,
            self.dictionaries().to_vec(),
            self.group_size,
            self.weights.clone(),
            self.classifier.clone(),
            self.task,
            params,
        )
    }
}

/// A linear classifier's bias matches its weights and every value is finite.
fn check_classifier(c: &LinearClassifier) -> Result<()> {
    if c.b.len() != c.w.nrows() {
        return Err(SparseBpError::ShapeMismatch {
            what: "classifier bias",
            expected: (c.w.nrows(), 1),
            got: (c.b.len(), 1),
        });
    }
    check_finite("classifier weights", c.w.as_slice())?;
    check_finite("classifier bias", c.b.as_slice())
}

/// Encodes `model` as a model file in memory: the [`persist`] framing (magic, versions, the
/// model's [`ModelFile::KIND`], length, CRC-32) around a bincode-2 payload.
pub fn encode_model<T: ModelFile>(model: &T) -> Result<Vec<u8>> {
    Ok(persist::encode(Path::new("<memory>"), T::KIND, model)?)
}

/// Decodes a model file held in memory (`path` only names it in errors): checks the framing
/// and the kind, decodes with a size limit and re-checks the model ([`ModelFile::validated`]).
pub fn decode_model<T: ModelFile>(path: &Path, bytes: &[u8]) -> Result<T> {
    let model: T = persist::decode(path, T::KIND, bytes)?;
    model.validated().map_err(|e| SparseBpError::InvalidModel { path: path.to_owned(), source: Box::new(e) })
}

/// Writes `model` to `path` as a model file ([`encode_model`]), atomically: a temporary
/// file in the same folder, `fsync`, then rename over `path` (a crash leaves either the
/// old file or the new one, never a partial file).
pub fn save_model<T: ModelFile>(path: &Path, model: &T) -> Result<()> {
    Ok(persist::save(path, T::KIND, model)?)
}

/// Reads a model written by [`save_model`]. Errors: [`SparseBpError::ModelFile`] (missing,
/// not a regular file, damaged, of another kind, not decodable) and
/// [`SparseBpError::InvalidModel`] (decodes, but fails the model's checks).
pub fn load_model<T: ModelFile>(path: &Path) -> Result<T> {
    let bytes = persist::read_file(path)?;
    decode_model(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Classifier, CodeKind};
    use persist::{HEADER_LEN, PersistError};

    #[test]
    fn dictionary_learning_reduces_error_and_keeps_unit_atoms() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut truth = DMatrix::from_fn(8, 12, |_, _| rng.sample::<f64, _>(StandardNormal));
        normalise_columns(&mut truth);
        let z = DMatrix::from_fn(12, 200, |_, _| if rng.random_range(0.0..1.0) < 0.2 { 1.0 } else { 0.0 });
        let x = &truth * z;
        let p1 = DictParams { atoms: 12, lambda: 0.1, epochs: 1, batch_size: 50, lr: 1e-2, ..DictParams::default() };
        let p2 = DictParams { epochs: 15, ..p1.clone() };
        let (_, e1) = learn_dictionary(&x, &p1).unwrap();
        let (d, e2) = learn_dictionary(&x, &p2).unwrap();
        assert!(e2 < e1, "{e2} !< {e1}");
        assert!(d.column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-12));
    }

    /// The coding step's solver ([`learn_dictionary_with`]) on an overcomplete toy problem (6 x
    /// 20, `l1` and groups of 2): the default is [`learn_dictionary`] bit for bit; coordinate
    /// descent, factored FISTA, Gram-free working sets and warm starts learn as well (error
    /// falls from epoch 2 to 12, unit atoms, final error within 10 % of the default's: the codes
    /// differ only within `code_tol`).
    #[test]
    fn every_code_step_learns_the_dictionary() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut truth = DMatrix::from_fn(6, 20, |_, _| rng.sample::<f64, _>(StandardNormal));
        normalise_columns(&mut truth);
        let z = DMatrix::from_fn(20, 160, |_, _| if rng.random_range(0.0..1.0) < 0.15 { 1.0 } else { 0.0 });
        let x = &truth * z;
        for gs in [1, 2] {
            let p = DictParams {
                atoms: 20,
                group_size: gs,
                lambda: 0.05,
                epochs: 12,
                batch_size: 40,
                lr: 1e-2,
                ..DictParams::default()
            };
            let bits = |d: &DMatrix<f64>, e: f64| (d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), e.to_bits());
            let (d0, e0) = learn_dictionary(&x, &p).unwrap();
            let (dd, ed) = learn_dictionary_with(&x, &p, CodeStep::default()).unwrap();
            assert_eq!(bits(&d0, e0), bits(&dd, ed), "group size {gs}");
            let step =
                |algorithm, factored, warm_start, gram_free| CodeStep { algorithm, factored, warm_start, gram_free };
            let steps = [
                step(Algorithm::CoordinateDescent, false, true, false),
                step(Algorithm::Fista, true, false, false),
                step(Algorithm::Fista, true, true, false),
                step(Algorithm::CoordinateDescent, false, true, true),
                step(Algorithm::Fista, false, true, true),
                step(Algorithm::Fista, false, false, true),
            ];
            for step in steps {
                // after the warm-up epoch (penalty lambda / 2) the error is at the full penalty
                let (_, e1) = learn_dictionary_with(&x, &DictParams { epochs: 2, ..p.clone() }, step).unwrap();
                let (d, e) = learn_dictionary_with(&x, &p, step).unwrap();
                assert!(e < e1, "group size {gs} {step:?}: {e} !< {e1}");
                assert!(d.column_iter().all(|c| (c.norm() - 1.0).abs() < 1e-12));
                assert!((e - e0).abs() <= 0.1 * e0, "group size {gs} {step:?}: {e} vs {e0}");
            }
        }
    }

    #[test]
    fn coherence_loss_lowers_off_diagonal_gram() {
        let mut rng = StdRng::seed_from_u64(2);
        let x = DMatrix::from_fn(6, 120, |_, _| rng.sample::<f64, _>(StandardNormal));
        let base = DictParams { atoms: 10, lambda: 0.3, epochs: 10, batch_size: 40, lr: 1e-2, ..DictParams::default() };
        let off = |d: &DMatrix<f64>| (d.tr_mul(d) - DMatrix::<f64>::identity(10, 10)).norm();
        let (d0, _) = learn_dictionary(&x, &base).unwrap();
        let (d1, _) = learn_dictionary(&x, &DictParams { coherence_weight: 1.0, ..base }).unwrap();
        assert!(off(&d1) < off(&d0), "{} !< {}", off(&d1), off(&d0));
    }

    #[test]
    fn model_save_load_round_trip() {
        let dir = std::env::temp_dir().join(format!("sparse-bp-train-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clf = LinearClassifier { w: DMatrix::from_fn(2, 3, |i, j| (i + j) as f64), b: nalgebra::DVector::zeros(2) };
        let m = PursuitClassifier::new(
            CodeKind::Pgbp,
            DMatrix::identity(5, 6),
            2,
            0.2,
            clf.clone(),
            TaskLoss::CrossEntropy,
        )
        .unwrap();
        let path = dir.join("pgbp.bin");
        save_model(&path, &m).unwrap();
        let back: PursuitClassifier = load_model(&path).unwrap();
        let x = DMatrix::from_fn(5, 3, |i, j| (i as f64 - j as f64) * 0.3);
        assert_eq!(m.logits(&x).unwrap(), back.logits(&x).unwrap());
        let a = Approximator::new(Network::linear_transformer(5, 3, 2, 3, 1).unwrap(), clf, TaskLoss::CrossEntropy)
            .unwrap();
        save_model(&dir.join("lt.bin"), &a).unwrap();
        let back: Approximator = load_model(&dir.join("lt.bin")).unwrap();
        assert_eq!(back, a);
        assert!(matches!(
            load_model::<Approximator>(&dir.join("missing.bin")),
            Err(SparseBpError::ModelFile(PersistError::Io { kind: std::io::ErrorKind::NotFound, .. }))
        ));
        std::fs::write(dir.join("junk.bin"), [1u8, 2, 3]).unwrap();
        assert!(matches!(
            load_model::<Approximator>(&dir.join("junk.bin")),
            Err(SparseBpError::ModelFile(PersistError::BadMagic { .. }))
        ));
        // a valid file of another model type: refused by its recorded kind
        assert!(matches!(
            load_model::<Approximator>(&path),
            Err(SparseBpError::ModelFile(PersistError::WrongKind { ref expected, ref found, .. }))
                if expected == "sbp-approximator" && found == "sbp-pursuit"
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A saved 3-layer model reloads to identical predictions and logits; damaged files
    /// (truncated anywhere, one flipped bit, trailing bytes, wrong version) give typed errors.
    #[test]
    fn multilayer_model_file_round_trip_and_corruption() {
        use crate::models::deep::{MultiLayerClassifier, Pursuit};
        let dir = std::env::temp_dir().join(format!("sparse-bp-deep-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let mut rand = |r: usize, c: usize| DMatrix::from_fn(r, c, |_, _| rng.sample::<f64, _>(StandardNormal));
        let mut d1 = rand(6, 8);
        let mut d2 = rand(8, 4);
        normalise_columns(&mut d1);
        normalise_columns(&mut d2);
        let clf = LinearClassifier { w: rand(3, 2), b: nalgebra::DVector::from_element(3, 0.2) };
        let x = rand(6, 5);
        for pursuit in [Pursuit::Layered, Pursuit::Deep] {
            let m = MultiLayerClassifier::new(
                pursuit,
                CodeKind::Pgbp,
                vec![d1.clone(), d2.clone()],
                2,
                vec![0.1, 0.05],
                clf.clone(),
                TaskLoss::CrossEntropy,
            )
            .unwrap();
            let path = dir.join(format!("{}.bin", m.name()));
            save_model(&path, &m).unwrap();
            let back: MultiLayerClassifier = load_model(&path).unwrap();
            assert_eq!(back.logits(&x).unwrap(), m.logits(&x).unwrap());
            assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
            assert!(
                std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp"))
            );

            let bytes = std::fs::read(&path).unwrap();
            let dec = |b: &[u8]| decode_model::<MultiLayerClassifier>(&path, b);
            for cut in [0, 5, 12, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 7, bytes.len() / 2, bytes.len() - 1] {
                let r = dec(&bytes[..cut]);
                assert!(
                    matches!(
                        r,
                        Err(SparseBpError::ModelFile(PersistError::Truncated { .. } | PersistError::BadMagic { .. }))
                    ),
                    "cut {cut}: {r:?}"
                );
            }
            let mut flipped = bytes.clone();
            let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 3;
            flipped[at] ^= 0x10;
            assert!(matches!(dec(&flipped), Err(SparseBpError::ModelFile(PersistError::Checksum { .. }))));
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                dec(&longer),
                Err(SparseBpError::ModelFile(PersistError::TrailingBytes { extra: 1, .. }))
            ));
            let mut v2 = bytes.clone();
            v2[8] = 2;
            assert!(matches!(
                dec(&v2),
                Err(SparseBpError::ModelFile(PersistError::FramingVersion { found: 2, supported: 1, .. }))
            ));
            // truncated on disk too
            std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
            assert!(matches!(
                load_model::<MultiLayerClassifier>(&path),
                Err(SparseBpError::ModelFile(PersistError::Truncated { .. }))
            ));
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn regression_fits_and_checks_shapes() {
        let mut rng = StdRng::seed_from_u64(3);
        let x = DMatrix::from_fn(4, 64, |_, _| rng.sample::<f64, _>(StandardNormal));
        let t = x.rows(0, 2).map(|v| v.max(0.0));
        let mut net = Network::dense(4, 2, 0).unwrap();
        let p = FitParams { epochs: 200, lr: 1e-2, batch_size: 32, ..FitParams::default() };
        let mse = train_regression(&mut net, &x, &t, &p).unwrap();
        assert!(mse < 0.05, "mse {mse}");
        assert!(train_regression(&mut net, &x, &DMatrix::zeros(3, 64), &p).is_err());
    }
}
