"""Progress within an iteration: the backends' progress(done, total) hook through
Trainer.run(on_progress=...), on real runs, and the CLI's live bar (a real `es-compact train`
under a pseudo-terminal, and piped)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from es_compact import checkpoint
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.trainer import TIMING_COLUMNS, Trainer

ENV = "InvertedPendulum-v4"
DIRECTIONS, EPISODES = 6, 3


def config(backend: str, workers: int = 1) -> TrainConfig:
    # 3 iterations, evaluated at 2 and (off schedule) finally at 3
    return TrainConfig(
        env=EnvConfig(id=ENV, max_episode_steps=100),
        policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(directions=DIRECTIONS, top=3),
        run=RunConfig(seed=4, iterations=3, eval_every=2, eval_episodes=EPISODES,
                      noise_table_size=100_000, backend=backend, workers=workers))


def phases(calls: list[tuple[str, int, int]]) -> list[tuple[str, int, list[int]]]:
    """The calls cut where done is 0: (phase, total, the done counts)."""
    out = []
    for phase, done, total in calls:
        if done == 0:
            out.append((phase, total, []))
        assert out and out[-1][:2] == (phase, total)
        out[-1][2].append(done)
    return out


def result(run_dir):
    arrays, _ = checkpoint.load(run_dir / "checkpoints", "latest")
    rows = pd.read_csv(run_dir / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays, rows


def check_run(tmp_path, backend: str, workers: int) -> None:
    calls = []
    Trainer(config(backend, workers), tmp_path / backend).run(
        on_progress=lambda *a: calls.append(a))
    got = phases(calls)
    assert [(p, t) for p, t, _ in got] == [("train", DIRECTIONS), ("train", DIRECTIONS),
                                           ("eval", EPISODES), ("train", DIRECTIONS),
                                           ("eval", EPISODES)]
    for _, total, counts in got:
        assert counts[0] == 0 and counts[-1] == total and len(counts) >= 2
        assert counts == sorted(counts), counts
    # hearing of progress changes nothing: the same θ, statistics and rows as a run without
    Trainer(config("serial"), tmp_path / "plain").run()
    (ta, ra), (tb, rb) = result(tmp_path / backend), result(tmp_path / "plain")
    assert ta.keys() == tb.keys()
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key])
    pd.testing.assert_frame_equal(ra, rb)


def test_progress_serial_counts_each_task(tmp_path):
    check_run(tmp_path, "serial", 1)


def test_progress_mp_counts_each_chunk(tmp_path):
    check_run(tmp_path, "mp", 2)


@pytest.mark.slow
def test_progress_ray(tmp_path):
    check_run(tmp_path, "ray", 2)
