"""`es-compact bench features`: time to project points with each random-feature estimator.

For d in {256, 1024, 4096} and one block (m = d rows), the time of ``project(X)`` (W x for every
row x of X: the part of a feature map the estimators differ in) for a single point and for
batches, measured side by side in one process. `urn` is the dense Gaussian projection (a BLAS
matrix product with a stored W); `orn` costs exactly the same to apply and is timed as a check;
`horn` is three fast Walsh-Hadamard transforms; `kama` is ⌈5 d ln d⌉ Givens rotations. The time
to draw W is recorded too (a QR of a d x d block for `orn`).
"""

from __future__ import annotations

import time

import numpy as np

from es_compact.bench.timing import best_time
from es_compact.features import ESTIMATORS, RandomFeatures, default_rotations

DIMS = (256, 1024, 4096)
BATCHES = (1, 16, 256)


def run(dims=DIMS, batches=BATCHES, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for d in dims:
        maps = {}
        draw_ms = {}
        for e in ESTIMATORS:
            t = time.perf_counter()
            maps[e] = RandomFeatures.draw(e, d, d, rng)
            draw_ms[e] = 1e3 * (time.perf_counter() - t)
        for n in batches:
            X = rng.standard_normal((n, d))
            us = {e: 1e6 * best_time(lambda fm=fm, X=X: fm.project(X), repeats=7)
                  for e, fm in maps.items()}
            for e in ESTIMATORS:
                rows.append({"d": d, "m": d, "batch": n, "estimator": e,
                             "rotations": default_rotations(d) if e == "kama" else None,
                             "us_per_batch": round(us[e], 2),
                             "us_per_point": round(us[e] / n, 3),
                             "speedup_vs_urn": round(us["urn"] / us[e], 2),
                             "speedup_vs_orn": round(us["orn"] / us[e], 2),
                             "draw_ms": round(draw_ms[e], 2)})
    return rows
