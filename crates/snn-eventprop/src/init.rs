//! The paper's initialisation of weights and delays (spec §4), from a caller-seeded rng.
//!
//! | connection role | weights | paper's delays |
//! | --- | --- | --- |
//! | input → hidden | `N(0.03, 0.01)` | `U(0, 150)` ms (SHD), `U(0, 50)` ms (SSC) |
//! | recurrent hidden → hidden | `N(0, 0.02)` | 0 |
//! | hidden → hidden (feedforward) | `N(0.02, 0.03)` | as input → hidden |
//! | hidden → output | `N(0, 0.03)` | 0 (outputs) unless stated |
//!
//! ```
//! use nalgebra::DMatrix;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use snn_core::{ConnectionId, LiParams, LifParams, NetworkBuilder};
//! use snn_delays::DelayInit;
//! use snn_eventprop::init::{ConnectionRole, init_delays, init_weights_paper};
//!
//! let mut b = NetworkBuilder::new();
//! let i = b.input("in", 70);
//! let h = b.lif("hidden", 64, LifParams::default());
//! let o = b.li("out", 20, LiParams::default());
//! let z = |r, c| DMatrix::zeros(r, c);
//! b.connect(i, h, z(64, 70), z(64, 70));
//! b.connect(h, h, z(64, 64), z(64, 64));
//! b.connect(h, o, z(20, 64), z(20, 64));
//! let mut net = b.build().unwrap();
//! let mut rng = ChaCha8Rng::seed_from_u64(42);
//! init_weights_paper(&mut net, &mut rng).unwrap();
//! init_delays(&mut net, ConnectionId(0), &DelayInit::SHD, &mut rng).unwrap();
//! assert_eq!(ConnectionRole::of(&net, ConnectionId(1)), ConnectionRole::Recurrent);
//! let w = net.connections()[0].weights();
//! let mean = w.iter().sum::<f64>() / w.len() as f64;
//! assert!((mean - 0.03).abs() < 0.001);
//! ```

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use snn_core::{ConnectionId, Network};
use snn_delays::DelayInit;

use crate::error::{EventPropError, Result};

/// A normal distribution of initial weights, `N(mean, sd)`.
///
/// | field | meaning | valid range |
/// | --- | --- | --- |
/// | `mean` | mean weight | finite |
/// | `sd` | standard deviation | finite, `>= 0` |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormalInit {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
}

impl NormalInit {
    /// Input → hidden, `N(0.03, 0.01)`.
    pub const INPUT_HIDDEN: NormalInit = NormalInit { mean: 0.03, sd: 0.01 };
    /// Recurrent hidden → hidden, `N(0, 0.02)`.
    pub const RECURRENT: NormalInit = NormalInit { mean: 0.0, sd: 0.02 };
    /// Feedforward hidden → hidden, `N(0.02, 0.03)`.
    pub const HIDDEN_HIDDEN: NormalInit = NormalInit { mean: 0.02, sd: 0.03 };
    /// Hidden → output, `N(0, 0.03)`.
    pub const HIDDEN_OUTPUT: NormalInit = NormalInit { mean: 0.0, sd: 0.03 };

    /// Validates the values.
    pub fn check(&self) -> Result<()> {
        if !self.mean.is_finite() {
            return Err(EventPropError::InvalidHyperparameter {
                param: "mean",
                value: self.mean,
                reason: "must be finite",
            });
        }
        if !(self.sd.is_finite() && self.sd >= 0.0) {
            return Err(EventPropError::InvalidHyperparameter {
                param: "sd",
                value: self.sd,
                reason: "must be finite and >= 0",
            });
        }
        Ok(())
    }

    /// The distribution for a projection in which each synapse exists with probability `p`
    /// (fixed-probability connectivity): `N(mean / p, sd / sqrt(p))`. A neuron's summed initial
    /// input over its (on average `p n`) synapses then has the mean of the dense projection's
    /// `n` synapses, and the variance the weights contribute stays that of the dense one. With
    /// the dense distribution a sparse layer starts with `p` times the drive: at `p = 0.5` the
    /// second hidden layer of the SSC network started silent and the network did not learn.
    /// `p = 1` (and `p = 0`, no synapses to draw) give `self` unchanged.
    ///
    /// ```
    /// use snn_eventprop::init::NormalInit;
    /// let s = NormalInit { mean: 0.02, sd: 0.03 }.for_connectivity(0.25)?;
    /// assert_eq!((s.mean, s.sd), (0.08, 0.06));
    /// assert_eq!(NormalInit::HIDDEN_HIDDEN.for_connectivity(1.0)?, NormalInit::HIDDEN_HIDDEN);
    /// assert!(NormalInit::HIDDEN_HIDDEN.for_connectivity(1.5).is_err());
    /// # Ok::<(), snn_eventprop::EventPropError>(())
    /// ```
    ///
    /// # Errors
    /// `p` outside `[0, 1]` (or NaN): [`EventPropError::InvalidHyperparameter`].
    pub fn for_connectivity(&self, p: f64) -> Result<NormalInit> {
        if !(0.0..=1.0).contains(&p) {
            return Err(EventPropError::InvalidHyperparameter {
                param: "connectivity",
                value: p,
                reason: "must be in [0, 1]",
            });
        }
        Ok(if p == 0.0 || p == 1.0 { *self } else { NormalInit { mean: self.mean / p, sd: self.sd / p.sqrt() } })
    }

    /// Overwrites `weights` with independent draws (in storage order).
    pub fn fill<R: Rng + ?Sized>(&self, weights: &mut [f64], rng: &mut R) -> Result<()> {
        self.check()?;
        let normal = Normal::new(self.mean, self.sd).map_err(|_| EventPropError::InvalidHyperparameter {
            param: "sd",
            value: self.sd,
            reason: "rejected by rand_distr::Normal",
        })?;
        weights.iter_mut().for_each(|w| *w = normal.sample(rng));
        Ok(())
    }

    /// A fresh `rows x cols` (`post x pre`) weight matrix, drawn column-major.
    #[must_use = "the sampled matrix is the result"]
    pub fn sample<R: Rng + ?Sized>(&self, rows: usize, cols: usize, rng: &mut R) -> Result<DMatrix<f64>> {
        let mut m = DMatrix::zeros(rows, cols);
        self.fill(m.as_mut_slice(), rng)?;
        Ok(m)
    }
}

/// The role of a connection, which decides its paper initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionRole {
    /// From the input population (also when it goes straight to the output).
    InputHidden,
    /// From a population onto itself.
    Recurrent,
    /// Between two different non-input, non-output populations.
    HiddenHidden,
    /// From a hidden population to the output population.
    HiddenOutput,
}

impl ConnectionRole {
    /// Role of connection `id` of `net` (rules checked in this order: recurrent, from the
    /// input, into the output, otherwise hidden → hidden).
    pub fn of(net: &Network, id: ConnectionId) -> Self {
        let c = net.connection(id);
        if c.is_recurrent() {
            ConnectionRole::Recurrent
        } else if c.pre() == net.input() {
            ConnectionRole::InputHidden
        } else if c.post() == net.output() {
            ConnectionRole::HiddenOutput
        } else {
            ConnectionRole::HiddenHidden
        }
    }

    /// The paper's weight distribution for this role.
    pub fn paper_weights(&self) -> NormalInit {
        match self {
            ConnectionRole::InputHidden => NormalInit::INPUT_HIDDEN,
            ConnectionRole::Recurrent => NormalInit::RECURRENT,
            ConnectionRole::HiddenHidden => NormalInit::HIDDEN_HIDDEN,
            ConnectionRole::HiddenOutput => NormalInit::HIDDEN_OUTPUT,
        }
    }
}

/// Draws every connection's weights from the paper's distribution for its role, connection
/// by connection in order, each in storage order (dense: column-major; sparse: the stored
/// synapses only, in data order), so a seed fixes all of them.
pub fn init_weights_paper<R: Rng + ?Sized>(net: &mut Network, rng: &mut R) -> Result<()> {
    for k in 0..net.connections().len() {
        let init = ConnectionRole::of(net, ConnectionId(k)).paper_weights();
        init_weights(net, ConnectionId(k), &init, rng)?;
    }
    Ok(())
}

/// Draws the weights of one connection from `init`.
pub fn init_weights<R: Rng + ?Sized>(
    net: &mut Network,
    id: ConnectionId,
    init: &NormalInit,
    rng: &mut R,
) -> Result<()> {
    check_id(net, id)?;
    init.fill(net.weight_values_mut(id), rng)
}

/// Draws the delays of one connection from `init` (ms).
pub fn init_delays<R: Rng + ?Sized>(net: &mut Network, id: ConnectionId, init: &DelayInit, rng: &mut R) -> Result<()> {
    check_id(net, id)?;
    init.fill(net.delay_values_mut(id), rng)?;
    Ok(())
}

fn check_id(net: &Network, id: ConnectionId) -> Result<()> {
    if id.0 >= net.connections().len() {
        return Err(EventPropError::ShapeMismatch {
            what: "connection id (number of connections)",
            expected: net.connections().len(),
            got: id.0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use snn_core::{LiParams, LifParams, NetworkBuilder};

    fn net() -> Network {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 30);
        let h1 = b.lif("h1", 40, LifParams::default());
        let h2 = b.lif("h2", 50, LifParams::default());
        let o = b.li("out", 60, LiParams::default());
        let z = |r, c| DMatrix::zeros(r, c);
        b.connect(i, h1, z(40, 30), z(40, 30));
        b.connect(h1, h1, z(40, 40), z(40, 40));
        b.connect(h1, h2, z(50, 40), z(50, 40));
        b.connect(h2, o, z(60, 50), z(60, 50));
        b.build().unwrap()
    }

    #[test]
    fn roles_and_moments() {
        let mut n = net();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        init_weights_paper(&mut n, &mut rng).unwrap();
        let expect = [
            (ConnectionRole::InputHidden, 0.03, 0.01),
            (ConnectionRole::Recurrent, 0.0, 0.02),
            (ConnectionRole::HiddenHidden, 0.02, 0.03),
            (ConnectionRole::HiddenOutput, 0.0, 0.03),
        ];
        for (k, (role, mean, sd)) in expect.into_iter().enumerate() {
            assert_eq!(ConnectionRole::of(&n, ConnectionId(k)), role);
            let w = n.connections()[k].weights();
            let len = w.len() as f64;
            let m = w.iter().sum::<f64>() / len;
            let s = (w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / len).sqrt();
            // >= 1200 draws: the standard error of the mean is <= sd/34, of the sd <= sd/49.
            assert!((m - mean).abs() < 4.0 * sd / 34.0, "{role:?}: mean {m}");
            assert!((s - sd).abs() < 4.0 * sd / 49.0, "{role:?}: sd {s}");
        }
        // Same seed, same weights.
        let mut n2 = net();
        init_weights_paper(&mut n2, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        assert_eq!(n, n2);
        assert!(n.check().is_ok());
    }

    #[test]
    fn bad_values() {
        let mut n = net();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(init_weights(&mut n, ConnectionId(0), &NormalInit { mean: 0.0, sd: -1.0 }, &mut rng).is_err());
        assert!(init_weights(&mut n, ConnectionId(0), &NormalInit { mean: f64::NAN, sd: 1.0 }, &mut rng).is_err());
        assert!(init_weights(&mut n, ConnectionId(9), &NormalInit::RECURRENT, &mut rng).is_err());
        assert!(init_delays(&mut n, ConnectionId(0), &DelayInit::Constant(-2.0), &mut rng).is_err());
        init_delays(&mut n, ConnectionId(0), &DelayInit::SSC, &mut rng).unwrap();
        assert!(n.connections()[0].delays().iter().all(|&d| (0.0..=50.0).contains(&d)));
    }
}
