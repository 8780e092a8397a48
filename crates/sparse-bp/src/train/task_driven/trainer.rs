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
    fn gradient(&self, x: &DMatrix<f64>, labels: &[usize], p: &TaskDrivenParams) -> Result<MultiLayerGradient>;
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
/// warm-up step, and the starting model (kind, groups, target penalties, solver settings).
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
        };
        if p.warmup_steps > 0 {
            *model = tr.build(0, p.warmup_steps)?;
        }
        Ok(tr)
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
        for chunk in order.chunks(p.batch_size) {
            let xb = DMatrix::from_fn(x.nrows(), chunk.len(), |i, j| x[(i, chunk[j])]);
            let lb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let g = model.gradient(&xb, &lb, p)?;
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
