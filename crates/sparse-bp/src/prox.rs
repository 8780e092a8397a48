//! Proximal operators of the group penalties (spec section 1).
//!
//! | operator | formula |
//! | --- | --- |
//! | soft threshold | `S_t(u) = sign(u) max(|u| - t, 0)` |
//! | non-negative soft threshold (ReLU) | `max(u - t, 0)` |
//! | block soft threshold | `(1 - t / ||v||_2)_+ v` |
//! | sparse-group | block soft threshold (with `(1-beta) t`) of the soft threshold (with `beta t`) |
//!
//! Each operator comes as an in-place `*_mut` function on a slice and, for scalars, as a
//! pure function.

/// Scalar soft threshold `S_t(u) = sign(u) max(|u| - t, 0)`.
///
/// ```
/// assert_eq!(sparse_bp::prox::soft_threshold(3.0, 1.0), 2.0);
/// assert_eq!(sparse_bp::prox::soft_threshold(-0.5, 1.0), 0.0);
/// ```
#[must_use]
#[inline]
pub fn soft_threshold(u: f64, t: f64) -> f64 {
    if u > t {
        u - t
    } else if u < -t {
        u + t
    } else {
        0.0
    }
}

/// Scalar non-negative soft threshold `max(u - t, 0)` (prox of `t|u| + indicator(u >= 0)`).
///
/// ```
/// assert_eq!(sparse_bp::prox::soft_threshold_nonneg(-3.0, 1.0), 0.0);
/// ```
#[must_use]
#[inline]
pub fn soft_threshold_nonneg(u: f64, t: f64) -> f64 {
    (u - t).max(0.0)
}

/// In-place soft threshold of every entry (non-negative variant if `nonneg`).
#[inline]
pub fn soft_threshold_mut(v: &mut [f64], t: f64, nonneg: bool) {
    if nonneg {
        v.iter_mut().for_each(|x| *x = soft_threshold_nonneg(*x, t));
    } else {
        v.iter_mut().for_each(|x| *x = soft_threshold(*x, t));
    }
}

/// In-place block soft threshold `v <- (1 - t/||v||_2)_+ v`; with `nonneg`, the prox of
/// `t ||v||_2 + indicator(v >= 0)`, i.e. the block soft threshold of `max(v, 0)`.
///
/// ```
/// let mut v = [3.0, 4.0];
/// sparse_bp::prox::block_soft_threshold_mut(&mut v, 2.5, false);
/// assert!((v[0] - 1.5).abs() < 1e-12 && (v[1] - 2.0).abs() < 1e-12);
/// ```
#[inline]
pub fn block_soft_threshold_mut(v: &mut [f64], t: f64, nonneg: bool) {
    if nonneg {
        v.iter_mut().for_each(|x| *x = x.max(0.0));
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > t { 1.0 - t / norm } else { 0.0 };
    v.iter_mut().for_each(|x| *x *= scale);
}

/// In-place prox of the sparse-group norm `t (beta ||v||_1 + (1 - beta) ||v||_2)`:
/// soft threshold by `beta t`, then block soft threshold by `(1 - beta) t`.
///
/// ```
/// let mut v = [3.0, -1.0, 0.5];
/// sparse_bp::prox::sparse_group_mut(&mut v, 1.0, 0.5, false);
/// // soft by 0.5 -> [2.5, -0.5, 0]; norm = sqrt(6.5); scale 1 - 0.5/sqrt(6.5)
/// let s = 1.0 - 0.5 / 6.5f64.sqrt();
/// assert!((v[0] - 2.5 * s).abs() < 1e-12 && (v[1] + 0.5 * s).abs() < 1e-12 && v[2] == 0.0);
/// ```
#[inline]
pub fn sparse_group_mut(v: &mut [f64], t: f64, beta: f64, nonneg: bool) {
    soft_threshold_mut(v, beta * t, nonneg);
    block_soft_threshold_mut(v, (1.0 - beta) * t, false);
}

/// In-place prox of the weighted l1 norm `t sum_i w_i |v_i|`.
#[inline]
pub fn weighted_soft_threshold_mut(v: &mut [f64], t: f64, w: &[f64], nonneg: bool) {
    for (x, wi) in v.iter_mut().zip(w) {
        *x = if nonneg { soft_threshold_nonneg(*x, t * wi) } else { soft_threshold(*x, t * wi) };
    }
}
