//! Where the time of the thesis-size 4096-atom third layer goes (issue 20, `--thesis-sizes`):
//! the layer-3 dictionary learning of `paper::learn_chain_sized` (the loop of
//! `train::learn_dictionary`, replicated here step by step so that each step is timed) and the
//! chain's final coding pass, on the layer-2 codes of the first `n` MNIST training images.
//!
//! The three dictionaries and every layer's penalty are read from the chain stage of a stored
//! quick thesis-size run (`deep-chain-l1-thesis` or `deep-chain-group-thesis`), so the layer-3 input is what that
//! run's layer 3 saw (images standardised over the quick preset's 2,000 training images).
//!
//! Printed per dictionary batch: seconds of `Solver::new` (Gram matrix, Lipschitz constant), of
//! the coding step and of the dictionary update, and the coding step's iterations per code
//! (median / max, how many codes missed `code_tol`); then the final coding pass with the
//! chain's solver (`paper::deep_solver_params`) at the quick (`1e-4`) or full (`1e-5`)
//! tolerance.
//!
//! The environment variable `VARIANT` picks the solver: `gram` (default; FISTA on `G = D^T D`
//! in the dictionary step as `train::learn_dictionary`, the chain's solver in the final pass,
//! as before factored products), `factored` (FISTA with `D^T (D y)` products where
//! `solver::factored_products_pay`), `free` (Gram-free working-set solves there,
//! `Solver::new_for_shape`, what the library's chains and models use now), `cd` (coordinate
//! descent in both), `compare` (only the iteration counts and code difference of `gram` and
//! `factored` on the first 40 codes).
//!
//! `STAGE_DIR step MODEL n` splits one end-to-end step into its parts in process CPU seconds
//! (see `step`).
//!
//! `STAGE_DIR e2e MODEL n [epochs]` times a thesis-size 3-layer model's end-to-end training
//! instead (see `end_to_end`; `VAL=200` holds out the 200 images `xtask reproduce sparse-mnist
//! --quick` holds out, instead of one training image).
//!
//! `STAGE_DIR images MODEL n [offset]` codes `n` images from `offset` one at a time and lists the
//! slowest (see `per_image`). The quick chains' 4096-atom layer was learned on the first 500
//! training images (its atoms start as copies of them): those code far more sparsely, and
//! faster, than any other image (held-out, test), so profile both.
//!
//! `cargo run --release -p sparse-bp --example thesis_layer3_profile -- STAGE_DIR [l1|group] [n]
//! [dict_epochs] [final_tol] [data dir]` (defaults `l1 500 1 1e-4 ../shared/data/mnist`;
//! `dict_epochs` 0 skips the dictionary learning, `final_tol` 0 skips the final pass).

use std::path::Path;
use std::time::Instant;

use sparse_bp::models::CodeKind;
use sparse_bp::models::deep::Pursuit;
use sparse_bp::nalgebra::DMatrix;
use sparse_bp::paper::{self, DeepChainInfo, STAGE_KIND, Scale, StageTime};
use sparse_bp::train::group_spec;
use sparse_bp::{Solver, SolverParams};

#[path = "common/mnist_idx.rs"]
mod mnist_idx;
use mnist_idx::BoxError;

fn stage<T: serde::de::DeserializeOwned>(dir: &str, name: &str) -> Result<T, BoxError> {
    let path = Path::new(dir).join(format!("{name}.bin"));
    let bytes = std::fs::read(&path)?;
    let (stored, value, _t): (String, T, Vec<StageTime>) = persist::decode(&path, STAGE_KIND, &bytes)?;
    assert_eq!(stored, name);
    Ok(value)
}

/// The thesis-size model `name` (`lbp`, `lgbp`, `dp`, `gdp`): its pursuit, code kind and group
/// size under `setup`, and the stored chain (`deep-chain-{l1|group}-thesis` in `dir`) it reads.
#[allow(clippy::type_complexity)]
fn model_chain(
    dir: &str,
    name: &str,
    setup: &paper::MnistSetup,
) -> Result<(Pursuit, CodeKind, usize, Vec<DMatrix<f64>>, DeepChainInfo), BoxError> {
    let (pursuit, kind) = paper::deep_model_kind(name).ok_or("model: lbp, lgbp, dp or gdp")?;
    let (family, gs) = if kind == CodeKind::Bp { ("l1", 1) } else { ("group", setup.group) };
    let (dicts, info): (Vec<DMatrix<f64>>, DeepChainInfo) = stage(dir, &format!("deep-chain-{family}-thesis"))?;
    Ok((pursuit, kind, gs, dicts, info))
}

/// The recipe `SCALE=quick` asks for (the quick thesis-size recipe, tolerance 1e-4), else the
/// full one.
fn scale_from_env() -> Scale {
    if std::env::var("SCALE").as_deref() == Ok("quick") { Scale::Quick } else { Scale::Full }
}

fn median_usize(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// `STAGE_DIR e2e MODEL n [epochs] [data dir]`: the seconds of building the thesis-size 3-layer
/// model `MODEL` (`lbp`, `lgbp`, `dp`, `gdp`) on the stored chain with a first classifier on its
/// codes, and of `epochs` end-to-end epochs (full thesis-size recipe: tolerance, learning rates,
/// batch of 100, warm starts) on the first `n` images (held-out set: 1 image).
fn end_to_end(args: &[String]) -> Result<(), BoxError> {
    use sparse_bp::models::{LinearClassifier, TaskLoss};
    use sparse_bp::train::task_driven::early_stopping::{EarlyStopping, train_validated};
    use sparse_bp::train::{FitParams, train_linear};
    let dir = &args[0];
    let name = args.get(2).map_or("lgbp", String::as_str);
    let n: usize = args.get(3).map_or(Ok(200), |s| s.parse())?;
    let epochs: usize = args.get(4).map_or(Ok(1), |s| s.parse())?;
    let data = args.get(5).map_or("../shared/data/mnist", String::as_str);
    let full = paper::mnist_thesis_sizes(scale_from_env());
    let (pursuit, kind, gs, dicts, info) = model_chain(dir, name, &full)?;
    // VAL=k: the held-out set is the k training-split images after the quick run's 2,000 (as
    // `xtask reproduce sparse-mnist --quick` holds them out), not the first training image
    let n_val: usize = std::env::var("VAL").ok().map_or(Ok(0), |v| v.parse())?;
    let (s, x_held, l_held) = mnist_idx::load_standardised_held_out(data, 2000, n_val, 0)?;
    let (x, labels) = (s.x_train.columns(0, n).into_owned(), s.y_train[..n].to_vec());
    let t = Instant::now();
    let nf = paper::deep_features(kind, &dicts, gs);
    let build = |clf| paper::deep_model(&full.deep, (pursuit, kind), &dicts, gs, &info.weights, clf);
    let m0 = build(LinearClassifier::zeros(10, nf))?;
    let t_build = t.elapsed().as_secs_f64();
    let f0 = m0.features(&x)?;
    let t_codes = t.elapsed().as_secs_f64() - t_build;
    let fit = FitParams { epochs: 10, lr: 3e-3, batch_size: 100, weight_decay: 1e-4, seed: 1 };
    let mut m = build(train_linear(&f0, &labels, TaskLoss::CrossEntropy, &fit)?)?;
    let es = EarlyStopping { patience: epochs + 1, min_delta: 0.0, decay: None };
    let p = sparse_bp::train::task_driven::TaskDrivenParams { epochs, ..full.deep.end_to_end.params_for(kind, 5) };
    let (x_val, l_val) =
        if n_val == 0 { (x.columns(0, 1).into_owned(), labels[..1].to_vec()) } else { (x_held, l_held) };
    let t = Instant::now();
    let r = train_validated(&mut m, &x, &labels, &x_val, &l_val, &p, &es)?;
    println!(
        "{name} thesis sizes {:?}, {n} images: build {t_build:.2} s, cold codes {t_codes:.2} s, {} end-to-end epoch(s) \
         {:.2} s (solver {:?} tol {}, factored products {:?})",
        dicts.iter().map(|d| d.ncols()).collect::<Vec<_>>(),
        r.epochs_run,
        t.elapsed().as_secs_f64(),
        m.solvers()[0].params().algorithm,
        m.solvers()[0].params().tol,
        m.solvers().iter().map(|s| s.factored_products()).collect::<Vec<_>>()
    );
    Ok(())
}

/// `STAGE_DIR dict FAMILY n epochs warm [data dir]`: the seconds of `train::learn_dictionary_with` learning
/// the 4096-atom layer 3 (as `paper::learn_chain_sized`, `paper::wide_layer_code_step`) on the
/// layer-2 codes of the first `n` images for `epochs` epochs, with (`warm` 1) or without (0)
/// warm starts from the previous epoch's codes.
fn dict(args: &[String]) -> Result<(), BoxError> {
    use sparse_bp::train::{DictParams, learn_dictionary_with};
    let dir = &args[0];
    let family = args.get(2).map_or("l1", String::as_str);
    let n: usize = args.get(3).map_or(Ok(500), |s| s.parse())?;
    let epochs: usize = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let warm = args.get(5).map(String::as_str) == Some("1");
    let setup = paper::mnist_thesis_sizes(Scale::Quick);
    let (gs, kind) = if family == "group" { (setup.group, CodeKind::Gbp) } else { (1, CodeKind::Bp) };
    let (dicts, info): (Vec<DMatrix<f64>>, DeepChainInfo) = stage(dir, &format!("deep-chain-{family}-thesis"))?;
    let data = args.get(6).map_or("../shared/data/mnist", String::as_str);
    let s = mnist_idx::load_standardised(data, 2000, 0)?;
    let x = s.x_train.columns(0, n).into_owned();
    let sp = paper::deep_solver_params(&setup.deep, Pursuit::Layered, kind);
    let mut input = x;
    for (d, &w) in dicts.iter().zip(&info.weights).take(2) {
        let s = Solver::new(d.clone(), group_spec(d.ncols(), gs, w)?, sp.clone())?;
        input = s.solve(&input)?.codes;
    }
    let p = DictParams {
        atoms: 4096,
        group_size: gs,
        lambda: info.weights[2],
        epochs,
        warmup_epochs: 1,
        lr: 2e-3,
        batch_size: 250,
        coherence_weight: 0.0,
        code_tol: 1e-3,
        seed: 35,
    };
    let step = sparse_bp::train::CodeStep { warm_start: warm, ..paper::wide_layer_code_step(&sp, 256, 4096) };
    let t = Instant::now();
    let (_, rec) = learn_dictionary_with(&input, &p, step)?;
    println!(
        "{family} dictionary 256 -> 4096, {n} codes, {epochs} epochs, {step:?}: {:.2} s, recon {rec:.4}",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Process CPU seconds (user + system, all threads) from `/proc/self/stat`, in clock ticks of
/// 1/100 s: load-independent, unlike wall clock on shared cores.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (in parentheses): utime and stime are the 12th and 13th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// `STAGE_DIR step MODEL n [data dir]`: one end-to-end step of a thesis-size 3-layer model
/// (`lbp`, `lgbp`, `dp`, `gdp`; full thesis-size recipe) on the first `n` images, split into its
/// parts, each in process CPU seconds (and wall): building the model (every `Solver::new`), the
/// cold pursuit, the whole gradient (pursuit + adjoint solves + sums), the same gradient
/// warm-started from the cold codes after one Adam step of the dictionaries (the warm start
/// of the next epoch, under a dictionary moved by one step only: a lower bound on its cost).
fn step(args: &[String]) -> Result<(), BoxError> {
    use sparse_bp::models::LinearClassifier;
    use sparse_bp::train::task_driven::deep::multilayer_gradient_warm;
    let dir = &args[0];
    let name = args.get(2).map_or("lgbp", String::as_str);
    let n: usize = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let data = args.get(4).map_or("../shared/data/mnist", String::as_str);
    let full = paper::mnist_thesis_sizes(Scale::Full);
    let (pursuit, kind, gs, dicts, info) = model_chain(dir, name, &full)?;
    let s = mnist_idx::load_standardised(data, 2000, 0)?;
    let (x, labels) = (s.x_train.columns(0, n).into_owned(), s.y_train[..n].to_vec());
    let nf = paper::deep_features(kind, &dicts, gs);
    let clf = LinearClassifier {
        w: DMatrix::from_fn(10, nf, |i, j| (((i * 31 + j * 17) % 13) as f64 - 6.0) * 1e-2),
        b: sparse_bp::nalgebra::DVector::zeros(10),
    };
    let timed = |what: &str, f: &mut dyn FnMut() -> Result<(), BoxError>| -> Result<(), BoxError> {
        let (c, t) = (cpu_seconds(), Instant::now());
        f()?;
        println!("{name} {what}: {:.2} s cpu, {:.2} s wall", cpu_seconds() - c, t.elapsed().as_secs_f64());
        Ok(())
    };
    let mut m = None;
    timed("build", &mut || {
        m = Some(paper::deep_model(&full.deep, (pursuit, kind), &dicts, gs, &info.weights, clf.clone())?);
        Ok(())
    })?;
    let m = m.ok_or("model")?;
    let mut codes = None;
    timed("cold pursuit", &mut || {
        codes = Some(m.codes(&x)?);
        Ok(())
    })?;
    let p = full.deep.end_to_end.params_for(kind, 5);
    let mut z = None;
    let mut g = None;
    timed("cold gradient (pursuit + adjoint + sums)", &mut || {
        let (gr, zz) = multilayer_gradient_warm(&m, &x, &labels, &p, None)?;
        z = Some(zz);
        g = Some(gr);
        Ok(())
    })?;
    let (z, g) = (z.ok_or("codes")?, g.ok_or("gradient")?);
    // one Adam step: every entry moves by about lr against its gradient's sign
    let moved: Vec<DMatrix<f64>> = dicts
        .iter()
        .zip(&g.dictionaries)
        .map(|(d, gd)| {
            let mut d = d - gd.map(|v| p.lr * v.signum());
            d.column_iter_mut().for_each(|mut c| {
                let nrm = c.norm();
                c /= nrm;
            });
            d
        })
        .collect();
    let mut m2 = None;
    timed("rebuild", &mut || {
        m2 = Some(paper::deep_model(&full.deep, (pursuit, kind), &moved, gs, &info.weights, clf.clone())?);
        Ok(())
    })?;
    let m2 = m2.ok_or("model")?;
    timed("warm gradient after one step", &mut || {
        multilayer_gradient_warm(&m2, &x, &labels, &p, Some(&z))?;
        Ok(())
    })?;
    let nnz: Vec<f64> =
        m.codes(&x)?.iter().map(|c| c.iter().filter(|v| **v != 0.0).count() as f64 / n as f64).collect();
    println!(
        "{name}: solver {:?} tol {}, factored {:?}, mean non-zeros per layer {nnz:.1?}",
        m.solvers()[0].params().algorithm,
        m.solvers()[0].params().tol,
        m.solvers().iter().map(|s| s.factored_products()).collect::<Vec<_>>()
    );
    drop(codes);
    Ok(())
}

/// `STAGE_DIR images MODEL n [offset] [data dir]`: each of `n` training-split images from
/// `offset` (default 2000: the quick run's held-out images) coded alone by the chain's model
/// (`SCALE=quick`: the quick tolerance), one at a time: total seconds, the slowest images with
/// each layer's iterations, whether it converged and its non-zeros.
fn per_image(args: &[String]) -> Result<(), BoxError> {
    use sparse_bp::models::LinearClassifier;
    let dir = &args[0];
    let name = args.get(2).map_or("lgbp", String::as_str);
    let n: usize = args.get(3).map_or(Ok(200), |s| s.parse())?;
    let offset: usize = args.get(4).map_or(Ok(2000), |s| s.parse())?;
    let data = args.get(5).map_or("../shared/data/mnist", String::as_str);
    let full = paper::mnist_thesis_sizes(scale_from_env());
    let (pursuit, kind, gs, dicts, info) = model_chain(dir, name, &full)?;
    let (s, x_val, _) = mnist_idx::load_standardised_held_out(data, 2000, (offset + n).saturating_sub(2000), 0)?;
    let all = if offset >= 2000 {
        x_val.columns(offset - 2000, n).into_owned()
    } else {
        s.x_train.columns(offset, n).into_owned()
    };
    let nf = paper::deep_features(kind, &dicts, gs);
    let m = paper::deep_model(&full.deep, (pursuit, kind), &dicts, gs, &info.weights, LinearClassifier::zeros(10, nf))?;
    let mut rows = Vec::new();
    let t0 = Instant::now();
    for j in 0..n {
        let xj = all.columns(j, 1).into_owned();
        let t = Instant::now();
        // Deep Pursuit: one stacked problem on `[x; 0; 0]`
        let stacked_rows: usize = dicts.iter().map(|d| d.nrows()).sum();
        let mut prev = if pursuit == Pursuit::Deep {
            DMatrix::from_fn(stacked_rows, 1, |i, _| if i < xj.nrows() { xj[(i, 0)] } else { 0.0 })
        } else {
            xj
        };
        let mut per_layer = Vec::new();
        for sv in m.solvers() {
            let sol = sv.solve(&prev)?;
            let nnz = sol.codes.iter().filter(|v| **v != 0.0).count();
            per_layer.push((sol.iterations[0], sol.converged[0], nnz, sol.gaps[0]));
            prev = sol.codes;
        }
        rows.push((t.elapsed().as_secs_f64(), offset + j, per_layer));
    }
    let total = t0.elapsed().as_secs_f64();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("{name}: {n} images from {offset} one at a time: {total:.2} s wall; slowest:");
    for r in rows.iter().take(12) {
        println!("  image {}: {:.3} s, layers (iterations, converged, non-zeros, gap) {:?}", r.1, r.0, r.2);
    }
    let med = rows[rows.len() / 2].0;
    println!("  median {med:.4} s");
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.get(1).map(String::as_str) == Some("step") {
        return step(&args);
    }
    if args.get(1).map(String::as_str) == Some("e2e") {
        return end_to_end(&args);
    }
    if args.get(1).map(String::as_str) == Some("images") {
        return per_image(&args);
    }
    if args.get(1).map(String::as_str) == Some("dict") {
        return dict(&args);
    }
    let dir = args.first().ok_or("usage: STAGE_DIR [l1|group] [n] [dict_epochs] [final_tol] [data dir]")?;
    let family = args.get(1).map_or("l1", String::as_str);
    let n: usize = args.get(2).map_or(Ok(500), |s| s.parse())?;
    let epochs: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let final_tol: f64 = args.get(4).map_or(Ok(1e-4), |s| s.parse())?;
    let data = args.get(5).map_or("../shared/data/mnist", String::as_str);
    let setup = paper::mnist_thesis_sizes(Scale::Quick);
    let (gs, kind) = if family == "group" { (setup.group, CodeKind::Gbp) } else { (1, CodeKind::Bp) };
    let (dicts, info): (Vec<DMatrix<f64>>, DeepChainInfo) = stage(dir, &format!("deep-chain-{family}-thesis"))?;
    let s = mnist_idx::load_standardised(data, 2000, 0)?;
    let x = s.x_train.columns(0, n).into_owned();
    let sp = paper::deep_solver_params(&setup.deep, Pursuit::Layered, kind);
    println!(
        "family {family}, n {n}, chain solver {:?} tol {}, layers {:?}",
        sp.algorithm,
        sp.tol,
        dicts.iter().map(|d| d.shape()).collect::<Vec<_>>()
    );
    // VARIANT (environment): `gram` (FISTA on `G = D^T D` in the dictionary step, the chain's
    // solver in the final pass), `factored` (FISTA with `D^T (D y)` products where `2 m < M`),
    // `free` (Gram-free working sets where `2 m < M`, `Solver::new_for_shape`, as the library
    // now), `cd` (coordinate descent in both)
    let variant = std::env::var("VARIANT").unwrap_or_else(|_| "gram".into());
    println!("variant {variant}");
    let solve = |d: &DMatrix<f64>, lam: f64, input: &DMatrix<f64>, sp: &SolverParams| -> Result<_, BoxError> {
        let t = Instant::now();
        let mut sp = sp.clone();
        if variant == "cd" {
            sp.algorithm = sparse_bp::Algorithm::CoordinateDescent;
        }
        let groups = group_spec(d.ncols(), gs, lam)?;
        let s = if variant == "free" {
            Solver::new_for_shape(d.clone(), groups, sp)?
        } else {
            Solver::new(d.clone(), groups, sp)?.with_factored_products(
                variant == "factored" && sparse_bp::solver::factored_products_pay(d.nrows(), d.ncols()),
            )
        };
        let t_new = t.elapsed().as_secs_f64();
        let sol = s.solve(input)?;
        Ok((sol, t_new, t.elapsed().as_secs_f64() - t_new))
    };
    let solve0 = |d: &DMatrix<f64>, lam: f64, input: &DMatrix<f64>| -> Result<_, BoxError> {
        Ok(Solver::new(d.clone(), group_spec(d.ncols(), gs, lam)?, sp.clone())?.solve(input)?)
    };
    let c1 = solve0(&dicts[0], info.weights[0], &x)?;
    let c2 = solve0(&dicts[1], info.weights[1], &c1.codes)?;
    let input = c2.codes;
    let lam3 = info.weights[2];
    println!("layer-3 input {:?}, lambda {lam3}", input.shape());

    if variant == "compare" {
        let xb = input.columns(0, 40).into_owned();
        let code_sp = SolverParams { tol: 1e-3, max_iter: 500, ..SolverParams::default() };
        let s = Solver::new(dicts[2].clone(), group_spec(dicts[2].ncols(), gs, lam3 / 2.0)?, code_sp)?;
        let a = s.solve(&xb)?;
        let b = s.clone().with_factored_products(true).solve(&xb)?;
        println!(
            "gram     {:?}\nfactored {:?}\nmax diff {:e}",
            a.iterations,
            b.iterations,
            (&a.codes - &b.codes).amax()
        );
        println!("gaps gram {:?}\ngaps fact {:?}", &a.gaps[..8], &b.gaps[..8]);
        return Ok(());
    }
    // the layer-3 dictionary step of paper::learn_chain_sized / train::learn_dictionary
    let d3 = &dicts[2];
    let mut d = d3.clone();
    let code_sp = SolverParams { tol: 1e-3, max_iter: 500, ..SolverParams::default() };
    for epoch in 0..epochs {
        let lam = lam3 * ((epoch + 1) as f64 / 2.0).min(1.0);
        for (b, start) in (0..n).step_by(250).enumerate() {
            let xb = input.columns(start, 250.min(n - start)).into_owned();
            let (sol, t_new, t_solve) = solve(&d, lam, &xb, &code_sp)?;
            let t = Instant::now();
            let r = &xb - &d * &sol.codes;
            let g = -(&r * sol.codes.transpose()) / xb.ncols() as f64;
            d -= g * 1e-9; // the update's arithmetic (Adam's cost is elementwise, not timed apart)
            let t_upd = t.elapsed().as_secs_f64();
            let missed = sol.converged.iter().filter(|c| !**c).count();
            println!(
                "epoch {epoch} batch {b}: new {t_new:.2} s, solve {t_solve:.2} s ({} codes, iterations median {} max {}, {missed} missed tol, max gap {:.2e}), update {t_upd:.2} s",
                xb.ncols(),
                median_usize(sol.iterations.clone()),
                sol.iterations.iter().max().unwrap_or(&0),
                sol.max_gap()
            );
        }
    }
    if final_tol > 0.0 {
        let sp = SolverParams { tol: final_tol, ..sp.clone() };
        let (sol, t_new, t_solve) = solve(d3, lam3, &input, &sp)?;
        let nnz = sol.codes.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
        println!(
            "final pass ({:?}, tol {final_tol}): new {t_new:.2} s, solve {t_solve:.2} s, iterations median {} max {}, {} missed, mean nnz {nnz:.1}",
            sp.algorithm,
            median_usize(sol.iterations.clone()),
            sol.iterations.iter().max().unwrap_or(&0),
            sol.converged.iter().filter(|c| !**c).count()
        );
    }
    Ok(())
}
