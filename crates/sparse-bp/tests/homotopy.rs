//! The homotopy (LARS-lasso) solver: agreement with coordinate descent and FISTA, its
//! duality gap, the lasso KKT conditions checked directly from `D^T r`, degenerate cases
//! and typed errors.

use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use sparse_bp::synthetic::gaussian_dictionary;
use sparse_bp::*;

fn params(alg: Algorithm, tol: f64) -> SolverParams {
    SolverParams::builder().algorithm(alg).tol(tol).max_iter(200_000).build().unwrap()
}

/// Per-atom thresholds `t_i` of the problem kinds used below, scaled so that
/// `max_i |b_i| / t_i = 1 / frac` (i.e. `lambda = frac * lambda_max`).
fn thresholds(kind: u8, b: &DVector<f64>, frac: f64, nonneg: bool) -> Vec<f64> {
    let big_m = b.len();
    let w: Vec<f64> = match kind {
        0 => vec![1.0; big_m],
        _ => (0..big_m).map(|i| 0.5 + 0.25 * (i % 5) as f64).collect(),
    };
    let lmax = (0..big_m).map(|i| if nonneg { b[i].max(0.0) } else { b[i].abs() } / w[i]).fold(0.0, f64::max);
    let lmax = if lmax > 0.0 { lmax } else { 1.0 };
    w.iter().map(|wi| wi * frac * lmax).collect()
}

/// Lasso KKT conditions from `v = D^T (x - D z)`: `|v_i| <= t_i` everywhere (`v_i <= t_i`
/// for the non-negative lasso) and `v_i = t_i sign(z_i)` on the support; `z >= 0` if
/// `nonneg`. Returns the largest violation relative to `max t`.
fn kkt_violation(d: &DMatrix<f64>, x: &DVector<f64>, z: &DVector<f64>, t: &[f64], nonneg: bool) -> f64 {
    let v = d.tr_mul(&(x - d * z));
    let tmax = t.iter().copied().fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for i in 0..z.len() {
        if z[i] != 0.0 {
            if nonneg && z[i] < 0.0 {
                return f64::INFINITY;
            }
            worst = worst.max((v[i] - t[i] * z[i].signum()).abs());
        } else {
            let over = if nonneg { v[i] - t[i] } else { v[i].abs() - t[i] };
            worst = worst.max(over.max(0.0));
        }
    }
    worst / tmax
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// On random problems (plain / weighted, signed / non-negative, lambda from 0.5 % to
    /// 120 % of lambda_max) homotopy converges, its gap meets the tolerance (also when
    /// recomputed independently), the KKT conditions hold, and its codes agree with
    /// coordinate descent and FISTA.
    #[test]
    fn homotopy_agrees_with_cd_and_fista_and_is_optimal(
        seed in 0u64..100_000,
        m in 8usize..30,
        ratio in 1usize..4,
        kind in 0u8..2,
        nonneg in any::<bool>(),
        frac in prop_oneof![0.005f64..0.05, 0.05f64..0.5, 0.5f64..1.2],
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let big_m = m * ratio + 3;
        let d = gaussian_dictionary(m, big_m, &mut rng);
        let x = gaussian_dictionary(m, 1, &mut rng).column(0) * 2.0;
        let b = d.tr_mul(&x);
        let t = thresholds(kind, &b, frac, nonneg);
        let groups = GroupSpec::weighted_lasso(&t).unwrap().with_nonneg(nonneg);
        let tol = 1e-11;
        let xm = DMatrix::from_column_slice(m, 1, x.as_slice());
        let homo = Solver::new(d.clone(), groups.clone(), params(Algorithm::Homotopy, tol)).unwrap();
        let sh = homo.solve(&xm).unwrap();
        prop_assert!(sh.all_converged());
        prop_assert!(sh.max_gap() <= tol);
        let zh = sh.codes.column(0).into_owned();
        let gap = homo.duality_gap(&x, &zh).unwrap();
        prop_assert!(gap <= tol * 0.5 * x.norm_squared() * 1.0001 + 1e-15, "gap {gap}");
        let kkt = kkt_violation(&d, &x, &zh, &t, nonneg);
        prop_assert!(kkt < 1e-6, "kkt violation {kkt}");
        if frac >= 1.0 {
            prop_assert!(zh.iter().all(|v| *v == 0.0), "lambda >= lambda_max must give zero");
        }
        let obj_h = homo.objective(&x, &zh).unwrap();
        for alg in [Algorithm::CoordinateDescent, Algorithm::Fista] {
            let s = Solver::new(d.clone(), groups.clone(), params(alg, tol)).unwrap();
            let sol = s.solve(&xm).unwrap();
            prop_assert!(sol.all_converged(), "{alg:?}");
            let z = sol.codes.column(0).into_owned();
            let obj = s.objective(&x, &z).unwrap();
            prop_assert!((obj - obj_h).abs() <= 3.0 * tol * 0.5 * x.norm_squared() + 1e-14);
            prop_assert!((&z - &zh).amax() < 1e-4, "{alg:?}: {}", (&z - &zh).amax());
        }
    }
}

/// `lambda >= lambda_max` gives the zero code with zero events; the zero signal too.
#[test]
fn lambda_above_lambda_max_and_zero_signal_give_zero() {
    let mut rng = StdRng::seed_from_u64(2);
    let d = gaussian_dictionary(10, 25, &mut rng);
    let x = gaussian_dictionary(10, 3, &mut rng);
    let lmax = d.tr_mul(&x).amax();
    for nonneg in [false, true] {
        let g = GroupSpec::lasso(25, lmax * 1.0000001).unwrap().with_nonneg(nonneg);
        let s = Solver::new(d.clone(), g, params(Algorithm::Homotopy, 1e-12)).unwrap();
        let sol = s.solve(&x).unwrap();
        assert!(sol.all_converged());
        assert!(sol.codes.iter().all(|v| *v == 0.0));
        assert_eq!(sol.iterations, vec![0, 0, 0]);
        let zero = s.solve(&DMatrix::zeros(10, 2)).unwrap();
        assert!(zero.all_converged() && zero.codes.iter().all(|v| *v == 0.0));
        assert_eq!(zero.gaps, vec![0.0, 0.0]);
    }
}

/// Orthonormal dictionary: the solution is the soft threshold of `D^T x`, reached by a
/// path with one event per non-zero entry (plus the final segment).
#[test]
fn orthonormal_dictionary_hand_solution() {
    let mut rng = StdRng::seed_from_u64(3);
    let q = sparse_bp::synthetic::random_orthogonal(4, &mut rng);
    let x = DVector::from_vec(vec![1.0, -2.0, 0.3, 4.0]);
    let b = q.tr_mul(&x);
    let s = Solver::new(q, GroupSpec::lasso(4, 0.5).unwrap(), params(Algorithm::Homotopy, 1e-12)).unwrap();
    let sol = s.solve_vector(&x).unwrap();
    let nnz = b.iter().filter(|v| v.abs() > 0.5).count();
    for i in 0..4 {
        assert!((sol.codes[(i, 0)] - prox::soft_threshold(b[i], 0.5)).abs() < 1e-12);
    }
    assert_eq!(sol.iterations[0], nnz);
}

/// The scikit-learn reference of `tests/solver.rs` (non-normalised atoms).
#[test]
fn matches_scikit_learn_lasso_reference() {
    let d = DMatrix::from_row_slice(3, 3, &[1.0, 0.5, 0.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.5]);
    let x = DVector::from_vec(vec![1.0, 2.0, 0.5]);
    let s = Solver::new(d, GroupSpec::lasso(3, 0.3).unwrap(), params(Algorithm::Homotopy, 1e-14)).unwrap();
    let z = s.solve_vector(&x).unwrap().codes.column(0).into_owned();
    for (zi, ri) in z.iter().zip([0.7, 0.0, 1.56]) {
        assert!((zi - ri).abs() < 1e-9, "{z}");
    }
}

/// Duplicated (and sign-flipped duplicated) atoms: a duplicate ties with its twin on the
/// boundary and would make the active Gram block singular, so the path is abandoned and
/// the coordinate-descent fallback finishes; the result meets the gap tolerance and its
/// objective equals coordinate descent's.
#[test]
fn duplicated_atoms_still_converge() {
    let mut rng = StdRng::seed_from_u64(4);
    let base = gaussian_dictionary(12, 20, &mut rng);
    let mut d = DMatrix::zeros(12, 26);
    d.columns_mut(0, 20).copy_from(&base);
    for (k, src) in [0usize, 3, 7].iter().enumerate() {
        d.set_column(20 + 2 * k, &base.column(*src));
        d.set_column(21 + 2 * k, &(-base.column(*src)));
    }
    // signals built from the duplicated atoms so that they matter
    let mut x = DMatrix::zeros(12, 6);
    for j in 0..6 {
        let col = base.column(0) * 2.0 + base.column(3) * (1.0 + j as f64) - base.column(7) * 1.5
            + gaussian_dictionary(12, 1, &mut rng).column(0) * 0.1;
        x.set_column(j, &col);
    }
    for lambda in [0.01, 0.1, 0.5] {
        for nonneg in [false, true] {
            let g = GroupSpec::lasso(26, lambda).unwrap().with_nonneg(nonneg);
            let h = Solver::new(d.clone(), g.clone(), params(Algorithm::Homotopy, 1e-11)).unwrap();
            let c = Solver::new(d.clone(), g, params(Algorithm::CoordinateDescent, 1e-11)).unwrap();
            let sh = h.solve(&x).unwrap();
            let sc = c.solve(&x).unwrap();
            assert!(sh.all_converged() && sh.max_gap() <= 1e-11, "lambda {lambda} nonneg {nonneg}");
            for j in 0..6 {
                let xj = x.column(j).into_owned();
                let oh = h.objective(&xj, &sh.codes.column(j).into_owned()).unwrap();
                let oc = c.objective(&xj, &sc.codes.column(j).into_owned()).unwrap();
                assert!((oh - oc).abs() <= 1e-10 * xj.norm_squared());
            }
        }
    }
}

/// Tiny lambda with `M > m`: the active set grows to `m` atoms (a square, still
/// invertible active block) and the result is still optimal.
#[test]
fn tiny_lambda_full_rank_active_set() {
    let mut rng = StdRng::seed_from_u64(5);
    let d = gaussian_dictionary(8, 24, &mut rng);
    let x = gaussian_dictionary(8, 5, &mut rng) * 2.0;
    let g = GroupSpec::lasso(24, 1e-4).unwrap();
    let h = Solver::new(d.clone(), g.clone(), params(Algorithm::Homotopy, 1e-10)).unwrap();
    let sh = h.solve(&x).unwrap();
    assert!(sh.all_converged() && sh.max_gap() <= 1e-10, "{:?}", sh.gaps);
    for j in 0..5 {
        let z = sh.codes.column(j).into_owned();
        let t = vec![1e-4; 24];
        assert!(kkt_violation(&d, &x.column(j).into_owned(), &z, &t, false) < 1e-3);
    }
    assert!(sh.codes.column_iter().any(|c| c.iter().filter(|v| **v != 0.0).count() == 8));
}

/// Bad input gives typed errors, not panics.
#[test]
fn typed_errors() {
    let mut rng = StdRng::seed_from_u64(6);
    let d = gaussian_dictionary(5, 9, &mut rng);
    let s = Solver::new(d.clone(), GroupSpec::lasso(9, 0.1).unwrap(), params(Algorithm::Homotopy, 1e-10)).unwrap();
    assert!(matches!(s.solve(&DMatrix::zeros(6, 2)), Err(SparseBpError::ShapeMismatch { .. })));
    let mut x = DMatrix::zeros(5, 2);
    x[(2, 1)] = f64::NAN;
    assert!(matches!(s.solve(&x), Err(SparseBpError::NonFinite { index: 7, .. })));
    x[(2, 1)] = f64::NEG_INFINITY;
    assert!(matches!(s.solve(&x), Err(SparseBpError::NonFinite { .. })));
    let mut dn = d.clone();
    dn[(0, 3)] = f64::NAN;
    assert!(matches!(
        Solver::new(dn, GroupSpec::lasso(9, 0.1).unwrap(), params(Algorithm::Homotopy, 1e-10)),
        Err(SparseBpError::NonFinite { .. })
    ));
    assert!(matches!(
        Solver::new(d, GroupSpec::lasso(8, 0.1).unwrap(), params(Algorithm::Homotopy, 1e-10)),
        Err(SparseBpError::ShapeMismatch { .. })
    ));
    assert!(GroupSpec::lasso(9, f64::NAN).is_err());
    assert!(GroupSpec::lasso(9, -1.0).is_err());
}

/// Parallel and sequential runs, and different chunk sizes, give bit-identical codes;
/// `Auto` picks homotopy for the lasso (same codes) and coordinate descent for groups.
#[test]
fn deterministic_batches_and_auto() {
    let mut rng = StdRng::seed_from_u64(8);
    let d = gaussian_dictionary(20, 50, &mut rng);
    let x = gaussian_dictionary(20, 37, &mut rng) * 2.0;
    let g = GroupSpec::lasso(50, 0.05).unwrap();
    let mk = |alg: Algorithm, chunk: usize, parallel: bool, groups: &GroupSpec| {
        let p = SolverParams::builder().algorithm(alg).tol(1e-10).chunk_size(chunk).parallel(parallel).build().unwrap();
        Solver::new(d.clone(), groups.clone(), p).unwrap().solve(&x).unwrap()
    };
    let a = mk(Algorithm::Homotopy, 5, true, &g);
    let b = mk(Algorithm::Homotopy, 256, false, &g);
    assert_eq!(a.codes, b.codes);
    assert_eq!(a.iterations, b.iterations);
    let auto = mk(Algorithm::Auto, 7, true, &g);
    assert_eq!(auto.codes, a.codes);
    // group l2: homotopy and auto both run coordinate descent
    let gl = GroupSpec::contiguous_blocks(50, 5, 0.2, GroupNorm::L2).unwrap();
    let cd = mk(Algorithm::CoordinateDescent, 9, true, &gl);
    assert_eq!(mk(Algorithm::Homotopy, 9, true, &gl).codes, cd.codes);
    assert_eq!(mk(Algorithm::Auto, 9, true, &gl).codes, cd.codes);
    assert!(cd.all_converged());
}
