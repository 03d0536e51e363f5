"""An experiment's report: train (or only collect) its grid of runs, then write
OUT/STEM.{csv,md,png} and, where the experiment computes statistics, OUT/STEM_stats.csv.

The CLI parses options and prints; everything that decides what a results file says is here or
in the experiment's own module (its markdown, plot and stats). Library code never prints: what
a command shows goes through `log`, and the writers return the Markdown they wrote.

A table always holds every finished run of the experiment's grid, not only what this invocation
trained, so `--env Hopper-v4` adds Hopper's rows to a committed table instead of shrinking it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from es_compact.config import PolicyConfig, RunConfig
from es_compact.errors import ConfigError
from es_compact.experiments import preset_search, table1, theorem2
from es_compact.experiments.runner import (
    RunSpec,
    collect,
    estimate_hours,
    finished_specs,
    run_path,
    run_specs,
    write_csv,
)
from es_compact.policies import ARCHITECTURES
from es_compact.results import run_metadata

Log = Callable[[str], None]


def _quiet(s: str) -> None:
    pass


def check_envs(chosen: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """The environments to train, in the experiment's order (all of them when none chosen);
    a ConfigError naming the choices for one the experiment does not have."""
    for e in chosen:
        if e not in known:
            raise ConfigError(f"--env {e} is not in this experiment; choose from "
                              f"{', '.join(known)}")
    return tuple(e for e in known if e in chosen) if chosen else tuple(known)


def train_and_collect(specs: Sequence[RunSpec], root: Path, report: bool = False,
                      grid: Sequence[RunSpec] | None = None, planned: Sequence[RunSpec] = (),
                      log: Log = _quiet, on_iteration=None) -> tuple[list[dict], list[RunSpec]]:
    """Train `specs` (unless `report`), then collect the rows of every finished run of `grid`
    (the experiment's whole grid, holding specs; default: specs). Returns (rows, the specs
    still to finish among `specs` and `planned`, the form's own grid)."""
    if not report:
        log(f"{len(specs)} runs under {root}")
        run_specs(specs, root, log=log, on_iteration=on_iteration)
    done = finished_specs(specs if grid is None else grid, root)
    finished = {s.name for s in done}
    todo = list({s.name: s for s in (*specs, *planned) if s.name not in finished}.values())
    if not done:
        raise ConfigError(f"none of the {len(todo)} runs under {root} has finished yet")
    if report:
        log(f"{len(done)} of {len(done) + len(todo)} runs under {root} have finished")
    return [collect(s, run_path(root, s)) for s in done], todo


def write_report(out: Path, stem: str, rows: list[dict], md: str, title: str,
                 full_specs: Sequence[RunSpec] | None = None, todo: Sequence[RunSpec] = (),
                 root: Path | None = None, stats: pd.DataFrame | None = None) -> str:
    """OUT/STEM.{csv,md} (and OUT/STEM_stats.csv with `stats`) from the finished runs' rows;
    returns the Markdown below the title. todo: the runs still to finish (under root), whose
    remaining steps are estimated at the throughput the finished ones measured; full_specs
    (a quick form's report): the full form's runs, whose time is estimated the same way."""
    if todo:
        unseen = sorted({s.tags.get("env") for s in todo} - {r.get("env") for r in rows})
        guessed = (f"; {', '.join(unseen)}, with no run finished yet, at the median rate of "
                   "the others" if unseen else "")
        md += (f"\n**In progress:** {len(rows)} of {len(rows) + len(todo)} runs have finished; "
               "cells and curves show those only (`--report` collects them without training). "
               f"At the throughput the finished runs measured, the other {len(todo)} need "
               f"about {estimate_hours(rows, todo, root):.1f} hours more{guessed}.\n")
    meta = run_metadata(None)
    wall = sum(r["wall_time_s"] for r in rows if r.get("wall_time_s") == r.get("wall_time_s"))
    md += (f"\n`{meta['command']}` at {meta['commit']}, {meta['date']}, {meta['cores']} cores; "
           f"training wall time {wall:,.0f} s over {len(rows)} runs (each run's own command, "
           f"commit, date and wall time are in {stem}.csv)\n")
    write_csv(out / f"{stem}.csv", rows)
    if stats is not None:
        write_csv(out / f"{stem}_stats.csv", stats.to_dict("records"))
    if full_specs is not None:
        own = [s for s in full_specs if not s.name.startswith("../")]
        shared = (f", besides {len(full_specs) - len(own)} it shares with another experiment"
                  if len(own) < len(full_specs) else "")
        md += (f"\nAt the throughput these runs measured ({rows[0]['cores']} cores), the full "
               f"form's own {len(own)} runs{shared} would take at most about "
               f"{estimate_hours(rows, own):.0f} hours (an upper bound: short runs spend much "
               "of their time starting workers and evaluating; the README gives the full "
               "form's measured time).\n")
    (out / f"{stem}.md").write_text(f"# {title}\n\n{md}")
    return md


def grid_report(ex: ModuleType, name: str, stem: str, title: str, form: str, out: str | Path,
                runs_root: str | Path, report: bool = False, backend: str = RunConfig.backend,
                workers: int | None = None, seeds: int | None = None,
                envs: Sequence[str] | None = None, log: Log = _quiet,
                on_iteration=None) -> tuple[str, list[str]]:
    """Train (or, with `report`, only collect) one experiment's grid of runs under
    RUNS/FORM/NAME, then write OUT/STEM_FORM.{csv,md,png} (and STEM_FORM_stats.csv when the
    experiment module has a `stats(rows)`). `ex` is the experiment's module (specs, SEEDS,
    ENVS, markdown, plot; optionally with_columns(rows), which adds columns to the rows).
    Returns (the Markdown, the files written)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    only = {} if envs is None else {"envs": check_envs(envs, ex.ENVS)}
    specs = ex.specs(form, seeds=seeds, backend=backend, workers=workers, **only)
    # The tables: every finished run of the form's grid, at its own seed count or --seeds'.
    grid = ex.specs(form, seeds=max(seeds or 0, ex.SEEDS[form]), backend=backend,
                    workers=workers)
    root = Path(runs_root) / form / name
    rows, todo = train_and_collect(specs, root, report, grid, ex.specs(form), log,
                                   on_iteration)
    if hasattr(ex, "with_columns"):  # the experiment's own per-run columns, read from the runs
        rows = ex.with_columns(rows)
    ex.plot(rows, out / f"{stem}_{form}.png")
    stats = ex.stats(rows) if hasattr(ex, "stats") else None
    md = write_report(out, f"{stem}_{form}", rows, ex.markdown(rows), f"{title} ({form} form)",
                      None if form == "full" else ex.specs("full"), todo, root, stats)
    files = [f"{stem}_{form}.{x}" for x in ("csv", "md", "png")]
    return md, files + ([f"{stem}_{form}_stats.csv"] if stats is not None else [])


def table1_report(out: str | Path) -> str:
    """OUT/table1.{csv,md}: KAMA-NN Table 1 beside the paper's values; returns the table."""
    t0 = time.perf_counter()
    rows = table1.rows()
    meta = run_metadata(time.perf_counter() - t0)
    out = Path(out)
    write_csv(out / "table1.csv", [{**r, **meta} for r in rows])
    md = table1.markdown(rows)
    (out / "table1.md").write_text(
        "# Table 1: trainable parameters, percent of dense (KAMA-NN paper's values in "
        f"brackets)\n\n{md}\n`{meta['command']}` at {meta['commit']}, {meta['date']}\n")
    return md


def theorem2_report(form: str, out: str | Path, runs_root: str | Path, report: bool = False,
                    log: Log = _quiet) -> list[dict]:
    """Fit (or, with `report`, only read back) the Theorem 2 sweep of `form`, every fit saved
    under RUNS/FORM/dcnn_theorem2 as it finishes (so an interrupted sweep resumes), and write
    OUT/dcnn_theorem2_FORM.{csv,md,png}. Returns the rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    kw = theorem2.FORMS[form]
    rows = theorem2.sweep(log=log, cache=Path(runs_root) / form / "dcnn_theorem2",
                          cached_only=report, **kw)
    if not rows:
        raise ConfigError("no Theorem 2 fit has finished yet")
    meta = run_metadata(time.perf_counter() - t0)
    planned = len(kw["fields"]) * sum(len(theorem2.chain_lengths(k, odd_only=kw["odd_only"]))
                                      for k in kw["ks"])
    progress = ("" if len(rows) == planned else
                f"\nIn progress: {len(rows)} of {planned} fits finished.\n")
    write_csv(out / f"dcnn_theorem2_{form}.csv", [{**r, **meta} for r in rows])
    theorem2.plot(rows, out / f"dcnn_theorem2_{form}.png")
    (out / f"dcnn_theorem2_{form}.md").write_text(
        f"# DCNN Theorem 2: best relative error of an m-factor fit to a rank-k "
        f"{rows[0]['n']}x{rows[0]['n']} matrix ({form} form)\n\n{theorem2.markdown(rows)}"
        f"{progress}\n`{meta['command']}` at {meta['commit']}, {meta['date']}, "
        f"{meta['wall_time_s']:.0f} s (the fits themselves: "
        f"{sum(r['seconds'] for r in rows):.0f} s)\n")
    return rows


def presets_report(env_id: str, archs: Sequence[str], seeds: int, out: str | Path,
                   runs_root: str | Path, report: bool = False, backend: str = RunConfig.backend,
                   workers: int | None = None, log: Log = _quiet,
                   on_iteration=None) -> tuple[str, list[str]]:
    """Train (or only collect) a preset search's candidates and write
    OUT/presets_STEM.{csv,md,png}; the table keeps the finished runs of architectures not
    given this time. Returns (the Markdown, the files written)."""
    if env_id not in preset_search.CANDIDATES:
        raise ConfigError(f"no preset candidates for {env_id}; choose from "
                          f"{', '.join(preset_search.CANDIDATES)}")
    # An arch given twice would name the same runs twice (run_specs refuses that; a report
    # would collect them twice): keep each once, in the order given.
    archs = tuple(dict.fromkeys(archs))
    for arch in archs:
        PolicyConfig(arch=arch).validate(tuple(ARCHITECTURES))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = preset_search.specs(env_id, archs, seeds, backend, workers)
    others = tuple(a for a in ARCHITECTURES if a not in archs)
    grid = preset_search.specs(env_id, archs + others, seeds, backend, workers)
    root = Path(runs_root) / "presets"
    rows, todo = train_and_collect(specs, root, report, grid, log=log,
                                   on_iteration=on_iteration)
    rows = preset_search.with_late(rows)
    stem = f"presets_{preset_search.stem(env_id)}"
    preset_search.plot(rows, out / f"{stem}.png")
    md = write_report(out, stem, rows, preset_search.markdown(rows),
                      f"Preset search, {env_id}: ranked by the mean return over the budget's "
                      "last fifth", todo=todo, root=root)
    return md, [f"{stem}.{x}" for x in ("csv", "md", "png")]


# Statistics the experiments' tables state, computed here so every number in results/ comes
# from code. Standard deviations are over runs (numpy's default, as in the tables' cells).

STATS_COLUMNS = ("env", "comparison", "a", "n_a", "mean_a", "std_a", "b", "n_b", "mean_b",
                 "std_b", "difference", "test", "statistic", "p")
"""The columns of a STEM_stats.csv: a row is a two-sample comparison (Welch's t-test of the
final returns of groups a and b) or a rank correlation (Spearman's ρ of a against b)."""


def welch(env: str, comparison: str, a: str, xa: Sequence[float], b: str,
          xb: Sequence[float]) -> dict:
    """A Welch row: the two groups' sizes, means and stds, mean a - b, t and two-sided p (NaN
    with fewer than two runs a side, or when neither group varies)."""
    from scipy.stats import ttest_ind

    xa, xb = np.asarray(xa, float), np.asarray(xb, float)
    t = p = np.nan
    if min(len(xa), len(xb)) >= 2 and not np.std(xa) == np.std(xb) == 0:
        res = ttest_ind(xa, xb, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
    return {"env": env, "comparison": comparison, "a": a, "n_a": len(xa),
            "mean_a": float(np.mean(xa)), "std_a": float(np.std(xa)), "b": b, "n_b": len(xb),
            "mean_b": float(np.mean(xb)), "std_b": float(np.std(xb)),
            "difference": float(np.mean(xa) - np.mean(xb)), "test": "welch", "statistic": t,
            "p": p}


def spearman(env: str, comparison: str, a: str, xa: Sequence[float], b: str,
             xb: Sequence[float]) -> dict:
    """A Spearman row: ρ of the paired samples xa, xb (ties ranked by their mean) and the
    two-sided p of ρ = 0."""
    from scipy.stats import spearmanr

    res = spearmanr(xa, xb)
    nan = float("nan")
    return {"env": env, "comparison": comparison, "a": a, "n_a": len(xa), "mean_a": nan,
            "std_a": nan, "b": b, "n_b": len(xb), "mean_b": nan, "std_b": nan,
            "difference": nan, "test": "spearman", "statistic": float(res.statistic),
            "p": float(res.pvalue)}


def stats_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(STATS_COLUMNS))


def fmt_p(p: float) -> str:
    """Two decimals, or one significant digit below 0.01 (3e-06); 'n/a' when undefined."""
    if p != p:
        return "n/a"
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}"


def stats_markdown(stats: pd.DataFrame) -> str:
    """The statistics frame as two Markdown tables: the Welch comparisons, the correlations."""
    lines = []
    w = stats[stats["test"] == "welch"]
    if len(w):
        lines += ["| comparison | a | b | a − b | Welch p |", "|---|---|---|---|---|"]
        for r in w.itertuples():
            env = f"{r.env.split('-')[0]}: " if r.env else ""
            lines.append(f"| {env}{r.comparison} | {r.a}: {r.mean_a:.0f} ± {r.std_a:.0f} "
                         f"({r.n_a} runs) | {r.b}: {r.mean_b:.0f} ± {r.std_b:.0f} "
                         f"({r.n_b} runs) | {r.difference:+.0f} | {fmt_p(r.p)} |")
    s = stats[stats["test"] == "spearman"]
    if len(s):
        lines += ["", "| correlation | of | with | Spearman's ρ | p |",
                  "|---|---|---|---|---|"]
        for r in s.itertuples():
            env = f"{r.env.split('-')[0]}: " if r.env else ""
            lines.append(f"| {env}{r.comparison} ({r.n_a} points) | {r.a} | {r.b} | "
                         f"{r.statistic:+.2f} | {fmt_p(r.p)} |")
    return "\n".join(lines).lstrip("\n") + "\n"
