//! Profiling driver for sparse pull delivery (issue 19): runs only the clocked forward pass of the
//! 700-256-256-20 feedforward network of `sparse_connectivity` (same seeds, same networks: every
//! projection pulled, the input and hidden ones through `SparsePull` when sparse) over `samples`
//! SHD-like samples, `iters` times, in one configuration, so that `perf` or `valgrind` see one
//! kernel at a time. It prints the synaptic arrivals added per pass (each presynaptic spike at
//! step `t` times each of its stored synapses with `t + D <= steps`, `D` its delay steps; later
//! arrivals are dropped by both paths), split into the input and hidden projections (the sparse
//! kernel's when sparse) and the dense readout, and the CPU time per arrival of the whole forward.
//!
//! `cargo run --release -p bench-suite --example sparse_pull_profile -- <dense|P> [samples] [iters] [bwd]
//! [shape=HxO]` (`P` a connection probability, as in `sparse_connectivity`; defaults 16 and 20; `r`
//! before the mode, `rdense` or `r0.1`, runs the recurrent 700-512r-20 network of
//! `sparse_connectivity`, the ring path with its input projection pulled, instead; `shape=HxO`
//! makes that network 700-Hr-O, drawn the same way, `workload::recurrent_net_sized`). With `bwd` it
//! then runs the clocked backward pass (`backward_planned`, the layered sweep; loss
//! `ExpIntegralCrossEntropy`, label `sample % 20`) on the records, `iters` times, and prints its
//! CPU time per sample too: `valgrind --tool=callgrind
//! --toggle-collect=snn_eventprop::clocked::backward_planned` counts its instructions. It prints an
//! FNV-1a hash of the records (spike times, neurons, `I - V`, readouts; after the last pass) and,
//! with `bwd`, of the gradients summed over the `iters` passes: a change meant to be bit for bit
//! leaves both unchanged for the same arguments. The build has
//! line tables (`debug = "line-tables-only"` in the release profile), so `valgrind --tool=cachegrind`
//! and `perf annotate` attribute the inlined kernel to its source lines.
//!
//! Findings (issue 19; shared 2-core AMD EPYC family 25 model 1 VM, 32 KiB L1d per core, nominal
//! 2.45 GHz). The VM exposes no hardware counters (`perf stat -e instructions,cycles,
//! L1-dcache-load-misses,branch-misses` all "not supported"; only software events), so
//! instructions are exact counts from `valgrind --tool=callgrind --dump-instr=yes
//! --toggle-collect=snn_core::clocked::fill_block` (16 samples x 1), cache misses are cachegrind's
//! simulation of that L1 (16 x 2), and time is from `perf record -e cpu-clock -F 4000` (16 x 12,
//! p = 0.1 16 x 60; three rounds alternating the configurations, load 0.6-1.0), samples at the
//! kernel's addresses times 0.25 ms over the arrivals added:
//!
//! | per arrival added | sparse p = 1 | sparse p = 0.1 | dense |
//! | --- | --- | --- | --- |
//! | instructions, kernel | 13.09 | 13.12 | 7.56 (pull_lanes, K = 4) |
//! | instructions, all of `fill_block` | 12.84 | 11.41 | 8.82 |
//! | CPU ns, kernel (3 rounds) | 2.47 / 2.24 / 1.96 | 2.38 / 1.99 / 2.16 | 0.90 / 0.92 / 1.26 |
//! | cycles at the nominal 2.45 GHz (estimate) | 4.8-6.1 | 4.9-5.8 | 2.2-3.1 |
//! | simulated L1d misses of the block read-modify-write | 0.50 | 0.57 | 0.07 (the timelines) |
//!
//! Where the sparse kernel's instructions go (one synapse visit: 13.5 spikes at p = 1, 13.7 at
//! p = 0.1, 4 % of them arriving after the last step): 7 per spike visited (load the step, index,
//! bounds compare and branch, loop counter compare and branch, jump back) plus 4 per arrival added
//! (load, add, store of the block, jump), and 19 per synapse visit (record and weight loads, the
//! source's two bucket bounds with their checks, an empty-run test): 11.3 + 1.4 per arrival. The
//! dense K = 4 loop spends 29 instructions per event on 4 arrivals (event load, 4 delay and 4
//! weight loads, 4 read-modify-writes). Time (perf annotate of `fill_block`, timer samples, which
//! land on the instruction after a stall): at p = 1, 52 % of the sparse kernel's samples sit on the
//! `addsd`/store after the block load (its latency: the 64 KiB step-major block of 8 targets does
//! not fit the 32 KiB L1d, and each synapse's spikes scatter over all 1001 steps, so half the
//! loads miss L1 and hit L2), 29 % on the per-spike loop control and bounds test, 15 % on the
//! per-synapse set-up. So: 1.7x the dense path's instructions per arrival, and a lower IPC
//! (L1 misses), not per-synapse overhead: per-synapse set-up is ~1.4 of 13.1 instructions.
//! At p = 0.1 the kernel is 79 % of `fill_block` and `fill_block` only ~26 % of the forward pass
//! (perf report: neuron updates in `forward` 40 %, sorting the spikes 16 %, `pull_events` 5 %).
//!
//! After removing the per-spike bounds test (arrivals after the last step land in rows past it,
//! one check per call): 8 instructions per spike visited, 26 per synapse visit, 10.36 (p = 1) /
//! 10.40 (p = 0.1) per arrival added (callgrind as above). Kernel CPU ns per arrival added,
//! timer samples at its addresses, medians of 5 rounds alternating the binaries of the two kernels
//! (18:35-18:38 UTC, load 2.1-2.7): p = 1 2.09 before / 1.30 after, p = 0.1 2.36 / 1.79; the dense
//! K = 4 loop 1.01 in the same sitting (5 rounds, load 2.6-2.7). The block's L1 misses remain.
//!
//! Costs outside the kernel (callgrind instructions of the whole pass, `valgrind --tool=callgrind
//! --toggle-collect='snn_core::clocked::ClockedEngine::run_planned'`, or
//! `--toggle-collect=snn_eventprop::clocked::backward_planned` with `bwd`, 16 samples x 1; exact
//! counts, independent of the load). Forward, p = 0.1 / 0.5 / 1 / dense, in millions:
//!
//! | forward | p = 0.1 | p = 0.5 | p = 1 | dense |
//! | --- | --- | --- | --- | --- |
//! | comparison sorts of the spikes (before) | 420.9 | 624.0 | 892.2 | 921.8 |
//! | stable counting sort by step + linear merge | 373.2 | 578.5 | 845.5 | 874.5 |
//! | no event list without dense pulled projections, columns from a table | 358.2 | 564.1 | 830.8 | 863.3 |
//! | `step_of` without the libm floor | 354.2 | 560.1 | 826.8 | 859.3 |
//!
//! At p = 0.1 the two comparison sorts were 62.9 M (15 %) of the pass, the counting sort and merge
//! are ~15.5 M; `pull_events` went from 25.0 M to 9.9 M. `memset` of the arrival blocks is 84 M
//! (88 M after: the counting sort's output buffer is zeroed before it is filled) of the p = 0.1
//! pass, but valgrind counts each byte of a `rep stosb` as an instruction, so that share
//! overstates its time. Backward (layered sweep), p = 0.1 / 1 / dense: 417.5 / 1253.8 / 1038.8 M
//! before, 412.0 / 1248.3 / 1038.4 M with the per-source event grouping fed by zipped iterators
//! (no bounds-checked indexing per spike), 401.9 / 1238.2 / 1030.5 M with `step_of` without the
//! floor. Its remaining grouping (`Buckets::sort`, by source, block and column) is 34.6 M (9 %) of the
//! p = 0.1 backward pass; the rest is the per-neuron adjoint dynamics and the sparse reads.

//!
//! Recurrent 700-512r-20 (`r` modes; the ring path, its input projection pulled), after the ring
//! pass of 6c01827: forward CPU per sample split by `perf record -e cpu-clock -F 4000` of
//! `rMODE 16 30` (v3 = 6c01827's binary, 00:08 UTC, load 6.5-8.2; the samples of the timed pass
//! only, by function and source line), with the arrivals per sample that this driver prints
//! (input 395,462 / 3,972,635, recurrent 521,553 / 4,721,194, readout 219,324 / 195,848 at
//! p = 0.1 / dense):
//!
//! | ms per sample | p = 0.1 | dense | p = 0 |
//! | --- | --- | --- | --- |
//! | whole forward pass | 3.29 | 11.04 | 0.77 |
//! | ring scatter (recurrent and readout) and the rest of `forward` | 1.40 | 6.26 | 0.12 |
//! | input pull (`fill_block`, spike grouping) | 0.52 | 3.18 | 0.02 |
//! | neuron pass (`ring_pass`, `RingSink::fire`) | 0.98 | 0.98 | 0.32 |
//! | copying the pulled blocks into the step loop's tiles | 0.24 | 0.39 | 0.19 |
//! | `memset` and the rest | 0.16 | 0.24 | 0.12 |
//!
//! Per arrival the ring costs 1.73 ns at p = 0.1 against 1.25 dense (net of p = 0's 0.12 ms), the
//! input pull 1.26 against 0.80 ns: a fan-out of 51 targets pays its set-up and its cold weight and
//! offset lines over a tenth of the events (prefetching the next spike's fan-out, or the next
//! step's ring slot, changed nothing measurable). The work that does not scale with synapses —
//! the neuron pass, which costs the same at p = 0.1 as dense (the same ~10^4 spikes, and the ring
//! traffic evicting its slot rows), the copy, `memset` — is ~1.5 ms, 46 % of the p = 0.1 pass
//! and 16 % of the dense one. Hence the time per synapse at p = 0.1 against dense: 2.60 in these
//! runs; 1.67 with that work removed; ~1.2 with also the dense path's cost per arrival (the rest:
//! 12 % more hidden spikes at p = 0.1 and the dense readout's events, 15.7 per stored synapse at
//! p = 0.1 against 14.1). Tried and not kept (no gain beyond the noise, `rMODE 16 10`, 2-3
//! rounds alternating, load 7-12): the pulled arrivals read in place from the target-major
//! blocks with 8 gathers per block (no copy), non-temporal stores for the copy; and recording
//! every block-step as a spike candidate instead of branching on a spike (`simulate_block`'s
//! scheme; `rMODE 16 30`, 3 rounds, load 4.8-6.9, p = 0.1 3.52 / 3.48 / 3.35 ms without against
//! 3.94 / 3.46 / 3.85 with: 144 bytes stored per block-step cost more than the mispredictions).
//!
//! Backward (`bwd`; a network with a sparse projection takes the per-event sweep, the dense one
//! the deferred sweep): callgrind `--toggle-collect=snn_eventprop::clocked::backward_planned`,
//! 16 samples x 1, p = 0.1 / dense / p = 0: 751.6 / 3379.8 / 124.5 M instructions, 1.94x the dense
//! instructions per synapse; CPU 4.25 and 4.19 / 24.0 and 26.0 / 0.75 and 0.44 ms per sample
//! (`rMODE 16 10 bwd`, load 5.4-5.5), 1.47x per synapse. `fan_out_column` (one history read and
//! two gradient read-modify-writes per synapse and event, ~26 instructions) is 81 % of it at
//! p = 0.1.
//!
//! Issue 19, backward of the recurrent network (00:20-00:50 UTC; binaries of 6d58991 "old" and of
//! the commit that skips the input spikes' unused jump sum "new", /work/exp/issue-19-bwd-*;
//! callgrind as above, `rMODE 16 1 bwd`): p = 0.1 / dense / p = 0 old 751.6 / 3379.8 / 124.5 M, new
//! 701.6 / 3343.2 / 118.9 M instructions, i.e. per stored input and hidden synapse net of p = 0
//! (61,924 and 620,544 of them) 633.0 against 327.9 instructions per sample old, 588.1 against
//! 324.7 new: 1.93x -> 1.81x dense. CPU (`r0.1 16 30 bwd`, 4 rounds alternating, load 6.1-6.9) old
//! 4.29 / 4.04 / 4.54 / 4.50, new 4.04 / 4.08 / 4.10 / 4.31 ms per sample. What dominates, per
//! synaptic event (19.04 M event-synapse reads in the 16 samples; callgrind line counts of the new
//! binary): the ring read with its wrap test and bounds check, 7 instructions (`base_off + o`, a
//! compare and subtract for the wrap, `o < rn`), the two gradient read-modify-writes `dL/dw -=
//! tau_s lambda_I`, `dL/dd -= w (lambda_I - lambda_V)`, 10.7, the jump sum of a hidden spike 3, the
//! zipped loop ~5.4: 23 per input event and 26 per hidden one, 30.6 all-in net of p = 0 (the dense
//! deferred sweep: 3343.2 M over 16 x 9.23 M events, 22.6 per event with its p = 0 work included).
//! The time is not in those instructions but in the memory they touch: every read is a random
//! 16-byte pair in the 1.29 MB history ring (151 slots x 532 neurons), every gradient entry a
//! read-modify-write in the gradient arrays (72,164 x 8 bytes = 577 KB for the weights, as much for
//! the delays), at each event rather than once per synapse.
//! Three ways to cut the instructions, all bit for bit the per-event gradients
//! (`tests/clocked_sparse_sweep.rs` pins them), measured and not kept:
//!
//! - a deferred sweep through the fan-outs (the dense sweep's window of adjoints, each synapse
//!   summing its source's window events latest first from its current gradient, in registers):
//!   820.1 M instructions (the jump sums still read the ring per event, so hidden spikes read twice;
//!   storing the 9.9 MB window is 88 M, grouping the events 22 M, against 19 M x ~13 saved) and
//!   CPU 11.0 / 12.4 against 4.75 / 4.75 ms per sample (`r0.1 16 5 bwd`, 2 rounds, load 6.6-6.8):
//!   a fan-out's 51 targets scatter its reads over the whole-run window, where the ring kept them
//!   within the last 151 steps. Blocking by target (the dense sweep's groups of 64 targets) needs
//!   a target-major view of each sparse projection, which the pushed recurrent one lacks;
//! - the ring stored twice in a row (no wrap test; each step stored in both copies): 665.3 M, CPU
//!   5.90 / 6.29 / 5.08 / 5.00 against 4.65 / 5.83 / 5.81 / 4.60 (`r0.1 16 30 bwd`, 4 rounds,
//!   load 7.1-7.6): no gain, with a 2.6 MB footprint;
//! - a sliding history of 4 x 151 steps, 5.1 MB (no wrap; the last 150 rows moved up every 453
//!   steps): 630.6 M (p = 0: 115.2 M), CPU 5.79 / 7.13 / 6.33 / 4.83 against the same old runs
//!   (the rounds above, a third binary in each): no gain.
//!
//! So the per-event sweep at p = 0.1 is bound by its memory traffic, not its instruction count:
//! what would cut it is fewer touches per event (gradient sums kept in registers across events, as
//! the deferred sweeps do) without giving up the ring's locality, i.e. a deferred sweep walking
//! target blocks (a per-block, source-sorted view of each sparse projection, built once per plan,
//! as the layered sweep's `SparsePull::block`), the jump sums read from an 8-byte
//! `lambda_V - lambda_I` ring as the dense deferred sweep does.
//!
//! That sweep, measured and not kept (issue 19, 02:30-03:00 UTC 2026-12-05; binaries under
//! /work/exp/issue-19-block-*, "base" = c646df2): every sparse projection got its per-target view
//! in the plan (a `SparsePull` also for the pushed recurrent one), the default deferred sweep stored
//! its whole-run window (9.9 MB: 1152 rows x 536 neurons x 16 bytes, blocks of 8 targets of
//! `len x 128` bytes = 147 KB) and then walked each projection block by block, each synapse
//! chaining `dL/dw -= tau_s lambda_I`, `dL/dd -= w (lambda_I - lambda_V)` over its source's events
//! latest first from its current gradient (the dense readout the same per lane): bit for bit the
//! per-event gradients (`tests/clocked_sparse_sweep.rs` passed, default == `PerEvent`). CPU,
//! `r0.1 16 10 bwd`, ms per sample, alternating with base:
//!
//! | variant | CPU (load) | base in the same rounds |
//! | --- | --- | --- |
//! | block walk | 10.38 / 9.19 (5.3-5.5) | 4.06 / 3.75 |
//! | + prefetching the next block's region while one is summed | 5.69 / 6.00 (3.5) | 3.81 / 3.69 |
//! | + prefetching the gradient and weight entries 8 synapses ahead and the window rows stored 8 steps later | 4.19 / 4.06 (3.1); 4.94 / 4.56 / 4.88 (4.0) | 3.81 / 3.81; 3.94 / 4.06 / 3.88 |
//! | the last, windows of 151 steps (2.6 MB) / 315 steps | 10.6 / 9.5, 6.8 / 7.8 (4.3-4.5) | 4.4 / 4.1 |
//! | the last at p = 0.5 (`r0.5 16 5 bwd`) | 13.38 / 14.00 / 13.75 (3.9-4.0) | 12.75 / 13.63 / 12.75 |
//!
//! Callgrind (`r0.1 16 1 bwd`): 883.6 M instructions against 701.6 M. Without the prefetches 54 %
//! of the perf samples (`r0.1 16 20 bwd`) sat on the reads of the window: each block's 147 KB
//! region comes from L3 or memory, at random addresses. With them (perf, same command), per sample
//! ~1.65 ms go to the chains (1.4 ns per read, ~15 instructions per event), ~1.2 ms
//! to the jump sums of the hidden spikes (the same reads as before, now 8 bytes), 0.56 ms to storing
//! the window; shorter windows visit every synapse again per window. The per-event sweep's reads
//! hit a 1.29 MB ring that stays hot in the 1 MiB L2 and L3 at ~3.3 ns per read all-in; the block
//! walk trades its two gradient read-modify-writes per read for a register chain at ~1.4 ns, but
//! pays 9.9 MB written and read back per sample: 10-25 % slower at p = 0.1, 3-8 % at p = 0.5.
//! Prefetching the next event's fan-out in the per-event sweep (its ring entries): 4.94 / 4.63 /
//! 4.94 ms in the same rounds as the last base figures, slower too.
//!
//! The forward's tile copy (`forward_ring`: the pulled input arrivals, target-major per block, into
//! the step-major tiles) as 8 x 8 AVX transposes (four 4 x 4 unpack-and-swap in registers), bit for
//! bit a copy: callgrind forward (`rMODE 16 1`) p = 0.1 547.0 -> 477.7 M (475.8 M with the tiles of
//! a block in one AVX call, the version timed below), p = 0.5 1231.5 -> 1162.1 M, dense 2094.2 ->
//! 2024.8 M (instructions per synapse against dense at p = 0.1 2.28 -> 2.06, p = 0.5 1.16 -> 1.13), but
//! the same CPU time: `r0.1 16 60`, 5 rounds alternating, load 4.3-4.9, 2.93 / 3.09 / 3.16 / 3.08 /
//! 3.20 before, 2.84 / 3.09 / 3.03 / 3.07 / 2.83 after; `rdense 16 15`, 4 rounds, load 4.0-4.2,
//! 11.42 / 11.33 / 11.42 / 11.08 before, 11.63 / 11.00 / 11.42 / 11.92 after; perf puts 6-8 % of
//! the samples on the copy before and 7-9 % after: it is bound by its stores into the 4.1 MB tile
//! buffer (126 tiles x 64 blocks x 512 bytes per sample), not by its instructions. Not kept; what
//! would cut that traffic is filling and running the step loop window by window (a tile buffer that
//! stays in L2), which needs per-synapse cursors in the sparse pull kernel. Reading the tiles with
//! a non-temporal prefetch (`_MM_HINT_NTA`, to keep the ring in L2): `r0.1 16 60`, 4 rounds, load
//! 3.4-3.8, 3.07 / 3.46 / 3.22 / 3.01 ms against 3.40 / 3.10 / 3.24 / 2.98, no change.
//!
//! Kept (881c8c4): the per-event sweep's synapse-independent work, the backward propagation of
//! every population but the output (`lambda_I <- b lambda_I + q lambda_V`, `lambda_V <- a
//! lambda_V`), stores its result as the next step's history pairs at once, 4 neurons at a time
//! with AVX (multiplies and adds apart), instead of a scalar loop and a second pass storing the
//! history at the next step (only the output's readout forcing comes in between): bit for bit.
//! Callgrind backward (`rMODE 16 1 bwd`), p = 0.1 / 0.5 / 0 / dense: 701.6 / 2228.0 / 118.9 /
//! 3343.2 M -> 651.7 / 2178.2 / 69.4 / 3343.3 M (dense takes the deferred sweep, unchanged): per
//! synapse against dense 1.83 -> 1.70 at p = 0.1, 1.31 -> 1.28 at p = 0.5. CPU per sample, 4 rounds
//! alternating with c646df2's binary: `r0 16 60 bwd` (load 4.4-4.5) 0.406 / 0.406 / 0.406 / 0.396
//! -> 0.313 / 0.323 / 0.313 / 0.313 ms; `r0.1 16 20 bwd` (load 4.5-4.8) 4.250 / 4.062 / 4.000 /
//! 4.094 -> 4.031 / 4.125 / 4.094 / 4.062 ms, and over 18 such rounds (6 in swapped order, load
//! 4.0-4.8) mean 4.13 -> 4.20 ms, paired differences -0.75 to +0.56 (mean +0.07 +- 0.07): no gain
//! measurable at p = 0.1, where the per-event reads are memory-bound and hide the propagation's
//! instructions; the gain is the p = 0 floor's.
//!
//! The LI readout's input out of the ring loop, measured and not kept (issue 19, 03:30-03:45 UTC
//! 2026-12-05, against e210868; binaries and patch under /work/exp/issue-19-readout): with pull
//! delivery, an LI output population fed only by integrating populations (the 700-512r-20's
//! readout, 219,324 of the ring's 740,877 arrivals per sample at p = 0.1) skipped the ring: its
//! scatters and its neuron pass left the step loop, the recorded spikes were added after the loop
//! in the ring's order into a step-major `(steps + slots) x 20` timeline (offsets `D n_out + j`
//! per synapse, built per pass), copied target-major and run block by block with the layered
//! path's `simulate_block` and readout lanes (snn-core and snn-eventprop tests passed). Callgrind
//! forward (`r0.1 16 1`, `--toggle-collect='snn_core::clocked::ClockedEngine::run_planned'`):
//! 546.95 M before, 546.25 M after (570.7 M with a first version indexing through `fan_out`'s
//! iterator). CPU, `r0.1 16 20` (6 rounds) and `r0.1 16 40` (6 rounds), alternating, every second
//! round in swapped order, load 7.4-8.6: mean 3.173 -> 3.236 ms per sample, paired differences
//! -0.125 to +0.437 (mean +0.062, standard error 0.052): no gain. A likely reason (not measured):
//! the readout's ring scatters are a 20-target dense fan-out into a 151 x 20 corner of the ring
//! (24 KB) that stays in cache, so they add little to the recurrent scatters' memory traffic.
//!
//! The ring path's pulled input arrivals filled and consumed window by window (issue 19, 05:15-06:10
//! UTC 2026-12-05, against 582f9e2 "base"; binaries, callgrind files and round logs under
//! /work/exp/issue-19-window). Callgrind forward as above (`rMODE 16 1`,
//! `--toggle-collect='snn_core::clocked::ClockedEngine::run_planned'`); CPU `rMODE 16 N`,
//! alternating with base, every second round in swapped order, ms per sample:
//!
//! - per-synapse cursors in the target-major kernel (each window of W steps re-walks every
//!   synapse of a block from its cursor into an L1-sized block, then copies the block into the
//!   window's tiles): p = 0.1 925.8 M (W = 64) and 630.9 M (W = 256) against 547.0 M; CPU W = 64
//!   8.55 / 7.95 against 3.73 / 3.72 (load 4.0-4.9), W = 256 4.48 / 4.52 / 4.55 against 3.20 /
//!   3.45 / 3.47 (load 3.4-3.6). A synapse has ~11 spikes over 1001 steps, so most window visits
//!   deliver 0-1 of them and end on a mispredicted branch. Not kept.
//! - pushed from the spikes instead (source by source, each spike through its fan-out sorted by
//!   delay, with a cursor per spike and per source; the same sums bit for bit, since a source has
//!   at most one synapse per target and a target's additions still come source by source) straight
//!   into the window's tiles: 526.1 M, CPU 3.22 / 3.89 / 3.64 against 3.56 / 3.78 / 3.73 (load
//!   4.1-4.2): 13.3 instructions per arrival, most in the tile address arithmetic;
//! - the same into a step-major window (`W x 512` rows, one 4 KB row read per step, an arrival's
//!   address one add from its `D n_post + j`): 9.3 instructions per arrival; p = 0.1 490.2 /
//!   474.5 / 466.9 / 463.3 M for W = 32 / 64 / 128 / 256 (of which ~65 M are the windows' clearing,
//!   which valgrind counts per byte of `rep stosb`); CPU `r0.1 16 40`, 6 rounds (load 3.5-3.9),
//!   means base 3.18, W = 64 2.89, W = 128 2.64, W = 256 2.68. W = 128 (512 KiB) kept. But at high
//!   density the pushes lose: they miss L1 (a spike's fan-out spreads over the window's rows)
//!   where the whole-run fill sums in an L1-resident timeline. Input arrivals per step and target
//!   are 0.77 / 3.9 / 5.4 / 6.6 / 7.8 at p = 0.1 / 0.5 / 0.7 / 0.85 / 1, and with windows at every
//!   density (6 rounds, load 4.7-6.0; 3 rounds for 0.7 and 0.85, load 4.4) the means were p = 0.1
//!   3.04 -> 2.60, 0.5 7.26 -> 6.24, 0.7 8.88 -> 8.15, 0.85 9.95 -> 10.57, 1 10.27 -> 12.15.
//!
//! Kept (snn-core `forward_ring_in`): windows of 128 steps when every pulled projection of the ring
//! is sparse and at most 5 synapse-events are pushed per step and target (`PUSH_MAX_PER_CELL`;
//! denser ones, and dense projections, keep the whole-run fill). Callgrind, base -> kept: p = 0.1
//! 547.0 -> 468.0 M, 0.5 1231.5 -> 1170.4 M, 1 2108.9 -> 2110.5 M, dense 2094.2 -> 2095.7 M, p = 0
//! 241.5 -> 156.6 M; instructions per synapse against dense 2.28 -> 1.95 at p = 0.1, 1.16 -> 1.10 at
//! 0.5. CPU, 6 rounds (05:57-05:59 UTC, load 4.0-5.1), means (paired difference, standard error):
//!
//! | ms per sample | p = 0.1 (`16 40`) | p = 0.5 (`16 15`) | p = 1 (`16 8`) | dense (`16 8`) | p = 0 (`16 80`) |
//! | --- | --- | --- | --- | --- | --- |
//! | base | 3.00 | 7.09 | 10.17 | 10.70 | 0.740 |
//! | windows | 2.63 | 6.45 | 10.83 | 10.69 | 0.395 |
//! | paired | -0.37 +- 0.02 | -0.64 +- 0.15 | +0.66 +- 0.05 | -0.01 +- 0.20 | -0.35 +- 0.03 |
//!
//! Time per synapse against dense in these rounds: p = 0.1 2.45 -> 2.15 (net of each binary's p =
//! 0 floor 1.98 -> 1.90), p = 0.5 1.30 -> 1.19, p = 1 0.95 -> 1.01. The gain is mostly the floor's:
//! p = 0 no longer fills and copies 4.1 MB of zero tiles. p = 1 takes the unchanged whole-run fill
//! (`fill_block` 713.6 M instructions in both binaries) and is still slower: so is a build that
//! never takes the windows and builds no push view (4 rounds: 11.09 / 11.02 / 11.09 / 10.55
//! against base 10.39 / 10.78 / 10.39 / 10.63), and perf (`r1 16 20`, load 6.7) puts 19.9 % of the
//! samples in `fill_block` before and 23.9 % after: likely code placement, not verified. The
//! final binary (9e56981, whose only further change is in the plan build), 4 rounds alternating
//! (06:29-06:30 UTC, load 5.4-5.6), means: p = 1 10.04 -> 10.18 ms (rounds 9.84-10.31 -> 9.84-10.63,
//! within their spread), p = 0.1 2.98 -> 2.57, dense 10.68 -> 10.53. In
//! `sparse_connectivity 32 2` (4 rounds alternating, 06:11-06:16 UTC, load 4.6-6.2) sparse p = 1
//! shows no loss (forward per synapse against dense 1.00-1.05 before, 0.99-1.05 after), and the
//! 700-512r-20 ratios per synapse against dense, forward / training, went from 2.46-2.58 /
//! 1.81-2.22 to 2.11-2.63 / 1.61-1.70 at p = 0.1 and from 1.38-1.47 / 1.18-1.30 to 1.14-1.17 /
//! 1.07-1.23 at p = 0.5 (README, issue 19, for the rounds). The plan holds the push view (each
//! source's synapses by delay, 8 bytes per synapse) of every sparse pulled projection of a
//! recurrent network: plan rebuild (`valgrind --tool=callgrind
//! --toggle-collect=snn_core::clocked::ClockedPlan::rebuild`, `rMODE 1 1`) p = 0.1 8.27 -> 11.89
//! M, p = 1 73.5 -> 94.4 M instructions (153.6 M with a comparison sort per source instead of the
//! counting sort by source and delay).
//!
//! The windows' clearing folded into the step loop (issue 19, 07:50-08:45 UTC 2026-12-05, against
//! 1269f0b "old"; binaries, callgrind files and round logs under /work/exp/issue-19-ringfold-*):
//! `ring_pass` zeroes each window row it absorbs instead of `fill_window` clearing the whole window
//! (`memset`, 65.5 M of the 468.0 M instructions of `r0.1 16 1`, 128 calls; valgrind counts its
//! `rep stosb` per byte), the windows in their own buffer (zero between runs) from a 64-byte line,
//! and the push-order weights cached by `ClockedPlan::refresh_weights`. Callgrind forward, old ->
//! kept: p = 0.1 468.0 -> 388.6 M (the weight cache alone 463.2 M, the clearing alone 393.5 M),
//! 0.5 1169.8 -> 1072.1 M, p = 0 156.6 -> 82.2 M, dense 2095.7 -> 2085.0 M. But `memset` was only
//! 1.9 % of the p = 0.1 pass's perf samples (`perf record -e cpu-clock`, `r0.1 16 40`), and the CPU
//! time moved little: means of 16 rounds alternating (load 2.2-2.8) p = 0.1 2.715 -> 2.691 ms, 0.5
//! 6.76 -> 6.56, p = 0 0.509 -> 0.421, dense 11.98 -> 11.36. Without the line alignment p = 0 was
//! slower in 12 of 12 rounds (+0.05 to +0.09 ms; perf: `ring_pass` 67 % + `memset` 9 % of the
//! samples before, 77 % + 1 % after): likely the clearing stores splitting cache lines (a buffer
//! this large comes from `mmap`, 16 bytes past a page boundary; not checked).
//!
//! `sparse_connectivity 32 2`, runs alternating with old (08:21-08:45 UTC, load 2.0-3.6),
//! 700-512r-20 time per synapse against dense, forward / training, p = 0.1: old 2.12 / 2.03, 2.07 /
//! 1.94, 2.81 / 1.45, 1.72 / 1.89, 2.02 / 1.97, 2.10 / 1.74 against ede4484 2.47 / 1.94, 2.25 /
//! 1.75, 2.23 / 1.45, 2.35 / 1.74, 2.02 / 1.75, 1.97 / 1.87; then old 2.25 / 2.02, 2.01 / 1.77
//! against 428982d 2.15 / 1.59, 2.06 / 1.57. p = 0.5: old 1.16 / 1.14, 1.09 / 1.21, 1.53 / 0.98,
//! 1.15 / 1.17, 1.16 / 1.14, 1.12 / 1.10 against 1.11 / 1.11, 1.22 / 1.21, 1.60 / 1.06, 0.98 /
//! 0.98, 1.43 / 1.75, 1.15 / 1.08; then 1.17 / 1.17, 1.10 / 2.03 against 1.32 / 1.28, 1.07 / 1.17.
//! Forward samples/s p = 0.1 367-402 against 366-411, p = 0 2095-2551 against 2433-2639, dense
//! 76.3-94.9 against 85.1-94.8.
//!
//! The density bound, with `shape=HxO` (700-Hr-O drawn as `workload::recurrent_net` draws its
//! own): binaries that never / always window (`PUSH_MAX_PER_CELL` 0 and 10^6, under
//! /work/exp/issue-19-ringfold-never and -always), `rMODE 16 N`, rounds alternating (08:28-08:35
//! UTC, load 1.9-2.9), forward ms per sample, means (rounds in which the windows were faster).
//! Input arrivals per step and target are the same at every width: 0.77 / 1.5 / 2.3 / 3.1 / 3.9 /
//! 5.4 / 6.6 / 7.8 at p = 0.1 / 0.2 / 0.3 / 0.4 / 0.5 / 0.7 / 0.85 / 1.
//!
//! | p | 700-256r-20 never / always | 700-512r-20 | 700-1024r-35 |
//! | --- | --- | --- | --- |
//! | 0.1 | 1.28 / 1.30 (4 of 6) | 3.08 / 2.73 (5 of 6) | 9.81 / 7.48 (6 of 6) |
//! | 0.2 | | | 15.66 / 10.47 (4 of 4) |
//! | 0.3 | | | 17.92 / 17.88 (4 of 6) |
//! | 0.4 | | | 21.67 / 24.27 (2 of 6) |
//! | 0.5 | 2.70 / 2.35 (6 of 6) | 7.67 / 6.19 (6 of 6) | 23.70 / 26.67 (1 of 6) |
//! | 0.7 | 3.31 / 2.88 (6 of 6) | 9.54 / 8.91 (5 of 6) | 31.56 / 35.99 (0 of 6) |
//! | 0.85 | 3.46 / 3.31 (5 of 6) | 10.43 / 10.85 (3 of 6) | 38.80 / 46.77 (0 of 6) |
//! | 1 | 4.11 / 4.35 (1 of 6) | | |
//!
//! So 5 per target holds at 512, is conservative at 256 and too high at 1024 (a 1 MiB window);
//! the bound now counts at most 512 targets per population (`windows_pay`): 700-1024r-35 at p =
//! 0.5 takes the whole-run fill (callgrind `r0.5 2 1 shape=1024x35`: never 443.80 M, always 397.82
//! M, 428982d 443.80 M) and at 0.2 the windows (196.89 M, always 196.90 M). Windows of 64 steps at
//! 1024 (4 rounds): 0.1 7.63, 0.2 11.84, 0.3 14.69, 0.5 23.36 ms against 7.47, 10.47, 17.34, 28.67
//! at 128 steps and 9.53, 15.66, 17.34, 24.14 never: better from 0.3, worse below; not kept. Nor
//! kept: the whole-run tiles from a 64-byte line too (12 rounds alternating with 428982d,
//! 08:47-08:48 UTC, load 1.6-2.2): `rdense 16 4` 10.91 -> 11.09 ms (3 of 12 rounds faster), `r1 16
//! 4` 10.63 -> 10.51, `r0.7 16 6` 9.12 -> 9.10; callgrind `rdense 4 1` 526.56 -> 526.54 M.

//!
//! The layered path at p = 0.1 (issue 19, 07:50-08:45 UTC 2026-12-05; binaries of 1269f0b "old"
//! and later under /work/exp/issue-19-ff*, with the forward patches that were not kept; README,
//! issue 19, "The layered path at p = 0.1", for the rounds). Forward, perf of `0.1 16 60` (old,
//! load 1.8): per sample the sparse pull kernel 0.39 ms (1.2 ns per arrival added), the readout's
//! dense `pull_lanes` 0.11 ms (0.7 ns), `simulate_block` 20 % of the samples, the per-spike
//! bookkeeping (`forward`'s spike output and merge, `SpikeSink::emit`, `pull_events`,
//! `Buckets::sort`) 27 %, `memset` 4-5 %. Measured and not kept (no CPU gain beyond the rounds'
//! spread): two hidden blocks side by side in the neuron loop (its latency chain is not what
//! binds: its share fell 19.7 -> 18.0 %, `fill_block`'s rose 40.5 -> 44.2 %), the kernel's spike
//! loop unrolled by two (273.5 -> 266.5 M), grouping only the spikes the sparse projections read,
//! the spike output by `extend`, lane-by-lane clearing of the block, 72-byte spike records (all
//! together 262.6 M). Backward (`bwd`, `--toggle-collect=snn_eventprop::clocked::backward_planned`):
//! 21 % of the old `0.1 16 60 bwd` run (forward and backward) sat in `Layered::block`'s scalar
//! adjoint step loop, which kept `lambda_V`, `lambda_I` in memory (each step's propagation waited on
//! a store and a reload) and read each spike's `S` and `I - V` at random inside that chain. Kept:
//! the spikes' `S` and `I - V` gathered per block beforehand, the hidden blocks' step loop with
//! AVX in registers (`hidden_block_avx`). Instructions, old -> gathered -> AVX: p = 0.1 401.9 ->
//! 347.1 -> 288.7 M, dense 1030.4 -> 975.8 -> 913.9 M, p = 0 172.2 -> 103.8 -> 67.1 M; CPU per
//! sample old -> AVX (`MODE 16 N bwd`, alternating, load 1.8-2.0) p = 0.1 1.964 -> 1.448 ms, dense
//! 4.250 -> 3.859, p = 0 0.613 -> 0.268; hashes unchanged for p = 0.1, 0.5, 1, dense and 0.
//!
//! The recurrent network's per-event backward sweep window by window, measured and not kept
//! (issue 19, 10:10-10:35 UTC 2026-12-05, against ad2a504 "base"; binaries, patches, callgrind
//! files and round logs under /work/exp/issue-19-wbwd). The history rows were cut into windows of
//! W steps (`[k W, (k + 1) W)`, the last one open above) and each synaptic event (a spike at step
//! `m` through a synapse of `D` steps, reading row `m + D`) was made once the sweep had stored its
//! row's whole window: at step `m` if the spike lies in that window, else right after the window's
//! first step was stored, for the spikes of the `slots - 1` steps before it, latest first, each
//! walking its fan-out sorted by delay down from a cursor. Each sparse projection had a view
//! (rebuilt only when the plan's offsets change; the dense readout stayed per event: its 20
//! targets' rows are 48 KB) holding per synapse its weight, ring offset and both gradients, gathered from the
//! gradient arrays before the pass and scattered back after it, so that a window's events of one
//! spike are contiguous; a hidden spike's jump-sum terms went to a circular buffer at their places
//! in the view and were summed at its step in fan-out order. Bit for bit: `tests/
//! clocked_sparse_sweep.rs` passed with it as the default for sparse networks (default ==
//! `PerEvent`), and the `bwd` record and gradient hashes equal base's for `r0.1`, `r0.5`,
//! `r0` and `r0.1 shape=256x20` (W = 32; `r0.1 16 10` also for W = 8 to 1000; `rdense`, without
//! sparse projections, does not take it). Callgrind
//! (`valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64
//! --toggle-collect=snn_eventprop::clocked::backward_planned`, `r0.1 16 1 bwd`), instructions /
//! simulated last-level read misses / write misses:
//!
//! | r0.1 16 1 bwd | instructions | LL read misses | LL write misses |
//! | --- | --- | --- | --- |
//! | base | 651.8 M | 16.78 M | 1.43 M |
//! | W = 32 | 927.5 M | 12.56 M | 4.79 M |
//! | W = 128 | 854.3 M | 15.94 M | 4.19 M |
//! | W = 1000 (one window start, step 1000: nearly every event at its spike's step) | 808.4 M | 19.70 M | 3.36 M |
//!
//! In base, 8.6 M of the read misses sit on the fan-out loop's column streams (weights, offsets,
//! gradients) and 8.0 M on lines callgrind leaves unattributed (the inlined ring read among
//! them). The windows cut the read misses, but each spike's fan-out is walked in up to 6 pieces
//! at different times (151 delay steps over windows of 32), `Windowed::reset` and `store`
//! (views checked, events set up, gradients gathered and scattered) take 29.9 M instructions
//! and 1.6 M misses, and the history stores miss more (`propagate_and_store_avx`: 2.05 M write
//! misses at W = 32, 1.36 M at W = 1000, 1.14 M in base). CPU
//! (`r0.1 16 10 bwd`, one run each, load 2.5-3.0): W = 8 / 16 / 32 / 64 / 128 / 1000 9.31 /
//! 6.69 / 6.25 / 5.13 / 4.63 / 4.50 ms per sample against base 3.63: slower at every W, and the
//! more so the shorter the window. W = 32 against base, 6 rounds alternating, every second round
//! in swapped order (10:31-10:33 UTC, load 1.0-2.3), ms per sample, means (paired difference,
//! standard error):
//!
//! | `bwd` | base | W = 32 | paired |
//! | --- | --- | --- | --- |
//! | `r0.1 16 20` | 3.828 | 5.443 | +1.615 +- 0.072 |
//! | `r0.5 16 4` | 12.11 | 20.05 | +7.94 +- 0.55 |
//! | `r0 16 60` | 0.316 | 0.382 | +0.066 +- 0.002 |
//!
//! The jump sums in delay order instead (no term buffer, one running sum per spike; other bits,
//! measured only): `r0.1 16 10 bwd`, 2 rounds (load 2.7-2.8), W = 32 5.38 / 5.31, W = 128 5.81 /
//! 4.88, W = 1000 4.56 / 4.94 against the term buffer's W = 32 5.75 / 5.69 and base 3.75 / 3.94:
//! the buffer costs ~0.4 ms per sample, the windows the rest. At p = 0.1 the per-event sweep's
//! column streams and ring reads both miss a simulated 1 MiB cache; trading ring misses for
//! fan-outs walked piecewise, with more instructions, does not pay.
//!
//! The layered backward's fixed costs (issue 19, 10:10-10:50 UTC 2026-12-05, against ad2a504
//! "old"; binaries, callgrind files and round logs under /work/exp/issue-19-lsort; CPU rounds of
//! `MODE 16 N bwd` alternating the binaries, every second round in swapped order; hashes of `MODE
//! 16 1 bwd` unchanged for p = 0.1, 0.5, 1, dense and 0 in every variant below). perf of `0.1 16
//! 60 bwd` (old): `Layered::sweep` 35.7 % of the samples (most on the sparse reads), `fill_block`
//! 18.1 %, `hidden_block_avx` 13.9 %, `simulate_block_avx` 8.7 %, the five `Buckets::sort`
//! instances 7.8 %. In `hidden_block_avx`, 44 % of its samples sat on its two `vdivpd` and the
//! adds after them: a step's spikes were set lane by lane (`S`, `I - V`, the masks) by scalar
//! stores into arrays that the division read back as quads a few instructions later, a failed
//! store-to-load forwarding on the `lambda_V` chain at every step with a spike (11.5 k of the 64 k
//! block-steps of a sample at p = 0.1). Kept: the spikes laid out per step before the step loop
//! (`SpikeGroup`: `S` and `I - V` per lane, 0 and 1 where none, the lanes as bits), read as quads,
//! the masks from a table and `I - V > MIN_I_MINUS_V` as a compare. Callgrind of `backward_planned`
//! (`MODE 16 1 bwd`): p = 0.1 279.1 -> 278.8 M, 0.5 644.4 -> 644.0 M, dense 897.7 -> 916.3 M, p = 0
//! 64.4 -> 61.3 M. CPU, backward ms per sample, means: p = 0.1 (`16 60`, 10 rounds, load 2.8-2.9)
//! 1.424 -> 1.335, paired -0.089 +- 0.024 (8 of 10 faster; an earlier build with the quad skip
//! and the `for_each` sort below, 12 rounds at load 3.0-3.2: 1.416 -> 1.340, -0.076 +- 0.015, 12
//! of 12); dense (`16 15`, 8
//! rounds, load 3.1) 3.776 -> 3.563, -0.213 +- 0.126; p = 0 (`16 200`, 8 rounds) 0.238 -> 0.234,
//! -0.004 +- 0.005. The forward (same code) moved by -0.008 +- 0.018 / +0.034 +- 0.019 ms in the
//! p = 0.1 rounds of two builds of it: code placement alone shifts a pass by up to ~4 % here.
//! Measured and not kept (CPU rounds of `0.1 16 60 bwd`):
//!
//! - `Buckets::sort` walking its items with `for_each` (a `Chain` of parts as one loop each):
//!   its instructions 31.0 -> 24.0 M in the backward, 22.9 -> 17.3 M in the forward (279.1 -> 272.1
//!   M and 274.0 -> 268.4 M in all), but no time: 8 rounds (load 2.6-2.9), backward 1.419 -> 1.426
//!   ms, paired +0.007 +- 0.022, forward +0.003 +- 0.014;
//! - in addition, the blocks' spikes with their `S` and `I - V` gathered in record order as they are
//!   placed (a keyed counting sort, the values computed once; `s_part` read in rank order instead of
//!   at random): 270.8 -> 273.1 M, 8 rounds (load 2.2-2.5) 1.320 -> 1.350 ms, +0.030 +- 0.025;
//! - the sparse reads two synapses side by side (of different sources, events in lock step, so each
//!   synapse's sums and each `S` slot keep their order): 277.8 -> 288.6 M, 8 rounds (load 1.5-1.9)
//!   1.339 -> 1.397 ms, +0.059 +- 0.029, and perf's samples of `Layered::sweep` 3668 -> 3774: the
//!   input reads' loop is not bound by its chain of additions;
//! - skipping the quads without a spike in `hidden_block_avx` (as measured before, README): 10
//!   rounds 1.364 with against 1.335 without, -0.028 +- 0.016 for leaving it out;
//! - the spikes set into quads in registers by blends on a lane compare (instead of the arrays):
//!   `hidden_block_avx` 58.7 -> 73.1 M instructions (more quads live than the 16 registers hold),
//!   not timed beyond a few noisy rounds.
//!
//! Also kept (ddb86ef): the blocks' timelines' tails (the steps past the last, which arrivals after
//! it read; 8 x `slots - 1` pairs per block) cleared only when the timeline geometry changes rather
//! than by every block (4.5 % of `Layered::sweep`'s perf samples sat on that loop): callgrind
//! p = 0.1 278.8 -> 272.2 M, dense 916.3 -> 905.6 M; CPU `0.1 16 60 bwd`, 24 rounds alternating with
//! the previous binary (load 1.8-3.0), backward 1.360 -> 1.331 ms, paired -0.029 +- 0.018, but the
//! unchanged forward moved -0.010 +- 0.009 in the same rounds: the instruction count is the firmer
//! figure. Dense (`16 15`, 6 rounds) -0.049 +- 0.051, p = 0 (`16 200`, 6 rounds) +0.004 +- 0.007 ms.
//! `sparse_connectivity 32 2`, 8 rounds alternating ad2a504 and ddb86ef (both kept changes;
//! 11:00-11:08 UTC, load 2.7-3.7), 700-256-256-20 training samples/s: p = 0.1 395.7 / 407.1 /
//! 413.8 / 413.9 / 419.7 / 410.3 / 355.7 / 401.7 -> 416.9 / 407.5 / 431.9 / 411.5 / 406.7 / 433.3 /
//! 399.6 / 431.8 (paired +15.1 +- 6.6), dense paired -1.3 +- 1.8 (140.8-154.4 -> 146.6-154.3), p = 0
//! -1.1 +- 14.2; time per synapse at p = 0.1 against dense, training, median 3.23 (3.06-4.35) ->
//! 3.085 (2.87-3.44), forward 3.075 (2.94-3.96) -> 3.02 (2.88-3.19).
//!
//! `sparse_connectivity 32 2`, 6 rounds alternating ad2a504 and abef71e (the kept change with the
//! quad skip; 10:33-10:38 UTC, load 1.6-2.7), 700-256-256-20 training samples/s: p = 0.1 413.0 /
//! 420.3 / 417.7 / 426.5 / 419.3 / 390.2 -> 426.0 / 423.8 / 411.1 / 435.0 / 419.3 / 425.6 (paired
//! +8.9 +- 5.9), dense 155.3 / 155.1 / 156.7 / 163.8 / 161.0 / 145.2 -> 162.9 / 159.8 / 157.3 / 163.8 /
//! 152.5 / 152.5; time per synapse at p = 0.1 against dense, training, 3.18 / 3.13 / 3.21 / 3.25 /
//! 3.27 / 3.24 -> 3.23 / 3.19 / 3.25 / 3.27 / 3.25 / 3.48: the step loop is the same work dense and
//! sparse, so the ratio does not move beyond its spread.
//!
//! Kept instead of the recurrent backward's windows above (issue 19, 10:36-10:55 UTC 2026-12-05,
//! against ad2a504 "base"; binaries and round
//! logs under /work/exp/issue-19-wbwd): the per-event sweep's fan-out kernel with AVX, 4 synapses
//! at a time (`fan_out_adjoint_avx`: the four ring indices in scalar registers, the four pairs
//! loaded and split into `lambda_V` and `lambda_I` quads, `dL/dw` and `dL/dd` updated with the same
//! multiplies and subtractions, no FMA, the four terms of `S` added one by one in fan-out order),
//! for fan-outs of at least 16 synapses whose offsets are all below the ring length (checked once
//! per fan-out; always so for a plan's offsets); shorter ones keep the inlined scalar loop. The
//! windowed sweep's CPU time had risen with its instruction count (W = 32: 1.42x the
//! instructions, 1.42x the CPU time), which pointed at instructions. Bit for bit: the `bwd` hashes
//! equal base's for `r0.1`, `r0.5`, `rdense`, `r0` and `r0.1 shape=256x20`, `tests/
//! clocked_sparse_sweep.rs` passes, and a unit test compares the kernel with the scalar one on
//! random fan-outs (a reordered sum fails it). Callgrind (`--toggle-collect=snn_eventprop::clocked
//! ::backward_planned`, `rMODE 16 1 bwd`): p = 0.1 651.8 -> 504.4 M, 0.5 2178.2 -> 1422.4 M, p = 0
//! 69.38 -> 69.83 M (74.71 M when empty fan-outs also called the kernel). CPU, 8 rounds
//! alternating, every second round in swapped order (10:52-10:54 UTC, load 2.5-3.1), ms per
//! sample, means (paired difference, standard error):
//!
//! | `bwd` | base | AVX kernel | paired | faster in |
//! | --- | --- | --- | --- | --- |
//! | `r0.1 16 20` | 4.188 | 3.148 | -1.039 +- 0.101 | 8 of 8 |
//! | `r0.5 16 4` | 13.03 | 10.23 | -2.79 +- 0.46 | 8 of 8 |
//! | `r0 16 100` | 0.319 | 0.326 | +0.007 +- 0.007 | 2 of 8 |
//! | `rdense 16 2` (the deferred sweep, unchanged) | 26.5 | 25.5 | -1.1 +- 1.5 | 3 of 8 |
//!
//! Not kept: the four indices computed in SSE lanes (unsigned compares by flipped sign bits, then
//! four extracts): `r0.1 16 20` 3.687 / 3.688 ms against 3.344 / 3.375 with scalar indices and
//! 3.781 / 3.875 for base (2 rounds, load 2.2-2.5; a likely reason, not measured: the loads wait
//! on the extracts). Prefetching the
//! next event's fan-out lines (weights, offsets, gradients; not its ring entries, tried before) in
//! the scalar sweep: 4.219 / 4.125 against base 3.687 / 3.750 (2 rounds, load 2.4-2.6).
//! Prefetching the next quad's four ring pairs in the AVX loop: 3.906 / 3.812 / 4.062 against
//! 3.062 / 3.062 / 3.125 without (`r0.1 16 20`, 3 rounds, 11:04 UTC, load 2.8-3.2).

use bench_suite::workload::{self, Rng, sparsify};
use snn_core::{ClockedState, ForwardRecord, Network, SpikeTrains};
use snn_eventprop::{Adjoint, Gradients, Loss, backward_planned};

/// Arrivals added per sample over all samples: `(input and hidden projections, readout)`, and
/// of the first those from the input.
fn arrivals(net: &Network, batch: &SpikeTrains, recs: &[ForwardRecord]) -> (f64, f64, f64) {
    let engine = workload::engine();
    let steps = (workload::T_END / workload::DT).round() as usize;
    let (mut hidden, mut readout, mut from_input) = (0usize, 0usize, 0usize);
    for (s, r) in recs.iter().enumerate() {
        let x = batch.sample(s);
        let input: Vec<(usize, usize)> = x
            .times
            .iter()
            .zip(x.neurons)
            .filter(|&(&t, _)| t < workload::T_END)
            .map(|(&t, &i)| (engine.step_of(t), i as usize))
            .collect();
        let rec: Vec<(usize, usize)> =
            r.spikes.times.iter().zip(&r.spikes.neurons).map(|(&t, &g)| (engine.step_of(t), g as usize)).collect();
        for c in net.connections() {
            let into_out = c.post() == net.output();
            let delays = c.delay_values();
            let spikes: Vec<(usize, usize)> = if c.pre() == net.input() {
                input.clone()
            } else {
                let off = net.offset(c.pre());
                let n = net.population(c.pre()).size();
                rec.iter().filter(|&&(_, g)| (off..off + n).contains(&g)).map(|&(t, g)| (t, g - off)).collect()
            };
            let mut k = 0;
            for &(t, i) in &spikes {
                for (_, v) in c.fan_out(i).iter() {
                    // The plan's rounding of delays to steps.
                    let d = (delays[v] / workload::DT + 0.5) as usize;
                    k += usize::from(t + d <= steps);
                }
            }
            if into_out {
                readout += k;
            } else {
                hidden += k;
            }
            if c.pre() == net.input() {
                from_input += k;
            }
        }
    }
    let n = recs.len().max(1) as f64;
    (hidden as f64 / n, readout as f64 / n, from_input as f64 / n)
}

/// FNV-1a over 64-bit words: the hashes this driver prints of the records and gradients, to check
/// that a change leaves them bit for bit the same.
fn fnv(words: impl Iterator<Item = u64>) -> u64 {
    words.fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ x).wrapping_mul(0x0100_0000_01b3))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "0.1".into());
    let samples: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let (mut bwd, mut shape) = (false, (512, 20));
    for a in args {
        if a == "bwd" {
            bwd = true;
        } else if let Some((h, o)) = a.strip_prefix("shape=").and_then(|s| s.split_once('x')) {
            shape = (h.parse().expect("shape=HIDDENxOUT"), o.parse().expect("shape=HIDDENxOUT"));
        } else {
            panic!("unknown argument {a:?} (bwd, shape=HIDDENxOUT)");
        }
    }
    // The rng sequence of `sparse_connectivity`: the batch, the recurrent net, then this one.
    let mut rng = Rng(19);
    let batch = workload::shd_like_batch(samples, &mut rng);
    let recurrent = workload::recurrent_net_sized(&mut rng, shape.0, shape.1, 150.0);
    let feedforward = workload::feedforward_net(&mut rng, 150.0);
    // `r` before the mode: the recurrent 700-512r-20 network (the ring path) instead.
    let (dense, which) = match mode.strip_prefix('r') {
        Some(m) => (recurrent, m),
        None => (feedforward, mode.as_str()),
    };
    let net = match which {
        "dense" => dense,
        p => sparsify(&dense, p.parse().expect("mode: [r]dense or [r] and a connection probability")),
    };
    let engine = workload::engine();
    let plan = engine.plan(&net).expect("plan");
    let mut state = ClockedState::default();
    let mut recs = vec![ForwardRecord::default(); batch.len()];
    let t0 = workload::cpu_seconds();
    for _ in 0..iters {
        for (s, r) in recs.iter_mut().enumerate() {
            engine.run_planned(&net, &plan, batch.sample(s), &mut state, r).expect("forward");
        }
    }
    let cpu = workload::cpu_seconds() - t0;
    let (hidden, readout, from_input) = arrivals(&net, &batch, &recs);
    let record_hash = fnv(recs.iter().flat_map(|r| {
        let s = &r.spikes;
        let spikes = s.times.iter().zip(&s.neurons).zip(&s.i_minus_v);
        let spikes = spikes.flat_map(|((t, &g), x)| [t.to_bits(), u64::from(g), x.to_bits()]);
        spikes.chain(r.readout.values.iter().map(|v| v.to_bits()))
    }));
    let passes = (iters * batch.len()) as f64;
    println!(
        "{mode}: {} synapses, {samples} samples x {iters}; arrivals per sample: input + hidden {hidden:.0} (input \
         {from_input:.0}), readout {readout:.0}; forward CPU {:.3} ms per sample, {:.2} ns per arrival (all projections)",
        net.num_synapses(),
        1e3 * cpu / passes,
        1e9 * cpu / passes / (hidden + readout),
    );
    println!("{mode}: record hash {record_hash:016x}");
    if bwd {
        let loss = Loss::ExpIntegralCrossEntropy;
        let d: Vec<Vec<f64>> = recs
            .iter()
            .enumerate()
            .map(|(s, r)| {
                loss.evaluate(&r.readout, s % 20.min(r.readout.values.len()), s, workload::T_END)
                    .expect("loss")
                    .d_readout
            })
            .collect();
        let mut scratch = engine.adjoint_scratch(&net);
        let mut grads = Gradients::zeros(&net);
        let t0 = workload::cpu_seconds();
        for _ in 0..iters {
            for (s, (r, d)) in recs.iter().zip(&d).enumerate() {
                backward_planned(&engine, &net, &plan, batch.sample(s), r, d, &mut scratch, &mut grads)
                    .expect("backward");
            }
        }
        let cpu = workload::cpu_seconds() - t0;
        println!("{mode}: backward CPU {:.3} ms per sample", 1e3 * cpu / passes);
        let g = grads.weights.iter().chain(&grads.delays).flat_map(|m| m.iter().map(|x| x.to_bits()));
        println!("{mode}: gradient hash {:016x} (summed over the {iters} passes)", fnv(g));
    }
}
