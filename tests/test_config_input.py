"""Bad configuration input, from a TOML file, a run's config.json or Python, fails at once with
a ConfigError naming the field (one line from the CLI, nothing written), not with a TypeError
deep inside training, nor by being read as something else (True as 1, "no" as truthy, 1.5
rotations as 1). Valid input reads exactly as before."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_compact.config import PolicyConfig, RunConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.trainer import load_run_config
from es_compact_cli.main import cli

NAN, INF = float("nan"), float("inf")
ROT = "rotations must be positive integers (one, or a list of one per weight matrix), got "


def build(section: str, name: str, value) -> TrainConfig:
    data = {"run": {"iterations": 1}}
    data.setdefault(section, {})[name] = value
    return TrainConfig.from_dict(data).validate()


@pytest.mark.parametrize("section,name,value,message", [
    ("env", "id", 5, "env id must be a string, got 5"),
    ("env", "reward_shift", "1", "reward_shift must be a finite number, got '1'"),
    ("env", "reward_shift", NAN, "reward_shift must be a finite number, got nan"),
    ("env", "reward_shift", -INF, "reward_shift must be a finite number, got -inf"),
    ("env", "max_episode_steps", 20.5, "max_episode_steps must be a positive integer, got 20.5"),
    ("env", "max_episode_steps", "20", "max_episode_steps must be a positive integer, got '20'"),
    ("policy", "arch", 5, "arch must be a string, got 5"),
    ("policy", "hidden", True, "hidden must be a positive integer, got True"),
    ("policy", "depth", 4.0, "depth must be a positive integer, got 4.0"),
    ("policy", "rotations", "10,20,30", ROT + "'10,20,30'"),
    ("policy", "rotations", "abc", ROT + "'abc'"),
    ("policy", "rotations", {"a": 1}, ROT + "{'a': 1}"),
    ("policy", "rotations", 1.5, ROT + "1.5"),
    ("policy", "rotations", True, ROT + "True"),
    ("policy", "rotations", [10, True], ROT + "(10, True)"),
    ("policy", "rotations", [], ROT + "()"),
    ("policy", "slope", "0.5", "slope must lie in [0, 1], got '0.5'"),
    ("policy", "bias_std", NAN, "bias_std must be a finite number >= 0, got nan"),
    ("policy", "bias_std", INF, "bias_std must be a finite number >= 0, got inf"),
    ("policy", "linear_bias", "yes", "linear_bias must be true or false, got 'yes'"),
    ("policy", "output_bias", 3, "output_bias must be true or false, got 3"),
    ("strategy", "step_size", "x", "step_size must be a positive number, got 'x'"),
    ("strategy", "noise_std", True, "noise_std must be a positive number, got True"),
    ("strategy", "directions", "2", "directions must be a positive integer, got '2'"),
    ("strategy", "directions", 2.5, "directions must be a positive integer, got 2.5"),
    ("strategy", "directions", True, "directions must be a positive integer, got True"),
    ("strategy", "top", 1.5, "top must be a positive integer, got 1.5"),
    ("strategy", "momentum", "0.9", "momentum must lie in [0, 1), got '0.9'"),
    ("strategy", "l2_coeff", NAN, "l2_coeff must be a finite number >= 0, got nan"),
    ("strategy", "obs_norm_floor", 0, "obs_norm_floor must be a positive number, got 0"),
    ("strategy", "obs_norm_floor", -1, "obs_norm_floor must be a positive number, got -1"),
    ("strategy", "obs_norm_floor", NAN, "obs_norm_floor must be a positive number, got nan"),
    ("run", "seed", True, "seed must be a non-negative integer, got True"),
    ("run", "iterations", True, "iterations must be a positive integer, got True"),
    ("run", "workers", True, "workers must be a positive integer, got True"),
    ("run", "eval_every", None, "eval_every must be a positive integer, got None"),
    ("run", "time_limit", "60", "time_limit must be a positive number of seconds, got '60'"),
    ("run", "time_limit", INF, "time_limit must be a positive number of seconds, got inf"),
    ("run", "target_return", "100", "target_return must be a finite number, got '100'"),
    ("run", "target_return", NAN, "target_return must be a finite number, got nan"),
    ("run", "max_failed_fraction", "0.5", "max_failed_fraction must lie in (0, 1], got '0.5'"),
    ("run", "checkpoint_every_s", "30", "checkpoint_every_s must be a finite number >= 0, "
                                        "got '30'"),
    ("run", "noise_table_size", 100000.0, "noise_table_size must be an integer >= 1000, got "
                                          "100000.0"),
    ("run", "ray_dashboard", "no", "ray_dashboard must be true or false, got 'no'"),
    ("run", "ray_address", 5, "ray_address must be a string, got 5"),
])
def test_a_value_of_the_wrong_type_or_out_of_range_names_its_field(section, name, value,
                                                                   message):
    with pytest.raises(ConfigError) as exc:
        build(section, name, value)
    assert str(exc.value) == message


@pytest.mark.parametrize("section,name,value,stored", [
    ("policy", "rotations", 10, (10,)),  # one count for every matrix, as TOML writes it
    ("policy", "rotations", [10, 20], (10, 20)),
    ("policy", "slope", 1, 1),  # integers are real numbers
    ("strategy", "step_size", 1, 1),
    ("strategy", "momentum", 0, 0),
    ("strategy", "l2_coeff", 0, 0),
    ("env", "reward_shift", -1, -1),
    ("run", "target_return", 1000, 1000),
    ("run", "time_limit", 60, 60),
    ("run", "checkpoint_every_s", 0, 0),
    ("run", "max_failed_fraction", 1, 1),
    ("run", "ray_address", "auto", "auto"),
    ("run", "ray_dashboard", True, True),
])
def test_valid_values_are_read_as_before(section, name, value, stored):
    assert getattr(getattr(build(section, name, value), section), name) == stored


def test_a_config_round_trips_through_its_dict_unchanged():
    config = TrainConfig(policy=PolicyConfig(rotations=(3, 4, 5)),
                         run=RunConfig(seed=2, timesteps=10, target_return=1.5)).validate()
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("data,message", [
    ([1, 2], "a configuration is a table of the sections env, policy, strategy, run, init, got "
             "[1, 2]"),
    ("x", "a configuration is a table of the sections env, policy, strategy, run, init, got 'x'"),
    ({"seed": 1}, "unknown config section(s): seed (seed belongs in [run])"),
    ({"env": "Hopper-v4"}, "config section env must be a table of settings, got 'Hopper-v4'"),
    ({"policy": 5}, "config section policy must be a table of settings, got 5"),
    ({"run": [{"iterations": 1}]}, "config section run must be a table of settings, got "
                                   "[{'iterations': 1}]"),
    ({"run": {"iterations": 1, "speed": 2}}, "unknown run setting(s): speed"),
])
def test_a_malformed_structure_names_the_section(data, message):
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict(data)
    assert str(exc.value) == message


@pytest.mark.parametrize("content,reason", [
    (b"[1,2]", "a configuration is a table of the sections env, policy, strategy, run, init, got "
               "[1, 2]"),
    (b'"x"', "a configuration is a table of the sections env, policy, strategy, run, init, "
             "got 'x'"),
    (b'{"env": "x"}', "config section env must be a table of settings, got 'x'"),
    (b'{"policy": {"rotations": "abc"}, "run": {"iterations": 1}}', ROT + "'abc'"),
    (b'{"run": {"iterations": 1}', "Expecting ',' delimiter: line 1 column 26 (char 25)"),
    ('{"run": {"iterations": 1}}'.encode("utf-16"),
     "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
])
def test_a_corrupted_run_config_names_the_file_and_is_left_alone(tmp_path, content, reason):
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        load_run_config(tmp_path)
    assert str(exc.value) == f"{tmp_path}/config.json is not a valid run configuration: {reason}"
    res = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and res.output == f"error: {exc.value}\n"
    assert (tmp_path / "config.json").read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.parametrize("toml,message", [
    ("seed = 1\n", "config file {f}: unknown config section(s): seed (seed belongs in [run])"),
    ('env = "Hopper-v4"\n', "config file {f}: config section env must be a table of settings, "
                            "got 'Hopper-v4'"),
    ("policy = 5\n", "config file {f}: config section policy must be a table of settings, "
                     "got 5"),
    ("[[run]]\niterations = 1\n", "config file {f}: config section run must be a table of "
                                  "settings, got [{'iterations': 1}]"),
    ('[strategy]\nstep_size = "x"\n', "step_size must be a positive number, got 'x'"),
    ('[strategy]\ndirections = "8"\n', "directions must be a positive integer, got '8'"),
    ("[strategy]\ntop = 1.5\n", "top must be a positive integer, got 1.5"),
    ("[policy]\nhidden = true\n", "hidden must be a positive integer, got True"),
    ('[policy]\nrotations = "10,20,30"\n', ROT + "'10,20,30'"),
    ("[policy]\nrotations = {a = 1}\n", ROT + "{'a': 1}"),
    ("[env]\nid = 5\n", "env id must be a string, got 5"),
    ('[env]\nreward_shift = "1"\n', "reward_shift must be a finite number, got '1'"),
    ("[env]\nmax_episode_steps = 20.5\n", "max_episode_steps must be a positive integer, "
                                          "got 20.5"),
    ('[run]\ntarget_return = "100"\n', "target_return must be a finite number, got '100'"),
    ("[run]\nnoise_table_size = 100000.0\n", "noise_table_size must be an integer >= 1000, "
                                             "got 100000.0"),
    ('[run]\nray_dashboard = "no"\n', "ray_dashboard must be true or false, got 'no'"),
    ("[run]\nseed = true\n", "seed must be a non-negative integer, got True"),
])
def test_cli_a_malformed_toml_file_is_a_one_line_error_before_anything_is_written(
        tmp_path, toml, message):
    f = tmp_path / "c.toml"
    f.write_text(toml)
    res = CliRunner().invoke(cli, ["train", "--config", str(f), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert res.output == "error: " + message.replace("{f}", str(f)) + "\n"
    assert not (tmp_path / "r").exists()


def test_cli_a_toml_file_that_is_not_utf8_is_a_one_line_error(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[run]\niterations = 1\n", encoding="utf-16")  # what some editors save
    res = CliRunner().invoke(cli, ["train", "--config", str(f), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.output == f"error: config file {f} is not UTF-8 text, which TOML requires\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("strategy,message", [
    ({"variant": "v2", "directions": 4, "top": 1},
     "top (b = 1) applies to ARS v1t and v2t only; ARS v2 uses all 4 directions"),
    ({"algo": "es", "directions": 8, "top": 2},
     "top (b = 2) applies to ARS v1t and v2t only; ES uses all 8 directions"),
])
def test_top_where_every_direction_is_used_is_refused_not_ignored(strategy, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"strategy": strategy, "run": {"iterations": 1}}).validate()
    assert str(err.value) == message


@pytest.mark.parametrize("strategy", [{"variant": "v2", "directions": 4, "top": 4},
                                      {"variant": "v2t", "directions": 4, "top": 1},
                                      {"algo": "es", "directions": 8}])
def test_top_that_means_what_it_says_is_accepted(strategy):
    TrainConfig.from_dict({"strategy": strategy, "run": {"iterations": 1}}).validate()


def test_numpy_scalars_become_python_values():
    """A sweep over np.arange hands in np.int64: it configures like an int (and a np.bool_ is
    still no integer), and the resolved config is written as plain JSON."""
    import numpy as np

    from es_compact.config import EnvConfig
    from es_compact.presets import resolve

    cfg = TrainConfig(env=EnvConfig(id="Hopper-v4", reward_shift=np.float32(0.5)),
                      policy=PolicyConfig(arch="kama", rotations=(np.int64(5), 6)),
                      run=RunConfig(seed=np.int64(3), iterations=np.int64(2)))
    values = (cfg.run.seed, cfg.run.iterations, *cfg.policy.rotations, cfg.env.reward_shift)
    assert values == (3, 2, 5, 6, 0.5)
    assert [type(v) for v in values] == [int, int, int, int, float]
    assert cfg == TrainConfig(env=EnvConfig(id="Hopper-v4", reward_shift=0.5),
                              policy=PolicyConfig(arch="kama", rotations=(5, 6)),
                              run=RunConfig(seed=3, iterations=2))
    json.dumps(resolve(cfg).to_dict())  # TypeError on a NumPy scalar
    with pytest.raises(ConfigError, match="seed must be a non-negative integer, got True"):
        resolve(TrainConfig(env=EnvConfig(id="Hopper-v4"),
                            run=RunConfig(seed=np.bool_(True), iterations=1)))
