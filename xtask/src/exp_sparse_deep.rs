//! The 3-layer MNIST models of `sparse-mnist` (spec `sparse-bp.md` sections 3-4): layered BP
//! (`lbp`, `lgbp`, `lpgbp`) and joint Deep Pursuit (`dp`, `gdp`, `pgdp`). Their recipe is
//! `sparse_bp::paper::train_deep` (configured by `sparse_bp::paper::DeepConfig`); this module
//! attacks them and turns their description into `results.json` entries.

use nalgebra::DMatrix;
use serde_json::{Value, json};
use sparse_bp::models::Classifier;
use sparse_bp::models::deep::MultiLayerClassifier;
use sparse_bp::paper::{AttackColumn, DEEP_PAPER, DeepChainInfo, DeepConfig, DeepInfo, MnistSetup};

use crate::attack_log::{self, AttackLog};
use crate::harness::{DynResult, progress};

/// Atoms of layers 1, 2 and 3 of every 3-layer model of a run of `setup`, by model name (in the
/// order of `DEEP_PAPER`).
pub fn layer_sizes(setup: &MnistSetup) -> Vec<(&'static str, [usize; 3])> {
    DEEP_PAPER
        .iter()
        .filter_map(|m| {
            sparse_bp::paper::deep_model_kind(m.0).map(|(_, kind)| (m.0, setup.deep.layer_sizes(kind, setup)))
        })
        .collect()
}

/// The 3-layer models' configuration in a run of `setup` as JSON for `results.json`: with the
/// atoms of every model's three layers (`layer_sizes`) and whether they are the thesis's
/// (`thesis_sizes`, `--thesis-sizes`).
pub fn config_json(setup: &MnistSetup) -> Value {
    let cfg: &DeepConfig = &setup.deep;
    let sizes: serde_json::Map<String, Value> =
        layer_sizes(setup).into_iter().map(|(m, s)| (m.to_owned(), json!(s))).collect();
    json!({"n_train": cfg.n_train, "n_test": cfg.n_test, "eps": cfg.eps, "steps": cfg.steps,
           "thesis_sizes": cfg.thesis.is_some(), "layer_sizes": sizes,
           "dict_epochs": cfg.dict_epochs, "atoms_layers_2_3": cfg.atoms, "penalty_frac": cfg.frac,
           "layer1_group_gamma": cfg.group_gamma,
           "clf_epochs": cfg.clf_epochs, "solver_tol": cfg.tol, "end_to_end_epochs": cfg.end_to_end.epochs,
           "end_to_end_patience": cfg.end_to_end.patience, "end_to_end_lr_decay": cfg.end_to_end.lr_decay,
           "n_val": cfg.n_val,
           "n_train_reason": sparse_bp::paper::DEEP_TRAIN_REASON})
}

fn chain_json(c: &DeepChainInfo) -> Value {
    let mut v: Vec<Value> = c
        .layers
        .iter()
        .map(|l| {
            json!({"layer": l.layer, "input_median_norm": l.input_median_norm,
                   "input_mean_nonzeros": l.input_mean_nonzeros, "lambda": l.lambda, "recon": l.recon})
        })
        .collect();
    v.push(json!({"layer": 3, "output_mean_nonzeros": c.output_mean_nonzeros}));
    Value::Array(v)
}

/// How the models were trained, as JSON for `results.json` and `meta.json` (the pooled models'
/// own chain, with thesis sizes, as `layers_pooled` and `weights_pooled`).
pub fn info_json(info: &DeepInfo, setup: &MnistSetup) -> Value {
    let models: Vec<Value> = info
        .models
        .iter()
        .map(|m| {
            json!({"model": m.model, "train_accuracy": m.train_accuracy, "features": m.features,
                   "train_seconds": m.train_seconds})
        })
        .collect();
    let mut v = json!({"layers_l1": chain_json(&info.l1), "layers_group": chain_json(&info.group),
           "weights_l1": info.l1.weights, "weights_group": info.group.weights,
           "models": models, "config": config_json(setup)});
    if let Some(p) = &info.pooled {
        v["layers_pooled"] = chain_json(p);
        v["weights_pooled"] = json!(p.weights);
    }
    v
}

/// Seconds one model spent under one attack column (all its budgets): (model, column label, seconds).
pub type ColumnTime = (String, &'static str, f64);

/// Clean accuracy and every white-box column (`sparse_bp::paper::mnist_attack_columns`, each on
/// its `AttackColumn::image_indices` test images) of every model at every budget; returns the
/// curve entries (`attack` `none` at eps 0, then each column's label at each of its budgets),
/// and each model's seconds per column. With a `log`, every finished point is recorded there and
/// a point the log already has is read back instead of attacked again (part `3-layer`).
pub fn evaluate(
    models: &[MultiLayerClassifier],
    x_test: &DMatrix<f64>,
    labels: &[usize],
    cfg: &DeepConfig,
    columns: &[AttackColumn],
    mut log: Option<&mut AttackLog>,
) -> DynResult<(Vec<Value>, Vec<ColumnTime>)> {
    let n = cfg.n_test.min(x_test.ncols());
    let labels = &labels[..n];
    let mut out = Vec::new();
    let mut times = Vec::new();
    let per_model: usize = columns.iter().map(|c| c.grid.len()).sum();
    let bar = progress((models.len() * per_model) as u64, "attack 3-layer");
    for m in models {
        for (ci, col) in columns.iter().enumerate() {
            let mut seconds = 0.0;
            let mut data: Option<(DMatrix<f64>, Vec<usize>)> = None;
            for &eps in &col.grid {
                let k = attack_log::key("3-layer", m.name(), col.label, eps);
                let point = match log.as_deref_mut().and_then(|l| l.get(&k)) {
                    Some(p) => p,
                    None => {
                        let t = std::time::Instant::now();
                        let (x_col, labels) = data.get_or_insert_with(|| {
                            let idx = col.image_indices(n);
                            (x_test.select_columns(&idx), idx.iter().map(|&i| labels[i]).collect())
                        });
                        let adv = col.protocol.run(m, x_col, labels, eps)?;
                        let accuracy = m.accuracy(&adv, labels)?;
                        let p =
                            attack_log::Point { accuracy, seconds: t.elapsed().as_secs_f64(), transfer: Vec::new() };
                        if let Some(l) = log.as_deref_mut() {
                            l.put(k, p.clone())?;
                        }
                        p
                    }
                };
                seconds += point.seconds;
                let acc = point.accuracy;
                if eps == 0.0 && ci == 0 {
                    out.push(json!({"model": m.name(), "attack": "none", "eps": 0.0, "accuracy": acc}));
                }
                out.push(json!({"model": m.name(), "attack": col.label, "eps": eps, "accuracy": acc}));
                tracing::info!(model = m.name(), attack = col.label, eps, acc, "3-layer attack");
                bar.inc(1);
            }
            times.push((m.name().to_owned(), col.label, seconds));
        }
    }
    bar.finish_and_clear();
    Ok((out, times))
}
