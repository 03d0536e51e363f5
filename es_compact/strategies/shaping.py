"""Fitness shaping: plain functions of the returns (maximised everywhere)."""

from __future__ import annotations

import numpy as np


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of x (any shape) scaled to [-0.5, 0.5] (Salimans et al. 2017); ties broken by
    position so the result is deterministic."""
    flat = x.ravel()
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    if flat.size > 1:
        ranks = ranks / (flat.size - 1) - 0.5
    else:
        ranks[:] = 0.0
    return ranks.reshape(x.shape)


def top_directions(returns_n2: np.ndarray, b: int) -> np.ndarray:
    """Indices of the b directions with the largest max(r+, r-) (ARS V1-t / V2-t), best first;
    ties broken by index."""
    score = returns_n2.max(axis=1)
    order = np.argsort(-score, kind="stable")
    return order[: min(b, len(order))]
