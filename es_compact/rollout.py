"""Rollouts: the only place that steps environments.

A worker is set up once (environment, policy, directions, noise table) and then, per iteration,
receives one Broadcast (θ, frozen observation statistics, ν: the only parameter-sized message)
and a list of small Tasks; it returns one small Result per task. Environment seeds travel in the
tasks and derive from (seed, iteration, index) on the driver, never from a worker's identity.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from es_compact.config import TrainConfig
from es_compact.envs import make_env
from es_compact.exploration import Directions, Plan, perturb
from es_compact.fast_envs import fast_step
from es_compact.noise import NoiseTable
from es_compact.normalizer import RunningStat
from es_compact.policies import kernels as K
from es_compact.policies import make_policy
from es_compact.seed_hash import first_state_word, words

TRAIN, EVAL = 0, 1
_F64 = np.dtype(np.float64)
ENV_STREAM, EVAL_STREAM = 0xE5E5, 0xE7A1


def env_seed(seed: int, iteration: int, index: int, kind: int) -> int:
    stream = ENV_STREAM if kind == TRAIN else EVAL_STREAM
    return int(np.random.SeedSequence([int(seed), iteration, index, stream]).generate_state(1)[0])


def env_seeds(seed: int, iteration: int, count: int, kind: int) -> list[int]:
    """[env_seed(seed, iteration, k, kind) for k in range(count)], bitwise, in one pass of
    array arithmetic (es_compact.seed_hash) instead of a SeedSequence per index."""
    if count > 1 << 32:  # an index of two words: not worth an array path
        return [env_seed(seed, iteration, k, kind) for k in range(count)]
    stream = ENV_STREAM if kind == TRAIN else EVAL_STREAM
    index = np.arange(count, dtype=np.uint32)
    return first_state_word([*words(int(seed)), *words(int(iteration)), index,
                             *words(stream)]).tolist()


@dataclass(frozen=True)
class Task:
    """One antithetic pair (kind TRAIN, index = direction k) or one evaluation episode."""

    kind: int
    index: int
    env_seed: int


@dataclass(frozen=True, eq=False)
class Broadcast:
    """What every worker needs for one iteration."""

    iteration: int
    theta: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    noise_std: float
    plan: Plan | None
    scale: np.ndarray | None = None
    """Per-parameter scale s of the perturbations θ ± ν (s ⊙ δ_k) (None: s = 1), for
    strategies that adapt a σ per parameter (PGPE, SNES, CEM, separable CMA-ES)."""


@dataclass(frozen=True, eq=False)
class Result:
    """Returns and steps of the task's episodes ((+, -) for a pair, one entry for an eval),
    observation moments (count, mean, M2) of a training pair, and whether it failed."""

    kind: int
    index: int
    returns: np.ndarray
    steps: np.ndarray
    obs_count: int = 0
    obs_mean: np.ndarray | None = None
    obs_m2: np.ndarray | None = None
    failed: bool = False
    error: str = ""
    env_seconds: float = 0.0
    """Time spent inside the environment's reset and step (the rest is our overhead)."""
    busy_seconds: float = 0.0
    """Time the worker spent on the whole task."""


class Results(list):
    """A chunk's results, as a list; pickled (a worker's reply) as one array per field instead
    of an object and four arrays per result, which cost the driver tens of microseconds a
    result to unpickle. Unpickled, it is again a Results of equal Result records."""

    def __reduce__(self):
        packed = _pack(self)
        if packed is None:  # not of one shape: as a plain list
            return (Results, (list(self),))
        return (_unpack, packed)


def _pack(results: list[Result]):
    """(scalars, arrays, errors) of results of one kind and shape, or None."""
    if not results:
        return None
    first = results[0]
    shapes = {(np.shape(r.returns), np.shape(r.steps)) for r in results}
    obs = {np.shape(r.obs_mean) for r in results if r.obs_mean is not None}
    obs2 = {np.shape(r.obs_m2) for r in results if r.obs_m2 is not None}
    if len(shapes) != 1 or len(obs) > 1 or obs != obs2 or not all(
            type(r.returns) is np.ndarray and r.returns.dtype == _F64
            and type(r.steps) is np.ndarray and r.steps.dtype == first.steps.dtype
            and (r.obs_mean is None) == (r.obs_m2 is None)
            and (r.obs_mean is None or (r.obs_mean.dtype == _F64 and r.obs_m2.dtype == _F64))
            for r in results):
        return None
    has = [r.obs_mean is not None for r in results]
    dim = obs.pop()[0] if obs else 0
    zeros = np.zeros(dim)
    scalars = [(r.kind, r.index, r.obs_count, h, r.failed, r.env_seconds, r.busy_seconds)
               for r, h in zip(results, has, strict=True)]
    arrays = (np.array([r.returns for r in results]), np.array([r.steps for r in results]),
              np.array([r.obs_mean if h else zeros for r, h in zip(results, has, strict=True)]),
              np.array([r.obs_m2 if h else zeros for r, h in zip(results, has, strict=True)]))
    errors = {j: r.error for j, r in enumerate(results) if r.error}
    return scalars, arrays, errors


def _unpack(scalars, arrays, errors) -> Results:
    R, S, M, Q = arrays
    return Results(
        Result(kind, index, R[j], S[j], count, M[j] if has else None, Q[j] if has else None,
               failed, errors.get(j, ""), env_s, busy_s)
        for j, (kind, index, count, has, failed, env_s, busy_s) in enumerate(scalars))


# Wrappers whose per-step work changes nothing once reset() went through them: OrderEnforcing
# only checks reset came first, PassiveEnvChecker only inspects the first step; TimeLimit's
# truncation is re-done by the rollout loop with the same limit.
_TRANSPARENT = ("OrderEnforcing", "PassiveEnvChecker")


def bypass_wrappers(env):
    """(step function, step limit or None) that behave exactly like ``env.step`` with its
    TimeLimit, skipping the Python wrappers' per-step overhead where that is safe; otherwise
    (env.step, None)."""
    limit, inner = None, env
    while hasattr(inner, "env") and inner is not inner.unwrapped:
        name = type(inner).__name__
        if name == "TimeLimit" and limit is None:
            limit = inner._max_episode_steps
        elif name not in _TRANSPARENT:
            return env.step, None
        inner = inner.env
    return fast_step(inner) or inner.step, limit


class RolloutWorker:
    """Runs tasks for one (environment, policy) pair; one per worker process or actor."""

    def __init__(self, config: TrainConfig, table: NoiseTable | None):
        self.config = config
        self.env = make_env(config.env.id, **config.env.make_kwargs())
        self.policy = make_policy(config.policy, self.env.observation_space,
                                  self.env.action_space, seed=config.run.seed)
        self.directions = Directions(config.strategy.exploration, config.run.seed,
                                     self.policy.num_params, table)
        self._raw_step, self._limit = bypass_wrappers(self.env)
        rows = max(1, self._limit) if self._limit is not None and self._limit <= 100_000 else 1024
        self._obs_buf = np.empty((rows, self.policy.obs_dim))
        self._act = np.empty(self.policy.action.dim)
        space = self.env.observation_space
        if getattr(space, "dtype", None) != _F64 or len(getattr(space, "shape", ()) or ()) != 1:
            self._raw_step = _float64_observations(self._raw_step)
        self._env_s = 0.0

    @property
    def episode_limit(self) -> int | None:
        """The environment's step limit (None: it has none that the rollouts know of); the
        backends derive their rollout deadlines from it."""
        if self._limit is not None:
            return self._limit
        spec = getattr(self.env, "spec", None)
        return self.config.env.max_episode_steps or getattr(spec, "max_episode_steps", None)

    def close(self) -> None:
        self.env.close()

    def run(self, bc: Broadcast, tasks: list[Task]) -> Results:
        return Results(self.run_task(bc, task) for task in tasks)

    def run_task(self, bc: Broadcast, task: Task) -> Result:
        t0, self._env_s = time.perf_counter(), 0.0
        res = self._run_task(bc, task)
        return dataclasses.replace(res, env_seconds=self._env_s,
                                   busy_seconds=time.perf_counter() - t0)

    def _run_task(self, bc: Broadcast, task: Task) -> Result:
        if task.kind == EVAL:
            actor = self.policy.actor(bc.theta, bc.obs_mean, bc.obs_std)
            ret, steps, _, err = self.episode(actor, task.env_seed, record=False)
            return Result(EVAL, task.index, np.array([ret]), np.array([steps]),
                          failed=bool(err), error=err)
        delta = self.directions.get(bc.plan, task.index)
        returns, steps, stats = np.zeros(2), np.zeros(2, dtype=np.int64), RunningStat(
            self.policy.obs_dim)
        error = ""
        for j, sign in enumerate((1.0, -1.0)):
            theta = perturb(bc.theta, sign, bc.noise_std, bc.scale, delta)
            actor = self.policy.actor(theta, bc.obs_mean, bc.obs_std)
            returns[j], steps[j], obs, err = self.episode(actor, task.env_seed, record=True)
            error = error or err
            if not err:
                stats.merge(*RunningStat.moments(obs))
        return Result(TRAIN, task.index, returns, steps, stats.count, stats.mean, stats.m2,
                      failed=bool(error), error=error)

    def episode(self, actor, seed: int, record: bool):
        """(return, steps, observations seen, error message or '') of one episode."""
        env, act, step, limit = self.env, self._act, self._raw_step, self._limit
        discrete = self.policy.action.discrete
        fp, ip = actor.fp, actor.ip  # Actor.raw without the call
        forward = K.policy_forward_record if record else K.policy_forward
        lim = limit if limit is not None else 1 << 62
        buf = self._obs_buf
        total, t = 0.0, 0
        clock, env_s = time.perf_counter, 0.0
        # Per step: one compiled call (record, normalise, forward), the step, two clock reads.
        # Observations arrive as 1-D float64 arrays (__init__ wraps the step where the space
        # says otherwise); anything else fails the episode below, not the worker.
        try:
            c0 = clock()
            obs, _ = env.reset(seed=seed)  # through the wrappers: resets their counters
            env_s += clock() - c0
            obs = np.asarray(obs, dtype=np.float64).reshape(-1)
            while True:
                if record:
                    if t == buf.shape[0]:
                        buf = self._obs_buf = np.concatenate([buf, np.empty_like(buf)])
                    forward(fp, ip, obs, act, buf, t)
                else:
                    forward(fp, ip, obs, act)
                c0 = clock()
                obs, reward, terminated, truncated, _ = step(
                    int(np.argmax(act)) if discrete else act)
                env_s += clock() - c0
                total += reward
                t += 1
                if terminated or truncated or t >= lim:
                    break
        except Exception as exc:  # a misbehaving environment fails this episode only
            self._env_s += env_s
            return math.nan, t, None, f"{type(exc).__name__}: {exc}"
        self._env_s += env_s
        total = float(total)
        seen = self._obs_buf[:t] if record else None
        if not math.isfinite(total) or not np.isfinite(obs).all() or (
                record and not np.isfinite(seen).all()):
            return math.nan, t, None, "non-finite observation or reward"
        return total, t, seen, ""


def _float64_observations(step):
    """step, with observations converted to 1-D float64 (for spaces that are not already)."""

    def step64(action):
        obs, reward, terminated, truncated, info = step(action)
        return (np.asarray(obs, dtype=np.float64).reshape(-1), reward, terminated, truncated,
                info)

    return step64
