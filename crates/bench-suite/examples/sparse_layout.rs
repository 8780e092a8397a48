//! CSC against CSR for sparse projections (issue 19): the layout of the synapses of one sparse
//! projection, `post x pre`, timed on the delivery of an SHD-shaped sample's input events
//! (700 channels, ~8000 spikes in 1 s) into 512 targets with delays U(0, 150) ms on the 1 ms
//! grid, at connection probability 1.0, 0.5 and 0.1 (`SparseSynapses::fixed_probability`).
//!
//! - **push**, event by event in emission order, each spike's synapses added into a ring of
//!   `151 slots x 512` (each slot absorbed and cleared after its step, as in the engine):
//!   through **CSC** (the spike's fan-out is one contiguous run of its column) and through
//!   **CSR** (rows are targets: the fan-out has to be found row by row, a binary search of the
//!   source in each of the 512 rows);
//! - **pull**, target by target, each target's synapses added into its own timeline from the
//!   per-source spike lists (the engine's sparse pull): through **CSR** (the target's synapses
//!   are one contiguous run of its row) and through **CSC** (the target's synapses are found in
//!   the columns of the sources that spiked, one forward-moving cursor per column, since the
//!   targets come in increasing order).
//!
//! Each variant delivers the same events (checked: equal totals to 1e-9); the figure is wall
//! time per delivered synaptic event (a spike times the number of its synapses), best of
//! `reps` repetitions, single thread.
//!
//! `cargo run --release -p bench-suite --example sparse_layout [reps]` (default 7).

use std::hint::black_box;
use std::time::Instant;

use bench_suite::workload::{self, DT, N_IN, Rng, T_END};
use snn_core::SparseSynapses;

const N_POST: usize = 512;
const MAX_DELAY: f64 = 150.0;

/// Compressed storage of one layout: `ptr[o]..ptr[o + 1]` index the inner indices, delay steps
/// and weights of outer index `o` (a column for CSC, a row for CSR).
struct Compressed {
    ptr: Vec<u32>,
    inner: Vec<u32>,
    delay: Vec<u32>,
    w: Vec<f64>,
}

impl Compressed {
    fn range(&self, o: usize) -> std::ops::Range<usize> {
        self.ptr[o] as usize..self.ptr[o + 1] as usize
    }
}

/// CSC (columns = sources) and CSR (rows = targets) of the same synapses.
fn layouts(s: &SparseSynapses) -> (Compressed, Compressed) {
    let (n_post, n_pre) = s.shape();
    let steps = |d: f64| (d / DT + 0.5) as u32;
    let mut csc = Compressed { ptr: vec![0], inner: Vec::new(), delay: Vec::new(), w: Vec::new() };
    for i in 0..n_pre {
        let (r, rows) = s.fan_out(i);
        for (k, &j) in r.zip(rows) {
            csc.inner.push(j as u32);
            csc.delay.push(steps(s.delay_values()[k]));
            csc.w.push(s.weight_values()[k]);
        }
        csc.ptr.push(csc.inner.len() as u32);
    }
    let mut count = vec![0u32; n_post + 1];
    for &j in s.rows() {
        count[j + 1] += 1;
    }
    for j in 0..n_post {
        count[j + 1] += count[j];
    }
    let nnz = s.nnz();
    let mut csr = Compressed { ptr: count.clone(), inner: vec![0; nnz], delay: vec![0; nnz], w: vec![0.0; nnz] };
    for i in 0..n_pre {
        for k in csc.range(i) {
            let j = csc.inner[k] as usize;
            let at = count[j] as usize;
            count[j] += 1;
            csr.inner[at] = i as u32;
            csr.delay[at] = csc.delay[k];
            csr.w[at] = csc.w[k];
        }
    }
    (csc, csr)
}

/// Push through the ring: `events` are `(step, source)` in emission order; `fan_out(i, ring,
/// base)` adds the synapses of source `i` for a spike in ring slot `base` (inlined: generic).
#[inline(always)]
fn push<F: FnMut(usize, &mut [f64], usize)>(
    events: &[(u32, u32)],
    steps: usize,
    slots: usize,
    ring: &mut [f64],
    mut fan_out: F,
) -> f64 {
    ring.fill(0.0);
    let mut total = 0.0;
    let mut next = 0;
    for n in 0..=steps {
        while next < events.len() && events[next].0 as usize == n {
            let i = events[next].1 as usize;
            next += 1;
            fan_out(i, ring, n % slots);
        }
        let row = &mut ring[(n % slots) * N_POST..(n % slots + 1) * N_POST];
        for x in row.iter_mut() {
            total += *x;
            *x = 0.0;
        }
    }
    total
}

/// Adds one synapse's arrival of a spike emitted in ring slot `base` (`step % slots`) into the
/// ring (`d < slots`: one wrap, no division, as with the engine's precomputed offsets).
#[inline(always)]
fn deliver(ring: &mut [f64], slots: usize, base: usize, j: u32, d: u32, w: f64) {
    let mut slot = base + d as usize;
    if slot >= slots {
        slot -= slots;
    }
    ring[slot * N_POST + j as usize] += w;
}

/// Pull: target by target, `synapses(j, line)` adds target `j`'s arrivals into `line`; returns
/// the total of the arrivals up to the last step.
#[inline(always)]
fn pull<F: FnMut(usize, &mut [f64])>(steps: usize, line: &mut [f64], mut synapses: F) -> f64 {
    let mut total = 0.0;
    for j in 0..N_POST {
        line.fill(0.0);
        synapses(j, line);
        total += line[..=steps].iter().sum::<f64>();
    }
    total
}

/// One synapse (source `i`, delay `d`, weight `w`) of a pulled target: every spike of `i`.
#[inline(always)]
fn pull_synapse(sources: &Sources, line: &mut [f64], i: u32, d: u32, w: f64) {
    let l = &mut line[d as usize..];
    for &t in sources.of(i as usize) {
        l[t as usize] += w;
    }
}

/// Per-source spike steps (CSR over sources).
struct Sources {
    starts: Vec<u32>,
    steps: Vec<u32>,
}

impl Sources {
    fn of(&self, i: usize) -> &[u32] {
        &self.steps[self.starts[i] as usize..self.starts[i + 1] as usize]
    }
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let mut rng = Rng(19);
    let batch = workload::shd_like_batch(1, &mut rng);
    let x = batch.sample(0);
    let steps = (T_END / DT).round() as usize;
    let events: Vec<(u32, u32)> =
        x.times.iter().zip(x.neurons).filter(|&(&t, _)| t < T_END).map(|(&t, &i)| ((t / DT + 0.5) as u32, i)).collect();
    let mut starts = vec![0u32; N_IN + 1];
    for &(_, i) in &events {
        starts[i as usize + 1] += 1;
    }
    for i in 0..N_IN {
        starts[i + 1] += starts[i];
    }
    let mut fill = starts.clone();
    let mut src_steps = vec![0u32; events.len()];
    for &(n, i) in &events {
        src_steps[fill[i as usize] as usize] = n;
        fill[i as usize] += 1;
    }
    let sources = Sources { starts, steps: src_steps };
    println!(
        "{} input spikes, {N_IN} -> {N_POST}, delays U(0, {MAX_DELAY}) ms, dt = {DT} ms, best of {reps}, \
         ns per delivered synaptic event",
        events.len()
    );
    println!("| p | synapses | delivered events | push CSC | push CSR | pull CSR | pull CSC |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for p in [1.0, 0.5, 0.1] {
        let mut s = SparseSynapses::fixed_probability(N_POST, N_IN, p, 7).expect("valid p");
        for (w, d) in s.weight_values_mut().iter_mut().zip(0..) {
            *w = 0.01 + 0.001 * ((d * 37) % 101) as f64;
        }
        let delays: Vec<f64> = (0..s.nnz()).map(|_| rng.uniform() * MAX_DELAY).collect();
        s.delay_values_mut().copy_from_slice(&delays);
        let (csc, csr) = layouts(&s);
        let slots = csc.delay.iter().copied().max().unwrap_or(0) as usize + 1;
        let delivered: usize = events.iter().map(|&(_, i)| csc.range(i as usize).len()).sum();
        let mut ring = vec![0.0; slots * N_POST];
        let mut line = vec![0.0; steps + slots];
        let time = |f: &mut dyn FnMut() -> f64| {
            let mut best = f64::INFINITY;
            let mut total = 0.0;
            for _ in 0..reps {
                let t0 = Instant::now();
                total = black_box(f());
                best = best.min(t0.elapsed().as_secs_f64());
            }
            (best * 1e9 / delivered.max(1) as f64, total)
        };
        let push_csc = time(&mut || {
            push(&events, steps, slots, &mut ring, |i, ring, base| {
                for k in csc.range(i) {
                    deliver(ring, slots, base, csc.inner[k], csc.delay[k], csc.w[k]);
                }
            })
        });
        let push_csr = time(&mut || {
            push(&events, steps, slots, &mut ring, |i, ring, base| {
                for j in 0..N_POST {
                    let r = csr.range(j);
                    if let Ok(k) = csr.inner[r.clone()].binary_search(&(i as u32)) {
                        deliver(ring, slots, base, j as u32, csr.delay[r.start + k], csr.w[r.start + k]);
                    }
                }
            })
        });
        let pull_csr = time(&mut || {
            pull(steps, &mut line, |j, line| {
                for k in csr.range(j) {
                    pull_synapse(&sources, line, csr.inner[k], csr.delay[k], csr.w[k]);
                }
            })
        });
        let active: Vec<usize> = (0..N_IN).filter(|&i| !sources.of(i).is_empty()).collect();
        let mut cursor = vec![0usize; N_IN];
        let pull_csc = time(&mut || {
            for (i, c) in cursor.iter_mut().enumerate() {
                *c = csc.ptr[i] as usize;
            }
            pull(steps, &mut line, |j, line| {
                for &i in &active {
                    let end = csc.ptr[i + 1] as usize;
                    let c = &mut cursor[i];
                    while *c < end && (csc.inner[*c] as usize) < j {
                        *c += 1;
                    }
                    if *c < end && csc.inner[*c] as usize == j {
                        pull_synapse(&sources, line, i as u32, csc.delay[*c], csc.w[*c]);
                    }
                }
            })
        });
        let reference = push_csc.1;
        for (what, (_, total)) in [("push CSR", push_csr), ("pull CSR", pull_csr), ("pull CSC", pull_csc)] {
            // Arrivals after the last step are dropped by both push and pull.
            assert!((total - reference).abs() <= 1e-9 * reference.abs().max(1.0), "{what}: {total} vs {reference}");
        }
        println!(
            "| {p} | {} | {:.2} M | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.nnz(),
            delivered as f64 / 1e6,
            push_csc.0,
            push_csr.0,
            pull_csr.0,
            pull_csc.0
        );
    }
}
