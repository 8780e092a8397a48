//! `sparse-bp` solver throughput (issue 6 speed target).
//!
//! The lasso for many signals with a 100 x 300 unit-norm dictionary (Gaussian, not
//! Grassmannian-packed) and codes with 8 active groups of 4 (entries U[1, 2]), solved to
//! a relative duality gap of 1e-8; criterion reports signals per second (`Throughput::Elements`).
//! Homotopy (exact LARS-lasso path), coordinate descent and FISTA; fewer signals for the
//! slow settings (throughput is per signal either way). Data are built outside the timed closures. Compare with scikit-learn's `Lasso`
//! (`alpha = lambda / 100`, one signal per call) on the same data: dump them with
//! `DUMP_DIR=... cargo run --release -p sparse-bp --example lasso_throughput`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sparse_bp::nalgebra::DMatrix;
use sparse_bp::{Algorithm, GroupNorm, GroupSpec, Solver, SolverParams, synthetic};

fn data(n: usize) -> (DMatrix<f64>, DMatrix<f64>) {
    let mut rng = StdRng::seed_from_u64(42);
    let d = synthetic::gaussian_dictionary(100, 300, &mut rng);
    let blocks = GroupSpec::contiguous_blocks(300, 4, 1.0, GroupNorm::L2).expect("blocks");
    let (_, x) = synthetic::group_sparse_signals(&d, &blocks, 8, n, 1.0, 2.0, &mut rng).expect("signals");
    (d, x)
}

fn solver(d: &DMatrix<f64>, groups: GroupSpec, alg: Algorithm) -> Solver {
    let p = SolverParams::builder().algorithm(alg).tol(1e-8).build().expect("params");
    Solver::new(d.clone(), groups, p).expect("solver")
}

fn lasso(c: &mut Criterion) {
    let mut group = c.benchmark_group("sparse_bp_lasso_100x300");
    group.sample_size(10);
    for &(alg, n, lambda) in &[
        (Algorithm::Homotopy, 2_000usize, 0.1),
        (Algorithm::Homotopy, 10_000, 0.5),
        (Algorithm::Homotopy, 10_000, 1.0),
        (Algorithm::CoordinateDescent, 1_000, 0.1),
        (Algorithm::CoordinateDescent, 10_000, 0.5),
        (Algorithm::CoordinateDescent, 10_000, 1.0),
        (Algorithm::Fista, 1_000, 0.5),
    ] {
        let (d, x) = data(n);
        let s = solver(&d, GroupSpec::lasso(300, lambda).expect("lasso"), alg);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new(format!("{alg:?}/lambda={lambda}"), n), &x, |b, x| {
            b.iter(|| std::hint::black_box(s.solve(x).expect("solve")))
        });
    }
    group.finish();
}

fn group_lasso(c: &mut Criterion) {
    let mut group = c.benchmark_group("sparse_bp_group_l2_100x300_blocks4");
    group.sample_size(10);
    let n = 1_000;
    let (d, x) = data(n);
    for alg in [Algorithm::CoordinateDescent, Algorithm::Fista] {
        let g = GroupSpec::contiguous_blocks(300, 4, 1.0, GroupNorm::L2).expect("blocks");
        let s = solver(&d, g, alg);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new(format!("{alg:?}/gamma=1"), n), &x, |b, x| {
            b.iter(|| std::hint::black_box(s.solve(x).expect("solve")))
        });
    }
    group.finish();
}

criterion_group!(benches, lasso, group_lasso);
criterion_main!(benches);
