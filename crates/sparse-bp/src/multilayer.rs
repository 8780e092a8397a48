//! Multi-layer pursuit and its shallow group form (spec section 3).
//!
//! * **Layered BP** ([`MultiLayer::layered_bp`]): `Gamma_j = BP(D_j, Gamma_{j-1})`, `Gamma_0 = X`.
//! * **Deep Pursuit** ([`MultiLayer::deep_pursuit`], Cazenavette et al. 2021): all layers
//!   jointly, `min sum_j 1/2 ||Gamma_{j-1} - D_j Gamma_j||^2 + gamma_j ||Gamma_j||_1`,
//!   initialised by the thresholded feed-forward pass `Gamma_j = S_{gamma_j}(D_j^T Gamma_{j-1})`
//!   and updated by FISTA over all layers at once with the layer gradients
//!   `D_j^T (D_j Gamma_j - Gamma_{j-1}) + (Gamma_j - D_{j+1} Gamma_{j+1})` (last layer: first term only).
//! * **Shallow form** ([`MultiLayer::shallow_solver`]): stacking `[Gamma_1; ...; Gamma_l]`, the
//!   input `[X; 0; ...; 0]` and the block dictionary with `D_j` on the diagonal and `-I`
//!   below it, Deep Pursuit *is* one group-BP problem whose groups are the neurons (l1,
//!   weight `gamma_j`); with [`LayerGrouping::Layers`] each layer is one l2 group (the
//!   "layers as groups" variant). Skip connections are not implemented.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError};
use crate::groups::{Group, GroupNorm, GroupSpec};
use crate::prox;
use crate::solver::{Solver, SolverParams, check_matrix, power_iteration};

/// How the shallow (stacked) problem groups the stacked code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerGrouping {
    /// Every neuron its own l1 group with its layer's weight (equivalent to Deep Pursuit).
    Neurons,
    /// Every layer one l2 group with its layer's weight.
    Layers,
}

/// Parameters of [`MultiLayer::deep_pursuit`].
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `tol` | `1e-8` | relative prox-gradient norm that stops FISTA | finite, `> 0` |
/// | `max_iter` | `20_000` | FISTA iterations | `>= 1` |
/// | `restart` | `true` | adaptive restart | any |
/// | `feedforward_init` | `true` | start from the thresholded feed-forward pass (else 0) | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepPursuitParams {
    /// Tolerance.
    pub tol: f64,
    /// Iteration cap.
    pub max_iter: usize,
    /// Adaptive restart.
    pub restart: bool,
    /// Thresholded feed-forward initialisation.
    pub feedforward_init: bool,
}

impl Default for DeepPursuitParams {
    fn default() -> Self {
        Self { tol: 1e-8, max_iter: 20_000, restart: true, feedforward_init: true }
    }
}

impl DeepPursuitParams {
    /// Check the fields against the table.
    pub fn check(&self) -> Result<()> {
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(SparseBpError::InvalidParam { name: "tol", value: self.tol, expected: "finite and > 0" });
        }
        if self.max_iter == 0 {
            return Err(SparseBpError::InvalidParam { name: "max_iter", value: 0.0, expected: ">= 1" });
        }
        Ok(())
    }
}

/// Deep Pursuit output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepPursuitSolution {
    /// One code matrix per layer (`M_j x n`).
    pub codes: Vec<DMatrix<f64>>,
    /// Iterations used.
    pub iterations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
}

/// A chain of dictionaries `D_1 (m x M_1), D_2 (M_1 x M_2), ...` with layer weights.
///
/// ```
/// use nalgebra::DMatrix;
/// use sparse_bp::multilayer::{MultiLayer, DeepPursuitParams};
/// let d1 = DMatrix::<f64>::identity(3, 3);
/// let d2 = DMatrix::<f64>::identity(3, 3);
/// let ml = MultiLayer::new(vec![d1, d2], vec![0.1, 0.1], false).unwrap();
/// let x = DMatrix::from_column_slice(3, 1, &[1.0, 0.0, -2.0]);
/// let dp = ml.deep_pursuit(&x, &DeepPursuitParams::default()).unwrap();
/// assert!(dp.converged && dp.codes.len() == 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiLayer {
    dicts: Vec<DMatrix<f64>>,
    weights: Vec<f64>,
    nonneg: bool,
}

impl MultiLayer {
    /// Check that the dictionaries chain, are finite, and weights are positive.
    pub fn new(dicts: Vec<DMatrix<f64>>, weights: Vec<f64>, nonneg: bool) -> Result<Self> {
        if dicts.is_empty() {
            return Err(SparseBpError::Empty { what: "layers" });
        }
        if weights.len() != dicts.len() {
            return Err(SparseBpError::ShapeMismatch {
                what: "layer weights",
                expected: (dicts.len(), 1),
                got: (weights.len(), 1),
            });
        }
        for (j, d) in dicts.iter().enumerate() {
            check_matrix("layer dictionary", d)?;
            if j > 0 && d.nrows() != dicts[j - 1].ncols() {
                return Err(SparseBpError::LayerMismatch { layer: j, rows: d.nrows(), expected: dicts[j - 1].ncols() });
            }
            if !(weights[j].is_finite() && weights[j] > 0.0) {
                return Err(SparseBpError::NonPositiveWeight { group: j, weight: weights[j] });
            }
        }
        Ok(Self { dicts, weights, nonneg })
    }

    /// The layer dictionaries.
    #[must_use]
    pub fn dictionaries(&self) -> &[DMatrix<f64>] {
        &self.dicts
    }

    /// The layer weights.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    fn check_x(&self, x: &DMatrix<f64>) -> Result<()> {
        if x.nrows() != self.dicts[0].nrows() {
            return Err(SparseBpError::ShapeMismatch {
                what: "signals X",
                expected: (self.dicts[0].nrows(), x.ncols()),
                got: x.shape(),
            });
        }
        crate::error::check_finite("signals X", x.as_slice())
    }

    /// Layered BP: solve each layer's lasso on the previous layer's code.
    pub fn layered_bp(&self, x: &DMatrix<f64>, params: &SolverParams) -> Result<Vec<DMatrix<f64>>> {
        self.check_x(x)?;
        let mut input = x.clone();
        let mut out = Vec::with_capacity(self.dicts.len());
        for (d, &w) in self.dicts.iter().zip(&self.weights) {
            let groups = GroupSpec::lasso(d.ncols(), w)?.with_nonneg(self.nonneg);
            let solver = Solver::new(d.clone(), groups, params.clone())?;
            let code = solver.solve(&input)?.codes;
            input = code.clone();
            out.push(code);
        }
        Ok(out)
    }

    /// Thresholded feed-forward pass `Gamma_j = S_{gamma_j}(D_j^T Gamma_{j-1})`.
    pub fn feedforward(&self, x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>> {
        self.check_x(x)?;
        let mut input = x.clone();
        let mut out = Vec::with_capacity(self.dicts.len());
        for (d, &w) in self.dicts.iter().zip(&self.weights) {
            let mut c = d.tr_mul(&input);
            prox::soft_threshold_mut(c.as_mut_slice(), w, self.nonneg);
            input = c.clone();
            out.push(c);
        }
        Ok(out)
    }

    /// The stacked block dictionary (`D_j` on the diagonal, `-I` below it).
    #[must_use]
    pub fn stacked_dictionary(&self) -> DMatrix<f64> {
        let rows: usize = self.dicts.iter().map(|d| d.nrows()).sum();
        let cols: usize = self.dicts.iter().map(|d| d.ncols()).sum();
        let mut a = DMatrix::zeros(rows, cols);
        let (mut r0, mut c0) = (0, 0);
        for (j, d) in self.dicts.iter().enumerate() {
            a.view_mut((r0, c0), d.shape()).copy_from(d);
            if j > 0 {
                let prev = self.dicts[j - 1].ncols();
                for i in 0..prev {
                    a[(r0 + i, c0 - prev + i)] = -1.0;
                }
            }
            r0 += d.nrows();
            c0 += d.ncols();
        }
        a
    }

    /// The stacked input `[X; 0; ...; 0]`.
    pub fn stacked_input(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.check_x(x)?;
        let rows: usize = self.dicts.iter().map(|d| d.nrows()).sum();
        let mut s = DMatrix::zeros(rows, x.ncols());
        s.view_mut((0, 0), x.shape()).copy_from(x);
        Ok(s)
    }

    /// The groups of the stacked code.
    pub fn stacked_groups(&self, grouping: LayerGrouping) -> Result<GroupSpec> {
        let sizes: Vec<usize> = self.dicts.iter().map(|d| d.ncols()).collect();
        let total: usize = sizes.iter().sum();
        let spec = match grouping {
            LayerGrouping::Layers => GroupSpec::from_sizes(&sizes, &self.weights, GroupNorm::L2)?,
            LayerGrouping::Neurons => {
                let mut groups = Vec::with_capacity(total);
                let mut start = 0;
                for (s, &w) in sizes.iter().zip(&self.weights) {
                    groups.extend((start..start + s).map(|a| Group::new(vec![a], w, GroupNorm::L1)));
                    start += s;
                }
                GroupSpec::new(total, groups)?
            }
        };
        Ok(spec.with_nonneg(self.nonneg))
    }

    /// Split a stacked code (`sum M_j x n`) into per-layer codes.
    #[must_use]
    pub fn split_stacked(&self, z: &DMatrix<f64>) -> Vec<DMatrix<f64>> {
        let mut r = 0;
        self.dicts
            .iter()
            .map(|d| {
                let part = z.rows(r, d.ncols()).into_owned();
                r += d.ncols();
                part
            })
            .collect()
    }

    /// A group-BP solver for the shallow (stacked) form.
    pub fn shallow_solver(&self, grouping: LayerGrouping, params: SolverParams) -> Result<Solver> {
        Solver::new(self.stacked_dictionary(), self.stacked_groups(grouping)?, params)
    }

    /// Deep Pursuit by FISTA over all layers at once (batched over the columns of `x`).
    /// Stops when the prox-gradient norm of the whole stacked code, relative to
    /// `||D_1^T x||_2`, is below `tol` for every column.
    pub fn deep_pursuit(&self, x: &DMatrix<f64>, params: &DeepPursuitParams) -> Result<DeepPursuitSolution> {
        params.check()?;
        self.check_x(x)?;
        let n = x.ncols();
        let nl = self.dicts.len();
        let a = self.stacked_dictionary();
        let ata = if a.nrows() < a.ncols() { &a * a.transpose() } else { a.tr_mul(&a) };
        let l = power_iteration(&ata, 1000, 1e-12) * 1.01;
        let step = 1.0 / l.max(f64::MIN_POSITIVE);
        let mut z = if params.feedforward_init {
            self.feedforward(x)?
        } else {
            self.dicts.iter().map(|d| DMatrix::zeros(d.ncols(), n)).collect()
        };
        let mut y = z.clone();
        let mut t: Vec<f64> = vec![1.0; n];
        let bnorm: Vec<f64> = self.dicts[0].tr_mul(x).column_iter().map(|c| c.norm().max(1e-300)).collect();
        for k in 1..=params.max_iter {
            // residuals R_j = Y_{j-1} - D_j Y_j
            let res: Vec<DMatrix<f64>> = (0..nl)
                .map(|j| {
                    let prev = if j == 0 { x } else { &y[j - 1] };
                    prev - &self.dicts[j] * &y[j]
                })
                .collect();
            let mut w: Vec<DMatrix<f64>> = Vec::with_capacity(nl);
            for j in 0..nl {
                let mut g = -self.dicts[j].tr_mul(&res[j]);
                if j + 1 < nl {
                    g += &res[j + 1];
                }
                let mut wj = &y[j] - g * step;
                prox::soft_threshold_mut(wj.as_mut_slice(), step * self.weights[j], self.nonneg);
                w.push(wj);
            }
            let mut done = true;
            for c in 0..n {
                let mut pg = 0.0;
                let mut dot = 0.0;
                for j in 0..nl {
                    for i in 0..w[j].nrows() {
                        let dv = w[j][(i, c)] - y[j][(i, c)];
                        pg += dv * dv;
                        dot += (y[j][(i, c)] - w[j][(i, c)]) * (w[j][(i, c)] - z[j][(i, c)]);
                    }
                }
                if l * pg.sqrt() > params.tol * bnorm[c] {
                    done = false;
                }
                let beta = if params.restart && dot > 0.0 {
                    t[c] = 1.0;
                    0.0
                } else {
                    let tn = 0.5 * (1.0 + (1.0 + 4.0 * t[c] * t[c]).sqrt());
                    let b = (t[c] - 1.0) / tn;
                    t[c] = tn;
                    b
                };
                for j in 0..nl {
                    for i in 0..w[j].nrows() {
                        y[j][(i, c)] = w[j][(i, c)] + beta * (w[j][(i, c)] - z[j][(i, c)]);
                    }
                }
            }
            z = w;
            if done {
                return Ok(DeepPursuitSolution { codes: z, iterations: k, converged: true });
            }
        }
        Ok(DeepPursuitSolution { codes: z, iterations: params.max_iter, converged: false })
    }
}
