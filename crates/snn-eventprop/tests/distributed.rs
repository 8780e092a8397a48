//! Data-parallel training over K ranks (threads of this process standing in for MPI ranks,
//! [`ThreadGroup`]) gives bitwise the run of one process, whatever the thread count of each
//! rank; typed errors for too many ranks and for a failing chunk on one rank.

use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_core::{
    ClockedEngine, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, ReadoutKind, SimConfig, Simulator,
    SpikeTrain, SpikeTrains,
};
use snn_eventprop::distributed::{Communicator, ThreadGroup};
use snn_eventprop::regularise::{CountAverage, SpikeCountReg};
use snn_eventprop::train::{BatchWorkspace, EpochMetrics, Labelled, TrainConfig, TrainData, Trainer};
use snn_eventprop::{Adjoint, EventPropError, Gradients, Loss};

const T_END: f64 = 40.0;

fn engine() -> ClockedEngine {
    ClockedEngine::new(SimConfig::new(T_END, ReadoutKind::ExpIntegral), 1.0).unwrap()
}

/// 20 inputs -> 12 LIF -> 3 LI, random weights and delays.
fn network(seed: u64) -> Network {
    sized_network(20, 12, 2.0, seed)
}

/// `inputs` -> `hidden` LIF -> 3 LI, random weights (input weights scaled by `gain`) and delays.
fn sized_network(inputs: usize, hidden: usize, gain: f64, seed: u64) -> Network {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = NetworkBuilder::new();
    let i = b.input("in", inputs);
    let h = b.lif("hid", hidden, LifParams::default());
    let o = b.li("out", 3, LiParams::default());
    let mut w = |r, c, s: f64| DMatrix::from_fn(r, c, |_, _| rng.random_range(-0.5..1.5) * s);
    let (w_ih, w_ho) = (w(hidden, inputs, gain), w(3, hidden, 1.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let mut d = |r, c| DMatrix::from_fn(r, c, |_, _| rng.random_range(0.0..5.0));
    let (d_ih, d_ho) = (d(hidden, inputs), d(3, hidden));
    b.connect(i, h, w_ih, d_ih);
    b.connect(h, o, w_ho, d_ho);
    b.build().unwrap()
}

fn data(n: usize, seed: u64) -> Labelled {
    sized_data(20, 5..30, n, seed)
}

fn sized_data(inputs: u32, spikes: std::ops::Range<usize>, n: usize, seed: u64) -> Labelled {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = SpikeTrains::new(inputs as usize);
    let mut labels = Vec::new();
    for _ in 0..n {
        let k = rng.random_range(spikes.clone());
        let times: Vec<f64> = (0..k).map(|_| rng.random_range(0.0..25.0)).collect();
        let neurons: Vec<u32> = (0..k).map(|_| rng.random_range(0..inputs)).collect();
        x.push_unsorted(&times, &neurons).unwrap();
        labels.push(rng.random_range(0..3));
    }
    Labelled::new(x, labels).unwrap()
}

fn config(chunk_size: usize, reg: Option<SpikeCountReg>) -> TrainConfig {
    TrainConfig::builder().epochs(3).batch_size(16).chunk_size(chunk_size).spike_count_reg(reg).seed(5).build().unwrap()
}

/// Network bits and the metrics of every epoch (timings zeroed) as text: `{:?}` of an `f64`
/// names its bits.
type Run = (Vec<u64>, String);

fn outcome(net: &Network, history: &[EpochMetrics]) -> Run {
    let bits = net
        .connections()
        .iter()
        .flat_map(|c| c.weights().iter().chain(c.delays().iter()).map(|x| x.to_bits()).collect::<Vec<_>>())
        .collect();
    let h: Vec<EpochMetrics> = history.iter().map(|m| EpochMetrics { seconds: 0.0, ..m.clone() }).collect();
    (bits, format!("{h:?}"))
}

fn single(engine: &ClockedEngine, cfg: &TrainConfig, sets: (&Labelled, &Labelled)) -> Run {
    let data = TrainData { train: sets.0, validation: Some(sets.1), test: Some(sets.1) };
    let mut t = Trainer::new(engine, Loss::ExpIntegralCrossEntropy, cfg.clone(), network(3)).unwrap();
    t.fit(&data).unwrap();
    outcome(t.network(), t.history())
}

fn ranked(engine: &ClockedEngine, cfg: &TrainConfig, sets: (&Labelled, &Labelled), ranks: usize) -> Vec<Run> {
    ThreadGroup::run(ranks, |comm| {
        // Each rank with its own thread count: 1, 2, 3, ...
        let pool = rayon::ThreadPoolBuilder::new().num_threads(comm.rank() + 1).build().unwrap();
        pool.install(|| {
            let data = TrainData { train: sets.0, validation: Some(sets.1), test: Some(sets.1) };
            let t = Trainer::new(engine, Loss::ExpIntegralCrossEntropy, cfg.clone(), network(3)).unwrap();
            let mut t = t.with_communicator(comm).unwrap();
            t.fit(&data).unwrap();
            outcome(t.network(), t.history())
        })
    })
}

#[test]
fn k_ranks_train_bitwise_like_one_process() {
    let engine = engine();
    // 45 samples in batches of 16: the last batch has 13 samples (4 chunks of 4, the last short).
    let (train, val) = (data(45, 7), data(21, 8));
    let reg = SpikeCountReg { target: 2.0, strength_upper: 1e-3, strength_lower: 1e-3, average: CountAverage::Batch };
    for reg in [None, Some(reg), Some(SpikeCountReg { average: CountAverage::Sample, ..reg })] {
        let cfg = config(4, reg);
        let one = single(&engine, &cfg, (&train, &val));
        for ranks in 1..=4 {
            for (rank, run) in ranked(&engine, &cfg, (&train, &val), ranks).into_iter().enumerate() {
                assert!(run == one, "{ranks} ranks, rank {rank}, regulariser {reg:?}: differs from one process");
            }
        }
        // The data are sensitive to the grouping of the sums: other chunks give other bits, so
        // the equalities above can fail.
        let regrouped = single(&engine, &config(2, reg), (&train, &val));
        assert_ne!(regrouped.0, one.0, "regulariser {reg:?}: summation order does not matter for this data");
    }
}

#[test]
fn batch_gradients_over_several_chain_segments_are_bitwise_those_of_one_process() {
    // 300 -> 120 -> 3: 2 x (36000 + 360) = 72720 values, more than one segment of the chain.
    let (engine, net, set) = (engine(), sized_network(300, 120, 0.5, 4), sized_data(300, 100..300, 24, 5));
    let params: usize = net.connections().iter().map(|c| 2 * c.weights().len()).sum();
    assert!(params > snn_eventprop::distributed::SEGMENT, "{params} values fit in one segment");
    let loss = Loss::ExpIntegralCrossEntropy;
    let indices: Vec<usize> = (0..24).rev().collect();
    let bits = |g: &Gradients| {
        g.weights.iter().chain(&g.delays).flat_map(|m| m.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
    };
    let mut ws = BatchWorkspace::<ClockedEngine>::new(&net, 4).unwrap();
    let one = ws.compute(&engine, &net, set.spikes(), set.labels(), &indices, &loss, None).unwrap();
    let one: (u64, usize, Vec<u64>, Vec<u64>) =
        (one.loss.to_bits(), one.correct, ws.spike_counts().to_vec(), bits(ws.gradients()));
    let nonzero = one.3.iter().filter(|&&b| f64::from_bits(b) != 0.0).count();
    let hidden_spikes: u64 = one.2[300..420].iter().sum();
    assert!(nonzero > params / 4, "{nonzero} nonzero gradients of {params}, {hidden_spikes} hidden spikes");
    for ranks in [2, 3, 6] {
        let runs = ThreadGroup::run(ranks, |comm| {
            let mut ws = BatchWorkspace::<ClockedEngine>::new(&net, 4).unwrap();
            let s = ws.compute_on(comm, &engine, &net, set.spikes(), set.labels(), &indices, &loss, None).unwrap();
            (s.loss.to_bits(), s.correct, ws.spike_counts().to_vec(), bits(ws.gradients()))
        });
        for (rank, run) in runs.into_iter().enumerate() {
            assert!(run == one, "{ranks} ranks, rank {rank}: differs from one process");
        }
    }
}

#[test]
fn more_ranks_than_chunks_is_a_typed_error() {
    let engine = engine();
    let (train, val) = (data(45, 7), data(21, 8));
    // A batch of 16 in chunks of 4 has 4 chunks: 5 ranks is one too many.
    let errs = ThreadGroup::run(5, |comm| {
        let t = Trainer::new(&engine, Loss::ExpIntegralCrossEntropy, config(4, None), network(3)).unwrap();
        t.with_communicator(comm).map(|_| ()).unwrap_err()
    });
    for e in errs {
        assert_eq!(e, EventPropError::TooManyRanks { ranks: 5, chunks: 4, batch_size: 16, chunk_size: 4 });
        assert!(e.to_string().contains("use at most 4 ranks"), "{e}");
    }
    // A training set smaller than a batch: 6 samples are 2 chunks, 3 ranks are too many.
    let small = data(6, 9);
    let errs = ThreadGroup::run(3, |comm| {
        let t = Trainer::new(&engine, Loss::ExpIntegralCrossEntropy, config(4, None), network(3)).unwrap();
        let mut t = t.with_communicator(comm).unwrap();
        t.fit(&TrainData { train: &small, validation: Some(&val), test: None }).unwrap_err()
    });
    for e in errs {
        assert_eq!(e, EventPropError::TooManyRanks { ranks: 3, chunks: 2, batch_size: 6, chunk_size: 4 });
    }
    let _ = train;
}

/// The clocked engine, failing the backward pass of any sample with an input spike at exactly
/// `POISON` ms.
struct Poisoned(ClockedEngine);

const POISON: f64 = 7.25;

impl Simulator for Poisoned {
    type Scratch = <ClockedEngine as Simulator>::Scratch;
    fn config(&self) -> &SimConfig {
        self.0.config()
    }
    fn scratch(&self, net: &Network) -> Self::Scratch {
        self.0.scratch(net)
    }
    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        scratch: &mut Self::Scratch,
        out: &mut ForwardRecord,
    ) -> snn_core::Result<()> {
        self.0.run_into(net, input, scratch, out)
    }
}

impl Adjoint for Poisoned {
    type AdjointScratch = <ClockedEngine as Adjoint>::AdjointScratch;
    fn adjoint_scratch(&self, net: &Network) -> Self::AdjointScratch {
        self.0.adjoint_scratch(net)
    }
    fn backward_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        record: &ForwardRecord,
        d_readout: &[f64],
        scratch: &mut Self::AdjointScratch,
        grads: &mut Gradients,
    ) -> snn_eventprop::Result<()> {
        if input.iter().any(|(t, _)| t == POISON) {
            return Err(EventPropError::Unsupported { what: "poisoned sample" });
        }
        self.0.backward_into(net, input, record, d_readout, scratch, grads)
    }
}

#[test]
fn a_failing_chunk_fails_every_rank_and_names_the_rank() {
    let engine = Poisoned(engine());
    let net = network(3);
    let set = data(16, 7);
    // Poison sample 13: chunk 3 of 4 (chunks of 4), on rank 2 of 3 (ranges 0..1, 1..2, 2..4).
    let mut x = SpikeTrains::new(20);
    for (s, train) in set.spikes().iter().enumerate() {
        let (mut t, mut n): (Vec<f64>, Vec<u32>) = train.iter().unzip();
        if s == 13 {
            t.push(POISON);
            n.push(0);
        }
        x.push_unsorted(&t, &n).unwrap();
    }
    let set = Labelled::new(x, set.labels().to_vec()).unwrap();
    let indices: Vec<usize> = (0..16).collect();
    let single = BatchWorkspace::<Poisoned>::new(&net, 4)
        .unwrap()
        .compute(&engine, &net, set.spikes(), set.labels(), &indices, &Loss::ExpIntegralCrossEntropy, None)
        .unwrap_err();
    assert_eq!(single, EventPropError::Unsupported { what: "poisoned sample" });
    let errs = ThreadGroup::run(3, |comm| {
        let mut ws = BatchWorkspace::<Poisoned>::new(&net, 4).unwrap();
        ws.compute_on(comm, &engine, &net, set.spikes(), set.labels(), &indices, &Loss::ExpIntegralCrossEntropy, None)
            .unwrap_err()
    });
    assert_eq!(errs[0], EventPropError::RankFailed { rank: 2, chunk: 3 });
    assert_eq!(errs[1], EventPropError::RankFailed { rank: 2, chunk: 3 });
    assert_eq!(errs[2], single);
}
