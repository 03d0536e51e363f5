"""`es-compact bench throughput --step-gain`: what the fast steps (es_compact/fast_envs.py) gain
over gymnasium's own step, for an environment's v4 and v5 versions, measured side by side.

Three step functions of one environment, each over the same number of steps with the same
zero actions, in turn, for several rounds (the machine's speed drifts; every round measures all
three within seconds of each other):
(g) ``env.step`` of gym.make's full wrapper stack: what a gymnasium loop pays;
(u) the bare environment's own step (``env.unwrapped.step``): gymnasium's arithmetic without
    the wrappers;
(f) the step the rollouts use (rollout.bypass_wrappers: the fast step where one exists).
The gain of a version is (f) / (g); comparing the v5 row with the v4 row shows whether the
current gymnasium version trains as fast as the old one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np

from es_compact.envs import make_env
from es_compact.fast_envs import fast_step


def versions(env_id: str) -> list[str]:
    """The v4 and v5 ids of env_id's family, in that order (env_id alone if it has none)."""
    m = re.fullmatch(r"(.+)-v[45]", env_id)
    return [f"{m.group(1)}-v4", f"{m.group(1)}-v5"] if m else [env_id]


def _rate(step: Callable, reset: Callable, action: np.ndarray, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = step(action)
        if term or trunc:
            reset()
    return steps / (time.perf_counter() - t)


def step_gain(env_id: str, steps: int = 3000, rounds: int = 5) -> list[dict]:
    """One row per version of env_id's family: the median over rounds of (g), (u) and (f) in
    steps/s and their ratios; the v5 row also has its fast rate against v4's. Every round
    times all paths of all versions in turn."""
    envs, paths = [], {}
    try:
        for e in versions(env_id):
            env = make_env(e)
            envs.append(env)
            bare = env.unwrapped
            fast = fast_step(bare)
            action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
            env.reset(seed=0)
            bare_reset = lambda bare=bare: bare.reset(seed=None)  # noqa: E731
            paths[e] = {"gym": (env.step, env.reset, action),
                        "bare": (bare.step, bare_reset, action),
                        "fast": (fast or bare.step, bare_reset, action)}
            paths[e]["has_fast"] = fast is not None
        for by_path in paths.values():  # warm up (numba compiles the fast steps)
            for name in ("gym", "bare", "fast"):
                _rate(*by_path[name], 200)
        samples = {e: {k: [] for k in ("gym", "bare", "fast")} for e in paths}
        for _ in range(rounds):
            for e, by_path in paths.items():
                for name in ("gym", "bare", "fast"):
                    samples[e][name].append(_rate(*by_path[name], steps))
    finally:
        for env in envs:
            env.close()
    rows = []
    for e, s in samples.items():
        med = {k: float(np.median(v)) for k, v in s.items()}
        per_round = [f / g for f, g in zip(s["fast"], s["gym"], strict=True)]
        rows.append({"case": "step_gain", "env": e, "fast_step": paths[e]["has_fast"],
                     "rounds": rounds, "steps_timed": steps,
                     "gym_steps_per_s": med["gym"], "bare_steps_per_s": med["bare"],
                     "fast_steps_per_s": med["fast"], "fast_vs_gym": med["fast"] / med["gym"],
                     "fast_vs_bare": med["fast"] / med["bare"],
                     "fast_vs_gym_min_max": f"{min(per_round):.3f}-{max(per_round):.3f}"})
    if len(rows) == 2:
        rows[1]["v5_fast_vs_v4_fast"] = rows[1]["fast_steps_per_s"] / rows[0]["fast_steps_per_s"]
        rows[1]["v5_fast_vs_v4_gym"] = rows[1]["fast_steps_per_s"] / rows[0]["gym_steps_per_s"]
    return rows
