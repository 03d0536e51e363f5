"""Every strategy in the trainer: the same θ and progress rows on every backend and worker
count, exact resume, a killed worker changing nothing, and one-line refusals. Real MuJoCo
environments, real worker processes and (slow) a real Ray cluster on loopback."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from es_compact import checkpoint
from es_compact.backends import make_backend
from es_compact.config import ALGOS, EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.strategies import STRATEGIES
from es_compact.trainer import TIMING_COLUMNS, Trainer
from tests.cli_checks import invoke, one_line_error


def config(algo, backend="serial", workers=1, iterations=3, env="InvertedPendulum-v4",
           steps=150, directions=6, exploration="gaussian", **strategy):
    return TrainConfig(
        env=EnvConfig(id=env, max_episode_steps=steps),
        policy=PolicyConfig(arch="kama", hidden=8, rotations=(12,)),
        strategy=StrategyConfig(algo=algo, directions=directions, exploration=exploration,
                                **strategy),
        run=RunConfig(iterations=iterations, eval_every=2, eval_episodes=2,
                      noise_table_size=200_000, backend=backend, workers=workers))


def outcome(run_dir):
    """θ, the optimiser's arrays and scalars, and the progress rows without timings."""
    arrays, meta = checkpoint.load(Path(run_dir) / "checkpoints", "latest")
    rows = pd.read_csv(Path(run_dir) / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    scalars = {k: v for k, v in meta.items() if k.startswith(("opt_", "pgpe_", "snes_",
                                                               "cma_", "cem_"))}
    return arrays, scalars, rows


def assert_same(a, b):
    assert sorted(a[0]) == sorted(b[0])
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1] == b[1]
    pd.testing.assert_frame_equal(a[2], b[2])


def test_every_builtin_strategy_is_registered():
    assert set(ALGOS) <= set(STRATEGIES)


@pytest.mark.parametrize("algo", ALGOS)
def test_same_theta_on_serial_and_mp_with_1_2_3_workers(tmp_path, algo):
    Trainer(config(algo), tmp_path / "serial").run()
    ref = outcome(tmp_path / "serial")
    for w in (1, 2, 3):
        Trainer(config(algo, "mp", w), tmp_path / f"mp{w}").run()
        assert_same(ref, outcome(tmp_path / f"mp{w}"))


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_continues_bitwise(tmp_path, algo):
    Trainer(config(algo, iterations=4), tmp_path / "whole").run()
    Trainer(config(algo, iterations=2), tmp_path / "split").run()
    Trainer(config(algo, iterations=4), tmp_path / "split", mode="resume").run()
    assert_same(outcome(tmp_path / "whole"), outcome(tmp_path / "split"))


@pytest.mark.parametrize("algo", ALGOS)
def test_the_strategy_moves_theta_and_its_state(tmp_path, algo):
    """Not a strategy that does nothing: θ leaves its start, and a strategy with state
    checkpoints it."""
    trainer = Trainer(config(algo, iterations=2), tmp_path / "run")
    trainer.check()
    trainer.run()
    arrays, _, rows = outcome(tmp_path / "run")
    assert len(rows) == 2 and rows["iteration"].tolist() == [1, 2]
    start = trainer.policy.init(np.random.default_rng([0, 0x1417]))
    assert not np.array_equal(arrays["theta"], start)
    if algo not in ("ars",):
        assert set(arrays) - {"theta", "obs_count", "obs_mean", "obs_m2"}


@pytest.mark.parametrize("algo", ["cmaes", "pgpe"])
def test_a_killed_worker_leaves_theta_identical(tmp_path, algo):
    kw = dict(iterations=3, env="HalfCheetah-v4", steps=300, directions=6)
    Trainer(config(algo, **kw), tmp_path / "undisturbed").run()
    backend = make_backend("mp", 2)
    killed = []

    def killer():
        prog = tmp_path / "killed" / "progress.csv"
        while not (prog.exists() and len(prog.read_text().splitlines()) >= 2):
            time.sleep(0.01)
        time.sleep(0.05)
        pid = backend.workers[0].proc.pid
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    Trainer(config(algo, "mp", 2, **kw), tmp_path / "killed", backend=backend).run()
    t.join(5)
    backend.close()
    assert killed and backend.replaced_workers >= 1
    assert_same(outcome(tmp_path / "undisturbed"), outcome(tmp_path / "killed"))


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_same_theta_on_ray_with_1_and_2_workers(tmp_path, algo):
    Trainer(config(algo), tmp_path / "serial").run()
    ref = outcome(tmp_path / "serial")
    for w in (1, 2):
        Trainer(config(algo, "ray", w), tmp_path / f"ray{w}").run()
        assert_same(ref, outcome(tmp_path / f"ray{w}"))


@pytest.mark.slow
@pytest.mark.parametrize("algo", [a for a in ALGOS if a not in ("cmaes", "pgpe")])
def test_a_killed_worker_leaves_theta_identical_for_the_others(tmp_path, algo):
    test_a_killed_worker_leaves_theta_identical(tmp_path, algo)


@pytest.mark.parametrize("algo", ["pgpe", "cmaes"])
def test_other_explorations_work_too(tmp_path, algo):
    Trainer(config(algo, exploration="orthogonal"), tmp_path / "s").run()
    Trainer(config(algo, "mp", 2, exploration="orthogonal"), tmp_path / "m").run()
    assert_same(outcome(tmp_path / "s"), outcome(tmp_path / "m"))


# Refusals -----------------------------------------------------------------------------------

def test_resuming_with_another_strategy_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    Trainer(config("ars", iterations=1), run).run()
    before = {p.name: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    with pytest.raises(ConfigError, match="strategy.algo is 'ars' in .*, 'cmaes' here"):
        Trainer(config("cmaes", iterations=2), run, mode="resume").run()
    res = invoke("train", "--resume", run, "--algo", "pgpe", "--iterations", "2")
    one_line_error(res, "strategy.algo is 'ars'", "'pgpe' here")
    after = {p.name: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert after == before


BAD = [
    (["--algo", "cem", "--elite-fraction", "0"], "elite_fraction must lie in (0, 1]"),
    (["--algo", "cem", "--elite-fraction", "1.5"], "elite_fraction must lie in (0, 1]"),
    (["--algo", "cem", "--directions", "1", "--elite-fraction", "0.5"], "elite"),
    (["--algo", "cmaes", "--directions", "1"], "cmaes needs at least 2"),
    (["--algo", "snes", "--noise-std", "0"], "noise_std must be a positive number"),
    (["--algo", "pgpe", "--noise-std", "nan"], "noise_std must be a positive number"),
    (["--algo", "pgpe", "--step-size", "nan"], "step_size must be a positive number"),
    (["--algo", "pgpe", "--sigma-lr", "-1"], "sigma_lr must be a positive number"),
    (["--algo", "pgpe", "--optimizer", "sgd"], "optimizer 'sgd' is not one of pgpe's"),
    (["--algo", "es", "--optimizer", "clipup"], "optimizer 'clipup' is not one of es's"),
    (["--algo", "snes", "--max-speed", "0.1"], "--max-speed"),
    (["--algo", "ars", "--elite-fraction", "0.2"], "--elite-fraction"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_strategy_settings_are_one_line_errors_and_write_nothing(tmp_path, args,
                                                                     message):
    out = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--iterations", "1", *args,
                 "--out", out)
    one_line_error(res, message)
    assert not out.exists()


def test_train_with_a_new_strategy_from_the_cli(tmp_path):
    out = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--arch", "linear", "--algo", "snes",
                 "--iterations", "2", "--eval-every", "2", "--backend", "serial", "--out", out,
                 "--no-plot")
    assert res.exit_code == 0, res.output
    stored = json.loads((out / "config.json").read_text())
    assert stored["strategy"]["algo"] == "snes"
    assert stored["strategy"]["step_size"] == STRATEGIES["snes"].default_step_size
    assert "SNES (N=" in res.output
