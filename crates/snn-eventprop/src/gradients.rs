//! Gradients of a loss with respect to every weight and delay, and the adjoint interface.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use snn_core::{ForwardRecord, Network, Simulator, SpikeTrain};

use crate::error::{EventPropError, Result};

/// `dL/dw` and `dL/dd` of every connection, same shapes (`post x pre`) as the network's matrices.
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
        let shape = |m: &DMatrix<f64>| DMatrix::zeros(m.nrows(), m.ncols());
        Self {
            weights: net.connections().iter().map(|c| shape(c.weights())).collect(),
            delays: net.connections().iter().map(|c| shape(c.delays())).collect(),
        }
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

    /// The first non-finite entry, as a typed error naming the parameter (`sample` is reported as given).
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
}
