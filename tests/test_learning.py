"""It must really learn: every architecture solves InvertedPendulum-v4 (evaluation return
1000) within 200k timesteps. Slow (about half a minute per architecture on a quiet core); the
HalfCheetah checks are recorded in results/training_checks.md."""

from __future__ import annotations

import pytest

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, TrainConfig
from es_compact.policies import ARCHITECTURES
from es_compact.trainer import Trainer


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_solves_inverted_pendulum(tmp_path, arch, seed):
    cfg = TrainConfig(env=EnvConfig(id="InvertedPendulum-v4"), policy=PolicyConfig(arch=arch),
                      run=RunConfig(seed=seed, timesteps=200_000, target_return=1000.0,
                                    eval_every=5, eval_episodes=5, backend="serial"))
    summary = Trainer(cfg, tmp_path / arch).run()
    assert summary["best_eval"] >= 1000.0, summary
    assert summary["timesteps"] <= 200_000, summary
