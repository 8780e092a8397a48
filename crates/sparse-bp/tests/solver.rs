//! Solvers: validation, hand-computed solutions, FISTA vs ISTA vs coordinate descent,
//! optimality (duality gap and KKT residual), batching, serialisation.

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use sparse_bp::synthetic::gaussian_dictionary;
use sparse_bp::*;

fn params(alg: Algorithm, tol: f64) -> SolverParams {
    SolverParams::builder().algorithm(alg).tol(tol).max_iter(200_000).build().unwrap()
}

#[test]
fn models_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Solver>();
    assert_send_sync::<GroupSpec>();
    assert_send_sync::<stability::LocalCertificate>();
    assert_send_sync::<multilayer::MultiLayer>();
    assert_send_sync::<SparseBpError>();
}

#[test]
fn invalid_params_are_rejected() {
    assert!(matches!(
        SolverParams::builder().tol(f64::NAN).build(),
        Err(SparseBpError::InvalidParam { name: "tol", .. })
    ));
    assert!(SolverParams::builder().tol(0.0).build().is_err());
    assert!(SolverParams::builder().max_iter(0).build().is_err());
    assert!(SolverParams::builder().check_every(0).build().is_err());
    assert!(SolverParams::builder().lipschitz(-1.0).build().is_err());
    assert!(SolverParams::builder().lipschitz_safety(0.5).build().is_err());
    assert!(SolverParams::builder().chunk_size(0).build().is_err());
    let p = SolverParams { tol: -1.0, ..Default::default() };
    let d = DMatrix::<f64>::identity(2, 2);
    assert!(Solver::new(d, GroupSpec::lasso(2, 1.0).unwrap(), p).is_err());
}

#[test]
fn invalid_groups_are_rejected() {
    use sparse_bp::{Group, GroupNorm};
    let g = |a: Vec<usize>, w: f64| Group::new(a, w, GroupNorm::L2);
    assert!(matches!(
        GroupSpec::new(3, vec![g(vec![0, 1], 1.0), g(vec![1, 2], 1.0)]),
        Err(SparseBpError::OverlappingGroups { atom: 1, first: 0, second: 1 })
    ));
    assert!(matches!(GroupSpec::new(3, vec![g(vec![0, 1], 1.0)]), Err(SparseBpError::MissingAtom { atom: 2 })));
    assert!(matches!(
        GroupSpec::new(2, vec![g(vec![0], 0.0), g(vec![1], 1.0)]),
        Err(SparseBpError::NonPositiveWeight { group: 0, .. })
    ));
    assert!(GroupSpec::new(2, vec![g(vec![0], f64::NAN), g(vec![1], 1.0)]).is_err());
    assert!(matches!(GroupSpec::new(2, vec![g(vec![0, 5], 1.0)]), Err(SparseBpError::AtomOutOfRange { atom: 5, .. })));
    assert!(matches!(
        GroupSpec::new(2, vec![g(vec![], 1.0), g(vec![0, 1], 1.0)]),
        Err(SparseBpError::EmptyGroup { group: 0 })
    ));
    assert!(GroupSpec::new(1, vec![Group::new(vec![0], 1.0, GroupNorm::SparseGroup { beta: 1.5 })]).is_err());
    assert!(GroupSpec::new(2, vec![Group::new(vec![0, 1], 1.0, GroupNorm::WeightedL1(vec![1.0]))]).is_err());
    assert!(GroupSpec::new(2, vec![Group::new(vec![0, 1], 1.0, GroupNorm::WeightedL1(vec![1.0, -1.0]))]).is_err());
    assert!(GroupSpec::contiguous_blocks(10, 3, 1.0, GroupNorm::L2).is_err());
}

#[test]
fn bad_inputs_give_errors_not_panics() {
    let d = DMatrix::<f64>::identity(3, 3);
    let s = Solver::new(d.clone(), GroupSpec::lasso(3, 1.0).unwrap(), SolverParams::default()).unwrap();
    assert!(matches!(s.solve(&DMatrix::zeros(4, 2)), Err(SparseBpError::ShapeMismatch { .. })));
    let mut x = DMatrix::zeros(3, 2);
    x[(1, 1)] = f64::NAN;
    assert!(matches!(s.solve(&x), Err(SparseBpError::NonFinite { index: 4, .. })));
    assert!(s.solve_warm(&DMatrix::zeros(3, 2), &DMatrix::zeros(2, 2)).is_err());
    assert!(Solver::new(d.clone(), GroupSpec::lasso(4, 1.0).unwrap(), SolverParams::default()).is_err());
    let mut dn = d.clone();
    dn[(0, 0)] = f64::INFINITY;
    assert!(Solver::new(dn, GroupSpec::lasso(3, 1.0).unwrap(), SolverParams::default()).is_err());
    assert!(Solver::new(DMatrix::zeros(0, 0), GroupSpec::lasso(1, 1.0).unwrap(), SolverParams::default()).is_err());
    // zero signal is solved exactly by zero
    let sol = s.solve(&DMatrix::zeros(3, 1)).unwrap();
    assert!(sol.all_converged() && sol.codes.iter().all(|v| *v == 0.0));
}

/// With an orthonormal dictionary the solution is the prox of `D^T x`.
#[test]
fn orthonormal_dictionary_hand_solution() {
    let mut rng = StdRng::seed_from_u64(3);
    let q = sparse_bp::synthetic::random_orthogonal(4, &mut rng);
    let x = DVector::from_vec(vec![1.0, -2.0, 0.3, 4.0]);
    let b = q.tr_mul(&x);
    for alg in [Algorithm::Fista, Algorithm::Ista, Algorithm::CoordinateDescent] {
        let s = Solver::new(q.clone(), GroupSpec::lasso(4, 0.5).unwrap(), params(alg, 1e-12)).unwrap();
        let z = s.solve_vector(&x).unwrap().codes.column(0).into_owned();
        for i in 0..4 {
            assert!((z[i] - sparse_bp::prox::soft_threshold(b[i], 0.5)).abs() < 1e-6, "{alg:?}");
        }
        let gs = GroupSpec::contiguous_blocks(4, 2, 1.0, GroupNorm::L2).unwrap();
        let s = Solver::new(q.clone(), gs, params(alg, 1e-12)).unwrap();
        let z = s.solve_vector(&x).unwrap().codes.column(0).into_owned();
        for gi in 0..2 {
            let mut v = [b[2 * gi], b[2 * gi + 1]];
            sparse_bp::prox::block_soft_threshold_mut(&mut v, 1.0, false);
            assert!((z[2 * gi] - v[0]).abs() < 1e-6 && (z[2 * gi + 1] - v[1]).abs() < 1e-6);
        }
    }
}

/// Reference values from scikit-learn 1.9.1 `Lasso(alpha = lambda / m, fit_intercept=False,
/// tol=1e-12, max_iter=10**6)` on `D = [[1, 0.5, 0], [0, 0.5, 1], [0, 0.5, 0.5]]`
/// (columns not normalised), `x = [1, 2, 0.5]`, `lambda = 0.3` (alpha = 0.1).
#[test]
fn matches_scikit_learn_lasso_reference() {
    let d = DMatrix::from_row_slice(3, 3, &[1.0, 0.5, 0.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.5]);
    let x = DVector::from_vec(vec![1.0, 2.0, 0.5]);
    let s = Solver::new(d, GroupSpec::lasso(3, 0.3).unwrap(), params(Algorithm::CoordinateDescent, 1e-14)).unwrap();
    let z = s.solve_vector(&x).unwrap().codes.column(0).into_owned();
    let sk = SKLEARN_REF;
    for i in 0..3 {
        assert!((z[i] - sk[i]).abs() < 1e-6, "{z} vs {sk:?}");
    }
}
const SKLEARN_REF: [f64; 3] = [0.7, 0.0, 1.56];

/// KKT residual `||z - prox(z - grad f(z))||_2` (unit step) — independent of the gap code.
fn kkt_residual(s: &Solver, x: &DVector<f64>, z: &DVector<f64>) -> f64 {
    let d = s.dictionary();
    let grad = d.tr_mul(&(d * z - x));
    let mut u = z - grad;
    let mut scratch = Vec::new();
    s.groups().prox_mut(u.as_mut_slice(), 1.0, &mut scratch);
    (z - u).norm()
}

fn random_groups(kind: u8, big_m: usize, w: f64, nonneg: bool) -> GroupSpec {
    let g = match kind {
        0 => GroupSpec::lasso(big_m, w).unwrap(),
        1 => GroupSpec::contiguous_blocks(big_m, 4, w, GroupNorm::L2).unwrap(),
        2 => GroupSpec::contiguous_blocks(big_m, 4, w, GroupNorm::SparseGroup { beta: 0.4 }).unwrap(),
        3 => GroupSpec::weighted_lasso(&(0..big_m).map(|i| w * (0.5 + (i % 3) as f64 * 0.5)).collect::<Vec<_>>())
            .unwrap(),
        _ => {
            // mixed sizes and norms
            let mut groups = Vec::new();
            let mut a = 0;
            let mut i = 0;
            while a < big_m {
                let size = (1 + i % 3).min(big_m - a);
                let norm = match i % 3 {
                    0 => GroupNorm::L1,
                    1 => GroupNorm::L2,
                    _ => GroupNorm::WeightedL1(vec![1.5; size]),
                };
                groups.push(Group::new((a..a + size).collect(), w * (1.0 + 0.1 * (i % 4) as f64), norm));
                a += size;
                i += 1;
            }
            GroupSpec::new(big_m, groups).unwrap()
        }
    };
    g.with_nonneg(nonneg)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// FISTA, ISTA and coordinate descent reach the same minimiser; each reports a
    /// relative duality gap below tolerance and has a small KKT residual.
    #[test]
    fn solvers_agree_and_are_optimal(
        seed in 0u64..10_000,
        kind in 0u8..5,
        w in 0.05f64..0.5,
        nonneg in any::<bool>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (m, big_m, n) = (20, 40, 3);
        let d = gaussian_dictionary(m, big_m, &mut rng);
        let x = gaussian_dictionary(m, n, &mut rng) * 2.0;
        let groups = random_groups(kind, big_m, w, nonneg);
        let mut sols = Vec::new();
        for alg in [Algorithm::Fista, Algorithm::Ista, Algorithm::CoordinateDescent] {
            let s = Solver::new(d.clone(), groups.clone(), params(alg, 1e-11)).unwrap();
            let sol = s.solve(&x).unwrap();
            prop_assert!(sol.all_converged(), "{alg:?} did not converge");
            prop_assert!(sol.max_gap() <= 1e-11);
            for j in 0..n {
                let xj = x.column(j).into_owned();
                let zj = sol.codes.column(j).into_owned();
                // independent gap recomputation (absolute) and KKT residual
                let gap = s.duality_gap(&xj, &zj).unwrap();
                prop_assert!(gap <= 1e-11 * 0.5 * xj.norm_squared() * 1.0001 + 1e-15);
                prop_assert!(kkt_residual(&s, &xj, &zj) < 1e-4, "kkt {}", kkt_residual(&s, &xj, &zj));
            }
            sols.push((s, sol));
        }
        // objectives agree to the gap; codes agree (the problems are strongly convex on
        // the support here, so minimisers are unique in practice)
        for j in 0..n {
            let xj = x.column(j).into_owned();
            let objs: Vec<f64> = sols.iter().map(|(s, sol)| s.objective(&xj, &sol.codes.column(j).into_owned()).unwrap()).collect();
            let scale = 0.5 * xj.norm_squared();
            for o in &objs { prop_assert!((o - objs[0]).abs() <= 3e-11 * scale); }
            let z0 = sols[0].1.codes.column(j);
            for (_, sol) in &sols[1..] {
                prop_assert!((sol.codes.column(j) - z0).amax() < 1e-4);
            }
        }
    }
}

#[test]
fn batched_equals_one_by_one_and_chunks_and_warm_start() {
    let mut rng = StdRng::seed_from_u64(11);
    let d = gaussian_dictionary(30, 60, &mut rng);
    let x = gaussian_dictionary(30, 23, &mut rng);
    let g = GroupSpec::contiguous_blocks(60, 3, 0.1, GroupNorm::L2).unwrap();
    let p = SolverParams::builder().tol(1e-12).chunk_size(5).build().unwrap();
    let s = Solver::new(d, g, p).unwrap();
    let all = s.solve(&x).unwrap();
    for j in [0, 7, 22] {
        let one = s.solve_vector(&x.column(j).into_owned()).unwrap();
        assert!((one.codes.column(0) - all.codes.column(j)).amax() < 1e-6);
    }
    let warm = s.solve_warm(&x, &all.codes).unwrap();
    assert!(warm.all_converged());
    assert!(warm.iterations.iter().sum::<usize>() <= all.iterations.iter().sum::<usize>());
    let seq = s.with_params(SolverParams::builder().tol(1e-12).parallel(false).build().unwrap()).unwrap();
    let all2 = seq.solve(&x).unwrap();
    assert!((all2.codes - &all.codes).amax() < 1e-6);
}

#[test]
fn prox_gradient_stopping_rule_works() {
    let mut rng = StdRng::seed_from_u64(5);
    let d = gaussian_dictionary(20, 50, &mut rng);
    let x = gaussian_dictionary(20, 4, &mut rng);
    for alg in [Algorithm::Fista, Algorithm::CoordinateDescent] {
        let p = SolverParams::builder().algorithm(alg).stopping(StoppingRule::ProxGradient).tol(1e-10).build().unwrap();
        let s = Solver::new(d.clone(), GroupSpec::lasso(50, 0.1).unwrap(), p).unwrap();
        let sol = s.solve(&x).unwrap();
        assert!(sol.all_converged());
        assert!(sol.max_gap() < 1e-8, "{alg:?} gap {}", sol.max_gap());
    }
}

#[test]
fn serde_bincode_roundtrip() {
    let mut rng = StdRng::seed_from_u64(1);
    let d = gaussian_dictionary(5, 8, &mut rng);
    let s = Solver::new(d, GroupSpec::contiguous_blocks(8, 2, 0.3, GroupNorm::L2).unwrap(), SolverParams::default())
        .unwrap();
    let bytes = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
    let (back, _): (Solver, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back.groups(), s.groups());
    assert_eq!(back.dictionary(), s.dictionary());
}

/// The lasso coordinate-descent fast path (active set + support polishing) and the plain
/// sweep path reach the same codes, including non-negative and weighted lasso.
#[test]
fn polishing_matches_plain_coordinate_descent() {
    let mut rng = StdRng::seed_from_u64(21);
    let d = gaussian_dictionary(30, 90, &mut rng);
    let x = gaussian_dictionary(30, 12, &mut rng) * 3.0;
    let weights: Vec<f64> = (0..90).map(|i| 0.05 + 0.01 * (i % 7) as f64).collect();
    for groups in [
        GroupSpec::lasso(90, 0.1).unwrap(),
        GroupSpec::lasso(90, 0.1).unwrap().with_nonneg(true),
        GroupSpec::weighted_lasso(&weights).unwrap(),
    ] {
        let mk = |polish: bool, stopping: StoppingRule| {
            let p = SolverParams::builder()
                .algorithm(Algorithm::CoordinateDescent)
                .tol(1e-12)
                .polish(polish)
                .stopping(stopping)
                .max_iter(1_000_000)
                .build()
                .unwrap();
            Solver::new(d.clone(), groups.clone(), p).unwrap().solve(&x).unwrap()
        };
        let fast = mk(true, StoppingRule::DualityGap);
        let plain = mk(false, StoppingRule::DualityGap);
        let sweep = mk(true, StoppingRule::ProxGradient);
        assert!(fast.all_converged() && plain.all_converged() && sweep.all_converged());
        assert!((&fast.codes - &plain.codes).amax() < 1e-5);
        assert!((&fast.codes - &sweep.codes).amax() < 1e-5);
    }
}

/// A batch smaller than `chunk_size` (100 signals, as an end-to-end training batch) is split
/// into several chunks that depend on its size only: FISTA (whose matrix products run per
/// chunk) and coordinate descent give the same codes, iterations and gaps bit for bit on
/// 1, 2 and 3 threads and sequentially, and each code meets the tolerance.
#[test]
fn small_batch_is_bit_identical_on_any_thread_count() {
    let mut rng = StdRng::seed_from_u64(23);
    let d = gaussian_dictionary(40, 80, &mut rng);
    let x = gaussian_dictionary(40, 100, &mut rng) * 3.0;
    let g = GroupSpec::contiguous_blocks(80, 4, 0.3, GroupNorm::L2).unwrap();
    for alg in [Algorithm::Fista, Algorithm::CoordinateDescent] {
        let solve = |threads: usize, parallel: bool| {
            let p = SolverParams::builder().algorithm(alg).tol(1e-9).parallel(parallel).build().unwrap();
            let s = Solver::new(d.clone(), g.clone(), p).unwrap();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| s.solve(&x)).unwrap()
        };
        let one = solve(1, true);
        assert!(one.all_converged(), "{alg:?}");
        for (threads, parallel) in [(2, true), (3, true), (2, false)] {
            let other = solve(threads, parallel);
            assert_eq!(other.codes, one.codes, "{alg:?} on {threads} threads");
            assert_eq!(other.iterations, one.iterations, "{alg:?} on {threads} threads");
            assert_eq!(other.gaps, one.gaps, "{alg:?} on {threads} threads");
        }
    }
}

/// Factored FISTA / ISTA products (`D^T (D y)` instead of `G y`, `Solver::with_factored_products`)
/// on a dictionary more than twice overcomplete, `l1` and group `l2`: the same iteration counts
/// and convergence, every gap within the same tolerance, codes equal to rounding, the optimum
/// reached (a tight solve from either matches coordinate descent's), and the flag leaves the
/// solver's serialised bytes unchanged (model files keep their format; a decoded solver uses `G`).
#[test]
fn factored_products_give_the_same_iterates_to_rounding() {
    let mut rng = StdRng::seed_from_u64(21);
    let (m, big_m) = (12, 60);
    assert!(solver::factored_products_pay(m, big_m) && !solver::factored_products_pay(m, 2 * m));
    let d = gaussian_dictionary(m, big_m, &mut rng);
    let x = DMatrix::from_fn(m, 40, |_, _| rand::RngExt::random_range(&mut rng, -2.0..2.0));
    for (groups, alg) in [
        (GroupSpec::lasso(big_m, 0.2).unwrap(), Algorithm::Fista),
        (GroupSpec::contiguous_blocks(big_m, 4, 0.3, GroupNorm::L2).unwrap(), Algorithm::Fista),
        (GroupSpec::contiguous_blocks(big_m, 4, 0.3, GroupNorm::L2).unwrap(), Algorithm::Ista),
    ] {
        for tol in [1e-3, 1e-10] {
            let g = Solver::new(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            let f = g.clone().with_factored_products(true);
            assert!(f.factored_products() && !g.factored_products());
            let (a, b) = (g.solve(&x).unwrap(), f.solve(&x).unwrap());
            assert_eq!(a.iterations, b.iterations, "{alg:?} tol {tol}");
            assert!(a.all_converged() && b.all_converged(), "{alg:?} tol {tol}");
            assert!(b.max_gap() <= tol, "{alg:?} tol {tol}: {}", b.max_gap());
            assert!((&a.codes - &b.codes).amax() < 1e-9, "{alg:?} tol {tol}: {}", (&a.codes - &b.codes).amax());
            // the gap the solver reports is the solver-independent one
            for j in 0..x.ncols() {
                let (xj, zj) = (x.column(j).into_owned(), b.codes.column(j).into_owned());
                let rel = f.duality_gap(&xj, &zj).unwrap() / (0.5 * xj.norm_squared());
                assert!((rel - b.gaps[j]).abs() <= 1e-9 * (1.0 + rel), "{rel} vs {}", b.gaps[j]);
            }
            if tol < 1e-6 {
                let cd = g.with_params(params(Algorithm::CoordinateDescent, 1e-12)).unwrap().solve(&x).unwrap();
                assert!((&cd.codes - &b.codes).amax() < 1e-4, "{alg:?}: {}", (&cd.codes - &b.codes).amax());
            }
            let bytes = |s: &Solver| bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap();
            assert_eq!(bytes(&g), bytes(&f), "the flag is not serialised");
            let (back, _): (Solver, usize) =
                bincode::serde::decode_from_slice(&bytes(&f), bincode::config::standard()).unwrap();
            assert!(!back.factored_products());
            // off again: bit for bit the Gram path
            let off = f.with_factored_products(false).solve(&x).unwrap();
            assert_eq!(off, a);
        }
    }
}

/// Gram-free working-set solves (`Solver::new_gram_free`, for dictionaries more than twice
/// overcomplete) against the Gram solvers on a small overcomplete case (12 x 60), `l1` and
/// group `l2`, coordinate descent and FISTA, from zero and from a warm start: every signal meets
/// the same relative duality gap on the full problem (checked with `duality_gap`, which needs no
/// Gram matrix either), the codes agree with a tight Gram solve to within the tolerance's reach,
/// no `M x M` Gram matrix is held (nor serialised), and its blocks are the Gram solver's bit for bit.
#[test]
fn gram_free_working_sets_agree_with_gram_solves() {
    let mut rng = StdRng::seed_from_u64(22);
    let (m, big_m) = (12, 60);
    let d = gaussian_dictionary(m, big_m, &mut rng);
    let x = DMatrix::from_fn(m, 30, |_, _| rand::RngExt::random_range(&mut rng, -2.0..2.0));
    for (groups, alg) in [
        (GroupSpec::lasso(big_m, 0.2).unwrap(), Algorithm::CoordinateDescent),
        (GroupSpec::lasso(big_m, 0.2).unwrap(), Algorithm::Fista),
        (GroupSpec::contiguous_blocks(big_m, 4, 0.3, GroupNorm::L2).unwrap(), Algorithm::CoordinateDescent),
        (GroupSpec::contiguous_blocks(big_m, 4, 0.3, GroupNorm::L2).unwrap(), Algorithm::Fista),
    ] {
        let exact = Solver::new(d.clone(), groups.clone(), params(Algorithm::CoordinateDescent, 1e-14)).unwrap();
        let z_star = exact.solve(&x).unwrap();
        assert!(z_star.all_converged());
        for tol in [1e-4, 1e-10] {
            let free = Solver::new_gram_free(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            assert!(free.gram_free() && free.factored_products() && free.gram().is_empty());
            let via_shape = Solver::new_for_shape(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            assert!(via_shape.gram_free());
            let gram = Solver::new(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            assert!(!gram.gram_free());
            assert!((free.lipschitz() - gram.lipschitz()).abs() <= 1e-9 * gram.lipschitz());
            let atoms = [3usize, 17, 0, 59, 31];
            assert_eq!(free.gram_block(&atoms), gram.gram_block(&atoms), "blocks bit for bit");
            let cold = free.solve(&x).unwrap();
            // a warm start near the solution (the next epoch's) and one from another signal's code
            let warm_init = DMatrix::from_fn(big_m, x.ncols(), |i, j| {
                if j % 2 == 0 { 0.9 * z_star.codes[(i, j)] } else { z_star.codes[(i, (j + 1) % x.ncols())] }
            });
            let warm = free.solve_warm(&x, &warm_init).unwrap();
            for (what, sol) in [("cold", &cold), ("warm", &warm)] {
                let label = format!("{alg:?} tol {tol} {what}");
                assert_full_gaps(&label, &gram, &x, sol, tol);
                for j in 0..x.ncols() {
                    let (xj, zj) = (x.column(j).into_owned(), sol.codes.column(j).into_owned());
                    let rel = gram.duality_gap(&xj, &zj).unwrap() / (0.5 * xj.norm_squared());
                    let rel_free = free.duality_gap(&xj, &zj).unwrap() / (0.5 * xj.norm_squared());
                    assert!((rel - rel_free).abs() <= 1e-9 * (1.0 + rel), "{rel} vs {rel_free}");
                }
                let diff = (&sol.codes - &z_star.codes).amax();
                let bound = if tol < 1e-6 { 1e-4 } else { 0.3 };
                assert!(diff < bound, "{alg:?} tol {tol} {what}: codes differ by {diff}");
            }
            if tol < 1e-6 {
                // same support as the exact solution wherever it is clear of the threshold
                for (a, b) in cold.codes.iter().zip(z_star.codes.iter()) {
                    assert!(!(b.abs() > 1e-3 && *a == 0.0), "{alg:?}: an active atom missed");
                }
            }
            let bytes = |s: &Solver| bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap();
            assert!(bytes(&free).len() + 8 * big_m * big_m <= bytes(&gram).len() + 64, "no Gram matrix stored");
        }
    }
}

/// `sol` converged on every signal of `x`, each signal's relative duality gap on the full problem
/// (`exact`'s, a solver with the Gram matrix) is within `tol`, and the gap `sol` reports is that
/// gap.
fn assert_full_gaps(label: &str, exact: &Solver, x: &DMatrix<f64>, sol: &Solution, tol: f64) {
    assert!(sol.all_converged(), "{label}: {:?}", sol.converged);
    for j in 0..x.ncols() {
        let (xj, zj) = (x.column(j).into_owned(), sol.codes.column(j).into_owned());
        let rel = exact.duality_gap(&xj, &zj).unwrap() / (0.5 * xj.norm_squared());
        assert!(rel <= tol * (1.0 + 1e-6), "{label} signal {j}: full gap {rel}");
        assert!((rel - sol.gaps[j]).abs() <= 1e-9 * (1.0 + rel), "{rel} vs reported {}", sol.gaps[j]);
    }
}

/// A Gram-free working-set FISTA / ISTA solve whose working set grows past twice the signal
/// dimension (dense codes: 10 x 200, groups of 4, a small penalty; the thesis-size LGBP's layer 3
/// on unseen images), where the restricted solves form `D_W^T (D_W y)` without a restricted Gram
/// matrix: every signal meets the tolerance on the full problem's duality gap and the codes agree
/// with a tight coordinate-descent solve on the Gram matrix, cold and warm-started.
#[test]
fn gram_free_working_sets_past_twice_the_rows_agree_with_gram_solves() {
    let mut rng = StdRng::seed_from_u64(23);
    let (m, big_m) = (10, 200);
    let d = gaussian_dictionary(m, big_m, &mut rng);
    let x = DMatrix::from_fn(m, 12, |_, _| rand::RngExt::random_range(&mut rng, -2.0..2.0));
    let groups = GroupSpec::contiguous_blocks(big_m, 4, 0.04, GroupNorm::L2).unwrap();
    let exact = Solver::new(d.clone(), groups.clone(), params(Algorithm::CoordinateDescent, 1e-14)).unwrap();
    let z_star = exact.solve(&x).unwrap();
    assert!(z_star.all_converged());
    let active = z_star.codes.column_iter().map(|c| c.iter().filter(|v| **v != 0.0).count()).max().unwrap_or(0);
    assert!(active > 2 * m, "dense enough that W passes 2 m: {active} active atoms");
    for alg in [Algorithm::Fista, Algorithm::Ista] {
        for tol in [1e-4, 1e-9] {
            let free = Solver::new_gram_free(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            let cold = free.solve(&x).unwrap();
            let warm_init = DMatrix::from_fn(big_m, x.ncols(), |i, j| 0.9 * z_star.codes[(i, j)]);
            let warm = free.solve_warm(&x, &warm_init).unwrap();
            for (what, sol) in [("cold", &cold), ("warm", &warm)] {
                assert_full_gaps(&format!("{alg:?} tol {tol} {what}"), &exact, &x, sol, tol);
                let diff = (&sol.codes - &z_star.codes).amax();
                let bound = if tol < 1e-6 { 1e-3 } else { 0.5 };
                assert!(diff < bound, "{alg:?} tol {tol} {what}: codes differ by {diff}");
            }
        }
    }
}
