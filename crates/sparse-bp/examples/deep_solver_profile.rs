//! Profile of the stacked Deep Pursuit solve of saved 3-layer models (issue 20): iterations
//! and time of FISTA / coordinate descent from a cold start, from the layered solution and
//! from the previous solution after one attack-sized input step.
//!
//! `cargo run --release -p sparse-bp --example deep_solver_profile -- <models dir> <mnist dir> [n] [tol]`

use std::io::Read;
use std::time::Instant;

use sparse_bp::models::deep::MultiLayerClassifier;
use sparse_bp::multilayer::MultiLayer;
use sparse_bp::nalgebra::DMatrix;
use sparse_bp::train::load_model;
use sparse_bp::{Algorithm, Solution, SolverParams};

type BoxError = Box<dyn std::error::Error>;

fn load(dir: &str, n: usize) -> Result<DMatrix<f64>, BoxError> {
    let f = std::fs::File::open(format!("{dir}/t10k-images-idx3-ubyte.gz"))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut bytes)?;
    Ok(DMatrix::from_fn(784, n, |i, j| f64::from(bytes[16 + j * 784 + i]) / 255.0))
}

fn stats(what: &str, s: &Solution, secs: f64) {
    let mut it = s.iterations.clone();
    it.sort_unstable();
    let mean = it.iter().sum::<usize>() as f64 / it.len() as f64;
    let conv = s.converged.iter().filter(|&&c| c).count();
    println!(
        "  {what:<34} {secs:8.2}s  iters mean {mean:7.1} median {:5} max {:5}  converged {conv}/{}  max gap {:.1e}",
        it[it.len() / 2],
        it[it.len() - 1],
        it.len(),
        s.max_gap()
    );
}

fn main() -> Result<(), BoxError> {
    let a: Vec<String> = std::env::args().collect();
    let models = a.get(1).ok_or("models dir")?;
    let data = a.get(2).ok_or("mnist dir")?;
    let n: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let tol: f64 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1e-5);
    let (mean, sd) = (0.1307, 0.3077);
    let x = load(data, n)?.map(|p| (p - mean) / sd);
    // one I-FGSM-sized sign step (eps 0.15 / 10 steps, standardised units), deterministic signs
    let step = DMatrix::from_fn(784, n, |i, j| if (i * 7 + j * 13) % 3 == 0 { 0.015 } else { -0.015 });
    let x2 = &x + step;
    for name in ["dp", "gdp", "pgdp"] {
        let m: MultiLayerClassifier = load_model(&std::path::Path::new(models).join(format!("{name}.bin")))?;
        let ml = MultiLayer::new(m.dictionaries().to_vec(), m.weights.clone(), false)?;
        let xs = ml.stacked_input(&x)?;
        let xs2 = ml.stacked_input(&x2)?;
        println!("{name} (tol {tol}, {n} images)");
        for alg in [Algorithm::Fista, Algorithm::CoordinateDescent] {
            let p = SolverParams { tol, max_iter: 2000, algorithm: alg, ..SolverParams::default() };
            let s = m.solvers()[0].with_params(p)?;
            let t = Instant::now();
            let cold = s.solve(&xs)?;
            stats(&format!("{alg:?} cold"), &cold, t.elapsed().as_secs_f64());
            let t = Instant::now();
            let warm = s.solve_warm(&xs2, &cold.codes)?;
            stats(&format!("{alg:?} step, warm from x"), &warm, t.elapsed().as_secs_f64());
            let t = Instant::now();
            let c2 = s.solve(&xs2)?;
            stats(&format!("{alg:?} step, cold"), &c2, t.elapsed().as_secs_f64());
            let diff = (&warm.codes - &c2.codes).amax();
            println!("  warm vs cold code max diff {diff:.2e}");
        }
    }
    Ok(())
}
