//! Dense kernels that skip exact zeros of block-structured matrices (the stacked Deep Pursuit
//! dictionary `A` and its Gram matrix are mostly zero blocks) and give **bit for bit** the
//! results of the plain loops / nalgebra routines they replace (issue 20: the 3-layer
//! end-to-end training rebuilds the stacked Gram matrix every step and runs coordinate
//! descent on it).
//!
//! Why skipping is exact. Every skipped product has an exact-zero factor (a finite matrix, so
//! the product is `+0` or `-0`). nalgebra's dot product sums into accumulators that start at
//! `+0`, and a sum of IEEE doubles is `-0` only if both terms are `-0`, so an accumulator is
//! never `-0` and adding `+-0` to it changes nothing. Each kept product goes into the same
//! accumulator (lane `row mod 8`) in the same order as in nalgebra's `dotx`, so the dot
//! products, Gram matrices and `A^T r` products here are identical to nalgebra's. For the
//! coordinate-descent gradient `grad += G_a delta`, a skipped `+-0` can only change the sign
//! of a gradient entry that is itself zero, which never changes a code or a duality gap (see
//! [`Solver::cd_column`](super::Solver)); the tests check codes and gaps bit for bit.

use nalgebra::{DMatrix, DVector};

/// Defines `pub(crate) fn $name` that runs `$body` compiled with AVX2 when the CPU has it
/// (`$name` + `_avx2`, 4 doubles per instruction) and as plain code otherwise. AVX2 without
/// FMA: every product and sum is still rounded on its own in the same order, so both give the
/// same bits; the bodies use only `+ - * /`, `sqrt` and comparisons (no `min` / `max`, whose
/// sign of zero may depend on the instructions chosen).
macro_rules! avx2_dispatch {
    ($(#[$doc:meta])* fn $name:ident / $avx:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)? = $body:ident) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { $avx($($arg),*) };
            }
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx($($arg: $ty),*) $(-> $ret)? {
            $body($($arg),*)
        }
    };
}

/// The rows `[lo, hi)` between the first and the last non-zero entry of every column of `a`
/// (`(0, 0)` for a zero column).
pub(crate) fn column_ranges(a: &DMatrix<f64>) -> Vec<(usize, usize)> {
    let m = a.nrows();
    let s = a.as_slice();
    (0..a.ncols())
        .map(|j| {
            let col = &s[j * m..(j + 1) * m];
            match col.iter().position(|&v| v != 0.0) {
                None => (0, 0),
                Some(lo) => (lo, m - col.iter().rev().position(|&v| v != 0.0).unwrap_or(0)),
            }
        })
        .collect()
}

/// `x . y` (both of length `m`) exactly as nalgebra's `dot` sums it (eight accumulators over
/// the rows below `8 floor(m / 8)`, lane `row mod 8`, then the remaining rows one by one), with
/// the products outside the rows `[lo, hi)` left out (they must be exact zeros).
#[inline(always)]
#[allow(clippy::many_single_char_names)]
pub(crate) fn dot_in(x: &[f64], y: &[f64], lo: usize, hi: usize) -> f64 {
    let m = x.len();
    debug_assert_eq!(m, y.len());
    let n8 = m - m % 8;
    let mut res = 0.0;
    if lo >= hi {
        return res;
    }
    let start = lo - lo % 8;
    let end = hi.div_ceil(8).saturating_mul(8).min(n8);
    let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut i = start;
    while i < end {
        a0 += x[i] * y[i];
        a1 += x[i + 1] * y[i + 1];
        a2 += x[i + 2] * y[i + 2];
        a3 += x[i + 3] * y[i + 3];
        a4 += x[i + 4] * y[i + 4];
        a5 += x[i + 5] * y[i + 5];
        a6 += x[i + 6] * y[i + 6];
        a7 += x[i + 7] * y[i + 7];
        i += 8;
    }
    res += a0 + a4;
    res += a1 + a5;
    res += a2 + a6;
    res += a3 + a7;
    for k in lo.max(n8)..hi {
        res += x[k] * y[k];
    }
    res
}

avx2_dispatch! {
    /// `a^T a`, bit for bit `a.tr_mul(a)`, computing each entry once (the product is symmetric
    /// bit for bit: IEEE multiplication commutes) over the rows where both columns can be
    /// non-zero.
    fn gram / gram_avx2(a: &DMatrix<f64>) -> DMatrix<f64> = gram_body
}

#[inline(always)]
fn gram_body(a: &DMatrix<f64>) -> DMatrix<f64> {
    let (m, n) = a.shape();
    let s = a.as_slice();
    let ranges = column_ranges(a);
    let mut g = DMatrix::zeros(n, n);
    for j in 0..n {
        let cj = &s[j * m..(j + 1) * m];
        for i in 0..=j {
            let lo = ranges[i].0.max(ranges[j].0);
            let hi = ranges[i].1.min(ranges[j].1);
            let v = dot_in(&s[i * m..(i + 1) * m], cj, lo, hi);
            g[(i, j)] = v;
            g[(j, i)] = v;
        }
    }
    g
}

avx2_dispatch! {
    /// The Gram matrix of the columns `atoms` of `d` (non-zero rows `rows` of every column of
    /// `d`), the first `old.nrows()` of whose entries are `old` (kept) and the others computed,
    /// each entry as [`gram`] computes it (over the rows where both columns can be non-zero).
    fn gram_extend / gram_extend_avx2(d: &DMatrix<f64>, rows: &[(usize, usize)], atoms: &[usize], old: &DMatrix<f64>) -> DMatrix<f64> = gram_extend_body
}

#[inline(always)]
fn gram_extend_body(d: &DMatrix<f64>, rows: &[(usize, usize)], atoms: &[usize], old: &DMatrix<f64>) -> DMatrix<f64> {
    let (m, n, n_old) = (d.nrows(), atoms.len(), old.nrows());
    let s = d.as_slice();
    let mut g = DMatrix::zeros(n, n);
    g.view_mut((0, 0), (n_old, n_old)).copy_from(old);
    for j in n_old..n {
        let aj = atoms[j];
        let cj = &s[aj * m..(aj + 1) * m];
        for i in 0..=j {
            let ai = atoms[i];
            let lo = rows[ai].0.max(rows[aj].0);
            let hi = rows[ai].1.min(rows[aj].1);
            let v = dot_in(&s[ai * m..(ai + 1) * m], cj, lo, hi);
            g[(i, j)] = v;
            g[(j, i)] = v;
        }
    }
    g
}

avx2_dispatch! {
    /// `a^T r` for a vector `r`, bit for bit `a.tr_mul(r)`, each entry over the non-zero rows
    /// `ranges` of `a`'s columns ([`column_ranges`]).
    fn tr_mul_vec / tr_mul_vec_avx2(a: &DMatrix<f64>, ranges: &[(usize, usize)], r: &DVector<f64>) -> DVector<f64> = tr_mul_vec_body
}

#[inline(always)]
fn tr_mul_vec_body(a: &DMatrix<f64>, ranges: &[(usize, usize)], r: &DVector<f64>) -> DVector<f64> {
    let m = a.nrows();
    let s = a.as_slice();
    DVector::from_fn(a.ncols(), |j, _| dot_in(&s[j * m..(j + 1) * m], r.as_slice(), ranges[j].0, ranges[j].1))
}

avx2_dispatch! {
    /// `grad[i] += col[i] * delta` for the rows `range = [lo, hi)` of a Gram column (its
    /// non-zero rows, [`column_ranges`]).
    fn axpy_in / axpy_in_avx2(grad: &mut [f64], col: &[f64], delta: f64, range: (usize, usize)) = axpy_in_body
}

#[inline(always)]
fn axpy_in_body(grad: &mut [f64], col: &[f64], delta: f64, (lo, hi): (usize, usize)) {
    grad[lo..hi].iter_mut().zip(&col[lo..hi]).for_each(|(g, c)| *g += c * delta);
}

avx2_dispatch! {
    /// `grad += G_a delta_a` for every `(a, delta_a)` of `upd` in turn (columns of the `m x m`
    /// Gram matrix `gram`, column-major), each entry summed in the order of `upd` exactly as one
    /// [`axpy_in`] per atom would, but four atoms per pass over `grad`; over the union of the
    /// atoms' non-zero rows `rows`.
    fn add_columns / add_columns_avx2(grad: &mut [f64], gram: &[f64], upd: &[(usize, f64)], rows: &[(usize, usize)]) = add_columns_body
}

#[inline(always)]
fn add_columns_body(grad: &mut [f64], gram: &[f64], upd: &[(usize, f64)], rows: &[(usize, usize)]) {
    let m = grad.len();
    let col = |a: usize| &gram[a * m..(a + 1) * m];
    for part in upd.chunks(4) {
        let lo = part.iter().map(|&(a, _)| rows[a].0).min().unwrap_or(0);
        let hi = part.iter().map(|&(a, _)| rows[a].1).max().unwrap_or(0);
        if lo >= hi {
            continue;
        }
        let g = &mut grad[lo..hi];
        match *part {
            [(a0, d0), (a1, d1), (a2, d2), (a3, d3)] => {
                let (c0, c1, c2, c3) = (&col(a0)[lo..hi], &col(a1)[lo..hi], &col(a2)[lo..hi], &col(a3)[lo..hi]);
                for i in 0..g.len() {
                    let mut v = g[i];
                    v += c0[i] * d0;
                    v += c1[i] * d1;
                    v += c2[i] * d2;
                    v += c3[i] * d3;
                    g[i] = v;
                }
            }
            [(a0, d0), (a1, d1), (a2, d2)] => {
                let (c0, c1, c2) = (&col(a0)[lo..hi], &col(a1)[lo..hi], &col(a2)[lo..hi]);
                for i in 0..g.len() {
                    let mut v = g[i];
                    v += c0[i] * d0;
                    v += c1[i] * d1;
                    v += c2[i] * d2;
                    g[i] = v;
                }
            }
            [(a0, d0), (a1, d1)] => {
                let (c0, c1) = (&col(a0)[lo..hi], &col(a1)[lo..hi]);
                for i in 0..g.len() {
                    let mut v = g[i];
                    v += c0[i] * d0;
                    v += c1[i] * d1;
                    g[i] = v;
                }
            }
            [(a0, d0)] => g.iter_mut().zip(&col(a0)[lo..hi]).for_each(|(v, c)| *v += c * d0),
            _ => unreachable!("chunks of at most 4"),
        }
    }
}

avx2_dispatch! {
    /// The solution `y` of `a y = v` for a symmetric positive definite `a`, bit for bit
    /// `a.cholesky()?.solve(&v)` (nalgebra 0.35: left-looking Cholesky, column `j` updated by
    /// `col_j += (-L[j, k]) col_k` for `k = 0..j` in turn, then divided by its diagonal's square
    /// root; a forward and a backward substitution), or `None` where nalgebra's factorisation
    /// fails (a diagonal pivot zero, negative or NaN). Faster than nalgebra's only in how the
    /// factorisation's updates are grouped: four `k` per pass over column `j`, each entry still
    /// updated in the order `k = 0, 1, ...` with the same operations.
    fn cholesky_solve / cholesky_solve_avx2(a: DMatrix<f64>, v: &DVector<f64>) -> Option<DVector<f64>> = cholesky_solve_body
}

#[inline(always)]
fn cholesky_solve_body(mut a: DMatrix<f64>, v: &DVector<f64>) -> Option<DVector<f64>> {
    let n = a.nrows();
    assert_eq!(a.ncols(), n, "square matrix");
    assert_eq!(v.len(), n, "right-hand side");
    // Without negative zeros in `a`, no entry of the factor nor any partial sum of an update
    // is `-0` (module docs: a sum is `-0` only if both terms are), so the updates whose factor
    // `L[j, k]` or entry `L[i, k]` is zero add `+-0` to a value that is not `-0` and are skipped
    // (the stacked Deep Pursuit systems are block tridiagonal: their factor has zero blocks).
    let skip_zeros = !a.iter().any(|x| *x == 0.0 && x.is_sign_negative());
    // one past the last non-zero row of each finished column of the factor
    let mut hi = vec![n; n];
    let mut ks: Vec<usize> = Vec::with_capacity(n);
    let s = a.as_mut_slice();
    for j in 0..n {
        let (left, right) = s.split_at_mut(j * n);
        let cj = &mut right[j..n];
        let col = |k: usize| &left[k * n + j..(k + 1) * n];
        // nalgebra: y = factor * x * 1 + 1 * y with factor = -L[j, k]; `* 1` and `1 *` are exact and
        // IEEE addition commutes, so this is y += factor * x
        let f = |k: usize| -left[k * n + j];
        ks.clear();
        ks.extend((0..j).filter(|&k| !skip_zeros || (left[k * n + j] != 0.0 && hi[k] > j)));
        let mut q = 0;
        while q + 4 <= ks.len() {
            let (k0, k1, k2, k3) = (ks[q], ks[q + 1], ks[q + 2], ks[q + 3]);
            let rows = hi[k0].max(hi[k1]).max(hi[k2]).max(hi[k3]) - j;
            let (c0, c1, c2, c3) = (&col(k0)[..rows], &col(k1)[..rows], &col(k2)[..rows], &col(k3)[..rows]);
            let (f0, f1, f2, f3) = (f(k0), f(k1), f(k2), f(k3));
            for (i, y) in cj[..rows].iter_mut().enumerate() {
                let mut t = *y;
                t += f0 * c0[i];
                t += f1 * c1[i];
                t += f2 * c2[i];
                t += f3 * c3[i];
                *y = t;
            }
            q += 4;
        }
        for &k in &ks[q..] {
            let rows = hi[k] - j;
            let f0 = f(k);
            cj[..rows].iter_mut().zip(&col(k)[..rows]).for_each(|(y, x)| *y += f0 * x);
        }
        let diag = cj[0];
        // nalgebra: zero -> None; `try_sqrt`: `>= 0` -> Some(sqrt), else (negative, NaN) None
        if diag == 0.0 || diag.is_nan() || diag < 0.0 {
            return None;
        }
        let denom = diag.sqrt();
        cj[0] = denom;
        cj[1..].iter_mut().for_each(|x| *x /= denom);
        if skip_zeros {
            hi[j] = j + 1 + cj[1..].iter().rposition(|&x| x != 0.0).map_or(0, |p| p + 1);
        }
    }
    let l = a.as_slice();
    let mut b = v.clone();
    let bs = b.as_mut_slice();
    // L z = v: b_i /= L_ii, then b_k += (-b_i) L_ki below (nalgebra's axpy with beta 1)
    for i in 0..n {
        let coeff = bs[i] / l[i * n + i];
        bs[i] = coeff;
        let f = -coeff;
        for k in i + 1..n {
            bs[k] += f * l[i * n + k];
        }
    }
    // L^T y = z: b_i = (b_i - L[i+1.., i] . b[i+1..]) / L_ii, the dot as nalgebra sums it
    for i in (0..n).rev() {
        let len = n - i - 1;
        let dot = dot_in(&l[i * n + i + 1..(i + 1) * n], &bs[i + 1..], 0, len);
        bs[i] = (bs[i] - dot) / l[i * n + i];
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// A random matrix with zero blocks (and some exact zeros, negative zeros and tiny
    /// entries inside the non-zero blocks).
    fn blocky(m: usize, n: usize, rng: &mut StdRng) -> DMatrix<f64> {
        DMatrix::from_fn(m, n, |i, j| {
            let band = (i * 3 / m.max(1)) as i64 - (j * 3 / n.max(1)) as i64;
            if band.abs() > 0 && (i + j) % 5 != 0 {
                return if (i + j) % 2 == 0 { 0.0 } else { -0.0 };
            }
            match rng.random_range(0..10) {
                0 => 0.0,
                1 => -0.0,
                2 => 1e-160 * rng.random_range(-1.0..1.0),
                _ => rng.random_range(-1.0..1.0),
            }
        })
    }

    fn same_bits(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn gram_and_tr_mul_match_nalgebra_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(5);
        for (m, n) in [(1, 1), (7, 3), (8, 8), (13, 9), (40, 17), (61, 30), (100, 64)] {
            for dense in [false, true] {
                let a = if dense {
                    DMatrix::from_fn(m, n, |_, _| rng.random_range(-1.0..1.0))
                } else {
                    blocky(m, n, &mut rng)
                };
                assert!(same_bits(gram(&a).as_slice(), a.tr_mul(&a).as_slice()), "gram {m} x {n} dense {dense}");
                // the plain build (the AVX2 one runs above where the CPU has it)
                assert!(same_bits(gram_body(&a).as_slice(), a.tr_mul(&a).as_slice()), "plain gram {m} x {n}");
                let r = DVector::from_fn(m, |i, _| if i % 4 == 0 { -0.0 } else { rng.random_range(-1.0..1.0) });
                let ours = tr_mul_vec(&a, &column_ranges(&a), &r);
                assert!(same_bits(ours.as_slice(), a.tr_mul(&r).as_slice()), "A^T r {m} x {n} dense {dense}");
            }
        }
    }

    #[test]
    fn cholesky_solve_matches_nalgebra_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(9);
        for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 40, 67, 130] {
            for trial in 0..4 {
                let b = DMatrix::from_fn(n + 3, n, |_, _| match rng.random_range(0..8) {
                    0 => 0.0,
                    _ => rng.random_range(-1.0..1.0),
                });
                let mut a = b.tr_mul(&b);
                if trial == 2 {
                    // block tridiagonal (zero blocks far from the diagonal), as a stacked system
                    let w = (n / 3).max(1);
                    for i in 0..n {
                        for k in 0..n {
                            if i / w > k / w + 1 || k / w > i / w + 1 {
                                a[(i, k)] = 0.0;
                            }
                        }
                        a[(i, i)] += n as f64;
                    }
                }
                if trial == 1 {
                    // a curvature term as in the implicit-differentiation systems
                    for i in 0..n {
                        a[(i, i)] += 0.3;
                    }
                }
                let v = DVector::from_fn(n, |i, _| if i % 5 == 0 { 0.0 } else { rng.random_range(-1.0..1.0) });
                if trial == 3 {
                    // negative zeros in the matrix: no skipping
                    for i in 0..n {
                        for k in 0..n {
                            if (i + 2 * k) % 7 == 3 && i != k {
                                a[(i, k)] = -0.0;
                                a[(k, i)] = -0.0;
                            }
                        }
                        a[(i, i)] += n as f64;
                    }
                }
                let plain = cholesky_solve_body(a.clone(), &v);
                let ours = cholesky_solve(a.clone(), &v);
                assert_eq!(
                    plain.as_ref().map(|p| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                    ours.as_ref().map(|p| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                    "plain vs dispatched, n {n} trial {trial}"
                );
                let theirs = a.clone().cholesky().map(|c| c.solve(&v));
                match (ours, theirs) {
                    (Some(o), Some(t)) => assert!(same_bits(o.as_slice(), t.as_slice()), "n {n} trial {trial}"),
                    (o, t) => assert_eq!(o.is_some(), t.is_some(), "n {n} trial {trial}"),
                }
            }
        }
        // not positive definite: both fail
        let a = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(cholesky_solve(a.clone(), &DVector::from_element(2, 1.0)).is_none() && a.cholesky().is_none());
        let z = DMatrix::<f64>::zeros(3, 3);
        assert!(cholesky_solve(z.clone(), &DVector::from_element(3, 1.0)).is_none() && z.cholesky().is_none());
    }

    #[test]
    fn column_ranges_bound_the_non_zeros() {
        let a = DMatrix::from_column_slice(4, 3, &[0.0, 1.0, -0.0, 2.0, 0.0, 0.0, 0.0, 0.0, -0.0, 3.0, 0.0, 0.0]);
        assert_eq!(column_ranges(&a), vec![(1, 4), (0, 0), (1, 2)]);
    }
}
