"""Givens coordinate descent on SO(d): Algorithm 1 of the KAMA-NN paper for blackbox functions.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 5. A cost F (lower is better, as in the paper) on d x d rotations is minimised by steps
along geodesics

    M  ->  M G(I, J, Θ),        G(I, J, Θ) = expm(-Θ A_IJ),  A_IJ = e_I e_Jᵀ - e_J e_Iᵀ,

with G from :mod:`es_compact.policies.givens` and I < J (the paper writes G(J, I, Θ), which is
G(I, J, -Θ): the same steps with the sign of Θ flipped). Only columns I and J of M change:

    col I <- cos Θ m_I + sin Θ m_J,      col J <- -sin Θ m_I + cos Θ m_J.

After T steps M = M0 G_1 G_2 ··· G_T, so the answer is directly a product of Givens rotations,
i.e. a KAMA layer (:func:`steps_to_planes`).

Variants: **greedy** (Algorithm 1: solve every pair, apply the best), **random** (one uniform
pair per step, Shalit and Chechik 2014) and **cyclic** (pairs swept in order).

One-dimensional solver. If F is a trigonometric polynomial of degree p along every geodesic
(p = 1 for F linear in M, p = 2 for F quadratic in M), f(Θ) = a_0 + Σ_k a_k cos kΘ + b_k sin kΘ is
fitted exactly from 2p + 1 equispaced evaluations (a DFT) and minimised exactly: its critical
points are the unit-circle roots of z^p f'(Θ), a polynomial of degree 2p in z = e^{iΘ}. Otherwise a
coarse grid on [0, 2π) brackets the minimum and a bounded Brent search refines it.

Theorem 3 (greedy step gain). Let D_IJ = d/dΘ F(M G(I, J, Θ)) at Θ = 0 and
‖∇F(M)‖² = Σ_{I<J} D_IJ², the Riemannian gradient's norm in the metric ⟨MΩ₁, MΩ₂⟩ = ½ tr(Ω₁ᵀΩ₂)
in which the M A_IJ are orthonormal (the embedded Frobenius norm is half of it). If
|d²/dΘ² F(M G(I, J, Θ))| <= B for every M, I, J, Θ, an exact line search along (I, J) gains at
least D_IJ² / (2B), so the greedy step gains at least max D_IJ² / (2B) >= ‖∇F‖² / (d (d - 1) B),
which implies the paper's bound ‖∇F‖² / (2 d (d - 1) B) (in either metric).
:func:`theorem3_margins` checks both on a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numba import njit
from scipy.optimize import minimize_scalar

from es_compact.checks import integer
from es_compact.errors import ConfigError, ESCompactError

VARIANTS = ("greedy", "random", "cyclic")


class ObjectiveError(ESCompactError, ValueError):
    """The objective returned something other than one finite real number."""


# ----------------------------------------------------------------------------------------------
# Input checks


def check_dim(dim) -> int:
    """dim as an int, or ConfigError: not an integer, or below 2 (SO(1) is one point)."""
    if integer("dim", dim) < 2:
        raise ConfigError(f"SO(d) needs d >= 2, got d = {dim}")
    return int(dim)


def check_rotation(M: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """M as a float64 (d, d) array, after checking d >= 2, MᵀM = I (max-abs error <= tol) and
    det M = +1."""
    # NaN compares false with everything, so `err > nan` would accept any matrix.
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) \
            or not 0 <= tol < np.inf:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol!r}")
    M = np.array(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ConfigError(f"the start matrix must be square, got shape {M.shape}")
    d = M.shape[0]
    if d < 2:
        raise ConfigError(f"SO(d) needs d >= 2, got d = {d}")
    if not np.all(np.isfinite(M)):
        raise ConfigError("the start matrix has non-finite entries")
    err = float(np.max(np.abs(M.T @ M - np.eye(d))))
    if err > tol:
        raise ConfigError(f"the start matrix is not orthogonal: max |MᵀM - I| = {err:.3g} "
                          f"> {tol:.1g}")
    det = float(np.linalg.det(M))
    if det < 0:
        raise ConfigError(f"the start matrix has det {det:.3g}: it is a reflection, not in SO(d)")
    return M


def _as_scalar(value: object) -> float:
    arr = np.asarray(value)
    if arr.ndim != 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ObjectiveError(f"the objective must return one real number, got "
                             f"{type(value).__name__} of shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ObjectiveError(f"the objective returned a complex number {value!r}")
    out = float(arr)
    if not np.isfinite(out):
        raise ObjectiveError(f"the objective returned {out}")
    return out


def _check_finite(values: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ObjectiveError("the objective returned a non-finite value along a geodesic")
    return values


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
# Scorers: F(M G(I, J, Θ)) for many pairs and angles from a cached state of M


@runtime_checkable
class Scorer(Protocol):
    """The incremental interface of an objective.

    degree: the trigonometric degree p of F along every geodesic, or None when unknown.
    A scorer with a known degree may also offer ``coefficients(I, J) -> (a, b)``, the exact
    coefficients of every pair's trigonometric polynomial; the line search then uses them
    instead of fitting 2p + 1 values of ``along``."""

    degree: int | None

    def reset(self, M: np.ndarray) -> float:
        """Cache whatever is needed for M; return F(M)."""

    def along(self, I: np.ndarray, J: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        """F(M G(I_r, J_r, θ_c)) for the cached M, shape (len(I), len(thetas))."""

    def apply(self, i: int, j: int, theta: float) -> float:
        """Move the cached M to M G(i, j, θ); return the new F."""

    @property
    def M(self) -> np.ndarray:
        """The cached matrix."""


def rotate_columns(M: np.ndarray, i: int, j: int, theta: float) -> None:
    """M <- M G(i, j, θ) in place: only columns i and j change."""
    c, s = np.cos(theta), np.sin(theta)
    mi = M[:, i].copy()
    M[:, i] = c * mi + s * M[:, j]
    M[:, j] = -s * mi + c * M[:, j]


class DenseScorer:
    """Wraps any callable F: each evaluation forms M G(I, J, Θ) (O(d²)) and calls F on it."""

    def __init__(self, F: Callable[[np.ndarray], float], degree: int | None = None):
        self.F = F
        self.degree = degree
        self._M = np.eye(2)
        self._f = 0.0

    @property
    def M(self) -> np.ndarray:
        return self._M

    def value(self, M: np.ndarray) -> float:
        return _as_scalar(self.F(M))

    def reset(self, M: np.ndarray) -> float:
        self._M = np.array(M, dtype=np.float64)
        self._f = self.value(self._M.copy())
        return self._f

    def along(self, I, J, thetas):
        out = np.empty((len(I), len(thetas)))
        for r, (i, j) in enumerate(zip(I, J, strict=True)):
            for c, t in enumerate(thetas):
                X = self._M.copy()
                rotate_columns(X, int(i), int(j), float(t))
                out[r, c] = self.value(X)
        return out

    def apply(self, i, j, theta):
        rotate_columns(self._M, i, j, theta)
        self._f = self.value(self._M.copy())
        return self._f


@dataclass(frozen=True, eq=False)
class QuadraticObjective:
    """F(M) = tr(Mᵀ A M diag(n)) + ⟨C, M⟩ + const, with A symmetric.

    Covers the benchmarks: Procrustes ‖MX - Y‖²_F = const - 2⟨Y Xᵀ, M⟩, Brockett
    tr(Mᵀ A M N), and distance to a target ‖M - R‖²_F = 2d - 2⟨R, M⟩. Along a geodesic it is a
    trigonometric polynomial of degree 2 (1 without the quadratic part), and
    :class:`QuadraticScorer` scores all d (d - 1) / 2 pairs from MᵀC and MᵀAM in O(1) each."""

    A: np.ndarray
    n: np.ndarray
    C: np.ndarray
    const: float = 0.0

    def __post_init__(self):
        d = self.C.shape[0]
        if self.C.shape != (d, d) or self.A.shape != (d, d) or self.n.shape != (d,):
            raise ConfigError(f"shapes must be A (d, d), n (d,), C (d, d); got {self.A.shape}, "
                              f"{self.n.shape}, {self.C.shape}")
        if not np.allclose(self.A, self.A.T, atol=1e-12 * (1 + np.abs(self.A).max())):
            raise ConfigError("A must be symmetric")

    @property
    def dim(self) -> int:
        return self.C.shape[0]

    @property
    def degree(self) -> int:
        quad = np.any(self.A != 0) and np.ptp(self.n) > 0
        return 2 if quad else 1

    def __call__(self, M: np.ndarray) -> float:
        return float(np.trace(M.T @ self.A @ M * self.n[None, :]) + np.sum(self.C * M)
                     + self.const)

    def euclidean_grad(self, M: np.ndarray) -> np.ndarray:
        return 2.0 * self.A @ M * self.n[None, :] + self.C

    def curvature_bound(self) -> float:
        """B >= |d²/dΘ² F(M G(I, J, Θ))| for all M, I, J, Θ.

        Linear part: f'' = ⟨C, M G''⟩ and M G'' has two orthonormal columns, so |f''| <= 2σ_max(C).
        Quadratic part: f = const + (n_I - n_J)[(cos 2Θ - 1)/2 (Q_II - Q_JJ) + sin 2Θ Q_IJ] with
        Q = MᵀAM, whose amplitude is half the eigenvalue gap of Q's (I, J) block, at most
        (λ_max - λ_min)/2; so |f''| <= 2 (n_max - n_min)(λ_max - λ_min)."""
        lin = 2.0 * np.linalg.norm(self.C, 2)
        lam = np.linalg.eigvalsh(self.A)
        return float(lin + 2.0 * np.ptp(self.n) * (lam[-1] - lam[0]))

    def scorer(self) -> QuadraticScorer:
        return QuadraticScorer(self)


class QuadraticScorer:
    """Incremental scorer of a :class:`QuadraticObjective`.

    With P = MᵀC and Q = MᵀAM, for the step M G(I, J, Θ):
        F = F(M) + (cos Θ - 1)(P_II + P_JJ) + sin Θ (P_JI - P_IJ)
                 + (n_I - n_J) [(cos 2Θ - 1)/2 (Q_II - Q_JJ) + sin 2Θ Q_IJ],
    and after the step P <- GᵀP, Q <- GᵀQG change in two rows (and columns): O(d)."""

    refresh_every = 512
    """Steps between full recomputations of P, Q and F (bounds rounding drift)."""

    def __init__(self, obj: QuadraticObjective):
        self.obj = obj
        self.degree = obj.degree

    @property
    def M(self) -> np.ndarray:
        return self._M

    def reset(self, M: np.ndarray) -> float:
        o = self.obj
        self._M = np.array(M, dtype=np.float64)
        self.P = self._M.T @ o.C
        self.Q = self._M.T @ o.A @ self._M
        self.f = _as_scalar(o(self._M))
        self._since = 0
        return self.f

    def along(self, I, J, thetas):
        I = np.asarray(I)
        J = np.asarray(J)
        t = np.asarray(thetas, dtype=np.float64)[None, :]
        P, Q, n = self.P, self.Q, self.obj.n
        lin_c = (P[I, I] + P[J, J])[:, None]
        lin_s = (P[J, I] - P[I, J])[:, None]
        out = self.f + (np.cos(t) - 1.0) * lin_c + np.sin(t) * lin_s
        if self.degree == 2:
            w = (n[I] - n[J])[:, None]
            out = out + w * (0.5 * (np.cos(2 * t) - 1.0) * (Q[I, I] - Q[J, J])[:, None]
                             + np.sin(2 * t) * Q[I, J][:, None])
        return out

    def coefficients(self, I, J):
        """The exact trigonometric coefficients (a, b), shape (len(I), degree + 1), of every
        pair's geodesic: the formula above regrouped, no evaluations needed."""
        I = np.asarray(I)
        J = np.asarray(J)
        P, Q, n = self.P, self.Q, self.obj.n
        p = self.degree
        a = np.zeros((len(I), p + 1))
        b = np.zeros((len(I), p + 1))
        a[:, 1] = P[I, I] + P[J, J]
        b[:, 1] = P[J, I] - P[I, J]
        if p == 2:
            w = n[I] - n[J]
            a[:, 2] = 0.5 * w * (Q[I, I] - Q[J, J])
            b[:, 2] = w * Q[I, J]
        a[:, 0] = self.f - np.sum(a[:, 1:], axis=1)  # f(0) = a_0 + Σ a_k
        return a, b

    def apply(self, i, j, theta):
        f_new = float(self.along(np.array([i]), np.array([j]), np.array([theta]))[0, 0])
        rotate_columns(self._M, i, j, theta)
        self._since += 1
        if self._since >= self.refresh_every:
            return self.reset(self._M)
        c, s = np.cos(theta), np.sin(theta)
        for X in (self.P, self.Q):
            xi = X[i].copy()
            X[i] = c * xi + s * X[j]
            X[j] = -s * xi + c * X[j]
        Q = self.Q
        qi = Q[:, i].copy()
        Q[:, i] = c * qi + s * Q[:, j]
        Q[:, j] = -s * qi + c * Q[:, j]
        self.f = f_new
        return f_new


def as_scorer(F, degree: int | None = None) -> Scorer:
    """A scorer for F: F itself if it implements :class:`Scorer`, F.scorer() if F provides one
    (and no other degree is asked for), else a :class:`DenseScorer`."""
    if isinstance(F, Scorer):
        return F
    if hasattr(F, "scorer") and (degree is None or degree == getattr(F, "degree", None)):
        return F.scorer()
    if not callable(F):
        raise ConfigError(f"the objective must be callable, got {type(F).__name__}")
    if degree is not None and (not isinstance(degree, int | np.integer) or degree < 1):
        raise ConfigError(f"the trigonometric degree must be a positive integer, got {degree!r}")
    return DenseScorer(F, degree if degree is not None else getattr(F, "degree", None))


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


# ----------------------------------------------------------------------------------------------
# The optimiser


def all_pairs(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair I < J in lexicographic order, as two int64 arrays of length d (d - 1) / 2."""
    I, J = np.triu_indices(dim, k=1)
    return I.astype(np.int64), J.astype(np.int64)


def steps_to_planes(steps: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(planes (T, 2) int64, angles (T,)) such that product_matrix(d, planes, angles) equals
    G_1 G_2 ··· G_T for steps [(I_1, J_1, Θ_1), ..., (I_T, J_T, Θ_T)].

    product_matrix builds G_K' ··· G_1' (its first rotation applied first, i.e. rightmost), so the
    steps go in reverse order. With M0 = I this is the optimiser's M, ready to load as the angles
    of a square KAMA layer with unit scales."""
    if len(steps) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    arr = np.array(steps, dtype=np.float64)[::-1]
    return arr[:, :2].astype(np.int64), arr[:, 2].copy()


@dataclass(frozen=True, eq=False)
class GivensResult:
    """What a run returns. Iteration t (0-based) moves objective[t] to objective[t + 1]."""

    variant: str
    M0: np.ndarray = field(repr=False)
    M: np.ndarray = field(repr=False)
    steps: list[tuple[int, int, float]] = field(repr=False)
    """Applied rotations in order (iterations with no gain apply nothing)."""
    objective: np.ndarray = field(repr=False)
    gains: np.ndarray = field(repr=False)
    grad_norm_sq: np.ndarray = field(repr=False)
    """‖∇F‖² = Σ D_IJ² before each iteration (NaN where not tracked)."""
    max_slope_sq: np.ndarray = field(repr=False)
    """max_IJ D_IJ² before each iteration (NaN where not tracked)."""
    evaluations: np.ndarray = field(repr=False)
    """Cumulative evaluations of F along geodesics after each iteration (2p + 1 per pair scored
    when the scorer supplies coefficients directly: what a fit would have cost)."""
    stop_reason: str = ""

    @property
    def iterations(self) -> int:
        return len(self.gains)

    @property
    def value(self) -> float:
        return float(self.objective[-1])

    @property
    def dim(self) -> int:
        return self.M.shape[0]

    def planes_angles(self) -> tuple[np.ndarray, np.ndarray]:
        """The steps as (planes, angles) of a KAMA layer: M = M0 @ product_matrix(...)."""
        return steps_to_planes(self.steps)


def riemannian_slopes(F, M: np.ndarray, *, grad: Callable | None = None,
                      degree: int | None = None) -> np.ndarray:
    """D_IJ for every pair (lexicographic order): analytically from a Euclidean gradient
    `grad(M)` when given (D_IJ = (Mᵀ∇F)_JI - (Mᵀ∇F)_IJ), else from the line-search fit."""
    M = check_rotation(M)
    I, J = all_pairs(M.shape[0])
    if grad is not None:
        G = np.asarray(grad(M), dtype=np.float64)
        if G.shape != M.shape:
            raise ObjectiveError(f"the gradient has shape {G.shape}, expected {M.shape}")
        W = M.T @ G
        return W[J, I] - W[I, J]
    scorer = as_scorer(F, degree)
    f0 = scorer.reset(M)
    return line_search(scorer, f0, I, J).slope


def minimize(F, M0: np.ndarray | None = None, *, dim: int | None = None,
             variant: str = "greedy", degree: int | None = None, max_steps: int = 1000,
             gain_tol: float = 1e-13, seed: int = 0, track_grad: bool | None = None,
             grad: Callable | None = None, grid: int = 16) -> GivensResult:
    """Minimise F over SO(d) by Givens coordinate steps M -> M G(I, J, Θ).

    F: a callable on (d, d) rotations returning a float, a :class:`Scorer`, or an object with a
    ``scorer()`` method (e.g. :class:`QuadraticObjective`). degree: the trigonometric degree of F
    along geodesics (exact 1-D solver); None selects the grid + Brent fallback unless F declares
    one. M0 defaults to the identity of size `dim`.

    Stops after max_steps iterations, or when the gain falls to gain_tol (1 + |F|) or below: per
    step for greedy, summed over the last sweep for cyclic (d (d - 1) / 2 steps) and the last
    3 d (d - 1) / 2 steps for random.
    track_grad (default: on for greedy, where it is free) records ‖∇F‖² before every step; for
    random and cyclic it costs a full scan of all pairs per step. grad: Euclidean gradient of F,
    used for the slopes instead of the fit or finite differences."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    if M0 is None:
        if dim is None:
            dim = getattr(F, "dim", None)
        if dim is None:
            raise ConfigError("give M0 or dim")
        M0 = np.eye(check_dim(dim))
    M0 = check_rotation(M0)
    d = M0.shape[0]
    if dim is not None and integer("dim", dim, 2) != d:
        raise ConfigError(f"dim = {dim} but M0 is {d} x {d}")
    integer("max_steps", max_steps, 0)
    integer("seed", seed, 0)  # numpy's SeedSequence takes non-negative integers only
    integer("grid", grid, 3)  # checked here too: line_search sees it only without a degree
    if track_grad is None:
        track_grad = variant == "greedy"
    scorer = as_scorer(F, degree)
    f = scorer.reset(M0)
    I_all, J_all = all_pairs(d)
    n_pairs = len(I_all)
    rng = np.random.default_rng(seed)
    hist, gains, gsq, msq, evals = [f], [], [], [], []
    steps: list[tuple[int, int, float]] = []
    n_eval, reason = 0, "max_steps"
    for t in range(max_steps):
        full = None
        if variant == "greedy" or track_grad:
            full = line_search(scorer, f, I_all, J_all, grid=grid)
            n_eval += full.evaluations
            if grad is not None:
                s2 = riemannian_slopes(F, scorer.M, grad=grad) ** 2
            else:
                s2 = full.slope**2
            gsq.append(float(np.sum(s2)) if track_grad else np.nan)
            msq.append(float(np.max(s2)) if track_grad else np.nan)
        else:
            gsq.append(np.nan)
            msq.append(np.nan)
        if variant == "greedy":
            k = int(np.argmin(full.value))
            i, j, theta, f_new = int(I_all[k]), int(J_all[k]), float(full.theta[k]), full.value[k]
        else:
            k = int(rng.integers(n_pairs)) if variant == "random" else t % n_pairs
            i, j = int(I_all[k]), int(J_all[k])
            ls = line_search(scorer, f, I_all[k:k + 1], J_all[k:k + 1], grid=grid)
            n_eval += ls.evaluations
            theta, f_new = float(ls.theta[0]), ls.value[0]
        if f_new < f and theta != 0.0:
            f_applied = scorer.apply(i, j, theta)
            n_eval += 1
            steps.append((i, j, theta))
            gain = f - f_applied
            f = f_applied
        else:
            gain = 0.0
        hist.append(f)
        gains.append(gain)
        evals.append(n_eval)
        # a sweep covers every pair once; random draws need ~3x as many to likely cover each
        window = {"greedy": 1, "cyclic": n_pairs, "random": 3 * n_pairs}[variant]
        if len(gains) >= window and sum(gains[-window:]) <= gain_tol * (1.0 + abs(f)):
            reason = "gain_tol"
            break
    M = scorer.M.copy()
    return GivensResult(variant=variant, M0=M0, M=M, steps=steps, objective=np.array(hist),
                        gains=np.array(gains), grad_norm_sq=np.array(gsq),
                        max_slope_sq=np.array(msq), evaluations=np.array(evals, dtype=np.int64),
                        stop_reason=reason)


def theorem3_margins(result: GivensResult, B: float) -> dict[str, np.ndarray]:
    """Per greedy step, gain minus each lower bound (all >= 0 when Theorem 3 holds):

    "paper":  ‖∇F‖² / (2 d (d - 1) B)        "pair": max_IJ D_IJ² / (2B)  (sharper)

    Only iterations with a recorded gradient are included. Valid for exact line searches; a
    Brent fallback may fall short by its tolerance."""
    if not B > 0:
        raise ConfigError(f"the curvature bound B must be positive, got {B}")
    d = result.dim
    ok = np.isfinite(result.grad_norm_sq)
    g = result.gains[ok]
    return {"paper": g - result.grad_norm_sq[ok] / (2.0 * d * (d - 1) * B),
            "pair": g - result.max_slope_sq[ok] / (2.0 * B)}
