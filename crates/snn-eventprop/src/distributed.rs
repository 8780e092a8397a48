//! Data-parallel training over several processes ("ranks") with bit-identical results.
//!
//! Every rank holds the same network and optimiser state. A batch is cut into chunks of
//! `chunk_size` consecutive samples (see [`crate::train::BatchWorkspace`]); the chunks are
//! split into contiguous ranges over the ranks ([`chunk_range`]), each rank computes the
//! gradient sums of its own chunks, and the sums are combined by an **ordered reduction**
//! ([`ordered_sum`]): rank 0 adds its chunk sums in chunk order to zero and passes the running
//! sum to rank 1, which adds its chunk sums in order and passes it on, and the last rank
//! broadcasts the total. Every element therefore sees exactly the additions of the
//! single-process loop (`0 + c0 + c1 + ...` in chunk order), so **one rank and K ranks give
//! the same bits** — a plain all-reduce would not (its summation order depends on the ranks).
//! Integer quantities (correct predictions, spike counts) are summed with an all-reduce,
//! which is exact in any order.
//!
//! The transport is a [`Communicator`]:
//!
//! - [`SingleProcess`]: one rank, no communication (what the trainer uses by default);
//! - [`ThreadGroup`]: K ranks as threads of one process, over channels — for tests and
//!   experiments without MPI;
//! - `MpiCommunicator` (cargo feature `mpi`): the ranks of `MPI_COMM_WORLD`, through the
//!   `mpi` crate (rsmpi); MPI is called from the thread that initialised it only.
//!
//! Communication per batch: the chain passes the gradient vector (number of parameters + 1
//! `f64`, i.e. ~8 bytes per parameter) from rank to rank once and broadcasts it once. The
//! running sum travels in segments of [`SEGMENT`] values, so that rank `r + 1` adds segment
//! `s` while rank `r` adds segment `s + 1`: the chain is a pipeline whose time grows with
//! `ranks - 1 + segments` segment transfers, not with `ranks` whole vectors.
//!
//! ```
//! use snn_eventprop::distributed::{Communicator, ThreadGroup, chunk_range, ordered_sum};
//!
//! // Seven chunks whose sum depends on the order of the additions.
//! let chunks = [1e16, 1.0, -1e16, 1.0, 3.0, 1e-3, 2.0];
//! let sequential = chunks.iter().fold(0.0, |a, x| a + x);
//! let totals = ThreadGroup::run(3, |comm| {
//!     let mine = chunk_range(chunks.len(), comm.rank(), comm.size()).unwrap();
//!     let mut buf = [0.0];
//!     ordered_sum(comm, &mut buf, &mut |_offset: usize, b: &mut [f64]| {
//!         for x in &chunks[mine.clone()] {
//!             b[0] += x;
//!         }
//!     })
//!     .unwrap();
//!     buf[0]
//! });
//! assert!(totals.iter().all(|t| t.to_bits() == sequential.to_bits()));
//! ```

use std::ops::Range;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::error::{EventPropError, Result};

/// The operations the data-parallel trainer needs from a group of ranks.
///
/// All ranks must call the collective operations ([`Communicator::broadcast`],
/// [`Communicator::sum_u64`]) in the same order with buffers of the same length; point-to-point
/// messages between two ranks arrive in the order they were sent.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Sends `buf` to rank `to` (blocking until it may be reused).
    fn send(&self, to: usize, buf: &[f64]) -> Result<()>;
    /// Receives a message of exactly `buf.len()` values from rank `from`.
    fn receive(&self, from: usize, buf: &mut [f64]) -> Result<()>;
    /// Copies `buf` of rank `root` into `buf` of every rank.
    fn broadcast(&self, root: usize, buf: &mut [f64]) -> Result<()>;
    /// Element-wise sum of `buf` over all ranks, left in `buf` of every rank (exact: integers).
    fn sum_u64(&self, buf: &mut [u64]) -> Result<()>;
}

/// The contiguous range of chunks that rank `rank` of `size` computes: `chunks` split in
/// chunk order as evenly as possible (`chunks * rank / size .. chunks * (rank + 1) / size`).
///
/// Ranks may get no chunk (a short last batch); `size == 0` or `rank >= size` is an error.
///
/// ```
/// use snn_eventprop::distributed::chunk_range;
/// assert_eq!(chunk_range(7, 0, 3).unwrap(), 0..2);
/// assert_eq!(chunk_range(7, 1, 3).unwrap(), 2..4);
/// assert_eq!(chunk_range(7, 2, 3).unwrap(), 4..7);
/// assert_eq!(chunk_range(1, 0, 2).unwrap(), 0..0); // a short batch: rank 0 idles
/// assert_eq!(chunk_range(1, 1, 2).unwrap(), 0..1);
/// assert!(chunk_range(4, 2, 2).is_err());
/// ```
pub fn chunk_range(chunks: usize, rank: usize, size: usize) -> Result<Range<usize>> {
    if rank >= size {
        return Err(EventPropError::Communication {
            op: "chunk_range",
            reason: "rank is not below the number of ranks",
        });
    }
    Ok(chunks * rank / size..chunks * (rank + 1) / size)
}

/// Values per message of the chain of [`ordered_sum`] (512 KiB).
pub const SEGMENT: usize = 1 << 16;

/// Ordered sum over the ranks: on return `buf` holds, on every rank, the result of starting
/// from `+0.0` everywhere and applying `add_local` of rank 0, then of rank 1, ... then of the
/// last rank to the same buffer.
///
/// `add_local(offset, segment)` must add this rank's contribution to `buf[offset..offset +
/// segment.len()]`, given as `segment`; it is called once per segment of [`SEGMENT`] values,
/// in order. Rank `r` receives each segment of the running sum from rank `r - 1` (rank 0
/// starts from zeros), applies `add_local` and sends it to rank `r + 1`; the last rank
/// broadcasts the total. If every rank's `add_local` adds its parts in order, the result is
/// bitwise that of one process adding all the parts in order.
pub fn ordered_sum(
    comm: &dyn Communicator,
    buf: &mut [f64],
    add_local: &mut dyn FnMut(usize, &mut [f64]),
) -> Result<()> {
    let (rank, size) = (comm.rank(), comm.size());
    for (s, segment) in buf.chunks_mut(SEGMENT).enumerate() {
        if rank == 0 {
            segment.fill(0.0);
        } else {
            comm.receive(rank - 1, segment)?;
        }
        add_local(s * SEGMENT, segment);
        if rank + 1 < size {
            comm.send(rank + 1, segment)?;
        }
    }
    comm.broadcast(size - 1, buf)
}

/// Agrees on the first failure of a step over all ranks.
///
/// Each rank passes the global index of its first failing item (`None`: no failure); every
/// rank gets back the smallest such index and the rank that reported it, or `None` when no
/// rank failed. One [`Communicator::sum_u64`] of `size()` values.
pub fn first_failure(comm: &dyn Communicator, mine: Option<usize>) -> Result<Option<(usize, usize)>> {
    let mut slots = vec![0u64; comm.size()];
    slots[comm.rank()] = mine.map_or(0, |i| i as u64 + 1);
    comm.sum_u64(&mut slots)?;
    Ok(slots
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s > 0)
        .min_by_key(|&(_, &s)| s)
        .map(|(rank, &s)| (rank, s as usize - 1)))
}

/// One rank, no communication: what a program started without a launcher is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SingleProcess;

/// A shared [`SingleProcess`], the trainer's default.
pub static SINGLE_PROCESS: SingleProcess = SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn send(&self, _to: usize, _buf: &[f64]) -> Result<()> {
        Err(EventPropError::Communication { op: "send", reason: "a single process has no other rank" })
    }
    fn receive(&self, _from: usize, _buf: &mut [f64]) -> Result<()> {
        Err(EventPropError::Communication { op: "receive", reason: "a single process has no other rank" })
    }
    fn broadcast(&self, _root: usize, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn sum_u64(&self, _buf: &mut [u64]) -> Result<()> {
        Ok(())
    }
}

enum Message {
    F64(Vec<f64>),
    U64(Vec<u64>),
}

/// One rank of a group of threads of this process, connected by channels (see
/// [`ThreadGroup::run`]): the data-parallel path without MPI, for tests.
pub struct ThreadGroup {
    rank: usize,
    /// `to[r]` sends to rank `r`.
    to: Vec<Sender<Message>>,
    /// `from[r]` receives from rank `r`.
    from: Vec<Mutex<Receiver<Message>>>,
}

impl std::fmt::Debug for ThreadGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadGroup").field("rank", &self.rank).field("size", &self.to.len()).finish()
    }
}

impl ThreadGroup {
    /// `size` connected ranks (`size >= 1`), to be moved to one thread each.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        // channels[s][d]: from s to d.
        let mut senders: Vec<Vec<Option<Sender<Message>>>> = (0..size).map(|_| Vec::new()).collect();
        let mut receivers: Vec<Vec<Option<Receiver<Message>>>> =
            (0..size).map(|_| (0..size).map(|_| None).collect()).collect();
        for (s, row) in senders.iter_mut().enumerate() {
            for rx_row in receivers.iter_mut() {
                let (tx, rx) = channel();
                row.push(Some(tx));
                rx_row[s] = Some(rx);
            }
        }
        senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(rank, (tx, rx))| ThreadGroup {
                rank,
                to: tx.into_iter().map(|t| t.expect("filled above")).collect(),
                from: rx.into_iter().map(|r| Mutex::new(r.expect("filled above"))).collect(),
            })
            .collect()
    }

    /// Runs `f` on `size` ranks, one scoped thread each, and returns their results in rank order.
    ///
    /// A panic of a rank is propagated.
    pub fn run<T: Send>(size: usize, f: impl Fn(&ThreadGroup) -> T + Sync) -> Vec<T> {
        let ranks = Self::new(size);
        std::thread::scope(|s| {
            let handles: Vec<_> = ranks.iter().map(|comm| s.spawn(|| f(comm))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    }

    fn post(&self, to: usize, msg: Message, op: &'static str) -> Result<()> {
        let tx = self.to.get(to).ok_or(EventPropError::Communication { op, reason: "no such rank" })?;
        tx.send(msg).map_err(|_| EventPropError::Communication { op, reason: "the receiving rank has exited" })
    }

    fn take(&self, from: usize, op: &'static str) -> Result<Message> {
        let rx = self.from.get(from).ok_or(EventPropError::Communication { op, reason: "no such rank" })?;
        let rx = rx.lock().map_err(|_| EventPropError::Communication { op, reason: "receiver poisoned" })?;
        rx.recv().map_err(|_| EventPropError::Communication { op, reason: "the sending rank has exited" })
    }

    fn take_f64(&self, from: usize, buf: &mut [f64], op: &'static str) -> Result<()> {
        match self.take(from, op)? {
            Message::F64(v) if v.len() == buf.len() => {
                buf.copy_from_slice(&v);
                Ok(())
            }
            _ => Err(EventPropError::Communication { op, reason: "message of another type or length" }),
        }
    }
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.to.len()
    }
    fn send(&self, to: usize, buf: &[f64]) -> Result<()> {
        self.post(to, Message::F64(buf.to_vec()), "send")
    }
    fn receive(&self, from: usize, buf: &mut [f64]) -> Result<()> {
        self.take_f64(from, buf, "receive")
    }
    fn broadcast(&self, root: usize, buf: &mut [f64]) -> Result<()> {
        if self.rank == root {
            for r in (0..self.size()).filter(|&r| r != root) {
                self.post(r, Message::F64(buf.to_vec()), "broadcast")?;
            }
            Ok(())
        } else {
            self.take_f64(root, buf, "broadcast")
        }
    }
    fn sum_u64(&self, buf: &mut [u64]) -> Result<()> {
        const OP: &str = "sum_u64";
        if self.rank == 0 {
            for r in 1..self.size() {
                match self.take(r, OP)? {
                    Message::U64(v) if v.len() == buf.len() => buf.iter_mut().zip(v).for_each(|(a, b)| *a += b),
                    _ => {
                        return Err(EventPropError::Communication {
                            op: OP,
                            reason: "message of another type or length",
                        });
                    }
                }
            }
            for r in 1..self.size() {
                self.post(r, Message::U64(buf.to_vec()), OP)?;
            }
            Ok(())
        } else {
            self.post(0, Message::U64(buf.to_vec()), OP)?;
            match self.take(0, OP)? {
                Message::U64(v) if v.len() == buf.len() => {
                    buf.copy_from_slice(&v);
                    Ok(())
                }
                _ => Err(EventPropError::Communication { op: OP, reason: "message of another type or length" }),
            }
        }
    }
}

#[cfg(feature = "mpi")]
pub use self::mpi_impl::{MpiCommunicator, MpiSession};

#[cfg(feature = "mpi")]
mod mpi_impl {
    use std::thread::ThreadId;

    use mpi::collective::SystemOperation;
    use mpi::environment::{Threading, Universe};
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator as _, CommunicatorCollectives, Destination, Root, Source};

    use super::Communicator;
    use crate::error::{EventPropError, Result};

    /// MPI, initialised for the life of this value (`MPI_Init_thread` with
    /// `MPI_THREAD_FUNNELED`: rayon threads compute, the main thread communicates);
    /// `MPI_Finalize` when dropped.
    ///
    /// Started without `mpirun`/`srun`, MPI makes the process a one-rank world.
    pub struct MpiSession {
        universe: Universe,
    }

    impl std::fmt::Debug for MpiSession {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let world = self.universe.world();
            f.debug_struct("MpiSession").field("rank", &world.rank()).field("size", &world.size()).finish()
        }
    }

    impl MpiSession {
        /// Initialises MPI. Errors: MPI already initialised, or no funneled thread support.
        pub fn init() -> Result<Self> {
            let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
                .ok_or(EventPropError::Communication { op: "MPI_Init_thread", reason: "MPI is already initialised" })?;
            if threading < Threading::Funneled {
                return Err(EventPropError::Communication {
                    op: "MPI_Init_thread",
                    reason: "the MPI library does not support MPI_THREAD_FUNNELED",
                });
            }
            Ok(Self { universe })
        }

        /// `MPI_COMM_WORLD`, usable from the calling thread only.
        pub fn world(&self) -> MpiCommunicator {
            MpiCommunicator { world: self.universe.world(), owner: std::thread::current().id() }
        }

        /// Ends every rank of the job (`MPI_Abort` with `code`): what a failing rank calls so
        /// that the others do not wait for it forever.
        pub fn abort(&self, code: i32) -> ! {
            self.universe.world().abort(code)
        }
    }

    /// `MPI_COMM_WORLD` as a [`Communicator`].
    ///
    /// Every operation checks that it runs on the thread that created the communicator (MPI is
    /// initialised with `MPI_THREAD_FUNNELED`) and fails otherwise.
    pub struct MpiCommunicator {
        world: SimpleCommunicator,
        owner: ThreadId,
    }

    impl std::fmt::Debug for MpiCommunicator {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MpiCommunicator")
                .field("rank", &self.world.rank())
                .field("size", &self.world.size())
                .finish()
        }
    }

    // SAFETY: the communicator handle is a plain value; every method that passes it to MPI first
    // checks that the caller is the owning thread (the one that initialised MPI or created this
    // value on it), so MPI is only ever entered from that thread, as MPI_THREAD_FUNNELED requires.
    unsafe impl Send for MpiCommunicator {}
    // SAFETY: as above.
    unsafe impl Sync for MpiCommunicator {}

    impl MpiCommunicator {
        fn on_owner(&self, op: &'static str) -> Result<()> {
            if std::thread::current().id() == self.owner {
                Ok(())
            } else {
                Err(EventPropError::Communication { op, reason: "MPI called from a thread other than the main thread" })
            }
        }

        fn peer(&self, r: usize, op: &'static str) -> Result<i32> {
            i32::try_from(r)
                .ok()
                .filter(|&r| r < self.world.size())
                .ok_or(EventPropError::Communication { op, reason: "no such rank" })
        }
    }

    impl Communicator for MpiCommunicator {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn send(&self, to: usize, buf: &[f64]) -> Result<()> {
            self.on_owner("send")?;
            let to = self.peer(to, "send")?;
            self.world.process_at_rank(to).send(buf);
            Ok(())
        }
        fn receive(&self, from: usize, buf: &mut [f64]) -> Result<()> {
            self.on_owner("receive")?;
            let from = self.peer(from, "receive")?;
            let status = self.world.process_at_rank(from).receive_into(buf);
            if status.count(f64::equivalent_datatype()) as usize != buf.len() {
                return Err(EventPropError::Communication { op: "receive", reason: "message of another length" });
            }
            Ok(())
        }
        fn broadcast(&self, root: usize, buf: &mut [f64]) -> Result<()> {
            self.on_owner("broadcast")?;
            let root = self.peer(root, "broadcast")?;
            self.world.process_at_rank(root).broadcast_into(buf);
            Ok(())
        }
        fn sum_u64(&self, buf: &mut [u64]) -> Result<()> {
            self.on_owner("sum_u64")?;
            let send = buf.to_vec();
            self.world.all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
    }

    use mpi::datatype::Equivalence;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_cover_every_chunk_once_in_order() {
        for chunks in 0..20 {
            for size in 1..8 {
                let ranges: Vec<Range<usize>> = (0..size).map(|r| chunk_range(chunks, r, size).unwrap()).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[size - 1].end, chunks);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
            }
        }
        assert!(chunk_range(3, 0, 0).is_err());
    }

    #[test]
    fn ordered_sum_travels_in_segments_and_keeps_every_offset() {
        // 2.5 segments: each rank adds (rank + 1) * index + a tiny order-sensitive term.
        let n = SEGMENT * 5 / 2;
        for size in [1, 3] {
            let out = ThreadGroup::run(size, |comm| {
                let mut buf = vec![f64::NAN; n];
                let r = comm.rank() as f64;
                let mut calls = Vec::new();
                ordered_sum(comm, &mut buf, &mut |off, seg: &mut [f64]| {
                    calls.push((off, seg.len()));
                    for (i, a) in seg.iter_mut().enumerate() {
                        *a += (r + 1.0) * (off + i) as f64 + 1e-17 * r;
                    }
                })
                .unwrap();
                (buf, calls)
            });
            for (buf, calls) in out {
                assert_eq!(calls, vec![(0, SEGMENT), (SEGMENT, SEGMENT), (2 * SEGMENT, SEGMENT / 2)]);
                for (i, &x) in buf.iter().enumerate() {
                    let mut want = 0.0;
                    for r in 0..size {
                        want += (r as f64 + 1.0) * i as f64 + 1e-17 * r as f64;
                    }
                    assert_eq!(x.to_bits(), want.to_bits(), "{size} ranks, index {i}");
                }
            }
        }
    }

    #[test]
    fn thread_group_sums_integers_and_agrees_on_the_first_failure() {
        let out = ThreadGroup::run(4, |comm| {
            let mut v = vec![comm.rank() as u64, 1];
            comm.sum_u64(&mut v).unwrap();
            let fail = match comm.rank() {
                1 => Some(7),
                3 => Some(5),
                _ => None,
            };
            (v, first_failure(comm, fail).unwrap(), first_failure(comm, None).unwrap())
        });
        for (v, f, none) in out {
            assert_eq!(v, vec![6, 4]);
            assert_eq!(f, Some((3, 5)));
            assert_eq!(none, None);
        }
    }

    #[test]
    fn ordered_sum_is_the_sequential_sum_for_any_number_of_ranks() {
        // Parts whose sum depends on the association: 1e16 + 1 + 1 != 1e16 + 2, etc.
        let parts: Vec<[f64; 3]> =
            (0..9).map(|i| [1e16 * (-1f64).powi(i), 1.0 + f64::from(i) * 1e-3, 0.1 * f64::from(i)]).collect();
        let mut seq = [0.0; 3];
        for p in &parts {
            seq.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        for size in 1..=5 {
            let out = ThreadGroup::run(size, |comm| {
                let mine = chunk_range(parts.len(), comm.rank(), comm.size()).unwrap();
                let mut buf = [f64::NAN; 3];
                ordered_sum(comm, &mut buf, &mut |_, b: &mut [f64]| {
                    for p in &parts[mine.clone()] {
                        b.iter_mut().zip(p).for_each(|(a, x)| *a += x);
                    }
                })
                .unwrap();
                buf
            });
            for buf in out {
                assert_eq!(buf.map(f64::to_bits), seq.map(f64::to_bits), "{size} ranks");
            }
        }
        // What an all-reduce of per-rank partial sums would give at 2 ranks differs: the data
        // are sensitive to the summation order, so the assertions above can fail.
        let partial = |ps: &[[f64; 3]]| {
            ps.iter().fold([0.0; 3], |mut a, p| {
                a.iter_mut().zip(p).for_each(|(a, x)| *a += x);
                a
            })
        };
        let (lo, hi) = (partial(&parts[..4]), partial(&parts[4..]));
        let naive: Vec<u64> = lo.iter().zip(&hi).map(|(a, b)| (a + b).to_bits()).collect();
        assert_ne!(naive, seq.map(f64::to_bits).to_vec());
    }
}
