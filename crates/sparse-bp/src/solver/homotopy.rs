//! Exact homotopy (LARS-lasso) for the plain, weighted and non-negative lasso
//! (Osborne, Presnell & Turlach 2000; Efron, Hastie, Johnstone & Tibshirani 2004).
//!
//! Per signal, with `b = D^T x`, per-atom thresholds `t_i` (`lambda` or `lambda w_i`) and
//! the scaled problem `min 1/2 ||x - D z||^2 + s sum_i t_i |z_i|`, the minimiser `z(s)` is
//! piecewise linear in `s`. The path starts at `s_max = max_i |b_i| / t_i` (where
//! `z = 0`) and goes down to `s = 1`. With `c = b - G z` (the correlations) the
//! optimality conditions are `c_A = s t_A sign(z_A)` on the active set `A` and
//! `|c_j| <= s t_j` off it (`c_j <= s t_j` for the non-negative lasso). Decreasing `s` by
//! `delta` moves `z_A` by `delta u`, `u = G_AA^{-1} (t_A sign(z_A))`, and `c` by
//! `-delta a`, `a = G_{:,A} u`, until the next event: an inactive atom reaches the
//! boundary (enters), an active coefficient reaches zero (leaves), or `s = 1`.
//!
//! The Cholesky factor of `G_AA` is kept up to date: a new atom appends one row (one
//! triangular solve), a leaving atom deletes one row and re-triangularises the trailing
//! block with Givens rotations. One step costs `O(M k + k^2)` for `k` active atoms.
//!
//! At `s = 1` the code is recomputed in closed form on the final signed support and its
//! relative duality gap is checked. When it misses the tolerance (ties, a rank-deficient
//! active Gram block such as duplicated atoms, more than `max(8 M, 64)` events), the
//! signal is finished by coordinate descent warm-started from the homotopy code, so the
//! solver's stopping rule is always the one that decides convergence.

use super::{ChunkOut, Solver, StoppingRule};
use nalgebra::DMatrix;

/// Smallest accepted squared pivot of a new Cholesky row, relative to `G_jj`.
const PIVOT_TOL: f64 = 1e-10;

/// Per-chunk workspace; nothing is allocated per path step.
struct Work {
    /// Row stride of `l` (largest possible active set: `min(m, M)`).
    stride: usize,
    /// Row-major lower-triangular Cholesky factor of `G_AA` (`stride x stride`).
    l: Vec<f64>,
    /// Active atoms, in factor order.
    active: Vec<usize>,
    /// `sign(z_a)` per active slot.
    sign: Vec<f64>,
    /// Correlations `c = b - G z` per atom.
    c: Vec<f64>,
    /// `G_{:,A} u` per atom.
    a: Vec<f64>,
    /// Direction on the active set.
    u: Vec<f64>,
    /// Solve buffer.
    y: Vec<f64>,
    /// `L^{-1} (t_A sign_A)`, kept up to date through adds and removals, so that one path
    /// step needs only the backward solve.
    yf: Vec<f64>,
    /// `1 / L_ii` per slot.
    dinv: Vec<f64>,
    /// Entry step per atom (event search buffer).
    ev: Vec<f64>,
    /// The CPU has AVX2 (use the AVX2 build of the path).
    avx2: bool,
}

impl Work {
    /// Workspace for at most `max_active` active atoms (`min(m, M)` for the real solver).
    fn new(max_active: usize, big_m: usize) -> Self {
        let stride = max_active.min(big_m).max(1);
        Self {
            stride,
            l: vec![0.0; stride * stride],
            active: Vec::with_capacity(stride),
            sign: Vec::with_capacity(stride),
            c: vec![0.0; big_m],
            a: vec![0.0; big_m],
            u: vec![0.0; stride],
            y: vec![0.0; stride],
            yf: vec![0.0; stride],
            dinv: vec![0.0; stride],
            ev: vec![0.0; big_m],
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            avx2: false,
        }
    }

    /// Solve `L L^T u = rhs` for the current `k x k` factor; `rhs` is read from `u`.
    /// Forward: dot products along the rows of `L`; backward: `L^T u = y` column by
    /// column as axpys over the rows of `L` (contiguous, no dependency chain).
    #[inline(always)]
    fn chol_solve_in_place(&mut self, k: usize) {
        let s = self.stride;
        let (l, u, y, dinv) = (&self.l, &mut self.u, &mut self.y, &self.dinv);
        for i in 0..k {
            let acc = dot(&l[i * s..i * s + i], &y[..i]);
            y[i] = (u[i] - acc) * dinv[i];
        }
        for i in (0..k).rev() {
            let ui = y[i] * dinv[i];
            u[i] = ui;
            y[..i].iter_mut().zip(&l[i * s..i * s + i]).for_each(|(yj, lij)| *yj -= lij * ui);
        }
    }

    /// `u = L^{-T} yf` (the path direction `G_AA^{-1} t_A sign_A`), backward substitution as
    /// axpys over the rows of `L`.
    #[inline(always)]
    fn direction(&mut self, k: usize) {
        let s = self.stride;
        let (l, u, y, dinv) = (&self.l, &mut self.u, &mut self.y, &self.dinv);
        y[..k].copy_from_slice(&self.yf[..k]);
        for i in (0..k).rev() {
            let ui = y[i] * dinv[i];
            u[i] = ui;
            y[..i].iter_mut().zip(&l[i * s..i * s + i]).for_each(|(yj, lij)| *yj -= lij * ui);
        }
    }

    /// Append atom `j` to the factor. `false` if the new pivot is too small (the atom is
    /// numerically in the span of the active atoms) or the factor is full.
    #[inline(always)]
    fn chol_add(&mut self, gram: &[f64], big_m: usize, j: usize) -> bool {
        let k = self.active.len();
        if k >= self.stride {
            return false;
        }
        let s = self.stride;
        let gcol = &gram[j * big_m..(j + 1) * big_m];
        // forward solve L l = G_{A, j} into row k
        let (head, tail) = self.l.split_at_mut(k * s);
        let row = &mut tail[..k];
        for i in 0..k {
            let acc = gcol[self.active[i]] - dot(&head[i * s..i * s + i], &row[..i]);
            row[i] = acc * self.dinv[i];
        }
        let sq = dot(row, row);
        let gjj = gcol[j];
        let d2 = gjj - sq;
        // also rejects a NaN pivot
        if d2.is_nan() || d2 <= PIVOT_TOL * gjj {
            return false;
        }
        let dk = d2.sqrt();
        self.l[k * s + k] = dk;
        self.dinv[k] = 1.0 / dk;
        true
    }

    /// After [`Work::chol_add`] put slot `k`: extend `yf` by the new right-hand side entry `r`.
    #[inline(always)]
    fn extend_forward(&mut self, k: usize, r: f64) {
        let s = self.stride;
        self.yf[k] = (r - dot(&self.l[k * s..k * s + k], &self.yf[..k])) * self.dinv[k];
    }

    /// Delete slot `p` (row and column) from the `k x k` factor; `yf` follows (the same
    /// rotations, then its last entry is dropped).
    #[inline(always)]
    fn chol_remove(&mut self, k: usize, p: usize) {
        let s = self.stride;
        let l = &mut self.l;
        for i in p + 1..k {
            for j in 0..=i {
                l[(i - 1) * s + j] = l[i * s + j];
            }
        }
        // rows p..k-1 now carry one entry above the diagonal: rotate it away
        for i in p..k - 1 {
            let x = l[i * s + i];
            let y = l[i * s + i + 1];
            let r = x.hypot(y);
            if r == 0.0 {
                continue;
            }
            let (cs, sn) = (x / r, y / r);
            let (ya, yb) = (self.yf[i], self.yf[i + 1]);
            self.yf[i] = cs * ya + sn * yb;
            self.yf[i + 1] = -sn * ya + cs * yb;
            for ii in i..k - 1 {
                let a = l[ii * s + i];
                let b = l[ii * s + i + 1];
                l[ii * s + i] = cs * a + sn * b;
                l[ii * s + i + 1] = -sn * a + cs * b;
            }
        }
        for i in p..k - 1 {
            self.dinv[i] = 1.0 / l[i * s + i];
        }
    }
}

/// Dot product with four independent accumulators (no loop-carried latency chain).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let rest: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}

/// `out = G_{:, active} u`, eight (then four, then one) Gram columns per pass over `out`.
#[inline(always)]
fn gram_combination(gram: &[f64], big_m: usize, active: &[usize], u: &[f64], out: &mut [f64]) {
    let col = |a: usize| &gram[a * big_m..(a + 1) * big_m];
    out.iter_mut().for_each(|v| *v = 0.0);
    let mut ia = active.chunks_exact(8);
    let mut iu = u.chunks_exact(8);
    for (a8, u8) in (&mut ia).zip(&mut iu) {
        let n = out.len();
        let g: [&[f64]; 8] = std::array::from_fn(|i| &col(a8[i])[..n]);
        for (r, o) in out.iter_mut().enumerate() {
            let lo = (g[0][r] * u8[0] + g[1][r] * u8[1]) + (g[2][r] * u8[2] + g[3][r] * u8[3]);
            let hi = (g[4][r] * u8[4] + g[5][r] * u8[5]) + (g[6][r] * u8[6] + g[7][r] * u8[7]);
            *o += lo + hi;
        }
    }
    let mut ia = ia.remainder().chunks_exact(4);
    let mut iu = iu.remainder().chunks_exact(4);
    for (a4, u4) in (&mut ia).zip(&mut iu) {
        let (g0, g1, g2, g3) = (col(a4[0]), col(a4[1]), col(a4[2]), col(a4[3]));
        let (u0, u1, u2, u3) = (u4[0], u4[1], u4[2], u4[3]);
        for ((((o, x0), x1), x2), x3) in out.iter_mut().zip(g0).zip(g1).zip(g2).zip(g3) {
            *o += (x0 * u0 + x1 * u1) + (x2 * u2 + x3 * u3);
        }
    }
    for (&a, &ui) in ia.remainder().iter().zip(iu.remainder()) {
        out.iter_mut().zip(col(a)).for_each(|(o, g)| *o += g * ui);
    }
}

/// Smallest entry of `v` (`+inf` for an empty slice); four lanes, no NaN in `v`.
#[inline(always)]
fn min_value(v: &[f64]) -> f64 {
    let mut acc = [f64::INFINITY; 4];
    let mut ch = v.chunks_exact(4);
    for x in &mut ch {
        for l in 0..4 {
            acc[l] = if x[l] < acc[l] { x[l] } else { acc[l] };
        }
    }
    let mut m = acc[0].min(acc[1]).min(acc[2].min(acc[3]));
    for &x in ch.remainder() {
        if x < m {
            m = x;
        }
    }
    m
}

enum Event {
    Target,
    Drop(usize),
    Add(usize, f64),
}

impl Solver {
    /// Homotopy on one chunk (`b = D^T X_chunk`). Non-lasso groups: coordinate descent.
    pub(super) fn homotopy_chunk(&self, b: &DMatrix<f64>, xx: &[f64]) -> ChunkOut {
        self.homotopy_chunk_with(b, xx, self.d.nrows())
    }

    /// [`Solver::homotopy_chunk`] with at most `max_active` atoms in the factor (the path
    /// is abandoned when one more would enter); tests use a small value to force the
    /// coordinate-descent fallback.
    fn homotopy_chunk_with(&self, b: &DMatrix<f64>, xx: &[f64], max_active: usize) -> ChunkOut {
        let Some(t) = self.groups.singleton_thresholds() else {
            return self.cd_chunk(b, xx, None);
        };
        let (big_m, c) = b.shape();
        let mut out = ChunkOut::new(big_m, c, self.params.max_iter);
        let mut w = Work::new(max_active, big_m);
        let mut z = vec![0.0; big_m];
        let mut grad = vec![0.0; big_m];
        let mut v = vec![0.0; big_m];
        let mut scratch = Vec::new();
        let mut zg = Vec::new();
        let rows = super::kernels::column_ranges(&self.gram);
        for (j, &xxj) in xx.iter().enumerate().take(c) {
            let bs = b.column(j);
            let bs = bs.as_slice();
            let (steps, reached) = self.homotopy_path(bs, t, &mut z, &mut w);
            let mut gap = f64::INFINITY;
            if reached {
                // v = b - G z, exactly, for the gap
                v.copy_from_slice(bs);
                let gram = self.gram.as_slice();
                for &a in &w.active {
                    let za = z[a];
                    let col = &gram[a * big_m..(a + 1) * big_m];
                    v.iter_mut().zip(col).for_each(|(vi, g)| *vi -= g * za);
                }
                gap = self.gap_rel(&z, &v, bs, xxj, &mut scratch);
            }
            let (iters, gap, ok) = if reached && gap <= self.params.tol {
                (steps, gap, true)
            } else {
                let (it, g2, ok) = if self.params.stopping == StoppingRule::DualityGap {
                    self.cd_lasso_column(bs, xxj, &mut z, t, &rows, &mut grad, &mut v, &mut scratch)
                } else {
                    self.cd_column(bs, xxj, &mut z, &rows, &mut grad, &mut v, &mut zg, &mut scratch)
                };
                (steps + it, g2, ok)
            };
            out.codes.column_mut(j).copy_from_slice(&z);
            out.iterations[j] = iters;
            out.gaps[j] = gap;
            out.converged[j] = ok;
        }
        out
    }

    /// Follow the path for one signal. Leaves the code in `z` (length `M`) and its support
    /// in `w.active`. Returns `(events, reached)`: `reached = false` means the path was
    /// abandoned (rank-deficient active block or too many events); `z` is then the exact
    /// path point at the last `s > 1`, a good warm start.
    fn homotopy_path(&self, b: &[f64], t: &[f64], z: &mut [f64], w: &mut Work) -> (usize, bool) {
        #[cfg(target_arch = "x86_64")]
        {
            if w.avx2 {
                // SAFETY: `w.avx2` is true only if the running CPU reported AVX2 support
                // (`Work::new`), which is all `homotopy_path_avx2` requires.
                return unsafe { self.homotopy_path_avx2(b, t, z, w) };
            }
        }
        self.homotopy_path_body(b, t, z, w)
    }

    /// The same path compiled with AVX2 enabled (4-wide f64 vectors in the Gram
    /// combinations, dot products and solves). No FMA contraction and no reordering of
    /// floating-point operations, so the result is bit-for-bit that of the generic build.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn homotopy_path_avx2(&self, b: &[f64], t: &[f64], z: &mut [f64], w: &mut Work) -> (usize, bool) {
        self.homotopy_path_body(b, t, z, w)
    }

    #[inline(always)]
    fn homotopy_path_body(&self, b: &[f64], t: &[f64], z: &mut [f64], w: &mut Work) -> (usize, bool) {
        let big_m = b.len();
        let gram = self.gram.as_slice();
        let nonneg = self.groups.nonneg();
        z.iter_mut().for_each(|v| *v = 0.0);
        w.active.clear();
        w.sign.clear();
        w.c.copy_from_slice(b);
        // s_max and the first atom
        let mut s = 0.0;
        let mut first = None;
        for (i, (&ci, &ti)) in w.c.iter().zip(t).enumerate() {
            let r = if nonneg { ci.max(0.0) } else { ci.abs() } / ti;
            if r > s {
                s = r;
                first = Some(i);
            }
        }
        let Some(j0) = first else { return (0, true) };
        if s <= 1.0 {
            return (0, true);
        }
        if !w.chol_add(gram, big_m, j0) {
            return (0, false);
        }
        let sg0 = w.c[j0].signum();
        w.extend_forward(0, t[j0] * sg0);
        w.active.push(j0);
        w.sign.push(sg0);
        let max_events = (8 * big_m).max(64);
        let mut just_dropped = usize::MAX;
        for step in 1..=max_events {
            let k = w.active.len();
            // u = G_AA^{-1} (t_A sign_A), a = G_{:,A} u
            w.direction(k);
            gram_combination(gram, big_m, &w.active, &w.u[..k], &mut w.a);
            // next event
            let mut delta = s - 1.0;
            let mut event = Event::Target;
            for i in 0..k {
                let zi = z[w.active[i]];
                let ui = w.u[i];
                if zi * ui < 0.0 {
                    let d = -zi / ui;
                    if d < delta {
                        delta = d;
                        event = Event::Drop(i);
                    }
                }
            }
            // entries: the step at which each inactive atom reaches the boundary
            // c_j - d a_j = +-(s - d) t_j, computed branch-free (vectorises), then one argmin
            let inf = f64::INFINITY;
            if nonneg {
                for (((e, &cj), &aj), &tj) in w.ev.iter_mut().zip(&w.c).zip(&w.a).zip(t) {
                    let den = tj - aj;
                    let d = (s * tj - cj).max(0.0) / den;
                    *e = if den > 0.0 { d } else { inf };
                }
            } else {
                for (((e, &cj), &aj), &tj) in w.ev.iter_mut().zip(&w.c).zip(&w.a).zip(t) {
                    let (dp, dm) = (tj - aj, tj + aj);
                    let st = s * tj;
                    let xp = (st - cj).max(0.0) / dp;
                    let xm = (st + cj).max(0.0) / dm;
                    let xp = if dp > 0.0 { xp } else { inf };
                    let xm = if dm > 0.0 { xm } else { inf };
                    *e = if xm < xp { xm } else { xp };
                }
            }
            for &a in &w.active {
                w.ev[a] = inf;
            }
            if just_dropped != usize::MAX {
                w.ev[just_dropped] = inf;
            }
            // first index of the smallest entry step (two vectorisable passes)
            let emin = min_value(&w.ev);
            if emin < delta {
                let enter = w.ev.iter().position(|&e| e == emin).unwrap_or(0);
                delta = emin;
                let (cj, aj, tj) = (w.c[enter], w.a[enter], t[enter]);
                // the same comparison as above decides the sign
                let (dp, dm) = (tj - aj, tj + aj);
                let xp = if dp > 0.0 { (s * tj - cj).max(0.0) / dp } else { inf };
                let xm = if !nonneg && dm > 0.0 { (s * tj + cj).max(0.0) / dm } else { inf };
                event = Event::Add(enter, if xm < xp { -1.0 } else { 1.0 });
            }
            // move along the segment
            for i in 0..k {
                z[w.active[i]] += delta * w.u[i];
            }
            w.c.iter_mut().zip(&w.a).for_each(|(c, a)| *c -= delta * a);
            s -= delta;
            just_dropped = usize::MAX;
            match event {
                Event::Target => {
                    self.homotopy_finish(b, t, z, w);
                    return (step, true);
                }
                Event::Drop(p) => {
                    let a = w.active[p];
                    z[a] = 0.0;
                    w.chol_remove(k, p);
                    w.active.remove(p);
                    w.sign.remove(p);
                    just_dropped = a;
                }
                Event::Add(jj, sg) => {
                    if !w.chol_add(gram, big_m, jj) {
                        return (step, false);
                    }
                    w.extend_forward(k, t[jj] * sg);
                    w.active.push(jj);
                    w.sign.push(sg);
                }
            }
        }
        (max_events, false)
    }

    /// At `s = 1`: recompute the active coefficients in closed form,
    /// `z_A = G_AA^{-1} (b_A - t_A sign_A)`, to remove the drift of the incremental updates.
    /// Kept only if every sign is preserved.
    #[inline(always)]
    fn homotopy_finish(&self, b: &[f64], t: &[f64], z: &mut [f64], w: &mut Work) {
        let k = w.active.len();
        for i in 0..k {
            let a = w.active[i];
            w.u[i] = b[a] - t[a] * w.sign[i];
        }
        w.chol_solve_in_place(k);
        if (0..k).all(|i| w.u[i] * w.sign[i] > 0.0) {
            for i in 0..k {
                z[w.active[i]] = w.u[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::GroupSpec;
    use crate::solver::{Algorithm, SolverParams};
    use crate::synthetic::gaussian_dictionary;
    use rand::{SeedableRng, rngs::StdRng};

    fn instance(seed: u64, m: usize, big_m: usize, n: usize, frac: f64) -> (Solver, DMatrix<f64>, DMatrix<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = gaussian_dictionary(m, big_m, &mut rng);
        let x = gaussian_dictionary(m, n, &mut rng) * 3.0;
        let b = d.tr_mul(&x);
        let lmax = b.amax();
        let p = SolverParams::builder().algorithm(Algorithm::Homotopy).tol(1e-12).build().unwrap();
        let s = Solver::new(d, GroupSpec::lasso(big_m, frac * lmax).unwrap(), p).unwrap();
        (s, x, b)
    }

    /// The generic and the AVX2 builds of the path give bit-identical codes.
    #[test]
    fn avx2_and_generic_paths_are_bit_identical() {
        let (s, _, b) = instance(1, 30, 90, 8, 0.05);
        let t = s.groups.singleton_thresholds().unwrap().to_vec();
        for j in 0..b.ncols() {
            let bs = b.column(j).into_owned();
            let mut w1 = Work::new(30, 90);
            let mut w2 = Work::new(30, 90);
            let (mut z1, mut z2) = (vec![0.0; 90], vec![0.0; 90]);
            let r1 = s.homotopy_path_body(bs.as_slice(), &t, &mut z1, &mut w1);
            let r2 = s.homotopy_path(bs.as_slice(), &t, &mut z2, &mut w2);
            assert_eq!(r1, r2);
            assert_eq!(z1, z2);
        }
    }

    /// On instances whose path has drop events, the path itself (no fallback) reaches
    /// the exact minimiser: relative gap at rounding level.
    #[test]
    fn path_with_drops_is_exact() {
        let mut drops_seen = 0;
        for seed in 0..20 {
            let (s, x, b) = instance(100 + seed, 20, 60, 4, 0.01);
            let t = s.groups.singleton_thresholds().unwrap().to_vec();
            for j in 0..b.ncols() {
                let bs = b.column(j).into_owned();
                let mut w = Work::new(20, 60);
                let mut z = vec![0.0; 60];
                let (steps, reached) = s.homotopy_path(bs.as_slice(), &t, &mut z, &mut w);
                assert!(reached);
                // steps = adds + drops + 1 (the final segment), |A| = adds - drops
                let k = w.active.len();
                drops_seen += (steps - 1 - k) / 2;
                let zv = nalgebra::DVector::from_vec(z);
                let xj = x.column(j).into_owned();
                let gap = s.duality_gap(&xj, &zv).unwrap() / (0.5 * xj.norm_squared());
                assert!(gap < 1e-12, "seed {seed} col {j}: gap {gap}");
            }
        }
        assert!(drops_seen > 0, "no instance exercised a drop event");
    }

    /// A factor limited to 3 atoms makes the path stop early; the coordinate-descent
    /// fallback then reaches the same minimiser as plain coordinate descent.
    #[test]
    fn fallback_after_abandoned_path_converges() {
        let (s, x, b) = instance(7, 20, 60, 6, 0.05);
        let xx: Vec<f64> = x.column_iter().map(|c| c.norm_squared()).collect();
        let out = s.homotopy_chunk_with(&b, &xx, 3);
        assert!(out.converged.iter().all(|&c| c));
        assert!(out.gaps.iter().all(|&g| g <= 1e-12));
        let cd = s
            .with_params(SolverParams::builder().algorithm(Algorithm::CoordinateDescent).tol(1e-12).build().unwrap())
            .unwrap()
            .solve(&x)
            .unwrap();
        assert!((&out.codes - &cd.codes).amax() < 1e-6);
        // more than 3 atoms are active, so the path really was abandoned
        assert!(out.codes.column_iter().any(|c| c.iter().filter(|v| **v != 0.0).count() > 3));
    }

    /// Deleting a middle row of the factor gives the factor of the reduced Gram block.
    #[test]
    fn cholesky_downdate_matches_refactorisation() {
        let mut rng = StdRng::seed_from_u64(3);
        let d = gaussian_dictionary(12, 8, &mut rng);
        let g = d.tr_mul(&d);
        let mut w = Work::new(12, 8);
        for j in 0..8 {
            assert!(w.chol_add(g.as_slice(), 8, j));
            w.active.push(j);
        }
        w.chol_remove(8, 3);
        w.active.remove(3);
        let keep = &w.active;
        let sub = DMatrix::from_fn(7, 7, |i, j| g[(keep[i], keep[j])]);
        let l = DMatrix::from_fn(7, 7, |i, j| if j <= i { w.l[i * w.stride + j] } else { 0.0 });
        assert!((&l * l.transpose() - &sub).amax() < 1e-12);
        assert!((0..7).all(|i| l[(i, i)] > 0.0 && (w.dinv[i] * l[(i, i)] - 1.0).abs() < 1e-14));
    }
}
