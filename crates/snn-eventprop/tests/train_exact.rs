//! The training loop on the real exact engine with a recurrent hidden layer: the same numbers
//! whatever the thread count, and bitwise resume from a checkpoint.

use std::path::PathBuf;

use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_core::{
    ConnectionId, ExactEngine, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig, SpikeTrains,
};
use snn_delays::DelayInit;
use snn_eventprop::Loss;
use snn_eventprop::init::{NormalInit, init_delays, init_weights, init_weights_paper};
use snn_eventprop::train::{Labelled, TrainConfig, TrainData, Trainer};

/// 5 inputs -> 8 LIF (recurrent) -> 3 LI.
fn network(seed: u64) -> Network {
    let z = |r, c| DMatrix::zeros(r, c);
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 5);
    let h = b.lif("hidden", 8, LifParams::default());
    let o = b.li("out", 3, LiParams::default());
    b.connect(i, h, z(8, 5), z(8, 5));
    b.connect(h, h, z(8, 8), z(8, 8));
    b.connect(h, o, z(3, 8), z(3, 8));
    let mut net = b.build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    init_weights_paper(&mut net, &mut rng).unwrap();
    // Stronger input weights than the paper's (few inputs here) so that the hidden layer spikes.
    init_weights(&mut net, ConnectionId(0), &NormalInit { mean: 1.5, sd: 0.8 }, &mut rng).unwrap();
    init_weights(&mut net, ConnectionId(2), &NormalInit { mean: 0.0, sd: 0.5 }, &mut rng).unwrap();
    init_delays(&mut net, ConnectionId(0), &DelayInit::Uniform { lo: 0.0, hi: 10.0 }, &mut rng).unwrap();
    init_delays(&mut net, ConnectionId(1), &DelayInit::Uniform { lo: 0.0, hi: 5.0 }, &mut rng).unwrap();
    net
}

/// Class `c` = which of three 10-ms windows holds most input spikes.
fn data(n: usize, seed: u64) -> Labelled {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = SpikeTrains::new(5);
    let mut y = Vec::new();
    for _ in 0..n {
        let c = rng.random_range(0..3usize);
        let (mut t, mut k) = (Vec::new(), Vec::new());
        for _ in 0..12 {
            let w = if rng.random_bool(0.6) { c } else { rng.random_range(0..3usize) };
            t.push(10.0 * w as f64 + rng.random_range(0.0..10.0));
            k.push(rng.random_range(0..5u32));
        }
        x.push_unsorted(&t, &k).unwrap();
        y.push(c);
    }
    Labelled::new(x, y).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig::builder()
        .epochs(4)
        .batch_size(8)
        .chunk_size(3)
        .weight_lr(5e-3)
        .delay_lr(0.5)
        .max_delay(20.0)
        .seed(3)
        .build()
        .unwrap()
}

fn bits(net: &Network) -> Vec<u64> {
    net.connections().iter().flat_map(|c| c.weights().iter().chain(c.delays().iter()).map(|x| x.to_bits())).collect()
}

fn engine() -> ExactEngine {
    ExactEngine::new(SimConfig::new(40.0, ReadoutKind::ExpIntegral)).unwrap()
}

#[test]
fn exact_engine_training_is_thread_count_independent_and_resumes_bitwise() {
    let (train, val) = (data(30, 1), data(12, 2));
    let d = TrainData { train: &train, validation: Some(&val), test: None };
    let loss = Loss::ExpIntegralCrossEntropy;
    let engine = engine();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut t = Trainer::new(&engine, loss, config(), network(5)).unwrap();
            t.fit(&d).unwrap();
            t
        })
    };
    let one = run(1);
    let three = run(3);
    assert_eq!(bits(one.network()), bits(three.network()));
    let h = one.history();
    assert!(h[0].train.spikes_per_sample[1] > 1.0, "the hidden layer spikes: {:?}", h[0].train.spikes_per_sample);
    assert_ne!(bits(one.network()), bits(&network(5)), "training moved the parameters");
    for m in h {
        eprintln!(
            "epoch {}: train loss {:.4} acc {:.3}, val acc {:.3}, hidden spikes/sample {:.1}, silent {}, delay means {:?}",
            m.epoch,
            m.train.loss,
            m.train.accuracy,
            m.validation.as_ref().unwrap().accuracy,
            m.train.spikes_per_sample[1],
            m.silent_neurons,
            m.delay_stats.iter().map(|s| s.map(|s| (s.mean * 100.0).round() / 100.0)).collect::<Vec<_>>()
        );
    }

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("train_exact");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exact.ckpt");
    let mut first =
        Trainer::new(&engine, loss, TrainConfig { epochs: 2, checkpoint: Some(path.clone()), ..config() }, network(5))
            .unwrap();
    first.fit(&d).unwrap();
    let mut second = Trainer::resume(&engine, loss, config(), &path).unwrap();
    second.fit(&d).unwrap();
    assert_eq!(bits(one.network()), bits(second.network()));
    assert_eq!(one.optimiser(), second.optimiser());
}
