"""A real environment that misbehaves on purpose, for the fault tests (used as
``misbehaving_env:FlakyPendulum``; spawned workers import it through the inherited sys.path).

It is InvertedPendulum-v4 except that an episode whose reset seed is divisible by `every`
raises (mode 'raise') or returns NaN observations and rewards (mode 'nan') at step 5.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class FlakyPendulum(gym.Env):
    def __init__(self, mode: str = "nan", every: int = 5):
        self.inner = gym.make("InvertedPendulum-v4", max_episode_steps=100)
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space
        self.mode, self.every = mode, every
        self.bad, self.t = False, 0

    def reset(self, *, seed=None, options=None):
        self.bad = seed is not None and seed % self.every == 0
        self.t = 0
        return self.inner.reset(seed=seed, options=options)

    def step(self, action):
        obs, r, term, trunc, info = self.inner.step(action)
        self.t += 1
        if self.bad and self.t == 5:
            if self.mode == "raise":
                raise RuntimeError("simulated crash")
            obs, r = np.full_like(obs, np.nan), float("nan")
        return obs, r, term, trunc, info


class AlwaysNaN(FlakyPendulum):
    def __init__(self):
        super().__init__(mode="nan", every=1)


class FlakyPendulumRaise(FlakyPendulum):
    def __init__(self):
        super().__init__(mode="raise")
