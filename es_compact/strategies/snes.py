"""Separable natural evolution strategy, SNES (Schaul, Glasmachers, Schmidhuber 2011, "High
dimensions and heavy tails for natural evolution strategies"; Wierstra et al. 2014, "Natural
Evolution Strategies", JMLR 15, Algorithm 6), with mirrored sampling.

The search distribution is N(μ, diag(σ²)), μ = θ. Iteration t's 2N candidates are
μ ± σ ⊙ δ_k (noise() is ν = 1, scale σ); the valid ones have the λ = 2N' standard samples
s_i = ±δ_k (the papers' s_k; z_i = μ + σ ⊙ s_i). Sorted by descending fitness (ties by
position, row 2k before 2k + 1 before 2k + 2), they get the NES utilities u_i
(:func:`~es_compact.strategies.shaping.nes_utilities`), and

    ∇_μ = Σ_i u_i s_i                  = Σ_k (u_k+ - u_k-) δ_k
    ∇_σ = Σ_i u_i (s_i ⊙ s_i - 1)      = Σ_k (u_k+ + u_k-) (δ_k ⊙ δ_k - 1)
    μ <- μ + η_μ σ ⊙ ∇_μ
    σ <- σ ⊙ exp(η_σ / 2 · ∇_σ)

both with the σ the candidates were drawn with. η_μ = step_size (default 1, the papers'
value); η_σ = sigma_lr, or (3 + ln d) / (5 √d) (the papers' default). Algorithm 6 draws λ
independent samples; here they come in mirrored pairs (each ±δ_k still marginally N(0, I)),
and the update is Algorithm 6's on those λ samples. One pair alone is degenerate: its two
utilities are ±1/2, so u_k+ + u_k- = 0 and ∇_σ = 0 for ever; hence min_directions = 2 (an
iteration where only one pair is valid still moves μ, and keeps σ).
"""

from __future__ import annotations

import math

import numpy as np

from es_compact.errors import ConfigError
from es_compact.strategies.base import Strategy
from es_compact.strategies.shaping import nes_utilities


class SNES(Strategy):
    """SNES (Schaul et al. 2011; Wierstra et al. 2014, Algorithm 6) over mirrored pairs:

        u = nes_utilities(fitness of the 2N' valid candidates μ ± σ ⊙ δ_k)
        ∇_μ = Σ_k (u_k+ - u_k-) δ_k,  ∇_σ = Σ_k (u_k+ + u_k-) (δ_k² - 1)
        μ <- μ + η_μ σ ⊙ ∇_μ,  σ <- σ ⊙ exp(η_σ/2 ∇_σ)

    η_μ = step_size, η_σ = sigma_lr or (3 + ln d) / (5 √d); σ starts at noise_std."""

    name = "snes"
    default_step_size = 1.0
    optimizers = ()
    min_directions = 2

    def __init__(self, config, directions):
        super().__init__(config, directions)
        d = directions.dim
        self.sigma = float(self.config.noise_std) * np.ones(d)
        lr = self.config.sigma_lr
        self.sigma_lr = float(lr) if lr is not None else (3 + math.log(d)) / (5 * math.sqrt(d))

    def noise(self):
        return 1.0, self.sigma.copy()

    def _tell(self, theta, plan, ks, returns_n2):
        u = nes_utilities(returns_n2)
        grad_mu = np.zeros(self.directions.dim)
        grad_sigma = np.zeros(self.directions.dim)
        for k, (up, um) in zip(ks, u, strict=True):
            delta = np.asarray(self.directions.get(plan, int(k)), dtype=np.float64)
            grad_mu += (up - um) * delta
            grad_sigma += (up + um) * (delta * delta - 1.0)
        new = theta + self.config.step_size * (self.sigma * grad_mu)
        self.sigma = self.sigma * np.exp(0.5 * self.sigma_lr * grad_sigma)
        return new

    def state(self):
        return {"snes_sigma": self.sigma.copy()}, {}

    def load(self, arrays, meta):
        sigma = np.array(arrays["snes_sigma"], dtype=np.float64)
        if sigma.shape != (self.directions.dim,):
            raise ConfigError(f"snes_sigma has shape {sigma.shape}, expected "
                              f"({self.directions.dim},)")
        self.sigma = sigma
