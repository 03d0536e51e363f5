"""A real environment that misbehaves on purpose, for the fault tests (used as
``misbehaving_env:FlakyPendulum``; spawned workers import it through the inherited sys.path).

It is InvertedPendulum-v4 except that an episode whose reset seed is divisible by `every`
raises (mode 'raise') or returns NaN observations and rewards (mode 'nan') at step 5; the
hanging ones below never return from that step instead, and CrashSeed kills its process there.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

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
        if self.bad and self.t == 5 and self.mode != "none":
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


# Hanging environments, named with a parameter (``misbehaving_env:HangOnce_TOKEN``,
# ``misbehaving_env:HangSeed_SEED``) so that every worker process and Ray actor builds the same
# one from the run's env id alone (environment variables set in a test do not reach a fork
# server or a Ray cluster started earlier).

HANG_AT_STEP = 5


def hang_marker(token: str) -> Path:
    """The file whose creation arms HangOnce_TOKEN's single hang (one per test)."""
    return Path(tempfile.gettempdir()) / f"es_compact_hang_{token}"


def _hang() -> None:
    while True:  # a step that never returns; only SIGKILL ends it
        time.sleep(3600)


class _Hanging(FlakyPendulum):
    def __init__(self):
        super().__init__(mode="none")
        self.seed = None

    def reset(self, *, seed=None, options=None):
        self.seed = seed
        return super().reset(seed=seed, options=options)

    def step(self, action):
        out = super().step(action)
        if self.t == HANG_AT_STEP and self.should_hang():
            _hang()
        return out


def _hang_once(token: str) -> type:
    class HangOnce(_Hanging):
        """Hangs once across all processes: in the first episode to reach step 5 after its
        marker file was removed (the one that creates it again); never while it exists."""

        def should_hang(self) -> bool:
            try:
                os.close(os.open(hang_marker(token), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return False
            return True

    return HangOnce


def _hang_seed(seed: int) -> type:
    class HangSeed(_Hanging):
        """Hangs in every episode reset with this seed."""

        def should_hang(self) -> bool:
            return self.seed == seed

    return HangSeed


def _crash_seed(seed: int) -> type:
    class CrashSeed(_Hanging):
        """Crashes its process (SIGSEGV, as a bug in an environment's C code would) at step 5
        of every episode reset with this seed."""

        def step(self, action):
            out = FlakyPendulum.step(self, action)
            if self.t == HANG_AT_STEP and self.seed == seed:
                os.kill(os.getpid(), signal.SIGSEGV)
            return out

    return CrashSeed


def __getattr__(name: str):
    kind, _, arg = name.partition("_")
    if kind == "CrashSeed" and arg.isdigit():
        return _crash_seed(int(arg))
    if kind == "HangOnce" and arg:
        return _hang_once(arg)
    if kind == "HangSeed" and arg.isdigit():
        return _hang_seed(int(arg))
    raise AttributeError(name)
