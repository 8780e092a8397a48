//! Optimiser cost per training step on the paper's network shapes (the part of a training
//! step that is neither forward nor backward pass): Adam on weights + Adam on delays + clamp,
//! and the in-order sum of per-thread gradient buffers of the deterministic batch reduction;
//! and one whole training step (forward + backward + optimiser) of a batch of 2 SHD-shaped
//! samples on the exact engine (slow: seconds per sample); and one whole training step of a batch
//! of 256 SHD-shaped samples on the clocked engine (`dt = 1 ms`) through the real training path
//! (`BatchWorkspace::compute` + Adam on weights and delays, what `Trainer` does per batch), for
//! the paper's two configurations (issue 3): 700-512(recurrent)-20 with delays on input->hidden
//! and recurrent connections (max 150 ms), and 700-256-256-20 with delays on both hidden
//! connections (max 250 ms). Data and networks are `bench_suite::workload`'s (~8000 input
//! spikes per sample, ~19 hidden spikes per neuron per second). Each clocked iteration takes
//! seconds: `cargo bench -p bench-suite --bench train -- train_step_clocked`.

use bench_suite::workload;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snn_core::{
    ClockedEngine, ConnectionId, ExactEngine, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig,
    SpikeTrains,
};
use snn_delays::DelayInit;
use snn_eventprop::init::{init_delays, init_weights_paper};
use snn_eventprop::optim::LrSchedule;
use snn_eventprop::train::BatchWorkspace;
use snn_eventprop::{Gradients, Loss};

/// `700 - 512 (recurrent) - 20` (SHD) or `700 - 256 - 256 - 20` (efficiency configuration).
fn network(shape: &str) -> Network {
    let z = nalgebra::DMatrix::zeros;
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 700);
    match shape {
        "shd" => {
            let h = b.lif("h", 512, LifParams::default());
            let o = b.li("out", 20, LiParams::default());
            b.connect(i, h, z(512, 700), z(512, 700));
            b.connect(h, h, z(512, 512), z(512, 512));
            b.connect(h, o, z(20, 512), z(20, 512));
        }
        _ => {
            let h1 = b.lif("h1", 256, LifParams::default());
            let h2 = b.lif("h2", 256, LifParams::default());
            let o = b.li("out", 20, LiParams::default());
            b.connect(i, h1, z(256, 700), z(256, 700));
            b.connect(h1, h2, z(256, 256), z(256, 256));
            b.connect(h2, o, z(20, 256), z(20, 256));
        }
    }
    let mut net = b.build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    init_weights_paper(&mut net, &mut rng).unwrap();
    init_delays(&mut net, ConnectionId(0), &DelayInit::SHD, &mut rng).unwrap();
    if shape != "shd" {
        init_delays(&mut net, ConnectionId(1), &DelayInit::SHD, &mut rng).unwrap();
    }
    net
}

/// `n` samples of about 8,000 spikes over 1 s on 700 channels, uniformly at random.
fn shd_like(n: usize) -> (SpikeTrains, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut x = SpikeTrains::new(700);
    for _ in 0..n {
        let t: Vec<f64> = (0..8000).map(|_| rng.random_range(0.0..1000.0)).collect();
        let k: Vec<u32> = (0..8000).map(|_| rng.random_range(0..700u32)).collect();
        x.push_unsorted(&t, &k).unwrap();
    }
    (x, (0..n).map(|s| s % 20).collect())
}

fn train_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_exact");
    g.sample_size(10);
    let batch = 2;
    let (x, y) = shd_like(batch);
    let engine = ExactEngine::new(SimConfig::new(1000.0, ReadoutKind::ExpIntegral)).unwrap();
    for shape in ["efficiency", "shd"] {
        let mut net = network(shape);
        let flags = workload::TRAINABLE.to_vec();
        let mut opt = workload::paper_optimiser(&net, LrSchedule::paper_warmup(), 250.0);
        let mut ws = BatchWorkspace::<ExactEngine>::new(&net, 8).unwrap();
        let idx: Vec<usize> = (0..batch).collect();
        g.throughput(criterion::Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("batch2", shape), &shape, |b, _| {
            b.iter(|| {
                ws.compute(&engine, &net, &x, &y, &idx, &Loss::ExpIntegralCrossEntropy, Some(&flags)).unwrap();
                opt.step(&mut net, ws.gradients(), 0).unwrap()
            })
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("train");
    for shape in ["shd", "efficiency"] {
        let net = network(shape);
        let mut opt = workload::paper_optimiser(&net, LrSchedule::paper_warmup(), 250.0);
        let mut grads = Gradients::zeros(&net);
        grads.weights.iter_mut().chain(grads.delays.iter_mut()).for_each(|m| m.fill(1e-3));
        let mut net_mut = net.clone();
        g.bench_with_input(BenchmarkId::new("optimiser_step", shape), &shape, |b, _| {
            b.iter(|| opt.step(&mut net_mut, &grads, 0).unwrap())
        });
        let mut total = Gradients::zeros(&net);
        g.bench_with_input(BenchmarkId::new("sum_two_gradient_buffers", shape), &shape, |b, _| {
            b.iter(|| {
                total.fill_zero();
                total.add_assign(&grads);
                total.add_assign(&grads);
            })
        });
    }
    g.finish();
}

fn train_step_clocked(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step_clocked");
    g.sample_size(10);
    let engine = workload::engine();
    let batch = 256;
    for (name, max_delay, build) in [
        ("700-512r-20_d150", 150.0, workload::recurrent_net as fn(&mut workload::Rng, f64) -> Network),
        ("700-256-256-20_d250", 250.0, workload::feedforward_net),
    ] {
        let mut rng = workload::Rng(11);
        let mut net = build(&mut rng, max_delay);
        let x = workload::shd_like_batch(batch, &mut rng);
        let y: Vec<usize> = (0..batch).map(|s| s % 20).collect();
        workload::describe(name, &engine, &net, &x);
        let flags = workload::TRAINABLE.to_vec();
        let mut opt = workload::paper_optimiser(&net, LrSchedule::constant(), max_delay);
        let mut ws = BatchWorkspace::<ClockedEngine>::new(&net, 8).unwrap();
        let idx: Vec<usize> = (0..batch).collect();
        g.throughput(criterion::Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("batch256", name), &name, |b, _| {
            b.iter(|| {
                ws.compute(&engine, &net, &x, &y, &idx, &Loss::ExpIntegralCrossEntropy, Some(&flags)).unwrap();
                opt.step(&mut net, ws.gradients(), 0).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, train_step, train_step_clocked);
criterion_main!(benches);
