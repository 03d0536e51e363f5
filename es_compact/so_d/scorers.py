"""Scorers: F(M G(I, J, Θ)) for many pairs (I, J) and angles Θ from a cached state of M.

Choromanski et al., "KAMA-NNs" (AISTATS 2019), Section 5: every step of Givens coordinate descent
scores candidate rotations M -> M G(I, J, Θ) (:func:`es_compact.givens.rotate_columns`). A
:class:`Scorer` caches what it needs of M so that scoring a pair is cheap: :class:`DenseScorer`
wraps any callable (O(d²) per evaluation); :class:`QuadraticScorer` scores the quadratic
benchmarks (Procrustes, Brockett, distance to a target) in O(1) per pair and updates its cache in
O(d) per applied step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from es_compact.errors import ConfigError, ESCompactError
from es_compact.givens import rotate_columns, transpose_rotate_rows


class ObjectiveError(ESCompactError, ValueError):
    """The objective returned something other than one finite real number."""


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
# The interface


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


# ----------------------------------------------------------------------------------------------
# Scorers


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
        # P <- GᵀP, Q <- GᵀQG
        transpose_rotate_rows(self.P, i, j, theta)
        transpose_rotate_rows(self.Q, i, j, theta)
        rotate_columns(self.Q, i, j, theta)
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
