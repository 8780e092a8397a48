//! Implicit-differentiation Jacobian/VJP vs central finite differences and vs forward-mode
//! differentiation through unrolled FISTA.

use nalgebra::DVector;
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use sparse_bp::implicit::*;
use sparse_bp::synthetic::*;
use sparse_bp::*;

fn groups_for(kind: u8, big_m: usize) -> GroupSpec {
    match kind {
        0 => GroupSpec::lasso(big_m, 0.15).unwrap(),
        1 => GroupSpec::contiguous_blocks(big_m, 3, 0.3, GroupNorm::L2).unwrap(),
        2 => GroupSpec::contiguous_blocks(big_m, 3, 0.3, GroupNorm::SparseGroup { beta: 0.3 }).unwrap(),
        3 => GroupSpec::weighted_lasso(&(0..big_m).map(|i| 0.1 + 0.02 * (i % 5) as f64).collect::<Vec<_>>()).unwrap(),
        4 => GroupSpec::lasso(big_m, 0.1).unwrap().with_nonneg(true),
        _ => GroupSpec::contiguous_blocks(big_m, 3, 0.2, GroupNorm::L2).unwrap().with_nonneg(true),
    }
}

fn solver(seed: u64, kind: u8) -> (Solver, DVector<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (m, big_m) = (12, 24);
    let d = gaussian_dictionary(m, big_m, &mut rng);
    let x = sphere_vector(m, 2.0, &mut rng);
    let p =
        SolverParams::builder().algorithm(Algorithm::CoordinateDescent).tol(1e-15).max_iter(1_000_000).build().unwrap();
    (Solver::new(d, groups_for(kind, big_m), p).unwrap(), x)
}

fn code(s: &Solver, x: &DVector<f64>) -> DVector<f64> {
    s.solve_vector(x).unwrap().codes.column(0).into_owned()
}

fn support(z: &DVector<f64>) -> Vec<usize> {
    (0..z.len()).filter(|&i| z[i] != 0.0).collect()
}

/// Central differences of the code along input coordinate `k` with step `h`, or `None` if
/// the step changes the support (the derivative is then not the implicit one).
fn central_difference(s: &Solver, x: &DVector<f64>, z: &DVector<f64>, k: usize, h: f64) -> Option<DVector<f64>> {
    let mut xp = x.clone();
    xp[k] += h;
    let mut xm = x.clone();
    xm[k] -= h;
    let (zp, zm) = (code(s, &xp), code(s, &xm));
    (support(&zp) == support(z) && support(&zm) == support(z)).then(|| (zp - zm) / (2.0 * h))
}

/// The body of `jacobian_matches_central_differences`: every Jacobian column within
/// `1e-5 (1 + |fd|)` of central differences. The difference quotient's error is its truncation
/// error (O(h^2)) plus the solver's error over h; at h = 1e-6 the second dominates where the
/// problem is ill-conditioned (e.g. 18 active atoms in 12 dimensions, flat along the active
/// groups' radii), so a column failing at h = 1e-6 is checked again at h = 1e-5 against the
/// same bound: a wrong column fails at both.
fn check_jacobian_fd(seed: u64, kind: u8, v: Vec<f64>) -> std::result::Result<(), TestCaseError> {
    let (s, x) = solver(seed, kind);
    let z = code(&s, &x);
    prop_assume!(!support(&z).is_empty());
    let j = jacobian(&s, &z).unwrap();
    let mut checked = 0;
    for k in 0..x.len() {
        let mut errs = Vec::new();
        for h in [1e-6, 1e-5] {
            let Some(fd) = central_difference(&s, &x, &z, k, h) else { continue };
            let err = (&fd - j.column(k)).amax();
            errs.push((h, err));
            if err < 1e-5 * (1.0 + fd.amax()) {
                checked += 1;
                errs.clear();
                break;
            }
        }
        prop_assert!(errs.is_empty(), "col {k}: (step, err) {errs:?}");
    }
    prop_assert!(checked > 0);
    let v = DVector::from_vec(v);
    let g = vjp(&s, &z, &v).unwrap();
    prop_assert!((g - j.transpose() * &v).amax() < 1e-10);
    Ok(())
}

/// A case the property found where h = 1e-6 is solver-noise limited (column 4: 1.5e-5
/// relative at h = 1e-6, 1.6e-6 at 1e-5, 7.6e-8 at 1e-4: the error shrinks as the step grows,
/// so it is the difference quotient's, not the Jacobian's).
#[test]
fn jacobian_matches_central_differences_ill_conditioned_case() {
    check_jacobian_fd(89069, 1, vec![0.5; 24]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Jacobian columns against central differences (skipping coordinates where the
    /// perturbation changes the support), and VJP = J^T v.
    #[test]
    fn jacobian_matches_central_differences(seed in 0u64..100_000, kind in 0u8..6, v in proptest::collection::vec(-1.0f64..1.0, 24)) {
        check_jacobian_fd(seed, kind, v)?;
    }

    /// Forward-mode derivative of many plain FISTA iterations converges to the implicit one.
    #[test]
    fn jacobian_matches_unrolled_fista(seed in 0u64..100_000, kind in 0u8..6) {
        let (s, x) = solver(seed, kind);
        let z = code(&s, &x);
        prop_assume!(!support(&z).is_empty());
        let (zu, ju) = unrolled_fista_jacobian(&s, &x, 4000).unwrap();
        prop_assume!(support(&zu) == support(&z));
        // Unrolled FISTA converges linearly at a rate set by the conditioning of D_S; where
        // 4000 iterations have not reached the solver's code, its Jacobian has not converged either.
        prop_assume!((&zu - &z).amax() < 1e-9 * (1.0 + z.amax()));
        let j = jacobian(&s, &z).unwrap();
        let err = (&ju - &j).amax();
        prop_assert!(err < 1e-4 * (1.0 + j.amax()), "err {err}");
    }
}

#[test]
fn vjp_batch_matches_single_and_rejects_bad_shapes() {
    let (s, x) = solver(7, 1);
    let xs = nalgebra::DMatrix::from_columns(&[x.clone(), &x * 0.5, &x * 2.0]);
    let codes = s.solve(&xs).unwrap().codes;
    let cot = codes.map(|v| v + 0.3);
    let out = vjp_batch(&s, &codes, &cot).unwrap();
    for j in 0..3 {
        let single = vjp(&s, &codes.column(j).into_owned(), &cot.column(j).into_owned()).unwrap();
        assert!((out.column(j) - single).amax() < 1e-12);
    }
    assert!(vjp_batch(&s, &codes, &cot.columns(0, 2).into_owned()).is_err());
    assert!(vjp(&s, &DVector::zeros(3), &DVector::zeros(3)).is_err());
    let mut bad = codes.column(0).into_owned();
    bad[0] = f64::NAN;
    assert!(vjp(&s, &bad, &bad).is_err());
}

/// Hand case: orthonormal D, l1: dz/dx = D_S^T on the support.
#[test]
fn jacobian_hand_case_l1_orthonormal() {
    let mut rng = StdRng::seed_from_u64(1);
    let q = random_orthogonal(3, &mut rng);
    let s = Solver::new(q.clone(), GroupSpec::lasso(3, 0.2).unwrap(), SolverParams::default()).unwrap();
    let x = &q * DVector::from_vec(vec![1.0, 0.1, -2.0]);
    let z = code(&s, &x);
    assert_eq!(support(&z), vec![0, 2]);
    let j = jacobian(&s, &z).unwrap();
    assert!((j.row(0) - q.column(0).transpose()).amax() < 1e-12);
    assert!(j.row(1).amax() == 0.0);
    assert!((j.row(2) - q.column(2).transpose()).amax() < 1e-12);
}

/// Hand case: identity D, one l2 group: z = (1 - t/||x||) x, so
/// dz/dx = (1 - t/||x||) I + t x x^T / ||x||^3.
#[test]
fn jacobian_hand_case_group_identity() {
    let d = nalgebra::DMatrix::<f64>::identity(2, 2);
    let t = 1.0;
    let s =
        Solver::new(d, GroupSpec::contiguous_blocks(2, 2, t, GroupNorm::L2).unwrap(), SolverParams::default()).unwrap();
    let x = DVector::from_vec(vec![3.0, 4.0]);
    let z = code(&s, &x);
    let j = jacobian(&s, &z).unwrap();
    let n: f64 = 5.0;
    for a in 0..2 {
        for b in 0..2 {
            let id = if a == b { 1.0 } else { 0.0 };
            let expect = (1.0 - t / n) * id + t * x[a] * x[b] / n.powi(3);
            assert!((j[(a, b)] - expect).abs() < 1e-6, "{a}{b}: {} vs {expect}", j[(a, b)]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Dictionary and weight cotangents of `vjp_full` against central differences of
    /// `L(z) = <v, z>`.
    #[test]
    fn full_vjp_matches_central_differences(seed in 0u64..100_000, kind in 0u8..6, v in proptest::collection::vec(-1.0f64..1.0, 24)) {
        let (s, x) = solver(seed, kind);
        let z = code(&s, &x);
        prop_assume!(!support(&z).is_empty());
        let v = DVector::from_vec(v);
        let full = vjp_full(&s, &x, &z, &v).unwrap();
        prop_assert!((&full.x - vjp(&s, &z, &v).unwrap()).amax() < 1e-12);
        let h = 1e-6;
        let loss = |s2: &Solver| -> Option<f64> {
            let z2 = code(s2, &x);
            (support(&z2) == support(&z)).then(|| v.dot(&z2))
        };
        // dictionary: a few entries of active and inactive columns
        let d = s.dictionary().clone();
        let sup = support(&z);
        let mut checked = 0;
        for &(i, a) in &[(0usize, sup[0]), (3, sup[sup.len() - 1]), (5, (sup[0] + 1) % 24)] {
            let mut dp = d.clone(); dp[(i, a)] += h;
            let mut dm = d.clone(); dm[(i, a)] -= h;
            let sp = Solver::new(dp, s.groups().clone(), s.params().clone()).unwrap();
            let sm = Solver::new(dm, s.groups().clone(), s.params().clone()).unwrap();
            if let (Some(lp), Some(lm)) = (loss(&sp), loss(&sm)) {
                let fd = (lp - lm) / (2.0 * h);
                prop_assert!((fd - full.dictionary[(i, a)]).abs() < 1e-5 * (1.0 + fd.abs()), "D[{i},{a}]: fd {fd} vs {}", full.dictionary[(i, a)]);
                checked += 1;
            }
        }
        // weights: every active group
        for gi in s.groups().active_groups(z.as_slice(), 0.0) {
            let scale = |f: f64| {
                let gs: Vec<Group> = s.groups().groups().iter().enumerate().map(|(k, g)| {
                    Group::new(g.atoms.clone(), if k == gi { g.weight + f } else { g.weight }, g.norm.clone())
                }).collect();
                GroupSpec::new(24, gs).unwrap().with_nonneg(s.groups().nonneg())
            };
            let sp = s.with_groups(scale(h)).unwrap();
            let sm = s.with_groups(scale(-h)).unwrap();
            if let (Some(lp), Some(lm)) = (loss(&sp), loss(&sm)) {
                let fd = (lp - lm) / (2.0 * h);
                prop_assert!((fd - full.weights[gi]).abs() < 1e-5 * (1.0 + fd.abs()), "gamma[{gi}]: fd {fd} vs {}", full.weights[gi]);
                checked += 1;
            }
        }
        prop_assert!(checked > 0);
    }
}

/// A dictionary with a repeated atom (`d_2 = d_0`) whose solution splits its weight between the
/// copies (FISTA from zero moves both copies alike): with `l1` the active block of `D_S^T D_S` is
/// `[[1, 1], [1, 1]]`, singular, and every derivative is the typed error that says what, how
/// many atoms and groups are active and the dictionary's shape (and, with more active atoms
/// than rows, why), never a panic nor a NaN; with both copies in one group-`l2` group the
/// curvature `H` makes the system invertible, and the VJP matches central finite differences.
#[test]
fn singular_implicit_system_is_a_typed_error() {
    let d = nalgebra::DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
    let p = SolverParams::builder().algorithm(Algorithm::Fista).restart(false).tol(1e-14).max_iter(200_000);
    let l1 = Solver::new(d.clone(), GroupSpec::lasso(3, 0.1).unwrap(), p.clone().build().unwrap()).unwrap();
    let v = DVector::from_element(3, 1.0);
    // two active atoms (the copies) on two rows
    let x = DVector::from_vec(vec![2.0, 0.05]);
    let z = code(&l1, &x);
    assert!(z[0] > 0.0 && z[0] == z[2] && z[1] == 0.0, "the copies share the weight: {z:?}");
    let expect = |e: SparseBpError| {
        assert!(
            matches!(
                e,
                SparseBpError::SingularImplicit { what: "D_S^T D_S + H", active: 2, groups: 2, rows: 2, atoms: 3 }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("2 active atoms in 2 active groups (dictionary 2 x 3)"), "{msg}");
        assert!(!msg.contains("more active atoms than dictionary rows"), "{msg}");
    };
    expect(vjp(&l1, &z, &v).unwrap_err());
    expect(jacobian(&l1, &z).unwrap_err());
    expect(vjp_full(&l1, &x, &z, &v).unwrap_err());
    // three active atoms on two rows: the message says why the system cannot be inverted
    let x3 = DVector::from_vec(vec![2.0, 0.5]);
    let z3 = code(&l1, &x3);
    assert!(z3.iter().all(|&c| c > 0.0), "{z3:?}");
    let e = vjp(&l1, &z3, &v).unwrap_err();
    assert!(matches!(e, SparseBpError::SingularImplicit { active: 3, groups: 3, rows: 2, atoms: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("more active atoms than dictionary rows"), "{e}");
    // the copies in one l2 group: H = w/||z_g|| (I - u u^T) covers the null direction (1, -1)
    let groups = vec![Group::new(vec![0, 2], 0.1, GroupNorm::L2), Group::new(vec![1], 0.1, GroupNorm::L2)];
    let gl = Solver::new(d, GroupSpec::new(3, groups).unwrap(), p.build().unwrap()).unwrap();
    let zg = code(&gl, &x3);
    assert!(zg.iter().all(|&c| c != 0.0), "{zg:?}");
    let g = vjp(&gl, &zg, &v).unwrap();
    assert!(g.iter().all(|x| x.is_finite()));
    let h = 1e-6;
    for i in 0..2 {
        let (mut xp, mut xm) = (x3.clone(), x3.clone());
        xp[i] += h;
        xm[i] -= h;
        let fd = (code(&gl, &xp).sum() - code(&gl, &xm).sum()) / (2.0 * h);
        assert!((fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()), "entry {i}: fd {fd} vs {}", g[i]);
    }
}
