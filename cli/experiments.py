"""`es-compact experiment table1|rl|ablation|strategies|dcnn [--full]`: the papers' tables and
figures as CSV, Markdown and PNG files under --out, training runs under --runs/FORM/NAME.

Re-running a command skips finished runs and resumes unfinished ones (see
es_compact.experiments.runner), so an interrupted `make paper` continues where it stopped.
"""

from __future__ import annotations

import time

import click

from es_compact.config import BACKENDS, RunConfig
from es_compact_cli.options import COUNT, refuse_ignored

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
        click.option("--backend", type=click.Choice(BACKENDS), default=RunConfig.backend,
                     show_default=True),
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


def _refuse_serial_workers(backend: str, workers: int | None) -> None:
    refuse_ignored(click.get_current_context(),
                   {"workers": (backend != "serial" or workers == 1,
                                "with --backend mp or ray (serial runs one)")})


def _show(out: str, md: str, files: list[str]) -> None:
    click.echo(md)
    click.echo(f"wrote {out}/{', '.join(files)}")


def _grid(ex, name: str, stem: str, title: str, full: bool, out: str, runs_root: str,
          report: bool, backend: str, workers, seeds, progress_every: float,
          envs=None) -> None:
    """Train (or, with --report, collect) one experiment's grid of runs under
    RUNS/FORM/NAME, then write OUT/STEM_FORM.{csv,md,png} (es_compact.experiments.report)."""
    from es_compact.experiments.report import grid_report

    _refuse_serial_workers(backend, workers)
    refuse_ignored(click.get_current_context(),
                   {"envs": (not report, "without --report (which tabulates every environment)")})
    md, files = grid_report(ex, name, stem, title, "full" if full else "quick", out, runs_root,
                            report, backend, workers, seeds, envs, log=_echo,
                            on_iteration=_progress(progress_every))
    _show(out, md, files)


@click.group()
def experiment() -> None:
    """The papers' experiments: Table 1, RL curves, the K ablation, the strategies, DCNN
    (quick or --full)."""


@experiment.command()
@click.option("--out", default="results", show_default=True)
def table1(out):
    """KAMA-NN Table 1: parameter ratios to dense, beside the paper's values."""
    from es_compact.experiments.report import table1_report

    click.echo(table1_report(out))
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
@_ENV_OPTION
def strategies(full, out, runs_root, report, backend, workers, seeds, progress_every, envs):
    """ARS, ES, PGPE, SNES, CMA-ES, sep-CMA-ES and CEM on linear and kama policies
    (HalfCheetah, Hopper).

    The ARS cells are the rl experiment's runs, trained once for both."""
    from es_compact.experiments import strategies as ex

    _grid(ex, "strategies", "strategies", "Strategies: final evaluation return, mean ± std "
          "over seeds", full, out, runs_root, report, backend, workers, seeds, progress_every,
          envs)


@experiment.command()
@_run_options
@click.option("--part", type=click.Choice(["all", "theorem", "policy"]), default="all",
              show_default=True, help="Theorem 2 fit, the HalfCheetah policy grid, or both")
def dcnn(full, out, runs_root, report, backend, workers, seeds, progress_every, part):
    """DCNN: Theorem 2 (rank-k fits by m factors) and depth / leaky-ReLU placement.

    The Theorem 2 fit runs several times faster with OPENBLAS_NUM_THREADS=1 (make dcnn sets
    it): L-BFGS-B's BLAS calls are too small to gain from threads."""
    from es_compact.experiments import dcnn as ex
    from es_compact.experiments.report import theorem2_report

    form = "full" if full else "quick"
    if part in ("all", "theorem"):
        # Every fit is saved as it finishes, so an interrupted sweep resumes; --report fits
        # nothing and tabulates the fits saved so far.
        rows = theorem2_report(form, out, runs_root, report, log=_echo)
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
@click.option("--backend", type=click.Choice(BACKENDS), default=RunConfig.backend,
              show_default=True)
@click.option("--workers", type=int, help="rollout workers per run [one per core]")
@_PROGRESS_OPTION
def presets(env_id, archs, seeds, out, runs_root, report, backend, workers, progress_every):
    """Search an ARS V2-t preset for a task the ARS paper did not tune."""
    from es_compact.experiments.report import presets_report

    _refuse_serial_workers(backend, workers)
    md, files = presets_report(env_id, archs, seeds, out, runs_root, report, backend, workers,
                               log=_echo, on_iteration=_progress(progress_every))
    _show(out, md, files)
