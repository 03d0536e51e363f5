"""Plain NumPy twins of the numba kernels in es_compact.policies.kernels, used only by tests."""

from __future__ import annotations

import numpy as np


def dense_matvec(W_flat, nin, nout, x):
    return W_flat.reshape(nout, nin) @ x[:nin]


def toeplitz_matvec(vr, nin, nout, x):
    v = vr[::-1]
    T = np.array([[v[i - j + nin - 1] for j in range(nin)] for i in range(nout)])
    return T @ x[:nin]


def givens_apply(cs, planes, buf):
    buf = buf.copy()
    for t in range(len(planes) // 2):
        c, s = cs[2 * t], cs[2 * t + 1]
        a, b = int(planes[2 * t]), int(planes[2 * t + 1])
        buf[a], buf[b] = c * buf[a] - s * buf[b], s * buf[a] + c * buf[b]
    return buf


def circulant(c, d, n, nin, nout, x):
    C = np.array([[c[(i - j) % n] for j in range(n)] for i in range(n)])
    xp = np.zeros(n)
    xp[:nin] = x[:nin]
    return (d * (C @ xp))[:nout]
