"""The run directory's rules (es_compact.run_dir) and the training state's checkpoint form
(es_compact.state), on real runs of a real MuJoCo environment."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions
from es_compact.presets import resolve
from es_compact.run_dir import RunDir, resume_differences, target
from es_compact.state import TrainState, budget_spent
from es_compact.strategies import make_strategy
from es_compact.trainer import Trainer


def config(iterations=3, step_size=0.02, hidden=8, seed=0, algo="ars"):
    return TrainConfig(
        env=EnvConfig(id="InvertedPendulum-v4", max_episode_steps=100),
        policy=PolicyConfig(arch="kama", hidden=hidden, rotations=(12,)),
        strategy=StrategyConfig(algo=algo, directions=4, top=2 if algo == "ars" else None,
                                step_size=step_size),
        run=RunConfig(seed=seed, iterations=iterations, eval_every=2, eval_episodes=2,
                      noise_table_size=100_000, backend="serial"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    Trainer(config(), run).run()
    return RunDir(run)


def test_refused_resume_names_every_field_that_differs(trained):
    with pytest.raises(ConfigError) as exc:
        Trainer(config(6, step_size=0.05, hidden=16, seed=3), trained.path, mode="resume").run()
    path = trained.config_path
    assert str(exc.value) == (
        f"cannot resume: policy.hidden is 8 in {path}, 16 here; strategy.step_size is 0.02 in "
        f"{path}, 0.05 here; run.seed is 0 in {path}, 3 here")
    # The budget, the schedule and parallelism may change; nothing else was written.
    assert resume_differences(trained.read_config(), config(9)) == []
    assert trained.read_config().run.iterations == 3


def test_status_and_finished_have_one_definition(trained, tmp_path):
    assert trained.finished() and trained.status(config()) == "done"
    # Under a larger budget the same run is unfinished: the stored one's budget is not used.
    assert not trained.finished(config(6)) and trained.status(config(6)) == "resume"
    assert RunDir(tmp_path / "nothing").status(config()) == "new"
    with pytest.raises(ConfigError, match=r"another configuration \(policy.hidden is 8"):
        trained.status(config(hidden=16))
    # The final θ's evaluation: iteration 3 is off the every-2 schedule, so final_eval.json.
    record = trained.read_final_eval()
    assert record["iteration"] == 3
    assert trained.final_eval() == (record["eval_return_mean"], record["eval_return_std"])


def test_budget_spent_reads_every_limit():
    run = RunConfig(iterations=5, timesteps=100, target_return=10.0, time_limit=60.0)
    assert not budget_spent(run, 4, 99, math.nan, 59.0)
    assert budget_spent(run, 5, 0, math.nan, 0.0)
    assert budget_spent(run, 0, 100, math.nan, 0.0)
    assert budget_spent(run, 0, 0, 10.0, 0.0)
    assert budget_spent(run, 0, 0, 9.0, 60.0)


def test_train_state_round_trips_through_its_checkpoint_form(trained):
    arrays, meta = trained.load_checkpoint("latest")
    num_params = arrays["theta"].size
    state = TrainState.from_checkpoint(arrays, meta, num_params)
    assert state.iteration == 3 and state.timesteps == meta["timesteps"]
    again, again_meta = state.to_checkpoint(trained.read_config(), num_params)
    assert set(again) == set(arrays)
    for k in arrays:
        np.testing.assert_array_equal(again[k], arrays[k])
    assert {k: again_meta[k] for k in again_meta} == {k: meta[k] for k in again_meta}
    with pytest.raises(Exception, match="does not fit this policy"):
        TrainState.from_checkpoint(arrays, meta, num_params + 1)


def test_es_optimiser_state_is_part_of_the_state(tmp_path):
    run = RunDir(tmp_path / "es")
    Trainer(config(2, algo="es"), run.path).run()
    state = TrainState.from_checkpoint(*run.load_checkpoint("latest"),
                                       run.load_checkpoint()[0]["theta"].size)
    assert set(state.opt_arrays) == {"opt_m", "opt_v"} and state.opt_meta == {"opt_t": 2}
    assert np.abs(state.opt_arrays["opt_m"]).sum() > 0


def test_a_strategy_refuses_an_unresolved_config():
    cfg = config()
    directions = Directions("orthogonal", 0, 10, None)
    with pytest.raises(ConfigError, match="strategy.noise_std is unset: resolve"):
        make_strategy(cfg.strategy, directions)
    make_strategy(resolve(cfg).strategy, directions)
    with pytest.raises(ConfigError, match="run.workers is unset"):
        dataclasses.replace(resolve(cfg), run=dataclasses.replace(cfg.run, workers=None)
                            ).check_resolved()


def test_out_resume_overwrite_rules(trained, tmp_path):
    assert target().path is None and target().mode == "new"
    assert target(out=tmp_path / "x", overwrite=True).mode == "overwrite"
    t = target(resume=trained.path, out=trained.path)
    assert t.mode == "resume" and t.stored == trained.read_config()
    with pytest.raises(ConfigError, match="exclude each other"):
        target(resume=trained.path, overwrite=True)
    with pytest.raises(ConfigError, match="--config cannot be combined with --resume"):
        target(resume=trained.path, config_file="c.toml")
    with pytest.raises(ConfigError, match="--out cannot be combined with --resume"):
        target(resume=trained.path, out=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="holds no run"):
        target(resume=tmp_path / "empty")


def test_the_trainer_refuses_a_setting_that_changes_nothing_and_writes_nothing(tmp_path):
    cfg = config()
    cfg = dataclasses.replace(cfg, policy=PolicyConfig(arch="dense", hidden=8, rotations=(50,)))
    with pytest.raises(ConfigError, match="^policy.rotations applies only to arch kama; here "
                                          "it would be ignored$"):
        Trainer(cfg, tmp_path / "run").run()
    assert not (tmp_path / "run").exists()


def test_a_corrupt_latest_checkpoint_is_never_restarted_over(tmp_path):
    """An experiment re-run meeting an unreadable latest.json must not call it 'restart'
    (which overwrites the run): it resumes, and the restore names the damage. (With the
    generation before it readable, the run resumes from that one instead:
    tests/test_checkpoint_fallback.py; here both are damaged.)"""
    run = RunDir(tmp_path / "run")
    Trainer(config(2), run.path).run()
    (run.checkpoints / "latest.json").write_text("{not json")
    (run.checkpoints / "latest.prev.json").write_text("")
    before = run.progress_path.read_bytes()
    assert run.status(config(4)) == "resume"
    with pytest.raises(Exception, match="corrupted") as exc:
        Trainer(config(4), run.path, mode="resume").run()
    assert str(exc.value) == (
        f"checkpoint {run.checkpoints / 'latest.json'} is truncated or corrupted (not valid "
        "JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1); 9 "
        "bytes); the generation before it is unusable too: checkpoint "
        f"{run.checkpoints / 'latest.prev.json'} is corrupted: it is empty (0 bytes)")
    assert run.progress_path.read_bytes() == before and run.has_config()
