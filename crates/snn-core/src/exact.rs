//! The exact, continuous-time, event-driven engine (spec §1, "Exact engine").
//!
//! # How it works
//!
//! Every non-input neuron keeps its state `(V, I)` and the time `t_n` that state refers to;
//! between events the state is advanced lazily with the closed form [`Leak::propagate`].
//! Three things happen at discrete times, taken from one priority queue ordered by
//! `(time, seq)` with [`f64::total_cmp`] (`seq` is a push counter, so events at equal times
//! are handled in the order they were scheduled — deterministic), merged with the sorted
//! input train:
//!
//! - **input spike** of input neuron `i` at `t` (inputs are taken before queued events at equal
//!   times): starts one *delivery cursor* per outgoing connection;
//! - **delivery**: a cursor walks the targets of one (spike, connection) pair **in delay order**
//!   (the per-column delay sort of [`DelayOrder`]). When it pops at `t_k + d_ji`, `w_ji` is
//!   added to `I_j`, and the cursor is pushed back keyed by its next target's arrival. So the
//!   queue holds one entry per (spike in flight, connection) — not one per synapse — and
//!   fan-out is enumerated lazily. A sparse connection's fan-out is its stored synapses only
//!   (the CSC column run), so a spike costs in proportion to its existing synapses; a
//!   presynaptic neuron without synapses starts no cursor;
//! - **threshold crossing** of a LIF neuron, predicted after every change of its state and
//!   invalidated by a per-neuron version counter when another arrival comes first. Prediction
//!   is two-stage: an arrival queues only a *candidate* at a closed-form lower bound of the
//!   crossing time ([`crossing_lower_bound`], no transcendental function); the root finder
//!   ([`next_crossing`]) runs when a still-valid candidate is popped, and queues the exact
//!   crossing. Predictions spoiled by a later arrival thus cost no root finding.
//!
//! # Crossings are unique in their bracket
//!
//! Without input, `V(s) = A e^{-s/tau_m} + B e^{-s/tau_s}` with `A = V0 - c I0`, `B = c I0`.
//! `V'(s)` is a sum of two exponentials with different rates, so it has at most one zero
//! `s*` on `s > 0`, and `V -> 0` as `s -> inf`. Hence, starting below `theta > 0`:
//! - if `V'(0) <= 0`, `V` first falls; a later extremum can only be a minimum after which
//!   `V` rises monotonically towards 0, so `V < 0 < theta` afterwards: no crossing;
//! - if `V'(0) > 0`, `V` is strictly increasing on `[0, s*]` (`s* = inf` if `V'` never
//!   vanishes) and decreasing after it, so a crossing exists before the horizon `H` iff
//!   `V(min(s*, H)) >= theta`, and it is the unique root of the strictly increasing
//!   function `V - theta` on `[0, min(s*, H)]`. It is found by Newton's method safeguarded
//!   by bisection on that bracket, until `|V - theta|` is at rounding level (4 ulp of `theta`)
//!   or the step is below `1e-15 max(1, s)` ms (tested against a 200-step bisection to 1e-12 ms).
//!
//! # Conventions
//! - Events at or after `t_end` are ignored: an input spike, an arrival or a crossing at
//!   `t >= T` does nothing (a spike at exactly `T` is not recorded). The backward pass of
//!   `snn-eventprop` uses the same predicate on the same floating-point arrival times
//!   `t_k + d` (see [`arrival_time`]).
//! - A LIF spike resets `V` to 0; `I` is unchanged; the record stores `I - theta` at the
//!   crossing as "`I - V` just before the spike".
//! - A zero-delay synapse delivers at the spike time itself, after the reset (so a zero-delay
//!   self-loop acts on the reset neuron).
//! - Voltage readouts (`ExpIntegral`, `MaxVoltage`, `VoltageAt`) need LI outputs;
//!   `FirstSpike` needs LIF outputs; otherwise [`CoreError::InvalidNetwork`].
//! - More than `max_spikes` LIF spikes: [`CoreError::SpikeCapExceeded`].
//!
//! ```
//! use nalgebra::DMatrix;
//! use snn_core::{ExactEngine, LiParams, LifParams, NetworkBuilder, ReadoutKind, SimConfig, Simulator, SpikeTrains};
//!
//! let mut b = NetworkBuilder::new();
//! let inp = b.input("in", 1);
//! let hid = b.lif("hidden", 1, LifParams::default());
//! let out = b.li("out", 1, LiParams::default());
//! b.connect(inp, hid, DMatrix::from_element(1, 1, 8.0), DMatrix::from_element(1, 1, 1.0));
//! b.connect(hid, out, DMatrix::from_element(1, 1, 1.0), DMatrix::from_element(1, 1, 2.0));
//! let net = b.build().unwrap();
//! let engine = ExactEngine::new(SimConfig::new(30.0, ReadoutKind::MaxVoltage)).unwrap();
//! let mut input = SpikeTrains::new(1);
//! input.push_sample(&[0.0], &[0]).unwrap();
//! let rec = engine.run(&net, input.sample(0)).unwrap();
//! assert_eq!(rec.spikes.len(), 1);
//! assert!(rec.spikes.times[0] > 1.0 && rec.readout.values[0] > 0.0);
//! ```

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::engine::{SimConfig, Simulator};
use crate::error::{CoreError, Result};
use crate::network::{ConnectionId, Network, NeuronKind};
use crate::neuron::Leak;
use crate::record::{ForwardRecord, MaxKink, ReadoutKind};
use crate::spikes::{SpikeTrain, validate};

/// Arrival time of a spike emitted at `t_spike` over a synapse of delay `delay`.
///
/// Both passes must compute it identically (same floating-point expression) so that they
/// agree on which arrivals fall before `t_end`.
#[inline]
pub fn arrival_time(t_spike: f64, delay: f64) -> f64 {
    t_spike + delay
}

/// Per (connection, presynaptic neuron) order of the synapses of the fan-out by increasing
/// delay (ties by position in the fan-out, i.e. by row). Works for dense and sparse connections
/// alike: entries are positions within the fan-out ([`crate::network::FanOut`]), so a target is
/// `fan.target(k)` and its values are at `fan.index(k)`.
///
/// Used by the exact forward pass to deliver a spike's fan-out lazily in time order, and by
/// the exact backward pass to visit the delayed reads in decreasing time. [`DelayOrder::update`]
/// re-sorts only the columns whose delays changed order, so it costs `O(synapses)` per sample
/// when delays are unchanged.
#[derive(Debug, Clone, Default)]
pub struct DelayOrder {
    /// `perm[c][fan.start + r]` = position in the fan-out `fan` of presynaptic neuron `i` of
    /// connection `c` of its `r`-th smallest delay (for dense connections: the row).
    perm: Vec<Vec<u32>>,
}

impl DelayOrder {
    /// Brings the orders up to date with the delays of `net`.
    pub fn update(&mut self, net: &Network) {
        let conns = net.connections();
        self.perm.resize_with(conns.len(), Vec::new);
        for (c, perm) in conns.iter().zip(self.perm.iter_mut()) {
            let d = c.delay_values();
            let n_pre = c.shape().1;
            if perm.len() != d.len() {
                perm.clear();
                perm.resize(d.len(), 0);
                for i in 0..n_pre {
                    let r = c.fan_out(i).indices();
                    sort_column(&mut perm[r.clone()], &d[r]);
                }
                continue;
            }
            for i in 0..n_pre {
                let r = c.fan_out(i).indices();
                let (p, col) = (&mut perm[r.clone()], &d[r]);
                // Strictly increasing in (delay, position) and in range: a valid order (also when
                // the scratch was last used with another network of the same synapse count).
                let n = col.len();
                let sorted = p.iter().all(|&a| (a as usize) < n)
                    && p.windows(2).all(|w| {
                        let (a, b) = (w[0] as usize, w[1] as usize);
                        match col[a].total_cmp(&col[b]) {
                            Ordering::Less => true,
                            Ordering::Equal => a < b,
                            Ordering::Greater => false,
                        }
                    });
                if !sorted {
                    sort_column(p, col);
                }
            }
        }
    }

    /// Positions within the fan-out whose value indices are `fan` (see
    /// [`crate::network::FanOut::indices`]) of connection `conn`, by increasing delay.
    #[inline]
    pub fn column(&self, conn: usize, fan: std::ops::Range<usize>) -> &[u32] {
        &self.perm[conn][fan]
    }
}

/// Fills `p` with `0..len` sorted by `(col[k], k)`.
fn sort_column(p: &mut [u32], col: &[f64]) {
    p.iter_mut().enumerate().for_each(|(k, x)| *x = k as u32);
    p.sort_unstable_by(|&a, &b| col[a as usize].total_cmp(&col[b as usize]).then(a.cmp(&b)));
}

/// Marker of a threshold-crossing event in [`Event::conn`].
const CROSSING: u32 = u32::MAX;
/// Marker of a crossing *candidate* (a lower bound of a possible crossing) in [`Event::conn`].
const CANDIDATE: u32 = u32::MAX - 1;

/// A queued event. Ordered so that `BinaryHeap` pops the smallest `(t, seq)` first.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// Time of the event (arrival or crossing).
    t: f64,
    /// Push counter: deterministic tie-breaking.
    seq: u64,
    /// Delivery: emission time of the spike. Crossing: unused.
    t_spike: f64,
    /// Connection index, or [`CROSSING`] / [`CANDIDATE`].
    conn: u32,
    /// Delivery: presynaptic local index. Crossing: global neuron.
    pre: u32,
    /// Delivery: index of the spike (input train or spike record). Crossing: version.
    spike: u32,
    /// Delivery: position in the delay order of the current target (within the fan-out).
    pos: u32,
}

impl Event {
    /// A crossing candidate of global neuron `g` at `t + s`, valid while its `version` is current.
    fn candidate(t: f64, s: f64, seq: u64, g: usize, version: u32) -> Self {
        Event { t: t + s, seq, t_spike: t, conn: CANDIDATE, pre: g as u32, spike: version, pos: 0 }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        other.t.total_cmp(&self.t).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Working buffers of [`ExactEngine`] (one per thread; reused across samples).
#[derive(Debug, Clone, Default)]
pub struct ExactScratch {
    v: Vec<f64>,
    i: Vec<f64>,
    t: Vec<f64>,
    version: Vec<u32>,
    heap: BinaryHeap<Event>,
    order: DelayOrder,
    /// Per output: ExpIntegral accumulator / MaxVoltage current max.
    acc: Vec<f64>,
    /// Per output: VoltageAt cursor.
    cursor: Vec<usize>,
}

/// The exact event-driven engine; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactEngine {
    config: SimConfig,
}

impl ExactEngine {
    /// An engine with checked settings.
    ///
    /// ```
    /// use snn_core::{ExactEngine, ReadoutKind, SimConfig};
    /// assert!(ExactEngine::new(SimConfig::new(50.0, ReadoutKind::FirstSpike)).is_ok());
    /// assert!(ExactEngine::new(SimConfig::new(-1.0, ReadoutKind::FirstSpike)).is_err());
    /// ```
    pub fn new(config: SimConfig) -> Result<Self> {
        config.check()?;
        Ok(Self { config })
    }
}

/// Time `s > 0` of the unique zero of `V'` for the free trajectory from `(v0, i0)`, or
/// `f64::INFINITY` if `V'` does not vanish on `s > 0`. Meaningful when `V'(0) > 0`.
#[inline]
pub fn peak_offset(leak: &Leak, v0: f64, i0: f64) -> f64 {
    let (tm, ts) = (leak.tau_m(), leak.tau_s());
    let c = leak.coupling();
    let a = v0 - c * i0;
    let b = c * i0;
    let arg = -(b * tm) / (a * ts);
    if arg > 0.0 && arg.is_finite() {
        let s = arg.ln() / (1.0 / ts - 1.0 / tm);
        if s > 0.0 { s } else { f64::INFINITY }
    } else {
        f64::INFINITY
    }
}

/// `dV/dt` of the free trajectory.
#[inline]
fn slope(leak: &Leak, v: f64, i: f64) -> f64 {
    (i - v) / leak.tau_m()
}

/// Offset `s` in `[0, horizon)` of the first threshold crossing of the free trajectory from
/// `(v0, i0)` with `v0 < theta`, if any (see the module documentation for uniqueness).
pub fn next_crossing(leak: &Leak, theta: f64, v0: f64, i0: f64, horizon: f64) -> Option<f64> {
    if v0 >= theta {
        return Some(0.0);
    }
    if slope(leak, v0, i0) <= 0.0 || i0 <= theta || horizon <= 0.0 {
        return None;
    }
    let s_hi = peak_offset(leak, v0, i0).min(horizon);
    let (v_hi, _) = leak.propagate(v0, i0, s_hi);
    if v_hi < theta {
        return None;
    }
    // V - theta is strictly increasing on [0, s_hi], negative at 0, >= 0 at s_hi.
    let (mut lo, mut hi) = (0.0_f64, s_hi);
    // Start from the first Newton step from 0: V is concave on the rising branch, so Newton
    // iterates from the left stay left of the root and converge monotonically.
    let mut s = (theta - v0) / slope(leak, v0, i0);
    if !(s > lo && s < hi) {
        s = 0.5 * (lo + hi);
    }
    for _ in 0..200 {
        let (v, i) = leak.propagate(v0, i0, s);
        let f = v - theta;
        if f < 0.0 {
            lo = s;
        } else {
            hi = s;
        }
        // Converged to rounding level of V (|f| of a few ulp of theta).
        if f.abs() <= 4.0 * f64::EPSILON * theta {
            return Some(s);
        }
        let df = slope(leak, v, i);
        let mut next = s - f / df;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - s).abs() <= 1e-15 * s.max(1.0) || hi - lo <= 1e-15 * hi.max(1.0) {
            return Some(if f < 0.0 { next } else { s }.min(hi));
        }
        s = next;
    }
    Some(hi)
}

/// A cheap lower bound `s_lo < horizon` of the offset of the next threshold crossing from
/// `(v0, i0)`, or `None` when there is certainly no crossing before `horizon`.
///
/// No crossing unless `I0 > theta` and `V'(0) > 0`: `I` decays (for `I0 > 0`) and `V` can only
/// rise while `V < I`, so `V <= max(V0, I0)`. On the rising branch `V' = (I - V)/tau_m` decreases
/// (`I` falls, `V` rises), so `V` is concave there and `V(s) <= V0 + V'(0) s`: the crossing is
/// at or after `(theta - V0)/V'(0)`. The engine queues a candidate at this bound and runs the
/// root finder only when the candidate is reached without an intervening arrival.
#[inline]
pub fn crossing_lower_bound(leak: &Leak, theta: f64, v0: f64, i0: f64, horizon: f64) -> Option<f64> {
    if v0 >= theta {
        return Some(0.0);
    }
    let sl = slope(leak, v0, i0);
    if sl <= 0.0 || i0 <= theta {
        return None;
    }
    let s = (theta - v0) / sl;
    (s < horizon).then_some(s)
}

/// Integral `∫_0^dt e^{-(t0+s)/T} V(s) ds` of the free trajectory from `(v0, i0)` at `t0`.
#[inline]
pub fn exp_weighted_integral(leak: &Leak, v0: f64, i0: f64, t0: f64, dt: f64, t_end: f64) -> f64 {
    let (tm, ts) = (leak.tau_m(), leak.tau_s());
    let c = leak.coupling();
    let a = v0 - c * i0;
    let b = c * i0;
    let rm = 1.0 / t_end + 1.0 / tm;
    let rs = 1.0 / t_end + 1.0 / ts;
    (-t0 / t_end).exp() * (a * -(-dt * rm).exp_m1() / rm + b * -(-dt * rs).exp_m1() / rs)
}

/// Readout bookkeeping of one output neuron over the free interval `[t0, t1]` before the
/// state changes at `t1`.
struct Outputs<'a> {
    kind: &'a ReadoutKind,
    t_end: f64,
    leak: Option<Leak>,
}

impl ExactEngine {
    #[allow(clippy::too_many_arguments)]
    fn output_interval(
        o: &Outputs<'_>,
        k: usize,
        v0: f64,
        i0: f64,
        t0: f64,
        t1: f64,
        acc: &mut [f64],
        cursor: &mut [usize],
        out: &mut ForwardRecord,
    ) {
        let Some(leak) = o.leak.as_ref() else { return };
        let dt = t1 - t0;
        match o.kind {
            ReadoutKind::ExpIntegral => {
                acc[k] += exp_weighted_integral(leak, v0, i0, t0, dt, o.t_end);
            }
            ReadoutKind::MaxVoltage => {
                if slope(leak, v0, i0) > 0.0 {
                    let s = peak_offset(leak, v0, i0);
                    if s < dt {
                        let (vp, _) = leak.propagate(v0, i0, s);
                        if vp > acc[k] {
                            acc[k] = vp;
                            out.readout.times[k] = t0 + s;
                            out.readout.kinks[k] = None;
                        }
                    }
                }
            }
            ReadoutKind::VoltageAt(ts) => {
                let n = ts.len();
                while cursor[k] < n && ts[cursor[k]] <= t1 {
                    let (v, _) = leak.propagate(v0, i0, ts[cursor[k]] - t0);
                    out.readout.values[k * n + cursor[k]] = v;
                    cursor[k] += 1;
                }
            }
            ReadoutKind::FirstSpike => {}
        }
    }
}

impl Simulator for ExactEngine {
    type Scratch = ExactScratch;

    fn config(&self) -> &SimConfig {
        &self.config
    }

    fn scratch(&self, net: &Network) -> ExactScratch {
        let n = net.num_neurons();
        let mut s = ExactScratch {
            v: vec![0.0; n],
            i: vec![0.0; n],
            t: vec![0.0; n],
            version: vec![0; n],
            ..Default::default()
        };
        s.order.update(net);
        s
    }

    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        sc: &mut ExactScratch,
        out: &mut ForwardRecord,
    ) -> Result<()> {
        let t_end = self.config.t_end;
        let n_in = net.population(net.input()).size();
        if input.times.len() != input.neurons.len() {
            return Err(CoreError::InvalidOffsets("`times` and `neurons` differ in length"));
        }
        validate(n_in, 0, input.times, input.neurons)?;
        let out_pop = net.population(net.output());
        let out_kind = *out_pop.kind();
        let voltage_readout = !matches!(self.config.readout, ReadoutKind::FirstSpike);
        match (voltage_readout, out_kind) {
            (true, NeuronKind::Li(_)) | (false, NeuronKind::Lif(_)) => {}
            (true, _) => return Err(CoreError::InvalidNetwork("voltage readouts need a LI output population")),
            (false, _) => {
                return Err(CoreError::InvalidNetwork("the FirstSpike readout needs a LIF output population"));
            }
        }

        // Reset buffers.
        let n = net.num_neurons();
        for buf in [&mut sc.v, &mut sc.i, &mut sc.t] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        sc.version.clear();
        sc.version.resize(n, 0);
        sc.heap.clear();
        sc.order.update(net);
        out.clear();

        let n_out = out_pop.size();
        let o0 = net.offset(net.output());
        sc.acc.clear();
        sc.acc.resize(n_out, 0.0);
        sc.cursor.clear();
        sc.cursor.resize(n_out, 0);
        match &self.config.readout {
            ReadoutKind::ExpIntegral => out.readout.values.resize(n_out, 0.0),
            ReadoutKind::MaxVoltage => {
                out.readout.values.resize(n_out, 0.0);
                out.readout.times.resize(n_out, 0.0);
                out.readout.kinks.resize(n_out, None);
            }
            ReadoutKind::FirstSpike => {
                out.readout.values.resize(n_out, f64::INFINITY);
                out.readout.times.resize(n_out, f64::INFINITY);
            }
            ReadoutKind::VoltageAt(ts) => out.readout.values.resize(n_out * ts.len(), 0.0),
        }
        let outputs = Outputs { kind: &self.config.readout, t_end, leak: out_kind.leak().copied() };

        // Per-population lookup for global neurons.
        let pops = net.populations();
        let conns = net.connections();
        let mut seq: u64 = 0;
        let mut next_input = 0usize;
        let input_pop = net.input();

        // Starts the delivery cursors of a spike of population `pop`'s local neuron `pre`.
        macro_rules! emit {
            ($pop:expr, $pre:expr, $spike:expr, $t:expr) => {{
                for &ConnectionId(c) in net.outgoing($pop) {
                    let conn = &conns[c];
                    let fan = conn.fan_out($pre);
                    let Some(&first) = sc.order.column(c, fan.indices()).first() else { continue };
                    let ta = arrival_time($t, conn.delay_values()[fan.index(first as usize)]);
                    if ta < t_end {
                        seq += 1;
                        sc.heap.push(Event {
                            t: ta,
                            seq,
                            t_spike: $t,
                            conn: c as u32,
                            pre: $pre as u32,
                            spike: $spike as u32,
                            pos: 0,
                        });
                    }
                }
            }};
        }

        loop {
            let t_in = input.times.get(next_input).copied().filter(|&t| t < t_end).unwrap_or(f64::INFINITY);
            let t_q = sc.heap.peek().map_or(f64::INFINITY, |e| e.t);
            if t_in == f64::INFINITY && t_q == f64::INFINITY {
                break;
            }
            if t_in <= t_q {
                let pre = input.neurons[next_input] as usize;
                emit!(input_pop, pre, next_input, t_in);
                next_input += 1;
                continue;
            }
            let Some(ev) = sc.heap.pop() else { break };
            if ev.t >= t_end {
                // Everything left is at or after t_end.
                break;
            }
            let t = ev.t;
            if ev.conn == CANDIDATE {
                let g = ev.pre as usize;
                if sc.version[g] != ev.spike {
                    continue; // an arrival came first
                }
                let (pid, _) = net.locate(g);
                let NeuronKind::Lif(p) = pops[pid.0].kind() else { continue };
                let t0 = sc.t[g];
                if let Some(s) = next_crossing(p.leak(), p.theta(), sc.v[g], sc.i[g], t_end - t0) {
                    seq += 1;
                    // The crossing is at or after its lower bound; `max` only guards rounding.
                    sc.heap.push(Event { t: (t0 + s).max(t), seq, conn: CROSSING, ..ev });
                }
                continue;
            }
            if ev.conn == CROSSING {
                let g = ev.pre as usize;
                if sc.version[g] != ev.spike {
                    continue; // stale prediction
                }
                let (pid, local) = net.locate(g);
                let NeuronKind::Lif(p) = pops[pid.0].kind() else { continue };
                let leak = p.leak();
                let (_, i) = leak.propagate(sc.v[g], sc.i[g], t - sc.t[g]);
                if out.spikes.len() >= self.config.max_spikes {
                    return Err(CoreError::SpikeCapExceeded { cap: self.config.max_spikes });
                }
                let spike_idx = out.spikes.len();
                out.spikes.push(t, g as u32, i - p.theta());
                sc.v[g] = 0.0;
                sc.i[g] = i;
                sc.t[g] = t;
                sc.version[g] = sc.version[g].wrapping_add(1);
                if pid == net.output()
                    && matches!(self.config.readout, ReadoutKind::FirstSpike)
                    && out.readout.values[local] == f64::INFINITY
                {
                    out.readout.values[local] = t;
                    out.readout.times[local] = t;
                }
                emit!(pid, local, spike_idx, t);
                if let Some(s) = crossing_lower_bound(leak, p.theta(), 0.0, i, t_end - t) {
                    seq += 1;
                    sc.heap.push(Event::candidate(t, s, seq, g, sc.version[g]));
                }
                continue;
            }

            // Delivery to the current target of the cursor.
            let c = ev.conn as usize;
            let conn = &conns[c];
            let pre = ev.pre as usize;
            let fan = conn.fan_out(pre);
            let col = sc.order.column(c, fan.indices());
            let k = col[ev.pos as usize] as usize;
            let row = fan.target(k);
            let w = conn.weight_values()[fan.index(k)];
            // Re-arm the cursor at its next target.
            if let Some(&next) = col.get(ev.pos as usize + 1) {
                let ta = arrival_time(ev.t_spike, conn.delay_values()[fan.index(next as usize)]);
                if ta < t_end {
                    seq += 1;
                    sc.heap.push(Event { t: ta, seq, pos: ev.pos + 1, ..ev });
                }
            }
            let post = conn.post();
            let g = net.offset(post) + row;
            let Some(leak) = pops[post.0].kind().leak().copied() else { continue };
            let (v0, i0, t0) = (sc.v[g], sc.i[g], sc.t[g]);
            let (v, i) = leak.propagate(v0, i0, t - t0);
            if post == net.output() {
                let k = row;
                Self::output_interval(&outputs, k, v0, i0, t0, t, &mut sc.acc, &mut sc.cursor, out);
                if matches!(self.config.readout, ReadoutKind::MaxVoltage) && v > sc.acc[k] {
                    let before = slope(&leak, v, i);
                    let after = slope(&leak, v, i + w);
                    sc.acc[k] = v;
                    out.readout.times[k] = t;
                    out.readout.kinks[k] = (before > 0.0 && after < 0.0).then_some(MaxKink {
                        slope_before: before,
                        connection: ConnectionId(c),
                        pre: pre as u32,
                        spike: ev.spike,
                    });
                }
            }
            sc.v[g] = v;
            sc.i[g] = i + w;
            sc.t[g] = t;
            if let NeuronKind::Lif(p) = pops[post.0].kind() {
                sc.version[g] = sc.version[g].wrapping_add(1);
                if let Some(s) = crossing_lower_bound(&leak, p.theta(), v, i + w, t_end - t) {
                    seq += 1;
                    sc.heap.push(Event::candidate(t, s, seq, g, sc.version[g]));
                }
            }
        }

        // Close the readout intervals at T.
        if voltage_readout {
            let leak = outputs.leak.expect("checked: LI outputs");
            for k in 0..n_out {
                let g = o0 + k;
                let (v0, i0, t0) = (sc.v[g], sc.i[g], sc.t[g]);
                Self::output_interval(&outputs, k, v0, i0, t0, t_end, &mut sc.acc, &mut sc.cursor, out);
                match &self.config.readout {
                    ReadoutKind::ExpIntegral => out.readout.values[k] = sc.acc[k] / t_end,
                    ReadoutKind::MaxVoltage => {
                        let (v, _) = leak.propagate(v0, i0, t_end - t0);
                        if v > sc.acc[k] {
                            sc.acc[k] = v;
                            out.readout.times[k] = t_end;
                            out.readout.kinks[k] = None;
                        }
                        out.readout.values[k] = sc.acc[k];
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
