//! Discretised EventProp backward pass of the clocked engine (spec §2, "clocked engine").
//!
//! The adjoint state `(lambda_V, lambda_I)` of every non-input neuron (Wunderlich–Pehle scaling,
//! `lambda_V = -(1/tau_m) dL/dV`, `lambda_I = -(1/tau_s) dL/dI`) is stepped backward over the
//! grid of [`ClockedEngine`], undoing the forward step's operations in reverse order. At backward
//! step `n`:
//!
//! 1. **readout forcing** at `t_n` (the forward readout samples `V(t_n)` last):
//!    - `ExpIntegral`: the readout is `(1/N) Σ_n e^{-t_n/T} V_k(t_n)`, so `dL/dV_k(t_n)` jumps by
//!      `g_k e^{-t_n/T} / N`, i.e. `lambda_V,k -= g_k e^{-t_n/T} / (N tau_m)`. Since `N dt = T`
//!      this is the continuous forcing `g_k e^{-t/T}/T` integrated over one step: the limit
//!      `dt -> 0` is the continuous adjoint;
//!    - `MaxVoltage`: `lambda_V,k -= g_k / tau_m` at the arg-max step (kink term: see below);
//!    - `VoltageAt`: `lambda_V,k -= g_kq / tau_m` at each readout step;
//!    - `FirstSpike`: no forcing; `dl_p/dt = g_k` enters the jump of output `k`'s first spike.
//! 2. **history**: the adjoints are stored in a ring of `max_delay_steps + 1` slots; a spike at
//!    step `m` whose synapse to `j` has `D = round(d/dt)` steps reads `j`'s adjoints of step
//!    `m + D` (stored `D` backward steps earlier; zero when `m + D > N`: the arrival was dropped).
//! 3. **spikes and inputs of step `n`** (record read from the end): for each synapse
//!    `dL/dw_ji -= tau_s lambda_I,j(t_n + D)`, `dL/dd_ji -= w_ji (lambda_I,j - lambda_V,j)(t_n + D)`;
//!    for a LIF spike, `S = Σ_j w_ji (lambda_V,j - lambda_I,j)(t_n + D)` and the jump
//!    `lambda_V,i <- lambda_V,i + (theta lambda_V,i + dl_p/dt + S) / (I - V)` with the recorded
//!    `I - V` (spikes whose recorded `I - V <= 1e-9` — a grid artefact where the voltage peaked
//!    within the step — get no jump). An optional jump bias `b_i` ([`Adjoint::backward_into_with`],
//!    the spike-count regulariser) is then added: `lambda_V,i += b_i`.
//! 4. **propagation** from `t_n` to `t_{n-1}` with the transpose of the exact one-step
//!    propagator: `lambda_V <- alpha lambda_V`,
//!    `lambda_I <- beta lambda_I + c (beta - alpha) (tau_m/tau_s) lambda_V`.
//!
//! Without spikes on the way, steps 1, 2 and 4 are the exact adjoint of the (linear) clocked
//! forward pass, so weight gradients of networks whose hidden neurons do not spike equal finite
//! differences of the clocked loss. With spikes, spike times are grid-locked in the clocked
//! forward pass and the jumps are the continuous-time ones: the gradients approach the exact
//! engine's as `dt -> 0`. Memory: `O(neurons x max_delay_steps)` plus the forward record, and for
//! the default gradient sums below an adjoint window of at most 64 MiB per thread (10 MB for the
//! SHD network at `dt = 1 ms`); nothing is kept per sample beyond the forward record.
//!
//! **Max-voltage readout: the kink.** When the grid maximum of an output sits on an arrival that
//! turns its rising voltage into a falling one (spec §3), and for the other arrivals that share
//! the arg-max step, a correction is added to those synapses' `dL/dd` and to the causing spikes'
//! `S` before the sweep (the comment on the private `grid_kinks` says what is differentiated and why
//! it converges to the exact engine's term).
//!
//! **Gradient sums** ([`GradientSweep`]). The steps above read, per synaptic event, the adjoints
//! of the postsynaptic neuron at the arrival step. Only the sum `S` of a LIF spike is needed
//! during the sweep (its jump changes everything earlier); `dL/dw` and `dL/dd` are sums over the
//! presynaptic events and can wait. The default sweep computes `S` from the history ring as it
//! goes, keeps the adjoints it stores there for a longer window as well, and once per window
//! sums each synapse's reads over the window's events in registers: one update per synapse and
//! window rather than one per event, and nothing at all per input spike inside the sweep.
//! [`GradientSweep::PerEvent`] updates the gradients at each event instead (3 as written above),
//! as does every sweep of a network with a sparse projection that the layered sweep below does
//! not take: it walks each fan-out of at least 16 synapses 4 at a time with AVX when the CPU has
//! it (each synapse's operations as above, rounded one by one, no FMA; the terms of `S` added one
//! by one in fan-out order), the same bits as the scalar loop.
//!
//! Cost: per synaptic event one random 16-byte read of the adjoint window (plus, for LIF spikes,
//! an 8-byte read of `lambda_V - lambda_I` for `S`); the reads are memory-bound. On the SHD
//! workloads of `bench-suite` (`RAYON_NUM_THREADS=1 ... --example backward_sweep [ff]`, best of 5)
//! the deferred sums take the backward pass from 17-20 to 10-11.6 ms CPU per sample for
//! 700-256-256-20 and from 39-47 to 25.6-28.3 ms for 700-512r-20, whose 5 M recurrent events per
//! sample still need `S` one by one. The plan comes from the scratch and is rebuilt only
//! when the network's delays change ([`ClockedPlan::refresh`]).
//! Everything stays `f64`: the finite-difference tests of this pass hold to 1e-12.
//!
//! **Layered sweep** (the backward side of [`Delivery::Pull`]). For a network without recurrent
//! loops ([`ClockedPlan::is_layered`]) on an engine with [`Delivery::Pull`] (the default) and a
//! [`GradientSweep::Deferred`] sweep (the default), the pass runs population by population in
//! reverse topological order and neuron by neuron over the whole run: a neuron's adjoints are the
//! steps above for that neuron alone (its jump sums `S` are complete, since every population it
//! projects to is done), kept in a `16 x (steps + slots)`-byte timeline that every event of its
//! incoming projections then reads, adding to its synapse's sums (one gradient update per
//! synapse, 8 targets at a time) and to the partial `S` of the presynaptic spike. The events are
//! grouped by presynaptic column (a stable counting sort per population), so a column's delays,
//! weights and sums stay in registers while its events stream by, and four targets share each
//! pass (independent chains, each in the order it would have alone). The weight rows come from
//! the plan's cache ([`ClockedPlan::refresh_weights`]) when it holds the network's current
//! weights. The sums are taken in the order of the step-by-step deferred sweep with a whole-run
//! window (a synapse's sum gets its events in record order, a spike's `S` its targets in order),
//! so the gradients are the same bit for bit (`tests/clocked_delivery.rs`); `backward_sweep ff`
//! measures 6.7 against 14.8 ms CPU per sample for 700-256-256-20 in one run (load 8.5 on the 2
//! cores; 5.8 against 7.5 with one target pass in time order, idle machine). Sparse projections
//! take part through the plan's per-block view ([`snn_core::clocked::SparsePull::block`], the
//! synapses into a block of 8 targets, target by target, weights in that order from the plan's
//! cache): each synapse sums its reads over its source's events in registers (in the dense sums'
//! order) and adds to the sources' `S` (targets in increasing order, as the dense sums). Recurrent networks, [`Delivery::Push`] and
//! [`GradientSweep::PerEvent`] use the step-by-step sweep (per event for networks with a sparse
//! projection).

use snn_core::clocked::{ClockedPlan, ConnPlan, PopPlan};
use snn_core::{
    Buckets, ClockedEngine, CoreError, Delivery, ForwardRecord, Network, ReadoutKind, Simulator, SpikeTrain,
};

use crate::error::{EventPropError, Result};
use crate::gradients::{Adjoint, Gradients, check_jump_bias};

/// Shortest fan-out that the per-event sweep walks with AVX ([`fan_out_adjoint_avx`]); shorter
/// ones take the inlined scalar loop (the call and its set-up would cost more than the quads save).
const AVX_MIN_FAN_OUT: usize = 16;

/// Recorded `I - V` at or below this gets no adjoint jump.
const MIN_I_MINUS_V: f64 = 1e-9;

/// How the clocked backward pass accumulates `dL/dw` and `dL/dd`. The jumps, and so the
/// gradients, are the same either way; the sums differ only by floating-point reassociation
/// (about 1e-14 of the largest entry on the SHD workloads, `--example backward_sweep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientSweep {
    /// Deferred, the default: the sweep keeps every neuron's adjoints of the last
    /// `W + max_delay_steps + 1` steps and, once per window of `W` steps, sums each synapse's reads
    /// over the presynaptic events of the window in registers (post-synaptic neurons in blocks of
    /// 8): one update of `dL/dw_ji` and `dL/dd_ji` per synapse and window instead of one per
    /// event, and no adjoint work for input spikes inside the sweep. `W` is the whole run when
    /// the adjoint buffer (`16 x (W + max_delay_steps + 1) x neurons` bytes) fits `max_bytes`,
    /// shorter otherwise, but never shorter than `max_delay_steps + 1`.
    Deferred {
        /// Budget of the adjoint buffer, bytes per thread.
        max_bytes: usize,
    },
    /// Per event: each presynaptic event updates its synapses' gradients when the sweep reaches
    /// it, as written in the module docs — the reference the deferred sweep is tested against.
    PerEvent,
}

impl GradientSweep {
    /// [`GradientSweep::Deferred`] with a 64 MiB budget: the whole run for `T = 1 s`,
    /// `dt = 1 ms` and up to ~3,600 neurons.
    pub const DEFAULT: Self = Self::Deferred { max_bytes: 64 << 20 };
}

impl Default for GradientSweep {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Lanes of the deferred gradient sums (post-synaptic neurons per block).
const LANES: usize = 8;

/// Blocks of [`LANES`] post-synaptic neurons summed together (see `Deferred::sum_connection`).
const GROUP: usize = 8;

/// Working buffers of the clocked backward pass (one per thread; reused across samples).
#[derive(Debug, Clone, Default)]
pub struct ClockedAdjointScratch {
    plan: ClockedPlan,
    sweep: GradientSweep,
    deferred: Deferred,
    lambda_v: Vec<f64>,
    lambda_i: Vec<f64>,
    /// `slots x n_state` pairs `(lambda_V, lambda_I)`.
    hist: Vec<[f64; 2]>,
    /// Deferred sweep: `slots x n_state` values `lambda_V - lambda_I`, all that `S` reads.
    hist_s: Vec<f64>,
    /// Index in the record of each output's first spike (`FirstSpike`), `usize::MAX` if none.
    first_spike: Vec<usize>,
    /// Readout steps (`VoltageAt`), sorted as the readout times.
    readout_steps: Vec<usize>,
    /// Grid-level max-voltage kinks (see [`grid_kinks`]): output currents before the arg-max
    /// step, arrivals at it, and the kink terms owed to recorded spikes' jumps.
    kink_i: Vec<f64>,
    kink_arrivals: Vec<KinkArrival>,
    kink_s: Vec<(usize, f64)>,
    /// Buffers of the layered (pull) sweep.
    layered: Box<Layered>,
}

impl ClockedAdjointScratch {
    /// Chooses how gradients are accumulated (default [`GradientSweep::DEFAULT`]).
    pub fn set_sweep(&mut self, sweep: GradientSweep) {
        self.sweep = sweep;
    }

    /// The gradient accumulation in use.
    pub fn sweep(&self) -> GradientSweep {
        self.sweep
    }

    /// Bytes held by the buffers (capacity), plan included.
    pub fn heap_bytes(&self) -> usize {
        self.deferred.heap_bytes()
            + 8 * (self.lambda_v.capacity()
                + self.lambda_i.capacity()
                + 2 * self.hist.capacity()
                + self.hist_s.capacity())
            + 8 * (self.first_spike.capacity() + self.readout_steps.capacity() + self.kink_i.capacity())
            + std::mem::size_of::<KinkArrival>() * self.kink_arrivals.capacity()
            + 16 * self.kink_s.capacity()
            + self.layered.heap_bytes()
            + self.plan.conns.iter().map(|c| 4 * c.offsets.capacity()).sum::<usize>()
    }
}

/// `ring[(base_off + o) mod ring.len()]` for `base_off < ring.len()` (the callers assert it):
/// one wrap, unchecked, when `o < ring.len()` (always, for offsets of a [`ClockedPlan`]).
#[inline(always)]
fn ring_read<T: Copy>(ring: &[T], base_off: usize, o: u32) -> T {
    let (rn, o) = (ring.len(), o as usize);
    let mut idx = base_off + o;
    if idx >= rn {
        idx -= rn;
    }
    if o < rn {
        // SAFETY: base_off < rn and o < rn, so idx < 2 rn before and < rn after the wrap.
        unsafe { *ring.get_unchecked(idx) }
    } else {
        ring[idx % rn]
    }
}

/// Reads the history at the synapses of one presynaptic spike, accumulates the weight and delay
/// gradients of its column and, if `JUMP`, returns `S = Σ_j w_ji (lambda_V - lambda_I)_j` (0
/// otherwise: an input spike has no jump, and its sum would go unused).
#[inline]
fn fan_out_adjoint<const JUMP: bool>(
    hist: &[[f64; 2]],
    base_off: usize,
    tau_s: f64,
    w: &[f64],
    offs: &[u32],
    gw: &mut [f64],
    gd: &mut [f64],
) -> f64 {
    fan_out_adjoint_from::<JUMP>(0.0, hist, base_off, tau_s, w, offs, gw, gd)
}

/// The loop of [`fan_out_adjoint`], adding the terms of `S` to `s` (it returns the sum): also
/// the tail of [`fan_out_adjoint_avx`]. Panics if `base_off` is out of the history (and `w` is
/// not empty): [`ring_read`]'s unchecked read relies on it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fan_out_adjoint_from<const JUMP: bool>(
    mut s: f64,
    hist: &[[f64; 2]],
    base_off: usize,
    tau_s: f64,
    w: &[f64],
    offs: &[u32],
    gw: &mut [f64],
    gd: &mut [f64],
) -> f64 {
    assert!(base_off < hist.len() || w.is_empty(), "history base out of range");
    for (((&wj, &o), gwj), gdj) in w.iter().zip(offs).zip(gw.iter_mut()).zip(gd.iter_mut()) {
        let [lv, li] = ring_read(hist, base_off, o);
        *gwj -= tau_s * li;
        *gdj -= wj * (li - lv);
        if JUMP {
            s += wj * (lv - li);
        }
    }
    s
}

/// [`fan_out_adjoint`] with AVX, 4 synapses at a time (the same operations on each synapse, each
/// rounded on its own, no FMA; the terms of `S` added one by one in fan-out order): the same bits.
///
/// # Safety
/// The CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn fan_out_adjoint_avx<const JUMP: bool>(
    hist: &[[f64; 2]],
    base_off: usize,
    tau_s: f64,
    w: &[f64],
    offs: &[u32],
    gw: &mut [f64],
    gd: &mut [f64],
) -> f64 {
    use std::arch::x86_64::*;
    assert!(base_off < hist.len() || w.is_empty(), "history base out of range");
    let n = w.len().min(offs.len()).min(gw.len()).min(gd.len());
    let mut s = 0.0;
    let rn = hist.len();
    // Quads when every offset is below `rn` (always, for a plan's offsets); the scalar loop
    // below (`ring_read`) otherwise.
    let max_off = offs[..n].iter().fold(0, |m, &o| m.max(o));
    let quads = if (max_off as usize) < rn { n / 4 * 4 } else { 0 };
    let tau = _mm256_set1_pd(tau_s);
    let mut k = 0;
    while k < quads {
        // SAFETY: k + 4 <= n <= offs.len(); every offset is below `rn` (checked above), and
        // `base_off < rn`, so the wrapped index is below `rn` too.
        let at = |q: usize| unsafe {
            let idx = base_off + *offs.get_unchecked(k + q) as usize;
            if idx >= rn { idx - rn } else { idx }
        };
        let (i0, i1, i2, i3) = (at(0), at(1), at(2), at(3));
        // SAFETY: the indices are below `hist.len()` (above), each of a pair of f64.
        let (lv, li) = unsafe {
            let pair = |i: usize| _mm_loadu_pd(hist.as_ptr().add(i).cast());
            let a02 = _mm256_set_m128d(pair(i2), pair(i0)); // lv0 li0 | lv2 li2
            let a13 = _mm256_set_m128d(pair(i3), pair(i1)); // lv1 li1 | lv3 li3
            (_mm256_unpacklo_pd(a02, a13), _mm256_unpackhi_pd(a02, a13))
        };
        // SAFETY (the loads and stores below): k + 4 <= n, the length of every slice.
        unsafe {
            let wq = _mm256_loadu_pd(w.as_ptr().add(k));
            let gwq = _mm256_loadu_pd(gw.as_ptr().add(k));
            _mm256_storeu_pd(gw.as_mut_ptr().add(k), _mm256_sub_pd(gwq, _mm256_mul_pd(tau, li)));
            let gdq = _mm256_loadu_pd(gd.as_ptr().add(k));
            _mm256_storeu_pd(gd.as_mut_ptr().add(k), _mm256_sub_pd(gdq, _mm256_mul_pd(wq, _mm256_sub_pd(li, lv))));
            if JUMP {
                let t = _mm256_mul_pd(wq, _mm256_sub_pd(lv, li));
                let (lo, hi) = (_mm256_castpd256_pd128(t), _mm256_extractf128_pd::<1>(t));
                s += _mm_cvtsd_f64(lo);
                s += _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo));
                s += _mm_cvtsd_f64(hi);
                s += _mm_cvtsd_f64(_mm_unpackhi_pd(hi, hi));
            }
        }
        k += 4;
    }
    fan_out_adjoint_from::<JUMP>(s, hist, base_off, tau_s, &w[k..n], &offs[k..n], &mut gw[k..n], &mut gd[k..n])
}

/// [`fan_out_adjoint`] of presynaptic neuron `j`'s column of connection `cid`: its weights, ring
/// offsets and gradient columns, and the postsynaptic `tau_s`. Returns the jump sum `S` if `JUMP`.
/// With `avx` (the CPU has AVX), through [`fan_out_adjoint_avx`]: the same bits.
#[allow(clippy::too_many_arguments)]
#[inline]
fn fan_out_column<const JUMP: bool>(
    net: &Network,
    plan: &ClockedPlan,
    cid: snn_core::ConnectionId,
    j: usize,
    hist: &[[f64; 2]],
    base_off: usize,
    grads: &mut Gradients,
    avx: bool,
) -> f64 {
    let cp = &plan.conns[cid.0];
    let conn = net.connection(cid);
    let col = conn.fan_out(j).indices();
    let w = &conn.weight_values()[col.clone()];
    let tau_s = plan.pops[cp.post].tau_s;
    let offs = &cp.offsets[col.clone()];
    let gw = &mut grads.weights[cid.0].as_mut_slice()[col.clone()];
    let gd = &mut grads.delays[cid.0].as_mut_slice()[col];
    #[cfg(target_arch = "x86_64")]
    if avx && w.len() >= AVX_MIN_FAN_OUT {
        // SAFETY: the caller checked that the CPU has AVX.
        return unsafe { fan_out_adjoint_avx::<JUMP>(hist, base_off, tau_s, w, offs, gw, gd) };
    }
    let _ = avx;
    fan_out_adjoint::<JUMP>(hist, base_off, tau_s, w, offs, gw, gd)
}

/// `S = Σ_j w_ji (lambda_V - lambda_I)_j` of one presynaptic spike, read from the ring of
/// `lambda_V - lambda_I` (the deferred sweep's in-loop work; these synapses' gradients come later).
#[inline]
fn fan_out_s(hist_s: &[f64], base_off: usize, w: &[f64], offs: &[u32]) -> f64 {
    assert!(base_off < hist_s.len() || w.is_empty(), "history base out of range");
    let mut s = 0.0;
    for (&wj, &o) in w.iter().zip(offs) {
        s += wj * ring_read(hist_s, base_off, o);
    }
    s
}

/// Buffers of [`GradientSweep::Deferred`].
///
/// `traj` holds `(lambda_V, lambda_I)` of every non-input neuron for the last `len` steps, as the
/// sweep stored them (after the readout forcing of the step, before its jumps — what the history
/// ring holds), step `n` in row `n % len`. Each population has its own region, its neurons in
/// blocks of [`LANES`]: block `b` is `len` rows of `LANES` pairs, so the reads of one block's
/// synapses stay within `len x 128` bytes. Rows of steps after `N` are zero: arrivals there were
/// dropped by the forward pass.
#[derive(Debug, Clone, Default)]
struct Deferred {
    /// Rows (steps) held: `window + slots`.
    len: usize,
    /// Steps per window.
    window: usize,
    /// First pair of each population's region (`usize::MAX` for the input population).
    pop_base: Vec<usize>,
    traj: Vec<[f64; 2]>,
    /// Presynaptic events of the current window grouped by neuron (CSR): `by_neuron.range(i)`
    /// indexes `rows`, each the row `step % len` of one event.
    by_neuron: Buckets,
    rows: Vec<u32>,
    /// `(len, window, steps, traj.len())` when the zero rows are known to be zero: a whole-run
    /// window never writes them, so they need clearing only when the geometry changes.
    clean_for: Option<(usize, usize, usize, usize)>,
}

impl Deferred {
    fn heap_bytes(&self) -> usize {
        16 * self.traj.capacity()
            + 8 * self.pop_base.capacity()
            + 4 * self.rows.capacity()
            + self.by_neuron.heap_bytes()
    }

    /// Sizes the window for `plan` over `steps` within `max_bytes` and clears what must start at zero.
    fn reset(&mut self, plan: &ClockedPlan, steps: usize, max_bytes: usize) {
        let padded: usize = plan.pops.iter().filter(|p| !p.is_input).map(|p| p.size.div_ceil(LANES) * LANES).sum();
        let row_bytes = 16 * padded.max(1);
        let full = steps + 1 + plan.slots;
        self.window = if full.saturating_mul(row_bytes) <= max_bytes {
            steps + 1
        } else {
            // At least `slots` steps (see below), at most the run (also when slots > steps + 1).
            (max_bytes / row_bytes).saturating_sub(plan.slots).max(plan.slots).min(steps + 1)
        };
        self.len = self.window + plan.slots;
        self.pop_base.clear();
        let mut base = 0;
        for p in &plan.pops {
            if p.is_input {
                self.pop_base.push(usize::MAX);
            } else {
                self.pop_base.push(base);
                base += p.size.div_ceil(LANES) * LANES * self.len;
            }
        }
        self.traj.resize(base, [0.0; 2]);
        let geometry = (self.len, self.window, steps, base);
        if self.clean_for == Some(geometry) {
            return;
        }
        // Rows of steps N+1 ..= N+max_delay must read as zero. Only the first window reads them,
        // and with a window shorter than the run they alias earlier steps, which the sweep
        // writes after that window has been summed (window >= slots); a whole-run window never
        // writes them at all.
        for (p, &b) in plan.pops.iter().zip(&self.pop_base) {
            if p.is_input {
                continue;
            }
            for blk in 0..p.size.div_ceil(LANES) {
                let region = &mut self.traj[b + blk * self.len * LANES..b + (blk + 1) * self.len * LANES];
                for step in steps + 1..steps + plan.slots {
                    let r = step % self.len;
                    region[r * LANES..(r + 1) * LANES].fill([0.0; 2]);
                }
            }
        }
        self.clean_for = (self.window == steps + 1).then_some(geometry);
    }

    /// Stores the adjoints of step `n`.
    fn store(&mut self, plan: &ClockedPlan, n: usize, lambda_v: &[f64], lambda_i: &[f64]) {
        let r = n % self.len;
        for (p, &b) in plan.pops.iter().zip(&self.pop_base) {
            if p.is_input {
                continue;
            }
            let lv = &lambda_v[p.state_off..p.state_off + p.size];
            let li = &lambda_i[p.state_off..p.state_off + p.size];
            for (blk, (v8, i8)) in lv.chunks(LANES).zip(li.chunks(LANES)).enumerate() {
                let row = &mut self.traj[b + (blk * self.len + r) * LANES..][..v8.len()];
                for ((t, &v), &i) in row.iter_mut().zip(v8).zip(i8) {
                    *t = [v, i];
                }
            }
        }
    }

    /// Groups the events `(neuron, step)` of one presynaptic population (`n_pre` neurons) by neuron.
    fn group(&mut self, n_pre: usize, events: impl Iterator<Item = (usize, usize)> + Clone) {
        let len = self.len;
        self.by_neuron.sort(n_pre, events.map(move |(i, step)| (i, (step % len) as u32)), &mut self.rows);
    }

    /// Adds the gradients of connection `cp` for the grouped events: for each synapse,
    /// `dL/dw -= tau_s Σ lambda_I(t + D)`, `dL/dd -= w Σ (lambda_I - lambda_V)(t + D)` over the
    /// events of its presynaptic neuron.
    fn sum_connection(&self, plan: &ClockedPlan, cp: &ConnPlan, w: &[f64], gw: &mut [f64], gd: &mut [f64]) {
        let post = plan.pops[cp.post];
        let tau_s = post.tau_s;
        let n_post = cp.n_post;
        let n_pre = self.by_neuron.starts().len() - 1;
        let len = self.len;
        let base = self.pop_base[cp.post];
        let blocks = n_post.div_ceil(LANES);
        // Groups of blocks: the group's adjoints (GROUP x len x 128 bytes) stay in L2 while the
        // presynaptic neurons go by, and each neuron's gradient, weight and delay entries of the
        // group are GROUP contiguous cache lines.
        for g0 in (0..blocks).step_by(GROUP) {
            for i in 0..n_pre {
                let rows = &self.rows[self.by_neuron.range(i)];
                if rows.is_empty() {
                    continue;
                }
                for blk in g0..(g0 + GROUP).min(blocks) {
                    let region = &self.traj[base + blk * len * LANES..base + (blk + 1) * len * LANES];
                    let j0 = blk * LANES;
                    let lanes = (n_post - j0).min(LANES);
                    let o = i * n_post + j0;
                    // Sums of (lambda_V, lambda_I) per lane; `lambda_I - lambda_V` is summed as the difference.
                    let mut acc = [[0.0f64; 2]; LANES];
                    // Pair index of lane l for an event in row r: r * LANES + off[l], less `wrap` when
                    // that passes the end. Every index stays < region.len() == len * LANES: r < len
                    // (rows are `step % len`), d < len, so r * LANES + off[l] < 2 * wrap.
                    let wrap = len * LANES;
                    let off: [usize; LANES] = std::array::from_fn(|l| {
                        if l < lanes { (cp.delay_steps[o + l] as usize).min(len - 1) * LANES + l } else { 0 }
                    });
                    // A partial last block reads lane 0's row for its missing lanes (offset 0):
                    // in range, and those sums are dropped below.
                    for &r in rows {
                        let at = r as usize * LANES;
                        for l in 0..LANES {
                            let mut idx = at + off[l];
                            if idx >= wrap {
                                idx -= wrap;
                            }
                            debug_assert!(idx < region.len());
                            // SAFETY: idx < wrap == region.len() (see above).
                            let [lv, li] = unsafe { *region.get_unchecked(idx) };
                            acc[l][0] += lv;
                            acc[l][1] += li;
                        }
                    }
                    for (l, [sum_v, sum_i]) in acc.into_iter().take(lanes).enumerate() {
                        gw[o + l] -= tau_s * sum_i;
                        gd[o + l] -= w[o + l] * (sum_i - sum_v);
                    }
                }
            }
        }
    }
}

fn mismatch(what: &'static str, got: String) -> EventPropError {
    EventPropError::ReadoutMismatch { loss: "clocked adjoint", expected: what, got }
}

impl Adjoint for ClockedEngine {
    type AdjointScratch = ClockedAdjointScratch;

    fn adjoint_scratch(&self, _net: &Network) -> ClockedAdjointScratch {
        ClockedAdjointScratch::default()
    }

    fn backward_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        scratch: &mut ClockedAdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()> {
        self.backward_into_with(net, input, record, d_readout, None, scratch, grads)
    }

    fn backward_into_with(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        jump_bias: Option<&[f64]>,
        scratch: &mut ClockedAdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()> {
        // The plan cached in the scratch is rebuilt only when the delays changed.
        let mut plan = std::mem::take(&mut scratch.plan);
        // Under pull delivery it also keeps the target-major weight rows of the current weights.
        let pull = self.delivery() == Delivery::Pull;
        let result = plan
            .refresh(net, self)
            .and_then(|_rebuilt| if pull { plan.refresh_weights(net) } else { Ok(false) })
            .map_err(EventPropError::from)
            .and_then(|_| backward_planned_with(self, net, &plan, input, record, d_readout, jump_bias, scratch, grads));
        scratch.plan = plan;
        result
    }
}

/// [`Adjoint::backward_into`] with a prebuilt plan (see [`ClockedEngine::plan`]): skips the
/// re-quantisation of the delays, for batches over one network. `plan` must come from `net`
/// (same delays) on `engine`'s grid; the plan kept in `scratch` is not used.
///
/// ```
/// use nalgebra::DMatrix;
/// use snn_core::{ClockedEngine, ClockedState, ForwardRecord, LiParams, NetworkBuilder, SimConfig, SpikeTrains};
/// use snn_eventprop::{Adjoint, Gradients, Loss, backward_planned};
///
/// let mut b = NetworkBuilder::new();
/// let inp = b.input("in", 2);
/// let out = b.li("out", 2, LiParams::default());
/// b.connect(inp, out, DMatrix::from_element(2, 2, 0.5), DMatrix::from_element(2, 2, 3.0));
/// let net = b.build().unwrap();
/// let loss = Loss::ExpIntegralCrossEntropy;
/// let engine = ClockedEngine::new(SimConfig::new(50.0, loss.readout_kind()), 1.0).unwrap();
/// let mut batch = SpikeTrains::new(2);
/// batch.push_sample(&[1.0, 5.0], &[0, 1]).unwrap();
///
/// let plan = engine.plan(&net).unwrap();
/// let (mut state, mut rec) = (ClockedState::default(), ForwardRecord::default());
/// engine.run_planned(&net, &plan, batch.sample(0), &mut state, &mut rec).unwrap();
/// let v = loss.evaluate(&rec.readout, 0, 0, 50.0).unwrap();
/// let mut grads = Gradients::zeros(&net);
/// let mut scratch = engine.adjoint_scratch(&net);
/// backward_planned(&engine, &net, &plan, batch.sample(0), &rec, &v.d_readout, &mut scratch, &mut grads).unwrap();
/// // Raising the weights into the correct output lowers the loss.
/// assert!(grads.weights[0][(0, 0)] < 0.0 && grads.weights[0][(1, 0)] > 0.0);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn backward_planned(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    record: &ForwardRecord,
    d_readout: &[f64],
    scratch: &mut ClockedAdjointScratch,
    grads: &mut Gradients,
) -> Result<()> {
    backward_planned_with(engine, net, plan, input, record, d_readout, None, scratch, grads)
}

/// [`backward_planned`] with an optional jump bias (see [`Adjoint::backward_into_with`]):
/// `jump_bias[g]` is added to `lambda_V` of neuron `g` after the jump of each of its spikes
/// (also for spikes whose recorded `I - V` is too small for the EventProp jump).
#[allow(clippy::too_many_arguments)]
pub fn backward_planned_with(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    record: &ForwardRecord,
    d_readout: &[f64],
    jump_bias: Option<&[f64]>,
    scratch: &mut ClockedAdjointScratch,
    grads: &mut Gradients,
) -> Result<()> {
    check_jump_bias(net, jump_bias)?;
    plan.check_shape(net)?;
    let ClockedAdjointScratch {
        sweep,
        deferred,
        lambda_v,
        lambda_i,
        hist,
        hist_s,
        first_spike,
        readout_steps,
        kink_i,
        kink_arrivals,
        kink_s,
        layered,
        ..
    } = scratch;
    let cfg = engine.config();
    let steps = engine.num_steps();
    let dt = engine.dt();
    let t_end = cfg.t_end;
    let n_state = plan.n_state;
    let in_pop = net.input().0;
    let op: PopPlan = plan.pops[net.output().0];
    let n_out = op.size;

    // Shapes.
    if grads.check_shape(net).is_err() {
        return Err(CoreError::InvalidNetwork("gradient shapes do not match the network").into());
    }
    let expected_len = match &cfg.readout {
        ReadoutKind::VoltageAt(ts) => n_out * ts.len(),
        _ => n_out,
    };
    if d_readout.len() != expected_len {
        return Err(mismatch("one d_readout value per readout value", format!("{} values", d_readout.len())));
    }
    if record.readout.values.len() != expected_len
        || (matches!(cfg.readout, ReadoutKind::MaxVoltage) && record.readout.times.len() != n_out)
    {
        return Err(mismatch("a record of this engine's readout", format!("{} values", record.readout.values.len())));
    }
    let spikes = &record.spikes;
    if spikes.neurons.len() != spikes.len() || spikes.i_minus_v.len() != spikes.len() {
        return Err(mismatch("a spike record with equal-length arrays", format!("{} times", spikes.len())));
    }

    // Buffers.
    for b in [&mut *lambda_v, &mut *lambda_i] {
        b.clear();
        b.resize(n_state, 0.0);
    }
    hist.clear();
    hist_s.clear();
    first_spike.clear();
    readout_steps.clear();
    kink_s.clear();
    match &cfg.readout {
        ReadoutKind::FirstSpike => {
            first_spike.resize(n_out, usize::MAX);
            for (k, &g) in spikes.neurons.iter().enumerate() {
                let g = g as usize;
                if (op.global_off..op.global_off + n_out).contains(&g) && first_spike[g - op.global_off] == usize::MAX {
                    first_spike[g - op.global_off] = k;
                }
            }
        }
        ReadoutKind::MaxVoltage => {
            readout_steps.extend(record.readout.times.iter().map(|&t| engine.step_of(t)));
            grid_kinks(
                engine,
                net,
                plan,
                input,
                record,
                readout_steps,
                d_readout,
                grads,
                kink_i,
                kink_arrivals,
                kink_s,
            )?;
        }
        ReadoutKind::VoltageAt(ts) => readout_steps.extend(ts.iter().map(|&t| engine.step_of(t).min(steps))),
        ReadoutKind::ExpIntegral => {}
    }

    let n_input = input.times.iter().position(|&t| t >= t_end).unwrap_or(input.len());
    let n_in_neurons = plan.pops[in_pop].size;
    if input.neurons[..n_input].iter().any(|&j| j as usize >= n_in_neurons) {
        return Err(CoreError::InvalidNetwork("input neuron index out of range").into());
    }
    if matches!(sweep, GradientSweep::Deferred { .. })
        && engine.delivery() == Delivery::Pull
        && let Some(layers) = plan.layers()
    {
        let ctx = LayeredCtx { engine, net, plan, input, n_input, record, d_readout, jump_bias };
        return layered.sweep(&ctx, layers, first_spike, readout_steps, kink_s, grads);
    }
    // The deferred sums walk dense columns in blocks of targets; a network with a sparse
    // projection takes the per-event sweep (through the fan-outs) instead.
    let sweep = if net.has_sparse() { &GradientSweep::PerEvent } else { sweep };
    #[cfg(target_arch = "x86_64")]
    let avx = std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    let avx = false;
    let deferring = match *sweep {
        GradientSweep::Deferred { max_bytes } => {
            deferred.reset(plan, steps, max_bytes);
            hist_s.resize(plan.ring_len(), 0.0);
            true
        }
        GradientSweep::PerEvent => {
            hist.resize(plan.ring_len(), [0.0; 2]);
            false
        }
    };
    // Deferred sums: a window of steps [win_lo, ..) is summed when the sweep reaches win_lo;
    // its events are those between the cursors' old and new positions.
    let mut win_lo = (steps + 1).saturating_sub(deferred.window);
    let (mut in_cursor, mut sp_cursor) = (n_input, spikes.len());
    let mut next_input = n_input; // events [0, next_input) remain
    let mut next_spike = spikes.len();
    let mut next_readout = readout_steps.len(); // VoltageAt: steps [0, next_readout) remain
    let inv_n = 1.0 / steps as f64;
    let out_r = op.state_off..op.state_off + n_out;
    let op_index = net.output().0;

    for n in (0..=steps).rev() {
        let base_off = (n % plan.slots) * n_state;
        // 1. readout forcing
        match &cfg.readout {
            ReadoutKind::ExpIntegral => {
                let f = (-(n as f64 * dt) / t_end).exp() * inv_n / op.tau_m;
                for (l, &g) in lambda_v[out_r.clone()].iter_mut().zip(d_readout) {
                    *l -= g * f;
                }
            }
            ReadoutKind::MaxVoltage => {
                for k in 0..n_out {
                    if readout_steps[k] == n {
                        lambda_v[op.state_off + k] -= d_readout[k] / op.tau_m;
                    }
                }
            }
            ReadoutKind::VoltageAt(_) => {
                let nt = readout_steps.len();
                while next_readout > 0 && readout_steps[next_readout - 1] >= n {
                    let q = next_readout - 1;
                    if readout_steps[q] == n {
                        for k in 0..n_out {
                            lambda_v[op.state_off + k] -= d_readout[k * nt + q] / op.tau_m;
                        }
                    }
                    next_readout -= 1;
                }
            }
            ReadoutKind::FirstSpike => {}
        }
        // 2. history
        if deferring {
            let ring = &mut hist_s[base_off..base_off + n_state];
            for ((h, &lv), &li) in ring.iter_mut().zip(&*lambda_v).zip(&*lambda_i) {
                *h = lv - li;
            }
            deferred.store(plan, n, lambda_v, lambda_i);
        } else {
            // Every population but the output one was stored by the previous step's propagation
            // (nothing but the output's forcing comes in between), except at the first step.
            let r = if n == steps { 0..n_state } else { out_r.clone() };
            let h = &mut hist[base_off + r.start..base_off + r.end];
            for ((h, &lv), &li) in h.iter_mut().zip(&lambda_v[r.clone()]).zip(&lambda_i[r]) {
                *h = [lv, li];
            }
        }
        // 3a. recorded spikes of this step
        while next_spike > 0 && engine.step_of(spikes.times[next_spike - 1]) >= n {
            let k = next_spike - 1;
            next_spike = k;
            let ks = engine.step_of(spikes.times[k]);
            if ks != n {
                // A spike at or after the last step cannot come from this engine's forward pass.
                return Err(mismatch(
                    "spike times on this engine's grid, before t_end",
                    format!("{}", spikes.times[k]),
                ));
            }
            let g = spikes.neurons[k] as usize;
            let Some(p) = plan.locate(g).filter(|&p| plan.pops[p].theta.is_some()) else {
                return Err(mismatch("spikes of LIF neurons", format!("neuron {g}")));
            };
            let pp = plan.pops[p];
            let j = g - pp.global_off;
            let mut s = 0.0;
            for &cid in net.outgoing(snn_core::PopulationId(p)) {
                if deferring {
                    let conn = net.connection(cid);
                    let col = conn.fan_out(j).indices();
                    let w = &conn.weight_values()[col.clone()];
                    s += fan_out_s(hist_s, base_off, w, &plan.conns[cid.0].offsets[col]);
                } else {
                    s += fan_out_column::<true>(net, plan, cid, j, hist, base_off, grads, avx);
                }
            }
            for &(spike, term) in kink_s.iter() {
                if spike == k {
                    s += term; // grid-level max-voltage kink caused by this spike
                }
            }
            let mut dlp = 0.0;
            if p == net.output().0 && matches!(cfg.readout, ReadoutKind::FirstSpike) && first_spike[j] == k {
                dlp = d_readout[j];
            }
            let imv = spikes.i_minus_v[k];
            if imv > MIN_I_MINUS_V {
                let theta = pp.theta.unwrap_or(1.0);
                let lv = &mut lambda_v[pp.state_off + j];
                *lv += (theta * *lv + dlp + s) / imv;
            }
            if let Some(b) = jump_bias {
                lambda_v[pp.state_off + j] += b[g];
            }
        }
        // 3b. input spikes binned to this step (deferred: summed with their window)
        while !deferring && next_input > 0 && engine.step_of(input.times[next_input - 1]) >= n {
            next_input -= 1;
            let j = input.neurons[next_input] as usize; // < n_in_neurons, checked above
            for &cid in net.outgoing(net.input()) {
                fan_out_column::<false>(net, plan, cid, j, hist, base_off, grads, avx);
            }
        }
        // 3c. deferred gradients of the window's events (every step it reads is stored)
        if deferring && n == win_lo {
            let in_hi = in_cursor;
            while in_cursor > 0 && engine.step_of(input.times[in_cursor - 1]) >= win_lo {
                in_cursor -= 1;
            }
            let sp_hi = sp_cursor;
            while sp_cursor > 0 && engine.step_of(spikes.times[sp_cursor - 1]) >= win_lo {
                sp_cursor -= 1;
            }
            for (p, pp) in plan.pops.iter().enumerate() {
                let outgoing = net.outgoing(snn_core::PopulationId(p));
                if outgoing.is_empty() {
                    continue;
                }
                if pp.is_input {
                    let events =
                        (in_cursor..in_hi).map(|k| (input.neurons[k] as usize, engine.step_of(input.times[k])));
                    deferred.group(pp.size, events);
                } else {
                    let range = pp.global_off..pp.global_off + pp.size;
                    let events = (sp_cursor..sp_hi)
                        .filter(|&k| range.contains(&(spikes.neurons[k] as usize)))
                        .map(|k| (spikes.neurons[k] as usize - pp.global_off, engine.step_of(spikes.times[k])));
                    deferred.group(pp.size, events);
                }
                if deferred.rows.is_empty() {
                    continue;
                }
                for &cid in outgoing {
                    deferred.sum_connection(
                        plan,
                        &plan.conns[cid.0],
                        net.connection(cid).weights().as_slice(),
                        grads.weights[cid.0].as_mut_slice(),
                        grads.delays[cid.0].as_mut_slice(),
                    );
                }
            }
            win_lo = win_lo.saturating_sub(deferred.window);
        }
        // 4. propagate back to t_{n-1}; the per-event sweep stores the result as step n-1's history
        // at once for the populations without readout forcing.
        if n > 0 {
            let prev_off = ((n - 1) % plan.slots) * n_state;
            for (pi, p) in plan.pops.iter().enumerate().filter(|(_, p)| !p.is_input) {
                let r = p.state_off..p.state_off + p.size;
                let (a, b, q) = (p.alpha, p.beta, p.coupling * p.tau_m / p.tau_s);
                let (lv, li) = (&mut lambda_v[r.clone()], &mut lambda_i[r.clone()]);
                if deferring || pi == op_index {
                    for (lv, li) in lv.iter_mut().zip(li) {
                        *li = b * *li + q * *lv;
                        *lv *= a;
                    }
                } else {
                    propagate_and_store((a, b, q), lv, li, &mut hist[prev_off + r.start..prev_off + r.end]);
                }
            }
        }
    }
    Ok(())
}

/// One step of the backward propagation of a population, `lambda_I <- b lambda_I + q lambda_V`,
/// `lambda_V <- a lambda_V` (each operation rounded on its own), with the results stored as the
/// history pairs `h = [lambda_V, lambda_I]`: AVX quads when the CPU has them, scalar otherwise —
/// the same operations, the same bits. Panics unless the three slices have one length.
#[inline]
fn propagate_and_store((a, b, q): (f64, f64, f64), lv: &mut [f64], li: &mut [f64], h: &mut [[f64; 2]]) {
    assert!(li.len() == lv.len() && h.len() == lv.len(), "propagation: one history pair per neuron");
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above); the lengths are asserted.
        done = unsafe { propagate_and_store_avx((a, b, q), lv, li, h) };
    }
    for ((lv, li), h) in lv[done..].iter_mut().zip(&mut li[done..]).zip(&mut h[done..]) {
        *li = b * *li + q * *lv;
        *lv *= a;
        *h = [*lv, *li];
    }
}

/// [`propagate_and_store`] of the first `4 (len / 4)` neurons, 4 at a time with AVX (multiplies and
/// adds apart, no FMA); returns how many it did.
///
/// # Safety
/// The CPU has AVX; `li`, `h` as long as `lv`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn propagate_and_store_avx(
    (a, b, q): (f64, f64, f64),
    lv: &mut [f64],
    li: &mut [f64],
    h: &mut [[f64; 2]],
) -> usize {
    use std::arch::x86_64::{
        _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_permute2f128_pd, _mm256_set1_pd, _mm256_storeu_pd,
        _mm256_unpackhi_pd, _mm256_unpacklo_pd,
    };
    let n = lv.len() / 4 * 4;
    let (va, vb, vq) = (_mm256_set1_pd(a), _mm256_set1_pd(b), _mm256_set1_pd(q));
    let (pv, pi, ph) = (lv.as_mut_ptr(), li.as_mut_ptr(), h.as_mut_ptr().cast::<f64>());
    for k in (0..n).step_by(4) {
        // SAFETY: `k + 4 <= n <= lv.len() == li.len() == h.len()`, and `h` holds 2 `f64` per neuron.
        unsafe {
            let (v, i) = (_mm256_loadu_pd(pv.add(k)), _mm256_loadu_pd(pi.add(k)));
            let i = _mm256_add_pd(_mm256_mul_pd(vb, i), _mm256_mul_pd(vq, v));
            let v = _mm256_mul_pd(va, v);
            _mm256_storeu_pd(pv.add(k), v);
            _mm256_storeu_pd(pi.add(k), i);
            // [v0 i0 v2 i2], [v1 i1 v3 i3] -> [v0 i0 v1 i1], [v2 i2 v3 i3]
            let (lo, hi) = (_mm256_unpacklo_pd(v, i), _mm256_unpackhi_pd(v, i));
            _mm256_storeu_pd(ph.add(2 * k), _mm256_permute2f128_pd::<0x20>(lo, hi));
            _mm256_storeu_pd(ph.add(2 * k + 4), _mm256_permute2f128_pd::<0x31>(lo, hi));
        }
    }
    n
}

/// What the layered sweep reads.
struct LayeredCtx<'a> {
    engine: &'a ClockedEngine,
    net: &'a Network,
    plan: &'a ClockedPlan,
    input: SpikeTrain<'a>,
    /// Input spikes before `t_end`.
    n_input: usize,
    record: &'a ForwardRecord,
    d_readout: &'a [f64],
    jump_bias: Option<&'a [f64]>,
}

/// Buffers of the layered sweep: the backward counterpart of pull delivery, for networks without
/// recurrent loops under [`Delivery::Pull`] and a [`GradientSweep::Deferred`] sweep.
///
/// Populations are swept in reverse topological order, each neuron by itself over the whole run
/// (the neurons of a population do not interact: what reaches one of them from later populations
/// is the jump sums `S` of its spikes, complete by then). Every presynaptic event of a target's
/// incoming projections reads its adjoint trajectory (`16 x (steps + slots)` bytes): the event
/// adds to its synapse's sums of `lambda_V` and `lambda_I` (in registers while the events of one
/// column stream by, see [`read_columns`], then one update of `dL/dw`, `dL/dd` per synapse), and
/// to the partial jump sum `S` of a presynaptic spike.
///
/// The operations per neuron are those of the step-by-step sweep, and every sum is taken in its
/// order (synapse sums over a neuron's events in record order, as the deferred whole-run window;
/// `S` over targets in order, then over connections in outgoing order): the gradients equal the
/// step-by-step deferred sweep's bit for bit when its window is the whole run (its default
/// budget, up to ~3,600 neurons at `T/dt = 1000`), and up to reassociation otherwise.
#[derive(Debug, Clone, Default)]
struct Layered {
    /// One target's `(lambda_V, lambda_I)` per step, `steps + slots` long (zero after `steps`).
    line: Vec<[f64; 2]>,
    /// The population's weights, target-major ([`ClockedPlan::pull_weights`]).
    w_rows: Vec<f64>,
    /// The population's sparse weights in block order ([`ClockedPlan::pull_sparse_weights`]).
    sparse_w: Vec<f64>,
    /// For a block of [`LANES`] targets, per column of their rows and target: sums of `lambda_V`
    /// and `lambda_I` over the column's events, interleaved by column (`sums[col * LANES + l]`
    /// for target `j0 + l`): one event updates one short run, and the block's gradients are then
    /// updated a cache line of targets at a time reading `sums` in order.
    sums: Vec<[f64; 2]>,
    /// The block's delay steps and weights, interleaved by column like `sums`
    /// (`lane_d[col * LANES + l]`, `lane_w[col * LANES + l]` for target `j0 + l`; zero for lanes
    /// past the population's end).
    lane_d: Vec<u32>,
    lane_w: Vec<f64>,
    /// Per column: whether it had events (only those synapses are updated, as in the deferred sums).
    seen: Vec<bool>,
    /// Each record spike's rank among its population's spikes.
    rank: Vec<u32>,
    /// Events into the current population: `(step, column, S slot or u32::MAX)`.
    events: Vec<(u32, u32, u32)>,
    /// Record spikes of each population (CSR over populations: `pop_start[p]..pop_start[p+1]`
    /// index `pop_spikes`, record indices in record order).
    pop_start: Vec<usize>,
    pop_spikes: Vec<u32>,
    /// First `S` slot of each connection (`usize::MAX` if its presynaptic population is the input):
    /// slot `s_base[c] + r` is the partial sum over connection `c` for the `r`-th spike of its
    /// presynaptic population.
    s_base: Vec<usize>,
    s_part: Vec<f64>,
    /// Each record spike's grid step.
    spike_step: Vec<u32>,
    /// The events into the current population by column (CSR: column `c`'s events are
    /// `col_events[by_col.range(c)]`, `(step, S slot or u32::MAX)` in the order of `events`).
    by_col: Buckets,
    col_events: Vec<(u32, u32)>,
    /// Sparse projections: `by_src.range(g)` indexes `src_ev`, the events of global
    /// neuron `g` as `(step, rank among its population's spikes)` (`u32::MAX` for input spikes).
    by_src: Buckets,
    src_ev: Vec<(u32, u32)>,
    /// Each record spike's population (scratch of the CSR `pop_start`, `pop_spikes`).
    pop_of: Vec<u32>,
    /// Scratch of the counting sort into `pop_spikes`.
    pop_fill: Vec<usize>,
    /// The current population's spikes by block of [`LANES`] neurons (CSR: block `b`'s are
    /// `block_spikes[by_block.range(b)]`), in record order.
    by_block: Buckets,
    block_spikes: Vec<BlockSpike>,
    /// Population of each global neuron (`u32::MAX` for none), the lookup of
    /// [`ClockedPlan::locate`] as a table built once per sweep.
    pop_at: Vec<u32>,
    /// Grid step of each input spike before `t_end`.
    in_step: Vec<u32>,
    /// `ExpIntegral` readout: the forcing factor `exp(-n dt / t_end) / (steps tau_m)` of each step
    /// `n`, computed once per sweep ([`Layered::sweep`]).
    readout_f: Vec<f64>,
    /// The spikes of the hidden block being swept, grouped by step for [`hidden_block_avx`].
    groups: Vec<SpikeGroup>,
    /// `(line_len, steps)` of `line` when its timelines' tails (steps past `steps`) were last
    /// cleared ([`Layered::block`]), if they were.
    line_tails: Option<(usize, usize)>,
}

/// A spike of the block being swept ([`Layered::block`]), with what its jump needs gathered in
/// record order beforehand (not read at random from the step loop, whose adjoint chain waited on
/// those reads).
#[derive(Debug, Clone, Copy, Default)]
struct BlockSpike {
    /// Grid step.
    step: u32,
    /// Lane in the block.
    lane: u32,
    /// Record index.
    k: u32,
    /// The jump sum `S`: the partial sums of the spike's outgoing connections in outgoing order,
    /// then its readout-kink terms in order (the order the step loop summed them in).
    s: f64,
    /// `I - V` just before the spike (from the record).
    imv: f64,
}

/// The presynaptic events of one sparse projection, for [`read_sparse_block`].
struct SparseSources<'a> {
    /// CSR over global neurons into `events`.
    starts: &'a [u32],
    /// `(step, rank)` per event.
    events: &'a [(u32, u32)],
    /// Global offset of the presynaptic population.
    offset: usize,
    /// First `S` slot of the connection (`usize::MAX` for an input projection).
    s_base: usize,
}

/// The backward reads of sparse pull delivery for block `b` of targets (`LANES b ..`, the
/// counterpart of [`read_columns`] for a sparse projection), walking the block's synapses as the
/// forward pass does ([`snn_core::clocked::SparsePull::block`]: target by target, so one
/// target's trajectory is read at a time; `w` the projection's weights in that order): each
/// synapse (source `i`, target lane `l`, delay `D`, value index `v`) reads
/// `[hv, hi] = line_l[t + D]` (`line_l = line[l line_len ..]`) at every event `t` of its source,
/// in record order, summing them in registers and adding `w (hv - hi)` to the partial jump sum
/// `S` of a LIF spike; then one update `dL/dw_v -= tau_s Σ hi`, `dL/dd_v -= w Σ (hi - hv)`
/// (synapses whose source had no event are not touched, as in the dense sums). Each synapse's
/// sums run over its source's events in the order of the dense layered sweep, and a spike's `S`
/// gets its targets in increasing order, as there: the same sums, bit for bit, as walking each
/// target's rows with the weights read by value index.
#[allow(clippy::too_many_arguments)]
#[inline]
fn read_sparse_block(
    sp: &snn_core::clocked::SparsePull,
    b: usize,
    w: &[f64],
    tau_s: f64,
    sources: &SparseSources<'_>,
    (line, line_len): (&[[f64; 2]], usize),
    s_part: &mut [f64],
    gw: &mut [f64],
    gd: &mut [f64],
) {
    let (r, recs) = sp.block(b);
    let values = &sp.block_values()[r.clone()];
    for ((rec, &wv), &v) in recs.iter().zip(&w[r]).zip(values) {
        let g = sources.offset + rec.src as usize;
        let evs = &sources.events[sources.starts[g] as usize..sources.starts[g + 1] as usize];
        if evs.is_empty() {
            continue;
        }
        let (d, l) = (rec.off as usize / LANES, rec.off as usize % LANES);
        let line = &line[l * line_len + d..(l + 1) * line_len];
        let (mut sum_v, mut sum_i) = (0.0, 0.0);
        for &(t, rank) in evs {
            let [hv, hi] = line[t as usize];
            sum_v += hv;
            sum_i += hi;
            if sources.s_base != usize::MAX {
                s_part[sources.s_base + rank as usize] += wv * (hv - hi);
            }
        }
        gw[v as usize] -= tau_s * sum_i;
        gd[v as usize] -= wv * (sum_i - sum_v);
    }
}

impl Layered {
    fn heap_bytes(&self) -> usize {
        16 * (self.line.capacity() + self.sums.capacity())
            + 4 * self.lane_d.capacity()
            + 8 * (self.w_rows.capacity()
                + self.sparse_w.capacity()
                + self.lane_w.capacity()
                + self.pop_start.capacity()
                + self.s_base.capacity()
                + self.s_part.capacity())
            + self.seen.capacity()
            + 12 * self.events.capacity()
            + 4 * (self.pop_spikes.capacity() + self.spike_step.capacity() + self.rank.capacity())
            + self.by_col.heap_bytes()
            + 8 * self.col_events.capacity()
            + 4 * self.pop_of.capacity()
            + self.by_block.heap_bytes()
            + 8 * self.pop_fill.capacity()
            + std::mem::size_of::<BlockSpike>() * self.block_spikes.capacity()
            + self.by_src.heap_bytes()
            + 8 * self.src_ev.capacity()
            + 4 * (self.pop_at.capacity() + self.in_step.capacity())
            + 8 * self.readout_f.capacity()
            + std::mem::size_of::<SpikeGroup>() * self.groups.capacity()
    }

    /// The whole backward pass (see the type's docs); validation and the readout set-up
    /// (`first_spike`, `readout_steps`, `kink_s`) are done by the caller.
    #[allow(clippy::needless_range_loop)]
    fn sweep(
        &mut self,
        ctx: &LayeredCtx<'_>,
        layers: &[usize],
        first_spike: &[usize],
        readout_steps: &[usize],
        kink_s: &[(usize, f64)],
        grads: &mut Gradients,
    ) -> Result<()> {
        let LayeredCtx { engine, net, plan, input, n_input, record, .. } = *ctx;
        let steps = engine.num_steps();
        let spikes = &record.spikes;
        let np = plan.pops.len();

        // Population of each global neuron: the first that holds it, as `plan.locate`.
        self.pop_at.clear();
        self.pop_at.resize(plan.pops.iter().map(|p| p.global_off + p.size).max().unwrap_or(0), u32::MAX);
        for (p, pp) in plan.pops.iter().enumerate().rev() {
            self.pop_at[pp.global_off..pp.global_off + pp.size].fill(p as u32);
        }
        // `ExpIntegral` readout: each step's forcing factor for the output blocks ([`Layered::block`]).
        self.readout_f.clear();
        if matches!(engine.config().readout, ReadoutKind::ExpIntegral) {
            let (dt, t_end, tau_m) = (engine.dt(), engine.config().t_end, plan.pops[net.output().0].tau_m);
            let inv_n = 1.0 / steps as f64;
            self.readout_f.extend((0..=steps).map(|n| (-(n as f64 * dt) / t_end).exp() * inv_n / tau_m));
        }
        // Spikes: grid steps (sorted, <= steps, as the step-by-step sweep requires) and populations.
        self.spike_step.clear();
        let mut pop_of = std::mem::take(&mut self.pop_of);
        pop_of.clear();
        let mut last = 0usize;
        for k in 0..spikes.len() {
            let ks = engine.step_of(spikes.times[k]);
            if ks > steps || ks < last {
                return Err(mismatch(
                    "spike times on this engine's grid, before t_end",
                    format!("{}", spikes.times[k]),
                ));
            }
            last = ks;
            let g = spikes.neurons[k] as usize;
            let pop = self.pop_at.get(g).copied().filter(|&p| p != u32::MAX).map(|p| p as usize);
            let Some(p) = pop.filter(|&p| plan.pops[p].theta.is_some()) else {
                return Err(mismatch("spikes of LIF neurons", format!("neuron {g}")));
            };
            self.spike_step.push(ks as u32);
            pop_of.push(p as u32);
        }
        self.pop_start.clear();
        self.pop_start.resize(np + 1, 0);
        for &p in &pop_of {
            self.pop_start[p as usize + 1] += 1;
        }
        for p in 0..np {
            self.pop_start[p + 1] += self.pop_start[p];
        }
        let mut fill = std::mem::take(&mut self.pop_fill);
        fill.clear();
        fill.extend_from_slice(&self.pop_start);
        self.pop_spikes.clear();
        self.pop_spikes.resize(spikes.len(), 0);
        self.rank.clear();
        for (k, &p) in pop_of.iter().enumerate() {
            let p = p as usize;
            self.pop_spikes[fill[p]] = k as u32;
            self.rank.push((fill[p] - self.pop_start[p]) as u32);
            fill[p] += 1;
        }
        self.pop_fill = fill;
        self.pop_of = pop_of;
        // S slots per connection from a LIF population.
        self.s_base.clear();
        let mut total = 0;
        for cp in &plan.conns {
            if plan.pops[cp.pre].is_input {
                self.s_base.push(usize::MAX);
            } else {
                self.s_base.push(total);
                total += self.pop_start[cp.pre + 1] - self.pop_start[cp.pre];
            }
        }
        self.s_part.clear();
        self.s_part.resize(total, 0.0);
        // Grid steps of the input spikes.
        self.in_step.clear();
        self.in_step.extend(input.times[..n_input].iter().map(|&t| engine.step_of(t) as u32));
        // Sparse projections read per source: every neuron's events `(step, rank)` (CSR over
        // global neurons; input events with rank `u32::MAX`), each neuron's in record order.
        if layers.iter().any(|&p| !plan.pull_sparse(p).is_empty()) {
            let n = plan.num_neurons();
            let inputs = input.neurons[..n_input].iter().map(|&i| i as usize);
            let in_ev = self.in_step.iter().zip(inputs).map(|(&t, g)| (g, (t, u32::MAX)));
            let (steps_of, rank) = (&self.spike_step, &self.rank);
            let sp_ev = spikes.neurons.iter().zip(steps_of).zip(rank).map(|((&g, &t), &r)| (g as usize, (t, r)));
            self.by_src.sort(n, in_ev.chain(sp_ev), &mut self.src_ev);
        }

        for &p in layers.iter().rev() {
            let pp = plan.pops[p];
            let conns = plan.pull_conns(p);
            // Events of the incoming connections, connection by connection, each in record
            // (or input) order.
            self.events.clear();
            for &(c, first) in conns {
                let pre = plan.conns[c].pre;
                if plan.pops[pre].is_input {
                    let evs = self.in_step.iter().zip(input.neurons);
                    self.events.extend(evs.map(|(&t, &i)| (t, first as u32 + i, u32::MAX)));
                } else {
                    let off = plan.pops[pre].global_off;
                    let base = self.s_base[c];
                    let ks = &self.pop_spikes[self.pop_start[pre]..self.pop_start[pre + 1]];
                    self.events.extend(ks.iter().enumerate().map(|(r, &k)| {
                        let i = spikes.neurons[k as usize] as usize - off;
                        (self.spike_step[k as usize], (first + i) as u32, (base + r) as u32)
                    }));
                }
            }
            let row_len: usize = conns.iter().map(|&(c, _)| plan.pops[plan.conns[c].pre].size).sum();
            let own_spikes = &self.pop_spikes[self.pop_start[p]..self.pop_start[p + 1]];
            // Spikes of this population by block of LANES neurons, record order, with their jump
            // sums `S` (complete: every later population has been swept) and `I - V`.
            // (CSR over blocks, a stable counting sort: block `b`'s spikes are
            // `by_block[self.by_block.range(b)]`.)
            let n_blocks = pp.size.div_ceil(LANES);
            let mut by_block = std::mem::take(&mut self.block_spikes);
            let step_of = &self.spike_step;
            let own = own_spikes.iter().map(|&k| {
                let j = spikes.neurons[k as usize] as usize - pp.global_off;
                (j / LANES, BlockSpike { step: step_of[k as usize], lane: (j % LANES) as u32, k, s: 0.0, imv: 0.0 })
            });
            self.by_block.sort(n_blocks, own, &mut by_block);
            let (s_part, s_base, rank) = (&self.s_part, &self.s_base, &self.rank);
            let outgoing = net.outgoing(snn_core::PopulationId(p));
            for x in &mut by_block {
                let k = x.k as usize;
                let mut s = 0.0;
                for &cid in outgoing {
                    s += s_part[s_base[cid.0] + rank[k] as usize];
                }
                for &(spike, term) in kink_s {
                    if spike == k {
                        s += term;
                    }
                }
                (x.s, x.imv) = (s, spikes.i_minus_v[k]);
            }
            let line_len = steps + plan.slots;
            // Columns with events (the same for every target).
            self.seen.clear();
            self.seen.resize(row_len, false);
            for &(_, col, _) in &self.events {
                self.seen[col as usize] = true;
            }
            // The same events by column, each column's in the order of `events` (a stable
            // counting sort), and their largest step.
            let max_step = self.events.iter().map(|&(n, _, _)| n).max().unwrap_or(0);
            let by_col = self.events.iter().map(|&(n, col, slot)| (col as usize, (n, slot)));
            self.by_col.sort(row_len, by_col, &mut self.col_events);
            // The weight rows: cached in the plan for `net`'s weights, or gathered into `w_buf`.
            let mut w_buf = std::mem::take(&mut self.w_rows);
            let w_rows = plan.pull_weight_rows(net, p, &mut w_buf);
            // The sparse weights in block order, likewise.
            let mut sw_buf = std::mem::take(&mut self.sparse_w);
            let sparse_w = plan.pull_sparse_weights(net, p, &mut sw_buf);
            for j0 in (0..pp.size).step_by(LANES) {
                let j1 = (j0 + LANES).min(pp.size);
                let own = &by_block[self.by_block.range(j0 / LANES)];
                self.block(ctx, p, j0, j1 - j0, first_spike, readout_steps, own);
                // 2. Every event into a target reads its trajectory: up to four targets per pass
                // over the events (see `read_columns`), column by column, their delays, weights
                // and sums interleaved by column.
                self.lane_d.resize(LANES * row_len, 0);
                self.lane_w.resize(LANES * row_len, 0.0);
                self.sums.resize(LANES * row_len, [0.0; 2]);
                for l in 0..(j1 - j0) {
                    let j = j0 + l;
                    let (d_row, w_row) = (plan.pull_delays(p, j), &w_rows[j * row_len..(j + 1) * row_len]);
                    for (col, (&d, &w)) in d_row.iter().zip(w_row).enumerate() {
                        self.lane_d[col * LANES + l] = d;
                        self.lane_w[col * LANES + l] = w;
                    }
                }
                let lanes = Lanes { d: &self.lane_d, w: &self.lane_w, line: &self.line, line_len };
                let cols = Columns { start: self.by_col.starts(), events: &self.col_events, max_step };
                let mut l = 0;
                while l < j1 - j0 {
                    l += match j1 - j0 - l {
                        4.. => read_columns::<4>(&cols, &lanes, l, &mut self.sums, &mut self.s_part),
                        2 | 3 => read_columns::<2>(&cols, &lanes, l, &mut self.sums, &mut self.s_part),
                        _ => read_columns::<1>(&cols, &lanes, l, &mut self.sums, &mut self.s_part),
                    };
                }
                // 3. The block's gradients: targets j0..j1 of a presynaptic neuron are contiguous
                // in `gw`, `gd` (and in `sums`, `lane_w`, whose weights are `w`'s: the same values).
                for &(c, first) in conns {
                    let n_post = plan.conns[c].n_post;
                    let n_pre = plan.pops[plan.conns[c].pre].size;
                    let (gw, gd) = (grads.weights[c].as_mut_slice(), grads.delays[c].as_mut_slice());
                    for i in 0..n_pre {
                        let col = first + i;
                        if !self.seen[col] {
                            continue;
                        }
                        prefetch_column(gw, gd, (i + PREFETCH_COLUMNS) * n_post + j0);
                        let (gw, gd) =
                            (&mut gw[i * n_post + j0..i * n_post + j1], &mut gd[i * n_post + j0..i * n_post + j1]);
                        let (sums, w) = (&self.sums[col * LANES..col * LANES + (j1 - j0)], &self.lane_w[col * LANES..]);
                        for (((gw, gd), &[sum_v, sum_i]), &w) in gw.iter_mut().zip(gd).zip(sums).zip(w) {
                            *gw -= pp.tau_s * sum_i;
                            *gd -= w * (sum_i - sum_v);
                        }
                    }
                }
                // 4. Sparse projections: the block's synapses read their targets' trajectories at
                // their sources' events ([`read_sparse_block`]).
                let mut w_off = 0;
                for sp in plan.pull_sparse(p) {
                    let c = sp.conn();
                    let w = &sparse_w[w_off..w_off + sp.nnz()];
                    w_off += sp.nnz();
                    let (gw, gd) = (grads.weights[c].as_mut_slice(), grads.delays[c].as_mut_slice());
                    let sources = SparseSources {
                        starts: self.by_src.starts(),
                        events: &self.src_ev,
                        offset: plan.pops[sp.pre()].global_off,
                        s_base: self.s_base[c],
                    };
                    let line = (&self.line[..], line_len);
                    read_sparse_block(sp, j0 / LANES, w, pp.tau_s, &sources, line, &mut self.s_part, gw, gd);
                }
            }
            self.w_rows = w_buf;
            self.sparse_w = sw_buf;
            self.block_spikes = by_block;
        }
        Ok(())
    }
}

/// Columns ahead of the current one whose gradient entries step 3 of [`Layered::sweep`]
/// prefetches: a block's entries of consecutive columns are `n_post` apart in the column-major
/// gradients, a stride the hardware prefetchers do not follow.
const PREFETCH_COLUMNS: usize = 8;

/// Prefetches the cache lines of `gw[o..o + LANES]` and `gd[o..o + LANES]` (nothing if out of
/// range; a hint, no effect on the values).
#[inline]
fn prefetch_column(gw: &[f64], gd: &[f64], o: usize) {
    #[cfg(target_arch = "x86_64")]
    for g in [gw, gd] {
        if o + LANES <= g.len() {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = g[o..o + LANES].as_ptr();
            // SAFETY: a prefetch is a hint that reads nothing; both addresses are inside `g`.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
                _mm_prefetch::<_MM_HINT_T0>(p.add(LANES - 1).cast());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (gw, gd, o);
}

/// What [`read_columns`] reads of a block of [`LANES`] targets: their delay steps and weights
/// interleaved by column (`d[col * LANES + l]`, `w[col * LANES + l]` for lane `l`) and their
/// adjoint timelines (`line[l * line_len..]`, `(lambda_V, lambda_I)` per step).
struct Lanes<'a> {
    d: &'a [u32],
    w: &'a [f64],
    line: &'a [[f64; 2]],
    line_len: usize,
}

/// The events into a population by column of the target rows (see `Layered::by_col`) and
/// their largest step.
struct Columns<'a> {
    start: &'a [u32],
    events: &'a [(u32, u32)],
    max_step: u32,
}

/// The reads of the adjoint trajectories of lanes `l0 .. l0 + K` of a block by every event into
/// them (step 2 of [`Layered::sweep`]), column by column: per column `col` with events and lane
/// `l`, `sums[col * LANES + l]` is set to the sum over the column's events `(n, slot)` of
/// `[hv, hi] = line_l[n + d_l[col]]` and, for a LIF spike (`slot != u32::MAX`),
/// `w_l[col] (hv - hi)` is added to `s_part[slot]`. A column's delays, weights and sums stay in
/// registers while its events stream by. Returns `K`.
///
/// Summation order: each lane's sum of a column starts at zero and gets the column's events in
/// the order of the events into the population (the order of `col_events`), as in a pass over
/// the events in that order; each `s_part` slot belongs to one event (a spike through one
/// connection), so it is updated in one column only, with its lanes' terms in increasing lane
/// order, and the calls of a block run in increasing `l0`: every slot receives the targets'
/// terms in target order whatever `K` is and whatever order the columns are visited in (the
/// order of the former one- and two-target kernels over the events in record order): bit for
/// bit the same. Panics if an event would read past a timeline (it cannot for the events of
/// the plan's own network, whose steps are at most `steps` and delays below `slots`).
#[inline]
fn read_columns<const K: usize>(
    cols: &Columns<'_>,
    lanes: &Lanes<'_>,
    l0: usize,
    sums: &mut [[f64; 2]],
    s_part: &mut [f64],
) -> usize {
    assert!(l0 + K <= LANES, "read_columns: lanes past the block");
    let line_len = lanes.line_len;
    let lines: [&[[f64; 2]]; K] = std::array::from_fn(|l| &lanes.line[(l0 + l) * line_len..(l0 + l + 1) * line_len]);
    for (col, w2) in cols.start.windows(2).enumerate() {
        let evs = &cols.events[w2[0] as usize..w2[1] as usize];
        if evs.is_empty() {
            continue;
        }
        let c = col * LANES + l0;
        let d: [usize; K] = std::array::from_fn(|l| lanes.d[c + l] as usize);
        let w: [f64; K] = std::array::from_fn(|l| lanes.w[c + l]);
        // Every read below is at `n + d[l] <= max_step + d[l] < line_len`.
        assert!(d.iter().all(|&d| cols.max_step as usize + d < line_len), "read_columns: event past a timeline");
        let mut acc = [[0.0f64; 2]; K];
        for &(n, slot) in evs {
            let n = n as usize;
            let mut h = [[0.0f64; 2]; K];
            for l in 0..K {
                // SAFETY: `n <= max_step` (the largest step of the events) and the assertion
                // above give `n + d[l] < line_len == lines[l].len()`.
                h[l] = unsafe { *lines[l].get_unchecked(n + d[l]) };
                acc[l][0] += h[l][0];
                acc[l][1] += h[l][1];
            }
            if slot != u32::MAX {
                let x = &mut s_part[slot as usize];
                for l in 0..K {
                    *x += w[l] * (h[l][0] - h[l][1]);
                }
            }
        }
        sums[c..c + K].copy_from_slice(&acc);
    }
    K
}

impl Layered {
    /// The adjoints of targets `j0 .. j0 + lanes` (`lanes <= LANES`) of population `p` over the
    /// run, from the end, side by side (independent chains of arithmetic), into `line`: target
    /// `j0 + l`'s timeline at `l * (steps + slots)`. For each neuron these are the step-by-step
    /// sweep's operations; `own` are the block's spikes in record order, taken from the end as
    /// that sweep does.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    fn block(
        &mut self,
        ctx: &LayeredCtx<'_>,
        p: usize,
        j0: usize,
        lanes: usize,
        first_spike: &[usize],
        readout_steps: &[usize],
        own: &[BlockSpike],
    ) {
        let LayeredCtx { engine, net, plan, d_readout, jump_bias, .. } = *ctx;
        let cfg = engine.config();
        let steps = engine.num_steps();
        let op = plan.pops[net.output().0];
        let is_out = p == net.output().0;
        let pp = plan.pops[p];
        let (a, b, q) = (pp.alpha, pp.beta, pp.coupling * pp.tau_m / pp.tau_s);
        let nt = readout_steps.len();
        let line_len = steps + plan.slots;
        // Steps `0..=steps` of every lane are written below; only the tails are cleared.
        self.line.resize(LANES * line_len, [0.0; 2]);
        // Nothing writes the tails but this (the step loops write steps `0..=steps`, the reads only
        // read): cleared when the geometry changes, and zero since.
        if self.line_tails != Some((line_len, steps)) {
            for tail in self.line.chunks_exact_mut(line_len) {
                tail[steps + 1..].fill([0.0; 2]);
            }
            self.line_tails = Some((line_len, steps));
        }
        // Each lane's timeline, written below without a bounds test per step.
        assert!(self.line.len() >= LANES * line_len && steps < line_len, "layered sweep: the block's timelines");
        let lines: [*mut [f64; 2]; LANES] = std::array::from_fn(|l| self.line[l * line_len..].as_mut_ptr());
        let theta = pp.theta.unwrap_or(1.0);
        let bias = jump_bias.map(|bias| &bias[pp.global_off + j0..pp.global_off + j0 + lanes]);
        if !is_out {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: the CPU has AVX (checked just above); `lines[l] + n` is `self.line[l
                // line_len + n]` for `n <= steps < line_len` (assertion above), and nothing else
                // accesses `self.line` meanwhile.
                unsafe { hidden_block_avx(&lines, steps, own, &mut self.groups, (a, b, q, theta), bias) };
                return;
            }
            // SAFETY: as for `hidden_block_avx` above.
            unsafe { block_steps(&lines, steps, own, (a, b, q, theta), bias, |_, _| {}, |_, _| 0.0) };
            return;
        }
        let readout_f = &self.readout_f;
        let mut next_readout = nt;
        let force = |n: usize, lv: &mut [f64; LANES]| match &cfg.readout {
            ReadoutKind::ExpIntegral => {
                let f = readout_f[n];
                for l in 0..lanes {
                    lv[l] -= d_readout[j0 + l] * f;
                }
            }
            ReadoutKind::MaxVoltage => {
                for l in 0..lanes {
                    if readout_steps[j0 + l] == n {
                        lv[l] -= d_readout[j0 + l] / op.tau_m;
                    }
                }
            }
            ReadoutKind::VoltageAt(_) => {
                while next_readout > 0 && readout_steps[next_readout - 1] >= n {
                    let q = next_readout - 1;
                    if readout_steps[q] == n {
                        for l in 0..lanes {
                            lv[l] -= d_readout[(j0 + l) * nt + q] / op.tau_m;
                        }
                    }
                    next_readout -= 1;
                }
            }
            ReadoutKind::FirstSpike => {}
        };
        let first = matches!(cfg.readout, ReadoutKind::FirstSpike);
        let dlp = |l: usize, k: usize| if first && first_spike[j0 + l] == k { d_readout[j0 + l] } else { 0.0 };
        // SAFETY: `lines[l] + n` is `self.line[l line_len + n]`, in range for `l < LANES` and
        // `n <= steps < line_len` (assertion above); nothing else accesses `self.line` meanwhile.
        unsafe { block_steps(&lines, steps, own, (a, b, q, theta), bias, force, dlp) };
    }
}

/// The scalar step loop of [`Layered::block`]: per step `n` from `steps` down, `force(n, lambda_V)`
/// (the readout forcing of an output block), store every lane's `[lambda_V, lambda_I]` at
/// `lines[l] + n`, the spikes of the block at `n` (`own`, taken from the end, one after the
/// other): `lambda_V += (theta lambda_V + dlp(lane, k) + S) / (I - V)` where `I - V >
/// MIN_I_MINUS_V` (`dlp` the `FirstSpike` term), then `lambda_V += bias[lane]` with a jump bias;
/// then, above step 0, `lambda_I <- b lambda_I + q lambda_V`, `lambda_V <- a lambda_V`. Hidden
/// blocks (no forcing, `dlp` zero) run [`hidden_block_avx`] instead where the CPU has AVX, which
/// must give the same bits (unit test `hidden_block_avx_matches_scalar`).
///
/// # Safety
/// `lines[l].add(n)` valid for writes for every lane `l` and `n <= steps`, and not accessed
/// otherwise meanwhile.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn block_steps(
    lines: &[*mut [f64; 2]; LANES],
    steps: usize,
    own: &[BlockSpike],
    (a, b, q, theta): (f64, f64, f64, f64),
    bias: Option<&[f64]>,
    mut force: impl FnMut(usize, &mut [f64; LANES]),
    mut dlp: impl FnMut(usize, usize) -> f64,
) {
    let (mut lv, mut li) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut next_spike = own.len();
    for n in (0..=steps).rev() {
        force(n, &mut lv);
        for (l, line) in lines.iter().enumerate() {
            // SAFETY: the caller's (`lines[l] + n` valid for a write of `[f64; 2]`).
            unsafe { *line.add(n) = [lv[l], li[l]] };
        }
        while next_spike > 0 && own[next_spike - 1].step as usize == n {
            next_spike -= 1;
            let BlockSpike { lane: l, k, s, imv, .. } = own[next_spike];
            let (l, k) = (l as usize, k as usize);
            let dlp = dlp(l, k);
            if imv > MIN_I_MINUS_V {
                lv[l] += (theta * lv[l] + dlp + s) / imv;
            }
            if let Some(bias) = bias {
                lv[l] += bias[l];
            }
        }
        if n > 0 {
            for l in 0..LANES {
                li[l] = b * li[l] + q * lv[l];
                lv[l] *= a;
            }
        }
    }
}

/// The step loop of [`Layered::block`] for a block of a hidden population (no readout forcing, no
/// `FirstSpike` term), with AVX: `lambda_V` and `lambda_I` of the 8 lanes in two quads each, in
/// registers over the whole run (the scalar loop kept them in memory, and every step's
/// propagation waited on a store and a reload). Per step `n` from `steps` down: store every lane's
/// `[lambda_V, lambda_I]` at `lines[l] + n`; then the spikes of the block at `n` (`own`, taken
/// from the end): in their lanes `lambda_V += (theta lambda_V + 0 + S) / (I - V)` where `I - V >
/// MIN_I_MINUS_V`, then `lambda_V += bias[l]` with a jump bias, applied to all lanes at once and
/// kept only in the spiking lanes (a lane with two spikes at one step gets them one after the
/// other); then, above step 0, `lambda_I <- b lambda_I + q lambda_V`, `lambda_V <- a lambda_V`.
/// The scalar loop's operations in its order per lane, each rounded on its own (no FMA): the same
/// bits.
///
/// The spikes' `S` and `I - V` are laid out per step beforehand ([`SpikeGroup`], in `groups`) and
/// read as quads: setting them lane by lane inside the step loop (scalar stores into arrays then
/// read as quads, the former version) stalled every step with spikes on a failed store-to-load
/// forwarding, on the `lambda_V` chain.
///
/// # Safety
/// The CPU has AVX; `lines[l].add(n)` valid for writes for every lane `l` and `n <= steps`, and not
/// accessed otherwise meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[allow(clippy::needless_range_loop)] // the quads `k` of `v` and `i` and the arrays' lanes `4k ..`
unsafe fn hidden_block_avx(
    lines: &[*mut [f64; 2]; LANES],
    steps: usize,
    own: &[BlockSpike],
    groups: &mut Vec<SpikeGroup>,
    (a, b, q, theta): (f64, f64, f64, f64),
    bias: Option<&[f64]>,
) {
    use std::arch::x86_64::{
        __m256d, _CMP_GT_OQ, _mm_storeu_pd, _mm256_add_pd, _mm256_and_pd, _mm256_blendv_pd, _mm256_castpd256_pd128,
        _mm256_cmp_pd, _mm256_div_pd, _mm256_extractf128_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd,
        _mm256_setzero_pd, _mm256_unpackhi_pd, _mm256_unpacklo_pd,
    };
    // The spikes as groups, built before the step loop (see `SpikeGroup`).
    groups.clear();
    for x in own.iter().rev() {
        let l = x.lane as usize;
        if groups.last().is_none_or(|g| g.step != x.step || g.mask & (1 << l) != 0) {
            groups.push(SpikeGroup { step: x.step, mask: 0, s: [0.0; LANES], imv: [1.0; LANES] });
        }
        let g = groups.last_mut().expect("a group was pushed");
        g.mask |= 1 << l;
        (g.s[l], g.imv[l]) = (x.s, x.imv);
    }
    let mut bias_lanes = [0.0; LANES];
    if let Some(bias) = bias {
        bias_lanes[..bias.len()].copy_from_slice(bias);
    }
    // SAFETY (the loads here and below): every array read holds `LANES` = 8 `f64`, read from `4k`.
    let bq = [0, 1].map(|k| unsafe { _mm256_loadu_pd(bias_lanes.as_ptr().add(4 * k)) });
    let (va, vb, vq, vth) = (_mm256_set1_pd(a), _mm256_set1_pd(b), _mm256_set1_pd(q), _mm256_set1_pd(theta));
    let (zero, vmin) = (_mm256_setzero_pd(), _mm256_set1_pd(MIN_I_MINUS_V));
    let (mut v, mut i): ([__m256d; 2], [__m256d; 2]) = ([zero; 2], [zero; 2]);
    // The next group and its step (`usize::MAX` past the last): one compare per step.
    let mut next = 0;
    let step_at = |next: usize| groups.get(next).map_or(usize::MAX, |g| g.step as usize);
    let mut next_step = step_at(0);
    for n in (0..=steps).rev() {
        for k in 0..2 {
            // [v0 i0 v2 i2] and [v1 i1 v3 i3] of lanes 4k ..
            let (even, odd) = (_mm256_unpacklo_pd(v[k], i[k]), _mm256_unpackhi_pd(v[k], i[k]));
            // SAFETY: the caller's (`lines[4k + j] + n` valid for a write of `[f64; 2]`).
            unsafe {
                _mm_storeu_pd(lines[4 * k].add(n).cast(), _mm256_castpd256_pd128(even));
                _mm_storeu_pd(lines[4 * k + 1].add(n).cast(), _mm256_castpd256_pd128(odd));
                _mm_storeu_pd(lines[4 * k + 2].add(n).cast(), _mm256_extractf128_pd::<1>(even));
                _mm_storeu_pd(lines[4 * k + 3].add(n).cast(), _mm256_extractf128_pd::<1>(odd));
            }
        }
        while next_step == n {
            let g = &groups[next];
            next += 1;
            next_step = step_at(next);
            for k in 0..2 {
                let quad = (g.mask >> (4 * k)) & 0xf;
                // SAFETY: `QUAD_MASKS` has 16 rows of 4 `f64`, `quad < 16`.
                let (spiked, sv, imv) = unsafe {
                    let at = |x: &[f64; LANES]| _mm256_loadu_pd(x.as_ptr().add(4 * k));
                    (_mm256_loadu_pd(QUAD_MASKS[quad as usize].as_ptr()), at(&g.s), at(&g.imv))
                };
                let jump = _mm256_and_pd(spiked, _mm256_cmp_pd::<_CMP_GT_OQ>(imv, vmin));
                let t = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(vth, v[k]), zero), sv);
                let jumped = _mm256_add_pd(v[k], _mm256_div_pd(t, imv));
                v[k] = _mm256_blendv_pd(v[k], jumped, jump);
                if bias.is_some() {
                    v[k] = _mm256_blendv_pd(v[k], _mm256_add_pd(v[k], bq[k]), spiked);
                }
            }
        }
        if n > 0 {
            for k in 0..2 {
                i[k] = _mm256_add_pd(_mm256_mul_pd(vb, i[k]), _mm256_mul_pd(vq, v[k]));
                v[k] = _mm256_mul_pd(va, v[k]);
            }
        }
    }
}

/// Lane masks of a quad (bit `j` of the row's index set: lane `j` all bits set, else zero).
#[cfg(target_arch = "x86_64")]
const QUAD_MASKS: [[f64; 4]; 16] = {
    let mut m = [[0.0; 4]; 16];
    let mut r = 0;
    while r < 16 {
        let mut j = 0;
        while j < 4 {
            if r & (1 << j) != 0 {
                m[r][j] = f64::from_bits(u64::MAX);
            }
            j += 1;
        }
        r += 1;
    }
    m
};

/// The spikes of a hidden block at one step in distinct lanes, as [`hidden_block_avx`] applies
/// them at once: the block's spikes taken from the end of its list, a group ending where the step
/// changes or a lane would repeat (so a lane with two spikes at one step gets them one after the
/// other). `S` and `I - V` per lane (0 and 1 in the lanes without a spike), the lanes as bits.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct SpikeGroup {
    step: u32,
    mask: u32,
    s: [f64; LANES],
    imv: [f64; LANES],
}

/// An arrival at an output's arg-max step (see [`grid_kinks`]).
#[derive(Debug, Clone, Copy)]
struct KinkArrival {
    /// Output neuron.
    k: usize,
    /// Unquantised arrival time `t_spike + d` (orders the arrivals within the step).
    t: f64,
    conn: usize,
    pre: usize,
    /// Index in the input train (input population) or in the spike record.
    spike: usize,
    /// Whether the presynaptic population is the input.
    from_input: bool,
    w: f64,
    /// Value index of the synapse in its connection.
    idx: usize,
}

/// The max-voltage kink term of spec §3 on the grid, and the ordering of the arrivals that share
/// the arg-max step with the maximum. Adds to `dL/dd` of each such synapse, and leaves in `kink_s`
/// for the jump of the causing recorded spike (`S` is this spike's share of the delay gradients),
///
/// ```text
/// g_k * slope_after   for the arrival at which the maximum sits (the kink),
/// g_k * w / tau_m     for arrivals after the maximum,
/// 0                   for arrivals before it,
/// ```
///
/// with `slope_after = (I^+ - V)/tau_m` the slope just after the kink arrival.
///
/// **What it differentiates.** On the grid, `max_n V_k(t_n)` is attained at step `n*`. The
/// clocked loss is piecewise constant in the delays (they are rounded to steps), so its literal
/// derivative is zero; like the rest of this backward pass, the delay gradient is that of the
/// clocked model with arrival times treated as continuous (an arrival moved by `δ` moves where
/// the clocked trajectory's current jumps), evaluated with the grid's state. Between grid points
/// the clocked trajectory is the exact free solution, so:
///
/// - if the arrivals at `t_{n*}` turn `dV/dt` from positive to negative, `V(t_{n*})` is the
///   trajectory's true, kinked maximum, and moving that arrival later by `δ` raises it by
///   `slope_before δ` (spec §3: `g_k * slope_before`, `slope_before = (I^- - V)/tau_m`);
/// - the history read of every arrival at step `n*` already holds the readout forcing
///   `lambda_V -= g_k / tau_m` of that step (the step's arrivals are treated as coming before the
///   readout), i.e. `-g_k w / tau_m` in its `dL/dd`. That is right for an arrival before the
///   maximum and wrong for one at or after it, for which the exact sweep reads the adjoint
///   without the forcing (reads before readout jumps at equal times). Removing it (`+g w/tau_m`)
///   and adding the kink term gives `g (slope_before + w/tau_m) = g slope_after` at the kink.
///
/// As `dt -> 0` the grid state, the arg-max step and the arrivals in it converge to the exact
/// engine's, and so do these terms (shown in `tests/clocked_vs_exact.rs` for `dt` = 1 … 0.001).
///
/// **Order within the step.** The arrivals at `n*` are taken in the order of their unquantised
/// times `t_spike + d` (ties: connection, presynaptic neuron, spike), with the current accumulated
/// from `I^-`: while the slope before an arrival is positive the maximum is still ahead; the
/// first arrival with `slope before > 0`, `slope after < 0` is the kink (the exact engine's test);
/// from the first arrival with `slope before <= 0` on (a smooth peak inside the previous step, or
/// after the kink) the arrivals come after the maximum. At the last step `N` every arrival is
/// after the maximum (it cannot change `V(t_N)`).
///
/// `I^-_k(t_{n*})` is rebuilt from the arrivals before `n*` (`Σ w beta^{n* - a}`); `V` is the
/// readout value. Cost `O(spikes into the output x outputs)` per sample, `MaxVoltage` only.
#[allow(clippy::too_many_arguments)]
fn grid_kinks(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    record: &ForwardRecord,
    readout_steps: &[usize],
    d_readout: &[f64],
    grads: &mut Gradients,
    cur: &mut Vec<f64>,
    arrivals: &mut Vec<KinkArrival>,
    kink_s: &mut Vec<(usize, f64)>,
) -> Result<()> {
    let out = net.output();
    let op = plan.pops[out.0];
    let n_out = op.size;
    let steps = engine.num_steps();
    let t_end = engine.config().t_end;
    cur.clear();
    cur.resize(n_out, 0.0);
    arrivals.clear();
    kink_s.clear();
    let mut visit = |c: usize, pre: usize, spike: usize, t: f64, from_input: bool| {
        let cp = &plan.conns[c];
        let conn = net.connection(snn_core::ConnectionId(c));
        let m = engine.step_of(t);
        for (k, idx) in conn.fan_out(pre).iter() {
            let a = m + cp.offsets[idx] as usize / plan.n_state;
            let n_star = readout_steps[k];
            let w = conn.weight_values()[idx];
            if a < n_star {
                cur[k] += w * op.beta.powi((n_star - a) as i32);
            } else if a == n_star {
                let t = t + conn.delay_values()[idx];
                arrivals.push(KinkArrival { k, t, conn: c, pre, spike, from_input, w, idx });
            }
        }
    };
    for &cid in net.incoming(out) {
        let c = cid.0;
        let pre_pop = plan.conns[c].pre;
        if pre_pop == net.input().0 {
            for (s, (t, j)) in input.iter().enumerate() {
                if j as usize >= plan.pops[pre_pop].size {
                    return Err(CoreError::InvalidNetwork("input neuron index out of range").into());
                }
                if t < t_end {
                    visit(c, j as usize, s, t, true);
                }
            }
        } else {
            let pp = plan.pops[pre_pop];
            for (s, (&t, &g)) in record.spikes.times.iter().zip(&record.spikes.neurons).enumerate() {
                let g = g as usize;
                if (pp.global_off..pp.global_off + pp.size).contains(&g) {
                    visit(c, g - pp.global_off, s, t, false);
                }
            }
        }
    }
    arrivals.sort_by(|a, b| {
        (a.k, a.t, a.conn, a.pre, a.spike)
            .partial_cmp(&(b.k, b.t, b.conn, b.pre, b.spike))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut next = 0;
    while next < arrivals.len() {
        let k = arrivals[next].k;
        let (v, g) = (record.readout.values[k], d_readout[k]);
        let mut i = cur[k];
        let mut past_max = readout_steps[k] >= steps;
        while next < arrivals.len() && arrivals[next].k == k {
            let a = arrivals[next];
            next += 1;
            let (before, after) = ((i - v) / op.tau_m, (i + a.w - v) / op.tau_m);
            let term = if past_max || before <= 0.0 {
                past_max = true;
                g * a.w / op.tau_m
            } else if after < 0.0 {
                past_max = true;
                g * after
            } else {
                0.0
            };
            i += a.w;
            if term != 0.0 {
                grads.delays[a.conn].as_mut_slice()[a.idx] += term;
                if !a.from_input {
                    kink_s.push((a.spike, term));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: the test's own random numbers (no dependency, fixed seeds).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Uniform in `[lo, hi)`.
        fn unif(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A random block: spikes in record order (steps non-decreasing, lanes `< lanes` in any order,
    /// several in one lane at one step), with steps 0 and `steps` frequent, `S` of both signs
    /// (and signed zeros), `I - V` below, at and just above `MIN_I_MINUS_V` as well as ordinary.
    fn random_spikes(rng: &mut Rng, steps: usize, lanes: usize) -> Vec<BlockSpike> {
        let count = rng.below(6 * lanes + 2);
        let mut spikes: Vec<BlockSpike> = (0..count)
            .map(|k| {
                let step = match rng.below(6) {
                    0 => 0,
                    1 => steps,
                    _ => rng.below(steps + 1),
                };
                let s = match rng.below(10) {
                    0 => 0.0,
                    1 => -0.0,
                    _ => rng.unif(-2.0, 2.0),
                };
                let imv = match rng.below(12) {
                    0 => MIN_I_MINUS_V,
                    1 => 2.0 * MIN_I_MINUS_V,
                    2 => 0.0,
                    3 => -rng.unif(0.0, 1.0),
                    4 => 0.5 * MIN_I_MINUS_V,
                    _ => rng.unif(0.2, 2.0),
                };
                BlockSpike { step: step as u32, lane: rng.below(lanes) as u32, k: k as u32, s, imv }
            })
            .collect();
        // Several spikes of one lane at one step: repeat some spikes' lane and step.
        for _ in 0..rng.below(6) {
            if let Some(&x) = spikes.get(rng.below(count.max(1))) {
                let s = rng.unif(-2.0, 2.0);
                spikes.push(BlockSpike { s, imv: rng.unif(0.2, 2.0), ..x });
            }
        }
        spikes.sort_by_key(|x| x.step);
        spikes
    }

    /// The AVX fan-out kernel against the scalar one, bit for bit: fan-outs of 0 to 13 synapses
    /// (quads and tails), offsets that wrap around the ring and some that do not (and a few beyond
    /// the ring, which no plan has), adjoints and weights of both signs with signed zeros, and
    /// gradients that start nonzero.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fan_out_adjoint_avx_matches_scalar() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this CPU: fan_out_adjoint_avx is not used, nothing to compare");
            return;
        }
        let mut rng = Rng(0x5eed_0119);
        let value = |rng: &mut Rng| match rng.below(8) {
            0 => 0.0,
            1 => -0.0,
            _ => rng.unif(-2.0, 2.0),
        };
        let mut compared = 0;
        for case in 0..600 {
            let (slots, n_state) = (1 + rng.below(9), 1 + rng.below(12));
            let rn = slots * n_state;
            let hist: Vec<[f64; 2]> = (0..rn).map(|_| [value(&mut rng), value(&mut rng)]).collect();
            let len = case % 14;
            // Offsets of a plan are below `rn`; a few beyond it take the remainder path.
            let offs: Vec<u32> = (0..len)
                .map(|_| {
                    if case % 5 == 4 && rng.below(4) == 0 {
                        rng.below(3 * rn) as u32
                    } else {
                        (rng.below(slots) * n_state + rng.below(n_state)) as u32
                    }
                })
                .collect();
            let w: Vec<f64> = (0..len).map(|_| value(&mut rng)).collect();
            let g0: Vec<f64> = (0..len).map(|_| value(&mut rng)).collect();
            let d0: Vec<f64> = (0..len).map(|_| value(&mut rng)).collect();
            let base_off = rng.below(slots) * n_state;
            let tau_s = rng.unif(1.0, 10.0);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for jump in [false, true] {
                let (mut gw_s, mut gd_s, mut gw_a, mut gd_a) = (g0.clone(), d0.clone(), g0.clone(), d0.clone());
                let (s_s, s_a) = if jump {
                    let s_s = fan_out_adjoint::<true>(&hist, base_off, tau_s, &w, &offs, &mut gw_s, &mut gd_s);
                    // SAFETY: AVX checked above.
                    let s_a =
                        unsafe { fan_out_adjoint_avx::<true>(&hist, base_off, tau_s, &w, &offs, &mut gw_a, &mut gd_a) };
                    (s_s, s_a)
                } else {
                    let s_s = fan_out_adjoint::<false>(&hist, base_off, tau_s, &w, &offs, &mut gw_s, &mut gd_s);
                    // SAFETY: AVX checked above.
                    let s_a = unsafe {
                        fan_out_adjoint_avx::<false>(&hist, base_off, tau_s, &w, &offs, &mut gw_a, &mut gd_a)
                    };
                    (s_s, s_a)
                };
                assert_eq!(s_a.to_bits(), s_s.to_bits(), "case {case}: jump sum");
                assert_eq!(bits(&gw_a), bits(&gw_s), "case {case}: weight gradients");
                assert_eq!(bits(&gd_a), bits(&gd_s), "case {case}: delay gradients");
                compared += len;
            }
        }
        assert!(compared > 5000, "{compared} synapses compared");
    }

    /// `hidden_block_avx` writes the same `[lambda_V, lambda_I]`, bit for bit, as the scalar step
    /// loop `block_steps` of a hidden block (no readout forcing, no `FirstSpike` term) over random
    /// blocks: full and partial, with and without jump bias.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn hidden_block_avx_matches_scalar() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this CPU: hidden_block_avx is not used, nothing to compare");
            return;
        }
        let mut rng = Rng(0x5eed_0019);
        let (mut compared, mut jumped, mut largest) = (0usize, 0usize, 0.0f64);
        for case in 0..400 {
            let steps = match case % 4 {
                0 => rng.below(3),
                _ => rng.below(300),
            };
            let lanes = if case % 3 == 0 { LANES } else { 1 + rng.below(LANES) };
            let own = random_spikes(&mut rng, steps, lanes);
            let tau_m = rng.unif(5.0, 40.0);
            let tau_s = rng.unif(2.0, 10.0);
            let a = (-1.0 / tau_m).exp();
            let b = (-1.0 / tau_s).exp();
            let q = rng.unif(0.1, 3.0) * tau_m / tau_s * (a - b);
            let theta = rng.unif(0.5, 1.5);
            let bias: Option<Vec<f64>> = (case % 2 == 1).then(|| (0..lanes).map(|_| rng.unif(-0.5, 0.5)).collect());
            let line_len = steps + 1 + rng.below(4);
            // Same sentinel in both: writes outside `0..=steps` would show too.
            let fresh = || vec![[f64::from_bits(0x7ff8_dead_beef_0001), -7.25]; LANES * line_len];
            let (mut avx, mut scalar) = (fresh(), fresh());
            let ptrs = |v: &mut Vec<[f64; 2]>| -> [*mut [f64; 2]; LANES] {
                std::array::from_fn(|l| v[l * line_len..].as_mut_ptr())
            };
            let (pa, ps) = (ptrs(&mut avx), ptrs(&mut scalar));
            // SAFETY: AVX checked above; `lines[l] + n` for `n <= steps < line_len` are in the
            // vectors, which nothing else touches meanwhile.
            unsafe {
                hidden_block_avx(&pa, steps, &own, &mut Vec::new(), (a, b, q, theta), bias.as_deref());
                block_steps(&ps, steps, &own, (a, b, q, theta), bias.as_deref(), |_, _| {}, |_, _| 0.0);
            }
            for (x, (u, v)) in avx.iter().zip(&scalar).enumerate() {
                let (l, n) = (x / line_len, x % line_len);
                for c in 0..2 {
                    assert_eq!(
                        u[c].to_bits(),
                        v[c].to_bits(),
                        "case {case}: lane {l} step {n} {}: AVX {} scalar {} (steps {steps}, lanes {lanes}, {} spikes)",
                        ["lambda_V", "lambda_I"][c],
                        u[c],
                        v[c],
                        own.len()
                    );
                }
                compared += 1;
                if n <= steps {
                    jumped += (v[0] != 0.0) as usize;
                    largest = largest.max(v[0].abs()).max(v[1].abs());
                }
            }
        }
        // The random blocks did exercise the jumps (not only zeros compared).
        assert!(compared > 100_000 && jumped > compared / 4, "compared {compared}, nonzero {jumped}");
        // ... and stayed finite (a comparison of infinities or NaNs would say little).
        assert!(largest.is_finite(), "largest |lambda| {largest}");
        eprintln!("compared {compared} pairs, lambda_V nonzero in {jumped}, largest |lambda| {largest:e}");
    }
}
