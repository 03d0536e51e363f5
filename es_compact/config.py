"""Configuration: one tree of frozen dataclasses, every field documented.

The CLI only builds these; the library validates them (``validate()`` raises ConfigError) and a
run writes them out fully resolved.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields

from es_compact.errors import ConfigError

SQUASH_MODES = ("clip", "tanh")
DCNN_INITS = ("paper", "scaled")
ALGOS = ("ars", "es", "pgpe", "snes", "cmaes", "sepcmaes", "cem")
ARS_VARIANTS = ("v1", "v2", "v1t", "v2t")
EXPLORATION = ("gaussian", "orthogonal", "hadamard")
OPTIMIZERS = ("adam", "sgd", "clipup")
BACKENDS = ("serial", "mp", "ray")
CHECKPOINTS = ("best", "latest")
"""The checkpoints a run directory keeps (es_compact.run_dir), by name."""
SECTIONS = ("env", "policy", "strategy", "run", "init")


# Every field is checked for its type as well as its range: a TOML file or a caller can hand in
# anything, and a wrong type must fail here, naming the field, not as a TypeError deep in
# training (or, worse, work: True is an int to Python and "no" is truthy).


def _plain(v):
    """A NumPy scalar (np.int64 from np.arange, np.float32, np.bool_) as the Python value it
    holds, inside tuples too; anything else unchanged. Configs are written as JSON and
    compared field by field, which NumPy scalars would break. NumPy is not imported for this:
    no NumPy scalar exists before NumPy is, and the CLI builds its options from these classes
    without paying for NumPy."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    return v


class _Plain:
    """Base of the config sections: NumPy scalars become Python ones at construction, so
    `RunConfig(seed=seed)` works in `for seed in np.arange(5)` and validates as an int."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if (w := _plain(v)) is not v:
                object.__setattr__(self, f.name, w)


def _is_int(v) -> bool:
    """An integer, not a bool (``directions = true`` is a mistake, not 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (
        isinstance(v, int) or math.isfinite(v))


def _short(v) -> str:
    """repr of a value for a one-line message, cut short."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _require_set(section: str, cfg, names: tuple[str, ...]) -> None:
    unset = [f"{section}.{n}" for n in names if getattr(cfg, n) is None]
    if unset:
        raise ConfigError(f"{', '.join(unset)} {'is' if len(unset) == 1 else 'are'} unset: "
                          "resolve the configuration first (es_compact.presets.resolve fills "
                          "them from the environment's preset)")


def _check_count(name: str, v, optional: bool = False) -> None:
    if not (optional and v is None) and not (_is_int(v) and v >= 1):
        raise ConfigError(f"{name} must be a positive integer, got {_short(v)}")


def _check_bool(name: str, v) -> None:
    if not isinstance(v, bool):
        raise ConfigError(f"{name} must be true or false, got {_short(v)}")


def _check_str(name: str, v, optional: bool = False) -> None:
    if not (optional and v is None) and not isinstance(v, str):
        raise ConfigError(f"{name} must be a string, got {_short(v)}")


@dataclass(frozen=True)
class PolicyConfig(_Plain):
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
    dcnn_init: str = "paper"
    """DCNN: 'paper' draws c_i ~ N(0, 2/n) in every layer (the DCNN paper's Section 5), which
    keeps the output scale at every depth only with a plain ReLU (slope 0) after every layer: a
    leaky ReLU of slope a multiplies the output variance by 1 + a² a layer (1.25 at 0.5), and
    each linear layer doubles it. 'scaled' draws c_i ~ N(0, g/f), f the layer's fan-in (the
    input's dimension for the zero-padded first layer, n after it) and g = 2/(1 + slope²)
    before a leaky ReLU, 1 elsewhere, so every depth and placement starts at one output scale."""
    linear_bias: bool = False
    """linear: add a bias, a = W s + b."""
    output_bias: bool = False
    """MLP architectures: a bias on the output layer too (hidden layers always have one)."""
    squash: str = "clip"
    """Box actions: 'clip' the linear output to the bounds, or 'tanh' to squash it into them."""

    def validate(self, known_archs: tuple[str, ...] | None = None) -> PolicyConfig:
        _check_str("arch", self.arch)
        if known_archs is not None and self.arch not in known_archs:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose from "
                              f"{', '.join(known_archs)}")
        for name in ("hidden", "hidden_layers", "depth", "nonlin_every"):
            _check_count(name, getattr(self, name))
        rot = self.rotations
        if not isinstance(rot, (tuple, list)) or not rot or \
                any(not _is_int(k) or k < 1 for k in rot):
            raise ConfigError(f"rotations must be positive integers (one, or a list of one per "
                              f"weight matrix), got {_short(rot)}")
        if not (_is_real(self.slope) and 0.0 <= self.slope <= 1.0):
            raise ConfigError(f"slope must lie in [0, 1], got {self.slope!r}")
        if not (_is_real(self.bias_std) and self.bias_std >= 0):
            raise ConfigError(f"bias_std must be a finite number >= 0, got {self.bias_std!r}")
        if self.dcnn_init not in DCNN_INITS:
            raise ConfigError(f"dcnn_init must be one of {DCNN_INITS}, got {self.dcnn_init!r}")
        _check_bool("linear_bias", self.linear_bias)
        _check_bool("output_bias", self.output_bias)
        if self.squash not in SQUASH_MODES:
            raise ConfigError(f"squash must be one of {SQUASH_MODES}, got {self.squash!r}")
        return self

    def replace(self, **changes) -> PolicyConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class EnvConfig(_Plain):
    """The environment and how training rewards are shaped."""

    id: str = "HalfCheetah-v5"
    """A gymnasium id, or module:Class for a user's own gymnasium.Env. The paper experiments
    (es_compact.experiments) name their v4 ids themselves."""
    reward_shift: float | None = None
    """Subtracted from every training reward (the survival bonus); None: the preset's value.
    Evaluation returns are never shifted."""
    max_episode_steps: int | None = None
    """Episode length limit; None: the environment spec's own limit."""
    kwargs: tuple[tuple[str, object], ...] = ()
    """Keyword arguments of the environment's constructor (v5's frame_skip, xml_file, reward
    weights), passed to gymnasium.make by every worker, eval and video. Given as a table
    ([env.kwargs] in TOML, a dict in Python; stored sorted by name as (name, value) pairs);
    values are booleans, integers, finite floats, strings or lists of them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kwargs", _kwarg_pairs(self.kwargs))

    def make_kwargs(self) -> dict[str, object]:
        """What gymnasium.make (es_compact.envs.make_env) is called with besides the id."""
        out = dict(self.kwargs)
        if self.max_episode_steps is not None:
            out["max_episode_steps"] = self.max_episode_steps
        return out

    def validate(self) -> EnvConfig:
        _check_str("env id", self.id)
        if not self.id:
            raise ConfigError("an environment id is required")
        # A shift of nan or inf turns every training return into nan: θ would be lost.
        if self.reward_shift is not None and not _is_real(self.reward_shift):
            raise ConfigError(f"reward_shift must be a finite number, got {self.reward_shift!r}")
        _check_count("max_episode_steps", self.max_episode_steps, optional=True)
        _check_kwargs(self.kwargs)
        return self


ENV_KWARGS_RESERVED = {
    "max_episode_steps": "it is its own setting, env.max_episode_steps (--max-episode-steps)",
    "render_mode": "es-compact chooses it (rollouts render nothing; eval --video renders)",
}
"""Keywords of gymnasium.make that env.kwargs may not set, and why."""


def _kwarg_value(v):
    """A list (TOML, JSON) as a tuple, so the configuration stays hashable; else v."""
    return tuple(_plain(x) for x in v) if isinstance(v, list) else _plain(v)


def _kwarg_pairs(kw):
    """env.kwargs as sorted (name, value) pairs: from a dict (TOML, config.json, Python) or a
    sequence of pairs. Anything else is returned as it is, for validate() to name."""
    if isinstance(kw, dict):
        items = list(kw.items())
    elif isinstance(kw, (tuple, list)) and all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in kw):
        items = [tuple(p) for p in kw]
    else:
        return kw
    return tuple(sorted(((k, _kwarg_value(v)) for k, v in items), key=lambda p: str(p[0])))


def _is_kwarg_scalar(v) -> bool:
    return isinstance(v, (bool, str)) or _is_real(v)


def _check_kwargs(kw) -> None:
    if not isinstance(kw, tuple) or any(not isinstance(p, tuple) or len(p) != 2 for p in kw):
        raise ConfigError(f"env kwargs must be a table of name = value, got {_short(kw)}")
    names = [k for k, _ in kw]
    for k, v in kw:
        if not isinstance(k, str) or not k.isidentifier():
            raise ConfigError(f"env kwargs: {_short(k)} is not a keyword name")
        if k in ENV_KWARGS_RESERVED:
            raise ConfigError(f"env kwargs cannot set {k}: {ENV_KWARGS_RESERVED[k]}")
        if not (_is_kwarg_scalar(v) or (isinstance(v, tuple) and
                                        all(_is_kwarg_scalar(x) for x in v))):
            raise ConfigError(f"env kwargs: {k} must be a boolean, an integer, a finite float, "
                              f"a string or a list of them, got {_short(v)}")
    dup = sorted({k for k in names if names.count(k) > 1})
    if dup:
        raise ConfigError(f"env kwargs: {', '.join(dup)} given twice")


def parse_env_kwarg(text: str) -> tuple[str, object]:
    """'frame_skip=2' -> ('frame_skip', 2): the value read as JSON (2, 0.2, true, "2",
    [0.8, 1.5]; True and False too), else taken as a string ('xml_file=./my.xml')."""
    import json

    key, eq, raw = str(text).partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"--env-kwargs takes NAME=VALUE (e.g. frame_skip=2), got {text!r}")
    raw = raw.strip()
    if raw in ("True", "False"):
        return key, raw == "True"
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    return key, _kwarg_value(value)


@dataclass(frozen=True)
class StrategyConfig(_Plain):
    """The evolution strategy, one of ALGOS or a registered name; every one samples mirrored
    pairs θ ± ν (s ⊙ δ_k) and maximises return."""

    algo: str = "ars"
    """'ars' (Mania et al. 2018), 'es' (OpenAI-ES, Salimans et al. 2017), 'pgpe' (Sehnke et al.
    2010, with ClipUp), 'snes' (Schaul et al. 2011), 'cmaes' (Hansen 2016), 'sepcmaes' (its
    diagonal form, Ros and Hansen 2008) or 'cem' (the cross-entropy method)."""
    variant: str = "v2t"
    """ARS variant: v1 (no observation normalisation), v2 (normalised), v1t / v2t (update from
    the top b directions only). The other strategies always normalise observations."""
    step_size: float | None = None
    """Step size α (ARS), learning rate (ES, PGPE's centre), the mean's learning rate (SNES η_μ,
    CMA-ES c_m) or smoothing (CEM); None: the ARS preset, or the strategy's default (ES 0.01,
    SNES, CMA-ES and CEM 1)."""
    directions: int | None = None
    """Antithetic pairs N per iteration (2N candidates); None: the preset."""
    top: int | None = None
    """ARS top-b directions used in the update (b <= N); None: the preset (N for v1/v2)."""
    noise_std: float | None = None
    """Exploration noise ν (ARS, ES), or the initial σ of the strategies that adapt it (PGPE,
    SNES, CMA-ES, CEM); None: the preset."""
    exploration: str = "gaussian"
    """'gaussian' (shared noise table), 'orthogonal' (exactly orthogonal directions within each
    block, norms from the chi distribution) or 'hadamard' (random Hadamard-diagonal products)."""
    optimizer: str | None = None
    """ES: 'adam' (the default) or 'sgd' (with momentum); PGPE: 'clipup' (the default) or
    'adam'."""
    momentum: float = 0.9
    """ES with sgd, PGPE with clipup: momentum coefficient."""
    l2_coeff: float = 0.005
    """ES only: L2 weight decay coefficient."""
    max_speed: float | None = None
    """PGPE with clipup: the largest norm of the velocity; None: twice the step size (Toklu et
    al. 2020)."""
    sigma_lr: float | None = None
    """PGPE: σ's learning rate, SNES: η_σ; None: 0.1 for PGPE (Toklu et al. 2020), (3 + ln d) /
    (5 √d) for SNES (Schaul et al. 2011)."""
    sigma_max_change: float = 0.2
    """PGPE: the largest relative change of each σ per iteration (EvoTorch's default)."""
    elite_fraction: float = 0.5
    """CEM: the fraction of the 2N candidates whose mean and variance become the next
    distribution's (evosax's default)."""
    obs_norm_floor: float = 1e-8
    """Observation variances below this are floored to it, so 0/0 never happens."""

    def validate(self, known_algos: tuple[str, ...] | None = None) -> StrategyConfig:
        """known_algos: the registered strategies' names (default: the built-in ALGOS)."""
        algos = ALGOS if known_algos is None else known_algos
        if self.algo not in algos:
            raise ConfigError(f"unknown algorithm {self.algo!r}; choose from {', '.join(algos)}")
        if self.variant not in ARS_VARIANTS:
            raise ConfigError(f"unknown ARS variant {self.variant!r}; choose from "
                              f"{', '.join(ARS_VARIANTS)}")
        if self.exploration not in EXPLORATION:
            raise ConfigError(f"unknown exploration {self.exploration!r}; choose from "
                              f"{', '.join(EXPLORATION)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose from "
                              f"{', '.join(OPTIMIZERS)}")
        for name in ("step_size", "noise_std", "max_speed", "sigma_lr"):
            v = getattr(self, name)
            if v is not None and not (_is_real(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if not (_is_real(self.sigma_max_change) and 0 < self.sigma_max_change < 1):
            raise ConfigError(f"sigma_max_change must lie in (0, 1), got "
                              f"{self.sigma_max_change!r}")
        if not (_is_real(self.elite_fraction) and 0 < self.elite_fraction <= 1):
            raise ConfigError(f"elite_fraction must lie in (0, 1], got "
                              f"{self.elite_fraction!r}")
        _check_count("directions", self.directions, optional=True)
        _check_count("top", self.top, optional=True)
        if self.directions is not None and self.top is not None and self.top > self.directions:
            raise ConfigError(f"top ({self.top}) cannot exceed directions ({self.directions})")
        uses_top = self.algo == "ars" and self.variant in ("v1t", "v2t")
        if not uses_top and None not in (self.top, self.directions) and \
                self.top != self.directions:
            # v1, v2 and ES update with every direction: a smaller b would be stored, shown
            # and ignored.
            which = f"ARS {self.variant}" if self.algo == "ars" else self.algo.upper()
            raise ConfigError(f"top (b = {self.top}) applies to ARS v1t and v2t only; "
                              f"{which} uses all {self.directions} directions")
        if not (_is_real(self.momentum) and 0 <= self.momentum < 1):
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not (_is_real(self.l2_coeff) and self.l2_coeff >= 0):
            raise ConfigError(f"l2_coeff must be a finite number >= 0, got {self.l2_coeff!r}")
        # Zero would let a constant observation divide 0 by 0.
        if not (_is_real(self.obs_norm_floor) and self.obs_norm_floor > 0):
            raise ConfigError(f"obs_norm_floor must be a positive number, got "
                              f"{self.obs_norm_floor!r}")
        return self

    @property
    def normalizes_obs(self) -> bool:
        return self.algo != "ars" or self.variant in ("v2", "v2t")

    def check_resolved(self) -> StrategyConfig:
        """ConfigError unless every field a strategy reads is set (presets.resolve sets them)."""
        _require_set("strategy", self, ("step_size", "directions", "top", "noise_std"))
        return self


@dataclass(frozen=True)
class RunConfig(_Plain):
    """Budget, evaluation, parallelism and bookkeeping of one training run."""

    seed: int = 0
    """The seed: every random choice (structure, noise, directions, environment seeds) flows
    from it."""
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
    actor_workers: int | None = None
    """Ray: each actor runs a local pool of this many worker processes (the mp backend inside
    the actor: one per CPU it reserves), and the driver sends it a batch of at least this many
    tasks per call, so it pays Ray's per-call cost for workers / actor_workers actors instead of
    one per worker (e.g. one actor per 32-core node). workers must be a multiple of it. None:
    one actor per worker, running rollouts itself."""
    backend: str = "mp"
    """'mp' (persistent worker processes, the default), 'ray' (actors, local or a cluster) or
    'serial' (everything in this process, for debugging)."""
    ray_address: str | None = None
    """Ray: 'auto' or HOST:PORT of an existing cluster; None: start a local one."""
    ray_dashboard: bool = False
    """Ray: start the local Ray with its dashboard (off by default: it costs a process and
    CPU on small machines); a joined cluster keeps its own setting."""
    noise_table_size: int = 25_000_000
    """Float32 entries of the shared noise table (100 MB at the default)."""
    max_failed_fraction: float = 0.5
    """Stop with an error when more than this fraction of an iteration's pairs fail."""
    rollout_timeout: float | None = None
    """Seconds one rollout (an antithetic pair, or an evaluation episode) may take before its
    worker is killed and replaced and the rollout retried with the same environment seed (3
    attempts in all, each with twice the time; then it counts as a failed pair). None: 20x
    the measured step time x the episode's step limit, at least 30 s a chunk of rollouts
    (es_compact.backends.base.Deadlines). mp and ray only: a serial run cannot stop itself."""
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
        for name in ("iterations", "timesteps", "eval_every", "eval_episodes", "workers",
                     "actor_workers"):
            _check_count(name, getattr(self, name), optional=name in (
                "iterations", "timesteps", "workers", "actor_workers"))
        if (self.actor_workers is not None and self.workers is not None
                and self.workers % self.actor_workers):
            raise ConfigError(f"workers ({self.workers}) must be a multiple of actor_workers "
                              f"({self.actor_workers}): each Ray actor runs that many")
        # An infinite time limit is no budget; a nan target can never be reached.
        if self.time_limit is not None and not (_is_real(self.time_limit) and
                                                self.time_limit > 0):
            raise ConfigError(f"time_limit must be a positive number of seconds, got "
                              f"{self.time_limit!r}")
        if self.target_return is not None and not _is_real(self.target_return):
            raise ConfigError(f"target_return must be a finite number, got "
                              f"{self.target_return!r}")
        if not _is_int(self.seed) or self.seed < 0:  # numpy's SeedSequence's domain
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose from "
                              f"{', '.join(BACKENDS)}")
        _check_str("ray_address", self.ray_address, optional=True)
        _check_bool("ray_dashboard", self.ray_dashboard)
        if not (_is_int(self.noise_table_size) and self.noise_table_size >= 1000):
            raise ConfigError(f"noise_table_size must be an integer >= 1000, got "
                              f"{self.noise_table_size!r}")
        if not (_is_real(self.max_failed_fraction) and 0 < self.max_failed_fraction <= 1):
            raise ConfigError(f"max_failed_fraction must lie in (0, 1], got "
                              f"{self.max_failed_fraction!r}")
        if self.rollout_timeout is not None and not (_is_real(self.rollout_timeout) and
                                                     self.rollout_timeout > 0):
            raise ConfigError(f"rollout_timeout must be a positive number of seconds, got "
                              f"{_short(self.rollout_timeout)}")
        if not (_is_real(self.checkpoint_every_s) and self.checkpoint_every_s >= 0):
            raise ConfigError(f"checkpoint_every_s must be a finite number >= 0, got "
                              f"{self.checkpoint_every_s!r}")
        return self


@dataclass(frozen=True)
class InitConfig(_Plain):
    """A warm start: θ and the observation statistics of a trained run's checkpoint start this
    run (es_compact.warm_start); everything else comes from this configuration. The trainer
    records where they came from (iteration, theta_sha256) when the run starts."""

    run_dir: str | None = None
    """The trained run directory whose θ and observation statistics start this run; None: θ
    drawn from the seed, no observations seen. Recorded as its absolute path."""
    checkpoint: str = "best"
    """The source run's checkpoint to start from, 'best' or 'latest'; 'best' falls back to
    'latest' when the run has none, and the one used is recorded."""
    iteration: int | None = None
    """The iteration of the checkpoint started from, recorded when the run starts; given, a
    source whose checkpoint has moved on is refused."""
    theta_sha256: str | None = None
    """SHA-256 of the source θ's little-endian float64 bytes, recorded when the run starts;
    given, a source holding another θ is refused."""

    def validate(self) -> InitConfig:
        _check_str("init.run_dir", self.run_dir, optional=True)
        if self.run_dir == "":
            raise ConfigError("init.run_dir must name a run directory, got ''")
        if self.checkpoint not in CHECKPOINTS:
            raise ConfigError(f"init.checkpoint must be one of {', '.join(CHECKPOINTS)}, got "
                              f"{_short(self.checkpoint)}")
        if self.iteration is not None and not (_is_int(self.iteration) and self.iteration >= 0):
            raise ConfigError(f"init.iteration must be an integer >= 0, got "
                              f"{_short(self.iteration)}")
        sha = self.theta_sha256
        if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and
                                    all(c in "0123456789abcdef" for c in sha)):
            raise ConfigError(f"init.theta_sha256 must be 64 lowercase hex digits, got "
                              f"{_short(sha)}")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; written to config.json fully resolved."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(iterations=100))
    init: InitConfig = field(default_factory=InitConfig)

    def validate(self, known_archs: tuple[str, ...] | None = None,
                 known_algos: tuple[str, ...] | None = None) -> TrainConfig:
        """Check every section. The names of the registered architectures and strategies are
        not known here (config imports neither): presets.resolve passes them."""
        self.env.validate()
        self.policy.validate(known_archs)
        self.strategy.validate(known_algos)
        self.run.validate()
        self.init.validate()
        return self

    def check_resolved(self) -> TrainConfig:
        """ConfigError unless every field the trainer, the strategy and the rollouts read is
        set: what presets.resolve guarantees, checked where a resolved config is relied on."""
        self.strategy.check_resolved()
        _require_set("env", self.env, ("reward_shift",))
        _require_set("run", self.run, ("workers",))
        return self

    def to_dict(self) -> dict:
        """Nested plain dicts, as config.json holds them (env.kwargs as a table)."""
        data = dataclasses.asdict(self)
        data["env"]["kwargs"] = dict(self.env.kwargs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from nested dicts (config.json or a TOML file); unknown keys and sections that
        are not tables are errors. The values are checked by validate()."""
        classes = SECTION_TYPES
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration is a table of the sections {', '.join(SECTIONS)}"
                              f", got {_short(data)}")
        unknown = sorted(str(k) for k in set(data) - set(SECTIONS))
        if unknown:
            # A setting written above every [table] in TOML lands here: say where it belongs.
            homes = [f"{k} belongs in [{s}]" for k in unknown for s in SECTIONS
                     if k in {g.name for g in fields(classes[s])}]
            raise ConfigError(f"unknown config section(s): {', '.join(unknown)}"
                              + (f" ({'; '.join(homes)})" if homes else ""))
        parts = {}
        for name in SECTIONS:
            sub_cls = classes[name]
            sub = data.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"config section {name} must be a table of settings, got "
                                  f"{_short(sub)}")
            sub = dict(sub)
            known = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"unknown {name} setting(s): "
                                  f"{', '.join(sorted(map(str, unknown)))}")
            if "rotations" in sub:
                rot = sub["rotations"]
                # One count for every matrix may be written as a bare integer; anything else
                # that is not a list is left for validate() to name.
                sub["rotations"] = tuple(rot) if isinstance(rot, (list, tuple)) else (
                    (rot,) if _is_int(rot) else rot)
            parts[name] = sub_cls(**sub)
        return cls(**parts)


SECTION_TYPES: dict[str, type] = {"env": EnvConfig, "policy": PolicyConfig,
                                  "strategy": StrategyConfig, "run": RunConfig,
                                  "init": InitConfig}
