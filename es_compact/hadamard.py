"""The fast Walsh-Hadamard transform, shared by the Hadamard random features (`horn`) and the
Hadamard exploration directions of the strategies.

H is the unnormalised Walsh-Hadamard matrix (entries ±1, Sylvester order); H H = p I.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def fwht_rows(X):
    """X <- H X in place for X of shape (p, n), p a power of two, H the unnormalised
    Walsh-Hadamard matrix (entries ±1, Sylvester order): points as columns, butterflies on
    whole rows so the inner loop is contiguous."""
    p = X.shape[0]
    n = X.shape[1]
    h = 1
    while h < p:
        for i in range(0, p, 2 * h):
            for j in range(i, i + h):
                a = X[j]
                b = X[j + h]
                for r in range(n):
                    u = a[r]
                    v = b[r]
                    a[r] = u + v
                    b[r] = u - v
        h *= 2


def fwht_reference(X: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`fwht_rows` (returns H X, leaves X alone); used by tests."""
    Y = np.array(X, dtype=np.float64)
    p, n = Y.shape
    h = 1
    while h < p:
        Y = Y.reshape(p // (2 * h), 2, h, n)
        Y = np.stack([Y[:, 0] + Y[:, 1], Y[:, 0] - Y[:, 1]], axis=1).reshape(p, n)
        h *= 2
    return Y
