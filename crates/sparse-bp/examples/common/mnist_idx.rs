//! MNIST for the examples, read straight from the gzipped IDX files (the examples do not depend
//! on the `datasets` crate): the first `n` images of a split as pixels in `[0, 1]`, and both
//! splits standardised with the training pixels' global mean and deviation.

// each example that includes this module uses a part of it
#![allow(dead_code)]

use std::io::Read;

use sparse_bp::attack::protocol::{InputSpace, Standardisation};
use sparse_bp::nalgebra::DMatrix;

/// The error type of the examples.
pub type BoxError = Box<dyn std::error::Error>;

/// The payload of a gzipped IDX file after its `header` bytes, first `n` records of `size` bytes.
fn read_idx_gz(path: &str, header: usize, size: usize, n: usize) -> Result<Vec<u8>, BoxError> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut bytes)?;
    let end = header + n * size;
    if bytes.len() < end {
        return Err(format!("{path}: {} bytes, need {end}", bytes.len()).into());
    }
    Ok(bytes[header..end].to_vec())
}

/// The first `n` images of `split` (`train` or `t10k`) in `dir`, one column each, pixels / 255,
/// and their labels.
fn load(dir: &str, split: &str, n: usize) -> Result<(DMatrix<f64>, Vec<usize>), BoxError> {
    let img = read_idx_gz(&format!("{dir}/{split}-images-idx3-ubyte.gz"), 16, 784, n)?;
    let lab = read_idx_gz(&format!("{dir}/{split}-labels-idx1-ubyte.gz"), 8, 1, n)?;
    let x = DMatrix::from_fn(784, n, |i, j| f64::from(img[j * 784 + i]) / 255.0);
    Ok((x, lab.iter().map(|&l| usize::from(l)).collect()))
}

/// The first `n_train` training and `n_test` test images of `dir`, standardised (zero mean,
/// unit deviation) with the global pixel mean and deviation of the training images used.
pub struct Standardised {
    /// Standardised training images, one column each.
    pub x_train: DMatrix<f64>,
    /// Training labels.
    pub y_train: Vec<usize>,
    /// Standardised test images.
    pub x_test: DMatrix<f64>,
    /// Test labels.
    pub y_test: Vec<usize>,
    /// The standardisation (pixel mean and deviation).
    pub stdz: Standardisation,
    /// The models' input space: this standardisation and the pixel box `[0, 1]`.
    pub space: InputSpace,
}

/// Loads and standardises ([`Standardised`]).
pub fn load_standardised(dir: &str, n_train: usize, n_test: usize) -> Result<Standardised, BoxError> {
    Ok(load_standardised_held_out(dir, n_train, 0, n_test)?.0)
}

/// [`load_standardised`], plus the `n_val` training-split images after the first `n_train`
/// (held out, e.g. for early stopping) and their labels, standardised like the rest (with the
/// `n_train` training images' mean and deviation, as `cargo xtask reproduce sparse-mnist`).
pub fn load_standardised_held_out(
    dir: &str,
    n_train: usize,
    n_val: usize,
    n_test: usize,
) -> Result<(Standardised, DMatrix<f64>, Vec<usize>), BoxError> {
    let (px_split, y_split) = load(dir, "train", n_train + n_val)?;
    let px_train = px_split.columns(0, n_train).into_owned();
    let px_val = px_split.columns(n_train, n_val).into_owned();
    let (y_train, y_val) = (y_split[..n_train].to_vec(), y_split[n_train..].to_vec());
    let (px_test, y_test) = load(dir, "t10k", n_test)?;
    let n = px_train.len() as f64;
    let mean = px_train.sum() / n;
    let std = (px_train.map(|p| (p - mean) * (p - mean)).sum() / n).sqrt();
    let stdz = Standardisation::new(mean, std)?;
    let space = InputSpace::new(stdz, Some((0.0, 1.0)))?;
    let (x_train, x_val, x_test) = (stdz.standardise(&px_train), stdz.standardise(&px_val), stdz.standardise(&px_test));
    Ok((Standardised { x_train, y_train, x_test, y_test, stdz, space }, x_val, y_val))
}
