//! Where this process sits in a cluster job.
//!
//! Built with the cargo feature `mpi` and started by `mpirun -n K` (or `srun`), the process is
//! one of K ranks of `MPI_COMM_WORLD`: every rank runs the same experiments with the same seed,
//! the spiking trainers split each batch's chunks over the ranks and reduce in chunk order
//! (`snn_eventprop::distributed`), so the numbers are those of one process; rank 0 alone
//! writes files, draws progress bars and prints, the others print only errors. Without the
//! feature, or started without a launcher, the process is a one-rank world.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use snn_core::Network;
use snn_eventprop::distributed::{Communicator, SINGLE_PROCESS};

static COMM: OnceLock<&'static dyn Communicator> = OnceLock::new();

/// Keeps MPI initialised while alive (`MPI_Finalize` when dropped); nothing without the feature.
pub struct Session {
    #[cfg(feature = "mpi")]
    mpi: snn_eventprop::distributed::MpiSession,
}

/// Initialises MPI (feature `mpi`) and makes its world the communicator of [`comm`]. Call once,
/// from the main thread, before any experiment.
pub fn init() -> Result<Session, String> {
    #[cfg(feature = "mpi")]
    {
        let mpi = snn_eventprop::distributed::MpiSession::init().map_err(|e| e.to_string())?;
        let world: &'static dyn Communicator = Box::leak(Box::new(mpi.world()));
        COMM.set(world).map_err(|_| "cluster::init called twice".to_owned())?;
        Ok(Session { mpi })
    }
    #[cfg(not(feature = "mpi"))]
    {
        Ok(Session {})
    }
}

impl Session {
    /// Ends the whole job with `code` when there are several ranks (a failing rank must not
    /// leave the others waiting for it); returns otherwise.
    pub fn abort_if_distributed(&self, code: i32) {
        #[cfg(feature = "mpi")]
        if size() > 1 {
            eprintln!("rank {} of {}: aborting the MPI job (exit code {code})", rank(), size());
            self.mpi.abort(code);
        }
        let _ = code;
    }
}

/// The ranks of this job ([`SINGLE_PROCESS`] unless MPI was initialised).
pub fn comm() -> &'static dyn Communicator {
    COMM.get().copied().unwrap_or(&SINGLE_PROCESS)
}

/// This process's rank.
pub fn rank() -> usize {
    comm().rank()
}

/// Number of ranks.
pub fn size() -> usize {
    comm().size()
}

/// Whether this process writes files and prints progress (rank 0).
pub fn is_root() -> bool {
    rank() == 0
}

/// SHA-256 (lower-case hex) of a network's parameters: for each connection in order, its
/// weight matrix then its delay matrix (both `post x pre`), each in column-major order (all
/// rows of presynaptic neuron 0, then of neuron 1, ...), every value as the 8 little-endian
/// bytes of its IEEE-754 `f64`. Equal digests mean bit-identical parameters.
pub fn parameters_sha256(net: &Network) -> String {
    let mut h = Sha256::new();
    for c in net.connections() {
        for m in [c.weight_values(), c.delay_values()] {
            for x in m {
                h.update(x.to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use nalgebra::DMatrix;
    use snn_core::{LiParams, NetworkBuilder};

    use super::*;

    #[test]
    fn parameters_digest_follows_the_documented_byte_order() {
        let mut b = NetworkBuilder::new();
        let i = b.input("in", 2);
        let o = b.li("out", 1, LiParams::default());
        b.connect(i, o, DMatrix::from_row_slice(1, 2, &[0.5, -1.0]), DMatrix::from_row_slice(1, 2, &[2.0, 0.0]));
        let net = b.build().unwrap();
        let mut bytes = Vec::new();
        for x in [0.5f64, -1.0, 2.0, 0.0] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let want: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parameters_sha256(&net), want);
        // One bit of one delay changes the digest.
        let mut other = net.clone();
        let d = other.connections()[0].delays()[(0, 1)];
        other.delays_mut(snn_core::ConnectionId(0))[(0, 1)] = f64::from_bits(d.to_bits() ^ 1);
        assert_ne!(parameters_sha256(&other), want);
        assert_eq!(comm().size(), 1);
    }
}
