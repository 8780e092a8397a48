//! The one Adam training loop behind the end-to-end trainers: [`EndToEnd`] says what a
//! model contributes (its parameters, its objective and gradient, how to rebuild it with
//! new parameters at a warmed-up penalty); one training loop runs the epochs over it for
//! [`super::train_task_driven`], [`super::deep::train_multilayer`] and
//! [`super::early_stopping::train_validated`]. Implemented by
//! [`crate::models::PursuitClassifier`] (one dictionary) and
//! [`crate::models::deep::MultiLayerClassifier`] (one per layer).

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::deep::MultiLayerGradient;
use super::{TaskDrivenLoss, TaskDrivenParams, normalise_columns};
use crate::error::{Result, SparseBpError};
use crate::models::{Classifier, LinearClassifier};
use crate::nn::Adam;

/// A model trained end to end: dictionaries (unit-norm atoms) and a linear classifier.
pub trait EndToEnd: Classifier + Clone {
    /// Checks the training parameters for this kind of model.
    fn check_params(p: &TaskDrivenParams) -> Result<()>;
    /// The objective terms on `(x, labels)`.
    fn objective(&self, x: &DMatrix<f64>, labels: &[usize], p: &TaskDrivenParams) -> Result<TaskDrivenLoss>;
    /// The objective on a batch and its gradient (one dictionary per layer).
    fn gradient(&self, x: &DMatrix<f64>, labels: &[usize], p: &TaskDrivenParams) -> Result<MultiLayerGradient> {
        self.gradient_warm(x, labels, p, None).map(|(g, _)| g)
    }
    /// [`EndToEnd::gradient`] with the pursuit started from `init` (the batch's stacked codes,
    /// [`EndToEnd::code_rows`] `x batch`; `None`: from 0), stopping on the same solver
    /// tolerance; also returns the batch's stacked codes (the next epoch's warm start).
    fn gradient_warm(
        &self,
        x: &DMatrix<f64>,
        labels: &[usize],
        p: &TaskDrivenParams,
        init: Option<&DMatrix<f64>>,
    ) -> Result<(MultiLayerGradient, DMatrix<f64>)>;
    /// Rows of one image's stacked codes (every layer's code, first layer on top): what the
    /// trainer keeps per training image for warm starts.
    fn code_rows(&self) -> usize;
    /// The dictionaries, first layer first.
    fn dictionary_list(&self) -> Vec<DMatrix<f64>>;
    /// The classifier.
    fn linear(&self) -> &LinearClassifier;
    /// This model (kind, groups, solver settings) with other dictionaries and classifier and
    /// its penalties at step `t` of a warm-up of `warmup` steps ([`super::warmup_lambda`]).
    fn rebuilt(&self, dicts: &[DMatrix<f64>], clf: LinearClassifier, t: usize, warmup: usize) -> Result<Self>;
    /// A name for the logs.
    fn label(&self) -> &'static str;
}

/// Checks a labelled set of images against `model`: shapes, one label per column, not
/// empty (`what` names the set in the error).
pub(crate) fn check_labelled(
    model: &impl Classifier,
    x: &DMatrix<f64>,
    labels: &[usize],
    what: &'static str,
) -> Result<()> {
    crate::models::check_batch(model, x)?;
    if labels.len() != x.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "labels", expected: (x.ncols(), 1), got: (labels.len(), 1) });
    }
    if labels.is_empty() {
        return Err(SparseBpError::Empty { what });
    }
    Ok(())
}

/// The state of a training run between epochs: parameters, Adam moments, shuffling,
/// warm-up step, the starting model (kind, groups, target penalties, solver settings) and,
/// with [`TaskDrivenParams::warm_start`], every training image's codes from its last solve
/// (column `i` for image `i`; [`EndToEnd::code_rows`] `x n` f64).
///
/// Warm starts: in epoch 1 every pursuit starts from 0; from epoch 2 on each image's pursuit
/// starts from its codes of the previous epoch (solved under the dictionaries of that
/// epoch's step), and stops on the same relative duality gap as a cold start. The stored codes
/// depend only on the seed (not on the number of threads), so runs stay reproducible.
pub(crate) struct Trainer<M> {
    template: M,
    dicts: Vec<DMatrix<f64>>,
    w: DMatrix<f64>,
    b: DMatrix<f64>,
    adam_d: Adam,
    adam_c: Adam,
    rng: StdRng,
    order: Vec<usize>,
    t: usize,
    /// Stacked codes of every training image from its last solve (with warm starts).
    codes: Option<DMatrix<f64>>,
    /// Whether every column of `codes` holds a solved code (after the first epoch).
    codes_ready: bool,
}

impl<M: EndToEnd> Trainer<M> {
    /// Starts from `model`'s parameters; with a warm-up, `model` is set to the first step's penalties.
    pub(crate) fn new(model: &mut M, n: usize, p: &TaskDrivenParams) -> Result<Self> {
        let clf = model.linear();
        let tr = Self {
            template: model.clone(),
            dicts: model.dictionary_list(),
            w: clf.w.clone(),
            b: DMatrix::from_column_slice(clf.b.len(), 1, clf.b.as_slice()),
            adam_d: Adam::new(p.lr),
            adam_c: Adam::new(p.clf_lr.unwrap_or(1.0)),
            rng: StdRng::seed_from_u64(p.seed),
            order: (0..n).collect(),
            t: 0,
            codes: None,
            codes_ready: false,
        };
        if p.warmup_steps > 0 {
            *model = tr.build(0, p.warmup_steps)?;
        }
        Ok(tr)
    }

    /// Goes on from `model`'s dictionaries and classifier (the best epoch restored at a
    /// plateau, [`super::early_stopping::PlateauDecay`]) with the learning rates at `scale` times
    /// `p`'s and fresh Adam moments; the shuffling, the warm-up step and the stored warm-start
    /// codes carry on.
    pub(crate) fn restart_from(&mut self, model: &M, p: &TaskDrivenParams, scale: f64) {
        self.dicts = model.dictionary_list();
        let clf = model.linear();
        self.w = clf.w.clone();
        self.b = DMatrix::from_column_slice(clf.b.len(), 1, clf.b.as_slice());
        self.adam_d = Adam::new(p.lr * scale);
        self.adam_c = Adam::new(p.clf_lr.unwrap_or(1.0) * scale);
    }

    fn build(&self, t: usize, warmup: usize) -> Result<M> {
        let clf = LinearClassifier { w: self.w.clone(), b: self.b.column(0).into_owned() };
        self.template.rebuilt(&self.dicts, clf, t, warmup)
    }

    /// One pass over `(x, labels)` in shuffled mini-batches: Adam on the dictionaries (atoms
    /// renormalised after every step) and, unless `p.clf_lr` is `None`, on the classifier;
    /// `model` ends at the target penalties. Returns the size-weighted mean over the batches
    /// of the weighted objective (each batch at its own penalty).
    pub(crate) fn epoch(
        &mut self,
        model: &mut M,
        x: &DMatrix<f64>,
        labels: &[usize],
        p: &TaskDrivenParams,
    ) -> Result<f64> {
        self.order.shuffle(&mut self.rng);
        let order = std::mem::take(&mut self.order);
        let mut total = 0.0;
        if p.warm_start && self.codes.as_ref().is_none_or(|c| c.shape() != (model.code_rows(), x.ncols())) {
            self.codes = Some(DMatrix::zeros(model.code_rows(), x.ncols()));
            self.codes_ready = false;
        }
        for chunk in order.chunks(p.batch_size) {
            let xb = DMatrix::from_fn(x.nrows(), chunk.len(), |i, j| x[(i, chunk[j])]);
            let lb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let init = match (&self.codes, self.codes_ready && p.warm_start) {
                (Some(c), true) => Some(DMatrix::from_fn(c.nrows(), chunk.len(), |i, j| c[(i, chunk[j])])),
                _ => None,
            };
            let (g, z) = model.gradient_warm(&xb, &lb, p, init.as_ref())?;
            if p.warm_start
                && let Some(c) = self.codes.as_mut()
            {
                for (j, &i) in chunk.iter().enumerate() {
                    c.column_mut(i).copy_from(&z.column(j));
                }
            }
            total += g.loss.total(p) * chunk.len() as f64;
            let grads: Vec<&DMatrix<f64>> = g.dictionaries.iter().collect();
            self.adam_d.step(self.dicts.iter_mut(), &grads);
            self.dicts.iter_mut().for_each(normalise_columns);
            if p.clf_lr.is_some() {
                let gb = DMatrix::from_column_slice(g.b.len(), 1, g.b.as_slice());
                self.adam_c.step([&mut self.w, &mut self.b].into_iter(), &[&g.w, &gb]);
            }
            self.t += 1;
            *model = self.build(self.t, p.warmup_steps)?;
        }
        self.order = order;
        self.codes_ready = p.warm_start;
        // the target penalties (warmup_lambda at the end of the warm-up is the target itself)
        *model = self.build(p.warmup_steps, p.warmup_steps)?;
        Ok(total / x.ncols().max(1) as f64)
    }
}

/// `p.epochs` epochs of [`Trainer::epoch`]; returns the objective terms on the whole training
/// set (at the target penalties) after every epoch (entry 0: before training).
pub(crate) fn train_epochs<M: EndToEnd>(
    model: &mut M,
    x: &DMatrix<f64>,
    labels: &[usize],
    p: &TaskDrivenParams,
) -> Result<Vec<TaskDrivenLoss>> {
    M::check_params(p)?;
    check_labelled(&*model, x, labels, "training set")?;
    let mut history = vec![model.objective(x, labels, p)?];
    let mut trainer = Trainer::new(model, x.ncols(), p)?;
    for epoch in 0..p.epochs {
        trainer.epoch(model, x, labels, p)?;
        let l = model.objective(x, labels, p)?;
        tracing::info!(epoch, model = model.label(), task = l.task, recon = l.recon, gap = l.gap, "end-to-end epoch");
        history.push(l);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{rand_mat, teacher_images};
    use super::super::normalise_columns;
    use super::*;
    use crate::models::deep::{MultiLayerClassifier, Pursuit};
    use crate::models::{CodeKind, PursuitClassifier, TaskLoss};
    use crate::solver::{Algorithm, Solver, SolverParams};
    use nalgebra::DVector;

    fn data(seed: u64, n: usize) -> (DMatrix<f64>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut teacher = rand_mat(8, 12, &mut rng);
        normalise_columns(&mut teacher);
        teacher_images(&teacher, n, &mut rng)
    }

    fn shallow(kind: CodeKind, seed: u64, sp: SolverParams) -> PursuitClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = rand_mat(8, 12, &mut rng);
        normalise_columns(&mut d);
        let nf = if kind == CodeKind::Pgbp { 4 } else { 12 };
        let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng) * 0.1, b: DVector::zeros(3) };
        let mut m = PursuitClassifier::new(kind, d, 3, 0.3, clf, TaskLoss::CrossEntropy).unwrap();
        m.set_solver_params(sp).unwrap();
        m
    }

    fn deep(pursuit: Pursuit, kind: CodeKind, seed: u64, sp: SolverParams) -> MultiLayerClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dicts = vec![rand_mat(8, 10, &mut rng), rand_mat(10, 6, &mut rng)];
        dicts.iter_mut().for_each(normalise_columns);
        let nf = if kind == CodeKind::Pgbp { 3 } else { 6 };
        let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng) * 0.1, b: DVector::zeros(3) };
        MultiLayerClassifier::with_solver_params(
            pursuit,
            kind,
            dicts,
            2,
            vec![0.15, 0.08],
            clf,
            TaskLoss::CrossEntropy,
            sp,
        )
        .unwrap()
    }

    fn params(epochs: usize, warm_start: bool) -> TaskDrivenParams {
        TaskDrivenParams {
            epochs,
            lr: 1e-2,
            clf_lr: Some(2e-2),
            batch_size: 16,
            recon_weight: 0.1,
            warmup_steps: 3,
            seed: 7,
            warm_start,
            ..TaskDrivenParams::default()
        }
    }

    /// Runs `p.epochs` epochs of the trainer; returns the model and the trainer's stored codes.
    fn run<M: EndToEnd>(m0: &M, x: &DMatrix<f64>, labels: &[usize], p: &TaskDrivenParams) -> (M, Option<DMatrix<f64>>) {
        let mut m = m0.clone();
        let mut tr = Trainer::new(&mut m, x.ncols(), p).unwrap();
        for _ in 0..p.epochs {
            tr.epoch(&mut m, x, labels, p).unwrap();
        }
        assert_eq!(tr.codes_ready, p.warm_start);
        (m, tr.codes)
    }

    /// The largest relative duality gap `(P - D) / (1/2 ||x||^2)` of `codes` (one column per
    /// signal) for `solver` on the signals `x`.
    fn max_rel_gap(solver: &Solver, x: &DMatrix<f64>, codes: &DMatrix<f64>) -> f64 {
        (0..x.ncols())
            .map(|j| {
                let xj = x.column(j).into_owned();
                solver.duality_gap(&xj, &codes.column(j).into_owned()).unwrap() / (0.5 * xj.norm_squared())
            })
            .fold(0.0, f64::max)
    }

    /// Every layer's code stacked, first layer on top.
    fn stack(layers: &[DMatrix<f64>]) -> DMatrix<f64> {
        let rows: usize = layers.iter().map(|z| z.nrows()).sum();
        let mut out = DMatrix::zeros(rows, layers[0].ncols());
        let mut r0 = 0;
        for z in layers {
            out.rows_mut(r0, z.nrows()).copy_from(z);
            r0 += z.nrows();
        }
        out
    }

    /// Every problem a 3-layer model's stacked `codes` solve, as (solver, its input, its code):
    /// each layer's problem (layered) or the joint stacked problem (Deep Pursuit).
    fn deep_gaps(m: &MultiLayerClassifier, x: &DMatrix<f64>, codes: &DMatrix<f64>) -> f64 {
        let dicts = m.dictionaries();
        match m.pursuit {
            Pursuit::Layered => {
                let (mut prev, mut r0, mut worst) = (x.clone(), 0, 0.0f64);
                for (l, s) in m.solvers().iter().enumerate() {
                    let z = codes.rows(r0, dicts[l].ncols()).into_owned();
                    worst = worst.max(max_rel_gap(s, &prev, &z));
                    r0 += dicts[l].ncols();
                    prev = z;
                }
                worst
            }
            Pursuit::Deep => {
                let rows: usize = dicts.iter().map(|d| d.nrows()).sum();
                let mut input = DMatrix::zeros(rows, x.ncols());
                input.rows_mut(0, x.nrows()).copy_from(x);
                max_rel_gap(&m.solvers()[0], &input, codes)
            }
        }
    }

    /// Warm-started training gives the same numbers bit for bit on 1, 2 and 3 threads (the
    /// stored codes, the dictionaries and the classifier), for a shallow model, a layered and a
    /// Deep Pursuit model; the stored codes are every image's solved codes.
    #[test]
    fn warm_started_training_does_not_depend_on_the_thread_count() {
        let (x, labels) = data(3, 40);
        let sp = SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() };
        let p = params(3, true);
        let on = |threads: usize, which: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| match which {
                0 => {
                    let (m, c) = run(&shallow(CodeKind::Pgbp, 1, sp.clone()), &x, &labels, &p);
                    (m.dictionary_list(), m.classifier, c)
                }
                1 => {
                    let (m, c) = run(&deep(Pursuit::Layered, CodeKind::Gbp, 2, sp.clone()), &x, &labels, &p);
                    (m.dictionary_list(), m.classifier, c)
                }
                _ => {
                    let (m, c) = run(&deep(Pursuit::Deep, CodeKind::Pgbp, 3, sp.clone()), &x, &labels, &p);
                    (m.dictionary_list(), m.classifier, c)
                }
            })
        };
        for which in 0..3 {
            let one = on(1, which);
            let codes = one.2.as_ref().expect("warm starts keep the codes");
            assert_eq!(codes.ncols(), 40);
            assert!(codes.column_iter().all(|c| c.iter().any(|v| *v != 0.0)), "model {which}: an image has no code");
            for threads in [2, 3, 2] {
                assert!(on(threads, which) == one, "model {which}: {threads} threads differ from one");
            }
        }
    }

    /// A warm-started solve reaches the same optimality measure as a cold one: from the codes
    /// of the previous epoch's dictionaries (one epoch of training earlier), every problem of
    /// the batch (shallow, each layer of a layered model, the joint Deep Pursuit problem) ends
    /// with a relative duality gap within the solver's tolerance, and the gradient matches the
    /// cold one. The warm start is really used: with one coordinate-descent epoch allowed, a
    /// cold solve misses the tolerance and the warm-started gradient's solve, started from the
    /// solution, meets it.
    #[test]
    fn warm_started_solve_meets_the_cold_tolerance() {
        let (x, labels) = data(4, 32);
        let tol = 1e-10;
        let sp = SolverParams { tol, max_iter: 100_000, algorithm: Algorithm::CoordinateDescent, ..Default::default() };
        let one_epoch = SolverParams { max_iter: 1, ..sp.clone() };
        let p = params(1, true);
        let close = |a: &MultiLayerGradient, b: &MultiLayerGradient, what: &str| {
            for (da, db) in a.dictionaries.iter().zip(&b.dictionaries) {
                let scale = 1.0 + db.amax();
                assert!((da - db).amax() < 1e-5 * scale, "{what}: warm and cold gradients differ");
            }
            assert!((&a.w - &b.w).amax() < 1e-5 * (1.0 + b.w.amax()), "{what}: classifier gradient");
        };
        // shallow: the previous epoch's model, then one epoch of training
        for kind in [CodeKind::Bp, CodeKind::Gbp, CodeKind::Pgbp] {
            let before = shallow(kind, 11, sp.clone());
            let (after, _) = run(&before, &x, &labels, &p);
            let (_, z_prev) = before.gradient_warm(&x, &labels, &p, None).unwrap();
            let (g_cold, z_cold) = after.gradient_warm(&x, &labels, &p, None).unwrap();
            let (g_warm, z_warm) = after.gradient_warm(&x, &labels, &p, Some(&z_prev)).unwrap();
            assert!(after.dictionary_list()[0] != before.dictionary_list()[0]);
            assert!(z_warm != z_prev, "{kind:?}: the warm start was not re-solved");
            for (z, what) in [(&z_cold, "cold"), (&z_warm, "warm")] {
                let g = max_rel_gap(after.solver(), &x, z);
                assert!(g <= tol, "{kind:?} {what}: relative gap {g} above {tol}");
            }
            close(&g_warm, &g_cold, &format!("{kind:?}"));
            let mut short = after.clone();
            short.set_solver_params(one_epoch.clone()).unwrap();
            let z1 = short.codes(&x).unwrap();
            let (_, z2) = short.gradient_warm(&x, &labels, &p, Some(&z_cold)).unwrap();
            let (g1, g2) = (max_rel_gap(short.solver(), &x, &z1), max_rel_gap(short.solver(), &x, &z2));
            assert!(g1 > tol && g2 <= tol, "{kind:?}: one epoch cold {g1}, from the solution {g2}");
        }
        for (pursuit, kind) in
            [(Pursuit::Layered, CodeKind::Bp), (Pursuit::Layered, CodeKind::Pgbp), (Pursuit::Deep, CodeKind::Gbp)]
        {
            let before = deep(pursuit, kind, 12, sp.clone());
            let (after, _) = run(&before, &x, &labels, &p);
            let (_, z_prev) = before.gradient_warm(&x, &labels, &p, None).unwrap();
            let (g_cold, z_cold) = after.gradient_warm(&x, &labels, &p, None).unwrap();
            let (g_warm, z_warm) = after.gradient_warm(&x, &labels, &p, Some(&z_prev)).unwrap();
            assert_eq!(z_prev.shape(), (after.code_rows(), x.ncols()));
            assert!(z_warm != z_prev, "{pursuit:?} {kind:?}: the warm start was not re-solved");
            for (z, what) in [(&z_cold, "cold"), (&z_warm, "warm")] {
                let g = deep_gaps(&after, &x, z);
                assert!(g <= tol, "{pursuit:?} {kind:?} {what}: relative gap {g} above {tol}");
            }
            close(&g_warm, &g_cold, &format!("{pursuit:?} {kind:?}"));
            let mut short = after.clone();
            short.set_solver_params(one_epoch.clone()).unwrap();
            let z1 = stack(&short.codes(&x).unwrap());
            let (_, z2) = short.gradient_warm(&x, &labels, &p, Some(&z_cold)).unwrap();
            let (g1, g2) = (deep_gaps(&short, &x, &z1), deep_gaps(&short, &x, &z2));
            // layered: a later layer's input moves with the earlier layer's one-epoch code, so
            // its start is near the solution, not at it
            assert!(g1 > tol && g2 < 1e-6 * g1, "{pursuit:?} {kind:?}: one epoch cold {g1}, from the solution {g2}");
        }
        // a warm start of the wrong shape is a typed error
        let m = deep(Pursuit::Deep, CodeKind::Bp, 13, sp);
        let bad = DMatrix::zeros(3, x.ncols());
        assert!(matches!(m.gradient_warm(&x, &labels, &p, Some(&bad)), Err(SparseBpError::ShapeMismatch { .. })));
    }

    /// Training with and without warm starts ends at the same parameters up to the solver's
    /// tolerance (tight tolerance: the two runs differ only in where each pursuit starts).
    #[test]
    fn warm_and_cold_training_agree_up_to_the_tolerance() {
        let (x, labels) = data(5, 40);
        let sp = SolverParams { tol: 1e-13, max_iter: 400_000, ..SolverParams::default() };
        let check = |a: Vec<DMatrix<f64>>, b: Vec<DMatrix<f64>>, what: &str| {
            for (da, db) in a.iter().zip(&b) {
                assert!((da - db).amax() < 1e-6, "{what}: {}", (da - db).amax());
            }
        };
        let m = shallow(CodeKind::Gbp, 21, sp.clone());
        let (w, cw) = run(&m, &x, &labels, &params(3, true));
        let (c, cc) = run(&m, &x, &labels, &params(3, false));
        assert!(cw.is_some() && cc.is_none(), "only warm starts keep codes");
        check(w.dictionary_list(), c.dictionary_list(), "shallow");
        let m = deep(Pursuit::Deep, CodeKind::Bp, 22, sp);
        let (w, _) = run(&m, &x, &labels, &params(3, true));
        let (c, _) = run(&m, &x, &labels, &params(3, false));
        check(w.dictionary_list(), c.dictionary_list(), "deep");
    }
}
