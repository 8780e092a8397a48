//! The crate's single error type.

use thiserror::Error;

/// Everything that can go wrong in `sparse-bp`. Every variant carries typed data that
/// says what was wrong and where.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SparseBpError {
    /// Two matrices/vectors that must agree in size do not.
    #[error("shape mismatch in {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// Expected `(rows, cols)`.
        expected: (usize, usize),
        /// Actual `(rows, cols)`.
        got: (usize, usize),
    },
    /// A NaN or infinite value was found in an input.
    #[error("non-finite value in {what} at index {index}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// Linear (column-major) index of the first bad entry.
        index: usize,
    },
    /// An input that must be non-empty is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which argument.
        what: &'static str,
    },
    /// A parameter lies outside its documented valid range.
    #[error("parameter `{name}` = {value} out of range: {expected}")]
    InvalidParam {
        /// Parameter name.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// Human-readable valid range.
        expected: &'static str,
    },
    /// An attack's clean input lies outside the valid input box (in the model's units).
    #[error("clean input entry {index} = {value} lies outside the input box [{lo}, {hi}]")]
    OutsideBox {
        /// Column-major index into the input batch.
        index: usize,
        /// The offending value.
        value: f64,
        /// Lower end of the box.
        lo: f64,
        /// Upper end of the box.
        hi: f64,
    },
    /// A group weight (or a per-atom weight of a weighted-l1 group) is not strictly positive and finite.
    #[error("group {group}: weight {weight} must be finite and > 0")]
    NonPositiveWeight {
        /// Group index.
        group: usize,
        /// The offending weight.
        weight: f64,
    },
    /// An atom appears in two groups.
    #[error("atom {atom} belongs to groups {first} and {second}: groups must be disjoint")]
    OverlappingGroups {
        /// Atom index.
        atom: usize,
        /// First group containing it.
        first: usize,
        /// Second group containing it.
        second: usize,
    },
    /// An atom is in no group.
    #[error("atom {atom} belongs to no group: groups must cover every atom")]
    MissingAtom {
        /// Atom index.
        atom: usize,
    },
    /// A group refers to an atom index beyond the dictionary.
    #[error("group {group} refers to atom {atom} but the dictionary has {n_atoms} atoms")]
    AtomOutOfRange {
        /// Group index.
        group: usize,
        /// Atom index.
        atom: usize,
        /// Number of atoms.
        n_atoms: usize,
    },
    /// A group has no atoms.
    #[error("group {group} is empty")]
    EmptyGroup {
        /// Group index.
        group: usize,
    },
    /// The theorem needs unit-norm atoms and this one is not.
    #[error("atom {atom} has norm {norm}, the theorem needs unit-norm atoms (tolerance {tol})")]
    NonUnitAtom {
        /// Atom index.
        atom: usize,
        /// Its l2 norm.
        norm: f64,
        /// Allowed deviation from 1.
        tol: f64,
    },
    /// The operation needs every group to have the same size.
    #[error("group {group} has size {size}, expected {expected} (equal block sizes required)")]
    UnequalGroupSize {
        /// Group index.
        group: usize,
        /// Its size.
        size: usize,
        /// The required size.
        expected: usize,
    },
    /// The operation is not defined for this group norm.
    #[error("operation `{operation}` is not supported for the norm of group {group}")]
    UnsupportedNorm {
        /// What was attempted.
        operation: &'static str,
        /// Group index.
        group: usize,
    },
    /// A sub-matrix that must be invertible (e.g. `D_S^T D_S`) is singular.
    #[error("{what} is singular or numerically rank deficient")]
    Singular {
        /// Which matrix.
        what: &'static str,
    },
    /// The implicit-differentiation system `D_S^T D_S + H` at a code (its active atoms `S`,
    /// [`crate::implicit`]) is singular or numerically rank deficient: its Cholesky
    /// factorisation met a zero, negative or NaN pivot, or the solve gave a non-finite value.
    /// With more active atoms than dictionary rows, `D_S^T D_S` has rank at most `rows` and
    /// (without curvature from group-`l2` terms) the code on this support is not unique, so
    /// `dGamma_S/dY = (D_S^T D_S + H)^{-1} D_S^T` does not exist; a tighter solver tolerance
    /// (fewer spurious small entries) or a larger penalty usually removes it.
    #[error(
        "{what} at a code with {active} active atoms in {groups} active groups (dictionary {rows} x {atoms}) is \
         singular or numerically rank deficient{}",
        singular_hint(*.active, *.rows)
    )]
    SingularImplicit {
        /// Which matrix (`D_S^T D_S + H`).
        what: &'static str,
        /// Active atoms `|S|` of the code.
        active: usize,
        /// Active groups of the code.
        groups: usize,
        /// Rows `m` of the dictionary.
        rows: usize,
        /// Atoms `M` of the dictionary.
        atoms: usize,
    },
    /// An error of one sample's computation in one layer of a multi-layer model (e.g. a
    /// [`SparseBpError::SingularImplicit`] in an attack's or a training step's gradient).
    #[error("sample {sample} of the batch, {}: {source}", layer_name(*.layer))]
    InLayer {
        /// The layer (1-based) of a layered model, or `None` for the stacked Deep Pursuit problem.
        layer: Option<usize>,
        /// The sample's column in the batch.
        sample: usize,
        /// What went wrong there.
        source: Box<SparseBpError>,
    },
    /// Multi-layer dictionaries do not chain (`D_j` columns vs `D_{j+1}` rows).
    #[error("layer {layer}: dictionary has {rows} rows but the previous layer has {expected} atoms")]
    LayerMismatch {
        /// Layer index (0-based).
        layer: usize,
        /// Rows of `D_layer`.
        rows: usize,
        /// Atoms of the previous layer (or signal dimension for layer 0).
        expected: usize,
    },
    /// A class label is not smaller than the number of classes (robust classifiers).
    #[error("label {label} at sample {index} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// Sample index.
        index: usize,
        /// The offending label.
        label: usize,
        /// Number of classes.
        n_classes: usize,
    },
    /// A model file could not be written or read: missing, not a regular file, damaged
    /// (magic, version, length, checksum), of another kind, or not decodable (see [`persist`]).
    #[error("model file: {0}")]
    ModelFile(#[from] persist::PersistError),
    /// A stored training stage could not be encoded, read or decoded: damaged (magic,
    /// version, length, checksum), of another kind, or not decodable
    /// ([`crate::paper::StageStore`]).
    #[error("training stage `{stage}`: {source}")]
    StageFile {
        /// The stage's name.
        stage: String,
        /// What the framing found.
        source: persist::PersistError,
    },
    /// A stage store failed, or holds another stage under this stage's name
    /// ([`crate::paper::StageStore`]).
    #[error("training stage `{stage}` at {}: {reason}", location.display())]
    Stage {
        /// The stage's name.
        stage: String,
        /// Where the store keeps it.
        location: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A training unit's name is none of [`crate::paper::MNIST_UNITS`], or a selected 3-layer
    /// model's layer-1 dictionary was not given ([`crate::paper::train_deep_selected`]).
    #[error("training unit `{unit}`: {reason}")]
    Unit {
        /// The unit's name.
        unit: String,
        /// What is wrong.
        reason: String,
    },
    /// A model file decoded but describes an invalid model.
    #[error("model file {path} holds an invalid model: {source}")]
    InvalidModel {
        /// File path.
        path: std::path::PathBuf,
        /// What the model's checks found.
        source: Box<SparseBpError>,
    },
}

fn singular_hint(active: usize, rows: usize) -> &'static str {
    if active > rows {
        " (more active atoms than dictionary rows: D_S^T D_S has rank <= rows, the code on this support is not unique)"
    } else {
        ""
    }
}

impl SparseBpError {
    /// `map_err` for one sample's computation in one layer: wraps an error as
    /// [`SparseBpError::InLayer`] (`layer` 1-based, `None` for the stacked Deep Pursuit problem).
    pub(crate) fn in_layer(layer: Option<usize>, sample: usize) -> impl FnOnce(SparseBpError) -> SparseBpError {
        move |e| SparseBpError::InLayer { layer, sample, source: Box::new(e) }
    }
}

fn layer_name(layer: Option<usize>) -> String {
    match layer {
        Some(l) => format!("layer {l}"),
        None => "the stacked Deep Pursuit problem".to_owned(),
    }
}

/// `Result` with [`SparseBpError`].
pub type Result<T> = std::result::Result<T, SparseBpError>;

/// Return the first non-finite entry of a slice as an error.
pub(crate) fn check_finite(what: &'static str, data: &[f64]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(SparseBpError::NonFinite { what, index }),
        None => Ok(()),
    }
}
