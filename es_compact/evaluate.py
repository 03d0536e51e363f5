"""Evaluate a trained run: noiseless episodes with the checkpoint's frozen observation statistics.

``load_run(dir, "best")`` rebuilds the policy from ``config.json`` and reads θ and the
observation statistics from ``checkpoints/best``; ``evaluate`` runs episodes through the same
rollout code as training's evaluation and returns the unshifted returns. The statistics are
read, never updated. Episode e uses the seed ``env_seed(seed, iteration, e, EVAL)`` with the
checkpoint's iteration, so with the run's own seed and ``eval_episodes`` episodes it repeats
the evaluation the trainer logged for that checkpoint exactly.

``load_run(dir, name, env_id="HalfCheetah-v5")`` evaluates the policy on another environment
(another id, other settings: ``env_kwargs`` replaces the run's settings of those names) whose
observation and action spaces have the run's shapes, a v4 -> v5 transfer; anything else is a
SpaceError naming both shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_compact.checkpoint import CheckpointError
from es_compact.checks import integer, is_integer
from es_compact.config import TrainConfig
from es_compact.envs import env_spaces
from es_compact.errors import ConfigError, SpaceError
from es_compact.normalizer import RunningStat
from es_compact.policies import Policy, make_policy
from es_compact.rollout import EVAL, RolloutWorker, env_seed
from es_compact.run_dir import CHECKPOINT_NAMES as CHECKPOINTS
from es_compact.run_dir import RunDir
from es_compact.state import OBS_KEYS


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """A run directory's configuration, policy and one checkpoint's parameters."""

    run_dir: Path
    name: str
    config: TrainConfig
    policy: Policy
    theta: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    meta: dict

    @property
    def iteration(self) -> int:
        return int(self.meta["iteration"])


def choose_checkpoint(run: RunDir, name: str | None) -> str:
    """The checkpoint to read: name itself, or with name None 'best' and, when a run has no
    'best' yet (it trained fewer iterations than eval_every and its final evaluation did not
    make one), 'latest'. CheckpointError naming the checkpoints present when there is none."""
    present = [n for n in CHECKPOINTS if run.has_checkpoint(n)]
    if name is None and present:
        return present[0]  # CHECKPOINTS lists best first
    if name is not None and name in present:
        return name
    have = f"it has {' and '.join(present)}" if present else "it has none (nothing trained)"
    raise CheckpointError(f"no checkpoint '{name or 'best'}' in {run.checkpoints}: {have}")


def load_run(run_dir: str | Path, name: str | None = "best", env_id: str | None = None,
             env_kwargs: dict | None = None) -> LoadedRun:
    """Read config.json and checkpoints/NAME; ConfigError or CheckpointError if unusable.
    name None: 'best', or 'latest' when there is no 'best' (the loaded run's name says which).

    env_id, env_kwargs: evaluate on this environment instead (the run's id and settings where
    None; env_kwargs overrides the run's settings of the same names), which must have the
    run's observation and action shapes (SpaceError). The loaded config names it."""
    if name is not None and name not in CHECKPOINTS:
        raise ConfigError(f"unknown checkpoint {name!r}: choose {' or '.join(CHECKPOINTS)}")
    run = RunDir(run_dir)
    config = run.read_config()
    if name is None or (not run.has_checkpoint(name) and run.has_checkpoint("latest")):
        name = choose_checkpoint(run, name)
    arrays, meta = run.load_checkpoint(name)
    obs_space, act_space = env_spaces(config.env.id, **config.env.make_kwargs())
    if env_id is not None or env_kwargs:
        env = dataclasses.replace(config.env, id=config.env.id if env_id is None else env_id,
                                  kwargs={**dict(config.env.kwargs), **(env_kwargs or {})})
        env.validate()
        if env != config.env:
            try:
                spaces = env_spaces(env.id, **env.make_kwargs())
            except ConfigError as exc:
                if env_id is None or not set(dict(config.env.kwargs)) - set(env_kwargs or {}):
                    raise
                raise ConfigError(f"{exc} (the run's environment settings carry over to "
                                  "another environment)") from None
            check_transfer(config.env.id, (obs_space, act_space), env.id, spaces)
            obs_space, act_space = spaces
            config = dataclasses.replace(config, env=env)
    policy = make_policy(config.policy, obs_space, act_space, seed=config.run.seed)
    missing = {"theta", *OBS_KEYS} - set(arrays)
    if missing:
        raise CheckpointError(f"checkpoint {run.npz_path(name)} lacks "
                              f"{', '.join(sorted(missing))}")
    if arrays["theta"].shape != (policy.num_params,):
        raise CheckpointError(
            f"checkpoint θ has shape {arrays['theta'].shape}, but the {config.policy.arch} "
            f"policy of {run.config_path} has {policy.num_params} parameters")
    theta = policy.check(arrays["theta"].astype(np.float64))
    if config.strategy.normalizes_obs:
        stats = RunningStat(policy.obs_dim, config.strategy.obs_norm_floor)
        stats.load(arrays)
        mean, std = stats.frozen()
    else:  # V1: the policy never saw normalised observations
        mean, std = np.zeros(policy.obs_dim), np.ones(policy.obs_dim)
    return LoadedRun(run.path, name, config, policy, theta, mean, std, meta)


def _shape(space) -> str:
    """'Box (17,)', 'Discrete 2': what a policy built for the space depends on."""
    n = getattr(space, "n", None)
    if n is not None and not getattr(space, "shape", ()):
        return f"{type(space).__name__} {int(n)}"
    return f"{type(space).__name__} {tuple(space.shape or ())}"


def check_transfer(trained_on: str, trained_spaces, env_id: str, spaces) -> None:
    """SpaceError unless a policy trained on trained_on's (observation, action) spaces can act
    in env_id's: the same kinds and shapes (bounds may differ: actions are clipped, or
    squashed, into the new environment's)."""
    for what, a, b in zip(("observations", "actions"), trained_spaces, spaces, strict=True):
        if _shape(a) != _shape(b):
            raise SpaceError(f"cannot evaluate on {env_id}: its {what} are {_shape(b)}, the "
                             f"policy's ({trained_on}) {_shape(a)}")


def _check_count_and_seed(episodes, seed) -> None:
    # 2.5 or '3' would fail deep in numpy or the loop; SeedSequence takes non-negative
    # integers only.
    if integer("episodes", episodes) < 1:
        raise ConfigError(f"--episodes must be positive, got {episodes}")
    if seed is not None and (not is_integer(seed) or seed < 0):
        raise ConfigError(f"seed must be None or an integer >= 0, got {seed!r}")


def episode_seeds(run: LoadedRun, episodes: int, seed: int | None = None) -> list[int]:
    """Environment seeds of evaluation episodes 0..episodes-1 (seed defaults to the run's)."""
    _check_count_and_seed(episodes, seed)
    s = run.config.run.seed if seed is None else seed
    return [env_seed(s, run.iteration, e, EVAL) for e in range(episodes)]


def eval_worker(run: LoadedRun) -> RolloutWorker:
    # Evaluation draws no directions, so the worker needs no noise table: ask for table-free
    # exploration; nothing else in the configuration changes what an episode does.
    strategy = dataclasses.replace(run.config.strategy, exploration="orthogonal")
    return RolloutWorker(dataclasses.replace(run.config, strategy=strategy), None)


def standard_error(returns: np.ndarray) -> float:
    """Standard error of the mean of returns: sample std (ddof 1) / sqrt(n); nan below 2."""
    n = returns.size
    return float(returns.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("nan")


def evaluate(run: LoadedRun, episodes: int = 10, seed: int | None = None) -> dict:
    """Run noiseless episodes; returns {returns, steps, failed, seeds} (returns unshifted)."""
    _check_count_and_seed(episodes, seed)
    return _run_episodes(run, episode_seeds(run, episodes, seed), lambda rets: False)


def _run_episodes(run: LoadedRun, seeds: list[int], enough, batch: int | None = None) -> dict:
    """Episodes of seeds in order; after every batch of them, stop early if enough(returns)."""
    worker = eval_worker(run)
    actor = run.policy.actor(run.theta, run.obs_mean, run.obs_std)
    returns, steps, failed = [], [], []
    ran = 0
    try:
        for s in seeds:
            ret, t, _, err = worker.episode(actor, s, record=False)
            ran += 1
            if err:
                failed.append(err)
            else:
                returns.append(ret)
                steps.append(t)
            if batch is not None and ran % batch == 0 and enough(np.array(returns)):
                break
    finally:
        worker.close()
    return {"returns": np.array(returns), "steps": np.array(steps, dtype=np.int64),
            "failed": failed, "seeds": seeds[:ran]}


def evaluate_to_precision(run: LoadedRun, precision: float = 0.01, min_episodes: int = 10,
                          max_episodes: int = 200, batch: int = 10,
                          seed: int | None = None) -> dict:
    """Episodes in batches of batch until the standard error of the mean return is at most
    precision * |mean| (and at least min_episodes ran), or max_episodes ran. Episode e has the
    seed it has in evaluate(), so the first n episodes are evaluate(run, n)'s. Returns
    evaluate()'s record and "precision_met" (whether the rule, not the cap, stopped it)."""
    if not precision > 0:
        raise ConfigError(f"precision must be positive, got {precision}")
    _check_count_and_seed(min_episodes, seed)
    _check_count_and_seed(max_episodes, seed)
    if integer("batch", batch) < 1 or min_episodes > max_episodes:
        raise ConfigError(f"need batch >= 1 and min episodes ({min_episodes}) <= max episodes "
                          f"({max_episodes})")

    def met(rets: np.ndarray) -> bool:
        return (rets.size >= max(min_episodes, 2)
                and standard_error(rets) <= precision * abs(float(rets.mean())))

    res = _run_episodes(run, episode_seeds(run, max_episodes, seed), met, batch)
    return {**res, "precision_met": met(res["returns"])}
