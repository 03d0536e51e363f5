"""Ask / tell over the flat θ, maximising return. A strategy never touches an environment.

Every strategy samples mirrored pairs: iteration t's candidates are θ ± ν (s ⊙ δ_k) for
k < N, with δ_k from :class:`~es_compact.exploration.Directions` (regenerated from (seed, t, k)
wherever it is needed) or carried in the plan (``Plan.vectors``), ν and the per-parameter scale
s from :meth:`Strategy.noise`. Fitness is maximised everywhere.

The trainer's protocol:

- ``load(arrays, meta)`` the strategy's state (σ, moments, paths; what ``state()`` returned);
- ``ask(iteration)`` gives the iteration's plan (small: table offsets or block seeds, or the
  directions themselves where they cannot be regenerated), ``noise()`` its ν and s;
- ``tell(theta, plan, returns_n2, valid)`` turns the returns r(θ + ν s⊙δ_k), r(θ - ν s⊙δ_k)
  (shape (N, 2); rows where ``valid`` is False are dropped) into the next θ;
- ``state()`` gives the state back for the checkpoint (arrays and JSON scalars).

:class:`es_compact.strategies.ask_tell.AskTell` drives the same objects on any NumPy blackbox.
"""

from __future__ import annotations

import numpy as np

from es_compact.config import StrategyConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan


class Strategy:
    name = "abstract"
    default_step_size: float | None = None
    """step_size when the configuration leaves it open; None: the environment preset's (ARS)."""
    optimizers: tuple[str, ...] = ()
    """The optimizers this strategy accepts, the first being its default (empty: none)."""
    min_directions = 1
    """The fewest antithetic pairs N per iteration the strategy's update is defined for."""

    def __init__(self, config: StrategyConfig, directions: Directions):
        self.config = config.check_resolved()
        self.directions = directions
        self.check_dim(self.config, directions.dim)

    @classmethod
    def check_config(cls, config: StrategyConfig) -> None:
        """ConfigError for settings this strategy cannot run with (called by resolve())."""
        if config.directions is not None and config.directions < cls.min_directions:
            raise ConfigError(f"{cls.name} needs at least {cls.min_directions} antithetic "
                              f"pairs per iteration ({2 * cls.min_directions} candidates), got "
                              f"directions = {config.directions}")
        if config.optimizer is not None and config.optimizer not in cls.optimizers:
            if not cls.optimizers:
                return  # a stored configuration's optimizer this strategy never reads
            raise ConfigError(f"optimizer {config.optimizer!r} is not one of {cls.name}'s: "
                              f"{', '.join(cls.optimizers)}")

    @classmethod
    def check_dim(cls, config: StrategyConfig, dim: int) -> None:
        """ConfigError when dim parameters cannot be optimised this way (e.g. a covariance that
        would not fit in memory); called before a run writes anything."""

    @property
    def optimizer(self) -> str | None:
        """config.optimizer, or this strategy's default when the configuration leaves it open."""
        if self.config.optimizer is not None or not self.optimizers:
            return self.config.optimizer
        return self.optimizers[0]

    @property
    def num_directions(self) -> int:
        return int(self.config.directions)

    def ask(self, iteration: int) -> Plan:
        return self.directions.plan(iteration, self.num_directions)

    def noise(self) -> tuple[float, np.ndarray | None]:
        """(ν, s) of this iteration's candidates θ ± ν (s ⊙ δ_k); s is None for a scalar ν."""
        return float(self.config.noise_std), None

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
