//! Throughput of the batched lasso solvers on the spec's synthetic problem size:
//! 10,000 signals, 100 x 300 unit-norm Gaussian dictionary, codes with 8 active groups of
//! 4 (entries U[1, 2]), lambda = 0.1 by default, relative duality gap 1e-8; homotopy, coordinate
//! descent and FISTA (choose with `ALGS=homotopy,cd,fista`).
//!
//! Prints signals per second (wall clock) and signals per CPU-second (all threads).
//!
//! `cargo run --release -p sparse-bp --example lasso_throughput [n_signals] [lambda]`
//! (the criterion version is `cargo bench -p bench-suite --bench sparse_bp`).
//! `DUMP_DIR=dir` writes `D` and `X` for `examples/sklearn_lasso.py` (scikit-learn on the
//! same data); `ALGS=none` only writes them.

use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng};
use sparse_bp::{Algorithm, GroupNorm, GroupSpec, Solver, SolverParams, synthetic};

fn main() -> sparse_bp::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let lambda: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.1);
    let mut rng = StdRng::seed_from_u64(42);
    let d = synthetic::gaussian_dictionary(100, 300, &mut rng);
    let blocks = GroupSpec::contiguous_blocks(300, 4, 1.0, GroupNorm::L2)?;
    let (_, x) = synthetic::group_sparse_signals(&d, &blocks, 8, n, 1.0, 2.0, &mut rng)?;
    if let Ok(dir) = std::env::var("DUMP_DIR") {
        // raw little-endian f64, column-major: D (100 x 300) and X (100 x n), for comparisons
        let dump = |name: &str, a: &sparse_bp::nalgebra::DMatrix<f64>| {
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(format!("{dir}/{name}"), bytes).expect("write dump");
        };
        dump("D.f64", &d);
        dump("X.f64", &x);
    }
    println!("n = {n}, lambda = {lambda}, rayon threads = {}", rayon::current_num_threads());
    let algs: Vec<Algorithm> = match std::env::var("ALGS") {
        // e.g. ALGS=homotopy,cd  (default: homotopy, coordinate descent, FISTA)
        Ok(list) => list
            .split(',')
            .filter_map(|a| match a.trim() {
                "homotopy" => Some(Algorithm::Homotopy),
                "cd" => Some(Algorithm::CoordinateDescent),
                "fista" => Some(Algorithm::Fista),
                "ista" => Some(Algorithm::Ista),
                _ => None,
            })
            .collect(),
        Err(_) => vec![Algorithm::Homotopy, Algorithm::CoordinateDescent, Algorithm::Fista],
    };
    for alg in algs {
        let p = SolverParams::builder().algorithm(alg).tol(1e-8).build()?;
        let s = Solver::new(d.clone(), GroupSpec::lasso(300, lambda)?, p)?;
        let cpu0 = process_cpu_seconds();
        let t = Instant::now();
        let sol = s.solve(&x)?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = match (cpu0, process_cpu_seconds()) {
            (Some(a), Some(b)) if b > a => format!(", {:.0} signals per CPU-second", n as f64 / (b - a)),
            _ => String::new(),
        };
        let mean_it = sol.iterations.iter().sum::<usize>() as f64 / n as f64;
        let mean_nnz = sol.codes.iter().filter(|v| **v != 0.0).count() as f64 / n as f64;
        println!(
            "{alg:?}: {:.0} signals/s ({secs:.2} s){cpu}, mean iterations {mean_it:.1}, mean nnz {mean_nnz:.1}, max rel gap {:.2e}, all converged {}",
            n as f64 / secs,
            sol.max_gap(),
            sol.all_converged()
        );
    }
    Ok(())
}

/// User + system CPU time of this process (all threads) from `/proc/self/stat`, assuming
/// the usual 100 clock ticks per second; `None` where that file is not available. Under
/// load, signals per CPU-second compare implementations independently of how much of
/// the machine each one got.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after the command name start at field 3 (state); utime = 14, stime = 15
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
