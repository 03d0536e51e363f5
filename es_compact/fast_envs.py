"""Step functions that replace gymnasium's Python step for specific MuJoCo v4 environments.

gymnasium's HalfCheetah-v4 step spends about a third of its time in Python around one
``mj_step`` call (shape checks, an info dict, property look-ups; Hopper's and Walker2d's
``is_healthy`` is computed twice a step). The replacements below do the same arithmetic in the
same order on the same MjData, so observations, rewards and terminations are bitwise identical
(tests/test_backends.py compares whole episodes); each is used only when the environment is
exactly its class with no render mode, and reads the instance's own weights and ranges.
"""

from __future__ import annotations

import numpy as np


class _V4Step:
    """What every v4 locomotion step shares: set ctrl, mj_step frame_skip times,
    mj_rnePostConstraint, x velocity over dt, and the control cost w * sum(a^2)."""

    def __init__(self, env):
        import mujoco

        if env.model.nu >= 8:  # the in-order sum below matches np.sum only below 8 terms
            raise ValueError(f"{type(self).__name__} expects fewer than 8 actuators")
        self._mj_step, self._rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        self.model, self.data = env.model, env.data
        self.frame_skip = env.frame_skip
        self.dt = env.dt
        self.forward_weight = env._forward_reward_weight
        self.ctrl_weight = env._ctrl_cost_weight
        self.nu = env.model.nu

    def _simulate(self, action) -> tuple[float, float]:
        """(x velocity, control cost) of one step."""
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
        return x_velocity, self.ctrl_weight * squares


class HalfCheetahV4Step(_V4Step):
    """half_cheetah_v4.HalfCheetahEnv.step."""

    def __init__(self, env):
        super().__init__(env)
        self.first = 1 if env._exclude_current_positions_from_observation else 0

    def __call__(self, action):
        x_velocity, ctrl_cost = self._simulate(action)
        d = self.data
        obs = np.concatenate((d.qpos[self.first :], d.qvel))
        return obs, self.forward_weight * x_velocity - ctrl_cost, False, False, None


class SwimmerV4Step(HalfCheetahV4Step):
    """swimmer_v4.SwimmerEnv.step: HalfCheetah's reward; the observation leaves out x and y."""

    def __init__(self, env):
        super().__init__(env)
        self.first = 2 if env._exclude_current_positions_from_observation else 0


class HopperV4Step(_V4Step):
    """hopper_v4.HopperEnv.step: forward + healthy reward - control cost; velocities clipped
    to [-10, 10] in the observation; terminated when unhealthy (if the env says so)."""

    def __init__(self, env):
        super().__init__(env)
        self.first = 1 if env._exclude_current_positions_from_observation else 0
        self.healthy_reward = env._healthy_reward
        self.terminate = env._terminate_when_unhealthy
        self.z_range = env._healthy_z_range
        self.angle_range = env._healthy_angle_range
        self.state_range = getattr(env, "_healthy_state_range", None)

    def is_healthy(self, qpos, qvel) -> bool:
        # The same comparisons as gymnasium's, on Python floats: numpy's concatenate and
        # reductions over 11 numbers cost more than the comparisons (~7% of a Hopper step).
        # A NaN compares False either way, so it is unhealthy in both.
        min_z, max_z = self.z_range
        min_angle, max_angle = self.angle_range
        if not (min_z < qpos[1] < max_z and min_angle < qpos[2] < max_angle):
            return False
        if self.state_range is not None:  # Hopper: every state entry after x and z in range
            low, high = self.state_range
            for x in qpos.tolist()[2:] + qvel.tolist():
                if not low < x < high:
                    return False
        return True

    def __call__(self, action):
        x_velocity, ctrl_cost = self._simulate(action)
        d = self.data
        qpos, qvel = d.qpos, d.qvel
        healthy = self.is_healthy(qpos, qvel)
        healthy_reward = float(healthy or self.terminate) * self.healthy_reward
        reward = (self.forward_weight * x_velocity + healthy_reward) - ctrl_cost
        obs = np.concatenate((qpos[self.first :], np.clip(qvel, -10, 10)))
        return obs, reward, (not healthy) if self.terminate else False, False, None


class Walker2dV4Step(HopperV4Step):
    """walker2d_v4.Walker2dEnv.step: Hopper's step with health judged by z and angle only."""

    def __init__(self, env):
        super().__init__(env)
        self.state_range = None


def _classes() -> dict:
    from gymnasium.envs.mujoco.half_cheetah_v4 import HalfCheetahEnv
    from gymnasium.envs.mujoco.hopper_v4 import HopperEnv
    from gymnasium.envs.mujoco.swimmer_v4 import SwimmerEnv
    from gymnasium.envs.mujoco.walker2d_v4 import Walker2dEnv

    return {HalfCheetahEnv: HalfCheetahV4Step, HopperEnv: HopperV4Step,
            SwimmerEnv: SwimmerV4Step, Walker2dEnv: Walker2dV4Step}


def fast_step(env):
    """A faster, behaviour-identical step for the bare environment, or None."""
    try:
        classes = _classes()
    except ImportError:  # pragma: no cover - gymnasium without MuJoCo
        return None
    cls = classes.get(type(env))
    if cls is None or env.render_mode is not None:
        return None
    return cls(env)
