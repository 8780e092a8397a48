"""scikit-learn reference throughput for the `lasso_throughput` example (same data).

Dump the data, then time scikit-learn's coordinate-descent `Lasso`, one call per signal:

    DUMP_DIR=/tmp/lassodump ALGS=none cargo run --release -p sparse-bp --example lasso_throughput 10000 0.1
    python3 crates/sparse-bp/examples/sklearn_lasso.py /tmp/lassodump 10000 <lambda> <n_timed>

scikit-learn is not a dependency of the workspace; install it into a virtual environment
from the package registry: `python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install
scikit-learn numpy` (the figures in the crate docs used scikit-learn 1.9.1, numpy 2.4.6).

Objective match: sklearn minimises (1/(2 m)) ||x - D w||^2 + alpha ||w||_1, so alpha =
lambda / m. Its stopping rule is (unscaled) duality gap < tol * ||x||^2; ours is
gap / (||x||^2 / 2) <= 1e-8, hence tol = 5e-9. Both Gram modes are timed
(precompute=False / the 300 x 300 Gram passed in).
"""

import sys
import time

import numpy as np
from sklearn.linear_model import Lasso

dump, n, lam, n_time = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
m, big_m = 100, 300
D = np.fromfile(f"{dump}/D.f64").reshape(big_m, m).T.copy()
X = np.fromfile(f"{dump}/X.f64").reshape(n, m).T.copy()
for precompute in [False, True]:
    G = D.T @ D if precompute else False
    t = time.perf_counter()
    c = time.process_time()
    nnz = 0
    for j in range(n_time):
        model = Lasso(alpha=lam / m, fit_intercept=False, tol=5e-9, max_iter=100000, precompute=G)
        model.fit(D, X[:, j])
        nnz += np.count_nonzero(model.coef_)
    el = time.perf_counter() - t
    cpu = time.process_time() - c
    print(
        f"sklearn Lasso precompute={precompute}: {n_time / el:.1f} signals/s "
        f"({n_time / cpu:.1f} per CPU-second) over {n_time} signals, mean nnz {nnz / n_time:.1f}"
    )
