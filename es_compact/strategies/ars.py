"""Augmented Random Search (Mania, Guy, Recht 2018, Algorithm 2), variants V1, V2, V1-t, V2-t.

    θ <- θ + α / (b σ_R) Σ_{k in top b} (r(θ + νδ_k) - r(θ - νδ_k)) δ_k

with σ_R the standard deviation of the 2b returns used. The -t variants keep the b directions
with the largest max(r+, r-); V1 / V2 use all N. (V2's observation normalisation lives in the
trainer and rollouts: the strategy only sees returns.)
"""

from __future__ import annotations

from es_compact.strategies.base import Strategy
from es_compact.strategies.shaping import top_directions


class ARS(Strategy):
    name = "ars"

    @property
    def top(self) -> int:
        if self.config.variant in ("v1t", "v2t"):
            return int(self.config.top)
        return self.num_directions

    def _tell(self, theta, plan, ks, returns_n2):
        keep = top_directions(returns_n2, self.top)
        r = returns_n2[keep]
        sigma = r.std()
        diff = r[:, 0] - r[:, 1]
        if sigma == 0.0:  # every return equal: diff is zero, the step is zero
            return theta.copy()
        step = self.config.step_size / (len(keep) * sigma)
        return theta + step * self.weighted_sum(plan, ks[keep], diff)
