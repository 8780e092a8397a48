//! Clocked engine: SHD-shaped forward pass, and forward + backward passes (issue 2, issue 3).
//!
//! Data are built outside the timed closures with a seeded splitmix64 generator: 700 input
//! channels with about 8000 spikes per 1 s sample, `dt = 1 ms`. Before timing, each group prints
//! the hidden firing rate and the bytes a `ForwardRecord` retains per sample.
//!
//! `cargo bench -p bench-suite --bench clocked_engine -- --sample-size 10`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use bench_suite::workload::*;
use snn_core::{Network, Simulator};

fn forward(c: &mut Criterion) {
    let mut rng = Rng(42);
    let net = recurrent_net(&mut rng, 150.0);
    let batch = shd_like_batch(256, &mut rng);
    let engine = engine();
    describe("shd forward 700-512r-20", &engine, &net, &batch);
    let mut g = c.benchmark_group("clocked_forward");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_with_input(BenchmarkId::new("shd_700-512r-20_d150_dt1", batch.len()), &batch, |b, batch| {
        b.iter(|| black_box(engine.run_batch(&net, batch).unwrap()))
    });
    g.finish();
}

fn forward_backward(c: &mut Criterion) {
    let engine = engine();
    let mut g = c.benchmark_group("clocked_forward_backward");
    for (name, max_delay, build) in [
        ("700-512r-20_d150", 150.0, recurrent_net as fn(&mut Rng, f64) -> Network),
        ("700-256-256-20_d250", 250.0, feedforward_net),
    ] {
        let mut rng = Rng(7);
        let net = build(&mut rng, max_delay);
        let batch = shd_like_batch(64, &mut rng);
        describe(name, &engine, &net, &batch);
        g.throughput(Throughput::Elements(batch.len() as u64));
        g.bench_with_input(BenchmarkId::new(name, batch.len()), &batch, |b, batch| {
            b.iter(|| black_box(train_step(&engine, &net, batch)))
        });
    }
    g.finish();
}

criterion_group!(benches, forward, forward_backward);
criterion_main!(benches);
