//! Mechanics of the training loop, tested with a toy engine whose gradient is known in
//! closed form: determinism across thread counts, bitwise checkpoint resume, typed errors,
//! early stopping, silent-neuron boost, delay clamping.

use std::path::PathBuf;

use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use snn_core::{
    ConnectionId, ForwardRecord, LiParams, LifParams, Network, NetworkBuilder, NeuronKind, ReadoutKind, SimConfig,
    Simulator, SpikeTrain, SpikeTrains,
};
use snn_eventprop::optim::{AdamParams, LrSchedule, Trainable};
use snn_eventprop::train::{
    EarlyStopping, Labelled, Monitor, Progress, TrainConfig, TrainData, TrainableParams, Trainer,
};
use snn_eventprop::{Adjoint, EventPropError, Gradients, Loss, loss_and_gradients};

const TAU: f64 = 10.0;

/// A toy differentiable "engine": each output `k` reads
/// `V_k = sum over input spikes (t, i) of w_ki exp(-(t + d_ki)/tau)` on every connection from
/// the input to the output, so `dV_k/dw_ki = sum_t e^{-(t+d_ki)/tau}` and
/// `dV_k/dd_ki = -w_ki/tau * sum_t e^{-(t+d_ki)/tau}`. A hidden LIF population fed by the input
/// "spikes" once (at 1 ms) per neuron whose incoming weights sum to more than 0; it does not
/// influence the output (its gradients are 0). An input spike at exactly `nan_time` poisons the
/// delay gradient with NaN.
struct Toy {
    config: SimConfig,
    nan_time: Option<f64>,
}

impl Toy {
    fn new() -> Self {
        Self { config: SimConfig::new(50.0, ReadoutKind::MaxVoltage), nan_time: None }
    }
}

fn is_output_conn(net: &Network, c: usize) -> bool {
    let c = net.connection(ConnectionId(c));
    c.pre() == net.input() && c.post() == net.output()
}

impl Simulator for Toy {
    type Scratch = ();

    fn config(&self) -> &SimConfig {
        &self.config
    }

    fn scratch(&self, _net: &Network) -> Self::Scratch {}

    fn run_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        _: &mut (),
        out: &mut ForwardRecord,
    ) -> snn_core::Result<()> {
        out.clear();
        let n_out = net.population(net.output()).size();
        out.readout.values.resize(n_out, 0.0);
        out.readout.times.resize(n_out, 0.0);
        for (ci, c) in net.connections().iter().enumerate() {
            if is_output_conn(net, ci) {
                for (t, i) in input.iter() {
                    for k in 0..n_out {
                        let (w, d) = (c.weights()[(k, i as usize)], c.delays()[(k, i as usize)]);
                        out.readout.values[k] += w * (-(t + d) / TAU).exp();
                    }
                }
            } else if matches!(net.population(c.post()).kind(), NeuronKind::Lif(_)) && !input.is_empty() {
                let off = net.offset(c.post());
                for j in 0..c.weights().nrows() {
                    if c.weights().row(j).sum() > 0.0 {
                        out.spikes.push(1.0, (off + j) as u32, 0.5);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Adjoint for Toy {
    type AdjointScratch = ();

    fn adjoint_scratch(&self, _net: &Network) -> Self::AdjointScratch {}

    fn backward_into(
        &self,
        net: &Network,
        input: SpikeTrain<'_>,
        _record: &ForwardRecord,
        d_readout: &[f64],
        _: &mut (),
        grads: &mut Gradients,
    ) -> snn_eventprop::Result<()> {
        for (ci, c) in net.connections().iter().enumerate() {
            if !is_output_conn(net, ci) {
                continue;
            }
            for (t, i) in input.iter() {
                let i = i as usize;
                for (k, &g) in d_readout.iter().enumerate() {
                    let (w, d) = (c.weights()[(k, i)], c.delays()[(k, i)]);
                    let e = (-(t + d) / TAU).exp();
                    grads.weights[ci][(k, i)] += g * e;
                    grads.delays[ci][(k, i)] += g * (-w / TAU) * e;
                    if self.nan_time == Some(t) {
                        grads.delays[ci][(k, i)] = f64::NAN;
                    }
                }
            }
        }
        Ok(())
    }
}

/// 3 inputs -> 2 LI outputs (connection 0), plus 3 inputs -> 4 LIF hidden (connection 1).
fn toy_net(seed: u64) -> Network {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = NetworkBuilder::new();
    let i = b.input("in", 3);
    let h = b.lif("hidden", 4, LifParams::default());
    let o = b.li("out", 2, LiParams::new(20.0, 5.0).unwrap());
    let w = DMatrix::from_fn(2, 3, |_, _| rng.random_range(-0.5..0.5));
    let d = DMatrix::from_fn(2, 3, |_, _| rng.random_range(0.0..5.0));
    b.connect(i, o, w, d);
    // Hidden neurons 0 and 2 get positive sums (spike), 1 and 3 negative (silent).
    let wh = DMatrix::from_row_slice(4, 3, &[0.3, 0.1, 0.0, -0.2, -0.1, 0.0, 0.5, 0.5, 0.5, -1.0, 0.2, 0.1]);
    b.connect(i, h, wh, DMatrix::zeros(4, 3));
    b.output(o).build().unwrap()
}

/// Samples: class 0 when input 0 fires earlier than input 1, else class 1; input 2 is noise.
fn toy_data(n: usize, seed: u64) -> Labelled {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = SpikeTrains::new(3);
    let mut y = Vec::new();
    for _ in 0..n {
        let (a, b, c): (f64, f64, f64) =
            (rng.random_range(0.0..20.0), rng.random_range(0.0..20.0), rng.random_range(0.0..20.0));
        x.push_unsorted(&[a, b, c], &[0, 1, 2]).unwrap();
        y.push(usize::from(a >= b));
    }
    Labelled::new(x, y).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("train_loop");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bits(net: &Network) -> Vec<u64> {
    net.connections().iter().flat_map(|c| c.weights().iter().chain(c.delays().iter()).map(|x| x.to_bits())).collect()
}

fn config() -> TrainConfig {
    TrainConfig::builder()
        .epochs(4)
        .batch_size(10)
        .chunk_size(3)
        .weight_lr(0.05)
        .delay_lr(0.5)
        .max_delay(6.0)
        .seed(11)
        .weight_schedule(LrSchedule::paper_warmup())
        .delay_schedule(LrSchedule::epoch_decay(0.9))
        .build()
        .unwrap()
}

#[test]
fn toy_gradient_matches_finite_differences() {
    // The toy engine must be right for the mechanics tests to mean anything.
    let (toy, net, data) = (Toy::new(), toy_net(1), toy_data(5, 2));
    let loss = Loss::MaxVoltageCrossEntropy;
    let g = loss_and_gradients(&toy, &net, data.spikes(), data.labels(), &loss).unwrap();
    let mean_loss =
        |n: &Network| loss_and_gradients(&toy, n, data.spikes(), data.labels(), &loss).unwrap().summary.loss;
    let h = 1e-6;
    for (r, c) in [(0, 0), (1, 2), (0, 1)] {
        for delays in [false, true] {
            let (mut p, mut m) = (net.clone(), net.clone());
            let (pp, mm) = if delays {
                (p.delays_mut(ConnectionId(0)), m.delays_mut(ConnectionId(0)))
            } else {
                (p.weights_mut(ConnectionId(0)), m.weights_mut(ConnectionId(0)))
            };
            pp[(r, c)] += h;
            mm[(r, c)] -= h;
            let fd = (mean_loss(&p) - mean_loss(&m)) / (2.0 * h);
            let an = if delays { g.gradients.delays[0][(r, c)] } else { g.gradients.weights[0][(r, c)] };
            assert!((fd - an).abs() < 1e-8, "delays={delays} ({r},{c}): fd {fd} vs {an}");
        }
    }
}

#[test]
fn batch_gradients_are_the_same_whatever_the_thread_count() {
    let (toy, net, data) = (Toy::new(), toy_net(3), toy_data(37, 4));
    let loss = Loss::MaxVoltageCrossEntropy;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| loss_and_gradients(&toy, &net, data.spikes(), data.labels(), &loss).unwrap())
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        let other = run(threads);
        assert_eq!(one.summary.loss.to_bits(), other.summary.loss.to_bits(), "{threads} threads");
        for (a, b) in one
            .gradients
            .weights
            .iter()
            .chain(&one.gradients.delays)
            .zip(other.gradients.weights.iter().chain(&other.gradients.delays))
        {
            assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{threads} threads");
        }
    }
    // The check has teeth: summing the same per-sample gradients in another order changes bits.
    let per_sample: Vec<Gradients> = (0..data.len())
        .map(|s| {
            let mut x = SpikeTrains::new(3);
            let t = data.spikes().sample(s);
            x.push_sample(t.times, t.neurons).unwrap();
            loss_and_gradients(&toy, &net, &x, &data.labels()[s..=s], &loss).unwrap().gradients
        })
        .collect();
    let sum = |order: &mut dyn Iterator<Item = &Gradients>| {
        let mut g = Gradients::zeros(&net);
        order.for_each(|x| g.add_assign(x));
        g.scale_mut(1.0 / data.len() as f64);
        g
    };
    let (fwd, rev) = (sum(&mut per_sample.iter()), sum(&mut per_sample.iter().rev()));
    let differs = fwd
        .weights
        .iter()
        .chain(&fwd.delays)
        .zip(rev.weights.iter().chain(&rev.delays))
        .any(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.to_bits() != y.to_bits()));
    assert!(differs, "summation order does not matter for this data: the determinism test would prove nothing");
    // ... and the chunked sum agrees with the plain one to rounding.
    for (a, b) in fwd.weights.iter().chain(&fwd.delays).zip(one.gradients.weights.iter().chain(&one.gradients.delays)) {
        assert!((a - b).amax() < 1e-14);
    }
}

#[test]
fn training_is_the_same_whatever_the_thread_count() {
    let (toy, train, val) = (Toy::new(), toy_data(43, 5), toy_data(20, 6));
    let data = TrainData { train: &train, validation: Some(&val), test: None };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut t = Trainer::new(&toy, Loss::MaxVoltageCrossEntropy, config(), toy_net(7)).unwrap();
            t.fit(&data).unwrap();
            (
                bits(t.network()),
                t.history()
                    .iter()
                    .map(|m| (m.train.loss.to_bits(), m.validation.as_ref().unwrap().loss.to_bits()))
                    .collect::<Vec<_>>(),
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(4));
}

#[test]
fn resumed_training_is_bitwise_equal_to_an_uninterrupted_run() {
    let (toy, train, val) = (Toy::new(), toy_data(43, 8), toy_data(15, 9));
    let data = TrainData { train: &train, validation: Some(&val), test: Some(&val) };
    let loss = Loss::MaxVoltageCrossEntropy;
    let path = tmp("resume.ckpt");
    let _ = std::fs::remove_file(&path);

    let mut straight = Trainer::new(&toy, loss, config(), toy_net(12)).unwrap();
    straight.fit(&data).unwrap();
    assert_eq!(straight.epochs_done(), 4);

    let half = TrainConfig { epochs: 2, checkpoint: Some(path.clone()), ..config() };
    let mut first = Trainer::new(&toy, loss, half, toy_net(12)).unwrap();
    first.fit(&data).unwrap();
    drop(first);
    let full = TrainConfig { checkpoint: Some(path.clone()), ..config() };
    let mut resumed = Trainer::resume(&toy, loss, full, &path).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    resumed.fit(&data).unwrap();

    assert_eq!(bits(straight.network()), bits(resumed.network()));
    assert_eq!(straight.optimiser(), resumed.optimiser());
    let strip = |t: &Trainer<'_, Toy>| {
        t.history().iter().map(|m| snn_eventprop::EpochMetrics { seconds: 0.0, ..m.clone() }).collect::<Vec<_>>()
    };
    assert_eq!(strip(&straight), strip(&resumed));
    // The network moved (otherwise equality is trivial) and delays respect the bound.
    assert_ne!(bits(straight.network()), bits(&toy_net(12)));
    assert!(straight.network().connections()[0].delays().iter().all(|&d| (0.0..=6.0).contains(&d)));
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_gives_typed_errors() {
    let (toy, net, data) = (Toy::new(), toy_net(1), toy_data(6, 2));
    let loss = Loss::MaxVoltageCrossEntropy;
    let lg = |x: &SpikeTrains, y: &[usize]| loss_and_gradients(&toy, &net, x, y, &loss);
    assert!(matches!(lg(&SpikeTrains::new(3), &[]), Err(EventPropError::EmptyBatch)));
    assert!(matches!(lg(data.spikes(), &[0, 1]), Err(EventPropError::LabelCountMismatch { samples: 6, labels: 2 })));
    let mut y = data.labels().to_vec();
    y[4] = 2;
    assert!(matches!(lg(data.spikes(), &y), Err(EventPropError::LabelOutOfRange { sample: 4, label: 2, classes: 2 })));
    assert!(matches!(lg(&SpikeTrains::new(5), &[]), Err(EventPropError::EmptyBatch)));
    let mut wrong = SpikeTrains::new(5);
    wrong.push_sample(&[1.0], &[4]).unwrap();
    assert!(matches!(lg(&wrong, &[0]), Err(EventPropError::Core(snn_core::CoreError::InputSizeMismatch { .. }))));
    assert!(matches!(
        loss_and_gradients(&toy, &net, data.spikes(), data.labels(), &Loss::ExpIntegralCrossEntropy),
        Err(EventPropError::ReadoutMismatch { .. })
    ));
    assert!(Labelled::new(data.spikes().clone(), vec![0]).is_err());

    // Nothing to train.
    let frozen = TrainConfig { trainable: TrainableParams::PerConnection(vec![Trainable::NONE; 2]), ..config() };
    assert!(matches!(Trainer::new(&toy, loss, frozen, net.clone()), Err(EventPropError::NothingToTrain)));
    let short = TrainConfig { trainable: TrainableParams::PerConnection(vec![Trainable::BOTH]), ..config() };
    assert!(matches!(
        Trainer::new(&toy, loss, short, net.clone()),
        Err(EventPropError::TrainableCountMismatch { connections: 2, flags: 1 })
    ));
    // Starting delays beyond max_delay.
    let tight = TrainConfig { max_delay: 1.0, ..config() };
    assert!(matches!(Trainer::new(&toy, loss, tight, net.clone()), Err(EventPropError::Delays(_))));
    // Early stopping on validation without a validation set.
    let es = TrainConfig { early_stopping: Some(EarlyStopping::paper()), ..config() };
    let mut t = Trainer::new(&toy, loss, es, net.clone()).unwrap();
    let no_val = TrainData { train: &data, validation: None, test: None };
    assert!(matches!(t.fit(&no_val), Err(EventPropError::MissingData { .. })));
    // Invalid settings.
    for bad in [
        TrainConfig { epochs: 0, ..config() },
        TrainConfig { max_delay: f64::NAN, ..config() },
        TrainConfig { silent_boost: Some(-1.0), ..config() },
        TrainConfig { delay_adam: AdamParams::with_lr(-1.0), ..config() },
        TrainConfig { early_stopping: Some(EarlyStopping { patience: 0, monitor: Monitor::TrainLoss }), ..config() },
    ] {
        assert!(Trainer::new(&toy, loss, bad, net.clone()).is_err());
    }
}

#[test]
fn nan_gradient_names_parameter_and_sample_and_keeps_the_last_checkpoint() {
    let loss = Loss::MaxVoltageCrossEntropy;
    let data = toy_data(12, 3);
    let net = toy_net(2);
    // Sample 7 carries a spike at a magic time that poisons its delay gradient.
    let mut x = SpikeTrains::new(3);
    for s in 0..data.len() {
        let t = data.spikes().sample(s);
        if s == 7 {
            x.push_unsorted(&[t.times[0], t.times[1], 33.0], &[t.neurons[0], t.neurons[1], 1]).unwrap();
        } else {
            x.push_sample(t.times, t.neurons).unwrap();
        }
    }
    let poisoned = Labelled::new(x, data.labels().to_vec()).unwrap();
    let toy = Toy { nan_time: Some(33.0), ..Toy::new() };
    match loss_and_gradients(&toy, &net, poisoned.spikes(), poisoned.labels(), &loss) {
        Err(EventPropError::NonFiniteGradient { what: "delay", connection: 0, col: 1, sample: 7, .. }) => {}
        other => panic!("{other:?}"),
    }

    // In training: the first epoch runs on clean data and writes a checkpoint, the second hits the NaN.
    let path = tmp("nan.ckpt");
    let _ = std::fs::remove_file(&path);
    let cfg = TrainConfig { checkpoint: Some(path.clone()), shuffle: false, ..config() };
    let clean = Toy::new();
    let mut t = Trainer::new(&clean, loss, cfg.clone(), net.clone()).unwrap();
    t.run_epoch(&TrainData { train: &poisoned, validation: None, test: None }, |_| {}).unwrap();
    let saved = std::fs::read(&path).unwrap();
    let mut t = Trainer::resume(&toy, loss, cfg.clone(), &path).unwrap();
    let err = t.fit(&TrainData { train: &poisoned, validation: None, test: None }).unwrap_err();
    assert!(matches!(err, EventPropError::NonFiniteGradient { what: "delay", sample: 7, .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), saved, "the checkpoint of the last good epoch is kept");
    // A frozen parameter's NaN gradient does not stop training.
    let weights_only = TrainConfig { trainable: TrainableParams::WeightsOnly, checkpoint: None, ..cfg };
    let mut t = Trainer::new(&toy, loss, weights_only, net).unwrap();
    t.run_epoch(&TrainData { train: &poisoned, validation: None, test: None }, |_| {}).unwrap();

    // Corrupt and mismatched checkpoints are typed errors.
    let bad = tmp("corrupt.ckpt");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    assert!(matches!(
        Trainer::resume(&toy, loss, config(), &bad),
        Err(EventPropError::CheckpointFile(persist::PersistError::BadMagic { .. }))
    ));
    assert!(matches!(
        Trainer::resume(&toy, loss, config(), tmp("missing.ckpt")),
        Err(EventPropError::CheckpointFile(persist::PersistError::Io { kind: std::io::ErrorKind::NotFound, .. }))
    ));
    let other_lr = TrainConfig { delay_adam: AdamParams::with_lr(0.123), ..config() };
    match Trainer::resume(&toy, loss, other_lr, &path) {
        Err(EventPropError::ResumeMismatch { differences, .. }) => {
            // `path` was written without shuffling; `config()` shuffles
            let names: Vec<_> = differences.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["delay optimiser", "shuffle"]);
        }
        other => panic!("{:?}", other.map(|t| t.epochs_done())),
    }
}

#[test]
fn early_stopping_stops_after_patience_epochs_without_improvement() {
    // Zero weights: every readout is 0, the prediction is always class 0 and the delay
    // gradients vanish, so validation accuracy never improves after epoch 0.
    let toy = Toy::new();
    let mut net = toy_net(1);
    net.weights_mut(ConnectionId(0)).fill(0.0);
    let (train, val) = (toy_data(20, 1), toy_data(10, 2));
    let cfg = TrainConfig {
        epochs: 50,
        trainable: TrainableParams::PerConnection(vec![Trainable::DELAYS, Trainable::NONE]),
        early_stopping: Some(EarlyStopping { patience: 3, monitor: Monitor::ValidationAccuracy }),
        ..config()
    };
    let mut t = Trainer::new(&toy, Loss::MaxVoltageCrossEntropy, cfg, net.clone()).unwrap();
    let mut epochs_seen = 0;
    let mut batches_seen = 0;
    let s = t
        .fit_with_progress(&TrainData { train: &train, validation: Some(&val), test: None }, |p| match p {
            Progress::Epoch(_) => epochs_seen += 1,
            Progress::Batch { batches, .. } => {
                assert_eq!(batches, 2);
                batches_seen += 1
            }
        })
        .unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.best_epoch, Some(0));
    assert_eq!(s.epochs_done, 4, "epoch 0 is best, epochs 1..=3 do not improve");
    assert_eq!((epochs_seen, batches_seen), (4, 8));
    assert_eq!(bits(t.network()), bits(&net), "zero gradients, no silent boost on frozen weights: nothing moves");

    // A learnable task keeps improving training accuracy, so it does not stop within 6 epochs.
    let cfg = TrainConfig {
        epochs: 6,
        early_stopping: Some(EarlyStopping { patience: 6, monitor: Monitor::TrainLoss }),
        ..config()
    };
    let mut t = Trainer::new(&toy, Loss::MaxVoltageCrossEntropy, cfg, toy_net(1)).unwrap();
    let s = t.fit(&TrainData { train: &toy_data(60, 3), validation: None, test: None }).unwrap();
    assert!(!s.stopped_early);
    let h = t.history();
    assert!(h.last().unwrap().train.loss < h[0].train.loss, "training reduces the loss");
}

#[test]
fn silent_hidden_neurons_get_their_incoming_weights_boosted() {
    let toy = Toy::new();
    let net = toy_net(1);
    let train = toy_data(10, 1);
    let data = TrainData { train: &train, validation: None, test: None };
    let before = net.connections()[1].weights().clone();
    let mut t = Trainer::new(&toy, Loss::MaxVoltageCrossEntropy, config(), net.clone()).unwrap();
    let m = t.run_epoch(&data, |_| {}).unwrap().clone();
    assert_eq!(m.silent_neurons, 2);
    // Hidden spikes: neurons 0 and 2 once per sample.
    assert_eq!(m.train.spikes_per_sample, vec![3.0, 2.0, 0.0]);
    let after = t.network().connections()[1].weights().clone();
    // Hidden gradients are zero, so Adam leaves the weights exactly; only the boost moves them.
    for j in 0..4 {
        for i in 0..3 {
            let expect = if j == 1 || j == 3 { before[(j, i)] + 0.002 } else { before[(j, i)] };
            assert_eq!(after[(j, i)], expect, "({j},{i})");
        }
    }
    // The delay statistics are reported for the delay-trained connections only... (both here).
    assert!(m.delay_stats.iter().all(Option::is_some));
    // ... and a frozen incoming connection is not boosted.
    let cfg =
        TrainConfig { trainable: TrainableParams::PerConnection(vec![Trainable::BOTH, Trainable::DELAYS]), ..config() };
    let mut t = Trainer::new(&toy, Loss::MaxVoltageCrossEntropy, cfg, net).unwrap();
    let m = t.run_epoch(&data, |_| {}).unwrap();
    assert_eq!(m.silent_neurons, 2);
    assert_eq!(t.network().connections()[1].weights(), &before);
}

#[test]
fn a_regulariser_on_an_engine_without_jump_bias_is_a_typed_error() {
    // Toy implements only `backward_into`: the trait's default `backward_into_with` refuses a bias.
    let engine = Toy::new();
    let data = toy_data(8, 1);
    let reg = snn_eventprop::SpikeCountReg::paper();
    let with_reg = TrainConfig { spike_count_reg: Some(reg), epochs: 1, ..config() };
    let mut t = Trainer::new(&engine, Loss::MaxVoltageCrossEntropy, with_reg, toy_net(1)).unwrap();
    let e = t.fit(&TrainData { train: &data, validation: None, test: None });
    assert!(matches!(e, Err(EventPropError::Unsupported { .. })), "{e:?}");
    // Off: trains as before.
    let mut t =
        Trainer::new(&engine, Loss::MaxVoltageCrossEntropy, TrainConfig { epochs: 1, ..config() }, toy_net(1)).unwrap();
    assert!(t.fit(&TrainData { train: &data, validation: None, test: None }).is_ok());
    assert!(t.history()[0].hidden_spikes_per_neuron.unwrap() > 0.0);
}
