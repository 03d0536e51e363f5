"""An option given on the command line that would change nothing is refused, not ignored:
otherwise a user believes a run used a setting it never used. Nothing is written."""

from __future__ import annotations

import json

import pytest

from tests.cli_checks import invoke, one_line_error

IGNORED_IN_TRAIN = [
    (["--arch", "dense", "--rotations", "50"], "--rotations", "--arch kama"),
    (["--arch", "linear", "--hidden", "32"], "--hidden", "dcnn"),
    (["--arch", "dcnn", "--hidden-layers", "3"], "--hidden-layers", "dense, toeplitz and kama"),
    (["--arch", "kama", "--depth", "3"], "--depth", "--arch dcnn"),
    (["--arch", "toeplitz", "--nonlin-every", "2"], "--nonlin-every", "--arch dcnn"),
    (["--arch", "dense", "--dcnn-init", "scaled"], "--dcnn-init", "--arch dcnn"),
    (["--arch", "dcnn", "--depth", "3", "--nonlin-every", "3", "--slope", "0.2"], "--slope",
     "leaky ReLU"),
    (["--env", "CartPole-v1", "--arch", "linear", "--squash", "tanh"], "--squash", "Box"),
    (["--optimizer", "sgd"], "--optimizer", "--algo es"),
    (["--l2-coeff", "0.01"], "--l2-coeff", "--algo es"),
    (["--algo", "es", "--variant", "v1"], "--variant", "--algo ars"),
    (["--backend", "serial", "--workers", "2"], "--workers", "serial"),
    (["--ray-address", "auto"], "--ray-address", "--backend ray"),
    (["--ray-dashboard"], "--ray-dashboard", "--backend ray"),
    (["--backend", "ray", "--ray-address", "127.0.0.1:1", "--ray-dashboard"],
     "--ray-dashboard", "no --ray-address"),
]


@pytest.mark.parametrize("args,flag,when", IGNORED_IN_TRAIN)
def test_train_refuses_an_option_it_would_ignore(tmp_path, args, flag, when):
    out = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--iterations", "1", *args,
                 "--out", out)
    one_line_error(res, flag, when)
    assert not out.exists()


def test_the_same_options_are_taken_where_they_apply(tmp_path):
    # The options the table above refuses, each where it shapes the run: training starts.
    res = invoke("train", "--env", "InvertedPendulum-v4", "--arch", "dcnn", "--depth", "3",
                 "--nonlin-every", "1", "--slope", "0.2", "--dcnn-init", "scaled",
                 "--hidden", "8", "--algo", "es",
                 "--optimizer", "sgd", "--l2-coeff", "0.01", "--directions", "2",
                 "--backend", "serial", "--workers", "1", "--iterations", "1", "--quiet",
                 "--no-plot", "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["strategy"]["optimizer"] == "sgd"
    assert stored["policy"]["slope"] == 0.2
    assert stored["policy"]["dcnn_init"] == "scaled"


def test_resume_judges_options_by_the_stored_run(tmp_path):
    run = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--arch", "linear", "--backend",
                 "serial", "--directions", "2", "--iterations", "1", "--quiet", "--no-plot",
                 "--out", run)
    assert res.exit_code == 0, res.output
    before = (run / "progress.csv").read_text()
    one_line_error(invoke("train", "--resume", run, "--workers", "2", "--iterations", "2"),
                   "--workers", "serial")
    assert (run / "progress.csv").read_text() == before


def test_params_refuses_an_option_of_another_architecture():
    one_line_error(invoke("params", "--env", "Hopper-v4", "--arch", "dense", "--rotations",
                          "10"), "--rotations", "--arch kama")
    res = invoke("params", "--env", "Hopper-v4", "--arch", "kama", "--rotations", "10")
    assert res.exit_code == 0, res.output


def test_givens_refuses_options_of_the_other_mode(tmp_path):
    one_line_error(invoke("givens", "--full"), "--full", "--benchmark")
    one_line_error(invoke("givens", "--out-dir", tmp_path / "g"), "--out-dir", "--benchmark")
    one_line_error(invoke("givens", "--benchmark", "--dim", "8", "--out-dir", tmp_path / "g"),
                   "--dim", "without --benchmark")
    assert not (tmp_path / "g").exists()


def test_experiments_and_bench_refuse_options_they_would_ignore(tmp_path):
    one_line_error(invoke("experiment", "rl", "--backend", "serial", "--workers", "2",
                          "--runs", tmp_path / "runs", "--out", tmp_path / "out"),
                   "--workers", "serial")
    one_line_error(invoke("experiment", "presets", "--backend", "serial", "--workers", "2",
                          "--runs", tmp_path / "runs", "--out", tmp_path / "out"),
                   "--workers", "serial")
    one_line_error(invoke("bench", "throughput", "--memory-workers", "2", "--out",
                          tmp_path / "t.csv"), "--memory-workers", "--memory-table")
    assert list(tmp_path.iterdir()) == []
