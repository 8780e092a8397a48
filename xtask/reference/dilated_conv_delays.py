"""Reference side of `cargo xtask reproduce efficiency`.

A feedforward spiking network whose synaptic delays are learned as dilated 1-D convolutions
with learnable tap positions (the DCLS-delays method of Hammouamri, Khalfaoui-Hassani and
Masquelier, 2023: each synapse's kernel is one Gaussian bump over the time bins whose centre is
the delay), trained by surrogate gradients in PyTorch. This is the method the EventProp-with-delays
paper compares its memory and speed against.

The script reads the spike data that the Rust side wrote (`.npy` files, one CSR batch:
`times_s` f32 seconds, `units` u16, `offsets` u64 of length samples + 1, `labels` u32), bins each
mini-batch to `--bin-ms` (events at or after `--t-end-ms` are dropped, as on the Rust side), and
times training steps (forward + backward + Adam; the binning is not timed) of inputs-H-H-classes.
It prints one JSON object on stdout and, with `--out`, writes it there. `--self-test` checks the
delay direction and the sign of the delay gradient instead.

Only the standard library, numpy and torch are used. The network is written for this
comparison; like the original it normalises each hidden layer's input current with batch norm
(which keeps the layers spiking), and unlike it has no dropout (which costs little next to the
convolutions; leaving it out favours the reference, not EventProp).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


class SpikeFn(torch.autograd.Function):
    """Heaviside forward, arctan surrogate backward (the usual surrogate of DCLS-delays' LIF)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        alpha = 2.0
        return grad * (alpha / 2) / (1 + (torch.pi / 2 * alpha * x) ** 2)


class DelayConv(torch.nn.Module):
    """`n_in -> n_out` synapses, each a weight times a normalised Gaussian over `taps` time
    bins centred on a learnable delay (in bins); applied as a causal 1-D convolution.

    The Gaussian's width stays at its initial `taps / 2`: DCLS-delays narrows it during
    training, which changes what is learned but not the cost of a step, the figure measured."""

    def __init__(self, n_in, n_out, taps, init_max_bins, gen):
        super().__init__()
        self.taps = taps
        w = torch.randn(n_out, n_in, generator=gen) * (1.0 / n_in) ** 0.5
        d = torch.rand(n_out, n_in, generator=gen) * init_max_bins
        self.weight = torch.nn.Parameter(w)
        self.delay = torch.nn.Parameter(d)
        self.sigma = max(taps / 2.0, 0.5)
        self.register_buffer("grid", torch.arange(taps, dtype=torch.float32))

    def kernel(self):
        g = torch.exp(-0.5 * ((self.grid - self.delay[..., None]) / self.sigma) ** 2)
        g = g / (g.sum(-1, keepdim=True) + 1e-7)
        # conv1d correlates: tap k of the flipped kernel multiplies x[t - (taps - 1 - k)].
        return (self.weight[..., None] * g).flip(-1)

    def forward(self, x):
        return F.conv1d(F.pad(x, (self.taps - 1, 0)), self.kernel())

    def clamp_(self):
        with torch.no_grad():
            self.delay.clamp_(0.0, self.taps - 1)


def lif(current, beta):
    """Multi-step LIF (threshold 1, hard reset) over the last axis of `current` (B, N, T)."""
    v = torch.zeros_like(current[..., 0])
    out = []
    for t in range(current.shape[-1]):
        v = beta * v + (1 - beta) * current[..., t]
        s = SpikeFn.apply(v - 1.0)
        out.append(s)
        v = v * (1 - s.detach())
    return torch.stack(out, -1)


def leaky_readout(current, beta):
    """Non-spiking leaky integrator; returns the time-mean of its potential (B, C)."""
    v = torch.zeros_like(current[..., 0])
    total = torch.zeros_like(v)
    for t in range(current.shape[-1]):
        v = beta * v + (1 - beta) * current[..., t]
        total = total + v
    return total / current.shape[-1]


class Net(torch.nn.Module):
    def __init__(self, n_in, hidden, classes, taps, init_max_bins, beta, gen):
        super().__init__()
        self.l1 = DelayConv(n_in, hidden, taps, init_max_bins, gen)
        self.l2 = DelayConv(hidden, hidden, taps, init_max_bins, gen)
        self.bn1 = torch.nn.BatchNorm1d(hidden)
        self.bn2 = torch.nn.BatchNorm1d(hidden)
        self.out = torch.nn.Linear(hidden, classes)
        self.beta = beta

    def forward(self, x):
        s1 = lif(self.bn1(self.l1(x)), self.beta)
        s2 = lif(self.bn2(self.l2(s1)), self.beta)
        # Spikes per hidden neuron per sample, to show the network is not silent.
        self.hidden_spikes = [s1.detach().sum(-1).mean().item(), s2.detach().sum(-1).mean().item()]
        z = self.out(s2.transpose(1, 2)).transpose(1, 2)
        return leaky_readout(z, self.beta)


def load(data_dir):
    arr = {k: np.load(os.path.join(data_dir, k + ".npy")) for k in ("times_s", "units", "offsets", "labels")}
    off = arr["offsets"].astype(np.int64)
    n = len(arr["labels"])
    # Kept compact (f32, u16; 6 bytes per event) so that the data add little to the peak memory.
    times_ms = arr["times_s"].astype(np.float32) * np.float32(1000.0)
    if len(off) != n + 1 or off[0] != 0 or off[-1] != len(times_ms) or len(arr["units"]) != len(times_ms):
        raise ValueError(f"{data_dir}: inconsistent CSR arrays (offsets {len(off)}, labels {n})")
    if n == 0:
        raise ValueError(f"{data_dir}: no samples")
    return times_ms, arr["units"], off, arr["labels"].astype(np.int64)


def binned(times_ms, units, off, idx, n_in, bins, bin_ms):
    x = np.zeros((len(idx), n_in, bins), dtype=np.float32)
    for b, s in enumerate(idx):
        t = times_ms[off[s] : off[s + 1]]
        u = units[off[s] : off[s + 1]].astype(np.int64)
        k = (t / bin_ms).astype(np.int64)
        keep = k < bins
        np.add.at(x[b], (u[keep], k[keep]), 1.0)
    return torch.from_numpy(x)


def self_test():
    """Checks the delay semantics of `DelayConv` on the installed torch: an impulse at bin 3
    through a delay of 1 bin (of 5 taps, so a flipped kernel would put it at bin 6) arrives at
    bin 4, and a later read-out pulls the delay up."""
    gen = torch.Generator().manual_seed(0)
    conv = DelayConv(1, 1, 5, 4.0, gen)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.delay.fill_(1.0)
    x = torch.zeros(1, 1, 10)
    x[0, 0, 3] = 1.0
    conv.sigma = 0.05
    y = conv(x)[0, 0].detach()
    if int(y.argmax()) != 4 or abs(float(y[4]) - 1.0) > 1e-6:
        raise AssertionError(f"impulse at bin 3, delay 1: expected 1 at bin 4, got {y.tolist()}")
    conv.sigma = 1.0
    conv(x)[0, 0, 6].backward()
    if not float(conv.delay.grad) > 0:
        raise AssertionError(f"d y[6] / d delay should be > 0 at delay 1, got {float(conv.delay.grad)}")
    print("self-test passed", file=sys.stderr)


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--bin-ms", type=float, required=True)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--inputs", type=int, help="input channels (default: from the data)")
    p.add_argument("--classes", type=int, help="classes (default: from the data)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--t-end-ms", type=float, default=1000.0)
    p.add_argument("--max-delay-ms", type=float, default=250.0)
    p.add_argument("--init-delay-ms", type=float, default=150.0)
    p.add_argument("--tau-ms", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    a = p.parse_args()
    if a.bin_ms <= 0 or a.batch < 1 or a.steps < 1 or a.warmup < 0:
        p.error("--bin-ms must be > 0, --batch and --steps >= 1, --warmup >= 0")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    times_ms, units, off, labels = load(a.data)
    n_in = a.inputs or (int(units.max()) + 1 if len(units) else 1)
    classes = a.classes or int(labels.max()) + 1
    if len(units) and units.max() >= n_in or labels.max() >= classes:
        p.error(f"the data have units up to {units.max()} and labels up to {labels.max()}")
    bins = int(round(a.t_end_ms / a.bin_ms))
    taps = int(round(a.max_delay_ms / a.bin_ms)) + 1
    beta = float(np.exp(-a.bin_ms / a.tau_ms))
    net = Net(n_in, a.hidden, classes, taps, a.init_delay_ms / a.bin_ms, beta, gen)
    delays = [net.l1.delay, net.l2.delay]
    weights = [q for name, q in net.named_parameters() if not name.endswith("delay")]
    opt_w = torch.optim.Adam(weights, lr=1e-3)
    opt_d = torch.optim.Adam(delays, lr=0.1)

    rng = np.random.default_rng(a.seed)
    n = len(labels)
    step_seconds, losses = [], []
    for step in range(a.warmup + a.steps):
        idx = rng.choice(n, size=a.batch, replace=n < a.batch)
        x = binned(times_ms, units, off, idx, n_in, bins, a.bin_ms)
        y = torch.from_numpy(labels[idx])
        t0 = time.perf_counter()
        opt_w.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt_w.step()
        opt_d.step()
        net.l1.clamp_()
        net.l2.clamp_()
        dt = time.perf_counter() - t0
        if not np.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        if step >= a.warmup:
            step_seconds.append(dt)
        losses.append(loss.item())
        print(f"step {step + 1}/{a.warmup + a.steps}: {dt:.2f} s, loss {loss.item():.4f}", file=sys.stderr, flush=True)

    median = statistics.median(step_seconds)
    result = {
        "method": "dilated convolutions with learnable Gaussian tap positions (DCLS-delays), surrogate gradients",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "architecture": f"{n_in}-{a.hidden}-{a.hidden}-{classes}",
        "bin_ms": a.bin_ms,
        "time_bins": bins,
        "kernel_taps": taps,
        "batch_size": a.batch,
        "warmup_steps": a.warmup,
        "step_seconds": step_seconds,
        "median_step_seconds": median,
        "samples_per_second": a.batch / median,
        "losses": losses,
        "hidden_spikes_per_neuron_last_step": net.hidden_spikes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    text = json.dumps(result, indent=2)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
    print(text)


if __name__ == "__main__":
    main()
