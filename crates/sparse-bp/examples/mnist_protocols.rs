//! Small MNIST check of the attack protocols and of end-to-end training (issue 20), without
//! the xtask: learns a BP (256 atoms, `l1`) and a group (32 groups of 8) dictionary without
//! labels, trains softmax classifiers on the codes (BP, GBP, PGBP), evaluates each clean and
//! under the labelled protocols at one budget, then fine-tunes each model end to end
//! ([`sparse_bp::train::task_driven::train_task_driven`]: cross-entropy + reconstruction,
//! dictionary and classifier jointly) and evaluates again.
//!
//! `cargo run --release -p sparse-bp --example mnist_protocols -- [data dir] [n_train] [n_test] [e2e epochs] [eps]`
//! (defaults `../shared/data/mnist 1000 200 3 0.15`). Inputs are standardised with the
//! training pixels' scalar mean and standard deviation; `eps` is in standardised units for
//! the `-std` columns and in pixel units for `ifgsm-linf-px`. First images of each split.

use std::time::Instant;

use sparse_bp::attack::AttackNorm;
use sparse_bp::attack::protocol::{AttackProtocol, EpsUnit, Pgd};
use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
use sparse_bp::train::task_driven::{TaskDrivenParams, train_task_driven};
use sparse_bp::train::{DictParams, FitParams, learn_dictionary, train_linear};
use sparse_bp::{Algorithm, SolverParams};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::{BoxError, Standardised, load_standardised};

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).cloned().unwrap_or_else(|| "../shared/data/mnist".into());
    let n_train: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n_test: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let e2e_epochs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let eps: f64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0.15);
    let t0 = Instant::now();
    let Standardised { x_train, y_train, x_test, y_test, stdz, space } = load_standardised(&dir, n_train, n_test)?;
    println!(
        "MNIST: {n_train} train / {n_test} test images, pixel mean {:.4} std {:.4}, eps {eps}",
        stdz.mean, stdz.std
    );
    let protocols = [
        AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Standardised, 10, space),
        AttackProtocol::ifgsm(AttackNorm::Linf, EpsUnit::Pixel, 10, space),
        AttackProtocol::ifgsm(AttackNorm::L2, EpsUnit::Standardised, 10, space),
        AttackProtocol::pgd(
            AttackNorm::Linf,
            EpsUnit::Standardised,
            20,
            Pgd { restarts: 3, seed: 7, ..Pgd::default() },
            space,
        ),
    ];
    let sp = SolverParams { algorithm: Algorithm::Fista, tol: 1e-5, max_iter: 2000, ..SolverParams::default() };
    let ce = TaskLoss::CrossEntropy;
    let (atoms, group, lambda) = (256, 8, 2.0);
    let mut header = format!("{:<24} {:>7}", "model", "clean");
    for p in &protocols {
        header += &format!(" {:>15}", p.label());
    }
    println!("{header} {:>8}", "time s");
    for (kind, gs, name) in [(CodeKind::Bp, 1, "bp"), (CodeKind::Gbp, group, "gbp"), (CodeKind::Pgbp, group, "pgbp")] {
        let t = Instant::now();
        let dp = DictParams {
            atoms,
            group_size: gs,
            lambda,
            epochs: 3,
            warmup_epochs: 1,
            lr: 2e-3,
            batch_size: 250,
            code_tol: 1e-3,
            seed: 1,
            ..DictParams::default()
        };
        let (d, _) = learn_dictionary(&x_train, &dp)?;
        let nf = if kind == CodeKind::Pgbp { atoms / group } else { atoms };
        let mut m = PursuitClassifier::new(kind, d.clone(), group, lambda, LinearClassifier::zeros(10, nf), ce)?;
        m.set_solver_params(sp.clone())?;
        let fit = FitParams { epochs: 40, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 1 };
        let clf = train_linear(&m.features(&x_train)?, &y_train, ce, &fit)?;
        let mut m = PursuitClassifier::new(kind, d, group, lambda, clf, ce)?;
        m.set_solver_params(sp.clone())?;
        let t_frozen = t.elapsed().as_secs_f64();
        let mut rows = vec![(format!("{name} (frozen codes)"), m.clone(), t_frozen)];
        let t = Instant::now();
        let p = TaskDrivenParams {
            epochs: e2e_epochs,
            lr: 5e-4,
            clf_lr: Some(3e-3),
            batch_size: 100,
            recon_weight: 0.05,
            seed: 2,
            ..TaskDrivenParams::default()
        };
        let hist = train_task_driven(&mut m, &x_train, &y_train, &p)?;
        let first = hist.first().map(|l| (l.task, l.recon));
        let last = hist.last().map(|l| (l.task, l.recon));
        println!("  {name}: end-to-end task / recon {first:.4?} -> {last:.4?}");
        rows.push((format!("{name} (end to end)"), m, t_frozen + t.elapsed().as_secs_f64()));
        for (label, model, secs) in rows {
            let clean = model.accuracy(&x_test, &y_test)?;
            let mut line = format!("{label:<24} {:>6.1}%", 100.0 * clean);
            let t = Instant::now();
            for p in &protocols {
                let adv = p.run(&model, &x_test, &y_test, eps)?;
                line += &format!(" {:>14.1}%", 100.0 * model.accuracy(&adv, &y_test)?);
            }
            println!("{line} {:>8.0} (train) {:>6.0} (attacks)", secs, t.elapsed().as_secs_f64());
        }
    }
    println!("total {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
