"""The one-dimensional solver of Givens coordinate descent: minimise F(M G(I, J, Θ)) over Θ.

Choromanski et al., "KAMA-NNs" (AISTATS 2019), Section 5 (Algorithm 1's inner minimisation).
If F is a trigonometric polynomial of degree p along every geodesic (p = 1 for F linear in M,
p = 2 for F quadratic in M), f(Θ) = a_0 + Σ_k a_k cos kΘ + b_k sin kΘ is fitted exactly from
2p + 1 equispaced evaluations (a DFT) and minimised exactly: its critical points are the
unit-circle roots of z^p f'(Θ), a polynomial of degree 2p in z = e^{iΘ}. Otherwise a coarse grid
on [0, 2π) brackets the minimum and a bounded Brent search refines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import minimize_scalar

from es_compact.errors import ConfigError
from es_compact.so_d.scorers import Scorer, _check_finite

# ----------------------------------------------------------------------------------------------
# Trigonometric polynomials  f(Θ) = a_0 + Σ_{k=1..p} a_k cos kΘ + b_k sin kΘ, batched over rows


def trig_nodes(p: int) -> np.ndarray:
    """The 2p + 1 equispaced angles 2πk / (2p + 1) that determine a degree-p polynomial."""
    return 2.0 * np.pi * np.arange(2 * p + 1) / (2 * p + 1)


def trig_fit(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of shape (..., p + 1) (b[..., 0] = 0) from values (..., 2p + 1) at trig_nodes(p).

    Exact (up to rounding) when the function is a trigonometric polynomial of degree <= p."""
    n = values.shape[-1]
    if n % 2 != 1:
        raise ConfigError(f"a trigonometric fit needs an odd number of samples, got {n}")
    c = np.fft.rfft(values, axis=-1) / n
    a = 2.0 * c.real
    b = -2.0 * c.imag
    a[..., 0] = c[..., 0].real
    b[..., 0] = 0.0
    return a, b


def trig_eval(a: np.ndarray, b: np.ndarray, theta: np.ndarray, deriv: int = 0) -> np.ndarray:
    """f^(deriv)(θ) for rows (a, b) of shape (n, p + 1) and angles θ of shape (n, m)."""
    k = np.arange(a.shape[-1], dtype=np.float64)
    kt = theta[..., None] * k
    cos, sin = np.cos(kt), np.sin(kt)
    ak, bk = a[:, None, :], b[:, None, :]
    if deriv == 0:
        return np.sum(ak * cos + bk * sin, axis=-1)
    if deriv == 1:
        return np.sum(k * (bk * cos - ak * sin), axis=-1)
    if deriv == 2:
        return np.sum(-(k**2) * (ak * cos + bk * sin), axis=-1)
    raise ValueError(f"deriv must be 0, 1 or 2, got {deriv}")


def _wrap(theta: np.ndarray) -> np.ndarray:
    """Angles into (-π, π]."""
    return np.pi - np.mod(np.pi - theta, 2.0 * np.pi)


def trig_argmin(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global minimiser in (-π, π] and minimum of each row's trigonometric polynomial.

    Rows with a single non-constant harmonic k (every row when p = 1; Brockett costs, which have
    period π) are solved in closed form, kΘ = atan2(-b_k, -a_k), taking the solution nearest 0.
    Other rows compare Θ = 0, every critical point (the unit-circle roots of z^p f'(Θ), a
    polynomial of degree 2p in z = e^{iΘ}, by Durand-Kerner iteration) and a 4p-point grid (a
    safety net), then polish the best by Newton steps kept only if they lower f. Harmonics at
    the rounding level of the values are treated as zero. Numba kernel; NumPy twin
    :func:`trig_argmin_reference`."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    t = np.zeros(a.shape[0])
    v = np.zeros(a.shape[0])
    _trig_argmin_kernel(a, b, t, v)
    return t, v


@njit(cache=True)
def _trig_value(a, b, r, t, deriv):
    s = a[r, 0] if deriv == 0 else 0.0
    for k in range(1, a.shape[1]):
        c, n = np.cos(k * t), np.sin(k * t)
        if deriv == 0:
            s += a[r, k] * c + b[r, k] * n
        elif deriv == 1:
            s += k * (b[r, k] * c - a[r, k] * n)
        else:
            s -= k * k * (a[r, k] * c + b[r, k] * n)
    return s


@njit(cache=True)
def _trig_argmin_kernel(a, b, t_out, v_out):
    n, p1 = a.shape
    p = p1 - 1
    eps = np.finfo(np.float64).eps
    for r in range(n):
        v_out[r] = _trig_value(a, b, r, 0.0, 0)
        t_out[r] = 0.0
        if p == 0:
            continue
        amp_sum = 0.0
        k_top, q, present = 1, 0, 0
        amp_top = -1.0
        for k in range(1, p + 1):
            amp_sum += np.hypot(a[r, k], b[r, k])
        noise = 64.0 * eps * (abs(a[r, 0]) + amp_sum)
        for k in range(1, p + 1):
            amp = np.hypot(a[r, k], b[r, k])
            if amp > amp_top:
                amp_top, k_top = amp, k
            if amp > noise:
                q = k
                present += 1
        if present <= 1:
            t = np.arctan2(-b[r, k_top], -a[r, k_top]) / k_top  # in [-π/k, π/k]: nearest 0
            if t <= -np.pi / k_top:  # atan2(-0.0, -x) = -π; keep the interval half-open
                t += 2.0 * np.pi / k_top
            v = _trig_value(a, b, r, t, 0)
            if v < v_out[r]:
                t_out[r], v_out[r] = t, v
            continue
        # candidates: grid, then the critical points
        best_t, best_v = 0.0, v_out[r]
        for i in range(4 * p):
            t = -np.pi + 2.0 * np.pi * (i + 1) / (4 * p)
            v = _trig_value(a, b, r, t, 0)
            if v < best_v:
                best_t, best_v = t, v
        z = _dk_roots(a, b, r, q)
        for i in range(z.shape[0]):
            t = np.angle(z[i])
            v = _trig_value(a, b, r, t, 0)
            if v < best_v:
                best_t, best_v = t, v
        for _ in range(3):
            d2 = _trig_value(a, b, r, best_t, 2)
            if d2 <= 0:
                break
            t = best_t - _trig_value(a, b, r, best_t, 1) / d2
            v = _trig_value(a, b, r, t, 0)
            if not v < best_v:
                break
            best_t, best_v = t, v
        t_out[r] = np.pi - np.mod(np.pi - best_t, 2.0 * np.pi)
        v_out[r] = best_v


@njit(cache=True)
def _dk_roots(a, b, r, q):
    """Roots of z^q f'(Θ) = Σ_{k=-q..q} i k c_k z^(k+q), c_k = (a_k - i b_k)/2,
    c_{-k} = conj(c_k), by Durand-Kerner iteration from points on the unit circle."""
    m = 2 * q
    coef = np.zeros(m + 1, dtype=np.complex128)
    for k in range(1, q + 1):
        c = 0.5 * (a[r, k] - 1j * b[r, k])
        coef[q + k] = 1j * k * c
        coef[q - k] = -1j * k * np.conj(c)
    lead = coef[m]
    for j in range(m + 1):
        coef[j] = coef[j] / lead
    z = np.empty(m, dtype=np.complex128)
    for i in range(m):
        z[i] = np.exp(1j * (2.0 * np.pi * i / m + 0.4))
    prev = np.inf
    for _ in range(200):
        worst = 0.0
        for i in range(m):
            num = coef[m]
            for j in range(m - 1, -1, -1):
                num = num * z[i] + coef[j]
            den = 1.0 + 0.0j
            for j in range(m):
                if j != i:
                    den *= z[i] - z[j]
            if den == 0:
                den = 1e-300 + 0.0j
            delta = num / den
            z[i] -= delta
            worst = max(worst, abs(delta))
        # converged: corrections at the rounding level, or no longer shrinking once small
        if worst < 1e-14 or (worst < 1e-8 and worst >= 0.5 * prev):
            break
        prev = worst
    return z


def trig_argmin_reference(a: np.ndarray, b: np.ndarray,
                          grid: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`trig_argmin` for tests: critical points from LAPACK eigenvalues of
    the companion matrices, plus Θ = 0 and a fine grid, best one polished by Newton steps."""
    n, p1 = a.shape
    p = p1 - 1
    cands = [np.zeros((n, 1)), np.broadcast_to(2 * np.pi * np.arange(grid) / grid, (n, grid))]
    if p > 0:
        k = np.arange(1, p + 1)
        c_pos = 0.5 * (a[:, 1:] - 1j * b[:, 1:])
        coef = np.zeros((n, 2 * p + 1), dtype=complex)  # coefficient of z^j
        coef[:, p + k] = 1j * k * c_pos
        coef[:, p - k] = -1j * k * np.conj(c_pos)
        lead = np.where(np.abs(coef[:, -1]) > 0, coef[:, -1], 1.0)
        comp = np.zeros((n, 2 * p, 2 * p), dtype=complex)
        comp[:, 0, :] = -coef[:, -2::-1] / lead[:, None]
        comp[:, np.arange(1, 2 * p), np.arange(2 * p - 1)] = 1.0
        cands.append(np.angle(np.linalg.eigvals(comp)))
    theta = _wrap(np.concatenate(cands, axis=1))
    vals = trig_eval(a, b, theta)
    best = np.argmin(vals, axis=1)
    rows = np.arange(n)
    t, v = theta[rows, best], vals[rows, best]
    for _ in range(3):
        d1 = trig_eval(a, b, t[:, None], 1)[:, 0]
        d2 = trig_eval(a, b, t[:, None], 2)[:, 0]
        ok = d2 > 0
        t_new = np.where(ok, t - d1 / np.where(ok, d2, 1.0), t)
        v_new = trig_eval(a, b, t_new[:, None])[:, 0]
        better = v_new < v
        t, v = np.where(better, t_new, t), np.where(better, v_new, v)
    return _wrap(t), v


# ----------------------------------------------------------------------------------------------
# Line search along many pairs at once


@dataclass(frozen=True)
class LineSearch:
    """For each pair: the minimising angle, the value there, and the slope D_IJ at Θ = 0."""

    theta: np.ndarray
    value: np.ndarray
    slope: np.ndarray
    evaluations: int


def line_search(scorer: Scorer, f0: float, I: np.ndarray, J: np.ndarray, *, grid: int = 16,
                fd_step: float = 1e-5, xatol: float = 1e-10) -> LineSearch:
    """Minimise F(M G(I_r, J_r, Θ)) over Θ for every pair r.

    Exact for a declared trigonometric degree p (2p + 1 evaluations per pair). Otherwise `grid`
    evaluations on [0, 2π), then a bounded Brent search on the two grid cells around the best
    point; slopes by central differences with step fd_step."""
    p = scorer.degree
    if p is not None:
        if hasattr(scorer, "coefficients"):
            a, b = scorer.coefficients(I, J)
            _check_finite(a)
            _check_finite(b)
            n_eval = len(I) * (2 * p + 1)  # the evaluations a fit would have needed
        else:
            vals = _check_finite(scorer.along(I, J, trig_nodes(p)))
            a, b = trig_fit(vals)
            n_eval = vals.size
        theta, value = trig_argmin(a, b)
        slope = np.sum(np.arange(p + 1) * b, axis=1)
        return LineSearch(theta, value, slope, n_eval)
    if grid < 3:
        raise ConfigError(f"the fallback grid needs >= 3 points, got {grid}")
    nodes = 2.0 * np.pi * np.arange(grid) / grid
    vals = _check_finite(scorer.along(I, J, nodes))
    side = _check_finite(scorer.along(I, J, np.array([fd_step, -fd_step])))
    slope = (side[:, 0] - side[:, 1]) / (2.0 * fd_step)
    evals = vals.size + side.size
    h = 2.0 * np.pi / grid
    theta = np.empty(len(I))
    value = np.empty(len(I))
    for r in range(len(I)):
        g = int(np.argmin(vals[r]))
        ir, jr = np.array([I[r]]), np.array([J[r]])
        count = [0]

        def f(t, ir=ir, jr=jr, count=count):
            count[0] += 1
            return float(_check_finite(scorer.along(ir, jr, np.array([t])))[0, 0])

        res = minimize_scalar(f, bounds=(nodes[g] - h, nodes[g] + h), method="bounded",
                              options={"xatol": xatol})
        evals += count[0]
        cand_t = np.array([0.0, nodes[g], float(res.x)])
        cand_v = np.array([f0, vals[r, g], float(res.fun)])
        k = int(np.argmin(cand_v))
        theta[r], value[r] = _wrap(cand_t[k]), cand_v[k]
    return LineSearch(theta, value, slope, evals)
