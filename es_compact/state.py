"""The training state as a value, and its checkpoint form: the checkpoint schema lives here.

Every random choice derives from (seed, iteration, index), so the only state carried between
iterations is θ, the observation statistics (count, mean, M2), the strategy's optimiser arrays
and scalars, two counters and the evaluation record. A state is never changed in place: an
iteration makes a new one, so whatever state a trainer holds when it is interrupted is the
consistent state of a finished iteration.

Checkpoint arrays: ``theta``, ``obs_count``, ``obs_mean``, ``obs_m2`` and the optimiser's
arrays (e.g. ``opt_m``, ``opt_v``). Checkpoint scalars: META_KEYS and the optimiser's scalars
(e.g. ``opt_t``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from es_compact.checkpoint import OWN_KEYS, CheckpointError
from es_compact.config import RunConfig, TrainConfig
from es_compact.normalizer import RunningStat

OBS_KEYS = ("obs_count", "obs_mean", "obs_m2")
META_KEYS = ("iteration", "timesteps", "wall_time_s", "best_eval", "last_eval", "env", "arch",
             "num_params", "rng")


def budget_spent(run: RunConfig, iteration: int, timesteps: int, last_eval: float,
                 elapsed_s: float) -> bool:
    """Whether a run at this point has spent run's budget (any of its limits reached)."""
    return ((run.iterations is not None and iteration >= run.iterations)
            or (run.target_return is not None and not math.isnan(last_eval)
                and last_eval >= run.target_return)
            or (run.timesteps is not None and timesteps >= run.timesteps)
            or (run.time_limit is not None and elapsed_s >= run.time_limit))


def remaining_s(run: RunConfig, state: TrainState, elapsed_s: float, per_iter_s: float,
                steps_per_s: float) -> float:
    """Seconds until the first of run's limits is reached, at the measured pace (nan when
    only a target return bounds the run)."""
    est = []
    if run.iterations is not None:
        est.append((run.iterations - state.iteration) * per_iter_s)
    if run.timesteps is not None and steps_per_s > 0:
        est.append(max(0, run.timesteps - state.timesteps) / steps_per_s)
    if run.time_limit is not None:
        est.append(max(0.0, run.time_limit - elapsed_s))
    return max(0.0, min(est)) if est else math.nan


@dataclass(frozen=True, eq=False)
class TrainState:
    """Everything a run carries from one iteration to the next."""

    theta: np.ndarray
    """The flat float64 policy parameters."""
    obs: dict[str, np.ndarray]
    """Observation statistics as RunningStat.state(): obs_count, obs_mean, obs_m2."""
    opt_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    """The strategy's optimiser arrays (Strategy.state()[0])."""
    opt_meta: dict = field(default_factory=dict)
    """The strategy's optimiser scalars (Strategy.state()[1])."""
    iteration: int = 0
    """Finished iterations."""
    timesteps: int = 0
    """Training environment steps taken."""
    best_eval: float = -math.inf
    """Best evaluation mean so far (-inf before any)."""
    last_eval: float = math.nan
    """Last evaluation mean (nan before any)."""
    wall_time_s: float = 0.0
    """Wall time spent training, over every session of the run."""

    def replace(self, **changes) -> TrainState:
        return dataclasses.replace(self, **changes)

    def stats(self, dim: int, var_floor: float) -> RunningStat:
        """A RunningStat holding these observation statistics (a copy: merging into it leaves
        this state as it is)."""
        stat = RunningStat(dim, var_floor)
        stat.load(self.obs)
        return stat

    def to_checkpoint(self, config: TrainConfig, num_params: int) -> tuple[dict, dict]:
        """(arrays, scalars) as checkpoint.save writes them."""
        arrays = {"theta": self.theta, **self.obs, **self.opt_arrays}
        meta = {"iteration": self.iteration, "timesteps": self.timesteps,
                "wall_time_s": self.wall_time_s,
                "best_eval": None if self.best_eval == -math.inf else self.best_eval,
                "last_eval": None if math.isnan(self.last_eval) else self.last_eval,
                "env": config.env.id, "arch": config.policy.arch, "num_params": num_params,
                "rng": {"seed": config.run.seed, "next_iteration": self.iteration,
                        "note": "all randomness derives from (seed, iteration, index)"},
                **self.opt_meta}
        return arrays, meta

    @classmethod
    def from_checkpoint(cls, arrays: dict, meta: dict, num_params: int) -> TrainState:
        """The state a checkpoint holds; CheckpointError when it lacks a part or its θ does
        not fit a policy of num_params parameters."""
        missing = ({"theta", *OBS_KEYS} - set(arrays)) | (
            {"iteration", "timesteps", "wall_time_s", "best_eval", "last_eval"} - set(meta))
        if missing:
            raise CheckpointError(f"checkpoint lacks {', '.join(sorted(missing))}")
        if arrays["theta"].shape != (num_params,):
            raise CheckpointError("checkpoint θ does not fit this policy")
        known = {"theta", *OBS_KEYS}
        skip = set(META_KEYS) | set(OWN_KEYS)
        return cls(theta=arrays["theta"].astype(np.float64),
                   obs={k: arrays[k] for k in OBS_KEYS},
                   opt_arrays={k: v for k, v in arrays.items() if k not in known},
                   opt_meta={k: v for k, v in meta.items() if k not in skip},
                   iteration=int(meta["iteration"]), timesteps=int(meta["timesteps"]),
                   best_eval=-math.inf if meta["best_eval"] is None
                   else float(meta["best_eval"]),
                   last_eval=math.nan if meta["last_eval"] is None else float(meta["last_eval"]),
                   wall_time_s=float(meta["wall_time_s"]))
