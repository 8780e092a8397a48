//! Exact engine on a Yin-Yang-sized network: forward, and forward + backward (EventProp).
//!
//! Network: 5 inputs (`x, y, 1-x, 1-y` as first-spike times `1.5 + 18.5 v` ms, plus a bias
//! spike at 0), 30 hidden LIF, 3 LIF outputs, all delays U(0, 10) ms, `t_end = 50 ms`,
//! first-spike-time loss. One thread, one scratch reused across a batch of 150 samples
//! (throughput is reported per sample). Run: `cargo bench -p bench-suite --bench exact_engine`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use snn_core::{ExactEngine, ForwardRecord, LifParams, Network, NetworkBuilder, SimConfig, Simulator, SpikeTrains};
use snn_eventprop::{Adjoint, FirstSpikeParams, Gradients, Loss};

const BATCH: usize = 150;
const T_END: f64 = 50.0;

fn network(rng: &mut StdRng, hidden: usize) -> Network {
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 5);
    let h = b.lif("hidden", hidden, LifParams::default());
    let o = b.lif("out", 3, LifParams::default());
    let mut mat = |r: usize, c: usize, lo: f64, hi: f64| DMatrix::from_fn(r, c, |_, _| rng.random_range(lo..hi));
    let (w_ih, d_ih) = (mat(hidden, 5, -1.0, 7.0), mat(hidden, 5, 0.0, 10.0));
    let (w_ho, d_ho) = (mat(3, hidden, -1.0, 5.0), mat(3, hidden, 0.0, 10.0));
    b.connect(i, h, w_ih, d_ih);
    b.connect(h, o, w_ho, d_ho);
    b.build().expect("valid network")
}

fn inputs(rng: &mut StdRng) -> (SpikeTrains, Vec<usize>) {
    let mut batch = SpikeTrains::new(5);
    let mut labels = Vec::new();
    for _ in 0..BATCH {
        let (x, y): (f64, f64) = (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0));
        let t = |v: f64| 1.5 + 18.5 * v;
        batch.push_unsorted(&[t(x), t(y), t(1.0 - x), t(1.0 - y), 0.0], &[0, 1, 2, 3, 4]).expect("valid spikes");
        labels.push(rng.random_range(0..3usize));
    }
    (batch, labels)
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let hidden = 30;
    let net = network(&mut rng, hidden);
    let (batch, labels) = inputs(&mut rng);
    let loss = Loss::FirstSpikeTime(FirstSpikeParams::default());
    let engine = ExactEngine::new(SimConfig::new(T_END, loss.readout_kind())).expect("valid config");

    // Activity summary, outside the timed code.
    let recs = engine.run_batch(&net, &batch).expect("forward");
    let spikes: usize = recs.iter().map(|r| r.spikes.len()).sum();
    let silent: usize = recs.iter().map(|r| r.readout.values.iter().filter(|v| !v.is_finite()).count()).sum();
    eprintln!(
        "exact_engine bench: {:.1} LIF spikes per sample, {:.2} silent outputs per sample",
        spikes as f64 / BATCH as f64,
        silent as f64 / BATCH as f64
    );

    let mut group = c.benchmark_group("exact_engine_yinyang");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut scratch = engine.scratch(&net);
    let mut rec = ForwardRecord::default();
    group.bench_function(BenchmarkId::new("forward", format!("5-{hidden}-3 batch {BATCH}")), |b| {
        b.iter(|| {
            for s in 0..BATCH {
                engine.run_into(&net, batch.sample(s), &mut scratch, &mut rec).expect("forward");
                black_box(&rec);
            }
        })
    });
    let mut adj = engine.adjoint_scratch(&net);
    let mut grads = Gradients::zeros(&net);
    group.bench_function(BenchmarkId::new("forward_backward", format!("5-{hidden}-3 batch {BATCH}")), |b| {
        b.iter(|| {
            grads.fill_zero();
            for (s, &label) in labels.iter().enumerate() {
                engine.run_into(&net, batch.sample(s), &mut scratch, &mut rec).expect("forward");
                let lv = loss.evaluate(&rec.readout, label, s, T_END).expect("loss");
                engine
                    .backward_into(&net, batch.sample(s), &rec, &lv.d_readout, &mut adj, &mut grads)
                    .expect("backward");
            }
            black_box(&grads);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
