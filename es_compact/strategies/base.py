"""Ask / tell over the flat θ, maximising return. A strategy never touches an environment.

``ask(iteration)`` gives the iteration's directions (a small Plan); ``tell(theta, plan,
returns_n2, valid)`` turns the returns of the antithetic pairs r(θ + νδ_k), r(θ - νδ_k) (shape
(N, 2); rows where ``valid`` is False are dropped) into the next θ.
"""

from __future__ import annotations

import numpy as np

from es_compact.config import StrategyConfig
from es_compact.exploration import Directions, Plan


class Strategy:
    name = "abstract"

    def __init__(self, config: StrategyConfig, directions: Directions):
        self.config = config.check_resolved()
        self.directions = directions

    @property
    def num_directions(self) -> int:
        return int(self.config.directions)

    def ask(self, iteration: int) -> Plan:
        return self.directions.plan(iteration, self.num_directions)

    def tell(self, theta: np.ndarray, plan: Plan, returns_n2: np.ndarray,
             valid: np.ndarray | None = None) -> np.ndarray:
        returns_n2 = np.asarray(returns_n2, dtype=np.float64)
        if valid is None:
            valid = np.ones(len(returns_n2), dtype=bool)
        ks = np.flatnonzero(valid)
        if ks.size == 0:
            return theta.copy()
        return self._tell(theta, plan, ks, returns_n2[ks])

    def _tell(self, theta, plan, ks, returns_n2) -> np.ndarray:
        raise NotImplementedError

    def weighted_sum(self, plan: Plan, ks: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Σ_i weights[i] δ_{ks[i]} in float64, accumulated in order of i."""
        out = np.zeros(self.directions.dim)
        for k, w in zip(ks, weights, strict=True):
            out += w * self.directions.get(plan, int(k))
        return out

    # Optimiser state for checkpoints (arrays and JSON scalars).
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        return {}, {}

    def load(self, arrays: dict, meta: dict) -> None:
        pass
