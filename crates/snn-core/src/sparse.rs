//! Sparse projections: only the synapses that exist are stored, each with a weight and a delay.
//!
//! [`SparseSynapses`] keeps one `sprs` compressed matrix in **CSC** orientation, `post x pre`:
//! column `i` holds the synapses leaving presynaptic neuron `i`, so a spike's fan-out — what the
//! engines and adjoints walk — is one contiguous run of the index and value arrays (CSR would
//! scatter it over every row). Weights are the matrix's data array; delays are a second value
//! array aligned with it, so weights and delays share one index pattern. The pattern is fixed
//! once built (training changes values only); gradients of a sparse connection have one entry
//! per stored synapse, in this data order.
//!
//! Why CSC: pushing a spike (both engines' ring or heap delivery, both adjoints' fan-out reads)
//! walks one source's synapses, a contiguous run in CSC; in CSR it has to be found row by row.
//! Pull delivery walks one target's synapses instead, so the clocked engine builds a per-target
//! (CSR-like) view of the same pattern with the plan ([`crate::clocked::SparsePull`]), indexing
//! back into these value arrays. `cargo run --release -p bench-suite --example sparse_layout`
//! times the four combinations on an SHD-shaped sample (700 -> 512, delays U(0, 150) ms, p = 1,
//! 0.5, 0.1; wall time, best of 7, load average 7.3-7.6 on the shared 2-core machine): push
//! through CSC 4.2-5.4 ns per delivered event against 76-258 ns through CSR (a binary search in
//! every row per spike); pull through the CSR view 0.9-2.7 ns against 3.1-6.5 ns through CSC (a
//! cursor per column).
//!
//! Builders: [`SparseSynapses::from_triplets`], [`SparseSynapses::from_dense`] (a dense matrix
//! and a boolean mask), [`SparseSynapses::fixed_probability`] and
//! [`SparseSynapses::fixed_targets`] (seeded). The last two build the pattern with zero weights
//! and delays; fill the values with [`SparseSynapses::weight_values_mut`] /
//! [`SparseSynapses::delay_values_mut`] or, once in a network, with
//! [`crate::Network::weight_values_mut`] and an initialiser.
//!
//! ```
//! use snn_core::{LiParams, NetworkBuilder, SparseSynapses, Synapse};
//!
//! // 3 presynaptic x 2 postsynaptic neurons, three synapses.
//! let syn = SparseSynapses::from_triplets(2, 3, &[
//!     Synapse { post: 1, pre: 0, weight: 0.5, delay: 2.0 },
//!     Synapse { post: 0, pre: 2, weight: -1.0, delay: 0.0 },
//!     Synapse { post: 0, pre: 0, weight: 0.25, delay: 1.0 },
//! ])?;
//! assert_eq!(syn.nnz(), 3);
//! // Column 0 (presynaptic neuron 0) is one run: rows 0 and 1, in row order.
//! assert_eq!(syn.fan_out(0), (0..2, &[0usize, 1][..]));
//! assert_eq!(syn.weight_values(), &[0.25, 0.5, -1.0]);
//! assert_eq!(syn.delay_values(), &[1.0, 2.0, 0.0]);
//! assert_eq!(syn.index(0, 2), Some(2));
//! assert_eq!(syn.index(1, 1), None);
//!
//! let mut b = NetworkBuilder::new();
//! let i = b.input("in", 3);
//! let o = b.li("out", 2, LiParams::default());
//! b.connect_sparse(i, o, syn);
//! let net = b.build()?;
//! assert_eq!(net.num_synapses(), 3);
//! # Ok::<(), snn_core::CoreError>(())
//! ```

use std::ops::Range;

use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sprs::CsMat;

use crate::error::{CoreError, Result, TripletProblem};

/// One synapse given to [`SparseSynapses::from_triplets`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Synapse {
    /// Postsynaptic neuron (row).
    pub post: usize,
    /// Presynaptic neuron (column).
    pub pre: usize,
    /// Weight.
    pub weight: f64,
    /// Delay in ms.
    pub delay: f64,
}

/// The synapses of one sparse projection, `post x pre`, CSC; see the [module documentation](self).
///
/// Values are not checked here (any `f64`); [`crate::NetworkBuilder::build`] and
/// [`crate::Network::check`] check them like dense ones (finite weights, finite delays `>= 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseSynapses {
    /// The pattern and the weights (the data array).
    weights: CsMat<f64>,
    /// Delays (ms), aligned with `weights.data()`.
    delays: Vec<f64>,
}

impl SparseSynapses {
    /// From a CSC pattern given column by column: `cols[i]` = sorted, distinct rows of column `i`.
    fn from_columns(n_post: usize, cols: &[Vec<usize>]) -> Self {
        let mut indptr = Vec::with_capacity(cols.len() + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        for c in cols {
            indices.extend_from_slice(c);
            indptr.push(indices.len());
        }
        let nnz = indices.len();
        let weights = CsMat::new_csc((n_post, cols.len()), indptr, indices, vec![0.0; nnz]);
        Self { weights, delays: vec![0.0; nnz] }
    }

    /// From explicit synapses of an `n_post x n_pre` projection, in any order.
    ///
    /// Errors: [`CoreError::InvalidTriplet`] naming the entry (its position in `triplets`) for
    /// an index out of range ([`TripletProblem::OutOfRange`]) or a second synapse between the
    /// same pair ([`TripletProblem::Duplicate`], naming the first one too).
    ///
    /// ```
    /// use snn_core::{CoreError, SparseSynapses, Synapse, TripletProblem};
    /// let s = |post, pre| Synapse { post, pre, weight: 1.0, delay: 0.0 };
    /// let dup = SparseSynapses::from_triplets(2, 2, &[s(0, 1), s(1, 1), s(0, 1)]);
    /// assert_eq!(
    ///     dup,
    ///     Err(CoreError::InvalidTriplet { entry: 2, post: 0, pre: 1, reason: TripletProblem::Duplicate { first: 0 } })
    /// );
    /// let far = SparseSynapses::from_triplets(2, 2, &[s(0, 0), s(0, 2)]);
    /// assert!(matches!(far, Err(CoreError::InvalidTriplet { entry: 1, reason: TripletProblem::OutOfRange { .. }, .. })));
    /// ```
    pub fn from_triplets(n_post: usize, n_pre: usize, triplets: &[Synapse]) -> Result<Self> {
        // Entry numbers per column, then sorted by (row, entry) within each column.
        let mut cols: Vec<Vec<usize>> = vec![Vec::new(); n_pre];
        for (entry, s) in triplets.iter().enumerate() {
            if s.post >= n_post || s.pre >= n_pre {
                return Err(CoreError::InvalidTriplet {
                    entry,
                    post: s.post,
                    pre: s.pre,
                    reason: TripletProblem::OutOfRange { rows: n_post, cols: n_pre },
                });
            }
            cols[s.pre].push(entry);
        }
        for col in &mut cols {
            col.sort_unstable_by_key(|&e| (triplets[e].post, e));
            if let Some(w) = col.windows(2).find(|w| triplets[w[0]].post == triplets[w[1]].post) {
                let s = &triplets[w[1]];
                return Err(CoreError::InvalidTriplet {
                    entry: w[1],
                    post: s.post,
                    pre: s.pre,
                    reason: TripletProblem::Duplicate { first: w[0] },
                });
            }
        }
        let rows: Vec<Vec<usize>> = cols.iter().map(|c| c.iter().map(|&e| triplets[e].post).collect()).collect();
        let mut out = Self::from_columns(n_post, &rows);
        let entries = cols.iter().flatten();
        for ((w, d), &e) in out.weights.data_mut().iter_mut().zip(out.delays.iter_mut()).zip(entries) {
            *w = triplets[e].weight;
            *d = triplets[e].delay;
        }
        Ok(out)
    }

    /// The synapses of `mask` (`true` = exists) with the values of the dense `weights` and
    /// `delays` (all three `post x pre`, equal shapes, else [`CoreError::SparseShape`]).
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use snn_core::SparseSynapses;
    /// let w = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
    /// let mask = DMatrix::from_row_slice(2, 2, &[true, false, false, true]);
    /// let s = SparseSynapses::from_dense(&w, &DMatrix::zeros(2, 2), &mask)?;
    /// assert_eq!(s.weight_values(), &[1.0, 4.0]);
    /// assert!(SparseSynapses::from_dense(&w, &DMatrix::zeros(2, 3), &mask).is_err());
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn from_dense(weights: &DMatrix<f64>, delays: &DMatrix<f64>, mask: &DMatrix<bool>) -> Result<Self> {
        let (rows, cols) = weights.shape();
        for (what, shape) in [("delay", delays.shape()), ("mask", mask.shape())] {
            if shape != (rows, cols) {
                return Err(CoreError::SparseShape { what, rows, cols, got_rows: shape.0, got_cols: shape.1 });
            }
        }
        let pattern: Vec<Vec<usize>> = (0..cols).map(|i| (0..rows).filter(|&j| mask[(j, i)]).collect()).collect();
        let mut out = Self::from_columns(rows, &pattern);
        let pairs = pattern.iter().enumerate().flat_map(|(i, c)| c.iter().map(move |&j| (j, i)));
        for ((w, d), (j, i)) in out.weights.data_mut().iter_mut().zip(out.delays.iter_mut()).zip(pairs) {
            *w = weights[(j, i)];
            *d = delays[(j, i)];
        }
        Ok(out)
    }

    /// Every synapse of an `n_post x n_pre` projection exists independently with probability
    /// `p` (in `[0, 1]`, else [`CoreError::InvalidSetting`]); weights and delays are 0.
    ///
    /// Drawn column by column, row by row, from `ChaCha8Rng::seed_from_u64(seed)`: a seed fixes
    /// the pattern.
    ///
    /// ```
    /// use snn_core::SparseSynapses;
    /// let s = SparseSynapses::fixed_probability(100, 50, 0.1, 7)?;
    /// assert_eq!(s, SparseSynapses::fixed_probability(100, 50, 0.1, 7)?);
    /// assert!((s.nnz() as f64 - 500.0).abs() < 100.0);
    /// assert_eq!(SparseSynapses::fixed_probability(100, 50, 0.0, 7)?.nnz(), 0);
    /// assert!(SparseSynapses::fixed_probability(100, 50, 1.5, 7).is_err());
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn fixed_probability(n_post: usize, n_pre: usize, p: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(CoreError::InvalidSetting { param: "p", value: p, reason: "must be in [0, 1]" });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pattern: Vec<Vec<usize>> =
            (0..n_pre).map(|_| (0..n_post).filter(|_| rng.random_bool(p)).collect()).collect();
        Ok(Self::from_columns(n_post, &pattern))
    }

    /// Every presynaptic neuron gets exactly `targets` distinct postsynaptic neurons, drawn
    /// uniformly (`targets <= n_post`, else [`CoreError::InvalidSetting`]); weights and delays
    /// are 0. Seeded like [`SparseSynapses::fixed_probability`].
    ///
    /// ```
    /// use snn_core::SparseSynapses;
    /// let s = SparseSynapses::fixed_targets(10, 4, 3, 1)?;
    /// assert!((0..4).all(|i| s.fan_out(i).1.len() == 3));
    /// assert!(SparseSynapses::fixed_targets(10, 4, 11, 1).is_err());
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn fixed_targets(n_post: usize, n_pre: usize, targets: usize, seed: u64) -> Result<Self> {
        if targets > n_post {
            return Err(CoreError::InvalidSetting {
                param: "targets per source",
                value: targets as f64,
                reason: "must not exceed the postsynaptic population size",
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pattern: Vec<Vec<usize>> = (0..n_pre)
            .map(|_| {
                let mut rows = rand::seq::index::sample(&mut rng, n_post, targets).into_vec();
                rows.sort_unstable();
                rows
            })
            .collect();
        Ok(Self::from_columns(n_post, &pattern))
    }

    /// `(n_post, n_pre)`.
    pub fn shape(&self) -> (usize, usize) {
        self.weights.shape()
    }

    /// Number of stored synapses.
    pub fn nnz(&self) -> usize {
        self.delays.len()
    }

    /// The pattern with the weights as its values (CSC, `post x pre`).
    pub fn matrix(&self) -> &CsMat<f64> {
        &self.weights
    }

    /// Row (postsynaptic neuron) of every stored synapse, in data order.
    pub fn rows(&self) -> &[usize] {
        self.weights.indices()
    }

    /// Weights, in data order (column by column, rows increasing).
    pub fn weight_values(&self) -> &[f64] {
        self.weights.data()
    }

    /// Delays (ms), in data order.
    pub fn delay_values(&self) -> &[f64] {
        &self.delays
    }

    /// Mutable weights, in data order.
    pub fn weight_values_mut(&mut self) -> &mut [f64] {
        self.weights.data_mut()
    }

    /// Mutable delays (ms), in data order.
    pub fn delay_values_mut(&mut self) -> &mut [f64] {
        &mut self.delays
    }

    /// The synapses leaving presynaptic neuron `pre`: their value indices (a contiguous range)
    /// and their targets (rows, increasing). Panics if `pre` is out of range.
    pub fn fan_out(&self, pre: usize) -> (Range<usize>, &[usize]) {
        let r = self.weights.indptr().outer_inds_sz(pre);
        (r.clone(), &self.weights.indices()[r])
    }

    /// Value index of the synapse `pre -> post`, if it exists.
    pub fn index(&self, post: usize, pre: usize) -> Option<usize> {
        if pre >= self.shape().1 {
            return None;
        }
        let (r, rows) = self.fan_out(pre);
        rows.binary_search(&post).ok().map(|k| r.start + k)
    }

    /// `(post, pre)` of the synapse at value index `k` (`k < nnz`).
    pub fn position(&self, k: usize) -> (usize, usize) {
        let indptr = self.weights.indptr();
        let starts = indptr.raw_storage();
        let pre = starts.partition_point(|&s| s <= k) - 1;
        (self.weights.indices()[k], pre)
    }

    /// Dense `post x pre` copies of the weights and delays (0 where no synapse exists).
    pub fn to_dense(&self) -> (DMatrix<f64>, DMatrix<f64>) {
        let (rows, cols) = self.shape();
        let (mut w, mut d) = (DMatrix::zeros(rows, cols), DMatrix::zeros(rows, cols));
        for i in 0..cols {
            let (r, targets) = self.fan_out(i);
            for (k, &j) in r.zip(targets) {
                w[(j, i)] = self.weights.data()[k];
                d[(j, i)] = self.delays[k];
            }
        }
        (w, d)
    }

    /// Structural consistency of a value that may come from a decoder: CSC orientation, index
    /// pointers starting at 0, one delay per stored weight. (`sprs` checks the rest of the
    /// structure when it decodes: sorted, distinct, in-range indices.)
    pub(crate) fn consistent(&self) -> bool {
        self.weights.is_csc()
            && self.weights.indptr().raw_storage().first() == Some(&0)
            && self.weights.indptr().raw_storage().len() == self.shape().1 + 1
            && self.weights.data().len() == self.delays.len()
            && self.weights.indices().len() == self.delays.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(post: usize, pre: usize, weight: f64, delay: f64) -> Synapse {
        Synapse { post, pre, weight, delay }
    }

    #[test]
    fn triplets_are_sorted_into_columns() {
        let t = [s(2, 1, 1.0, 0.1), s(0, 1, 2.0, 0.2), s(1, 0, 3.0, 0.3), s(0, 3, 4.0, 0.4)];
        let m = SparseSynapses::from_triplets(3, 4, &t).unwrap();
        assert_eq!(m.shape(), (3, 4));
        assert_eq!(m.rows(), &[1, 0, 2, 0]);
        assert_eq!(m.weight_values(), &[3.0, 2.0, 1.0, 4.0]);
        assert_eq!(m.delay_values(), &[0.3, 0.2, 0.1, 0.4]);
        assert_eq!(m.fan_out(2), (3..3, &[][..])); // empty column
        assert_eq!(m.fan_out(3), (3..4, &[0usize][..]));
        for (k, t) in t.iter().enumerate() {
            let idx = m.index(t.post, t.pre).unwrap();
            assert_eq!(m.weight_values()[idx], t.weight, "entry {k}");
            assert_eq!(m.position(idx), (t.post, t.pre));
        }
        assert_eq!(m.index(2, 0), None);
        assert_eq!(m.index(0, 9), None);
        let (w, d) = m.to_dense();
        assert_eq!(w[(2, 1)], 1.0);
        assert_eq!(d[(0, 3)], 0.4);
        assert_eq!(w.iter().filter(|&&x| x != 0.0).count(), 4);
    }

    #[test]
    fn bad_triplets_are_typed_errors_naming_the_entry() {
        let e = SparseSynapses::from_triplets(3, 2, &[s(0, 0, 1.0, 0.0), s(3, 0, 1.0, 0.0)]).unwrap_err();
        assert_eq!(
            e,
            CoreError::InvalidTriplet {
                entry: 1,
                post: 3,
                pre: 0,
                reason: TripletProblem::OutOfRange { rows: 3, cols: 2 }
            }
        );
        let e = SparseSynapses::from_triplets(3, 2, &[s(0, 2, 1.0, 0.0)]).unwrap_err();
        assert!(matches!(e, CoreError::InvalidTriplet { entry: 0, pre: 2, .. }));
        let e = SparseSynapses::from_triplets(3, 2, &[s(1, 1, 1.0, 0.0), s(0, 0, 1.0, 0.0), s(1, 1, 2.0, 0.0)])
            .unwrap_err();
        assert_eq!(
            e,
            CoreError::InvalidTriplet { entry: 2, post: 1, pre: 1, reason: TripletProblem::Duplicate { first: 0 } }
        );
        assert!(e.to_string().contains("entry 2"), "{e}");
    }

    #[test]
    fn empty_and_single_synapse_projections() {
        let m = SparseSynapses::from_triplets(4, 3, &[]).unwrap();
        assert_eq!(m.nnz(), 0);
        assert!((0..3).all(|i| m.fan_out(i).1.is_empty()));
        let m = SparseSynapses::from_triplets(4, 3, &[s(3, 2, 0.5, 1.5)]).unwrap();
        assert_eq!(m.nnz(), 1);
        assert_eq!(m.fan_out(2), (0..1, &[3usize][..]));
        assert_eq!(SparseSynapses::fixed_probability(4, 3, 0.0, 1).unwrap().nnz(), 0);
        assert_eq!(SparseSynapses::fixed_targets(4, 3, 0, 1).unwrap().nnz(), 0);
    }

    #[test]
    fn dense_with_a_full_mask_keeps_column_major_order() {
        let w = DMatrix::from_fn(3, 2, |r, c| (r * 10 + c) as f64);
        let d = DMatrix::from_fn(3, 2, |r, c| (r + c) as f64);
        let m = SparseSynapses::from_dense(&w, &d, &DMatrix::from_element(3, 2, true)).unwrap();
        assert_eq!(m.weight_values(), w.as_slice());
        assert_eq!(m.delay_values(), d.as_slice());
        assert_eq!(m.to_dense(), (w.clone(), d));
        let e = SparseSynapses::from_dense(&w, &DMatrix::zeros(3, 2), &DMatrix::from_element(2, 3, true)).unwrap_err();
        assert_eq!(e, CoreError::SparseShape { what: "mask", rows: 3, cols: 2, got_rows: 2, got_cols: 3 });
    }

    #[test]
    fn random_builders_are_seeded_and_honour_their_parameters() {
        let a = SparseSynapses::fixed_probability(200, 100, 0.3, 5).unwrap();
        assert_eq!(a, SparseSynapses::fixed_probability(200, 100, 0.3, 5).unwrap());
        assert_ne!(a, SparseSynapses::fixed_probability(200, 100, 0.3, 6).unwrap());
        // 20000 Bernoulli(0.3) draws: sd 65, so 6 sd is 390.
        assert!((a.nnz() as f64 - 6000.0).abs() < 390.0, "{}", a.nnz());
        assert_eq!(SparseSynapses::fixed_probability(20, 10, 1.0, 5).unwrap().nnz(), 200);
        for p in [-0.1, 1.1, f64::NAN] {
            assert!(matches!(
                SparseSynapses::fixed_probability(2, 2, p, 0),
                Err(CoreError::InvalidSetting { param: "p", .. })
            ));
        }
        let b = SparseSynapses::fixed_targets(50, 30, 7, 9).unwrap();
        assert_eq!(b, SparseSynapses::fixed_targets(50, 30, 7, 9).unwrap());
        for i in 0..30 {
            let (_, rows) = b.fan_out(i);
            assert_eq!(rows.len(), 7);
            assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows.iter().all(|&r| r < 50));
        }
        assert_eq!(SparseSynapses::fixed_targets(5, 3, 5, 0).unwrap().nnz(), 15);
        assert!(SparseSynapses::fixed_targets(5, 3, 6, 0).is_err());
    }

    #[test]
    fn serde_round_trip_and_consistency() {
        let m = SparseSynapses::from_triplets(3, 2, &[s(1, 0, 1.0, 2.0), s(2, 1, 3.0, 4.0)]).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let back: SparseSynapses = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(back.consistent());
        let mut bad = m.clone();
        bad.delays.pop();
        assert!(!bad.consistent());
        // sprs refuses a structurally broken matrix when decoding (unsorted indices).
        let broken = json.replace("\"indices\":[1,2]", "\"indices\":[1,7]");
        assert_ne!(broken, json);
        assert!(serde_json::from_str::<SparseSynapses>(&broken).is_err());
    }
}
