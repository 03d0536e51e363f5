"""Learning curves (es_compact.plotting, `es-compact plot`, the plot `train` writes) on real
tiny runs: InvertedPendulum-v4 trained 2-6 iterations with the serial backend. Runs of
different lengths are real too (they differ in their iteration budget); nothing here is a
hand-made progress.csv."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from cli_checks import invoke, one_line_error

from es_compact import plotting
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.plotting import (
    RESULT_NEUTRAL,
    UNUSED,
    bootstrap_mean,
    figure,
    learning_curves,
    read_points,
    settings,
    steps_text,
)
from es_compact.trainer import Trainer

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

ENV = "InvertedPendulum-v4"


def config(seed=0, iterations=3, eval_every=1, arch="kama", rotations=12, step_size=None):
    return TrainConfig(
        env=EnvConfig(id=ENV, max_episode_steps=60),
        policy=PolicyConfig(arch=arch, **({} if arch == "linear" else {"hidden": 8}),
                            **({"rotations": (rotations,)} if arch == "kama" else {})),
        strategy=StrategyConfig(directions=2, top=1, step_size=step_size),
        run=RunConfig(seed=seed, iterations=iterations, eval_every=eval_every, eval_episodes=2,
                      noise_table_size=100_000, backend="serial"))


RUNS = {
    "one": config(eval_every=3),                   # make run's shape: one evaluation point
    "final": config(iterations=2, eval_every=5),   # only final_eval.json's evaluation
    "s0": config(seed=0), "s1": config(seed=1),
    "long": config(seed=2, iterations=6),          # the seeds' configuration, a longer budget
    "every2": config(seed=3, iterations=5, eval_every=2),  # points at 2, 4 and final 5
    "k10": config(rotations=10),
    "k20": config(rotations=20, step_size=0.1),
    "linear": config(arch="linear"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot_runs")
    for name, c in RUNS.items():
        Trainer(c, root / name).run()
    return {name: root / name for name in RUNS}


def blue_near(fig, x, y, radius=4) -> int:
    """Pixels of the first curve's colour within `radius` pixels of data point (x, y)."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    px, py = fig.axes[0].transData.transform((x, y))
    row, col = int(round(img.shape[0] - py)), int(round(px))
    win = img[row - radius:row + radius + 1, col - radius:col + radius + 1]
    c0 = np.array(matplotlib.colors.to_rgb("C0")) * 255
    return int((np.abs(win - c0).max(axis=-1) < 40).sum())


# Few points are visible -----------------------------------------------------------------------

def test_a_single_evaluation_is_a_visible_dot(runs, tmp_path):
    found, title = learning_curves([runs["one"]])
    (c,) = found
    assert c.timesteps.shape == (1,) and c.n.tolist() == [1]
    fig = figure(found, legend_title=title)
    try:
        (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "kama / ars (n=1)"]
        assert line.get_marker() == "o"
        # Drawn where the point is, not just in the legend (a line of one point is invisible).
        assert blue_near(fig, c.timesteps[0], c.mean[0]) > 10
    finally:
        plt.close(fig)
    # And the file `train` writes: read back, the same pixels around the point.
    out = invoke("plot", runs["one"], "-o", tmp_path / "one.png")
    assert out.exit_code == 0, out.output
    img = matplotlib.image.imread(tmp_path / "one.png")
    fig = figure(found, legend_title=title)
    try:
        fig.canvas.draw()
        np.testing.assert_array_equal(
            (img[..., :3] * 255).round().astype(np.uint8),
            np.asarray(fig.canvas.buffer_rgba())[..., :3])
    finally:
        plt.close(fig)


def test_markers_only_for_few_points_and_a_band_for_seeds(runs, monkeypatch):
    found, _ = learning_curves([runs["s0"], runs["s1"]], column="train_return_max")
    for limit, marker in ((len(found[0].timesteps), "o"), (3, "None")):
        monkeypatch.setattr(plotting, "MARKER_MAX", limit)
        fig = figure(found)
        try:
            assert fig.axes[0].get_lines()[0].get_marker() == marker
            assert len(fig.axes[0].collections) >= 1  # the bootstrap band
        finally:
            plt.close(fig)


# The final evaluation is part of the curve ----------------------------------------------------

def test_final_eval_is_the_last_point_and_the_final_value(runs):
    rec = json.loads((runs["final"] / "final_eval.json").read_text())
    pts = read_points(runs["final"])
    assert pts.iteration.tolist() == [2] and pts.value.tolist() == [rec["eval_return_mean"]]
    rec = json.loads((runs["every2"] / "final_eval.json").read_text())
    pts = read_points(runs["every2"])
    assert pts.iteration.tolist() == [2, 4, 5] and pts.value[-1] == rec["eval_return_mean"]
    (c,), _ = learning_curves([runs["every2"]])
    assert c.mean[-1] == rec["eval_return_mean"] == c.final[0]
    assert c.timesteps[-1] == rec["timesteps"]
    res = invoke("plot", runs["every2"], "-o", runs["every2"].parent / "every2.png")
    assert f"final eval_return_mean {rec['eval_return_mean']:.2f} at iteration 5" in res.output
    # Other columns are progress.csv's alone.
    assert read_points(runs["every2"], "train_return_max").iteration.tolist() == [1, 2, 3, 4, 5]


# Which runs are one curve -------------------------------------------------------------------

def test_runs_differing_only_in_seed_budget_or_schedule_are_one_curve(runs):
    dirs = [runs[k] for k in ("s0", "s1", "long", "every2")]
    (c,), title = learning_curves(dirs)
    assert c.label == "kama / ars" and title == ENV and len(c.runs) == 4


def test_runs_of_other_settings_are_separate_curves_labelled_by_the_difference(runs):
    dirs = [runs[k] for k in ("s0", "k10", "s1", "k20", "linear")]
    found, title = learning_curves(dirs)
    got = {c.label: len(c.runs) for c in found}
    assert got == {"kama / ars, K=12, step 0.05": 2, "kama / ars, K=10, step 0.05": 1,
                   "kama / ars, K=20, step 0.1": 1, "linear / ars, step 0.05": 1}, got
    assert title == ENV
    # A kama's rotations beside a linear policy, read by only one: implied by the arch.
    found, _ = learning_curves([runs["s0"], runs["linear"]])
    assert [c.label for c in found] == ["kama / ars", "linear / ars"]


def test_what_separates_curves_is_every_setting_but_the_neutral_ones(runs):
    s = settings(config())
    assert RESULT_NEUTRAL < set(s), RESULT_NEUTRAL - set(s)
    assert "run.noise_table_size" not in RESULT_NEUTRAL and "run.seed" in RESULT_NEUTRAL
    assert all(k.startswith("run.") for k in RESULT_NEUTRAL)
    assert s["policy.rotations"] == (12,) and settings(config(arch="linear"))[
        "policy.rotations"] is UNUSED


def test_group_by_and_labels(runs, tmp_path):
    dirs = [runs[k] for k in ("s0", "k10", "s1", "linear")]
    found, _ = learning_curves(dirs, group_by=["arch"])
    assert [(c.label, len(c.runs)) for c in found] == [("kama", 3), ("linear", 1)]
    found, _ = learning_curves(dirs, group_by=["policy.rotations", "seed"])
    assert [c.label for c in found] == ["K=12, seed 0", "K=10, seed 0", "K=12, seed 1",
                                        "K=n/a, seed 0"]
    # One label per run: runs sharing a label are one curve.
    found, _ = learning_curves(dirs, labels=["a", "b", "a", "b"])
    assert [(c.label, len(c.runs)) for c in found] == [("a", 2), ("b", 2)]
    # One per curve (K=12 seeds, K=10, linear) renames them in order.
    res = invoke("plot", *dirs, "-o", tmp_path / "l.png", "--label", "twelve",
                 "--label", "ten", "--label", "lin")
    assert res.exit_code == 0, res.output
    assert "twelve: 2 runs" in res.output and "ten: 1 run," in res.output
    one_line_error(invoke("plot", *dirs, "-o", tmp_path / "m.png", "--label", "x"),
                   "1 --label given for 4 runs in 3 curves")
    one_line_error(invoke("plot", *dirs, "-o", tmp_path / "m.png", "--group-by", "nope"),
                   "no setting 'nope'")
    res = invoke("plot", *dirs, "-o", tmp_path / "g.png", "--group-by", "arch")
    assert res.exit_code == 0 and "kama: 3 runs" in res.output, res.output
    # A run given twice counts once, and cannot take two labels.
    res = invoke("plot", runs["s0"], runs["s0"], "-o", tmp_path / "d.png")
    assert "kama / ars: 1 run," in res.output, res.output
    one_line_error(invoke("plot", runs["s0"], runs["s0"], "-o", tmp_path / "e.png",
                          "--label", "a", "--label", "b"), "given twice")


# Seeds: mean, bootstrap interval, and how many reach each point -------------------------------

def test_runs_of_different_lengths_continue_with_fewer_seeds(runs, tmp_path):
    dirs = [runs[k] for k in ("s0", "s1", "long")]
    (c,), _ = learning_curves(dirs)
    pts = [read_points(d) for d in dirs]
    ts = [np.interp(p.iteration, p.progress_iteration, p.progress_timesteps) for p in pts]
    # Not cut at the shortest: the curve reaches the longest run's last point, alone.
    assert c.timesteps[-1] == max(t[-1] for t in ts) and c.n[-1] == 1
    assert c.mean[-1] == pts[2].value[-1] and np.isnan(c.low[-1])
    assert c.n.max() == 3 and "n=1 after" in c.seeds_text()
    assert [steps_text(x) for x in (120, 51_234, 999_600, 2e6)] == ["120", "51.2k", "1M", "2M"]
    # Where all three have the point, the mean is theirs, interpolated between their points.
    all3 = np.flatnonzero(c.n == 3)
    want = np.mean([np.interp(c.timesteps[all3], t, p.value) for t, p in zip(ts, pts, strict=True)],
                   axis=0)
    np.testing.assert_allclose(c.mean[all3], want, rtol=0, atol=1e-12)
    assert np.all(c.low[all3] <= c.mean[all3]) and np.all(c.mean[all3] <= c.high[all3])
    # The final value: each run's own last value, averaged.
    assert c.final[0] == pytest.approx(np.mean([p.value[-1] for p in pts]))
    assert c.final_iterations == (3, 6)
    res = invoke("plot", *dirs, "-o", tmp_path / "len.png")
    assert "kama / ars: 3 runs, final eval_return_mean" in res.output
    assert "at iterations 3 to 6; curve n=" in res.output and "n=1 after" in res.output
    # Reproducible: the bootstrap has a fixed seed.
    (again,), _ = learning_curves(dirs)
    np.testing.assert_array_equal(again.low, c.low)
    np.testing.assert_array_equal(again.high, c.high)


def test_bootstrap_matches_a_plain_resampling_loop():
    rng = np.random.default_rng(7)
    values = rng.normal(size=(5, 3)) * [1, 10, 100]
    mean, low, high = bootstrap_mean(values)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    # The reference: draw 5 seed indices with replacement, 20000 times.
    idx = np.random.default_rng(1).integers(0, 5, size=(20000, 5))
    means = values[idx].mean(axis=1)
    ref_low, ref_high = np.percentile(means, [2.5, 97.5], axis=0)
    sd = values.std(axis=0) / np.sqrt(5)
    assert np.all(np.abs(low - ref_low) < 0.15 * sd)
    assert np.all(np.abs(high - ref_high) < 0.15 * sd)
    # Two seeds: the interval is their range; equal seeds: no width; one seed: none.
    _, lo, hi = bootstrap_mean(np.array([[0.0], [1.0]]))
    assert (lo[0], hi[0]) == (0.0, 1.0)
    _, lo, hi = bootstrap_mean(np.full((4, 2), 3.0))
    np.testing.assert_array_equal(lo, hi)
    assert np.isnan(bootstrap_mean(np.ones((1, 2)))[1]).all()


# The plot `train` writes ----------------------------------------------------------------------

TRAIN = ("train", "--env", ENV, "--arch", "linear", "--backend", "serial", "--directions", 2,
         "--iterations", 2, "--eval-every", 5, "--eval-episodes", 2, "--max-episode-steps", 60,
         "--noise-table-size", 100_000, "--quiet")


def test_train_writes_the_plot_of_a_run_shorter_than_eval_every(tmp_path):
    res = invoke(*TRAIN, "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "final_eval.json").exists()
    img = matplotlib.image.imread(tmp_path / "run" / "plot.png")
    (c,), title = learning_curves([tmp_path / "run"])
    fig = figure([c], title=f"{ENV} linear", legend_title=title)
    try:
        assert blue_near(fig, c.timesteps[0], c.mean[0]) > 10
        fig.canvas.draw()
        assert img.shape[:2] == np.asarray(fig.canvas.buffer_rgba()).shape[:2]
    finally:
        plt.close(fig)


def test_train_says_why_it_wrote_no_plot(tmp_path):
    # Every episode of AlwaysNaN fails, so no evaluation has a return to draw.
    res = invoke("train", "--env", "misbehaving_env:AlwaysNaN", "--arch", "linear",
                 "--backend", "serial", "--directions", 2, "--iterations", 2,
                 "--eval-every", 5, "--noise-table-size", 100_000, "--max-failed-fraction", 1,
                 "--quiet", "--out", tmp_path / "nan")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "nan" / "plot.png").exists()
    assert "plot.png not written: " in res.output and "no eval_return_mean value" in res.output
