//! The `timing` block of `sparse-mnist`'s `results.json`: measured seconds of every stage
//! (training per model, attacks per model and column, certificates) and [`estimate_full`],
//! the time a full run would take on this machine, extrapolated from the measured cost per
//! unit of work (images x epochs, or images x budgets x steps) of each stage. A training stage
//! resumed from the run's training folder keeps the seconds measured by the run that computed
//! it (`StageTime::resumed`; `sparse-mnist` adds them back to this run's wall time before it
//! takes the fixed part, and reports them as `resumed_training_seconds`).

use serde_json::{Value, json};
use sparse_bp::attack::protocol::InputSpace;
use sparse_bp::paper::{AttackColumn, MnistSetup, StageTime, mnist_attack_columns};

/// One measured stage and how much work it did here and would do in a full run.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// What ran (`end-to-end`, `attack`, `deep-attack`, `certificates`, ...).
    pub stage: String,
    /// The model it ran for (`all` for a stage shared by every model).
    pub model: String,
    /// Measured wall-clock seconds.
    pub seconds: f64,
    /// Its work in this run (images x epochs, or images x budgets x steps).
    pub work: f64,
    /// The same stage's work in a full run.
    pub full_work: f64,
}

impl Cost {
    /// The stage's estimated seconds in a full run: `seconds / work x full_work` (the measured
    /// seconds if it did no work here).
    pub fn full_seconds(&self) -> f64 {
        if self.work > 0.0 { self.seconds / self.work * self.full_work } else { self.seconds }
    }
}

/// What the estimate assumes, printed with it.
pub const ASSUMPTIONS: &str = "each stage's time scales linearly with its work (training: images x epochs; attacks: \
     test images x budgets x steps; certificates: test images), so the solver's cost per image and the machine's load \
     stay as measured here; end-to-end training runs all its epochs (no early stop: an upper bound for that stage) \
     and its held-out evaluation scales with the training images; the full run's tighter 3-layer solver tolerance \
     (1e-5 against quick's 1e-4) and any change in code sparsity are not modelled; stages that do not scale with the \
     data (data loading, throughput timing, plots) keep their measured time";

/// The full run's work of a training stage (`images x epochs`), `None` for an unknown stage.
fn full_training_work(t: &StageTime, full: &MnistSetup) -> Option<f64> {
    let (sz, deep) = (&full.sizes, &full.deep);
    let (images, epochs) = match t.stage.as_str() {
        "dictionary-bp" => (sz.n_train, full.dict_epochs),
        "dictionary-group" => (sz.n_train, full.dict_epochs * 3),
        "codes" => (sz.n_train, 1),
        "classifier" => (sz.n_train, sz.clf_epochs),
        "end-to-end" => (sz.n_train, full.end_to_end.epochs),
        "approximators" => (sz.n_train, sz.approx_epochs),
        "deep-dictionaries" => (deep.n_train, deep.dict_epochs * deep.atoms.len()),
        "deep-codes" => (deep.n_train, 1),
        "deep-classifier" => (deep.n_train, deep.clf_epochs),
        "deep-end-to-end" => (deep.n_train, deep.end_to_end.epochs),
        _ => return None,
    };
    Some((images * epochs) as f64)
}

/// The training stages as [`Cost`]s against the `full` preset; an unknown stage is an error.
pub fn training_costs(timing: &[StageTime], full: &MnistSetup) -> Result<Vec<Cost>, String> {
    timing
        .iter()
        .map(|t| {
            let full_work =
                full_training_work(t, full).ok_or_else(|| format!("unknown training stage `{}`", t.stage))?;
            Ok(Cost {
                stage: t.stage.clone(),
                model: t.model.clone(),
                seconds: t.seconds,
                work: (t.images * t.epochs) as f64,
                full_work,
            })
        })
        .collect()
}

/// An attack column's work on a part with `images` test images: the images it attacks
/// ([`AttackColumn::n_images`], the check columns fewer in the full preset) x budgets x steps.
pub fn attack_work(col: &AttackColumn, images: usize, steps: usize) -> f64 {
    (col.n_images(images) * col.grid.len() * steps) as f64
}

/// The attack columns of a `full` run, (shallow, 3-layer), with its check columns' image limit:
/// what the attack stages' work is extrapolated to.
pub fn full_attack_columns(space: InputSpace, full: &MnistSetup) -> (Vec<AttackColumn>, Vec<AttackColumn>) {
    let sz = &full.sizes;
    (
        mnist_attack_columns(space, &sz.eps, &sz.eps_l2, sz.steps, full.check_images, 0),
        mnist_attack_columns(space, &full.deep.eps, &[], full.deep.steps, full.check_images, 0),
    )
}

/// The estimate: every cost's [`Cost::full_seconds`] plus `fixed_seconds` (time that does not
/// scale with the data).
pub fn estimate_full(costs: &[Cost], fixed_seconds: f64) -> f64 {
    costs.iter().map(Cost::full_seconds).sum::<f64>() + fixed_seconds.max(0.0)
}

/// `h:mm:ss` of a number of seconds (rounded to whole seconds).
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The `timing` block: the stages, the fixed part, the estimate and its assumptions.
pub fn timing_json(costs: &[Cost], fixed_seconds: f64, preset: &str, estimate: Option<f64>) -> Value {
    let stages: Vec<Value> = costs
        .iter()
        .map(|c| {
            json!({"stage": c.stage, "model": c.model, "seconds": c.seconds, "work": c.work,
                   "full_work": c.full_work, "full_seconds_estimate": c.full_seconds()})
        })
        .collect();
    json!({"preset": preset, "stages": stages, "fixed_seconds": fixed_seconds,
           "measured_seconds": costs.iter().map(|c| c.seconds).sum::<f64>() + fixed_seconds,
           "estimate_full_seconds": estimate, "estimate_assumptions": ASSUMPTIONS})
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparse_bp::paper::{Scale, mnist};

    /// A hand-made case: 2 s for 100 quick images x 2 epochs of end-to-end training becomes
    /// 2 / 200 x (55,000 x 20) s in the full preset; a stage with no work keeps its time; an
    /// unknown stage is refused.
    #[test]
    fn estimate_scales_each_stage_by_its_work() {
        let full = mnist(Scale::Full);
        let t = |stage: &str, seconds, images, epochs| StageTime {
            stage: stage.into(),
            model: "bp".into(),
            seconds,
            images,
            epochs,
            resumed: false,
        };
        let costs = training_costs(&[t("end-to-end", 2.0, 100, 2), t("codes", 0.5, 50, 1)], &full).unwrap();
        assert_eq!(costs[0].full_work, 55_000.0 * 20.0);
        assert!((costs[0].full_seconds() - 2.0 / 200.0 * 1.1e6).abs() < 1e-6);
        assert!((costs[1].full_seconds() - 0.5 / 50.0 * 55_000.0).abs() < 1e-9);
        let zero = Cost { stage: "x".into(), model: "all".into(), seconds: 3.0, work: 0.0, full_work: 9.0 };
        let total = estimate_full(&[costs[0].clone(), costs[1].clone(), zero], 7.0);
        assert!((total - (11_000.0 + 550.0 + 3.0 + 7.0)).abs() < 1e-6, "{total}");
        assert!(training_costs(&[t("nope", 1.0, 1, 1)], &full).unwrap_err().contains("nope"));
        assert_eq!(hms(3725.4), "1:02:05");
        let j = timing_json(&costs, 1.0, "quick", Some(total));
        assert_eq!(j["stages"].as_array().unwrap().len(), 2);
        assert!((j["measured_seconds"].as_f64().unwrap() - 3.5).abs() < 1e-12);
    }

    /// The full estimate counts 1,000 test images for every check column (CHECK_IMAGES_REASON:
    /// ifgsm-linf-px, ifgsm-l2-std, ifgsm-l2-px, pgd-linf-std), shallow and 3-layer, and all
    /// 10,000 for the paper-comparison ifgsm-linf-std: a quick PGD stage of 100 images x 3 budgets
    /// x 3 steps scales by (1,000 x 4 x 10) / (100 x 3 x 3), an ifgsm-linf-std stage by
    /// (10,000 x 4 x 10) / 900.
    #[test]
    fn full_estimate_counts_a_thousand_images_for_the_check_columns() {
        use sparse_bp::attack::protocol::Standardisation;
        let full = mnist(Scale::Full);
        let quick = mnist(Scale::Quick);
        let space = InputSpace::new(Standardisation::new(0.13, 0.31).unwrap(), Some((0.0, 1.0))).unwrap();
        let (shallow, deep) = full_attack_columns(space, &full);
        let find = |cs: &[AttackColumn], l: &str| cs.iter().find(|c| c.label == l).cloned().unwrap();
        let (pgd, ifgsm) = (find(&shallow, "pgd-linf-std"), find(&shallow, "ifgsm-linf-std"));
        assert_eq!(attack_work(&pgd, full.sizes.n_test, full.sizes.steps), 1_000.0 * 4.0 * 10.0);
        assert_eq!(attack_work(&ifgsm, full.sizes.n_test, full.sizes.steps), 10_000.0 * 4.0 * 10.0);
        for l in ["ifgsm-linf-px", "ifgsm-l2-std"] {
            assert_eq!(
                attack_work(&find(&shallow, l), full.sizes.n_test, full.sizes.steps),
                1_000.0 * 4.0 * 10.0,
                "{l}"
            );
        }
        let l2px = find(&shallow, "ifgsm-l2-px");
        let n_l2 = full.sizes.eps_l2.len() as f64;
        assert_eq!(attack_work(&l2px, full.sizes.n_test, full.sizes.steps), 1_000.0 * n_l2 * 10.0);
        assert_eq!(
            attack_work(&find(&deep, "ifgsm-linf-std"), full.deep.n_test, full.deep.steps),
            10_000.0 * 2.0 * 10.0
        );
        for l in ["pgd-linf-std", "ifgsm-linf-px", "ifgsm-l2-std"] {
            assert_eq!(attack_work(&find(&deep, l), full.deep.n_test, full.deep.steps), 1_000.0 * 2.0 * 10.0, "{l}");
        }
        // every column but the paper-comparison one is limited, shallow and 3-layer
        for c in shallow.iter().chain(&deep) {
            assert_eq!(c.images.is_none(), c.label == sparse_bp::paper::PAPER_COLUMN, "{}", c.label);
        }
        let qcols = mnist_attack_columns(space, &quick.sizes.eps, &quick.sizes.eps_l2, 3, quick.check_images, 0);
        let qpgd = find(&qcols, "pgd-linf-std");
        let cost = Cost {
            stage: "attack:pgd-linf-std".into(),
            model: "bp".into(),
            seconds: 9.0,
            work: attack_work(&qpgd, quick.sizes.n_test, quick.sizes.steps),
            full_work: attack_work(&pgd, full.sizes.n_test, full.sizes.steps),
        };
        assert_eq!(cost.work, 100.0 * 3.0 * 3.0);
        assert!((cost.full_seconds() - 9.0 * 40_000.0 / 900.0).abs() < 1e-9, "{}", cost.full_seconds());
    }
}
