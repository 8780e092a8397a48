#!/usr/bin/env python3
"""Write a synthetic file of the SHD layout for the load benchmark (not used by tests).

    pip install h5py numpy
    python3 crates/datasets/scripts/make_shd_bench_file.py /tmp/shd_bench.h5 [samples] [mean_events]

Defaults: 8156 samples (the SHD training set) x ~8000 events = ~6.5e7 events,
float16 times in [0, 1.4) s sorted per sample, uint16 units in 0..699, uint16 labels 0..19,
/extra/speaker. Times at or after 1 s exist on purpose (the loader drops them).
"""
import sys

import h5py
import numpy as np

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/shd_bench.h5"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 8156
mean = int(sys.argv[3]) if len(sys.argv) > 3 else 8000
rng = np.random.default_rng(0)
with h5py.File(path, "w") as f:
    tt = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
    uu = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
    total = 0
    for i in range(n):
        k = int(rng.integers(mean // 2, mean * 3 // 2 + 1))
        tt[i] = np.sort(rng.random(k) * 1.4).astype(np.float16)
        uu[i] = rng.integers(0, 700, k).astype(np.uint16)
        total += k
    f.create_dataset("labels", data=rng.integers(0, 20, n).astype(np.uint16))
    f.create_dataset("extra/speaker", data=rng.integers(0, 12, n).astype(np.uint16))
print(f"wrote {path}: {n} samples, {total} events")
