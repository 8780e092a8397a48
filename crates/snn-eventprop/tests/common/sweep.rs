//! The clocked backward pass of a batch under a chosen gradient sweep, shared by
//! `clocked_sweeps.rs` and `clocked_sparse_sweep.rs`.

use snn_core::{ClockedEngine, ForwardRecord, Network, ReadoutKind, SpikeTrains};
use snn_eventprop::{Adjoint, ClockedAdjointScratch, GradientSweep, Gradients};

/// The gradients of `records` (forward record and `d_readout` of each sample of `batch`) summed
/// through one scratch set to `sweep`, with the jump bias `bias` if any.
pub fn gradients(
    engine: &ClockedEngine,
    net: &Network,
    batch: &SpikeTrains,
    records: &[(ForwardRecord, Vec<f64>)],
    bias: Option<&[f64]>,
    sweep: GradientSweep,
) -> Gradients {
    let mut scratch: ClockedAdjointScratch = engine.adjoint_scratch(net);
    scratch.set_sweep(sweep);
    let mut g = Gradients::zeros(net);
    // All samples into one sum through one scratch: the window state must not leak between them.
    for (s, (rec, d)) in records.iter().enumerate() {
        engine.backward_into_with(net, batch.sample(s), rec, d, bias, &mut scratch, &mut g).unwrap();
    }
    g
}

/// The sweep tests' readout for code `c` (0 exp-integral, 1 max-voltage, 2 voltage at three
/// times, else first spike), whether the output population is LIF (first spike only), and the
/// number of readout values of a 3-neuron output.
pub fn readout_for(c: usize) -> (ReadoutKind, bool, usize) {
    let kind = match c {
        0 => ReadoutKind::ExpIntegral,
        1 => ReadoutKind::MaxVoltage,
        2 => ReadoutKind::VoltageAt(vec![10.0, 33.3, 59.0]),
        _ => ReadoutKind::FirstSpike,
    };
    let lif_out = matches!(kind, ReadoutKind::FirstSpike);
    let n_readout = if let ReadoutKind::VoltageAt(ts) = &kind { 3 * ts.len() } else { 3 };
    (kind, lif_out, n_readout)
}
