"""Warm starts: a new run whose θ and observation statistics come from a trained run.

A warm start (``TrainConfig.init``, ``es-compact train --init-from RUN``) copies exactly two
things from one checkpoint of the source run directory: θ, and the observation normaliser's
statistics (count, mean, M2), which go on accumulating. Everything else comes from the new
configuration: the strategy starts afresh (no optimiser moments; the σ of PGPE, SNES and CEM
and CMA-ES's step size and covariance start from the new settings, with θ as the mean), the
counters, the evaluation record and the budget start at zero, and every random choice flows
from the new run's seed. So a warm start may change the step size, the strategy or the
environment (v4 to v5), but not what θ means: the policy must have the same structure (sizes,
layers and, for kama, the rotation planes its seed drew) and must normalise observations iff
the source did.

The source is pinned when the run starts: the configuration records its absolute path, the
checkpoint used ('best' falls back to 'latest' when there is none), that checkpoint's
iteration and a SHA-256 of θ, and config.json holds them. A resume continues from the run's own
checkpoint and never reads the source again; a run restarted before it trained anything reads
it again and refuses a source whose θ has changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_compact.checkpoint import CheckpointError
from es_compact.config import InitConfig, TrainConfig
from es_compact.envs import env_spaces
from es_compact.errors import ConfigError
from es_compact.policies import Policy, make_policy
from es_compact.run_dir import RunDir
from es_compact.state import OBS_KEYS, TrainState


class WarmStartError(ConfigError):
    """A warm start's source cannot be used: missing, damaged, or its θ does not fit."""


def theta_sha256(theta: np.ndarray) -> str:
    """SHA-256 of θ's little-endian float64 bytes (what init.theta_sha256 records)."""
    return hashlib.sha256(np.ascontiguousarray(theta, dtype="<f8").tobytes()).hexdigest()


@dataclass(frozen=True, eq=False)
class Source:
    """A loaded source: the pinned record, and the θ and observation statistics it holds."""

    init: InitConfig
    """The record: absolute run_dir, the checkpoint used, its iteration, θ's SHA-256."""
    theta: np.ndarray
    """The source θ (float64)."""
    obs: dict[str, np.ndarray]
    """Its observation statistics, as RunningStat.state() (obs_count, obs_mean, obs_m2)."""

    def state(self, opt_arrays: dict, opt_meta: dict) -> TrainState:
        """Iteration 0 of the new run: copies of θ and the statistics, the given fresh
        optimiser state, zero counters."""
        return TrainState(self.theta.copy(), {k: np.array(v) for k, v in self.obs.items()},
                          dict(opt_arrays), dict(opt_meta))


def _shape(config: TrainConfig, policy: Policy) -> str:
    return (f"{policy.arch} on {config.env.id}: obs {policy.obs_dim}, act {policy.action.dim},"
            f" {policy.num_params} parameters")


def _normalising(config: TrainConfig) -> str:
    s = config.strategy
    return f"{s.algo} {s.variant}" if s.algo == "ars" else s.algo


def load_source(config: TrainConfig, policy: Policy, into: str | Path | None = None) -> Source:
    """The source config.init names, checked against the new run (its config and policy);
    WarmStartError, naming both sides, when it is missing, damaged or does not fit. into: the
    new run's directory (a warm start cannot replace its own source). Reads the source and
    builds its environment once (for its spaces); writes nothing."""
    init = config.init
    if init.run_dir is None:
        raise ConfigError("no warm start: init.run_dir is unset")
    path = Path(init.run_dir).expanduser().resolve()
    where = f"cannot warm-start from {init.run_dir}"
    if into is not None and Path(into).expanduser().resolve() == path:
        raise WarmStartError(f"{where}: it is this run's own directory, which the new run "
                             "would replace; write the new run elsewhere")
    if not path.is_dir():
        raise WarmStartError(f"{where}: no such directory")
    src = RunDir(path)
    try:
        src_config = src.read_config()
    except ConfigError as exc:
        raise WarmStartError(f"{where}: {exc}") from None
    name = init.checkpoint
    if not src.has_checkpoint("latest"):
        raise WarmStartError(f"{where}: it has no checkpoint (it trained nothing)")
    if name == "best" and not src.has_checkpoint("best"):
        name = "latest"  # recorded: the new run's config says which one it started from
    src_obs, src_act = env_spaces(src_config.env.id, **src_config.env.make_kwargs())
    src_policy = make_policy(src_config.policy, src_obs, src_act, seed=src_config.run.seed)
    try:
        state = TrainState.from_checkpoint(*src.load_checkpoint(name), src_policy.num_params)
    except CheckpointError as exc:
        raise WarmStartError(f"{where} ({name} checkpoint): {exc}") from None
    if any(state.obs[k].shape[-1:] != (src_policy.obs_dim,) for k in ("obs_mean", "obs_m2")):
        raise WarmStartError(f"{where} ({name} checkpoint): its observation statistics do not "
                             f"fit its policy's {src_policy.obs_dim} observations")
    if (src_policy.num_params, src_policy.obs_dim, src_policy.action.dim) != (
            policy.num_params, policy.obs_dim, policy.action.dim):
        raise WarmStartError(f"{where}: its policy ({_shape(src_config, src_policy)}) does not "
                             f"fit this run's ({_shape(config, policy)})")
    if not src_policy.same_structure(policy):
        why = (f" (its {policy.arch} structure is drawn from its seed {src_config.run.seed}, "
               f"this run's from seed {config.run.seed}: use seed {src_config.run.seed})"
               if src_config.run.seed != config.run.seed else "")
        raise WarmStartError(f"{where}: its {src_policy.arch} policy has the same size as this "
                             f"run's but another structure{why}; θ would mean something else")
    if src_config.strategy.normalizes_obs != config.strategy.normalizes_obs:
        if src_config.strategy.normalizes_obs:
            what = "normalised observations ({}) and this run's would not ({})"
        else:
            what = "raw observations ({}) and this run would normalise them ({})"
        raise WarmStartError(f"{where}: its θ acts on "
                             + what.format(_normalising(src_config), _normalising(config)))
    sha = theta_sha256(state.theta)
    for what, wanted, found in (("iteration", init.iteration, state.iteration),
                                ("θ (sha256)", init.theta_sha256, sha)):
        if wanted is not None and wanted != found:
            raise WarmStartError(f"{where}: its {name} checkpoint holds {what} {found}, not "
                                 f"the {wanted} recorded; the source has changed")
    pinned = dataclasses.replace(init, run_dir=str(path), checkpoint=name,
                                 iteration=state.iteration, theta_sha256=sha)
    return Source(pinned, state.theta, {k: state.obs[k] for k in OBS_KEYS})
