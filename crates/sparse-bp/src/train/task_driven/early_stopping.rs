//! Early stopping on a held-out set for the end-to-end trainers (issue 20):
//! [`train_validated`] (shallow BP / GBP / PGBP or the 3-layer models) runs the same epochs as
//! [`super::train_task_driven`] or [`super::deep::train_multilayer`], measures the accuracy
//! on the held-out images after every epoch, keeps the parameters of the best epoch, stops
//! after [`EarlyStopping::patience`] epochs without an improvement of more than
//! [`EarlyStopping::min_delta`], and hand the best parameters back with a
//! [`TrainingReport`].
//!
//! Epoch 0 is the starting point: if no epoch beats the starting parameters' held-out
//! accuracy, they are what the trainer returns.
//!
//! With [`EarlyStopping::decay`] a plateau first steps back instead of stopping: the best
//! epoch's parameters are restored, the learning rates are multiplied by
//! [`PlateauDecay::factor`] (Adam's moments start afresh) and training goes on; only the
//! plateau after the last of [`PlateauDecay::max_decays`] decays stops it. The epochs before
//! the first plateau are the same as without the decay, so the decay can only add better
//! epochs, never lose the best one.
//!
//! ```
//! use nalgebra::{DMatrix, DVector};
//! use sparse_bp::models::{CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
//! use sparse_bp::train::task_driven::TaskDrivenParams;
//! use sparse_bp::train::task_driven::early_stopping::{EarlyStopping, train_validated};
//! let clf = LinearClassifier { w: DMatrix::from_row_slice(2, 2, &[1.0, -1.0, -1.0, 1.0]), b: DVector::zeros(2) };
//! let mut m = PursuitClassifier::new(CodeKind::Bp, DMatrix::identity(2, 2), 1, 0.1, clf, TaskLoss::CrossEntropy)?;
//! let x = DMatrix::from_column_slice(2, 4, &[1.0, 0.2, 0.1, 1.0, 0.9, 0.0, 0.0, 0.8]);
//! let labels = [0, 1, 0, 1];
//! let p = TaskDrivenParams { epochs: 5, batch_size: 2, ..TaskDrivenParams::default() };
//! let es = EarlyStopping { patience: 2, min_delta: 0.0, decay: None };
//! let report = train_validated(&mut m, &x, &labels, &x, &labels, &p, &es)?;
//! // every image is classified right from the start: nothing improves, training stops after 2 epochs
//! assert_eq!((report.epochs_run, report.best_epoch, report.stopped_early), (2, 0, true));
//! assert_eq!(report.val_accuracy, vec![1.0, 1.0, 1.0]);
//! # Ok::<(), sparse_bp::SparseBpError>(())
//! ```

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::TaskDrivenParams;
use super::trainer::{EndToEnd, Trainer, check_labelled};
use crate::error::{Result, SparseBpError};

/// Early-stopping rule of the validated trainers.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `patience` | epochs without improvement after which training stops | `>= 1` |
/// | `min_delta` | held-out accuracy gain (fraction) that counts as an improvement: `acc > best + min_delta` | finite, in `[0, 1)` |
/// | `decay` | `None`: a plateau stops training; else it steps back with smaller learning rates ([`PlateauDecay`]) | see [`PlateauDecay`] |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping (or decaying).
    pub patience: usize,
    /// Minimum accuracy gain that counts as an improvement.
    pub min_delta: f64,
    /// Learning-rate decay on a plateau before stopping (module docs); `None`: stop at the
    /// first plateau. Left out of the serialised form when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<PlateauDecay>,
}

impl Default for EarlyStopping {
    /// Patience 3, any gain counts, no decay.
    fn default() -> Self {
        Self { patience: 3, min_delta: 0.0, decay: None }
    }
}

/// Step back and decay on a plateau ([`EarlyStopping::decay`]): after `patience` epochs
/// without a better held-out accuracy, the best epoch's parameters are restored and the
/// learning rates (dictionaries and classifier) become `factor^k` times their starting values
/// at the `k`-th plateau, with fresh Adam moments; the plateau after the `max_decays`-th decay
/// stops training.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `factor` | learning-rate multiplier per plateau | finite, in `(0, 1)` |
/// | `max_decays` | plateaus answered by a decay | `>= 1` |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauDecay {
    /// Learning-rate multiplier per plateau.
    pub factor: f64,
    /// Plateaus answered by a decay before one stops training.
    pub max_decays: usize,
}

impl EarlyStopping {
    /// Checks the fields against the table.
    pub fn check(&self) -> Result<()> {
        if self.patience == 0 {
            return Err(SparseBpError::InvalidParam { name: "patience", value: 0.0, expected: ">= 1" });
        }
        if !(self.min_delta.is_finite() && (0.0..1.0).contains(&self.min_delta)) {
            return Err(SparseBpError::InvalidParam {
                name: "min_delta",
                value: self.min_delta,
                expected: "finite, in [0, 1)",
            });
        }
        if let Some(d) = self.decay {
            if !(d.factor > 0.0 && d.factor < 1.0) {
                return Err(SparseBpError::InvalidParam {
                    name: "decay factor",
                    value: d.factor,
                    expected: "finite, in (0, 1)",
                });
            }
            if d.max_decays == 0 {
                return Err(SparseBpError::InvalidParam { name: "max_decays", value: 0.0, expected: ">= 1" });
            }
        }
        Ok(())
    }
}

/// What a validated training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// Epochs trained (at most the parameters' `epochs`).
    pub epochs_run: usize,
    /// Epoch whose parameters were kept (0: the starting parameters).
    pub best_epoch: usize,
    /// Whether training stopped before the parameters' `epochs`.
    pub stopped_early: bool,
    /// Per epoch `1..=epochs_run`: the size-weighted mean over the epoch's mini-batches of the
    /// training objective (each batch evaluated before its step, at its own penalty).
    pub train_loss: Vec<f64>,
    /// Held-out accuracy (fraction) for epochs `0..=epochs_run` (entry 0: before training).
    pub val_accuracy: Vec<f64>,
}

impl TrainingReport {
    /// The held-out accuracy of the kept parameters.
    #[must_use]
    pub fn best_val_accuracy(&self) -> f64 {
        self.val_accuracy.get(self.best_epoch).copied().unwrap_or(f64::NAN)
    }
}

/// The early-stopping loop: `epoch` trains one epoch in place and returns its training
/// loss, `validate` returns the held-out accuracy. Keeps a copy of the best model and
/// leaves it in `model`. With [`EarlyStopping::decay`], at a plateau `model` is set back to
/// the best one and `restart(model, scale)` tells the trainer to go on from it with its
/// learning rates at `scale` times their starting values.
pub(crate) fn run_early_stopped<M: Clone>(
    model: &mut M,
    epochs: usize,
    es: &EarlyStopping,
    mut epoch: impl FnMut(&mut M) -> Result<f64>,
    validate: impl Fn(&M) -> Result<f64>,
    mut restart: impl FnMut(&mut M, f64) -> Result<()>,
) -> Result<TrainingReport> {
    es.check()?;
    let mut best = model.clone();
    let mut best_acc = validate(model)?;
    let mut report = TrainingReport {
        epochs_run: 0,
        best_epoch: 0,
        stopped_early: false,
        train_loss: Vec::with_capacity(epochs),
        val_accuracy: vec![best_acc],
    };
    let mut since_best = 0;
    let mut decays = 0;
    for e in 1..=epochs {
        let loss = epoch(model)?;
        let acc = validate(model)?;
        report.epochs_run = e;
        report.train_loss.push(loss);
        report.val_accuracy.push(acc);
        tracing::info!(epoch = e, loss, val_accuracy = acc, best_acc, "validated epoch");
        if acc > best_acc + es.min_delta {
            best_acc = acc;
            best = model.clone();
            report.best_epoch = e;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= es.patience {
                match es.decay {
                    Some(d) if decays < d.max_decays => {
                        decays += 1;
                        let scale = d.factor.powi(decays as i32);
                        *model = best.clone();
                        restart(model, scale)?;
                        since_best = 0;
                        tracing::info!(
                            epoch = e,
                            best_epoch = report.best_epoch,
                            lr_scale = scale,
                            "plateau: back to the best epoch, learning rates decayed"
                        );
                    }
                    _ => {
                        report.stopped_early = e < epochs;
                        break;
                    }
                }
            }
        }
    }
    *model = best;
    Ok(report)
}

/// [`super::train_task_driven`] (shallow models) or [`super::deep::train_multilayer`]
/// (3-layer models) with early stopping on `(x_val, l_val)` (module docs): at most
/// `p.epochs` epochs; `model` ends with the parameters of the best held-out epoch.
pub fn train_validated<M: EndToEnd>(
    model: &mut M,
    x: &DMatrix<f64>,
    labels: &[usize],
    x_val: &DMatrix<f64>,
    l_val: &[usize],
    p: &TaskDrivenParams,
    es: &EarlyStopping,
) -> Result<TrainingReport> {
    M::check_params(p)?;
    es.check()?;
    check_labelled(&*model, x, labels, "training set")?;
    crate::models::check_batch(&*model, x_val)?;
    if l_val.len() != x_val.ncols() {
        return Err(SparseBpError::ShapeMismatch {
            what: "held-out labels",
            expected: (x_val.ncols(), 1),
            got: (l_val.len(), 1),
        });
    }
    if l_val.is_empty() {
        return Err(SparseBpError::Empty { what: "held-out set" });
    }
    let mut warm = model.clone();
    // the epochs train it, a plateau's decay restarts it
    let trainer = std::cell::RefCell::new(Trainer::new(&mut warm, x.ncols(), p)?);
    // epoch 0 is the starting model; the first epoch starts from the warm-up penalty
    let mut first = true;
    run_early_stopped(
        model,
        p.epochs,
        es,
        |m| {
            if first {
                *m = warm.clone();
                first = false;
            }
            trainer.borrow_mut().epoch(m, x, labels, p)
        },
        |m| m.accuracy(x_val, l_val),
        |m, scale| {
            trainer.borrow_mut().restart_from(m, p, scale);
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::deep::MultiLayerClassifier;
    use crate::models::{Classifier, PursuitClassifier};

    /// A scripted "model" (its value is the epoch it came from) with a held-out accuracy that
    /// peaks at epoch 2: training stops after `patience` more epochs and epoch 2 is restored.
    #[test]
    fn best_epoch_is_restored_when_validation_peaks_early() {
        let accs = [0.50, 0.60, 0.80, 0.70, 0.75, 0.79, 0.90, 0.95];
        for (patience, runs, stopped) in [(1, 3, true), (3, 5, true), (4, 7, false)] {
            let mut m = 0usize;
            let es = EarlyStopping { patience, min_delta: 0.0, decay: None };
            let r = run_early_stopped(
                &mut m,
                7,
                &es,
                |m| {
                    *m += 1;
                    Ok(1.0 / *m as f64)
                },
                |m| Ok(accs[*m]),
                |_, _| panic!("no decay configured"),
            )
            .unwrap();
            assert_eq!(r.epochs_run, runs, "patience {patience}");
            assert_eq!(r.stopped_early, stopped, "patience {patience}");
            assert_eq!(r.val_accuracy, accs[..=runs].to_vec());
            assert_eq!(r.train_loss.len(), runs);
            if runs < 6 {
                assert_eq!((r.best_epoch, m), (2, 2), "patience {patience}: epoch 2's model must be kept");
                assert_eq!(r.best_val_accuracy(), 0.80);
            } else {
                assert_eq!((r.best_epoch, m), (7, 7), "patience {patience}: later peak");
            }
        }
        // min_delta: 0.80 -> 0.85 is not enough with min_delta 0.1
        let accs = [0.5, 0.8, 0.85, 0.86, 0.87];
        let mut m = 0usize;
        let es = EarlyStopping { patience: 2, min_delta: 0.1, decay: None };
        let r = run_early_stopped(
            &mut m,
            4,
            &es,
            |m| {
                *m += 1;
                Ok(0.0)
            },
            |m| Ok(accs[*m]),
            |_, _| panic!("no decay configured"),
        )
        .unwrap();
        assert_eq!((r.best_epoch, r.epochs_run, m), (1, 3, 1));
    }

    /// A scripted "model" whose held-out accuracy is looked up by (epoch trained, decays seen):
    /// each plateau restores the best epoch, calls the restart with `factor^k`, and only the
    /// plateau after the last decay stops.
    #[test]
    fn plateaus_step_back_to_the_best_epoch_and_decay() {
        // (epochs trained in total, model value) -> accuracy; the model value is the epoch it
        // came from; a restart resets it to the restored best epoch's value.
        let acc = |m: usize| [0.50, 0.60, 0.80, 0.70, 0.75, 0.85, 0.82, 0.81, 0.84, 0.83, 0.90][m.min(10)];
        let es =
            EarlyStopping { patience: 2, min_delta: 0.0, decay: Some(PlateauDecay { factor: 0.5, max_decays: 2 }) };
        let mut trained = 0usize;
        let mut restarts = Vec::new();
        let mut m = 0usize;
        let r = run_early_stopped(
            &mut m,
            20,
            &es,
            |m| {
                trained += 1;
                *m = trained;
                Ok(0.0)
            },
            |m| Ok(acc(*m)),
            |m, scale| {
                restarts.push((*m, scale));
                Ok(())
            },
        )
        .unwrap();
        // epochs 1-2 improve, 3-4 plateau -> back to epoch 2 at half the rates; 5 improves,
        // 6-7 plateau -> back to epoch 5 at a quarter; 8-9 plateau again -> stop
        assert_eq!(restarts, vec![(2, 0.5), (5, 0.25)]);
        assert_eq!((r.epochs_run, r.best_epoch, r.stopped_early, m), (9, 5, true, 5));
        assert_eq!(r.best_val_accuracy(), 0.85);
        // without the decay the first plateau stops at epoch 4, with the same first epochs
        let mut m = 0usize;
        let mut trained = 0usize;
        let plain = run_early_stopped(
            &mut m,
            20,
            &EarlyStopping { decay: None, ..es },
            |m| {
                trained += 1;
                *m = trained;
                Ok(0.0)
            },
            |m| Ok(acc(*m)),
            |_, _| panic!("no decay configured"),
        )
        .unwrap();
        assert_eq!((plain.epochs_run, plain.best_epoch, m), (4, 2, 2));
        assert_eq!(plain.val_accuracy[..], r.val_accuracy[..=4]);
    }

    /// A 3-class problem (the class is which third of a teacher's atoms carries the largest
    /// code) and a held-out set of the same images with every label shifted by one class: the
    /// better the model fits the training labels, the worse it does on the held-out set.
    fn shifted_problem(seed: u64) -> (DMatrix<f64>, Vec<usize>, Vec<usize>) {
        teacher_problem(seed, seed, 60)
    }

    /// The trainers' parameters of the held-out tests: 12 epochs of 3 batches, a warm-up of 2 steps.
    fn held_out_params() -> TaskDrivenParams {
        TaskDrivenParams {
            epochs: 12,
            lr: 1e-2,
            clf_lr: Some(5e-2),
            batch_size: 20,
            recon_weight: 0.1,
            warmup_steps: 2,
            seed: 5,
            ..TaskDrivenParams::default()
        }
    }

    /// `n` images of the teacher problem of `teacher_seed` drawn with `sample_seed`, their
    /// labels and the labels shifted by one class.
    fn teacher_problem(teacher_seed: u64, sample_seed: u64, n: usize) -> (DMatrix<f64>, Vec<usize>, Vec<usize>) {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(teacher_seed);
        let mut teacher = DMatrix::from_fn(8, 12, |_, _| rng.random_range(-1.0..1.0));
        super::super::normalise_columns(&mut teacher);
        if sample_seed != teacher_seed {
            rng = rand::rngs::StdRng::seed_from_u64(sample_seed);
        }
        let (x, labels) = super::super::fixtures::teacher_images(&teacher, n, &mut rng);
        let shifted = labels.iter().map(|&c| (c + 1) % 3).collect();
        (x, labels, shifted)
    }

    /// Checks a validated run's report against the rule: `held_out` held-out accuracies,
    /// stopping `patience` epochs after the first maximum (or at `epochs`).
    fn check_report(r: &TrainingReport, epochs: usize, patience: usize, what: &str) {
        let best = r.val_accuracy.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let first_max = r.val_accuracy.iter().position(|&a| a == best).unwrap();
        assert_eq!(r.best_epoch, first_max, "{what}: {r:?}");
        assert_eq!(r.epochs_run, (first_max + patience).min(epochs), "{what}: {r:?}");
        assert_eq!(r.stopped_early, r.epochs_run < epochs, "{what}: {r:?}");
        assert_eq!((r.val_accuracy.len(), r.train_loss.len()), (r.epochs_run + 1, r.epochs_run), "{what}");
    }

    /// On real trainers (one thread, so runs are bit-reproducible), shallow and 3-layer, with
    /// two held-out sets: (a) the training images with shifted labels, whose accuracy falls as
    /// the training labels are learned (peak at the start, stop after `patience` epochs);
    /// (b) fresh images of the same teacher, patience = epochs (no early stop), whose accuracy
    /// peaks at a later epoch. In both the returned parameters are exactly those of the plain
    /// trainer run for `best_epoch` epochs with the same seed, and their held-out accuracy is
    /// the best one.
    #[test]
    fn validated_trainers_restore_the_best_epoch() {
        use crate::models::deep::Pursuit;
        use crate::models::{CodeKind, LinearClassifier, TaskLoss};
        use crate::solver::SolverParams;
        use crate::train::task_driven::{deep::train_multilayer, train_task_driven};
        use rand::{RngExt, SeedableRng};
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| {
            let (x, labels, shifted) = shifted_problem(3);
            let (x_fresh, l_fresh, _) = teacher_problem(3, 99, 60);
            let sp = SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() };
            let p = held_out_params();
            let epochs = p.epochs;
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let mut d1 = DMatrix::from_fn(8, 12, |_, _| rng.random_range(-1.0..1.0));
            super::super::normalise_columns(&mut d1);
            let mut d2 = DMatrix::from_fn(12, 6, |_, _| rng.random_range(-1.0..1.0));
            super::super::normalise_columns(&mut d2);
            let clf = LinearClassifier { w: DMatrix::zeros(3, 12), b: nalgebra::DVector::zeros(3) };
            let mut shallow0 =
                PursuitClassifier::new(CodeKind::Bp, d1.clone(), 1, 0.2, clf, TaskLoss::CrossEntropy).unwrap();
            shallow0.set_solver_params(sp.clone()).unwrap();
            let clf = LinearClassifier { w: DMatrix::zeros(3, 6), b: nalgebra::DVector::zeros(3) };
            let deep0 = MultiLayerClassifier::with_solver_params(
                Pursuit::Layered,
                CodeKind::Bp,
                vec![d1, d2],
                1,
                vec![0.2, 0.05],
                clf,
                TaskLoss::CrossEntropy,
                sp,
            )
            .unwrap();
            let mut later_peaks = 0;
            for (case, xv, lv, patience) in [("shifted", &x, &shifted, 2), ("fresh", &x_fresh, &l_fresh, epochs)] {
                let es = EarlyStopping { patience, min_delta: 0.0, decay: None };
                let plain_p = |e| TaskDrivenParams { epochs: e, ..p.clone() };

                let mut m = shallow0.clone();
                let r = train_validated(&mut m, &x, &labels, xv, lv, &p, &es).unwrap();
                check_report(&r, epochs, patience, &format!("shallow {case}"));
                assert_eq!(m.accuracy(xv, lv).unwrap(), r.best_val_accuracy());
                let mut plain = shallow0.clone();
                if r.best_epoch > 0 {
                    train_task_driven(&mut plain, &x, &labels, &plain_p(r.best_epoch)).unwrap();
                }
                assert_eq!(m.solver().dictionary(), plain.solver().dictionary(), "shallow {case}: {r:?}");
                assert_eq!(m.classifier, plain.classifier, "shallow {case}");
                if case == "shifted" {
                    assert!(r.stopped_early && r.val_accuracy.last() < Some(&r.best_val_accuracy()), "{r:?}");
                }
                later_peaks += usize::from(r.best_epoch > 0 && r.best_epoch < r.epochs_run);

                let mut m = deep0.clone();
                let r = train_validated(&mut m, &x, &labels, xv, lv, &p, &es).unwrap();
                check_report(&r, epochs, patience, &format!("3-layer {case}"));
                assert_eq!(m.accuracy(xv, lv).unwrap(), r.best_val_accuracy());
                let mut plain = deep0.clone();
                if r.best_epoch > 0 {
                    train_multilayer(&mut plain, &x, &labels, &plain_p(r.best_epoch)).unwrap();
                }
                assert_eq!(m.dictionaries(), plain.dictionaries(), "3-layer {case}: {r:?}");
                assert_eq!(m.classifier, plain.classifier, "3-layer {case}");
                if case == "shifted" {
                    assert!(r.stopped_early && r.val_accuracy.last() < Some(&r.best_val_accuracy()), "{r:?}");
                }
                later_peaks += usize::from(r.best_epoch > 0 && r.best_epoch < r.epochs_run);
            }
            // the fresh held-out sets peak inside the run: a restored epoch other than 0 and the last
            assert!(later_peaks >= 1, "no run restored an intermediate epoch");
        });
    }

    /// A real trainer at a plateau goes back to the best epoch: with a vanishing learning rate
    /// after the decay, the epochs that follow reproduce the best epoch's held-out accuracy (a
    /// trainer that went on from its last parameters would not), and the epochs before the
    /// plateau are the same as without the decay.
    #[test]
    fn a_decayed_trainer_goes_on_from_the_best_epoch() {
        use crate::models::{CodeKind, LinearClassifier, TaskLoss};
        use crate::solver::SolverParams;
        use rand::{RngExt, SeedableRng};
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| {
            let (x, labels, shifted) = shifted_problem(3);
            let p = held_out_params();
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let mut d = DMatrix::from_fn(8, 12, |_, _| rng.random_range(-1.0..1.0));
            super::super::normalise_columns(&mut d);
            // a classifier without ties (a zero one's argmax would flip at the first tiny step)
            let w = DMatrix::from_fn(3, 12, |_, _| rng.random_range(-1.0..1.0));
            let clf = LinearClassifier { w, b: nalgebra::DVector::zeros(3) };
            let mut m0 = PursuitClassifier::new(CodeKind::Bp, d, 1, 0.2, clf, TaskLoss::CrossEntropy).unwrap();
            m0.set_solver_params(SolverParams { tol: 1e-9, max_iter: 50_000, ..SolverParams::default() }).unwrap();
            let stop = EarlyStopping { patience: 2, min_delta: 0.0, decay: None };
            let mut a = m0.clone();
            let ra = train_validated(&mut a, &x, &labels, &x, &shifted, &p, &stop).unwrap();
            assert!(ra.stopped_early && ra.epochs_run + 2 <= p.epochs, "{ra:?}");
            assert!(
                ra.val_accuracy[ra.epochs_run] < ra.best_val_accuracy(),
                "the last epoch must differ from the best: {ra:?}"
            );
            let decay = EarlyStopping { decay: Some(PlateauDecay { factor: 1e-9, max_decays: 1 }), ..stop };
            let mut b = m0.clone();
            let rb = train_validated(&mut b, &x, &labels, &x, &shifted, &p, &decay).unwrap();
            assert_eq!(rb.val_accuracy[..=ra.epochs_run], ra.val_accuracy[..], "same epochs before the plateau");
            assert_eq!(rb.epochs_run, ra.epochs_run + 2, "{rb:?}");
            assert_eq!(rb.val_accuracy[ra.epochs_run + 1..], [ra.best_val_accuracy(); 2], "{rb:?}");
            assert_eq!((rb.best_epoch, rb.stopped_early), (ra.best_epoch, true));
            assert_eq!(b.solver().dictionary(), a.solver().dictionary());
            assert_eq!(b.classifier, a.classifier);
        });
    }

    #[test]
    fn bad_held_out_sets_are_typed_errors() {
        use crate::models::{CodeKind, LinearClassifier, TaskLoss};
        let (x, labels, _) = shifted_problem(4);
        let clf = LinearClassifier { w: DMatrix::zeros(3, 12), b: nalgebra::DVector::zeros(3) };
        let mut d = DMatrix::from_fn(8, 12, |i, j| if i == j % 8 { 1.0 } else { 0.1 * (i + j) as f64 });
        super::super::normalise_columns(&mut d);
        let mut m = PursuitClassifier::new(CodeKind::Bp, d, 1, 0.2, clf, TaskLoss::CrossEntropy).unwrap();
        let p = TaskDrivenParams { epochs: 1, ..TaskDrivenParams::default() };
        let es = EarlyStopping::default();
        let r = train_validated(&mut m, &x, &labels, &x, &labels[1..], &p, &es);
        assert!(matches!(r, Err(SparseBpError::ShapeMismatch { what: "held-out labels", .. })), "{r:?}");
        let empty = x.columns(0, 0).into_owned();
        let r = train_validated(&mut m, &x, &labels, &empty, &[], &p, &es);
        assert!(matches!(r, Err(SparseBpError::Empty { what: "held-out set" })), "{r:?}");
        let bad = EarlyStopping { patience: 0, min_delta: 0.0, decay: None };
        let r = train_validated(&mut m, &x, &labels, &x, &labels, &p, &bad);
        assert!(matches!(r, Err(SparseBpError::InvalidParam { name: "patience", .. })), "{r:?}");
    }

    #[test]
    fn parameters_are_checked() {
        assert!(matches!(
            EarlyStopping { patience: 0, min_delta: 0.0, decay: None }.check(),
            Err(SparseBpError::InvalidParam { name: "patience", .. })
        ));
        for d in [-0.1, 1.0, f64::NAN] {
            assert!(matches!(
                EarlyStopping { patience: 1, min_delta: d, decay: None }.check(),
                Err(SparseBpError::InvalidParam { name: "min_delta", .. })
            ));
        }
        assert!(EarlyStopping::default().check().is_ok());
        for (factor, max_decays, name) in
            [(0.0, 1, "decay factor"), (1.0, 1, "decay factor"), (f64::NAN, 1, "decay factor"), (0.5, 0, "max_decays")]
        {
            let es = EarlyStopping { decay: Some(PlateauDecay { factor, max_decays }), ..EarlyStopping::default() };
            assert!(matches!(es.check(), Err(SparseBpError::InvalidParam { name: n, .. }) if n == name), "{es:?}");
        }
        let es = EarlyStopping { decay: Some(PlateauDecay { factor: 0.5, max_decays: 3 }), ..EarlyStopping::default() };
        assert!(es.check().is_ok());
    }
}
