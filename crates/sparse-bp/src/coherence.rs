//! Coherence measures of a dictionary (spec section 2).
//!
//! | quantity | definition |
//! | --- | --- |
//! | mutual coherence | `mu(D) = max_{i != j} |d_i^T d_j|` (unit-norm atoms) |
//! | Welch bound | `sqrt((M - m) / (m (M - 1)))`, a lower bound on `mu` for `M > m` |
//! | block coherence (Eldar–Kuppinger–Bölcskei) | `mu_B = max_{l != r} (1/b) ||D[l]^T D[r]||_2`, equal block size `b` |
//! | sub-coherence | `nu = max_l max_{i != j in l} |d_i^T d_j|` |
//! | group coherence (ours, unnormalised, any sizes) | `mu_G = max_{g != h} ||D_g^T D_h||_2` (`= b mu_B` for equal sizes) |
//! | intra-group deviation (ours) | `delta = max_g ||D_g^T D_g - I||_2` (`<= (b - 1) nu`) |
//! | exact recovery coefficient (Tropp 2004) | `ERC(S) = 1 - max_{i not in S} ||D_S^+ d_i||_1` |
//! | group ERC (ours) | `1 - max_{h not in S} sum_{g in S} ||(D_S^+ D_h)_g||_2` |

use nalgebra::DMatrix;

use crate::error::{Result, SparseBpError};
use crate::groups::GroupSpec;
use crate::solver::check_matrix;

/// Default tolerance on `| ||d_i|| - 1 |` for functions that need unit-norm atoms.
pub const UNIT_TOL: f64 = 1e-6;

/// Error unless every column of `d` has l2 norm within `tol` of 1 (and `d` is finite).
///
/// ```
/// use nalgebra::DMatrix;
/// let d = DMatrix::from_column_slice(2, 2, &[1.0, 0.0, 0.0, 2.0]);
/// assert!(sparse_bp::coherence::check_unit_atoms(&d, 1e-6).is_err());
/// ```
pub fn check_unit_atoms(d: &DMatrix<f64>, tol: f64) -> Result<()> {
    check_matrix("dictionary", d)?;
    for (atom, c) in d.column_iter().enumerate() {
        let norm = c.norm();
        if (norm - 1.0).abs() > tol {
            return Err(SparseBpError::NonUnitAtom { atom, norm, tol });
        }
    }
    Ok(())
}

/// Copy of `d` with every non-zero column scaled to unit l2 norm.
#[must_use]
pub fn normalize_columns(d: &DMatrix<f64>) -> DMatrix<f64> {
    let mut out = d.clone();
    for mut c in out.column_iter_mut() {
        let n = c.norm();
        if n > 0.0 {
            c /= n;
        }
    }
    out
}

/// Mutual coherence `max_{i != j} |d_i^T d_j|` of a unit-norm dictionary.
///
/// ```
/// use nalgebra::DMatrix;
/// let s = 0.5f64.sqrt();
/// let d = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, s, s]);
/// let mu = sparse_bp::coherence::mutual_coherence(&d).unwrap();
/// assert!((mu - s).abs() < 1e-12);
/// ```
pub fn mutual_coherence(d: &DMatrix<f64>) -> Result<f64> {
    check_unit_atoms(d, UNIT_TOL)?;
    let g = d.tr_mul(d);
    let mut mu: f64 = 0.0;
    for j in 0..g.ncols() {
        for i in 0..j {
            mu = mu.max(g[(i, j)].abs());
        }
    }
    Ok(mu)
}

/// Welch bound `sqrt((M - m) / (m (M - 1)))` (0 if `M <= m`).
///
/// ```
/// let w = sparse_bp::coherence::welch_bound(100, 300);
/// assert!((w - (200.0f64 / (100.0 * 299.0)).sqrt()).abs() < 1e-15);
/// ```
#[must_use]
pub fn welch_bound(m: usize, big_m: usize) -> f64 {
    if big_m <= m || m == 0 {
        return 0.0;
    }
    ((big_m - m) as f64 / (m as f64 * (big_m - 1) as f64)).sqrt()
}

fn sub_gram(g: &DMatrix<f64>, rows: &[usize], cols: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(rows.len(), cols.len(), |i, j| g[(rows[i], cols[j])])
}

fn spectral(a: &DMatrix<f64>) -> f64 {
    if a.nrows() == 1 || a.ncols() == 1 {
        return a.norm();
    }
    a.singular_values().max()
}

/// `D`'s columns match the groups' atoms (a typed [`SparseBpError::ShapeMismatch`] if not).
pub(crate) fn check_groups(d: &DMatrix<f64>, groups: &GroupSpec) -> Result<()> {
    if d.ncols() != groups.n_atoms() {
        return Err(SparseBpError::ShapeMismatch {
            what: "dictionary columns vs group atoms",
            expected: (d.nrows(), groups.n_atoms()),
            got: d.shape(),
        });
    }
    Ok(())
}

/// Group coherence `mu_G = max_{g != h} ||D_g^T D_h||_2` (unit-norm atoms, any group sizes).
pub fn group_coherence(d: &DMatrix<f64>, groups: &GroupSpec) -> Result<f64> {
    check_unit_atoms(d, UNIT_TOL)?;
    check_groups(d, groups)?;
    let g = d.tr_mul(d);
    let gs = groups.groups();
    let mut mu: f64 = 0.0;
    for a in 0..gs.len() {
        for b in 0..a {
            mu = mu.max(spectral(&sub_gram(&g, &gs[a].atoms, &gs[b].atoms)));
        }
    }
    Ok(mu)
}

/// Block coherence `mu_B = max_{l != r} (1/b) ||D[l]^T D[r]||_2` (Eldar et al. 2010);
/// needs equal group sizes `b`.
pub fn block_coherence(d: &DMatrix<f64>, groups: &GroupSpec) -> Result<f64> {
    check_groups(d, groups)?;
    let b = equal_size(groups)?;
    Ok(group_coherence(d, groups)? / b as f64)
}

fn equal_size(groups: &GroupSpec) -> Result<usize> {
    let b = groups.groups()[0].atoms.len();
    for (gi, g) in groups.groups().iter().enumerate() {
        if g.atoms.len() != b {
            return Err(SparseBpError::UnequalGroupSize { group: gi, size: g.atoms.len(), expected: b });
        }
    }
    Ok(b)
}

/// Sub-coherence `nu = max_l max_{i != j in l} |d_i^T d_j|` (0 when every group is a single atom).
pub fn sub_coherence(d: &DMatrix<f64>, groups: &GroupSpec) -> Result<f64> {
    check_unit_atoms(d, UNIT_TOL)?;
    check_groups(d, groups)?;
    let mut nu: f64 = 0.0;
    for g in groups.groups() {
        for (k, &i) in g.atoms.iter().enumerate() {
            for &j in &g.atoms[..k] {
                nu = nu.max(d.column(i).dot(&d.column(j)).abs());
            }
        }
    }
    Ok(nu)
}

/// Intra-group deviation `delta = max_g ||D_g^T D_g - I||_2` (0 for orthonormal groups).
pub fn intra_group_deviation(d: &DMatrix<f64>, groups: &GroupSpec) -> Result<f64> {
    check_unit_atoms(d, UNIT_TOL)?;
    check_groups(d, groups)?;
    let g = d.tr_mul(d);
    let mut delta: f64 = 0.0;
    for gr in groups.groups() {
        if gr.atoms.len() < 2 {
            continue;
        }
        let mut s = sub_gram(&g, &gr.atoms, &gr.atoms);
        for i in 0..s.nrows() {
            s[(i, i)] -= 1.0;
        }
        delta = delta.max(s.symmetric_eigenvalues().amax());
    }
    Ok(delta)
}

/// Pseudo-inverse `D_S^+ = (D_S^T D_S)^{-1} D_S^T` of the columns `support` of `d`.
pub(crate) fn support_pinv(d: &DMatrix<f64>, support: &[usize]) -> Result<DMatrix<f64>> {
    let ds = d.select_columns(support);
    let gram = ds.tr_mul(&ds);
    let chol = gram.cholesky().ok_or(SparseBpError::Singular { what: "D_S^T D_S" })?;
    Ok(chol.solve(&ds.transpose()))
}

/// Exact recovery coefficient `ERC(S) = 1 - max_{i not in S} ||D_S^+ d_i||_1` (Tropp 2004).
/// `ERC > 0` is Tropp's exact recovery condition for the support `S`.
///
/// ```
/// use nalgebra::DMatrix;
/// let d = DMatrix::<f64>::identity(3, 3);
/// assert_eq!(sparse_bp::coherence::exact_recovery_coefficient(&d, &[0, 2]).unwrap(), 1.0);
/// ```
pub fn exact_recovery_coefficient(d: &DMatrix<f64>, support: &[usize]) -> Result<f64> {
    check_matrix("dictionary", d)?;
    check_support(d.ncols(), support)?;
    let pinv = support_pinv(d, support)?;
    let mut worst: f64 = 0.0;
    for i in (0..d.ncols()).filter(|i| !support.contains(i)) {
        worst = worst.max((&pinv * d.column(i)).lp_norm(1));
    }
    Ok(1.0 - worst)
}

fn check_support(n: usize, support: &[usize]) -> Result<()> {
    if support.is_empty() {
        return Err(SparseBpError::Empty { what: "support" });
    }
    if let Some(&atom) = support.iter().find(|&&a| a >= n) {
        return Err(SparseBpError::AtomOutOfRange { group: 0, atom, n_atoms: n });
    }
    Ok(())
}

/// Group ERC of a set of active groups:
/// `1 - max_{h inactive} sum_{g active} ||(D_S^+ D_h)_g||_2`, `S` the union of the active groups.
pub fn group_exact_recovery_coefficient(d: &DMatrix<f64>, groups: &GroupSpec, active: &[usize]) -> Result<f64> {
    check_matrix("dictionary", d)?;
    check_groups(d, groups)?;
    let gs = groups.groups();
    if let Some(&g) = active.iter().find(|&&g| g >= gs.len()) {
        return Err(SparseBpError::InvalidParam { name: "active group", value: g as f64, expected: "< n_groups" });
    }
    let support: Vec<usize> = active.iter().flat_map(|&g| gs[g].atoms.iter().copied()).collect();
    check_support(d.ncols(), &support)?;
    let pinv = support_pinv(d, &support)?;
    let mut worst: f64 = 0.0;
    for (h, gh) in gs.iter().enumerate() {
        if active.contains(&h) {
            continue;
        }
        let b = &pinv * d.select_columns(&gh.atoms);
        let mut row = 0;
        let mut sum = 0.0;
        for &g in active {
            let n = gs[g].atoms.len();
            sum += spectral(&b.rows(row, n).into_owned());
            row += n;
        }
        worst = worst.max(sum);
    }
    Ok(1.0 - worst)
}
