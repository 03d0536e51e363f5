"""Every registered strategy on any NumPy blackbox, in the ask / tell shape of pycma and evosax.

    es = AskTell("cmaes", x0=np.zeros(10), seed=0, sigma=0.5)
    while es.iteration < 300:
        X = es.ask()                  # (2N, d) candidates: rows 2k and 2k + 1 are a mirrored pair
        es.tell(-np.sum(X**2, axis=1))  # their fitness, maximised
    es.mean                           # the distribution's centre θ

The object wraps the same :class:`~es_compact.strategies.base.Strategy` the trainer drives, with
the same directions (regenerated from (seed, iteration, k)) and the same candidate formula
(:func:`es_compact.exploration.perturb`), so a strategy behaves here as it does in training.
Fitness is maximised; a candidate whose fitness is not finite drops its pair from the update, as
a failed rollout does. ``state()`` / ``from_state()`` and ``save()`` / ``load()`` (npz + json,
no pickle) restore a strategy that continues bitwise identically.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from es_compact import checkpoint
from es_compact.config import EXPLORATION, StrategyConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan, perturb
from es_compact.noise import NoiseTable, build_table

KIND = "es-compact-ask-tell/1"
DEFAULT_STEP_SIZE = 0.02
"""step_size of a strategy whose default is the environment preset's (ARS): the DEFAULT preset."""


def default_popsize(dim: int, min_directions: int = 1) -> int:
    """4 + ⌊3 ln d⌋ (Hansen 2016), rounded up to an even number of at least 2 min_directions."""
    lam = 4 + int(3 * math.log(dim))
    return max(2 * min_directions, lam + lam % 2)


class AskTell:
    """A strategy over a float64 vector of len(x0) parameters, started at x0.

    popsize: candidates per iteration, even (mirrored pairs); None: :func:`default_popsize`.
    sigma: the exploration noise ν, or the initial σ of a strategy that adapts it. Other
    keywords are StrategyConfig fields (step_size, optimizer, elite_fraction, ...)."""

    def __init__(self, algo: str, x0, seed: int = 0, *, popsize: int | None = None,
                 sigma: float = 0.1, exploration: str = "gaussian",
                 noise_table_size: int | None = None, **settings):
        from es_compact.strategies import STRATEGIES

        if algo not in STRATEGIES:
            raise ConfigError(f"unknown algorithm {algo!r}; choose from {', '.join(STRATEGIES)}")
        cls = STRATEGIES[algo]
        theta = np.array(x0, dtype=np.float64).reshape(-1)
        if theta.size == 0 or not np.isfinite(theta).all():
            raise ConfigError("x0 must be a non-empty vector of finite numbers")
        if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        dim = theta.size
        if popsize is None:
            popsize = default_popsize(dim, cls.min_directions)
        if not (isinstance(popsize, (int, np.integer)) and not isinstance(popsize, bool)
                and popsize >= 2 and popsize % 2 == 0):
            raise ConfigError(f"popsize must be an even integer >= 2 (mirrored pairs), got "
                              f"{popsize!r}")
        unknown = set(settings) - {f.name for f in dataclasses.fields(StrategyConfig)}
        if unknown or {"algo", "directions", "noise_std"} & set(settings):
            bad = sorted(unknown | ({"algo", "directions", "noise_std"} & set(settings)))
            raise ConfigError(f"unknown or reserved setting(s) {', '.join(bad)} (population "
                              "and noise are popsize and sigma)")
        if exploration not in EXPLORATION:
            raise ConfigError(f"unknown exploration {exploration!r}; choose from "
                              f"{', '.join(EXPLORATION)}")
        n = int(popsize) // 2
        step = settings.pop("step_size", None)
        if step is None:
            step = cls.default_step_size or DEFAULT_STEP_SIZE
        settings.setdefault("top", n)
        if settings.get("optimizer") is None and cls.optimizers:
            settings["optimizer"] = cls.optimizers[0]
        config = StrategyConfig(algo=algo, directions=n, step_size=step, noise_std=sigma,
                                exploration=exploration, **settings)
        config.validate(tuple(STRATEGIES))
        cls.check_config(config)
        table = None
        if exploration == "gaussian":
            size = int(noise_table_size or max(1 << 20, 64 * dim))
            table = NoiseTable(build_table(int(seed), size))
        self.seed, self.noise_table_size = int(seed), (len(table) if table else None)
        self.strategy = cls(config, Directions(exploration, int(seed), dim, table))
        self.theta = theta
        self.iteration = 0
        self._plan: Plan | None = None

    @property
    def config(self) -> StrategyConfig:
        return self.strategy.config

    @property
    def popsize(self) -> int:
        return 2 * self.strategy.num_directions

    @property
    def mean(self) -> np.ndarray:
        """The distribution's centre θ (a copy)."""
        return self.theta.copy()

    def _current_plan(self) -> Plan:
        if self._plan is None or self._plan.iteration != self.iteration:
            self._plan = self.strategy.ask(self.iteration)
        return self._plan

    def ask(self) -> np.ndarray:
        """The iteration's candidates, shape (popsize, d): row 2k is θ + ν (s ⊙ δ_k), row 2k + 1
        is θ - ν (s ⊙ δ_k). Asking twice without a tell gives the same candidates."""
        plan = self._current_plan()
        nu, scale = self.strategy.noise()
        X = np.empty((self.popsize, self.theta.size))
        for k in range(plan.count):
            delta = self.strategy.directions.get(plan, k)
            X[2 * k] = perturb(self.theta, 1.0, nu, scale, delta)
            X[2 * k + 1] = perturb(self.theta, -1.0, nu, scale, delta)
        return X

    def tell(self, fitness) -> None:
        """Update from the fitness of ask()'s candidates, in their order (maximised)."""
        f = np.asarray(fitness, dtype=np.float64).reshape(-1)
        if f.size != self.popsize:
            raise ValueError(f"tell() needs {self.popsize} fitness values (one per candidate "
                             f"of ask()), got {f.size}")
        returns_n2 = f.reshape(-1, 2)
        valid = np.isfinite(returns_n2).all(axis=1)
        self.theta = self.strategy.tell(self.theta, self._current_plan(), returns_n2, valid)
        self.iteration += 1

    # State --------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, JSON scalars) from which from_state() rebuilds this object exactly."""
        arrays, meta = self.strategy.state()
        return ({"theta": self.theta.copy(), **{k: np.array(v) for k, v in arrays.items()}},
                {"kind": KIND, "iteration": self.iteration, "seed": self.seed,
                 "noise_table_size": self.noise_table_size,
                 "config": dataclasses.asdict(self.config), "strategy": dict(meta)})

    @classmethod
    def from_state(cls, arrays: dict, meta: dict) -> AskTell:
        if meta.get("kind") != KIND:
            raise ConfigError(f"not an ask/tell state (kind {meta.get('kind')!r})")
        c = dict(meta["config"])
        n, sigma, algo = c.pop("directions"), c.pop("noise_std"), c.pop("algo")
        obj = cls(algo, arrays["theta"], meta["seed"], popsize=2 * n, sigma=sigma,
                  noise_table_size=meta["noise_table_size"], **c)
        obj.strategy.load({k: v for k, v in arrays.items() if k != "theta"}, meta["strategy"])
        obj.iteration = int(meta["iteration"])
        return obj

    def save(self, directory: str | Path, name: str = "strategy") -> Path:
        """Write the state as ``directory/name.json`` + a checksummed npz (atomically)."""
        arrays, meta = self.state()
        return checkpoint.save(directory, name, arrays, meta)

    @classmethod
    def load(cls, directory: str | Path, name: str = "strategy") -> AskTell:
        arrays, meta = checkpoint.load(directory, name)
        return cls.from_state(arrays, meta)
