"""Step functions that replace gymnasium's Python step for specific MuJoCo environments.

gymnasium's HalfCheetah-v4 step spends about a third of its time in Python around one
``mj_step`` call (shape checks, an info dict, property look-ups). The replacement below does the
same arithmetic in the same order on the same MjData, so observations, rewards and
terminations are bitwise identical (tests/test_backends.py compares whole episodes); it is used
only when the environment is exactly that class with no render mode.
"""

from __future__ import annotations

import numpy as np


class HalfCheetahV4Step:
    """gymnasium.envs.mujoco.half_cheetah_v4.HalfCheetahEnv.step without the Python overhead."""

    def __init__(self, env):
        import mujoco

        if env.model.nu >= 8:  # the in-order sum below matches np.sum only below 8 terms
            raise ValueError("HalfCheetahV4Step expects fewer than 8 actuators")
        self._mj_step, self._rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        self.model, self.data = env.model, env.data
        self.frame_skip = env.frame_skip
        self.dt = env.dt
        self.forward_weight = env._forward_reward_weight
        self.ctrl_weight = env._ctrl_cost_weight
        self.first = 1 if env._exclude_current_positions_from_observation else 0
        self.nu = env.model.nu

    def __call__(self, action):
        d = self.data
        if np.shape(action) != (self.nu,):
            raise ValueError(f"Action dimension mismatch. Expected {(self.nu,)}, found "
                             f"{np.shape(action)}")
        x_before = d.qpos[0]
        d.ctrl[:] = action
        self._mj_step(self.model, d, nstep=self.frame_skip)
        self._rne(self.model, d)
        x_velocity = (d.qpos[0] - x_before) / self.dt
        # np.sum adds fewer than 8 numbers in order from 0.0, so this loop rounds identically
        squares = 0.0
        for a in np.asarray(action, dtype=np.float64).tolist():
            squares += a * a
        ctrl_cost = self.ctrl_weight * squares
        obs = np.concatenate((d.qpos[self.first :], d.qvel))
        return obs, self.forward_weight * x_velocity - ctrl_cost, False, False, None


def fast_step(env):
    """A faster, behaviour-identical step for the bare environment, or None."""
    try:
        from gymnasium.envs.mujoco.half_cheetah_v4 import HalfCheetahEnv
    except ImportError:  # pragma: no cover
        return None
    if type(env) is HalfCheetahEnv and env.render_mode is None:
        return HalfCheetahV4Step(env)
    return None
