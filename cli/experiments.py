"""`es-compact experiment table1|rl|ablation|dcnn [--full]`: the papers' tables and figures as
CSV, Markdown and PNG files under --out, training runs under --runs/FORM/NAME.

Re-running a command skips finished runs and resumes unfinished ones (see
es_compact.experiments.runner), so an interrupted `make paper` continues where it stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from es_compact.config import BACKENDS
from es_compact.results import run_metadata
from es_compact_cli.options import COUNT, refuse_ignored


def _form(full: bool, out: str) -> tuple[str, Path]:
    Path(out).mkdir(parents=True, exist_ok=True)
    return ("full" if full else "quick"), Path(out)


_PROGRESS_OPTION = click.option(
    "--progress-every", type=click.FloatRange(min=0), default=60.0, show_default=True,
    help="seconds between progress lines of the run in training (0: every iteration)")


def _progress(every: float):
    """on_iteration for run_specs: the run's first iteration in this invocation, then one
    line at most every `every` seconds, so a long run shows it is alive and how far it got."""
    from es_compact_cli.train import progress_line

    last = {"run": None, "t": 0.0}

    def show(row: dict, info: dict) -> None:
        now = time.monotonic()
        if info["run"] != last["run"] or now - last["t"] >= every:
            last.update(run=info["run"], t=now)
            _echo(f"  [{info['index']}/{info['runs']}] {info['run']}: "
                  f"{progress_line(row, info)}")
    return show


def _run_options(fn):
    opts = [
        click.option("--full", is_flag=True, help="the full form (long budgets, more seeds)"),
        click.option("--out", default="results", show_default=True,
                     help="directory for the CSV, Markdown and PNG files"),
        click.option("--runs", "runs_root", default="runs/paper", show_default=True,
                     help="training runs go to RUNS/FORM/EXPERIMENT/... (make paper uses "
                          "results/runs, whose finished runs are committed)"),
        click.option("--report", is_flag=True,
                     help="train nothing: tables and plots from the runs finished so far"),
        click.option("--backend", type=click.Choice(BACKENDS), default="mp", show_default=True),
        click.option("--workers", type=int, help="rollout workers per run [one per core]"),
        click.option("--seeds", type=COUNT,
                     help="seeds per cell to train [quick/full default]; the tables hold "
                          "every finished seed, up to the larger of the two"),
        _PROGRESS_OPTION,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _echo(s: str) -> None:
    click.echo(s, err=True)


def _train(specs, root: Path, report: bool = False, progress_every: float = 60.0,
           grid=None, planned=()) -> tuple[list[dict], list]:
    """Train `specs` (unless --report), then collect the rows of every finished run of `grid`
    (the experiment's whole grid, holding specs; default: specs). Returns (rows, the specs
    still to finish among `specs` and `planned`, the form's own grid).

    The tables cover the whole grid, not only what this invocation trained, so `--env
    Hopper-v4` adds Hopper's rows to a committed table instead of shrinking it to them."""
    from es_compact.errors import ConfigError
    from es_compact.experiments.runner import collect, finished_specs, run_path, run_specs

    if not report:
        click.echo(f"{len(specs)} runs under {root}", err=True)
        run_specs(specs, root, log=_echo, on_iteration=_progress(progress_every))
    done = finished_specs(specs if grid is None else grid, root)
    finished = {s.name for s in done}
    todo = list({s.name: s for s in (*specs, *planned) if s.name not in finished}.values())
    if not done:
        raise ConfigError(f"none of the {len(todo)} runs under {root} has finished yet")
    if report:
        click.echo(f"{len(done)} of {len(done) + len(todo)} runs under {root} have finished",
                   err=True)
    return [collect(s, run_path(root, s)) for s in done], todo


def _refuse_serial_workers(backend: str, workers: int | None) -> None:
    refuse_ignored(click.get_current_context(),
                   {"workers": (backend != "serial" or workers == 1,
                                "with --backend mp or ray (serial runs one)")})


def _envs(chosen: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    from es_compact.errors import ConfigError

    for e in chosen:
        if e not in known:
            raise ConfigError(f"--env {e} is not in this experiment; choose from "
                              f"{', '.join(known)}")
    return tuple(e for e in known if e in chosen) if chosen else known


def _write(out: Path, stem: str, rows: list[dict], md: str, title: str,
           full_specs=None, todo=(), root: Path | None = None) -> None:
    """OUT/STEM.{csv,md} from the finished runs' rows; todo: the runs still to finish (under
    root), whose remaining steps are estimated at the throughput the finished ones measured."""
    from es_compact.experiments.runner import estimate_hours, write_csv

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
    click.echo(md)
    click.echo(f"wrote {out}/{stem}.csv, {stem}.md, {stem}.png")


def _grid(ex, name: str, stem: str, title: str, full: bool, out: str, runs_root: str,
          report: bool, backend: str, workers, seeds, progress_every: float,
          envs=None) -> None:
    """Train (or, with --report, collect) one experiment's grid of runs under
    RUNS/FORM/NAME, then write OUT/STEM_FORM.{csv,md,png}."""
    _refuse_serial_workers(backend, workers)
    refuse_ignored(click.get_current_context(),
                   {"envs": (not report, "without --report (which tabulates every environment)")})
    form, out = _form(full, out)
    only = {} if envs is None else {"envs": _envs(envs, ex.ENVS)}
    specs = ex.specs(form, seeds=seeds, backend=backend, workers=workers, **only)
    # The tables: every finished run of the form's grid, at its own seed count or --seeds'.
    grid = ex.specs(form, seeds=max(seeds or 0, ex.SEEDS[form]), backend=backend,
                    workers=workers)
    root = Path(runs_root) / form / name
    rows, todo = _train(specs, root, report, progress_every, grid, ex.specs(form))
    ex.plot(rows, out / f"{stem}_{form}.png")
    _write(out, f"{stem}_{form}", rows, ex.markdown(rows), f"{title} ({form} form)",
           None if full else ex.specs("full"), todo, root)


@click.group()
def experiment() -> None:
    """The papers' experiments: Table 1, RL curves, the K ablation, DCNN (quick or --full)."""


@experiment.command()
@click.option("--out", default="results", show_default=True)
def table1(out):
    """KAMA-NN Table 1: parameter ratios to dense, beside the paper's values."""
    from es_compact.experiments import table1 as t1
    from es_compact.experiments.runner import write_csv

    t0 = time.perf_counter()
    rows = t1.rows()
    meta = run_metadata(time.perf_counter() - t0)
    out = Path(out)
    write_csv(out / "table1.csv", [{**r, **meta} for r in rows])
    md = t1.markdown(rows)
    (out / "table1.md").write_text(
        "# Table 1: trainable parameters, percent of dense (KAMA-NN paper's values in "
        f"brackets)\n\n{md}\n`{meta['command']}` at {meta['commit']}, {meta['date']}\n")
    click.echo(md)
    click.echo(f"wrote {out}/table1.csv and {out}/table1.md")


_ENV_OPTION = click.option("--env", "envs", multiple=True,
                           help="train only this environment (repeatable; the tables hold every "
                                "environment's finished runs) [all of the experiment's]")


@experiment.command()
@_run_options
@_ENV_OPTION
def rl(full, out, runs_root, report, backend, workers, seeds, progress_every, envs):
    """Learning curves and final returns: 5 architectures x 6 MuJoCo tasks."""
    from es_compact.experiments import rl as ex

    _grid(ex, "rl", "rl", "RL: final evaluation return, mean ± std over seeds", full, out,
          runs_root, report, backend, workers, seeds, progress_every, envs)


@experiment.command()
@_run_options
@_ENV_OPTION
def ablation(full, out, runs_root, report, backend, workers, seeds, progress_every, envs):
    """kama with K in {10, 20, 50, 100, 200} rotations on HalfCheetah and Hopper."""
    from es_compact.experiments import ablation as ex

    _grid(ex, "ablation", "ablation", "Ablation: kama rotations K", full, out, runs_root,
          report, backend, workers, seeds, progress_every, envs)


@experiment.command()
@_run_options
@click.option("--part", type=click.Choice(["all", "theorem", "policy"]), default="all",
              show_default=True, help="Theorem 2 fit, the HalfCheetah policy grid, or both")
def dcnn(full, out, runs_root, report, backend, workers, seeds, progress_every, part):
    """DCNN: Theorem 2 (rank-k fits by m factors) and depth / leaky-ReLU placement.

    The Theorem 2 fit runs several times faster with OPENBLAS_NUM_THREADS=1 (make dcnn sets
    it): L-BFGS-B's BLAS calls are too small to gain from threads."""
    from es_compact.experiments import dcnn as ex
    from es_compact.experiments import theorem2
    from es_compact.experiments.runner import write_csv

    form, out = _form(full, out)
    if part in ("all", "theorem"):
        t0 = time.perf_counter()
        kw = theorem2.FORMS[form]
        # Every fit is saved as it finishes, so an interrupted sweep resumes; --report fits
        # nothing and tabulates the fits saved so far.
        rows = theorem2.sweep(log=_echo, cache=Path(runs_root) / form / "dcnn_theorem2",
                              cached_only=report, **kw)
        if not rows:
            from es_compact.errors import ConfigError

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
        for r in rows:
            if r["m"] == 4 * r["k"] + 1:
                click.echo(f"k = {r['k']} ({r['field']}): relative error {r['rel_error']:.2e} "
                           f"at m = 4k + 1 = {r['m']}")
        click.echo(f"wrote {out}/dcnn_theorem2_{form}.csv, .md and .png")
    if part in ("all", "policy"):
        _grid(ex, "dcnn", "dcnn_policy", "DCNN policies: depth and leaky-ReLU placement", full,
              out, runs_root, report, backend, workers, seeds, progress_every)


@experiment.command("dcnn-init")
@_run_options
@_ENV_OPTION
def dcnn_init(full, out, runs_root, report, backend, workers, seeds, progress_every, envs):
    """dcnn with the paper's initialisation against --dcnn-init scaled (HalfCheetah, Walker2d).

    The 'paper' runs are the rl experiment's dcnn runs, trained once for both."""
    from es_compact.experiments import dcnn_init as ex

    _grid(ex, "dcnn_init", "dcnn_init", "DCNN policies: the paper's initialisation against "
          "a variance-keeping one", full, out, runs_root, report, backend, workers, seeds,
          progress_every, envs)


@experiment.command()
@click.option("--env", "env_id", default="InvertedDoublePendulum-v4", show_default=True,
              help="the task whose preset is searched")
@click.option("--arch", "archs", multiple=True, default=("dense",), show_default=True,
              help="architecture to try each candidate with (repeatable)")
@click.option("--seeds", type=COUNT, default=3, show_default=True)
@click.option("--out", default="results", show_default=True)
@click.option("--runs", "runs_root", default="runs/paper", show_default=True,
              help="training runs go to RUNS/presets/ENV/CANDIDATE/ARCH/seedS")
@click.option("--report", is_flag=True, help="train nothing: tabulate the finished runs")
@click.option("--backend", type=click.Choice(BACKENDS), default="mp", show_default=True)
@click.option("--workers", type=int, help="rollout workers per run [one per core]")
@_PROGRESS_OPTION
def presets(env_id, archs, seeds, out, runs_root, report, backend, workers, progress_every):
    """Search an ARS V2-t preset for a task the ARS paper did not tune."""
    from es_compact.errors import ConfigError
    from es_compact.experiments import preset_search as ex

    if env_id not in ex.CANDIDATES:
        raise ConfigError(f"no preset candidates for {env_id}; choose from "
                          f"{', '.join(ex.CANDIDATES)}")
    from es_compact.config import PolicyConfig
    from es_compact.policies import ARCHITECTURES

    # An --arch given twice would name the same runs twice (run_specs refuses that; --report
    # would collect them twice): keep each once, in the order given.
    archs = tuple(dict.fromkeys(archs))
    _refuse_serial_workers(backend, workers)
    for arch in archs:
        PolicyConfig(arch=arch).validate(tuple(ARCHITECTURES))
    Path(out).mkdir(parents=True, exist_ok=True)
    specs = ex.specs(env_id, archs, seeds, backend, workers)
    # The table also keeps the finished runs of architectures not given this time.
    grid = ex.specs(env_id, archs + tuple(a for a in ARCHITECTURES if a not in archs), seeds,
                    backend, workers)
    root = Path(runs_root) / "presets"
    rows, todo = _train(specs, root, report, progress_every, grid)
    rows = ex.with_late(rows)
    stem = f"presets_{ex.stem(env_id)}"
    ex.plot(rows, Path(out) / f"{stem}.png")
    _write(Path(out), stem, rows, ex.markdown(rows),
           f"Preset search, {env_id}: ranked by the mean return over the budget's last fifth",
           todo=todo, root=root)
