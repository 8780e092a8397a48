//! Shared workloads of the benchmarks (`benches/`) and profiling examples (`examples/`):
//! seeded SHD-shaped input, the paper's network shapes, and one training step.
#![warn(missing_docs)]

pub mod workload;
