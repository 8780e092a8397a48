//! Model files never crash a run or load silently as something else: every damaged variant
//! (bit flips, truncation at any offset, appended bytes, a file of another kind swapped in,
//! crafted payloads with a valid checksum) gives a typed error or the same model; a decodable
//! but invalid model is refused by the model's own checks.

use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};
use persist::{HEADER_LEN, PersistError};
use proptest::prelude::*;
use sparse_bp::SparseBpError;
use sparse_bp::models::deep::{MultiLayerClassifier, Pursuit};
use sparse_bp::models::{Approximator, Classifier, CodeKind, LinearClassifier, PursuitClassifier, TaskLoss};
use sparse_bp::nn::{Layer, LayerKind, Network};
use sparse_bp::train::{ModelFile, decode_model, encode_model, load_model, save_model};

fn clf(outputs: usize, features: usize) -> LinearClassifier {
    LinearClassifier {
        w: DMatrix::from_fn(outputs, features, |i, j| (i as f64 - j as f64) * 0.1),
        b: DVector::from_element(outputs, 0.05),
    }
}

fn dict(m: usize, n: usize) -> DMatrix<f64> {
    let mut d = DMatrix::from_fn(m, n, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0 + 0.1 * j as f64);
    for mut c in d.column_iter_mut() {
        let n = c.norm();
        c /= n;
    }
    d
}

fn pursuit() -> PursuitClassifier {
    PursuitClassifier::new(CodeKind::Pgbp, dict(5, 6), 2, 0.2, clf(2, 3), TaskLoss::CrossEntropy).unwrap()
}

fn approximator() -> Approximator {
    Approximator::new(Network::linear_transformer(6, 3, 2, 3, 1).unwrap(), clf(2, 3), TaskLoss::CrossEntropy).unwrap()
}

fn multilayer() -> MultiLayerClassifier {
    MultiLayerClassifier::new(
        Pursuit::Deep,
        CodeKind::Gbp,
        vec![dict(5, 6), dict(6, 4)],
        2,
        vec![0.1, 0.05],
        clf(2, 4),
        TaskLoss::CrossEntropy,
    )
    .unwrap()
}

fn path() -> &'static Path {
    Path::new("model.bin")
}

/// Logits of a fixed batch, compared bit for bit.
fn logits_bits(m: &impl Classifier) -> Option<Vec<u64>> {
    let n = m.n_inputs();
    if n > 1000 {
        return None;
    }
    let x = DMatrix::from_fn(n, 3, |i, j| ((i + 2 * j) % 5) as f64 * 0.3 - 0.6);
    m.logits(&x).ok().map(|l| l.iter().map(|v| v.to_bits()).collect())
}

/// One damaged variant of a model file: an error, or the same model (same logits).
fn same_or_error<T: ModelFile + Classifier>(original: &T, bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode_model::<T>(path(), bytes) {
        Err(SparseBpError::ModelFile(_) | SparseBpError::InvalidModel { .. }) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("untyped error {e}"))),
        Ok(m) => {
            prop_assert_eq!(logits_bits(&m), logits_bits(original));
            Ok(())
        }
    }
}

/// A crafted variant decodes to a model that passes its checks (and then runs) or is an error.
fn crafted_is_checked<T: ModelFile + Classifier>(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode_model::<T>(path(), bytes) {
        Err(SparseBpError::ModelFile(_) | SparseBpError::InvalidModel { .. }) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("untyped error {e}"))),
        Ok(m) => {
            let _ = logits_bits(&m); // must not panic
            Ok(())
        }
    }
}

fn variants(bytes: &[u8], at: usize, bit: u8, cut: usize, extra: &[u8]) -> Vec<Vec<u8>> {
    let mut flipped = bytes.to_vec();
    flipped[at % bytes.len()] ^= 1 << bit;
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(extra);
    vec![flipped, bytes[..cut % bytes.len()].to_vec(), longer]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_model_files_give_errors_or_the_same_model(
        at in any::<usize>(), bit in 0u8..8, cut in any::<usize>(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let (p, a, d) = (pursuit(), approximator(), multilayer());
        for v in variants(&encode_model(&p).unwrap(), at, bit, cut, &extra) {
            same_or_error(&p, &v)?;
        }
        for v in variants(&encode_model(&a).unwrap(), at, bit, cut, &extra) {
            same_or_error(&a, &v)?;
        }
        for v in variants(&encode_model(&d).unwrap(), at, bit, cut, &extra) {
            same_or_error(&d, &v)?;
        }
    }

    #[test]
    fn crafted_payloads_are_checked(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        /// The model's file with its payload edited, re-framed with a valid checksum, as a
        /// crafted file would be.
        fn mutate<T: ModelFile>(model: &T, edits: &[(usize, u8)]) -> Vec<u8> {
            let mut payload = encode_model(model).unwrap()[HEADER_LEN..].to_vec();
            for &(at, v) in edits {
                let i = at % payload.len();
                payload[i] = v;
            }
            persist::frame(T::KIND, &payload)
        }
        crafted_is_checked::<PursuitClassifier>(&mutate(&pursuit(), &edits))?;
        crafted_is_checked::<Approximator>(&mutate(&approximator(), &edits))?;
        crafted_is_checked::<MultiLayerClassifier>(&mutate(&multilayer(), &edits))?;
    }
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sparse-bp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_model_of_another_kind_is_refused() {
    let dir = tmp_dir("swap");
    save_model(&dir.join("p.bin"), &pursuit()).unwrap();
    save_model(&dir.join("a.bin"), &approximator()).unwrap();
    save_model(&dir.join("d.bin"), &multilayer()).unwrap();
    let kind_err = |r: SparseBpError| matches!(r, SparseBpError::ModelFile(PersistError::WrongKind { .. }));
    assert!(kind_err(load_model::<Approximator>(&dir.join("p.bin")).unwrap_err()));
    assert!(kind_err(load_model::<MultiLayerClassifier>(&dir.join("p.bin")).unwrap_err()));
    assert!(kind_err(load_model::<PursuitClassifier>(&dir.join("a.bin")).unwrap_err()));
    assert!(kind_err(load_model::<PursuitClassifier>(&dir.join("d.bin")).unwrap_err()));
    let back: MultiLayerClassifier = load_model(&dir.join("d.bin")).unwrap();
    assert_eq!(logits_bits(&back), logits_bits(&multilayer()));
    // a folder or a FIFO is not a model file, and the message names the path
    let e = load_model::<PursuitClassifier>(&dir).unwrap_err();
    assert!(matches!(e, SparseBpError::ModelFile(PersistError::NotAFile { .. })), "{e}");
    assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_decodable_but_invalid_model_is_refused() {
    let dir = tmp_dir("invalid");
    // a linear layer whose weight matrix does not match its declared sizes
    let bad_layer =
        Layer { kind: LayerKind::Linear, params: vec![DMatrix::zeros(3, 5), DMatrix::zeros(3, 1)], n_in: 6, n_out: 3 };
    let bad =
        Approximator { net: Network { layers: vec![bad_layer] }, classifier: clf(2, 3), task: TaskLoss::CrossEntropy };
    save_model(&dir.join("bad.bin"), &bad).unwrap();
    let e = load_model::<Approximator>(&dir.join("bad.bin")).unwrap_err();
    assert!(
        matches!(&e, SparseBpError::InvalidModel { source, .. } if matches!(**source, SparseBpError::ShapeMismatch { what: "layer parameter", .. })),
        "{e}"
    );
    // a non-finite classifier weight
    let mut nan = approximator();
    nan.classifier.w[(1, 2)] = f64::NAN;
    save_model(&dir.join("nan.bin"), &nan).unwrap();
    let e = load_model::<Approximator>(&dir.join("nan.bin")).unwrap_err();
    assert!(
        matches!(&e, SparseBpError::InvalidModel { source, .. } if matches!(**source, SparseBpError::NonFinite { .. })),
        "{e}"
    );
    // a classifier that does not fit the network's output
    let mut wide = approximator();
    wide.classifier = clf(2, 4);
    save_model(&dir.join("wide.bin"), &wide).unwrap();
    assert!(matches!(load_model::<Approximator>(&dir.join("wide.bin")), Err(SparseBpError::InvalidModel { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}
