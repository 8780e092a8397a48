//! Clean accuracy of one 3-layer model against the number of training images (issue 20: the
//! first full run trained the 3-layer models on 10,000 of the 55,000 training images, and they
//! tested 1.6-3 points below the thesis while fitting their training images to 99.8-99.96 %;
//! what this example measured moved the full preset to all 55,000, `paper::DEEP_TRAIN_REASON`).
//!
//! For each `n` in the list: a layer-1 dictionary (`l1`, 256 atoms, penalty 2.0, or groups of 8
//! for the group models; learned without labels on the `n` images, 3 epochs), layers 2 and 3 as
//! the full preset's chain (`paper::mnist(Scale::Full).deep`: 128 and 256 atoms, penalty 0.03 x
//! median input-code norm, 5 dictionary epochs), a softmax classifier on the codes, then the
//! full preset's end-to-end training (its solver, learning rates, batch, warm starts, at most
//! 20 epochs, patience 3) with early stopping on `n_val` held-out training images (the images
//! after the largest `n`, the same for every `n`). Printed per `n`: epochs run, best held-out
//! accuracy, training accuracy, test accuracy on `n_test` test images spread evenly over the
//! test set (every `10,000 / n_test`-th), seconds.
//!
//! `cargo run --release -p sparse-bp --example deep_train_size -- [data dir] [model] [n,n,...] [n_val] [n_test]`
//! (defaults `../shared/data/mnist lbp 5000,10000,20000 2000 2000`; model one of `lbp`,
//! `lgbp`, `lpgbp`, `dp`, `gdp`, `pgdp`). Not the library's full recipe in one respect: the
//! layer-1 dictionary is learned here on the `n` images for 3 epochs and, for the group
//! models, without the class structure of `MnistSetup::train`'s group dictionary.

use std::time::Instant;

use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, TaskLoss};
use sparse_bp::nalgebra::DMatrix;
use sparse_bp::paper::{self, Scale};
use sparse_bp::train::task_driven::early_stopping::train_validated;
use sparse_bp::train::{DictParams, FitParams, learn_dictionary, train_linear};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::BoxError;

/// The chain of three dictionaries and their penalties (module docs), learned on `x`: layer 1
/// here, layers 2 and 3 by the library's [`paper::learn_chain`].
fn chain(
    x: &DMatrix<f64>,
    gs: usize,
    cfg: &paper::DeepConfig,
    seed: u64,
) -> Result<(Vec<DMatrix<f64>>, Vec<f64>), BoxError> {
    let lambda = 2.0;
    let p = DictParams {
        atoms: 256,
        group_size: gs,
        lambda,
        epochs: 3,
        warmup_epochs: 1,
        lr: 2e-3,
        batch_size: 250,
        coherence_weight: 0.0,
        code_tol: 1e-3,
        seed,
    };
    let (d1, _) = learn_dictionary(x, &p)?;
    let (dicts, info) = paper::learn_chain(x, &d1, lambda, gs, cfg, seed)?;
    Ok((dicts, info.weights))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "../shared/data/mnist".into());
    let model = args.get(2).cloned().unwrap_or_else(|| "lbp".into());
    let ns: Vec<usize> = match args.get(3) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![5_000, 10_000, 20_000],
    };
    let n_val: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let n_test: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let (pursuit, kind) = paper::deep_model_kind(&model)
        .ok_or_else(|| format!("unknown model `{model}`: lbp, lgbp, lpgbp, dp, gdp or pgdp"))?;
    let n_max = ns.iter().copied().max().ok_or("no training sizes given")?;
    if n_test == 0 || n_test > 10_000 {
        return Err(format!("n_test = {n_test}: between 1 and 10,000").into());
    }
    let s = mnist_idx::load_standardised(&dir, n_max + n_val, 10_000)?;
    let x_val = s.x_train.columns(n_max, n_val).into_owned();
    let l_val = &s.y_train[n_max..];
    let stride = 10_000 / n_test;
    let idx: Vec<usize> = (0..n_test).map(|i| i * stride).collect();
    let x_test = DMatrix::from_fn(784, n_test, |r, c| s.x_test[(r, idx[c])]);
    let l_test: Vec<usize> = idx.iter().map(|&i| s.y_test[i]).collect();
    let full = paper::mnist(Scale::Full);
    let cfg = &full.deep;
    let gs = if kind == CodeKind::Bp { 1 } else { full.group };
    println!(
        "{model}: held out {n_val} (training images {n_max}..), test {n_test} (every {stride}th); \
         end to end at most {} epochs, patience {}",
        cfg.end_to_end.epochs, cfg.end_to_end.patience
    );
    let ce = TaskLoss::CrossEntropy;
    for n in ns {
        let t = Instant::now();
        let x = s.x_train.columns(0, n).into_owned();
        let labels = &s.y_train[..n];
        let (dicts, weights) = chain(&x, gs, cfg, 7)?;
        let nf = paper::deep_features(kind, &dicts, gs);
        let build = |clf| paper::deep_model(cfg, (pursuit, kind), &dicts, gs, &weights, clf);
        let m0 = build(LinearClassifier::zeros(10, nf))?;
        let fit = FitParams { epochs: cfg.clf_epochs, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 0 };
        let mut m = build(train_linear(&m0.features(&x)?, labels, ce, &fit)?)?;
        let before = m.accuracy(&x_test, &l_test)?;
        let r = train_validated(
            &mut m,
            &x,
            labels,
            &x_val,
            l_val,
            &cfg.end_to_end.params(41),
            &cfg.end_to_end.early_stopping(),
        )?;
        println!(
            "n = {n:>6}: test {:.2} % (classifier on frozen codes {:.2} %), train {:.2} %, held out best {:.2} % \
             after {} of {} epochs, {:.0} s",
            100.0 * m.accuracy(&x_test, &l_test)?,
            100.0 * before,
            100.0 * m.accuracy(&x, labels)?,
            100.0 * r.best_val_accuracy(),
            r.best_epoch,
            r.epochs_run,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
