//! Multi-layer pursuit: Deep Pursuit equals the stacked shallow group-BP problem.

use nalgebra::DMatrix;
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use sparse_bp::multilayer::*;
use sparse_bp::synthetic::*;
use sparse_bp::*;

fn model(seed: u64, nonneg: bool, w: f64) -> (MultiLayer, DMatrix<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let d1 = gaussian_dictionary(10, 16, &mut rng);
    let d2 = gaussian_dictionary(16, 20, &mut rng);
    let d3 = gaussian_dictionary(20, 24, &mut rng);
    let x = gaussian_dictionary(10, 4, &mut rng) * 3.0;
    (MultiLayer::new(vec![d1, d2, d3], vec![w, 0.7 * w, 0.5 * w], nonneg).unwrap(), x)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Deep Pursuit (FISTA over layers, feed-forward init) and the stacked shallow group-BP
    /// problem with neurons as groups reach the same minimiser.
    #[test]
    fn deep_pursuit_equals_stacked_gbp(seed in 0u64..100_000, nonneg in any::<bool>(), w in 0.05f64..0.3) {
        let (ml, x) = model(seed, nonneg, w);
        let dp = ml.deep_pursuit(&x, &DeepPursuitParams { tol: 1e-10, ..Default::default() }).unwrap();
        prop_assert!(dp.converged);
        let p = SolverParams::builder().algorithm(Algorithm::CoordinateDescent).tol(1e-14).max_iter(1_000_000).build().unwrap();
        let shallow = ml.shallow_solver(LayerGrouping::Neurons, p).unwrap();
        let sol = shallow.solve(&ml.stacked_input(&x).unwrap()).unwrap();
        prop_assert!(sol.all_converged());
        let layers = ml.split_stacked(&sol.codes);
        for (a, b) in dp.codes.iter().zip(&layers) {
            prop_assert!((a - b).amax() < 1e-5, "max diff {}", (a - b).amax());
        }
    }
}

#[test]
fn stacked_dictionary_by_hand() {
    let d1 = DMatrix::from_row_slice(1, 2, &[1.0, 2.0]);
    let d2 = DMatrix::from_row_slice(2, 1, &[3.0, 4.0]);
    let ml = MultiLayer::new(vec![d1, d2], vec![1.0, 1.0], false).unwrap();
    let a = ml.stacked_dictionary();
    let expect = DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 0.0, -1.0, 0.0, 3.0, 0.0, -1.0, 4.0]);
    assert_eq!(a, expect);
    let x = DMatrix::from_element(1, 2, 5.0);
    let s = ml.stacked_input(&x).unwrap();
    assert_eq!(s.shape(), (3, 2));
    assert_eq!(s[(0, 1)], 5.0);
    assert_eq!(s[(2, 1)], 0.0);
    let g = ml.stacked_groups(LayerGrouping::Layers).unwrap();
    assert_eq!(g.n_groups(), 2);
    assert_eq!(g.groups()[0].atoms, vec![0, 1]);
}

#[test]
fn layered_bp_is_a_chain_of_lasso_solves() {
    let (ml, x) = model(3, false, 0.1);
    let p = SolverParams::builder().tol(1e-12).build().unwrap();
    let codes = ml.layered_bp(&x, &p).unwrap();
    assert_eq!(codes.len(), 3);
    let d2 = &ml.dictionaries()[1];
    let s2 = Solver::new(d2.clone(), GroupSpec::lasso(d2.ncols(), 0.07).unwrap(), p).unwrap();
    let direct = s2.solve(&codes[0]).unwrap().codes;
    assert!((direct - &codes[1]).amax() < 1e-9);
}

#[test]
fn layers_as_groups_solver_runs_and_converges() {
    let (ml, x) = model(5, true, 0.2);
    let p = SolverParams::builder().tol(1e-10).build().unwrap();
    let s = ml.shallow_solver(LayerGrouping::Layers, p).unwrap();
    let sol = s.solve(&ml.stacked_input(&x).unwrap()).unwrap();
    assert!(sol.all_converged());
    assert!(sol.codes.iter().all(|v| *v >= 0.0));
}

#[test]
fn multilayer_validation() {
    let d1 = DMatrix::<f64>::identity(3, 4);
    let d2 = DMatrix::<f64>::identity(5, 2);
    assert!(matches!(
        MultiLayer::new(vec![d1.clone(), d2], vec![1.0, 1.0], false),
        Err(SparseBpError::LayerMismatch { layer: 1, rows: 5, expected: 4 })
    ));
    assert!(MultiLayer::new(vec![d1.clone()], vec![0.0], false).is_err());
    assert!(MultiLayer::new(vec![d1.clone()], vec![1.0, 1.0], false).is_err());
    assert!(MultiLayer::new(vec![], vec![], false).is_err());
    let ml = MultiLayer::new(vec![d1], vec![1.0], false).unwrap();
    assert!(ml.deep_pursuit(&DMatrix::zeros(2, 1), &DeepPursuitParams::default()).is_err());
    assert!(ml.deep_pursuit(&DMatrix::zeros(3, 1), &DeepPursuitParams { tol: 0.0, ..Default::default() }).is_err());
}
