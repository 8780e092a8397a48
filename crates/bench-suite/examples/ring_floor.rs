//! The memory floor of the clocked engine's delivery on this machine: the cost of one synaptic
//! event (`ring[(n + D) % slots][j] += w`) with the ring geometry of the SHD workload
//! (532 state neurons x 151 slots of f64 = 643 KB, 18,000 spikes x 512 targets per "sample"),
//! against the same loop on an L1-sized ring, an f32 ring, and offsets sorted per fan-out.
//! Thread CPU time would be better than wall time but needs libc; this reports the best of 7
//! wall-clock repetitions, which is robust enough on a loaded machine to show the ratios.
//!
//! `cargo run --release -p bench-suite --example ring_floor`

use std::time::Instant;

use bench_suite::workload::Rng;

const N_STATE: usize = 532;
const FAN: usize = 512;
const N_PRE: usize = 1212;
const SPIKES: usize = 18_000;
const STEPS: usize = 1000;

/// `ring[(base + o) mod len] += w` for one fan-out, as `snn_core::clocked::scatter` does.
fn scatter<T: Copy + std::ops::AddAssign>(ring: &mut [T], base: usize, w: &[T], offs: &[u32]) {
    let rn = ring.len();
    for (&wj, &o) in w.iter().zip(offs) {
        let mut idx = base + o as usize;
        if idx >= rn {
            idx -= rn;
        }
        ring[idx] += wj;
    }
}

fn run<T: Copy + Default + std::ops::AddAssign>(label: &str, slots: usize, sorted: bool, cast: impl Fn(f64) -> T) {
    let mut rng = Rng(1);
    let ring_len = slots * N_STATE;
    let mut offs = vec![0u32; N_PRE * FAN];
    let mut w = Vec::with_capacity(N_PRE * FAN);
    for i in 0..N_PRE {
        for j in 0..FAN {
            offs[i * FAN + j] = ((rng.next_u64() % slots as u64) as usize * N_STATE + j) as u32;
            w.push(cast(rng.uniform()));
        }
        if sorted {
            offs[i * FAN..(i + 1) * FAN].sort_unstable();
        }
    }
    let spikes: Vec<usize> = (0..SPIKES).map(|_| (rng.next_u64() % N_PRE as u64) as usize).collect();
    let mut ring = vec![T::default(); ring_len];
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t0 = Instant::now();
        let mut k = 0;
        for n in 0..STEPS {
            let base = (n % slots) * N_STATE;
            for _ in 0..SPIKES / STEPS {
                let col = spikes[k] * FAN..(spikes[k] + 1) * FAN;
                k += 1;
                scatter(&mut ring, base, &w[col.clone()], &offs[col]);
            }
            ring[base..base + N_STATE].fill(T::default());
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "{label:<48} {:.2} ns/event, {:.1} ms per 9.2M events ({} KB ring)",
        best * 1e9 / (SPIKES * FAN) as f64,
        best * 1e3,
        ring_len * std::mem::size_of::<T>() / 1024
    );
}

fn main() {
    run("f64 ring, 151 slots (the SHD workload)", 151, false, |x| x);
    run("f64 ring, 151 slots, offsets sorted per fan-out", 151, true, |x| x);
    run("f32 ring, 151 slots", 151, false, |x| x as f32);
    run("f64 ring, 10 slots (fits L1)", 10, false, |x| x);
}
