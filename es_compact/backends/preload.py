"""Imported once by the mp backend's fork server, before it forks any worker.

Everything loaded here is loaded once and shared, copy-on-write, by every worker forked
afterwards, instead of being loaded by each: the rollout code and gymnasium's MuJoCo modules,
and the compiled policy kernels (numba loads them from its cache on first call; that is about
30 MiB of private memory per process).
"""

from __future__ import annotations

import logging

import gymnasium.envs.mujoco  # noqa: F401  (the MuJoCo environment modules)
import numpy as np

import es_compact.rollout  # noqa: F401
from es_compact.config import PolicyConfig
from es_compact.policies import kernels as K
from es_compact.policies import make_policy


def warm_kernels() -> None:
    """Call the rollout kernels once, with the argument types rollouts use."""
    policy = make_policy(PolicyConfig(arch="linear"), 3, 2)
    actor = policy.actor(policy.init(np.random.default_rng(0)))
    obs, out, buf = np.zeros(3), np.empty(2), np.empty((4, 3))
    K.policy_forward(actor.fp, actor.ip, obs, out)
    K.policy_forward_record(actor.fp, actor.ip, obs, out, buf, 0)


try:
    warm_kernels()
except Exception:  # a worker would compile or load them itself; never break the fork server
    logging.getLogger(__name__).debug("kernel warm-up failed", exc_info=True)
