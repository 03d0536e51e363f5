"""Learning curves from run directories.

``learning_curves`` and ``plot_runs`` are what ``es-compact plot`` and ``train`` draw:

- **Which runs are one curve.** Runs whose resolved configurations (config.json) differ only
  in the seed and in settings that do not change what is learned (RESULT_NEUTRAL: budget,
  evaluation schedule, parallelism, bookkeeping) are the seeds of one curve. Every other
  setting a run reads (env, policy and strategy sections, and run.noise_table_size) separates
  curves, and each curve is labelled by the settings that differ between them ("kama / ars,
  K=10", "kama / ars, K=200, step 0.05"); what all share (the environment) is the legend's
  title. ``group_by`` ("arch", "policy.rotations", ...) or one label per run replace this rule.
- **Where seeds meet.** Seeds are averaged at equal timesteps: each run is interpolated
  linearly between its own points onto the union of all their timesteps (a grid of GRID
  points and every run's ends when that union is larger), never extrapolated before its
  first or after its last point. The evaluation of the final θ in final_eval.json (written
  when the budget ended between evaluations) is the run's last point.
- **What a point says.** The mean over the seeds that reach it and a 95 % percentile
  bootstrap confidence interval of that mean (BOOTSTRAP resamples of the seeds, a fixed
  generator seed, so the figure is reproducible). With two or three seeds the interval cannot
  be wider than the seeds' range: read it as their spread, not as a guarantee. Runs of
  different lengths are never cut at the shortest: the curve continues with the seeds that
  remain and the legend says so ("n=3 to 50k steps, n=2 after").
- **Few points are visible.** A curve of at most MARKER_MAX points gets markers, so a single
  evaluation is a dot (with an error bar for several seeds), not an invisible line.

``curves`` is the experiments' older form (timesteps grid, mean ± std, cut at the shortest
run of a label); their committed figures and tables are computed with it, so it stays as it
is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import RunConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.policies.architectures import applies
from es_compact.run_dir import RunDir

RESULT_NEUTRAL = frozenset(f"run.{f.name}" for f in fields(RunConfig)) - {"run.noise_table_size"}
"""Settings that do not separate curves: the run section (its docstring: "budget, evaluation,
parallelism and bookkeeping"), so the seed (what a curve averages over), the budget (where a
run stops, not what it learns up to there), the evaluation schedule (where and how precisely it
is measured; a resume may change it too), parallelism (results are bitwise equal across
backends and worker counts) and bookkeeping, but not run.noise_table_size: another table is
other noise. Every env, policy and strategy setting a run reads separates curves."""
SHORT = {"policy.rotations": "K", "strategy.step_size": "step", "strategy.directions": "N",
         "strategy.top": "b", "strategy.noise_std": "ν", "env.reward_shift": "shift",
         "env.max_episode_steps": "max steps", "run.noise_table_size": "table"}
"""How a label names a setting (others by their field name)."""
BARE = ("env.id", "policy.arch", "strategy.algo")
"""Settings a label shows by value alone ("HalfCheetah-v4", "kama", "ars")."""
BOOTSTRAP, BOOTSTRAP_SEED, LEVEL = 2000, 0, 0.95
MARKER_MAX, GRID = 40, 300


def read_progress(run_dir: str | Path) -> pd.DataFrame:
    return RunDir(run_dir).read_progress()


def run_label(run_dir: str | Path) -> str:
    """'env / arch / algo' of the stored configuration (runs differing only in seed share a
    label)."""
    return RunDir(run_dir).label()


def curves(run_dirs, column: str = "eval_return_mean", points: int = 200):
    """{label: (timesteps grid, mean, std, n_runs)}; each run is interpolated onto a common
    grid up to the shortest run of its label, so seeds are averaged at equal timesteps.
    (The experiments' form; `es-compact plot` draws learning_curves.)"""
    groups: dict[str, list[pd.DataFrame]] = {}
    for d in run_dirs:
        df = read_progress(d).dropna(subset=[column])
        if df.empty:
            raise ConfigError(f"{d}: no {column} values yet")
        groups.setdefault(run_label(d), []).append(df)
    out = {}
    for label, dfs in groups.items():
        end = min(df["timesteps"].iloc[-1] for df in dfs)
        start = max(df["timesteps"].iloc[0] for df in dfs)
        grid = np.linspace(start, end, points) if end > start else np.array([end])
        ys = np.array([np.interp(grid, df["timesteps"], df[column]) for df in dfs])
        out[label] = (grid, ys.mean(axis=0), ys.std(axis=0), len(dfs))
    return out


# One run's points ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPoints:
    """A run's finite values of one progress column, by iteration; progress_* map every
    logged iteration to its timesteps."""

    path: Path
    config: TrainConfig
    iteration: np.ndarray
    value: np.ndarray
    progress_iteration: np.ndarray
    progress_timesteps: np.ndarray


def read_points(run_dir: str | Path, column: str = "eval_return_mean") -> RunPoints:
    """The run's points of `column`, with final_eval.json's evaluation of the final θ as the
    last point of eval_return_mean; ConfigError when the run has none."""
    run = RunDir(run_dir)
    config = run.read_config()
    df = run.read_progress()
    if column not in df.columns:
        raise ConfigError(f"{run.progress_path} has no column {column!r}")
    df = df.drop_duplicates("iteration", keep="last").sort_values("iteration")
    its, ts = df["iteration"].to_numpy(int), df["timesteps"].to_numpy(float)
    vals = df[column].to_numpy(float)
    rec = run.read_final_eval() if column == "eval_return_mean" else None
    if rec is not None and rec.get("eval_return_mean") is not None:
        # Only where the row has no evaluation of its own, and never past progress.csv (a
        # resume from an earlier checkpoint dropped the rows after it).
        hit = np.flatnonzero(its == rec.get("iteration"))
        if hit.size and not np.isfinite(vals[hit[0]]):
            vals = vals.copy()
            vals[hit[0]] = float(rec["eval_return_mean"])
    keep = np.isfinite(vals)
    if not keep.any():
        raise ConfigError(f"{run.path} has no {column} value yet" + (
            " (every evaluation so far failed, or none was made)" if column.startswith("eval")
            else ""))
    return RunPoints(run.path, config, its[keep], vals[keep], its, ts)


# Which runs are one curve, and what tells curves apart -----------------------------------------

def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


class _Unused:
    def __repr__(self) -> str:
        return "n/a"


UNUSED = _Unused()
"""The value of a setting the configuration does not read (a linear policy's rotations)."""


def settings(config: TrainConfig) -> dict[str, object]:
    """'section.field' -> value of every setting, UNUSED for those the configuration does not
    read (judged as for continuous actions)."""
    unused = {f"{a.section}.{a.field}" for a in applies(config, discrete=False) if not a.used}
    flat = {f"{s}.{f}": v for s, sub in config.to_dict().items() for f, v in sub.items()}
    return {k: UNUSED if k in unused else _freeze(v) for k, v in flat.items()}


def resolve_field(name: str, config: TrainConfig) -> str:
    """'section.field' of a --group-by name: 'section.field', or a field name that only one
    section has ('arch', 'rotations', 'seed'; 'env' is env.id)."""
    keys = list(settings(config))
    if name in keys:
        return name
    if name == "env":
        return "env.id"
    hits = [k for k in keys if k.split(".", 1)[1] == name]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ConfigError(f"--group-by {name} is ambiguous: write {' or '.join(hits)}")
    raise ConfigError(f"--group-by: no setting {name!r}; settings are "
                      f"{', '.join(k.split('.', 1)[1] for k in keys)} (or section.field)")


def _show(key: str, value) -> str:
    if key in BARE:
        return str(value)
    name = SHORT.get(key, key.split(".", 1)[1].replace("_", " "))
    if isinstance(value, tuple):
        text = "/".join(map(str, value))
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = "none" if value is None else str(value)
    return f"{name}={text}" if len(name) == 1 else f"{name} {text}"


def differing(configs: Sequence[dict[str, object]]) -> list[str]:
    """The settings (but RESULT_NEUTRAL) whose values differ among the configurations that
    read them. A setting read by only some of them, with one value among those (a kama's
    rotations beside a linear policy), is implied by what tells them apart, so not listed."""
    return [k for k in configs[0] if k not in RESULT_NEUTRAL
            and len({c[k] for c in configs if c[k] is not UNUSED}) > 1]


def auto_labels(configs: Sequence[dict[str, object]]) -> tuple[list[str], str]:
    """A label per configuration naming what differs, and the title of what all share:
    'arch / algo' always, the environment when it differs, then the other differing
    settings ('kama / ars, K=10, step 0.05')."""
    diff = differing(configs)
    labels = None
    for extra in ([k for k in diff if k not in BARE],
                  # Tied (a difference only in which settings are read): every difference.
                  [k for k in configs[0] if k not in BARE and k not in RESULT_NEUTRAL
                   and len({c[k] for c in configs}) > 1]):
        labels = [" / ".join(str(c[k]) for k in BARE if k != "env.id" or k in diff)
                  + "".join(f", {_show(k, c[k])}" for k in extra if c[k] is not UNUSED)
                  for c in configs]
        if len(set(labels)) == len(labels):
            break
    common = [str(configs[0]["env.id"])] if "env.id" not in diff else []
    return labels, " / ".join(common)


@dataclass(frozen=True)
class Group:
    label: str
    runs: list[RunPoints]


def group_runs(runs: Sequence[RunPoints], labels: Sequence[str] | None = None,
               group_by: Sequence[str] | None = None) -> tuple[list[Group], str]:
    """The curves' groups in order of first appearance, and the legend title.

    Default: runs equal in every setting but RESULT_NEUTRAL are one group. group_by: runs
    equal in those settings are one group, labelled by their values. labels: one per group
    (renaming them in order) or one per run (then runs sharing a label are one group)."""
    cfgs = [settings(r.config) for r in runs]
    if group_by:
        keys = [resolve_field(name, runs[0].config) for name in group_by]
    else:
        keys = [k for k in cfgs[0] if k not in RESULT_NEUTRAL]
    order: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        order.setdefault(tuple(c[k] for k in keys), []).append(i)
    members = list(order.values())
    if group_by:
        names = [", ".join(_show(k, cfgs[m[0]][k]) for k in keys) for m in members]
        title = ""
    else:
        names, title = auto_labels([cfgs[m[0]] for m in members])
    if labels:
        labels = list(labels)
        if len(labels) == len(members):
            names = labels
        elif len(labels) == len(runs):
            by_label: dict[str, list[int]] = {}
            for i, lab in enumerate(labels):
                by_label.setdefault(lab, []).append(i)
            names, members = list(by_label), list(by_label.values())
        else:
            raise ConfigError(f"{len(labels)} --label given for {len(runs)} runs in "
                              f"{len(members)} curves: give one per run or one per curve")
    return [Group(n, [runs[i] for i in m]) for n, m in zip(names, members, strict=True)], title


# A group's curve --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """One group's curve: per point its timesteps, mean value, bootstrap interval (nan where
    one run has it) and number of runs; final: (mean, low, high) of each run's own last
    value, final_iterations: the first and last of those values' iterations."""

    label: str
    runs: list[Path]
    timesteps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    final: tuple[float, float, float]
    final_iterations: tuple[int, int]

    def stretches(self) -> list[tuple[int, float]]:
        """(n, last timesteps) of each stretch of points with the same number of runs."""
        out: list[list] = []
        for x, k in zip(self.timesteps, self.n, strict=True):
            if out and out[-1][0] == k:
                out[-1][1] = float(x)
            else:
                out.append([int(k), float(x)])
        return [(k, x) for k, x in out]

    def seeds_text(self) -> str:
        """'n=3', or where the number of runs changes: 'n=3 to 50k steps, n=2 after'."""
        runs = self.stretches()
        if len(runs) == 1:
            return f"n={runs[0][0]}"
        return (", ".join(f"n={k} to {steps_text(x)} steps" for k, x in runs[:-1])
                + f", n={runs[-1][0]} after")

    def legend_text(self) -> str:
        """seeds_text, or for more than three stretches 'n=4, fewer where dotted'."""
        if len(self.stretches()) <= 3:
            return self.seeds_text()
        return f"n={int(self.n.max())}, fewer where dotted"


def steps_text(x: float) -> str:
    """120 -> '120', 51234 -> '51.2k', 2e6 -> '2M'."""
    if x >= 999_500:
        return f"{x / 1e6:.3g}M"
    return f"{x / 1e3:.3g}k" if x >= 1e4 else f"{x:.0f}"


def bootstrap_mean(values: np.ndarray, level: float = LEVEL, resamples: int = BOOTSTRAP,
                   seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over axis 0 (runs) of a runs x points array: the percentile
    bootstrap interval of the mean, resampling whole runs (one draw serves every point, so
    an interval belongs to curves, not to single points). One run: nan."""
    mean = values.mean(axis=0)
    k = values.shape[0]
    if k < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    # How often each run is drawn in each resample: the same law as drawing k indices with
    # replacement, without a resamples x runs x points array.
    counts = np.random.default_rng(seed).multinomial(k, np.full(k, 1 / k), size=resamples)
    means = counts @ values / k  # resamples x points
    a = (1 - level) / 2 * 100
    low, high = np.percentile(means, [a, 100 - a], axis=0)
    return mean, low, high


def _timesteps(r: RunPoints) -> np.ndarray:
    return np.interp(r.iteration, r.progress_iteration, r.progress_timesteps)


def make_curve(group: Group) -> Curve:
    runs = group.runs
    xs = [_timesteps(r) for r in runs]
    grid = np.unique(np.concatenate(xs))
    if len(grid) > GRID:
        ends = np.concatenate([x[[0, -1]] for x in xs])
        grid = np.unique(np.concatenate([np.linspace(grid[0], grid[-1], GRID), ends]))
    inside = np.array([(grid >= x[0]) & (grid <= x[-1]) for x in xs])
    ys = np.array([np.interp(grid, x, r.value) for x, r in zip(xs, runs, strict=True)])
    mean, low, high = (np.full(grid.shape, np.nan) for _ in range(3))
    # The runs that reach a point change where one starts or ends: bootstrap each set alone.
    for pattern in {tuple(col) for col in inside.T}:
        cols = np.flatnonzero((inside.T == np.array(pattern)).all(axis=1))
        rows = np.flatnonzero(pattern)
        mean[cols], low[cols], high[cols] = bootstrap_mean(ys[np.ix_(rows, cols)])
    fm, fl, fh = bootstrap_mean(np.array([[r.value[-1]] for r in runs]))
    ends = [int(r.iteration[-1]) for r in runs]
    return Curve(group.label, [r.path for r in runs], grid, mean, low, high,
                 inside.sum(axis=0), (float(fm[0]), float(fl[0]), float(fh[0])),
                 (min(ends), max(ends)))


def learning_curves(run_dirs, column: str = "eval_return_mean",
                    labels: Sequence[str] | None = None,
                    group_by: Sequence[str] | None = None) -> tuple[list[Curve], str]:
    """The curves `plot_runs` draws, and the legend title (what all curves share)."""
    groups, title = group_runs([read_points(d, column) for d in run_dirs], labels, group_by)
    return [make_curve(g) for g in groups], title


def final_text(curve: Curve, column: str) -> str:
    """'2 runs, final eval_return_mean 45.20 (95% CI 30.00 to 60.40) at iteration 3', and
    where the number of runs along the curve changes ('; curve n=3 to 50k steps, n=2
    after')."""
    k = len(curve.runs)
    mean, low, high = curve.final
    text = f"{k} run{'s' if k > 1 else ''}, final {column} {mean:.2f}"
    if k > 1:
        text += f" ({LEVEL:.0%} CI {low:.2f} to {high:.2f})"
    a, b = curve.final_iterations
    text += f" at iteration {a}" if a == b else f" at iterations {a} to {b}"
    return text + (f"; curve {curve.seeds_text()}" if len(set(curve.n)) > 1 else "")


# Drawing ----------------------------------------------------------------------------------------

def figure(curves_: Sequence[Curve], column: str = "eval_return_mean",
           title: str | None = None, legend_title: str = ""):
    """The matplotlib figure of the curves (110 dpi; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    many = any(len(c.runs) > 1 for c in curves_)
    for c in curves_:
        style = {"marker": "o" if len(c.timesteps) <= MARKER_MAX else None, "ms": 4}
        fewer = c.n < c.n.max()
        # Solid where every run of the curve has the point, dotted where fewer have it.
        line, = ax.plot(c.timesteps, np.where(fewer, np.nan, c.mean), **style,
                        label=f"{c.label} ({c.legend_text()})")
        if fewer.any():
            near = fewer | np.r_[fewer[1:], False] | np.r_[False, fewer[:-1]]
            ax.plot(c.timesteps, np.where(near, c.mean, np.nan), ls=":", **style,
                    color=line.get_color())
        for i, j in _stretches(np.isfinite(c.low)):
            if j - i == 1:  # a band of one point has no width: an error bar instead
                ax.errorbar(c.timesteps[i], c.mean[i], yerr=[[c.mean[i] - c.low[i]],
                                                             [c.high[i] - c.mean[i]]],
                            color=line.get_color(), capsize=4, lw=1)
            else:
                ax.fill_between(c.timesteps[i:j], c.low[i:j], c.high[i:j],
                                color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("timesteps")
    ax.set_ylabel(column.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    what = f"mean and {LEVEL:.0%} bootstrap CI over n runs" if many else ""
    ax.legend(fontsize=8, title=" · ".join(t for t in (legend_title, what) if t) or None,
              title_fontsize=8)
    fig.tight_layout()
    return fig


def draw(curves_: Sequence[Curve], out: str | Path, column: str = "eval_return_mean",
         title: str | None = None, legend_title: str = "") -> Path:
    """Write the figure of the curves to `out` (any format matplotlib writes)."""
    fig = figure(curves_, column, title, legend_title)  # selects the Agg backend first
    import matplotlib.pyplot as plt

    from es_compact.checkpoint import writing

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: a failed write (a full disk) leaves the previous figure
    # and no partial file, and its error names the figure.
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with writing(out, tmp):
            fig.savefig(tmp, dpi=fig.dpi, format=out.suffix.lstrip(".") or None)
            os.replace(tmp, out)
    finally:
        plt.close(fig)
    return out


def _stretches(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def plot_runs(run_dirs, out: str | Path, column: str = "eval_return_mean",
              title: str | None = None, labels: Sequence[str] | None = None,
              group_by: Sequence[str] | None = None) -> Path:
    """Draw the learning curves of run_dirs (see the module docstring) into `out`."""
    found, legend_title = learning_curves(run_dirs, column, labels, group_by)
    return draw(found, out, column, title, legend_title)


def check_plot_inputs(run_dirs, out: str | Path, column: str) -> None:
    """ConfigError naming the first problem: a directory without a run or progress, a column
    progress.csv lacks, or an image format matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError(f"cannot write a {suffix or 'suffix-less'} image {out}; use one of "
                          f"{', '.join(sorted(formats))}")
    for d in run_dirs:
        run = RunDir(d)
        run.read_config()  # "holds no run" when there is none
        df = run.read_progress()
        if column not in df.columns:
            raise ConfigError(f"{run.progress_path} has no column {column!r}; it has "
                              f"{', '.join(c for c in df.columns if c != 'timesteps')}")

