//! Synthetic group-sparse data and the Grassmannian dictionary.

use datasets::{
    GroupSparseParams, MarginOn, coherence, grassmannian_dictionary, group_sparse_data, group_sparse_data_with,
    welch_bound,
};

/// The full-size 100 x 300 dictionary: alternating projection lowers the coherence
/// well below that of random atoms. Prints the numbers for the report.
#[test]
fn paper_size_dictionary_has_low_coherence() {
    let d = grassmannian_dictionary(100, 300, 30, 0).unwrap();
    let w = welch_bound(100, 300);
    eprintln!("coherence: random {:.4} -> grassmannian {:.4}; welch bound {:.4}", d.initial_coherence, d.coherence, w);
    assert_eq!(d.atoms.shape(), (100, 300));
    for c in d.atoms.column_iter() {
        assert!((c.norm() - 1.0).abs() < 1e-12);
    }
    assert!((coherence(&d.atoms) - d.coherence).abs() < 1e-12);
    assert!(d.coherence >= w);
    assert!(d.coherence < 0.8 * d.initial_coherence);
}

#[test]
fn data_follows_the_model() {
    let p = GroupSparseParams::default().samples(400).grassmann_iters(3).eta(0.3).seed(4);
    let dict = grassmannian_dictionary(100, 300, 3, 4).unwrap();
    let d = group_sparse_data_with(&p, dict.clone()).unwrap();
    assert_eq!(d.codes.shape(), (300, 400));
    assert_eq!(d.signals.shape(), (100, 400));
    assert!((d.code_classifier.norm() - 1.0).abs() < 1e-12 && (d.norm_classifier.norm() - 1.0).abs() < 1e-12);
    let x = &dict.atoms * &d.codes;
    assert!((x - &d.signals).abs().max() < 1e-12);
    for i in 0..d.len() {
        let code: Vec<f64> = d.codes.column(i).iter().copied().collect();
        let norms = datasets::GroupSparseData::group_norms(&code, 4);
        let active: Vec<usize> = (0..75).filter(|&g| norms[g] > 0.0).collect();
        assert_eq!(active, d.active[i]);
        assert_eq!(active.len(), 8);
        assert!(code.iter().all(|&v| v == 0.0 || (1.0..=2.0).contains(&v)));
        let sc = d.code_classifier.dot(&d.codes.column(i));
        let sn: f64 = norms.iter().zip(d.norm_classifier.iter()).map(|(a, b)| a * b).sum();
        assert!((sc - d.scores_code[i]).abs() < 1e-12 && (sn - d.scores_norm[i]).abs() < 1e-12);
        assert!(sc.abs() >= 0.3 && sn.abs() >= 0.3);
        assert_eq!(d.labels_code[i], u32::from(sc > 0.0));
        assert_eq!(d.labels_norm[i], u32::from(sn > 0.0));
    }
    // both labels occur; deterministic; the filter rejected something at eta = 0.3
    assert!(d.labels_code.contains(&0) && d.labels_code.contains(&1));
    assert!(d.drawn > 400);
    assert_eq!(d, group_sparse_data_with(&p, dict).unwrap());
}

#[test]
fn params_are_checked_and_small_sizes_work() {
    assert!(group_sparse_data(&GroupSparseParams::default().active_groups(76)).is_err());
    assert!(group_sparse_data(&GroupSparseParams::default().eta(f64::NAN)).is_err());
    assert!(group_sparse_data(&GroupSparseParams::default().coef_range((2.0, 1.0))).is_err());
    // an impossible margin gives up with an error instead of looping forever
    let p = GroupSparseParams::default()
        .signal_dim(5)
        .num_groups(3)
        .group_size(2)
        .active_groups(1)
        .samples(5)
        .eta(100.0)
        .margin_on(MarginOn::Code);
    assert!(matches!(group_sparse_data(&p), Err(datasets::DatasetError::SamplingFailed { .. })));
}
