"""The training loop on a real MuJoCo environment: determinism, exact resume, run directories,
checkpoints, the CLI (click runner and a real subprocess) and its one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from es_compact import checkpoint
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.trainer import TIMING_COLUMNS, RunBusy, Trainer, run_lock
from es_compact_cli.main import cli

ENV = "InvertedPendulum-v4"


def config(iterations=4, arch="kama", algo="ars", exploration="gaussian", seed=0):
    return TrainConfig(
        env=EnvConfig(id=ENV, max_episode_steps=200),
        policy=PolicyConfig(arch=arch, hidden=8, rotations=(12,)),
        strategy=StrategyConfig(algo=algo, directions=4, top=2 if algo == "ars" else None,
                                exploration=exploration),
        run=RunConfig(seed=seed, iterations=iterations, eval_every=2, eval_episodes=2,
                      noise_table_size=100_000, backend="serial"))


def result(run_dir):
    arrays, meta = checkpoint.load(run_dir / "checkpoints", "latest")
    rows = pd.read_csv(run_dir / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays, meta, rows


@pytest.mark.parametrize("algo,exploration", [("ars", "gaussian"), ("es", "orthogonal"),
                                              ("ars", "hadamard")])
def test_same_seed_same_run_and_exact_resume(tmp_path, algo, exploration):
    Trainer(config(6, algo=algo, exploration=exploration), tmp_path / "a").run()
    Trainer(config(6, algo=algo, exploration=exploration), tmp_path / "b").run()
    Trainer(config(3, algo=algo, exploration=exploration), tmp_path / "c").run()
    Trainer(config(6, algo=algo, exploration=exploration), tmp_path / "c", mode="resume").run()
    (ta, ma, ra), (tb, mb, rb), (tc, mc, rc) = (result(tmp_path / n) for n in "abc")
    for other, rows in ((tb, rb), (tc, rc)):
        for key in ta:
            np.testing.assert_array_equal(ta[key], other[key])
        pd.testing.assert_frame_equal(ra, rows)
    assert ma["iteration"] == mc["iteration"] == 6 and ma["timesteps"] == mc["timesteps"]
    assert len(ra) == 6 and ra["eval_return_mean"].notna().sum() == 3
    # learning happened at all: θ moved from its initial value
    Trainer(config(1, algo=algo, exploration=exploration), tmp_path / "d").run()
    assert not np.array_equal(result(tmp_path / "d")[0]["theta"], ta["theta"])


def test_different_seed_differs(tmp_path):
    Trainer(config(2, seed=0), tmp_path / "a").run()
    Trainer(config(2, seed=1), tmp_path / "b").run()
    assert not np.array_equal(result(tmp_path / "a")[0]["theta"],
                              result(tmp_path / "b")[0]["theta"])


def test_run_directory_contents(tmp_path):
    summary = Trainer(config(4), tmp_path / "run").run()
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["strategy"]["step_size"] == 0.05 and cfg["env"]["reward_shift"] == 0.0  # preset
    assert cfg["policy"]["rotations"] == [12] and cfg["run"]["iterations"] == 4
    prog = pd.read_csv(run / "progress.csv")
    assert list(prog["iteration"]) == [1, 2, 3, 4]
    assert {"timesteps", "wall_time_s", "train_return_mean", "eval_return_mean",
            "eval_return_std", "steps_per_s", "failed_rollouts"} <= set(prog.columns)
    assert (prog["timesteps"].diff().dropna() > 0).all()
    arrays, meta = checkpoint.load(run / "checkpoints", "best")
    assert meta["best_eval"] == prog["eval_return_mean"].max() == summary["best_eval"]
    assert set(arrays) >= {"theta", "obs_mean", "obs_m2", "obs_count"}


def test_refuses_to_clobber_and_checks_resume(tmp_path):
    run = tmp_path / "run"
    Trainer(config(2), run).run()
    before = (run / "progress.csv").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(config(2), run).run()
    with pytest.raises(ConfigError, match="trained on architecture kama, not dcnn"):
        Trainer(config(4, arch="dcnn"), run, mode="resume").run()
    other_env = config(4)
    other_env = TrainConfig(env=EnvConfig(id="Hopper-v4"), policy=other_env.policy,
                            strategy=other_env.strategy, run=other_env.run)
    with pytest.raises(ConfigError, match="environment InvertedPendulum-v4, not Hopper-v4"):
        Trainer(other_env, run, mode="resume").run()
    assert (run / "progress.csv").read_bytes() == before
    with pytest.raises(ConfigError, match="holds no run"):
        Trainer(config(2), tmp_path / "empty", mode="resume").run()
    Trainer(config(1), run, mode="overwrite").run()
    assert len(pd.read_csv(run / "progress.csv")) == 1


def test_a_run_directory_is_trained_by_one_process_at_a_time(tmp_path):
    """While one trainer holds a run directory, another (resume, overwrite or new) is refused
    and touches nothing; once it is released, training goes on."""
    run = tmp_path / "run"
    Trainer(config(2), run).run()
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    with run_lock(run):  # what a training process holds
        for mode in ("resume", "overwrite", "new"):
            with pytest.raises(RunBusy, match=f"{run} is being trained by pid \\d+"):
                Trainer(config(4), run, mode=mode).run()
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before
    assert Trainer(config(4), run, mode="resume").run()["iterations"] == 4


def test_corrupted_checkpoint_is_detected(tmp_path):
    """A damaged latest with no usable generation before it is an error naming the damage
    (with one, the run falls back to it: tests/test_checkpoint_fallback.py)."""
    run = tmp_path / "run"
    Trainer(config(2), run).run()
    (run / "checkpoints" / "latest.prev.json").unlink()
    npz = checkpoint.npz_path(run / "checkpoints", "latest")
    npz.write_bytes(npz.read_bytes()[:-20])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupted"):
        Trainer(config(4), run, mode="resume").run()
    (run / "checkpoints" / "latest.json").write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="corrupted"):
        checkpoint.load(run / "checkpoints", "latest")


def test_checkpoints_contain_no_pickle(tmp_path):
    Trainer(config(2, algo="es"), tmp_path / "run").run()
    with np.load(checkpoint.npz_path(tmp_path / "run" / "checkpoints", "latest"),
                 allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


CLI_ARGS = ["train", "--env", ENV, "--arch", "linear", "--directions", "4", "--top", "2",
            "--backend", "serial",
            "--max-episode-steps", "200", "--noise-table-size", "100000", "--eval-every", "2",
            "--eval-episodes", "2", "--no-plot"]


def test_cli_train_resume_and_toml(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, CLI_ARGS + ["--iterations", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "it    2 | steps" in res.output and "eval" in res.output
    res = runner.invoke(cli, CLI_ARGS + ["--iterations", "2", "--out", str(out)])
    assert res.exit_code == 2 and "already holds a run" in res.output
    res = runner.invoke(cli, ["train", "--resume", str(out), "--iterations", "3", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "progress.csv")) == 3
    res = runner.invoke(cli, ["train", "--resume", str(out), "--arch", "kama", "--iterations",
                              "4"])
    assert res.exit_code == 2 and "trained on architecture linear, not kama" in res.output
    toml = tmp_path / "c.toml"
    toml.write_text(f'[env]\nid = "{ENV}"\nmax_episode_steps = 100\n[policy]\narch = "dcnn"\n'
                    '[strategy]\ndirections = 2\n[run]\niterations = 1\nnoise_table_size = '
                    '100000\n')
    res = runner.invoke(cli, ["train", "--config", str(toml), "--seed", "3", "--out",
                              str(tmp_path / "t"), "--no-plot"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    assert (cfg["policy"]["arch"], cfg["env"]["max_episode_steps"], cfg["run"]["seed"],
            cfg["strategy"]["directions"]) == ("dcnn", 100, 3, 2)


@pytest.mark.parametrize("args,message", [
    (["--env", "InvertedPendulm-v4"], "did you mean InvertedPendulum-v4"),
    (["--algo", "cma"], "Invalid value for '--algo'"),
    (["--variant", "v3"], "Invalid value for '--variant'"),
    (["--directions", "2", "--top", "3"], "top (3) cannot exceed directions (2)"),
    (["--env", "Acrobot-v1", "--arch", "linear"], None),  # Discrete actions work
    (["--env", "FrozenLake-v1"], "unsupported observation space"),
    (["--resume", "/nonexistent/run"], "holds no run"),
    (["--config", "/nonexistent.toml"], "cannot read config file"),
    (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0"),
    # Non-finite numbers would start a run whose θ turns into nan, or that never stops.
    (["--reward-shift", "nan"], "reward_shift must be a finite number, got nan"),
    (["--reward-shift", "-inf"], "reward_shift must be a finite number, got -inf"),
    (["--algo", "es", "--l2-coeff", "nan"], "l2_coeff must be a finite number >= 0, got nan"),
    (["--target-return", "nan"], "target_return must be a finite number, got nan"),
    (["--time-limit", "inf"], "time_limit must be a positive number of seconds, got inf"),
])
def test_cli_bad_input_one_line(tmp_path, args, message):
    base = ["train", "--iterations", "1", "--backend", "serial", "--noise-table-size", "100000",
            "--max-episode-steps",
            "50", "--directions", "2", "--no-plot", "--out", str(tmp_path / "r")]
    res = CliRunner().invoke(cli, base + args)
    if message is None:
        assert res.exit_code == 0, res.output
        return
    assert res.exit_code == 2, res.output
    # One line and nothing written: no banner announcing a run, no run directory.
    assert len(res.output.splitlines()) == 1, res.output
    assert res.output.startswith("error:") and message in res.output, res.output
    assert not (tmp_path / "r").exists()


def test_cli_a_mistyped_env_creates_no_run_directory(tmp_path):
    """The default run directory is named after the env id; a bad id must not leave an empty
    runs/.._.._x_kama_seed0/ (with a .lock) behind."""
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path) as cwd:
        res = runner.invoke(cli, ["train", "--env", "../../x", "--backend", "serial"])
        assert res.exit_code == 2
        assert res.output == "error: unknown environment id '../../x'\n"
        assert list(Path(cwd).iterdir()) == []


def test_cli_real_subprocess_default_mp_backend(tmp_path):
    out = tmp_path / "run"
    args = [a for a in CLI_ARGS if a not in ("--backend", "serial")]
    res = subprocess.run([sys.executable, "-m", "es_compact_cli", *args, "--iterations",
                          "2", "--workers", "2", "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["iterations"] == 2
    assert checkpoint.npz_path(out / "checkpoints", "latest").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["run"]["backend"], cfg["run"]["workers"]) == ("mp", 2)


def test_more_workers_than_cores_warns_and_runs(tmp_path):
    import os

    n = (os.cpu_count() or 1) + 1
    res = CliRunner().invoke(cli, ["train", "--env", ENV, "--arch", "linear", "--workers",
                                   str(n), "--iterations", "1", "--directions", "2",
                                   "--max-episode-steps", "20", "--noise-table-size", "100000",
                                   "--out", str(tmp_path / "r"), "--no-plot"])
    assert res.exit_code == 0, res.output
    assert f"warning: {n} workers on {n - 1} CPU cores" in res.output


def _latest_iteration(run_dir) -> int:
    return checkpoint.load(run_dir / "checkpoints", "latest")[1]["iteration"]


@pytest.mark.parametrize("every,expected", [(0.0, [1, 2, 3, 4, 5]), (1e6, [1, 1, 1, 1, 1])])
def test_latest_is_written_on_schedule_and_after_the_last_iteration(tmp_path, every, expected):
    import dataclasses

    cfg = config(5)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, checkpoint_every_s=every))
    seen = []
    Trainer(cfg, tmp_path / "r").run(lambda row, info: seen.append(
        _latest_iteration(tmp_path / "r")))
    assert seen == expected
    assert _latest_iteration(tmp_path / "r") == 5


def test_stopping_between_checkpoints_loses_nothing_and_resumes_exactly(tmp_path):
    """An interrupt writes the last finished iteration; a hard kill (emulated: the checkpoint
    of an earlier iteration beside the later progress rows it leaves) redoes the lost
    iterations identically."""
    import dataclasses
    import shutil

    def cfg(iterations):
        c = config(iterations)
        return dataclasses.replace(c, run=dataclasses.replace(c.run, checkpoint_every_s=1e6))

    Trainer(cfg(6), tmp_path / "whole").run()

    def stop_at_3(row, info):
        if row["iteration"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg(6), tmp_path / "stopped").run(stop_at_3)
    assert _latest_iteration(tmp_path / "stopped") == 3
    Trainer(cfg(6), tmp_path / "stopped", mode="resume").run()

    Trainer(cfg(2), tmp_path / "killed").run()  # latest at 2 ...
    kept = tmp_path / "ck"
    shutil.copytree(tmp_path / "killed" / "checkpoints", kept)
    Trainer(cfg(5), tmp_path / "killed", mode="resume").run()  # ... progress rows to 5
    shutil.rmtree(tmp_path / "killed" / "checkpoints")
    shutil.copytree(kept, tmp_path / "killed" / "checkpoints")
    Trainer(cfg(6), tmp_path / "killed", mode="resume").run()

    ta, ma, ra = result(tmp_path / "whole")
    for name in ("stopped", "killed"):
        tb, mb, rb = result(tmp_path / name)
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key])
        pd.testing.assert_frame_equal(ra, rb)
        assert mb["iteration"] == 6 and mb["timesteps"] == ma["timesteps"]


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_must_be_a_non_negative_integer(seed):
    """numpy's SeedSequence takes non-negative integers only; a config from TOML or Python
    is checked before it reaches it."""
    with pytest.raises(ConfigError, match=f"seed must be a non-negative integer, got {seed!r}"):
        RunConfig(iterations=1, seed=seed).validate()


def test_checkpoint_interval_is_validated_and_a_cli_flag(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint_every_s"):
        RunConfig(iterations=1, checkpoint_every_s=-1).validate()
    res = CliRunner().invoke(cli, ["train", "--env", ENV, "--arch", "linear", "--iterations",
                                   "2", "--backend", "serial", "--checkpoint-every", "0",
                                   "--out", str(tmp_path / "r"), "--quiet", "--no-plot"])
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert stored["run"]["checkpoint_every_s"] == 0


def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    d = tmp_path / "ck"
    checkpoint.save(d, "latest", {"theta": np.arange(3.0)}, {"iteration": 1})

    def killed(path, text):
        raise KeyboardInterrupt  # between the new npz's rename and the json's

    with monkeypatch.context() as m:
        m.setattr(checkpoint, "atomic_write_text", killed)
        with pytest.raises(KeyboardInterrupt):
            checkpoint.save(d, "latest", {"theta": np.arange(5.0)}, {"iteration": 2})
    assert len(list(d.glob("latest-*.npz"))) == 2  # the new arrays, not yet named by the json
    arrays, meta = checkpoint.load(d, "latest")
    assert meta["iteration"] == 1
    np.testing.assert_array_equal(arrays["theta"], np.arange(3.0))
    checkpoint.save(d, "latest", {"theta": np.arange(7.0)}, {"iteration": 3})
    assert [p.name for p in d.glob("latest-*.npz")] == [checkpoint.npz_path(d, "latest").name]
    assert checkpoint.load(d, "latest")[1]["iteration"] == 3


def test_checkpoints_of_the_earlier_layout_load_and_are_replaced(tmp_path):
    import hashlib

    d = tmp_path / "ck"
    d.mkdir()
    np.savez(d / "best.npz", theta=np.ones(4))
    sha = hashlib.sha256((d / "best.npz").read_bytes()).hexdigest()
    (d / "best.json").write_text(json.dumps({"format": checkpoint.FORMAT, "iteration": 9,
                                             "npz_sha256": sha}))
    arrays, meta = checkpoint.load(d, "best")
    assert meta["iteration"] == 9 and arrays["theta"].tolist() == [1.0] * 4
    checkpoint.save(d, "best", {"theta": np.zeros(2)}, {"iteration": 10})
    assert not (d / "best.npz").exists()
    assert checkpoint.load(d, "best")[0]["theta"].tolist() == [0.0, 0.0]


# Directories that are not runs, runs that trained nothing, and what the CLI promises ---------


def _contents(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None
            for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("mode", ["new", "overwrite"])
@pytest.mark.parametrize("files,why", [
    ({"plot.png": b"my plot", "final_eval.json": b"{}"}, "it has no config.json"),
    ({"config.json": b'{"name": "my web app"}', "checkpoints/model.bin": b"weights",
      "progress.csv": b"a,b\n"}, "its config.json is not a run configuration"),
])
def test_a_directory_that_is_not_a_run_is_never_written_or_deleted(tmp_path, mode, files, why):
    """A directory is a run only if its config.json is a run configuration; a new run refuses
    any other non-empty directory, and --overwrite never deletes from one."""
    d = tmp_path / "mine"
    for name, content in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(content)
    before = _contents(d)
    with pytest.raises(ConfigError) as exc:
        Trainer(config(1), d, mode=mode).run()
    assert str(exc.value) == (f"{d} is not empty and holds no run ({why}); choose another "
                              "directory for the run, or empty this one")
    assert _contents(d) == before  # not even a .lock


def test_an_empty_existing_directory_is_used(tmp_path):
    (tmp_path / "r").mkdir()
    assert Trainer(config(1), tmp_path / "r").run()["iterations"] == 1


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler for the test, whatever pytest inherited: a shell without job
    control (a script's `make test &`, nohup) starts background commands with SIGINT ignored,
    and a SIGINT the process ignores cannot interrupt anything."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_run_stopped_inside_its_first_iteration_starts_afresh(tmp_path, ctrl_c_raises):
    """Ctrl-C (or SIGTERM) before the first iteration finished leaves a config.json and no
    checkpoint. Nothing was trained, so the CLI promises no checkpoint, and both the same
    command and --resume start the run from scratch instead of refusing it."""
    # Pendulum never terminates early: the first iteration takes long enough (~0.5 s) for the
    # interrupt, sent as soon as config.json is written, to land inside it. (Not a MuJoCo env:
    # an interrupt landing in MuJoCo's warning callback while a model loads aborts Python.)
    args = ["train", "--env", "Pendulum-v1", "--arch", "linear", "--iterations", "1",
            "--directions", "4", "--max-episode-steps", "1000", "--eval-episodes", "1",
            "--backend", "serial", "--noise-table-size", "100000", "--quiet", "--no-plot"]
    runner = CliRunner()

    def interrupted(run: Path):
        def ctrl_c():
            deadline = time.monotonic() + 120
            while not (run / "config.json").exists():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.002)
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

        t = threading.Thread(target=ctrl_c, daemon=True)
        t.start()
        res = runner.invoke(cli, args + ["--out", str(run)])
        t.join()
        assert res.exit_code == 130, res.output
        assert res.output.splitlines()[-1] == (
            "interrupted before the first iteration finished: nothing was trained; run the "
            "same command again to start afresh")
        assert sorted(p.name for p in run.iterdir()) == [".lock", "config.json"]

    rerun, resumed = tmp_path / "rerun", tmp_path / "resumed"
    interrupted(rerun)
    res = runner.invoke(cli, args + ["--out", str(rerun)])
    assert res.exit_code == 0, res.output
    interrupted(resumed)
    res = runner.invoke(cli, ["train", "--resume", str(resumed), "--quiet", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("training linear on Pendulum-v1")  # not "resuming"
    (ta, ma, ra), (tb, mb, rb) = result(rerun), result(resumed)
    np.testing.assert_array_equal(ta["theta"], tb["theta"])  # both from scratch, same seed
    pd.testing.assert_frame_equal(ra, rb)
    assert ma["iteration"] == mb["iteration"] == 1


def test_trainer_restarts_a_run_without_checkpoint_and_keeps_other_files(tmp_path):
    """The API under the CLI: a run directory with a config.json and no checkpoint is started
    afresh in mode 'new' and 'resume'; the user's own files beside it stay."""
    for mode in ("new", "resume"):
        d = tmp_path / mode
        d.mkdir()
        (d / "config.json").write_text(json.dumps(config(1).to_dict()))
        (d / "notes.txt").write_text("mine")
        assert Trainer(config(1), d, mode=mode).run()["iterations"] == 1
        assert _latest_iteration(d) == 1 and (d / "notes.txt").read_text() == "mine"


def test_cli_summary_is_strict_json_and_resume_refuses_options_it_would_ignore(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    res = CliRunner().invoke(
        cli, CLI_ARGS + ["--iterations", "1", "--eval-every", "5", "--out", str(run)])
    assert res.exit_code == 0, res.output

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")

    summary = json.loads(res.stdout.splitlines()[-1], parse_constant=no_constants)
    assert summary["best_eval"] is None and summary["last_eval"] is None  # no evaluation yet
    assert summary["iterations"] == 1 and isinstance(summary["final_eval"], float)
    before = _contents(run)
    toml = tmp_path / "c.toml"
    toml.write_text("[run]\niterations = 3\n")
    for extra, message in (
            (["--out", str(elsewhere)], "error: --out cannot be combined with --resume: a run "
             "continues in its own directory (copy it first to continue it elsewhere)"),
            (["--config", str(toml)], f"error: --config cannot be combined with --resume: the "
             f"run continues with {run}/config.json; give a new budget as flags (--iterations, "
             "--timesteps, --time-limit)")):
        res = CliRunner().invoke(cli, ["train", "--resume", str(run), "--iterations", "2",
                                       *extra])
        assert res.exit_code == 2 and res.output == message + "\n"
    assert _contents(run) == before and not elsewhere.exists()
    res = CliRunner().invoke(cli, ["train", "--resume", str(run), "--out", str(run),
                                   "--iterations", "2", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert _latest_iteration(run) == 2


def test_a_signal_during_an_environment_build_acts_when_the_build_returns(ctrl_c_raises):
    """MuJoCo calls a Python warning callback from C++ while loading HalfCheetah-v4; a
    KeyboardInterrupt raised inside it aborts the process. make_env holds the signal until the
    environment is built, then raises it as usual."""
    from es_compact.envs import make_env, signals_deferred

    built = []
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the interpreter runs the (recording) handler here
            built.append(make_env("HalfCheetah-v4"))
    assert len(built) == 1
    built[0].close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
