"""The paper experiments: Table 1 against the paper, the Theorem 2 fit, and the run bookkeeping
that lets an interrupted `make paper` skip finished runs and resume unfinished ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from es_compact import checkpoint
from es_compact.config import PolicyConfig
from es_compact.errors import ConfigError
from es_compact.experiments import ablation, dcnn, dcnn_init, report, rl, table1, theorem2
from es_compact.experiments.runner import (
    Budget,
    collect,
    final_eval,
    finished_specs,
    fmt_cell,
    run_path,
    run_specs,
    seed_count,
    status,
    summarise,
    train_one,
    with_budget,
)
from es_compact.policies import make_policy
from es_compact.run_dir import TIMING_COLUMNS
from es_compact_cli.main import cli

TINY = Budget(400, 1, 1)
"""InvertedPendulum: a few iterations of 8 antithetic pairs of short episodes."""


def rl_then(command: str, env_id: str, tmp_path):
    """`experiment rl`, then `experiment COMMAND`, on one seed of env_id (budgets patched by
    the caller) with the same --out and --runs; the second invocation's result."""
    common = ["--env", env_id, "--seeds", "1", "--backend", "serial", "--workers", "1",
              "--out", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    assert CliRunner().invoke(cli, ["experiment", "rl", *common]).exit_code == 0
    res = CliRunner().invoke(cli, ["experiment", command, *common])
    assert res.exit_code == 0, res.output
    return res


def tiny_specs(archs=("linear", "kama"), seeds=1, backend="serial"):
    return rl.specs("quick", envs=("InvertedPendulum-v4",), archs=archs, seeds=seeds,
                    backend=backend, workers=1, budgets={"InvertedPendulum-v4": TINY})


RESULTS = Path(__file__).resolve().parents[1] / "results"


def body(md: str) -> list[str]:
    """A report's lines without its provenance (the command, commit and date that made it)."""
    lines = [ln for ln in md.splitlines() if not ln.startswith("`")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_table1_matches_the_paper_within_one_and_a_half_points():
    rows = table1.rows()
    compared = [r for r in rows if r["paper_pct"] is not None]
    assert len(compared) == 12  # kama and toeplitz, 3 envs, 2 settings
    for r in compared:
        assert abs(r["diff_points"]) <= 1.5, r
    kama = {(r["env"], r["hidden"]): r for r in rows if r["arch"] == "kama"}
    assert kama[("HalfCheetah-v4", 64)]["params"] == 815
    # min(d1, d2) scales per matrix (the paper's Section 2) sits 0.7-1.3 points under the
    # paper; one scale per output row of every matrix is the paper's figure, all six of them.
    assert all(-1.35 <= r["diff_points"] <= -0.65 for r in kama.values())
    assert [round(r["per_row_pct"], 1) for r in kama.values()] == [15.1, 15.1, 16.8,
                                                                   23.8, 23.8, 28.1]
    assert all(round(r["per_row_pct"]) == r["paper_pct"] for r in kama.values())
    # HalfCheetah at h = 64: three matrices 17x64, 64x64, 64x6 gain 64 - 17 scales in all.
    assert kama[("HalfCheetah-v4", 64)]["per_row_params"] == 815 + 64 - 17
    assert all(r["per_row_pct"] is None for r in rows if r["arch"] != "kama")


def test_table1_report_regenerates_the_committed_table(tmp_path):
    """results/table1.md is the golden file: the code rebuilds it, provenance aside."""
    md = report.table1_report(tmp_path)
    assert body((tmp_path / "table1.md").read_text()) == body(
        (RESULTS / "table1.md").read_text())
    assert md in (tmp_path / "table1.md").read_text()


@pytest.mark.parametrize("ex, stem", [(ablation, "ablation"), (dcnn, "dcnn_policy")])
def test_committed_full_reports_regenerate_from_the_committed_runs(ex, stem):
    """Every number of results/ablation_full.* and dcnn_policy_full.* (the Spearman ρ and the
    Welch tests included) is what the report code computes from results/runs: the committed
    Markdown is the golden file, the statistics are compared as data."""
    name = "dcnn" if ex is dcnn else stem
    root = RESULTS / "runs" / "full" / name
    rows = [collect(s, run_path(root, s)) for s in finished_specs(ex.specs("full"), root)]
    assert len(rows) == len(ex.specs("full"))
    committed = body((RESULTS / f"{stem}_full.md").read_text())
    assert body(ex.markdown(rows)) == committed[2:]  # after the title and its blank line
    got = ex.stats(rows)
    want = pd.read_csv(RESULTS / f"{stem}_full_stats.csv", keep_default_na=False,
                       na_values=[""])
    pd.testing.assert_frame_equal(got.fillna({"env": ""}), want.fillna({"env": ""}),
                                  check_dtype=False)


def test_table1_cli_writes_csv_with_provenance(tmp_path):
    res = CliRunner().invoke(cli, ["experiment", "table1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "table1.csv")
    assert {"command", "commit", "date", "cores", "wall_time_s"} <= set(df.columns)
    assert len(df) == 24 and (tmp_path / "table1.md").exists()


def test_dcnn_init_shares_rl_dcnn_runs_and_trains_the_scaled_ones(tmp_path, monkeypatch):
    """The 'paper' cells are rl's dcnn runs (found finished); only 'scaled' is trained, and
    the table states each initialisation's starting scale."""
    for form in ("quick", "full"):
        grid = dcnn_init.specs(form)
        twins = {s.name: s.config for s in rl.specs(form)}
        assert {s.name.startswith("../rl/") for s in grid if s.tags["init"] == "paper"} == {True}
        assert all(twins[s.name.removeprefix("../rl/")] == s.config for s in grid
                   if s.tags["init"] == "paper")
        assert {s.config.policy.dcnn_init for s in grid if not s.name.startswith("../")} == {
            "scaled"}
    # dcnn_init trains at rl's budgets, so one patch shortens both experiments' runs.
    monkeypatch.setitem(rl.BUDGETS, "quick", {**rl.BUDGETS["quick"], "Walker2d-v4": TINY})
    res = rl_then("dcnn-init", "Walker2d-v4", tmp_path)
    assert res.output.count("trained") == 1 and res.output.count("finished already") == 1
    got = pd.read_csv(tmp_path / "res" / "dcnn_init_quick.csv").set_index("init")
    assert got.at["paper", "run_dir"] == str(
        tmp_path / "runs" / "quick" / "rl" / "Walker2d-v4" / "dcnn" / "seed0")
    assert got.at["scaled", "run_dir"].endswith("dcnn_init/Walker2d-v4/scaled/seed0")
    paper = dcnn_init.initial_scale("Walker2d-v4", PolicyConfig(arch="dcnn"))
    scaled = dcnn_init.initial_scale("Walker2d-v4", PolicyConfig(arch="dcnn",
                                                                 dcnn_init="scaled"))
    # The paper's init starts 2.6x the input's second moment (1.6x its rms); scaled keeps it.
    assert paper["rms"] > 1.4 and abs(scaled["rms"] - 1) < 0.15
    assert paper["clipped"] > 1.5 * scaled["clipped"]


@pytest.mark.parametrize("field", theorem2.FIELDS)
def test_theorem2_gradient_is_exact(field):
    rng = np.random.default_rng(0)
    A = theorem2.rank_k_matrix(8, 2, rng)
    fit = theorem2.ChainFit(A, 5, field)
    theta = fit.init(rng, scale=1.0)
    value, grad = fit.value_and_grad(theta)
    # The FFT sweep's value equals the dense product built from scipy.linalg.circulant.
    assert value == pytest.approx(np.sum(np.abs(fit.product(theta) - A) ** 2), rel=1e-12)
    eps = 1e-6
    numeric = np.array([(fit.value_and_grad(theta + eps * e)[0]
                         - fit.value_and_grad(theta - eps * e)[0]) / (2 * eps)
                        for e in np.eye(fit.size)])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


def test_theorem2_factors_alternate_and_product_is_ordered():
    rng = np.random.default_rng(1)
    fit = theorem2.ChainFit(np.zeros((6, 6)), 3, "real")
    theta = rng.standard_normal(fit.size)
    C1, D, C2 = fit.factors(theta)
    assert np.allclose(D, np.diag(np.diag(D)))
    assert np.allclose(C1[1:, 1:], C1[:-1, :-1])  # circulant: constant diagonals
    np.testing.assert_allclose(fit.product(theta), C1 @ D @ C2, atol=1e-12)


def test_theorem2_fit_error_falls_with_m():
    rows = theorem2.sweep(ks=(1,), n=16, restarts=2, max_iter=1500, odd_only=True, extra=0)
    err = {r["m"]: r["rel_error"] for r in rows}
    assert sorted(err) == [1, 3, 5]
    assert err[1] > 0.5  # one circulant cannot fit a generic rank-one matrix
    assert err[5] < 1e-3 < err[1]  # near zero by m = 4k + 1
    assert min(err[3], err[5]) < err[1] / 100


def test_rerun_skips_finished_runs(tmp_path):
    specs = tiny_specs()
    rows = run_specs(specs, tmp_path)
    assert [r["arch"] for r in rows] == ["linear", "kama"]
    assert all(np.isfinite(r["final_return_mean"]) for r in rows)
    assert all(r["timesteps"] >= TINY.timesteps for r in rows)
    assert {"command", "commit", "date", "cores", "wall_time_s"} <= set(rows[0])
    stamp = {s.name: (tmp_path / s.name / "progress.csv").stat().st_mtime_ns for s in specs}
    assert [status(tmp_path / s.name, s.config) for s in specs] == ["done", "done"]
    log = []
    again = run_specs(specs, tmp_path, log=log.append)
    assert all("finished already" in line for line in log)
    assert again == rows
    assert stamp == {s.name: (tmp_path / s.name / "progress.csv").stat().st_mtime_ns
                     for s in specs}


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    spec, = tiny_specs(archs=("kama",))
    straight = tmp_path / "straight"
    train_one(spec, straight)
    # An interruption: the same run stopped halfway (its checkpoint is what a kill leaves).
    cut = tmp_path / "cut"
    half = with_budget(spec.config, timesteps=TINY.timesteps // 2)
    train_one(type(spec)(spec.name, half, spec.tags), cut)
    assert status(cut, spec.config) == "resume"
    assert train_one(spec, cut) == "resume"
    assert status(cut, spec.config) == "done"
    a = pd.read_csv(straight / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    b = pd.read_csv(cut / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(a, b)
    assert final_eval(straight) == final_eval(cut)


def test_lost_final_eval_and_missing_checkpoint_are_detected(tmp_path):
    spec, = tiny_specs(archs=("linear",))
    run = tmp_path / "r"
    train_one(spec, run)
    fe = run / "final_eval.json"
    if fe.exists():  # budget ended off the evaluation schedule
        fe.unlink()
    else:  # budget ended on schedule: drop the last row's evaluation
        df = pd.read_csv(run / "progress.csv")
        df.loc[df.index[-1], "eval_return_mean"] = np.nan
        df.to_csv(run / "progress.csv", index=False)
    assert status(run, spec.config) == "resume"
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    assert status(run, spec.config) == "restart"
    assert train_one(spec, run) == "restart"
    assert status(run, spec.config) == "done"
    assert json.loads((run / "experiment.json").read_text())["cores"] >= 1


def test_reports_from_real_runs(tmp_path):
    rows = run_specs(tiny_specs(archs=("dense", "toeplitz", "kama"), seeds=2), tmp_path / "r")
    t = rl.table(rows)
    assert list(t["arch"]) == ["dense", "toeplitz", "kama"] and (t["seeds"] == 2).all()
    finals = [r["final_return_mean"] for r in rows if r["arch"] == "kama"]
    assert t.set_index("arch").at["kama", "final_mean"] == pytest.approx(np.mean(finals))
    assert rl.markdown(rows).count("\n") == 3  # a header, its rule and one environment
    rl.plot(rows, tmp_path / "rl.png")
    assert (tmp_path / "rl.png").stat().st_size > 10_000


def test_experiment_grids():
    assert len(rl.specs("quick")) == 6 * 5 * 3 and len(rl.specs("full")) == 6 * 5 * 5
    assert len(ablation.specs("quick")) == 2 * 5 * 2
    assert {s.config.policy.rotations for s in ablation.specs("full")} == {
        (10,), (20,), (50,), (100,), (200,)}
    grid = dcnn.specs("full")
    assert len(grid) == 22 * 3  # 27 cells, 5 of them the depth-2 linear network again
    assert {(s.config.policy.nonlin_every, s.config.policy.slope) for s in grid} == {
        (k, a) for k in (1, 2, 3) for a in (0.0, 0.25, 0.5)}
    assert dcnn.nonlinearities(4, 1) == 3 and dcnn.nonlinearities(4, 3) == 1
    assert dcnn.positions(8, 3) == (3, 6) and dcnn.nonlinearities(2, 2) == 0


def test_dcnn_full_grid_trains_each_network_once():
    """Every cell of depths x placements x slopes builds, from the same θ, the same actions as
    exactly one cell the full grid trains: itself if kept, the depth-2 linear network if not."""
    from es_compact.envs import env_spaces
    from es_compact.policies import make_policy

    obs_space, act_space = env_spaces(dcnn.ENV)
    x = np.random.default_rng(1).standard_normal((16, obs_space.shape[0]))

    def actions(depth, every, slope):
        policy = make_policy(PolicyConfig(arch="dcnn", depth=depth, nonlin_every=every,
                                          slope=slope), obs_space, act_space.shape[0], seed=0)
        return policy.forward(policy.init(np.random.default_rng(0)), x)

    kept = dcnn.GRID["full"]
    every_cell = [(d, k, a) for d in (2, 4, 8) for k in dcnn.EVERY for a in dcnn.SLOPES]
    out = {c: actions(*c) for c in every_cell}
    for c in every_cell:
        same = [f for f in kept if f[0] == c[0] and np.array_equal(out[f], out[c])]
        assert same == ([c] if c in kept else [(2, 2, 0.0)]), c
    assert all(s.config.run.backend == "mp" for s in rl.specs("full"))


@pytest.mark.slow
def test_parallel_backend_run_and_resume(tmp_path):
    """The experiments' default backend: real worker processes, then a skip."""
    specs = tiny_specs(archs=("dcnn",), backend="mp")
    rows = run_specs(specs, tmp_path)
    assert rows[0]["final_return_mean"] > 0
    assert status(tmp_path / specs[0].name, specs[0].config) == "done"


def test_a_run_of_another_configuration_is_refused(tmp_path):
    spec, = tiny_specs(archs=("linear",))
    train_one(spec, tmp_path / "r")
    other = rl.specs("quick", envs=("InvertedPendulum-v4",), archs=("linear",), seeds=1,
                     backend="serial", workers=1,
                     budgets={"InvertedPendulum-v4": Budget(400, 1, 1, directions=4, top=2)})[0]
    with pytest.raises(ConfigError, match="another configuration"):
        status(tmp_path / "r", other.config)
    # A longer budget is the same run, continued.
    assert status(tmp_path / "r", with_budget(spec.config, timesteps=10**6)) == "resume"


def test_rl_command_end_to_end_and_rerun(tmp_path, monkeypatch):
    """The CLI path with the experiment's grid shrunk to two tiny runs."""
    tiny = tiny_specs(archs=("linear", "dcnn"))
    monkeypatch.setattr(rl, "specs", lambda form, **kw: tiny)
    args = ["experiment", "rl", "--out", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "trained" in first.output and "the full form's own 2 runs would take" in first.output
    for suffix in ("csv", "md", "png"):
        assert (tmp_path / "res" / f"rl_quick.{suffix}").exists()
    df = pd.read_csv(tmp_path / "res" / "rl_quick.csv")
    assert list(df["arch"]) == ["linear", "dcnn"] and df["final_return_mean"].notna().all()
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0 and second.output.count("finished already") == 2
    assert pd.read_csv(tmp_path / "res" / "rl_quick.csv").equals(df)


def test_experiment_shows_progress_of_the_run_in_training(tmp_path, monkeypatch):
    """A run of a full form trains for many minutes; its progress shows every
    --progress-every seconds (0: every iteration), the first iteration of each run always."""
    tiny = tiny_specs(archs=("linear", "dcnn"))
    monkeypatch.setattr(rl, "specs", lambda form, **kw: tiny)

    def lines(root, every):
        res = CliRunner().invoke(cli, ["experiment", "rl", "--out", str(tmp_path / "res"),
                                       "--runs", str(tmp_path / root), "--progress-every",
                                       every])
        assert res.exit_code == 0, res.output
        return [ln for ln in res.output.splitlines() if ln.startswith("  [")]

    every = lines("a", "0")
    iterations = [len(pd.read_csv(tmp_path / "a" / "quick" / "rl" / s.name / "progress.csv"))
                  for s in tiny]
    assert iterations[1] > 1 and len(every) == sum(iterations)
    assert every[0].startswith(f"  [1/2] {tiny[0].name}: it    1 | steps ")
    assert every[-1].startswith(f"  [2/2] {tiny[1].name}: it {iterations[1]:>4} | ")
    assert "~" in every[-1] and "left" in every[-1]
    first_only = lines("b", "3600")
    assert [ln.split(": it")[0] for ln in first_only] == [f"  [1/2] {tiny[0].name}",
                                                         f"  [2/2] {tiny[1].name}"]
    assert all(": it    1 |" in ln for ln in first_only)
    bad = CliRunner().invoke(cli, ["experiment", "rl", "--progress-every", "-1"])
    assert bad.exit_code == 2 and "--progress-every" in bad.output


def test_ablation_shares_the_rl_experiments_kama_runs(tmp_path, monkeypatch):
    """K = 200 is rl's kama configuration: the ablation finds those runs finished, trains only
    the other K, and tabulates the very same run."""
    for form in ("quick", "full"):
        shared = [s for s in ablation.specs(form) if s.tags["rotations"] == 200]
        twins = {s.name: s.config for s in rl.specs(form)}
        assert shared and all(twins[s.name.removeprefix("../rl/")] == s.config for s in shared)
        assert not any(s.name.startswith("../") for s in ablation.specs(form)
                       if s.tags["rotations"] != 200)
    for ex in (rl, ablation):
        monkeypatch.setitem(ex.BUDGETS, "quick", {**ex.BUDGETS["quick"], "Hopper-v4": TINY})
    res = rl_then("ablation", "Hopper-v4", tmp_path)
    assert res.output.count("trained") == 4 and res.output.count("finished already") == 1
    abl = pd.read_csv(tmp_path / "res" / "ablation_quick.csv").set_index("rotations")
    kama = pd.read_csv(tmp_path / "res" / "rl_quick.csv").set_index("arch").loc["kama"]
    assert abl.at[200, "run_dir"] == kama["run_dir"] == str(
        tmp_path / "runs" / "quick" / "rl" / "Hopper-v4" / "kama" / "seed0")
    assert abl.at[200, "final_return_mean"] == kama["final_return_mean"]
    assert "the full form's own 40 runs, besides 10 it shares with another experiment" in \
        (tmp_path / "res" / "ablation_quick.md").read_text()


@pytest.mark.parametrize("field", theorem2.FIELDS)
def test_theorem2_warm_start_keeps_the_product(field):
    rng = np.random.default_rng(2)
    short = theorem2.ChainFit(np.zeros((8, 8)), 3, field)
    theta = short.init(rng, scale=1.0)
    for m in (4, 5):
        longer = theorem2.ChainFit(np.zeros((8, 8)), m, field)
        np.testing.assert_allclose(longer.product(theorem2.extend(theta, short, m)),
                                   short.product(theta), atol=1e-12)


def test_dcnn_theorem_command_writes_its_files(tmp_path, monkeypatch):
    monkeypatch.setitem(theorem2.FORMS, "quick", {**theorem2.FORMS["quick"], "ks": (1,),
                                                  "n": 8, "restarts": 1, "max_iter": 200})
    args = ["experiment", "dcnn", "--part", "theorem", "--out", str(tmp_path), "--runs",
            str(tmp_path / "runs")]
    report = CliRunner().invoke(cli, args + ["--report"])
    assert report.exit_code == 2  # as every other "nothing finished yet" error
    assert report.output == "error: no Theorem 2 fit has finished yet\n"
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "k = 1 (complex): relative error" in res.output
    df = pd.read_csv(tmp_path / "dcnn_theorem2_quick.csv")
    assert list(df["m"]) == [1, 3, 5, 7] and "commit" in df
    md = (tmp_path / "dcnn_theorem2_quick.md").read_text()
    assert "**" in md and "In progress" not in md
    assert (tmp_path / "dcnn_theorem2_quick.png").exists()
    # --report rebuilds the same table from the saved fits, fitting nothing.
    (tmp_path / "runs" / "quick" / "dcnn_theorem2" / "k1_complex_m07.json").unlink()
    report = CliRunner().invoke(cli, args + ["--report"])
    assert report.exit_code == 0, report.output
    assert list(pd.read_csv(tmp_path / "dcnn_theorem2_quick.csv")["m"]) == [1, 3, 5]
    assert "In progress: 3 of " in (tmp_path / "dcnn_theorem2_quick.md").read_text()


def test_theorem2_sweep_resumes_from_its_saved_fits(tmp_path):
    """A sweep stopped part-way continues where it stopped: saved fits are read back (their
    rows, timings included, unchanged), the missing ones fitted from the same warm start."""
    kw = {"ks": (1,), "n": 8, "restarts": 1, "max_iter": 300, "odd_only": True}
    whole = theorem2.sweep(**kw, cache=tmp_path / "a")
    for m in (5, 7):
        name = f"k1_complex_m{m:02d}"
        checkpoint.npz_path(tmp_path / "a", name).unlink()
        (tmp_path / "a" / f"{name}.json").unlink()
    assert theorem2.sweep(**kw, cache=tmp_path / "a", cached_only=True) == whole[:2]
    resumed = theorem2.sweep(**kw, cache=tmp_path / "a")
    assert resumed[:2] == whole[:2]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed] == \
        [{k: v for k, v in r.items() if k not in drop} for r in whole]
    for other in ({"max_iter": 301}, {"odd_only": False}):
        with pytest.raises(ConfigError, match="fitted with"):
            theorem2.sweep(**{**kw, **other}, cache=tmp_path / "a")


def test_theorem2_fit_resumes_at_the_start_it_was_in(tmp_path):
    """A full-form k = 8 fit runs half an hour: stopped part-way, it reads back the starts it
    finished and runs only the rest, ending where an uninterrupted fit ends."""
    A = theorem2.rank_k_matrix(8, 2, np.random.default_rng(0))
    kw = {"restarts": 3, "max_iter": 200}
    store = theorem2.StartStore(tmp_path / "s", {"n": 8})
    whole, theta = theorem2.fit(A, 5, **kw, store=store)
    # As if stopped during start 3: starts 1 and 2 are on disk.
    checkpoint.npz_path(store.directory, "start3").unlink()
    (store.directory / "start3.json").unlink()
    # Mark start 1's saved iteration count: a start that is read back, not refitted, keeps it.
    meta = json.loads((store.directory / "start1.json").read_text())
    meta["start"]["nit"] += 100_000
    meta["json_sha256"] = checkpoint.json_sha256(meta)  # an edit on purpose, not damage
    (store.directory / "start1.json").write_text(json.dumps(meta))
    lines = []
    resumed, theta_resumed = theorem2.fit(A, 5, **kw, store=store, log=lines.append)
    assert ["saved before" in ln for ln in lines] == [True, True, False]
    assert resumed["lbfgs_iterations"] == whole["lbfgs_iterations"] + 100_000
    assert resumed["rel_error"] == whole["rel_error"]
    np.testing.assert_array_equal(theta_resumed, theta)
    with pytest.raises(ConfigError, match="fitted with"):
        theorem2.fit(A, 5, **kw, store=theorem2.StartStore(store.directory, {"n": 9}))
    store.clear()
    assert not store.directory.exists()


def test_theorem2_sweep_reports_every_start_of_a_fit(tmp_path):
    """A full-form fit runs tens of minutes: each of its starts says how it ended."""
    lines = []
    rows = theorem2.sweep(ks=(1,), n=8, restarts=2, max_iter=200, odd_only=True, extra=0,
                          log=lines.append, cache=tmp_path)
    starts = [ln for ln in lines if ": start " in ln]
    # m = 1: two random starts; m = 3 and 5: two random and the warm one.
    assert [ln.split(": start ")[1].split(":")[0] for ln in starts] == [
        "1 of 2 (random)", "2 of 2 (random)", *["1 of 3 (random)", "2 of 3 (random)",
                                                 "3 of 3 (warm)"] * 2]
    assert starts[0].startswith("  k=1 complex m= 1")
    best = min(float(ln.split("rel_error ")[1].split()[0]) for ln in starts[2:5])
    assert f"rel_error={rows[1]['rel_error']:.3e}" in lines[lines.index(starts[4]) + 1]
    assert abs(best - rows[1]["rel_error"]) <= 1e-3 * best + 1e-15
    # Read back from the cache, nothing is fitted and no start is reported.
    again = []
    theorem2.sweep(ks=(1,), n=8, restarts=2, max_iter=200, odd_only=True, extra=0,
                   log=again.append, cache=tmp_path)
    assert len(again) == 3 and all("saved before" in ln for ln in again)
    # A finished fit's starts are in it: none is left behind.
    assert not list(tmp_path.glob("*.starts"))


def test_report_tabulates_finished_runs_only(tmp_path, monkeypatch):
    """--report trains nothing: tables from the runs finished so far, marked in progress."""
    tiny = tiny_specs(archs=("linear", "dcnn"))
    monkeypatch.setattr(rl, "specs", lambda form, **kw: tiny)
    args = ["experiment", "rl", "--report", "--out", str(tmp_path / "res"), "--runs",
            str(tmp_path / "runs")]
    empty = CliRunner().invoke(cli, args)
    assert empty.exit_code == 2 and "none of the 2 runs" in empty.output
    run_specs(tiny[:1], tmp_path / "runs" / "quick" / "rl")
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "1 of 2 runs" in res.output and "**In progress:** 1 of 2 runs" in res.output
    assert list(pd.read_csv(tmp_path / "res" / "rl_quick.csv")["arch"]) == ["linear"]
    assert not (tmp_path / "runs" / "quick" / "rl" / tiny[1].name).exists()  # nothing trained


def test_unknown_env_is_one_line_error(tmp_path):
    res = CliRunner().invoke(cli, ["experiment", "ablation", "--env", "Ant-v4", "--out",
                                   str(tmp_path)])
    assert res.exit_code == 2 and "--env Ant-v4 is not in this experiment" in res.output
    assert "HalfCheetah-v4, Hopper-v4" in res.output


@pytest.mark.parametrize("command", [["rl"], ["ablation"], ["dcnn"], ["presets"]])
def test_zero_seeds_is_one_line_error(tmp_path, command):
    res = CliRunner().invoke(cli, ["experiment", *command, "--seeds", "0", "--runs",
                                   str(tmp_path / "runs"), "--out", str(tmp_path / "res")])
    assert res.exit_code == 2, res.output
    assert res.output.strip() == "error: Invalid value for '--seeds': 0 is not in the range x>=1."
    assert not (tmp_path / "runs").exists() and not (tmp_path / "res").exists()


def test_a_run_busy_elsewhere_is_skipped(tmp_path):
    """Two invocations of one experiment never train the same run at once: the second skips
    what the first holds and trains the rest."""
    from es_compact.trainer import run_lock

    specs = tiny_specs(archs=("linear", "dcnn"))
    logged = []
    with run_lock(tmp_path / specs[0].name):
        rows = run_specs(specs, tmp_path, log=logged.append)
    assert "skipped" in logged[0] and "being trained by pid" in logged[0]
    assert status(tmp_path / specs[1].name, specs[1].config) == "done"
    assert np.isnan(rows[0]["final_return_mean"]) and rows[1]["final_return_mean"] > 0


def test_sigterm_stops_an_experiment_cleanly(tmp_path):
    """`kill PID` stops a background `make paper` like Ctrl-C: exit 130, finished runs kept,
    and the next invocation skips them."""
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "es_compact_cli", "experiment", "rl", "--env",
            "InvertedPendulum-v4", "--backend", "serial", "--out", str(tmp_path / "res"),
            "--runs", str(tmp_path / "runs")]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until the first run has finished
        if line.startswith("[1/15]"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    root = tmp_path / "runs" / "quick" / "rl"
    first = rl.specs("quick", envs=("InvertedPendulum-v4",), backend="serial")[0]
    assert status(root / first.name, first.config) == "done"
    assert not (tmp_path / "res" / "rl_quick.csv").exists()  # no table from a stopped run


def test_welch_p_value_by_hand():
    # means 2 and 16/3, sample variances 1 and 7/3: t = -3.162 on 3.45 Welch degrees of freedom
    assert rl.welch_p([1, 2, 3], [4, 5, 7]) == pytest.approx(0.0419, abs=5e-4)
    assert rl.welch_p([1000, 1000], [1000, 1000]) is None  # every seed solved: nothing to test
    assert rl.welch_p([1.0], [2.0, 3.0]) is None


def test_gap_compares_common_seeds_only():
    kama, dense = {0: 10.0, 1: 20.0}, {0: 4.0, 1: 6.0, 2: 100.0}
    assert rl.gap(kama, dense) == f"+10 (p = {rl.welch_p([10, 20], [4, 6]):.2f}; seeds 0, 1)"
    assert rl.gap({0: 5.0}, {0: 1.0, 1: 9.0}) == "+4 (seed 0)"
    assert rl.gap({0: 5.0}, {0: 1.0}) == "+4" and rl.gap({0: 5.0}, {1: 1.0}) == ""


def test_late_return_averages_the_last_fifth(tmp_path):
    from es_compact.experiments.preset_search import late_return

    pd.DataFrame({"timesteps": [100, 500, 790, 800, 900, 1000],
                  "eval_return_mean": [1.0, np.nan, 50.0, 10.0, np.nan, 20.0]}).to_csv(
        tmp_path / "progress.csv", index=False)
    assert late_return(tmp_path, 1000) == 15.0
    assert late_return(tmp_path, 1000, late=0.5) == pytest.approx(80 / 3)


def test_preset_search_command_trains_ranks_and_refuses_unknown_tasks(tmp_path, monkeypatch):
    from es_compact.experiments import preset_search as ex
    from es_compact.presets import DEFAULT, Preset

    env_id = "InvertedDoublePendulum-v4"
    monkeypatch.setitem(ex.CANDIDATES, env_id, {"A": DEFAULT, "B": Preset(0.01, 2, 1, 0.03, 0)})
    monkeypatch.setitem(ex.BUDGETS, env_id, (600, 1))
    args = ["experiment", "presets", "--seeds", "2", "--out", str(tmp_path / "out"),
            "--runs", str(tmp_path / "runs"), "--backend", "serial"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "out" / "presets_inverted_double_pendulum.csv")
    runs = sorted(zip(df.candidate, df.seed, strict=True))
    assert runs == [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
    assert (df.timesteps >= 600).all() and df.late_return.notna().all()
    b = df[df.candidate == "B"]
    assert (b.directions == 2).all() and (b.top == 1).all() and (b.step_size == 0.01).all()
    md = (tmp_path / "out" / "presets_inverted_double_pendulum.md").read_text()
    means = df.groupby("candidate").late_return.mean()
    if means.nunique() > 1:  # ranked, best first
        assert md.index(f"| {means.idxmax()} |") < md.index(f"| {means.idxmin()} |")
    assert (tmp_path / "out" / "presets_inverted_double_pendulum.png").stat().st_size > 0
    bad = CliRunner().invoke(cli, ["experiment", "presets", "--env", "Ant-v4", "--out",
                                   str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "no preset candidates for Ant-v4" in bad.output
    bad = CliRunner().invoke(cli, [*args, "--arch", "nope", "--report"])
    assert bad.exit_code == 2 and "unknown architecture 'nope'" in bad.output


def test_commit_is_dirty_for_code_changes_not_for_regenerated_results(tmp_path):
    import subprocess

    from es_compact.results import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "table.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    clean = git_commit(tmp_path)
    assert len(clean) >= 7 and "+dirty" not in clean
    (tmp_path / "results" / "table.md").write_text("regenerated\n")
    (tmp_path / "new_untracked.py").write_text("")
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
    assert git_commit(tmp_path / "sub") == clean + "+dirty"  # from a subdirectory too


def test_presets_counts_an_arch_given_twice_once(tmp_path, monkeypatch):
    from es_compact.experiments import preset_search as ex
    from es_compact.presets import DEFAULT

    env_id = "InvertedDoublePendulum-v4"
    monkeypatch.setitem(ex.CANDIDATES, env_id, {"A": DEFAULT})
    monkeypatch.setitem(ex.BUDGETS, env_id, (200, 1))
    args = ["experiment", "presets", "--seeds", "1", "--out", str(tmp_path / "out"),
            "--runs", str(tmp_path / "runs"), "--backend", "serial"]
    # --report before any training: the message counts the planned runs.
    once = CliRunner().invoke(cli, [*args, "--arch", "linear", "--report"])
    twice = CliRunner().invoke(cli, [*args, "--arch", "linear", "--arch", "linear", "--report"])
    assert once.exit_code == twice.exit_code == 2
    assert twice.output == once.output == (f"error: none of the 1 runs under {tmp_path}/runs/"
                                           "presets has finished yet\n")
    # Training: each run once (run_specs refuses a name given twice).
    res = CliRunner().invoke(cli, [*args, "--arch", "linear", "--arch", "linear"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "out" / "presets_inverted_double_pendulum.csv")
    assert list(df["arch"]) == ["linear"]


def test_env_option_adds_rows_to_the_table_instead_of_replacing_it(tmp_path, monkeypatch):
    """`--env X` trains X only, but the table it writes keeps every finished run of the grid:
    training Hopper after InvertedPendulum must not drop InvertedPendulum's rows."""
    full_grid = rl.specs

    def linear_only(form, envs=rl.ENVS, seeds=None, backend="serial", workers=None):
        return full_grid(form, envs=envs, archs=("linear",), seeds=seeds, backend="serial",
                         workers=1, budgets=dict.fromkeys(rl.ENVS, TINY))

    monkeypatch.setattr(rl, "specs", linear_only)
    args = ["experiment", "rl", "--seeds", "1", "--backend", "serial", "--out",
            str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    for env_id in ("Hopper-v4", "InvertedPendulum-v4"):
        res = CliRunner().invoke(cli, [*args, "--env", env_id])
        assert res.exit_code == 0, res.output
        assert res.output.count("trained") == 1  # the other environment's run is not touched
    df = pd.read_csv(tmp_path / "res" / "rl_quick.csv")
    assert list(df["env"]) == ["InvertedPendulum-v4", "Hopper-v4"]  # in the grid's order
    assert df["final_return_mean"].notna().all()
    # Planned: the quick form's 6 environments x 3 seeds (linear only here).
    md = (tmp_path / "res" / "rl_quick.md").read_text()
    assert "**In progress:** 2 of 18 runs" in md and "the other 16 need about" in md
    assert ("HalfCheetah-v4, InvertedDoublePendulum-v4, Swimmer-v4, Walker2d-v4, with no run "
            "finished yet, at the median rate of the others") in md
    report = CliRunner().invoke(cli, [*args[:2], "--report", *args[6:], "--env", "Hopper-v4"])
    assert report.exit_code == 2, report.output
    assert report.output.strip() == ("error: --env applies only without --report (which "
                                     "tabulates every environment); here it would be ignored")
    assert CliRunner().invoke(cli, [*args[:2], "--report", *args[6:]]).exit_code == 0
    assert len(pd.read_csv(tmp_path / "res" / "rl_quick.csv")) == 2


def test_uneven_seed_counts_are_stated_per_cell_and_the_trend_uses_common_seeds():
    """Part-way through the ablation K = 200 (shared with rl) has more seeds than the other
    K: each cell then states its count, and the slope compares the seeds every K has run."""
    def row(k, seed, final):
        return {"env": "Hopper-v4", "rotations": k, "seed": seed, "final_return_mean": final,
                "params": k, "timesteps": 100}

    rows = [row(10, 0, 100.0), row(100, 0, 300.0), row(100, 1, 5000.0)]
    slope, common = ablation.trend(rows)["Hopper-v4"]
    assert common == [0] and slope == pytest.approx(200.0)  # (300 - 100) per tenfold K
    s = summarise(rows, ["env", "rotations"]).set_index("rotations")
    assert list(s["seeds"]) == [1, 2] and s.at[100, "final_mean"] == 2650.0
    assert seed_count(s) is None and seed_count(s.loc[[10]]) == "1 seed"
    assert fmt_cell(s.loc[100], own_seeds=True) == "2650 ± 2350 (100 p, 2 seeds)"
    assert fmt_cell(s.loc[10], own_seeds=False) == "100 (10 p)"
    # The statistics use the common seeds too: one run a side leaves Welch's test undefined.
    st = ablation.stats(rows)
    welch = st[st["test"] == "welch"].iloc[0]
    assert (welch["n_a"], welch["n_b"], welch["difference"]) == (1, 1, 200.0)
    assert np.isnan(welch["p"])
    assert st[st["test"] == "spearman"]["n_a"].tolist() == [2]
    ablation.markdown(rows)  # renders with the uneven counts


def test_ablation_statistics_by_hand():
    """Spearman's ρ of the final return against K over every run of the common seeds, and
    Welch's test of each K against the next smaller, as scipy computes them."""
    from scipy.stats import spearmanr, ttest_ind

    finals = {10: [100.0, 250.0, 90.0], 50: [400.0, 300.0, 800.0], 200: [900.0, 1200.0, 700.0]}
    rows = [{"env": "Hopper-v4", "rotations": k, "seed": i, "final_return_mean": f,
             "params": k, "timesteps": 100} for k, fs in finals.items() for i, f in enumerate(fs)]
    rows.append({**rows[-1], "seed": 3, "final_return_mean": -1e6})  # K = 200 only: left out
    st = ablation.stats(rows)
    assert list(st["a"]) == ["K = 50", "K = 200", "final return"]
    assert list(st["b"]) == ["K = 10", "K = 50", "K"]
    rho = spearmanr([10] * 3 + [50] * 3 + [200] * 3, sum(finals.values(), []))
    got = st.set_index("test").loc["spearman"]
    assert got["statistic"] == pytest.approx(rho.statistic) and got["p"] == pytest.approx(
        rho.pvalue) and got["n_a"] == 9
    w = st.iloc[0]
    assert w["p"] == pytest.approx(ttest_ind(finals[50], finals[10], equal_var=False).pvalue)
    assert w["p"] == pytest.approx(rl.welch_p(finals[50], finals[10]))
    assert w["difference"] == pytest.approx(np.mean(finals[50]) - np.mean(finals[10]))
    assert w["std_a"] == pytest.approx(np.std(finals[50]))  # over runs, as the tables' cells


def test_dcnn_statistics_pool_the_runs_they_name():
    """Each pooled group holds exactly the runs its name says: the depth-2 linear network is
    in the depth rows but never in a placement or slope row."""
    rows = []
    for depth, every, slope in dcnn.GRID["full"]:
        for seed in range(2):
            rows.append({"depth": depth, "every": every, "slope": slope, "seed": seed,
                         "nonlinearities": dcnn.nonlinearities(depth, every), "params": 1,
                         "timesteps": 1, "env": dcnn.ENV,
                         "final_return_mean": 100.0 * depth + 10 * every + slope + seed})
    st = dcnn.stats(rows).set_index(["comparison", "a", "b"])
    place = st.loc[("placement", "after every layer", "every 2 or 3 layers")]
    assert (place["n_a"], place["n_b"]) == (3 * 3 * 2, 2 * 2 * 3 * 2)  # depth 2 has no every 2/3
    depth = st.loc[("depth", "L = 4", "L = 2")]
    assert (depth["n_a"], depth["n_b"]) == (18, 8)  # depth 2: 3 slopes + the linear network
    lin = st.loc[("a non-linearity at all, L = 2", "a leaky ReLU", "linear")]
    assert (lin["n_a"], lin["n_b"], lin["mean_b"]) == (6, 2, 220.5)
    slope = st.loc[("slope (with a leaky ReLU)", "slope 0.5", "slope 0")]
    assert slope["n_a"] == slope["n_b"] == 7 * 2 and slope["difference"] == pytest.approx(0.5)
    rho = st[st["test"] == "spearman"].iloc[0]
    assert rho["n_a"] == len(dcnn.GRID["full"]) == 22 and -1 <= rho["statistic"] <= 1


def test_paper_init_keeps_the_scale_only_with_a_plain_relu():
    """c ~ N(0, 2/n): a circulant layer doubles the second moment and a leaky ReLU of slope a
    keeps (1 + a²)/2 of it (the input is symmetric), so a layer with a plain ReLU keeps the
    scale and one with slope 0.5 grows it 1.25x; a linear layer doubles it."""
    n = 256
    x = np.random.default_rng(0).standard_normal((16, n))

    def second_moment(every, slope, seeds=300):
        cfg = PolicyConfig(arch="dcnn", hidden=n, depth=2, nonlin_every=every, slope=slope,
                           bias_std=0.0)
        out = []
        for seed in range(seeds):  # the paper's c and d do not depend on the slope
            policy = make_policy(cfg, n, n, seed=seed)
            out.append(np.mean(policy.forward(policy.init(np.random.default_rng(seed)), x)
                               ** 2))
        return float(np.mean(out))

    relu, leaky, linear = second_moment(1, 0.0), second_moment(1, 0.5), second_moment(2, 0.0)
    # Two layers, the last linear (x 2): 2 with a plain ReLU after the first, 2.5 with slope
    # 0.5, 4 with none.
    assert relu == pytest.approx(2.0, rel=0.05)
    # The network-to-network spread of the ReLU's mean (which the second layer mixes) leaves
    # about 2% of noise on the ratio of 300 networks.
    assert leaky / relu == pytest.approx(1.25, rel=0.06)
    assert linear == pytest.approx(4.0, rel=0.05)


def test_estimate_counts_only_the_steps_a_run_has_left(tmp_path):
    """Hours at each environment's median measured rate (the median of every row for an
    environment without one); a run on disk counts only the steps it has not taken yet."""
    from es_compact.experiments.runner import estimate_hours

    rows = [{"env": "InvertedPendulum-v4", "steps_per_s": r} for r in (0.1, 0.3)] + [
        {"env": "Hopper-v4", "steps_per_s": 1.0}]
    trained, fresh = tiny_specs(archs=("linear", "dcnn"))  # 400 steps each
    # 400 steps at the median 0.2 steps/s: 2000 s each; Swimmer at the rows' median, 0.3.
    assert estimate_hours(rows, [trained, fresh]) == pytest.approx(4000 / 3600)
    swim = rl.specs("quick", envs=("Swimmer-v4",), archs=("linear",), seeds=1)[0]
    assert estimate_hours(rows, [swim]) == pytest.approx(16_000 / 0.3 / 3600)
    run_specs([trained], tmp_path)  # spends its whole budget
    assert estimate_hours(rows, [trained, fresh], tmp_path) == pytest.approx(2000 / 3600)


def test_swimmer_reference_check_runs_both_sides_and_reports_them(tmp_path, monkeypatch):
    """Two iterations of each implementation, for real: same evaluation schedule, and the
    report counts seeds at the threshold and sums each side's training time."""
    from es_compact.experiments import swimmer_reference as sr

    monkeypatch.setattr(sr, "ITERATIONS", 2)
    monkeypatch.setattr(sr, "EVAL_EVERY", 1)
    monkeypatch.setattr(sr, "EPISODES", 1)
    monkeypatch.setattr(sr, "ROOT", tmp_path / "runs")
    df = sr.main(seeds=1, out=str(tmp_path / "out"))
    assert list(df["implementation"]) == ["es-compact", "reference"]
    for impl in ("es-compact", "reference"):
        assert len(df[df["implementation"] == impl]["evals"].iloc[0].split()) == 2
    # Swimmer never terminates: 2 iterations x 2 episodes x 1000 steps on both sides.
    ours, _ = sr.ours(0)  # read back, not retrained
    ref, _ = sr.reference_ars(0)
    assert [(it, steps) for it, steps, _ in ours] == [(it, steps) for it, steps, _ in ref] \
        == [(1, 2000), (2, 4000)]
    assert ref == sr.reference_ars(0)[0]  # seeded
    md = (tmp_path / "out" / "swimmer_reference.md").read_text()
    walls = df.set_index("implementation")["wall_time_s"]
    assert (f"(training, summed over seeds: es-compact {walls['es-compact']:.0f} s, reference "
            f"{walls['reference']:.0f} s)") in md
    assert "| es-compact | 1 | 0 of 1 |" in md  # two iterations reach nothing near 325
    assert sr.fisher_p(5, 10, 2, 10) == pytest.approx(0.3498, abs=1e-4)


def test_dcnn_policy_table_and_plot_from_real_runs(tmp_path):
    """The depth / placement table's data: one cell per network trained, its seed count and
    size; a linear network (no leaky ReLU) is named so; each cell's start, where a ReLU after
    every layer keeps the scale and linear layers inflate it."""
    grid = [(2, 1, 0.5), (2, 2, 0.0), (4, 1, 0.0), (4, 1, 0.5)]
    budget = Budget(400, 1, 1, directions=1, top=1)  # one iteration: 3 HalfCheetah episodes
    specs = dcnn.specs("quick", grid=grid, seeds=1, backend="serial", workers=1, budget=budget)
    rows = run_specs(specs, tmp_path)
    f = dcnn.frame(rows)
    assert list(zip(f["depth"], f["every"], f["slope"], strict=True)) == grid
    assert list(f["seeds"]) == [1] * 4 and list(f["params"]) == [326, 326, 710, 710]
    assert seed_count(f) == "1 seed"
    assert dcnn._placement(2, 2) == "none (linear)" and dcnn._placement(4, 1) == "1 (3 in all)"
    cell = dcnn.initial_scale(dcnn.ENV, PolicyConfig(arch="dcnn", depth=4, nonlin_every=1,
                                                     slope=0.0))
    assert dcnn.start(4, 1, 0.0) == cell
    every3 = dcnn.initial_scale(dcnn.ENV, PolicyConfig(arch="dcnn", depth=4))
    assert every3["rms"] > 1.5 * cell["rms"]
    st = dcnn.stats(rows).set_index("comparison")
    lin = st.loc["a non-linearity at all, L = 2"]
    assert lin["n_a"] == lin["n_b"] == 1 and np.isnan(lin["p"])  # one run a side: no test
    assert st.at["depth", "n_a"] == st.at["depth", "n_b"] == 2 and 0 <= st.at["depth", "p"] <= 1
    md = dcnn.markdown(rows)
    assert md.count("| 2 | none (linear) |") == 2  # the return table and the start table
    dcnn.plot(rows, tmp_path / "dcnn.png")
    assert (tmp_path / "dcnn.png").stat().st_size > 10_000
    more = dcnn.specs("quick", grid=grid[:1], seeds=2, backend="serial", workers=1,
                      budget=budget)
    f = dcnn.frame(rows + run_specs(more[1:], tmp_path))
    assert list(f["seeds"]) == [2, 1, 1, 1] and seed_count(f) is None
