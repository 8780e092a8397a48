//! End to end on the exact engine: the paper's sequence-detection task (spec §5), where only
//! delays learn.
//!
//! Two inputs, two LI outputs (`tau_m = 10`, `tau_s = 5` ms), weights fixed at 1. Class 0:
//! input 0 spikes at 0 ms and input 1 at 10 ms; class 1: the reverse. The prediction is the
//! output with the larger `max_t V`. The optimum delays (post x pre) are 10 ms on the diagonal
//! and 0 off it (the two spikes of the right class arrive together); training starts from the
//! worst case `[[0, 10], [10, 0]]`. The paper reaches 100 % after each example was seen 6 times.

use nalgebra::DMatrix;
use snn_core::{ExactEngine, LiParams, Network, NetworkBuilder, ReadoutKind, SimConfig, SpikeTrains};
use snn_eventprop::Loss;
use snn_eventprop::optim::{AdamParams, LrSchedule};
use snn_eventprop::train::{Labelled, TrainConfig, TrainData, TrainableParams, Trainer, evaluate};

fn network() -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 2);
    let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
    b.connect(i, o, DMatrix::from_element(2, 2, 1.0), DMatrix::from_row_slice(2, 2, &[0.0, 10.0, 10.0, 0.0]));
    b.build().unwrap()
}

fn data() -> Labelled {
    let mut x = SpikeTrains::new(2);
    x.push_sample(&[0.0, 10.0], &[0, 1]).unwrap();
    x.push_sample(&[0.0, 10.0], &[1, 0]).unwrap();
    Labelled::new(x, vec![0, 1]).unwrap()
}

/// One run: per epoch (= one presentation of each example) the accuracy on both examples
/// after the epoch and the delays `[d00, d01, d10, d11]`.
fn train(batch_size: usize, epochs: usize) -> Vec<(f64, [f64; 4])> {
    let engine = ExactEngine::new(SimConfig::new(25.0, ReadoutKind::MaxVoltage)).unwrap();
    let loss = Loss::MaxVoltageCrossEntropy;
    let set = data();
    let start = evaluate(&engine, &network(), &set, &loss, 8).unwrap();
    assert_eq!(start.accuracy, 0.0, "the worst-case start gets both examples wrong");
    let config = TrainConfig {
        epochs,
        batch_size,
        delay_adam: AdamParams::with_lr(1.0),
        delay_schedule: LrSchedule::constant(),
        max_delay: 15.0,
        trainable: TrainableParams::DelaysOnly,
        silent_boost: None,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(&engine, loss, config, network()).unwrap();
    let data = TrainData { train: &set, validation: None, test: Some(&set) };
    (0..epochs)
        .map(|_| {
            let acc = t.run_epoch(&data, |_| {}).unwrap().test.as_ref().unwrap().accuracy;
            let d = t.network().connections()[0].delays();
            assert_eq!(t.network().connections()[0].weights(), network().connections()[0].weights());
            (acc, [d[(0, 0)], d[(0, 1)], d[(1, 0)], d[(1, 1)]])
        })
        .collect()
}

/// Note: the loss is invariant under a common shift of all delays (as long as every arrival
/// stays before `t_end`), so what the task determines is the *relative* delay
/// `d_kk - d_kj`, which must approach 10 ms; with Adam at lr 1 the delays reach (10, 0) and
/// then drift along the flat valley (and against the 15 ms bound).
#[test]
fn delays_alone_learn_sequence_detection() {
    for batch_size in [2, 1] {
        let run = train(batch_size, 60);
        let reached = run.iter().position(|(a, _)| *a == 1.0).map(|e| e + 1);
        eprintln!("batch {batch_size}: 100 % after {reached:?} presentations of each example (paper: 6)");
        for (e, (a, d)) in run.iter().enumerate().take(12) {
            eprintln!("  after {:2} presentations: accuracy {a}, delays [d00 d01 d10 d11] = {d:.3?}", e + 1);
        }
        let reached = reached.expect("never reached 100 %");
        assert!(reached <= 10, "took {reached} presentations (paper: 6)");
        assert!(run[reached - 1..].iter().all(|(a, _)| *a == 1.0), "accuracy stays at 100 %");
        let (_, d) = run.last().unwrap();
        eprintln!("  after 60 presentations: delays {d:.3?}");
        assert!(((d[0] - d[1]) - 10.0).abs() < 1.0 && ((d[3] - d[2]) - 10.0).abs() < 1.0, "{d:?}");
        assert!(d.iter().all(|&x| (0.0..=15.0).contains(&x)));
        if batch_size == 2 {
            // Full-batch steps keep the symmetry; when the off-diagonal delays first reach 0,
            // the diagonal ones are at 10 ms.
            let (_, d) = run.iter().find(|(_, d)| d[1] == 0.0).expect("off-diagonal delays reach 0");
            assert_eq!((d[0], d[1]), (d[3], d[2]));
            assert!((d[0] - 10.0).abs() < 0.5, "{d:?}");
        }
    }
}
