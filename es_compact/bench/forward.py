"""`es-compact bench forward`: microseconds per forward pass, structured against dense, one run.

Three measurements, each side by side with its baseline in the same process:
- every architecture at the default policy size (HalfCheetah: 17 -> 64 -> 64 -> 6) through the
  checked call ``actor(obs)`` and the rollout fast path ``actor.raw(obs, out)``, against a plain
  NumPy forward of the equivalent dense layers and against one HalfCheetah step;
- one square layer at width d: KAMA with K = ceil(2 d ln d) rotations and one diagonal-circulant
  layer (direct and FFT product both timed, plus the width-based choice), against a dense NumPy
  matvec of the same size;
- the numba compile time: a fresh process with an empty cache, then again with the cache filled.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from es_compact.bench.throughput import gym_step_rate
from es_compact.bench.timing import best_time
from es_compact.config import PolicyConfig
from es_compact.policies import ARCHITECTURES, ActionSpec, Policy, make_policy
from es_compact.policies.circulant import CirculantLayer
from es_compact.policies.givens import GivensLayer

POLICY_OBS, POLICY_ACT = 17, 6  # HalfCheetah-v4


def _dense_numpy_forward(policy: Policy, theta: np.ndarray):
    layers = [(d.W, d.b, d.activation, d.slope) for d in policy.to_dense(theta)]

    def run(x):
        for W, b, act, slope in layers:
            x = W @ x + b
            if act == "tanh":
                x = np.tanh(x)
            elif act == "leaky_relu":
                x = np.maximum(x, slope * x)  # a leaky ReLU for slopes in [0, 1]
        return x

    return run


def env_step_us(env_id: str = "HalfCheetah-v4") -> float:
    """Microseconds per env.step with zero actions (the full gymnasium wrapper stack)."""
    return 1e6 / gym_step_rate(env_id, steps=3000)


def policy_rows(step_us: float | None) -> list[dict]:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(POLICY_OBS)
    out = np.empty(POLICY_ACT)
    rows = []
    for arch in ARCHITECTURES:
        policy = make_policy(PolicyConfig(arch=arch), POLICY_OBS, POLICY_ACT, seed=0)
        theta = policy.init(rng)
        actor = policy.actor(theta)
        dense_fwd = _dense_numpy_forward(policy, theta)
        checked = best_time(lambda a=actor: a(obs)) * 1e6
        raw = best_time(lambda a=actor: a.raw(obs, out)) * 1e6
        dense = best_time(lambda f=dense_fwd: f(obs)) * 1e6
        rows.append({"case": "policy", "arch": arch, "d": 64, "params": policy.num_params,
                     "us_per_call": round(checked, 3), "us_raw": round(raw, 3),
                     "dense_numpy_us": round(dense, 3),
                     "speedup_vs_dense": round(dense / raw, 2),
                     "fraction_of_env_step": round(raw / step_us, 4) if step_us else None})
    return rows


def _single_layer_policy(layer) -> Policy:
    d = layer.out_dim
    return Policy(layer.kind, [layer], layer.in_dim,
                  ActionSpec(dim=d, low=np.full(d, -np.inf), high=np.full(d, np.inf)),
                  squash="clip")


def layer_rows(dims: tuple[int, ...]) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for d in dims:
        x = rng.standard_normal(d)
        out = np.empty(d)
        W = rng.standard_normal((d, d))
        dense = best_time(lambda W=W, x=x: W @ x) * 1e6
        k = math.ceil(2 * d * math.log(d))
        cases = {
            "kama": GivensLayer.build(in_dim=d, out_dim=d, offset=0, rotations=k, rng=rng),
            "dc": CirculantLayer(in_dim=d, out_dim=d, offset=0, n=d),
            "dc_direct": CirculantLayer(in_dim=d, out_dim=d, offset=0, n=d, use_fft=False),
            "dc_fft": CirculantLayer(in_dim=d, out_dim=d, offset=0, n=d, use_fft=True),
        }
        for name, layer in cases.items():
            policy = _single_layer_policy(layer)
            actor = policy.actor(policy.init(rng))
            us = best_time(lambda a=actor, x=x, o=out: a.raw(x, o)) * 1e6
            rows.append({"case": "layer", "arch": name, "d": d, "params": policy.num_params,
                         "rotations": k if name == "kama" else None,
                         "us_per_call": round(us, 3), "us_raw": round(us, 3),
                         "dense_numpy_us": round(dense, 3),
                         "speedup_vs_dense": round(dense / us, 2)})
    return rows


_COMPILE_SNIPPET = """
import time; t = time.perf_counter()
import numpy as np
from es_compact.config import PolicyConfig
from es_compact.policies import make_policy
p = make_policy(PolicyConfig(arch="kama"), 17, 6, seed=0)
p.forward(p.init(np.random.default_rng(0)), np.zeros(17))
print(time.perf_counter() - t)
"""


def compile_rows() -> list[dict]:
    """Seconds from a fresh interpreter to the first action: empty numba cache, then filled."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("compile_cold", "start_cached"):
            res = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], env=env, text=True,
                                 capture_output=True, timeout=600, check=True)
            rows.append({"case": label, "arch": "all", "seconds": round(float(res.stdout), 3)})
    return rows


def run(quick: bool = False, env_id: str | None = "HalfCheetah-v4") -> list[dict]:
    step = env_step_us(env_id) if env_id else None
    rows = compile_rows()
    rows += policy_rows(step)
    if step:
        rows.append({"case": "env_step", "arch": env_id, "us_per_call": round(step, 3)})
    rows += layer_rows((64, 256, 1024) if quick else (64, 256, 1024, 4096))
    return rows
