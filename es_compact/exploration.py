"""Perturbation directions δ_k for one iteration, reproducible from (seed, iteration, k).

- gaussian: δ_k is a slice of the shared noise table at an offset drawn from (seed, iteration);
- orthogonal (Choromanski et al. 2018, "Structured evolution with compact architectures"):
  within each block of up to dim(θ) directions the directions are exactly orthogonal (QR of a
  Gaussian block) with norms redrawn from the chi distribution with dim(θ) degrees of freedom,
  so each δ_k is still marginally N(0, I);
- hadamard: rows of a random Hadamard-diagonal product H D1 H D2 H D3 (padded to a power of two,
  truncated to dim(θ), renormalised to chi norms): nearly orthogonal, O(d log d) per row.

Blocks are generated from a seeded generator wherever they are needed (driver or worker), so
only the iteration number and k ever travel between processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.errors import ConfigError
from es_compact.hadamard import fwht_rows
from es_compact.noise import NoiseTable

OFFSET_STREAM, BLOCK_STREAM = 0x0FF5, 0xB10C


@dataclass(frozen=True, eq=False)
class Plan:
    """The directions of one iteration: offsets into the table (gaussian) or block seeds, or
    (for a strategy whose directions cannot be regenerated from a seed, e.g. CMA-ES's
    B D z with a full covariance) the directions themselves as rows of ``vectors``."""

    iteration: int
    count: int
    offsets: np.ndarray | None = None
    vectors: np.ndarray | None = None


def perturb(theta: np.ndarray, sign: float, nu: float, scale: np.ndarray | None,
            delta: np.ndarray) -> np.ndarray:
    """The candidate θ + sign ν (s ⊙ δ) (s = 1 when scale is None): the one formula the
    rollouts and the ask / tell API both use, so a candidate is the same float64 vector
    wherever it is built."""
    if scale is None:
        return theta + (sign * nu) * delta
    return theta + (sign * nu) * (scale * delta)


def orthogonal_block(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """rows <= dim exactly orthogonal directions with chi(dim)-distributed norms."""
    G = rng.standard_normal((dim, rows))
    Q, R = np.linalg.qr(G)
    Q = Q * np.sign(np.diag(R))  # Haar-distributed orthonormal columns
    norms = np.sqrt(rng.chisquare(dim, rows))
    return (Q.T * norms[:, None]).astype(np.float64)


def hadamard_block(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """rows directions from H D1 H D2 H D3 (random sign diagonals), chi-renormalised."""
    p = 1 << max(1, (dim - 1).bit_length())
    idx = rng.choice(p, size=rows, replace=False)
    V = np.zeros((p, rows))  # one direction per column, as fwht_rows wants
    V[idx, np.arange(rows)] = 1.0
    for _ in range(3):
        fwht_rows(V)
        V *= rng.choice([-1.0, 1.0], size=p)[:, None]
    V = np.ascontiguousarray(V[:dim].T)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    return V * np.sqrt(rng.chisquare(dim, rows))[:, None]


class Directions:
    """Produces δ_k of any iteration from (seed, iteration, k) and the shared noise table."""

    def __init__(self, kind: str, seed: int, dim: int, table: NoiseTable | None):
        if kind not in ("gaussian", "orthogonal", "hadamard"):
            raise ConfigError(f"unknown exploration {kind!r}")
        if kind == "gaussian":
            if table is None:
                raise ConfigError("gaussian exploration needs the noise table")
            table.check_dim(dim)
        self.kind, self.seed, self.dim, self.table = kind, int(seed), dim, table
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    def plan(self, iteration: int, count: int) -> Plan:
        if self.kind != "gaussian":
            return Plan(iteration, count)
        rng = np.random.default_rng([self.seed, iteration, OFFSET_STREAM])
        return Plan(iteration, count, self.table.sample_offsets(rng, self.dim, count))

    def block_size(self, count: int) -> int:
        return min(count, self.dim)

    def _block(self, iteration: int, block: int, rows: int) -> np.ndarray:
        key = (iteration, block)
        if self._cache is None or self._cache[0] != key:
            rng = np.random.default_rng([self.seed, iteration, block, BLOCK_STREAM])
            make = orthogonal_block if self.kind == "orthogonal" else hadamard_block
            self._cache = (key, make(rng, rows, self.dim))
        return self._cache[1]

    def get(self, plan: Plan, k: int) -> np.ndarray:
        """δ_k (float32 table slice for gaussian, float64 otherwise); do not modify it."""
        if plan.vectors is not None:
            return plan.vectors[k]
        if self.kind == "gaussian":
            return self.table.get(int(plan.offsets[k]), self.dim)
        size = self.block_size(plan.count)
        block = k // size
        rows = min(size, plan.count - block * size)
        return self._block(plan.iteration, block, rows)[k - block * size]

    def matrix(self, plan: Plan, ks) -> np.ndarray:
        """The directions ks stacked as rows (float64)."""
        return np.array([self.get(plan, int(k)) for k in ks], dtype=np.float64).reshape(
            len(ks), self.dim)
