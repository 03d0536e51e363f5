"""The benchmark commands run end to end and write their CSV rows (slow: they time things)."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from es_compact_cli.main import cli


@pytest.mark.slow
def test_bench_throughput_writes_a_row(tmp_path):
    out = tmp_path / "bt.csv"
    res = CliRunner().invoke(cli, ["bench", "throughput", "--env", "HalfCheetah-v4", "--arch",
                                   "linear", "--workers", "2", "--directions", "2",
                                   "--iterations", "6", "--memory-table", "2000000",
                                   "--memory-workers", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "efficiency (b) / (2 x (a)) =" in res.output
    df = pd.read_csv(out)
    row = df[df["case"] == "throughput"].iloc[0]
    assert 0 < row["efficiency"] < 1.5 and row["iterations_timed"] == 5
    assert row["bytes_sent_per_iteration"] > 0 and row["commit"] and row["cores"] >= 1
    # the non-environment share splits into task overhead, messaging and the rest
    assert 0 < row["task_overhead_share"] and 0 < row["messaging_share"]
    assert row["task_overhead_share"] + row["messaging_share"] <= row["non_env_share"] + 1e-9
    assert row["gym_after_vs_before"] > 0 and "% messaging" in res.output
    # (c): two real processes stepping at once, and (b) set against it
    assert row["concurrent_gym_steps_per_s"] > 0.3 * row["gym_steps_per_s"]
    assert row["train_vs_concurrent"] == pytest.approx(
        row["train_steps_per_s"] / row["concurrent_gym_steps_per_s"], rel=1e-2)
    mem = df[df["case"] == "memory"]
    assert list(mem["workers"]) == [1, 2]
    # the shared table is counted once, however many workers map it
    assert (abs(mem["pss_table_mib"] - mem["table_mib"]) < 0.1 * mem["table_mib"] + 1).all()


@pytest.mark.slow
def test_bench_throughput_compares_strategies_with_ars(tmp_path):
    out = tmp_path / "bt.csv"
    res = CliRunner().invoke(cli, ["bench", "throughput", "--env", "HalfCheetah-v4", "--arch",
                                   "linear", "--workers", "2", "--directions", "2",
                                   "--iterations", "6", "--algo", "cmaes", "--algo", "pgpe",
                                   "--rounds", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    rows = df[df["case"] == "strategy"].set_index("algo")
    assert list(rows.index) == ["ars", "cmaes", "pgpe"] and (rows["rounds"] == 2).all()
    assert rows.loc["ars", "efficiency_vs_ars"] == 1.0
    assert (rows["efficiency"] > 0).all() and (rows["strategy_share"] > 0).all()
    # CMA-ES sends its directions B D z (2 x 102 float64 more than ARS's offsets, at least)
    assert rows.loc["cmaes", "bytes_sent_per_iteration"] > \
        rows.loc["ars", "bytes_sent_per_iteration"] + 2 * 102 * 8
    assert "vs ARS" in res.output


def test_bench_throughput_rounds_apply_only_with_algo():
    res = CliRunner().invoke(cli, ["bench", "throughput", "--rounds", "3"])
    one_line_error(res, "--rounds", "--algo")


@pytest.mark.slow
def test_bench_forward_quick_writes_rows(tmp_path):
    out = tmp_path / "bf.csv"
    res = CliRunner().invoke(cli, ["bench", "forward", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert set(df["case"]) >= {"policy", "layer", "compile_cold", "start_cached", "env_step"}
    assert (df.loc[df["case"] == "layer", "speedup_vs_dense"] > 0).all()


def test_bench_throughput_rejects_too_few_iterations():
    res = CliRunner().invoke(cli, ["bench", "throughput", "--iterations", "3"])
    assert res.exit_code == 2 and "at least 6" in res.output


def test_bench_checkpoint_trains_the_same_theta_on_both_schedules(tmp_path):
    out = tmp_path / "bc.csv"
    res = CliRunner().invoke(cli, ["bench", "checkpoint", "--env", "InvertedPendulum-v4",
                                   "--arch", "linear", "--iterations", "4", "--rounds", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out).iloc[0]
    assert row["same_theta"] and row["rounds"] == 2 and len(row["speedup_per_round"].split()) == 2
    assert row["ms_per_iteration_every_iteration"] > 0 and row["ms_per_iteration_interval"] > 0
    assert "same θ: True" in res.output
    bad = CliRunner().invoke(cli, ["bench", "checkpoint", "--rounds", "0", "--out", str(out)])
    assert bad.exit_code == 2 and "--rounds must be at least 1" in bad.output


def test_bench_startup_times_the_help_against_python(tmp_path):
    out = tmp_path / "bs.csv"
    res = CliRunner().invoke(cli, ["bench", "startup", "--rounds", "2", "--label", "t",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out).set_index("timed")
    assert list(df.index) == ["python -c pass", "es-compact --help", "es-compact train --help"]
    assert (df["rounds"] == 2).all() and (df["label"] == "t").all() and df["commit"].all()
    assert df.loc["python -c pass", "wall_vs_python"] == 1.0
    # the CLI does more than the bare interpreter (its CPU time is the less noisy measure)
    assert (df["cpu_beyond_python_s"].iloc[1:] > 0).all()
    assert (df["wall_min_s"] <= df["wall_s"]).all() and (df["wall_s"] <= df["wall_max_s"]).all()
    assert df["load_1min_start"].notna().all() and "es-compact train --help" in res.output
    bad = CliRunner().invoke(cli, ["bench", "startup", "--executable", str(tmp_path / "no")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


# Each is found before measurement (a): the output has no "(a) single-process ..." line.
@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], ["Invalid value for '--workers': 0 is not in the range x>=1"]),
    (["--memory-workers", "0"], ["'--memory-workers': 0 is not in the range x>=1"]),
    (["--directions", "0"], ["'--directions': 0 is not in the range x>=1"]),
    (["--memory-table", "-5"], ["'--memory-table': -5 is not in the range x>=0"]),
    (["--memory-table", "999"], ["--memory-table must be 0 (off) or at least 1000", "999"]),
    (["--arch", "nope"], ["unknown architecture 'nope'"]),
    (["--out", "{tmp}/notes.txt"], ["must end in .csv"]),
    (["--out", "{tmp}/p.sh/x.csv"], ["p.sh is not a directory"]),
])
def test_bench_throughput_checks_everything_before_measuring(tmp_path, args, words):
    (tmp_path / "p.sh").write_bytes(b"precious")
    (tmp_path / "notes.txt").write_bytes(b"precious")
    res = CliRunner().invoke(cli, ["bench", "throughput", "--env", "InvertedPendulum-v4",
                                   *(a.format(tmp=tmp_path) for a in args)])
    one_line_error(res, *words)
    assert (tmp_path / "p.sh").read_bytes() == (tmp_path / "notes.txt").read_bytes() \
        == b"precious"


@pytest.mark.parametrize("command", [["forward", "--quick"], ["checkpoint"], ["features"],
                                     ["startup"]])
@pytest.mark.parametrize("out, words", [
    ("p.sh/x.csv", ["p.sh is not a directory"]),
    ("notes.csv", ["notes.csv is not a CSV file this tool wrote"]),
    ("bench.txt", ["must end in .csv"]),
])
def test_bench_out_is_checked_before_the_timings(tmp_path, command, out, words):
    for name in ("p.sh", "notes.csv", "bench.txt"):
        (tmp_path / name).write_bytes(b"not,ours\nprecious,1\n")
    res = CliRunner().invoke(cli, ["bench", *command, "--out", str(tmp_path / out)])
    one_line_error(res, *words)
    for name in ("p.sh", "notes.csv", "bench.txt"):
        assert (tmp_path / name).read_bytes() == b"not,ours\nprecious,1\n"



def test_step_gain_times_both_versions_with_their_fast_steps():
    from es_compact.bench import steps

    assert steps.versions("Hopper-v5") == ["Hopper-v4", "Hopper-v5"]
    assert steps.versions("CartPole-v1") == ["CartPole-v1"]
    rows = steps.step_gain("HalfCheetah-v5", steps=100, rounds=2)
    assert [r["env"] for r in rows] == ["HalfCheetah-v4", "HalfCheetah-v5"]
    for r in rows:
        assert r["fast_step"] is True and r["rounds"] == 2
        assert r["fast_vs_gym"] == r["fast_steps_per_s"] / r["gym_steps_per_s"]
        lo, hi = map(float, r["fast_vs_gym_min_max"].split("-"))
        assert 0 < lo <= hi
    v4, v5 = rows
    assert v5["v5_fast_vs_v4_fast"] == v5["fast_steps_per_s"] / v4["fast_steps_per_s"]
    # an env without a fast step times the bare env's own step as the rollouts' step
    (cart,) = steps.step_gain("CartPole-v1", steps=100, rounds=1)
    assert cart["fast_step"] is False and "v5_fast_vs_v4_fast" not in cart


def test_bench_step_gain_writes_rows(tmp_path):
    out = tmp_path / "bt.csv"
    res = CliRunner().invoke(cli, ["bench", "throughput", "--step-gain", "--env", "Swimmer-v5",
                                   "--rounds", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert list(df["env"]) == ["Swimmer-v4", "Swimmer-v5"] and (df["case"] == "step_gain").all()
    assert "Swimmer-v5 in training:" in res.output and df["commit"].notna().all()


@pytest.mark.parametrize("flag", [["--arch", "kama"], ["--workers", "3"], ["--algo", "ars"]])
def test_bench_step_gain_refuses_flags_it_would_ignore(flag):
    res = CliRunner().invoke(cli, ["bench", "throughput", "--step-gain", *flag])
    one_line_error(res, flag[0], "without --step-gain")
