"""Compact policy architectures over one flat float64 θ.

>>> from es_compact.config import PolicyConfig
>>> from es_compact.policies import make_policy
>>> policy = make_policy(PolicyConfig(arch="kama"), obs=17, action=6, seed=0)
>>> theta = policy.init(np.random.default_rng(0))          # doctest: +SKIP
>>> action = policy.forward(theta, obs)                     # doctest: +SKIP
"""

from es_compact.policies.architectures import (
    ARCHITECTURES,
    READS,
    check_applicable,
    make_policy,
    policy_applies,
    register,
)
from es_compact.policies.spec import ActionSpec, Actor, DenseWeights, Policy

__all__ = ["ARCHITECTURES", "READS", "ActionSpec", "Actor", "DenseWeights", "Policy",
           "check_applicable", "make_policy", "policy_applies", "register"]
