//! Batched solvers for group Basis Pursuit (spec section 1): FISTA (with adaptive
//! restart), ISTA, (block) coordinate descent, and for the (weighted, non-negative) lasso
//! the exact homotopy / LARS-lasso path, all stopping on a real optimality measure.
//!
//! The objective, per signal (column `x` of `X`):
//!
//! ```text
//! P(z) = 1/2 ||x - D z||_2^2 + sum_i gamma_i l_i(z_{G_i})
//! ```
//!
//! Its Fenchel dual is `D(theta) = 1/2 ||x||^2 - 1/2 ||x - theta||^2` subject to
//! `l_i^*(D_{G_i}^T theta) <= gamma_i` for every group. From a primal `z` with residual
//! `r = x - D z` we take the feasible dual point `theta = r / max(1, max_i l_i^*(D_{G_i}^T r)/gamma_i)`;
//! the **relative duality gap** reported and used for stopping is `(P(z) - D(theta)) / (1/2 ||x||^2)`
//! (zero for `x = 0`). Everything is computed from the Gram matrix `G = D^T D` and
//! `B = D^T X`, so one iteration for a batch of `n` signals costs one `M x M` by `M x n`
//! matrix product; columns that have converged are removed from the working batch.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError, check_finite};
use crate::groups::{Group, GroupNorm, GroupSpec, gather};

mod homotopy;
pub(crate) mod kernels;

/// Which algorithm [`Solver`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// FISTA (Beck & Teboulle 2009), `t_{k+1} = (1 + sqrt(1 + 4 t_k^2))/2`, momentum
    /// `(t_k - 1)/t_{k+1}`, with optional gradient-based adaptive restart.
    Fista,
    /// ISTA: proximal gradient with step `1/L`.
    Ista,
    /// Cyclic (block) coordinate descent on the Gram matrix; exact coordinate
    /// minimisation for single-atom l1 groups, a block proximal-gradient step with the
    /// block Lipschitz constant `lambda_max(D_G^T D_G)` otherwise. Parallel over signals.
    CoordinateDescent,
    /// Exact homotopy / LARS-lasso path (Osborne, Presnell & Turlach 2000; Efron et al.
    /// 2004) for the plain, weighted and non-negative lasso (every group one atom with
    /// `L1`): follows the piecewise-linear solution path from `lambda_max` down to the
    /// given weights with a Cholesky factor of the active Gram block kept by rank-one
    /// updates and downdates, then checks the duality gap; a signal whose gap misses `tol`
    /// (ties, rank-deficient active blocks) is finished by coordinate descent from the
    /// homotopy code. Warm starts are ignored (the path starts at zero). Other group
    /// structures run [`Algorithm::CoordinateDescent`]. `iterations` counts path events
    /// (plus coordinate-descent epochs of a fallback); `max_iter` bounds only the fallback
    /// (the path itself stops after at most `max(8 M, 64)` events). Acceptance is always on
    /// the relative duality gap `<= tol`. Parallel over signals, deterministic.
    Homotopy,
    /// Pick per problem: [`Algorithm::Homotopy`] for the (weighted, non-negative) lasso
    /// when no warm start is given, [`Algorithm::CoordinateDescent`] otherwise (see the
    /// crate docs, "Choosing a solver").
    Auto,
}

/// Which optimality measure stops the iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoppingRule {
    /// Relative duality gap `<= tol` (see the module docs).
    DualityGap,
    /// Prox-gradient mapping `L ||prox(y - grad/L) - y||_2 <= tol * max(||D^T x||_2, 1e-300)`
    /// (FISTA/ISTA); coordinate descent uses `L_max * ||z_new - z_old||_2` over one epoch.
    ProxGradient,
}

/// Validated solver parameters. Build with [`SolverParams::builder`] or start from
/// [`Default`] and call [`SolverParams::check`]; [`Solver::new`] checks again.
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `algorithm` | `Fista` | which solver | any |
/// | `stopping` | `DualityGap` | optimality measure | any |
/// | `tol` | `1e-8` | tolerance on the (relative) stopping measure | finite, `> 0` |
/// | `max_iter` | `20_000` | iterations (epochs for CD) per signal | `>= 1` |
/// | `check_every` | `10` | iterations between optimality checks (CD: every epoch) | `>= 1` |
/// | `restart` | `true` | FISTA adaptive restart (O'Donoghue & Candès 2015) | any |
/// | `lipschitz` | `None` | override `L >= lambda_max(D^T D)`; `None` = power iteration | finite, `> 0` |
/// | `power_iter_max` | `1000` | power-iteration steps | `>= 1` |
/// | `power_iter_tol` | `1e-12` | relative change that stops power iteration | finite, `> 0` |
/// | `lipschitz_safety` | `1.01` | factor applied to the power-iteration estimate | finite, `>= 1` |
/// | `polish` | `true` | coordinate descent on lasso / weighted lasso: when the signed support has been stable for 3 epochs, try the closed-form solution on it (kept only if its duality gap meets `tol`) | any |
/// | `chunk_size` | `256` | most signals per work unit (one rayon task); a batch is split into equal chunks, a small one into one chunk per 32 signals for FISTA / ISTA (per 4 otherwise), rounded up, at most 8, so that it uses several cores (100 signals: 4 FISTA chunks of 25); the split never depends on the thread count | `>= 1` |
/// | `parallel` | `true` | run chunks in parallel with rayon | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverParams {
    /// Which solver.
    pub algorithm: Algorithm,
    /// Optimality measure.
    pub stopping: StoppingRule,
    /// Tolerance on the stopping measure.
    pub tol: f64,
    /// Maximum iterations (epochs).
    pub max_iter: usize,
    /// Iterations between checks.
    pub check_every: usize,
    /// FISTA adaptive restart.
    pub restart: bool,
    /// Lipschitz constant override.
    pub lipschitz: Option<f64>,
    /// Power-iteration steps.
    pub power_iter_max: usize,
    /// Power-iteration tolerance.
    pub power_iter_tol: f64,
    /// Safety factor on the estimated Lipschitz constant.
    pub lipschitz_safety: f64,
    /// Support polishing for lasso coordinate descent.
    pub polish: bool,
    /// Most signals per work unit (see the table above for how a batch is split).
    pub chunk_size: usize,
    /// Parallel over chunks.
    pub parallel: bool,
}

impl Default for SolverParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Fista,
            stopping: StoppingRule::DualityGap,
            tol: 1e-8,
            max_iter: 20_000,
            check_every: 10,
            restart: true,
            lipschitz: None,
            power_iter_max: 1000,
            power_iter_tol: 1e-12,
            lipschitz_safety: 1.01,
            polish: true,
            chunk_size: 256,
            parallel: true,
        }
    }
}

fn bad(name: &'static str, value: f64, expected: &'static str) -> SparseBpError {
    SparseBpError::InvalidParam { name, value, expected }
}

impl SolverParams {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use sparse_bp::{SolverParams, Algorithm};
    /// let p = SolverParams::builder().algorithm(Algorithm::Ista).tol(1e-6).build().unwrap();
    /// assert_eq!(p.algorithm, Algorithm::Ista);
    /// assert!(SolverParams::builder().tol(f64::NAN).build().is_err());
    /// ```
    #[must_use]
    pub fn builder() -> SolverParamsBuilder {
        SolverParamsBuilder(Self::default())
    }

    /// Check every field against the table above.
    pub fn check(&self) -> Result<()> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(bad("tol", self.tol, "finite and > 0"));
        }
        if self.max_iter == 0 {
            return Err(bad("max_iter", 0.0, ">= 1"));
        }
        if self.check_every == 0 {
            return Err(bad("check_every", 0.0, ">= 1"));
        }
        if let Some(l) = self.lipschitz
            && !(l.is_finite() && l > 0.0)
        {
            return Err(bad("lipschitz", l, "finite and > 0"));
        }
        if self.power_iter_max == 0 {
            return Err(bad("power_iter_max", 0.0, ">= 1"));
        }
        if !(self.power_iter_tol.is_finite() && self.power_iter_tol > 0.0) {
            return Err(bad("power_iter_tol", self.power_iter_tol, "finite and > 0"));
        }
        if !(self.lipschitz_safety.is_finite() && self.lipschitz_safety >= 1.0) {
            return Err(bad("lipschitz_safety", self.lipschitz_safety, "finite and >= 1"));
        }
        if self.chunk_size == 0 {
            return Err(bad("chunk_size", 0.0, ">= 1"));
        }
        Ok(())
    }
}

/// Builder for [`SolverParams`]; [`SolverParamsBuilder::build`] checks.
#[derive(Debug, Clone)]
pub struct SolverParamsBuilder(SolverParams);

macro_rules! setter {
    ($name:ident, $t:ty) => {
        #[doc = concat!("Set `", stringify!($name), "`.")]
        #[must_use]
        pub fn $name(mut self, v: $t) -> Self {
            self.0.$name = v;
            self
        }
    };
}

impl SolverParamsBuilder {
    setter!(algorithm, Algorithm);
    setter!(stopping, StoppingRule);
    setter!(tol, f64);
    setter!(max_iter, usize);
    setter!(check_every, usize);
    setter!(restart, bool);
    setter!(power_iter_max, usize);
    setter!(power_iter_tol, f64);
    setter!(lipschitz_safety, f64);
    setter!(chunk_size, usize);
    setter!(polish, bool);
    setter!(parallel, bool);
    /// Set an explicit Lipschitz constant `L >= lambda_max(D^T D)`.
    #[must_use]
    pub fn lipschitz(mut self, l: f64) -> Self {
        self.0.lipschitz = Some(l);
        self
    }
    /// Check and return the parameters.
    pub fn build(self) -> Result<SolverParams> {
        self.0.check()?;
        Ok(self.0)
    }
}

/// Codes for a batch of signals plus per-signal diagnostics.
///
/// `iterations` counts FISTA/ISTA iterations, or coordinate-descent full sweeps (for the
/// lasso fast path: outer sweeps, each followed by at most 10 active-set sweeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// `M x n` codes, one column per signal.
    pub codes: DMatrix<f64>,
    /// Iterations (epochs) used per signal.
    pub iterations: Vec<usize>,
    /// Final relative duality gap per signal.
    pub gaps: Vec<f64>,
    /// Whether the stopping rule was met before `max_iter`.
    pub converged: Vec<bool>,
}

impl Solution {
    /// True if every signal converged.
    #[must_use]
    pub fn all_converged(&self) -> bool {
        self.converged.iter().all(|&c| c)
    }
    /// Largest final relative gap.
    #[must_use]
    pub fn max_gap(&self) -> f64 {
        self.gaps.iter().copied().fold(0.0, f64::max)
    }
}

/// A group-BP solver for a fixed dictionary and group structure. Holds `D`, `G = D^T D`
/// and `L`; `Send + Sync`, so one solver can serve many threads. A Gram-free solver
/// ([`Solver::new_gram_free`], for dictionaries more than twice overcomplete) holds no `G`
/// and solves by working sets (see there).
///
/// ```
/// use nalgebra::DMatrix;
/// use sparse_bp::{GroupSpec, Solver, SolverParams};
/// let d = DMatrix::<f64>::identity(3, 3);
/// let x = DMatrix::from_column_slice(3, 1, &[2.0, -0.5, 1.0]);
/// let solver = Solver::new(d, GroupSpec::lasso(3, 1.0).unwrap(), SolverParams::default()).unwrap();
/// let sol = solver.solve(&x).unwrap();
/// // orthonormal D: the solution is the soft threshold of x
/// assert!((sol.codes[(0, 0)] - 1.0).abs() < 1e-6);
/// assert!(sol.codes[(1, 0)].abs() < 1e-12);
/// assert!(sol.all_converged());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solver {
    d: DMatrix<f64>,
    /// `D^T D`, or an empty `0 x 0` matrix for a Gram-free solver ([`Solver::new_gram_free`]):
    /// the serialised form is the same either way.
    gram: DMatrix<f64>,
    groups: GroupSpec,
    params: SolverParams,
    lipschitz: f64,
    block_lipschitz: Vec<f64>,
    /// `D^T` when FISTA / ISTA form `G y` as `D^T (D y)` ([`Solver::with_factored_products`]);
    /// not serialised (a decoded solver multiplies by `G`), so model files keep their format.
    #[serde(skip)]
    dt: Option<DMatrix<f64>>,
    /// The non-zero rows of every column of `D` ([`kernels::column_ranges`]) of a Gram-free
    /// solver (empty otherwise, and after decoding: computed again where needed).
    #[serde(skip)]
    col_rows: Vec<(usize, usize)>,
}

/// Most rounds of a working-set solve ([`Solver::new_gram_free`]); each round grows the working
/// set by half at least, tightens the restricted solve's tolerance, or ends the solve.
const WORKING_SET_ROUNDS: usize = 64;

/// Fewest groups a working-set round adds (when that many violate the optimality condition).
const WORKING_SET_MIN_ADD: usize = 16;

/// Whether `D^T (D y)` (`2 m M` multiply-adds per signal) is cheaper than `G y` (`M^2`) for an
/// `m x M` dictionary: `2 m < M`, a dictionary more than twice overcomplete (the thesis-size
/// 4096-atom layer on 256-dimensional codes; never a preset's layer, whose widest is `M = 2 m`).
#[must_use]
pub fn factored_products_pay(m: usize, big_m: usize) -> bool {
    2 * m < big_m
}

/// Check that a matrix is non-empty and finite.
pub(crate) fn check_matrix(what: &'static str, a: &DMatrix<f64>) -> Result<()> {
    if a.nrows() == 0 || a.ncols() == 0 {
        return Err(SparseBpError::Empty { what });
    }
    check_finite(what, a.as_slice())
}

/// Largest eigenvalue of the symmetric PSD matrix `a` by power iteration.
#[must_use]
pub fn power_iteration(a: &DMatrix<f64>, max_iter: usize, tol: f64) -> f64 {
    let n = a.nrows();
    if n == 0 || a.ncols() != n {
        return 0.0;
    }
    // deterministic start with all directions present
    let mut v = DVector::from_fn(n, |i, _| 1.0 + 0.1 * ((i * 7919 % 97) as f64 / 97.0));
    v /= v.norm();
    let mut lambda = 0.0;
    for _ in 0..max_iter {
        let w = a * &v;
        let nw = w.norm();
        if nw == 0.0 {
            return 0.0;
        }
        let new_lambda = v.dot(&w);
        v = w / nw;
        if (new_lambda - lambda).abs() <= tol * new_lambda.abs() {
            return nw.max(new_lambda);
        }
        lambda = new_lambda;
    }
    lambda.max((a * &v).norm())
}

/// Each group's block constant `lambda_max(D_g^T D_g)` (`||d_a||^2` for a single atom) from the
/// columns of `D` (non-zero rows `rows`), as [`Solver::new`] takes them from `G`.
fn block_lipschitz_from_d(d: &DMatrix<f64>, rows: &[(usize, usize)], groups: &GroupSpec) -> Vec<f64> {
    let m = d.nrows();
    let s = d.as_slice();
    groups
        .groups()
        .iter()
        .map(|g| {
            if g.atoms.len() == 1 {
                let a = g.atoms[0];
                let col = &s[a * m..(a + 1) * m];
                kernels::dot_in(col, col, rows[a].0, rows[a].1)
            } else {
                kernels::gram(&d.select_columns(&g.atoms)).symmetric_eigenvalues().max() * (1.0 + 1e-12)
            }
        })
        .collect()
}

/// [`Solver::new`]'s and [`Solver::new_gram_free`]'s checks: the params, `D` finite and
/// non-empty, its columns matching the groups' atoms.
fn check_parts(d: &DMatrix<f64>, groups: &GroupSpec, params: &SolverParams) -> Result<()> {
    params.check()?;
    check_matrix("dictionary", d)?;
    crate::coherence::check_groups(d, groups)
}

impl Solver {
    /// Check `D` (finite, non-empty, `M` columns matching the groups) and the params,
    /// precompute `G = D^T D` and `L` (power iteration on the smaller of `D D^T`, `D^T D`).
    pub fn new(d: DMatrix<f64>, groups: GroupSpec, params: SolverParams) -> Result<Self> {
        check_parts(&d, &groups, &params)?;
        // bit for bit `d.tr_mul(&d)`, without the zero blocks of a stacked dictionary
        let gram = kernels::gram(&d);
        Ok(Self::with_gram(d, gram, groups, params))
    }

    /// [`Solver::new`]'s solver from `D`, its Gram matrix `gram` and checked parts.
    fn with_gram(d: DMatrix<f64>, gram: DMatrix<f64>, groups: GroupSpec, params: SolverParams) -> Self {
        let lipschitz = match params.lipschitz {
            Some(l) => l,
            None => {
                let small = if d.nrows() < d.ncols() { &d * d.transpose() } else { gram.clone() };
                power_iteration(&small, params.power_iter_max, params.power_iter_tol) * params.lipschitz_safety
            }
        };
        let block_lipschitz = groups
            .groups()
            .iter()
            .map(|g| {
                if g.atoms.len() == 1 {
                    gram[(g.atoms[0], g.atoms[0])]
                } else {
                    let sub = DMatrix::from_fn(g.atoms.len(), g.atoms.len(), |i, j| gram[(g.atoms[i], g.atoms[j])]);
                    sub.symmetric_eigenvalues().max() * (1.0 + 1e-12)
                }
            })
            .collect();
        Self { d, gram, groups, params, lipschitz, block_lipschitz, dt: None, col_rows: Vec::new() }
    }

    /// A working set's FISTA / ISTA solver without its Gram matrix: products `D^T (D y)`
    /// ([`Solver::with_factored_products`]), `L` from `ddt = D D^T` (unless `params` gives it),
    /// the groups' block constants `block`.
    fn factored_restricted(
        d: DMatrix<f64>,
        ddt: &DMatrix<f64>,
        groups: GroupSpec,
        params: SolverParams,
        block: Vec<f64>,
    ) -> Self {
        let lipschitz = params.lipschitz.unwrap_or_else(|| {
            power_iteration(ddt, params.power_iter_max, params.power_iter_tol) * params.lipschitz_safety
        });
        let dt = Some(d.transpose());
        Self {
            d,
            gram: DMatrix::zeros(0, 0),
            groups,
            params,
            lipschitz,
            block_lipschitz: block,
            dt,
            col_rows: Vec::new(),
        }
    }

    /// [`Solver::new`] without the Gram matrix `G = D^T D` (`M x M`: 134 MB for 4096 atoms),
    /// for dictionaries more than twice overcomplete ([`factored_products_pay`]; the thesis-size
    /// 4096-atom layer and the stacked Deep Pursuit dictionaries built on it).
    ///
    /// **Working sets.** A Gram-free solver solves each signal on a small working set `W` of
    /// groups: `W` starts as the groups active in the warm start (none from 0); each round adds
    /// the groups that violate the optimality condition `l_g^*(D_g^T r) <= gamma_g` at the
    /// current code (the most violating first, at least half as many as `W` holds or 16, all of
    /// them if fewer), solves the problem restricted to `W` with [`SolverParams::algorithm`] on the
    /// restricted dictionary's Gram matrix (`|W| x |W|`, grown by the new atoms' entries;
    /// warm-started from the current code, to a tenth of the current full gap while groups still
    /// join, to `tol` once none violates; FISTA / ISTA on a working set of more atoms than `D` has
    /// rows form `D_W^T (D_W y)` instead, holding no restricted Gram matrix: the thesis-size
    /// LGBP's layer 3 on an image its dictionary was not learned on grows `W` to ~1,300 atoms in
    /// 256 dimensions), and stops when the **full** problem's relative
    /// duality gap (module docs, from `D^T r` with `r = x - D z`) meets `tol`. Outside `W` the
    /// code is zero, so when no group outside `W` violates, the full gap is the restricted
    /// problem's and the acceptance rule is the one of [`Solver::new`]'s solvers; the codes
    /// differ from theirs only within the tolerance. `iterations` adds up the rounds' iterations
    /// (each round bounded by `max_iter`). With [`StoppingRule::ProxGradient`] a signal is
    /// accepted when its last restricted solve met that rule and no group outside `W` violates.
    ///
    /// The step constant `L` comes from power iteration on `D D^T` (`m < M`) built without its
    /// zero blocks; each group's block constant from `D_g^T D_g`. Uses of `G` elsewhere
    /// ([`crate::implicit`], [`Solver::gram_block`]) compute the entries they need from `D`.
    /// [`Solver::gram`] is then the empty matrix, and so is the `gram` field of the serialised
    /// solver (model files of such dictionaries are smaller, the format is the same).
    pub fn new_gram_free(d: DMatrix<f64>, groups: GroupSpec, params: SolverParams) -> Result<Self> {
        check_parts(&d, &groups, &params)?;
        let lipschitz = match params.lipschitz {
            Some(l) => l,
            None => {
                // D D^T (m x m) as the Gram matrix of D^T, without the zero blocks of a stacked D
                let small = if d.nrows() < d.ncols() { kernels::gram(&d.transpose()) } else { kernels::gram(&d) };
                power_iteration(&small, params.power_iter_max, params.power_iter_tol) * params.lipschitz_safety
            }
        };
        let col_rows = kernels::column_ranges(&d);
        let block_lipschitz = block_lipschitz_from_d(&d, &col_rows, &groups);
        Ok(Self { d, gram: DMatrix::zeros(0, 0), groups, params, lipschitz, block_lipschitz, dt: None, col_rows })
    }

    /// [`Solver::new_gram_free`] for a dictionary more than twice overcomplete
    /// ([`factored_products_pay`]), else [`Solver::new`]: the choice follows from the
    /// dictionary's shape alone, so a model rebuilt from its dictionaries makes the same one.
    pub fn new_for_shape(d: DMatrix<f64>, groups: GroupSpec, params: SolverParams) -> Result<Self> {
        if factored_products_pay(d.nrows(), d.ncols()) {
            Self::new_gram_free(d, groups, params)
        } else {
            Self::new(d, groups, params)
        }
    }

    /// Whether this solver holds no Gram matrix ([`Solver::new_gram_free`]).
    #[must_use]
    pub fn gram_free(&self) -> bool {
        self.gram.nrows() != self.d.ncols()
    }

    /// The `k x k` block `D_S^T D_S` of the Gram matrix for the atoms `atoms` (`S`, in that
    /// order): read from `G`, or for a Gram-free solver computed from `D`'s columns (without
    /// their zero rows).
    #[must_use]
    pub fn gram_block(&self, atoms: &[usize]) -> DMatrix<f64> {
        if self.gram_free() {
            kernels::gram(&self.d.select_columns(atoms))
        } else {
            DMatrix::from_fn(atoms.len(), atoms.len(), |i, j| self.gram[(atoms[i], atoms[j])])
        }
    }

    /// `D^T D` itself: [`Solver::gram`], or computed for a Gram-free solver.
    pub(crate) fn gram_or_computed(&self) -> std::borrow::Cow<'_, DMatrix<f64>> {
        if self.gram_free() {
            std::borrow::Cow::Owned(kernels::gram(&self.d))
        } else {
            std::borrow::Cow::Borrowed(&self.gram)
        }
    }

    /// This solver with FISTA / ISTA forming the gradient's `G y = D^T D y` as `D^T (D y)`:
    /// `2 m M` multiply-adds per signal and iteration instead of `M^2` (8x fewer for `D`
    /// 256 x 4096), and no `M x M` matrix streamed through the cache on every iteration. The
    /// iterates and the stopping rule (the relative duality gap, from `D^T r = b - D^T (D z)`)
    /// are the same in exact arithmetic; the rounding differs, so codes differ from those of
    /// `G y` within the tolerance. Coordinate descent and homotopy still use `G` (they read its
    /// columns). `on = false` restores `G y`. Not serialised: a decoded solver uses `G y`
    /// (build it again to choose). [`factored_products_pay`] says when it is cheaper.
    #[must_use]
    pub fn with_factored_products(mut self, on: bool) -> Self {
        self.dt = if on { Some(self.d.transpose()) } else { None };
        self
    }

    /// Whether FISTA / ISTA use `D^T (D y)` ([`Solver::with_factored_products`]).
    /// A Gram-free solver ([`Solver::new_gram_free`]) counts as factored: it only ever
    /// multiplies by `D` and `D^T`.
    #[must_use]
    pub fn factored_products(&self) -> bool {
        self.dt.is_some() || self.gram_free()
    }

    /// `out = G y`, as `D^T (D y)` in factored mode (`tmp` holds `D y`).
    fn gram_mul_to(&self, y: &DMatrix<f64>, out: &mut DMatrix<f64>, tmp: &mut DMatrix<f64>) {
        match &self.dt {
            None => self.gram.mul_to(y, out),
            Some(dt) => {
                if tmp.shape() != (self.d.nrows(), y.ncols()) {
                    *tmp = DMatrix::zeros(self.d.nrows(), y.ncols());
                }
                self.d.mul_to(y, tmp);
                dt.mul_to(tmp, out);
            }
        }
    }

    /// A solver with the same dictionary (reusing `G` and `L`) and other groups/weights.
    pub fn with_groups(&self, groups: GroupSpec) -> Result<Self> {
        if groups.n_atoms() != self.d.ncols() {
            return Err(SparseBpError::ShapeMismatch {
                what: "dictionary columns vs group atoms",
                expected: (self.d.nrows(), groups.n_atoms()),
                got: self.d.shape(),
            });
        }
        let mut s = Self::new_unchecked_parts(self, groups);
        s.params = self.params.clone();
        Ok(s)
    }

    fn new_unchecked_parts(base: &Self, groups: GroupSpec) -> Self {
        if base.gram_free() {
            let col_rows = kernels::column_ranges(&base.d);
            let block_lipschitz = block_lipschitz_from_d(&base.d, &col_rows, &groups);
            return Self { groups, block_lipschitz, col_rows, ..base.clone() };
        }
        let block_lipschitz = groups
            .groups()
            .iter()
            .map(|g| {
                if g.atoms.len() == 1 {
                    base.gram[(g.atoms[0], g.atoms[0])]
                } else {
                    let sub =
                        DMatrix::from_fn(g.atoms.len(), g.atoms.len(), |i, j| base.gram[(g.atoms[i], g.atoms[j])]);
                    sub.symmetric_eigenvalues().max() * (1.0 + 1e-12)
                }
            })
            .collect();
        Self {
            d: base.d.clone(),
            gram: base.gram.clone(),
            groups,
            params: base.params.clone(),
            lipschitz: base.lipschitz,
            block_lipschitz,
            dt: base.dt.clone(),
            col_rows: Vec::new(),
        }
    }

    /// A solver with the same dictionary and groups and other (checked) params.
    pub fn with_params(&self, params: SolverParams) -> Result<Self> {
        params.check()?;
        let mut s = self.clone();
        if let Some(l) = params.lipschitz {
            s.lipschitz = l;
        }
        s.params = params;
        Ok(s)
    }

    /// The dictionary `D` (`m x M`).
    #[must_use]
    pub fn dictionary(&self) -> &DMatrix<f64> {
        &self.d
    }
    /// The Gram matrix `D^T D` (the empty matrix for a Gram-free solver,
    /// [`Solver::new_gram_free`]; [`Solver::gram_block`] gives its blocks either way).
    #[must_use]
    pub fn gram(&self) -> &DMatrix<f64> {
        &self.gram
    }
    /// The group structure.
    #[must_use]
    pub fn groups(&self) -> &GroupSpec {
        &self.groups
    }
    /// The parameters.
    #[must_use]
    pub fn params(&self) -> &SolverParams {
        &self.params
    }
    /// The step constant `L`.
    #[must_use]
    pub fn lipschitz(&self) -> f64 {
        self.lipschitz
    }

    fn check_signals(&self, x: &DMatrix<f64>) -> Result<()> {
        if x.nrows() != self.d.nrows() {
            return Err(SparseBpError::ShapeMismatch {
                what: "signals X",
                expected: (self.d.nrows(), x.ncols()),
                got: x.shape(),
            });
        }
        check_finite("signals X", x.as_slice())
    }

    /// Objective `P(z)` for one signal.
    pub fn objective(&self, x: &DVector<f64>, z: &DVector<f64>) -> Result<f64> {
        self.check_pair(x, z)?;
        Ok(0.5 * (x - &self.d * z).norm_squared() + self.groups.penalty(z.as_slice()))
    }

    /// Absolute duality gap `P(z) - D(theta(z))` for one signal (see the module docs).
    pub fn duality_gap(&self, x: &DVector<f64>, z: &DVector<f64>) -> Result<f64> {
        self.check_pair(x, z)?;
        let b = self.d.tr_mul(x);
        let v = if self.gram_free() { &b - self.d.tr_mul(&(&self.d * z)) } else { &b - &self.gram * z };
        let mut scratch = Vec::new();
        Ok(self.gap_abs(z.as_slice(), v.as_slice(), b.as_slice(), x.norm_squared(), &mut scratch))
    }

    fn check_pair(&self, x: &DVector<f64>, z: &DVector<f64>) -> Result<()> {
        if x.len() != self.d.nrows() || z.len() != self.d.ncols() {
            return Err(SparseBpError::ShapeMismatch {
                what: "(signal, code)",
                expected: (self.d.nrows(), self.d.ncols()),
                got: (x.len(), z.len()),
            });
        }
        check_finite("signal", x.as_slice())?;
        check_finite("code", z.as_slice())
    }

    /// Absolute gap from `z`, `v = D^T r = b - G z`, `b = D^T x`, `xx = ||x||^2`.
    fn gap_abs(&self, z: &[f64], v: &[f64], b: &[f64], xx: f64, scratch: &mut Vec<f64>) -> f64 {
        let zb: f64 = z.iter().zip(b).map(|(a, b)| a * b).sum();
        let zv: f64 = z.iter().zip(v).map(|(a, b)| a * b).sum();
        let rr = (xx - 2.0 * zb + (zb - zv)).max(0.0);
        let xr = xx - zb;
        let ratio = self.groups.dual_ratio(v, scratch);
        let s = if ratio > 1.0 { 1.0 / ratio } else { 1.0 };
        let pen = self.groups.penalty(z);
        (0.5 * (1.0 + s * s) * rr - s * xr + pen).max(0.0)
    }

    fn gap_rel(&self, z: &[f64], v: &[f64], b: &[f64], xx: f64, scratch: &mut Vec<f64>) -> f64 {
        if xx == 0.0 {
            return 0.0;
        }
        self.gap_abs(z, v, b, xx, scratch) / (0.5 * xx)
    }

    /// Solve for every column of `X` (`m x n`) from `Gamma = 0`.
    pub fn solve(&self, x: &DMatrix<f64>) -> Result<Solution> {
        self.solve_inner(x, None)
    }

    /// Solve from a warm start `init` (`M x n`).
    pub fn solve_warm(&self, x: &DMatrix<f64>, init: &DMatrix<f64>) -> Result<Solution> {
        if init.shape() != (self.d.ncols(), x.ncols()) {
            return Err(SparseBpError::ShapeMismatch {
                what: "warm start",
                expected: (self.d.ncols(), x.ncols()),
                got: init.shape(),
            });
        }
        check_finite("warm start", init.as_slice())?;
        self.solve_inner(x, Some(init))
    }

    /// Solve one signal; returns the code and its diagnostics as a one-column [`Solution`].
    pub fn solve_vector(&self, x: &DVector<f64>) -> Result<Solution> {
        let xm = DMatrix::from_column_slice(x.len(), 1, x.as_slice());
        self.solve(&xm)
    }

    fn solve_inner(&self, x: &DMatrix<f64>, init: Option<&DMatrix<f64>>) -> Result<Solution> {
        self.check_signals(x)?;
        let n = x.ncols();
        let big_m = self.d.ncols();
        let _span = tracing::debug_span!("gbp_solve", n, atoms = big_m).entered();
        if n == 0 {
            return Ok(Solution {
                codes: DMatrix::zeros(big_m, 0),
                iterations: vec![],
                gaps: vec![],
                converged: vec![],
            });
        }
        // D^T X as a matrix product (the blocked, SIMD gemm path of nalgebra / matrixmultiply)
        let b_all = self.d.transpose() * x;
        let xx: Vec<f64> = x.column_iter().map(|c| c.norm_squared()).collect();
        let ranges = chunk_ranges(n, self.params.chunk_size, min_chunk_signals(self.params.algorithm));
        let gram_free = self.gram_free();
        let run = |&(s, e): &(usize, usize)| {
            let b = b_all.columns(s, e - s).into_owned();
            let z0 = init.map(|i| i.columns(s, e - s).into_owned());
            if gram_free {
                return self.working_set_chunk(&x.columns(s, e - s).into_owned(), &b, &xx[s..e], z0);
            }
            self.solve_chunk(&b, &xx[s..e], z0)
        };
        let parts: Vec<ChunkOut> = if self.params.parallel && ranges.len() > 1 {
            ranges.par_iter().map(run).collect()
        } else {
            ranges.iter().map(run).collect()
        };
        let mut codes = DMatrix::zeros(big_m, n);
        let mut iterations = Vec::with_capacity(n);
        let mut gaps = Vec::with_capacity(n);
        let mut converged = Vec::with_capacity(n);
        for ((s, e), p) in ranges.iter().zip(parts) {
            codes.columns_mut(*s, e - s).copy_from(&p.codes);
            iterations.extend(p.iterations);
            gaps.extend(p.gaps);
            converged.extend(p.converged);
        }
        let n_fail = converged.iter().filter(|c| !**c).count();
        if n_fail > 0 {
            tracing::warn!(n_fail, "gbp_solve: signals did not reach the tolerance");
        }
        Ok(Solution { codes, iterations, gaps, converged })
    }

    /// One chunk with [`SolverParams::algorithm`] on `G`; `b = D^T X_chunk`, `xx` the signals'
    /// squared norms, `init` the warm start.
    fn solve_chunk(&self, b: &DMatrix<f64>, xx: &[f64], z0: Option<DMatrix<f64>>) -> ChunkOut {
        match self.params.algorithm {
            Algorithm::Fista => self.prox_grad_chunk(b, xx, z0, true),
            Algorithm::Ista => self.prox_grad_chunk(b, xx, z0, false),
            Algorithm::CoordinateDescent => self.cd_chunk(b, xx, z0),
            Algorithm::Homotopy => self.homotopy_chunk(b, xx),
            Algorithm::Auto => {
                if z0.is_none() && self.groups.singleton_thresholds().is_some() {
                    self.homotopy_chunk(b, xx)
                } else {
                    self.cd_chunk(b, xx, z0)
                }
            }
        }
    }

    /// The working-set solve of a Gram-free solver ([`Solver::new_gram_free`]) on one chunk,
    /// signal by signal; `x` the chunk's signals, `b = D^T x`.
    fn working_set_chunk(
        &self,
        x: &DMatrix<f64>,
        b: &DMatrix<f64>,
        xx: &[f64],
        init: Option<DMatrix<f64>>,
    ) -> ChunkOut {
        let (big_m, c) = b.shape();
        let mut out = ChunkOut::new(big_m, c, self.params.max_iter);
        let computed;
        let rows = if self.col_rows.len() == big_m {
            &self.col_rows
        } else {
            computed = kernels::column_ranges(&self.d);
            &computed
        };
        for (j, &xxj) in xx.iter().enumerate().take(c) {
            let z0 = init.as_ref().map(|i| i.column(j).into_owned());
            let cold = z0.is_none();
            let z0 = z0.unwrap_or_else(|| DVector::zeros(big_m));
            let (z, it, gap, ok) =
                self.working_set_column(&x.column(j).into_owned(), b.column(j).as_slice(), xxj, z0, cold, rows);
            out.codes.column_mut(j).copy_from(&z);
            out.iterations[j] = it;
            out.gaps[j] = gap;
            out.converged[j] = ok;
        }
        out
    }

    /// One signal's working-set solve (see [`Solver::new_gram_free`]): code, iterations, final
    /// relative gap, converged.
    fn working_set_column(
        &self,
        x: &DVector<f64>,
        b: &[f64],
        xx: f64,
        mut z: DVector<f64>,
        cold: bool,
        rows: &[(usize, usize)],
    ) -> (DVector<f64>, usize, f64, bool) {
        let p = &self.params;
        let groups = self.groups.groups();
        let nonneg = self.groups.nonneg();
        // v = D^T (x - D z) = b - G z, from the non-zero rows of D's columns
        let v_at = |z: &DVector<f64>| -> DVector<f64> {
            let mut r = x.clone();
            for (a, &za) in z.iter().enumerate() {
                if za != 0.0 {
                    let (lo, hi) = rows[a];
                    r.rows_mut(lo, hi - lo).axpy(-za, &self.d.column(a).rows(lo, hi - lo), 1.0);
                }
            }
            kernels::tr_mul_vec(&self.d, rows, &r)
        };
        let cold_auto = cold && p.algorithm == Algorithm::Auto && self.groups.singleton_thresholds().is_some();
        // FISTA / ISTA on a working set of more atoms than rows (the thesis-size LGBP's layer 3
        // on a held-out or test image grows W to ~1,300 atoms in 256 dimensions): products
        // `D_W^T (D_W y)` and no restricted Gram matrix, `L` from `D_W D_W^T` (m x m, grown by the
        // new atoms' outer products). From `|W| > m`, not `2 m` (`factored_products_pay`): building
        // the restricted Gram matrix and `D_W D_W^T` each round cost more than the products save
        // (callgrind, `thesis_layer3_profile STAGE_DIR images lgbp 10 2000`, quick tolerance: the
        // working-set solves 21.24 G instructions with restricted Gram matrices only, 9.23 G from
        // `2 m`, 8.36 G from `m`)
        let prox_grad = matches!(p.algorithm, Algorithm::Fista | Algorithm::Ista);
        let m = self.d.nrows();
        let mut ddt: Option<DMatrix<f64>> = None;
        let mut in_w = vec![false; groups.len()];
        // W's groups in the order they joined (warm start's active groups first), their atoms,
        // and the restricted Gram matrix, grown by the new atoms' columns each round
        let mut w_groups: Vec<usize> = Vec::new();
        let mut atoms: Vec<usize> = Vec::new();
        let mut gw = DMatrix::zeros(0, 0);
        let mut v = v_at(&z);
        let mut scratch = Vec::new();
        let mut iterations = 0;
        let mut inner_ok = false;
        let mut gap = f64::INFINITY;
        let mut inner_tol = p.tol;
        let sub_params = SolverParams {
            parallel: false,
            // coordinate descent needs no L: skip the power iteration
            lipschitz: match p.algorithm {
                Algorithm::Fista | Algorithm::Ista => p.lipschitz,
                _ => Some(self.lipschitz),
            },
            power_iter_tol: p.power_iter_tol.max(1e-9),
            ..p.clone()
        };
        for round in 0..WORKING_SET_ROUNDS {
            gap = self.gap_rel(z.as_slice(), v.as_slice(), b, xx, &mut scratch);
            // groups outside W: active ones (a warm start's) join first, then the violating
            // ones, the most violating first
            let mut viol: Vec<(f64, usize)> = groups
                .iter()
                .enumerate()
                .filter(|(gi, _)| !in_w[*gi])
                .filter_map(|(gi, g)| {
                    if g.atoms.iter().any(|&a| z[a] != 0.0) {
                        return Some((f64::INFINITY, gi));
                    }
                    gather(v.as_slice(), &g.atoms, &mut scratch);
                    let ratio = g.norm.dual(&scratch, nonneg) / g.weight;
                    (ratio > 1.0).then_some((ratio, gi))
                })
                .collect();
            let done = match p.stopping {
                StoppingRule::DualityGap => gap <= p.tol,
                StoppingRule::ProxGradient => round > 0 && inner_ok && viol.is_empty(),
            };
            if done {
                return (z, iterations, gap, true);
            }
            if viol.is_empty() && round > 0 {
                if inner_tol <= p.tol {
                    // the restricted solve missed its tolerance (max_iter): nothing to add
                    return (z, iterations, gap, false);
                }
                inner_tol = p.tol;
            } else {
                // a loose restricted solve while W still grows (a tenth of the full gap), the
                // tolerance itself once nothing violates
                inner_tol = (0.1 * gap).max(p.tol);
            }
            // the warm start's active groups all join, violating ones growing W by half at least
            // (doubling it grew the stacked GDP problem's W well past its support: its restricted
            // Gram matrix took a quarter of the solve; `thesis_layer3_profile STAGE_DIR step gdp
            // 100`, cold pursuit 5.81 -> 4.52 s cpu; DP 1.97 -> 2.04 s, LGBP 0.69 -> 0.68 s)
            let forced = viol.iter().filter(|v| v.0 == f64::INFINITY).count();
            let add = viol.len().min(forced.max(w_groups.len() / 2).max(WORKING_SET_MIN_ADD));
            viol.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let n_old = atoms.len();
            for &(_, gi) in &viol[..add] {
                in_w[gi] = true;
                w_groups.push(gi);
                atoms.extend_from_slice(&groups[gi].atoms);
            }
            let n = atoms.len();
            let factored = prox_grad && n > m;
            if n > n_old {
                if factored {
                    // W only grows: once factored, every later round is too
                    let from = if ddt.is_some() { n_old } else { 0 };
                    let new = self.d.select_columns(&atoms[from..]);
                    match ddt.as_mut() {
                        Some(a) => a.gemm(1.0, &new, &new.transpose(), 1.0),
                        None => ddt = Some(&new * new.transpose()),
                    }
                } else {
                    gw = kernels::gram_extend(&self.d, rows, &atoms, &gw);
                }
            }
            let mut sub_groups = Vec::with_capacity(w_groups.len());
            let mut start = 0;
            for &gi in &w_groups {
                let g = &groups[gi];
                sub_groups.push(Group::new((start..start + g.atoms.len()).collect(), g.weight, g.norm.clone()));
                start += g.atoms.len();
            }
            let Ok(spec) = GroupSpec::new(n, sub_groups) else {
                return (z, iterations, gap, false);
            };
            let d_w = self.d.select_columns(&atoms);
            let sub_p = SolverParams { tol: inner_tol, ..sub_params.clone() };
            let sub = match &ddt {
                Some(ddt) if factored => {
                    let block = w_groups.iter().map(|&gi| self.block_lipschitz[gi]).collect();
                    Solver::factored_restricted(d_w, ddt, spec.with_nonneg(nonneg), sub_p, block)
                }
                _ => Solver::with_gram(d_w, gw.clone(), spec.with_nonneg(nonneg), sub_p),
            };
            // D_W^T x is b on W's atoms
            let bw = DMatrix::from_fn(n, 1, |k, _| b[atoms[k]]);
            // `Auto` without a warm start: the exact homotopy path on a lasso's working set
            let zw = (!cold_auto).then(|| DMatrix::from_fn(n, 1, |k, _| z[atoms[k]]));
            let sol = sub.solve_chunk(&bw, &[xx], zw);
            iterations += sol.iterations[0];
            inner_ok = sol.converged[0];
            for (k, &a) in atoms.iter().enumerate() {
                z[a] = sol.codes[(k, 0)];
            }
            v = v_at(&z);
            tracing::trace!(
                round,
                groups = w_groups.len(),
                atoms = n,
                iterations = sol.iterations[0],
                gap,
                inner_tol,
                "working set"
            );
        }
        (z, iterations, gap, false)
    }

    /// FISTA / ISTA on one chunk; `b = D^T X_chunk`.
    fn prox_grad_chunk(&self, b: &DMatrix<f64>, xx: &[f64], init: Option<DMatrix<f64>>, accelerate: bool) -> ChunkOut {
        let (big_m, c) = b.shape();
        let p = &self.params;
        let l = self.lipschitz.max(f64::MIN_POSITIVE);
        let step = 1.0 / l;
        let mut out = ChunkOut::new(big_m, c, p.max_iter);
        let mut active: Vec<usize> = (0..c).collect();
        let mut bw = b.clone();
        let mut xxw = xx.to_vec();
        let mut z = init.unwrap_or_else(|| DMatrix::zeros(big_m, c));
        let mut y = z.clone();
        let mut w = DMatrix::zeros(big_m, c);
        let mut gz = DMatrix::zeros(big_m, c);
        let mut tmp = DMatrix::zeros(0, 0);
        let mut t: Vec<f64> = vec![1.0; c];
        let mut scratch = Vec::new();
        let mut pg = vec![0.0; c];
        for k in 1..=p.max_iter {
            let check = k % p.check_every == 0 || k == p.max_iter;
            // w = prox(y - step (G y - b))
            self.gram_mul_to(&y, &mut w, &mut tmp);
            let nc = active.len();
            for j in 0..nc {
                {
                    let wc = w.column_mut(j);
                    let ws = wc.data.into_slice_mut();
                    let ys = y.column(j);
                    let bs = bw.column(j);
                    for i in 0..big_m {
                        ws[i] = ys[i] - step * (ws[i] - bs[i]);
                    }
                    self.groups.prox_mut(ws, step, &mut scratch);
                }
                if check {
                    pg[j] = l * (w.column(j) - y.column(j)).norm();
                }
                let mut ycol = y.column_mut(j);
                let wcol = w.column(j);
                let zcol = z.column(j);
                if accelerate {
                    let mut dot = 0.0;
                    if p.restart {
                        for i in 0..big_m {
                            dot += (ycol[i] - wcol[i]) * (wcol[i] - zcol[i]);
                        }
                    }
                    if dot > 0.0 {
                        t[j] = 1.0;
                        ycol.copy_from(&wcol);
                    } else {
                        let tn = 0.5 * (1.0 + (1.0 + 4.0 * t[j] * t[j]).sqrt());
                        let beta = (t[j] - 1.0) / tn;
                        for i in 0..big_m {
                            ycol[i] = wcol[i] + beta * (wcol[i] - zcol[i]);
                        }
                        t[j] = tn;
                    }
                } else {
                    ycol.copy_from(&wcol);
                }
            }
            std::mem::swap(&mut z, &mut w);
            if !check {
                continue;
            }
            self.gram_mul_to(&z, &mut gz, &mut tmp);
            let mut keep = Vec::with_capacity(nc);
            for j in 0..nc {
                let v: Vec<f64> = (0..big_m).map(|i| bw[(i, j)] - gz[(i, j)]).collect();
                let gap = self.gap_rel(z.column(j).as_slice(), &v, bw.column(j).as_slice(), xxw[j], &mut scratch);
                let done = match p.stopping {
                    StoppingRule::DualityGap => gap <= p.tol,
                    StoppingRule::ProxGradient => pg[j] <= p.tol * bw.column(j).norm().max(1e-300),
                };
                let orig = active[j];
                out.gaps[orig] = gap;
                if done || k == p.max_iter {
                    out.codes.column_mut(orig).copy_from(&z.column(j));
                    out.iterations[orig] = k;
                    out.converged[orig] = done;
                } else {
                    keep.push(j);
                }
            }
            if keep.is_empty() {
                break;
            }
            if keep.len() < nc {
                z = z.select_columns(&keep);
                y = y.select_columns(&keep);
                bw = bw.select_columns(&keep);
                xxw = keep.iter().map(|&j| xxw[j]).collect();
                t = keep.iter().map(|&j| t[j]).collect();
                active = keep.iter().map(|&j| active[j]).collect();
                w = DMatrix::zeros(big_m, keep.len());
                gz = DMatrix::zeros(big_m, keep.len());
            }
        }
        out
    }

    /// Coordinate descent on one chunk, parallel-free (chunks are the parallel unit).
    #[allow(clippy::needless_range_loop)]
    fn cd_chunk(&self, b: &DMatrix<f64>, xx: &[f64], init: Option<DMatrix<f64>>) -> ChunkOut {
        let (big_m, c) = b.shape();
        let mut out = ChunkOut::new(big_m, c, self.params.max_iter);
        if let Some(z0) = init {
            out.codes.copy_from(&z0);
        }
        let mut grad = vec![0.0; big_m];
        let mut scratch = Vec::new();
        let mut zg = Vec::new();
        let mut v = vec![0.0; big_m];
        // the non-zero rows of every Gram column (a stacked Deep Pursuit Gram matrix is block
        // tridiagonal): the gradient updates skip the exact zeros (bit for bit, `kernels`)
        let rows = kernels::column_ranges(&self.gram);
        for j in 0..c {
            let bcol = b.column(j);
            let bs = bcol.as_slice();
            let mut zc = out.codes.column(j).clone_owned();
            let z = zc.as_mut_slice();
            let fast = match self.groups.singleton_thresholds() {
                Some(t) if self.params.stopping == StoppingRule::DualityGap => Some(t),
                _ => None,
            };
            let (it, gap, ok) = match fast {
                Some(t) => self.cd_lasso_column(bs, xx[j], z, t, &rows, &mut grad, &mut v, &mut scratch),
                None => self.cd_column(bs, xx[j], z, &rows, &mut grad, &mut v, &mut zg, &mut scratch),
            };
            out.codes.column_mut(j).copy_from(&zc);
            out.iterations[j] = it;
            out.gaps[j] = gap;
            out.converged[j] = ok;
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn cd_column(
        &self,
        b: &[f64],
        xx: f64,
        z: &mut [f64],
        rows: &[(usize, usize)],
        grad: &mut [f64],
        v: &mut [f64],
        zg: &mut Vec<f64>,
        scratch: &mut Vec<f64>,
    ) -> (usize, f64, bool) {
        let big_m = b.len();
        let gram = self.gram.as_slice();
        let nonneg = self.groups.nonneg();
        let p = &self.params;
        // grad = G z - b
        for i in 0..big_m {
            grad[i] = -b[i];
        }
        for (a, &za) in z.iter().enumerate() {
            if za != 0.0 {
                kernels::axpy_in(grad, &gram[a * big_m..(a + 1) * big_m], za, rows[a]);
            }
        }
        let lmax = self.block_lipschitz.iter().copied().fold(0.0, f64::max);
        let mut upd: Vec<(usize, f64)> = Vec::new();
        let mut gap = f64::INFINITY;
        let mut last_sig = (usize::MAX, 0u64);
        let mut last_try = 0usize;
        for epoch in 1..=p.max_iter {
            let mut move_sq = 0.0;
            for (gi, g) in self.groups.groups().iter().enumerate() {
                let lg = self.block_lipschitz[gi];
                if lg <= 0.0 {
                    continue;
                }
                if g.atoms.len() == 1 && g.norm == GroupNorm::L1 {
                    let a = g.atoms[0];
                    let old = z[a];
                    let u = old - grad[a] / lg;
                    let new = if nonneg {
                        crate::prox::soft_threshold_nonneg(u, g.weight / lg)
                    } else {
                        crate::prox::soft_threshold(u, g.weight / lg)
                    };
                    let delta = new - old;
                    if delta != 0.0 {
                        z[a] = new;
                        move_sq += delta * delta;
                        kernels::axpy_in(grad, &gram[a * big_m..(a + 1) * big_m], delta, rows[a]);
                    }
                    continue;
                }
                gather(z, &g.atoms, zg);
                for (k, &a) in g.atoms.iter().enumerate() {
                    zg[k] -= grad[a] / lg;
                }
                g.norm.prox_mut(zg, g.weight / lg, nonneg);
                upd.clear();
                for (k, &a) in g.atoms.iter().enumerate() {
                    let delta = zg[k] - z[a];
                    if delta != 0.0 {
                        z[a] = zg[k];
                        move_sq += delta * delta;
                        upd.push((a, delta));
                    }
                }
                // the group's atoms' gradient updates in one pass, each entry summed in atom order
                kernels::add_columns(grad, gram, &upd, rows);
            }
            for i in 0..big_m {
                v[i] = -grad[i];
            }
            let done = match p.stopping {
                StoppingRule::DualityGap => {
                    gap = self.gap_rel(z, v, b, xx, scratch);
                    if gap > p.tol
                        && p.polish
                        && let Some(t) = self.groups.singleton_thresholds()
                    {
                        let sig = support_signature(z);
                        if sig == last_sig && epoch >= last_try + 3 {
                            last_try = epoch;
                            if let Some(g2) = self.polish_l1(b, xx, z, t, grad, v, scratch) {
                                gap = g2;
                            }
                        }
                        last_sig = sig;
                    }
                    gap <= p.tol
                }
                StoppingRule::ProxGradient => {
                    let bn = b.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
                    lmax * move_sq.sqrt() <= p.tol * bn
                }
            };
            if done {
                if p.stopping == StoppingRule::ProxGradient {
                    gap = self.gap_rel(z, v, b, xx, scratch);
                }
                return (epoch, gap, true);
            }
        }
        if p.stopping == StoppingRule::ProxGradient {
            gap = self.gap_rel(z, v, b, xx, scratch);
        }
        (p.max_iter, gap, false)
    }
}

impl Solver {
    /// Lasso / weighted-lasso coordinate descent with an active-set inner loop: one full
    /// sweep (all atoms, full gradient), a duality-gap check, then up to 50 sweeps over
    /// the non-zero atoms only (gradient kept on those atoms), a full-gradient refresh and
    /// a support-polishing attempt (accepted only if its gap meets `tol`).
    #[allow(clippy::too_many_arguments)]
    fn cd_lasso_column(
        &self,
        b: &[f64],
        xx: f64,
        z: &mut [f64],
        t: &[f64],
        rows: &[(usize, usize)],
        grad: &mut [f64],
        v: &mut [f64],
        scratch: &mut Vec<f64>,
    ) -> (usize, f64, bool) {
        let big_m = b.len();
        let gram = self.gram.as_slice();
        let nonneg = self.groups.nonneg();
        let p = &self.params;
        let refresh = |z: &[f64], grad: &mut [f64]| {
            grad.iter_mut().zip(b).for_each(|(g, bi)| *g = -bi);
            for (a, &za) in z.iter().enumerate() {
                if za != 0.0 {
                    kernels::axpy_in(grad, &gram[a * big_m..(a + 1) * big_m], za, rows[a]);
                }
            }
        };
        let step = |a: usize, z: &[f64], grad: &[f64]| -> f64 {
            let daa = gram[a * big_m + a];
            let u = z[a] - grad[a] / daa;
            if nonneg {
                crate::prox::soft_threshold_nonneg(u, t[a] / daa)
            } else {
                crate::prox::soft_threshold(u, t[a] / daa)
            }
        };
        refresh(z, grad);
        let mut active: Vec<usize> = Vec::new();
        let mut gap = f64::INFINITY;
        let mut last_sig = (usize::MAX, 0u64);
        for epoch in 1..=p.max_iter {
            for a in 0..big_m {
                if gram[a * big_m + a] <= 0.0 {
                    continue;
                }
                let new = step(a, z, grad);
                let delta = new - z[a];
                if delta != 0.0 {
                    z[a] = new;
                    kernels::axpy_in(grad, &gram[a * big_m..(a + 1) * big_m], delta, rows[a]);
                }
            }
            v.iter_mut().zip(grad.iter()).for_each(|(vi, g)| *vi = -g);
            gap = self.gap_rel(z, v, b, xx, scratch);
            if gap <= p.tol {
                return (epoch, gap, true);
            }
            // if the signed support did not move in this sweep, try the closed form first
            let sig = support_signature(z);
            if p.polish
                && sig == last_sig
                && sig.0 > 0
                && let Some(g2) = self.polish_l1(b, xx, z, t, grad, v, scratch)
            {
                return (epoch, g2, true);
            }
            last_sig = sig;
            active.clear();
            active.extend((0..big_m).filter(|&a| z[a] != 0.0));
            if active.is_empty() {
                continue;
            }
            let zmax = active.iter().map(|&a| z[a].abs()).fold(0.0, f64::max);
            for _ in 0..10 {
                let mut maxd: f64 = 0.0;
                for &a in &active {
                    let new = step(a, z, grad);
                    let delta = new - z[a];
                    if delta != 0.0 {
                        z[a] = new;
                        let col = &gram[a * big_m..(a + 1) * big_m];
                        for &i in &active {
                            grad[i] += col[i] * delta;
                        }
                        maxd = maxd.max(delta.abs());
                    }
                }
                if maxd <= 1e-4 * (1.0 + zmax) {
                    break;
                }
            }
            refresh(z, grad);
            if p.polish
                && let Some(g2) = self.polish_l1(b, xx, z, t, grad, v, scratch)
            {
                return (epoch, g2, true);
            }
        }
        v.iter_mut().zip(grad.iter()).for_each(|(vi, g)| *vi = -g);
        gap = gap.min(self.gap_rel(z, v, b, xx, scratch));
        (p.max_iter, gap, false)
    }
}

/// (support size, hash of signed support) of a code.
fn support_signature(z: &[f64]) -> (usize, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0;
    for (i, &v) in z.iter().enumerate() {
        if v != 0.0 {
            n += 1;
            let key = (i as u64) << 1 | u64::from(v > 0.0);
            h = (h ^ key).wrapping_mul(0x0100_0000_01b3);
        }
    }
    (n, h)
}

impl Solver {
    /// Lasso support polishing: solve `G_AA y = b_A - t_A sign(z_A)` on the current signed
    /// support `A`; if `y` keeps the signs and its duality gap is below `tol`, replace `z`
    /// (and `grad`, `v`) by it and return the gap. Otherwise leave everything unchanged.
    #[allow(clippy::too_many_arguments)]
    fn polish_l1(
        &self,
        b: &[f64],
        xx: f64,
        z: &mut [f64],
        t: &[f64],
        grad: &mut [f64],
        v: &mut [f64],
        scratch: &mut Vec<f64>,
    ) -> Option<f64> {
        let big_m = b.len();
        let act: Vec<usize> = (0..big_m).filter(|&i| z[i] != 0.0).collect();
        if act.is_empty() || act.len() > self.d.nrows() {
            return None;
        }
        let gaa = DMatrix::from_fn(act.len(), act.len(), |i, j| self.gram[(act[i], act[j])]);
        let rhs = DVector::from_fn(act.len(), |i, _| {
            let a = act[i];
            b[a] - t[a] * z[a].signum()
        });
        let y = gaa.cholesky()?.solve(&rhs);
        if act.iter().zip(y.iter()).any(|(&a, &yi)| yi == 0.0 || yi.signum() != z[a].signum()) {
            return None;
        }
        let mut zn = vec![0.0; big_m];
        for (&a, &yi) in act.iter().zip(y.iter()) {
            zn[a] = yi;
        }
        let gram = self.gram.as_slice();
        let mut vn: Vec<f64> = b.to_vec();
        for (&a, &yi) in act.iter().zip(y.iter()) {
            let col = &gram[a * big_m..(a + 1) * big_m];
            vn.iter_mut().zip(col).for_each(|(vv, c)| *vv -= c * yi);
        }
        let gap = self.gap_rel(&zn, &vn, b, xx, scratch);
        if gap <= self.params.tol {
            z.copy_from_slice(&zn);
            v.copy_from_slice(&vn);
            grad.iter_mut().zip(&vn).for_each(|(g, vv)| *g = -vv);
            Some(gap)
        } else {
            None
        }
    }
}

/// A batch is split into up to this many chunks (the parallel work units) when it has enough
/// signals for them (see [`min_chunk_signals`]), so that a batch smaller than `chunk_size` (an
/// end-to-end training batch of 100 images, a quick run's attack) still runs on several cores.
/// Eight: an even count that shares out evenly on 2 or 4 threads and leaves rayon room to
/// balance signals that need more iterations than others.
const SMALL_BATCH_CHUNKS: usize = 8;

/// A small batch gets one chunk per this many signals, rounded up (so a chunk may hold fewer:
/// 100 signals make 4 FISTA chunks of 25): 32 for FISTA / ISTA, whose Gram-matrix
/// product runs per chunk and repacks the `M x M` Gram matrix on every call (on one thread a
/// cold FISTA solve of 100 MNIST test images with 256 atoms took 1.12x / 1.22x / 1.76x (BP)
/// and 0.95x / 1.39x / 1.52x (PGBP) the time of one chunk in 2 / 4 / 8 chunks, one run each,
/// `examples/small_batch_threads.rs`, load about 3 on 2 cores); 4 for coordinate descent and
/// homotopy, which solve column by column.
fn min_chunk_signals(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::Fista | Algorithm::Ista => 32,
        Algorithm::CoordinateDescent | Algorithm::Homotopy | Algorithm::Auto => 4,
    }
}

/// The chunks `[start, end)` a batch of `n` signals is solved in: `k = max(ceil(n /
/// chunk_size), min(SMALL_BATCH_CHUNKS, ceil(n / min_signals)))` contiguous chunks whose
/// sizes differ by at most one (the first `n mod k` one longer), none longer than
/// `chunk_size`. It depends on its arguments only, never on the number of threads, so a solve
/// gives the same codes bit for bit on any number of threads (FISTA's matrix products run per
/// chunk, and a column's rounding can depend on its chunk's width).
pub(crate) fn chunk_ranges(n: usize, chunk_size: usize, min_signals: usize) -> Vec<(usize, usize)> {
    if n == 0 {
        return Vec::new();
    }
    let k = n.div_ceil(chunk_size.max(1)).max(SMALL_BATCH_CHUNKS.min(n.div_ceil(min_signals.max(1))));
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = (start, start + len);
            start += len;
            r
        })
        .collect()
}

struct ChunkOut {
    codes: DMatrix<f64>,
    iterations: Vec<usize>,
    gaps: Vec<f64>,
    converged: Vec<bool>,
}

impl ChunkOut {
    fn new(big_m: usize, c: usize, max_iter: usize) -> Self {
        Self {
            codes: DMatrix::zeros(big_m, c),
            iterations: vec![max_iter; c],
            gaps: vec![f64::INFINITY; c],
            converged: vec![false; c],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Algorithm, Solver, SolverParams, chunk_ranges, kernels, min_chunk_signals};
    use crate::groups::{Group, GroupNorm, GroupSpec};
    use nalgebra::DMatrix;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// One signal's coordinate descent as `cd_chunk` runs it, with the Gram columns' rows `rows`.
    fn cd_one(s: &Solver, b: &[f64], xx: f64, z0: &[f64], rows: &[(usize, usize)]) -> (Vec<f64>, usize, f64, bool) {
        let m = b.len();
        let (mut z, mut grad, mut v) = (z0.to_vec(), vec![0.0; m], vec![0.0; m]);
        let (mut zg, mut scratch) = (Vec::new(), Vec::new());
        let (it, gap, ok) = match s.groups.singleton_thresholds() {
            Some(t) => s.cd_lasso_column(b, xx, &mut z, t, rows, &mut grad, &mut v, &mut scratch),
            None => s.cd_column(b, xx, &mut z, rows, &mut grad, &mut v, &mut zg, &mut scratch),
        };
        (z, it, gap, ok)
    }

    /// A working set's FISTA / ISTA solver without its Gram matrix (`factored_restricted`, the
    /// restricted solves of a Gram-free working set of more atoms than rows) runs the Gram
    /// solver's iterations: the same step constant, iteration counts and convergence, codes within
    /// rounding, every gap within the tolerance, on an 8 x 40 dictionary with groups of 4.
    #[test]
    fn factored_restricted_solves_as_the_gram_solver() {
        let mut rng = StdRng::seed_from_u64(31);
        let (m, big_m) = (8, 40);
        let mut d = DMatrix::from_fn(m, big_m, |_, _| rng.random_range(-1.0..1.0));
        d.column_iter_mut().for_each(|mut c| c /= c.norm());
        let x = DMatrix::from_fn(m, 6, |_, _| rng.random_range(-2.0..2.0));
        let b = d.tr_mul(&x);
        let xx: Vec<f64> = x.column_iter().map(|c| c.norm_squared()).collect();
        let spec = GroupSpec::contiguous_blocks(big_m, 4, 0.05, GroupNorm::L2).unwrap();
        assert!(super::factored_products_pay(m, big_m));
        for alg in [Algorithm::Fista, Algorithm::Ista] {
            for tol in [1e-4, 1e-9] {
                let p =
                    SolverParams { algorithm: alg, tol, max_iter: 100_000, parallel: false, ..SolverParams::default() };
                let g = Solver::with_gram(d.clone(), kernels::gram(&d), spec.clone(), p.clone());
                let ddt = &d * d.transpose();
                let f = Solver::factored_restricted(d.clone(), &ddt, spec.clone(), p, g.block_lipschitz.clone());
                assert!(f.gram_free() && f.factored_products());
                assert!((f.lipschitz - g.lipschitz).abs() <= 1e-12 * g.lipschitz);
                let (a, c) = (g.solve_chunk(&b, &xx, None), f.solve_chunk(&b, &xx, None));
                assert_eq!(a.iterations, c.iterations, "{alg:?} tol {tol}");
                assert!(a.converged.iter().chain(&c.converged).all(|&ok| ok), "{alg:?} tol {tol}");
                assert!(c.gaps.iter().all(|&gap| gap <= tol), "{alg:?} tol {tol}: {:?}", c.gaps);
                let diff = (&a.codes - &c.codes).amax();
                assert!(diff < 1e-9, "{alg:?} tol {tol}: codes differ by {diff}");
                // dense codes: the case the factored products are for (more atoms active than rows)
                let nnz = c.codes.column(0).iter().filter(|v| **v != 0.0).count();
                assert!(nnz > m, "{alg:?} tol {tol}: {nnz} active atoms");
            }
        }
    }

    /// Coordinate descent on a stacked Deep Pursuit problem (block-tridiagonal Gram matrix) with
    /// the Gram columns' zero rows skipped (`kernels`) gives the codes (every bit, signs of
    /// zeros included), iteration counts and gaps of full-column updates, for `l1` and
    /// group-`l2` penalties, from zero and from warm starts holding negative zeros.
    #[test]
    fn skipping_zero_gram_rows_changes_no_bit() {
        let mut rng = StdRng::seed_from_u64(11);
        let sizes = [(20, 16), (16, 8), (8, 16)];
        let dicts: Vec<DMatrix<f64>> = sizes
            .iter()
            .map(|&(r, c)| {
                let mut d = DMatrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0));
                d.column_iter_mut().for_each(|mut col| col /= col.norm());
                d
            })
            .collect();
        let ml = crate::multilayer::MultiLayer::new(dicts, vec![0.3, 0.1, 0.05], false).unwrap();
        let a = ml.stacked_dictionary();
        let total = a.ncols();
        let rows = kernels::column_ranges(&s_gram(&a));
        assert!(rows.iter().any(|&(lo, hi)| hi - lo < total), "some Gram column has zero rows to skip");
        let full = vec![(0, total); total];
        for group in [1usize, 4] {
            let weights = [0.3, 0.1, 0.05];
            let mut groups = Vec::new();
            let mut start = 0;
            for (&(_, c), &w) in sizes.iter().zip(&weights) {
                for g in 0..c / group {
                    let atoms: Vec<usize> = (start + g * group..start + (g + 1) * group).collect();
                    let norm = if group == 1 { GroupNorm::L1 } else { GroupNorm::L2 };
                    groups.push(Group::new(atoms, w, norm));
                }
                start += c;
            }
            let spec = GroupSpec::new(total, groups).unwrap();
            let p = SolverParams {
                algorithm: Algorithm::CoordinateDescent,
                tol: 1e-8,
                max_iter: 3000,
                ..Default::default()
            };
            let s = Solver::new(a.clone(), spec, p).unwrap();
            let x = DMatrix::from_fn(a.nrows(), 6, |i, _| if i < 20 { rng.random_range(-2.0..2.0) } else { 0.0 });
            let b_all = a.transpose() * &x;
            for j in 0..x.ncols() {
                let b = b_all.column(j).into_owned();
                let xx = x.column(j).norm_squared();
                let cold = cd_one(&s, b.as_slice(), xx, &vec![0.0; total], &rows);
                let cold_full = cd_one(&s, b.as_slice(), xx, &vec![0.0; total], &full);
                assert!(
                    cold.0[total - 16..].iter().any(|&v| v != 0.0),
                    "group {group} signal {j}: a real solve, last layer active ({:?})",
                    (cold.1, cold.2, cold.3, &cold.0[total - 16..])
                );
                let bits = |r: &(Vec<f64>, usize, f64, bool)| {
                    (r.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), r.1, r.2.to_bits(), r.3)
                };
                assert_eq!(bits(&cold), bits(&cold_full), "group {group} signal {j} cold");
                // a warm start near the solution, its zeros negative
                let warm: Vec<f64> = cold.0.iter().map(|&v| if v == 0.0 { -0.0 } else { 0.9 * v }).collect();
                let w = cd_one(&s, b.as_slice(), xx, &warm, &rows);
                let w_full = cd_one(&s, b.as_slice(), xx, &warm, &full);
                assert_eq!(bits(&w), bits(&w_full), "group {group} signal {j} warm");
            }
        }
    }

    fn s_gram(a: &DMatrix<f64>) -> DMatrix<f64> {
        a.tr_mul(a)
    }

    /// The split covers `0..n` in order with chunks no longer than `chunk_size` whose sizes
    /// differ by at most one; a batch of 100 (end-to-end training, quick attacks) becomes 4
    /// FISTA chunks or 8 coordinate-descent chunks, a tiny batch one chunk, a large batch
    /// chunks of at most 256.
    #[test]
    fn small_batches_are_split_into_several_chunks() {
        for min in [1, 4, 32] {
            for (n, cs) in [
                (1, 256),
                (3, 256),
                (10, 256),
                (50, 256),
                (100, 256),
                (1000, 256),
                (2048, 256),
                (10_000, 256),
                (23, 5),
                (7, 1),
            ] {
                let r = chunk_ranges(n, cs, min);
                assert_eq!(r.first().unwrap().0, 0, "{n} {cs}");
                assert_eq!(r.last().unwrap().1, n, "{n} {cs}");
                assert!(r.windows(2).all(|w| w[0].1 == w[1].0), "{n} {cs}: {r:?}");
                let lens: Vec<usize> = r.iter().map(|(s, e)| e - s).collect();
                let (lo, hi) = (*lens.iter().min().unwrap(), *lens.iter().max().unwrap());
                assert!(lo >= 1 && hi <= cs && hi - lo <= 1, "{n} {cs}: {lens:?}");
            }
        }
        let lens = |n, alg| chunk_ranges(n, 256, min_chunk_signals(alg)).iter().map(|(s, e)| e - s).collect::<Vec<_>>();
        assert_eq!(lens(100, Algorithm::Fista), [25, 25, 25, 25]);
        assert_eq!(lens(50, Algorithm::Fista), [25, 25]);
        assert_eq!(lens(20, Algorithm::Fista), [20]);
        assert_eq!(lens(100, Algorithm::CoordinateDescent), [13, 13, 13, 13, 12, 12, 12, 12]);
        assert_eq!(lens(50, Algorithm::Auto), [7, 7, 6, 6, 6, 6, 6, 6]);
        assert_eq!(lens(10, Algorithm::Homotopy), [4, 3, 3]);
        assert_eq!(lens(1, Algorithm::Fista), [1]);
        assert_eq!(lens(2000, Algorithm::Fista), [250; 8]);
        assert_eq!(chunk_ranges(10_000, 256, 32).len(), 40);
        assert_eq!(chunk_ranges(23, 5, 4).iter().map(|(s, e)| e - s).collect::<Vec<_>>(), [4, 4, 4, 4, 4, 3]);
        assert!(chunk_ranges(0, 256, 32).is_empty());
    }
}
