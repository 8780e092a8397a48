//! The error type of `snn-eventprop`.

use thiserror::Error;

/// Everything that can go wrong when computing gradients or training.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventPropError {
    /// An error of the forward model.
    #[error(transparent)]
    Core(#[from] snn_core::CoreError),
    /// An error of the delay parameterisation.
    #[error(transparent)]
    Delays(#[from] snn_delays::DelayError),
    /// A class label is not a valid output index.
    #[error("label {label} of sample {sample} is out of range (the output population has {classes} neurons)")]
    LabelOutOfRange {
        /// Sample index.
        sample: usize,
        /// The label.
        label: usize,
        /// Number of output neurons.
        classes: usize,
    },
    /// The readout does not fit the loss (wrong kind or wrong length).
    #[error("loss `{loss}` needs readout {expected}, got {got}")]
    ReadoutMismatch {
        /// Loss name.
        loss: &'static str,
        /// What the loss needs.
        expected: &'static str,
        /// What was given.
        got: String,
    },
    /// A batch has no sample.
    #[error("empty batch")]
    EmptyBatch,
    /// The number of labels differs from the number of samples.
    #[error("{samples} samples but {labels} labels")]
    LabelCountMismatch {
        /// Samples in the batch.
        samples: usize,
        /// Labels given.
        labels: usize,
    },
    /// No parameter is trainable.
    #[error("nothing to train: no connection has trainable weights or delays")]
    NothingToTrain,
    /// A gradient came out NaN or infinite.
    #[error("non-finite {what} gradient in connection {connection} at [{row}, {col}] (sample {sample})")]
    NonFiniteGradient {
        /// `"weight"` or `"delay"`.
        what: &'static str,
        /// Connection index.
        connection: usize,
        /// Postsynaptic neuron.
        row: usize,
        /// Presynaptic neuron.
        col: usize,
        /// Index of the sample in the spike data given (for the training loop: in the training set).
        sample: usize,
    },
    /// The number of per-connection `Trainable` flags differs from the number of connections.
    #[error("{flags} trainable flags given for {connections} connections")]
    TrainableCountMismatch {
        /// Connections of the network.
        connections: usize,
        /// Flags given.
        flags: usize,
    },
    /// Buffers that must have the same shape do not (e.g. gradients of another network).
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was compared.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size found.
        got: usize,
    },
    /// A setting needs data that was not given (e.g. early stopping on validation accuracy
    /// without a validation set).
    #[error("{what} is required by {needed_by}")]
    MissingData {
        /// The missing data.
        what: &'static str,
        /// The setting that needs it.
        needed_by: &'static str,
    },
    /// A hyperparameter is invalid.
    #[error("hyperparameter `{param}` = {value}: {reason}")]
    InvalidHyperparameter {
        /// Name.
        param: &'static str,
        /// Value.
        value: f64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The engine (or adjoint) does not support a requested feature.
    #[error("not supported by this engine: {what}")]
    Unsupported {
        /// The feature.
        what: &'static str,
    },
    /// Reading or writing a checkpoint failed.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// File.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A checkpoint file could not be written or read: missing, not a regular file, damaged
    /// (magic, version, length, checksum), of another kind, or not decodable.
    #[error("checkpoint: {0}")]
    CheckpointFile(#[from] persist::PersistError),
    /// The checkpoint was written by a run with other settings: resuming it would mix two runs.
    #[error(
        "checkpoint {path} was written by a run with other settings: {}; to start afresh, delete \
         the checkpoint (or give another checkpoint path), or run again with the checkpoint's settings",
        differences.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ResumeMismatch {
        /// File.
        path: std::path::PathBuf,
        /// Every differing setting.
        differences: Vec<crate::train::SettingDiff>,
    },
    /// A data-parallel run has more ranks than a full batch has chunks.
    #[error(
        "{ranks} ranks but a batch has only {chunks} chunks ({batch_size} samples in chunks of {chunk_size}): use at most {chunks} ranks, a larger batch or smaller chunks"
    )]
    TooManyRanks {
        /// Number of ranks.
        ranks: usize,
        /// Chunks of a full batch.
        chunks: usize,
        /// Samples per batch (at most the training set's size).
        batch_size: usize,
        /// Samples per chunk.
        chunk_size: usize,
    },
    /// Another rank of a data-parallel run failed (that rank reports its own error).
    #[error("rank {rank} failed on chunk {chunk} of the step (see that rank's error)")]
    RankFailed {
        /// The failing rank.
        rank: usize,
        /// Global index of the first failing chunk.
        chunk: usize,
    },
    /// Communication between ranks failed or was misused.
    #[error("communication ({op}): {reason}")]
    Communication {
        /// The operation.
        op: &'static str,
        /// What went wrong.
        reason: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, EventPropError>;
