//! Optimiser cost per training step on the paper's network shapes (the part of a training
//! step that is neither forward nor backward pass): Adam on weights + Adam on delays + clamp,
//! and the in-order sum of per-thread gradient buffers of the deterministic batch reduction.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use snn_core::{ConnectionId, LiParams, LifParams, Network, NetworkBuilder};
use snn_delays::{DelayConstraint, DelayInit};
use snn_eventprop::Gradients;
use snn_eventprop::init::{init_delays, init_weights_paper};
use snn_eventprop::optim::{AdamParams, LrSchedule, Optimiser, Trainable};

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
    net
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("train");
    for shape in ["shd", "efficiency"] {
        let net = network(shape);
        let flags = vec![Trainable::BOTH, Trainable::BOTH, Trainable::WEIGHTS];
        let mut opt = Optimiser::new(
            &net,
            &flags,
            (AdamParams::with_lr(1e-3), LrSchedule::paper_warmup()),
            (AdamParams::with_lr(0.1), LrSchedule::constant()),
            DelayConstraint::new(250.0).unwrap(),
        )
        .unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
