//! Cost of end-to-end training epochs of the 3-layer models at this project's layer sizes
//! against the thesis's (issue 20, point 5): LBP (layered `l1`) and PGDP (pooled Deep
//! Pursuit, groups of 8) on the first `n` MNIST training images.
//!
//! Sizes (atoms of layers 1 -> 2 -> 3): ours 256 -> 128 -> 256 for both; the thesis's
//! LBP/DP 128 -> 256 -> 4096 and pooled 128 -> 256 -> 512. Each chain is learned here
//! without labels as in `paper::train_deep` (layer 1 on the images with the MNIST preset's
//! layer-1 penalty 2.0 (`lambda_bp`, `DeepConfig::group_gamma`), layers 2 and 3 on the previous layer's codes with penalty 0.03 x median code
//! norm; one dictionary epoch each, a plain group dictionary for layer 1 of the pooled model
//! instead of the class-structured one), a softmax classifier is trained on the codes, and
//! then the model is trained end to end with the full preset's recipe
//! (`paper::mnist(Scale::Full)`: its solver per model, tolerance, learning rates, batch
//! size, warm starts) for 1 and for 2 epochs (held-out set: 1 image, so validation costs
//! nothing). Printed: seconds of epoch 1 (cold pursuits) and of epoch 2 (warm-started
//! from epoch 1's codes: 2-epoch run minus 1-epoch run), and the memory of the stored codes.
//!
//! `which = shallow` times the same two runs for the shallow BP and PGBP models instead (256
//! atoms, groups of 8, penalty 2.0 — the preset's before issue 20 raised the shallow group
//! penalty `gamma_gbp` to 6.0 —, FISTA to a relative duality gap of `1e-5` as in
//! `MnistSetup::train`; dictionary learned here for one epoch, not class-structured), and
//! also epoch 2 without warm starts (2-epoch cold run minus the 1-epoch run).
//!
//! `cargo run --release -p sparse-bp --example deep_epoch_cost -- [data dir] [n] [which]`
//! (defaults `../shared/data/mnist 500 all`; `which` = `all`, `ours`, `thesis` or `shallow`).

use std::time::Instant;

use sparse_bp::models::deep::Pursuit;
use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
use sparse_bp::nalgebra::DMatrix;
use sparse_bp::paper::{self, Scale};
use sparse_bp::train::task_driven::early_stopping::{EarlyStopping, train_validated};
use sparse_bp::train::{DictParams, FitParams, group_spec, learn_dictionary, train_linear};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::BoxError;

/// Standardised images (global pixel mean / deviation) and labels of the first `n` training images.
fn load(dir: &str, n: usize) -> Result<(DMatrix<f64>, Vec<usize>), BoxError> {
    let s = mnist_idx::load_standardised(dir, n, 0)?;
    Ok((s.x_train, s.y_train))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Learns a chain of dictionaries with `atoms` per layer (unsupervised, see the module docs);
/// returns the dictionaries and every layer's penalty.
fn chain(x: &DMatrix<f64>, atoms: [usize; 3], gs: usize, seed: u64) -> Result<(Vec<DMatrix<f64>>, Vec<f64>), BoxError> {
    let (mut dicts, mut weights) = (Vec::new(), Vec::new());
    let mut input = x.clone();
    for (l, &a) in atoms.iter().enumerate() {
        let lambda = if l == 0 { 2.0 } else { 0.03 * median(input.column_iter().map(|c| c.norm()).collect()) };
        let p = DictParams {
            atoms: a,
            group_size: gs,
            lambda,
            epochs: 1,
            warmup_epochs: 1,
            lr: 2e-3,
            batch_size: 250,
            coherence_weight: 0.0,
            code_tol: 1e-3,
            seed: seed + l as u64,
        };
        let (d, _) = learn_dictionary(&input, &p)?;
        let s = sparse_bp::Solver::new(
            d.clone(),
            group_spec(a, gs, lambda)?,
            sparse_bp::SolverParams { tol: 1e-3, ..Default::default() },
        )?;
        input = s.solve(&input)?.codes;
        dicts.push(d);
        weights.push(lambda);
    }
    Ok((dicts, weights))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "../shared/data/mnist".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let which = args.get(3).cloned().unwrap_or_else(|| "all".into());
    let (x, labels) = load(&dir, n)?;
    let full = paper::mnist(Scale::Full);
    let e2e = &full.deep.end_to_end;
    println!(
        "{n} images, full preset's end-to-end recipe (solver tol {}, batch {}, warm starts {})",
        full.deep.tol, e2e.batch_size, e2e.warm_start
    );
    if which == "shallow" {
        return shallow(&x, &labels, &full);
    }
    let configs: [(&str, Pursuit, CodeKind, usize, [usize; 3]); 4] = [
        ("ours", Pursuit::Layered, CodeKind::Bp, 1, [256, 128, 256]),
        ("thesis", Pursuit::Layered, CodeKind::Bp, 1, [128, 256, 4096]),
        ("ours", Pursuit::Deep, CodeKind::Pgbp, 8, [256, 128, 256]),
        ("thesis", Pursuit::Deep, CodeKind::Pgbp, 8, [128, 256, 512]),
    ];
    for (sizes, pursuit, kind, gs, atoms) in configs {
        if which != "all" && which != sizes {
            continue;
        }
        let t = Instant::now();
        let (dicts, weights) = chain(&x, atoms, gs, 3)?;
        let nf = paper::deep_features(kind, &dicts, gs);
        let ce = TaskLoss::CrossEntropy;
        let build = |clf| paper::deep_model(&full.deep, (pursuit, kind), &dicts, gs, &weights, clf);
        let m0 = build(LinearClassifier::zeros(10, nf))?;
        let fit = FitParams { epochs: 10, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 1 };
        let m = build(train_linear(&m0.features(&x)?, &labels, ce, &fit)?)?;
        let setup = t.elapsed().as_secs_f64();
        let x_val = x.columns(0, 1).into_owned();
        let es = EarlyStopping { patience: 2, min_delta: 0.0, decay: None };
        let mut secs = Vec::new();
        for epochs in [1usize, 2] {
            let mut mm = m.clone();
            let p = sparse_bp::train::task_driven::TaskDrivenParams { epochs, ..e2e.params(5) };
            let t = Instant::now();
            let r = train_validated(&mut mm, &x, &labels, &x_val, &labels[..1], &p, &es)?;
            secs.push(t.elapsed().as_secs_f64());
            assert_eq!(r.epochs_run, epochs, "patience 2: every epoch runs");
        }
        let rows: usize = atoms.iter().sum();
        println!(
            "{} {sizes:<6} {:?} (groups of {gs}): setup {setup:.1} s; epoch 1 (cold) {:.2} s, epoch 2 (warm) {:.2} s \
             ({:.2}x); stored codes {rows} x n f64 = {:.1} MB at n = 10,000",
            m.name(),
            atoms,
            secs[0],
            secs[1] - secs[0],
            secs[0] / (secs[1] - secs[0]),
            (rows * 10_000 * 8) as f64 / 1e6
        );
    }
    Ok(())
}

/// Seconds of `train_validated` for 1 epoch, for 2 epochs with warm starts and for 2 epochs
/// without, of `m` (held-out set: 1 image).
fn epoch_seconds<M: sparse_bp::train::task_driven::trainer::EndToEnd>(
    m: &M,
    x: &DMatrix<f64>,
    labels: &[usize],
    e2e: &paper::EndToEnd,
) -> Result<[f64; 3], BoxError> {
    let x_val = x.columns(0, 1).into_owned();
    let es = EarlyStopping { patience: 2, min_delta: 0.0, decay: None };
    let mut secs = [0.0; 3];
    for (k, (epochs, warm_start)) in [(1usize, true), (2, true), (2, false)].into_iter().enumerate() {
        let mut mm = m.clone();
        let p = sparse_bp::train::task_driven::TaskDrivenParams { epochs, warm_start, ..e2e.params(5) };
        let t = Instant::now();
        let r = train_validated(&mut mm, x, labels, &x_val, &labels[..1], &p, &es)?;
        secs[k] = t.elapsed().as_secs_f64();
        assert_eq!(r.epochs_run, epochs, "patience 2: every epoch runs");
    }
    Ok(secs)
}

/// The shallow BP and PGBP models (module docs).
fn shallow(x: &DMatrix<f64>, labels: &[usize], full: &paper::MnistSetup) -> Result<(), BoxError> {
    let ce = TaskLoss::CrossEntropy;
    let sp = sparse_bp::SolverParams { tol: 1e-5, max_iter: 2000, ..Default::default() };
    for (kind, gs) in [(CodeKind::Bp, 1usize), (CodeKind::Pgbp, full.group)] {
        let (d, lambda) = {
            let p = DictParams {
                atoms: full.atoms,
                group_size: gs,
                lambda: 2.0,
                epochs: 1,
                warmup_epochs: 1,
                lr: 2e-3,
                batch_size: 250,
                coherence_weight: 0.0,
                code_tol: 1e-3,
                seed: 3,
            };
            (learn_dictionary(x, &p)?.0, p.lambda)
        };
        let nf = if kind == CodeKind::Pgbp { full.atoms / gs } else { full.atoms };
        let mut m0 = PursuitClassifier::new(kind, d.clone(), gs, lambda, LinearClassifier::zeros(10, nf), ce)?;
        m0.set_solver_params(sp.clone())?;
        let fit = FitParams { epochs: 10, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 1 };
        let clf = train_linear(&m0.features(x)?, labels, ce, &fit)?;
        let mut m = PursuitClassifier::new(kind, d, gs, lambda, clf, ce)?;
        m.set_solver_params(sp.clone())?;
        let secs = epoch_seconds(&m, x, labels, &full.end_to_end)?;
        println!(
            "{kind:?} shallow {} atoms (groups of {gs}): epoch 1 (cold) {:.2} s, epoch 2 warm {:.2} s / cold {:.2} s ({:.2}x); \
             stored codes {} x n f64 = {:.1} MB at n = 55,000; train accuracy {:.3}",
            full.atoms,
            secs[0],
            secs[1] - secs[0],
            secs[2] - secs[0],
            (secs[2] - secs[0]) / (secs[1] - secs[0]),
            full.atoms,
            (full.atoms * 55_000 * 8) as f64 / 1e6,
            m.accuracy(x, labels)?
        );
    }
    Ok(())
}
