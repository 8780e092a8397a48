//! A fixed, repeatable end-to-end training workload of one 3-layer model, for profiling
//! (issue 20: the 3-layer end-to-end stages are most of a full `sparse-mnist` run).
//!
//! `prep` learns a model as [`deep_train_size`](deep_train_size.rs) does (layer 1: 256 atoms,
//! penalty 2.0, `l1` or groups of 8, learned here without labels for one epoch; layers 2 and 3
//! by [`paper::learn_chain`] with the full preset's chain; a softmax classifier on the codes)
//! on the first `n` standardised MNIST training images and saves it. `run` loads it and trains
//! it end to end on the same images with the full preset's recipe
//! (`paper::mnist(Scale::Full).deep`: its solver, tolerance, learning rates, batch size, warm
//! starts; held-out set of 1 image, so validation costs next to nothing) for `epochs` epochs,
//! then prints the process CPU time of the training and a hash of every bit of the kept
//! dictionaries and classifier and of every epoch's training loss, so that two builds can be checked to train the same model.
//!
//! ```text
//! cargo run --release -p sparse-bp --example deep_e2e_profile -- prep <mnist dir> <model> <n> <file>
//! cargo run --release -p sparse-bp --example deep_e2e_profile -- run <mnist dir> <file> <n> <epochs>
//! ```
//! (`model` one of `lbp`, `lgbp`, `lpgbp`, `dp`, `gdp`, `pgdp`). Under
//! `valgrind --tool=callgrind` the `run` step's instruction count is a load-independent cost.
//!
//! Measured 2026-12-04 (issue 20; models prepped on 500 images, `run` on the first `n` images
//! for 2 epochs), before (faa796a) / after the exact kernels of `solver::kernels`, with the
//! same model hash before and after in every case (the trained bits did not change):
//!
//! | model | callgrind instructions, `n` = 200 (100 for DP, LGBP, LPGBP) | CPU s, `n` = 1000 (load 8-9) |
//! | --- | --- | --- |
//! | GDP | 68.98 G / 22.34 G (3.1x) | 18.97 / 10.51 (1.80x) |
//! | PGDP | 71.08 G / 22.88 G (3.1x) | 20.49 / 12.12 (1.69x) |
//! | DP | 9.94 G / 4.04 G (2.5x) | 3.30 / 1.98 (1.67x) |
//! | LGBP | 9.13 G / 9.03 G | 6.80 / 6.60 |
//! | LPGBP | 9.19 G / 9.10 G | 6.73 / 6.42 |
//!
//! (Part of the instruction-count drop is AVX2's four doubles per instruction; the CPU times
//! are the fairer speed-up, on this loaded 2-core VM.)

use std::path::Path;

use sparse_bp::models::deep::MultiLayerClassifier;
use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, TaskLoss};
use sparse_bp::paper::{self, Scale};
use sparse_bp::train::task_driven::early_stopping::{EarlyStopping, train_validated};
use sparse_bp::train::{DictParams, FitParams, learn_dictionary, load_model, save_model, train_linear};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::BoxError;

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name in parentheses: utime is field 14, stime 15 (1-based)
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// FNV-1a over the bits of every value.
fn hash(values: impl Iterator<Item = f64>) -> u64 {
    values.fold(0xcbf2_9ce4_8422_2325, |h, v| {
        v.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    })
}

fn prep(dir: &str, model: &str, n: usize, file: &str) -> Result<(), BoxError> {
    let (pursuit, kind) = paper::deep_model_kind(model).ok_or_else(|| format!("unknown model `{model}`"))?;
    let s = mnist_idx::load_standardised(dir, n, 0)?;
    let (x, labels) = (s.x_train, s.y_train);
    let full = paper::mnist(Scale::Full);
    let cfg = &full.deep;
    let gs = if kind == CodeKind::Bp { 1 } else { full.group };
    let p = DictParams {
        atoms: 256,
        group_size: gs,
        lambda: 2.0,
        epochs: 1,
        warmup_epochs: 1,
        lr: 2e-3,
        batch_size: 250,
        coherence_weight: 0.0,
        code_tol: 1e-3,
        seed: 7,
    };
    let (d1, _) = learn_dictionary(&x, &p)?;
    let (dicts, info) = paper::learn_chain(&x, &d1, 2.0, gs, cfg, 7)?;
    let nf = paper::deep_features(kind, &dicts, gs);
    let ce = TaskLoss::CrossEntropy;
    let build = |clf| paper::deep_model(cfg, (pursuit, kind), &dicts, gs, &info.weights, clf);
    let m0 = build(LinearClassifier::zeros(10, nf))?;
    let fit = FitParams { epochs: cfg.clf_epochs, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 0 };
    let m = build(train_linear(&m0.features(&x)?, &labels, ce, &fit)?)?;
    save_model(Path::new(file), &m)?;
    println!("{model} on {n} images saved to {file}; train accuracy {:.3}", m.accuracy(&x, &labels)?);
    Ok(())
}

fn run(dir: &str, file: &str, n: usize, epochs: usize) -> Result<(), BoxError> {
    let s = mnist_idx::load_standardised(dir, n, 0)?;
    let (x, labels) = (s.x_train, s.y_train);
    let mut m: MultiLayerClassifier = load_model(Path::new(file))?;
    let full = paper::mnist(Scale::Full);
    let p = sparse_bp::train::task_driven::TaskDrivenParams { epochs, ..full.deep.end_to_end.params_for(m.kind, 41) };
    let es = EarlyStopping { patience: epochs.max(1), min_delta: 0.0, decay: None };
    let x_val = x.columns(0, 1).into_owned();
    let c0 = cpu_seconds();
    let t = std::time::Instant::now();
    let r = train_validated(&mut m, &x, &labels, &x_val, &labels[..1], &p, &es)?;
    let (cpu, wall) = (cpu_seconds() - c0, t.elapsed().as_secs_f64());
    let h = hash(
        m.dictionaries()
            .iter()
            .flat_map(|d| d.iter().copied())
            .chain(m.classifier.w.iter().copied())
            .chain(m.classifier.b.iter().copied())
            .chain(r.train_loss.iter().copied()),
    );
    println!(
        "{} {n} images, {} epochs: cpu {cpu:.2} s, wall {wall:.2} s; train loss {:?}; model hash {h:016x}",
        m.name(),
        r.epochs_run,
        r.train_loss
    );
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).cloned().ok_or_else(|| format!("argument {i} missing (see the module docs)"));
    match arg(1)?.as_str() {
        "prep" => prep(&arg(2)?, &arg(3)?, arg(4)?.parse()?, &arg(5)?),
        "run" => run(&arg(2)?, &arg(3)?, arg(4)?.parse()?, arg(5)?.parse()?),
        other => Err(format!("unknown mode `{other}`: prep or run").into()),
    }
}
