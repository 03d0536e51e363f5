"""Timing helpers for benchmarks on a noisy machine: best of several batches."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], min_batch_s: float = 0.02, repeats: int = 15) -> float:
    """Seconds per call of fn: the fastest of `repeats` batches, each long enough to time.

    The minimum is the least noisy estimate of a call's own cost when other processes share
    the cores (they only ever add time)."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_batch_s:
            break
        n *= 2
    best = dt / n
    for _ in range(repeats - 1):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best
