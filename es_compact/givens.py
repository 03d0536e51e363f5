"""Givens rotations and their products: the mathematics shared by the KAMA layer, the random
features and the descent on SO(d).

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 2. A Givens rotation of size D acts on one plane (I, J), I < J:

              col I   col J
    row I  |  cos Θ  -sin Θ |       G(I, J, Θ) = identity elsewhere
    row J  |  sin Θ   cos Θ |                  = expm(-Θ A_IJ), A_IJ = e_I e_Jᵀ - e_J e_Iᵀ

and costs 4 multiplications and 2 additions to apply. A KAMA matrix truncates and scales a
product P = G_K ··· G_2 G_1 (G_1 applied first; :func:`kama_matrix`, drawn in
:mod:`es_compact.policies.givens`).

Used three ways: as a learned policy layer (:mod:`es_compact.policies.givens`, angles and scales
learned, planes fixed), as a random projection (:class:`RandomKama`, Sections 4 and 6.1, for
:mod:`es_compact.features`), and as the step of Givens coordinate descent on SO(d) (Section 5,
:mod:`es_compact.so_d`), which multiplies on the right, M <- M G(I, J, Θ)
(:func:`rotate_columns`), so that its answer M0 G_1 ··· G_T is again a product of rotations
(:func:`steps_to_planes`).

The dense references here (:func:`givens_matrix`, :func:`product_matrix`, :func:`kama_matrix`)
are what the fast paths (the numba kernel :func:`rotate_rows`, and ``givens_apply`` in
:mod:`es_compact.policies.kernels`, which the policy interpreter calls) are tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from es_compact.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Drawing the structure


def random_planes(dim: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """count planes (I, J), I < J, each uniform over the dim (dim - 1) / 2 pairs.

    Returns an int64 array of shape (count, 2)."""
    if dim < 2:
        raise ConfigError(f"a Givens rotation needs dimension >= 2, got {dim}")
    a = rng.integers(0, dim, size=count)
    b = rng.integers(0, dim - 1, size=count)
    b = b + (b >= a)
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int64)


def random_angles(count: int, rng: np.random.Generator) -> np.ndarray:
    """count angles uniform on [0, 2π)."""
    return rng.uniform(0.0, 2.0 * np.pi, count)


# ---------------------------------------------------------------------------------------------
# Applying rotations


def kernel_arrays(planes: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cs, planes) in the flat form the kernels take: (cos Θ_t, sin Θ_t) pairs and
    (I_t, J_t) pairs, the planes unsigned (numba then skips its negative-index check)."""
    cs = np.stack([np.cos(angles), np.sin(angles)], axis=1).ravel()
    return cs, planes.ravel().astype(np.uint64)


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


def rotate_columns(M: np.ndarray, i: int, j: int, theta: float) -> None:
    """M <- M G(i, j, θ) in place: only columns i and j change."""
    c, s = np.cos(theta), np.sin(theta)
    mi = M[:, i].copy()
    M[:, i] = c * mi + s * M[:, j]
    M[:, j] = -s * mi + c * M[:, j]


def transpose_rotate_rows(X: np.ndarray, i: int, j: int, theta: float) -> None:
    """X <- G(i, j, θ)ᵀ X in place: only rows i and j change."""
    c, s = np.cos(theta), np.sin(theta)
    xi = X[i].copy()
    X[i] = c * xi + s * X[j]
    X[j] = -s * xi + c * X[j]


# ---------------------------------------------------------------------------------------------
# Dense references


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
    rotate_rows(*kernel_arrays(planes, angles), P)
    return P


def kama_matrix(P: np.ndarray, out_dim: int, in_dim: int, scales: np.ndarray) -> np.ndarray:
    """The out_dim x in_dim KAMA matrix of the square product P (size max(out_dim, in_dim)):
    P's first rows scaled (out_dim <= in_dim) or first columns scaled (out_dim > in_dim)."""
    if out_dim <= in_dim:
        return scales[:, None] * P[:out_dim, :]
    return P[:, :in_dim] * scales[None, :]


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


# ---------------------------------------------------------------------------------------------
# The random, non-adaptive KAMA matrix


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
        angles = random_angles(rotations, rng)
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
        return kama_matrix(P, self.out_dim, self.in_dim, self.scales)

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
        rotate_rows(*kernel_arrays(self.planes, self.angles), Z)
        if self.out_dim <= self.in_dim:
            return (Z[: self.out_dim] * self.scales[:, None]).T.copy()
        return Z.T.copy()
