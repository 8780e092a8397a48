//! MNIST for the examples, read straight from the gzipped IDX files (the examples do not depend
//! on the `datasets` crate): the first `n` images of a split as pixels in `[0, 1]`.

use std::io::Read;

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
pub fn load(dir: &str, split: &str, n: usize) -> Result<(DMatrix<f64>, Vec<usize>), BoxError> {
    let img = read_idx_gz(&format!("{dir}/{split}-images-idx3-ubyte.gz"), 16, 784, n)?;
    let lab = read_idx_gz(&format!("{dir}/{split}-labels-idx1-ubyte.gz"), 8, 1, n)?;
    let x = DMatrix::from_fn(784, n, |i, j| f64::from(img[j * 784 + i]) / 255.0);
    Ok((x, lab.iter().map(|&l| usize::from(l)).collect()))
}
