"""The strategies experiment: its grid (cells, seed-by-seed order, paths, budgets), its ARS
cells being the rl experiment's committed runs, its statistics on real runs, and its command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_checks import invoke, one_line_error
from scipy.stats import ttest_ind

from es_compact.config import ALGOS
from es_compact.experiments import report, rl
from es_compact.experiments import strategies as ex
from es_compact.experiments.runner import Budget, run_path, run_specs, status
from es_compact.presets import preset_for, resolve
from es_compact.run_dir import RunDir, resume_differences
from es_compact.strategies import STRATEGIES

RESULTS = Path(__file__).resolve().parents[1] / "results"
TINY = {"Hopper-v4": Budget(1200, 1, 1)}
"""One or two iterations of Hopper's 8 pairs of (short, falling) episodes."""


def tiny_specs(algos=("ars", "es"), seeds=2):
    return ex.specs("quick", envs=("Hopper-v4",), archs=("linear",), algos=algos, seeds=seeds,
                    backend="serial", workers=1, budgets=TINY)


@pytest.mark.parametrize("form", ["quick", "full"])
def test_grid_cells_order_paths_and_budgets(form):
    grid = ex.specs(form)
    seeds = ex.SEEDS[form]
    cells = [(e, a, algo) for e in ex.ENVS for a in ex.ARCHS for algo in ALGOS]
    assert len(cells) == 2 * 2 * 7 and len(grid) == len(cells) * seeds
    # Seed by seed: every cell of seed 0, then every cell of seed 1, ...
    assert [(s.tags["env"], s.tags["arch"], s.tags["algo"], s.tags["seed"]) for s in grid] == [
        (*c, seed) for seed in range(seeds) for c in cells]
    for s in grid:
        env_id, arch, algo, seed = (s.tags[k] for k in ("env", "arch", "algo", "seed"))
        cfg = s.config
        assert (cfg.env.id, cfg.policy.arch, cfg.strategy.algo, cfg.run.seed) == (
            env_id, arch, algo, seed)
        assert cfg.policy.hidden == 64 and cfg.policy.rotations == (200,)
        assert s.name == (f"../rl/{env_id}/{arch}/seed{seed}" if algo == "ars" else
                          f"{env_id}/{arch}/{algo}/seed{seed}")
        budget = rl.BUDGETS[form][env_id]
        assert (cfg.run.timesteps, cfg.run.eval_every, cfg.run.eval_episodes) == (
            budget.timesteps, budget.eval_every, budget.eval_episodes)
        assert cfg.run.noise_table_size == rl.NOISE_TABLE[form] and cfg.run.backend == "mp"
        # N from the budget (the preset's when None); b is ARS's alone; nothing else is set,
        # so every strategy runs with its own defaults.
        assert cfg.strategy.directions == budget.directions
        assert cfg.strategy.top == (budget.top if algo == "ars" else None)
        assert cfg.strategy.step_size is None and cfg.strategy.noise_std is None
    if form == "full":
        assert {s.config.run.timesteps for s in grid} == {5_000_000}
        assert {(s.tags["env"], s.config.run.eval_every) for s in grid} == {
            ("HalfCheetah-v4", 5), ("Hopper-v4", 10)}
        assert {s.config.run.noise_table_size for s in grid} == {25_000_000}
    else:  # quick: rl's few iterations, N = 8 on HalfCheetah
        assert {s.config.strategy.directions for s in grid
                if s.tags["env"] == "HalfCheetah-v4"} == {8}


@pytest.mark.parametrize("algo", [a for a in ALGOS if a in STRATEGIES])
def test_every_strategy_takes_its_own_defaults(algo):
    """N and the initial σ from the ARS preset; the step size its own default (ARS: the
    preset's)."""
    for s in ex.specs("full", algos=(algo,), seeds=1):
        got = resolve(s.config).strategy
        p = preset_for(s.tags["env"])
        cls = STRATEGIES[algo]
        assert (got.directions, got.noise_std) == (p.directions, p.noise_std)
        assert got.step_size == (p.step_size if cls.default_step_size is None
                                 else cls.default_step_size)
        assert got.top == (p.top if algo == "ars" else p.directions)


def test_ars_cells_are_the_rl_experiments_committed_runs():
    """The full form's ARS cells point at results/runs/full/rl: the same configurations as
    rl's specs, stored as such in their config.json, and finished, so they are never
    retrained."""
    root = RESULTS / "runs" / "full" / "strategies"
    twins = {s.name: s.config for s in rl.specs("full")}
    ars = [s for s in ex.specs("full") if s.tags["algo"] == "ars"]
    assert len(ars) == 2 * 2 * 3
    for s in ars:
        assert twins[s.name.removeprefix("../rl/")] == s.config
        path = run_path(root, s)
        assert path == RESULTS / "runs" / "full" / "rl" / s.tags["env"] / s.tags["arch"] / \
            f"seed{s.tags['seed']}"
        stored = RunDir(path).read_config()
        assert resume_differences(stored, s.config) == []  # what shapes θ, and the seed
        # The budget and evaluation schedule too. The backend and worker count are not
        # compared (as the runner does not): they give bitwise the same run, and two of these
        # were trained serially (Hopper linear seed 1, kama seed 2).
        wanted = resolve(s.config).run
        for field in ("timesteps", "eval_every", "eval_episodes", "noise_table_size",
                      "iterations", "time_limit", "target_return", "max_failed_fraction"):
            assert getattr(stored.run, field) == getattr(wanted, field), (s.name, field)
        assert status(path, s.config) == "done"
    # The quick form shares rl's quick runs the same way.
    quick = {s.name: s.config for s in rl.specs("quick")}
    for s in ex.specs("quick", algos=("ars",)):
        assert quick[s.name.removeprefix("../rl/")] == s.config
    assert not any(s.name.startswith("../") for s in ex.specs("full") if s.tags["algo"] != "ars")


def test_threshold_count_by_hand():
    assert ex.fmt_threshold([1000.0, 3000.0]) == "2,000"
    assert ex.fmt_threshold([1000.0, np.nan, 2000.0]) == "1,500; not reached (1 of 3)"
    assert ex.fmt_threshold([np.nan, np.nan]) == "not reached (2 of 2)"
    assert ex.THRESHOLDS == {"HalfCheetah-v4": 3000.0, "Hopper-v4": 3120.0}


def test_report_statistics_from_real_runs(tmp_path, monkeypatch):
    """Two strategies x two seeds of a tiny real Hopper training: Welch's test against ARS as
    scipy computes it, wall time, timesteps to a threshold the runs reach, the table and the
    plot."""
    rows = run_specs(tiny_specs(), tmp_path)
    assert [r["algo"] for r in rows] == ["ars", "es", "ars", "es"]
    assert all(np.isfinite(r["final_return_mean"]) for r in rows)
    progress = {r["run_dir"]: RunDir(r["run_dir"]).read_progress() for r in rows}
    evals = np.concatenate([p["eval_return_mean"].dropna() for p in progress.values()])
    # A threshold between the evaluations, so some runs reach it and some may not.
    monkeypatch.setitem(ex.THRESHOLDS, "Hopper-v4", float(np.median(evals)))
    rows = ex.with_columns(rows)
    for r in rows:
        p = progress[r["run_dir"]].dropna(subset=["eval_return_mean"])
        hit = p[p["eval_return_mean"] >= ex.THRESHOLDS["Hopper-v4"]]
        want = int(hit["timesteps"].iloc[0]) if len(hit) else np.nan
        assert r["timesteps_to_threshold"] == want or np.isnan(want) and np.isnan(
            r["timesteps_to_threshold"])
    finals = {a: [r["final_return_mean"] for r in rows if r["algo"] == a] for a in ("ars", "es")}
    st = ex.stats(rows)
    assert list(st["a"]) == ["es"] and list(st["b"]) == ["ars"]
    w = st.iloc[0]
    assert (w["env"], w["comparison"], w["n_a"], w["n_b"]) == ("Hopper-v4", "linear: against ARS",
                                                               2, 2)
    assert w["difference"] == pytest.approx(np.mean(finals["es"]) - np.mean(finals["ars"]))
    if np.std(finals["es"]) or np.std(finals["ars"]):
        assert w["p"] == pytest.approx(ttest_ind(finals["es"], finals["ars"],
                                                 equal_var=False).pvalue)
    md = ex.markdown(rows)
    es = next(ln for ln in md.splitlines() if ln.startswith("| linear (33 p) | es |"))
    wall = np.mean([r["wall_time_s"] for r in rows if r["algo"] == "es"])
    assert f"| 2 | {w['difference']:+.0f} | {report.fmt_p(w['p'])} | {wall:,.0f} s |" in es
    hits = [r["timesteps_to_threshold"] for r in rows if r["algo"] == "es"]
    assert es.endswith(f"| {ex.fmt_threshold(hits)} |")
    # Strategies of the experiment with no finished run are listed, not dropped.
    assert all(f"| linear (33 p) | {a} | not run yet |" in md for a in ALGOS[2:])
    ex.plot(rows, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_a_partial_grid_states_each_cells_seeds(tmp_path):
    """ARS ahead of ES (as when ARS's cells are rl's finished runs): the cells state their
    seed counts and the comparison uses the seeds both have."""
    rows = run_specs(tiny_specs(), tmp_path)
    part = ex.with_columns([r for r in rows if not (r["algo"] == "es" and r["seed"] == 1)])
    md = ex.markdown(part)
    ars = next(ln for ln in md.splitlines() if ln.startswith("| linear (33 p) | ars |"))
    es = next(ln for ln in md.splitlines() if ln.startswith("| linear (33 p) | es |"))
    assert "| 2 | — | — |" in ars
    es0 = next(r["final_return_mean"] for r in part if r["algo"] == "es")
    ars0 = next(r["final_return_mean"] for r in part if r["algo"] == "ars" and r["seed"] == 0)
    assert f"| 1 | {es0 - ars0:+.0f} (over 1 common seed) | n/a |" in es
    w = ex.stats(part).iloc[0]
    assert (w["n_a"], w["n_b"]) == (1, 1) and np.isnan(w["p"])


def test_command_writes_its_files_and_skips_finished_runs(tmp_path, monkeypatch):
    tiny = tiny_specs(seeds=1)
    monkeypatch.setattr(ex, "specs", lambda form, **kw: tiny)
    args = ["experiment", "strategies", "--out", tmp_path / "res", "--runs", tmp_path / "runs"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.output.count("trained") == 2
    for name in ("strategies_quick.csv", "strategies_quick.md", "strategies_quick.png",
                 "strategies_quick_stats.csv"):
        assert (tmp_path / "res" / name).exists(), name
    df = pd.read_csv(tmp_path / "res" / "strategies_quick.csv")
    assert list(df["algo"]) == ["ars", "es"] and "timesteps_to_threshold" in df
    assert df["run_dir"].str.contains("runs/quick/strategies/Hopper-v4/linear/").all()
    second = invoke(*args)
    assert second.exit_code == 0 and second.output.count("finished already") == 2
    assert pd.read_csv(tmp_path / "res" / "strategies_quick.csv").equals(df)


@pytest.mark.parametrize("args, words", [
    (["--env", "Ant-v4"], ["--env Ant-v4 is not in this experiment", "HalfCheetah-v4, Hopper-v4"]),
    (["--seeds", "0"], ["--seeds", "0 is not in the range x>=1"]),
    (["--report", "--env", "Hopper-v4"], ["--env applies only without --report"]),
    (["--backend", "serial", "--workers", "2"], ["--workers applies only with --backend mp"]),
    (["--report"], ["none of the 28 runs under", "has finished yet"]),
])
def test_bad_flags_are_one_line_errors(tmp_path, args, words):
    res = invoke("experiment", "strategies", *args, "--out", tmp_path / "res", "--runs",
                 tmp_path / "runs")
    one_line_error(res, *words)
    assert not (tmp_path / "runs").exists()
