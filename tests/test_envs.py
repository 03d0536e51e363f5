"""Environments as a user meets them: v5 by default, gymnasium's v4 notice shown once, settings
(env.kwargs) carried to every place an environment is built, evaluation on another compatible
environment, and one-line errors for ids gymnasium moved away or whose package is missing.
Real MuJoCo environments and real worker processes throughout."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from cli_checks import invoke, one_line_error

from es_compact.config import (
    EnvConfig,
    PolicyConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
    parse_env_kwarg,
)
from es_compact.envs import _accepted, accepted_kwargs, make_env, outdated
from es_compact.errors import ConfigError, SpaceError
from es_compact.evaluate import eval_worker, evaluate, load_run
from es_compact.export import policy_arrays
from es_compact.presets import preset_for
from es_compact.rollout import RolloutWorker
from es_compact.run_dir import UNSET, RunDir, resume_differences
from es_compact.trainer import Trainer
from es_compact_cli.train import build_config, train

SETTINGS = {"frame_skip": 2, "ctrl_cost_weight": 0.2}


def config(env="HalfCheetah-v5", kwargs=SETTINGS, backend="serial", workers=1, iterations=2):
    return TrainConfig(
        env=EnvConfig(id=env, max_episode_steps=100, kwargs=kwargs),
        policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(directions=3, top=2),
        run=RunConfig(iterations=iterations, backend=backend, workers=workers, eval_every=2,
                      eval_episodes=2, noise_table_size=100_000))


def theta(run_dir) -> np.ndarray:
    return RunDir(run_dir).load_checkpoint("latest")[0]["theta"]


# v5 first-class ------------------------------------------------------------------------------

def test_v5_is_the_default_and_shares_v4s_preset():
    assert EnvConfig().id == "HalfCheetah-v5"
    ctx = train.make_context("train", [])
    assert build_config(ctx, dict(ctx.params), None).env.id == "HalfCheetah-v5"
    assert preset_for("HalfCheetah-v5") == preset_for("HalfCheetah-v4")


def test_outdated_is_gymnasiums_own_notice(monkeypatch):
    import gymnasium as gym

    # gymnasium's own level, which es_compact.envs lowers to errors once any env was built here
    monkeypatch.setattr(gym.logger, "min_level", 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym.make("HalfCheetah-v4").close()
    said = [str(w.message) for w in caught if "out of date" in str(w.message)]
    assert said and outdated("HalfCheetah-v4") in said[0]
    assert outdated("HalfCheetah-v5") is None and outdated("CartPole-v1") is None
    assert outdated("tests.misbehaving_env:NaNEnv") is None and outdated("nonsense") is None


def _train_cli(*args):
    return subprocess.run([sys.executable, "-m", "es_compact_cli", "train", "--arch", "linear",
                           "--directions", "2", "--top", "1", "--max-episode-steps", "50",
                           "--eval-episodes", "1", "--noise-table-size", "100000", "--quiet",
                           "--no-plot", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_a_v4_id_is_announced_once_with_many_workers(tmp_path):
    """The notice is the CLI's, once; the two worker processes that build the environment
    stay silent, as does a resume of the run."""
    p = _train_cli("--env", "InvertedPendulum-v4", "--iterations", "1", "--backend", "mp",
                   "--workers", "2", "--out", tmp_path / "v4")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("out of date") == 1, p.stderr
    line = next(ln for ln in p.stderr.splitlines() if "out of date" in ln)
    assert line == ("warning: gymnasium: The environment InvertedPendulum-v4 is out of date. "
                    "You should consider upgrading to version `v5`.")
    p = _train_cli("--resume", tmp_path / "v4", "--iterations", "2")
    assert p.returncode == 0 and "out of date" not in p.stderr, p.stderr
    p = _train_cli("--env", "InvertedPendulum-v5", "--iterations", "1", "--backend", "mp",
                   "--workers", "2", "--out", tmp_path / "v5")
    assert p.returncode == 0 and "out of date" not in p.stderr, p.stderr


def test_the_library_and_so_the_experiments_never_print_it(tmp_path, capfd):
    cfg = config("InvertedPendulum-v4", kwargs={}, iterations=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(cfg, tmp_path / "run").run()
    assert not [w for w in caught if "out of date" in str(w.message)]
    assert "out of date" not in "".join(capfd.readouterr())


# Environment settings ------------------------------------------------------------------------

def test_kwargs_are_stored_sorted_hashable_and_plain_json():
    a = EnvConfig(kwargs={"frame_skip": 2, "healthy_z_range": [0.8, 1.5]})
    b = EnvConfig(kwargs=[("healthy_z_range", (0.8, 1.5)), ("frame_skip", 2)])
    assert a == b and hash(a) == hash(b)
    assert a.kwargs == (("frame_skip", 2), ("healthy_z_range", (0.8, 1.5)))
    cfg = TrainConfig(env=a)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["env"]["kwargs"] == {"frame_skip": 2, "healthy_z_range": [0.8, 1.5]}
    assert TrainConfig.from_dict(data) == cfg
    assert TrainConfig.from_dict({"env": {"id": "X"}}).env.kwargs == ()  # an older config.json
    assert a.make_kwargs() == {"frame_skip": 2, "healthy_z_range": (0.8, 1.5)}


@pytest.mark.parametrize("kwargs,words", [
    ({"render_mode": "human"}, "es-compact chooses it"),
    ({"max_episode_steps": 9}, "--max-episode-steps"),
    ({"x": None}, "x must be a boolean"),
    ({"x": float("nan")}, "finite float"),
    ({"x": {"a": 1}}, "x must be"),
    ({"x": [[1, 2]]}, "x must be"),
    ({"2x": 1}, "not a keyword name"),
    ("frame_skip=2", "a table of name = value"),
])
def test_bad_kwargs_are_named(kwargs, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        EnvConfig(kwargs=kwargs).validate()


@pytest.mark.parametrize("text,value", [
    ("k=2", 2), ("k=0.2", 0.2), ("k=-1e-3", -1e-3), ("k=true", True), ("k=False", False),
    ("k=walker2d.xml", "walker2d.xml"), ('k="2"', "2"), ("k=[0.8, 1.5]", (0.8, 1.5)),
    ("k=a=b", "a=b")])
def test_env_kwargs_values_read_as_json_or_text(text, value):
    key, got = parse_env_kwarg(text)
    assert key == "k" and got == value and type(got) is type(value)


def test_toml_table_and_flags_merge(tmp_path):
    toml = {"env": {"id": "Hopper-v5", "kwargs": {"ctrl_cost_weight": 0.01,
                                                   "healthy_z_range": [0.8, 2.0]}}}
    ctx = train.make_context("train", ["--env-kwargs", "ctrl_cost_weight=0.02",
                                       "--env-kwargs", "frame_skip=3"])
    env = build_config(ctx, dict(ctx.params), toml).env
    assert dict(env.kwargs) == {"ctrl_cost_weight": 0.02, "frame_skip": 3,
                                "healthy_z_range": (0.8, 2.0)}


def test_accepted_keywords_follow_kwargs_to_mujocoenv():
    v5 = accepted_kwargs("HalfCheetah-v5")
    assert v5[:2] == ["xml_file", "frame_skip"] and {"width", "camera_id"} <= set(v5)
    assert "render_mode" not in v5 and "model_path" not in v5
    assert accepted_kwargs("CartPole-v1") == ["sutton_barto_reward"]

    class Open:
        def __init__(self, **kwargs):
            pass

    assert _accepted(Open) is None  # nothing ends **kwargs: anything may be accepted


@pytest.mark.parametrize("env_id,kwargs,words", [
    ("HalfCheetah-v5", {"frame_skp": 2}, ["has no setting frame_skp",
                                          "did you mean frame_skip?", "it accepts xml_file, "]),
    ("HalfCheetah-v4", {"frame_skip": 2}, ["HalfCheetah-v4 has no setting frame_skip",
                                           "ctrl_cost_weight"]),
    ("HalfCheetah-v5", {"xml_file": "missing.xml"}, ["with xml_file='missing.xml'"]),
])
def test_a_setting_the_environment_refuses_is_one_line_before_anything_is_written(
        env_id, kwargs, words, tmp_path):
    with pytest.raises(ConfigError) as exc:
        make_env(env_id, **kwargs)
    assert "\n" not in str(exc.value)
    flags = [a for k, v in kwargs.items() for a in ("--env-kwargs", f"{k}={v}")]
    res = invoke("train", "--env", env_id, *flags, "--iterations", "1", "--out",
                 tmp_path / "run")
    one_line_error(res, *words)
    assert not (tmp_path / "run").exists()


def test_settings_shape_theta_identically_on_serial_and_mp(tmp_path):
    """frame_skip 2 and another control cost reach the worker processes, through the fast step
    (which reads them from the environment), and change θ; serial and mp agree bitwise."""
    cfg = config()
    tableless = dataclasses.replace(cfg.strategy, exploration="orthogonal")
    worker = RolloutWorker(dataclasses.replace(cfg, strategy=tableless), None)
    assert type(worker._raw_step).__name__ == "HalfCheetahV5Step"
    assert worker.env.unwrapped.frame_skip == 2 and worker._raw_step.frame_skip == 2
    assert worker.env.unwrapped._ctrl_cost_weight == worker._raw_step.ctrl_weight == 0.2
    worker.close()
    Trainer(config(), tmp_path / "serial").run()
    Trainer(config(backend="mp", workers=2), tmp_path / "mp").run()
    Trainer(config(kwargs={}), tmp_path / "defaults").run()
    assert theta(tmp_path / "serial").tobytes() == theta(tmp_path / "mp").tobytes()
    assert not np.array_equal(theta(tmp_path / "serial"), theta(tmp_path / "defaults"))
    stored = json.loads((tmp_path / "mp" / "config.json").read_text())
    assert stored["env"]["kwargs"] == SETTINGS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("envs")
    Trainer(config(), root / "v5").run()
    Trainer(config("HalfCheetah-v4", kwargs={}), root / "v4").run()
    return root


def test_a_resume_keeps_the_settings_and_names_the_one_that_differs(trained):
    stored = RunDir(trained / "v5").read_config()
    assert resume_differences(stored, config(iterations=5)) == []
    diff = resume_differences(stored, config(kwargs={**SETTINGS, "frame_skip": 3}))
    assert diff == [("env.kwargs.frame_skip", 2, 3)]
    assert resume_differences(stored, config(kwargs={"frame_skip": 2})) == [
        ("env.kwargs.ctrl_cost_weight", 0.2, UNSET)]
    # True == 1 to Python, not to a constructor that tests `is True`
    flag = config(kwargs={"exclude_current_positions_from_observation": True})
    one = config(kwargs={"exclude_current_positions_from_observation": 1})
    assert [d[0] for d in resume_differences(flag, one)] == [
        "env.kwargs.exclude_current_positions_from_observation"]
    res = invoke("train", "--resume", trained / "v5", "--env-kwargs", "frame_skip=3")
    one_line_error(res, "cannot resume: env.kwargs.frame_skip is 2 in", "3 here")


def test_eval_and_export_use_the_runs_settings(trained):
    run = load_run(trained / "v5", "latest")
    worker = eval_worker(run)
    assert worker.env.unwrapped.frame_skip == 2
    worker.close()
    meta = json.loads(str(policy_arrays(run)["spec"]))
    assert meta["env"] == "HalfCheetah-v5" and meta["env_kwargs"] == SETTINGS
    res = invoke("eval", trained / "v5", "--checkpoint", "latest", "--episodes", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.splitlines()[-1])["env_kwargs"] == SETTINGS


# Another environment -------------------------------------------------------------------------

def test_eval_on_another_compatible_environment(trained):
    """A v4 run evaluated on v5 (and a v5 run with another frame skip) uses the same episode
    seeds, on the new environment."""
    run = load_run(trained / "v4", "latest", env_id="HalfCheetah-v5")
    assert run.config.env.id == "HalfCheetah-v5"
    worker = eval_worker(run)
    assert worker.env.spec.id == "HalfCheetah-v5"
    worker.close()
    on_v5 = evaluate(run, 2)
    assert on_v5["seeds"] == evaluate(load_run(trained / "v4", "latest"), 2)["seeds"]
    with pytest.raises(SpaceError):
        load_run(trained / "v4", "latest", env_id="Hopper-v5")
    skip = load_run(trained / "v5", "latest", env_kwargs={"frame_skip": 3})
    assert dict(skip.config.env.kwargs) == {**SETTINGS, "frame_skip": 3}
    res = invoke("eval", trained / "v4", "--checkpoint", "latest", "--episodes", "1",
                 "--env", "HalfCheetah-v5", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.splitlines()[-1])["env"] == "HalfCheetah-v5"


@pytest.mark.parametrize("args,words", [
    (["--env", "Hopper-v5"], ["cannot evaluate on Hopper-v5: its observations are Box (11,), "
                              "the policy's (HalfCheetah-v4) Box (17,)"]),
    (["--env", "CartPole-v1"], ["cannot evaluate on CartPole-v1"]),
    (["--env-kwargs", "exclude_current_positions_from_observation=false"],
     ["observations are Box (18,)"]),
])
def test_eval_refuses_incompatible_spaces_in_one_line(trained, args, words):
    res = invoke("eval", trained / "v4", "--checkpoint", "latest", *args)
    one_line_error(res, *words)


def test_eval_on_an_environment_without_the_runs_setting_says_where_it_came_from(trained):
    res = invoke("eval", trained / "v5", "--checkpoint", "latest", "--env", "HalfCheetah-v4")
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and lines[0].startswith("warning: gymnasium: "), res.output
    assert lines[1].startswith("error: HalfCheetah-v4 has no setting frame_skip") and \
        lines[1].endswith("(the run's environment settings carry over to another environment)")


# Ids gymnasium moved away, packages that are missing -----------------------------------------

def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


MOVED = [("HalfCheetah-v3", "gymnasium_robotics",
          ["HalfCheetah-v3 is a mujoco-py environment", "pip install gymnasium-robotics "
           "mujoco-py", "or use HalfCheetah-v5"]),
         ("Hopper-v2", "gymnasium_robotics", ["pip install gymnasium-robotics mujoco-py"]),
         ("ALE/Pong-v5", "ale_py", ["ALE/Pong-v5 is an Atari environment of ale-py, which is "
                                    "not installed: pip install ale-py"]),
         ("LunarLander-v3", "Box2D", ['pip install "gymnasium[box2d]"'])]


@pytest.mark.parametrize("env_id,module,words", MOVED, ids=[m[0] for m in MOVED])
def test_a_moved_id_or_missing_package_names_what_to_install(env_id, module, words, tmp_path):
    if not _missing(module):
        pytest.skip(f"{module} is installed here")
    with pytest.raises(ConfigError):
        make_env(env_id)
    res = invoke("train", "--env", env_id, "--iterations", "1", "--out", tmp_path / "run")
    one_line_error(res, *words)
    assert not (tmp_path / "run").exists()
    one_line_error(invoke("params", "--env", env_id), *words)
