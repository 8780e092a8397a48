//! Random instances for tests, examples and benchmarks (fixed seeds give fixed data).

use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::coherence::normalize_columns;
use crate::error::{Result, SparseBpError};
use crate::groups::GroupSpec;

/// `m x big_m` dictionary with i.i.d. N(0,1) entries and unit-norm columns.
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let d = sparse_bp::synthetic::gaussian_dictionary(10, 20, &mut rng);
/// assert!((d.column(3).norm() - 1.0).abs() < 1e-12);
/// ```
pub fn gaussian_dictionary<R: Rng + ?Sized>(m: usize, big_m: usize, rng: &mut R) -> DMatrix<f64> {
    let d = DMatrix::from_fn(m, big_m, |_, _| {
        let v: f64 = StandardNormal.sample(rng);
        v
    });
    normalize_columns(&d)
}

/// Random orthogonal `m x m` matrix (QR of a Gaussian matrix, sign-corrected).
pub fn random_orthogonal<R: Rng + ?Sized>(m: usize, rng: &mut R) -> DMatrix<f64> {
    let a = DMatrix::from_fn(m, m, |_, _| {
        let v: f64 = StandardNormal.sample(rng);
        v
    });
    let qr = a.qr();
    let (mut q, r) = qr.unpack();
    for j in 0..m {
        if r[(j, j)] < 0.0 {
            let mut c = q.column_mut(j);
            c *= -1.0;
        }
    }
    q
}

/// Low-coherence dictionary `Q [I, H/sqrt(m)]` (`m x 2m`): identity and normalised
/// Sylvester–Hadamard bases rotated by a random orthogonal `Q`, with atoms randomly
/// permuted within each basis. Mutual coherence exactly `1/sqrt(m)`. `m` must be a power of 2.
pub fn two_ortho_dictionary<R: Rng + ?Sized>(m: usize, rng: &mut R) -> Result<DMatrix<f64>> {
    if m == 0 || !m.is_power_of_two() {
        return Err(SparseBpError::InvalidParam { name: "m", value: m as f64, expected: "a power of two" });
    }
    let mut h = DMatrix::from_element(1, 1, 1.0);
    while h.nrows() < m {
        let k = h.nrows();
        let mut h2 = DMatrix::zeros(2 * k, 2 * k);
        h2.view_mut((0, 0), (k, k)).copy_from(&h);
        h2.view_mut((0, k), (k, k)).copy_from(&h);
        h2.view_mut((k, 0), (k, k)).copy_from(&h);
        h2.view_mut((k, k), (k, k)).copy_from(&(-&h));
        h = h2;
    }
    h /= (m as f64).sqrt();
    let mut base = DMatrix::zeros(m, 2 * m);
    base.view_mut((0, 0), (m, m)).copy_from(&DMatrix::identity(m, m));
    base.view_mut((0, m), (m, m)).copy_from(&h);
    // permute columns within each half
    let mut perm: Vec<usize> = (0..2 * m).collect();
    for half in 0..2 {
        for i in (1..m).rev() {
            let j = rng.random_range(0..=i);
            perm.swap(half * m + i, half * m + j);
        }
    }
    let permuted = base.select_columns(&perm);
    Ok(random_orthogonal(m, rng) * permuted)
}

/// A code with `k_active` randomly chosen active groups (distinct), each active entry
/// drawn from `U[lo, hi]` with a random sign (positive only if `nonneg`).
pub fn group_sparse_code<R: Rng + ?Sized>(
    groups: &GroupSpec,
    k_active: usize,
    lo: f64,
    hi: f64,
    nonneg: bool,
    rng: &mut R,
) -> Result<(DVector<f64>, Vec<usize>)> {
    if k_active > groups.n_groups() {
        return Err(SparseBpError::InvalidParam { name: "k_active", value: k_active as f64, expected: "<= n_groups" });
    }
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(SparseBpError::InvalidParam { name: "lo/hi", value: lo, expected: "finite, lo <= hi" });
    }
    let mut ids: Vec<usize> = (0..groups.n_groups()).collect();
    for i in 0..k_active {
        let j = rng.random_range(i..ids.len());
        ids.swap(i, j);
    }
    let mut active = ids[..k_active].to_vec();
    active.sort_unstable();
    let mut z = DVector::zeros(groups.n_atoms());
    for &g in &active {
        for &a in &groups.groups()[g].atoms {
            let mag = lo + (hi - lo) * rng.random::<f64>();
            let sign = if nonneg || rng.random::<bool>() { 1.0 } else { -1.0 };
            z[a] = sign * mag;
        }
    }
    Ok((z, active))
}

/// A random vector of l2 norm exactly `eps`.
pub fn sphere_vector<R: Rng + ?Sized>(m: usize, eps: f64, rng: &mut R) -> DVector<f64> {
    let v = DVector::from_fn(m, |_, _| {
        let x: f64 = StandardNormal.sample(rng);
        x
    });
    let n = v.norm();
    if n == 0.0 { v } else { v * (eps / n) }
}

/// `n` signals `X = D Gamma` whose codes each have `k_active` random active groups with
/// entries of magnitude `U[lo, hi]` (random signs). Returns `(Gamma, X)`.
pub fn group_sparse_signals<R: Rng + ?Sized>(
    d: &DMatrix<f64>,
    groups: &GroupSpec,
    k_active: usize,
    n: usize,
    lo: f64,
    hi: f64,
    rng: &mut R,
) -> Result<(DMatrix<f64>, DMatrix<f64>)> {
    if d.ncols() != groups.n_atoms() {
        return Err(SparseBpError::ShapeMismatch {
            what: "dictionary columns vs group atoms",
            expected: (d.nrows(), groups.n_atoms()),
            got: d.shape(),
        });
    }
    let mut codes = DMatrix::zeros(groups.n_atoms(), n);
    for j in 0..n {
        let (z, _) = group_sparse_code(groups, k_active, lo, hi, false, rng)?;
        codes.set_column(j, &z);
    }
    let x = d * &codes;
    Ok((codes, x))
}
