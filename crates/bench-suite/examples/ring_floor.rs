//! The memory floor of the clocked engine's delivery on this machine: the cost of one synaptic
//! event (`ring[(n + D) % slots][j] += w`) with the ring geometry of the SHD workload
//! (532 state neurons x 151 slots of f64 = 627 KiB, 18,000 spikes x 512 targets per "sample",
//! weights and offsets of 1212 presynaptic neurons), against the same loop
//! - with offsets sorted per fan-out, an f32 ring, an L1-sized ring (10 slots);
//! - with the weights of only 48 presynaptic neurons, so that they stay in cache (what is left
//!   when the weight stream costs nothing);
//! - as pull delivery (the default `Delivery::Pull` of the clocked engine where presynaptic
//!   spikes are known in advance): the same events target by target into per-target timelines,
//!   one, two or four targets per pass over the events (four: the forward kernel
//!   `pull_lanes::<4>`, the targets' delays and weights interleaved by column);
//! - as the pull backward pass (`snn_eventprop`'s layered sweep), which reads a target's adjoint
//!   timeline `(lambda_V, lambda_I)` at `n + D` for every event into it and sums it per synapse:
//!   with the events in time order, two targets per pass (the kernel before issue #16's second
//!   round), and with the events grouped by presynaptic column, four targets per pass (the current
//!   `read_columns::<4>`: a column's sums, delays and weights stay in registers). Each for the two
//!   projection kinds: from the input (no jump sum) and from a hidden LIF population (every event
//!   also adds `w (lambda_V - lambda_I)` to its spike's jump sum `S`);
//! - as AVX-512 gather-add-scatter, 8 x f64 or 16 x f32 per instruction (a fan-out never
//!   writes the same ring cell twice, so the scatter needs no conflict detection), when the CPU
//!   has AVX-512F.
//!
//! The last lines compare the best variant with the per-event budget of issue #2's forward target
//! (400 samples/s on 2 cores, 9.2 M events per sample, everything included): at the workload's
//! geometry every variant costs 2.4-3.4 times the budget for the delivery alone (five runs on the
//! 2-core development machine); only an L1 ring with cache-resident weights and 16-wide scatters,
//! which no SHD network has, reaches it (0.45-0.65 ns against 0.54).
//!
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
const EVENTS: usize = SPIKES * FAN;

/// Issue #2's forward target on this machine: samples/s with this many cores.
const TARGET_SAMPLES_PER_S: f64 = 400.0;
const CORES: f64 = 2.0;

/// One fan-out: `ring[(base + offs[k]) mod len] += w[k]` for every `k`. Unsafe to call because
/// the vector kernels trust `base < len` and `offs[k] < len` (the scalar one checks bounds).
type Kernel<T> = unsafe fn(&mut [T], usize, &[T], &[u32]);

/// The loop of `snn_core::clocked::scatter`.
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// 8 x f64 per gather-add-scatter, then a scalar tail.
    ///
    /// # Safety
    /// The CPU has AVX-512F, `base < ring.len() <= i32::MAX / 2` and every `offs[k] < ring.len()`,
    /// so that each index `(base + o) mod ring.len()` is in the ring.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scatter_f64(ring: &mut [f64], base: usize, w: &[f64], offs: &[u32]) {
        let len = _mm256_set1_epi32(ring.len() as i32);
        let b = _mm256_set1_epi32(base as i32);
        let p = ring.as_mut_ptr();
        let full = w.len().min(offs.len()) / 8 * 8;
        for k in (0..full).step_by(8) {
            // SAFETY: `k + 8 <= full`, both slices are at least `full` long; the caller keeps the
            // indices in the ring.
            unsafe {
                let idx = _mm256_add_epi32(_mm256_loadu_si256(offs.as_ptr().add(k).cast()), b);
                let inside = _mm256_cmpgt_epi32(len, idx);
                let idx = _mm256_sub_epi32(idx, _mm256_andnot_si256(inside, len));
                let sum = _mm512_add_pd(_mm512_i32gather_pd::<8>(idx, p), _mm512_loadu_pd(w.as_ptr().add(k)));
                _mm512_i32scatter_pd::<8>(p, idx, sum);
            }
        }
        super::scatter(ring, base, &w[full..], &offs[full..]);
    }

    /// 16 x f32 per gather-add-scatter, then a scalar tail.
    ///
    /// # Safety
    /// As for [`scatter_f64`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scatter_f32(ring: &mut [f32], base: usize, w: &[f32], offs: &[u32]) {
        let len = _mm512_set1_epi32(ring.len() as i32);
        let b = _mm512_set1_epi32(base as i32);
        let p = ring.as_mut_ptr();
        let full = w.len().min(offs.len()) / 16 * 16;
        for k in (0..full).step_by(16) {
            // SAFETY: as in `scatter_f64`.
            unsafe {
                let idx = _mm512_add_epi32(_mm512_loadu_si512(offs.as_ptr().add(k).cast()), b);
                let outside = _mm512_cmpge_epi32_mask(idx, len);
                let idx = _mm512_mask_sub_epi32(idx, outside, idx, len);
                let sum = _mm512_add_ps(_mm512_i32gather_ps::<4>(idx, p), _mm512_loadu_ps(w.as_ptr().add(k)));
                _mm512_i32scatter_ps::<4>(p, idx, sum);
            }
        }
        super::scatter(ring, base, &w[full..], &offs[full..]);
    }
}

/// Best-of-7 nanoseconds per event of `kernel` on a ring of `slots` rows, with the weights of
/// `n_pre` presynaptic neurons (each fan-out's offsets `sorted` or not); prints one line.
fn run<T: Copy + Default + std::ops::AddAssign>(
    label: &str,
    slots: usize,
    n_pre: usize,
    sorted: bool,
    cast: impl Fn(f64) -> T,
    kernel: Kernel<T>,
) -> f64 {
    let mut rng = Rng(1);
    let ring_len = slots * N_STATE;
    assert!(ring_len <= i32::MAX as usize / 2);
    let mut offs = vec![0u32; n_pre * FAN];
    let mut w = Vec::with_capacity(n_pre * FAN);
    for i in 0..n_pre {
        for j in 0..FAN {
            offs[i * FAN + j] = ((rng.next_u64() % slots as u64) as usize * N_STATE + j) as u32;
            w.push(cast(rng.uniform()));
        }
        if sorted {
            offs[i * FAN..(i + 1) * FAN].sort_unstable();
        }
    }
    let spikes: Vec<usize> = (0..SPIKES).map(|_| (rng.next_u64() % n_pre as u64) as usize).collect();
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
                // SAFETY: `base < ring_len <= i32::MAX / 2` and every offset is below `ring_len` (built
                // above); the AVX-512 kernels are only passed in when the CPU has AVX-512F.
                unsafe { kernel(&mut ring, base, &w[col.clone()], &offs[col]) };
            }
            ring[base..base + N_STATE].fill(T::default());
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let ns = best * 1e9 / EVENTS as f64;
    let kib = ring_len * std::mem::size_of::<T>() / 1024;
    println!("{label:<58} {ns:.2} ns/event, {:5.1} ms per 9.2M events ({kib} KiB ring)", best * 1e3);
    ns
}

/// The pull benchmarks' workload: the delay steps (below `slots`) and weights of `FAN` targets'
/// rows of `N_PRE` columns, target-major, and the sample's `SPIKES` events `(step, column)` in
/// time order; with the generator, which the backward benchmark draws its timelines from next.
struct PullWorkload {
    rng: Rng,
    d_rows: Vec<u32>,
    w_rows: Vec<f64>,
    events: Vec<(u32, u32)>,
}

/// See [`PullWorkload`].
fn pull_workload(slots: usize) -> PullWorkload {
    let mut rng = Rng(1);
    let mut d_rows = vec![0u32; FAN * N_PRE];
    let mut w_rows = vec![0.0f64; FAN * N_PRE];
    for (d, w) in d_rows.iter_mut().zip(&mut w_rows) {
        *d = (rng.next_u64() % slots as u64) as u32;
        *w = rng.uniform();
    }
    let events: Vec<(u32, u32)> =
        (0..SPIKES).map(|k| ((k / (SPIKES / STEPS)) as u32, (rng.next_u64() % N_PRE as u64) as u32)).collect();
    PullWorkload { rng, d_rows, w_rows, events }
}

/// Best-of-7 nanoseconds per event of pull delivery (`snn_core::clocked`'s `Delivery::Pull`) on
/// the same events: target by target, every spike of the sample added into the target's timeline
/// of `STEPS + slots` steps, `line[n + D_ji] += w_ji`, with the target's weights and delays of the
/// `N_PRE` presynaptic neurons held as one row each (L1); prints one line.
fn run_pull(label: &str, slots: usize, together: usize) -> f64 {
    let PullWorkload { d_rows, w_rows, events, .. } = pull_workload(slots);
    let len = STEPS + slots;
    let mut lines = vec![0.0f64; together.max(2) * len];
    let mut best = f64::MAX;
    let mut check = 0.0;
    for _ in 0..7 {
        let t0 = Instant::now();
        if together == 4 {
            // Four targets per pass, delays and weights interleaved by column (`pull_lanes::<4>`).
            let (mut ld, mut lw) = (vec![0u32; 4 * N_PRE], vec![0.0f64; 4 * N_PRE]);
            for j in (0..FAN).step_by(4) {
                for l in 0..4 {
                    let (d, w) =
                        (&d_rows[(j + l) * N_PRE..(j + l + 1) * N_PRE], &w_rows[(j + l) * N_PRE..(j + l + 1) * N_PRE]);
                    for (c, (&d, &w)) in d.iter().zip(w).enumerate() {
                        ld[c * 4 + l] = d;
                        lw[c * 4 + l] = w;
                    }
                }
                lines.fill(0.0);
                for &(n, c) in &events {
                    let (n, c) = (n as usize, c as usize * 4);
                    for l in 0..4 {
                        if let Some(x) = lines.get_mut(l * len + n + ld[c + l] as usize) {
                            *x += lw[c + l];
                        }
                    }
                }
                check += (0..4).map(|l| lines[l * len + STEPS / 2]).sum::<f64>();
            }
        } else if together == 1 {
            for j in 0..FAN {
                let line = &mut lines[..len];
                line.fill(0.0);
                let (d, w) = (&d_rows[j * N_PRE..(j + 1) * N_PRE], &w_rows[j * N_PRE..(j + 1) * N_PRE]);
                for &(n, c) in &events {
                    if let Some(x) = line.get_mut(n as usize + d[c as usize] as usize) {
                        *x += w[c as usize];
                    }
                }
                check += line[STEPS / 2];
            }
        } else {
            // Two targets per pass over the events: two independent timelines.
            for j in (0..FAN).step_by(2) {
                lines.fill(0.0);
                let (la, lb) = lines.split_at_mut(len);
                let (da, wa) = (&d_rows[j * N_PRE..(j + 1) * N_PRE], &w_rows[j * N_PRE..(j + 1) * N_PRE]);
                let (db, wb) = (&d_rows[(j + 1) * N_PRE..(j + 2) * N_PRE], &w_rows[(j + 1) * N_PRE..(j + 2) * N_PRE]);
                for &(n, c) in &events {
                    let (n, c) = (n as usize, c as usize);
                    if let Some(x) = la.get_mut(n + da[c] as usize) {
                        *x += wa[c];
                    }
                    if let Some(x) = lb.get_mut(n + db[c] as usize) {
                        *x += wb[c];
                    }
                }
                check += la[STEPS / 2] + lb[STEPS / 2];
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let ns = best * 1e9 / EVENTS as f64;
    println!("{label:<58} {ns:.2} ns/event, {:5.1} ms per 9.2M events (checksum {check:.3e})", best * 1e3);
    ns
}

/// Best-of-7 nanoseconds per event of the pull backward pass's reads (`snn_eventprop`'s layered
/// sweep, step 2) on the events of [`run_pull`]: for every target, each event `(n, c)` reads the
/// target's adjoint timeline at `n + D_jc` and adds it to the sums of synapse `(j, c)`; with
/// `jump`, it also adds `w_jc (lambda_V - lambda_I)` to the event's jump sum. `by_column`: the
/// events grouped by column once per sample (a stable counting sort, timed) and four targets per
/// pass with the column's delays, weights and sums in registers (`read_columns::<4>`); otherwise
/// in time order, two targets per pass (the former `read_pair`). Prints one line.
fn run_pull_backward(label: &str, slots: usize, jump: bool, by_column: bool) -> f64 {
    let PullWorkload { mut rng, d_rows, w_rows, events } = pull_workload(slots);
    let len = STEPS + slots;
    // Four targets' adjoint timelines (what the sweep's block step leaves), zero after STEPS.
    let mut lines = vec![[0.0f64; 2]; 4 * len];
    for l in 0..4 {
        for x in &mut lines[l * len..l * len + STEPS] {
            *x = [rng.uniform() - 0.5, rng.uniform() - 0.5];
        }
    }
    let no_slot = u32::MAX;
    let slot = |k: usize| if jump { k as u32 } else { no_slot };
    let mut s_part = vec![0.0f64; SPIKES];
    let mut sums = vec![[0.0f64; 2]; 4 * N_PRE];
    let (mut start, mut by_col, mut fill) = (vec![0u32; N_PRE + 1], vec![(0u32, 0u32); SPIKES], vec![0u32; N_PRE]);
    let (mut ld, mut lw) = (vec![0u32; 4 * N_PRE], vec![0.0f64; 4 * N_PRE]);
    let mut best = f64::MAX;
    let mut check = 0.0;
    for _ in 0..7 {
        s_part.fill(0.0);
        let t0 = Instant::now();
        if by_column {
            start.fill(0);
            for &(_, c) in &events {
                start[c as usize + 1] += 1;
            }
            for c in 0..N_PRE {
                start[c + 1] += start[c];
            }
            fill.copy_from_slice(&start[..N_PRE]);
            for (k, &(n, c)) in events.iter().enumerate() {
                by_col[fill[c as usize] as usize] = (n, slot(k));
                fill[c as usize] += 1;
            }
            // The timelines stand for those of the four targets of each pass.
            for j in (0..FAN).step_by(4) {
                for l in 0..4 {
                    let (d, w) =
                        (&d_rows[(j + l) * N_PRE..(j + l + 1) * N_PRE], &w_rows[(j + l) * N_PRE..(j + l + 1) * N_PRE]);
                    for (c, (&d, &w)) in d.iter().zip(w).enumerate() {
                        ld[c * 4 + l] = d;
                        lw[c * 4 + l] = w;
                    }
                }
                for c in 0..N_PRE {
                    let evs = &by_col[start[c] as usize..start[c + 1] as usize];
                    if evs.is_empty() {
                        continue;
                    }
                    let d: [usize; 4] = std::array::from_fn(|l| ld[c * 4 + l] as usize);
                    let w: [f64; 4] = std::array::from_fn(|l| lw[c * 4 + l]);
                    let mut acc = [[0.0f64; 2]; 4];
                    for &(n, sl) in evs {
                        let mut h = [[0.0f64; 2]; 4];
                        for l in 0..4 {
                            h[l] = lines[l * len..(l + 1) * len][n as usize + d[l]];
                            acc[l][0] += h[l][0];
                            acc[l][1] += h[l][1];
                        }
                        if sl != no_slot {
                            let x = &mut s_part[sl as usize];
                            for l in 0..4 {
                                *x += w[l] * (h[l][0] - h[l][1]);
                            }
                        }
                    }
                    sums[c * 4..c * 4 + 4].copy_from_slice(&acc);
                }
                check += (0..4).map(|l| sums[4 * (N_PRE / 2) + l][0]).sum::<f64>();
            }
        } else {
            for j in (0..FAN).step_by(2) {
                // The timelines of targets j and j + 1 as in the by-column passes of four.
                let (la, lb) = lines[(j % 4) * len..].split_at(len);
                let (sa, sb) = sums.split_at_mut(N_PRE);
                sa.fill([0.0; 2]);
                sb[..N_PRE].fill([0.0; 2]);
                let (da, wa) = (&d_rows[j * N_PRE..(j + 1) * N_PRE], &w_rows[j * N_PRE..(j + 1) * N_PRE]);
                let (db, wb) = (&d_rows[(j + 1) * N_PRE..(j + 2) * N_PRE], &w_rows[(j + 1) * N_PRE..(j + 2) * N_PRE]);
                for (k, &(n, c)) in events.iter().enumerate() {
                    let (n, c) = (n as usize, c as usize);
                    let [av, ai] = la[n + da[c] as usize];
                    let [bv, bi] = lb[n + db[c] as usize];
                    sa[c][0] += av;
                    sa[c][1] += ai;
                    sb[c][0] += bv;
                    sb[c][1] += bi;
                    let sl = slot(k);
                    if sl != no_slot {
                        let x = &mut s_part[sl as usize];
                        *x += wa[c] * (av - ai);
                        *x += wb[c] * (bv - bi);
                    }
                }
                check += sa[N_PRE / 2][0] + sb[N_PRE / 2][0];
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    check += s_part.iter().sum::<f64>();
    let ns = best * 1e9 / EVENTS as f64;
    println!("{label:<74} {ns:.2} ns/event, {:5.1} ms per 9.2M events (checksum {check:.3e})", best * 1e3);
    ns
}

fn main() {
    let f64_ = |x: f64| x;
    let f32_ = |x: f64| x as f32;
    // (ns/event, whether the geometry is the SHD workload's: 151 slots, all 1212 weight columns)
    let mut results = vec![
        (run("f64 ring, 151 slots (the SHD workload)", 151, N_PRE, false, f64_, scatter), true),
        (run("f64 ring, 151 slots, offsets sorted per fan-out", 151, N_PRE, true, f64_, scatter), true),
        (run("f32 ring, 151 slots", 151, N_PRE, false, f32_, scatter), true),
        (run("f64 ring, 10 slots (fits L1)", 10, N_PRE, false, f64_, scatter), false),
        (run("f64 ring, 151 slots, weights of 48 neurons (in cache)", 151, 48, false, f64_, scatter), false),
        (run("f64 ring, 10 slots, weights of 48 neurons", 10, 48, false, f64_, scatter), false),
        (run_pull("pull: per-target f64 timelines, 151 slots (Delivery::Pull)", 151, 1), true),
        (run_pull("pull, two targets per pass over the events", 151, 2), true),
        (run_pull("pull, four targets per pass, rows interleaved (pull_lanes)", 151, 4), true),
    ];
    for jump in [false, true] {
        let kind = if jump { "hidden LIF projection (S sums)" } else { "input projection" };
        run_pull_backward(&format!("backward pull, time order, 2 targets/pass, {kind}"), 151, jump, false);
        run_pull_backward(&format!("backward pull, by column, 4 targets/pass, {kind}"), 151, jump, true);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        results.extend([
            (run("AVX-512 8 x f64, 151 slots", 151, N_PRE, false, f64_, avx512::scatter_f64), true),
            (run("AVX-512 16 x f32, 151 slots", 151, N_PRE, false, f32_, avx512::scatter_f32), true),
            (run("AVX-512 8 x f64, 10 slots, weights of 48 neurons", 10, 48, false, f64_, avx512::scatter_f64), false),
            (run("AVX-512 16 x f32, 10 slots, weights of 48 neurons", 10, 48, false, f32_, avx512::scatter_f32), false),
        ]);
    } else {
        println!("(no AVX-512F on this CPU: the vector variants are skipped)");
    }
    let best = |real_only: bool| {
        results.iter().filter(|&&(_, real)| real || !real_only).map(|&(ns, _)| ns).fold(f64::INFINITY, f64::min)
    };
    // The SHD workload delivers 9.2 M events per sample (8,000 input spikes and ~9,600 hidden
    // spikes, each to 512 or 532 targets), the same count as this loop.
    let budget = CORES / TARGET_SAMPLES_PER_S / EVENTS as f64 * 1e9;
    println!(
        "\nbudget of the forward target ({TARGET_SAMPLES_PER_S} samples/s on {CORES} cores, everything included): {budget:.2} ns/event"
    );
    for (what, real_only) in [("at the SHD workload's geometry", true), ("with any geometry above", false)] {
        let b = best(real_only);
        println!("best delivery {what}, nothing else included: {b:.2} ns/event ({:.1}x the budget)", b / budget);
    }
}
