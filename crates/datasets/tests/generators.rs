//! Generators: Yin-Yang, sequence detection, synthetic SHD-like data, transforms, batches.

use datasets::{
    MiniBatches, SpikeDataset, SyntheticShdParams, YinYangEncoder, bin_counts, blend_augment, channel_shift,
    quantize_times, sequence_detection, sequence_detection_both, synthetic_shd, yin_yang, yin_yang_class,
    yin_yang_splits,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every generated point lies in the circle and carries the class the rules give.
    #[test]
    fn yin_yang_points_obey_rules(seed in any::<u64>(), n in 1usize..200) {
        let d = yin_yang(n, seed).unwrap();
        prop_assert_eq!(d.len(), n);
        for (&(x, y), &c) in d.points.iter().zip(&d.labels) {
            prop_assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y));
            prop_assert!(((x - 0.5).powi(2) + (y - 0.5).powi(2)).sqrt() <= 0.5);
            prop_assert_eq!(yin_yang_class(x, y), c);
            // the rules, restated independently
            let dr = ((x - 0.75).powi(2) + (y - 0.5).powi(2)).sqrt();
            let dl = ((x - 0.25).powi(2) + (y - 0.5).powi(2)).sqrt();
            let want = if dr < 0.1 || dl < 0.1 { 2 }
                else if dr <= 0.1 || (dl > 0.1 && dl <= 0.25) || (y > 0.5 && dr > 0.25) { 1 }
                else { 0 };
            prop_assert_eq!(c, want);
        }
    }

    /// TTFS encoding of Yin-Yang: t = 1.5 + 18.5 v for (x, y, 1-x, 1-y), plus bias.
    #[test]
    fn ttfs_encoding(seed in any::<u64>(), bias in proptest::option::of(0.0f64..5.0)) {
        let d = yin_yang(20, seed).unwrap();
        let mut enc = YinYangEncoder::default();
        if let Some(b) = bias { enc = enc.with_bias(b); }
        let e = enc.encode(&d);
        prop_assert_eq!(e.inputs, 4 + usize::from(bias.is_some()));
        for i in 0..d.len() {
            let (t, l) = e.sample(i);
            let (x, y) = d.points[i];
            for (k, v) in [x, y, 1.0 - x, 1.0 - y].into_iter().enumerate() {
                prop_assert!((t[k] - (1.5 + 18.5 * v)).abs() < 1e-12);
            }
            if let Some(b) = bias { prop_assert_eq!(t[4], b); }
            prop_assert_eq!(l, d.labels[i]);
        }
    }

    /// Mini-batches: a permutation, in batches of the asked size, deterministic per seed.
    #[test]
    fn minibatches_partition(n in 0usize..300, bs in 1usize..50, seed in any::<u64>()) {
        let b: Vec<Vec<usize>> = MiniBatches::new(n, bs, seed).collect();
        prop_assert!(b.iter().all(|x| x.len() <= bs && !x.is_empty()));
        prop_assert!(b.iter().rev().skip(1).all(|x| x.len() == bs));
        let mut all = b.concat();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(b, MiniBatches::new(n, bs, seed).collect::<Vec<_>>());
        prop_assert!(MiniBatches::new(n, bs, seed).drop_last(true).all(|x| x.len() == bs));
    }

    /// Channel shift keeps times and labels, moves all units of a sample by one shift.
    #[test]
    fn channel_shift_properties(seed in any::<u64>(), max_shift in 0u16..60) {
        let d = synthetic_shd(&SyntheticShdParams::small().samples(20).seed(3)).unwrap();
        let s = channel_shift(&d, max_shift, seed);
        s.check().unwrap();
        prop_assert_eq!(&s.times, &d.times);
        prop_assert_eq!(&s.labels, &d.labels);
        for i in 0..d.len() {
            let (a, b) = (d.sample(i), s.sample(i));
            // any unclamped event reveals the shift; all unclamped events agree
            let shifts: Vec<i32> = a.units.iter().zip(b.units)
                .filter(|&(_, &v)| v != 0 && usize::from(v) != d.num_units - 1)
                .map(|(&u, &v)| i32::from(v) - i32::from(u)).collect();
            prop_assert!(shifts.windows(2).all(|w| w[0] == w[1]));
            prop_assert!(shifts.iter().all(|x| x.unsigned_abs() <= u32::from(max_shift)));
        }
        prop_assert_eq!(s, channel_shift(&d, max_shift, seed));
    }
}

#[test]
fn yin_yang_standard_splits_are_balanced_and_distinct() {
    let (tr, va, te) = yin_yang_splits().unwrap();
    assert_eq!((tr.len(), va.len(), te.len()), (5000, 1000, 1000));
    assert_ne!(tr.points[..10], va.points[..10]);
    assert_ne!(va.points[..10], te.points[..10]);
    for c in 0..3 {
        let k = tr.labels.iter().filter(|&&l| l == c).count();
        assert!((1500..1850).contains(&k), "class {c}: {k}");
    }
}

#[test]
fn sequence_detection_task() {
    let both = sequence_detection_both();
    assert_eq!(both.sample(0), (&[0.0, 10.0][..], 0));
    assert_eq!(both.sample(1), (&[10.0, 0.0][..], 1));
    let d = sequence_detection(100, 5);
    assert_eq!(d, sequence_detection(100, 5));
    for i in 0..d.len() {
        let (t, l) = d.sample(i);
        assert_eq!(t, datasets::sequence_pattern(l));
    }
    assert!(d.labels.contains(&0) && d.labels.contains(&1));
}

fn per_class_group_counts(d: &SpikeDataset, p: &SyntheticShdParams) -> Vec<Vec<f64>> {
    let mut c = vec![vec![0.0; p.num_groups]; d.num_classes];
    let mut n = vec![0.0; d.num_classes];
    for s in d.iter() {
        n[s.label as usize] += 1.0;
        for &u in s.units {
            c[s.label as usize][usize::from(u) * p.num_groups / p.num_units] += 1.0;
        }
    }
    for (row, k) in c.iter_mut().zip(n) {
        row.iter_mut().for_each(|v| *v /= k);
    }
    c
}

/// Counts per channel group do not depend on the class; the order of group burst times does.
#[test]
fn synthetic_shd_only_timing_is_informative() {
    let p = SyntheticShdParams::default().samples(600).num_classes(6).events_per_sample(400).seed(11);
    let d = synthetic_shd(&p).unwrap();
    d.check().unwrap();
    assert_eq!(d, synthetic_shd(&p).unwrap());
    let st = d.stats();
    assert!((st.events_mean - 400.0).abs() < 20.0, "{st:?}");
    assert!(st.time_max < 1.0 && usize::from(st.units_max) < 700);
    // counts: every class within 10 % of the overall group mean
    let counts = per_class_group_counts(&d, &p);
    let overall: f64 = 400.0 * 0.8 / 8.0 + 400.0 * 0.2 * (700.0 / 8.0) / 700.0;
    for row in &counts {
        for &v in row {
            assert!((v - overall).abs() < 0.1 * overall, "{v} vs {overall}");
        }
    }
    // timing: the median event time of each group, relative to the sample's first group,
    // follows the class's slot permutation
    let slots = p.class_slots().unwrap();
    for s in d.iter().take(50) {
        let mut med = vec![Vec::new(); p.num_groups];
        for (&t, &u) in s.times.iter().zip(s.units) {
            med[usize::from(u) * p.num_groups / p.num_units].push(t);
        }
        let m: Vec<f32> = med
            .iter_mut()
            .map(|v| {
                v.sort_by(f32::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        let mut order: Vec<usize> = (0..p.num_groups).collect();
        order.sort_by(|&a, &b| m[a].total_cmp(&m[b]));
        let mut want: Vec<usize> = (0..p.num_groups).collect();
        want.sort_by_key(|&g| slots[s.label as usize][g]);
        assert_eq!(order, want);
    }
    // a different sample seed with the same structure seed keeps the class patterns
    let q = p.clone().seed(12);
    assert_eq!(q.class_slots().unwrap(), slots);
    assert_ne!(synthetic_shd(&q).unwrap().times, d.times);
}

#[test]
fn synthetic_shd_params_are_checked() {
    assert!(SyntheticShdParams::default().num_groups(1).check().is_err());
    assert!(SyntheticShdParams::small().num_classes(25).check().is_err()); // 4! = 24
    assert!(SyntheticShdParams::default().duration(0.1).check().is_err());
    assert!(SyntheticShdParams::default().jitter(f32::NAN).check().is_err());
    assert!(SyntheticShdParams::default().noise_fraction(1.5).check().is_err());
    assert!(SyntheticShdParams::small().check().is_ok());
}

#[test]
fn binning_and_quantisation() {
    let d = synthetic_shd(&SyntheticShdParams::small().samples(5)).unwrap();
    for s in d.iter() {
        let c = bin_counts(s, d.num_units, 0.001, 300);
        assert_eq!(c.iter().sum::<f32>() as usize, s.len());
    }
    let q = quantize_times(&d, 0.001).unwrap();
    q.check().unwrap();
    assert!(q.times.iter().zip(&d.times).all(|(a, b)| a <= b && b - a < 0.001 + 1e-6));
    assert!(quantize_times(&d, 0.0).is_err());
}

#[test]
fn blend_keeps_class_and_about_half_the_events() {
    let d = synthetic_shd(&SyntheticShdParams::small().samples(40)).unwrap();
    let b = blend_augment(&d, 30, 9).unwrap();
    b.check().unwrap();
    assert_eq!(b.len(), 70);
    assert_eq!(b.select(&(0..40).collect::<Vec<_>>()), d);
    let mean_new = (40..70).map(|i| b.sample(i).len()).sum::<usize>() as f64 / 30.0;
    let mean_old = d.stats().events_mean;
    assert!((mean_new - mean_old).abs() < 0.2 * mean_old, "{mean_new} vs {mean_old}");
    assert_eq!(b, blend_augment(&d, 30, 9).unwrap());
}

#[test]
fn spike_dataset_invariants_and_truncation() {
    let mut d = SpikeDataset::empty(10, 3);
    d.push(&[0.3, 0.1, 1.2], &[1, 2, 3], 2).unwrap();
    assert_eq!(d.sample(0).times, &[0.1, 0.3, 1.2]);
    assert_eq!(d.sample(0).units, &[2, 1, 3]);
    assert!(d.push(&[0.1], &[10], 0).is_err());
    assert!(d.push(&[f32::NAN], &[1], 0).is_err());
    assert!(d.push(&[0.1], &[1], 3).is_err());
    d.push(&[], &[], 0).unwrap();
    d.truncate_time(1.0);
    d.check().unwrap();
    assert_eq!(d.offsets, vec![0, 2, 2]);
    assert!(SpikeDataset::new(10, 3, vec![0], vec![0, 2], vec![0.2, 0.1], vec![0, 0]).is_err());
    let st = d.stats();
    assert_eq!((st.samples, st.events_min, st.events_max, st.label_counts.clone()), (2, 0, 2, vec![1, 0, 1]));
}

/// Per-group features of a sample: (share of events per group, median time per group
/// relative to the mean of the medians).
fn features(s: datasets::SpikeSample<'_>, p: &SyntheticShdParams) -> (Vec<f64>, Vec<f64>) {
    let mut times = vec![Vec::new(); p.num_groups];
    for (&t, &u) in s.times.iter().zip(s.units) {
        times[usize::from(u) * p.num_groups / p.num_units].push(f64::from(t));
    }
    let n = s.len().max(1) as f64;
    let counts = times.iter().map(|v| v.len() as f64 / n).collect();
    let med: Vec<f64> = times
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        })
        .collect();
    let mean = med.iter().sum::<f64>() / med.len() as f64;
    (counts, med.iter().map(|m| m - mean).collect())
}

fn nearest_centroid_accuracy(train: &[(Vec<f64>, u32)], test: &[(Vec<f64>, u32)], classes: usize) -> f64 {
    let dim = train[0].0.len();
    let mut c = vec![vec![0.0f64; dim]; classes];
    let mut k = vec![0.0f64; classes];
    for (x, l) in train {
        k[*l as usize] += 1.0;
        for (a, b) in c[*l as usize].iter_mut().zip(x) {
            *a += b;
        }
    }
    for (row, n) in c.iter_mut().zip(&k) {
        row.iter_mut().for_each(|v| *v /= n.max(1.0));
    }
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let correct = test
        .iter()
        .filter(|(x, l)| (0..classes).min_by(|&i, &j| dist(&c[i], x).total_cmp(&dist(&c[j], x))) == Some(*l as usize))
        .count();
    correct as f64 / test.len() as f64
}

/// The class is readable from relative timing (a nearest-centroid classifier on per-group
/// relative burst times is nearly perfect) but not from counts (chance level).
#[test]
fn synthetic_shd_timing_classifies_counts_do_not() {
    let p = SyntheticShdParams::default().num_classes(10).samples(500).events_per_sample(300).seed(1);
    let (train, test) = (synthetic_shd(&p).unwrap(), synthetic_shd(&p.clone().seed(2).samples(300)).unwrap());
    type Labelled = Vec<(Vec<f64>, u32)>;
    let split = |d: &SpikeDataset| -> (Labelled, Labelled) {
        d.iter()
            .map(|s| {
                let (c, t) = features(s, &p);
                ((c, s.label), (t, s.label))
            })
            .unzip()
    };
    let ((tr_c, tr_t), (te_c, te_t)) = (split(&train), split(&test));
    let acc_counts = nearest_centroid_accuracy(&tr_c, &te_c, 10);
    let acc_timing = nearest_centroid_accuracy(&tr_t, &te_t, 10);
    eprintln!("nearest centroid: counts {acc_counts:.3}, timing {acc_timing:.3} (chance 0.1)");
    assert!(acc_counts < 0.25, "counts should be uninformative: {acc_counts}");
    assert!(acc_timing > 0.9, "timing should be informative: {acc_timing}");
}

/// Strategy: a random data set of up to 12 samples, with unsorted event times.
fn arb_events() -> impl Strategy<Value = Vec<(Vec<(f32, u16)>, u32)>> {
    proptest::collection::vec((proptest::collection::vec((0.0f32..2.0, 0u16..50), 0..40), 0u32..5), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// `push` sorts each sample; `select`, `truncate_time` and `stats` agree with a
    /// direct computation on the raw events.
    #[test]
    fn spike_dataset_ops(samples in arb_events(), t_end in 0.0f32..2.5, pick in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut d = SpikeDataset::empty(50, 5);
        for (ev, l) in &samples {
            let (t, u): (Vec<f32>, Vec<u16>) = ev.iter().copied().unzip();
            d.push(&t, &u, *l).unwrap();
        }
        d.check().unwrap();
        for (i, (ev, l)) in samples.iter().enumerate() {
            let s = d.sample(i);
            let mut want = ev.clone();
            want.sort_by(|a, b| a.0.total_cmp(&b.0));
            prop_assert_eq!(s.times.iter().copied().zip(s.units.iter().copied()).collect::<Vec<_>>(), want);
            prop_assert_eq!(s.label, *l);
        }
        if !samples.is_empty() {
            let idx: Vec<usize> = pick.iter().map(|p| p.index(samples.len())).collect();
            let sel = d.select(&idx);
            sel.check().unwrap();
            for (k, &i) in idx.iter().enumerate() {
                prop_assert_eq!(sel.sample(k), d.sample(i));
            }
        }
        let mut cut = d.clone();
        cut.truncate_time(t_end);
        cut.check().unwrap();
        for i in 0..d.len() {
            let kept: Vec<f32> = d.sample(i).times.iter().copied().filter(|&t| t < t_end).collect();
            prop_assert_eq!(cut.sample(i).times, &kept[..]);
        }
        let st = d.stats();
        prop_assert_eq!(st.samples, samples.len());
        prop_assert_eq!(st.events_max, samples.iter().map(|s| s.0.len()).max().unwrap_or(0));
        prop_assert_eq!(st.label_counts.iter().sum::<usize>(), samples.len());
    }
}
