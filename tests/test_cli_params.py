"""`es-compact params`: the KAMA-NN paper's Table 1 ratios, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from cli_checks import invoke, one_line_error
from click.testing import CliRunner

from es_compact_cli.main import cli

# KAMA-NN paper, Table 1 (percent of the dense network's parameters).
TABLE1 = {
    (64, 200): {"HalfCheetah-v4": (15, 7), "Walker2d-v4": (15, 7), "Hopper-v4": (17, 8)},
    (32, 100): {"HalfCheetah-v4": (24, 12), "Walker2d-v4": (24, 12), "Hopper-v4": (28, 13)},
}


def ratio(output: str) -> float:
    return float(re.search(r"ratio ([0-9.]+)%", output).group(1))


@pytest.mark.parametrize("hidden,rotations", list(TABLE1))
def test_table1_ratios_within_one_and_a_half_points(hidden, rotations):
    runner = CliRunner()
    for env, (kama, toeplitz) in TABLE1[(hidden, rotations)].items():
        for arch, paper in (("kama", kama), ("toeplitz", toeplitz)):
            k = ["--rotations", str(rotations)] if arch == "kama" else []
            res = runner.invoke(cli, ["params", "--env", env, "--arch", arch, "--hidden",
                                      str(hidden), *k])
            assert res.exit_code == 0, res.output
            assert abs(ratio(res.output) - paper) <= 1.5, (env, arch, res.output)


@pytest.mark.parametrize("args,message", [
    (["--arch", "resnet"], "unknown architecture 'resnet'"),
    (["--hidden", "0"], "hidden must be a positive integer"),
    (["--rotations", "0"], "rotations must be positive"),
    (["--rotations", "ten"], "--rotations takes an integer"),
    (["--depth", "0", "--arch", "dcnn"], "depth must be a positive integer"),
])
def test_bad_input_is_one_line_error(args, message):
    res = CliRunner().invoke(cli, ["params", "--env", "HalfCheetah-v4", *args])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_real_subprocess_unknown_env_suggests_names():
    res = subprocess.run([sys.executable, "-m", "es_compact_cli", "params", "--env",
                          "HalfChetah-v4"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert lines == [lines[0]] and "did you mean HalfCheetah-v4" in lines[0]
    assert "Traceback" not in res.stderr


def test_real_subprocess_params():
    res = subprocess.run([sys.executable, "-m", "es_compact_cli", "params", "--env",
                          "Hopper-v4", "--arch", "kama", "--layers"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "kama: 806 parameters; dense: 5120" in res.stdout
    assert "layer 2: kama 64->3 identity" in res.stdout


@pytest.mark.parametrize("group", [[], ["bench"], ["kernels"], ["experiment"]])
def test_a_group_alone_prints_its_help(group):
    res = CliRunner().invoke(cli, group)
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"Usage: {' '.join(['cli', *group])} [OPTIONS] COMMAND")
    assert "error:" not in res.output


@pytest.mark.parametrize("args,message", [
    (["--arch", "dense", "--hidden", "10000000000"], "error: a number is too large: "),
    (["--arch", "kama", "--rotations", "100000000000"], "error: not enough memory: Unable to "
                                                         "allocate"),
])
def test_sizes_too_large_are_one_line_errors(args, message):
    res = CliRunner().invoke(cli, ["params", "--env", "InvertedPendulum-v4", *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(message) and len(res.output.strip().splitlines()) == 1


def test_output_directory_that_is_a_file_says_so(tmp_path):
    blocked = tmp_path / "results"
    blocked.write_text("precious")
    res = CliRunner().invoke(cli, ["experiment", "table1", "--out", str(blocked)])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: Not a directory: {blocked}"
    assert blocked.read_text() == "precious"


# --env-kwargs, as train takes it ------------------------------------------------------------------

def test_params_counts_with_the_environment_settings():
    plain = invoke("params", "--env", "HalfCheetah-v5", "--arch", "linear")
    wider = invoke("params", "--env", "HalfCheetah-v5", "--arch", "linear", "--env-kwargs",
                   "exclude_current_positions_from_observation=false")
    assert plain.exit_code == wider.exit_code == 0, plain.output + wider.output
    assert "obs 17" in plain.output and "linear: 102 parameters" in plain.output
    assert "exclude_current_positions_from_observation=False)  obs 18" in wider.output
    assert "linear: 108 parameters" in wider.output


def test_params_refuses_a_setting_as_train_does(tmp_path):
    for args in (["--env-kwargs", "frame_skp=2"], ["--env-kwargs", "render_mode=human"],
                 ["--env-kwargs", "frame_skip"]):
        by_params = invoke("params", "--env", "HalfCheetah-v5", *args)
        by_train = invoke("train", "--env", "HalfCheetah-v5", *args, "--out", tmp_path / "r")
        one_line_error(by_params)
        assert by_params.output == by_train.output
    assert not (tmp_path / "r").exists()
