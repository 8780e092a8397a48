//! A training loop over any differentiable engine ([`Adjoint`]) and any [`Loss`] (spec §4).
//!
//! Pieces, from the bottom up:
//!
//! - [`loss_and_gradients`] / [`BatchWorkspace`]: one batch, forward and backward in parallel
//!   (rayon) with gradients summed **deterministically** — the same numbers whatever the
//!   number of threads (see [`BatchWorkspace`] for how);
//! - [`evaluate`]: forward passes only, for validation and test sets;
//! - [`TrainConfig`]: validated settings (epochs, batch size, optimisers, which connections
//!   learn, early stopping, silent-neuron boost, seed, checkpoint path);
//! - [`Trainer`]: the epoch loop with shuffling from the seed, per-epoch [`EpochMetrics`],
//!   `tracing` spans, an optional [`Progress`] callback, early stopping and atomic
//!   checkpoints that resume bit for bit.
//!
//! The paper's sequence-detection task, where only delays learn (runs in milliseconds):
//!
//! ```
//! use nalgebra::DMatrix;
//! use snn_core::{ExactEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig, SpikeTrains};
//! use snn_eventprop::Loss;
//! use snn_eventprop::train::{Labelled, TrainConfig, TrainData, Trainer, TrainableParams};
//!
//! let mut b = NetworkBuilder::new();
//! let i = b.input("in", 2);
//! let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
//! // Worst-case start: delays (post x pre) [[0, 10], [10, 0]] ms, weights fixed at 1.
//! b.connect(i, o, DMatrix::from_element(2, 2, 1.0), DMatrix::from_row_slice(2, 2, &[0.0, 10.0, 10.0, 0.0]));
//! let net = b.build().unwrap();
//! let mut x = SpikeTrains::new(2);
//! x.push_sample(&[0.0, 10.0], &[0, 1]).unwrap(); // class 0: input 0 first
//! x.push_sample(&[0.0, 10.0], &[1, 0]).unwrap(); // class 1: input 1 first
//! let set = Labelled::new(x, vec![0, 1]).unwrap();
//!
//! let engine = ExactEngine::new(SimConfig::new(25.0, ReadoutKind::MaxVoltage)).unwrap();
//! let config = TrainConfig::builder()
//!     .epochs(10)
//!     .batch_size(2)
//!     .delay_lr(1.0)
//!     .max_delay(15.0)
//!     .trainable(TrainableParams::DelaysOnly)
//!     .build()
//!     .unwrap();
//! let mut trainer = Trainer::new(&engine, Loss::MaxVoltageCrossEntropy, config, net).unwrap();
//! let data = TrainData { train: &set, validation: None, test: Some(&set) };
//! let mut batches = 0;
//! trainer.fit_with_progress(&data, |_progress| batches += 1).unwrap();
//! let last = trainer.history().last().unwrap();
//! assert_eq!(last.test.as_ref().unwrap().accuracy, 1.0);
//! let d = trainer.network().connections()[0].delays();
//! assert!(d[(0, 0)] > d[(0, 1)] + 5.0); // the diagonal delays grew, the others shrank
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use snn_core::{ForwardRecord, Network, NeuronKind, PopulationId, ReadoutKind, Simulator, SpikeTrains};
use snn_delays::{DelayConstraint, DelayStats};

use crate::distributed::{Communicator, SINGLE_PROCESS, chunk_range, first_failure, ordered_sum};
use crate::error::{EventPropError, Result};
use crate::gradients::{Adjoint, Gradients};
use crate::loss::Loss;
use crate::optim::{AdamParams, LrSchedule, Optimiser, Trainable};
use crate::regularise::{CountAverage, SpikeCountReg, mean_hidden_spikes};

/// Samples per chunk of the deterministic batch reduction, unless configured otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 8;

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// Spike trains with one class label per sample.
///
/// ```
/// use snn_core::SpikeTrains;
/// use snn_eventprop::train::Labelled;
/// let mut x = SpikeTrains::new(2);
/// x.push_sample(&[0.0, 10.0], &[0, 1]).unwrap();
/// assert!(Labelled::new(x.clone(), vec![0]).is_ok());
/// assert!(Labelled::new(x, vec![0, 1]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    spikes: SpikeTrains,
    labels: Vec<usize>,
}

impl Labelled {
    /// Pairs spike trains with labels; the counts must agree.
    pub fn new(spikes: SpikeTrains, labels: Vec<usize>) -> Result<Self> {
        if spikes.len() != labels.len() {
            return Err(EventPropError::LabelCountMismatch { samples: spikes.len(), labels: labels.len() });
        }
        Ok(Self { spikes, labels })
    }

    /// The spike trains.
    pub fn spikes(&self) -> &SpikeTrains {
        &self.spikes
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A 64-bit FNV-1a hash of every spike (time bits and neuron), every sample boundary and
    /// every label, in order: the data set's identity for [`TrainConfig::identity`]. Equal
    /// data give equal hashes; any change of a time, neuron, sample boundary or label almost
    /// surely changes it.
    ///
    /// ```
    /// use snn_core::SpikeTrains;
    /// use snn_eventprop::train::Labelled;
    /// let mut x = SpikeTrains::new(2);
    /// x.push_sample(&[0.0, 10.0], &[0, 1]).unwrap();
    /// let a = Labelled::new(x.clone(), vec![0]).unwrap();
    /// let b = Labelled::new(x, vec![1]).unwrap();
    /// assert_ne!(a.content_hash(), b.content_hash());
    /// assert_eq!(a.content_hash(), a.clone().content_hash());
    /// ```
    pub fn content_hash(&self) -> u64 {
        let mut h = Fnv64::default();
        h.write(&(self.spikes.num_neurons() as u64).to_le_bytes());
        for s in 0..self.len() {
            let train = self.spikes.sample(s);
            h.write(&(train.times.len() as u64).to_le_bytes());
            for (&t, &n) in train.times.iter().zip(train.neurons) {
                h.write(&t.to_bits().to_le_bytes());
                h.write(&n.to_le_bytes());
            }
            h.write(&(self.labels[s] as u64).to_le_bytes());
        }
        h.0
    }
}

/// 64-bit FNV-1a.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The data sets of a training run (borrowed; nothing is copied).
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Training set (shuffled every epoch).
    pub train: &'a Labelled,
    /// Validation set, evaluated after every epoch (drives early stopping by default).
    pub validation: Option<&'a Labelled>,
    /// Test set, evaluated after every epoch (reported only).
    pub test: Option<&'a Labelled>,
}

/// Checks a batch against the network, the engine's readout and the loss.
fn check_batch<S: Simulator>(
    engine: &S,
    net: &Network,
    spikes: &SpikeTrains,
    labels: &[usize],
    loss: &Loss,
) -> Result<()> {
    if spikes.is_empty() {
        return Err(EventPropError::EmptyBatch);
    }
    if spikes.len() != labels.len() {
        return Err(EventPropError::LabelCountMismatch { samples: spikes.len(), labels: labels.len() });
    }
    snn_core::check_input(net, spikes)?;
    let want = loss.readout_kind();
    if engine.config().readout != want {
        return Err(EventPropError::ReadoutMismatch {
            loss: loss.name(),
            expected: readout_name(&want),
            got: format!("an engine configured for {:?}", engine.config().readout),
        });
    }
    let classes = net.population(net.output()).size();
    if let Some((sample, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= classes) {
        return Err(EventPropError::LabelOutOfRange { sample, label, classes });
    }
    Ok(())
}

fn readout_name(kind: &ReadoutKind) -> &'static str {
    match kind {
        ReadoutKind::ExpIntegral => "ExpIntegral",
        ReadoutKind::MaxVoltage => "MaxVoltage",
        ReadoutKind::FirstSpike => "FirstSpike",
        ReadoutKind::VoltageAt(_) => "VoltageAt",
    }
}

// ---------------------------------------------------------------------------------------------
// One batch: deterministic parallel gradients
// ---------------------------------------------------------------------------------------------

/// Mean loss, correct predictions and sample count of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Samples in the batch.
    pub samples: usize,
}

/// Per-thread working memory of one chunk: engine scratches, a record and a gradient accumulator.
struct Worker<E: Adjoint> {
    sim: E::Scratch,
    adj: E::AdjointScratch,
    record: ForwardRecord,
    grads: Gradients,
    loss: f64,
    correct: usize,
    spikes: Vec<u64>,
    /// Per-sample spike counts and jump bias (regulariser with [`CountAverage::Sample`]).
    sample_counts: Vec<u64>,
    bias: Vec<f64>,
    result: Result<()>,
}

/// The regulariser's input to the backward passes of a batch.
#[derive(Clone, Copy)]
enum RegJob<'a> {
    /// One jump bias for the whole batch (batch-mean counts).
    Fixed(&'a [f64]),
    /// A jump bias from each sample's own counts.
    PerSample(&'a SpikeCountReg),
}

/// Everything a chunk needs to read.
struct ChunkJob<'a, E> {
    engine: &'a E,
    net: &'a Network,
    spikes: &'a SpikeTrains,
    labels: &'a [usize],
    loss: &'a Loss,
    mask: &'a [Trainable],
    t_end: f64,
    reg: Option<RegJob<'a>>,
}

impl<E: Adjoint> Worker<E> {
    fn new(engine: &E, net: &Network) -> Self {
        Self {
            sim: engine.scratch(net),
            adj: engine.adjoint_scratch(net),
            record: ForwardRecord::default(),
            grads: Gradients::zeros(net),
            loss: 0.0,
            correct: 0,
            spikes: vec![0; net.num_neurons()],
            sample_counts: Vec::new(),
            bias: Vec::new(),
            result: Ok(()),
        }
    }

    /// Forward (unless `kept` holds its record already), loss and backward of one sample, adding
    /// into `self.grads`.
    fn sample(&mut self, job: &ChunkJob<'_, E>, s: usize, kept: Option<&ForwardRecord>) -> Result<()> {
        let input = job.spikes.sample(s);
        let record = match kept {
            Some(r) => r,
            None => {
                job.engine.run_into(job.net, input, &mut self.sim, &mut self.record)?;
                &self.record
            }
        };
        let lv = job.loss.evaluate(&record.readout, job.labels[s], s, job.t_end)?;
        let bias = match job.reg {
            None => None,
            Some(RegJob::Fixed(b)) => Some(b),
            Some(RegJob::PerSample(reg)) => {
                self.sample_counts.clear();
                self.sample_counts.resize(job.net.num_neurons(), 0);
                for &n in &record.spikes.neurons {
                    if let Some(c) = self.sample_counts.get_mut(n as usize) {
                        *c += 1;
                    }
                }
                reg.jump_bias_into(job.net, &self.sample_counts, 1, &mut self.bias);
                Some(self.bias.as_slice())
            }
        };
        match bias {
            None => job.engine.backward_into(job.net, input, record, &lv.d_readout, &mut self.adj, &mut self.grads)?,
            Some(b) => job.engine.backward_into_with(
                job.net,
                input,
                record,
                &lv.d_readout,
                Some(b),
                &mut self.adj,
                &mut self.grads,
            )?,
        }
        self.loss += lv.loss;
        self.correct += usize::from(lv.correct(job.labels[s]));
        for &n in &record.spikes.neurons {
            if let Some(c) = self.spikes.get_mut(n as usize) {
                *c += 1;
            }
        }
        Ok(())
    }

    /// Forward passes only: spikes per neuron of the samples `indices`, into `self.spikes`, and
    /// their records into `kept` (one per index, for the backward passes that follow).
    fn count_spikes(
        &mut self,
        engine: &E,
        net: &Network,
        spikes: &SpikeTrains,
        indices: &[usize],
        kept: &mut Vec<ForwardRecord>,
    ) -> Result<()> {
        self.spikes.fill(0);
        kept.resize_with(indices.len(), ForwardRecord::default);
        for (&s, record) in indices.iter().zip(kept.iter_mut()) {
            engine.run_into(net, spikes.sample(s), &mut self.sim, record)?;
            for &n in &record.spikes.neurons {
                if let Some(c) = self.spikes.get_mut(n as usize) {
                    *c += 1;
                }
            }
        }
        Ok(())
    }

    /// The samples `indices`, summed in order from zero; `kept`, when given, holds their
    /// forward records (one per index).
    fn chunk(&mut self, job: &ChunkJob<'_, E>, indices: &[usize], kept: Option<&[ForwardRecord]>) -> Result<()> {
        self.grads.fill_zero();
        self.loss = 0.0;
        self.correct = 0;
        self.spikes.fill(0);
        let kept_record = |k: usize| kept.map(|r| &r[k]);
        for (k, &s) in indices.iter().enumerate() {
            self.sample(job, s, kept_record(k))?;
        }
        if check_finite_masked(&self.grads, job.mask, indices.first().copied().unwrap_or(0)).is_ok() {
            return Ok(());
        }
        // Rare path: replay the chunk, checking after every sample, to name the culprit.
        self.grads.fill_zero();
        for (k, &s) in indices.iter().enumerate() {
            self.sample(job, s, kept_record(k))?;
            check_finite_masked(&self.grads, job.mask, s)?;
        }
        // The replay did not reproduce it (engine not deterministic?): blame the chunk's first sample.
        check_finite_masked(&self.grads, job.mask, indices[0])
    }
}

/// The first non-finite gradient of a trained parameter, as a typed error.
fn check_finite_masked(g: &Gradients, mask: &[Trainable], sample: usize) -> Result<()> {
    for (what, mats, pick) in [
        ("weight", &g.weights, (|t: &Trainable| t.weights) as fn(&Trainable) -> bool),
        ("delay", &g.delays, |t: &Trainable| t.delays),
    ] {
        for (connection, m) in mats.iter().enumerate() {
            if !mask.get(connection).is_none_or(pick) {
                continue;
            }
            if let Some(k) = m.iter().position(|x| !x.is_finite()) {
                let (row, col) = (k % m.nrows().max(1), k / m.nrows().max(1));
                return Err(EventPropError::NonFiniteGradient { what, connection, row, col, sample });
            }
        }
    }
    Ok(())
}

/// `total += parts[0]; total += parts[1]; ...` element by element, in parallel over elements.
///
/// Every element sees the same additions in the same order as the sequential loop, so the
/// result is bitwise that of `parts.iter().for_each(|p| total.add_assign(p))` — but in one
/// pass over `total`, spread over the rayon threads.
fn add_in_order(total: &mut Gradients, parts: &[&Gradients]) {
    const BLOCK: usize = 4096;
    let mats = total.weights.len();
    for which in 0..2 {
        for k in 0..mats {
            let dst = if which == 0 { total.weights[k].as_mut_slice() } else { total.delays[k].as_mut_slice() };
            let srcs: Vec<&[f64]> = parts
                .iter()
                .map(|p| if which == 0 { p.weights[k].as_slice() } else { p.delays[k].as_slice() })
                .collect();
            dst.par_chunks_mut(BLOCK).enumerate().for_each(|(b, d)| {
                let off = b * BLOCK;
                for src in &srcs {
                    let len = d.len();
                    for (a, x) in d.iter_mut().zip(&src[off..off + len]) {
                        *a += x;
                    }
                }
            });
        }
    }
}

/// Reusable memory for computing batch gradients of one network shape with engine `E`.
///
/// **Determinism.** The batch is cut into chunks of `chunk_size` consecutive samples — a
/// number fixed by the configuration, not by the thread count. Each chunk is summed
/// sequentially, from zero, by one worker; the chunk sums are then added to the total in
/// chunk order. Workers run in waves of as many chunks as there are rayon threads, so only
/// `threads` gradient accumulators exist (never one per sample), and the floating-point
/// additions happen in the same order whatever `RAYON_NUM_THREADS` is.
///
/// **Ranks.** [`BatchWorkspace::compute_on`] splits the chunks into contiguous ranges over the
/// ranks of a [`Communicator`] and combines the chunk sums with an ordered reduction
/// ([`crate::distributed`]): the additions are again those of the single-process loop, so the
/// gradients are the same bits for any number of ranks and threads. A rank then keeps the
/// sums of all its chunks until its predecessor's running sum arrives (one gradient-sized
/// buffer per chunk of the rank).
pub struct BatchWorkspace<E: Adjoint> {
    chunk_size: usize,
    workers: Vec<Worker<E>>,
    total: Gradients,
    /// Chunk sums of this rank, in chunk order, flattened like `flat` (several ranks only).
    parts: Vec<Vec<f64>>,
    /// Chunk losses of this rank, in chunk order (several ranks only).
    losses: Vec<f64>,
    /// The flattened running sum passed between ranks: every weight matrix, every delay
    /// matrix, then the loss sum.
    flat: Vec<f64>,
    spikes: Vec<u64>,
    regulariser: Option<SpikeCountReg>,
    /// Batch-mean jump bias of the regulariser ([`CountAverage::Batch`]).
    bias: Vec<f64>,
    /// Forward records of the counting pass, per chunk, reused by the backward passes
    /// ([`CountAverage::Batch`]; a batch's records, ~300 kB per SHD sample).
    kept: Vec<Vec<ForwardRecord>>,
}

impl<E: Adjoint> std::fmt::Debug for BatchWorkspace<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWorkspace")
            .field("chunk_size", &self.chunk_size)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl<E: Adjoint> BatchWorkspace<E> {
    /// Buffers for `net`; `chunk_size >= 1` samples per chunk.
    pub fn new(net: &Network, chunk_size: usize) -> Result<Self> {
        if chunk_size == 0 {
            return Err(EventPropError::InvalidHyperparameter {
                param: "chunk_size",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        Ok(Self {
            chunk_size,
            workers: Vec::new(),
            total: Gradients::zeros(net),
            parts: Vec::new(),
            losses: Vec::new(),
            flat: Vec::new(),
            spikes: vec![0; net.num_neurons()],
            regulariser: None,
            bias: Vec::new(),
            kept: Vec::new(),
        })
    }

    /// Adds the spike-count regulariser to the gradients of every following batch (`None`:
    /// off, the default). Errors: invalid parameters.
    pub fn set_regulariser(&mut self, regulariser: Option<SpikeCountReg>) -> Result<()> {
        if let Some(r) = &regulariser {
            r.check()?;
        }
        self.regulariser = regulariser;
        Ok(())
    }

    /// The regulariser in use.
    pub fn regulariser(&self) -> Option<&SpikeCountReg> {
        self.regulariser.as_ref()
    }

    /// Mean gradients of the last batch.
    pub fn gradients(&self) -> &Gradients {
        &self.total
    }

    /// Spikes per global neuron during the last batch (summed over its samples).
    pub fn spike_counts(&self) -> &[u64] {
        &self.spikes
    }

    fn fits(&self, net: &Network) -> bool {
        let shapes = |g: &Gradients| {
            g.weights.len() == net.connections().len()
                && g.weights.iter().zip(net.connections()).all(|(m, c)| m.shape() == Gradients::shape_of(c))
        };
        shapes(&self.total) && self.spikes.len() == net.num_neurons()
    }

    /// Loss and mean gradients of the samples `indices` of `spikes`/`labels`.
    ///
    /// Only gradients of parameters flagged in `mask` (one entry per connection) are checked
    /// for NaN/infinity; `None` checks all. The gradients are left in
    /// [`BatchWorkspace::gradients`].
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        &mut self,
        engine: &E,
        net: &Network,
        spikes: &SpikeTrains,
        labels: &[usize],
        indices: &[usize],
        loss: &Loss,
        mask: Option<&[Trainable]>,
    ) -> Result<BatchSummary> {
        self.compute_on(&SINGLE_PROCESS, engine, net, spikes, labels, indices, loss, mask)
    }

    /// [`BatchWorkspace::compute`] as rank `comm.rank()` of `comm.size()`: every rank calls it
    /// with the same arguments, computes its range of the chunks ([`chunk_range`]) and gets the
    /// batch's summary and mean gradients — bitwise those of one process.
    ///
    /// A rank may have no chunk (a batch with fewer chunks than ranks). When a chunk fails on
    /// some rank, all ranks return an error: that rank its own, the others
    /// [`EventPropError::RankFailed`].
    #[allow(clippy::too_many_arguments)]
    pub fn compute_on(
        &mut self,
        comm: &dyn Communicator,
        engine: &E,
        net: &Network,
        spikes: &SpikeTrains,
        labels: &[usize],
        indices: &[usize],
        loss: &Loss,
        mask: Option<&[Trainable]>,
    ) -> Result<BatchSummary> {
        if indices.is_empty() {
            return Err(EventPropError::EmptyBatch);
        }
        if let Some(&s) = indices.iter().find(|&&s| s >= spikes.len() || s >= labels.len()) {
            return Err(EventPropError::ShapeMismatch {
                what: "sample index (samples in data)",
                expected: spikes.len(),
                got: s,
            });
        }
        if !self.fits(net) {
            let reg = self.regulariser;
            *self = Self::new(net, self.chunk_size)?;
            self.regulariser = reg;
        }
        let all = vec![Trainable::BOTH; net.connections().len()];
        let all_chunks: Vec<&[usize]> = indices.chunks(self.chunk_size).collect();
        let mine = chunk_range(all_chunks.len(), comm.rank(), comm.size())?;
        let distributed = comm.size() > 1;
        let chunks = &all_chunks[mine.clone()];
        let threads = rayon::current_num_threads().clamp(1, chunks.len().max(1));
        while self.workers.len() < threads {
            self.workers.push(Worker::new(engine, net));
        }
        let reg = match &self.regulariser {
            None => None,
            Some(r) if r.average == CountAverage::Sample => Some(RegJob::PerSample(r)),
            Some(r) => {
                // Batch-mean counts of this batch: a forward-only pass (integer sums, so the
                // result does not depend on the order or the thread count).
                self.spikes.fill(0);
                if self.kept.len() < chunks.len() {
                    self.kept.resize_with(chunks.len(), Vec::new);
                }
                let mut failed = None;
                for (c0, (wave, kept)) in
                    (0..).step_by(threads).zip(chunks.chunks(threads).zip(self.kept.chunks_mut(threads)))
                {
                    let jobs = wave.par_iter().zip(kept.par_iter_mut());
                    self.workers[..wave.len()].par_iter_mut().zip(jobs).for_each(|(w, (idx, kept))| {
                        w.result = w.count_spikes(engine, net, spikes, idx, kept);
                    });
                    for (k, w) in self.workers[..wave.len()].iter_mut().enumerate() {
                        if let Err(e) = std::mem::replace(&mut w.result, Ok(())) {
                            failed = Some((mine.start + c0 + k, e));
                            break;
                        }
                        self.spikes.iter_mut().zip(&w.spikes).for_each(|(a, b)| *a += b);
                    }
                    if failed.is_some() {
                        break;
                    }
                }
                settle(comm, failed)?;
                comm.sum_u64(&mut self.spikes)?;
                r.jump_bias_into(net, &self.spikes, indices.len(), &mut self.bias);
                Some(RegJob::Fixed(&self.bias))
            }
        };
        let job = ChunkJob {
            engine,
            net,
            spikes,
            labels,
            loss,
            mask: mask.unwrap_or(&all),
            t_end: engine.config().t_end,
            reg,
        };
        self.total.fill_zero();
        self.spikes.fill(0);
        let (mut loss_sum, mut correct) = (0.0, 0);
        if distributed {
            let params = flatten_len(&self.total);
            while self.parts.len() < chunks.len() {
                self.parts.push(vec![0.0; params]);
            }
            self.losses.clear();
        }
        // With the batch-mean regulariser the counting pass left every record in `kept`.
        let kept = matches!(job.reg, Some(RegJob::Fixed(_))).then_some(self.kept.as_slice());
        let mut failed = None;
        for (c0, wave) in (0..).step_by(threads).zip(chunks.chunks(threads)) {
            self.workers[..wave.len()].par_iter_mut().zip(wave.par_iter()).enumerate().for_each(|(k, (w, idx))| {
                w.result = w.chunk(&job, idx, kept.map(|r| r[c0 + k].as_slice()));
            });
            // In chunk order: the first error wins, sums are added in a fixed order.
            for (k, w) in self.workers[..wave.len()].iter_mut().enumerate() {
                if let Err(e) = std::mem::replace(&mut w.result, Ok(())) {
                    failed = Some((mine.start + c0 + k, e));
                    break;
                }
                correct += w.correct;
                self.spikes.iter_mut().zip(&w.spikes).for_each(|(a, b)| *a += b);
                if distributed {
                    // Kept until the predecessor's running sum arrives.
                    self.losses.push(w.loss);
                    flatten(&w.grads, &mut self.parts[c0 + k]);
                } else {
                    loss_sum += w.loss;
                }
            }
            if failed.is_some() {
                break;
            }
            if !distributed {
                let parts: Vec<&Gradients> = self.workers[..wave.len()].iter().map(|w| &w.grads).collect();
                add_in_order(&mut self.total, &parts);
            }
        }
        settle(comm, failed)?;
        if distributed {
            let mut ints = Vec::with_capacity(1 + self.spikes.len());
            ints.push(correct as u64);
            ints.extend_from_slice(&self.spikes);
            comm.sum_u64(&mut ints)?;
            correct = ints[0] as usize;
            self.spikes.copy_from_slice(&ints[1..]);
            loss_sum = self.reduce_in_order(comm, chunks.len())?;
        }
        let n = indices.len();
        self.total.scale_mut(1.0 / n as f64);
        Ok(BatchSummary { loss: loss_sum / n as f64, correct, samples: n })
    }

    /// The ordered reduction of this rank's first `count` chunk sums (`parts`, `losses`) with
    /// the other ranks' into `total`; returns the loss sum.
    fn reduce_in_order(&mut self, comm: &dyn Communicator, count: usize) -> Result<f64> {
        let params = flatten_len(&self.total);
        self.flat.resize(params + 1, 0.0);
        let (parts, losses) = (&self.parts[..count], &self.losses);
        // The running sum so far, plus this rank's chunks in order: per element, the additions
        // of the single-process loop.
        ordered_sum(comm, &mut self.flat, &mut |offset: usize, segment: &mut [f64]| {
            let in_params = params.saturating_sub(offset).min(segment.len());
            let (grads, loss) = segment.split_at_mut(in_params);
            const BLOCK: usize = 4096;
            grads.par_chunks_mut(BLOCK).enumerate().for_each(|(b, d)| {
                let start = offset + b * BLOCK;
                let len = d.len();
                for p in parts {
                    for (a, x) in d.iter_mut().zip(&p[start..start + len]) {
                        *a += x;
                    }
                }
            });
            if let Some(l) = loss.first_mut() {
                for x in losses {
                    *l += x;
                }
            }
        })?;
        unflatten(&self.flat[..params], &mut self.total);
        Ok(self.flat[params])
    }
}

/// Number of values of `g` (every weight matrix, then every delay matrix).
fn flatten_len(g: &Gradients) -> usize {
    g.weights.iter().chain(&g.delays).map(|m| m.len()).sum()
}

/// Copies every weight matrix, then every delay matrix of `g` (column-major) into `out`.
fn flatten(g: &Gradients, out: &mut [f64]) {
    let mut off = 0;
    for m in g.weights.iter().chain(&g.delays) {
        out[off..off + m.len()].copy_from_slice(m.as_slice());
        off += m.len();
    }
}

/// The inverse of [`flatten`].
fn unflatten(src: &[f64], g: &mut Gradients) {
    let mut off = 0;
    for m in g.weights.iter_mut().chain(g.delays.iter_mut()) {
        let len = m.len();
        m.as_mut_slice().copy_from_slice(&src[off..off + len]);
        off += len;
    }
}

/// Turns the first failure of a step into the error of every rank: a single process returns
/// its own; with several ranks they agree on the first failing chunk, whose rank returns its
/// error and the others [`EventPropError::RankFailed`].
fn settle(comm: &dyn Communicator, failed: Option<(usize, EventPropError)>) -> Result<()> {
    if comm.size() == 1 {
        return failed.map_or(Ok(()), |(_, e)| Err(e));
    }
    match first_failure(comm, failed.as_ref().map(|(c, _)| *c))? {
        None => Ok(()),
        Some((rank, chunk)) if rank == comm.rank() => {
            Err(failed.map_or(EventPropError::RankFailed { rank, chunk }, |(_, e)| e))
        }
        Some((rank, chunk)) => Err(EventPropError::RankFailed { rank, chunk }),
    }
}

/// Full batches of `batch_size` samples must give every one of `ranks` ranks a chunk.
fn check_ranks(ranks: usize, batch_size: usize, chunk_size: usize) -> Result<()> {
    let chunks = batch_size.div_ceil(chunk_size.max(1));
    if ranks > chunks {
        return Err(EventPropError::TooManyRanks { ranks, chunks, batch_size, chunk_size });
    }
    Ok(())
}

/// Mean loss, mean gradients and correct predictions of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchGradients {
    /// Mean loss and accuracy counts.
    pub summary: BatchSummary,
    /// `dL/dw`, `dL/dd` of the mean loss.
    pub gradients: Gradients,
}

/// Loss and gradients of the mean loss over `batch`, computed in parallel and summed
/// deterministically (chunks of [`DEFAULT_CHUNK_SIZE`]; see [`BatchWorkspace`]).
///
/// Errors: empty batch, label/sample count mismatch, label out of range, input size
/// mismatch, engine readout not the loss's, any forward/backward error, and a non-finite
/// gradient (naming the parameter and the sample index in `batch`).
///
/// ```
/// use nalgebra::DMatrix;
/// use snn_core::{ExactEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig, SpikeTrains};
/// use snn_eventprop::{EventPropError, Loss, loss_and_gradients};
///
/// let mut b = NetworkBuilder::new();
/// let i = b.input("in", 2);
/// let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
/// b.connect(i, o, DMatrix::from_element(2, 2, 1.0), DMatrix::zeros(2, 2));
/// let net = b.build().unwrap();
/// let engine = ExactEngine::new(SimConfig::new(25.0, ReadoutKind::MaxVoltage)).unwrap();
/// let mut x = SpikeTrains::new(2);
/// x.push_sample(&[0.0, 10.0], &[0, 1]).unwrap();
/// let loss = Loss::MaxVoltageCrossEntropy;
/// let g = loss_and_gradients(&engine, &net, &x, &[0], &loss).unwrap();
/// // Symmetric network: both outputs read the same maximum, the loss is ln 2.
/// assert!((g.summary.loss - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(g.gradients.delays[0].shape(), (2, 2));
/// assert!(matches!(loss_and_gradients(&engine, &net, &x, &[2], &loss), Err(EventPropError::LabelOutOfRange { .. })));
/// ```
pub fn loss_and_gradients<E: Adjoint>(
    engine: &E,
    net: &Network,
    batch: &SpikeTrains,
    labels: &[usize],
    loss: &Loss,
) -> Result<BatchGradients> {
    check_batch(engine, net, batch, labels, loss)?;
    let mut ws = BatchWorkspace::<E>::new(net, DEFAULT_CHUNK_SIZE)?;
    let indices: Vec<usize> = (0..batch.len()).collect();
    let summary = ws.compute(engine, net, batch, labels, &indices, loss, None)?;
    Ok(BatchGradients { summary, gradients: ws.total })
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Loss, accuracy and activity of a network on a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Mean loss.
    pub loss: f64,
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Number of samples.
    pub samples: usize,
    /// Mean spikes per sample of each population (input population: input spikes).
    pub spikes_per_sample: Vec<f64>,
}

/// Mean spikes per sample per population from per-neuron counts.
fn per_population(net: &Network, counts: &[u64], input_spikes: usize, samples: usize) -> Vec<f64> {
    let n = samples.max(1) as f64;
    (0..net.populations().len())
        .map(|p| {
            let id = PopulationId(p);
            if id == net.input() {
                input_spikes as f64 / n
            } else {
                let o = net.offset(id);
                counts[o..o + net.population(id).size()].iter().sum::<u64>() as f64 / n
            }
        })
        .collect()
}

/// Forward passes only: loss, accuracy and spike counts of `net` on `data`, in parallel,
/// deterministic (chunk sums added in order).
pub fn evaluate<S: Simulator>(
    engine: &S,
    net: &Network,
    data: &Labelled,
    loss: &Loss,
    chunk_size: usize,
) -> Result<EvalMetrics> {
    evaluate_on(&SINGLE_PROCESS, engine, net, data, loss, chunk_size)
}

/// [`evaluate`] as rank `comm.rank()` of `comm.size()`: every rank calls it with the same
/// arguments, evaluates its range of the chunks and gets the metrics of the whole set —
/// bitwise those of one process (the chunk losses are added in chunk order across ranks).
pub fn evaluate_on<S: Simulator>(
    comm: &dyn Communicator,
    engine: &S,
    net: &Network,
    data: &Labelled,
    loss: &Loss,
    chunk_size: usize,
) -> Result<EvalMetrics> {
    check_batch(engine, net, &data.spikes, &data.labels, loss)?;
    let chunk_size = chunk_size.max(1);
    let t_end = engine.config().t_end;
    let n = data.len();
    let num_chunks = n.div_ceil(chunk_size);
    let mine = chunk_range(num_chunks, comm.rank(), comm.size())?;
    let one_chunk = |(scratch, record): &mut (S::Scratch, ForwardRecord), c: usize| -> Result<(f64, usize, Vec<u64>)> {
        let (mut l, mut correct, mut counts) = (0.0, 0, vec![0u64; net.num_neurons()]);
        for s in c * chunk_size..((c + 1) * chunk_size).min(n) {
            engine.run_into(net, data.spikes.sample(s), scratch, record)?;
            let lv = loss.evaluate(&record.readout, data.labels[s], s, t_end)?;
            l += lv.loss;
            correct += usize::from(lv.correct(data.labels[s]));
            for &k in &record.spikes.neurons {
                if let Some(x) = counts.get_mut(k as usize) {
                    *x += 1;
                }
            }
        }
        Ok((l, correct, counts))
    };
    let init = || (engine.scratch(net), ForwardRecord::default());
    let (mut l, mut correct, mut counts) = (0.0, 0, vec![0u64; net.num_neurons()]);
    if comm.size() == 1 {
        let parts: Vec<(f64, usize, Vec<u64>)> =
            (0..num_chunks).into_par_iter().map_init(init, one_chunk).collect::<Result<_>>()?;
        for (pl, pc, pcounts) in parts {
            l += pl;
            correct += pc;
            counts.iter_mut().zip(pcounts).for_each(|(a, b)| *a += b);
        }
    } else {
        let results: Vec<Result<(f64, usize, Vec<u64>)>> =
            mine.clone().into_par_iter().map_init(init, one_chunk).collect();
        let mut losses = Vec::with_capacity(results.len());
        let mut failed = None;
        for (c, r) in mine.zip(results) {
            match r {
                Ok((pl, pc, pcounts)) => {
                    losses.push(pl);
                    correct += pc;
                    counts.iter_mut().zip(pcounts).for_each(|(a, b)| *a += b);
                }
                Err(e) => {
                    failed = Some((c, e));
                    break;
                }
            }
        }
        settle(comm, failed)?;
        let mut ints = Vec::with_capacity(1 + counts.len());
        ints.push(correct as u64);
        ints.extend_from_slice(&counts);
        comm.sum_u64(&mut ints)?;
        correct = ints[0] as usize;
        counts.copy_from_slice(&ints[1..]);
        let mut buf = [0.0];
        ordered_sum(comm, &mut buf, &mut |_, b: &mut [f64]| {
            for pl in &losses {
                b[0] += pl;
            }
        })?;
        l = buf[0];
    }
    Ok(EvalMetrics {
        loss: l / n as f64,
        accuracy: correct as f64 / n as f64,
        samples: n,
        spikes_per_sample: per_population(net, &counts, data.spikes.num_spikes(), n),
    })
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Which parameters learn.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum TrainableParams {
    /// Every weight and delay.
    #[default]
    All,
    /// Every weight; delays fixed.
    WeightsOnly,
    /// Every delay; weights fixed.
    DelaysOnly,
    /// One flag pair per connection, in connection order.
    PerConnection(Vec<Trainable>),
}

impl TrainableParams {
    /// The per-connection flags for `net`.
    pub fn resolve(&self, net: &Network) -> Result<Vec<Trainable>> {
        let n = net.connections().len();
        let flags = match self {
            TrainableParams::All => vec![Trainable::BOTH; n],
            TrainableParams::WeightsOnly => vec![Trainable::WEIGHTS; n],
            TrainableParams::DelaysOnly => vec![Trainable::DELAYS; n],
            TrainableParams::PerConnection(v) => {
                if v.len() != n {
                    return Err(EventPropError::TrainableCountMismatch { connections: n, flags: v.len() });
                }
                v.clone()
            }
        };
        if !flags.iter().any(Trainable::any) {
            return Err(EventPropError::NothingToTrain);
        }
        Ok(flags)
    }
}

/// The quantity early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Monitor {
    /// Validation accuracy (higher is better); needs a validation set.
    #[default]
    ValidationAccuracy,
    /// Validation loss (lower is better); needs a validation set.
    ValidationLoss,
    /// Training accuracy, measured during the epoch (higher is better).
    TrainAccuracy,
    /// Training loss, measured during the epoch (lower is better).
    TrainLoss,
}

impl Monitor {
    /// The score of an epoch, higher is better; `None` if the needed set is missing.
    fn score(&self, m: &EpochMetrics) -> Option<f64> {
        match self {
            Monitor::ValidationAccuracy => m.validation.as_ref().map(|v| v.accuracy),
            Monitor::ValidationLoss => m.validation.as_ref().map(|v| -v.loss),
            Monitor::TrainAccuracy => Some(m.train.accuracy),
            Monitor::TrainLoss => Some(-m.train.loss),
        }
    }

    fn needs_validation(&self) -> bool {
        matches!(self, Monitor::ValidationAccuracy | Monitor::ValidationLoss)
    }
}

/// Stop after `patience` epochs without a strict improvement of `monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping (>= 1).
    pub patience: usize,
    /// What is watched.
    pub monitor: Monitor,
}

impl EarlyStopping {
    /// The paper's: 15 epochs on validation accuracy.
    pub fn paper() -> Self {
        Self { patience: 15, monitor: Monitor::ValidationAccuracy }
    }
}

/// Settings of a training run. Build with [`TrainConfig::builder`] or struct-update syntax
/// from [`TrainConfig::default`]; [`Trainer`] runs [`TrainConfig::check`].
///
/// | field | default | meaning | valid range |
/// | --- | --- | --- | --- |
/// | `epochs` | 100 | epochs to run (upper bound with early stopping) | >= 1 |
/// | `batch_size` | 32 | samples per optimiser step (the paper: 256 SHD/SSC, 150 Yin-Yang); the last batch of an epoch may be smaller | >= 1 |
/// | `chunk_size` | 8 | samples per chunk of the deterministic gradient sum; part of the numerics (changing it changes the rounding), not of the speed contract | >= 1 |
/// | `weight_adam` | Adam, lr 1e-3 | weight optimiser | see [`AdamParams`] |
/// | `weight_schedule` | warm-up ×1.05/batch from 0.001× | weight learning-rate schedule | see [`LrSchedule`] |
/// | `delay_adam` | Adam, lr 0.1 | delay optimiser (the paper: 0.1 SHD/SSC, 1 sequence detection, 10 Yin-Yang) | see [`AdamParams`] |
/// | `delay_schedule` | constant | delay schedule (Yin-Yang: ×0.9975 per epoch) | see [`LrSchedule`] |
/// | `max_delay` | 150 ms | delays are clamped to `[0, max_delay]` after each step | finite, >= 0 |
/// | `trainable` | all | which weights and delays learn | at least one parameter |
/// | `early_stopping` | none | see [`EarlyStopping`] (the paper: 15 epochs) | patience >= 1 |
/// | `spike_count_reg` | none | spike-count regulariser of hidden LIF neurons (the paper: [`SpikeCountReg::paper`], target 14, strength 5e-11); a surrogate term, see [`crate::regularise`] | see [`SpikeCountReg`] |
/// | `silent_boost` | 0.002 | added to the incoming weights (trainable ones) of LIF neurons (hidden or output) that did not spike in an epoch; `None` disables | finite, >= 0 |
/// | `seed` | 0 | seeds the per-epoch shuffling | any |
/// | `shuffle` | true | reshuffle the training set every epoch | — |
/// | `checkpoint` | none | file written atomically after every epoch | a path in an existing directory |
/// | `identity` | empty | what the trainer cannot see but the results depend on — the data sets' identity (e.g. [`Labelled::content_hash`]), how the initial network was drawn; recorded in checkpoints and compared on resume | any text |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to run.
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch_size: usize,
    /// Samples per chunk of the deterministic reduction.
    pub chunk_size: usize,
    /// Weight optimiser.
    pub weight_adam: AdamParams,
    /// Weight schedule.
    pub weight_schedule: LrSchedule,
    /// Delay optimiser.
    pub delay_adam: AdamParams,
    /// Delay schedule.
    pub delay_schedule: LrSchedule,
    /// Upper bound of every delay (ms).
    pub max_delay: f64,
    /// Which parameters learn.
    pub trainable: TrainableParams,
    /// Early stopping, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Boost of silent hidden neurons' incoming weights per epoch.
    pub silent_boost: Option<f64>,
    /// Spike-count regulariser of hidden neurons (`None`: off).
    pub spike_count_reg: Option<SpikeCountReg>,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Checkpoint file.
    pub checkpoint: Option<PathBuf>,
    /// Caller-supplied identity of the run's inputs (name -> value), compared on resume.
    pub identity: BTreeMap<String, String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 32,
            chunk_size: DEFAULT_CHUNK_SIZE,
            weight_adam: AdamParams::with_lr(1e-3),
            weight_schedule: LrSchedule::paper_warmup(),
            delay_adam: AdamParams::with_lr(0.1),
            delay_schedule: LrSchedule::constant(),
            max_delay: 150.0,
            trainable: TrainableParams::All,
            early_stopping: None,
            silent_boost: Some(0.002),
            spike_count_reg: None,
            seed: 0,
            shuffle: true,
            checkpoint: None,
            identity: BTreeMap::new(),
        }
    }
}

impl TrainConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> TrainConfigBuilder {
        TrainConfigBuilder { config: Self::default() }
    }

    /// Validates the settings on their own (the network is checked by [`Trainer::new`]).
    pub fn check(&self) -> Result<()> {
        let at_least_one = |param, v: usize| {
            if v == 0 {
                Err(EventPropError::InvalidHyperparameter { param, value: 0.0, reason: "must be >= 1" })
            } else {
                Ok(())
            }
        };
        at_least_one("epochs", self.epochs)?;
        at_least_one("batch_size", self.batch_size)?;
        at_least_one("chunk_size", self.chunk_size)?;
        self.weight_adam.check()?;
        self.weight_schedule.check()?;
        self.delay_adam.check()?;
        self.delay_schedule.check()?;
        DelayConstraint::new(self.max_delay)?;
        if let Some(es) = self.early_stopping {
            at_least_one("early_stopping.patience", es.patience)?;
        }
        if let Some(b) = self.silent_boost
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(EventPropError::InvalidHyperparameter {
                param: "silent_boost",
                value: b,
                reason: "must be finite and >= 0",
            });
        }
        if let Some(r) = &self.spike_count_reg {
            r.check()?;
        }
        if let TrainableParams::PerConnection(v) = &self.trainable
            && !v.iter().any(Trainable::any)
        {
            return Err(EventPropError::NothingToTrain);
        }
        Ok(())
    }

    fn constraint(&self) -> Result<DelayConstraint> {
        Ok(DelayConstraint::new(self.max_delay)?)
    }
}

/// Builder of [`TrainConfig`]; [`TrainConfigBuilder::build`] runs [`TrainConfig::check`].
///
/// ```
/// use snn_eventprop::optim::{LrSchedule, Trainable};
/// use snn_eventprop::train::{TrainConfig, TrainableParams};
/// let c = TrainConfig::builder()
///     .epochs(20)
///     .batch_size(2)
///     .delay_lr(1.0)
///     .max_delay(15.0)
///     .trainable(TrainableParams::PerConnection(vec![Trainable::DELAYS]))
///     .build()
///     .unwrap();
/// assert_eq!(c.delay_adam.lr, 1.0);
/// assert!(TrainConfig::builder().batch_size(0).build().is_err());
/// assert!(TrainConfig::builder().delay_schedule(LrSchedule::epoch_decay(1.5)).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct TrainConfigBuilder {
    config: TrainConfig,
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $ty:ty),* $(,)?) => {$(
        #[$doc]
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    )*};
}

impl TrainConfigBuilder {
    setter! {
        /// Epochs to run.
        epochs: usize,
        /// Samples per optimiser step.
        batch_size: usize,
        /// Samples per chunk of the deterministic reduction.
        chunk_size: usize,
        /// Weight optimiser.
        weight_adam: AdamParams,
        /// Weight schedule.
        weight_schedule: LrSchedule,
        /// Delay optimiser.
        delay_adam: AdamParams,
        /// Delay schedule.
        delay_schedule: LrSchedule,
        /// Upper bound of delays (ms).
        max_delay: f64,
        /// Which parameters learn.
        trainable: TrainableParams,
        /// Seed of the shuffling.
        seed: u64,
        /// Reshuffle every epoch.
        shuffle: bool,
        /// Silent-neuron boost (`None` disables).
        silent_boost: Option<f64>,
        /// Spike-count regulariser (`None` disables).
        spike_count_reg: Option<SpikeCountReg>,
    }

    /// Weight learning rate (other Adam settings unchanged).
    pub fn weight_lr(mut self, lr: f64) -> Self {
        self.config.weight_adam.lr = lr;
        self
    }

    /// Delay learning rate (other Adam settings unchanged).
    pub fn delay_lr(mut self, lr: f64) -> Self {
        self.config.delay_adam.lr = lr;
        self
    }

    /// Enables early stopping.
    pub fn early_stopping(mut self, es: EarlyStopping) -> Self {
        self.config.early_stopping = Some(es);
        self
    }

    /// Writes a checkpoint to `path` after every epoch.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.checkpoint = Some(path.into());
        self
    }

    /// Records one item of the run's identity ([`TrainConfig::identity`]), e.g.
    /// `.identity("train data", format!("{:016x}", train.content_hash()))`.
    pub fn identity(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.identity.insert(name.into(), value.into());
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<TrainConfig> {
        self.config.check()?;
        Ok(self.config)
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics, progress, state
// ---------------------------------------------------------------------------------------------

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Training loss and accuracy, measured on the fly during the epoch (the network changes
    /// between batches), and hidden activity.
    pub train: EvalMetrics,
    /// Validation set after the epoch.
    pub validation: Option<EvalMetrics>,
    /// Test set after the epoch.
    pub test: Option<EvalMetrics>,
    /// Hidden LIF neurons that did not spike during the epoch (boosted if enabled).
    pub silent_neurons: usize,
    /// Mean spikes per hidden LIF neuron (LIF populations other than the output) per training
    /// sample during the epoch — the quantity the spike-count regulariser
    /// ([`TrainConfig::spike_count_reg`]) pulls towards its target; `None` without hidden LIF neurons.
    pub hidden_spikes_per_neuron: Option<f64>,
    /// Delay statistics of each connection whose delays learn (`None` for the others).
    pub delay_stats: Vec<Option<DelayStats>>,
    /// Weight learning rate of the epoch's last step.
    pub weight_lr: f64,
    /// Delay learning rate of the epoch's last step.
    pub delay_lr: f64,
    /// Delays moved back into `[0, max_delay]` by the clamp during the epoch.
    pub clamped_delays: usize,
    /// Wall-clock seconds of the epoch (not reproducible, unlike everything else).
    pub seconds: f64,
}

/// Reported to the progress callback.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A batch finished.
    Batch {
        /// Epoch index (0-based).
        epoch: usize,
        /// Batch index within the epoch (0-based).
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// The batch's mean loss.
        loss: f64,
    },
    /// An epoch finished.
    Epoch(&'a EpochMetrics),
}

/// The best epoch so far under the early-stopping monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestSoFar {
    /// Epoch index.
    pub epoch: usize,
    /// Its score (higher is better: losses are negated).
    pub score: f64,
    /// The network after that epoch.
    pub network: Network,
}

/// Everything needed to continue a run exactly: what a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    network: Network,
    optimiser: Optimiser,
    epochs_done: usize,
    rng: ChaCha8Rng,
    history: Vec<EpochMetrics>,
    best: Option<BestSoFar>,
    stopped_early: bool,
}

/// The checkpoint's kind in the [`persist`] framing. Version 3: the framing, the run's
/// settings ([`Setting`]) recorded beside the state. Version 4: connections may be sparse (the
/// network's serialised form gained the sparse synapses). Older files are refused.
pub const CHECKPOINT_KIND: persist::Kind = persist::Kind::new("snn-checkpoint", 4);

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    settings: Vec<Setting>,
    state: TrainState,
}

fn ckpt_err(path: &Path, reason: impl std::fmt::Display) -> EventPropError {
    EventPropError::Checkpoint { path: path.to_path_buf(), reason: reason.to_string() }
}

/// One setting that changes the results of a run, as canonical text (`{:?}` of the value: exact
/// for floating-point numbers), recorded in checkpoints and compared on resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// What it is (`"batch_size"`, `"network shape"`, `"identity: train data"`, ...).
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A setting that differs between a checkpoint and the run that wants to resume it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDiff {
    /// The setting.
    pub name: String,
    /// Its value in the checkpoint (`None`: not recorded there).
    pub checkpoint: Option<String>,
    /// Its value now (`None`: not set now).
    pub now: Option<String>,
}

impl std::fmt::Display for SettingDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
        write!(f, "{}: checkpoint {}, now {}", self.name, show(&self.checkpoint), show(&self.now))
    }
}

/// Names of the settings that only [`Trainer::new`] and [`Trainer::resume_matching`] know (the
/// caller's network); [`Trainer::resume`] carries them over from the checkpoint.
const NETWORK_SETTINGS: [&str; 2] = ["network shape", "initial network"];

/// The shape of a network: populations (name, size, kind with parameters) and connections.
fn network_shape(net: &Network) -> String {
    let pops: Vec<String> =
        net.populations().iter().map(|p| format!("{}:{}:{:?}", p.name(), p.size(), p.kind())).collect();
    // A sparse connection adds its synapse count and a hash of its pattern (dense ones read as before).
    let conns: Vec<String> = net
        .connections()
        .iter()
        .map(|c| match c.sparse() {
            None => format!("{}->{}", c.pre().0, c.post().0),
            Some(s) => {
                let mut h = Fnv64::default();
                for (k, &r) in s.rows().iter().enumerate() {
                    let (_, pre) = s.position(k);
                    h.write(&(pre as u64).to_le_bytes());
                    h.write(&(r as u64).to_le_bytes());
                }
                format!("{}->{} sparse {} synapses pattern {:016x}", c.pre().0, c.post().0, s.nnz(), h.0)
            }
        })
        .collect();
    format!("populations [{}], connections [{}], output {}", pops.join(", "), conns.join(", "), net.output().0)
}

/// FNV-1a of every weight and delay (bits), in connection order.
fn network_hash(net: &Network) -> String {
    let mut h = Fnv64::default();
    for c in net.connections() {
        for x in c.weight_values().iter().chain(c.delay_values()) {
            h.write(&x.to_bits().to_le_bytes());
        }
    }
    format!("{:016x}", h.0)
}

/// Every setting of a run that changes its results, except the network ones (see
/// [`NETWORK_SETTINGS`]) and `epochs` (a run may be continued for more epochs).
fn run_settings(
    engine_config: &snn_core::SimConfig,
    loss: &Loss,
    config: &TrainConfig,
    flags: &[Trainable],
) -> Vec<Setting> {
    let mut out = vec![
        ("engine", format!("{engine_config:?}")),
        ("loss", format!("{loss:?}")),
        ("batch_size", format!("{:?}", config.batch_size)),
        ("chunk_size", format!("{:?}", config.chunk_size)),
        ("weight optimiser", format!("{:?}", config.weight_adam)),
        ("weight schedule", format!("{:?}", config.weight_schedule)),
        ("delay optimiser", format!("{:?}", config.delay_adam)),
        ("delay schedule", format!("{:?}", config.delay_schedule)),
        ("max_delay", format!("{:?}", config.max_delay)),
        ("trainable", format!("{flags:?}")),
        ("early stopping", format!("{:?}", config.early_stopping)),
        ("silent boost", format!("{:?}", config.silent_boost)),
        ("spike-count regulariser", format!("{:?}", config.spike_count_reg)),
        ("seed", format!("{:?}", config.seed)),
        ("shuffle", format!("{:?}", config.shuffle)),
    ]
    .into_iter()
    .map(|(name, value)| Setting { name: name.into(), value })
    .collect::<Vec<_>>();
    out.extend(config.identity.iter().map(|(k, v)| Setting { name: format!("identity: {k}"), value: v.clone() }));
    out
}

/// Every setting that differs between `recorded` and `now`, in `recorded`'s order then the new ones.
fn diff_settings(recorded: &[Setting], now: &[Setting]) -> Vec<SettingDiff> {
    let find = |list: &[Setting], name: &str| list.iter().find(|s| s.name == name).map(|s| s.value.clone());
    let mut out = Vec::new();
    for r in recorded {
        let n = find(now, &r.name);
        if n.as_deref() != Some(r.value.as_str()) {
            out.push(SettingDiff { name: r.name.clone(), checkpoint: Some(r.value.clone()), now: n });
        }
    }
    for n in now {
        if find(recorded, &n.name).is_none() {
            out.push(SettingDiff { name: n.name.clone(), checkpoint: None, now: Some(n.value.clone()) });
        }
    }
    out
}

/// The structural checks of a decoded state against itself and the configuration: valid
/// network, an optimiser that fits it, trained delays within `[0, max_delay]`, a history as
/// long as the epochs done, a best network of the same shape.
fn check_state(state: &TrainState) -> Result<()> {
    let net = &state.network;
    net.validate()?;
    state.optimiser.check_fits(net)?;
    let constraint = state.optimiser.constraint();
    for (c, t) in net.connections().iter().zip(state.optimiser.trainable()) {
        if t.delays {
            constraint.check_values(c.delay_values())?;
        }
    }
    if state.history.len() != state.epochs_done {
        return Err(EventPropError::ShapeMismatch {
            what: "epoch history (epochs done)",
            expected: state.epochs_done,
            got: state.history.len(),
        });
    }
    if let Some(b) = &state.best {
        b.network.validate()?;
        if network_shape(&b.network) != network_shape(net) || b.epoch >= state.epochs_done.max(1) {
            return Err(EventPropError::ShapeMismatch {
                what: "best network (shape or epoch)",
                expected: state.epochs_done,
                got: b.epoch,
            });
        }
    }
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Epochs completed in total (including those before a resume).
    pub epochs_done: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Best epoch under the early-stopping monitor (`None` without early stopping).
    pub best_epoch: Option<usize>,
    /// Metrics of the last epoch.
    pub last: Option<EpochMetrics>,
}

// ---------------------------------------------------------------------------------------------
// The trainer
// ---------------------------------------------------------------------------------------------

/// The training loop: owns the network being trained, the optimisers and the run's history.
///
/// Every epoch: shuffle the training set from the seeded generator; for each batch compute
/// the mean gradients ([`BatchWorkspace`]) and take one optimiser step (Adam on weights,
/// Adam on delays, clamp); then boost silent hidden neurons, evaluate validation and test
/// sets, record [`EpochMetrics`], update early stopping and write the checkpoint.
///
/// On an error in the middle of an epoch (e.g. a NaN gradient) the loop stops at once and
/// returns the error; the checkpoint on disk is still that of the last completed epoch, and
/// the in-memory network is left as it was at the failing batch (for inspection).
pub struct Trainer<'e, E: Adjoint> {
    engine: &'e E,
    loss: Loss,
    config: TrainConfig,
    state: TrainState,
    workspace: Option<BatchWorkspace<E>>,
    /// The network settings ([`NETWORK_SETTINGS`]) of the run, recorded in every checkpoint.
    network_settings: Vec<Setting>,
    /// The ranks this run is spread over ([`Trainer::with_communicator`]).
    comm: &'e dyn Communicator,
}

impl<'e, E: Adjoint> std::fmt::Debug for Trainer<'e, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("loss", &self.loss)
            .field("config", &self.config)
            .field("epochs_done", &self.state.epochs_done)
            .finish_non_exhaustive()
    }
}

impl<'e, E: Adjoint> Trainer<'e, E> {
    /// A fresh run training `net`.
    ///
    /// Errors: invalid configuration, no trainable parameter, trainable flags not matching the
    /// connections, delays of a delay-trained connection outside `[0, max_delay]`, engine
    /// readout not the one the loss needs.
    pub fn new(engine: &'e E, loss: Loss, config: TrainConfig, net: Network) -> Result<Self> {
        config.check()?;
        net.check()?;
        let flags = config.trainable.resolve(&net)?;
        let constraint = config.constraint()?;
        for (c, t) in net.connections().iter().zip(&flags) {
            if t.delays {
                constraint.check_values(c.delay_values())?;
            }
        }
        let optimiser = Optimiser::new(
            &net,
            &flags,
            (config.weight_adam, config.weight_schedule),
            (config.delay_adam, config.delay_schedule),
            constraint,
        )?;
        let state = TrainState {
            network: net,
            optimiser,
            epochs_done: 0,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            history: Vec::new(),
            best: None,
            stopped_early: false,
        };
        let network_settings = vec![
            Setting { name: NETWORK_SETTINGS[0].into(), value: network_shape(&state.network) },
            Setting { name: NETWORK_SETTINGS[1].into(), value: network_hash(&state.network) },
        ];
        let t = Self { engine, loss, config, state, workspace: None, network_settings, comm: &SINGLE_PROCESS };
        t.check_engine()?;
        t.remove_stale_temps();
        Ok(t)
    }

    /// Removes temporary files of killed checkpoint writes beside the checkpoint (best effort).
    fn remove_stale_temps(&self) {
        if let Some(path) = &self.config.checkpoint {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            match persist::remove_stale_temps(dir) {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(?removed, "removed temporary files of interrupted checkpoint writes");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not clean up stale temporary files"),
            }
        }
    }

    /// Continues the run saved in the checkpoint at `path` if it was written by a run of exactly
    /// these settings and this initial network `net` (as [`Trainer::new`] would start it);
    /// otherwise [`EventPropError::ResumeMismatch`] lists every differing setting.
    ///
    /// Compared: the engine configuration, the loss, every setting of `config` except `epochs`
    /// and `checkpoint`, its [`TrainConfig::identity`] (the data), the network's shape and its
    /// initial weights and delays. `epochs` may grow (the run goes on), but not fall below the
    /// epochs already done.
    pub fn resume_matching(
        engine: &'e E,
        loss: Loss,
        config: TrainConfig,
        net: Network,
        path: impl AsRef<Path>,
    ) -> Result<Self> {
        let fresh = Self::new(engine, loss, config, net)?;
        let Self { config, network_settings, .. } = fresh;
        Self::resume_with(engine, loss, config, Some(network_settings), path.as_ref())
    }

    /// Continues the run saved in the checkpoint at `path`.
    ///
    /// As [`Trainer::resume_matching`], but without the caller's initial network: the network's
    /// shape and initial values are taken from the checkpoint unchecked. Every other setting is
    /// compared: `config` may differ from the original run only in `epochs` (not below the
    /// epochs done) and the checkpoint path — a mismatch is an
    /// [`EventPropError::ResumeMismatch`] that lists every differing setting. A damaged file,
    /// or one of another kind, is an [`EventPropError::CheckpointFile`]; a decodable but
    /// inconsistent state an [`EventPropError::Checkpoint`].
    pub fn resume(engine: &'e E, loss: Loss, config: TrainConfig, path: impl AsRef<Path>) -> Result<Self> {
        config.check()?;
        Self::resume_with(engine, loss, config, None, path.as_ref())
    }

    fn resume_with(
        engine: &'e E,
        loss: Loss,
        config: TrainConfig,
        network_settings: Option<Vec<Setting>>,
        path: &Path,
    ) -> Result<Self> {
        let file: CheckpointFile = persist::load(path, CHECKPOINT_KIND)?;
        let CheckpointFile { settings: recorded, state } = file;
        check_state(&state).map_err(|e| ckpt_err(path, format!("invalid content: {e}")))?;
        let flags = config.trainable.resolve(&state.network)?;
        let mut now = run_settings(engine.config(), &loss, &config, &flags);
        let network_settings = match network_settings {
            Some(n) => n,
            // Not known to the caller: carried over from the checkpoint.
            None => recorded.iter().filter(|r| NETWORK_SETTINGS.contains(&r.name.as_str())).cloned().collect(),
        };
        now.extend(network_settings.iter().cloned());
        let mut differences = diff_settings(&recorded, &now);
        if config.epochs < state.epochs_done {
            differences.push(SettingDiff {
                name: "epochs".into(),
                checkpoint: Some(format!("{} done", state.epochs_done)),
                now: Some(format!("{} asked", config.epochs)),
            });
        }
        if !differences.is_empty() {
            return Err(EventPropError::ResumeMismatch { path: path.to_path_buf(), differences });
        }
        let t = Self { engine, loss, config, state, workspace: None, network_settings, comm: &SINGLE_PROCESS };
        t.check_engine()?;
        t.remove_stale_temps();
        Ok(t)
    }

    /// Trains data-parallel over the ranks of `comm`: every rank runs the same program with the
    /// same configuration, data and (seeded) initial network, computes its share of each
    /// batch's chunks and receives the batch's gradients and metrics, which are bitwise those
    /// of one process ([`BatchWorkspace::compute_on`], [`evaluate_on`]). Only rank 0 writes
    /// the checkpoint.
    ///
    /// Errors: more ranks than a full batch has chunks ([`EventPropError::TooManyRanks`]).
    ///
    /// ```
    /// # use nalgebra::DMatrix;
    /// # use snn_core::{ExactEngine, LiParams, NetworkBuilder, ReadoutKind, SimConfig};
    /// use snn_eventprop::distributed::SingleProcess;
    /// use snn_eventprop::train::{TrainConfig, Trainer};
    /// use snn_eventprop::{EventPropError, Loss};
    /// # let mut b = NetworkBuilder::new();
    /// # let i = b.input("in", 2);
    /// # let o = b.li("out", 2, LiParams::new(10.0, 5.0).unwrap());
    /// # b.connect(i, o, DMatrix::from_element(2, 2, 1.0), DMatrix::zeros(2, 2));
    /// # let net = b.build().unwrap();
    /// let engine = ExactEngine::new(SimConfig::new(25.0, ReadoutKind::MaxVoltage)).unwrap();
    /// let config = TrainConfig::builder().batch_size(16).chunk_size(8).build().unwrap();
    /// let trainer = Trainer::new(&engine, Loss::MaxVoltageCrossEntropy, config, net).unwrap();
    /// let trainer = trainer.with_communicator(&SingleProcess).unwrap();
    /// assert_eq!(trainer.communicator().size(), 1);
    /// ```
    pub fn with_communicator(mut self, comm: &'e dyn Communicator) -> Result<Self> {
        check_ranks(comm.size(), self.config.batch_size, self.config.chunk_size)?;
        self.comm = comm;
        Ok(self)
    }

    /// The ranks this run is spread over.
    pub fn communicator(&self) -> &dyn Communicator {
        self.comm
    }

    fn check_engine(&self) -> Result<()> {
        let want = self.loss.readout_kind();
        if self.engine.config().readout != want {
            return Err(EventPropError::ReadoutMismatch {
                loss: self.loss.name(),
                expected: readout_name(&want),
                got: format!("an engine configured for {:?}", self.engine.config().readout),
            });
        }
        Ok(())
    }

    /// The network being trained.
    pub fn network(&self) -> &Network {
        &self.state.network
    }

    /// Takes the trained network.
    pub fn into_network(self) -> Network {
        self.state.network
    }

    /// The best network so far under the early-stopping monitor.
    pub fn best(&self) -> Option<&BestSoFar> {
        self.state.best.as_ref()
    }

    /// Metrics of every completed epoch.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.state.history
    }

    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.state.epochs_done
    }

    /// Whether early stopping has ended the run.
    pub fn stopped_early(&self) -> bool {
        self.state.stopped_early
    }

    /// The optimiser state.
    pub fn optimiser(&self) -> &Optimiser {
        &self.state.optimiser
    }

    /// The full resumable state.
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The settings recorded in checkpoints and compared on resume ([`Trainer::resume_matching`]).
    pub fn settings(&self) -> Vec<Setting> {
        let flags = self.state.optimiser.trainable();
        let mut out = run_settings(self.engine.config(), &self.loss, &self.config, flags);
        out.extend(self.network_settings.iter().cloned());
        out
    }

    /// Writes the resumable state and the run's settings to `path` atomically (the [`persist`]
    /// framing, kind [`CHECKPOINT_KIND`]).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            settings: Vec<Setting>,
            state: &'a TrainState,
        }
        let file = Borrowed { settings: self.settings(), state: &self.state };
        Ok(persist::save(path.as_ref(), CHECKPOINT_KIND, &file)?)
    }

    fn check_data(&self, data: &TrainData<'_>) -> Result<()> {
        let batch = self.config.batch_size.min(data.train.len()).max(1);
        check_ranks(self.comm.size(), batch, self.config.chunk_size)?;
        let net = &self.state.network;
        check_batch(self.engine, net, &data.train.spikes, &data.train.labels, &self.loss)?;
        for set in [data.validation, data.test].into_iter().flatten() {
            check_batch(self.engine, net, &set.spikes, &set.labels, &self.loss)?;
        }
        let needs_validation = self.config.early_stopping.is_some_and(|es| es.monitor.needs_validation());
        if needs_validation && data.validation.is_none() {
            return Err(EventPropError::MissingData {
                what: "a validation set",
                needed_by: "early stopping on validation",
            });
        }
        Ok(())
    }

    /// Runs epochs until `config.epochs` are done or early stopping triggers.
    pub fn fit(&mut self, data: &TrainData<'_>) -> Result<TrainSummary> {
        self.fit_with_progress(data, |_| {})
    }

    /// [`Trainer::fit`] reporting every batch and epoch to `progress`.
    pub fn fit_with_progress(
        &mut self,
        data: &TrainData<'_>,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<TrainSummary> {
        self.check_data(data)?;
        while self.state.epochs_done < self.config.epochs && !self.state.stopped_early {
            self.epoch_unchecked(data, &mut progress)?;
        }
        Ok(TrainSummary {
            epochs_done: self.state.epochs_done,
            stopped_early: self.state.stopped_early,
            best_epoch: self.state.best.as_ref().map(|b| b.epoch),
            last: self.state.history.last().cloned(),
        })
    }

    /// Runs exactly one epoch (ignoring `config.epochs` and early stopping) and returns its metrics.
    pub fn run_epoch(&mut self, data: &TrainData<'_>, mut progress: impl FnMut(Progress<'_>)) -> Result<&EpochMetrics> {
        self.check_data(data)?;
        self.epoch_unchecked(data, &mut progress)?;
        Ok(self.state.history.last().expect("an epoch was just recorded"))
    }

    fn epoch_unchecked(&mut self, data: &TrainData<'_>, progress: &mut dyn FnMut(Progress<'_>)) -> Result<()> {
        let start = Instant::now();
        let epoch = self.state.epochs_done;
        let span = tracing::info_span!("epoch", epoch);
        let _guard = span.enter();
        let train = data.train;
        let n = train.len();
        let mut order: Vec<usize> = (0..n).collect();
        if self.config.shuffle {
            order.shuffle(&mut self.state.rng);
        }
        let ws = match &mut self.workspace {
            Some(ws) => ws,
            None => self.workspace.insert(BatchWorkspace::new(&self.state.network, self.config.chunk_size)?),
        };
        ws.set_regulariser(self.config.spike_count_reg)?;
        let batches = n.div_ceil(self.config.batch_size);
        let mask = self.state.optimiser.trainable().to_vec();
        let mut counts = vec![0u64; self.state.network.num_neurons()];
        let (mut loss_sum, mut correct, mut clamped) = (0.0, 0usize, 0usize);
        let (mut weight_lr, mut delay_lr) = (0.0, 0.0);
        for (b, idx) in order.chunks(self.config.batch_size).enumerate() {
            let _batch = tracing::debug_span!("batch", batch = b, samples = idx.len()).entered();
            let s = ws.compute_on(
                self.comm,
                self.engine,
                &self.state.network,
                &train.spikes,
                &train.labels,
                idx,
                &self.loss,
                Some(&mask),
            )?;
            let info = self.state.optimiser.step(&mut self.state.network, ws.gradients(), epoch)?;
            loss_sum += s.loss * s.samples as f64;
            correct += s.correct;
            clamped += info.clamped;
            (weight_lr, delay_lr) = (info.weight_lr, info.delay_lr);
            counts.iter_mut().zip(ws.spike_counts()).for_each(|(a, b)| *a += b);
            tracing::debug!(loss = s.loss, correct = s.correct, "batch done");
            progress(Progress::Batch { epoch, batch: b, batches, loss: s.loss });
        }
        let silent_neurons = self.boost_silent(&counts, &mask);
        let net = &self.state.network;
        let eval = |set: Option<&Labelled>| -> Result<Option<EvalMetrics>> {
            set.map(|d| evaluate_on(self.comm, self.engine, net, d, &self.loss, self.config.chunk_size)).transpose()
        };
        let validation = eval(data.validation)?;
        let test = eval(data.test)?;
        let constraint = *self.state.optimiser.constraint();
        let delay_stats = net
            .connections()
            .iter()
            .zip(&mask)
            .map(
                |(c, t)| {
                    if t.delays { DelayStats::of(c.delay_values().iter().copied(), &constraint).ok() } else { None }
                },
            )
            .collect();
        let metrics = EpochMetrics {
            epoch,
            train: EvalMetrics {
                loss: loss_sum / n as f64,
                accuracy: correct as f64 / n as f64,
                samples: n,
                spikes_per_sample: per_population(net, &counts, train.spikes.num_spikes(), n),
            },
            validation,
            test,
            silent_neurons,
            hidden_spikes_per_neuron: mean_hidden_spikes(net, &counts, n),
            delay_stats,
            weight_lr,
            delay_lr,
            clamped_delays: clamped,
            seconds: start.elapsed().as_secs_f64(),
        };
        tracing::info!(
            train_loss = metrics.train.loss,
            train_accuracy = metrics.train.accuracy,
            validation_accuracy = metrics.validation.as_ref().map(|v| v.accuracy),
            test_accuracy = metrics.test.as_ref().map(|v| v.accuracy),
            silent = silent_neurons,
            hidden_spikes_per_neuron = metrics.hidden_spikes_per_neuron,
            seconds = metrics.seconds,
            "epoch done"
        );
        let watched = self.config.early_stopping.and_then(|es| es.monitor.score(&metrics).map(|score| (es, score)));
        if let Some((es, score)) = watched {
            let improved = match &self.state.best {
                None => !score.is_nan(),
                Some(b) => score > b.score,
            };
            if improved {
                self.state.best = Some(BestSoFar { epoch, score, network: self.state.network.clone() });
            }
            if let Some(b) = &self.state.best
                && epoch - b.epoch >= es.patience
            {
                self.state.stopped_early = true;
                tracing::info!(best_epoch = b.epoch, "early stopping");
            }
        }
        self.state.history.push(metrics);
        self.state.epochs_done += 1;
        if let Some(path) = &self.config.checkpoint
            && self.comm.rank() == 0
        {
            self.save_checkpoint(path)?;
        }
        progress(Progress::Epoch(self.state.history.last().expect("just pushed")));
        Ok(())
    }

    /// Adds `silent_boost` to the trainable incoming weights of every LIF neuron (hidden, and
    /// LIF outputs, which a first-spike-time loss cannot revive: a silent output has no spike
    /// time to differentiate) with no spike in `counts`; returns the number of such neurons.
    fn boost_silent(&mut self, counts: &[u64], mask: &[Trainable]) -> usize {
        let net = &mut self.state.network;
        let mut silent = 0;
        for p in 0..net.populations().len() {
            let id = PopulationId(p);
            if !matches!(net.population(id).kind(), NeuronKind::Lif(_)) {
                continue;
            }
            let (offset, size) = (net.offset(id), net.population(id).size());
            let rows: Vec<usize> = (0..size).filter(|&j| counts[offset + j] == 0).collect();
            silent += rows.len();
            let Some(boost) = self.config.silent_boost else { continue };
            for c in net.incoming(id).to_vec() {
                if !mask[c.0].weights {
                    continue;
                }
                // The stored synapses onto silent neurons (each gets `boost` once, so a dense
                // connection's result is that of adding to whole rows).
                let conn = net.connection(c);
                let mut is_silent = vec![false; size];
                rows.iter().for_each(|&j| is_silent[j] = true);
                let targets: Vec<usize> = (0..conn.shape().1)
                    .flat_map(|i| {
                        conn.fan_out(i).iter().filter(|&(j, _)| is_silent[j]).map(|(_, k)| k).collect::<Vec<_>>()
                    })
                    .collect();
                let w = net.weight_values_mut(c);
                for k in targets {
                    w[k] += boost;
                }
            }
        }
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;
    use rand::RngExt;

    #[test]
    fn parallel_in_order_sum_is_bitwise_the_sequential_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut random =
            |r, c| DMatrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0) * 10f64.powi(rng.random_range(-8..8)));
        // 100 x 50 = 5000 elements: crosses a block boundary.
        let mut mk =
            || Gradients { weights: vec![random(100, 50), random(3, 2)], delays: vec![random(100, 50), random(3, 2)] };
        let parts: Vec<Gradients> = (0..5).map(|_| mk()).collect();
        let start = mk();
        let mut seq = start.clone();
        parts.iter().for_each(|p| seq.add_assign(p));
        let mut par = start;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| add_in_order(&mut par, &parts.iter().collect::<Vec<_>>()));
        let bits = |g: &Gradients| {
            g.weights
                .iter()
                .chain(&g.delays)
                .flat_map(|m| m.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&seq), bits(&par));
    }
}
