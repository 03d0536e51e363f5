"""Numba kernels of every policy architecture, kept together (one compiled program for all).

A policy is a short table of layers (``LAYER_*`` columns below) over one float64 array ``prep``:
θ itself followed by per-θ derived values (cos/sin of KAMA angles, the FFT of DCNN circulant
columns), computed once per θ by :meth:`Policy.prepare`, so a forward pass does no
trigonometry and no parameter copying. Each layer kind is a small pure array function; the
interpreter :func:`policy_forward` chains them and applies activations and the action squash.
Each kernel has a plain NumPy twin in ``tests/reference.py``, used only by tests.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Layer kinds.
DENSE, TOEPLITZ, GIVENS, CIRCULANT, CIRCULANT_FFT = 0, 1, 2, 3, 4
# Activations.
IDENTITY, TANH, LEAKY_RELU = 0, 1, 2
# Action squash modes.
SQUASH_NONE, SQUASH_CLIP, SQUASH_TANH = 0, 1, 2

# Columns of the int64 layer table.
COL_KIND, COL_IN, COL_OUT, COL_W, COL_B, COL_ACT, COL_AUX, COL_N, COL_S = range(9)
N_COLS = 9
# Header of the packed int array: where everything else sits.
(H_LAYERS, H_SQUASH, H_SLOPES, H_MEAN, H_INV_STD, H_LOW, H_HIGH, H_WORK, H_WIDTH, H_TABLE,
 H_PLANES) = range(11)
N_HEADER = 11

# Reassociation and fused multiply-add let LLVM vectorise the dot products; no flag that
# assumes finite values (NaN checks elsewhere must keep working).
_FAST = {"reassoc", "contract"}


# Every kernel takes slices of the packed arrays: indices are then provably non-negative, so
# numba drops its negative-index wraparound and LLVM can vectorise (measured: 8x on 64 x 64).


@njit(cache=True, fastmath=_FAST)
def dense_matvec(W, nin, nout, x, y):
    """y = W x with W stored row-major (nout, nin), flat."""
    for i in range(nout):
        row = W[i * nin : (i + 1) * nin]
        acc = 0.0
        for j in range(nin):
            acc += row[j] * x[j]
        y[i] = acc


@njit(cache=True, fastmath=_FAST)
def toeplitz_matvec(vr, nin, nout, x, y):
    """y = T x, T[i, j] = v[i - j + nin - 1], given vr = v reversed (length nout + nin - 1):
    T[i, j] = vr[nout - 1 - i + j], so each row reads vr forwards."""
    for i in range(nout):
        row = vr[nout - 1 - i : nout - 1 - i + nin]
        acc = 0.0
        for j in range(nin):
            acc += row[j] * x[j]
        y[i] = acc


@njit(cache=True)
def givens_apply(cs, planes, buf):
    """Apply rotations G(I_t, J_t, Θ_t), t = 0, 1, ... in order, to buf in place.

    cs holds (cos Θ_t, sin Θ_t) pairs, planes holds (I_t, J_t) pairs, unsigned: signed indices
    cost numba a wraparound branch per access (measured 5x slower). Each rotation costs 4
    multiplications and 2 additions.
    """
    for t in range(planes.shape[0] // 2):
        c = cs[2 * t]
        s = cs[2 * t + 1]
        a = planes[2 * t]
        b = planes[2 * t + 1]
        xa = buf[a]
        xb = buf[b]
        buf[a] = c * xa - s * xb
        buf[b] = s * xa + c * xb


@njit(cache=True)
def givens_layer(cs, planes, scales, nin, nout, x, y, buf):
    """KAMA layer y = M x, M the Givens product P (max(nin, nout) square) truncated and scaled.

    nout <= nin: M = diag(s) P[:nout, :]; nout > nin: M = P[:, :nin] diag(s).
    """
    if nout <= nin:
        for j in range(nin):
            buf[j] = x[j]
        givens_apply(cs, planes, buf)
        for i in range(nout):
            y[i] = scales[i] * buf[i]
    else:
        for j in range(nin):
            buf[j] = scales[j] * x[j]
        for j in range(nin, nout):
            buf[j] = 0.0
        givens_apply(cs, planes, buf)
        for i in range(nout):
            y[i] = buf[i]


@njit(cache=True, fastmath=_FAST)
def circulant_direct(cr2, d, n, nin, nout, x, y):
    """y = D C x for x zero-padded to n, y truncated to nout; C[i, j] = c[(i - j) mod n].

    Reads cr2[k] = c[(n - k) mod n] (length 2n), so C[i, j] = cr2[n + j - i] and each row is one
    forward, vectorisable loop.
    """
    for i in range(nout):
        row = cr2[n - i : n - i + nin]
        acc = 0.0
        for j in range(nin):
            acc += row[j] * x[j]
        y[i] = d[i] * acc


@njit(cache=True)
def circulant_fft(fc, d, n, nin, nout, x, y):
    """Same product as circulant_direct through the FFT: C x = irfft(rfft(c) * rfft(x)),
    fc holding rfft(c) as (re, im) pairs."""
    xp = np.zeros(n)
    xp[:nin] = x[:nin]
    fx = np.fft.rfft(xp)
    for f in range(n // 2 + 1):
        fx[f] = fx[f] * complex(fc[2 * f], fc[2 * f + 1])
    cx = np.fft.irfft(fx, n)
    for i in range(nout):
        y[i] = d[i] * cx[i]


# tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|), with expm1 computed here rather than by libm:
# 2|x| = k ln2 + r (|r| <= ln2 / 2, Cody-Waite split of ln2), expm1(r) by its Taylor series to
# r^13 (the first dropped term, r^14 / 14!, is below 5e-18), then
# expm1(2|x|) = 2^k expm1(r) + (2^k - 1). Without branches or calls, a loop over it compiles to
# SIMD (4 lanes with AVX2), 3x faster than the scalar expm1 route (libm's own tanh is slower
# still), which was 40% of a default policy's forward pass.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k * _LN2_HI is exact for k < 2^20
_LN2_LO = 1.90821492927058770002e-10
(_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13) = (
    1.0 / math.factorial(n) for n in range(2, 14))


# error_model="numpy": no zero-division check (e + 2 >= 2 anyway), whose exception branch would
# stop LLVM vectorising the callers' loops.
@njit(cache=True, error_model="numpy")
def tanh(x):
    """tanh within 3 ulp of np.tanh (as is libm's expm1 route; measured on 6 x 10^6 values from
    1e-300 to 30, tests/test_policies.py), branch-free so loops over it vectorise. NaN stays
    NaN, +-inf gives +-1."""
    a = abs(x)
    a = 20.0 if a > 20.0 else a  # tanh(20) rounds to 1; a NaN passes through
    z = 2.0 * a
    kf = math.floor(z * _LOG2E + 0.5)
    kf = kf if kf >= 0.0 else 0.0  # a NaN gives 0 here, so the integer conversion is defined
    two_k = np.float64(np.int64(1) << np.int64(kf))
    r = (z - kf * _LN2_HI) - kf * _LN2_LO
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    e = two_k * (r + r * r * p) + (two_k - 1.0)
    return math.copysign(e / (e + 2.0), x)


@njit(cache=True, error_model="numpy")
def tanh_rows(y, n):
    """y[:n] = tanh(y[:n]) in place (SIMD)."""
    for i in range(n):
        y[i] = tanh(y[i])


@njit(cache=True)
def activate(y, n, act, slope):
    if act == TANH:
        tanh_rows(y, n)
    elif act == LEAKY_RELU:
        for i in range(n):
            if y[i] < 0.0:
                y[i] = slope * y[i]


@njit(cache=True)
def policy_forward(fp, ip, obs, out):
    """Run the whole policy on one observation; writes the action (or logits) into out.

    fp packs the prepared parameters, slopes, normaliser, action bounds and scratch space; ip
    packs the header, the layer table and the Givens planes (see Policy._pack). Four array
    arguments keep the call overhead from Python small.
    """
    width = ip[H_WIDTH]
    w0 = ip[H_WORK]
    x = fp[w0 : w0 + width]
    y = fp[w0 + width : w0 + 2 * width]
    buf = fp[w0 + 2 * width : w0 + 3 * width]
    nobs = obs.shape[0]
    mean = fp[ip[H_MEAN] : ip[H_MEAN] + nobs]
    inv = fp[ip[H_INV_STD] : ip[H_INV_STD] + nobs]
    for j in range(nobs):
        x[j] = (obs[j] - mean[j]) * inv[j]
    table = ip[H_TABLE]
    for li in range(ip[H_LAYERS]):
        r = ip[table + li * N_COLS : table + (li + 1) * N_COLS]
        kind = r[COL_KIND]
        nin = r[COL_IN]
        nout = r[COL_OUT]
        w = r[COL_W]
        if kind == DENSE:
            dense_matvec(fp[w : w + nin * nout], nin, nout, x, y)
        elif kind == TOEPLITZ:
            toeplitz_matvec(fp[w : w + nin + nout - 1], nin, nout, x, y)
        elif kind == GIVENS:
            k = r[COL_N]
            p = ip[H_PLANES] + r[COL_AUX]
            s = r[COL_S]
            planes = ip[p : p + 2 * k].view(np.uint64)
            givens_layer(fp[w : w + 2 * k], planes, fp[s : s + min(nin, nout)], nin, nout, x,
                         y, buf)
        elif kind == CIRCULANT:
            n = r[COL_N]
            circulant_direct(fp[w : w + 2 * n], fp[r[COL_S] : r[COL_S] + n], n, nin, nout, x, y)
        else:
            n = r[COL_N]
            circulant_fft(fp[w : w + 2 * (n // 2 + 1)], fp[r[COL_S] : r[COL_S] + n], n, nin,
                          nout, x, y)
        b = r[COL_B]
        if b >= 0:
            bias = fp[b : b + nout]
            for i in range(nout):
                y[i] += bias[i]
        activate(y, nout, r[COL_ACT], fp[ip[H_SLOPES] + li])
        x, y = y, x
    squash = ip[H_SQUASH]
    nact = out.shape[0]
    low = fp[ip[H_LOW] : ip[H_LOW] + nact]
    high = fp[ip[H_HIGH] : ip[H_HIGH] + nact]
    for i in range(nact):
        if squash == SQUASH_CLIP:
            out[i] = min(max(x[i], low[i]), high[i])
        elif squash == SQUASH_TANH:
            out[i] = low[i] + 0.5 * (tanh(x[i]) + 1.0) * (high[i] - low[i])
        else:
            out[i] = x[i]


@njit(cache=True)
def policy_forward_record(fp, ip, obs, out, buf, t):
    """buf[t] = obs, then policy_forward: one call per training step instead of a NumPy row
    assignment and a call (0.4 us a step less from Python)."""
    buf[t] = obs
    policy_forward(fp, ip, obs, out)


@njit(cache=True)
def policy_forward_batch(fp, ip, obs, out):
    """policy_forward on each row of obs (n, obs_dim) into out (n, act_dim)."""
    for r in range(obs.shape[0]):
        policy_forward(fp, ip, obs[r], out[r])
