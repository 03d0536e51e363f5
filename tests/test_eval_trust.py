"""Evaluations to trust (issue 25): the standard error and cost of each evaluation in
progress.csv, the final evaluation as a candidate for 'best', eval/export falling back to
'latest' on a run without 'best', and eval's precision mode. Real InvertedPendulum episodes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.evaluate import evaluate, evaluate_to_precision, load_run, standard_error
from es_compact.run_dir import PROGRESS_COLUMNS, RunDir
from es_compact.trainer import Trainer
from es_compact_cli.main import cli


def config(iterations=4, eval_every=2, eval_episodes=3):
    return TrainConfig(
        env=EnvConfig(id="InvertedPendulum-v4", max_episode_steps=200),
        policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(algo="ars", directions=4, top=2),
        run=RunConfig(seed=3, iterations=iterations, eval_every=eval_every,
                      eval_episodes=eval_episodes, noise_table_size=100_000,
                      backend="serial"))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(res, *words):
    assert res.exit_code != 0 and res.exception is not None
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    for w in words:
        assert w in lines[0], lines[0]


def test_se_column_is_std_over_sqrt_n_of_the_episodes(tmp_path):
    Trainer(config(), tmp_path / "r").run()
    rows = pd.read_csv(tmp_path / "r" / "progress.csv")
    assert list(rows.columns) == PROGRESS_COLUMNS
    evaluated = rows[rows["eval_episodes"] > 0]
    assert list(evaluated["iteration"]) == [2, 4]
    assert (rows.loc[rows["eval_episodes"] == 0, "eval_se"].isna()).all()
    assert (evaluated["eval_seconds"] > 0).all()
    # The best checkpoint's θ, evaluated again on the same seeds, gives the row's figures.
    run = load_run(tmp_path / "r", "best")
    rets = evaluate(run, 3)["returns"]
    row = rows[rows["iteration"] == run.iteration].iloc[0]
    assert row["eval_episodes"] == 3
    assert row["eval_return_mean"] == pytest.approx(rets.mean(), rel=1e-12)
    assert row["eval_se"] == pytest.approx(rets.std(ddof=1) / np.sqrt(3), rel=1e-12)


def test_final_eval_promotes_best_on_a_run_shorter_than_eval_every(tmp_path):
    summary = Trainer(config(iterations=3, eval_every=10), tmp_path / "r").run()
    rd = RunDir(tmp_path / "r")
    assert rd.has_checkpoint("best")
    final = rd.read_final_eval()
    assert final["iteration"] == 3 and final["episodes"] == 3
    assert summary["final_eval"] == final["eval_return_mean"]
    run = load_run(tmp_path / "r")  # best, the default
    assert run.name == "best" and run.iteration == 3
    assert run.meta["best_eval"] == final["eval_return_mean"]
    # latest keeps the loop's state (no evaluation yet), so a resume promotes as an unsplit run
    assert rd.latest_meta()["best_eval"] is None
    res = invoke("eval", tmp_path / "r", "--episodes", 3)
    assert res.exit_code == 0 and "(best, iteration 3)" in res.output, res.output
    assert "no best checkpoint" not in res.output


def test_final_eval_below_the_best_leaves_best(tmp_path):
    Trainer(config(iterations=3, eval_every=2), tmp_path / "r").run()
    rd = RunDir(tmp_path / "r")
    best = load_run(tmp_path / "r", "best")
    final = rd.read_final_eval()["eval_return_mean"]
    periodic = pd.read_csv(rd.progress_path)["eval_return_mean"].dropna()
    assert best.iteration == (3 if final > periodic.max() else 2)


def test_eval_and_export_fall_back_to_latest_and_say_so(tmp_path):
    Trainer(config(iterations=1, eval_every=10), tmp_path / "r").run()
    ckpts = RunDir(tmp_path / "r").checkpoints
    for f in ckpts.glob("best*"):  # as a run trained before the final eval promoted best
        f.unlink()
    res = invoke("eval", tmp_path / "r", "--episodes", 2)
    assert res.exit_code == 0, res.output
    assert "has no best checkpoint yet; using latest (iteration 1)" in res.output
    assert "(latest, iteration 1)" in res.output
    one_line_error(invoke("eval", tmp_path / "r", "--checkpoint", "best", "--episodes", 1),
                   "no checkpoint 'best'", "it has latest")
    res = invoke("export", tmp_path / "r", "-o", tmp_path / "p.npz")
    assert res.exit_code == 0 and "using latest (iteration 1)" in res.output, res.output
    assert "latest checkpoint at iteration 1" in res.output
    one_line_error(invoke("export", tmp_path / "r", "-o", tmp_path / "q.npz", "--checkpoint",
                          "best"), "no checkpoint 'best'", "it has latest")
    assert not (tmp_path / "q.npz").exists()


def test_precision_mode_stops_at_the_first_batch_meeting_the_rule(tmp_path):
    Trainer(config(iterations=2), tmp_path / "r").run()
    run = load_run(tmp_path / "r", "latest")
    every = evaluate(run, 12)["returns"]
    for precision in (10.0, 0.2, 0.05, 1e-12):
        res = evaluate_to_precision(run, precision, min_episodes=4, max_episodes=12, batch=2)
        n = next((k for k in range(4, 13, 2)
                  if standard_error(every[:k]) <= precision * abs(every[:k].mean())), None)
        assert len(res["seeds"]) == (12 if n is None else n)
        assert res["precision_met"] == (n is not None)
        np.testing.assert_array_equal(res["returns"], every[:len(res["seeds"])])
    res = invoke("eval", tmp_path / "r", "--checkpoint", "latest", "--precision", 10,
                 "--min-episodes", 10, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["episodes"] == 10 and out["precision_met"] is True
    assert out["return_se"] == pytest.approx(standard_error(np.array(out["returns"])))
    one_line_error(invoke("eval", tmp_path / "r", "--episodes", 3, "--precision", 0.1),
                   "--precision applies only without --episodes")


def test_a_progress_file_begun_before_the_new_columns_keeps_its_header(tmp_path):
    Trainer(config(iterations=2), tmp_path / "r").run()
    path = RunDir(tmp_path / "r").progress_path
    old = [c for c in PROGRESS_COLUMNS if c not in ("eval_se", "eval_episodes", "eval_seconds")]
    pd.read_csv(path)[old].to_csv(path, index=False)
    Trainer(config(iterations=4), tmp_path / "r", mode="resume").run()
    rows = pd.read_csv(path)
    assert list(rows.columns) == old and list(rows["iteration"]) == [1, 2, 3, 4]
