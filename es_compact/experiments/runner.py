"""Running many training runs for an experiment: skip what is finished, resume what is not.

Every run of an experiment is a :class:`RunSpec` (a relative directory, a TrainConfig and the
tags that place it in a table). :func:`run_specs` looks at each run directory first:

- ``done``: the latest checkpoint has spent the budget and the final evaluation is on disk
  (the last progress row's evaluation, or final_eval.json at that iteration): skipped;
- ``resume``: a checkpoint exists but the budget is not spent (or the final evaluation was
  lost): ``Trainer(mode='resume')`` continues it bitwise identically;
- ``restart``: a config.json but no checkpoint (killed inside the first iteration):
  ``mode='overwrite'``;
- ``new``: nothing there.

So an interrupted ``make paper`` picks up where it stopped. A finished run gets an
``experiment.json`` with the command, commit, date, core count and its own wall time, and every
result row of that run carries those, even when a later invocation only collected it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import EnvConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.plotting import curves
from es_compact.results import run_metadata
from es_compact.run_dir import RunBusy, RunDir
from es_compact.trainer import Trainer

FORMS = ("quick", "full")


@dataclass(frozen=True)
class Budget:
    """A training budget and evaluation schedule for one environment in one form."""

    timesteps: int
    eval_every: int
    eval_episodes: int = RunConfig.eval_episodes
    directions: int | None = None
    """Override of the preset's directions N (None: the ARS paper's preset)."""
    top: int | None = None
    """Override of the preset's top b (None: the preset)."""


@dataclass(frozen=True)
class RunSpec:
    name: str
    """Directory of the run, relative to the experiment's run root."""
    config: TrainConfig
    tags: dict = field(default_factory=dict)
    """Columns of the run's result row (env, arch, seed, K, ...)."""


def make_config(env_id: str, policy, budget: Budget, seed: int,
                backend: str = RunConfig.backend, workers: int | None = None,
                noise_table_size: int = RunConfig.noise_table_size,
                algo: str = StrategyConfig.algo) -> TrainConfig:
    """ARS V2-t (or another strategy, algo) with the environment's preset, except where the
    budget overrides N and b. Every strategy but ARS updates from all N pairs, so b is ARS's
    alone; their step sizes are their own defaults (presets.resolve)."""
    strategy = StrategyConfig(algo=algo, directions=budget.directions,
                              top=budget.top if algo == "ars" else None)
    run = RunConfig(seed=seed, timesteps=budget.timesteps, eval_every=budget.eval_every,
                    eval_episodes=budget.eval_episodes, backend=backend, workers=workers,
                    noise_table_size=noise_table_size)
    return TrainConfig(env=EnvConfig(id=env_id), policy=policy, strategy=strategy, run=run)


def final_eval(run_dir: str | Path) -> tuple[float, float] | None:
    """(mean, std) of the evaluation of the last θ, or None when it is not on disk."""
    return RunDir(run_dir).final_eval()


def status(run_dir: str | Path, config: TrainConfig) -> str:
    """'new', 'restart', 'resume' or 'done' (see the module docstring and RunDir.status). A
    directory holding a run of another configuration (beyond its budget) is an error naming
    what differs, never silently reused."""
    return RunDir(run_dir).status(config)


def train_one(spec: RunSpec, run_dir: Path, on_iteration=None) -> str:
    """Train (or resume, or skip) one run; returns the status it was found in."""
    run = RunDir(run_dir)
    found = run.status(spec.config)
    if found == "done":
        return found
    mode = {"new": "new", "restart": "overwrite", "resume": "resume"}[found]
    Trainer(spec.config, run_dir, mode=mode).run(on_iteration)
    meta = run.latest_meta()
    run.write_experiment(run_metadata(meta["wall_time_s"] if meta else None))
    return found


def run_specs(specs: Sequence[RunSpec], root: str | Path,
              log: Callable[[str], None] = lambda s: None, on_iteration=None) -> list[dict]:
    """Train every spec in order (skipping finished runs) and return one row per run.
    on_iteration(row, info) sees the trainer's info plus the run's name, its index (from 1)
    and the number of runs."""
    root = Path(root)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("run names of an experiment must be unique")
    for i, spec in enumerate(specs):
        run_dir = run_path(root, spec)
        t0 = time.perf_counter()
        tagged = None if on_iteration is None else functools.partial(
            _tag, on_iteration, {"run": spec.name, "index": i + 1, "runs": len(specs)})
        try:
            found = train_one(spec, run_dir, tagged)
        except RunBusy as exc:  # another invocation is training it: leave it to that one
            log(f"[{i + 1}/{len(specs)}] {spec.name}: skipped, {exc}")
            continue
        verb = {"done": "finished already", "resume": "resumed", "restart": "restarted",
                "new": "trained"}[found]
        fe = final_eval(run_dir)
        log(f"[{i + 1}/{len(specs)}] {spec.name}: {verb} ({time.perf_counter() - t0:.1f} s), "
            f"final return {fe[0]:.1f}" if fe else f"[{i + 1}/{len(specs)}] {spec.name}: {verb}")
    return [collect(spec, run_path(root, spec)) for spec in specs]


def _tag(on_iteration, where: dict, row: dict, info: dict) -> None:
    on_iteration(row, {**info, **where})


def run_path(root: Path, spec: RunSpec) -> Path:
    """Where a spec's run lives: root / name, normalised (a name starting "../" leads into
    another experiment's root, "../rl/...", to share a run both experiments need)."""
    return Path(os.path.normpath(root / spec.name))


def finished_specs(specs: Sequence[RunSpec], root: str | Path) -> list[RunSpec]:
    """The specs whose runs are done (budget spent, final evaluation on disk)."""
    root = Path(root)
    return [s for s in specs if status(run_path(root, s), s.config) == "done"]


def collect(spec: RunSpec, run_dir: Path) -> dict:
    """The run's result row: its tags, size, budget spent, final return and provenance."""
    run = RunDir(run_dir)
    meta = run.latest_meta() or {}
    fe = run.final_eval(meta) or (math.nan, math.nan)
    prov = run.read_experiment() or run_metadata(meta.get("wall_time_s"))
    wall = meta.get("wall_time_s", math.nan)
    steps = meta.get("timesteps", 0)
    return {**spec.tags, "params": meta.get("num_params"), "iterations": meta.get("iteration"),
            "timesteps": steps, "final_return_mean": fe[0], "final_return_std": fe[1],
            "best_eval": meta.get("best_eval"),
            "steps_per_s": round(steps / wall, 1) if wall and wall > 0 else math.nan,
            "run_dir": str(run_dir), **{k: prov[k] for k in prov if k != "wall_time_s"},
            "wall_time_s": prov.get("wall_time_s", wall)}


def group_curve(run_dirs: Sequence[str | Path], points: int = 100):
    """(timesteps, mean, std, n) of eval_return_mean over runs differing only in seed, each
    interpolated onto a grid up to the shortest run (es_compact.plotting.curves)."""
    (grid, mean, std, n), = curves(list(run_dirs), points=points).values()
    return grid, mean, std, n


def summarise(rows: list[dict], by: Sequence[str]) -> pd.DataFrame:
    """Mean and std over seeds of the final return, per group."""
    df = pd.DataFrame(rows)
    g = df.groupby(list(by), sort=False)
    out = g.agg(final_mean=("final_return_mean", "mean"),
                final_std=("final_return_mean", lambda x: float(np.std(x))),
                seeds=("final_return_mean", "size"), params=("params", "first"),
                timesteps=("timesteps", "mean")).reset_index()
    return out


def per_seed(rows: list[dict], by: Sequence[str]) -> dict[tuple, dict[int, float]]:
    """Final return per seed, per group: what the gap between two groups is computed over."""
    df = pd.DataFrame(rows)
    return {key: dict(zip(g["seed"], g["final_return_mean"], strict=True))
            for key, g in df.groupby(list(by))}


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write rows, replacing the file (each row keeps the provenance columns of the invocation
    that trained its run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def with_budget(config: TrainConfig, **run_changes) -> TrainConfig:
    return dataclasses.replace(config, run=dataclasses.replace(config.run, **run_changes))


def draw_curves(ax, groups: dict[str, Sequence[str | Path]]) -> None:
    """One mean ± std band per group of seeds on a matplotlib axis."""
    for label, dirs in groups.items():
        x, mean, std, n = group_curve(dirs)
        line, = ax.plot(x, mean, label=f"{label} (n={n})", lw=1.3)
        if n > 1:
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))  # 1e5 ... 1e7 budgets alike
    ax.set_xlabel("timesteps")
    ax.set_ylabel("evaluation return")
    ax.grid(alpha=0.3)


def figure(rows: int, cols: int, width: float = 4.2, height: float = 3.3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return plt, fig, axes


COLS = ["final_mean", "final_std", "seeds"]
"""The columns of summarise() that fmt_return takes, in order."""


def fmt_return(mean: float, std: float, seeds: int = 2) -> str:
    """'mean ± std' over seeds (just the mean for one seed)."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.0f}" if seeds < 2 else f"{mean:.0f} ± {std:.0f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def seed_count(summary: pd.DataFrame) -> str | None:
    """'N seeds' when every cell of summarise()'s frame ran N seeds; None when the counts
    differ (a grid in progress, or a cell shared with another experiment), and then each cell
    should state its own (fmt_cell)."""
    counts = {int(n) for n in summary["seeds"]}
    return plural(counts.pop(), "seed") if len(counts) == 1 else None


def fmt_cell(cell: pd.Series, own_seeds: bool, params: bool = True) -> str:
    """One summarise() row as 'mean ± std (P p)', with ', N seeds' inside the brackets when
    own_seeds (the row's seed counts differ)."""
    notes = ([f"{int(cell['params'])} p"] if params else []) + (
        [plural(int(cell["seeds"]), "seed")] if own_seeds else [])
    text = fmt_return(*cell[COLS])
    return f"{text} ({', '.join(notes)})" if notes else text


def estimate_hours(rows: list[dict], specs: Sequence[RunSpec],
                   root: str | Path | None = None) -> float:
    """Hours the given specs would take at the throughput the rows' runs measured, per
    environment (median of timesteps / wall time, which includes start-up and evaluation, so
    short runs make it a pessimistic estimate; an environment without rows at the median of
    all rows). With root, the steps a run under it has already taken are not counted again."""
    df = pd.DataFrame(rows)
    rate = df.groupby("env")["steps_per_s"].median().to_dict()
    fallback = float(df["steps_per_s"].median())
    seconds = 0.0
    for s in specs:
        meta = None if root is None else RunDir(run_path(Path(root), s)).latest_meta()
        steps = s.config.run.timesteps - (meta or {}).get("timesteps", 0)
        seconds += max(steps, 0) / rate.get(s.tags.get("env"), fallback)
    return seconds / 3600.0
