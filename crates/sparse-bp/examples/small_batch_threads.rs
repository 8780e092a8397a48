//! Cost of the small batches of `sparse-mnist` on this machine's threads (issue 20): one
//! end-to-end training epoch (batches of 100 images, the full preset's recipe
//! `paper::mnist(Scale::Full).end_to_end`) and one `ifgsm-linf-std` attack column at
//! `eps` 0.15 (one batch of `n_test` images, the full preset's 10 steps, each step's pursuit
//! warm-started from the previous step's codes) of the shallow BP and PGBP models.
//!
//! The models are built here as in `MnistSetup::train` but smaller: a dictionary learned
//! without labels for one epoch (256 atoms; PGBP: 32 groups of 8, not class-structured),
//! FISTA to a relative duality gap of `1e-5`, a softmax classifier trained for 5 epochs on the
//! codes. Printed per model: seconds of the epoch and of the column, the mean time of a cold
//! solve of the `n_test` test images (20 repetitions) with the trained model, the attacked accuracy,
//! and a checksum of the trained dictionary (sum of its absolute entries, all digits) so that
//! runs on different thread counts can be compared for identical results.
//!
//! Run it once per thread count, in one sitting, and compare the ratio:
//! `RAYON_NUM_THREADS=1 cargo run --release -p sparse-bp --example small_batch_threads -- [data dir] [n_train] [n_test] [seed]`
//! (defaults `../shared/data/mnist 1000 100 0`).

use std::time::Instant;

use sparse_bp::attack::AttackNorm;
use sparse_bp::attack::protocol::{AttackProtocol, EpsUnit};
use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
use sparse_bp::paper::{self, Scale};
use sparse_bp::train::task_driven::train_task_driven;
use sparse_bp::train::{DictParams, FitParams, learn_dictionary, train_linear};
use sparse_bp::{Algorithm, SolverParams};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::{BoxError, Standardised, load_standardised};

/// Cold solves of the test batch timed per model (the mean is printed).
const SOLVE_REPS: usize = 20;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "../shared/data/mnist".into());
    let n_train: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n_test: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let Standardised { x_train, y_train, x_test, y_test, space, .. } = load_standardised(&dir, n_train, n_test)?;
    let full = paper::mnist(Scale::Full);
    let attack = AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, full.sizes.steps, space);
    let sp = SolverParams { algorithm: Algorithm::Fista, tol: 1e-5, max_iter: 2000, ..SolverParams::default() };
    let ce = TaskLoss::CrossEntropy;
    println!(
        "threads {}, {n_train} train / {n_test} test images, seed {seed}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into())
    );
    for (kind, gs, name) in [(CodeKind::Bp, 1, "bp"), (CodeKind::Pgbp, full.group, "pgbp")] {
        let dp = DictParams {
            atoms: full.atoms,
            group_size: gs,
            lambda: full.lambda_bp,
            epochs: 1,
            warmup_epochs: 0,
            lr: 2e-3,
            batch_size: 250,
            code_tol: 1e-3,
            seed,
            ..DictParams::default()
        };
        let (d, _) = learn_dictionary(&x_train, &dp)?;
        let nf = if kind == CodeKind::Pgbp { full.atoms / gs } else { full.atoms };
        let mut m = PursuitClassifier::new(kind, d.clone(), gs, full.lambda_bp, LinearClassifier::zeros(10, nf), ce)?;
        m.set_solver_params(sp.clone())?;
        let fit = FitParams { epochs: 5, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed };
        let clf = train_linear(&m.features(&x_train)?, &y_train, ce, &fit)?;
        let mut m = PursuitClassifier::new(kind, d, gs, full.lambda_bp, clf, ce)?;
        m.set_solver_params(sp.clone())?;
        let mut p = full.end_to_end.params(seed + 1);
        p.epochs = 1;
        let t = Instant::now();
        train_task_driven(&mut m, &x_train, &y_train, &p)?;
        let t_epoch = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let adv = attack.run(&m, &x_test, &y_test, 0.15)?;
        let t_attack = t.elapsed().as_secs_f64();
        let acc = m.accuracy(&adv, &y_test)?;
        let t = Instant::now();
        let mut iters = 0usize;
        for _ in 0..SOLVE_REPS {
            iters += m.solver().solve(&x_test)?.iterations.iter().sum::<usize>();
        }
        let t_solve = t.elapsed().as_secs_f64() / SOLVE_REPS as f64;
        let checksum: f64 = m.solver().dictionary().iter().map(|v| v.abs()).sum();
        println!(
            "{name}: e2e epoch {t_epoch:.2} s, ifgsm-linf-std@0.15 column {t_attack:.2} s, cold solve of the test batch {:.1} ms ({} iterations), accuracy {:.1} %, dictionary checksum {checksum:?}",
            1e3 * t_solve,
            iters / SOLVE_REPS,
            100.0 * acc
        );
    }
    Ok(())
}
