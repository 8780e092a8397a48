//! Network description: populations and connections with per-synapse weights and delays.
//!
//! Neurons are numbered globally: population `p` owns the global indices
//! `offset(p) .. offset(p) + size(p)`, in the order the populations were added.
//! Weight and delay matrices are `post x pre` (nalgebra, column-major), so the fan-out
//! of presynaptic neuron `i` — what a spike of `i` touches — is the contiguous column `i`.
//! A connection may instead hold [`SparseSynapses`] (CSC, the same orientation): only existing
//! synapses are stored, and column `i` is again one contiguous run. The accessors
//! [`Connection::weight_values`], [`Connection::delay_values`], [`Connection::fan_out`] and
//! [`Connection::synapse_index`] work for both storages.

use std::ops::Range;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::neuron::{Leak, LiParams, LifParams};
use crate::sparse::SparseSynapses;

/// Index of a population in its [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PopulationId(pub usize);

/// Index of a connection in its [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnectionId(pub usize);

/// What kind of neurons a population holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum NeuronKind {
    /// Spike sources driven by the input spike trains.
    Input,
    /// Leaky integrate-and-fire neurons.
    Lif(LifParams),
    /// Leaky integrators (no threshold): readout neurons.
    Li(LiParams),
}

impl NeuronKind {
    /// The time constants, if the neurons integrate (LIF or LI).
    pub fn leak(&self) -> Option<&Leak> {
        match self {
            NeuronKind::Input => None,
            NeuronKind::Lif(p) => Some(p.leak()),
            NeuronKind::Li(p) => Some(p.leak()),
        }
    }

    /// Whether neurons of this kind emit spikes.
    pub fn spikes(&self) -> bool {
        !matches!(self, NeuronKind::Li(_))
    }
}

/// A group of neurons of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    name: String,
    size: usize,
    kind: NeuronKind,
}

impl Population {
    /// Name given when the population was added.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of neurons.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Neuron kind and parameters.
    pub fn kind(&self) -> &NeuronKind {
        &self.kind
    }
}

/// Synapses from neurons of `pre` to neurons of `post`, each with a weight and a delay in ms:
/// either dense (every pair, `post x pre` matrices) or sparse ([`SparseSynapses`], only the
/// stored pairs). A connection with `pre == post` is recurrent.
///
/// The *values* of a connection are its weights and delays in storage order: column-major for
/// dense matrices, the data order for sparse ones. Gradients use the same order and length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pre: PopulationId,
    post: PopulationId,
    /// Dense weights; `0 x 0` when `sparse` is set.
    weights: DMatrix<f64>,
    /// Dense delays; `0 x 0` when `sparse` is set.
    delays: DMatrix<f64>,
    /// Sparse synapses, if the connection is sparse.
    sparse: Option<SparseSynapses>,
}

/// The synapses leaving one presynaptic neuron of a [`Connection`]: their value indices form
/// one contiguous range (dense: the column; sparse: the column's run) and their targets
/// (postsynaptic local indices) increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut<'a> {
    /// Value index of the first synapse.
    pub start: usize,
    /// Number of synapses.
    pub len: usize,
    /// Targets of a sparse column (`None`: dense, the targets are `0..len`).
    rows: Option<&'a [usize]>,
}

impl FanOut<'_> {
    /// Target (postsynaptic local index) of the `k`-th synapse (`k < len`).
    #[inline]
    pub fn target(&self, k: usize) -> usize {
        self.rows.map_or(k, |r| r[k])
    }

    /// Value index of the `k`-th synapse.
    #[inline]
    pub fn index(&self, k: usize) -> usize {
        self.start + k
    }

    /// The value indices.
    pub fn indices(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// `(target, value index)` of every synapse, targets increasing.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.len).map(|k| (self.target(k), self.start + k))
    }

    /// Whether no synapse leaves the neuron.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Connection {
    /// Presynaptic population.
    pub fn pre(&self) -> PopulationId {
        self.pre
    }

    /// Postsynaptic population.
    pub fn post(&self) -> PopulationId {
        self.post
    }

    /// Whether the connection maps a population onto itself.
    pub fn is_recurrent(&self) -> bool {
        self.pre == self.post
    }

    /// Dense weights, `post x pre`. **Empty (`0 x 0`) for a sparse connection**: use
    /// [`Connection::weight_values`], [`Connection::fan_out`] or [`Connection::dense_weights`],
    /// which work for both storages.
    pub fn weights(&self) -> &DMatrix<f64> {
        &self.weights
    }

    /// Dense delays in ms, `post x pre`. **Empty (`0 x 0`) for a sparse connection**, like
    /// [`Connection::weights`]; see [`Connection::delay_values`].
    pub fn delays(&self) -> &DMatrix<f64> {
        &self.delays
    }

    /// The sparse synapses, if the connection is sparse.
    pub fn sparse(&self) -> Option<&SparseSynapses> {
        self.sparse.as_ref()
    }

    /// Whether the synapses are stored sparse.
    pub fn is_sparse(&self) -> bool {
        self.sparse.is_some()
    }

    /// `(n_post, n_pre)`: the populations' sizes, for either storage.
    pub fn shape(&self) -> (usize, usize) {
        match &self.sparse {
            Some(s) => s.shape(),
            None => self.weights.shape(),
        }
    }

    /// Weights in storage order (dense: column-major; sparse: data order).
    ///
    /// ```
    /// # use nalgebra::DMatrix;
    /// # use snn_core::{ConnectionId, LiParams, NetworkBuilder, SparseSynapses};
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 2);
    /// let o = b.li("out", 2, LiParams::default());
    /// let w = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]);
    /// b.connect(i, o, w.clone(), DMatrix::zeros(2, 2));
    /// let mask = DMatrix::from_row_slice(2, 2, &[false, true, true, false]);
    /// b.connect_sparse(i, o, SparseSynapses::from_dense(&w, &DMatrix::zeros(2, 2), &mask)?);
    /// let net = b.build()?;
    /// let (dense, sparse) = (net.connection(ConnectionId(0)), net.connection(ConnectionId(1)));
    /// assert_eq!(dense.weight_values(), &[1.0, 3.0, 2.0, 4.0]);
    /// assert_eq!(sparse.weight_values(), &[3.0, 2.0]);
    /// assert_eq!(sparse.weights().shape(), (0, 0)); // the dense view of a sparse connection
    /// // Fan-out of presynaptic neuron 1: (target, value index).
    /// assert_eq!(dense.fan_out(1).iter().collect::<Vec<_>>(), [(0, 2), (1, 3)]);
    /// assert_eq!(sparse.fan_out(1).iter().collect::<Vec<_>>(), [(0, 1)]);
    /// assert_eq!(sparse.synapse_index(0, 1), Some(1));
    /// assert_eq!(sparse.synapse_index(1, 1), None);
    /// assert_eq!(sparse.dense_weights(), DMatrix::from_row_slice(2, 2, &[0.0, 2.0, 3.0, 0.0]));
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn weight_values(&self) -> &[f64] {
        match &self.sparse {
            Some(s) => s.weight_values(),
            None => self.weights.as_slice(),
        }
    }

    /// Delays (ms) in storage order, aligned with [`Connection::weight_values`].
    pub fn delay_values(&self) -> &[f64] {
        match &self.sparse {
            Some(s) => s.delay_values(),
            None => self.delays.as_slice(),
        }
    }

    /// Number of stored synapses.
    pub fn num_synapses(&self) -> usize {
        self.weight_values().len()
    }

    /// The synapses leaving presynaptic neuron `pre` (`pre < n_pre`, else panics).
    #[inline]
    pub fn fan_out(&self, pre: usize) -> FanOut<'_> {
        match &self.sparse {
            Some(s) => {
                let (r, rows) = s.fan_out(pre);
                FanOut { start: r.start, len: r.len(), rows: Some(rows) }
            }
            None => {
                let n_post = self.weights.nrows();
                assert!(pre < self.weights.ncols(), "presynaptic index {pre} out of range");
                FanOut { start: pre * n_post, len: n_post, rows: None }
            }
        }
    }

    /// Value index of the synapse `pre -> post`, if it exists (dense: whenever both are in range).
    pub fn synapse_index(&self, post: usize, pre: usize) -> Option<usize> {
        match &self.sparse {
            Some(s) => s.index(post, pre),
            None => {
                let (rows, cols) = self.weights.shape();
                (post < rows && pre < cols).then_some(pre * rows + post)
            }
        }
    }

    /// `(post, pre)` of the synapse at value index `k` (`k < num_synapses`).
    pub fn synapse_position(&self, k: usize) -> (usize, usize) {
        match &self.sparse {
            Some(s) => s.position(k),
            None => (k % self.weights.nrows(), k / self.weights.nrows()),
        }
    }

    /// The weights as a dense `post x pre` matrix (0 where a sparse connection has no synapse).
    pub fn dense_weights(&self) -> DMatrix<f64> {
        match &self.sparse {
            Some(s) => s.to_dense().0,
            None => self.weights.clone(),
        }
    }

    /// The delays as a dense `post x pre` matrix (0 where a sparse connection has no synapse).
    pub fn dense_delays(&self) -> DMatrix<f64> {
        match &self.sparse {
            Some(s) => s.to_dense().1,
            None => self.delays.clone(),
        }
    }

    /// Largest delay of the connection (0 without synapses).
    pub fn max_delay(&self) -> f64 {
        self.delay_values().iter().copied().fold(0.0, f64::max)
    }
}

/// A validated spiking network: exactly one input population, at least one output.
///
/// Build it with [`NetworkBuilder`].
///
/// ```
/// use nalgebra::DMatrix;
/// use snn_core::{LiParams, LifParams, NetworkBuilder};
///
/// let mut b = NetworkBuilder::new();
/// let inp = b.input("in", 2);
/// let hid = b.lif("hidden", 3, LifParams::default());
/// let out = b.li("out", 2, LiParams::default());
/// b.connect(inp, hid, DMatrix::from_element(3, 2, 0.5), DMatrix::zeros(3, 2));
/// b.connect(hid, hid, DMatrix::from_element(3, 3, 0.1), DMatrix::from_element(3, 3, 2.0));
/// b.connect(hid, out, DMatrix::from_element(2, 3, 0.2), DMatrix::from_element(2, 3, 1.0));
/// let net = b.output(out).build().unwrap();
/// assert_eq!(net.num_neurons(), 7);
/// assert!(net.connection(snn_core::ConnectionId(1)).is_recurrent());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    populations: Vec<Population>,
    connections: Vec<Connection>,
    offsets: Vec<usize>,
    input: PopulationId,
    output: PopulationId,
    /// `outgoing[p]`: connections whose presynaptic population is `p`.
    outgoing: Vec<Vec<ConnectionId>>,
    /// `incoming[p]`: connections whose postsynaptic population is `p`.
    incoming: Vec<Vec<ConnectionId>>,
    /// Changes whenever the delays may have changed; not serialised, not compared.
    #[serde(skip)]
    delay_stamp: Stamp,
    /// Changes whenever the weights may have changed; not serialised, not compared.
    #[serde(skip)]
    weight_stamp: Stamp,
}

/// Process-wide source of [`Network::delay_stamp`] and [`Network::weight_stamp`] values (0 is
/// never handed out; one counter for both, so a delay stamp never equals a weight stamp).
static NEXT_STAMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh value from a process-wide counter on creation (build, deserialisation) and at every
/// mutable access to what it stamps ([`Network::delays_mut`] for the delay stamp,
/// [`Network::weights_mut`] for the weight stamp); copied by `Clone` (a clone has the same values).
/// Equal for `PartialEq`, so it never makes two otherwise equal networks differ.
#[derive(Debug, Clone, Copy)]
struct Stamp(u64);

impl Stamp {
    fn fresh() -> Self {
        Self(NEXT_STAMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Self::fresh()
    }
}

impl PartialEq for Stamp {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Network {
    /// All populations, in the order they were added.
    pub fn populations(&self) -> &[Population] {
        &self.populations
    }

    /// One population.
    pub fn population(&self, id: PopulationId) -> &Population {
        &self.populations[id.0]
    }

    /// All connections, in the order they were added.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// One connection.
    pub fn connection(&self, id: ConnectionId) -> &Connection {
        &self.connections[id.0]
    }

    /// Mutable weights of a connection, `post x pre`, for optimisers.
    ///
    /// Unchecked: call [`Network::check`] after writing if the values come from user input.
    /// Renews [`Network::weight_stamp`]. This and [`Network::weight_values_mut`] are the only
    /// ways to change weights in place: every optimiser, initialiser and averaging step goes
    /// through one of them. For a sparse connection this is the empty `0 x 0` matrix (see
    /// [`Connection::weights`]); use [`Network::weight_values_mut`], which works for both storages.
    pub fn weights_mut(&mut self, id: ConnectionId) -> &mut DMatrix<f64> {
        self.weight_stamp = Stamp::fresh();
        &mut self.connections[id.0].weights
    }

    /// Mutable delays (ms) of a connection, `post x pre`, for optimisers.
    ///
    /// Unchecked: call [`Network::check`] after writing (delays must stay finite and `>= 0`).
    /// Renews [`Network::delay_stamp`]. For a sparse connection this is the empty `0 x 0`
    /// matrix; use [`Network::delay_values_mut`].
    pub fn delays_mut(&mut self, id: ConnectionId) -> &mut DMatrix<f64> {
        self.delay_stamp = Stamp::fresh();
        &mut self.connections[id.0].delays
    }

    /// Mutable weights of a connection in storage order ([`Connection::weight_values`]), for
    /// either storage. Unchecked, like [`Network::weights_mut`]; renews [`Network::weight_stamp`]
    /// exactly like it.
    ///
    /// ```
    /// # use snn_core::{ConnectionId, LiParams, NetworkBuilder, SparseSynapses};
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 4);
    /// let o = b.li("out", 3, LiParams::default());
    /// b.connect_sparse(i, o, SparseSynapses::fixed_targets(3, 4, 2, 1)?);
    /// let mut net = b.build()?;
    /// let (before, weights_before) = (net.delay_stamp(), net.weight_stamp());
    /// net.weight_values_mut(ConnectionId(0)).fill(0.5);
    /// assert_eq!(net.delay_stamp(), before);
    /// assert_ne!(net.weight_stamp(), weights_before);
    /// net.delay_values_mut(ConnectionId(0)).fill(1.0);
    /// assert_ne!(net.delay_stamp(), before);
    /// assert_eq!(net.connection(ConnectionId(0)).weight_values(), &[0.5; 8]);
    /// # Ok::<(), snn_core::CoreError>(())
    /// ```
    pub fn weight_values_mut(&mut self, id: ConnectionId) -> &mut [f64] {
        // Weights are handed out mutably here and in `weights_mut` only.
        self.weight_stamp = Stamp::fresh();
        let c = &mut self.connections[id.0];
        match &mut c.sparse {
            Some(s) => s.weight_values_mut(),
            None => c.weights.as_mut_slice(),
        }
    }

    /// Mutable delays (ms) of a connection in storage order ([`Connection::delay_values`]), for
    /// either storage. Unchecked, like [`Network::delays_mut`]; renews [`Network::delay_stamp`]
    /// exactly like it.
    pub fn delay_values_mut(&mut self, id: ConnectionId) -> &mut [f64] {
        self.delay_stamp = Stamp::fresh();
        let c = &mut self.connections[id.0];
        match &mut c.sparse {
            Some(s) => s.delay_values_mut(),
            None => c.delays.as_mut_slice(),
        }
    }

    /// Whether any connection is sparse.
    pub fn has_sparse(&self) -> bool {
        self.connections.iter().any(Connection::is_sparse)
    }

    /// A number identifying the current delays of this network, for caches of what engines derive
    /// from them (e.g. the clocked engine's quantised delivery plan).
    ///
    /// It is drawn from a process-wide counter when the network is built or deserialised and
    /// again at every [`Network::delays_mut`] call, and copied by `Clone`. So two networks with
    /// the same stamp are clones of one another whose delays (and populations and connection
    /// shapes, which never change after [`NetworkBuilder::build`] except through `*_mut`) have not
    /// been handed out mutably since: their delays are equal. The converse does not hold (equal
    /// delays may carry different stamps). Not part of `PartialEq` or of the serialised form.
    ///
    /// ```
    /// # use nalgebra::DMatrix;
    /// # use snn_core::{ConnectionId, LiParams, NetworkBuilder};
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 1);
    /// let o = b.li("out", 1, LiParams::default());
    /// b.connect(i, o, DMatrix::from_element(1, 1, 1.0), DMatrix::zeros(1, 1));
    /// let mut net = b.build().unwrap();
    /// let copy = net.clone();
    /// assert_eq!(copy.delay_stamp(), net.delay_stamp());
    /// net.weights_mut(ConnectionId(0))[0] = 2.0; // weights do not matter
    /// assert_eq!(copy.delay_stamp(), net.delay_stamp());
    /// net.delays_mut(ConnectionId(0))[0] = 1.0;
    /// assert_ne!(copy.delay_stamp(), net.delay_stamp());
    /// ```
    pub fn delay_stamp(&self) -> u64 {
        self.delay_stamp.0
    }

    /// A number identifying the current weights of this network, for caches of what engines derive
    /// from them (e.g. the clocked engine's target-major weight rows,
    /// [`ClockedPlan::refresh_weights`](crate::clocked::ClockedPlan::refresh_weights)).
    ///
    /// The weights' counterpart of [`Network::delay_stamp`]: drawn from a process-wide counter
    /// when the network is built or deserialised and again at every [`Network::weights_mut`]
    /// call, and copied by `Clone`. Two networks with the same weight stamp are clones of one
    /// another whose weights have not been handed out mutably since, so their weights (and
    /// shapes) are equal. Not part of `PartialEq` or of the serialised form.
    ///
    /// ```
    /// # use nalgebra::DMatrix;
    /// # use snn_core::{ConnectionId, LiParams, NetworkBuilder};
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 1);
    /// let o = b.li("out", 1, LiParams::default());
    /// b.connect(i, o, DMatrix::from_element(1, 1, 1.0), DMatrix::zeros(1, 1));
    /// let mut net = b.build().unwrap();
    /// let copy = net.clone();
    /// assert_eq!(copy.weight_stamp(), net.weight_stamp());
    /// net.delays_mut(ConnectionId(0))[0] = 1.0; // delays do not matter
    /// assert_eq!(copy.weight_stamp(), net.weight_stamp());
    /// let _ = net.weights_mut(ConnectionId(0)); // even a look through `weights_mut` renews it
    /// assert_ne!(copy.weight_stamp(), net.weight_stamp());
    /// // A deserialised network gets a fresh stamp.
    /// let back: snn_core::Network = serde_json::from_str(&serde_json::to_string(&net).unwrap()).unwrap();
    /// assert_ne!(back.weight_stamp(), net.weight_stamp());
    /// ```
    pub fn weight_stamp(&self) -> u64 {
        self.weight_stamp.0
    }

    /// The input population.
    pub fn input(&self) -> PopulationId {
        self.input
    }

    /// The readout population.
    pub fn output(&self) -> PopulationId {
        self.output
    }

    /// First global neuron index of a population.
    pub fn offset(&self, id: PopulationId) -> usize {
        self.offsets[id.0]
    }

    /// Total number of neurons, input neurons included.
    pub fn num_neurons(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// Population and local index of a global neuron index.
    pub fn locate(&self, global: usize) -> (PopulationId, usize) {
        // offsets is sorted; partition_point gives the first offset > global.
        let p = self.offsets.partition_point(|&o| o <= global) - 1;
        (PopulationId(p), global - self.offsets[p])
    }

    /// Connections leaving population `id`.
    pub fn outgoing(&self, id: PopulationId) -> &[ConnectionId] {
        &self.outgoing[id.0]
    }

    /// Connections entering population `id`.
    pub fn incoming(&self, id: PopulationId) -> &[ConnectionId] {
        &self.incoming[id.0]
    }

    /// Largest delay over all connections (ms).
    pub fn max_delay(&self) -> f64 {
        self.connections.iter().map(Connection::max_delay).fold(0.0, f64::max)
    }

    /// Total number of stored synapses (each has one weight and one delay): every pair of a
    /// dense connection, the stored ones of a sparse connection.
    pub fn num_synapses(&self) -> usize {
        self.connections.iter().map(Connection::num_synapses).sum()
    }

    /// The structural validation of [`NetworkBuilder::build`], on any network — e.g. one just
    /// deserialised from a file: population sizes, names, kinds and neuron parameters; one input
    /// population and a valid output; connection endpoints, matrix shapes (stored shape and data
    /// length agree); finite weights; finite delays `>= 0`; and the derived offsets and fan-in /
    /// fan-out tables equal to those the builder derives. Delays within a training run's bound
    /// are the trainer's check.
    ///
    /// ```
    /// # use nalgebra::DMatrix;
    /// # use snn_core::{LiParams, NetworkBuilder};
    /// let mut b = NetworkBuilder::new();
    /// let i = b.input("in", 2);
    /// let o = b.li("out", 1, LiParams::default());
    /// b.connect(i, o, DMatrix::from_element(1, 2, 1.0), DMatrix::zeros(1, 2));
    /// let net = b.build().unwrap();
    /// assert!(net.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let t = Topology::derive(&self.populations, &self.connections, Some(self.output))?;
        if t.offsets != self.offsets {
            return Err(CoreError::InvalidNetwork("neuron offsets do not match the population sizes"));
        }
        if t.input != self.input {
            return Err(CoreError::InvalidNetwork("recorded input population is not the input population"));
        }
        if t.outgoing != self.outgoing || t.incoming != self.incoming {
            return Err(CoreError::InvalidNetwork("fan-in/fan-out tables do not match the connections"));
        }
        Ok(())
    }

    /// Re-validates every weight and delay (finite; delays `>= 0`).
    pub fn check(&self) -> Result<()> {
        for c in &self.connections {
            check_values(&self.populations, c)?;
        }
        Ok(())
    }
}

/// Builder of a [`Network`]; all checks happen in [`NetworkBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct NetworkBuilder {
    populations: Vec<Population>,
    connections: Vec<Connection>,
    output: Option<PopulationId>,
}

impl NetworkBuilder {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, name: &str, size: usize, kind: NeuronKind) -> PopulationId {
        self.populations.push(Population { name: name.to_owned(), size, kind });
        PopulationId(self.populations.len() - 1)
    }

    /// Adds the input population (spike sources).
    pub fn input(&mut self, name: &str, size: usize) -> PopulationId {
        self.add(name, size, NeuronKind::Input)
    }

    /// Adds a LIF population.
    pub fn lif(&mut self, name: &str, size: usize, params: LifParams) -> PopulationId {
        self.add(name, size, NeuronKind::Lif(params))
    }

    /// Adds a LI (readout) population.
    pub fn li(&mut self, name: &str, size: usize, params: LiParams) -> PopulationId {
        self.add(name, size, NeuronKind::Li(params))
    }

    /// Adds a dense connection; `weights` and `delays` (ms) are `post x pre`.
    pub fn connect(
        &mut self,
        pre: PopulationId,
        post: PopulationId,
        weights: DMatrix<f64>,
        delays: DMatrix<f64>,
    ) -> ConnectionId {
        self.connections.push(Connection { pre, post, weights, delays, sparse: None });
        ConnectionId(self.connections.len() - 1)
    }

    /// Adds a sparse connection (its shape must be `post x pre`, checked by
    /// [`NetworkBuilder::build`]).
    pub fn connect_sparse(&mut self, pre: PopulationId, post: PopulationId, synapses: SparseSynapses) -> ConnectionId {
        let empty = || DMatrix::zeros(0, 0);
        self.connections.push(Connection { pre, post, weights: empty(), delays: empty(), sparse: Some(synapses) });
        ConnectionId(self.connections.len() - 1)
    }

    /// Marks the readout population (default: the last population added).
    pub fn output(&mut self, id: PopulationId) -> &mut Self {
        self.output = Some(id);
        self
    }

    /// Validates and builds the network.
    ///
    /// Errors: no or several input populations, empty or duplicate-named populations,
    /// connections into an input population or out of a LI population, unknown
    /// population ids, shape mismatches, non-finite weights, negative or non-finite delays.
    pub fn build(&self) -> Result<Network> {
        let t = Topology::derive(&self.populations, &self.connections, self.output)?;
        Ok(Network {
            populations: self.populations.clone(),
            connections: self.connections.clone(),
            offsets: t.offsets,
            input: t.input,
            output: t.output,
            outgoing: t.outgoing,
            incoming: t.incoming,
            delay_stamp: Stamp::fresh(),
            weight_stamp: Stamp::fresh(),
        })
    }
}

/// What [`NetworkBuilder::build`] derives from the populations and connections.
#[derive(PartialEq)]
struct Topology {
    offsets: Vec<usize>,
    input: PopulationId,
    output: PopulationId,
    outgoing: Vec<Vec<ConnectionId>>,
    incoming: Vec<Vec<ConnectionId>>,
}

impl Topology {
    /// Every check of [`NetworkBuilder::build`], and the derived index tables.
    fn derive(pops: &[Population], connections: &[Connection], output: Option<PopulationId>) -> Result<Self> {
        let mut input = None;
        for (i, p) in pops.iter().enumerate() {
            if p.size == 0 {
                return Err(CoreError::InvalidPopulation { name: p.name.clone(), reason: "size is zero" });
            }
            if pops[..i].iter().any(|q| q.name == p.name) {
                return Err(CoreError::InvalidPopulation { name: p.name.clone(), reason: "duplicate name" });
            }
            match p.kind {
                NeuronKind::Input => {
                    if input.is_some() {
                        return Err(CoreError::InvalidNetwork("more than one input population"));
                    }
                    input = Some(PopulationId(i));
                }
                // Parameters are checked by their constructors; re-check what was deserialised.
                NeuronKind::Lif(q) => {
                    LifParams::new(q.tau_m(), q.tau_s(), q.theta())?;
                }
                NeuronKind::Li(q) => {
                    LiParams::new(q.tau_m(), q.tau_s())?;
                }
            }
        }
        let input = input.ok_or(CoreError::InvalidNetwork("no input population"))?;
        let output = output.unwrap_or(PopulationId(pops.len().saturating_sub(1)));
        match pops.get(output.0).map(|p| p.kind) {
            None => return Err(CoreError::InvalidNetwork("output population does not exist")),
            Some(NeuronKind::Input) => return Err(CoreError::InvalidNetwork("output population is the input")),
            Some(_) => {}
        }

        let mut outgoing = vec![Vec::new(); pops.len()];
        let mut incoming = vec![Vec::new(); pops.len()];
        for (ci, c) in connections.iter().enumerate() {
            let name = |id: PopulationId| pops.get(id.0).map_or_else(|| format!("#{}", id.0), |p| p.name.clone());
            let invalid = |reason| CoreError::InvalidConnection { pre: name(c.pre), post: name(c.post), reason };
            let (Some(pre), Some(post)) = (pops.get(c.pre.0), pops.get(c.post.0)) else {
                return Err(invalid("population does not exist"));
            };
            if !pre.kind.spikes() {
                return Err(invalid("presynaptic population is a leaky integrator and never spikes"));
            }
            if matches!(post.kind, NeuronKind::Input) {
                return Err(invalid("postsynaptic population is an input population"));
            }
            if let Some(s) = &c.sparse {
                if !s.consistent() {
                    return Err(invalid(
                        "sparse synapses are inconsistent (orientation, index pointers or value counts)",
                    ));
                }
                let (rows, cols) = s.shape();
                if rows != post.size || cols != pre.size {
                    return Err(CoreError::ShapeMismatch {
                        pre: pre.name.clone(),
                        post: post.name.clone(),
                        what: "sparse synapse",
                        rows: post.size,
                        cols: pre.size,
                        got_rows: rows,
                        got_cols: cols,
                    });
                }
            }
            let (want_rows, want_cols) = if c.sparse.is_some() { (0, 0) } else { (post.size, pre.size) };
            for (what, m) in [("weight", &c.weights), ("delay", &c.delays)] {
                // `len` guards against a deserialised matrix whose stored shape and data disagree.
                let len_ok = m.nrows().checked_mul(m.ncols()) == Some(m.as_slice().len());
                if m.nrows() != want_rows || m.ncols() != want_cols || !len_ok {
                    return Err(CoreError::ShapeMismatch {
                        pre: pre.name.clone(),
                        post: post.name.clone(),
                        what,
                        rows: want_rows,
                        cols: want_cols,
                        got_rows: m.nrows(),
                        got_cols: m.ncols(),
                    });
                }
            }
            check_values(pops, c)?;
            outgoing[c.pre.0].push(ConnectionId(ci));
            incoming[c.post.0].push(ConnectionId(ci));
        }

        let mut offsets = Vec::with_capacity(pops.len() + 1);
        offsets.push(0usize);
        for p in pops {
            let last = offsets.last().copied().unwrap_or(0);
            offsets.push(last.checked_add(p.size).ok_or(CoreError::InvalidNetwork("neuron count overflows"))?);
        }
        Ok(Self { offsets, input, output, outgoing, incoming })
    }
}

/// Finite weights, finite delays `>= 0`; errors name the synapse by `(row, col)` = `(post, pre)`.
fn check_values(pops: &[Population], c: &Connection) -> Result<()> {
    let names = || (pops[c.pre.0].name.clone(), pops[c.post.0].name.clone());
    if let Some((k, &value)) = c.weight_values().iter().enumerate().find(|(_, w)| !w.is_finite()) {
        let (pre, post) = names();
        let (row, col) = c.synapse_position(k);
        return Err(CoreError::NonFiniteWeight { pre, post, row, col, value });
    }
    if let Some((k, &value)) = c.delay_values().iter().enumerate().find(|(_, d)| !(d.is_finite() && **d >= 0.0)) {
        let (pre, post) = names();
        let (row, col) = c.synapse_position(k);
        return Err(CoreError::InvalidDelay { pre, post, row, col, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_layer(w: DMatrix<f64>, d: DMatrix<f64>) -> Result<Network> {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 2);
        let o = b.li("out", 3, LiParams::default());
        b.connect(i, o, w, d);
        b.build()
    }

    #[test]
    fn shapes_and_values_are_checked() {
        assert!(two_layer(DMatrix::zeros(3, 2), DMatrix::zeros(3, 2)).is_ok());
        assert!(matches!(
            two_layer(DMatrix::zeros(2, 3), DMatrix::zeros(3, 2)),
            Err(CoreError::ShapeMismatch { what: "weight", rows: 3, cols: 2, .. })
        ));
        assert!(matches!(
            two_layer(DMatrix::zeros(3, 2), DMatrix::zeros(3, 3)),
            Err(CoreError::ShapeMismatch { what: "delay", .. })
        ));
        let mut w = DMatrix::zeros(3, 2);
        w[(2, 1)] = f64::NAN;
        assert!(matches!(two_layer(w, DMatrix::zeros(3, 2)), Err(CoreError::NonFiniteWeight { row: 2, col: 1, .. })));
        let mut d = DMatrix::zeros(3, 2);
        d[(1, 0)] = -0.5;
        assert!(matches!(
            two_layer(DMatrix::zeros(3, 2), d.clone()),
            Err(CoreError::InvalidDelay { row: 1, col: 0, .. })
        ));
        d[(1, 0)] = f64::INFINITY;
        assert!(matches!(two_layer(DMatrix::zeros(3, 2), d), Err(CoreError::InvalidDelay { .. })));
    }

    #[test]
    fn topology_errors_are_typed() {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 2);
        let o = b.li("out", 1, LiParams::default());
        b.connect(o, o, DMatrix::zeros(1, 1), DMatrix::zeros(1, 1));
        assert!(matches!(b.build(), Err(CoreError::InvalidConnection { .. })));

        let mut b = NetworkBuilder::new();
        b.input("in", 2);
        b.input("in2", 2);
        assert!(matches!(b.build(), Err(CoreError::InvalidNetwork(_))));

        let mut b = NetworkBuilder::new();
        let i2 = b.input("in", 2);
        b.connect(i2, i, DMatrix::zeros(2, 2), DMatrix::zeros(2, 2));
        assert!(b.build().is_err());
    }

    /// What a decoder may hand over: every field consistent except one.
    #[test]
    fn validate_catches_every_inconsistency_of_a_decoded_network() {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 3);
        let h = b.lif("h", 4, LifParams::default());
        let o = b.li("o", 2, LiParams::default());
        b.connect(i, h, DMatrix::from_element(4, 3, 0.5), DMatrix::from_element(4, 3, 1.0));
        b.connect(h, o, DMatrix::from_element(2, 4, 0.5), DMatrix::zeros(2, 4));
        let net = b.build().unwrap();
        net.validate().unwrap();
        let bad = |f: &dyn Fn(&mut Network)| {
            let mut n = net.clone();
            f(&mut n);
            n.validate()
        };
        assert!(matches!(bad(&|n| n.offsets[2] = 8), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.offsets.pop().map(|_| ()).unwrap()), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.outgoing[0].clear()), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.incoming[2].push(ConnectionId(0))), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.input = PopulationId(1)), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.output = PopulationId(7)), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.output = PopulationId(0)), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.populations[1].size = 5), Err(CoreError::ShapeMismatch { .. })));
        assert!(matches!(bad(&|n| n.populations[1].size = 0), Err(CoreError::InvalidPopulation { .. })));
        assert!(matches!(bad(&|n| n.populations[2].name = "h".into()), Err(CoreError::InvalidPopulation { .. })));
        assert!(matches!(bad(&|n| n.populations[1].kind = NeuronKind::Input), Err(CoreError::InvalidNetwork(_))));
        assert!(matches!(bad(&|n| n.connections[1].pre = PopulationId(9)), Err(CoreError::InvalidConnection { .. })));
        assert!(matches!(bad(&|n| n.connections[0].post = PopulationId(0)), Err(CoreError::InvalidConnection { .. })));
        assert!(matches!(
            bad(&|n| n.connections[0].delays = DMatrix::zeros(3, 4)),
            Err(CoreError::ShapeMismatch { what: "delay", .. })
        ));
        assert!(matches!(
            bad(&|n| n.connections[1].weights[(1, 3)] = f64::INFINITY),
            Err(CoreError::NonFiniteWeight { .. })
        ));
        assert!(matches!(bad(&|n| n.connections[0].delays[(0, 0)] = -1.0), Err(CoreError::InvalidDelay { .. })));
        // parameters as a decoder may produce them, bypassing `LifParams::new`
        let lif = |tau_m: f64, theta: f64| {
            let mut v = serde_json::to_value(LifParams::default()).unwrap();
            v["leak"]["tau_m"] = serde_json::json!(tau_m);
            v["theta"] = serde_json::json!(theta);
            NeuronKind::Lif(serde_json::from_value(v).unwrap())
        };
        assert!(matches!(bad(&|n| n.populations[1].kind = lif(0.0, 1.0)), Err(CoreError::InvalidNeuronParam { .. })));
        assert!(matches!(bad(&|n| n.populations[1].kind = lif(20.0, -1.0)), Err(CoreError::InvalidNeuronParam { .. })));
        assert!(matches!(bad(&|n| n.populations[1].kind = lif(5.0, 1.0)), Err(CoreError::EqualTimeConstants { .. })));
        // sizes whose sum overflows
        assert!(
            bad(&|n| {
                n.populations[1].size = usize::MAX;
                n.connections.clear();
                n.outgoing = vec![vec![]; 3];
                n.incoming = vec![vec![]; 3];
            })
            .is_err()
        );
    }

    #[test]
    fn sparse_connections_are_checked_like_dense_ones() {
        use crate::sparse::Synapse;
        let syn = |post, pre, weight, delay| Synapse { post, pre, weight, delay };
        let build = |s: SparseSynapses| {
            let mut b = NetworkBuilder::new();
            let i = b.input("in", 2);
            let o = b.li("out", 3, LiParams::default());
            b.connect_sparse(i, o, s);
            b.build()
        };
        let ok = SparseSynapses::from_triplets(3, 2, &[syn(2, 1, 0.5, 1.0), syn(0, 0, 1.0, 0.0)]).unwrap();
        let net = build(ok.clone()).unwrap();
        net.validate().unwrap();
        let c = net.connection(ConnectionId(0));
        assert!(c.is_sparse() && net.has_sparse());
        assert_eq!((c.shape(), c.num_synapses(), net.num_synapses()), ((3, 2), 2, 2));
        assert_eq!(c.max_delay(), 1.0);
        assert_eq!(c.synapse_position(1), (2, 1));
        // transposed shape
        let wrong = SparseSynapses::from_triplets(2, 3, &[]).unwrap();
        assert!(matches!(build(wrong), Err(CoreError::ShapeMismatch { what: "sparse synapse", rows: 3, cols: 2, .. })));
        // values are named by (post, pre)
        let nan = SparseSynapses::from_triplets(3, 2, &[syn(2, 1, f64::NAN, 1.0), syn(0, 0, 1.0, 0.0)]).unwrap();
        assert!(matches!(build(nan), Err(CoreError::NonFiniteWeight { row: 2, col: 1, .. })));
        let neg = SparseSynapses::from_triplets(3, 2, &[syn(1, 1, 1.0, -2.0), syn(0, 0, 1.0, 0.0)]).unwrap();
        assert!(matches!(build(neg), Err(CoreError::InvalidDelay { row: 1, col: 1, .. })));
        // a decoded network with dense matrices beside the sparse ones, or broken sparse values
        let mut bad = net.clone();
        bad.connections[0].weights = DMatrix::zeros(3, 2);
        assert!(matches!(bad.validate(), Err(CoreError::ShapeMismatch { what: "weight", .. })));
        let mut bad = net.clone();
        bad.delay_values_mut(ConnectionId(0))[1] = f64::NAN;
        assert!(matches!(bad.check(), Err(CoreError::InvalidDelay { row: 2, col: 1, .. })));
        let mut v = serde_json::to_value(&net).unwrap();
        v["connections"][0]["sparse"]["delays"] = serde_json::json!([1.0]);
        let decoded: Network = serde_json::from_value(v).unwrap();
        assert!(matches!(decoded.validate(), Err(CoreError::InvalidConnection { .. })));
        // serialisation round trip
        let back: Network = serde_json::from_str(&serde_json::to_string(&net).unwrap()).unwrap();
        assert_eq!(back, net);
        back.validate().unwrap();
    }

    #[test]
    fn fan_out_and_values_agree_between_storages() {
        let w = DMatrix::from_fn(3, 4, |r, c| (1 + r + 3 * c) as f64);
        let d = DMatrix::from_fn(3, 4, |r, c| (r * c) as f64);
        let full = SparseSynapses::from_dense(&w, &d, &DMatrix::from_element(3, 4, true)).unwrap();
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 4);
        let o = b.li("out", 3, LiParams::default());
        b.connect(i, o, w.clone(), d.clone());
        b.connect_sparse(i, o, full);
        let net = b.build().unwrap();
        let (dense, sparse) = (net.connection(ConnectionId(0)), net.connection(ConnectionId(1)));
        assert_eq!(dense.weight_values(), sparse.weight_values());
        assert_eq!(dense.delay_values(), sparse.delay_values());
        for pre in 0..4 {
            assert_eq!(dense.fan_out(pre).iter().collect::<Vec<_>>(), sparse.fan_out(pre).iter().collect::<Vec<_>>());
            for post in 0..3 {
                assert_eq!(dense.synapse_index(post, pre), sparse.synapse_index(post, pre));
                let k = dense.synapse_index(post, pre).unwrap();
                assert_eq!(dense.synapse_position(k), (post, pre));
                assert_eq!(sparse.synapse_position(k), (post, pre));
            }
        }
        assert_eq!(dense.synapse_index(3, 0), None);
        assert_eq!(sparse.dense_weights(), w);
        assert_eq!(sparse.dense_delays(), d);
        assert_eq!(net.num_synapses(), 24);
    }

    #[test]
    fn global_indexing() {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 4);
        let h = b.lif("h", 5, LifParams::default());
        let o = b.li("o", 2, LiParams::default());
        b.connect(i, h, DMatrix::zeros(5, 4), DMatrix::zeros(5, 4));
        b.connect(h, o, DMatrix::zeros(2, 5), DMatrix::zeros(2, 5));
        let net = b.build().unwrap();
        assert_eq!(net.offset(h), 4);
        assert_eq!(net.locate(4), (h, 0));
        assert_eq!(net.locate(10), (o, 1));
        assert_eq!(net.outgoing(h), &[ConnectionId(1)]);
        assert_eq!(net.output(), o);
    }
}
