"""Separable CMA-ES (Ros and Hansen 2008, "A simple modification in CMA-ES achieving linear time
and space complexity", PPSN X): CMA-ES with C restricted to its diagonal, so B = I and
D = √diag(C); time and memory are linear in d.

The update is :mod:`es_compact.strategies.cmaes`'s (purecma's formulas, mirrored pairs, the
same failed-pair rule) with diag(C) for C. With c = diag(C) and s = √c, the candidates are
m ± σ y_k, y_k = s ⊙ z_k (``noise()`` is (σ, s), so a worker regenerates y_k from z_k), and

    y_w = Σ w_i y_i:λ;   m <- m + c_m σ y_w
    p_σ <- (1 - c_σ) p_σ + √(c_σ (2 - c_σ) μ_eff) z_w,    z_w = Σ w_i z_i:λ = C^(-1/2) y_w
    p_c <- (1 - c_c) p_c + h_σ √(c_c (2 - c_c) μ_eff) y_w
    c <- (1 - c_1a - c_μ Σ w_i) c + c_1 p_c² + c_μ Σ w_i y_i:λ²          (elementwise)
    σ <- σ exp(min(1, c_σ / d_σ (‖p_σ‖² / d - 1) / 2))

with h_σ, c_1a, d_σ, c_c, c_σ as there and the learning rates of the diagonal, Ros and Hansen's
c_cov^sep = (d + 2) / 3 · c_cov applied to each of purecma's two:

    c_1 = (d + 2) / 3 · 2 / ((d + 1.3)² + μ_eff)
    c_μ = min(1 - c_1, (d + 2) / 3 · 2 (μ_eff - 2 + 1/μ_eff) / ((d + 2)² + μ_eff)).

(pycma's ``CMA_diagonal`` uses other separable rates, 1 / (d + 2√d + μ_eff/d) for c_1, and
another c_c and step-size rule; the tests compare with purecma instead.) D is refreshed every
iteration: it costs d square roots, so there is no lazy schedule.
"""

from __future__ import annotations

import numpy as np

from es_compact.strategies.cmaes import CMABase, _vector


class SepCMAES(CMABase):
    """CMA-ES with a diagonal covariance (Ros and Hansen 2008); see the module docstring."""

    name = "sepcmaes"
    separable = True

    def __init__(self, config, directions):
        super().__init__(config, directions)
        self.diag_c = np.ones(directions.dim)

    def noise(self):
        return self.sigma, np.sqrt(self.diag_c)

    def _selected(self, plan, k, sign):
        Z = self.directions.matrix(plan, k) * sign[:, None]
        return Z * np.sqrt(self.diag_c), Z

    def _whiten(self, z_w):
        return z_w

    def _update_cov(self, a, pc, Y, w):
        self.diag_c = a * self.diag_c + self.c.c1 * pc * pc + self.c.cmu * (w @ (Y * Y))

    def state(self):
        return {"cma_diagC": self.diag_c, "cma_pc": self.pc, "cma_ps": self.ps}, self._scalars()

    def load(self, arrays, meta):
        self._load_scalars(arrays, meta)
        self.diag_c = _vector(arrays["cma_diagC"])
