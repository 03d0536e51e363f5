"""Configuration: one tree of frozen dataclasses, every field documented.

The CLI only builds these; the library validates them (``validate()`` raises ConfigError) and a
run writes them out fully resolved.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from es_compact.errors import ConfigError

SQUASH_MODES = ("clip", "tanh")
ALGOS = ("ars", "es")
ARS_VARIANTS = ("v1", "v2", "v1t", "v2t")
EXPLORATION = ("gaussian", "orthogonal", "hadamard")
OPTIMIZERS = ("adam", "sgd")
BACKENDS = ("serial", "mp", "ray")


@dataclass(frozen=True)
class PolicyConfig:
    """Shape and structure of a policy (see es_compact.policies for the architectures)."""

    arch: str = "kama"
    """Architecture name: linear, dense, toeplitz, kama or dcnn."""
    hidden: int = 64
    """Hidden width h of the MLP architectures (dense, toeplitz, kama); DCNN width is
    max(obs, hidden, act)."""
    hidden_layers: int = 2
    """Number of hidden layers of the MLP architectures: obs -> h -> h -> act by default."""
    rotations: tuple[int, ...] = (200,)
    """KAMA rotations K: one value for every weight matrix, or one value per matrix."""
    depth: int = 4
    """DCNN: number of diagonal-circulant layers L."""
    nonlin_every: int = 3
    """DCNN: a leaky ReLU after every k-th layer (never after the last, which is linear)."""
    slope: float = 0.5
    """DCNN: negative-side slope of the leaky ReLU."""
    bias_std: float = 0.01
    """DCNN: standard deviation σ' of the initial biases."""
    linear_bias: bool = False
    """linear: add a bias, a = W s + b."""
    output_bias: bool = False
    """MLP architectures: a bias on the output layer too (hidden layers always have one)."""
    squash: str = "clip"
    """Box actions: 'clip' the linear output to the bounds, or 'tanh' to squash it into them."""

    def validate(self, known_archs: tuple[str, ...] | None = None) -> PolicyConfig:
        if known_archs is not None and self.arch not in known_archs:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose from "
                              f"{', '.join(known_archs)}")
        for name in ("hidden", "hidden_layers", "depth", "nonlin_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        rotations = tuple(self.rotations)
        if not rotations or any(not isinstance(k, int) or k < 1 for k in rotations):
            raise ConfigError(f"rotations must be positive integers, got {self.rotations!r}")
        if not 0.0 <= self.slope <= 1.0:
            raise ConfigError(f"slope must lie in [0, 1], got {self.slope}")
        if self.bias_std < 0:
            raise ConfigError(f"bias_std must be >= 0, got {self.bias_std}")
        if self.squash not in SQUASH_MODES:
            raise ConfigError(f"squash must be one of {SQUASH_MODES}, got {self.squash!r}")
        return self

    def replace(self, **changes) -> PolicyConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class EnvConfig:
    """The environment and how training rewards are shaped."""

    id: str = "HalfCheetah-v4"
    """A gymnasium id, or ``module:Class`` for a user's own gymnasium.Env."""
    reward_shift: float | None = None
    """Subtracted from every training reward (the survival bonus); None: the preset's value.
    Evaluation returns are never shifted."""
    max_episode_steps: int | None = None
    """Episode length limit; None: the environment spec's own limit."""

    def validate(self) -> EnvConfig:
        if not self.id:
            raise ConfigError("an environment id is required")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps must be positive, got {self.max_episode_steps}")
        return self


@dataclass(frozen=True)
class StrategyConfig:
    """The evolution strategy: ARS (Mania et al. 2018) or OpenAI-ES (Salimans et al. 2017)."""

    algo: str = "ars"
    """'ars' or 'es'."""
    variant: str = "v2t"
    """ARS variant: v1 (no observation normalisation), v2 (normalised), v1t / v2t (update from
    the top b directions only). Ignored by 'es', which always normalises observations."""
    step_size: float | None = None
    """Step size α (ARS) or learning rate (ES); None: the environment preset."""
    directions: int | None = None
    """Antithetic directions N per iteration; None: the preset."""
    top: int | None = None
    """ARS top-b directions used in the update (b <= N); None: the preset (N for v1/v2)."""
    noise_std: float | None = None
    """Exploration noise ν; None: the preset."""
    exploration: str = "gaussian"
    """'gaussian' (shared noise table), 'orthogonal' (exactly orthogonal directions within each
    block, norms from the chi distribution) or 'hadamard' (random Hadamard-diagonal products)."""
    optimizer: str = "adam"
    """ES only: 'adam' or 'sgd' (with momentum)."""
    momentum: float = 0.9
    """ES with sgd: momentum coefficient."""
    l2_coeff: float = 0.005
    """ES only: L2 weight decay coefficient."""
    obs_norm_floor: float = 1e-8
    """Observation variances below this are floored to it, so 0/0 never happens."""

    def validate(self) -> StrategyConfig:
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown algorithm {self.algo!r}; choose from {', '.join(ALGOS)}")
        if self.variant not in ARS_VARIANTS:
            raise ConfigError(f"unknown ARS variant {self.variant!r}; choose from "
                              f"{', '.join(ARS_VARIANTS)}")
        if self.exploration not in EXPLORATION:
            raise ConfigError(f"unknown exploration {self.exploration!r}; choose from "
                              f"{', '.join(EXPLORATION)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose from "
                              f"{', '.join(OPTIMIZERS)}")
        for name in ("step_size", "noise_std"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"{name} must be positive, got {v}")
        if self.directions is not None and self.directions < 1:
            raise ConfigError(f"directions must be a positive integer, got {self.directions}")
        if self.top is not None and self.top < 1:
            raise ConfigError(f"top must be a positive integer, got {self.top}")
        if self.directions is not None and self.top is not None and self.top > self.directions:
            raise ConfigError(f"top ({self.top}) cannot exceed directions ({self.directions})")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.l2_coeff < 0:
            raise ConfigError(f"l2_coeff must be >= 0, got {self.l2_coeff}")
        return self

    @property
    def normalizes_obs(self) -> bool:
        return self.algo == "es" or self.variant in ("v2", "v2t")


@dataclass(frozen=True)
class RunConfig:
    """Budget, evaluation, parallelism and bookkeeping of one training run."""

    seed: int = 0
    """Every random choice (structure, noise, directions, environment seeds) flows from it."""
    iterations: int | None = None
    """Stop after this many iterations."""
    timesteps: int | None = None
    """Stop once this many training environment steps were taken."""
    time_limit: float | None = None
    """Stop after this many seconds of wall time (breaks bitwise determinism, by nature)."""
    target_return: float | None = None
    """Stop once an evaluation's mean return reaches this (e.g. 1000 on InvertedPendulum)."""
    eval_every: int = 10
    """Evaluate the noiseless policy every E iterations (and at the last one)."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    workers: int | None = None
    """Rollout workers (processes or Ray actors); None: one per CPU core."""
    backend: str = "mp"
    """'mp' (persistent worker processes, the default), 'ray' (actors, local or a cluster) or
    'serial' (everything in this process, for debugging)."""
    ray_address: str | None = None
    """Ray: 'auto' or HOST:PORT of an existing cluster; None starts a local one."""
    ray_dashboard: bool = False
    """Ray: start the local Ray with its dashboard (off by default: it costs a process and
    CPU on small machines); a joined cluster keeps its own setting."""
    noise_table_size: int = 25_000_000
    """Float32 entries of the shared noise table (100 MB at the default)."""
    max_failed_fraction: float = 0.5
    """Stop with an error when more than this fraction of an iteration's pairs fail."""
    checkpoint_every_s: float = 30.0
    """Write checkpoints/latest at most this often, in seconds (0: after every iteration).
    It is always written after the first and the last iteration and, from the last finished
    iteration, when training stops on an error, Ctrl-C or SIGTERM; only a hard kill (SIGKILL,
    power loss) loses up to this much training, which a resume redoes bitwise identically.
    A write (two fsyncs) took ~5 ms on a quiet machine and ~30 ms while other runs wrote to the
    same disk, against ~50 ms for a short InvertedDoublePendulum iteration (bench checkpoint)."""

    def validate(self) -> RunConfig:
        if self.iterations is None and self.timesteps is None and self.time_limit is None:
            raise ConfigError("give a budget: iterations, timesteps or time_limit")
        for name in ("iterations", "timesteps", "eval_every", "eval_episodes", "workers"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time_limit must be positive, got {self.time_limit}")
        if not isinstance(self.seed, int) or self.seed < 0:  # numpy's SeedSequence's domain
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose from "
                              f"{', '.join(BACKENDS)}")
        if self.noise_table_size < 1000:
            raise ConfigError(f"noise_table_size must be >= 1000, got {self.noise_table_size}")
        if not 0 < self.max_failed_fraction <= 1:
            raise ConfigError("max_failed_fraction must lie in (0, 1]")
        if not 0 <= self.checkpoint_every_s < math.inf:
            raise ConfigError(f"checkpoint_every_s must be a finite number >= 0, got "
                              f"{self.checkpoint_every_s}")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; written to config.json fully resolved."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(iterations=100))

    def validate(self) -> TrainConfig:
        from es_compact.policies import ARCHITECTURES

        self.env.validate()
        self.policy.validate(tuple(ARCHITECTURES))
        self.strategy.validate()
        self.run.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from nested dicts (config.json or a TOML file); unknown keys are errors."""
        parts = {}
        for f in fields(cls):
            sub_cls = {"env": EnvConfig, "policy": PolicyConfig, "strategy": StrategyConfig,
                       "run": RunConfig}[f.name]
            sub = dict(data.get(f.name, {}))
            known = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"unknown {f.name} setting(s): {', '.join(sorted(unknown))}")
            if "rotations" in sub:
                rot = sub["rotations"]
                sub["rotations"] = tuple(rot) if isinstance(rot, (list, tuple)) else (int(rot),)
            parts[f.name] = sub_cls(**sub)
        unknown = set(data) - {"env", "policy", "strategy", "run"}
        if unknown:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
        return cls(**parts)
