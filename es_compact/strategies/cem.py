"""The cross-entropy method, CEM (Rubinstein 1999, "The cross-entropy method for combinatorial
and continuous optimization"; de Boer, Kroese, Mannor, Rubinstein 2005, "A tutorial on the
cross-entropy method"; for policy search Szita and Lőrincz 2006, "Learning Tetris using the
noisy cross-entropy method"), with a diagonal Gaussian and mirrored sampling.

The search distribution is N(m, diag(σ²)), m = θ. Iteration t's 2N candidates are
x = m ± σ ⊙ δ_k (noise() is ν = 1, scale σ). Of the 2N' valid ones (those of the valid pairs),
the elite E is the n_e = ⌈elite_fraction · 2N'⌉ with the highest fitness, ties by position
(row 2k before 2k + 1 before 2k + 2). With z_i = ±δ_k the elite's standardised samples
(x_i = m + σ ⊙ z_i),

    x̄ = mean_{i in E} x_i                        = m + σ ⊙ z̄,  z̄ = mean_{i in E} z_i
    m <- m + α (x̄ - m)                           = m + α σ ⊙ z̄
    σ <- sqrt(mean_{i in E} (x_i - x̄)²)          = σ ⊙ sqrt(mean_{i in E} (z_i - z̄)²)

α = step_size (1: the plain method, m <- x̄; below 1, de Boer et al.'s smoothing of the mean).
σ is the elite's maximum-likelihood spread around its own mean x̄ (the new mean of the plain
method, whatever α is), divided by n_e, with no smoothing, floor or Szita and Lőrincz's added
noise: the plain method. Hansen (2016, "The CMA Evolution Strategy: A Tutorial", section 3.1)
contrasts this estimate (EMNA_global's) with one around the old mean: around the new mean the
spread shrinks along the direction of progress, so the plain method can stop short of the
optimum when the elite is small next to d; a larger population counters it (tests/test_cem.py).

The elite needs two candidates, or σ is 0 from then on, and must leave one out: the candidates
of mirrored pairs average to m, so an elite of all of them never moves m. So check_config
refuses n_e < 2 or n_e = 2N, which no single pair satisfies (min_directions = 2). When failed
pairs leave an iteration with n_e < 2 or n_e = 2N' valid candidates, m still takes the step
above and σ is kept.
"""

from __future__ import annotations

import math

import numpy as np

from es_compact.errors import ConfigError
from es_compact.strategies.base import Strategy


def elite_count(fraction: float, candidates: int) -> int:
    """⌈fraction · candidates⌉; the product is rounded to 9 decimals first, so 0.07 · 100
    (7.000000000000001 in floating point) keeps 7 candidates, not 8."""
    return math.ceil(round(fraction * candidates, 9))


def elite_mask(returns_n2: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask (shape of returns_n2) of the count highest returns, ties broken by
    position in row-major order (maximised)."""
    flat = returns_n2.ravel()
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argsort(-flat, kind="stable")[:count]] = True
    return mask.reshape(returns_n2.shape)


class CEM(Strategy):
    """CEM (Rubinstein 1999; Szita and Lőrincz 2006) with a diagonal Gaussian, mirrored pairs:

        E = the ⌈elite_fraction · 2N'⌉ fittest of the 2N' valid candidates m ± σ ⊙ δ_k
        z̄ = mean_E z_i  (z_i = ±δ_k),  m <- m + α σ ⊙ z̄,
        σ <- σ ⊙ sqrt(mean_E (z_i - z̄)²)   (kept when E has < 2 or all valid candidates)

    α = step_size (1: m <- the elite's mean); σ starts at noise_std."""

    name = "cem"
    default_step_size = 1.0
    optimizers = ()
    min_directions = 2

    def __init__(self, config, directions):
        super().__init__(config, directions)
        self.sigma = float(self.config.noise_std) * np.ones(directions.dim)

    @classmethod
    def check_config(cls, config):
        # The elite's rules first: they say why one pair (below min_directions) cannot work.
        if config.directions is not None:
            cls._check_elite(config.elite_fraction, 2 * int(config.directions))
        super().check_config(config)

    @staticmethod
    def _check_elite(f: float, lam: int) -> None:
        n_e = elite_count(f, lam)
        if n_e < 2:
            raise ConfigError(f"cem's elite must hold at least 2 candidates (or σ collapses to "
                              f"0): elite_fraction {f} of 2N = {lam} candidates keeps {n_e}; "
                              f"raise elite_fraction or directions")
        if n_e == lam:
            raise ConfigError(f"cem's elite must leave a candidate out (mirrored pairs average "
                              f"to the mean, so it would never move): elite_fraction {f} of "
                              f"2N = {lam} candidates keeps all {lam}; lower elite_fraction")

    def noise(self):
        return 1.0, self.sigma.copy()

    def _elite(self, plan, ks, mask):
        """(δ_k as float64, +δ_k in E, -δ_k in E) for the valid pairs with an elite member, in
        order of k (so blocked directions are regenerated once per pass, not per candidate)."""
        for k, (plus, minus) in zip(ks, mask, strict=True):
            if plus or minus:
                yield np.asarray(self.directions.get(plan, int(k)), dtype=np.float64), plus, minus

    def _tell(self, theta, plan, ks, returns_n2):
        lam = returns_n2.size
        n_e = min(max(elite_count(self.config.elite_fraction, lam), 1), lam)
        mask = elite_mask(returns_n2, n_e)
        z_bar = np.zeros(self.directions.dim)
        for delta, plus, minus in self._elite(plan, ks, mask):
            z_bar += (float(plus) - float(minus)) * delta
        z_bar /= n_e
        new = theta + self.config.step_size * (self.sigma * z_bar)
        if 2 <= n_e < lam:
            var = np.zeros(self.directions.dim)
            for delta, plus, minus in self._elite(plan, ks, mask):
                if plus:
                    var += (delta - z_bar) ** 2
                if minus:
                    var += (delta + z_bar) ** 2
            self.sigma = self.sigma * np.sqrt(var / n_e)
        return new

    def state(self):
        return {"cem_sigma": self.sigma.copy()}, {}

    def load(self, arrays, meta):
        sigma = np.array(arrays["cem_sigma"], dtype=np.float64)
        if sigma.shape != (self.directions.dim,):
            raise ConfigError(f"cem_sigma has shape {sigma.shape}, expected "
                              f"({self.directions.dim},)")
        self.sigma = sigma
