//! Group structure of the regulariser `sum_i gamma_i l_i(Gamma_{G_i})` (spec section 1).
//!
//! A [`GroupSpec`] is a partition of the `M` atoms into disjoint groups; each [`Group`]
//! has its own weight `gamma_i > 0` and its own [`GroupNorm`]. A group may be a single
//! atom (plain or weighted lasso), a block of atoms (group lasso) or a whole layer of a
//! stacked multi-layer code (see [`crate::multilayer`]). `nonneg = true` adds the
//! constraint `Gamma >= 0` (ReLU-style thresholds of unrolled networks).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SparseBpError};
use crate::prox;

/// The norm `l_i` used on one group.
///
/// The sparse-group norm `beta ||v||_1 + (1 - beta) ||v||_2` is *our reading* of the
/// paper's `l_{beta,1,2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupNorm {
    /// `||v||_1`.
    L1,
    /// `sum_j w_j |v_j|`, one positive weight per atom of the group (in group order).
    WeightedL1(Vec<f64>),
    /// `||v||_2` (group lasso; summed over groups this is the `l_{1,2}` norm).
    L2,
    /// `beta ||v||_1 + (1 - beta) ||v||_2`, `beta` in `[0, 1]`.
    SparseGroup {
        /// Mixing weight of the l1 part.
        beta: f64,
    },
}

impl GroupNorm {
    /// Value of the norm on `v` (unweighted by `gamma`).
    #[must_use]
    pub fn value(&self, v: &[f64]) -> f64 {
        match self {
            GroupNorm::L1 => v.iter().map(|x| x.abs()).sum(),
            GroupNorm::WeightedL1(w) => v.iter().zip(w).map(|(x, w)| w * x.abs()).sum(),
            GroupNorm::L2 => l2(v),
            GroupNorm::SparseGroup { beta } => beta * v.iter().map(|x| x.abs()).sum::<f64>() + (1.0 - beta) * l2(v),
        }
    }

    /// Dual norm `l^*(v) = max { <v, u> : l(u) <= 1 }`; with `nonneg`, the support
    /// function of `{u >= 0, l(u) <= 1}`, i.e. the dual norm of `max(v, 0)`.
    ///
    /// A group with weight `gamma` is inactive at the optimum iff `l^*(D_G^T r) <= gamma`
    /// (`r` the residual); this is what the duality gap and the certificates use.
    #[must_use]
    pub fn dual(&self, v: &[f64], nonneg: bool) -> f64 {
        let pos = |x: f64| if nonneg { x.max(0.0) } else { x.abs() };
        match self {
            GroupNorm::L1 => v.iter().map(|&x| pos(x)).fold(0.0, f64::max),
            GroupNorm::WeightedL1(w) => v.iter().zip(w).map(|(&x, w)| pos(x) / w).fold(0.0, f64::max),
            GroupNorm::L2 => v.iter().map(|&x| pos(x).powi(2)).sum::<f64>().sqrt(),
            GroupNorm::SparseGroup { beta } => sparse_group_dual(v, *beta, nonneg),
        }
    }

    /// Lipschitz constant of [`GroupNorm::dual`] with respect to the l2 norm.
    #[must_use]
    pub fn dual_lipschitz(&self) -> f64 {
        match self {
            GroupNorm::WeightedL1(w) => 1.0 / w.iter().copied().fold(f64::INFINITY, f64::min),
            // ||.||_inf, ||.||_2 are 1-Lipschitz in l2; the sparse-group dual norm is at
            // most ||v||_2 / (1 - beta) and at most ||v||_inf / beta; it is a norm bounded
            // by min of both, hence Lipschitz with that constant.
            GroupNorm::SparseGroup { beta } => {
                let b = *beta;
                if b <= 0.0 || b >= 1.0 { 1.0 } else { (1.0 / (1.0 - b)).min(1.0 / b) }
            }
            _ => 1.0,
        }
    }

    /// In-place prox of `t * l(v)` (+ indicator of `v >= 0` if `nonneg`).
    pub fn prox_mut(&self, v: &mut [f64], t: f64, nonneg: bool) {
        match self {
            GroupNorm::L1 => prox::soft_threshold_mut(v, t, nonneg),
            GroupNorm::WeightedL1(w) => prox::weighted_soft_threshold_mut(v, t, w, nonneg),
            GroupNorm::L2 => prox::block_soft_threshold_mut(v, t, nonneg),
            GroupNorm::SparseGroup { beta } => prox::sparse_group_mut(v, t, *beta, nonneg),
        }
    }
}

fn l2(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Dual of `beta ||.||_1 + (1-beta) ||.||_2`: the `t` with `||S_{beta t}(v)||_2 = (1-beta) t`
/// (Ndiaye et al. 2016), found by bisection (the left side decreases in `t`).
fn sparse_group_dual(v: &[f64], beta: f64, nonneg: bool) -> f64 {
    let a: Vec<f64> = v.iter().map(|&x| if nonneg { x.max(0.0) } else { x.abs() }).collect();
    let inf = a.iter().copied().fold(0.0, f64::max);
    if inf == 0.0 {
        return 0.0;
    }
    if beta >= 1.0 {
        return inf;
    }
    let two = l2(&a);
    if beta <= 0.0 {
        return two;
    }
    let f = |t: f64| {
        let s = a.iter().map(|&x| (x - beta * t).max(0.0).powi(2)).sum::<f64>().sqrt();
        s - (1.0 - beta) * t
    };
    let (mut lo, mut hi) = (0.0, (inf / beta).min(two / (1.0 - beta)));
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    hi
}

/// One group: atom indices, weight `gamma > 0` and norm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Atom indices (columns of `D`), in the order the norm's per-atom weights refer to.
    pub atoms: Vec<usize>,
    /// Weight `gamma_i > 0`.
    pub weight: f64,
    /// Norm `l_i`.
    pub norm: GroupNorm,
}

impl Group {
    /// A group with the given atoms, weight and norm (checked when put in a [`GroupSpec`]).
    #[must_use]
    pub fn new(atoms: Vec<usize>, weight: f64, norm: GroupNorm) -> Self {
        Self { atoms, weight, norm }
    }
}

/// A validated partition of `n_atoms` atoms into disjoint weighted groups.
///
/// ```
/// use sparse_bp::{GroupSpec, GroupNorm};
/// // 12 atoms, blocks of 4, group-l2 with weight 0.5
/// let g = GroupSpec::contiguous_blocks(12, 4, 0.5, GroupNorm::L2).unwrap();
/// assert_eq!(g.n_groups(), 3);
/// assert_eq!(g.group_of(5), Some(1));
/// assert_eq!(g.group_of(12), None);
/// // overlapping groups are rejected
/// use sparse_bp::Group;
/// let bad = GroupSpec::new(3, vec![Group::new(vec![0, 1], 1.0, GroupNorm::L2),
///                                  Group::new(vec![1, 2], 1.0, GroupNorm::L2)]);
/// assert!(bad.is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    groups: Vec<Group>,
    n_atoms: usize,
    atom_group: Vec<usize>,
    nonneg: bool,
    /// Fast path: every group is a single atom with `L1`; `thresholds[i]` = its weight.
    singleton_l1: Option<Vec<f64>>,
}

impl GroupSpec {
    /// Check and build: groups must be non-empty, disjoint, cover `0..n_atoms`, have finite
    /// positive weights, `beta` in `[0, 1]`, and weighted-l1 weights (one per atom, > 0).
    pub fn new(n_atoms: usize, groups: Vec<Group>) -> Result<Self> {
        if n_atoms == 0 {
            return Err(SparseBpError::Empty { what: "atoms" });
        }
        let mut atom_group = vec![usize::MAX; n_atoms];
        for (gi, g) in groups.iter().enumerate() {
            if g.atoms.is_empty() {
                return Err(SparseBpError::EmptyGroup { group: gi });
            }
            if !(g.weight.is_finite() && g.weight > 0.0) {
                return Err(SparseBpError::NonPositiveWeight { group: gi, weight: g.weight });
            }
            match &g.norm {
                GroupNorm::SparseGroup { beta } if !(beta.is_finite() && (0.0..=1.0).contains(beta)) => {
                    return Err(SparseBpError::InvalidParam { name: "beta", value: *beta, expected: "0 <= beta <= 1" });
                }
                GroupNorm::WeightedL1(w) => {
                    if w.len() != g.atoms.len() {
                        return Err(SparseBpError::ShapeMismatch {
                            what: "weighted-l1 weights",
                            expected: (g.atoms.len(), 1),
                            got: (w.len(), 1),
                        });
                    }
                    if let Some(&bad) = w.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
                        return Err(SparseBpError::NonPositiveWeight { group: gi, weight: bad });
                    }
                }
                _ => {}
            }
            for &a in &g.atoms {
                if a >= n_atoms {
                    return Err(SparseBpError::AtomOutOfRange { group: gi, atom: a, n_atoms });
                }
                if atom_group[a] != usize::MAX {
                    return Err(SparseBpError::OverlappingGroups { atom: a, first: atom_group[a], second: gi });
                }
                atom_group[a] = gi;
            }
        }
        if let Some(atom) = atom_group.iter().position(|&g| g == usize::MAX) {
            return Err(SparseBpError::MissingAtom { atom });
        }
        let singleton_l1 = if groups.iter().all(|g| g.atoms.len() == 1 && g.norm == GroupNorm::L1) {
            let mut t = vec![0.0; n_atoms];
            for g in &groups {
                t[g.atoms[0]] = g.weight;
            }
            Some(t)
        } else {
            None
        };
        Ok(Self { groups, n_atoms, atom_group, nonneg: false, singleton_l1 })
    }

    /// Plain lasso / BP: every atom its own `L1` group with weight `lambda`.
    ///
    /// ```
    /// let g = sparse_bp::GroupSpec::lasso(5, 0.1).unwrap();
    /// assert_eq!(g.n_groups(), 5);
    /// assert!(sparse_bp::GroupSpec::lasso(5, -1.0).is_err());
    /// ```
    pub fn lasso(n_atoms: usize, lambda: f64) -> Result<Self> {
        Self::new(n_atoms, (0..n_atoms).map(|i| Group::new(vec![i], lambda, GroupNorm::L1)).collect())
    }

    /// Weighted lasso: atom `i` is its own `L1` group with weight `weights[i]`.
    pub fn weighted_lasso(weights: &[f64]) -> Result<Self> {
        Self::new(
            weights.len(),
            weights.iter().enumerate().map(|(i, &w)| Group::new(vec![i], w, GroupNorm::L1)).collect(),
        )
    }

    /// Contiguous blocks `[0..b), [b..2b), ...` with one weight and norm.
    /// `n_atoms` must be a multiple of `block_size`.
    pub fn contiguous_blocks(n_atoms: usize, block_size: usize, weight: f64, norm: GroupNorm) -> Result<Self> {
        if block_size == 0 || !n_atoms.is_multiple_of(block_size) {
            return Err(SparseBpError::InvalidParam {
                name: "block_size",
                value: block_size as f64,
                expected: "> 0 and dividing n_atoms",
            });
        }
        Self::new(
            n_atoms,
            (0..n_atoms / block_size)
                .map(|g| Group::new((g * block_size..(g + 1) * block_size).collect(), weight, norm.clone()))
                .collect(),
        )
    }

    /// Contiguous groups with the given sizes, one weight each, one norm for all.
    pub fn from_sizes(sizes: &[usize], weights: &[f64], norm: GroupNorm) -> Result<Self> {
        if sizes.len() != weights.len() {
            return Err(SparseBpError::ShapeMismatch {
                what: "group weights",
                expected: (sizes.len(), 1),
                got: (weights.len(), 1),
            });
        }
        let mut start = 0;
        let mut groups = Vec::with_capacity(sizes.len());
        for (&s, &w) in sizes.iter().zip(weights) {
            groups.push(Group::new((start..start + s).collect(), w, norm.clone()));
            start += s;
        }
        Self::new(start, groups)
    }

    /// Same groups with the non-negativity constraint switched on or off.
    #[must_use]
    pub fn with_nonneg(mut self, nonneg: bool) -> Self {
        self.nonneg = nonneg;
        self
    }

    /// Same groups with every weight multiplied by `factor` (> 0, finite).
    pub fn scaled(&self, factor: f64) -> Result<Self> {
        let groups =
            self.groups.iter().map(|g| Group::new(g.atoms.clone(), g.weight * factor, g.norm.clone())).collect();
        Ok(Self::new(self.n_atoms, groups)?.with_nonneg(self.nonneg))
    }

    /// The groups.
    #[must_use]
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }
    /// Number of atoms `M`.
    #[must_use]
    pub fn n_atoms(&self) -> usize {
        self.n_atoms
    }
    /// Number of groups `K`.
    #[must_use]
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }
    /// Index of the group that holds `atom` (`None` if `atom >= n_atoms`).
    #[must_use]
    pub fn group_of(&self, atom: usize) -> Option<usize> {
        self.atom_group.get(atom).copied()
    }
    /// Whether `Gamma >= 0` is imposed.
    #[must_use]
    pub fn nonneg(&self) -> bool {
        self.nonneg
    }
    /// Per-atom thresholds if every group is a single atom with `L1` (plain or weighted lasso).
    #[must_use]
    pub(crate) fn singleton_thresholds(&self) -> Option<&[f64]> {
        self.singleton_l1.as_deref()
    }

    /// Smallest and largest group weight.
    #[must_use]
    pub fn weight_range(&self) -> (f64, f64) {
        self.groups.iter().fold((f64::INFINITY, 0.0), |(lo, hi), g| (lo.min(g.weight), hi.max(g.weight)))
    }
    /// `Some(b)` if every group has `b` atoms.
    #[must_use]
    pub fn common_size(&self) -> Option<usize> {
        let b = self.groups[0].atoms.len();
        self.groups.iter().all(|g| g.atoms.len() == b).then_some(b)
    }

    /// Penalty `sum_i gamma_i l_i(z_{G_i})` of one code vector of length `M`.
    #[must_use]
    pub fn penalty(&self, z: &[f64]) -> f64 {
        if let Some(t) = &self.singleton_l1 {
            return z.iter().zip(t).map(|(x, t)| t * x.abs()).sum();
        }
        let mut buf = Vec::new();
        self.groups
            .iter()
            .map(|g| {
                gather(z, &g.atoms, &mut buf);
                g.weight * g.norm.value(&buf)
            })
            .sum()
    }

    /// The l2 norm of every group of `z` (the pooled code of PGBP).
    #[must_use]
    pub fn group_norms(&self, z: &[f64]) -> Vec<f64> {
        self.groups.iter().map(|g| g.atoms.iter().map(|&a| z[a] * z[a]).sum::<f64>().sqrt()).collect()
    }

    /// Indices of groups of `z` with l2 norm `> tol`.
    #[must_use]
    pub fn active_groups(&self, z: &[f64], tol: f64) -> Vec<usize> {
        self.group_norms(z).iter().enumerate().filter(|(_, n)| **n > tol).map(|(i, _)| i).collect()
    }

    /// In-place prox of `step * penalty` (+ non-negativity) on one code column.
    pub fn prox_mut(&self, z: &mut [f64], step: f64, scratch: &mut Vec<f64>) {
        if let Some(t) = &self.singleton_l1 {
            if self.nonneg {
                z.iter_mut().zip(t).for_each(|(x, t)| *x = prox::soft_threshold_nonneg(*x, step * t));
            } else {
                z.iter_mut().zip(t).for_each(|(x, t)| *x = prox::soft_threshold(*x, step * t));
            }
            return;
        }
        for g in &self.groups {
            gather(z, &g.atoms, scratch);
            g.norm.prox_mut(scratch, step * g.weight, self.nonneg);
            for (&a, &v) in g.atoms.iter().zip(scratch.iter()) {
                z[a] = v;
            }
        }
    }

    /// `max_i l_i^*(v_{G_i}) / gamma_i`: the dual point `theta = r / max(1, this)` is
    /// feasible when `v = D^T r`.
    #[must_use]
    pub fn dual_ratio(&self, v: &[f64], scratch: &mut Vec<f64>) -> f64 {
        if let Some(t) = &self.singleton_l1 {
            return v
                .iter()
                .zip(t)
                .map(|(&x, t)| if self.nonneg { x.max(0.0) } else { x.abs() } / t)
                .fold(0.0, f64::max);
        }
        self.groups
            .iter()
            .map(|g| {
                gather(v, &g.atoms, scratch);
                g.norm.dual(scratch, self.nonneg) / g.weight
            })
            .fold(0.0, f64::max)
    }
}

pub(crate) fn gather(z: &[f64], idx: &[usize], buf: &mut Vec<f64>) {
    buf.clear();
    buf.extend(idx.iter().map(|&a| z[a]));
}
