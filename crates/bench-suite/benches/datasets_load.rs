//! Load throughput of the SHD/SSC HDF5 loader, in events/s, and of the synthetic generator.
//!
//! The SHD-sized file is not in the repository (about 270 MB). Make it with
//! `python3 crates/datasets/scripts/make_shd_bench_file.py /tmp/shd_bench.h5` (needs h5py)
//! and point `DATASETS_BENCH_SHD` at it (default `/tmp/shd_bench.h5`). Without it the
//! bench uses the tiny committed fixture, which measures per-file overhead only.
//!
//! `CARGO_TARGET_DIR=... cargo bench -p bench-suite --bench datasets_load`

use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datasets::{SpikeLoadOptions, SyntheticShdParams};

fn bench_file() -> PathBuf {
    let p = PathBuf::from(std::env::var("DATASETS_BENCH_SHD").unwrap_or_else(|_| "/tmp/shd_bench.h5".into()));
    if p.is_file() {
        p
    } else {
        eprintln!("{} not found: using the tiny fixture (see the header of this file)", p.display());
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/tests/fixtures/shd_tiny_f16.h5")
    }
}

fn load(c: &mut Criterion) {
    let path = bench_file();
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    // Count the events once, outside the timed closures; throughput counts events kept (< 1 s).
    let events = datasets::load_shd(&path).expect("bench file must load").num_events() as u64;
    let mut g = c.benchmark_group("shd_load");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(events));
    // I/O alone: reading the bytes (from the page cache after the first run).
    g.bench_with_input(BenchmarkId::new("fs_read", &name), &path, |b, p| {
        b.iter(|| std::fs::read(p).expect("read").len());
    });
    // Parsing alone, from bytes already in memory.
    let bytes = std::fs::read(&path).expect("read");
    g.bench_with_input(BenchmarkId::new("parse_bytes", &name), &bytes, |b, bytes| {
        b.iter_batched(
            || bytes.clone(),
            |copy| datasets::load_spike_h5_bytes(copy, &path, &SpikeLoadOptions::shd()).expect("load").0.num_events(),
            BatchSize::LargeInput,
        );
    });
    // The whole loader: read + parse.
    g.bench_with_input(BenchmarkId::new("load_shd", &name), &path, |b, p| {
        b.iter(|| datasets::load_shd(p).expect("load").num_events());
    });
    g.finish();
}

fn synthetic(c: &mut Criterion) {
    let mut g = c.benchmark_group("synthetic_shd");
    g.sample_size(10);
    for events in [100usize, 1000] {
        let p = SyntheticShdParams::default().samples(1000).events_per_sample(events);
        g.throughput(Throughput::Elements((1000 * events) as u64));
        g.bench_with_input(BenchmarkId::new("generate_1000_samples", events), &p, |b, p| {
            b.iter(|| datasets::synthetic_shd(p).expect("valid params").num_events());
        });
    }
    g.finish();
}

criterion_group!(benches, load, synthetic);
criterion_main!(benches);
