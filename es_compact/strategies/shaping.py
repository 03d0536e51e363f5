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


def nes_utilities(x: np.ndarray) -> np.ndarray:
    """The NES fitness shaping of x (any shape, maximised; Wierstra et al. 2014, section 3.1;
    Schaul et al. 2011): over λ = x.size candidates sorted by descending fitness (ties broken
    by position), the one of rank i = 1..λ gets

        u_i = max(0, ln(λ/2 + 1) - ln i) / Σ_j max(0, ln(λ/2 + 1) - ln j) - 1/λ,

    so Σ u_i = 0, u is non-increasing in i and every rank i >= λ/2 + 1 gets -1/λ."""
    flat = x.ravel()
    lam = flat.size
    w = np.maximum(0.0, np.log(lam / 2 + 1) - np.log(np.arange(1, lam + 1)))
    u = np.empty(lam, dtype=np.float64)
    u[np.argsort(-flat, kind="stable")] = w / w.sum() - 1.0 / lam
    return u.reshape(x.shape)
