//! Gradients of a loss with respect to every weight and delay, and the adjoint interface.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use snn_core::{Connection, ForwardRecord, Network, Simulator, SpikeTrain};

use crate::error::{EventPropError, Result};

/// `dL/dw` and `dL/dd` of every connection: for a dense connection the shape of its matrices
/// (`post x pre`); for a sparse one a column of one entry per stored synapse (`nnz x 1`, in the
/// data order of [`snn_core::Connection::weight_values`]). Either way `as_slice()` is aligned
/// with the connection's values, and [`Gradients::value_index`] finds a synapse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gradients {
    /// `dL/dw` per connection.
    pub weights: Vec<DMatrix<f64>>,
    /// `dL/dd` per connection (per ms).
    pub delays: Vec<DMatrix<f64>>,
}

impl Gradients {
    /// All-zero gradients shaped like `net`.
    pub fn zeros(net: &Network) -> Self {
        let shape = |c: &Connection| {
            let (rows, cols) = Self::shape_of(c);
            DMatrix::zeros(rows, cols)
        };
        Self {
            weights: net.connections().iter().map(shape).collect(),
            delays: net.connections().iter().map(shape).collect(),
        }
    }

    /// Shape of the gradient matrices of a connection: `post x pre` (dense), `nnz x 1` (sparse).
    pub fn shape_of(c: &Connection) -> (usize, usize) {
        if c.is_sparse() { (c.num_synapses(), 1) } else { c.shape() }
    }

    /// Index into `weights[c].as_slice()` / `delays[c].as_slice()` of the synapse `pre -> post`
    /// of connection `c` of `net`, if it exists (the connection's value index).
    pub fn value_index(net: &Network, c: usize, post: usize, pre: usize) -> Option<usize> {
        net.connections().get(c)?.synapse_index(post, pre)
    }

    /// [`EventPropError::ShapeMismatch`] unless every matrix has [`Gradients::shape_of`] its
    /// connection of `net`.
    pub fn check_shape(&self, net: &Network) -> Result<()> {
        let conns = net.connections();
        if self.weights.len() != conns.len() || self.delays.len() != conns.len() {
            return Err(EventPropError::ShapeMismatch {
                what: "gradient matrices (one per connection)",
                expected: conns.len(),
                got: self.weights.len().min(self.delays.len()),
            });
        }
        for (k, c) in conns.iter().enumerate() {
            let want = Self::shape_of(c);
            for m in [&self.weights[k], &self.delays[k]] {
                if m.shape() != want {
                    return Err(EventPropError::ShapeMismatch {
                        what: "gradient entries of a connection",
                        expected: want.0 * want.1,
                        got: m.len(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets every entry to zero, keeping the allocations.
    pub fn fill_zero(&mut self) {
        self.weights.iter_mut().chain(self.delays.iter_mut()).for_each(|m| m.fill(0.0));
    }

    /// `self += other` (shapes must match: both from the same network).
    pub fn add_assign(&mut self, other: &Gradients) {
        for (a, b) in self.weights.iter_mut().zip(&other.weights).chain(self.delays.iter_mut().zip(&other.delays)) {
            *a += b;
        }
    }

    /// `self *= factor`.
    pub fn scale_mut(&mut self, factor: f64) {
        self.weights.iter_mut().chain(self.delays.iter_mut()).for_each(|m| *m *= factor);
    }

    /// The first non-finite entry, as a typed error naming the parameter (`sample` is reported as
    /// given). For a sparse connection `row` is the value index and `col` is 0.
    pub fn check_finite(&self, sample: usize) -> Result<()> {
        for (what, mats) in [("weight", &self.weights), ("delay", &self.delays)] {
            for (connection, m) in mats.iter().enumerate() {
                if let Some(k) = m.iter().position(|g| !g.is_finite()) {
                    let (row, col) = (k % m.nrows(), k / m.nrows());
                    return Err(EventPropError::NonFiniteGradient { what, connection, row, col, sample });
                }
            }
        }
        Ok(())
    }
}

/// An engine whose forward pass can be differentiated by an adjoint (EventProp) pass.
///
/// The loss enters only through `d_readout = dL/d(readout value)` of each output neuron
/// (see [`crate::loss`]); the engine knows how the readout depends on voltages and spike
/// times and turns it into the adjoint's forcing and jumps.
pub trait Adjoint: Simulator {
    /// Working buffers of the backward pass.
    type AdjointScratch: Send;

    /// Fresh backward buffers sized for `net`.
    fn adjoint_scratch(&self, net: &Network) -> Self::AdjointScratch;

    /// Runs the adjoint pass of one sample backward from `T` to 0 and **adds** `dL/dw`
    /// and `dL/dd` to `grads`. `record` must come from this engine's forward pass on
    /// the same `net` and `input`.
    fn backward_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        scratch: &mut Self::AdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()>;

    /// [`Adjoint::backward_into`] with an optional **jump bias**: `jump_bias[g]` (one entry per
    /// global neuron, [`Network::num_neurons`] long) is added to `lambda_V` of neuron `g` just
    /// before each of its spikes, after the EventProp jump, in Wunderlich–Pehle scaling
    /// (`lambda_V = -(1/tau_m) dL/dV`):
    ///
    /// ```text
    /// lambda_V^- = lambda_V^+ + (theta lambda_V^+ + dl_p/dt_k + S) / (I - V) + jump_bias[g]
    /// ```
    ///
    /// (equivalently, `jump_bias[g] (I - V)` added to the numerator). This is the hook of the
    /// spike-count regulariser ([`crate::regularise`]); entries of non-spiking neurons are never
    /// read. With `None` the result is bit for bit that of [`Adjoint::backward_into`].
    ///
    /// The default implementation supports only `None` and returns
    /// [`EventPropError::Unsupported`] for a bias; both engines of `snn-core` override it.
    #[allow(clippy::too_many_arguments)]
    fn backward_into_with(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        jump_bias: Option<&[f64]>,
        scratch: &mut Self::AdjointScratch,
        grads: &mut Gradients,
    ) -> Result<()> {
        match jump_bias {
            None => self.backward_into(net, input, record, d_readout, scratch, grads),
            Some(_) => Err(EventPropError::Unsupported { what: "a jump bias (spike-count regulariser)" }),
        }
    }
}

/// Checks a jump bias against the network (one finite entry per global neuron).
pub(crate) fn check_jump_bias(net: &Network, jump_bias: Option<&[f64]>) -> Result<()> {
    if let Some(b) = jump_bias {
        if b.len() != net.num_neurons() {
            return Err(EventPropError::ShapeMismatch {
                what: "jump bias (one entry per neuron)",
                expected: net.num_neurons(),
                got: b.len(),
            });
        }
        if let Some(&v) = b.iter().find(|v| !v.is_finite()) {
            return Err(EventPropError::InvalidHyperparameter {
                param: "jump_bias",
                value: v,
                reason: "must be finite",
            });
        }
    }
    Ok(())
}
