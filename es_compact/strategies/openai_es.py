"""OpenAI-ES (Salimans et al. 2017) with antithetic sampling and centred-rank fitness shaping.

    g = Σ_k (f(r+_k) - f(r-_k)) δ_k / (2N) - λ θ      (f: centred ranks over all 2N returns)

followed by an Adam or momentum-SGD ascent step, as in openai/evolution-strategies-starter
(whose optimiser minimises -g; here the sign is positive once).
"""

from __future__ import annotations

import numpy as np

from es_compact.strategies.base import Strategy
from es_compact.strategies.shaping import centered_ranks


class OpenAIES(Strategy):
    name = "es"
    default_step_size = 0.01
    optimizers = ("adam", "sgd")
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, config, directions):
        super().__init__(config, directions)
        dim = directions.dim
        self.m = np.zeros(dim)
        self.v = np.zeros(dim)
        self.t = 0

    def gradient(self, theta, plan, ks, returns_n2) -> np.ndarray:
        f = centered_ranks(returns_n2)
        g = self.weighted_sum(plan, ks, f[:, 0] - f[:, 1]) / returns_n2.size
        return g - self.config.l2_coeff * theta

    def _tell(self, theta, plan, ks, returns_n2):
        g = self.gradient(theta, plan, ks, returns_n2)
        lr = self.config.step_size
        self.t += 1
        if self.optimizer == "adam":
            self.m = self.beta1 * self.m + (1 - self.beta1) * g
            self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
            a = lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
            return theta + a * self.m / (np.sqrt(self.v) + self.eps)
        mom = self.config.momentum
        self.m = mom * self.m + (1 - mom) * g
        return theta + lr * self.m

    def state(self):
        return {"opt_m": self.m, "opt_v": self.v}, {"opt_t": self.t}

    def load(self, arrays, meta):
        self.m = np.array(arrays["opt_m"], dtype=float)
        self.v = np.array(arrays["opt_v"], dtype=float)
        self.t = int(meta["opt_t"])
