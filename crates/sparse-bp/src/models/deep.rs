//! Multi-layer pursuit classifiers (spec sections 3 and 4: the paper's 3-layer MNIST models).
//!
//! A chain of dictionaries `D_1 (m x M_1), D_2 (M_1 x M_2), ...` computes a code per layer,
//! then a [`LinearClassifier`] reads the **last** layer's code (or its group norms).
//!
//! | [`Pursuit`] | [`CodeKind`] | paper name | result key | code of each layer | classifier input |
//! | --- | --- | --- | --- | --- | --- |
//! | `Layered` | `Bp` | LBP | `lbp` | `l1`, layer by layer `Gamma_j = BP(D_j, Gamma_{j-1})` | last code |
//! | `Layered` | `Gbp` | LGBP | `lgbp` | group `l2` (contiguous blocks), layer by layer | last code |
//! | `Layered` | `Pgbp` | LPGBP | `lpgbp` | group `l2`, layer by layer | last layer's group norms |
//! | `Deep` | `Bp` | DP | `dp` | Deep Pursuit: all layers jointly, `l1` | last code |
//! | `Deep` | `Gbp` | GDP | `gdp` | all layers jointly, group `l2` blocks in every layer | last code |
//! | `Deep` | `Pgbp` | PGDP | `pgdp` | all layers jointly, group `l2` | last layer's group norms |
//!
//! **Deep (joint) pursuit is solved in its shallow form** (spec section 3): one group-BP
//! problem on the stacked code `[Gamma_1; ...; Gamma_l]` with the block dictionary of
//! [`MultiLayer::stacked_dictionary`] (`D_j` on the diagonal, `-I` below it) and the
//! input `[X; 0; ...; 0]`; its objective is exactly
//! `sum_j 1/2 ||Gamma_{j-1} - D_j Gamma_j||^2 + sum_j gamma_j R_j(Gamma_j)`. With `l1`
//! neurons this is Cazenavette et al.'s Deep Pursuit (the equivalence is tested in
//! [`crate::multilayer`]); with group-`l2` blocks it is our group version of it.
//!
//! **Gradients for white-box attacks.** Layered: the implicit-differentiation VJP of
//! [`crate::implicit::vjp`] chained layer by layer (`dL/dGamma_{j-1} = vjp_j(dL/dGamma_j)`,
//! exact wherever every layer's support is locally constant). Deep: one VJP through the
//! stacked problem, whose input gradient restricted to the first `m` rows is `dL/dX`.
//! Both are checked against central finite differences in the tests.
//!
//! ```
//! use nalgebra::DMatrix;
//! use sparse_bp::models::deep::{MultiLayerClassifier, Pursuit};
//! use sparse_bp::models::{Classifier, CodeKind, LinearClassifier, TaskLoss};
//! let dicts = vec![DMatrix::<f64>::identity(4, 4), DMatrix::<f64>::identity(4, 4)];
//! let m = MultiLayerClassifier::new(
//!     Pursuit::Deep, CodeKind::Pgbp, dicts, 2, vec![0.1, 0.05],
//!     LinearClassifier::zeros(3, 2), TaskLoss::CrossEntropy,
//! ).unwrap();
//! let x = DMatrix::from_column_slice(4, 1, &[1.0, 0.0, 0.0, 0.5]);
//! assert_eq!(m.features(&x).unwrap().shape(), (2, 1));
//! assert_eq!(m.predict(&x).unwrap().len(), 1);
//! ```

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Classifier, CodeKind, LinearClassifier, TaskLoss, WarmCodes, default_solver_params, group_norms};
use crate::error::{Result, SparseBpError};
use crate::groups::{Group, GroupNorm, GroupSpec};
use crate::multilayer::MultiLayer;
use crate::solver::{Solver, SolverParams};

/// How the layers' codes are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pursuit {
    /// Layer by layer (LBP family).
    Layered,
    /// All layers jointly (Deep Pursuit family), solved as one stacked group-BP problem.
    Deep,
}

/// The result-file name of a multi-layer model (see the module table): `lbp`, `lgbp`,
/// `lpgbp`, `dp`, `gdp`, `pgdp`.
#[must_use]
pub fn model_name(pursuit: Pursuit, kind: CodeKind) -> &'static str {
    match (pursuit, kind) {
        (Pursuit::Layered, CodeKind::Bp) => "lbp",
        (Pursuit::Layered, CodeKind::Gbp) => "lgbp",
        (Pursuit::Layered, CodeKind::Pgbp) => "lpgbp",
        (Pursuit::Deep, CodeKind::Bp) => "dp",
        (Pursuit::Deep, CodeKind::Gbp) => "gdp",
        (Pursuit::Deep, CodeKind::Pgbp) => "pgdp",
    }
}

/// The groups of one layer: `l1` atoms (`Bp`) or contiguous `l2` blocks, offset by `start`.
fn layer_groups(kind: CodeKind, start: usize, atoms: usize, group_size: usize, weight: f64) -> Vec<Group> {
    if kind == CodeKind::Bp {
        (start..start + atoms).map(|a| Group::new(vec![a], weight, GroupNorm::L1)).collect()
    } else {
        (0..atoms / group_size)
            .map(|g| {
                let s = start + g * group_size;
                Group::new((s..s + group_size).collect(), weight, GroupNorm::L2)
            })
            .collect()
    }
}

/// A multi-layer pursuit followed by a linear classifier on the last layer (see the
/// module docs). Serde-serialisable (model files: [`crate::train::save_model`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiLayerClassifier {
    /// Layered or joint pursuit.
    pub pursuit: Pursuit,
    /// `l1` or group `l2` codes; classifier on the code or on the last layer's group norms.
    pub kind: CodeKind,
    /// Group size (contiguous blocks in every layer; 1 for `Bp`).
    pub group_size: usize,
    /// Penalty weight of each layer.
    pub weights: Vec<f64>,
    /// The classifier on the last layer.
    pub classifier: LinearClassifier,
    /// The task loss.
    pub task: TaskLoss,
    /// The layer dictionaries.
    layers: MultiLayer,
    /// Layered: one solver per layer; Deep: one solver for the stacked problem.
    solvers: Vec<Solver>,
}

impl MultiLayerClassifier {
    /// Builds the model with [`default_solver_params`]. Errors if the dictionaries do not
    /// chain, a layer's atom count is not a multiple of the group size, a weight is not
    /// positive, or the classifier does not take the last layer's `M_l` (code) or
    /// `M_l / group_size` (pooled) features.
    #[allow(clippy::too_many_arguments)] // mirrors PursuitClassifier::new plus the pursuit kind
    pub fn new(
        pursuit: Pursuit,
        kind: CodeKind,
        dicts: Vec<DMatrix<f64>>,
        group_size: usize,
        weights: Vec<f64>,
        classifier: LinearClassifier,
        task: TaskLoss,
    ) -> Result<Self> {
        Self::with_solver_params(pursuit, kind, dicts, group_size, weights, classifier, task, default_solver_params())
    }

    /// [`MultiLayerClassifier::new`] with explicit solver parameters. A solver whose dictionary
    /// (a layer's, or the stacked one) is more than twice overcomplete
    /// ([`crate::solver::factored_products_pay`]: the thesis-size 4096-atom layer, never a preset's) is
    /// Gram-free and solves by working sets ([`Solver::new_for_shape`],
    /// [`Solver::new_gram_free`]); the choice follows from the dictionaries, so a model decoded
    /// from a file and rebuilt here ([`crate::train::ModelFile::validated`]) makes the same one.
    #[allow(clippy::too_many_arguments)]
    pub fn with_solver_params(
        pursuit: Pursuit,
        kind: CodeKind,
        dicts: Vec<DMatrix<f64>>,
        group_size: usize,
        weights: Vec<f64>,
        classifier: LinearClassifier,
        task: TaskLoss,
        params: SolverParams,
    ) -> Result<Self> {
        let gs = if kind == CodeKind::Bp { 1 } else { group_size };
        let layers = MultiLayer::new(dicts, weights.clone(), false)?;
        let sizes: Vec<usize> = layers.dictionaries().iter().map(|d| d.ncols()).collect();
        for (j, &s) in sizes.iter().enumerate() {
            if gs == 0 || s % gs != 0 {
                return Err(SparseBpError::UnequalGroupSize { group: j, size: gs, expected: s });
            }
        }
        let last = *sizes.last().unwrap_or(&0);
        let n_feat = if kind == CodeKind::Pgbp { last / gs } else { last };
        if classifier.w.ncols() != n_feat || classifier.b.len() != classifier.w.nrows() {
            return Err(SparseBpError::ShapeMismatch {
                what: "classifier weights",
                expected: (classifier.w.nrows(), n_feat),
                got: classifier.w.shape(),
            });
        }
        let solvers = match pursuit {
            Pursuit::Layered => layers
                .dictionaries()
                .iter()
                .zip(&weights)
                .map(|(d, &w)| {
                    let g = GroupSpec::new(d.ncols(), layer_groups(kind, 0, d.ncols(), gs, w))?;
                    Solver::new_for_shape(d.clone(), g, params.clone())
                })
                .collect::<Result<Vec<_>>>()?,
            Pursuit::Deep => {
                let mut groups = Vec::new();
                let mut start = 0;
                for (&s, &w) in sizes.iter().zip(&weights) {
                    groups.extend(layer_groups(kind, start, s, gs, w));
                    start += s;
                }
                let spec = GroupSpec::new(start, groups)?;
                let a = layers.stacked_dictionary();
                vec![Solver::new_for_shape(a, spec, params)?]
            }
        };
        Ok(Self { pursuit, kind, group_size: gs, weights, classifier, task, layers, solvers })
    }

    /// Replaces the solver parameters of every layer (or of the stacked problem).
    pub fn set_solver_params(&mut self, p: SolverParams) -> Result<()> {
        for s in &mut self.solvers {
            *s = s.with_params(p.clone())?;
        }
        Ok(())
    }

    /// The layer dictionaries.
    #[must_use]
    pub fn dictionaries(&self) -> &[DMatrix<f64>] {
        self.layers.dictionaries()
    }

    /// The solvers: one per layer (layered) or one for the stacked problem (deep).
    #[must_use]
    pub fn solvers(&self) -> &[Solver] {
        &self.solvers
    }

    /// The result-file name ([`model_name`]).
    #[must_use]
    pub fn name(&self) -> &'static str {
        model_name(self.pursuit, self.kind)
    }

    /// Every layer's code (`M_j x batch`) for an input batch.
    pub fn codes(&self, x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>> {
        super::check_batch(self, x)?;
        match self.pursuit {
            Pursuit::Layered => {
                let mut out: Vec<DMatrix<f64>> = Vec::with_capacity(self.solvers.len());
                for s in &self.solvers {
                    let input = out.last().unwrap_or(x);
                    let z = s.solve(input)?.codes;
                    out.push(z);
                }
                Ok(out)
            }
            Pursuit::Deep => {
                let z = self.solvers[0].solve(&self.layers.stacked_input(x)?)?.codes;
                Ok(self.layers.split_stacked(&z))
            }
        }
    }

    /// [`MultiLayerClassifier::codes`] warm-started from `warm` (every layer's codes stacked,
    /// first layer on top; ignored if its shape does not fit), which then holds the new codes.
    pub(crate) fn codes_warm(&self, x: &DMatrix<f64>, warm: &mut WarmCodes) -> Result<Vec<DMatrix<f64>>> {
        super::check_batch(self, x)?;
        let total: usize = self.dictionaries().iter().map(|d| d.ncols()).sum();
        let init = warm.take().filter(|w| w.shape() == (total, x.ncols()));
        let stacked = match self.pursuit {
            Pursuit::Layered => {
                let mut out = DMatrix::zeros(total, x.ncols());
                let (mut prev, mut r0) = (x.clone(), 0);
                for s in &self.solvers {
                    let rows = s.dictionary().ncols();
                    let z = match &init {
                        Some(w) => s.solve_warm(&prev, &w.rows(r0, rows).into_owned())?.codes,
                        None => s.solve(&prev)?.codes,
                    };
                    out.rows_mut(r0, rows).copy_from(&z);
                    r0 += rows;
                    prev = z;
                }
                out
            }
            Pursuit::Deep => {
                let input = self.layers.stacked_input(x)?;
                match &init {
                    Some(w) => self.solvers[0].solve_warm(&input, w)?.codes,
                    None => self.solvers[0].solve(&input)?.codes,
                }
            }
        };
        let codes = self.layers.split_stacked(&stacked);
        *warm = Some(stacked);
        Ok(codes)
    }

    /// Classifier input from the last layer's code.
    #[must_use]
    pub fn features_from_last(&self, z: &DMatrix<f64>) -> DMatrix<f64> {
        match self.kind {
            CodeKind::Bp | CodeKind::Gbp => z.clone(),
            CodeKind::Pgbp => group_norms(z, self.group_size),
        }
    }

    /// Classifier input of an input batch.
    pub fn features(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let codes = self.codes(x)?;
        Ok(self.features_from_last(codes.last().ok_or(SparseBpError::Empty { what: "layers" })?))
    }

    /// Cotangent on the last code from a cotangent `df` on the features, for column `j`.
    fn last_cotangent(&self, z: &DMatrix<f64>, f: &DMatrix<f64>, df: &DMatrix<f64>, j: usize) -> DVector<f64> {
        match self.kind {
            CodeKind::Bp | CodeKind::Gbp => df.column(j).into_owned(),
            CodeKind::Pgbp => DVector::from_fn(z.nrows(), |a, _| {
                let g = a / self.group_size;
                let nrm = f[(g, j)];
                if nrm > 0.0 { df[(g, j)] * z[(a, j)] / nrm } else { 0.0 }
            }),
        }
    }
}

impl Classifier for MultiLayerClassifier {
    fn n_inputs(&self) -> usize {
        self.layers.dictionaries()[0].nrows()
    }
    fn logits(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        self.classifier.logits(&self.features(x)?)
    }
    fn loss(&self) -> TaskLoss {
        self.task
    }
    fn input_gradient(&self, x: &DMatrix<f64>, labels: &[usize]) -> Result<DMatrix<f64>> {
        self.input_gradient_at(x, labels, &self.codes(x)?)
    }
    fn input_gradient_warm(&self, x: &DMatrix<f64>, labels: &[usize], warm: &mut WarmCodes) -> Result<DMatrix<f64>> {
        let codes = self.codes_warm(x, warm)?;
        self.input_gradient_at(x, labels, &codes)
    }
}

impl MultiLayerClassifier {
    /// The input gradient of the attack objective at every layer's codes of `x`.
    fn input_gradient_at(&self, x: &DMatrix<f64>, labels: &[usize], codes: &[DMatrix<f64>]) -> Result<DMatrix<f64>> {
        let last = codes.last().ok_or(SparseBpError::Empty { what: "layers" })?;
        let f = self.features_from_last(last);
        let logits = self.classifier.logits(&f)?;
        let (_, dl) = self.task.attack_objective(&logits, labels)?;
        let df = self.classifier.w.tr_mul(&dl);
        let m = self.n_inputs();
        let cols: Vec<Result<DVector<f64>>> = (0..x.ncols())
            .into_par_iter()
            .map(|j| {
                let v = self.last_cotangent(last, &f, &df, j);
                match self.pursuit {
                    Pursuit::Layered => {
                        let mut v = v;
                        for (l, (s, z)) in self.solvers.iter().zip(codes).enumerate().rev() {
                            v = crate::implicit::vjp(s, &z.column(j).into_owned(), &v)
                                .map_err(SparseBpError::in_layer(Some(l + 1), j))?;
                        }
                        Ok(v)
                    }
                    Pursuit::Deep => {
                        let total: usize = codes.iter().map(|c| c.nrows()).sum();
                        let mut zs = DVector::zeros(total);
                        let mut r = 0;
                        for c in codes {
                            zs.rows_mut(r, c.nrows()).copy_from(&c.column(j));
                            r += c.nrows();
                        }
                        let mut vs = DVector::zeros(total);
                        vs.rows_mut(total - v.len(), v.len()).copy_from(&v);
                        let g = crate::implicit::vjp(&self.solvers[0], &zs, &vs)
                            .map_err(SparseBpError::in_layer(None, j))?;
                        Ok(g.rows(0, m).into_owned())
                    }
                }
            })
            .collect();
        let mut out = DMatrix::zeros(m, x.ncols());
        for (j, c) in cols.into_iter().enumerate() {
            out.column_mut(j).copy_from(&c?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tests::{rand_mat, unit_cols};
    use crate::multilayer::DeepPursuitParams;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn tight() -> SolverParams {
        SolverParams { tol: 1e-14, max_iter: 400_000, ..SolverParams::default() }
    }

    fn model(pursuit: Pursuit, kind: CodeKind, seed: u64) -> MultiLayerClassifier {
        model_sized(pursuit, kind, seed, 8)
    }

    /// A 10 -> 12 -> `width` model (pooled codes in pairs) with random unit-norm dictionaries.
    fn model_sized(pursuit: Pursuit, kind: CodeKind, seed: u64, width: usize) -> MultiLayerClassifier {
        let mut rng = StdRng::seed_from_u64(seed);
        let dicts = vec![unit_cols(rand_mat(10, 12, &mut rng)), unit_cols(rand_mat(12, width, &mut rng))];
        let nf = if kind == CodeKind::Pgbp { width / 2 } else { width };
        let clf = LinearClassifier { w: rand_mat(3, nf, &mut rng), b: DVector::from_element(3, 0.1) };
        MultiLayerClassifier::with_solver_params(
            pursuit,
            kind,
            dicts,
            2,
            vec![0.2, 0.1],
            clf,
            TaskLoss::CrossEntropy,
            tight(),
        )
        .unwrap()
    }

    fn fd_check(m: &MultiLayerClassifier, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = rand_mat(10, 2, &mut rng) * 2.0;
        let labels = vec![1, 2];
        let g = m.input_gradient(&x, &labels).unwrap();
        // the warm-started gradient (from the codes of a nearby input, as in an attack's next step)
        let mut warm = None;
        m.input_gradient_warm(&(&x * 0.97), &labels, &mut warm).unwrap();
        let gw = m.input_gradient_warm(&x, &labels, &mut warm).unwrap();
        let total: usize = m.dictionaries().iter().map(|d| d.ncols()).sum();
        assert_eq!(warm.as_ref().map(DMatrix::shape), Some((total, 2)));
        // non-trivial: the last layer is active for both samples
        assert!(m.codes(&x).unwrap()[1].iter().any(|v| *v != 0.0), "{}: last layer empty", m.name());
        assert!(g.norm() > 0.0, "{}: zero gradient", m.name());
        let f = |x: &DMatrix<f64>| m.task.attack_objective(&m.logits(x).unwrap(), &labels).unwrap().0;
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()), "{} entry {i}: fd {fd} vs {}", m.name(), g[i]);
            assert!((fd - gw[i]).abs() < 1e-5 * (1.0 + fd.abs()), "{} warm {i}: fd {fd} vs {}", m.name(), gw[i]);
        }
    }

    #[test]
    fn input_gradients_match_finite_differences() {
        for (s, pursuit) in [(10, Pursuit::Layered), (20, Pursuit::Deep)] {
            for (k, kind) in [CodeKind::Bp, CodeKind::Gbp, CodeKind::Pgbp].into_iter().enumerate() {
                fd_check(&model(pursuit, kind, s + k as u64), s + k as u64 + 100);
            }
        }
    }

    /// A layer more than twice overcomplete (12 -> 40 atoms; stacked 22 x 52 for Deep Pursuit)
    /// gets a Gram-free working-set solver (the thesis-size 4096-atom layer's case), the others
    /// keep `G`; the attack gradients still match central finite differences (cold and
    /// warm-started), and a model file round trip (no Gram matrix stored) gives the same logits
    /// bit for bit.
    #[test]
    fn wide_layers_are_gram_free_and_differentiate_as_before() {
        for (s, pursuit) in [(40u64, Pursuit::Layered), (50, Pursuit::Deep)] {
            for (k, kind) in [CodeKind::Bp, CodeKind::Gbp, CodeKind::Pgbp].into_iter().enumerate() {
                let seed = s + k as u64;
                // layer 2 more than twice overcomplete (12 -> 40): Gram-free
                let m = model_sized(pursuit, kind, seed, 40);
                let free: Vec<bool> = m.solvers().iter().map(Solver::gram_free).collect();
                match pursuit {
                    Pursuit::Layered => assert_eq!(free, [false, true]),
                    Pursuit::Deep => assert_eq!(free, [true]),
                }
                fd_check(&m, seed + 100);
                let bytes = crate::train::encode_model(&m).unwrap();
                let back: MultiLayerClassifier =
                    crate::train::decode_model(std::path::Path::new("wide.bin"), &bytes).unwrap();
                assert!(back.solvers().iter().zip(&free).all(|(s, &f)| s.gram_free() == f));
                let x = rand_mat(10, 3, &mut StdRng::seed_from_u64(seed + 200));
                let bits =
                    |m: &MultiLayerClassifier| m.logits(&x).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&back), bits(&m), "{}", m.name());
            }
        }
    }

    #[test]
    fn deep_l1_codes_equal_deep_pursuit_and_layered_equal_layered_bp() {
        let m = model(Pursuit::Deep, CodeKind::Bp, 1);
        let mut rng = StdRng::seed_from_u64(2);
        let x = rand_mat(10, 3, &mut rng);
        let ours = m.codes(&x).unwrap();
        let ml = MultiLayer::new(m.dictionaries().to_vec(), m.weights.clone(), false).unwrap();
        let dp = ml.deep_pursuit(&x, &DeepPursuitParams { tol: 1e-12, max_iter: 400_000, ..Default::default() });
        for (a, b) in ours.iter().zip(&dp.unwrap().codes) {
            assert!((a - b).amax() < 1e-6, "{}", (a - b).amax());
        }
        let l = model(Pursuit::Layered, CodeKind::Bp, 1);
        let lbp = ml.layered_bp(&x, &tight()).unwrap();
        for (a, b) in l.codes(&x).unwrap().iter().zip(&lbp) {
            assert!((a - b).amax() < 1e-8);
        }
        assert_eq!([l.name(), m.name()], ["lbp", "dp"], "names used in results.json must stay stable");
    }

    /// A layer-2 dictionary with a repeated atom (the tiny overcomplete case that met a singular
    /// `D_S^T D_S + H`): the attack gradient of the layered `l1` model is the typed error naming
    /// the layer and the sample, not a panic nor a NaN; so is the Deep Pursuit model's, whose
    /// stacked dictionary repeats the atom's column too (its layer named as the stacked problem).
    #[test]
    fn a_singular_layer_system_names_its_layer_and_sample() {
        let d1 = DMatrix::<f64>::identity(2, 2);
        let d2 = DMatrix::from_column_slice(2, 3, &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
        let clf =
            LinearClassifier { w: DMatrix::from_fn(2, 3, |i, j| (i + j) as f64 * 0.5 - 0.5), b: DVector::zeros(2) };
        let mk = |pursuit| {
            MultiLayerClassifier::with_solver_params(
                pursuit,
                CodeKind::Bp,
                vec![d1.clone(), d2.clone()],
                1,
                vec![0.1, 0.1],
                clf.clone(),
                TaskLoss::CrossEntropy,
                SolverParams { restart: false, ..tight() },
            )
            .unwrap()
        };
        let x = DMatrix::from_column_slice(2, 2, &[0.0, 0.0, 3.0, 0.2]);
        let m = mk(Pursuit::Layered);
        let codes = m.codes(&x).unwrap();
        assert!(codes[1][(0, 1)] > 0.0 && codes[1][(0, 1)] == codes[1][(2, 1)], "{}", codes[1]);
        let e = m.input_gradient(&x, &[0, 1]).unwrap_err();
        match &e {
            SparseBpError::InLayer { layer: Some(2), sample: 1, source } => assert!(
                matches!(**source, SparseBpError::SingularImplicit { active: 2, rows: 2, atoms: 3, .. }),
                "{source:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("sample 1 of the batch, layer 2: D_S^T D_S + H at a code"), "{e}");
        let e = mk(Pursuit::Deep).input_gradient(&x, &[0, 1]).unwrap_err();
        match &e {
            SparseBpError::InLayer { layer: None, sample: 1, source } => assert!(
                matches!(**source, SparseBpError::SingularImplicit { active: 4, rows: 4, atoms: 5, .. }),
                "{source:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("sample 1 of the batch, the stacked Deep Pursuit problem: "), "{e}");
    }

    #[test]
    fn typed_errors() {
        let d1 = DMatrix::<f64>::identity(4, 4);
        let d2 = DMatrix::<f64>::identity(3, 3); // does not chain
        let clf = LinearClassifier::zeros(2, 3);
        let r = MultiLayerClassifier::new(
            Pursuit::Layered,
            CodeKind::Bp,
            vec![d1.clone(), d2],
            1,
            vec![0.1, 0.1],
            clf,
            TaskLoss::CrossEntropy,
        );
        assert!(matches!(r, Err(SparseBpError::LayerMismatch { layer: 1, .. })));
        let r = MultiLayerClassifier::new(
            Pursuit::Deep,
            CodeKind::Pgbp,
            vec![d1.clone(), d1.clone()],
            3,
            vec![0.1, 0.1],
            LinearClassifier::zeros(2, 1),
            TaskLoss::CrossEntropy,
        );
        assert!(matches!(r, Err(SparseBpError::UnequalGroupSize { .. })));
        let m = MultiLayerClassifier::new(
            Pursuit::Deep,
            CodeKind::Gbp,
            vec![d1.clone(), d1],
            2,
            vec![0.1, 0.1],
            LinearClassifier::zeros(2, 4),
            TaskLoss::CrossEntropy,
        )
        .unwrap();
        assert!(matches!(m.predict(&DMatrix::zeros(3, 1)), Err(SparseBpError::ShapeMismatch { .. })));
        let mut x = DMatrix::zeros(4, 1);
        x[1] = f64::INFINITY;
        assert!(matches!(m.predict(&x), Err(SparseBpError::NonFinite { .. })));
    }
}
