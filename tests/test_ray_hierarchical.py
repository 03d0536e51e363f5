"""Hierarchical Ray dispatch (run.actor_workers): W / G actors, each running a pool of G worker
processes. Real Ray on loopback, real worker processes: θ and rows equal a serial run's, a
worker killed inside an actor is replaced by its pool, a killed actor's batch runs elsewhere."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from es_compact.backends import make_backend
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.trainer import Trainer
from tests.cli_checks import invoke, one_line_error
from tests.test_backends import assert_same, outcome


def config(backend="serial", workers=1, actor_workers=None, iterations=3, directions=6):
    return TrainConfig(
        env=EnvConfig(id="HalfCheetah-v4", max_episode_steps=300),
        policy=PolicyConfig(arch="kama", hidden=8, rotations=(12,)),
        strategy=StrategyConfig(directions=directions, top=4),
        run=RunConfig(iterations=iterations, eval_every=2, eval_episodes=3,
                      noise_table_size=200_000, backend=backend, workers=workers,
                      actor_workers=actor_workers))


def _kill_during_iteration_2(run_dir: Path, pick) -> tuple[threading.Thread, list]:
    """A thread that waits for iteration 2 to be under way, then SIGKILLs pick()'s pid."""
    killed: list[int] = []

    def killer():
        prog = run_dir / "progress.csv"
        while not (prog.exists() and len(prog.read_text().splitlines()) >= 2):
            time.sleep(0.01)
        time.sleep(0.05)
        pid = pick()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    return t, killed


def test_two_actors_of_two_workers_match_serial_and_survive_a_killed_inner_worker(tmp_path):
    Trainer(config(), tmp_path / "serial").run()
    ref = outcome(tmp_path / "serial")
    backend = make_backend("ray", 4, actor_workers=2)
    t, killed = _kill_during_iteration_2(tmp_path / "killed",
                                         lambda: backend.pool_pids()[1][0])
    try:
        summary = Trainer(config("ray", 4, 2), tmp_path / "killed", backend=backend).run()
        t.join(5)
        replaced = backend.pool_replaced_workers()
        assert backend.replaced_workers == 0  # no actor was lost: its pool replaced the worker
    finally:
        backend.close()
    assert killed and replaced == 1
    assert summary["actor_workers"] == 2 and summary["workers"] == 4
    assert_same(ref, outcome(tmp_path / "killed"))


@pytest.mark.slow
def test_killed_actor_batch_runs_elsewhere_and_result_unchanged(tmp_path):
    Trainer(config(), tmp_path / "serial").run()
    backend = make_backend("ray", 4, actor_workers=2)
    t, killed = _kill_during_iteration_2(tmp_path / "killed",
                                         lambda: backend.worker_pids()[0])
    try:
        Trainer(config("ray", 4, 2), tmp_path / "killed", backend=backend).run()
        t.join(5)
    finally:
        backend.close()
    assert killed and backend.replaced_workers >= 1
    assert_same(outcome(tmp_path / "serial"), outcome(tmp_path / "killed"))


@pytest.mark.slow
def test_hierarchical_ray_matches_serial_for_other_shapes(tmp_path):
    """1 actor of 3 workers and 3 actors of 1 (N = 7: batches of G tasks, a shorter last)."""
    Trainer(config(directions=7), tmp_path / "serial").run()
    for w, g in ((3, 3), (3, 1)):
        Trainer(config("ray", w, g, directions=7), tmp_path / f"ray{w}x{g}").run()
        assert_same(outcome(tmp_path / "serial"), outcome(tmp_path / f"ray{w}x{g}"))


def test_actor_workers_refusals(tmp_path):
    with pytest.raises(ConfigError, match=r"workers \(6\) must be a multiple of "
                                          r"actor_workers \(4\)"):
        config("ray", 6, 4).validate()
    with pytest.raises(ConfigError, match="actor_workers must be"):
        config("ray", 4, 0).validate()
    with pytest.raises(ConfigError, match="positive multiple"):
        make_backend("ray", 6, actor_workers=4)
    train = ["train", "--env", "InvertedPendulum-v4", "--iterations", "1", "--quiet"]
    for extra, words in ((["--backend", "ray", "--workers", "6", "--actor-workers", "4"],
                          ("workers (6) must be a multiple of actor_workers (4)",)),
                         (["--backend", "mp", "--workers", "4", "--actor-workers", "2"],
                          ("--actor-workers", "ray")),
                         (["--backend", "ray", "--workers", "4", "--actor-workers", "0"],
                          ("actor",))):
        out = tmp_path / "r"
        one_line_error(invoke(*train, *extra, "--out", out), *words)
        assert not out.exists()


def test_memory_estimate_counts_pool_workers_actors_and_a_table_each():
    from es_compact.memory import MIB, WORKER_MIB, check_workers_fit, workers_estimate
    from es_compact.presets import resolve

    cfg = resolve(config("ray", 8, 4))
    table = 4 * cfg.run.noise_table_size  # gaussian exploration reads the table
    assert cfg.strategy.exploration == "gaussian"
    n, need = workers_estimate(cfg)
    assert n == 8
    assert need == (8 * WORKER_MIB["mp"] + 2 * WORKER_MIB["ray"]) * MIB + 3 * table
    with pytest.raises(ConfigError, match="8 workers in 2 local Ray actors would need about"):
        check_workers_fit(cfg, available=need - 1)
    check_workers_fit(cfg, available=need)
