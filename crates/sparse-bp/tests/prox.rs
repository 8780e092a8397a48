//! Proximal operators: hand-computed values and the prox optimality condition.

use proptest::prelude::*;
use sparse_bp::GroupNorm;
use sparse_bp::prox::*;

#[test]
fn soft_threshold_hand_values() {
    assert_eq!(soft_threshold(3.0, 1.0), 2.0);
    assert_eq!(soft_threshold(-3.0, 1.0), -2.0);
    assert_eq!(soft_threshold(0.5, 1.0), 0.0);
    assert_eq!(soft_threshold(-1.0, 1.0), 0.0);
    assert_eq!(soft_threshold_nonneg(-3.0, 1.0), 0.0);
    assert_eq!(soft_threshold_nonneg(3.0, 1.0), 2.0);
    let mut v = [2.0, -0.2, -4.0];
    soft_threshold_mut(&mut v, 0.5, false);
    assert_eq!(v, [1.5, 0.0, -3.5]);
}

#[test]
fn block_soft_hand_values() {
    // ||(3,4)|| = 5; t = 2.5 -> scale 1/2
    let mut v = [3.0, 4.0];
    block_soft_threshold_mut(&mut v, 2.5, false);
    assert!((v[0] - 1.5).abs() < 1e-15 && (v[1] - 2.0).abs() < 1e-15);
    let mut v = [3.0, 4.0];
    block_soft_threshold_mut(&mut v, 5.0, false);
    assert_eq!(v, [0.0, 0.0]);
    // nonneg: (3, -4) -> (3, 0), norm 3, t = 1 -> (2, 0)
    let mut v = [3.0, -4.0];
    block_soft_threshold_mut(&mut v, 1.0, true);
    assert!((v[0] - 2.0).abs() < 1e-15 && v[1] == 0.0);
}

#[test]
fn sparse_group_hand_values() {
    // beta = 0.5, t = 2: soft by 1 -> (2, -3, 0) [from (3,-4,0.5)], norm sqrt(13), block by 1
    let mut v = [3.0, -4.0, 0.5];
    sparse_group_mut(&mut v, 2.0, 0.5, false);
    let s = 1.0 - 1.0 / 13f64.sqrt();
    assert!((v[0] - 2.0 * s).abs() < 1e-14);
    assert!((v[1] + 3.0 * s).abs() < 1e-14);
    assert_eq!(v[2], 0.0);
    // beta = 1 is the soft threshold, beta = 0 the block soft threshold
    let mut a = [3.0, -4.0];
    sparse_group_mut(&mut a, 1.0, 1.0, false);
    assert_eq!(a, [2.0, -3.0]);
    let mut b = [3.0, 4.0];
    sparse_group_mut(&mut b, 2.5, 0.0, false);
    assert!((b[0] - 1.5).abs() < 1e-15);
}

#[test]
fn weighted_l1_hand_values() {
    let mut v = [3.0, 3.0];
    weighted_soft_threshold_mut(&mut v, 1.0, &[1.0, 2.5], false);
    assert_eq!(v, [2.0, 0.5]);
}

#[test]
fn dual_norm_hand_values() {
    let v = [3.0, -4.0];
    assert_eq!(GroupNorm::L1.dual(&v, false), 4.0);
    assert_eq!(GroupNorm::L1.dual(&v, true), 3.0);
    assert_eq!(GroupNorm::L2.dual(&v, false), 5.0);
    assert_eq!(GroupNorm::WeightedL1(vec![1.0, 2.0]).dual(&v, false), 3.0);
    // sparse-group dual t solves ||S_{beta t}(v)|| = (1-beta) t; beta = 0.5, v = (1, 1):
    // sqrt(2) (1 - t/2) = t/2  ->  t = 2 sqrt2 / (1 + sqrt2)
    let t = GroupNorm::SparseGroup { beta: 0.5 }.dual(&[1.0, 1.0], false);
    let expect = 2.0 * 2f64.sqrt() / (1.0 + 2f64.sqrt());
    assert!((t - expect).abs() < 1e-12, "{t} vs {expect}");
}

fn norm_strategy() -> impl Strategy<Value = GroupNorm> {
    prop_oneof![
        Just(GroupNorm::L1),
        Just(GroupNorm::L2),
        (0.0f64..=1.0).prop_map(|beta| GroupNorm::SparseGroup { beta }),
        proptest::collection::vec(0.2f64..3.0, 5).prop_map(GroupNorm::WeightedL1),
    ]
}

fn objective(norm: &GroupNorm, p: &[f64], v: &[f64], t: f64) -> f64 {
    0.5 * p.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum::<f64>() + t * norm.value(p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// p = prox(v) minimises 1/2||p - v||^2 + t l(p) (+ p >= 0): no random
    /// feasible perturbation improves it, and the dual characterisation holds:
    /// l^*((v - p)/t) <= 1 (the residual is a subgradient).
    #[test]
    fn prox_is_optimal(
        v in proptest::collection::vec(-3.0f64..3.0, 5),
        t in 0.01f64..2.0,
        norm in norm_strategy(),
        nonneg in any::<bool>(),
        dirs in proptest::collection::vec(proptest::collection::vec(-1.0f64..1.0, 5), 20),
    ) {
        let mut p = v.clone();
        norm.prox_mut(&mut p, t, nonneg);
        prop_assert!(!nonneg || p.iter().all(|x| *x >= 0.0));
        let f0 = objective(&norm, &p, &v, t);
        for dir in &dirs {
            for &h in &[1e-1, 1e-3] {
                let mut q: Vec<f64> = p.iter().zip(dir).map(|(a, b)| a + h * b).collect();
                if nonneg { q.iter_mut().for_each(|x| *x = x.max(0.0)); }
                prop_assert!(objective(&norm, &q, &v, t) >= f0 - 1e-12);
            }
        }
        // subgradient: (v - p)/t in the dual ball, and <(v-p)/t, p> = l(p)
        let g: Vec<f64> = v.iter().zip(&p).map(|(a, b)| (a - b) / t).collect();
        prop_assert!(norm.dual(&g, nonneg) <= 1.0 + 1e-9);
        let inner: f64 = g.iter().zip(&p).map(|(a, b)| a * b).sum();
        prop_assert!((inner - norm.value(&p)).abs() <= 1e-9 * (1.0 + norm.value(&p)));
    }

    /// Exact optimality conditions of the soft and block soft thresholds.
    #[test]
    fn soft_and_block_conditions(v in proptest::collection::vec(-3.0f64..3.0, 4), t in 0.01f64..2.0) {
        let mut p = v.clone();
        soft_threshold_mut(&mut p, t, false);
        for (pi, vi) in p.iter().zip(&v) {
            if *pi != 0.0 {
                prop_assert!((vi - pi - t * pi.signum()).abs() < 1e-12);
            } else {
                prop_assert!(vi.abs() <= t);
            }
        }
        let mut q = v.clone();
        block_soft_threshold_mut(&mut q, t, false);
        let nq = q.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nq > 0.0 {
            for (qi, vi) in q.iter().zip(&v) {
                prop_assert!((vi - qi - t * qi / nq).abs() < 1e-12);
            }
        } else {
            prop_assert!(v.iter().map(|x| x * x).sum::<f64>().sqrt() <= t + 1e-12);
        }
    }
}
