//! The exact EventProp backward pass with delays, for [`snn_core::ExactEngine`] (spec §2).
//!
//! # Units and equations
//!
//! This module works with the plain sensitivities `p_V(t) = dL/dV(t)`, `p_I(t) = dL/dI(t)`
//! (Wunderlich & Pehle's adjoints are `lambda_V = -p_V / tau_m`, `lambda_I = -p_I / tau_s`).
//! Backward from `p(T) = 0`, between events:
//!
//! ```text
//! dp_V/dt =  p_V / tau_m - f(t)          f = dl_V/dV (running loss)
//! dp_I/dt = -p_V / tau_m + p_I / tau_s
//! ```
//!
//! whose free solution over a backward step `s` is
//! `p_V <- p_V e^{-s/tau_m}`, `p_I <- p_I e^{-s/tau_s} + p_V tau_s/(tau_m - tau_s) (e^{-s/tau_m} - e^{-s/tau_s})`.
//! For the exp-integral readout, `f = g_k (1/T) e^{-t/T}` on output `k` for the whole run, so
//! `p = h + P(t)` with the particular solution `P_V = G/r_m e^{-t/T}`,
//! `P_I = G/(r_m tau_m r_s) e^{-t/T}` (`G = g_k/T`, `r_m = 1/tau_m + 1/T`, `r_s = 1/tau_s + 1/T`)
//! and `h` a free solution with `h(T) = -P(T)`. Each neuron's `h` is propagated lazily, only
//! when the sweep touches it.
//!
//! # Events of the backward sweep (decreasing time; at equal times, reads before jumps)
//!
//! - **read** at every arrival `t_a = t_k + d_ji < T` of every input or LIF spike: with the
//!   post-synaptic adjoint at `t_a^+`,
//!   `dL/dw_ji += p_I,j`, and `q = w_ji (p_I,j/tau_s - p_V,j/tau_m)` is added to `dL/dd_ji`
//!   and, for a LIF spike, to the spike's pending sum `S_k`. Reads are enumerated lazily per
//!   (spike, connection) in decreasing delay order (a heap of cursors; memory `O(spikes)`).
//! - **jump** at each LIF spike `t_k` of neuron `n` (`I` read from the record as `(I - V) + theta`):
//!   `p_V^- = (I p_V^+ - tau_m (S_k + dl_p/dt_k)) / (I - theta)`; `p_I` is continuous.
//!   In Wunderlich & Pehle's scaling this is the spec's `lambda_V^- = (I lambda_V^+ + S)/(I - theta)`
//!   with `S = sum w (lambda_V - lambda_I)`; the loss term `dl_p/dt_k` is the `FirstSpike`
//!   readout's `d_readout` at the first spike of an output. An optional jump bias `b_n`
//!   ([`Adjoint::backward_into_with`], the spike-count regulariser) adds `-tau_m b_n` to `p_V^-`
//!   (`+b_n` to `lambda_V^-`).
//! - **readout jumps**: `MaxVoltage` adds `g_k` to `p_V,k` at the time of the maximum;
//!   `VoltageAt` adds `g_{k,c}` at each reading time. When the maximum sits on a kink
//!   (see [`snn_core::MaxKink`]) the arrival time itself moves the maximum:
//!   `g_k * slope_before` is added to that synapse's `dL/dd` and to the causing spike's `S`.
//!
//! The gradients this yields are the spec's `dL/dw = -tau_s sum lambda_I`,
//! `dL/dd = -w sum (lambda_I - lambda_V)` — checked by central finite differences in
//! `tests/gradcheck_exact.rs`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use snn_core::exact::arrival_time;
use snn_core::{
    ConnectionId, DelayOrder, ExactEngine, ForwardRecord, Network, NeuronKind, PopulationId, ReadoutKind, Simulator,
    SpikeTrain,
};

use crate::error::{EventPropError, Result};
use crate::gradients::{Adjoint, Gradients, check_jump_bias};

/// A read cursor: the arrivals of one (spike, connection) pair, visited by decreasing delay.
#[derive(Debug, Clone, Copy)]
struct Read {
    t: f64,
    seq: u64,
    t_spike: f64,
    conn: u32,
    pre: u32,
    /// Index in the input train (input population) or in the spike record.
    spike: u32,
    /// Position in the increasing delay order of the current target.
    pos: u32,
}

impl PartialEq for Read {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Read {}
impl PartialOrd for Read {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Read {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap on time; among equal times the earlier pushed first.
        self.t.total_cmp(&other.t).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Working buffers of the exact backward pass (reused across samples).
#[derive(Debug, Clone, Default)]
pub struct ExactAdjointScratch {
    /// Free part of `p_V` per global neuron.
    hv: Vec<f64>,
    /// Free part of `p_I` per global neuron.
    hi: Vec<f64>,
    /// Time the free parts refer to.
    t: Vec<f64>,
    /// Forcing amplitude `G = g_k / T` per global neuron (non-zero on exp-integral outputs).
    forcing: Vec<f64>,
    /// Pending jump sum `S_k` per recorded spike.
    pending: Vec<f64>,
    /// Readout jumps `(time, output, g)`, sorted by decreasing time.
    jumps: Vec<(f64, u32, f64)>,
    heap: BinaryHeap<Read>,
    order: DelayOrder,
}

/// Time constants of a neuron as `(tau_m, tau_s)`.
#[inline]
fn taus(kind: &NeuronKind) -> Option<(f64, f64)> {
    kind.leak().map(|l| (l.tau_m(), l.tau_s()))
}

/// Particular solution `(P_V, P_I)` at `t` of the exp-integral forcing `G e^{-t/T}`.
#[inline]
fn particular(g: f64, tm: f64, ts: f64, t: f64, t_end: f64) -> (f64, f64) {
    if g == 0.0 {
        return (0.0, 0.0);
    }
    let rm = 1.0 / tm + 1.0 / t_end;
    let rs = 1.0 / ts + 1.0 / t_end;
    let e = (-t / t_end).exp();
    let pv = g / rm * e;
    (pv, pv / (tm * rs))
}

impl ExactAdjointScratch {
    /// Propagates the free part of neuron `n` back to `t` and returns `(p_V, p_I)` there.
    #[inline]
    fn at(&mut self, n: usize, tm: f64, ts: f64, t: f64, t_end: f64) -> (f64, f64) {
        let s = self.t[n] - t;
        if s != 0.0 {
            let em = (-s / tm).exp();
            let es = (-s / ts).exp();
            let hv = self.hv[n];
            self.hi[n] = self.hi[n] * es + hv * ts / (tm - ts) * (em - es);
            self.hv[n] = hv * em;
            self.t[n] = t;
        }
        let (pv, pi) = particular(self.forcing[n], tm, ts, t, t_end);
        (self.hv[n] + pv, self.hi[n] + pi)
    }
}

fn mismatch(expected: &'static str, got: String) -> EventPropError {
    EventPropError::ReadoutMismatch { loss: "exact adjoint", expected, got }
}

impl Adjoint for ExactEngine {
    type AdjointScratch = ExactAdjointScratch;

    fn adjoint_scratch(&self, net: &Network) -> ExactAdjointScratch {
        let mut s = ExactAdjointScratch::default();
        s.order.update(net);
        s
    }

    fn backward_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        sc: &mut ExactAdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()> {
        self.backward_into_with(net, input, record, d_readout, None, sc, grads)
    }

    fn backward_into_with(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        jump_bias: Option<&[f64]>,
        sc: &mut ExactAdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()> {
        check_jump_bias(net, jump_bias)?;
        let cfg = self.config();
        let t_end = cfg.t_end;
        let out_id = net.output();
        let n_out = net.population(out_id).size();
        let o0 = net.offset(out_id);
        let spikes = &record.spikes;
        let readout = &record.readout;
        let n_values = match &cfg.readout {
            ReadoutKind::VoltageAt(ts) => n_out * ts.len(),
            _ => n_out,
        };
        if d_readout.len() != n_values || readout.values.len() != n_values {
            return Err(mismatch(
                "d_readout and readout values with one entry per readout value",
                format!("{} derivatives, {} values, {} expected", d_readout.len(), readout.values.len(), n_values),
            ));
        }
        if spikes.times.len() != spikes.neurons.len() || spikes.times.len() != spikes.i_minus_v.len() {
            return Err(mismatch("a consistent spike record", "arrays of different lengths".into()));
        }
        grads.check_shape(net)?;
        let n = net.num_neurons();
        if spikes.neurons.iter().any(|&g| g as usize >= n) || input.neurons.len() != input.times.len() {
            return Err(mismatch("a record of this network and input", "neuron index out of range".into()));
        }

        // Reset the state.
        sc.order.update(net);
        for buf in [&mut sc.hv, &mut sc.hi, &mut sc.forcing] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        sc.t.clear();
        sc.t.resize(n, t_end);
        sc.pending.clear();
        sc.pending.resize(spikes.len(), 0.0);
        sc.jumps.clear();
        sc.heap.clear();

        let pops = net.populations();
        let conns = net.connections();
        let Some((otm, ots)) = taus(pops[out_id.0].kind()) else {
            return Err(mismatch("a non-input output population", "input".into()));
        };

        // Readout terms.
        match &cfg.readout {
            ReadoutKind::ExpIntegral => {
                for (k, &g) in d_readout.iter().enumerate() {
                    let gk = g / t_end;
                    sc.forcing[o0 + k] = gk;
                    let (pv, pi) = particular(gk, otm, ots, t_end, t_end);
                    sc.hv[o0 + k] = -pv;
                    sc.hi[o0 + k] = -pi;
                }
            }
            ReadoutKind::MaxVoltage => {
                if readout.times.len() != n_out || readout.kinks.len() != n_out {
                    return Err(mismatch("max times and kinks per output", format!("{}", readout.times.len())));
                }
                for (k, &g) in d_readout.iter().enumerate() {
                    sc.jumps.push((readout.times[k], k as u32, g));
                    if let Some(kink) = readout.kinks[k] {
                        let ConnectionId(c) = kink.connection;
                        let term = g * kink.slope_before;
                        let Some(idx) = conns.get(c).and_then(|conn| conn.synapse_index(k, kink.pre as usize)) else {
                            return Err(mismatch("a readout kink on an existing synapse", format!("connection {c}")));
                        };
                        grads.delays[c].as_mut_slice()[idx] += term;
                        if conns[c].pre() != net.input() {
                            sc.pending[kink.spike as usize] += term;
                        }
                    }
                }
            }
            ReadoutKind::VoltageAt(ts) => {
                for k in 0..n_out {
                    for (c, &t) in ts.iter().enumerate() {
                        sc.jumps.push((t, k as u32, d_readout[k * ts.len() + c]));
                    }
                }
            }
            ReadoutKind::FirstSpike => {}
        }
        sc.jumps.sort_by(|a, b| b.0.total_cmp(&a.0));

        // Read cursors of every spike that has arrivals before T.
        let mut seq = 0u64;
        let mut push_cursors = |heap: &mut BinaryHeap<Read>, pop: PopulationId, pre: usize, spike: usize, t: f64| {
            for &ConnectionId(c) in net.outgoing(pop) {
                let conn = &conns[c];
                let fan = conn.fan_out(pre);
                let col = sc.order.column(c, fan.indices());
                let d = conn.delay_values();
                // Last target (largest delay) whose arrival is before T.
                let mut pos = col.len();
                while pos > 0 && arrival_time(t, d[fan.index(col[pos - 1] as usize)]) >= t_end {
                    pos -= 1;
                }
                if pos > 0 {
                    seq += 1;
                    let ta = arrival_time(t, d[fan.index(col[pos - 1] as usize)]);
                    heap.push(Read {
                        t: ta,
                        seq,
                        t_spike: t,
                        conn: c as u32,
                        pre: pre as u32,
                        spike: spike as u32,
                        pos: (pos - 1) as u32,
                    });
                }
            }
        };
        for (s, (t, pre)) in input.iter().enumerate() {
            if t < t_end {
                push_cursors(&mut sc.heap, net.input(), pre as usize, s, t);
            }
        }
        for (s, (&t, &g)) in spikes.times.iter().zip(&spikes.neurons).enumerate() {
            let (pid, local) = net.locate(g as usize);
            push_cursors(&mut sc.heap, pid, local, s, t);
        }

        let first_spike = matches!(cfg.readout, ReadoutKind::FirstSpike);
        let mut next_spike = spikes.len();
        let mut next_jump = 0usize;
        loop {
            let t_read = sc.heap.peek().map_or(f64::NEG_INFINITY, |r| r.t);
            let t_spike = if next_spike > 0 { spikes.times[next_spike - 1] } else { f64::NEG_INFINITY };
            let t_jump = sc.jumps.get(next_jump).map_or(f64::NEG_INFINITY, |j| j.0);
            if t_read == f64::NEG_INFINITY && t_spike == f64::NEG_INFINITY && t_jump == f64::NEG_INFINITY {
                break;
            }
            if t_read >= t_spike && t_read >= t_jump {
                // Read at an arrival.
                let Some(r) = sc.heap.pop() else { break };
                let c = r.conn as usize;
                let conn = &conns[c];
                let pre = r.pre as usize;
                let fan = conn.fan_out(pre);
                let col = sc.order.column(c, fan.indices());
                let pos = r.pos as usize;
                let k = col[pos] as usize;
                let (row, idx) = (fan.target(k), fan.index(k));
                if pos > 0 {
                    let next = fan.index(col[pos - 1] as usize);
                    seq += 1;
                    sc.heap.push(Read {
                        t: arrival_time(r.t_spike, conn.delay_values()[next]),
                        seq,
                        pos: r.pos - 1,
                        ..r
                    });
                }
                let post = conn.post();
                let Some((tm, ts)) = taus(pops[post.0].kind()) else { continue };
                let j = net.offset(post) + row;
                let (pv, pi) = sc.at(j, tm, ts, r.t, t_end);
                let w = conn.weight_values()[idx];
                let q = w * (pi / ts - pv / tm);
                grads.weights[c].as_mut_slice()[idx] += pi;
                grads.delays[c].as_mut_slice()[idx] += q;
                if conn.pre() != net.input() {
                    sc.pending[r.spike as usize] += q;
                }
            } else if t_jump >= t_spike {
                // Readout jump on an output's p_V.
                let (t, k, g) = sc.jumps[next_jump];
                next_jump += 1;
                let j = o0 + k as usize;
                sc.at(j, otm, ots, t, t_end);
                sc.hv[j] += g;
            } else {
                // Jump at a LIF spike.
                next_spike -= 1;
                let s = next_spike;
                let g = spikes.neurons[s] as usize;
                let (pid, local) = net.locate(g);
                let NeuronKind::Lif(p) = pops[pid.0].kind() else {
                    return Err(mismatch("spikes of LIF neurons only", format!("spike of neuron {g}")));
                };
                let (tm, ts, theta) = (p.tau_m(), p.tau_s(), p.theta());
                let t = spikes.times[s];
                let (pv_plus, _) = sc.at(g, tm, ts, t, t_end);
                let i = spikes.i_minus_v[s] + theta;
                let mut source = sc.pending[s];
                if first_spike && pid == out_id && readout.values.get(local) == Some(&t) {
                    source += d_readout[local];
                }
                let mut pv_minus = (i * pv_plus - tm * source) / (i - theta);
                if let Some(b) = jump_bias {
                    // lambda_V^- += b  <=>  p_V^- -= tau_m b  (p_V = -tau_m lambda_V).
                    pv_minus -= tm * b[g];
                }
                sc.hv[g] += pv_minus - pv_plus;
            }
        }
        Ok(())
    }
}
