//! Data sets for the two papers of this workspace.
//!
//! * Event-based learning with delays (spec `eventprop-delays.md` §6): Yin-Yang,
//!   sequence detection, SHD / SSC (HDF5), synthetic SHD-like data whose classes
//!   differ only in timing, time-to-first-spike encoding, binning and SHD augmentations.
//! * Group Basis Pursuit (spec `sparse-bp.md` §4): synthetic group-sparse data with a
//!   Grassmannian dictionary, MNIST (IDX).
//!
//! Units: event times in [`SpikeDataset`] are **seconds** (`f32`); TTFS encodings
//! ([`TtfsDataset`]) are **milliseconds** (`f64`).
//!
//! | what | entry points |
//! |---|---|
//! | SHD / SSC (HDF5, pure Rust) | [`load_shd`], [`load_ssc`], [`load_spike_h5`], [`load_spike_h5_bytes`] → [`SpikeDataset`] |
//! | MNIST (IDX, gzipped or raw) | [`load_mnist`], [`read_idx`], [`parse_idx`] |
//! | Yin-Yang, sequence detection | [`yin_yang`], [`yin_yang_splits`], [`YinYangEncoder`], [`sequence_detection`] → [`TtfsDataset`] |
//! | synthetic SHD-like data | [`SyntheticShdParams`], [`synthetic_shd`] |
//! | synthetic group-sparse data | [`GroupSparseParams`], [`group_sparse_data`], [`grassmannian_dictionary`] |
//! | download, verify and cache MNIST / SHD / SSC | [`fetch::locate_or_fetch`], [`fetch::fetch`], [`fetch::Source`], [`fetch::Places`] |
//! | encodings, augmentations | [`bin_counts`], [`quantize_times`], [`channel_shift`], [`blend_augment`], [`MiniBatches`] |
//!
//! Every fallible function returns [`Result`] with the one error type [`DatasetError`];
//! file errors name the file. No input bytes make the loaders panic.
//!
//! ```
//! use datasets::{SyntheticShdParams, yin_yang, YinYangEncoder};
//!
//! // Yin-Yang, encoded as spike times in ms.
//! let train = yin_yang(300, 42).unwrap();
//! let enc = YinYangEncoder::default().encode(&train);
//! assert_eq!(enc.inputs, 4);
//! assert!(enc.sample(0).0.iter().all(|&t| (1.5..=20.0).contains(&t)));
//!
//! // Synthetic SHD-like spike trains (classes differ in timing only).
//! let p = SyntheticShdParams::small().seed(7).check().unwrap();
//! let d = datasets::synthetic_shd(&p).unwrap();
//! assert_eq!(d.len(), p.samples);
//! println!("{:?}", d.stats());
//! ```
#![warn(missing_docs)]

/// A builder-style setter for a field of a parameter struct (the generators' parameter types).
macro_rules! setter {
    ($name:ident, $t:ty) => {
        #[doc = concat!("Sets `", stringify!($name), "` (see the table on the type).")]
        #[must_use]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    };
}

mod error;
pub mod fetch;
mod files;
mod group_sparse;
mod mnist;
mod shd;
mod spikes;
mod synthetic_shd;
mod transform;
mod ttfs;

pub use error::{DatasetError, Result};
pub use group_sparse::{
    Dictionary, GroupSparseData, GroupSparseParams, MarginOn, coherence, grassmannian_dictionary, group_sparse_data,
    group_sparse_data_with, welch_bound,
};
pub use mnist::{
    IDX_MAX_BYTES, IdxArray, LabelStats, Mnist, MnistSplit, default_mnist_dir, encode_idx, load_mnist, parse_idx,
    read_idx,
};
pub use shd::{
    MAX_CLASSES, MAX_READ_BYTES, SHD_CLASSES, SHD_DOWNLOAD_HINT, SHD_UNITS, SSC_CLASSES, SpikeExtra, SpikeLoadOptions,
    load_shd, load_spike_h5, load_spike_h5_bytes, load_ssc,
};
pub use spikes::{SpikeDataset, SpikeSample, SpikeStats};
pub use synthetic_shd::{SyntheticShdParams, synthetic_shd};
pub use transform::{
    MiniBatches, SHD_MAX_SHIFT, bin_counts, bin_counts_into, blend, blend_augment, channel_shift, quantize_times,
};
pub use ttfs::{
    SEQUENCE_DURATION_MS, SEQUENCE_INTERVAL_MS, TtfsDataset, YIN_YANG_R_BIG, YIN_YANG_R_SMALL, YIN_YANG_SEEDS, YinYang,
    YinYangEncoder, sequence_detection, sequence_detection_both, sequence_pattern, yin_yang, yin_yang_class,
    yin_yang_splits,
};
