"""The fast MuJoCo v5 steps (es_compact.fast_envs) against gymnasium's own step.

Whole episodes under a policy and under random actions, default and non-default settings:
observations, rewards and terminations must be bitwise equal (bytes, so -0.0 is not 0.0), and
every environment the fast steps do not cover must be refused, so that rollouts fall back to
gymnasium's step.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from es_compact.envs import make_env
from es_compact.fast_envs import _in_order_sum_is_numpys, _squares, fast_step, refusal

STEPS = {"HalfCheetah-v5": "HalfCheetahV5Step", "Hopper-v5": "HopperV5Step",
         "Walker2d-v5": "Walker2dV5Step", "Swimmer-v5": "SwimmerV5Step",
         "Ant-v5": "AntV5Step", "Humanoid-v5": "HumanoidV5Step"}

# Non-default settings: integer weights, a negative healthy reward without termination (its
# False * w is -0.0), other models (walker2d.xml is v4's), frame skips, observation flags; reset
# noise and rendering sizes, which the step does not read.
CASES = [
    ("HalfCheetah-v5", {}),
    ("HalfCheetah-v5", {"frame_skip": 2, "forward_reward_weight": 2, "ctrl_cost_weight": 0.3,
                        "exclude_current_positions_from_observation": False,
                        "reset_noise_scale": 0.5, "width": 64, "height": 48, "max_geom": 10}),
    ("Swimmer-v5", {}),
    ("Swimmer-v5", {"frame_skip": 2, "ctrl_cost_weight": 0.1, "forward_reward_weight": 0.5,
                    "exclude_current_positions_from_observation": False}),
    ("Hopper-v5", {}),
    ("Hopper-v5", {"frame_skip": 2, "healthy_reward": 0.5, "healthy_state_range": (-5.0, 5.0),
                   "healthy_angle_range": (-0.3, 0.3), "healthy_z_range": (0.8, 1.5)}),
    ("Hopper-v5", {"terminate_when_unhealthy": False, "healthy_reward": -1,
                   "forward_reward_weight": 0, "ctrl_cost_weight": 0.0,
                   "exclude_current_positions_from_observation": False}),
    ("Walker2d-v5", {}),
    ("Walker2d-v5", {"xml_file": "walker2d.xml", "healthy_z_range": [0.9, 1.9],
                     "healthy_angle_range": (-0.8, 0.8), "ctrl_cost_weight": 0.01}),
    ("Walker2d-v5", {"terminate_when_unhealthy": False, "healthy_reward": -0.5,
                     "frame_skip": 3}),
    ("Ant-v5", {}),
    ("Ant-v5", {"main_body": "torso", "include_cfrc_ext_in_observation": False,
                "contact_force_range": (-0.5, 0.5), "healthy_z_range": (0.3, 1.0),
                "contact_cost_weight": 1e-3, "reset_noise_scale": 0.3}),
    ("Ant-v5", {"terminate_when_unhealthy": False, "frame_skip": 2, "ctrl_cost_weight": 0.1,
                "exclude_current_positions_from_observation": False}),
    ("Humanoid-v5", {}),
    ("Humanoid-v5", {"include_cinert_in_observation": False, "include_cvel_in_observation":
                     False, "contact_cost_range": (-np.inf, 1e-4), "healthy_z_range": (0.9, 2.1),
                     "exclude_current_positions_from_observation": False}),
    ("Humanoid-v5", {"include_qfrc_actuator_in_observation": False,
                     "include_cfrc_ext_in_observation": False, "terminate_when_unhealthy": False,
                     "frame_skip": 3, "forward_reward_weight": 2}),
]


def _same(x, y) -> bool:
    x, y = np.asarray(x), np.asarray(y)
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def compare_episodes(env_id: str, kwargs: dict, seeds, limit: int) -> set[str]:
    """Steps gymnasium's full stack (TimeLimit included) and the fast step of a second instance
    side by side from the same seeds; returns how the episodes ended."""
    wrapped = make_env(env_id, max_episode_steps=limit, **kwargs)
    bare = make_env(env_id, **kwargs).unwrapped
    step = fast_step(bare)
    assert type(step).__name__ == STEPS[env_id], refusal(bare)
    high = wrapped.action_space.high.astype(np.float64)
    endings = set()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        o1, _ = wrapped.reset(seed=seed)
        o2, _ = bare.reset(seed=seed)
        assert _same(o1, o2)
        w = rng.normal(0, 2 / math.sqrt(o1.size), (high.size, o1.size))
        for t in range(1, limit + 1):
            kind = seed % 4  # a policy, random actions at the bounds, uniform, float32 policy
            if kind == 1:
                a = rng.choice([-1.0, 1.0], high.size) * high
            elif kind == 2:
                a = rng.uniform(-1.5, 1.5, high.size) * high
            else:
                a = np.tanh(w @ np.clip(o1, -10, 10)) * high
                if kind == 3:
                    a = a.astype(np.float32)
            o1, r1, term1, trunc1, _ = wrapped.step(a)
            o2, r2, term2, trunc2, _ = step(a)
            assert _same(o1, o2), (seed, t)
            assert _same(np.float64(r1), np.float64(r2)), (seed, t, r1, r2)
            assert term2 is term1 and trunc2 is False, (seed, t)
            if term1 or trunc1:
                assert term1 or t == limit
                break
        endings.add("terminated" if term1 else "time limit")
    wrapped.close()
    bare.close()
    return endings


@pytest.mark.parametrize("env_id,kwargs", CASES)
def test_fast_v5_step_equals_gymnasium_over_whole_episodes(env_id, kwargs):
    """Episodes of up to 120 steps (Humanoid 60) from 4 seeds, one per kind of action; the
    health checks are exercised where the env terminates."""
    limit = 60 if env_id.startswith("Humanoid") else 120
    endings = compare_episodes(env_id, kwargs, seeds=(0, 1, 2, 3), limit=limit)
    if kwargs.get("terminate_when_unhealthy", True) and env_id in (
            "Hopper-v5", "Walker2d-v5", "Humanoid-v5"):
        assert "terminated" in endings


@pytest.mark.slow
@pytest.mark.parametrize("env_id,kwargs", CASES)
def test_fast_v5_step_equals_gymnasium_over_full_length_episodes(env_id, kwargs):
    """gymnasium's own limit (1000 steps) from 8 seeds."""
    compare_episodes(env_id, kwargs, seeds=range(8), limit=1000)


@pytest.mark.parametrize("env_id", sorted(STEPS))
def test_rollouts_step_v5_envs_through_the_fast_step(env_id):
    """bypass_wrappers (what RolloutWorker steps) picks the fast v5 step for gymnasium.make's
    stack, with gymnasium's own limit; a refusal here means the installed gymnasium's source
    differs from the verified one (re-run the slow tests, then update `verified`)."""
    from es_compact.rollout import bypass_wrappers

    env = make_env(env_id)
    assert refusal(env.unwrapped) is None, refusal(env.unwrapped)
    step, limit = bypass_wrappers(env)
    assert type(step).__name__ == STEPS[env_id] and limit == 1000
    env.close()


def test_custom_model_with_many_actuators_is_equal(tmp_path):
    """A custom xml_file: HalfCheetah's model with every actuator doubled (12 > 8, so the
    control cost goes through np.sum's pairwise summation, as gymnasium's does)."""
    from gymnasium.envs.mujoco import half_cheetah_v5

    xml = (Path(half_cheetah_v5.__file__).parent / "assets" / "half_cheetah.xml").read_text()
    motors = re.search(r"<actuator>(.*?)</actuator>", xml, re.S).group(1)
    doubled = motors + re.sub(r'name="(\w+)"', r'name="\1_2"', motors)
    path = tmp_path / "cheetah12.xml"
    path.write_text(xml.replace(motors, doubled))
    env = make_env("HalfCheetah-v5", xml_file=str(path))
    assert env.unwrapped.model.nu == 12
    compare_episodes("HalfCheetah-v5", {"xml_file": str(path)}, seeds=(0, 1, 2, 3), limit=60)


@pytest.mark.parametrize("env_id,z", [("Hopper-v5", 1), ("Walker2d-v5", 1), ("Ant-v5", 2),
                                      ("Humanoid-v5", 2)])
def test_fast_v5_health_check_equals_gymnasium_on_any_state(env_id, z):
    """Every range of the health check, both sides of each bound, exact bounds (Ant's range is
    closed, the others' open), infinities and NaN entries: the fast check agrees with
    gymnasium's own is_healthy on states set directly into MjData."""
    env = make_env(env_id).unwrapped
    env.reset(seed=0)
    fast = fast_step(env)
    q, v = env.data.qpos, env.data.qvel
    low, high = env._healthy_z_range
    high = min(high, low + 3.0)  # Hopper's is (0.7, inf)
    rng = np.random.default_rng(0)
    verdicts = []
    for i in range(2000):
        q[:] = rng.normal(0, 1, q.size) * rng.choice([0.1, 1, 150])
        v[:] = rng.normal(0, 1, v.size) * rng.choice([1, 150])
        q[z] = rng.choice([low, high, rng.uniform(low - 0.3, high + 0.3)])
        if i % 7 == 0:
            (q if i % 2 else v)[rng.integers(0, v.size)] = rng.choice([np.nan, np.inf])
        verdicts.append(bool(env.is_healthy))
        assert fast.is_healthy(q, v) is verdicts[-1], (q.copy(), v.copy())
    assert 100 < sum(verdicts) < 1900  # both verdicts were exercised
    env.close()


def test_in_order_sum_of_fewer_than_8_squares_is_numpys():
    """The control cost of fewer than 8 float64 actions equals np.sum(np.square(a)) bitwise,
    on magnitudes 1e-160..1e160 (where any other order rounds differently), zeros, subnormals,
    infinities and NaN; other sizes and dtypes are NumPy's own sum."""
    rng = np.random.default_rng(1)
    for n in range(1, 8):
        assert _in_order_sum_is_numpys(n)
        squares = _squares(n)
        for _ in range(300):
            a = rng.normal(size=n) * 10.0 ** rng.uniform(-160, 160, n)
            a[rng.random(n) < 0.1] = rng.choice([0.0, -0.0, 5e-324, np.inf, -np.inf, np.nan])
            with np.errstate(over="ignore", invalid="ignore"):
                assert _same(np.float64(squares(a)), np.sum(np.square(a)))
        a32 = rng.normal(size=n).astype(np.float32)
        assert _same(squares(a32), np.sum(np.square(a32)))  # float32 squares, float32 sum
        assert _same(np.float64(squares(list(a32.tolist()))), np.sum(np.square(a32.tolist())))
    a = rng.normal(size=17)
    assert _same(_squares(17)(a), np.sum(np.square(a)))


# ---- refusals: gymnasium's step is used instead ---------------------------------------------

def _hopper_with_two_joints(tmp_path) -> str:
    path = tmp_path / "slider.xml"
    path.write_text("""<mujoco><worldbody><body name="torso">
      <joint name="x" type="slide" axis="1 0 0"/><joint name="z" type="slide" axis="0 0 1"/>
      <geom type="sphere" size="0.1" mass="1"/></body></worldbody>
      <actuator><motor joint="x" ctrlrange="-1 1" ctrllimited="true"/></actuator></mujoco>""")
    return str(path)


@pytest.mark.parametrize("env_id,kwargs,reason", [
    ("Hopper-v5", {"render_mode": "rgb_array"}, "render_mode"),
    ("HalfCheetah-v5", {"frame_skip": 2.0}, "frame_skip"),
    ("Hopper-v5", {"healthy_reward": np.float32(0.5)}, "not a plain real number"),
    ("Walker2d-v5", {"forward_reward_weight": 2**60}, "not a plain real number"),
    ("Hopper-v5", {"terminate_when_unhealthy": 1}, "not a bool"),
    ("Swimmer-v5", {"exclude_current_positions_from_observation": 0}, "not a bool"),
    ("Humanoid-v5", {"include_cinert_in_observation": 1}, "not a bool"),
    ("Walker2d-v5", {"healthy_z_range": (0.8, 2.0, 3.0)}, "not a pair"),
    ("Hopper-v5", {"healthy_state_range": np.array([-100.0, 100.0])}, "not a pair"),
    ("Ant-v5", {"main_body": "no_such_body"}, "main_body"),
    ("Ant-v5", {"main_body": np.int64(1)}, "main_body"),
    ("Ant-v5", {"contact_force_range": (None, 1.0)}, "not a plain real number"),
    ("Hopper-v5", {"xml_file": "two joints"}, "qpos entries"),
])
def test_settings_the_fast_step_does_not_mirror_are_refused(env_id, kwargs, reason, tmp_path):
    if kwargs.get("xml_file") == "two joints":
        kwargs = {"xml_file": _hopper_with_two_joints(tmp_path)}
    env = make_env(env_id, **kwargs).unwrapped
    assert fast_step(env) is None
    assert reason in refusal(env)
    env.close()


def test_refused_env_is_stepped_by_gymnasium():
    from es_compact.rollout import bypass_wrappers

    env = make_env("Hopper-v5", terminate_when_unhealthy=1)
    step, limit = bypass_wrappers(env)
    assert step == env.unwrapped.step and limit == 1000


def test_subclass_is_refused():
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    class MyHopper(HopperEnv):
        pass

    env = MyHopper()
    assert fast_step(env) is None and refusal(env) == ""


def test_method_replaced_on_the_instance_is_refused():
    env = make_env("Walker2d-v5").unwrapped
    original = env._get_obs
    env._get_obs = lambda: original() * 2
    assert fast_step(env) is None and "_get_obs" in refusal(env)


@pytest.mark.parametrize("name", ["_get_rew", "is_healthy", "do_simulation"])
def test_class_whose_step_source_differs_is_refused(name, monkeypatch):
    """What another gymnasium release or a patch looks like: a method the step runs no longer
    has the verified source."""
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    original = getattr(HopperEnv, name)
    if isinstance(original, property):
        replacement = property(lambda self: original.fget(self))
        owner = HopperEnv
    else:
        def replacement(self, *args):
            return original(self, *args)
        owner = HopperEnv if name in vars(HopperEnv) else HopperEnv.__mro__[1]
    monkeypatch.setattr(owner, name, replacement)
    env = make_env("Hopper-v5").unwrapped
    assert fast_step(env) is None and "not the source verified here" in refusal(env)

