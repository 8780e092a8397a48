//! Differentiating the code with respect to the input (spec section 4, used by attacks).
//!
//! At a solution `z` of the group-BP problem with active atoms `S`, the optimality
//! condition restricted to `S` is `D_S^T (x - D_S z_S) = grad R(z_S)`. Differentiating
//! (support and signs locally constant) gives
//!
//! ```text
//! dz_S/dx = (D_S^T D_S + H)^{-1} D_S^T,    dz_{not S}/dx = 0,
//! ```
//!
//! with `H = 0` for l1 / weighted l1 and, for an l2 (or the l2 part of a sparse-group)
//! group `g` with weight `w_g` (`(1-beta) gamma_g` for sparse-group), the curvature block
//! `H_g = w_g / ||z_g|| (I - u_g u_g^T)`, `u_g = z_g/||z_g||`, on its active atoms.
//! [`vjp`] returns `(dz/dx)^T v` for a cotangent `v` on the code: `D_S (D_S^T D_S + H)^{-1} v_S`.
//! The formula is the derivative wherever the support is locally constant (strict
//! complementarity), which holds almost everywhere.
//!
//! [`unrolled_fista_jacobian`] is the independent check: forward-mode differentiation
//! through a fixed number of plain FISTA iterations.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::error::{Result, SparseBpError, check_finite};
use crate::groups::GroupNorm;
use crate::solver::Solver;

/// Active atoms and the matrix `D_S^T D_S + H` at the code `z`.
fn active_system(solver: &Solver, z: &[f64]) -> (Vec<usize>, DMatrix<f64>) {
    let groups = solver.groups();
    let mut support = Vec::new();
    // (position in support, block of H) for curvature groups
    let mut curv: Vec<(usize, Vec<f64>, f64)> = Vec::new();
    for g in groups.groups() {
        let act: Vec<usize> = g.atoms.iter().copied().filter(|&a| z[a] != 0.0).collect();
        if act.is_empty() {
            continue;
        }
        let start = support.len();
        support.extend(act.iter().copied());
        let w = match g.norm {
            GroupNorm::L2 => g.weight,
            GroupNorm::SparseGroup { beta } => (1.0 - beta) * g.weight,
            _ => 0.0,
        };
        if w > 0.0 {
            let vals: Vec<f64> = act.iter().map(|&a| z[a]).collect();
            curv.push((start, vals, w));
        }
    }
    let mut a = solver.gram_block(&support);
    for (start, vals, w) in curv {
        let n = vals.iter().map(|v| v * v).sum::<f64>().sqrt();
        let c = w / n;
        for i in 0..vals.len() {
            for j in 0..vals.len() {
                let id = if i == j { 1.0 } else { 0.0 };
                a[(start + i, start + j)] += c * (id - vals[i] * vals[j] / (n * n));
            }
        }
    }
    (support, a)
}

/// The typed error of a singular `D_S^T D_S + H` at the code `z` of `solver` (active atoms
/// `support`): what, how many atoms and groups are active, and the dictionary's shape.
fn singular(solver: &Solver, z: &[f64], support: &[usize]) -> SparseBpError {
    let d = solver.dictionary();
    let groups = solver.groups().groups().iter().filter(|g| g.atoms.iter().any(|&a| z[a] != 0.0)).count();
    SparseBpError::SingularImplicit {
        what: "D_S^T D_S + H",
        active: support.len(),
        groups,
        rows: d.nrows(),
        atoms: d.ncols(),
    }
}

/// `a^{-1} v` for the symmetric positive definite `a = D_S^T D_S + H` at the code `z` (active
/// atoms `support`), bit for bit nalgebra's `a.cholesky()?.solve(&v)`
/// ([`crate::solver::kernels::cholesky_solve`], faster); a failed factorisation (a zero,
/// negative or NaN pivot) or a non-finite solution is [`SparseBpError::SingularImplicit`],
/// never a NaN handed on.
fn solve_spd(solver: &Solver, z: &[f64], support: &[usize], a: DMatrix<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
    match crate::solver::kernels::cholesky_solve(a, v) {
        Some(y) if y.iter().all(|x| x.is_finite()) => Ok(y),
        _ => Err(singular(solver, z, support)),
    }
}

fn check_code(solver: &Solver, z: &DVector<f64>) -> Result<()> {
    let m = solver.dictionary().ncols();
    if z.len() != m {
        return Err(SparseBpError::ShapeMismatch { what: "code", expected: (m, 1), got: (z.len(), 1) });
    }
    check_finite("code", z.as_slice())
}

/// Vector–Jacobian product `(dz/dx)^T v` at the solution `z` (length `M`), for a cotangent
/// `v` (length `M`); returns a vector of length `m`.
///
/// ```
/// use nalgebra::{DMatrix, DVector};
/// use sparse_bp::{GroupSpec, Solver, SolverParams, implicit::vjp};
/// let d = DMatrix::<f64>::identity(2, 2);
/// let s = Solver::new(d, GroupSpec::lasso(2, 0.5).unwrap(), SolverParams::default()).unwrap();
/// let x = DVector::from_vec(vec![2.0, 0.1]);
/// let z = s.solve_vector(&x).unwrap().codes.column(0).into_owned();
/// // z = soft(x): dz0/dx0 = 1, atom 1 inactive
/// let g = vjp(&s, &z, &DVector::from_vec(vec![1.0, 1.0])).unwrap();
/// assert!((g[0] - 1.0).abs() < 1e-12 && g[1] == 0.0);
/// ```
pub fn vjp(solver: &Solver, z: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
    check_code(solver, z)?;
    check_code(solver, v)?;
    let d = solver.dictionary();
    let (support, a) = active_system(solver, z.as_slice());
    if support.is_empty() {
        return Ok(DVector::zeros(d.nrows()));
    }
    let vs = DVector::from_fn(support.len(), |i, _| v[support[i]]);
    let y = solve_spd(solver, z.as_slice(), &support, a, &vs)?;
    Ok(d.select_columns(&support) * y)
}

/// [`vjp`] for every column of `codes` / `cotangents` (`M x n`), in parallel; `m x n` result.
pub fn vjp_batch(solver: &Solver, codes: &DMatrix<f64>, cotangents: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    let m_atoms = solver.dictionary().ncols();
    if codes.nrows() != m_atoms || cotangents.shape() != codes.shape() {
        return Err(SparseBpError::ShapeMismatch {
            what: "codes / cotangents",
            expected: (m_atoms, codes.ncols()),
            got: cotangents.shape(),
        });
    }
    let cols: Vec<Result<DVector<f64>>> = (0..codes.ncols())
        .into_par_iter()
        .map(|j| vjp(solver, &codes.column(j).into_owned(), &cotangents.column(j).into_owned()))
        .collect();
    let mut out = DMatrix::zeros(solver.dictionary().nrows(), codes.ncols());
    for (j, c) in cols.into_iter().enumerate() {
        out.set_column(j, &c?);
    }
    Ok(out)
}

/// The adjoint solve shared by the vector–Jacobian products: the active atoms `S` of the
/// solution `z` and `y = (D_S^T D_S + H)^{-1} v_S` for the cotangent `v`, or `None` when
/// no atom is active. The input cotangent is `D_S y` and the dictionary cotangent
/// `r y^T - (D_S y) z_S^T` on `S` (see [`vjp_full`]); training accumulates these itself to
/// avoid a dense `m x M` matrix per sample.
pub(crate) fn adjoint(
    solver: &Solver,
    z: &DVector<f64>,
    v: &DVector<f64>,
) -> Result<Option<(Vec<usize>, DVector<f64>)>> {
    check_code(solver, z)?;
    check_code(solver, v)?;
    let (support, a) = active_system(solver, z.as_slice());
    if support.is_empty() {
        return Ok(None);
    }
    let vs = DVector::from_fn(support.len(), |i, _| v[support[i]]);
    let y = solve_spd(solver, z.as_slice(), &support, a, &vs)?;
    Ok(Some((support, y)))
}

/// Full Jacobian `dz/dx` (`M x m`) at the solution `z`.
pub fn jacobian(solver: &Solver, z: &DVector<f64>) -> Result<DMatrix<f64>> {
    check_code(solver, z)?;
    let d = solver.dictionary();
    let (support, a) = active_system(solver, z.as_slice());
    let mut j = DMatrix::zeros(d.ncols(), d.nrows());
    if support.is_empty() {
        return Ok(j);
    }
    let chol = a.cholesky().ok_or_else(|| singular(solver, z.as_slice(), &support))?;
    let js = chol.solve(&d.select_columns(&support).transpose());
    if js.iter().any(|x| !x.is_finite()) {
        return Err(singular(solver, z.as_slice(), &support));
    }
    for (k, &s) in support.iter().enumerate() {
        j.row_mut(s).copy_from(&js.row(k));
    }
    Ok(j)
}

/// Jacobian of the group prox `v -> prox_{t l}(v)` (with non-negativity) at `v`.
fn prox_jacobian(norm: &GroupNorm, v: &[f64], t: f64, nonneg: bool) -> DMatrix<f64> {
    let n = v.len();
    let soft_gate = |x: f64, th: f64| -> f64 {
        if nonneg {
            if x > th { 1.0 } else { 0.0 }
        } else if x.abs() > th {
            1.0
        } else {
            0.0
        }
    };
    let block = |u: &[f64], th: f64| -> DMatrix<f64> {
        let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if nu <= th {
            return DMatrix::zeros(u.len(), u.len());
        }
        DMatrix::from_fn(u.len(), u.len(), |i, j| {
            let id = if i == j { 1.0 - th / nu } else { 0.0 };
            id + th * u[i] * u[j] / (nu * nu * nu)
        })
    };
    match norm {
        GroupNorm::L1 => DMatrix::from_diagonal(&DVector::from_fn(n, |i, _| soft_gate(v[i], t))),
        GroupNorm::WeightedL1(w) => DMatrix::from_diagonal(&DVector::from_fn(n, |i, _| soft_gate(v[i], t * w[i]))),
        GroupNorm::L2 => {
            let u: Vec<f64> = v.iter().map(|&x| if nonneg { x.max(0.0) } else { x }).collect();
            let gate =
                DMatrix::from_diagonal(&DVector::from_fn(n, |i, _| if nonneg && v[i] <= 0.0 { 0.0 } else { 1.0 }));
            block(&u, t) * gate
        }
        GroupNorm::SparseGroup { beta } => {
            let mut u = v.to_vec();
            crate::prox::soft_threshold_mut(&mut u, beta * t, nonneg);
            let gate = DMatrix::from_diagonal(&DVector::from_fn(n, |i, _| soft_gate(v[i], beta * t)));
            block(&u, (1.0 - beta) * t) * gate
        }
    }
}

/// Forward-mode differentiation through `n_iter` plain FISTA iterations (no restart) from
/// `z = 0`: returns the iterate and its Jacobian `dz/dx` (`M x m`).
pub fn unrolled_fista_jacobian(
    solver: &Solver,
    x: &DVector<f64>,
    n_iter: usize,
) -> Result<(DVector<f64>, DMatrix<f64>)> {
    let d = solver.dictionary();
    if x.len() != d.nrows() {
        return Err(SparseBpError::ShapeMismatch { what: "signal", expected: (d.nrows(), 1), got: (x.len(), 1) });
    }
    check_finite("signal", x.as_slice())?;
    let (m, big_m) = d.shape();
    let gram = solver.gram_or_computed();
    let gram = gram.as_ref();
    let step = 1.0 / solver.lipschitz();
    let groups = solver.groups();
    let b = d.tr_mul(x);
    let dt = d.transpose() * step;
    let mut z = DVector::zeros(big_m);
    let mut y = DVector::zeros(big_m);
    let mut jz = DMatrix::zeros(big_m, m);
    let mut jy = DMatrix::zeros(big_m, m);
    let mut t: f64 = 1.0;
    let mut buf = Vec::new();
    for _ in 0..n_iter {
        let u = &y - (gram * &y - &b) * step;
        let ju = &jy - (gram * &jy) * step + &dt;
        let mut w = u.clone();
        let mut jw = DMatrix::zeros(big_m, m);
        for g in groups.groups() {
            crate::groups::gather(u.as_slice(), &g.atoms, &mut buf);
            let pj = prox_jacobian(&g.norm, &buf, step * g.weight, groups.nonneg());
            let mut vals = buf.clone();
            g.norm.prox_mut(&mut vals, step * g.weight, groups.nonneg());
            let rows = ju.select_rows(&g.atoms);
            let out = pj * rows;
            for (k, &a) in g.atoms.iter().enumerate() {
                w[a] = vals[k];
                jw.row_mut(a).copy_from(&out.row(k));
            }
        }
        let tn = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let beta = (t - 1.0) / tn;
        y = &w + (&w - &z) * beta;
        jy = &jw * (1.0 + beta) - &jz * beta;
        z = w;
        jz = jw;
        t = tn;
    }
    Ok((z, jz))
}

/// Cotangents of the input, the dictionary and the group weights (see [`vjp_full`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FullVjp {
    /// `(dz/dx)^T v`, length `m`.
    pub x: DVector<f64>,
    /// `dL/dD` (`m x M`, zero outside the active columns): `r y^T - (D_S y) z_S^T` on `S`.
    pub dictionary: DMatrix<f64>,
    /// `dL/dgamma_g` per group: `-<y_g, dl_g/dz_g>` (zero for inactive groups).
    pub weights: DVector<f64>,
}

/// Vector–Jacobian products of the code with respect to the input `x`, the dictionary
/// `D` and the group weights, at the solution `z` for `x`, for the cotangent `v`.
///
/// With `A = D_S^T D_S + H`, `y = A^{-1} v_S` and `r = x - D z`, differentiating the
/// optimality condition `D_S^T (x - D_S z_S) = grad R(z_S)` gives
/// `dL/dx = D_S y`, `dL/dD_S = r y^T - (D_S y) z_S^T`, and `dL/dgamma_g = -<y_g, grad l_g(z_g)>`.
/// Used for dictionary learning and threshold learning through the code.
pub fn vjp_full(solver: &Solver, x: &DVector<f64>, z: &DVector<f64>, v: &DVector<f64>) -> Result<FullVjp> {
    check_code(solver, z)?;
    check_code(solver, v)?;
    let d = solver.dictionary();
    if x.len() != d.nrows() {
        return Err(SparseBpError::ShapeMismatch { what: "signal", expected: (d.nrows(), 1), got: (x.len(), 1) });
    }
    check_finite("signal", x.as_slice())?;
    let groups = solver.groups();
    let (support, a) = active_system(solver, z.as_slice());
    let mut out = FullVjp {
        x: DVector::zeros(d.nrows()),
        dictionary: DMatrix::zeros(d.nrows(), d.ncols()),
        weights: DVector::zeros(groups.n_groups()),
    };
    if support.is_empty() {
        return Ok(out);
    }
    let vs = DVector::from_fn(support.len(), |i, _| v[support[i]]);
    let y = solve_spd(solver, z.as_slice(), &support, a, &vs)?;
    let ds = d.select_columns(&support);
    let dy = &ds * &y;
    let r = x - d * z;
    for (k, &s) in support.iter().enumerate() {
        let col = &r * y[k] - &dy * z[s];
        out.dictionary.set_column(s, &col);
    }
    // y indexed by atom
    let mut y_atom = vec![0.0; d.ncols()];
    for (k, &s) in support.iter().enumerate() {
        y_atom[s] = y[k];
    }
    for (gi, g) in groups.groups().iter().enumerate() {
        let act: Vec<usize> = g.atoms.iter().copied().filter(|&a| z[a] != 0.0).collect();
        if act.is_empty() {
            continue;
        }
        let norm2 = act.iter().map(|&a| z[a] * z[a]).sum::<f64>().sqrt();
        let mut acc = 0.0;
        for (k, &a) in g.atoms.iter().enumerate() {
            if z[a] == 0.0 {
                continue;
            }
            let sgn = z[a].signum();
            let grad_l = match &g.norm {
                GroupNorm::L1 => sgn,
                GroupNorm::WeightedL1(w) => w[k] * sgn,
                GroupNorm::L2 => z[a] / norm2,
                GroupNorm::SparseGroup { beta } => beta * sgn + (1.0 - beta) * z[a] / norm2,
            };
            acc += y_atom[a] * grad_l;
        }
        out.weights[gi] = -acc;
    }
    out.x = dy;
    Ok(out)
}
