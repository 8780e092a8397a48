//! The error type of `snn-core`.

use thiserror::Error;

/// Which population or connection a problem was found in.
pub type Name = String;

/// Everything that can go wrong when describing or simulating a network.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CoreError {
    /// A neuron parameter is not finite or not positive.
    #[error("neuron parameter `{param}` = {value} must be finite and > 0")]
    InvalidNeuronParam {
        /// Name of the parameter (`tau_m`, `tau_s`, `theta`).
        param: &'static str,
        /// The offending value.
        value: f64,
    },
    /// `tau_m == tau_s`: the closed form has a removable singularity this crate does not handle.
    #[error(
        "tau_m = tau_s = {tau} ms is not supported (the closed-form propagator divides by tau_s - tau_m); perturb one of them"
    )]
    EqualTimeConstants {
        /// The common value.
        tau: f64,
    },
    /// A population has size zero or a duplicate name.
    #[error("population `{name}`: {reason}")]
    InvalidPopulation {
        /// Population name.
        name: Name,
        /// What is wrong.
        reason: &'static str,
    },
    /// A connection refers to a population that does not exist or cannot be used that way.
    #[error("connection {pre} -> {post}: {reason}")]
    InvalidConnection {
        /// Presynaptic population name.
        pre: Name,
        /// Postsynaptic population name.
        post: Name,
        /// What is wrong.
        reason: &'static str,
    },
    /// A weight or delay matrix has the wrong shape.
    #[error("connection {pre} -> {post}: {what} matrix is {got_rows}x{got_cols}, expected {rows}x{cols} (post x pre)")]
    ShapeMismatch {
        /// Presynaptic population name.
        pre: Name,
        /// Postsynaptic population name.
        post: Name,
        /// `"weight"`, `"delay"` or `"sparse synapse"`.
        what: &'static str,
        /// Expected rows (postsynaptic size; 0 for the dense matrices of a sparse connection).
        rows: usize,
        /// Expected columns (presynaptic size).
        cols: usize,
        /// Rows given.
        got_rows: usize,
        /// Columns given.
        got_cols: usize,
    },
    /// A weight is NaN or infinite.
    #[error("connection {pre} -> {post}: weight[{row}, {col}] = {value} is not finite")]
    NonFiniteWeight {
        /// Presynaptic population name.
        pre: Name,
        /// Postsynaptic population name.
        post: Name,
        /// Postsynaptic neuron.
        row: usize,
        /// Presynaptic neuron.
        col: usize,
        /// The value.
        value: f64,
    },
    /// A delay is NaN, infinite or negative.
    #[error("connection {pre} -> {post}: delay[{row}, {col}] = {value} ms must be finite and >= 0")]
    InvalidDelay {
        /// Presynaptic population name.
        pre: Name,
        /// Postsynaptic population name.
        post: Name,
        /// Postsynaptic neuron.
        row: usize,
        /// Presynaptic neuron.
        col: usize,
        /// The value.
        value: f64,
    },
    /// An entry given to [`crate::SparseSynapses::from_triplets`] cannot be stored.
    #[error("sparse synapses, entry {entry} (post {post}, pre {pre}): {reason}")]
    InvalidTriplet {
        /// Position of the entry in the list given.
        entry: usize,
        /// Its postsynaptic index (row).
        post: usize,
        /// Its presynaptic index (column).
        pre: usize,
        /// What is wrong.
        reason: TripletProblem,
    },
    /// The dense matrices or mask given to [`crate::SparseSynapses::from_dense`] differ in shape.
    #[error("sparse synapses: {what} matrix is {got_rows}x{got_cols}, the weights are {rows}x{cols} (post x pre)")]
    SparseShape {
        /// `"delay"` or `"mask"`.
        what: &'static str,
        /// Rows of the weights.
        rows: usize,
        /// Columns of the weights.
        cols: usize,
        /// Rows given.
        got_rows: usize,
        /// Columns given.
        got_cols: usize,
    },
    /// The network does not have the populations a simulation needs.
    #[error("network: {0}")]
    InvalidNetwork(&'static str),
    /// Spike data are malformed.
    #[error("spike data, sample {sample}, event {event}: {reason}")]
    InvalidSpikes {
        /// Sample index in the batch.
        sample: usize,
        /// Event index within the sample.
        event: usize,
        /// What is wrong.
        reason: SpikeProblem,
    },
    /// The CSR offsets of a spike batch are inconsistent.
    #[error("spike data: offsets {0}")]
    InvalidOffsets(&'static str),
    /// Spike data were built for a different number of input neurons.
    #[error("spike data has {got} input neurons, network input population has {expected}")]
    InputSizeMismatch {
        /// Input population size.
        expected: usize,
        /// Neurons declared by the spike data.
        got: usize,
    },
    /// A simulation setting is invalid.
    #[error("simulation setting `{param}` = {value}: {reason}")]
    InvalidSetting {
        /// Name of the setting.
        param: &'static str,
        /// The offending value.
        value: f64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A simulation produced more spikes than the configured cap (runaway recurrent activity).
    #[error("simulation exceeded the spike cap of {cap} spikes (runaway activity?)")]
    SpikeCapExceeded {
        /// The cap.
        cap: usize,
    },
}

/// What is wrong with one spike event.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum SpikeProblem {
    /// The time is NaN or infinite.
    #[error("time {0} is not finite")]
    NonFiniteTime(f64),
    /// The time is negative.
    #[error("time {0} is negative")]
    NegativeTime(f64),
    /// The neuron index is not below the number of input neurons.
    #[error("neuron {index} out of range (only {len} neurons)")]
    NeuronOutOfRange {
        /// The index.
        index: u32,
        /// Number of neurons.
        len: usize,
    },
    /// Times within a sample must be non-decreasing.
    #[error("time {time} comes before the previous event's {previous}")]
    Unsorted {
        /// This event's time.
        time: f64,
        /// The previous event's time.
        previous: f64,
    },
}

/// What is wrong with one entry given to [`crate::SparseSynapses::from_triplets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TripletProblem {
    /// The row or column is outside the `rows x cols` (post x pre) projection.
    #[error("index out of range of the {rows}x{cols} (post x pre) projection")]
    OutOfRange {
        /// Postsynaptic size.
        rows: usize,
        /// Presynaptic size.
        cols: usize,
    },
    /// Another entry already connects the same pair.
    #[error("duplicate of entry {first}")]
    Duplicate {
        /// The earlier entry with the same `(post, pre)`.
        first: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;
