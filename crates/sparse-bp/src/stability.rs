//! The BP stability theorem and its group generalisation, made checkable (spec section 2),
//! and robustness certificates.
//!
//! # 1. BP stability (Papyan–Sulam–Elad form, after Tropp 2006)
//!
//! Let `D` have unit-norm atoms and mutual coherence `mu`, `Y = D Gamma + E` with
//! `||E||_2 <= eps` and `||Gamma||_0 < (1 + 1/mu)/3`. The BP (lasso) solution with
//! weight `xi = 4 eps` satisfies
//! 1. `supp(Gamma_BP) ⊆ supp(Gamma)`;
//! 2. `||Gamma_BP - Gamma||_inf <= 7.5 eps`;
//! 3. every `i` with `|Gamma_i| > 7.5 eps` is in `supp(Gamma_BP)`;
//! 4. the minimiser is unique.
//!
//! [`BpStability`] evaluates the hypotheses and [`BpStability::check`] every conclusion
//! for a computed solution.
//!
//! # 2. Group version implemented here (derived below; *our* statement and constants)
//!
//! The paper (Szeghy et al. 2022) proves a group extension in its supplement; we have not
//! read its constants, so we state and prove our own version. Notation: groups `G_1..G_K`
//! partition the atoms (unit norm), weights `gamma_g > 0`, and each group has its own
//! norm `l_g`: `L2` (group lasso), `L1`, in-group weighted `L1` (weights `w`), or the
//! sparse-group norm `beta ||.||_1 + (1 - beta) ||.||_2`, `beta` in `[0, 1]` (our reading
//! of the paper's `l_{beta,1,2}`). Codes are signed (the non-negative variants are **not**
//! covered: their normal-cone terms are unbounded and step (a) below fails).
//!
//! *Norm constants.* On a group of `b` atoms each of these norms is equivalent to the l2
//! norm, `c_g ||v||_2 <= l_g(v) <= L_g ||v||_2` for all `v`, with the sharp constants
//! ([`l2_equivalence`])
//!
//! | `l_g` | `c_g` | `L_g` |
//! | --- | --- | --- |
//! | `L2` | `1` | `1` |
//! | `L1` | `1` | `sqrt(b)` |
//! | weighted `L1`, weights `w` | `min_i w_i` | `sqrt(sum_i w_i^2)` (the l2 norm of `w`) |
//! | sparse-group `beta` | `1` | `beta sqrt(b) + 1 - beta` |
//!
//! Derivation: `||v||_2 <= ||v||_1 <= sqrt(b) ||v||_2` (triangle inequality on
//! `sum_i |v_i| e_i`, then Cauchy–Schwarz against `(1, .., 1)`), with equality on the left
//! at a basis vector and on the right at any `v` with all `|v_i|` equal. Weighted:
//! `min_i w_i ||v||_2 <= min_i w_i ||v||_1 <= sum_i w_i |v_i| <= ||w||_2 ||v||_2`
//! (Cauchy–Schwarz), with equality at the basis vector of the smallest weight and at
//! `|v| = w`. Sparse-group: `beta ||v||_1 + (1 - beta) ||v||_2` lies between
//! `beta ||v||_2 + (1 - beta) ||v||_2` and `beta sqrt(b) ||v||_2 + (1 - beta) ||v||_2`,
//! and both parts reach their extremes at the same vectors, so the constants are sharp.
//! Two consequences, for the dual norm `l_g^*(u) = max { <u, x> : l_g(x) <= 1 }`:
//!
//! * (N1) `l_g^*(u) <= ||u||_2 / c_g`: the unit ball of `l_g` lies in the l2 ball of radius
//!   `1 / c_g`, so the maximum of `<u, x>` over it is at most `||u||_2 / c_g`.
//! * (N2) `||u||_2 <= L_g l_g^*(u)`: `||u||_2 = max_{||x||_2 <= 1} <u, x>
//!   <= max_{||x||_2 <= 1} l_g^*(u) l_g(x) = L_g l_g^*(u)` (Hölder for a norm and its dual).
//!   Every subgradient `u` of `l_g` (at any point) has `l_g^*(u) <= 1`, so `||u||_2 <= L_g`.
//!
//! Let
//! * `mu_G = max_{g != h} ||D_g^T D_h||_2` (group coherence, `= b mu_B` for blocks of size `b`),
//! * `delta = max_g ||D_g^T D_g - I||_2` (intra-group deviation, `<= (b-1) nu`),
//! * `gamma_low = min_g c_g gamma_g` (the smallest *effective* weight; `= min_g gamma_g`
//!   unless in-group weights are below 1), `Lambda = max_g L_g gamma_g`,
//!   `rho = Lambda / gamma_low >= 1`,
//! * `S` = the `k` groups active in `Gamma`, `kappa = 1 / (1 - delta - (k-1) mu_G)`.
//!
//! **Theorem (group stability, any mix of the norms above).** Let `Y = D Gamma + E`,
//! `||E||_2 <= eps`. If
//!
//! * (H1) `k < (1 - delta + mu_G) / ((2 rho + 1) mu_G)` (and `delta < 1` when `mu_G = 0`) and
//! * (H2) `gamma_low >= 4 eps`,
//!
//! then the group-BP solution `Gamma_hat` of `1/2||Y - D Gamma||^2 + sum_g gamma_g l_g(Gamma_g)`
//! 1. has its active groups inside `S`;
//! 2. satisfies `max_g ||Gamma_hat_g - Gamma_g||_2 <= tau := kappa (rho gamma_low + sqrt(1 + delta) eps)`
//!    `= kappa (Lambda + sqrt(1 + delta) eps)`;
//! 3. has every group with `||Gamma_g||_2 > tau` active;
//! 4. is unique.
//!
//! All-l2 groups (`c_g = L_g = 1`): `gamma_low = min gamma_g`, `rho = max gamma_g / min gamma_g`.
//! With `b = 1`, `delta = 0`, `mu_G = mu`, equal weights `gamma = 4 eps` (`rho = 1`), (H1) is
//! `k < (1 + 1/mu)/3`, `kappa <= 3/2` and `tau <= 7.5 eps`: section 1 is the special case.
//! For sparse-group groups the only change is `rho`, which grows by the factor
//! `beta sqrt(b) + 1 - beta` (at equal weights); the inactive-group test and the
//! certificates use the exact dual norm ([`GroupNorm::dual`]), the theorem only its bound (N1).
//!
//! **Proof.** Write `D_S` for the columns of the groups in `S`, `M = (D_S^T D_S)^{-1}`, and
//! measure block matrices (blocks = groups) by the largest block-row sum of spectral norms,
//! `||A||_b = max_g sum_l ||A_gl||_2`. It is submultiplicative
//! (`sum_l ||sum_m A_gm B_ml|| <= sum_m ||A_gm|| sum_l ||B_ml||`). The blocks of
//! `I - D_S^T D_S` are `I - D_g^T D_g` on the diagonal (norm `<= delta`) and `-D_g^T D_l`
//! off it (norm `<= mu_G`), so `||I - D_S^T D_S||_b <= delta + (k-1) mu_G`, which is `< 1`
//! because (H1) is equivalent to `2 rho k mu_G < 1 - delta - (k-1) mu_G` (multiply out
//! `(2 rho + 1) k mu_G < 1 - delta + mu_G`). By the Neumann series `D_S` is injective and
//! `||M||_b <= kappa`; `M` is symmetric, so its block-column sums are bounded by `kappa` too.
//! (a) *Restricted problem.* Let `z` minimise the objective over codes supported on `S`
//! (exists, unique: the objective is strictly convex there). With `c = D_S^+ Y` and
//! `r = (I - P_S) Y = (I - P_S) E`, we have `D_S^T Y = D_S^T D_S c`, so optimality reads
//! `D_S^T D_S (c - z) = w`, `w_g = gamma_g u_g`, `u_g` a subgradient of `l_g` at `z_g`; by
//! (N2) `||w_g||_2 <= L_g gamma_g <= Lambda`. Hence
//! `||(z - c)_g||_2 <= sum_l ||M_gl||_2 ||w_l||_2 <= kappa Lambda = kappa rho gamma_low`.
//! (b) *Dual feasibility off `S`.* For `h` not in `S`, `Y - D_S z = r + D_S (c - z) = r + D_S M w`,
//! so `D_h^T (Y - D_S z) = D_h^T r + sum_g B_g^T w_g` with `B_g = sum_l M_gl D_l^T D_h`,
//! `||B_g||_2 <= mu_G sum_l ||M_gl||_2`, and `sum_g ||B_g||_2 <= mu_G sum_l sum_g ||M_gl||_2
//! <= kappa k mu_G` (block-column sums, `k` columns). Also `||D_h||_2 <= sqrt(1 + delta)` and
//! `||r||_2 <= eps`. So `||D_h^T (Y - D_S z)||_2 <= sqrt(1 + delta) eps + kappa k mu_G Lambda
//! < sqrt(1 + delta) eps + gamma_low / 2` (by (H1): `kappa k mu_G rho < 1/2`)
//! `< gamma_low` (by (H2) and `sqrt(1 + delta) < 2`, as `delta < 1`). By (N1),
//! `l_h^*(D_h^T (Y - D_S z)) < gamma_low / c_h <= gamma_h`. So `z` (padded with zeros)
//! satisfies the full optimality conditions (`0` is optimal for group `h` iff
//! `l_h^*(D_h^T r) <= gamma_h`) with *strict* inequality off `S`. Every minimiser has the
//! same fit `D Gamma` (strict convexity of the quadratic in `D Gamma`), hence the same
//! residual; a group `h` with `Gamma_h != 0` at a minimiser would need
//! `l_h^*(D_h^T r) = gamma_h`, so all minimisers vanish off `S`, and `D_S` injective makes
//! the minimiser unique (conclusions 1 and 4).
//! (c) *Error.* `c - Gamma_S = D_S^+ E = M D_S^T E` and `||D_l^T E||_2 <= sqrt(1 + delta) eps`,
//! so `||(c - Gamma)_g||_2 <= kappa sqrt(1 + delta) eps`; with (a) and the triangle
//! inequality this gives conclusion 2 (off `S` both codes vanish), and conclusion 3
//! follows from the reverse triangle inequality. ∎
//!
//! **What is proven and what is not.** The statement above is proven (argument above,
//! a block version of Tropp's 2006 proof) for disjoint groups of arbitrary sizes, weights
//! and norms from the table (mixed freely), hence for neurons (single atoms) and for
//! whole layers as groups *of a dictionary that meets (H1)*. It is conservative for l1-type
//! norms on groups of more than one atom (the factor `L_g` can be `sqrt(b)`; atom-level
//! support inside an active group is not claimed). It is *not* claimed for the
//! non-negative variants, nor for the Deep-Pursuit block dictionary of
//! [`crate::multilayer`], whose `-I` blocks are not unit-norm atoms and whose coherence
//! generally violates (H1). The property tests in `tests/stability.rs` act as the witness:
//! on random instances inside the hypotheses (l2 groups; sparse-group and mixed norms),
//! with random and adversarial (projected gradient ascent) perturbations, every conclusion
//! holds; outside (H1) or (H2) they keep counterexamples. (N1), (N2) and the sharpness of
//! the constants are checked against the implemented dual norms.
//!
//! # 3. Certificates
//!
//! * [`GroupStability::certified_eps`] — from the theorem: for a known generating code
//!   `Gamma` and *fixed* weights, the largest `eps` such that (H2) holds and every
//!   active group exceeds `tau(eps)`; then the active group set of `Gamma_hat` equals that of
//!   `Gamma` for every `||E|| < eps`.
//! * [`local_certificate`] — from one signal `x` and its solution `z` (no generating code
//!   needed, any norm): restricted to the active set `S`, the solution map is Lipschitz,
//!   `||z(x') - z(x)||_2 <= ||x' - x|| / sigma_min(D_S)` and the residual moves by at most
//!   `||x' - x||` (firm non-expansiveness of the restricted least-squares-plus-convex
//!   problem). So the active group set is unchanged for every `||E||_2 < eps*` with
//!   `eps* = min( sigma_min(D_S) min_{g in S} ||z_g||_2 ,
//!   min_{h not in S} (gamma_h - l_h^*(D_h^T r)) / (Lip(l_h^*) ||D_h||_2) )`.
//!   [`LocalCertificate::class_radius`] adds the classifier margin (a linear
//!   classifier on the code or on the group norms moves by at most
//!   `||w|| ||E|| / sigma_min(D_S)` inside that radius).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::coherence::{UNIT_TOL, check_unit_atoms, group_coherence, intra_group_deviation, mutual_coherence};
use crate::error::{Result, SparseBpError, check_finite};
use crate::groups::{GroupNorm, GroupSpec};
use crate::solver::Solver;

/// The l1 (BP) theorem of section 1 for one generating code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BpStability {
    /// Mutual coherence of `D`.
    pub mu: f64,
    /// `||Gamma||_0`.
    pub sparsity: usize,
    /// The bound `(1 + 1/mu)/3` that `sparsity` must stay strictly below.
    pub sparsity_bound: f64,
    /// Noise level `eps`.
    pub eps: f64,
}

/// What the theorem asserts, measured on a computed solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conclusions {
    /// Conclusion 1: (group) support of the solution inside that of the generating code.
    pub support_inclusion: bool,
    /// Measured error: `||.||_inf` (BP) or `max_g ||.||_2` (group).
    pub error: f64,
    /// The theorem's error bound (`7.5 eps` or `tau`).
    pub error_bound: f64,
    /// Conclusion 3: every entry/group above the bound is active in the solution.
    pub large_recovered: bool,
    /// Conclusion 4, checked numerically: strict dual feasibility off the support and
    /// `D_S` of full column rank (sufficient for uniqueness).
    pub unique: bool,
}

impl Conclusions {
    /// All four conclusions hold (error within bound up to `slack`).
    #[must_use]
    pub fn all_hold(&self, slack: f64) -> bool {
        self.support_inclusion && self.error <= self.error_bound + slack && self.large_recovered && self.unique
    }
}

impl BpStability {
    /// Evaluate the quantities of the theorem; errors on non-unit atoms, NaN, bad `eps`.
    pub fn new(d: &DMatrix<f64>, gamma: &DVector<f64>, eps: f64) -> Result<Self> {
        check_eps(eps)?;
        check_code(d, gamma)?;
        let mu = mutual_coherence(d)?;
        let sparsity = gamma.iter().filter(|v| **v != 0.0).count();
        Ok(Self { mu, sparsity, sparsity_bound: (1.0 + 1.0 / mu) / 3.0, eps })
    }

    /// Whether the hypotheses hold (`||Gamma||_0 < (1 + 1/mu)/3`).
    #[must_use]
    pub fn hypotheses_hold(&self) -> bool {
        (self.sparsity as f64) < self.sparsity_bound
    }

    /// The BP weight the theorem prescribes, `xi = 4 eps`.
    #[must_use]
    pub fn xi(&self) -> f64 {
        4.0 * self.eps
    }

    /// Measure every conclusion for `gamma_bp`, the solution for `y` with weight `xi`.
    /// `zero_tol` decides which entries count as non-zero (solvers return exact zeros).
    pub fn check(
        &self,
        d: &DMatrix<f64>,
        gamma: &DVector<f64>,
        y: &DVector<f64>,
        gamma_bp: &DVector<f64>,
        zero_tol: f64,
    ) -> Result<Conclusions> {
        check_code(d, gamma)?;
        check_code(d, gamma_bp)?;
        let bound = 7.5 * self.eps;
        let mut inclusion = true;
        let mut large = true;
        let mut err: f64 = 0.0;
        for i in 0..gamma.len() {
            let active_bp = gamma_bp[i].abs() > zero_tol;
            if active_bp && gamma[i] == 0.0 {
                inclusion = false;
            }
            if gamma[i].abs() > bound && !active_bp {
                large = false;
            }
            err = err.max((gamma_bp[i] - gamma[i]).abs());
        }
        let groups = GroupSpec::lasso(d.ncols(), self.xi().max(f64::MIN_POSITIVE))?;
        let unique = uniqueness_holds(d, &groups, y, gamma_bp, zero_tol)?;
        Ok(Conclusions { support_inclusion: inclusion, error: err, error_bound: bound, large_recovered: large, unique })
    }
}

fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(SparseBpError::InvalidParam { name: "eps", value: eps, expected: "finite and >= 0" });
    }
    Ok(())
}

fn check_code(d: &DMatrix<f64>, z: &DVector<f64>) -> Result<()> {
    if z.len() != d.ncols() {
        return Err(SparseBpError::ShapeMismatch { what: "code", expected: (d.ncols(), 1), got: (z.len(), 1) });
    }
    check_finite("code", z.as_slice())
}

/// Numerical sufficient condition for uniqueness of `z` as the minimiser for `y`:
/// strict dual feasibility `l_h^*(D_h^T r) < gamma_h` off the active groups (with margin
/// `> 1e-9 gamma_h`) and `D_S^T D_S` positive definite.
pub fn uniqueness_holds(
    d: &DMatrix<f64>,
    groups: &GroupSpec,
    y: &DVector<f64>,
    z: &DVector<f64>,
    zero_tol: f64,
) -> Result<bool> {
    check_code(d, z)?;
    if y.len() != d.nrows() {
        return Err(SparseBpError::ShapeMismatch { what: "signal", expected: (d.nrows(), 1), got: (y.len(), 1) });
    }
    let r = y - d * z;
    let v = d.tr_mul(&r);
    let mut support = Vec::new();
    let mut buf = Vec::new();
    for g in groups.groups() {
        let nz = g.atoms.iter().any(|&a| z[a].abs() > zero_tol);
        if nz {
            support.extend(g.atoms.iter().copied().filter(|&a| z[a].abs() > zero_tol));
        } else {
            crate::groups::gather(v.as_slice(), &g.atoms, &mut buf);
            if g.norm.dual(&buf, groups.nonneg()) >= g.weight * (1.0 - 1e-9) {
                return Ok(false);
            }
        }
    }
    if support.is_empty() {
        return Ok(true);
    }
    let ds = d.select_columns(&support);
    Ok(ds.tr_mul(&ds).cholesky().is_some())
}

/// The sharp constants `(c, L)` with `c ||v||_2 <= l(v) <= L ||v||_2` for the norm `l` on a
/// group of `size` atoms (table in section 2 of the module docs).
///
/// ```
/// use sparse_bp::GroupNorm;
/// use sparse_bp::stability::l2_equivalence;
/// assert_eq!(l2_equivalence(&GroupNorm::L2, 4), (1.0, 1.0));
/// assert_eq!(l2_equivalence(&GroupNorm::L1, 4), (1.0, 2.0));
/// let (c, l) = l2_equivalence(&GroupNorm::SparseGroup { beta: 0.5 }, 4);
/// assert_eq!((c, l), (1.0, 1.5));
/// let (c, l) = l2_equivalence(&GroupNorm::WeightedL1(vec![3.0, 4.0]), 2);
/// assert_eq!((c, l), (3.0, 5.0));
/// ```
#[must_use]
pub fn l2_equivalence(norm: &GroupNorm, size: usize) -> (f64, f64) {
    let rb = (size as f64).sqrt();
    match norm {
        GroupNorm::L2 => (1.0, 1.0),
        GroupNorm::L1 => (1.0, rb),
        GroupNorm::WeightedL1(w) => {
            (w.iter().copied().fold(f64::INFINITY, f64::min), w.iter().map(|x| x * x).sum::<f64>().sqrt())
        }
        // written as 1 + beta (sqrt(b) - 1) so that b = 1 gives exactly 1
        GroupNorm::SparseGroup { beta } => (1.0, 1.0 + beta * (rb - 1.0)),
    }
}

/// The group theorem of section 2 for one dictionary, group structure and set of active groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStability {
    /// Group coherence `mu_G`.
    pub mu_g: f64,
    /// Intra-group deviation `delta`.
    pub delta: f64,
    /// `rho = Lambda / gamma_low` (`= gamma_max / gamma_min` for l2 groups).
    pub rho: f64,
    /// `gamma_low = min_g c_g gamma_g`, the smallest effective weight (`= gamma_min` for
    /// l2, l1 and sparse-group norms).
    pub gamma_min: f64,
    /// `Lambda = max_g L_g gamma_g`.
    pub lambda: f64,
    /// Number of active groups `k`.
    pub k: usize,
    /// Bound of (H1): `k` must be `<` this.
    pub group_bound: f64,
    /// `kappa = 1/(1 - delta - (k-1) mu_G)` (infinite if the denominator is `<= 0`).
    pub kappa: f64,
}

impl GroupStability {
    /// Evaluate the theorem's quantities. `groups` carries the weights and norms actually
    /// used by the solver: any mix of `L2`, `L1`, weighted `L1` and sparse-group norms;
    /// non-negative group specs are rejected ([`SparseBpError::UnsupportedNorm`]), as are
    /// non-unit atoms.
    pub fn new(d: &DMatrix<f64>, groups: &GroupSpec, active: &[usize]) -> Result<Self> {
        check_unit_atoms(d, UNIT_TOL)?;
        if groups.nonneg() {
            return Err(SparseBpError::UnsupportedNorm {
                operation: "group stability theorem (non-negative codes are not covered)",
                group: 0,
            });
        }
        let mu_g = group_coherence(d, groups)?;
        let delta = intra_group_deviation(d, groups)?;
        let (mut low, mut lambda) = (f64::INFINITY, 0.0f64);
        for g in groups.groups() {
            let (c, l) = l2_equivalence(&g.norm, g.atoms.len());
            low = low.min(c * g.weight);
            lambda = lambda.max(l * g.weight);
        }
        let rho = lambda / low;
        let k = active.len();
        let group_bound = if mu_g > 0.0 { (1.0 - delta + mu_g) / ((2.0 * rho + 1.0) * mu_g) } else { f64::INFINITY };
        let den = 1.0 - delta - (k.saturating_sub(1)) as f64 * mu_g;
        let kappa = if den > 0.0 { 1.0 / den } else { f64::INFINITY };
        Ok(Self { mu_g, delta, rho, gamma_min: low, lambda, k, group_bound, kappa })
    }

    /// (H1): `k < (1 - delta + mu_G)/((2 rho + 1) mu_G)`.
    #[must_use]
    pub fn sparsity_hypothesis(&self) -> bool {
        (self.k as f64) < self.group_bound && self.kappa.is_finite()
    }

    /// (H1) and (H2) `gamma_low >= 4 eps`.
    #[must_use]
    pub fn hypotheses_hold(&self, eps: f64) -> bool {
        self.sparsity_hypothesis() && self.gamma_min >= 4.0 * eps
    }

    /// `tau(eps) = kappa (rho gamma_low + sqrt(1 + delta) eps)`.
    #[must_use]
    pub fn error_bound(&self, eps: f64) -> f64 {
        self.kappa * (self.rho * self.gamma_min + (1.0 + self.delta).sqrt() * eps)
    }

    /// Theorem certificate: the supremum of `eps` with (H2) and
    /// `min_{g in S} ||Gamma_g||_2 > tau(eps)`; for every `||E|| < ` this value the
    /// active group set of the solution equals that of `Gamma`. `0` if the hypotheses
    /// fail or no `eps > 0` works. `min_active_norm` is `min_{g in S} ||Gamma_g||_2`.
    #[must_use]
    pub fn certified_eps(&self, min_active_norm: f64) -> f64 {
        if !self.sparsity_hypothesis() {
            return 0.0;
        }
        let e = (min_active_norm / self.kappa - self.rho * self.gamma_min) / (1.0 + self.delta).sqrt();
        e.min(self.gamma_min / 4.0).max(0.0)
    }

    /// Measure every conclusion for the solution `z` for `y = D Gamma + E`, computed by
    /// `solver` (whose dictionary and groups/weights define the problem).
    pub fn check(
        &self,
        solver: &Solver,
        gamma: &DVector<f64>,
        y: &DVector<f64>,
        z: &DVector<f64>,
        eps: f64,
        zero_tol: f64,
    ) -> Result<Conclusions> {
        let (d, groups) = (solver.dictionary(), solver.groups());
        check_eps(eps)?;
        check_code(d, gamma)?;
        check_code(d, z)?;
        let tau = self.error_bound(eps);
        let nt = groups.group_norms(gamma.as_slice());
        let diff = z - gamma;
        let nd = groups.group_norms(diff.as_slice());
        let nz = groups.group_norms(z.as_slice());
        let mut inclusion = true;
        let mut large = true;
        for g in 0..groups.n_groups() {
            if nz[g] > zero_tol && nt[g] == 0.0 {
                inclusion = false;
            }
            if nt[g] > tau && nz[g] <= zero_tol {
                large = false;
            }
        }
        Ok(Conclusions {
            support_inclusion: inclusion,
            error: nd.iter().copied().fold(0.0, f64::max),
            error_bound: tau,
            large_recovered: large,
            unique: uniqueness_holds(d, groups, y, z, zero_tol)?,
        })
    }
}

/// Per-sample certificate from the solution alone (section 3 of the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalCertificate {
    /// Active groups of the solution.
    pub active_groups: Vec<usize>,
    /// Active atoms (columns of `D_S`).
    pub support: Vec<usize>,
    /// `sigma_min(D_S)` (0 if `D_S` is rank deficient; 1 if `S` is empty).
    pub sigma_min: f64,
    /// `sigma_min(D_S) min_{g in S} ||z_g||_2` (infinite if `S` is empty).
    pub active_margin: f64,
    /// `min_{h not in S} (gamma_h - l_h^*(D_h^T r)) / (Lip ||D_h||_2)` (infinite if none).
    pub inactive_margin: f64,
    /// `min(active_margin, inactive_margin)`: the active group set is unchanged for every
    /// perturbation with `||E||_2 <` this.
    pub radius: f64,
    /// The code the certificate was computed for.
    pub code: DVector<f64>,
}

/// What a linear classifier reads from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Features {
    /// The full code (BP, GBP models).
    Code,
    /// The vector of group l2 norms (PGBP model).
    GroupNorms,
}

impl LocalCertificate {
    /// Radius within which the class of the linear classifier `scores = W f + bias` is
    /// unchanged, `f` the code or its group norms. `W` has one row per class; with one row
    /// the class is `sign(score)`. Returns `min(radius, margin-based radius)`.
    pub fn class_radius(
        &self,
        groups: &GroupSpec,
        w: &DMatrix<f64>,
        bias: &DVector<f64>,
        features: Features,
    ) -> Result<f64> {
        let f = match features {
            Features::Code => self.code.clone(),
            Features::GroupNorms => DVector::from_vec(groups.group_norms(self.code.as_slice())),
        };
        if w.ncols() != f.len() || bias.len() != w.nrows() || w.nrows() == 0 {
            return Err(SparseBpError::ShapeMismatch {
                what: "classifier weights",
                expected: (bias.len().max(1), f.len()),
                got: w.shape(),
            });
        }
        check_finite("classifier weights", w.as_slice())?;
        let scores = w * &f + bias;
        // only coordinates that can move matter: atoms (or groups) of S
        let movable: Vec<usize> = match features {
            Features::Code => self.support.clone(),
            Features::GroupNorms => self.active_groups.clone(),
        };
        let restricted_norm = |row: DVector<f64>| movable.iter().map(|&i| row[i] * row[i]).sum::<f64>().sqrt();
        let lip = if self.sigma_min > 0.0 { 1.0 / self.sigma_min } else { f64::INFINITY };
        let margin_radius = if w.nrows() == 1 {
            let n = restricted_norm(w.row(0).transpose());
            if n == 0.0 { f64::INFINITY } else { scores[0].abs() / (n * lip) }
        } else {
            let top = scores.imax();
            let mut best = f64::INFINITY;
            for c in 0..w.nrows() {
                if c == top {
                    continue;
                }
                let n = restricted_norm((w.row(top) - w.row(c)).transpose());
                if n > 0.0 {
                    best = best.min((scores[top] - scores[c]) / (n * lip));
                } else if scores[top] == scores[c] {
                    best = 0.0;
                }
            }
            best
        };
        Ok(self.radius.min(margin_radius))
    }
}

/// Certificate for one signal `x` and its (accurately solved) code `z` under the solver's
/// dictionary and groups. Any norm, non-negative or not.
pub fn local_certificate(solver: &Solver, x: &DVector<f64>, z: &DVector<f64>) -> Result<LocalCertificate> {
    let d = solver.dictionary();
    let groups = solver.groups();
    check_code(d, z)?;
    if x.len() != d.nrows() {
        return Err(SparseBpError::ShapeMismatch { what: "signal", expected: (d.nrows(), 1), got: (x.len(), 1) });
    }
    check_finite("signal", x.as_slice())?;
    let r = x - d * z;
    let v = d.tr_mul(&r);
    let norms = groups.group_norms(z.as_slice());
    let mut active_groups = Vec::new();
    let mut support = Vec::new();
    let mut inactive_margin = f64::INFINITY;
    let mut buf = Vec::new();
    for (gi, g) in groups.groups().iter().enumerate() {
        if norms[gi] > 0.0 {
            active_groups.push(gi);
            support.extend(g.atoms.iter().copied());
        } else {
            crate::groups::gather(v.as_slice(), &g.atoms, &mut buf);
            let slack = g.weight - g.norm.dual(&buf, groups.nonneg());
            let dg = d.select_columns(&g.atoms);
            let op = if g.atoms.len() == 1 { dg.norm() } else { dg.singular_values().max() };
            let denom = g.norm.dual_lipschitz() * op;
            let m = if denom > 0.0 { slack.max(0.0) / denom } else { f64::INFINITY };
            inactive_margin = inactive_margin.min(m);
        }
    }
    let (sigma_min, active_margin) = if support.is_empty() {
        (1.0, f64::INFINITY)
    } else {
        let ds = d.select_columns(&support);
        let s = if ds.ncols() > ds.nrows() { 0.0 } else { ds.singular_values().min() };
        let min_norm = active_groups.iter().map(|&g| norms[g]).fold(f64::INFINITY, f64::min);
        (s, s * min_norm)
    };
    Ok(LocalCertificate {
        active_groups,
        support,
        sigma_min,
        active_margin,
        inactive_margin,
        radius: active_margin.min(inactive_margin),
        code: z.clone(),
    })
}

/// [`local_certificate`] for every column of `x` / `codes` (`m x n`, `M x n`), in parallel.
pub fn local_certificates(solver: &Solver, x: &DMatrix<f64>, codes: &DMatrix<f64>) -> Result<Vec<LocalCertificate>> {
    use rayon::prelude::*;
    if x.ncols() != codes.ncols() {
        return Err(SparseBpError::ShapeMismatch {
            what: "signals vs codes (columns)",
            expected: (x.nrows(), codes.ncols()),
            got: x.shape(),
        });
    }
    (0..x.ncols())
        .into_par_iter()
        .map(|j| local_certificate(solver, &x.column(j).into_owned(), &codes.column(j).into_owned()))
        .collect()
}
