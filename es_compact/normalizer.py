"""Running observation statistics for ARS V2 / OpenAI-ES observation normalisation.

Statistics are kept as (count, mean, M2) and merged with Chan et al.'s pairwise formula, which
is exact and stable; the trainer merges per-rollout statistics in direction order, so the result
does not depend on which worker ran what. The policy sees them frozen within an iteration.
:meth:`RunningStat.merge_all` merges many in one compiled loop, in the same order and with the
same floating-point operations as one :meth:`RunningStat.merge` each, so bitwise the same (a
merge over all of them at once, a tree of sums, would round differently).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _merge_rows(mean, m2, means, m2s, c_mean, c_m2):
    """Row j merged into (mean, m2) for j = 0, 1, ... in turn, as RunningStat.merge does:
    mean += (x_j - mean) c_mean[j], m2 = (m2 + m2_j) + (x_j - mean)^2 c_m2[j]."""
    for j in range(means.shape[0]):
        a, b = c_mean[j], c_m2[j]
        for i in range(mean.shape[0]):
            d = means[j, i] - mean[i]
            mean[i] = mean[i] + d * a
            m2[i] = (m2[i] + m2s[j, i]) + (d * d) * b


class RunningStat:
    def __init__(self, dim: int, var_floor: float = 1e-8):
        self.dim = dim
        self.var_floor = var_floor
        self.count = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)

    @staticmethod
    def moments(X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, mean, M2) of the rows of X."""
        n = X.shape[0]
        if n == 0:
            return 0, np.zeros(X.shape[1]), np.zeros(X.shape[1])
        mean = X.mean(axis=0)
        return n, mean, ((X - mean) ** 2).sum(axis=0)

    def merge(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = count, np.array(mean, float), np.array(m2, float)
            return
        n = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / n)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / n)
        self.count = n

    def merge_all(self, counts, means, m2s) -> None:
        """merge(counts[j], means[j], m2s[j]) for j = 0, 1, ... in turn, bitwise the same, in
        one compiled loop (the per-row scalars are computed as merge computes them)."""
        rows, c_mean, c_m2 = [], [], []
        for j, count in enumerate(counts):
            if count == 0:
                continue
            if self.count == 0:  # the first: taken as it is
                self.count, self.mean, self.m2 = count, np.array(means[j], float), np.array(
                    m2s[j], float)
                continue
            n = self.count + count
            rows.append(j)
            c_mean.append(count / n)
            c_m2.append(self.count * count / n)
            self.count = n
        if rows:
            self.mean, self.m2 = self.mean.copy(), self.m2.copy()
            _merge_rows(self.mean, self.m2, np.array([means[j] for j in rows], dtype=float),
                        np.array([m2s[j] for j in rows], dtype=float), np.array(c_mean),
                        np.array(c_m2))

    @property
    def var(self) -> np.ndarray:
        if self.count < 2:
            return np.ones(self.dim)
        return np.maximum(self.m2 / self.count, self.var_floor)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def frozen(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) to hand to the policy for one iteration (identity before any data)."""
        if self.count < 2:
            return np.zeros(self.dim), np.ones(self.dim)
        return self.mean.copy(), self.std

    def state(self) -> dict:
        return {"obs_count": np.array(self.count), "obs_mean": self.mean, "obs_m2": self.m2}

    def load(self, state: dict) -> None:
        self.count = int(state["obs_count"])
        self.mean = np.array(state["obs_mean"], dtype=float)
        self.m2 = np.array(state["obs_m2"], dtype=float)
