"""KAMA layers: weight matrices as truncated, scaled products of Givens rotations.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 2. A Givens rotation of size D acts on one plane (I, J):

              col I   col J
    row I  |  cos Θ  -sin Θ |       G(I, J, Θ) = identity elsewhere
    row J  |  sin Θ   cos Θ |                  = expm(-Θ A_IJ), A_IJ = e_I e_Jᵀ - e_J e_Iᵀ

and costs 4 multiplications and 2 additions to apply. With P = G_K ··· G_2 G_1 (G_1 applied
first) and D = max(d1, d2), a d1 x d2 KAMA matrix is

    d1 <= d2:  M = diag(s_1..s_d1) · P[:d1, :]     (first d1 rows, each row scaled)
    d1 >  d2:  M = P[:, :d2] · diag(s_1..s_d2)     (first d2 columns, each column scaled)

The planes (I_t, J_t) are drawn uniformly from a seed when the policy is built and stay fixed;
the K angles and min(d1, d2) scalars are learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from es_compact.errors import ConfigError
from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer


def random_planes(dim: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """count planes (I, J), I < J, each uniform over the dim (dim - 1) / 2 pairs.

    Returns an int64 array of shape (count, 2)."""
    if dim < 2:
        raise ConfigError(f"a Givens rotation needs dimension >= 2, got {dim}")
    a = rng.integers(0, dim, size=count)
    b = rng.integers(0, dim - 1, size=count)
    b = b + (b >= a)
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int64)


def givens_matrix(dim: int, i: int, j: int, angle: float) -> np.ndarray:
    """The dense rotation G(i, j, angle) of size dim."""
    G = np.eye(dim)
    c, s = np.cos(angle), np.sin(angle)
    G[i, i] = G[j, j] = c
    G[j, i] = s
    G[i, j] = -s
    return G


def product_matrix(dim: int, planes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """P = G_K ··· G_1 as a dense (dim, dim) matrix, built by rotating the identity's columns."""
    P = np.eye(dim)
    cs = np.stack([np.cos(angles), np.sin(angles)], axis=1).ravel()
    rotate_rows(cs, planes.ravel().astype(np.uint64), P)
    return P


@njit(cache=True)
def rotate_rows(cs, planes, X):
    """X <- P X for X of shape (dim, n), rows as coordinates: each rotation updates two rows.

    This is the batch form of :func:`kernels.givens_apply` (contiguous rows, vectorisable), used to
    transform many points at once: pass the points as columns.
    """
    n = X.shape[1]
    for t in range(planes.shape[0] // 2):
        c = cs[2 * t]
        s = cs[2 * t + 1]
        ra = X[planes[2 * t]]
        rb = X[planes[2 * t + 1]]
        for r in range(n):
            xa = ra[r]
            xb = rb[r]
            ra[r] = c * xa - s * xb
            rb[r] = s * xa + c * xb


@dataclass(frozen=True, eq=False, kw_only=True)
class GivensLayer(Layer):
    rotations: int
    planes_array: np.ndarray = field(repr=False)
    """(rotations, 2) int64 rotation planes, fixed at build time."""

    kind = "kama"

    @classmethod
    def build(cls, *, in_dim: int, out_dim: int, offset: int, rotations: int,
              rng: np.random.Generator, **kw) -> GivensLayer:
        if rotations < 1:
            raise ConfigError(f"rotation count must be positive, got {rotations}")
        planes = random_planes(max(in_dim, out_dim), rotations, rng)
        return cls(in_dim=in_dim, out_dim=out_dim, offset=offset, rotations=rotations,
                   planes_array=planes, **kw)

    @property
    def n_scales(self) -> int:
        return min(self.in_dim, self.out_dim)

    @property
    def weight_size(self) -> int:
        return self.rotations + self.n_scales

    def _weight_blocks(self):
        return {"angles": (self.offset, (self.rotations,)),
                "scales": (self.offset + self.rotations, (self.n_scales,))}

    def _init_weights(self, theta, rng):
        self.view(theta, "angles")[:] = rng.uniform(0.0, 2.0 * np.pi, self.rotations)
        self.view(theta, "scales")[:] = 1.0

    def weight(self, theta):
        P = product_matrix(self.width, self.planes_array, self.view(theta, "angles"))
        s = self.view(theta, "scales")
        if self.out_dim <= self.in_dim:
            return s[:, None] * P[: self.out_dim, :]
        return P[:, : self.in_dim] * s[None, :]

    @property
    def extra_size(self) -> int:
        return 2 * self.rotations

    def fill_extra(self, theta, prep, extra_off):
        angles = self.view(theta, "angles")
        cs = prep[extra_off : extra_off + 2 * self.rotations].reshape(self.rotations, 2)
        cs[:, 0] = np.cos(angles)
        cs[:, 1] = np.sin(angles)

    def planes(self):
        return self.planes_array.ravel()

    def table_row(self, extra_off, planes_off):
        return self._row(K.GIVENS, extra_off, aux=planes_off, n=self.rotations,
                         s=self.offset + self.rotations)


ScaleDraw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True, eq=False)
class RandomKama:
    """The random, non-adaptive KAMA matrix: fixed random planes, angles uniform on [0, 2π),
    scalars drawn from a given distribution. Applied in O(K) per vector, never materialised.

    Used by the random-feature kernel estimators; ``matrix()`` is the dense reference.
    """

    out_dim: int
    in_dim: int
    planes: np.ndarray
    angles: np.ndarray
    scales: np.ndarray

    @classmethod
    def draw(cls, out_dim: int, in_dim: int, rotations: int, rng: np.random.Generator,
             scales: str | ScaleDraw = "ones") -> RandomKama:
        """scales: "ones", "gaussian" (N(0, 1)), "chi" (norm of a Gaussian vector of size
        in_dim, which makes each row of a square product marginally look Gaussian-normed), or a
        callable (rng, size) -> array."""
        if out_dim < 1 or in_dim < 1:
            raise ConfigError(f"dimensions must be positive, got {out_dim} x {in_dim}")
        if rotations < 1:
            raise ConfigError(f"rotation count must be positive, got {rotations}")
        dim = max(out_dim, in_dim)
        planes = random_planes(dim, rotations, rng)
        angles = rng.uniform(0.0, 2.0 * np.pi, rotations)
        m = min(out_dim, in_dim)
        if callable(scales):
            s = np.asarray(scales(rng, m), dtype=np.float64)
        elif scales == "ones":
            s = np.ones(m)
        elif scales == "gaussian":
            s = rng.standard_normal(m)
        elif scales == "chi":
            s = np.sqrt(rng.chisquare(in_dim, m))
        else:
            raise ConfigError(f"unknown scale distribution {scales!r}: "
                              "use 'ones', 'gaussian', 'chi' or a callable")
        if s.shape != (m,):
            raise ConfigError(f"scale draw returned shape {s.shape}, expected ({m},)")
        return cls(out_dim, in_dim, planes, angles, s)

    def matrix(self) -> np.ndarray:
        dim = max(self.out_dim, self.in_dim)
        P = product_matrix(dim, self.planes, self.angles)
        if self.out_dim <= self.in_dim:
            return self.scales[:, None] * P[: self.out_dim, :]
        return P[:, : self.in_dim] * self.scales[None, :]

    def apply(self, X: np.ndarray) -> np.ndarray:
        """M x for every row x of X (n, in_dim) -> (n, out_dim), in O(K n) operations."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise ConfigError(f"expected points of shape (n, {self.in_dim}), got {X.shape}")
        dim = max(self.out_dim, self.in_dim)
        Z = np.zeros((dim, X.shape[0]))
        if self.out_dim <= self.in_dim:
            Z[:] = X.T
        else:
            Z[: self.in_dim] = X.T * self.scales[:, None]
        cs = np.stack([np.cos(self.angles), np.sin(self.angles)], axis=1).ravel()
        rotate_rows(cs, self.planes.ravel().astype(np.uint64), Z)
        if self.out_dim <= self.in_dim:
            return (Z[: self.out_dim] * self.scales[:, None]).T.copy()
        return Z.T.copy()
