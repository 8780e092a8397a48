//! The clocked (time-stepped) forward engine (spec §1, "Clocked engine").
//!
//! # Time grid and conventions
//!
//! With `N = round(t_end / dt)` the grid is `t_n = n dt`, `n = 0 ..= N`. Step `n` does, in order:
//!
//! 1. **propagate** every non-input neuron from `t_{n-1}` to `t_n` with the exact one-step
//!    propagator of the linear dynamics (`alpha = e^{-dt/tau_m}`, `beta = e^{-dt/tau_s}`,
//!    `c = tau_s/(tau_s - tau_m)`):
//!    `V <- alpha V + c (beta - alpha) I`, `I <- beta I` — without spikes this is
//!    [`Leak::propagate`](crate::Leak::propagate) over `dt`, step after step;
//! 2. **spikes** (steps `1 ..= N-1` only; `t_N ≈ t_end` counts as "at the end" and events at or
//!    after `t_end` are ignored): every LIF neuron with `V >= theta` spikes at `t_n`; the record
//!    gets `(t_n, global neuron, I - V)` with `I`, `V` as they are now, then `V := 0`;
//! 3. **emission**: a spike of neuron `i` at step `n` (a LIF spike from 2., or an input spike
//!    binned to step `n`) is written to the postsynaptic ring buffers at step
//!    `n + round(d_ji / dt)`; arrivals after step `N` are dropped;
//! 4. **absorption**: every neuron's ring slot of step `n` is added to its `I` and cleared
//!    (so zero-delay arrivals of spikes emitted at step `n` land in the same step, as in
//!    continuous time: `I` jumps, `V` is continuous);
//! 5. **readout** of the output population at `t_n`.
//!
//! **Input binning**: an input spike at time `t < t_end` is emitted at step `round(t / dt)`
//! (nearest grid point, so the arrival is off by at most `dt/2`); inputs at or after `t_end` are
//! ignored. A LIF spike detected at `t_n` crossed the threshold in `(t_{n-1}, t_n]`. Both errors
//! are `O(dt)`, so the clocked engine converges to the exact one as `dt -> 0`.
//!
//! **Readouts** on the grid: `ExpIntegral` is `(1/N) Σ_{n=0}^{N} e^{-t_n/T} V_k(t_n)`
//! (`V(t_0) = 0`), `MaxVoltage` the grid maximum (first arg-max; time `t_n`; `kinks` all `None`,
//! the clocked engine does not detect them), `FirstSpike` the grid time of the first spike,
//! `VoltageAt(t)` the voltage at the nearest grid point `round(t/dt)`.
//!
//! # Memory layout
//!
//! Non-input neurons have a dense "state index" (population order, input population skipped).
//! The ring buffer is `slots x n_state` with `slots = max_delay_steps + 1`, a slot being one row:
//! a spike of `i` does `ring[(n + D_ji) % slots][j] += w_ji` down the contiguous weight column
//! of `i`, with the flat offsets `D_ji * n_state + j` precomputed per connection in a
//! [`ClockedPlan`] (built once per `run_batch`; `run_into` keeps the plan in its scratch and
//! rebuilds it only when [`Network::delay_stamp`] says the delays may have changed, see
//! [`ClockedPlan::refresh`]).
//!
//! # Delivery: pull (default) and push
//!
//! The steps above describe [`Delivery::Push`]: each spike is written into the ring when it is
//! emitted. [`Delivery::Pull`], the default, reorders the same work wherever all presynaptic
//! spikes of a projection are known before its targets are simulated:
//!
//! - **networks without recurrent loops** ([`ClockedPlan::is_layered`]) are simulated population
//!   by population in topological order, and each population neuron by neuron over the whole run
//!   (in blocks of 8 side by side): a target first pulls every incoming event of the sample into
//!   its own timeline, `line[t_k + D_ij] += w_ij`, with its weights and delays as one row each
//!   (target-major copies, [`ClockedPlan::pull_weights`], [`ClockedPlan::pull_delays`]) in L1, then
//!   runs steps 1-5 for itself. Events are pulled in the ring's order (by emission step; within a
//!   step LIF spikes by population and neuron, then input spikes in input order), so every
//!   arrival sum, every state and the record (spikes sorted by step, then neuron, as the ring
//!   path records them) equal the push path's **bit for bit**. Four targets share one pass over
//!   the events (four independent chains of additions, each timeline receiving its events in the
//!   same order as alone, so the sums do not depend on how targets are grouped);
//! - **recurrent networks** pull their input projections into per-target timelines before the
//!   step loop, and push every other projection through the ring; a step's pulled arrivals are
//!   added to `I` after its ring slot, so currents can differ from the push path by a rounding
//!   where recurrent and input arrivals share a step.
//!
//! **Sparse projections** ([`crate::SparseSynapses`]) are pulled under the same rule as dense
//! ones, through a per-target view of their CSC pattern built with the plan ([`SparsePull`]:
//! a target's incoming synapses contiguous, each with its source, delay steps and value index,
//! packed as records of source and delay with the target's lane in its block of 8, the weights
//! gathered into their order and cached like the dense rows): each block of targets walks its
//! synapses and, for each, its source's spikes, adding `w` straight into the block's arrivals at
//! step `t + D` (no per-target timeline to clear and add), so the cost follows the synapses, not
//! the full matrix. The block is target-major (8 timelines one after the other): the synapses
//! come target by target, so one target's additions stay within its timeline (9 KiB at 1000
//! steps and 150 delay slots). A step's arrivals at a target are then summed source by source
//! rather than in emission order,
//! so sparse pull equals sparse push up to rounding (spikes identical in the tests, everything
//! else to 1e-12), not bit for bit. In recurrent networks whose pulled projections are all sparse
//! (and not too dense), the input arrivals are instead pushed from the input spikes window by
//! window of 128 steps, just before the step loop absorbs them (a source's fan-out sorted by delay,
//! a cursor per spike): the same additions in the same order per target and step, so the same sums
//! bit for bit, in a window that stays in L2 (512 KiB for 512 targets) rather than the whole
//! run's tiles.
//!
//! `tests/clocked_delivery.rs` (in `snn-eventprop`) compares the two on random networks.
//!
//! # Cost
//!
//! Per sample: `O(steps x n_state)` for the dynamics (about 0.7 ms for 1001 steps x 532
//! neurons) plus one random read-modify-write of the ring per synaptic event — the dominant
//! term: the SHD workload of `bench-suite` (700-512r-20, 150 ms delays) delivers about 9.2 M
//! events per sample into a 643 KB ring, which lives in L2, not L1, and streams 12 bytes of
//! weight and offset per event from L3, so each event costs about 1.5-2.5 ns on the shared
//! 2-core development machine (`cargo run --release -p bench-suite --example ring_floor` measures
//! the loop alone, and its variants: an L1-sized ring is only ~30 % faster, the rest is the
//! weight stream). Sorting a fan-out by ring offset, AVX-512 gather/scatter (8 x f64 or 16 x f32;
//! `ring_floor` keeps both), a ring without the wrap test, delay steps as `u8`/`u16` with a row
//! table, 2 MiB pages (and, in the backward pass, software prefetch) were measured and do not
//! change this beyond the noise; an `f32` ring saved 5-25 % in `ring_floor` but changes the
//! numbers at the 1e-7 level, which the finite-difference tests of the clocked adjoint
//! (tolerance 1e-12) rightly reject, so the ring stays `f64`. Only a ring that fits L1 together
//! with cache-resident weights and 16-wide scatters gets to 0.45-0.8 ns per event, and the SHD
//! geometry (151 slots x 532 neurons, 620 k synapses) has neither.
//!
//! Pull delivery keeps a target's timeline, weights and delays in L1 and streams the events
//! (8 bytes each): 0.77 ns per event for the input projection of the recurrent workload (from a
//! profile; `ring_floor`'s pull variant: 1.0-1.4 ns in runs where the ring costs 1.15-1.9 ns).
//! What it saves is partly spent, for recurrent networks, on the `(steps + 1) x neurons` buffer of
//! pulled arrivals. The target-major weight rows are gathered once per weight change, not per
//! sample: the plan caches them keyed by [`Network::weight_stamp`]
//! ([`ClockedPlan::refresh_weights`]); a run whose network's weights differ from the cached ones
//! gathers its own copy (about as costly as a large part of the delivery itself). Forward CPU time
//! per delivered event, dynamics included, push against pull in the same runs
//! (`cargo run --release -p bench-suite --example clocked_profile [ff|ssc] fwd`): 700-256-256-20
//! 1.37-1.56 against 1.04-1.19 ns (1.26-1.36x) with one target per pass over the events and the
//! weight rows gathered per sample; with the cached rows and four targets per pass (their delays
//! and weights interleaved by column) 2.42-3.18 against 1.47-1.61 ns (1.58-1.97x, load 5-9 on
//! the 2 cores); the SSC network 700-1024-1024-35 1.42 against
//! 0.92 ns (1.55x; 2.5 against 0.86 ns with delays up to 250 ms, whose 4 MiB ring does not fit
//! L2); the recurrent 700-512r-20 about the same either way (0.93-1.31 ns).

use std::ops::Range;

use rayon::prelude::*;

use crate::engine::{SimConfig, Simulator, check_input};
use crate::error::{CoreError, Result};
use crate::network::{Network, NeuronKind, PopulationId};
use crate::record::{ForwardRecord, ReadoutKind};
use crate::spikes::{SpikeTrain, SpikeTrains, validate};

/// Largest number of grid steps of one run.
const MAX_STEPS: f64 = 1e9;

/// The clocked engine: a time grid of step `dt` (see the [module docs](self) for conventions).
///
/// ```
/// use nalgebra::DMatrix;
/// use snn_core::{ClockedEngine, LiParams, LifParams, NetworkBuilder, ReadoutKind, SimConfig, Simulator, SpikeTrains};
///
/// let mut b = NetworkBuilder::new();
/// let inp = b.input("in", 1);
/// let hid = b.lif("hidden", 1, LifParams::default());
/// let out = b.li("out", 1, LiParams::default());
/// b.connect(inp, hid, DMatrix::from_element(1, 1, 10.0), DMatrix::from_element(1, 1, 1.0));
/// b.connect(hid, out, DMatrix::from_element(1, 1, 1.0), DMatrix::zeros(1, 1));
/// let net = b.build().unwrap();
///
/// let engine = ClockedEngine::new(SimConfig::new(50.0, ReadoutKind::MaxVoltage), 0.1).unwrap();
/// let mut batch = SpikeTrains::new(1);
/// batch.push_sample(&[2.0], &[0]).unwrap();
/// let rec = engine.run(&net, batch.sample(0)).unwrap();
/// assert_eq!(rec.spikes.len(), 1);
/// assert!(rec.spikes.times[0] > 3.0 && rec.readout.values[0] > 0.0);
/// assert!(ClockedEngine::new(SimConfig::default(), 0.0).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClockedEngine {
    config: SimConfig,
    dt: f64,
    steps: usize,
    delivery: Delivery,
}

/// How the clocked forward pass delivers synaptic events (see the [module docs](self)).
///
/// Both give the same spikes and records: bit for bit for networks without recurrent loops
/// (the arrivals of each step are summed in the same order), and for recurrent networks up to
/// the rounding of the sum of a step's recurrent and input arrivals (added one after the other
/// instead of interleaved in emission order).
///
/// ```
/// use snn_core::{ClockedEngine, Delivery, SimConfig};
///
/// let e = ClockedEngine::new(SimConfig::default(), 1.0).unwrap();
/// assert_eq!(e.delivery(), Delivery::Pull);
/// assert_eq!(e.with_delivery(Delivery::Push).delivery(), Delivery::Push);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// The default: every projection whose presynaptic spikes are known before its targets are
    /// simulated is delivered target by target into a per-target timeline (its weights and
    /// delays in L1). Networks without recurrent loops are simulated population by population
    /// in topological order and all their projections are pulled; recurrent networks pull their
    /// input projections and push the rest through the ring.
    #[default]
    Pull,
    /// Every spike is pushed through the ring buffer as it is emitted (the engine before pull
    /// delivery; kept as the reference and for comparisons).
    Push,
}

impl ClockedEngine {
    /// Checked constructor: `config` valid, `dt` finite and `> 0`, `1 <= round(t_end/dt) <= 1e9`.
    pub fn new(config: SimConfig, dt: f64) -> Result<Self> {
        config.check()?;
        if !(dt.is_finite() && dt > 0.0) {
            return Err(CoreError::InvalidSetting { param: "dt", value: dt, reason: "must be finite and > 0" });
        }
        let ratio = (config.t_end / dt).round();
        if !(1.0..=MAX_STEPS).contains(&ratio) {
            return Err(CoreError::InvalidSetting {
                param: "dt",
                value: dt,
                reason: "round(t_end / dt) must be between 1 and 1e9 steps",
            });
        }
        Ok(Self { config, dt, steps: ratio as usize, delivery: Delivery::default() })
    }

    /// This engine with another [`Delivery`] (default [`Delivery::Pull`]).
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// How synaptic events are delivered.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Time step (ms).
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Number of steps `N = round(t_end/dt)`; the grid is `0 ..= N`.
    pub fn num_steps(&self) -> usize {
        self.steps
    }

    /// Grid step of time `t >= 0` (nearest grid point, `round(t/dt)`), not clamped.
    #[inline]
    pub fn step_of(&self, t: f64) -> usize {
        // `floor(x) as usize` without the floor: the cast truncates toward zero and saturates, so
        // it equals the floor for `x >= 0` and gives 0 for negative `x` and NaN as the floor then
        // the cast do; without SSE4.1 the floor is a libm call (2 % of the layered backward pass).
        (t / self.dt + 0.5) as usize
    }

    /// The delivery plan of `net` on this grid (quantised delays, ring geometry).
    ///
    /// Under [`Delivery::Pull`] the plan also holds `net`'s weights in the target-major rows of
    /// pull delivery ([`ClockedPlan::refresh_weights`]); runs with a network whose weights have
    /// changed since gather them per sample instead (or call `refresh_weights` again).
    pub fn plan(&self, net: &Network) -> Result<ClockedPlan> {
        let mut plan = ClockedPlan::default();
        plan.rebuild(net, self)?;
        if self.delivery == Delivery::Pull {
            plan.refresh_weights(net)?;
        }
        Ok(plan)
    }

    /// Forward pass of one sample with a prebuilt plan (see [`ClockedEngine::plan`]); `plan` must
    /// have been built from the same `net` (its weights may have changed, its delays not).
    pub fn run_planned(
        &self,
        net: &Network,
        plan: &ClockedPlan,
        input: SpikeTrain<'_>,
        state: &mut ClockedState,
        out: &mut ForwardRecord,
    ) -> Result<()> {
        forward(self, net, plan, input, state, out)
    }
}

/// Per-population constants of the clocked engine.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PopPlan {
    /// First state index (non-input neurons only; meaningless for the input population).
    pub state_off: usize,
    /// First global neuron index.
    pub global_off: usize,
    /// Number of neurons.
    pub size: usize,
    /// Whether this is the input population.
    pub is_input: bool,
    /// Threshold of a LIF population, `None` for LI and input.
    pub theta: Option<f64>,
    /// `tau_m` (ms; 0 for the input population).
    pub tau_m: f64,
    /// `tau_s` (ms; 0 for the input population).
    pub tau_s: f64,
    /// `alpha = e^{-dt/tau_m}`.
    pub alpha: f64,
    /// `beta = e^{-dt/tau_s}`.
    pub beta: f64,
    /// `c (beta - alpha)`: the `I -> V` entry of the one-step propagator.
    pub coupling: f64,
}

/// Per-connection delivery data of the clocked engine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnPlan {
    /// Presynaptic population index.
    pub pre: usize,
    /// Postsynaptic population index.
    pub post: usize,
    /// Postsynaptic population size (rows of the matrices).
    pub n_post: usize,
    /// `round(d_ji/dt) * n_state + state(j)` per stored synapse, in the connection's value order
    /// ([`crate::Connection::weight_values`]: `post x pre` column-major for a dense connection,
    /// the data order for a sparse one), so the fan-out of presynaptic `i` is
    /// `offsets[fan_out(i).indices()]`.
    pub offsets: Vec<u32>,
    /// `round(d_ji/dt)` per synapse (the delay in steps), same layout as `offsets`.
    pub delay_steps: Vec<u32>,
}

/// What the clocked engine precomputes from a network: population constants, quantised
/// delays as flat ring offsets, ring geometry. Rebuilt with allocations reused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClockedPlan {
    /// Number of non-input neurons (row length of the ring buffer).
    pub n_state: usize,
    /// Ring slots: `max_delay_steps + 1`.
    pub slots: usize,
    /// Populations, in network order.
    pub pops: Vec<PopPlan>,
    /// Connections, in network order.
    pub conns: Vec<ConnPlan>,
    /// `(Network::delay_stamp, dt bits)` of the last successful build, for [`ClockedPlan::refresh`].
    built_for: Option<(u64, u64)>,
    /// Non-input populations in topological order if no population is on a recurrent loop
    /// (then every projection is pulled), `None` otherwise (then only input projections are).
    layers: Option<Vec<usize>>,
    /// Pull delivery per population (empty for the input population and for populations
    /// without pulled projections).
    pull: Vec<PullPop>,
    /// The pulled weights, target-major, as of one [`Network::weight_stamp`]
    /// ([`ClockedPlan::refresh_weights`]).
    weight_rows: WeightRows,
}

/// The cache of [`ClockedPlan::refresh_weights`]: per population, the rows
/// [`ClockedPlan::pull_weights`] gathers, for the network whose [`Network::weight_stamp`] is
/// `stamp`. Equal for `PartialEq`: it is derived from a network's weights, not part of the plan.
#[derive(Debug, Clone, Default)]
struct WeightRows {
    /// Weight stamp of the network the rows were gathered from; `None` when there are none
    /// (a new or rebuilt plan).
    stamp: Option<u64>,
    /// Per population, `size x row_len` target-major (empty where nothing is pulled).
    rows: Vec<Vec<f64>>,
    /// Per population, the weights of its pulled sparse projections in block order
    /// ([`ClockedPlan::pull_sparse_weights`]).
    sparse: Vec<Vec<f64>>,
    /// Recurrent networks: the weights of every pulled sparse projection in push order, one
    /// after the other ([`ClockedPlan::push_weights`]; empty for layered networks).
    push: Vec<f64>,
}

impl PartialEq for WeightRows {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The pulled projections into one population, with their delays transposed per target.
#[derive(Debug, Clone, PartialEq, Default)]
struct PullPop {
    /// `(connection, first column)`: connection `c`'s presynaptic neuron `i` is column
    /// `first + i` of each target's row.
    conns: Vec<(usize, usize)>,
    /// Columns per target row: the pulled connections' presynaptic sizes summed.
    row_len: usize,
    /// Delay steps, `size x row_len` target-major; every entry `< slots`.
    delay_rows: Vec<u32>,
    /// The largest entry of `delay_rows` (0 if empty): the bound the pull kernels rely on.
    max_delay: u32,
    /// The pulled sparse projections into this population, target by target.
    sparse: Vec<SparsePull>,
}

impl PullPop {
    /// Whether nothing is pulled into this population.
    fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.sparse.is_empty()
    }
}

/// A sparse projection under pull delivery: its synapses target by target — a CSR-like view of
/// the CSC pattern of [`crate::SparseSynapses`], built with the plan (it depends on the pattern and
/// the quantised delays, not on the weights). Target `j`'s incoming synapses are one contiguous
/// run, sources increasing; each keeps its value index into the connection's (CSC-ordered)
/// weight and delay arrays, so weights are read from the network at run time and never go stale.
///
/// ```
/// use snn_core::{ClockedEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig, SparseSynapses, Synapse};
///
/// let s = |post, pre, delay| Synapse { post, pre, weight: 1.0, delay };
/// // in(3) -> out(2): 0 -> 1 (2 ms), 2 -> 0 (0 ms), 0 -> 0 (1 ms); CSC value order: (0,0), (1,0), (0,2).
/// let syn = SparseSynapses::from_triplets(2, 3, &[s(1, 0, 2.0), s(0, 2, 0.0), s(0, 0, 1.0)])?;
/// let mut b = NetworkBuilder::new();
/// let i = b.input("in", 3);
/// let o = b.li("out", 2, LiParams::default());
/// b.connect_sparse(i, o, syn);
/// let net = b.build()?;
/// let plan = ClockedEngine::new(SimConfig::new(10.0, ReadoutKind::MaxVoltage), 1.0)?.plan(&net)?;
/// let rows = &plan.pull_sparse(1)[0];
/// assert_eq!(rows.conn(), 0);
/// // Target 0 gets sources 0 and 2 (value indices 0 and 2), target 1 source 0 (value index 1).
/// assert_eq!(rows.row(0), (&[0u32, 2][..], &[1u32, 0][..], &[0u32, 2][..]));
/// assert_eq!(rows.row(1), (&[0u32][..], &[2u32][..], &[1u32][..]));
/// assert!(plan.is_pulled(0));
/// # Ok::<(), snn_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparsePull {
    /// Connection index.
    conn: usize,
    /// Presynaptic population index.
    pre: usize,
    /// `starts[j]..starts[j + 1]` are target `j`'s synapses.
    starts: Vec<u32>,
    /// Presynaptic neuron of each synapse.
    src: Vec<u32>,
    /// Delay steps of each synapse (each `< slots`).
    delay: Vec<u32>,
    /// Value index of each synapse in the connection's weight and delay arrays.
    value: Vec<u32>,
    /// The same synapses packed for the pull kernels (source and delay with the target's lane).
    recs: Vec<PullRec>,
    /// Largest [`PullRec::off`] in `recs` (0 if none): the bound [`pull_sparse_block`] checks once.
    max_off: u32,
    /// Recurrent networks (the windows of [`forward_ring`]; empty otherwise): the synapses source
    /// by source, `push_starts[i]..push_starts[i + 1]` source `i`'s, each source's by increasing
    /// delay ([`push_window`]).
    push_starts: Vec<u32>,
    /// Per synapse in that order, `D n_post + j` for delay steps `D` and target `j` (increasing
    /// within a source's run): a spike at step `t` arrives at step `t + off / n_post` of target
    /// `off % n_post`.
    push: Vec<u32>,
    /// Per synapse in that order, its value index (into [`crate::Connection::weight_values`]).
    push_value: Vec<u32>,
}

/// One synapse of a block of [`SparsePull::LANES`] targets of a [`SparsePull`]: its presynaptic
/// neuron and `off = D * LANES + l` for delay steps `D` and target `l` of the block: a spike at
/// step `t` arrives at step `t + off / LANES` of target `off % LANES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullRec {
    /// Presynaptic neuron (index in its population).
    pub src: u32,
    /// `D * LANES + l`: delay steps times [`SparsePull::LANES`] plus the target's place in its block.
    pub off: u32,
}

impl SparsePull {
    /// Builds the view of sparse connection `c` from its fan-outs and delay steps.
    fn build(c: usize, conn: &crate::Connection, cp: &ConnPlan, push: bool) -> Self {
        let (n_post, n_pre) = conn.shape();
        let mut starts = vec![0u32; n_post + 1];
        for i in 0..n_pre {
            for (j, _) in conn.fan_out(i).iter() {
                starts[j + 1] += 1;
            }
        }
        for j in 0..n_post {
            starts[j + 1] += starts[j];
        }
        let nnz = starts[n_post] as usize;
        let (mut src, mut delay, mut value) = (vec![0u32; nnz], vec![0u32; nnz], vec![0u32; nnz]);
        let mut fill: Vec<u32> = starts[..n_post].to_vec();
        for i in 0..n_pre {
            for (j, k) in conn.fan_out(i).iter() {
                let at = fill[j] as usize;
                fill[j] += 1;
                src[at] = i as u32;
                delay[at] = cp.delay_steps[k];
                value[at] = k as u32;
            }
        }
        // The same synapses packed for the kernels; block `b` (targets `LANES b ..`) is the run
        // of its targets' rows.
        let mut recs = vec![PullRec::default(); nnz];
        for j in 0..n_post {
            for at in starts[j] as usize..starts[j + 1] as usize {
                // Fits: `rebuild` checks `slots * LANES < u32::MAX`, and `delay < slots`.
                recs[at] = PullRec { src: src[at], off: delay[at] * LANES as u32 + (j % LANES) as u32 };
            }
        }
        let max_off = recs.iter().map(|r| r.off).max().unwrap_or(0);
        let (mut push_starts, mut push_recs, mut push_value) = (Vec::new(), Vec::new(), Vec::new());
        if push {
            // Grouped by source and delay (a counting sort, linear in the synapses: the plan is
            // rebuilt whenever the delays change), each group's targets increasing.
            let d_slots = delay.iter().copied().max().map_or(1, |m| m as usize + 1);
            let mut fill = vec![0u32; n_pre * d_slots + 1];
            for (&i, &d) in src.iter().zip(&delay) {
                fill[i as usize * d_slots + d as usize + 1] += 1;
            }
            for k in 1..fill.len() {
                fill[k] += fill[k - 1];
            }
            push_starts.extend((0..=n_pre).map(|i| fill[i * d_slots]));
            (push_recs, push_value) = (vec![0u32; nnz], vec![0u32; nnz]);
            for j in 0..n_post {
                for at in starts[j] as usize..starts[j + 1] as usize {
                    let slot = &mut fill[src[at] as usize * d_slots + delay[at] as usize];
                    // Fits: `rebuild` checks `slots * n_state < u32::MAX`, `D < slots`, `j < n_post`.
                    push_recs[*slot as usize] = delay[at] * n_post as u32 + j as u32;
                    push_value[*slot as usize] = value[at];
                    *slot += 1;
                }
            }
        }
        Self {
            conn: c,
            pre: cp.pre,
            starts,
            src,
            delay,
            value,
            recs,
            max_off,
            push_starts,
            push: push_recs,
            push_value,
        }
    }

    /// The connection index.
    pub fn conn(&self) -> usize {
        self.conn
    }

    /// The presynaptic population index.
    pub fn pre(&self) -> usize {
        self.pre
    }

    /// Target `j`'s incoming synapses: presynaptic neurons (increasing), delay steps, and value
    /// indices into [`crate::Connection::weight_values`]. Panics if `j` is out of range.
    pub fn row(&self, j: usize) -> (&[u32], &[u32], &[u32]) {
        let r = self.starts[j] as usize..self.starts[j + 1] as usize;
        (&self.src[r.clone()], &self.delay[r.clone()], &self.value[r])
    }

    /// Number of stored synapses.
    pub fn nnz(&self) -> usize {
        self.src.len()
    }

    /// Targets per block of [`SparsePull::block`] (and of the clocked pull paths).
    pub const LANES: usize = LANES;

    /// The synapses into targets `LANES b .. LANES (b + 1)` (block `b`), target by target and each
    /// target's by increasing source (the rows of [`SparsePull::row`] one after the other), with
    /// their index range in the synapse order of [`SparsePull::block_values`] (the order in which
    /// [`ClockedPlan::pull_sparse_weights`] gathers weights). Panics if `b` is out of range.
    ///
    /// ```
    /// use snn_core::{ClockedEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig, SparseSynapses, Synapse};
    /// use snn_core::clocked::{PullRec, SparsePull};
    ///
    /// let s = |post, pre, delay| Synapse { post, pre, weight: 1.0, delay };
    /// let syn = SparseSynapses::from_triplets(2, 3, &[s(1, 0, 2.0), s(0, 2, 0.0), s(0, 0, 1.0)])?;
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 3);
    /// let o = b.li("out", 2, LiParams::default());
    /// b.connect_sparse(i, o, syn);
    /// let net = b.build()?;
    /// let plan = ClockedEngine::new(SimConfig::new(10.0, ReadoutKind::MaxVoltage), 1.0)?.plan(&net)?;
    /// let sp = &plan.pull_sparse(1)[0];
    /// let (range, recs) = sp.block(0);
    /// // Target 0 from sources 0 (1 step) and 2 (0 steps), target 1 from source 0 (2 steps).
    /// let l = SparsePull::LANES as u32;
    /// assert_eq!(recs, &[PullRec { src: 0, off: l }, PullRec { src: 2, off: 0 }, PullRec { src: 0, off: 2 * l + 1 }]);
    /// assert_eq!(&sp.block_values()[range], &[0, 2, 1]);
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn block(&self, b: usize) -> (Range<usize>, &[PullRec]) {
        let n_post = self.starts.len() - 1;
        let r = self.starts[b * LANES] as usize..self.starts[((b + 1) * LANES).min(n_post)] as usize;
        (r.clone(), &self.recs[r])
    }

    /// The value index (into [`crate::Connection::weight_values`]) of every synapse, in the
    /// order of the blocks of [`SparsePull::block`] (and of the rows of [`SparsePull::row`]).
    pub fn block_values(&self) -> &[u32] {
        &self.value
    }
}

impl ClockedPlan {
    /// Checks that this plan has the shape of `net` (population sizes, connections between the
    /// same populations, one offset and one delay step per synapse): [`CoreError::InvalidNetwork`]
    /// if it was built for another network. Weights are read from `net` at run time, so they may
    /// have changed since.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use snn_core::{ClockedEngine, ClockedState, CoreError, ForwardRecord, LiParams, NetworkBuilder};
    /// use snn_core::{ReadoutKind, SimConfig, SpikeTrains};
    ///
    /// let net = |n_out: usize| {
    ///     let mut b = NetworkBuilder::new();
    ///     let i = b.input("in", 2);
    ///     let o = b.li("out", n_out, LiParams::new(10.0, 5.0).unwrap());
    ///     b.connect(i, o, DMatrix::from_element(n_out, 2, 1.0), DMatrix::zeros(n_out, 2));
    ///     b.build().unwrap()
    /// };
    /// let (small, large) = (net(2), net(3));
    /// let engine = ClockedEngine::new(SimConfig::new(20.0, ReadoutKind::MaxVoltage), 1.0)?;
    /// let plan = engine.plan(&small)?;
    /// assert!(plan.check_shape(&small).is_ok());
    /// assert!(matches!(plan.check_shape(&large), Err(CoreError::InvalidNetwork(_))));
    /// // The forward pass refuses the mismatched plan instead of reading out of bounds.
    /// let mut x = SpikeTrains::new(2);
    /// x.push_sample(&[1.0], &[0])?;
    /// let (mut st, mut rec) = (ClockedState::default(), ForwardRecord::default());
    /// let run = engine.run_planned(&large, &plan, x.sample(0), &mut st, &mut rec);
    /// assert!(matches!(run, Err(CoreError::InvalidNetwork(_))));
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn check_shape(&self, net: &Network) -> Result<()> {
        let fits = self.pops.len() == net.populations().len()
            && self.pops.iter().zip(net.populations()).all(|(pp, p)| pp.size == p.size())
            && self.conns.len() == net.connections().len()
            && self.conns.iter().zip(net.connections()).all(|(cp, c)| {
                cp.offsets.len() == c.num_synapses()
                    && cp.delay_steps.len() == c.num_synapses()
                    && cp.n_post == c.shape().0
                    && (cp.pre, cp.post) == (c.pre().0, c.post().0)
            });
        if fits { Ok(()) } else { Err(CoreError::InvalidNetwork("clocked plan was built for another network")) }
    }

    /// `slots * n_state`, the ring length.
    pub fn ring_len(&self) -> usize {
        self.slots * self.n_state
    }

    /// Rebuilds the plan unless it was last built, successfully, for a network with the same
    /// [`Network::delay_stamp`] (a clone with unchanged delays, or `net` itself before any
    /// [`Network::delays_mut`]) on a grid with the same `dt`. Returns whether it rebuilt.
    ///
    /// This is what [`Simulator::run_into`] does, so running sample after sample of one network
    /// quantises its delays once, not once per sample. Weights may change freely: runs read them
    /// from the network, or from rows cached for its current weights
    /// ([`ClockedPlan::refresh_weights`], which a rebuild empties).
    pub fn refresh(&mut self, net: &Network, engine: &ClockedEngine) -> Result<bool> {
        if self.built_for == Some((net.delay_stamp(), engine.dt.to_bits())) {
            return Ok(false);
        }
        self.rebuild(net, engine)?;
        Ok(true)
    }

    /// Rebuilds the plan for `net` on `engine`'s grid, reusing allocations.
    pub fn rebuild(&mut self, net: &Network, engine: &ClockedEngine) -> Result<()> {
        self.built_for = None;
        // The cached weight rows follow the layout of the pulled projections, rebuilt below.
        self.weight_rows.stamp = None;
        let dt = engine.dt;
        self.pops.clear();
        let mut state = 0;
        for (p, pop) in net.populations().iter().enumerate() {
            let global_off = net.offset(PopulationId(p));
            let mut pp = PopPlan { state_off: state, global_off, size: pop.size(), ..PopPlan::default() };
            match pop.kind() {
                NeuronKind::Input => pp.is_input = true,
                kind => {
                    let leak = kind.leak().expect("integrating population");
                    if let NeuronKind::Lif(l) = kind {
                        pp.theta = Some(l.theta());
                    }
                    pp.tau_m = leak.tau_m();
                    pp.tau_s = leak.tau_s();
                    pp.alpha = (-dt / pp.tau_m).exp();
                    pp.beta = (-dt / pp.tau_s).exp();
                    pp.coupling = leak.coupling() * (pp.beta - pp.alpha);
                    state += pop.size();
                }
            }
            self.pops.push(pp);
        }
        self.n_state = state;

        let inv_dt = 1.0 / dt;
        let mut max_steps = 0usize;
        for c in net.connections() {
            for &d in c.delay_values() {
                if !(d.is_finite() && d >= 0.0) {
                    return Err(CoreError::InvalidSetting {
                        param: "delay",
                        value: d,
                        reason: "delays must be finite and >= 0 (run Network::check after delays_mut)",
                    });
                }
                max_steps = max_steps.max((d * inv_dt + 0.5) as usize);
            }
        }
        self.slots = max_steps + 1;
        // (At least `LANES` neurons' worth: sparse pull delivery's block offsets, `PullRec`.)
        if (self.slots as u128) * (state.max(LANES) as u128) >= u32::MAX as u128 {
            return Err(CoreError::InvalidSetting {
                param: "dt",
                value: dt,
                reason: "max_delay/dt x number of neurons is too large for the ring buffer",
            });
        }

        let n_state = state;
        self.conns.resize_with(net.connections().len(), ConnPlan::default);
        for (c, cp) in net.connections().iter().zip(&mut self.conns) {
            cp.pre = c.pre().0;
            cp.post = c.post().0;
            cp.n_post = c.shape().0;
            let post_off = self.pops[cp.post].state_off;
            cp.delay_steps.clear();
            cp.delay_steps.extend(c.delay_values().iter().map(|&d| (d * inv_dt + 0.5) as u32));
            cp.offsets.clear();
            // Fan-outs in presynaptic order cover the value indices 0.. in order.
            for i in 0..c.shape().1 {
                let steps = &cp.delay_steps;
                cp.offsets
                    .extend(c.fan_out(i).iter().map(|(j, k)| (steps[k] as usize * n_state + post_off + j) as u32));
            }
        }
        self.build_pull(net);
        self.built_for = Some((net.delay_stamp(), dt.to_bits()));
        Ok(())
    }

    /// Whether the network of this plan has no recurrent loop (then pull delivery simulates it
    /// population by population and pulls every projection).
    pub fn is_layered(&self) -> bool {
        self.layers.is_some()
    }

    /// The non-input populations in topological order if the network has no recurrent loop.
    pub fn layers(&self) -> Option<&[usize]> {
        self.layers.as_deref()
    }

    /// The projections pulled into population `p` as `(connection, first column)`: presynaptic
    /// neuron `i` of the connection is column `first + i` of [`ClockedPlan::pull_delays`]'s rows.
    /// Empty for the input population (and for `p` out of range).
    pub fn pull_conns(&self, p: usize) -> &[(usize, usize)] {
        self.pull.get(p).map_or(&[], |pp| &pp.conns)
    }

    /// The weights of the pulled projections into population `p`, target-major like
    /// [`ClockedPlan::pull_delays`] (`size x row_len`, target `j`'s row at `j * row_len`), copied
    /// from `net`'s column-major matrices in blocks of 8 targets (whole cache lines on both sides).
    /// Returns the row length. [`ClockedPlan::pull_weight_rows`] returns the cached copy instead
    /// when there is one for `net`'s weights.
    pub fn pull_weights(&self, net: &Network, p: usize, out: &mut Vec<f64>) -> usize {
        out.clear();
        let Some(pp) = self.pull.get(p) else { return 0 };
        gather_rows(&self.conns, self.pops[p].size, pp, net, out);
        pp.row_len
    }

    /// Gathers the target-major weight rows of every pulled projection from `net` into this plan
    /// (see [`ClockedPlan::pull_weights`]) unless they are there already for `net`'s
    /// [`Network::weight_stamp`]; returns whether it gathered. Errors if the plan has not the
    /// shape of `net` ([`ClockedPlan::check_shape`]).
    ///
    /// Runs then read the cached rows while `net`'s weights are unchanged
    /// ([`ClockedPlan::weights_cached_for`]) instead of gathering them per sample; with any other
    /// weights they gather their own, so a stale row is never used. Batch entry points call this
    /// once before they spread samples over threads (the plan is then shared read-only);
    /// [`Simulator::run_into`] calls it on the plan of its scratch.
    ///
    /// ```
    /// use nalgebra::DMatrix;
    /// use snn_core::{ClockedEngine, ConnectionId, LiParams, NetworkBuilder, ReadoutKind, SimConfig};
    ///
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 3);
    /// let o = b.li("out", 2, LiParams::default());
    /// b.connect(i, o, DMatrix::from_fn(2, 3, |j, i| (10 * j + i) as f64), DMatrix::zeros(2, 3));
    /// let mut net = b.build().unwrap();
    /// let engine = ClockedEngine::new(SimConfig::new(20.0, ReadoutKind::MaxVoltage), 1.0).unwrap();
    /// let mut plan = engine.plan(&net).unwrap(); // gathers under the default pull delivery
    /// assert!(plan.weights_cached_for(&net));
    /// let mut scratch = Vec::new();
    /// assert_eq!(plan.pull_weight_rows(&net, 1, &mut scratch), &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
    /// net.weights_mut(ConnectionId(0))[(1, 2)] = -1.0;
    /// assert!(!plan.weights_cached_for(&net));
    /// // Stale: gathered anew into `scratch`.
    /// assert_eq!(plan.pull_weight_rows(&net, 1, &mut scratch), &[0.0, 1.0, 2.0, 10.0, 11.0, -1.0]);
    /// assert!(plan.refresh_weights(&net).unwrap());
    /// assert!(!plan.refresh_weights(&net).unwrap());
    /// assert!(plan.weights_cached_for(&net));
    /// ```
    pub fn refresh_weights(&mut self, net: &Network) -> Result<bool> {
        if self.weights_cached_for(net) {
            return Ok(false);
        }
        self.check_shape(net)?;
        let cache = &mut self.weight_rows;
        cache.stamp = None;
        cache.rows.resize_with(self.pull.len(), Vec::new);
        cache.sparse.resize_with(self.pull.len(), Vec::new);
        for (((pp, pop), out), sparse) in self.pull.iter().zip(&self.pops).zip(&mut cache.rows).zip(&mut cache.sparse) {
            out.clear();
            gather_rows(&self.conns, pop.size, pp, net, out);
            gather_sparse(pp, net, sparse);
        }
        gather_push(&self.pull, net, &mut cache.push);
        cache.stamp = Some(net.weight_stamp());
        Ok(true)
    }

    /// Whether this plan holds the weight rows of `net`'s current weights (gathered by
    /// [`ClockedPlan::refresh_weights`] from a network with the same [`Network::weight_stamp`],
    /// and no rebuild since).
    pub fn weights_cached_for(&self, net: &Network) -> bool {
        self.weight_rows.stamp.is_some_and(|s| s == net.weight_stamp())
    }

    /// The target-major weight rows of population `p` for `net`: the cached ones if
    /// [`ClockedPlan::weights_cached_for`] `net`, otherwise gathered into `scratch`
    /// ([`ClockedPlan::pull_weights`]). Empty if nothing is pulled into `p`.
    pub fn pull_weight_rows<'a>(&'a self, net: &Network, p: usize, scratch: &'a mut Vec<f64>) -> &'a [f64] {
        if self.weights_cached_for(net) {
            return self.weight_rows.rows.get(p).map_or(&[], Vec::as_slice);
        }
        self.pull_weights(net, p, scratch);
        scratch
    }

    /// The weights of the sparse projections pulled into population `p`
    /// ([`ClockedPlan::pull_sparse`]), one after the other, each in its block order
    /// ([`SparsePull::block_values`]): so block `b` of the `k`-th projection has the weights
    /// `out[o + r]` for `r` in its [`SparsePull::block`] range, `o` the `nnz` of the projections
    /// before it. The cached copy if [`ClockedPlan::weights_cached_for`] `net`, otherwise
    /// gathered into `scratch`. Empty if nothing sparse is pulled into `p`.
    ///
    /// ```
    /// use snn_core::{ClockedEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig, SparseSynapses, Synapse};
    ///
    /// let s = |post, pre, weight| Synapse { post, pre, weight, delay: 1.0 };
    /// let syn = SparseSynapses::from_triplets(9, 2, &[s(8, 0, 1.0), s(0, 1, 2.0), s(1, 0, 3.0)])?;
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 2);
    /// let o = b.li("out", 9, LiParams::default());
    /// b.connect_sparse(i, o, syn);
    /// let net = b.build()?;
    /// let plan = ClockedEngine::new(SimConfig::new(10.0, ReadoutKind::MaxVoltage), 1.0)?.plan(&net)?;
    /// // Target by target: 0 (from source 1), 1 (from 0), 8 (from 0).
    /// let mut scratch = Vec::new();
    /// assert_eq!(plan.pull_sparse_weights(&net, 1, &mut scratch), &[2.0, 3.0, 1.0]);
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn pull_sparse_weights<'a>(&'a self, net: &Network, p: usize, scratch: &'a mut Vec<f64>) -> &'a [f64] {
        if self.weights_cached_for(net) {
            return self.weight_rows.sparse.get(p).map_or(&[], Vec::as_slice);
        }
        scratch.clear();
        if let Some(pp) = self.pull.get(p) {
            gather_sparse(pp, net, scratch);
        }
        scratch
    }

    /// The weights of every pulled sparse projection in push order ([`push_window`]), population
    /// after population and projection after projection: the cached copy if
    /// [`ClockedPlan::weights_cached_for`] `net`, otherwise gathered into `scratch`. Empty unless
    /// the network is recurrent (only the windows of [`forward_ring`] push).
    fn push_weights<'a>(&'a self, net: &Network, scratch: &'a mut Vec<f64>) -> &'a [f64] {
        if self.weights_cached_for(net) {
            return &self.weight_rows.push;
        }
        gather_push(&self.pull, net, scratch);
        scratch
    }

    /// Columns of the target rows of population `p` ([`ClockedPlan::pull_delays`]), 0 if
    /// nothing is pulled into `p`.
    pub fn pull_row_len(&self, p: usize) -> usize {
        self.pull.get(p).map_or(0, |pp| pp.row_len)
    }

    /// Delay steps (each `< slots`) of the pulled projections into target `j` of population `p`,
    /// one per column (see [`ClockedPlan::pull_conns`]); empty if out of range.
    pub fn pull_delays(&self, p: usize, j: usize) -> &[u32] {
        self.pull.get(p).and_then(|pp| pp.delay_rows.get(j * pp.row_len..(j + 1) * pp.row_len)).unwrap_or(&[])
    }

    /// Topological order and pulled projections (after the connections' delay steps are set).
    ///
    /// Dense projections are pulled through target-major rows ([`ClockedPlan::pull_delays`]),
    /// sparse ones through their per-target view ([`ClockedPlan::pull_sparse`]); which ones are
    /// pulled does not depend on the storage.
    fn build_pull(&mut self, net: &Network) {
        let np = self.pops.len();
        // Kahn's algorithm over the non-input populations; connections from the input (which
        // has no incoming ones) are no constraint.
        let mut indeg = vec![0usize; np];
        for cp in &self.conns {
            if !self.pops[cp.pre].is_input {
                indeg[cp.post] += 1;
            }
        }
        let mut order: Vec<usize> = (0..np).filter(|&p| !self.pops[p].is_input && indeg[p] == 0).collect();
        let mut next = 0;
        while next < order.len() {
            let p = order[next];
            next += 1;
            for &cid in net.outgoing(PopulationId(p)) {
                let q = self.conns[cid.0].post;
                indeg[q] -= 1;
                if indeg[q] == 0 {
                    order.push(q);
                }
            }
        }
        let n_integrating = self.pops.iter().filter(|p| !p.is_input).count();
        self.layers = (order.len() == n_integrating).then_some(order);
        let layered = self.layers.is_some();
        self.pull.resize_with(np, PullPop::default);
        for (p, pp) in self.pull.iter_mut().enumerate() {
            pp.conns.clear();
            pp.row_len = 0;
            pp.delay_rows.clear();
            pp.sparse.clear();
            if self.pops[p].is_input {
                continue;
            }
            for &cid in net.incoming(PopulationId(p)) {
                let cp = &self.conns[cid.0];
                if !(layered || self.pops[cp.pre].is_input) {
                    continue;
                }
                let conn = net.connection(cid);
                if conn.is_sparse() {
                    pp.sparse.push(SparsePull::build(cid.0, conn, cp, !layered));
                } else {
                    pp.conns.push((cid.0, pp.row_len));
                    pp.row_len += self.pops[cp.pre].size;
                }
            }
            let size = self.pops[p].size;
            pp.delay_rows.resize(size * pp.row_len, 0);
            for &(c, first) in &pp.conns {
                let cp = &self.conns[c];
                for (k, &d) in cp.delay_steps.iter().enumerate() {
                    let (j, i) = (k % cp.n_post, k / cp.n_post);
                    pp.delay_rows[j * pp.row_len + first + i] = d;
                }
            }
            pp.max_delay = pp.delay_rows.iter().copied().max().unwrap_or(0);
        }
    }

    /// Whether connection `c` is delivered by pull (with [`Delivery::Pull`]); the others are
    /// pushed through the ring.
    pub fn is_pulled(&self, c: usize) -> bool {
        self.conns.get(c).is_some_and(|cp| {
            self.pull_conns(cp.post).iter().any(|&(cc, _)| cc == c)
                || self.pull_sparse(cp.post).iter().any(|sp| sp.conn == c)
        })
    }

    /// The sparse projections pulled into population `p`, each target by target (see
    /// [`SparsePull`]); empty for the input population (and for `p` out of range). Dense pulled
    /// projections are in [`ClockedPlan::pull_conns`].
    pub fn pull_sparse(&self, p: usize) -> &[SparsePull] {
        self.pull.get(p).map_or(&[], |pp| &pp.sparse)
    }

    /// Number of neurons of all populations (global indices `0..n`).
    pub fn num_neurons(&self) -> usize {
        self.pops.last().map_or(0, |p| p.global_off + p.size)
    }

    /// Population index of a global neuron, `None` if out of range.
    pub fn locate(&self, global: usize) -> Option<usize> {
        self.pops.iter().position(|p| (p.global_off..p.global_off + p.size).contains(&global))
    }
}

/// Appends the target-major weight rows of the projections pulled by `pp` into a population of
/// `size` neurons to `out` (`size x pp.row_len`), from `net`'s column-major matrices in blocks of 8
/// targets (whole cache lines on both sides).
fn gather_rows(conns: &[ConnPlan], size: usize, pp: &PullPop, net: &Network, out: &mut Vec<f64>) {
    let row_len = pp.row_len;
    let start = out.len();
    out.resize(start + size * row_len, 0.0);
    let out = &mut out[start..];
    for &(c, first) in &pp.conns {
        let n_post = conns[c].n_post;
        let w = net.connection(crate::ConnectionId(c)).weights().as_slice();
        for j0 in (0..size).step_by(8) {
            let j1 = (j0 + 8).min(size);
            for (i, col) in w.chunks_exact(n_post).enumerate() {
                for (j, &x) in col[j0..j1].iter().enumerate() {
                    out[(j0 + j) * row_len + first + i] = x;
                }
            }
        }
    }
}

/// Sets `out` to the weights of the sparse projections pulled by `pp`, one after the other, each
/// in its block order ([`ClockedPlan::pull_sparse_weights`]).
fn gather_sparse(pp: &PullPop, net: &Network, out: &mut Vec<f64>) {
    out.clear();
    for sp in &pp.sparse {
        let w = net.connection(crate::ConnectionId(sp.conn)).weight_values();
        out.extend(sp.value.iter().map(|&v| w[v as usize]));
    }
}

/// The weights of every pulled sparse projection in push order into `out`, one projection after
/// the other (see [`ClockedPlan::push_weights`]).
fn gather_push(pull: &[PullPop], net: &Network, out: &mut Vec<f64>) {
    out.clear();
    for sp in pull.iter().flat_map(|pp| &pp.sparse) {
        let w = net.connection(crate::ConnectionId(sp.conn)).weight_values();
        out.extend(sp.push_value.iter().map(|&v| w[v as usize]));
    }
}

/// Adds `w` into the ring at `base_off + offs` (wrapping once): the fan-out of one spike.
///
/// Requires `base_off < ring.len()` and every offset `< ring.len()` (true for offsets of a
/// [`ClockedPlan`] and `ring.len() == plan.ring_len()`); checked, panicking, otherwise.
#[inline]
pub fn scatter(ring: &mut [f64], base_off: usize, w: &[f64], offs: &[u32]) {
    let rn = ring.len();
    assert!(base_off < rn || w.is_empty(), "ring base out of range");
    for (&wj, &o) in w.iter().zip(offs) {
        let o = o as usize;
        debug_assert!(o < rn);
        let mut idx = base_off + o;
        if idx >= rn {
            idx -= rn;
        }
        // idx < 2 rn before the wrap only if o < rn; otherwise fall back to a checked access.
        if o < rn {
            // SAFETY: base_off < rn and o < rn, so idx < 2 rn, and after one wrap idx < rn.
            unsafe { *ring.get_unchecked_mut(idx) += wj };
        } else {
            ring[idx % rn] += wj;
        }
    }
}

/// Working state of one forward pass (per thread): voltages, currents, ring buffer, readout
/// accumulators, and the buffers of pull delivery.
#[derive(Debug, Clone, Default)]
pub struct ClockedState {
    v: Vec<f64>,
    i: Vec<f64>,
    ring: Vec<f64>,
    acc: Vec<f64>,
    acc_t: Vec<f64>,
    readout_steps: Vec<usize>,
    /// Buffers of pull delivery (boxed: they are many, and [`crate::EngineScratch`] holds this state).
    pull: Box<PullBuffers>,
}

/// Per-thread buffers of pull delivery.
#[derive(Debug, Clone, Default)]
struct PullBuffers {
    /// One target's arrivals per step, `steps + slots` long.
    line: Vec<f64>,
    /// One target's weights, a row of its pulled connections.
    w_row: Vec<f64>,
    /// `(emission step, column)` of the events into one population, in emission order.
    events: PullEvents,
    /// `(step, neuron)` of the input spikes before `t_end`.
    in_events: Vec<(u32, u32)>,
    /// Layered: `(step, global neuron, I - V)` of the spikes so far, sorted by step and neuron.
    spk: Vec<(u32, u32, f64)>,
    /// Layered: the spikes of the population just simulated, sorted by step ([`sort_new_spikes`]).
    spk_new: Vec<(u32, u32, f64)>,
    /// Layered: the merge of `spk` and `spk_new`, swapped into `spk`.
    spk_merged: Vec<(u32, u32, f64)>,
    /// Layered: the groups of `spk_new` by step.
    by_step: crate::Buckets,
    /// Recurrent networks: the pulled input arrivals per pulled population, the whole run's in
    /// tiles (see [`forward_ring_in`]).
    pre: Vec<f64>,
    /// Recurrent networks, windows of [`forward_ring`]: one window's pulled input arrivals per
    /// pulled population, step-major.
    win: Vec<f64>,
    /// Whether `win` is all zero: the step loop clears each row it absorbs, so a run that
    /// completes leaves it so (one stopped by the spike cap does not).
    win_zero: bool,
    /// Recurrent networks: per population, its first entry in `pre` (or `win`) if it has pulled
    /// arrivals.
    pre_off: Vec<Option<usize>>,
    /// Recurrent networks: `(population, neuron)` of the spikes of the current step.
    fired: Vec<(u32, u32)>,
    /// `ExpIntegral` readout factors per step.
    fac: Vec<f64>,
    /// Arrivals of a block of [`LANES`] targets, target-major: `LANES` timelines of `steps + slots`
    /// steps (see [`fill_block`]).
    block: Vec<f64>,
    /// Delay and weight rows of the targets of one pass over the events, interleaved.
    lane_rows: LaneRows,
    /// Sparse pull: each presynaptic neuron's spikes (emission steps).
    sources: SourceSpikes,
    /// Sparse pull: the weights in block order when the plan has none cached for the network.
    sparse_w: Vec<f64>,
    /// Recurrent networks, windows of [`forward_ring`]: the weights of every pulled sparse
    /// projection in push order when the plan has none cached for the network
    /// ([`ClockedPlan::push_weights`]), and per projection and spike of `sources` the first synapse
    /// of its source's fan-out not yet delivered, per projection and source its first spike not
    /// yet done (see [`push_window`]).
    push_w: Vec<f64>,
    spike_cur: Vec<u32>,
    src_first: Vec<u32>,
    /// Layered: the steps with spikes of the block being simulated (see [`simulate_lanes`]).
    spike_steps: Vec<SpikeStep>,
}

/// Emission steps of the spikes of every neuron (global index), grouped by neuron (CSR): the
/// per-source spike lists that sparse pull delivery walks for each incoming synapse.
#[derive(Debug, Clone, Default)]
struct SourceSpikes {
    /// Groups by global neuron into `steps`.
    by_neuron: crate::Buckets,
    /// Emission steps, each neuron's in emission order.
    steps: Vec<u32>,
    /// Largest entry of `steps` (0 if none): the bound [`pull_sparse_block`] checks once.
    max_step: u32,
}

impl SourceSpikes {
    /// Groups the input events `(step, input neuron)` and the recorded spikes `(step, global
    /// neuron, _)` of a network of `n` neurons (input population first, at global offset 0).
    fn group(&mut self, n: usize, in_events: &[(u32, u32)], spk: &[(u32, u32, f64)]) {
        let all = in_events.iter().map(|&(t, g)| (g as usize, t)).chain(spk.iter().map(|&(t, g, _)| (g as usize, t)));
        self.by_neuron.sort(n, all, &mut self.steps);
        self.max_step = self.steps.iter().copied().max().unwrap_or(0);
    }

    /// The emission steps of global neuron `g`.
    #[inline]
    fn of(&self, g: usize) -> &[u32] {
        &self.steps[self.by_neuron.range(g)]
    }
}

/// Sparse pull delivery into block `b` of targets (`LANES b ..`) of the population `sp` projects
/// to: for each of the block's synapses (source `i`, target lane `l`, delay `D` steps, weight
/// `w`, from [`SparsePull::block`] and `w`, the projection's weights in block order) and every
/// emission step `t` of `i` (`sources`, presynaptic population at global offset `src_off`),
/// `block[l line_len + t + D] += w`. Straight into the target-major block (`LANES` timelines of
/// `line_len` steps one after the other, see [`fill_block`]), no per-target timeline: the block's
/// synapses come target by target, so the additions of one target stay within its timeline
/// (`8 line_len` bytes, which fits L1 where the whole block does not). Each timeline has rows
/// past step `steps`: the arrivals after the last step land there instead of being tested for,
/// so the inner loop has no bounds test; one check per call (largest emission step and largest
/// delay against the timeline's length) proves every access in range, and panics otherwise.
///
/// Summation order: target by target, each target's synapses by increasing source and each
/// source's spikes in emission order, starting from zero — the order in which a target summed its
/// own timeline before this kernel summed straight into the block, so the sums are the same bit
/// for bit. A step's arrivals are summed source by source rather than in emission order as on the
/// ring: the same values up to the rounding of the sums.
#[inline]
fn pull_sparse_block(
    sp: &SparsePull,
    b: usize,
    w: &[f64],
    sources: &SourceSpikes,
    src_off: usize,
    (block, line_len): (&mut [f64], usize),
) {
    let (r, recs) = sp.block(b);
    assert!(
        block.len() == LANES * line_len && (sources.max_step as usize) + (sp.max_off as usize) / LANES < line_len,
        "sparse pull delivery: arrivals past the block's timelines"
    );
    let base = block.as_mut_ptr();
    for (rec, &w) in recs.iter().zip(&w[r]) {
        let off = rec.off as usize;
        // Lane `off % LANES`'s timeline, at the delay `off / LANES`.
        let at = (off % LANES) * line_len + off / LANES;
        for &t in sources.of(src_off + rec.src as usize) {
            // SAFETY: `t <= sources.max_step` and `off / LANES <= sp.max_off / LANES` (the maxima
            // over all steps and all records), so `t + off / LANES < line_len` by the assertion
            // above and `at + t < (off % LANES + 1) line_len <= LANES line_len == block.len()`;
            // `base` is the only live access to `block` here.
            unsafe { *base.add(at + t as usize) += w };
        }
    }
}

/// Sparse pull delivery into one window of [`forward_ring`]: the arrivals at steps `n0 .. n0 +
/// len` of the `n_post` targets of `sp` into `rows` (the window's arrivals of its population,
/// step-major: step `n`, target `j` at `(n - n0) n_post + j`), pushed from the spikes source by
/// source (increasing), each source's spikes in emission order, each spike through its fan-out by
/// increasing delay (`w` the weights in that order). `spike_cur` (per spike of `sources`) holds
/// the first synapse of the spike's fan-out not yet delivered and `src_first` (per source of `sp`)
/// the source's first spike not yet done; the windows of one pass come in order of their steps,
/// each resuming where the last stopped, and the first (`n0 == 0`) starts them.
///
/// The sum at a target and step is that of [`pull_sparse_block`] bit for bit: a source has at most
/// one synapse into a target, so the target's additions at the step come source by source
/// (increasing) and for one source spike by spike in emission order, as there, from the zero the
/// caller keeps `rows` at, and all in the window that holds the step.
fn push_window(
    sp: &SparsePull,
    w: &[f64],
    (sources, src_off): (&SourceSpikes, usize),
    (spike_cur, src_first): (&mut [u32], &mut [u32]),
    (n0, len): (usize, usize),
    rows: &mut [f64],
) {
    let n_pre = sp.push_starts.len().saturating_sub(1);
    let n_post = sp.starts.len() - 1;
    let ends = sources.by_neuron.starts();
    assert!(
        w.len() == sp.push.len()
            && spike_cur.len() == sources.steps.len()
            && src_first.len() == n_pre
            && src_off + n_pre < ends.len()
            && len * n_post <= rows.len(),
        "sparse pull delivery: window buffers"
    );
    let span = len * n_post;
    let base = rows.as_mut_ptr();
    for (i, first) in src_first.iter_mut().enumerate() {
        let fan = sp.push_starts[i] as usize..sp.push_starts[i + 1] as usize;
        if fan.is_empty() {
            continue;
        }
        let (offs, ws) = (&sp.push[fan.clone()], &w[fan]);
        let g = src_off + i;
        let s_end = ends[g + 1] as usize;
        let mut s = if n0 == 0 { ends[g] } else { *first } as usize;
        *first = s as u32;
        let mut done = true;
        while s < s_end {
            let t = sources.steps[s] as usize;
            if t >= n0 + len {
                break;
            }
            // A spike's first window is the one that holds its step.
            let mut c = if t >= n0 { 0 } else { spike_cur[s] as usize };
            // `(t - n0) n_post`, wrapping when `t < n0`: the arrivals left have `t + D >= n0`.
            let shift = (t * n_post).wrapping_sub(n0 * n_post);
            while c < offs.len() {
                // The arrival's place in the window: below `span` exactly when its step is in
                // `n0 .. n0 + len`; one before `n0` (none: the windows before delivered those)
                // would wrap to a large value and stop the spike too.
                let at = (offs[c] as usize).wrapping_add(shift);
                if at >= span {
                    break;
                }
                // SAFETY: `at < span <= rows.len()` (asserted); `base` is the only live access
                // to `rows` here.
                unsafe { *base.add(at) += ws[c] };
                c += 1;
            }
            spike_cur[s] = c as u32;
            if done {
                if c == offs.len() {
                    *first = s as u32 + 1;
                } else {
                    done = false;
                }
            }
            s += 1;
        }
    }
}

/// The arrivals of targets `j0 .. j0 + lanes` (`j0` a multiple of [`LANES`]) of population `p`
/// into `block`, target-major: `LANES` timelines of `steps + slots` steps (`block[l (steps +
/// slots) + n]` for target `j0 + l` at step `n`; the steps past `steps` take the arrivals after
/// the last step, to be ignored, and lanes past `lanes` are zero). Each sparse pulled projection
/// is summed straight into it ([`pull_sparse_block`], weights `sparse_w` as from
/// [`ClockedPlan::pull_sparse_weights`]; `sources` must hold the spikes of their presynaptic
/// populations), then the dense pulled projections through [`pull_block`] (events in `events`):
/// without sparse projections straight into the block's timelines, otherwise into `line`, whose
/// timelines are then added. A step's arrival at a target is therefore `dense + sparse` with each
/// part summed as alone — the same, bit for bit, as adding a target's sparse timeline to its dense
/// one.
#[allow(clippy::too_many_arguments)]
fn fill_block(
    plan: &ClockedPlan,
    p: usize,
    j0: usize,
    lanes: usize,
    steps: usize,
    events: &PullEvents,
    line: &mut Vec<f64>,
    w_rows: &[f64],
    block: &mut Vec<f64>,
    lane_rows: &mut LaneRows,
    (sources, sparse_w): (&SourceSpikes, &[f64]),
) {
    let pp = &plan.pull[p];
    let line_len = steps + plan.slots;
    block.resize(LANES * line_len, 0.0);
    if pp.sparse.is_empty() {
        // `pull_block` writes (and first clears) the timelines of lanes `0..lanes`.
        block[lanes * line_len..].fill(0.0);
    } else {
        block.fill(0.0);
    }
    let mut w_off = 0;
    for sp in &pp.sparse {
        let w = &sparse_w[w_off..w_off + sp.nnz()];
        pull_sparse_block(sp, j0 / LANES, w, sources, plan.pops[sp.pre].global_off, (block, line_len));
        w_off += sp.nnz();
    }
    if pp.conns.is_empty() {
        if pp.sparse.is_empty() {
            block.fill(0.0);
        }
    } else {
        let add = !pp.sparse.is_empty();
        pull_block(pp, j0, lanes, steps, events, line_len, line, w_rows, block, lane_rows, add);
    }
}

/// Targets per block of the pull paths (one cache line of `f64`).
const LANES: usize = 8;

/// Steps per tile of the pulled arrivals of [`forward_ring`]: a step reads one row of [`LANES`]
/// values per block of targets, `RING_TILE` rows apart (512 bytes: within a page, a stride the
/// hardware prefetchers follow; one block's `(steps + 1) x LANES` rows one after the other put
/// them 64 KiB apart, on the same cache sets, and cost the step loop more than everything else).
const RING_TILE: usize = 8;

/// The events pulled into one population (see [`pull_events`]) and their largest step and column,
/// which the pull kernels check once against their buffers instead of at every event.
#[derive(Debug, Clone, Default)]
struct PullEvents {
    /// `(emission step, column of the target rows)`, in the ring's order.
    list: Vec<(u32, u32)>,
    /// Largest step in `list` (0 if empty).
    max_step: u32,
    /// Largest column in `list` (0 if empty).
    max_col: u32,
    /// Scratch of [`pull_events`]: the populations with dense pulled projections into the
    /// current one, `(first global neuron, end, first and end index into cols)`.
    pre: Vec<(u32, u32, u32, u32)>,
    /// Scratch of [`pull_events`]: the first columns of those projections, population by
    /// population, each population's in the order of its outgoing connections.
    cols: Vec<u32>,
}

impl PullEvents {
    fn clear(&mut self) {
        self.list.clear();
        self.max_step = 0;
        self.max_col = 0;
    }

    #[inline]
    fn push(&mut self, n: u32, c: u32) {
        self.max_step = self.max_step.max(n);
        self.max_col = self.max_col.max(c);
        self.list.push((n, c));
    }
}

/// Pull delivery to targets `j0 .. j0 + lanes` (`lanes <= LANES`) of the population of `pp` into
/// `block`'s target-major timelines (`block[l line_len + n]`, see [`fill_block`]), `K` targets at a
/// time (see [`pull_lanes`]): straight into the block, or, with `add`, into `line` and then added
/// to the block's timelines (steps `0..=steps`), which hold arrivals already. Lanes past `lanes`
/// untouched.
#[allow(clippy::too_many_arguments)]
fn pull_block(
    pp: &PullPop,
    j0: usize,
    lanes: usize,
    steps: usize,
    events: &PullEvents,
    line_len: usize,
    line: &mut Vec<f64>,
    w_rows: &[f64],
    block: &mut [f64],
    lane_rows: &mut LaneRows,
    add: bool,
) {
    let mut l = 0;
    while l < lanes {
        let k = match lanes - l {
            4.. => 4,
            2 | 3 => 2,
            _ => 1,
        };
        let out = if add {
            line.resize(k * line_len, 0.0);
            &mut line[..]
        } else {
            &mut block[l * line_len..(l + k) * line_len]
        };
        match k {
            4 => pull_lanes::<4>(pp, j0 + l, events, line_len, out, w_rows, lane_rows),
            2 => pull_lanes::<2>(pp, j0 + l, events, line_len, out, w_rows, lane_rows),
            _ => pull_lanes::<1>(pp, j0 + l, events, line_len, out, w_rows, lane_rows),
        };
        if add {
            let targets = block[l * line_len..(l + k) * line_len].chunks_exact_mut(line_len);
            for (timeline, target) in targets.zip(line.chunks_exact(line_len)) {
                for (x, &y) in timeline[..=steps].iter_mut().zip(&target[..=steps]) {
                    *x += y;
                }
            }
        }
        l += k;
    }
}

/// The delay steps and weights of the `K` targets of one [`pull_lanes`] call, interleaved by
/// column (`d[c * K + l]`, `w[c * K + l]` for target `l`): one event reads one short run of each.
#[derive(Debug, Clone, Default)]
struct LaneRows {
    d: Vec<u32>,
    w: Vec<f64>,
}

/// Pull delivery to the `K` targets `j .. j + K` of the population of `pp` in one pass over the
/// events: target `j + l` gets `line[l * line_len + t + D] += w` for each event (`t` its step,
/// `D`, `w` the target's delay steps and weight in the event's column; `line`, `K * line_len`
/// long, cleared first, `line_len = steps + slots`, so arrivals after step `steps` land in each
/// timeline's tail). The `K` chains of additions are independent and each timeline receives its
/// events in the order of `events`, as it would alone: the result is the same for every `K`, bit
/// for bit. `w_rows` as from [`ClockedPlan::pull_weights`]; `lanes` is scratch. Returns `K`.
#[inline]
fn pull_lanes<const K: usize>(
    pp: &PullPop,
    j: usize,
    events: &PullEvents,
    line_len: usize,
    line: &mut [f64],
    w_rows: &[f64],
    lanes: &mut LaneRows,
) -> usize {
    assert_eq!(line.len(), K * line_len, "pull delivery: K timelines");
    line.fill(0.0);
    if events.list.is_empty() {
        return K;
    }
    let rl = pp.row_len;
    lanes.d.clear();
    lanes.d.resize(K * rl, 0);
    lanes.w.clear();
    lanes.w.resize(K * rl, 0.0);
    for l in 0..K {
        let (d_row, w_row) = (&pp.delay_rows[(j + l) * rl..(j + l + 1) * rl], &w_rows[(j + l) * rl..(j + l + 1) * rl]);
        for (c, (&d, &w)) in d_row.iter().zip(w_row).enumerate() {
            lanes.d[c * K + l] = d;
            lanes.w[c * K + l] = w;
        }
    }
    // The bounds of every access below, checked once (they hold for the plan's own buffers:
    // event steps are at most `steps`, delay steps below `slots`).
    assert!(
        (events.max_col as usize) < rl && (events.max_step as usize + pp.max_delay as usize) < line_len,
        "pull delivery: events outside the target rows or timelines"
    );
    let (dp, wp) = (lanes.d.as_ptr(), lanes.w.as_ptr());
    let base = line.as_mut_ptr();
    for &(n, c) in &events.list {
        let (n, c) = (n as usize, c as usize);
        for l in 0..K {
            // SAFETY: `c <= max_col < rl`, so `c * K + l < K * rl`, the length of `lanes.d` and
            // `lanes.w`; every delay there is an entry of `pp.delay_rows`, at most `max_delay`, so
            // `n + d <= max_step + max_delay < line_len` and `l * line_len + n + d < K * line_len
            // == line.len()`. `base` is the only live access to `line` here, `dp`/`wp` only read.
            unsafe {
                let o = l * line_len + n + *dp.add(c * K + l) as usize;
                *base.add(o) += *wp.add(c * K + l);
            }
        }
    }
    K
}

impl ClockedState {
    fn reset(&mut self, plan: &ClockedPlan, ring: bool) {
        for b in [&mut self.v, &mut self.i] {
            b.clear();
            b.resize(plan.n_state, 0.0);
        }
        self.ring.clear();
        if ring {
            self.ring.resize(plan.ring_len(), 0.0);
        }
    }

    /// Bytes held by the buffers (capacity).
    pub fn heap_bytes(&self) -> usize {
        8 * (self.v.capacity()
            + self.i.capacity()
            + self.ring.capacity()
            + self.acc.capacity()
            + self.acc_t.capacity()
            + self.pull.line.capacity()
            + self.pull.w_row.capacity()
            + self.pull.events.list.capacity()
            + self.pull.in_events.capacity()
            + self.pull.pre.capacity()
            + self.pull.win.capacity()
            + self.pull.fac.capacity()
            + self.pull.block.capacity()
            + self.pull.lane_rows.w.capacity()
            + self.pull.sparse_w.capacity())
            + 4 * self.pull.lane_rows.d.capacity()
            + 8 * self.pull.push_w.capacity()
            + 4 * (self.pull.spike_cur.capacity() + self.pull.src_first.capacity())
            + 4 * (self.pull.sources.steps.capacity() + self.pull.events.cols.capacity())
            + 16 * (self.pull.events.pre.capacity() + self.pull.pre_off.capacity())
            + 8 * self.pull.fired.capacity()
            + self.pull.sources.by_neuron.heap_bytes()
            + 16 * (self.pull.spk.capacity() + self.pull.spk_new.capacity() + self.pull.spk_merged.capacity())
            + self.pull.by_step.heap_bytes()
            + std::mem::size_of::<usize>() * self.readout_steps.capacity()
    }
}

/// Working buffers of [`ClockedEngine`]: its plan (rebuilt by `run_into` when the network's
/// delays changed, see [`ClockedPlan::refresh`]) and its state.
#[derive(Debug, Clone, Default)]
pub struct ClockedScratch {
    /// Plan of the last network run.
    pub plan: ClockedPlan,
    /// Forward state.
    pub state: ClockedState,
}

impl Simulator for ClockedEngine {
    type Scratch = ClockedScratch;

    fn config(&self) -> &SimConfig {
        &self.config
    }

    fn scratch(&self, _net: &Network) -> ClockedScratch {
        ClockedScratch::default()
    }

    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        scratch: &mut ClockedScratch,
        out: &mut ForwardRecord,
    ) -> Result<()> {
        scratch.plan.refresh(net, self)?;
        if self.delivery == Delivery::Pull {
            scratch.plan.refresh_weights(net)?;
        }
        forward(self, net, &scratch.plan, input, &mut scratch.state, out)
    }

    /// Builds the plan once (with the weight rows of pull delivery, [`ClockedEngine::plan`]), then
    /// runs the samples in parallel (one [`ClockedState`] per rayon job).
    fn run_batch(&self, net: &Network, batch: &SpikeTrains) -> Result<Vec<ForwardRecord>> {
        check_input(net, batch)?;
        let plan = self.plan(net)?;
        (0..batch.len())
            .into_par_iter()
            .map_init(ClockedState::default, |state, s| {
                let mut out = ForwardRecord::default();
                forward(self, net, &plan, batch.sample(s), state, &mut out).map(|()| out)
            })
            .collect()
    }
}

fn forward(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    st: &mut ClockedState,
    out: &mut ForwardRecord,
) -> Result<()> {
    forward_with(engine, net, plan, input, st, out, forward_ring)
}

/// The signature of [`forward_ring`] (the tests pass the step loop it replaced instead).
type RingLoop = fn(
    &ClockedEngine,
    &Network,
    &ClockedPlan,
    SpikeTrain<'_>,
    usize,
    bool,
    &mut ClockedState,
    &mut ForwardRecord,
) -> Result<()>;

/// [`forward`] with `ring` as the step loop of recurrent networks.
// Index loops touch several parallel arrays (state, accumulators, record) at once.
#[allow(clippy::needless_range_loop)]
fn forward_with(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    st: &mut ClockedState,
    out: &mut ForwardRecord,
    ring: RingLoop,
) -> Result<()> {
    out.clear();
    let cfg = &engine.config;
    let in_pop = net.input().0;
    let out_pop = net.output().0;
    plan.check_shape(net)?;
    validate(plan.pops[in_pop].size, 0, input.times, input.neurons)?;
    let op = plan.pops[out_pop];
    if matches!(cfg.readout, ReadoutKind::FirstSpike) && op.theta.is_none() {
        return Err(CoreError::InvalidNetwork("FirstSpike readout needs a LIF output population"));
    }
    let pull = engine.delivery == Delivery::Pull;
    let layered = pull && plan.layers.is_some();
    st.reset(plan, !layered);
    let n_out = op.size;
    let steps = engine.steps;
    let t_end = cfg.t_end;

    // Readout accumulators.
    st.acc.clear();
    st.acc_t.clear();
    st.readout_steps.clear();
    match &cfg.readout {
        ReadoutKind::ExpIntegral => st.acc.resize(n_out, 0.0),
        ReadoutKind::MaxVoltage => {
            st.acc.resize(n_out, f64::NEG_INFINITY);
            st.acc_t.resize(n_out, 0.0);
        }
        ReadoutKind::FirstSpike => st.acc.resize(n_out, f64::INFINITY),
        ReadoutKind::VoltageAt(ts) => {
            st.acc.resize(n_out * ts.len(), 0.0);
            st.readout_steps.extend(ts.iter().map(|&t| engine.step_of(t).min(steps)));
        }
    }
    let n_input = input.times.iter().position(|&t| t >= t_end).unwrap_or(input.len());
    if pull {
        st.pull.in_events.clear();
        st.pull
            .in_events
            .extend(input.times[..n_input].iter().zip(input.neurons).map(|(&t, &j)| (engine.step_of(t) as u32, j)));
    }
    if layered {
        forward_layered(engine, net, plan, st, out)?;
    } else {
        ring(engine, net, plan, input, n_input, pull, st, out)?;
    }
    finish_readout(cfg, steps, &st.acc, &st.acc_t, out);
    Ok(())
}

/// The step-by-step loop over all populations with the ring buffer; with `pull`, the input
/// projections are pulled into `pre` and added after each step's ring slot: with dense pulled
/// projections the whole run's arrivals first, in tiles of [`RING_TILE`] steps; when all are
/// sparse, window by window of [`RING_WINDOW`] steps just before the loop absorbs them, pushed from
/// the input spikes into one window's step-major rows ([`fill_window`]), bit for bit the same sums;
/// the loop clears each row as it absorbs it, so the rows are clear for the next window's pushes.
///
/// Each step `n > 0` starts with one pass over the neurons, population by population in blocks of
/// [`LANES`] side by side ([`ring_pass`]): absorb step `n - 1`'s arrivals (its ring slot, cleared,
/// then its pulled arrivals), propagate, test for spikes (steps `1..steps`), record and reset the
/// spiking neurons. Then the step's spikes go through the ring in the order the pass found them
/// (population by population, neuron by neuron), then the input spikes of the step, then the
/// readout of step `n`. Every neuron sees the same operations in the same order as in the five
/// parts of a step one after the other (see the module doc), and the scatters of step `n` come
/// after the whole pass, so none lands in slot `n - 1` before it is absorbed (a delay of
/// `slots - 1` steps wraps onto it): the same states, spikes and readouts, bit for bit. Step
/// `steps`' arrivals are not absorbed: nothing reads `I` after the last step.
#[allow(clippy::too_many_arguments)]
fn forward_ring(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    n_input: usize,
    pull: bool,
    st: &mut ClockedState,
    out: &mut ForwardRecord,
) -> Result<()> {
    forward_ring_in::<RING_WINDOW, PUSH_MAX_PER_CELL>(engine, net, plan, input, n_input, pull, st, out)
}

/// Steps per window of [`forward_ring`] when every pulled projection is sparse: the pulled
/// arrivals are pushed window by window, just before the step loop absorbs them, into one
/// window's step-major rows (`RING_WINDOW x size`, 512 KiB for 512 targets, which stay in L2)
/// instead of the whole run's tiles (4.1 MB for 1001 steps). 128 steps: the fastest of 32, 64,
/// 128 and 256 on the 700-512r-20 network at p = 0.1 (shorter windows visit each spike's
/// fan-out more often: a spike delivers in every window its delays reach).
const RING_WINDOW: usize = 128;

/// Windows of [`forward_ring`] only while at most this many synapse-events are pushed per step
/// and target of a population (all its pulled projections sparse), and at most
/// [`PUSH_MAX_PER_STEP`] per step over its targets: the pushes miss L1 (a spike's fan-out spreads
/// over the window's rows), where the whole-run fill sums each target's arrivals in an
/// L1-resident timeline and pays per step and target (a copy, and the tiles' traffic) instead.
/// Measured with `sparse_pull_profile rMODE 16 N shape=HxO` (700-Hr-O, input arrivals per step and
/// target 0.77 / 1.5 / 2.3 / 3.1 / 3.9 / 5.4 / 6.6 / 7.8 at p = 0.1 / 0.2 / 0.3 / 0.4 / 0.5 / 0.7
/// / 0.85 / 1 at every width; rounds alternating binaries that window or not): on 700-256r-20 the
/// windows cut the forward CPU time up to p = 0.7 (5.4 per target: `r0.7 16 10 shape=256x20`, 6
/// rounds, 3.20 -> 2.78 ms per sample, faster in 6 of 6), were mixed at 0.85 (6.6: 5 of 6 rounds
/// faster in one session, 3.36 -> 3.44 ms and 1 of 6, one even, in another) and lost at 1 (7.8),
/// hence 6 ([`windows_pay`]).
const PUSH_MAX_PER_CELL: usize = 6;

/// The most synapse-events pushed per step into one population for which its windows pay: a
/// wider population's window (`RING_WINDOW x size` values, 1 MiB for 1024 targets) no longer stays
/// in L2 next to the ring (likely; not checked), so its pushes cost more. On 700-512r-20 the
/// windows won up to p = 0.7 (2765 per step), were mixed at 0.85 (3379) and lost at 1; on
/// 700-1024r-35 they won at 0.1 and 0.2 (1570), were even at 0.3 (2355) and lost from 0.4 (3174):
/// `5 x 512` lies between the two widths' limits (512 wide: up to p = 0.5 windowed).
const PUSH_MAX_PER_STEP: usize = 5 * 512;

/// Whether a population of `size` targets into which `pushed` synapse-events are pushed over
/// `steps` steps takes the windows of [`forward_ring`]: at most `max_per_cell` per step and
/// target, and at most [`PUSH_MAX_PER_STEP`] per step.
fn windows_pay(pushed: usize, steps: usize, size: usize, max_per_cell: usize) -> bool {
    pushed <= steps * (max_per_cell * size).min(PUSH_MAX_PER_STEP)
}

/// The synapse-events that [`push_window`] pushes for `sp` over a pass: each spike of a source
/// (in `sources`, the presynaptic population at global offset `src_off`) times its fan-out.
fn push_events(sp: &SparsePull, sources: &SourceSpikes, src_off: usize) -> usize {
    let ends = sources.by_neuron.starts();
    sp.push_starts
        .windows(2)
        .enumerate()
        .map(|(i, f)| {
            (f[1] - f[0]) as usize * ends.get(src_off + i + 1).map_or(0, |&e| (e - ends[src_off + i]) as usize)
        })
        .sum()
}

/// [`forward_ring`] with windows of `W` steps while at most `MAX_PER_CELL` synapse-events are
/// pushed per step and target (the tests use short windows, and 0 for the whole-run fill) when
/// every pulled projection is sparse ([`push_window`]); with dense pulled projections the whole
/// run is one window, filled block by block ([`fill_block`]).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn forward_ring_in<const W: usize, const MAX_PER_CELL: usize>(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    input: SpikeTrain<'_>,
    n_input: usize,
    pull: bool,
    st: &mut ClockedState,
    out: &mut ForwardRecord,
) -> Result<()> {
    const { assert!(W > 0, "windows of at least one step") };
    let cfg = &engine.config;
    let in_pop = net.input().0;
    let out_pop = net.output().0;
    let op = plan.pops[out_pop];
    let n_out = op.size;
    let steps = engine.steps;
    let dt = engine.dt;
    let t_end = cfg.t_end;
    let n_state = plan.n_state;
    let mut next_readout = 0usize;
    // `pre` holds the pulled arrivals: the whole run's in tiles of `RING_TILE` steps (per tile,
    // each block's `RING_TILE x LANES` values, step-major, block after block), or, `windowed`,
    // `win` those of one window of `window` steps, step-major.
    let tiles = (steps + 1).div_ceil(RING_TILE);
    let tile_row = RING_TILE * LANES;
    let (windowed, window);
    {
        let PullBuffers {
            pre,
            win,
            win_zero,
            pre_off,
            line,
            w_row,
            events,
            in_events,
            block,
            lane_rows,
            sources,
            sparse_w,
            spike_cur,
            src_first,
            ..
        } = &mut *st.pull;
        if pull && plan.pull.iter().any(|pp| !pp.sparse.is_empty()) {
            sources.group(plan.num_neurons(), in_events, &[]);
        }
        windowed = pull
            && plan.pull.iter().all(|pp| pp.conns.is_empty())
            && plan.pull.iter().any(|pp| !pp.sparse.is_empty())
            && plan.pull.iter().enumerate().all(|(p, pp)| {
                // Synapse-events pushed into the population, against its steps x targets.
                let pushed: usize =
                    pp.sparse.iter().map(|sp| push_events(sp, sources, plan.pops[sp.pre].global_off)).sum();
                windows_pay(pushed, steps, plan.pops[p].size, MAX_PER_CELL)
            });
        window = if windowed { W.min(tiles * RING_TILE) } else { tiles * RING_TILE };
        pre_off.clear();
        let mut len = 0;
        for (p, pp) in plan.pull.iter().enumerate() {
            if pull && !pp.is_empty() {
                pre_off.push(Some(len));
                let size = plan.pops[p].size;
                // Windows: `window` rows of `size` (and `LANES` more for the last row's partial
                // block, whose lanes past the population `ring_pass` reads and ignores).
                len += if windowed { window * size + LANES } else { tiles * size.div_ceil(LANES) * tile_row };
            } else {
                pre_off.push(None);
            }
        }
        // Whole run: every entry that is read is written below, no clearing. Windows: all zero
        // before the first is pushed (cleared here unless the last run left them so), and the
        // step loop clears each row as it absorbs it, so the next window's pushes find it clear.
        if windowed {
            if !*win_zero {
                win.clear();
            }
            // `LANES` more, to start the windows on a cache line (rows of a multiple of `LANES`
            // targets then stay on whole lines, and so do the loop's loads and clearing stores).
            win.resize(len + LANES, 0.0);
            let skew = win.as_ptr().align_offset(LANES * 8).min(LANES);
            for o in pre_off.iter_mut().flatten() {
                *o += skew;
            }
            // Until the step loop is done (it may stop at a spike cap, mid-window).
            *win_zero = false;
        } else {
            pre.resize(len, 0.0);
        }
        if windowed {
            // Pushed in the step loop, from the weights in push order (`push_weights` below).
            let (mut n_sp, mut n_src) = (0, 0);
            for sp in plan.pull.iter().flat_map(|pp| &pp.sparse) {
                n_sp += 1;
                n_src += sp.push_starts.len().saturating_sub(1);
            }
            spike_cur.clear();
            spike_cur.resize(n_sp * sources.steps.len(), 0);
            src_first.clear();
            src_first.resize(n_src, 0);
        } else if pull {
            for (p, pp) in plan.pull.iter().enumerate() {
                let Some(first) = pre_off[p] else { continue };
                pull_events(net, plan, pp, in_events, &[], events);
                let w_rows = plan.pull_weight_rows(net, p, w_row);
                let sw = plan.pull_sparse_weights(net, p, sparse_w);
                let size = plan.pops[p].size;
                let blocks = size.div_ceil(LANES);
                let line_len = steps + plan.slots;
                for j0 in (0..size).step_by(LANES) {
                    let lanes = (size - j0).min(LANES);
                    fill_block(plan, p, j0, lanes, steps, events, line, w_rows, block, lane_rows, (sources, sw));
                    // The block's timelines (target-major, lanes past `lanes` zero) step-major into
                    // its part of each tile of `pre`: runs of `RING_TILE` rows written in order, and
                    // a step of the loop reads one row per block at a constant stride.
                    let b = j0 / LANES;
                    for n in 0..=steps {
                        let row = first + ((n / RING_TILE) * blocks + b) * tile_row + (n % RING_TILE) * LANES;
                        for (l, x) in pre[row..row + LANES].iter_mut().enumerate() {
                            *x = block[l * line_len + n];
                        }
                    }
                }
            }
        }
    }

    let ClockedState { v, i, ring, acc, acc_t, readout_steps, pull: bufs } = st;
    let PullBuffers { pre, win, win_zero, pre_off, fired, sources, push_w, spike_cur, src_first, .. } = &mut **bufs;
    let pre = if windowed { win } else { pre };
    let push_w = if windowed { plan.push_weights(net, push_w) } else { &[] };
    // With pull delivery the input spikes still go through the ring for the pushed (sparse)
    // input projections, if any.
    let in_conns = net.outgoing(PopulationId(in_pop));
    let pushes_input = !pull || in_conns.iter().any(|c| !plan.is_pulled(c.0));
    let mut next_input = if pushes_input { 0 } else { n_input };
    let first_spike = matches!(cfg.readout, ReadoutKind::FirstSpike);

    for n in 0..=steps {
        let base_off = (n % plan.slots) * n_state;
        if n > 0 {
            if windowed && (n - 1) % window == 0 {
                // The pulled arrivals of the next window, steps `n - 1 ..`, as the loop reads them.
                let win = (n - 1, window.min(steps - (n - 1)));
                fill_window(plan, (pre, pre_off, window), (sources, push_w), (spike_cur, src_first), win);
            }
            // 4. of step n - 1, then 1.-2.: absorb, propagate, spike test and reset.
            let prev_off = ((n - 1) % plan.slots) * n_state;
            let t = n as f64 * dt;
            fired.clear();
            for (pi, p) in plan.pops.iter().enumerate() {
                if p.is_input {
                    continue;
                }
                let r = p.state_off..p.state_off + p.size;
                let pulled = match pre_off[pi] {
                    None => None,
                    Some(o) if windowed => {
                        Some((&mut pre[o..o + window * p.size + LANES], ((n - 1) % window) * p.size))
                    }
                    Some(o) => {
                        let blocks = p.size.div_ceil(LANES);
                        let row = ((n - 1) / RING_TILE) * blocks * tile_row + ((n - 1) % RING_TILE) * LANES;
                        Some((&mut pre[o..o + tiles * blocks * tile_row], row))
                    }
                };
                let mut step = RingStep {
                    a: p.alpha,
                    b: p.beta,
                    c: p.coupling,
                    theta: p.theta.filter(|_| n < steps),
                    pulled,
                    // Windows: the blocks of a step side by side; the whole run: a tile apart.
                    stride: if windowed { LANES } else { tile_row },
                    clear: windowed,
                };
                let mut sink = RingSink {
                    spikes: &mut out.spikes,
                    fired,
                    cap: cfg.max_spikes,
                    t,
                    pop: pi as u32,
                    g0: p.global_off as u32,
                    first: (pi == out_pop && first_spike).then_some(&mut acc[..]),
                };
                let slot = &mut ring[prev_off + p.state_off..prev_off + p.state_off + p.size];
                ring_pass(&mut step, &mut v[r.clone()], &mut i[r], slot, &mut sink)?;
            }
            // 3. the step's spikes through the ring, in the order found.
            for &(pi, j) in fired.iter() {
                for &cid in net.outgoing(PopulationId(pi as usize)) {
                    let conn = net.connection(cid);
                    let col = conn.fan_out(j as usize).indices();
                    let offsets = &plan.conns[cid.0].offsets;
                    scatter(ring, base_off, &conn.weight_values()[col.clone()], &offsets[col]);
                }
            }
        }
        // 3. input spikes binned to this step
        while next_input < n_input && engine.step_of(input.times[next_input]) <= n {
            let j = input.neurons[next_input] as usize;
            for &cid in in_conns {
                if pull && plan.is_pulled(cid.0) {
                    continue;
                }
                let conn = net.connection(cid);
                let col = conn.fan_out(j).indices();
                let offsets = &plan.conns[cid.0].offsets;
                scatter(ring, base_off, &conn.weight_values()[col.clone()], &offsets[col]);
            }
            next_input += 1;
        }
        // 5. readout (`V` is final for the step: absorbing its arrivals changes only `I`)
        let vo = &v[op.state_off..op.state_off + n_out];
        match &cfg.readout {
            ReadoutKind::ExpIntegral => {
                let f = (-(n as f64 * dt) / t_end).exp();
                for (a, &x) in acc.iter_mut().zip(vo) {
                    *a += f * x;
                }
            }
            ReadoutKind::MaxVoltage => {
                for k in 0..n_out {
                    if vo[k] > acc[k] {
                        acc[k] = vo[k];
                        acc_t[k] = n as f64 * dt;
                    }
                }
            }
            ReadoutKind::FirstSpike => {}
            ReadoutKind::VoltageAt(_) => {
                let nt = readout_steps.len();
                while next_readout < nt && readout_steps[next_readout] == n {
                    for k in 0..n_out {
                        acc[k * nt + next_readout] = vo[k];
                    }
                    next_readout += 1;
                }
            }
        }
    }
    // Every row of the windows was absorbed, and cleared (rows past the last window's steps were
    // cleared by the window before, or never written).
    if windowed {
        *win_zero = true;
    }

    Ok(())
}

/// The pulled arrivals of steps `n0 .. n0 + len` (one window of [`forward_ring_in`], every pulled
/// projection sparse) into `pre`, step-major per population (`window x size` from `pre_off[p]`),
/// which must be zero (the step loop clears each row it absorbs): each sparse projection pushed in
/// plan order ([`push_window`]; `push_w` their weights in push order one after the other,
/// `spike_cur` and `src_first` their cursors one projection after the other).
fn fill_window(
    plan: &ClockedPlan,
    (pre, pre_off, window): (&mut [f64], &[Option<usize>], usize),
    (sources, push_w): (&SourceSpikes, &[f64]),
    (spike_cur, src_first): (&mut [u32], &mut [u32]),
    (n0, len): (usize, usize),
) {
    let n_spikes = sources.steps.len();
    let (mut w_off, mut c_off, mut f_off) = (0, 0, 0);
    for (p, pp) in plan.pull.iter().enumerate() {
        let size = plan.pops[p].size;
        let Some(first) = pre_off[p] else { continue };
        let rows = &mut pre[first..first + window * size];
        for sp in &pp.sparse {
            let (nnz, n_pre) = (sp.push.len(), sp.push_starts.len().saturating_sub(1));
            let src = (sources, plan.pops[sp.pre].global_off);
            let cur = (&mut spike_cur[c_off..c_off + n_spikes], &mut src_first[f_off..f_off + n_pre]);
            push_window(sp, &push_w[w_off..w_off + nnz], src, cur, (n0, len), rows);
            (w_off, c_off, f_off) = (w_off + nnz, c_off + n_spikes, f_off + n_pre);
        }
    }
}

/// The constants of one population's part of a step of [`forward_ring`] ([`ring_pass`]).
struct RingStep<'a> {
    /// `V <- a V + c I`, `I <- b I`.
    a: f64,
    b: f64,
    c: f64,
    /// The threshold if the population is LIF and the step has a spike test.
    theta: Option<f64>,
    /// The population's pulled arrivals and the offset of the absorbed step's row of its first
    /// block: block `k`'s is `stride k` further (see [`forward_ring`]).
    pulled: Option<(&'a mut [f64], usize)>,
    stride: usize,
    /// Whether to zero the population's entries of the absorbed row (the windows of
    /// [`forward_ring`], which the next window's pushes then find clear).
    clear: bool,
}

/// Where [`ring_pass`] puts a step's spikes: the record (at most `cap` spikes), `(population,
/// neuron)` onto `fired` for the scatters, and with `first` (`FirstSpike` readout of the output
/// population) each neuron's first spike time.
struct RingSink<'a> {
    spikes: &'a mut crate::record::SpikeRecord,
    fired: &'a mut Vec<(u32, u32)>,
    cap: usize,
    /// The step's time.
    t: f64,
    pop: u32,
    /// The population's first global neuron.
    g0: u32,
    first: Option<&'a mut [f64]>,
}

impl RingSink<'_> {
    /// Neuron `j` spiked with `I - V` = `imv`.
    #[inline(never)]
    fn fire(&mut self, j: usize, imv: f64) -> Result<()> {
        if self.spikes.len() >= self.cap {
            return Err(CoreError::SpikeCapExceeded { cap: self.cap });
        }
        self.spikes.push(self.t, self.g0 + j as u32, imv);
        if let Some(acc) = self.first.as_deref_mut()
            && acc[j] == f64::INFINITY
        {
            acc[j] = self.t;
        }
        self.fired.push((self.pop, j as u32));
        Ok(())
    }
}

/// One population's part of a step of [`forward_ring`], neurons `j` in blocks of [`LANES`]:
/// `I += slot[j]`, `slot[j] = 0`, `I += pulled` (the absorbed step's arrivals; with
/// [`RingStep::clear`] then `pulled = 0`), then `V <- a V + c I`, `I <- b I`, and with a
/// threshold, for each neuron with `!(V < theta)` (a NaN voltage counts) in neuron order, the
/// spike with `I - V` into `sink` and `V = 0`. The operations of the scalar loops, each rounded on
/// its own (SSE2 pairs, or AVX quads without FMA): the same bits.
fn ring_pass(
    step: &mut RingStep<'_>,
    v: &mut [f64],
    i: &mut [f64],
    slot: &mut [f64],
    sink: &mut RingSink<'_>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { ring_pass_avx(step, v, i, slot, sink) };
    }
    ring_pass_with::<Pairs>(step, v, i, slot, sink)
}

/// [`ring_pass`] compiled with AVX ([`Quads`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn ring_pass_avx(
    step: &mut RingStep<'_>,
    v: &mut [f64],
    i: &mut [f64],
    slot: &mut [f64],
    sink: &mut RingSink<'_>,
) -> Result<()> {
    ring_pass_with::<Quads>(step, v, i, slot, sink)
}

#[inline(always)]
fn ring_pass_with<B: Block8>(
    step: &mut RingStep<'_>,
    v: &mut [f64],
    i: &mut [f64],
    slot: &mut [f64],
    sink: &mut RingSink<'_>,
) -> Result<()> {
    let size = v.len();
    let blocks = size.div_ceil(LANES);
    assert!(
        i.len() == size
            && slot.len() == size
            && step.pulled.as_ref().is_none_or(|(pre, row)| row + (blocks - 1) * step.stride + LANES <= pre.len()),
        "ring pass: state, slot and pulled arrivals of one population"
    );
    let k = RingLanes {
        a: B::splat(step.a),
        b: B::splat(step.b),
        c: B::splat(step.c),
        th: B::splat(step.theta.unwrap_or(0.0)),
        theta: step.theta,
    };
    let stride = step.stride;
    // The pulled row of block `bk`: `LANES` values from `pulled.add(bk * stride)` (asserted).
    let pulled = step.pulled.as_mut().map(|(pre, row)| pre[*row..].as_mut_ptr());
    let full = size / LANES;
    for bk in 0..full {
        let j0 = bk * LANES;
        // SAFETY: `j0 + LANES <= size`, the length of `v`, `i` and `slot` (asserted), and the pulled
        // row is `LANES` values in `pre`, the only live access to it here.
        unsafe {
            let p = pulled.map(|p| p.add(bk * stride));
            let at = (v.as_mut_ptr().add(j0), i.as_mut_ptr().add(j0), slot.as_mut_ptr().add(j0), p);
            if let Some(p) = p {
                // The block's next row (the next tile's, or the window's next step), if any.
                prefetch(p.wrapping_add(blocks * stride));
            }
            k.block(at, (step.clear, LANES), j0, sink)?;
        }
    }
    if full < blocks {
        // The last, partial block through copies (lanes past the population's zero); its pulled
        // row's lanes past the population may be another row's, so only `lanes` are cleared.
        let (j0, lanes) = (full * LANES, size - full * LANES);
        let (mut tv, mut ti, mut ts) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        tv[..lanes].copy_from_slice(&v[j0..]);
        ti[..lanes].copy_from_slice(&i[j0..]);
        ts[..lanes].copy_from_slice(&slot[j0..]);
        // SAFETY: the copies are `LANES` long, the pulled row is `LANES` values in `pre`.
        unsafe {
            let p = pulled.map(|p| p.add(full * stride));
            k.block((tv.as_mut_ptr(), ti.as_mut_ptr(), ts.as_mut_ptr(), p), (false, lanes), j0, sink)?;
            if let (Some(p), true) = (p, step.clear) {
                std::slice::from_raw_parts_mut(p, lanes).fill(0.0);
            }
        }
        v[j0..].copy_from_slice(&tv[..lanes]);
        i[j0..].copy_from_slice(&ti[..lanes]);
        slot[j0..].copy_from_slice(&ts[..lanes]);
    }
    Ok(())
}

/// A hint to load the cache line at `p` (nothing on other targets); `p` need not point into an
/// allocation (a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const f64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch does not access memory.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The constants of [`ring_pass`] as vectors.
struct RingLanes<B> {
    a: B,
    b: B,
    c: B,
    th: B,
    theta: Option<f64>,
}

impl<B: Block8> RingLanes<B> {
    /// One block of [`ring_pass`]: neurons `j0 + l` for lanes `l < lanes` (the others computed
    /// and ignored); with `clear`, the pulled values are zeroed once read.
    ///
    /// # Safety
    /// `v`, `i` and `slot` valid for reads and writes of [`LANES`] `f64`, `pulled` for reads (and
    /// writes with `clear`).
    #[inline(always)]
    unsafe fn block(
        &self,
        (v, i, slot, pulled): (*mut f64, *mut f64, *mut f64, Option<*mut f64>),
        (clear, lanes): (bool, usize),
        j0: usize,
        sink: &mut RingSink<'_>,
    ) -> Result<()> {
        // SAFETY (every access): the caller's.
        unsafe {
            let mut ib = B::loadu(i).add(B::loadu(slot));
            B::splat(0.0).storeu(slot);
            if let Some(p) = pulled {
                ib = ib.add(B::loadu(p));
                if clear {
                    B::splat(0.0).storeu(p);
                }
            }
            let mut vb = self.a.mul(B::loadu(v)).add(self.c.mul(ib));
            ib = ib.mul(self.b);
            if let Some(theta) = self.theta {
                let over = vb.not_below(self.th);
                if over.any() {
                    let (vl, il) = (vb.to_lanes(), ib.to_lanes());
                    for l in 0..lanes {
                        if vl[l] < theta {
                            continue;
                        }
                        sink.fire(j0 + l, il[l] - vl[l])?;
                    }
                    vb = vb.zero_where(over);
                }
            }
            vb.storeu(v);
            ib.storeu(i);
        }
        Ok(())
    }
}

/// Moves the readout accumulators into the record.
fn finish_readout(cfg: &SimConfig, steps: usize, acc: &[f64], acc_t: &[f64], out: &mut ForwardRecord) {
    let r = &mut out.readout;
    match &cfg.readout {
        ReadoutKind::ExpIntegral => r.values.extend(acc.iter().map(|a| a / steps as f64)),
        ReadoutKind::MaxVoltage => {
            r.values.extend_from_slice(acc);
            r.times.extend_from_slice(acc_t);
            r.kinks.resize(acc.len(), None);
        }
        ReadoutKind::FirstSpike => {
            r.values.extend_from_slice(acc);
            r.times.extend_from_slice(acc);
        }
        ReadoutKind::VoltageAt(_) => r.values.extend_from_slice(acc),
    }
}

/// The events pulled into one population, `(emission step, column of the target rows)`, in the
/// order the ring would receive them: step by step, first the recorded LIF spikes (`spk`, sorted
/// by step and global neuron; each through the population's outgoing connections in order), then
/// the input spikes of the step (`in_events`, in input order).
fn pull_events(
    net: &Network,
    plan: &ClockedPlan,
    pp: &PullPop,
    in_events: &[(u32, u32)],
    spk: &[(u32, u32, f64)],
    events: &mut PullEvents,
) {
    events.clear();
    if pp.conns.is_empty() {
        return; // only sparse projections (or none): they read the spikes by source, not events
    }
    // Per presynaptic population, the first columns of its dense pulled projections.
    events.pre.clear();
    events.cols.clear();
    let mut in_cols = 0..0;
    for (q, pop) in plan.pops.iter().enumerate() {
        let c0 = events.cols.len();
        for cid in net.outgoing(PopulationId(q)) {
            if let Some(&(_, first)) = pp.conns.iter().find(|&&(c, _)| c == cid.0) {
                events.cols.push(first as u32);
            }
        }
        let c1 = events.cols.len();
        if q == net.input().0 {
            in_cols = c0..c1;
        } else if c1 > c0 {
            events.pre.push((pop.global_off as u32, (pop.global_off + pop.size) as u32, c0 as u32, c1 as u32));
        }
    }
    let in_events = if in_cols.is_empty() { &[][..] } else { in_events };
    let (mut a, mut b) = (0, 0);
    while a < spk.len() || b < in_events.len() {
        let n = spk.get(a).map_or(u32::MAX, |x| x.0).min(in_events.get(b).map_or(u32::MAX, |x| x.0));
        while a < spk.len() && spk[a].0 == n {
            let g = spk[a].1;
            a += 1;
            let Some(&(off, _, c0, c1)) = events.pre.iter().find(|&&(off, end, _, _)| off <= g && g < end) else {
                continue;
            };
            for k in c0 as usize..c1 as usize {
                let first = events.cols[k];
                events.push(n, first + (g - off));
            }
        }
        while b < in_events.len() && in_events[b].0 == n {
            let i = in_events[b].1;
            b += 1;
            for k in in_cols.clone() {
                let first = events.cols[k];
                events.push(n, first + i);
            }
        }
    }
}

/// Sorts the spikes `spk[first_new..]` of the population just simulated (steps below `steps`)
/// by step and global neuron, and merges them with the earlier populations' `spk[..first_new]`
/// (already sorted so), leaving all of `spk` sorted by `(step, global neuron)`.
///
/// A population's spikes come block by block of [`LANES`] neurons (blocks in increasing neuron
/// order), within a block step by step, within a step lane by lane: a step's spikes are therefore
/// already in increasing neuron order, and a stable counting sort by step ([`crate::Buckets`],
/// `O(spikes + steps)`) sorts them by `(step, neuron)`. A population's neurons are one range of
/// global indices, disjoint from the earlier populations' (which may lie on either side when the
/// topological order is not the declaration order), so a linear merge of the two sorted runs by
/// `(step, neuron)` gives the whole order. The buffers are kept for the next call.
fn sort_new_spikes(
    spk: &mut Vec<(u32, u32, f64)>,
    first_new: usize,
    steps: usize,
    by_step: &mut crate::Buckets,
    spk_new: &mut Vec<(u32, u32, f64)>,
    merged: &mut Vec<(u32, u32, f64)>,
) {
    by_step.sort(steps, spk[first_new..].iter().map(|&x| (x.0 as usize, x)), spk_new);
    debug_assert!(spk_new.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    if first_new == 0 {
        std::mem::swap(spk, spk_new);
        return;
    }
    let old = &spk[..first_new];
    merged.clear();
    let (mut a, mut b) = (0, 0);
    while a < old.len() && b < spk_new.len() {
        if (spk_new[b].0, spk_new[b].1) < (old[a].0, old[a].1) {
            merged.push(spk_new[b]);
            b += 1;
        } else {
            merged.push(old[a]);
            a += 1;
        }
    }
    merged.extend_from_slice(&old[a..]);
    merged.extend_from_slice(&spk_new[b..]);
    std::mem::swap(spk, merged);
}

/// The constants of a population's blocks in [`forward_layered`]: `V <- a V + c I`, `I <- b I`
/// per step, `steps` steps, and the length of a block's timelines (see [`fill_block`]).
struct BlockDynamics {
    a: f64,
    b: f64,
    c: f64,
    steps: usize,
    line_len: usize,
}

/// What a block of an output population records per step (see [`simulate_block`]).
trait LaneReadout {
    /// Step `n`'s voltages `v` of the block's lanes (after the step's spikes and arrivals).
    fn at(&mut self, n: usize, v: &[f64; LANES]);
}

/// Hidden populations, and `FirstSpike` (recorded by [`SpikeSink`]): nothing per step.
struct NoReadout;

impl LaneReadout for NoReadout {
    #[inline(always)]
    fn at(&mut self, _: usize, _: &[f64; LANES]) {}
}

/// `ExpIntegral`: `acc += fac[n] V` per lane (`fac`: the readout factors of steps `0..=steps`).
struct ExpIntegralLanes<'a> {
    fac: &'a [f64],
    acc: [f64; LANES],
}

impl LaneReadout for ExpIntegralLanes<'_> {
    #[inline(always)]
    fn at(&mut self, n: usize, v: &[f64; LANES]) {
        let f = self.fac[n];
        for (acc, &v) in self.acc.iter_mut().zip(v) {
            *acc += f * v;
        }
    }
}

/// `MaxVoltage`: each lane's largest voltage so far and the time of its first attainment.
struct MaxVoltageLanes {
    dt: f64,
    max: [f64; LANES],
    at: [f64; LANES],
}

impl LaneReadout for MaxVoltageLanes {
    #[inline(always)]
    fn at(&mut self, n: usize, v: &[f64; LANES]) {
        for ((&v, max), at) in v.iter().zip(&mut self.max).zip(&mut self.at) {
            if v > *max {
                *max = v;
                *at = n as f64 * self.dt;
            }
        }
    }
}

/// `VoltageAt`: the voltages at the readout steps (`steps`, non-decreasing) into `acc`, the block's
/// `lanes x steps.len()` values neuron-major.
struct VoltageAtLanes<'a> {
    steps: &'a [usize],
    next: usize,
    acc: &'a mut [f64],
    lanes: usize,
}

impl LaneReadout for VoltageAtLanes<'_> {
    #[inline(always)]
    fn at(&mut self, n: usize, v: &[f64; LANES]) {
        let nt = self.steps.len();
        while self.next < nt && self.steps[self.next] == n {
            for (l, &v) in v.iter().enumerate().take(self.lanes) {
                self.acc[l * nt + self.next] = v;
            }
            self.next += 1;
        }
    }
}

/// Where a block's spikes go: `(step, global neuron g0 + lane, I - V)` onto `spk` (at most `cap`
/// spikes in all), and with `first` (`FirstSpike` readout of an output block: the block's
/// accumulators and `dt`) each lane's first spike time.
struct SpikeSink<'a> {
    spk: &'a mut Vec<(u32, u32, f64)>,
    cap: usize,
    g0: u32,
    first: Option<(&'a mut [f64], f64)>,
    /// Scratch: the block's steps with spikes, recorded by [`simulate_lanes`] and emitted after it.
    steps: &'a mut Vec<SpikeStep>,
    /// Whether the step loop branches on a spike (rather than recording every step, see
    /// [`simulate_block`]).
    branch: bool,
    /// Out: the number of the block's steps with a spike.
    recorded: usize,
}

/// A step with spikes of a block: the step, and `V` (before the reset) and `I` of every lane
/// (after the decay, before the step's arrivals).
#[derive(Debug, Clone, Copy, Default)]
struct SpikeStep {
    n: usize,
    v: [f64; LANES],
    i: [f64; LANES],
}

impl SpikeSink<'_> {
    /// The spikes of the first `count` steps recorded in `steps` (in step order): in each, the
    /// lanes among the first `lanes` with `!(V < theta)` (as the ring path tests it: a NaN voltage
    /// counts as a spike), in lane order, with `I - V` — the order and values in which the step
    /// loop once pushed them itself. Once per block, out of line (the step loop's registers).
    #[inline(never)]
    fn emit(&mut self, lanes: usize, theta: f64, count: usize) -> Result<()> {
        let Self { spk, cap, g0, first, steps, .. } = self;
        let th = F2::splat(theta);
        for &SpikeStep { n, ref v, ref i } in &steps[..count] {
            // The spiking lanes as bits, visited by their trailing zeros (few mispredicted branches).
            let over =
                (0..PAIRS).fold(0u32, |b, k| b | F2::new(v[2 * k], v[2 * k + 1]).not_below(th).bits() << (2 * k));
            let mut over = over & ((1u32 << lanes) - 1);
            while over != 0 {
                let l = over.trailing_zeros() as usize;
                over &= over - 1;
                if spk.len() >= *cap {
                    return Err(CoreError::SpikeCapExceeded { cap: *cap });
                }
                spk.push((n as u32, *g0 + l as u32, i[l] - v[l]));
                if let Some((acc, dt)) = first
                    && acc[l] == f64::INFINITY
                {
                    acc[l] = n as f64 * *dt;
                }
            }
        }
        Ok(())
    }
}

/// Lane pairs in a block: [`Pairs`] keeps lanes `2k` and `2k + 1` in pair `k`.
const PAIRS: usize = LANES / 2;

/// Two lanes of a block in one SSE2 register (x86_64's baseline), each operation rounding each lane
/// on its own: the same values, bit for bit, as the same operations on the two `f64`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F2(std::arch::x86_64::__m128d);

#[cfg(target_arch = "x86_64")]
impl F2 {
    #[inline(always)]
    fn new(lo: f64, hi: f64) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_set_pd(hi, lo) })
    }

    #[inline(always)]
    fn splat(x: f64) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_set1_pd(x) })
    }

    /// The lanes of a mask as bits (lane 0 bit 0).
    #[inline(always)]
    fn bits(self) -> u32 {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe { std::arch::x86_64::_mm_movemask_pd(self.0) as u32 }
    }

    /// `(*lo, *hi)`.
    ///
    /// # Safety
    /// Both pointers valid for reads of an `f64`.
    #[inline(always)]
    unsafe fn load2(lo: *const f64, hi: *const f64) -> Self {
        use std::arch::x86_64::{_mm_load_sd, _mm_loadh_pd};
        // SAFETY: the caller's.
        Self(unsafe { _mm_loadh_pd(_mm_load_sd(lo), hi) })
    }

    /// `(*p, *p.add(1))`.
    ///
    /// # Safety
    /// `p` valid for reads of two `f64`.
    #[inline(always)]
    unsafe fn loadu(p: *const f64) -> Self {
        // SAFETY: the caller's.
        Self(unsafe { std::arch::x86_64::_mm_loadu_pd(p) })
    }

    /// `*p = lo, *p.add(1) = hi`.
    ///
    /// # Safety
    /// `p` valid for writes of two `f64`.
    #[inline(always)]
    unsafe fn storeu(self, p: *mut f64) {
        // SAFETY: the caller's.
        unsafe { std::arch::x86_64::_mm_storeu_pd(p, self.0) }
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_add_pd(self.0, o.0) })
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_mul_pd(self.0, o.0) })
    }

    /// Per lane, all bits set where `!(self < thr)` (a NaN counts), else zero.
    #[inline(always)]
    fn not_below(self, thr: Self) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_cmpnlt_pd(self.0, thr.0) })
    }

    #[inline(always)]
    fn or(self, o: Self) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_or_pd(self.0, o.0) })
    }

    /// Whether a lane of a [`F2::not_below`] mask (or of masks combined by [`F2::or`]) is set.
    #[inline(always)]
    fn any(self) -> bool {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        unsafe { std::arch::x86_64::_mm_movemask_pd(self.0) != 0 }
    }

    /// `+0.0` in the lanes set in `mask`, `self` in the others.
    #[inline(always)]
    fn zero_where(self, mask: Self) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        Self(unsafe { std::arch::x86_64::_mm_andnot_pd(mask.0, self.0) })
    }

    #[inline(always)]
    fn to_lanes(p: [Self; PAIRS]) -> [f64; LANES] {
        // SAFETY: `__m128d` and `[f64; 2]` have the same size, and every bit pattern is valid.
        unsafe { std::mem::transmute(p) }
    }
}

/// Two lanes of a block (portable version of the SSE2 one, same operations lane by lane).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
struct F2([f64; 2]);

#[cfg(not(target_arch = "x86_64"))]
impl F2 {
    #[inline(always)]
    fn new(lo: f64, hi: f64) -> Self {
        Self([lo, hi])
    }

    #[inline(always)]
    fn splat(x: f64) -> Self {
        Self([x, x])
    }

    /// The lanes of a mask as bits (lane 0 bit 0).
    #[inline(always)]
    fn bits(self) -> u32 {
        u32::from(self.0[0] != 0.0) | u32::from(self.0[1] != 0.0) << 1
    }

    /// `(*lo, *hi)`.
    ///
    /// # Safety
    /// Both pointers valid for reads of an `f64`.
    #[inline(always)]
    unsafe fn load2(lo: *const f64, hi: *const f64) -> Self {
        // SAFETY: the caller's.
        Self(unsafe { [*lo, *hi] })
    }

    /// `(*p, *p.add(1))`.
    ///
    /// # Safety
    /// `p` valid for reads of two `f64`.
    #[inline(always)]
    unsafe fn loadu(p: *const f64) -> Self {
        // SAFETY: the caller's.
        Self(unsafe { [*p, *p.add(1)] })
    }

    /// `*p = lo, *p.add(1) = hi`.
    ///
    /// # Safety
    /// `p` valid for writes of two `f64`.
    #[inline(always)]
    unsafe fn storeu(self, p: *mut f64) {
        // SAFETY: the caller's.
        unsafe { (*p, *p.add(1)) = (self.0[0], self.0[1]) }
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self([self.0[0] + o.0[0], self.0[1] + o.0[1]])
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self([self.0[0] * o.0[0], self.0[1] * o.0[1]])
    }

    /// Per lane, `1.0` where `!(self < thr)` (a NaN counts), else `0.0`.
    #[inline(always)]
    fn not_below(self, thr: Self) -> Self {
        Self([f64::from(u8::from(!(self.0[0] < thr.0[0]))), f64::from(u8::from(!(self.0[1] < thr.0[1])))])
    }

    #[inline(always)]
    fn or(self, o: Self) -> Self {
        Self([self.0[0].max(o.0[0]), self.0[1].max(o.0[1])])
    }

    /// Whether a lane of a [`F2::not_below`] mask (or of masks combined by [`F2::or`]) is set.
    #[inline(always)]
    fn any(self) -> bool {
        self.0[0] != 0.0 || self.0[1] != 0.0
    }

    /// `+0.0` in the lanes set in `mask`, `self` in the others.
    #[inline(always)]
    fn zero_where(self, mask: Self) -> Self {
        Self([if mask.0[0] != 0.0 { 0.0 } else { self.0[0] }, if mask.0[1] != 0.0 { 0.0 } else { self.0[1] }])
    }

    #[inline(always)]
    fn to_lanes(p: [Self; PAIRS]) -> [f64; LANES] {
        std::array::from_fn(|l| p[l / 2].0[l % 2])
    }
}

/// The state of the [`LANES`] lanes of a block (one quantity, `V` or `I`), as vector registers:
/// every operation rounds each lane on its own, the same values bit for bit as on `[f64; LANES]`.
trait Block8: Copy {
    fn splat(x: f64) -> Self;
    /// `*lines[l].add(n)` in lane `l`.
    ///
    /// # Safety
    /// Every `lines[l].add(n)` valid for reads of an `f64`.
    unsafe fn load(lines: &[*const f64; LANES], n: usize) -> Self;
    /// `*p.add(l)` in lane `l`.
    ///
    /// # Safety
    /// `p` valid for reads of [`LANES`] `f64`.
    unsafe fn loadu(p: *const f64) -> Self;
    /// Lane `l` into `*p.add(l)`.
    ///
    /// # Safety
    /// `p` valid for writes of [`LANES`] `f64`.
    unsafe fn storeu(self, p: *mut f64);
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Per lane, all bits set where `!(self < th)` (a NaN counts), else zero.
    fn not_below(self, th: Self) -> Self;
    /// Whether a lane of a mask (from [`Block8::not_below`]) is set.
    fn any(self) -> bool;
    /// `+0.0` in the lanes set in `mask`, `self` in the others.
    fn zero_where(self, mask: Self) -> Self;
    fn to_lanes(self) -> [f64; LANES];
}

/// Four SSE2 pairs (lanes `2k`, `2k + 1` in pair `k`).
#[derive(Clone, Copy)]
struct Pairs([F2; PAIRS]);

impl Block8 for Pairs {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        Self([F2::splat(x); PAIRS])
    }

    #[inline(always)]
    unsafe fn load(lines: &[*const f64; LANES], n: usize) -> Self {
        // SAFETY: the caller's.
        Self(std::array::from_fn(|k| unsafe { F2::load2(lines[2 * k].add(n), lines[2 * k + 1].add(n)) }))
    }

    #[inline(always)]
    unsafe fn loadu(p: *const f64) -> Self {
        // SAFETY: the caller's.
        Self(std::array::from_fn(|k| unsafe { F2::loadu(p.add(2 * k)) }))
    }

    #[inline(always)]
    unsafe fn storeu(self, p: *mut f64) {
        for (k, x) in self.0.into_iter().enumerate() {
            // SAFETY: the caller's.
            unsafe { x.storeu(p.add(2 * k)) };
        }
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|k| self.0[k].add(o.0[k])))
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(std::array::from_fn(|k| self.0[k].mul(o.0[k])))
    }

    #[inline(always)]
    fn not_below(self, th: Self) -> Self {
        Self(std::array::from_fn(|k| self.0[k].not_below(th.0[k])))
    }

    #[inline(always)]
    fn any(self) -> bool {
        let m = self.0;
        m[0].or(m[1]).or(m[2].or(m[3])).any()
    }

    #[inline(always)]
    fn zero_where(self, mask: Self) -> Self {
        Self(std::array::from_fn(|k| self.0[k].zero_where(mask.0[k])))
    }

    #[inline(always)]
    fn to_lanes(self) -> [f64; LANES] {
        F2::to_lanes(self.0)
    }
}

/// Two AVX registers of four lanes (lanes `4k ..` in register `k`); only inside functions compiled
/// with AVX ([`simulate_block_avx`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Quads([std::arch::x86_64::__m256d; 2]);

#[cfg(target_arch = "x86_64")]
impl Block8 for Quads {
    #[inline(always)]
    fn splat(x: f64) -> Self {
        // SAFETY: only called where AVX is enabled.
        let q = unsafe { std::arch::x86_64::_mm256_set1_pd(x) };
        Self([q, q])
    }

    #[inline(always)]
    unsafe fn load(lines: &[*const f64; LANES], n: usize) -> Self {
        use std::arch::x86_64::{_mm_load_sd, _mm_loadh_pd, _mm256_set_m128d};
        // SAFETY: the caller's, and AVX where this is called.
        let q = |k: usize| unsafe {
            let lo = _mm_loadh_pd(_mm_load_sd(lines[4 * k].add(n)), lines[4 * k + 1].add(n));
            let hi = _mm_loadh_pd(_mm_load_sd(lines[4 * k + 2].add(n)), lines[4 * k + 3].add(n));
            _mm256_set_m128d(hi, lo)
        };
        Self([q(0), q(1)])
    }

    #[inline(always)]
    unsafe fn loadu(p: *const f64) -> Self {
        use std::arch::x86_64::_mm256_loadu_pd;
        // SAFETY: the caller's, and AVX where this is called.
        unsafe { Self([_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4))]) }
    }

    #[inline(always)]
    unsafe fn storeu(self, p: *mut f64) {
        use std::arch::x86_64::_mm256_storeu_pd;
        // SAFETY: the caller's, and AVX where this is called.
        unsafe {
            _mm256_storeu_pd(p, self.0[0]);
            _mm256_storeu_pd(p.add(4), self.0[1]);
        }
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        use std::arch::x86_64::_mm256_add_pd;
        // SAFETY: only called where AVX is enabled.
        unsafe { Self([_mm256_add_pd(self.0[0], o.0[0]), _mm256_add_pd(self.0[1], o.0[1])]) }
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        use std::arch::x86_64::_mm256_mul_pd;
        // SAFETY: only called where AVX is enabled.
        unsafe { Self([_mm256_mul_pd(self.0[0], o.0[0]), _mm256_mul_pd(self.0[1], o.0[1])]) }
    }

    #[inline(always)]
    fn not_below(self, th: Self) -> Self {
        use std::arch::x86_64::{_CMP_NLT_UQ, _mm256_cmp_pd};
        // SAFETY: only called where AVX is enabled.
        unsafe {
            Self([_mm256_cmp_pd::<_CMP_NLT_UQ>(self.0[0], th.0[0]), _mm256_cmp_pd::<_CMP_NLT_UQ>(self.0[1], th.0[1])])
        }
    }

    #[inline(always)]
    fn any(self) -> bool {
        use std::arch::x86_64::{_mm256_movemask_pd, _mm256_or_pd};
        // SAFETY: only called where AVX is enabled.
        unsafe { _mm256_movemask_pd(_mm256_or_pd(self.0[0], self.0[1])) != 0 }
    }

    #[inline(always)]
    fn zero_where(self, mask: Self) -> Self {
        use std::arch::x86_64::_mm256_andnot_pd;
        // SAFETY: only called where AVX is enabled.
        unsafe { Self([_mm256_andnot_pd(mask.0[0], self.0[0]), _mm256_andnot_pd(mask.0[1], self.0[1])]) }
    }

    #[inline(always)]
    fn to_lanes(self) -> [f64; LANES] {
        // SAFETY: `__m256d` and `[f64; 4]` have the same size, and every bit pattern is valid.
        unsafe { std::mem::transmute(self.0) }
    }
}

/// One block of `lanes` neurons of a population (threshold `theta` if LIF) over the whole run,
/// its arrivals in `block` (target-major timelines, see [`fill_block`]): per step `n > 0`,
/// `V <- a V + c I` then `I <- b I`, the spike test (steps `1..steps`), then at every step
/// `I += arrival(n)` and the readout. Lanes past `lanes` (zero arrivals) are computed and ignored.
///
/// The step loop has no data-dependent branch: about one block-step in five has a spike at
/// p = 0.1, and a branch on it was mispredicted that often. Each step writes its `V` and `I` into
/// the next free [`SpikeStep`] and takes that slot (count + 1) only if a lane spiked, resets the
/// spiking lanes with a mask, and the spikes are pushed after the loop ([`SpikeSink::emit`]) in
/// the order the loop found them. With `sink.branch` (a block of a quiet population, see
/// [`SPARSE_SPIKE_STEPS`]) the loop branches on a spike instead, and records only those steps:
/// the same records, without a store per step where nearly nothing spikes.
#[inline(never)]
fn simulate_block<R: LaneReadout>(
    run: (&BlockDynamics, Option<f64>, &[f64], usize),
    readout: &mut R,
    sink: &mut SpikeSink<'_>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { simulate_block_avx(run, readout, sink) };
    }
    simulate_block_with::<Pairs, R>(run, readout, sink)
}

/// [`simulate_block`] compiled with AVX: four lanes per instruction ([`Quads`]). AVX without FMA:
/// the same operations, each rounded on its own, so the same bits as the SSE2 pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn simulate_block_avx<R: LaneReadout>(
    run: (&BlockDynamics, Option<f64>, &[f64], usize),
    readout: &mut R,
    sink: &mut SpikeSink<'_>,
) -> Result<()> {
    simulate_block_with::<Quads, R>(run, readout, sink)
}

#[inline(always)]
fn simulate_block_with<B: Block8, R: LaneReadout>(
    (d, theta, block, lanes): (&BlockDynamics, Option<f64>, &[f64], usize),
    readout: &mut R,
    sink: &mut SpikeSink<'_>,
) -> Result<()> {
    match (theta, sink.branch) {
        (Some(theta), false) => simulate_lanes::<B, R, true, false>(d, theta, block, lanes, readout, sink),
        (Some(theta), true) => simulate_lanes::<B, R, true, true>(d, theta, block, lanes, readout, sink),
        (None, _) => simulate_lanes::<B, R, false, false>(d, 0.0, block, lanes, readout, sink),
    }
}

/// [`simulate_block`] with the spike test (`LIF`) or without, and with a branch on a spike
/// (`BRANCH`) or without.
#[inline(always)]
fn simulate_lanes<B: Block8, R: LaneReadout, const LIF: bool, const BRANCH: bool>(
    d: &BlockDynamics,
    theta: f64,
    block: &[f64],
    lanes: usize,
    readout: &mut R,
    sink: &mut SpikeSink<'_>,
) -> Result<()> {
    let &BlockDynamics { a, b, c, steps, line_len } = d;
    assert!(
        (1..=LANES).contains(&lanes) && steps < line_len && block.len() >= LANES * line_len,
        "a block of LANES timelines of steps + 1 or more steps"
    );
    let (a, b, c, th) = (B::splat(a), B::splat(b), B::splat(c), B::splat(theta));
    let (mut v, mut i) = (B::splat(0.0), B::splat(0.0));
    let lines: [*const f64; LANES] = std::array::from_fn(|l| block[l * line_len..].as_ptr());
    // SAFETY: `lines[l] + n` is `block[l line_len + n]`, and `l line_len + n < LANES line_len <=
    // block.len()` for `l < LANES` and `n <= steps < line_len` (assertion above).
    let arrival = |n: usize| unsafe { B::load(&lines, n) };
    if sink.steps.len() < steps {
        sink.steps.resize(steps, SpikeStep::default());
    }
    let rec = sink.steps.as_mut_ptr();
    let mut count = 0;
    i = i.add(arrival(0));
    readout.at(0, &v.to_lanes());
    for n in 1..steps {
        v = a.mul(v).add(c.mul(i));
        i = i.mul(b);
        // `!(V < theta)` in any lane: the lanes past `lanes` keep `V = 0 < theta` (`theta > 0`).
        if LIF {
            let over = v.not_below(th);
            // SAFETY (both writes): `count < n < steps <= sink.steps.len()` (resized above).
            if !BRANCH {
                unsafe { *rec.add(count) = SpikeStep { n, v: v.to_lanes(), i: i.to_lanes() } };
                count += usize::from(over.any());
                v = v.zero_where(over);
            } else if over.any() {
                unsafe { *rec.add(count) = SpikeStep { n, v: v.to_lanes(), i: i.to_lanes() } };
                count += 1;
                v = v.zero_where(over);
            }
        }
        i = i.add(arrival(n));
        readout.at(n, &v.to_lanes());
    }
    if steps > 0 {
        // The last step: no spike test (as on the ring), and `I` is not read again.
        v = a.mul(v).add(c.mul(i));
        readout.at(steps, &v.to_lanes());
    }
    sink.recorded = count;
    if LIF { sink.emit(lanes, theta, count) } else { Ok(()) }
}

/// A block's step loop branches on spikes when the previous block of its population had a spike
/// in fewer than one step in this many (then the branch is rarely mispredicted, and cheaper than
/// recording every step; see [`simulate_block`]).
const SPARSE_SPIKE_STEPS: usize = 32;

/// Pull delivery for a network without recurrent loops: population by population in topological
/// order, and within a population neuron by neuron over the whole run (its neurons do not interact),
/// each target's arrivals pulled into `line` first. The record gets the spikes in the ring's order
/// (step, then global neuron), so it equals the push path's bit for bit.
fn forward_layered(
    engine: &ClockedEngine,
    net: &Network,
    plan: &ClockedPlan,
    st: &mut ClockedState,
    out: &mut ForwardRecord,
) -> Result<()> {
    let cfg = &engine.config;
    let out_pop = net.output().0;
    let steps = engine.steps;
    let dt = engine.dt;
    let t_end = cfg.t_end;
    let layers = plan.layers.as_deref().unwrap_or(&[]);
    let ClockedState { acc, acc_t, readout_steps, pull: bufs, .. } = st;
    let PullBuffers {
        line,
        w_row,
        events,
        in_events,
        spk,
        spk_new,
        spk_merged,
        by_step,
        fac,
        block,
        lane_rows,
        sources,
        sparse_w,
        spike_steps,
        ..
    } = &mut **bufs;
    spk.clear();
    fac.clear();
    if matches!(cfg.readout, ReadoutKind::ExpIntegral) {
        fac.extend((0..=steps).map(|n| (-(n as f64 * dt) / t_end).exp()));
    }
    let nt = readout_steps.len();
    for &p in layers {
        let pp = &plan.pull[p];
        let pop = plan.pops[p];
        let is_out = p == out_pop;
        if pop.theta.is_none() && !is_out {
            continue; // a hidden LI population: no spikes, nothing observable
        }
        pull_events(net, plan, pp, in_events, spk, events);
        if !pp.sparse.is_empty() {
            sources.group(plan.num_neurons(), in_events, spk);
        }
        let w_rows = plan.pull_weight_rows(net, p, w_row);
        let sw = plan.pull_sparse_weights(net, p, sparse_w);
        let first_new = spk.len();
        let dynamics =
            BlockDynamics { a: pop.alpha, b: pop.beta, c: pop.coupling, steps, line_len: steps + plan.slots };
        // Whether the step loop branches on spikes: when the previous block had a spike in fewer
        // than one step in `SPARSE_SPIKE_STEPS` (speed only: both give the same records).
        let mut branch = false;
        // Blocks of LANES neurons simulated side by side (independent chains of arithmetic).
        for j0 in (0..pop.size).step_by(LANES) {
            let lanes = (pop.size - j0).min(LANES);
            fill_block(plan, p, j0, lanes, steps, events, line, w_rows, block, lane_rows, (sources, sw));
            let mut sink = SpikeSink {
                spk,
                cap: cfg.max_spikes,
                g0: (pop.global_off + j0) as u32,
                first: None,
                steps: spike_steps,
                branch,
                recorded: 0,
            };
            let run = (&dynamics, pop.theta, &block[..], lanes);
            let lane_range = j0..j0 + lanes;
            match &cfg.readout {
                _ if !is_out => simulate_block(run, &mut NoReadout, &mut sink)?,
                ReadoutKind::ExpIntegral => {
                    let mut r = ExpIntegralLanes { fac, acc: [0.0; LANES] };
                    r.acc[..lanes].copy_from_slice(&acc[lane_range.clone()]);
                    simulate_block(run, &mut r, &mut sink)?;
                    acc[lane_range].copy_from_slice(&r.acc[..lanes]);
                }
                ReadoutKind::MaxVoltage => {
                    let mut r = MaxVoltageLanes { dt, max: [0.0; LANES], at: [0.0; LANES] };
                    r.max[..lanes].copy_from_slice(&acc[lane_range.clone()]);
                    r.at[..lanes].copy_from_slice(&acc_t[lane_range.clone()]);
                    simulate_block(run, &mut r, &mut sink)?;
                    acc[lane_range.clone()].copy_from_slice(&r.max[..lanes]);
                    acc_t[lane_range].copy_from_slice(&r.at[..lanes]);
                }
                ReadoutKind::FirstSpike => {
                    sink.first = Some((&mut acc[lane_range], dt));
                    simulate_block(run, &mut NoReadout, &mut sink)?;
                }
                ReadoutKind::VoltageAt(_) => {
                    let acc = &mut acc[j0 * nt..(j0 + lanes) * nt];
                    let mut r = VoltageAtLanes { steps: readout_steps, next: 0, acc, lanes };
                    simulate_block(run, &mut r, &mut sink)?;
                }
            }
            branch = sink.recorded * SPARSE_SPIKE_STEPS < steps;
        }
        sort_new_spikes(spk, first_new, steps, by_step, spk_new, spk_merged);
    }
    for &(n, g, imv) in spk.iter() {
        out.spikes.push(n as f64 * dt, g, imv);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LiParams, LifParams, NetworkBuilder, SparseSynapses};
    use nalgebra::DMatrix;

    fn engine(t_end: f64, readout: ReadoutKind, dt: f64) -> ClockedEngine {
        ClockedEngine::new(SimConfig::new(t_end, readout), dt).unwrap()
    }

    fn train(times: &[f64], neurons: &[u32], n: usize) -> SpikeTrains {
        let mut b = SpikeTrains::new(n);
        b.push_sample(times, neurons).unwrap();
        b
    }

    /// in(1) -> out(1) LI, weight w, delay d.
    fn li_net(w: f64, d: f64) -> Network {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 1);
        let o = b.li("out", 1, LiParams::new(20.0, 5.0).unwrap());
        b.connect(i, o, DMatrix::from_element(1, 1, w), DMatrix::from_element(1, 1, d));
        b.build().unwrap()
    }

    #[test]
    fn bad_dt_is_a_typed_error() {
        for dt in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            assert!(
                matches!(
                    ClockedEngine::new(SimConfig::default(), dt),
                    Err(CoreError::InvalidSetting { param: "dt", .. })
                ),
                "dt = {dt}"
            );
        }
        // dt much larger than t_end: zero steps.
        assert!(ClockedEngine::new(SimConfig::new(1.0, ReadoutKind::ExpIntegral), 5.0).is_err());
        assert!(ClockedEngine::new(SimConfig::new(f64::NAN, ReadoutKind::ExpIntegral), 1.0).is_err());
        let e = engine(10.0, ReadoutKind::ExpIntegral, 0.5);
        assert_eq!(e.num_steps(), 20);
        assert_eq!(e.step_of(0.74), 1);
        assert_eq!(e.step_of(0.76), 2);
    }

    #[test]
    fn step_of_is_round_half_up_of_t_over_dt() {
        // The cast in `step_of` against the floor it replaces, at and around every half step and
        // at the edges (negative, NaN, infinite, beyond usize).
        for dt in [0.1, 0.5, 1.0, 0.3] {
            let e = engine(10.0, ReadoutKind::ExpIntegral, dt);
            let mut ts: Vec<f64> = (-40..4000).map(|k| k as f64 * dt / 4.0).collect();
            ts.extend(ts.clone().iter().flat_map(|&t| [t.next_down(), t.next_up()]));
            ts.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e300, -1e300, f64::MIN_POSITIVE]);
            for t in ts {
                assert_eq!(e.step_of(t), (t / dt + 0.5).floor() as usize, "t = {t}, dt = {dt}");
            }
        }
        let e = engine(10.0, ReadoutKind::ExpIntegral, 0.5);
        assert_eq!(
            (e.step_of(0.0), e.step_of(0.2499), e.step_of(0.25), e.step_of(0.7), e.step_of(-3.0)),
            (0, 0, 1, 1, 0)
        );
    }

    #[test]
    fn free_dynamics_match_the_closed_form() {
        // One input spike at t=0, no delay: I(0) = w, V(0) = 0; then free decay.
        let net = li_net(1.3, 0.0);
        let leak = *LiParams::new(20.0, 5.0).unwrap().leak();
        let dt = 0.25;
        let ts: Vec<f64> = (0..=40).map(|k| k as f64 * 0.25).collect();
        let e = engine(10.0, ReadoutKind::VoltageAt(ts.clone()), dt);
        let rec = e.run(&net, train(&[0.0], &[0], 1).sample(0)).unwrap();
        for (q, &t) in ts.iter().enumerate() {
            let (v, _) = leak.propagate(0.0, 1.3, t);
            assert!((rec.readout.values[q] - v).abs() < 1e-13, "t={t}: {} vs {v}", rec.readout.values[q]);
        }
        // Max voltage: the closed-form peak is at t* = ln(tau_m/tau_s) tau_m tau_s/(tau_m - tau_s).
        let e = engine(40.0, ReadoutKind::MaxVoltage, 0.01);
        let rec = e.run(&net, train(&[0.0], &[0], 1).sample(0)).unwrap();
        let tstar = (20.0f64 / 5.0).ln() * 100.0 / 15.0;
        assert!((rec.readout.times[0] - tstar).abs() <= 0.01);
        assert!((rec.readout.values[0] - leak.propagate(0.0, 1.3, tstar).0).abs() < 1e-6);
        // ExpIntegral: Riemann sum of the exact integral.
        let t_end = 100.0;
        let e = engine(t_end, ReadoutKind::ExpIntegral, 0.01);
        let rec = e.run(&net, train(&[0.0], &[0], 1).sample(0)).unwrap();
        // (1/T) ∫ e^{-t/T} c w (e^{-t/tau_s} - e^{-t/tau_m}) dt over [0, T]
        let c = leak.coupling();
        let int = |tau: f64| {
            let k = 1.0 / t_end + 1.0 / tau;
            (1.0 - (-k * t_end).exp()) / k
        };
        let exact = c * 1.3 * (int(5.0) - int(20.0)) / t_end;
        assert!((rec.readout.values[0] - exact).abs() < 1e-4 * exact.abs(), "{} vs {exact}", rec.readout.values[0]);
    }

    #[test]
    fn sparse_pull_arrivals_after_the_last_step_are_ignored_as_on_the_ring() {
        // Sparse pull delivery adds the arrivals after the last step into rows past it (no bounds
        // test in its loop). Spikes up to the last step with delays up to the largest, so arrivals
        // land exactly at the last step, one step after it and far after it, from the input and
        // from hidden neurons (9 targets: two blocks): the records equal the push path's.
        use crate::{SparseSynapses, Synapse};
        let s = |post, pre, weight, delay| Synapse { post, pre, weight, delay };
        let mut hid: Vec<Synapse> = (0..9).map(|j| s(j, j % 3, 2.0 + 0.1 * j as f64, (j % 5) as f64 * 2.5)).collect();
        hid.push(s(0, 2, 1.5, 10.0));
        let out: Vec<Synapse> = (0..9).map(|j| s(j % 2, j, 0.3 + 0.05 * j as f64, (j % 4) as f64 * 3.0)).collect();
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 3);
        let h = b.lif("h", 9, LifParams::new(10.0, 5.0, 0.5).unwrap());
        let o = b.li("out", 2, LiParams::new(20.0, 5.0).unwrap());
        b.connect_sparse(i, h, SparseSynapses::from_triplets(9, 3, &hid).unwrap());
        b.connect_sparse(h, o, SparseSynapses::from_triplets(2, 9, &out).unwrap());
        let net = b.build().unwrap();
        let times = [0.0, 0.0, 1.0, 2.5, 4.0, 5.0, 6.0, 7.5, 8.0, 9.0, 9.5, 9.6];
        let neurons = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2];
        let batch = train(&times, &neurons, 3);
        for readout in [ReadoutKind::ExpIntegral, ReadoutKind::MaxVoltage] {
            let e = engine(10.0, readout, 0.5);
            let plan = e.plan(&net).unwrap();
            assert!(plan.is_pulled(0) && plan.is_pulled(1));
            let pull = e.run(&net, batch.sample(0)).unwrap();
            assert!(pull.spikes.neurons.len() > 3, "hidden spikes: {:?}", pull.spikes.times);
            assert!(pull.spikes.times.iter().any(|&t| t >= 8.0), "late hidden spikes: {:?}", pull.spikes.times);
            assert_eq!(pull, e.clone().with_delivery(Delivery::Push).run(&net, batch.sample(0)).unwrap());
        }
    }

    /// The scalar per-neuron loop `simulate_block` replaced: spikes `(step, lane, I - V)` and the
    /// `ExpIntegral` accumulators of one block.
    fn block_reference(
        d: &BlockDynamics,
        theta: Option<f64>,
        block: &[f64],
        lanes: usize,
        fac: &[f64],
    ) -> (Vec<(u32, u32, f64)>, [f64; LANES]) {
        let (mut v, mut i, mut acc) = ([0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES]);
        let mut spk = Vec::new();
        for n in 0..=d.steps {
            if n > 0 {
                for l in 0..LANES {
                    v[l] = d.a * v[l] + d.c * i[l];
                    i[l] *= d.b;
                }
                if let Some(theta) = theta
                    && n < d.steps
                {
                    for l in 0..lanes {
                        if v[l] < theta {
                            continue;
                        }
                        spk.push((n as u32, l as u32, i[l] - v[l]));
                        v[l] = 0.0;
                    }
                }
            }
            for l in 0..LANES {
                i[l] += block[l * d.line_len + n];
            }
            for l in 0..lanes {
                acc[l] += fac[n] * v[l];
            }
        }
        (spk, acc)
    }

    #[test]
    fn block_kernels_match_the_scalar_loop_bit_for_bit() {
        let (steps, line_len) = (400, 409);
        let d = BlockDynamics { a: (-0.5f64 / 20.0).exp(), b: (-0.5f64 / 5.0).exp(), c: 0.9, steps, line_len };
        let fac: Vec<f64> = (0..=steps).map(|n| (-(n as f64) / 300.0).exp()).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for lanes in [8, 5, 1] {
            // Sparse arrivals, strong enough for frequent spikes; lanes past `lanes` stay zero.
            let mut block = vec![0.0; LANES * line_len];
            for l in 0..lanes {
                for n in 0..line_len {
                    if rnd() < 0.15 {
                        block[l * line_len + n] = 1.2 * rnd() - 0.2;
                    }
                }
            }
            if lanes == 5 {
                block[3 * line_len + 200] = f64::NAN; // NaN voltages count as spikes
            }
            for theta in [Some(0.6), None] {
                let (want_spk, want_acc) = block_reference(&d, theta, &block, lanes, &fac);
                let mut kernels: Vec<(&str, KernelFn)> = vec![("SSE2 pairs", |run, r, sink| {
                    simulate_block_with::<Pairs, ExpIntegralLanes<'_>>(run, r, sink)
                })];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the CPU has AVX (checked just above).
                    kernels.push(("AVX quads", |run, r, sink| unsafe { simulate_block_avx(run, r, sink) }));
                }
                for ((name, kernel), branch) in kernels.iter().flat_map(|&k| [(k, false), (k, true)]) {
                    let (mut spk, mut steps_buf) = (Vec::new(), Vec::new());
                    let mut sink = SpikeSink {
                        spk: &mut spk,
                        cap: usize::MAX,
                        g0: 0,
                        first: None,
                        steps: &mut steps_buf,
                        branch,
                        recorded: 0,
                    };
                    let mut r = ExpIntegralLanes { fac: &fac, acc: [0.0; LANES] };
                    kernel((&d, theta, &block, lanes), &mut r, &mut sink).unwrap();
                    let bits =
                        |s: &[(u32, u32, f64)]| s.iter().map(|&(n, l, x)| (n, l, x.to_bits())).collect::<Vec<_>>();
                    assert_eq!(bits(&spk), bits(&want_spk), "{name}, branch {branch}, lanes {lanes}, theta {theta:?}");
                    assert!(theta.is_none() || want_spk.len() > 20, "too few spikes to test: {}", want_spk.len());
                    for (l, (got, want)) in r.acc.iter().zip(&want_acc).enumerate().take(lanes) {
                        assert_eq!(got.to_bits(), want.to_bits(), "{name}, branch {branch}, lane {l}");
                    }
                }
            }
        }
    }

    /// A block kernel as the test calls it.
    type KernelFn = for<'a, 'b, 'c, 'd> fn(
        (&'a BlockDynamics, Option<f64>, &'a [f64], usize),
        &'b mut ExpIntegralLanes<'c>,
        &'b mut SpikeSink<'d>,
    ) -> Result<()>;

    /// The step loop of `forward_ring` before its single pass per step (`ring_pass`): the five
    /// parts of a step one after the other, each a loop over the neurons, and the pulled arrivals
    /// transposed into `(steps + 1) x n_state` step-major — the reference `forward_ring` must equal
    /// bit for bit.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    fn forward_ring_five_loops(
        engine: &ClockedEngine,
        net: &Network,
        plan: &ClockedPlan,
        input: SpikeTrain<'_>,
        n_input: usize,
        pull: bool,
        st: &mut ClockedState,
        out: &mut ForwardRecord,
    ) -> Result<()> {
        let cfg = &engine.config;
        let in_pop = net.input().0;
        let out_pop = net.output().0;
        let op = plan.pops[out_pop];
        let n_out = op.size;
        let steps = engine.steps;
        let dt = engine.dt;
        let t_end = cfg.t_end;
        let n_state = plan.n_state;
        let mut next_readout = 0usize;
        if pull {
            let PullBuffers { pre, line, w_row, events, in_events, block, lane_rows, sources, sparse_w, .. } =
                &mut *st.pull;
            pre.clear();
            pre.resize((steps + 1) * n_state, 0.0);
            if plan.pull.iter().any(|pp| !pp.sparse.is_empty()) {
                sources.group(plan.num_neurons(), in_events, &[]);
            }
            for (p, pp) in plan.pull.iter().enumerate() {
                if pp.is_empty() {
                    continue;
                }
                pull_events(net, plan, pp, in_events, &[], events);
                let w_rows = plan.pull_weight_rows(net, p, w_row);
                let sw = plan.pull_sparse_weights(net, p, sparse_w);
                let (size, s0) = (plan.pops[p].size, plan.pops[p].state_off);
                for j0 in (0..size).step_by(LANES) {
                    let lanes = (size - j0).min(LANES);
                    fill_block(plan, p, j0, lanes, steps, events, line, w_rows, block, lane_rows, (sources, sw));
                    // The block's timelines (target-major) into `pre` (step-major), step by step:
                    // `pre` is far larger than the caches, so each of its rows is visited once.
                    let line_len = steps + plan.slots;
                    let timelines: [&[f64]; LANES] =
                        std::array::from_fn(|l| &block[l * line_len..l * line_len + steps + 1]);
                    for (n, row) in pre.chunks_exact_mut(n_state).enumerate() {
                        for (x, timeline) in row[s0 + j0..s0 + j0 + lanes].iter_mut().zip(&timelines) {
                            *x = timeline[n];
                        }
                    }
                }
            }
        }

        let ClockedState { v, i, ring, acc, acc_t, readout_steps, pull: bufs } = st;
        let pre = &bufs.pre;
        // With pull delivery the input spikes still go through the ring for the pushed (sparse)
        // input projections, if any.
        let in_conns = net.outgoing(PopulationId(in_pop));
        let pushes_input = !pull || in_conns.iter().any(|c| !plan.is_pulled(c.0));
        let mut next_input = if pushes_input { 0 } else { n_input };

        for n in 0..=steps {
            let base_off = (n % plan.slots) * n_state;
            // 1. propagate
            if n > 0 {
                for p in plan.pops.iter().filter(|p| !p.is_input) {
                    let r = p.state_off..p.state_off + p.size;
                    let (a, b, c) = (p.alpha, p.beta, p.coupling);
                    for (vj, ij) in v[r.clone()].iter_mut().zip(&mut i[r]) {
                        *vj = a * *vj + c * *ij;
                        *ij *= b;
                    }
                }
            }
            // 2.-3. spikes of LIF neurons and their emission
            if n > 0 && n < steps {
                let t = n as f64 * dt;
                for (pi, p) in plan.pops.iter().enumerate() {
                    let Some(theta) = p.theta else { continue };
                    // Blocks of 8 neurons with a branch-free test first: spikes are rare. A neuron
                    // spikes when `!(V < theta)` (so a NaN voltage counts, as it always did).
                    for j0 in (0..p.size).step_by(8) {
                        let j1 = (j0 + 8).min(p.size);
                        let block = &v[p.state_off + j0..p.state_off + j1];
                        if block.iter().fold(true, |below, &x| below & (x < theta)) {
                            continue;
                        }
                        for j in j0..j1 {
                            let s = p.state_off + j;
                            if v[s] < theta {
                                continue;
                            }
                            if out.spikes.len() >= cfg.max_spikes {
                                return Err(CoreError::SpikeCapExceeded { cap: cfg.max_spikes });
                            }
                            out.spikes.push(t, (p.global_off + j) as u32, i[s] - v[s]);
                            v[s] = 0.0;
                            if pi == out_pop
                                && acc[j] == f64::INFINITY
                                && matches!(cfg.readout, ReadoutKind::FirstSpike)
                            {
                                acc[j] = t;
                            }
                            for &cid in net.outgoing(PopulationId(pi)) {
                                let conn = net.connection(cid);
                                let col = conn.fan_out(j).indices();
                                let offsets = &plan.conns[cid.0].offsets;
                                scatter(ring, base_off, &conn.weight_values()[col.clone()], &offsets[col]);
                            }
                        }
                    }
                }
            }
            // 3. input spikes binned to this step
            while next_input < n_input && engine.step_of(input.times[next_input]) <= n {
                let j = input.neurons[next_input] as usize;
                for &cid in in_conns {
                    if pull && plan.is_pulled(cid.0) {
                        continue;
                    }
                    let conn = net.connection(cid);
                    let col = conn.fan_out(j).indices();
                    let offsets = &plan.conns[cid.0].offsets;
                    scatter(ring, base_off, &conn.weight_values()[col.clone()], &offsets[col]);
                }
                next_input += 1;
            }
            // 4. absorb this step's arrivals
            for (ij, rj) in i.iter_mut().zip(&mut ring[base_off..base_off + n_state]) {
                *ij += *rj;
                *rj = 0.0;
            }
            if pull {
                // Pulled input arrivals of this step (`pre` is `(steps + 1) x n_state`, step-major).
                for (p, pp) in plan.pull.iter().enumerate() {
                    if pp.is_empty() {
                        continue;
                    }
                    let r = plan.pops[p].state_off..plan.pops[p].state_off + plan.pops[p].size;
                    for (ij, &x) in i[r.clone()].iter_mut().zip(&pre[n * n_state..][r]) {
                        *ij += x;
                    }
                }
            }
            // 5. readout
            let vo = &v[op.state_off..op.state_off + n_out];
            match &cfg.readout {
                ReadoutKind::ExpIntegral => {
                    let f = (-(n as f64 * dt) / t_end).exp();
                    for (a, &x) in acc.iter_mut().zip(vo) {
                        *a += f * x;
                    }
                }
                ReadoutKind::MaxVoltage => {
                    for k in 0..n_out {
                        if vo[k] > acc[k] {
                            acc[k] = vo[k];
                            acc_t[k] = n as f64 * dt;
                        }
                    }
                }
                ReadoutKind::FirstSpike => {}
                ReadoutKind::VoltageAt(_) => {
                    let nt = readout_steps.len();
                    while next_readout < nt && readout_steps[next_readout] == n {
                        for k in 0..n_out {
                            acc[k * nt + next_readout] = vo[k];
                        }
                        next_readout += 1;
                    }
                }
            }
        }

        Ok(())
    }

    /// Recurrent networks with every case of the ring step: LIF populations of 13 and 8 neurons
    /// (a partial block), an LI hidden population, recurrent and feedforward connections with zero
    /// delays and delays of `slots - 1` steps (wrapping onto the slot just absorbed), dense and
    /// sparse, and an LIF or LI output.
    fn ring_net(seed: u64, sparse: bool, lif_out: bool) -> Network {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 9);
        let h1 = b.lif("h1", 13, LifParams::default());
        let h2 = b.lif("h2", 8, LifParams::default());
        let li = b.li("li", 3, LiParams::default());
        let o = if lif_out { b.lif("out", 11, LifParams::default()) } else { b.li("out", 11, LiParams::default()) };
        let max_delay = 6.0;
        let mut m = |rows: usize, cols: usize, w: f64, spread: f64| {
            let weights = DMatrix::from_fn(rows, cols, |_, _| w + spread * (rnd() - 0.5));
            // Delays in 0..=6 ms with many at 0 and at the maximum.
            let delays = DMatrix::from_fn(rows, cols, |_, _| match rnd() {
                u if u < 0.25 => 0.0,
                u if u < 0.5 => max_delay,
                u => (u - 0.5) * 2.0 * max_delay,
            });
            let mask = DMatrix::from_fn(rows, cols, |_, _| rnd() < 0.6);
            (weights, delays, mask)
        };
        let connect = |b: &mut NetworkBuilder, pre, post, (w, d, mask): (DMatrix<f64>, DMatrix<f64>, DMatrix<bool>)| {
            if sparse {
                b.connect_sparse(pre, post, SparseSynapses::from_dense(&w, &d, &mask).unwrap());
            } else {
                b.connect(pre, post, w, d);
            }
        };
        connect(&mut b, i, h1, m(13, 9, 2.5, 3.0));
        connect(&mut b, i, h2, m(8, 9, 1.5, 3.0));
        connect(&mut b, h1, h2, m(8, 13, 1.0, 2.0));
        connect(&mut b, h2, h1, m(13, 8, 0.5, 2.0));
        connect(&mut b, h1, h1, m(13, 13, 0.0, 1.5));
        connect(&mut b, h1, li, m(3, 13, 0.5, 1.0));
        connect(&mut b, h2, o, m(11, 8, 1.5, 2.0));
        connect(&mut b, h1, o, m(11, 13, 0.5, 2.0));
        let out_to_h2 = m(8, 11, 0.5, 1.0);
        if lif_out {
            connect(&mut b, o, h2, out_to_h2);
        }
        b.build().unwrap()
    }

    #[test]
    fn ring_step_loop_equals_the_five_loops_bit_for_bit() {
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let mut spikes = 0;
        for seed in 0..6u64 {
            let (sparse, lif_out) = (seed % 2 == 1, seed % 3 != 0);
            let net = ring_net(seed, sparse, lif_out);
            let mut input = SpikeTrains::new(9);
            let times: Vec<f64> = (0..90).map(|k| k as f64 * 0.7 + 0.1 * (seed as f64)).collect();
            let neurons: Vec<u32> = (0..90).map(|k| ((k * 7 + seed as usize) % 9) as u32).collect();
            input.push_sample(&times, &neurons).unwrap();
            let mut readouts =
                vec![ReadoutKind::ExpIntegral, ReadoutKind::MaxVoltage, ReadoutKind::VoltageAt(vec![3.0, 20.0, 63.0])];
            if lif_out {
                readouts.push(ReadoutKind::FirstSpike);
            }
            for readout in readouts {
                for delivery in [Delivery::Pull, Delivery::Push] {
                    let e = engine(63.0, readout.clone(), 0.5).with_delivery(delivery);
                    let plan = e.plan(&net).unwrap();
                    assert!(!plan.is_layered());
                    let (mut st, mut want, mut got) =
                        (ClockedState::default(), ForwardRecord::default(), ForwardRecord::default());
                    forward_with(&e, &net, &plan, input.sample(0), &mut st, &mut want, forward_ring_five_loops)
                        .unwrap();
                    forward(&e, &net, &plan, input.sample(0), &mut st, &mut got).unwrap();
                    let what = format!("seed {seed}, {readout:?}, {delivery:?}");
                    assert_eq!(got.spikes.neurons, want.spikes.neurons, "{what}");
                    assert_eq!(bits(&got.spikes.times), bits(&want.spikes.times), "{what}");
                    assert_eq!(bits(&got.spikes.i_minus_v), bits(&want.spikes.i_minus_v), "{what}");
                    assert_eq!(bits(&got.readout.values), bits(&want.readout.values), "{what}");
                    assert_eq!(bits(&got.readout.times), bits(&want.readout.times), "{what}");
                    spikes += want.spikes.len();
                    // Every population spikes (LIF ones), or the comparison would miss cases.
                    for (p, pop) in plan.pops.iter().enumerate().filter(|(_, p)| p.theta.is_some()) {
                        let r = pop.global_off as u32..(pop.global_off + pop.size) as u32;
                        assert!(want.spikes.neurons.iter().any(|g| r.contains(g)), "{what}: population {p} silent");
                    }
                    // The spike cap stops both at the same spike.
                    let mut cfg = e.config.clone();
                    cfg.max_spikes = want.spikes.len() / 2;
                    let capped = ClockedEngine::new(cfg, 0.5).unwrap().with_delivery(delivery);
                    assert!(matches!(
                        forward(&capped, &net, &plan, input.sample(0), &mut st, &mut got),
                        Err(CoreError::SpikeCapExceeded { .. })
                    ));
                    let _ = forward_with(
                        &capped,
                        &net,
                        &plan,
                        input.sample(0),
                        &mut st,
                        &mut want,
                        forward_ring_five_loops,
                    );
                    assert_eq!(got.spikes.neurons, want.spikes.neurons, "{what}, capped");
                }
            }
        }
        assert!(spikes > 5000, "too few spikes to test: {spikes}");
    }

    /// The windows of the ring path (sparse pulled input projections pushed window by window with
    /// cursors) give the five loops' spikes and readouts bit for bit for any window length: one
    /// step, 7 and 24 (shorter than the delays, so spikes deliver over several windows), the
    /// default, and one past the run (a single window); and so does the whole-run fill of the
    /// same sparse projections (`0` below), which denser ones take.
    #[test]
    fn ring_windows_of_any_length_equal_the_five_loops_bit_for_bit() {
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let loops: [(usize, RingLoop); 6] = [
            (1, forward_ring_in::<1, PUSH_MAX_PER_CELL>),
            (7, forward_ring_in::<7, PUSH_MAX_PER_CELL>),
            (24, forward_ring_in::<24, PUSH_MAX_PER_CELL>),
            (RING_WINDOW, forward_ring_in::<RING_WINDOW, PUSH_MAX_PER_CELL>),
            (1024, forward_ring_in::<1024, PUSH_MAX_PER_CELL>),
            // Too many events per step and target for windows: the whole-run fill.
            (0, forward_ring_in::<RING_WINDOW, 0>),
        ];
        for seed in [1u64, 3, 5] {
            let net = ring_net(seed, true, seed != 3);
            let mut input = SpikeTrains::new(9);
            // Three spikes of one source within one step, and spikes at the first and last steps.
            let mut spikes: Vec<(f64, u32)> =
                (0..90).map(|k| (k as f64 * 0.7 + 0.1 * (seed as f64), ((k * 7 + seed as usize) % 9) as u32)).collect();
            spikes.splice(10..10, [(6.9, 4), (6.9, 4), (6.95, 4)]);
            spikes.insert(0, (0.0, 2));
            spikes.push((62.9, 5));
            let (times, neurons): (Vec<f64>, Vec<u32>) = spikes.into_iter().unzip();
            input.push_sample(&times, &neurons).unwrap();
            for readout in [ReadoutKind::ExpIntegral, ReadoutKind::MaxVoltage] {
                let e = engine(63.0, readout.clone(), 0.5);
                let plan = e.plan(&net).unwrap();
                assert!(
                    plan.pull.iter().all(|pp| pp.conns.is_empty()) && plan.pull.iter().any(|pp| !pp.sparse.is_empty())
                );
                // Sparse enough for the windows (else the ring takes the whole-run fill).
                let mut sources = SourceSpikes::default();
                let in_events: Vec<(u32, u32)> =
                    times.iter().zip(&neurons).map(|(&t, &j)| (e.step_of(t) as u32, j)).collect();
                sources.group(plan.num_neurons(), &in_events, &[]);
                for (p, pp) in plan.pull.iter().enumerate().filter(|(_, pp)| !pp.is_empty()) {
                    let pushed: usize = pp.sparse.iter().map(|sp| push_events(sp, &sources, 0)).sum();
                    assert!(pushed > 0 && windows_pay(pushed, e.steps, plan.pops[p].size, PUSH_MAX_PER_CELL));
                }
                let mut st = ClockedState::default();
                let mut want = ForwardRecord::default();
                forward_with(&e, &net, &plan, input.sample(0), &mut st, &mut want, forward_ring_five_loops).unwrap();
                assert!(want.spikes.len() > 100, "seed {seed}: too few spikes");
                for (w, ring) in loops {
                    let mut got = ForwardRecord::default();
                    forward_with(&e, &net, &plan, input.sample(0), &mut st, &mut got, ring).unwrap();
                    let what = format!("seed {seed}, {readout:?}, windows of {w}");
                    assert_eq!(got.spikes.neurons, want.spikes.neurons, "{what}");
                    assert_eq!(bits(&got.spikes.times), bits(&want.spikes.times), "{what}");
                    assert_eq!(bits(&got.spikes.i_minus_v), bits(&want.spikes.i_minus_v), "{what}");
                    assert_eq!(bits(&got.readout.values), bits(&want.readout.values), "{what}");
                    assert_eq!(bits(&got.readout.times), bits(&want.readout.times), "{what}");
                }
            }
        }
    }

    /// The windows push with the plan's cached push-order weights only while they are the
    /// network's: after a weight change a plan built before (and a state that ran with it) gives
    /// exactly what a fresh plan gives, which differs from the first run; and after a run stopped
    /// by the spike cap mid-window, the next run clears the window first.
    #[test]
    fn ring_windows_never_push_stale_weights_or_stale_arrivals() {
        let mut net = ring_net(5, true, true);
        let (times, neurons): (Vec<f64>, Vec<u32>) =
            (0..90).map(|k| (k as f64 * 0.7 + 0.3, ((k * 7 + 5) % 9) as u32)).unzip();
        let input = train(&times, &neurons, 9);
        let e = engine(63.0, ReadoutKind::ExpIntegral, 0.5);
        let plan = e.plan(&net).unwrap();
        assert!(plan.weights_cached_for(&net) && !plan.weight_rows.push.is_empty());
        let mut st = ClockedState::default();
        let mut before = ForwardRecord::default();
        forward(&e, &net, &plan, input.sample(0), &mut st, &mut before).unwrap();
        assert!(st.pull.win_zero && st.pull.win.iter().all(|&x| x == 0.0), "windows left clear");
        for x in net.weight_values_mut(crate::ConnectionId(0)).iter_mut().step_by(3) {
            *x += 0.5;
        }
        assert!(!plan.weights_cached_for(&net));
        let (mut stale, mut fresh) = (ForwardRecord::default(), ForwardRecord::default());
        forward(&e, &net, &plan, input.sample(0), &mut st, &mut stale).unwrap();
        forward(&e, &net, &e.plan(&net).unwrap(), input.sample(0), &mut ClockedState::default(), &mut fresh).unwrap();
        assert!(stale == fresh && fresh != before);
        // Stopped by the spike cap: the window holds arrivals not yet absorbed.
        let mut cfg = e.config.clone();
        cfg.max_spikes = fresh.spikes.len() / 2;
        let capped = ClockedEngine::new(cfg, 0.5).unwrap();
        assert!(forward(&capped, &net, &plan, input.sample(0), &mut st, &mut stale).is_err());
        assert!(!st.pull.win_zero);
        forward(&e, &net, &plan, input.sample(0), &mut st, &mut stale).unwrap();
        assert!(stale == fresh);
    }

    #[test]
    fn ring_pass_matches_the_scalar_loops_bit_for_bit() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b, c, theta) = ((-0.5f64 / 20.0).exp(), (-0.5f64 / 5.0).exp(), 0.9, 1.0);
        let (stride, row) = (4 * LANES, 2 * LANES);
        for size in [21usize, 16, 3] {
            let blocks = size.div_ceil(LANES);
            for (with_theta, with_pulled, clear) in
                [(true, true, false), (true, false, false), (false, true, false), (true, true, true)]
            {
                let mut v: Vec<f64> = (0..size).map(|_| 2.4 * rnd() - 0.2).collect();
                let i: Vec<f64> = (0..size).map(|_| rnd() - 0.3).collect();
                let slot: Vec<f64> = (0..size).map(|_| rnd() - 0.5).collect();
                v[size - 1] = f64::NAN; // NaN voltages count as spikes
                let pre: Vec<f64> = (0..blocks * stride).map(|_| rnd() - 0.5).collect();
                // With `clear`, the population's entries of the pulled row zeroed, nothing else.
                let mut want_pre = pre.clone();
                // The scalar loops of the five-part step.
                let (mut wv, mut wi, mut wslot, mut want) = (v.clone(), i.clone(), slot.clone(), Vec::new());
                for j in 0..size {
                    wi[j] += wslot[j];
                    wslot[j] = 0.0;
                    if with_pulled {
                        wi[j] += pre[j / LANES * stride + row + j % LANES];
                        if clear {
                            want_pre[j / LANES * stride + row + j % LANES] = 0.0;
                        }
                    }
                    wv[j] = a * wv[j] + c * wi[j];
                    wi[j] *= b;
                    if !with_theta || wv[j] < theta {
                        continue;
                    }
                    want.push((j as u32, (wi[j] - wv[j]).to_bits()));
                    wv[j] = 0.0;
                }
                assert!(!with_theta || want.len() >= size / 4, "too few spikes to test: {}", want.len());
                let mut kernels: Vec<(&str, RingPassFn)> = vec![("SSE2 pairs", ring_pass_with::<Pairs>)];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the CPU has AVX (checked just above).
                    kernels.push(("AVX quads", |s, v, i, slot, sink| unsafe { ring_pass_avx(s, v, i, slot, sink) }));
                }
                for (name, kernel) in kernels {
                    let (mut gv, mut gi, mut gslot) = (v.clone(), i.clone(), slot.clone());
                    let (mut spikes, mut fired) = (crate::record::SpikeRecord::default(), Vec::new());
                    let mut sink = RingSink {
                        spikes: &mut spikes,
                        fired: &mut fired,
                        cap: usize::MAX,
                        t: 1.5,
                        pop: 2,
                        g0: 40,
                        first: None,
                    };
                    let mut gpre = pre.clone();
                    let pulled = with_pulled.then_some((&mut gpre[..], row));
                    let mut step = RingStep { a, b, c, theta: with_theta.then_some(theta), pulled, stride, clear };
                    kernel(&mut step, &mut gv, &mut gi, &mut gslot, &mut sink).unwrap();
                    let what = format!("{name}, size {size}, theta {with_theta}, pulled {with_pulled}, clear {clear}");
                    let got: Vec<(u32, u64)> =
                        spikes.neurons.iter().zip(&spikes.i_minus_v).map(|(&g, x)| (g - 40, x.to_bits())).collect();
                    assert_eq!(got, want, "{what}");
                    assert_eq!(fired, want.iter().map(|&(j, _)| (2, j)).collect::<Vec<_>>(), "{what}");
                    for (got, want) in [(&gv, &wv), (&gi, &wi), (&gslot, &wslot), (&gpre, &want_pre)] {
                        assert_eq!(
                            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                            "{what}"
                        );
                    }
                }
            }
        }
    }

    /// A ring pass kernel as the test calls it.
    type RingPassFn = for<'a, 'b, 'c> fn(
        &'a mut RingStep<'b>,
        &'a mut [f64],
        &'a mut [f64],
        &'a mut [f64],
        &'a mut RingSink<'c>,
    ) -> Result<()>;

    #[test]
    fn layered_records_are_in_step_then_neuron_order_across_blocks_and_populations() {
        // Many spikes at the same steps in several blocks of 8 and in three LIF populations
        // simulated in the topological order h1, h2, out but declared h2 (global neurons 4..23),
        // out (23..34), h1 (34..55): the second population's neurons lie below the first's, the
        // third's between them. The pull record is sorted by (step, global neuron), no neuron
        // twice in a step, and equals the push record bit for bit.
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 4);
        let h2 = b.lif("h2", 19, LifParams::new(10.0, 5.0, 0.5).unwrap());
        let o = b.lif("out", 11, LifParams::new(10.0, 5.0, 0.5).unwrap());
        let h1 = b.lif("h1", 21, LifParams::new(10.0, 5.0, 0.5).unwrap());
        b.output(o);
        // Equal weights and delays per projection: a population's neurons fire together.
        let full = |r, c, w, d| (DMatrix::from_element(r, c, w), DMatrix::from_element(r, c, d));
        let (w, d) = full(21, 4, 3.0, 0.0);
        b.connect(i, h1, w, d);
        let (w, d) = full(19, 21, 0.5, 1.0);
        b.connect(h1, h2, w, d);
        let (w, d) = full(11, 21, 0.4, 2.0);
        b.connect(h1, o, w, d);
        let (w, d) = full(11, 19, 0.3, 1.0);
        b.connect(h2, o, w, d);
        let net = b.build().unwrap();
        let times: Vec<f64> = (0..24).map(|k| (k / 4) as f64 * 2.0).collect();
        let neurons: Vec<u32> = (0..24).map(|k| k % 4).collect();
        let batch = train(&times, &neurons, 4);
        let e = engine(20.0, ReadoutKind::MaxVoltage, 0.5);
        assert!(e.plan(&net).unwrap().is_layered());
        let pull = e.run(&net, batch.sample(0)).unwrap();
        let sp = &pull.spikes;
        let steps: Vec<usize> = sp.times.iter().map(|&t| e.step_of(t)).collect();
        assert_eq!(e.plan(&net).unwrap().layers(), Some(&[3, 1, 2][..]));
        for (k, pop) in [("h2", 4..23), ("out", 23..34), ("h1", 34..55)] {
            let n = sp.neurons.iter().filter(|&&g| pop.contains(&(g as usize))).count();
            assert!(n >= 2 * pop.len(), "population {k}: {n} spikes");
        }
        let shared = steps.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(shared > 50, "{shared} spikes share a step with the previous one");
        for k in 1..steps.len() {
            assert!((steps[k - 1], sp.neurons[k - 1]) < (steps[k], sp.neurons[k]), "record out of order at {k}");
        }
        assert_eq!(pull, e.clone().with_delivery(Delivery::Push).run(&net, batch.sample(0)).unwrap());
    }

    #[test]
    fn delays_deliver_at_rounded_steps() {
        let dt = 0.5;
        for (d, steps) in [(0.0, 0usize), (0.2, 0), (0.26, 1), (1.0, 2), (3.7, 7), (3.76, 8)] {
            let net = li_net(1.0, d);
            let ts: Vec<f64> = (0..=30).map(|k| k as f64 * dt).collect();
            let e = engine(15.0, ReadoutKind::VoltageAt(ts), dt);
            let rec = e.run(&net, train(&[1.0], &[0], 1).sample(0)).unwrap();
            // Arrival at step 2 + steps: V is zero up to and including that step, positive after.
            let arrive = 2 + steps;
            for (k, &v) in rec.readout.values.iter().enumerate() {
                if k <= arrive {
                    assert_eq!(v, 0.0, "d={d}, step {k}");
                } else {
                    assert!(v > 0.0, "d={d}, step {k}");
                }
            }
        }
    }

    #[test]
    fn single_neuron_spike_time_within_dt_of_closed_form() {
        // I(0) = w at t0 = 1 ms (delay 0): V(t) = c w (e^{-s/tau_s} - e^{-s/tau_m}); crossing by bisection.
        let lif = LifParams::new(20.0, 5.0, 1.0).unwrap();
        let w = 10.0;
        let t0 = 1.0;
        let leak = *lif.leak();
        let (mut lo, mut hi) = (0.0, 9.0);
        assert!(leak.propagate(0.0, w, hi).0 > 1.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if leak.propagate(0.0, w, mid).0 >= 1.0 { hi = mid } else { lo = mid }
        }
        let exact = t0 + hi;
        for dt in [0.5, 0.1, 0.01, 0.001] {
            let mut b = NetworkBuilder::new();
            let i = b.input("in", 1);
            let h = b.lif("h", 1, lif);
            b.connect(i, h, DMatrix::from_element(1, 1, w), DMatrix::zeros(1, 1));
            let net = b.build().unwrap();
            let e = engine(10.0, ReadoutKind::FirstSpike, dt);
            let rec = e.run(&net, train(&[t0], &[0], 1).sample(0)).unwrap();
            let t = rec.readout.values[0];
            assert!(t >= exact - 1e-12 && t < exact + dt, "dt={dt}: {t} vs {exact}");
            assert_eq!(rec.spikes.times[0], t);
            assert!(rec.spikes.i_minus_v[0] > 0.0);
        }
    }

    #[test]
    fn zero_delay_recurrent_loop_and_multiple_spikes() {
        // Two LIF neurons exciting each other with zero delay after one strong kick.
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 1);
        let h = b.lif("h", 2, LifParams::default());
        let o = b.li("o", 1, LiParams::default());
        b.connect(i, h, DMatrix::from_column_slice(2, 1, &[12.0, 0.0]), DMatrix::zeros(2, 1));
        b.connect(h, h, DMatrix::from_row_slice(2, 2, &[0.0, 10.0, 10.0, 0.0]), DMatrix::zeros(2, 2));
        b.connect(h, o, DMatrix::from_element(1, 2, 1.0), DMatrix::zeros(1, 2));
        let net = b.build().unwrap();
        let e = engine(60.0, ReadoutKind::ExpIntegral, 0.1);
        let rec = e.run(&net, train(&[0.0], &[0], 1).sample(0)).unwrap();
        let counts = rec.spike_counts(1..3);
        assert!(counts[0] >= 2 && counts[1] >= 2, "{counts:?}");
        // Neuron 1 is driven only through the zero-delay loop: it spikes after neuron 0.
        let first = |n: u32| rec.spikes.times[rec.spikes.neurons.iter().position(|&m| m == n).unwrap()];
        assert!(first(2) > first(1));
        assert!(rec.spikes.times.windows(2).all(|w| w[0] <= w[1]));
        // The cap is a typed error.
        let mut cfg = SimConfig::new(60.0, ReadoutKind::ExpIntegral);
        cfg.max_spikes = 2;
        let e = ClockedEngine::new(cfg, 0.1).unwrap();
        assert!(matches!(e.run(&net, train(&[0.0], &[0], 1).sample(0)), Err(CoreError::SpikeCapExceeded { cap: 2 })));
    }

    #[test]
    fn inputs_at_the_end_of_the_run() {
        let net = li_net(1.0, 0.0);
        let e = engine(10.0, ReadoutKind::VoltageAt(vec![10.0]), 1.0);
        // At exactly t_end: ignored. Just before: binned to the last step, no voltage yet.
        let rec = e.run(&net, train(&[9.9, 10.0], &[0, 0], 1).sample(0)).unwrap();
        assert_eq!(rec.readout.values, vec![0.0]);
        let rec = e.run(&net, train(&[8.6, 10.0, 12.0], &[0, 0, 0], 1).sample(0)).unwrap();
        assert!(rec.readout.values[0] > 0.0);
        // With a delay past the end: dropped.
        let net = li_net(1.0, 5.0);
        let rec = e.run(&net, train(&[8.0], &[0], 1).sample(0)).unwrap();
        assert_eq!(rec.readout.values, vec![0.0]);
    }

    #[test]
    fn the_plan_is_rebuilt_exactly_when_the_delays_may_have_changed() {
        let mut net = li_net(0.7, 2.3);
        let e = engine(30.0, ReadoutKind::MaxVoltage, 0.1);
        let input = train(&[1.0, 4.0], &[0, 0], 1);
        let mut scratch = e.scratch(&net);
        let mut out = ForwardRecord::default();
        assert!(scratch.plan.refresh(&net, &e).unwrap());
        assert!(!scratch.plan.refresh(&net, &e).unwrap());
        // A clone shares the stamp; weights may change without a rebuild.
        let mut copy = net.clone();
        assert!(!scratch.plan.refresh(&copy, &e).unwrap());
        copy.weights_mut(crate::ConnectionId(0))[0] = 1.5;
        e.run_into(&copy, input.sample(0), &mut scratch, &mut out).unwrap();
        assert_eq!(out, e.run(&copy, input.sample(0)).unwrap());
        // New delays: rebuilt, and the run equals a fresh one.
        net.delays_mut(crate::ConnectionId(0))[0] = 7.7;
        e.run_into(&net, input.sample(0), &mut scratch, &mut out).unwrap();
        assert_eq!(out, e.run(&net, input.sample(0)).unwrap());
        assert_eq!(scratch.plan, e.plan(&net).unwrap());
        assert!(!scratch.plan.refresh(&net, &e).unwrap());
        // Another dt: rebuilt.
        let e2 = engine(30.0, ReadoutKind::MaxVoltage, 0.05);
        assert!(scratch.plan.refresh(&net, &e2).unwrap());
        // A failed build leaves no stale key behind.
        net.delays_mut(crate::ConnectionId(0))[0] = f64::NAN;
        assert!(scratch.plan.refresh(&net, &e).is_err());
        assert!(scratch.plan.refresh(&net, &e).is_err());
    }

    #[test]
    fn a_plan_of_another_topology_with_the_same_shapes_is_refused() {
        // in(2) -> h(2) -> out(2) against in(2) -> h(2), in(2) -> out(2): same matrix shapes.
        let build = |second_from_input: bool| {
            let mut b = NetworkBuilder::new();
            let i = b.input("in", 2);
            let h = b.lif("h", 2, LifParams::default());
            let o = b.li("out", 2, LiParams::default());
            b.connect(i, h, DMatrix::from_element(2, 2, 3.0), DMatrix::from_element(2, 2, 1.0));
            let pre = if second_from_input { i } else { h };
            b.connect(pre, o, DMatrix::from_element(2, 2, 1.0), DMatrix::from_element(2, 2, 2.0));
            b.build().unwrap()
        };
        let (a, b) = (build(false), build(true));
        let e = engine(20.0, ReadoutKind::MaxVoltage, 1.0);
        let plan = e.plan(&a).unwrap();
        assert!(plan.is_layered() && plan.check_shape(&a).is_ok());
        assert!(matches!(plan.check_shape(&b), Err(CoreError::InvalidNetwork(_))));
        let x = train(&[1.0, 2.0], &[0, 1], 2);
        let (mut st, mut rec) = (ClockedState::default(), ForwardRecord::default());
        for d in [Delivery::Pull, Delivery::Push] {
            let run = e.clone().with_delivery(d).run_planned(&b, &plan, x.sample(0), &mut st, &mut rec);
            assert!(matches!(run, Err(CoreError::InvalidNetwork(_))), "{d:?}");
        }
    }

    #[test]
    fn batch_equals_single_runs_and_bad_input_is_refused() {
        let net = li_net(0.7, 2.3);
        let e = engine(30.0, ReadoutKind::MaxVoltage, 0.1);
        let mut batch = SpikeTrains::new(1);
        for s in 0..5 {
            batch.push_sample(&[s as f64, 3.0 + s as f64], &[0, 0]).unwrap();
        }
        let all = e.run_batch(&net, &batch).unwrap();
        for (s, r) in all.iter().enumerate() {
            assert_eq!(r, &e.run(&net, batch.sample(s)).unwrap());
        }
        let bad = SpikeTrain { times: &[1.0], neurons: &[3] };
        assert!(matches!(e.run(&net, bad), Err(CoreError::InvalidSpikes { .. })));
        assert!(e.run_batch(&net, &SpikeTrains::new(2)).is_err());
    }
}
