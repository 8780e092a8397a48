//! Data sets: Yin-Yang, sequence detection, SHD/SSC (HDF5), MNIST (IDX), synthetic group-sparse data.
//!
//! This crate is being filled by its issue; until then it exports nothing.
#![warn(missing_docs)]
