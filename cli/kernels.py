"""`es-compact kernels mse|gram|bias` (the KAMA-NN paper's Figures 1 and 2, and the bias of the
structured estimators) and `es-compact bench features`: CSV rows and PNG plots under --out."""

from __future__ import annotations

import time
from pathlib import Path

import click

from es_compact.errors import ConfigError
from es_compact.names import DATASETS, ESTIMATORS
from es_compact.results import append_rows, check_csv, check_output_file, run_metadata
from es_compact_cli.bench import bench
from es_compact_cli.options import COUNT, SEED


def _names(value: str, allowed, what: str) -> list[str]:
    # dict.fromkeys: a name given twice would be computed twice and its rows appended twice.
    names = list(allowed) if value == "all" else list(dict.fromkeys(
        v.strip() for v in value.split(",") if v.strip()))
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, bad)) or repr(value)}: use "
                          f"'all' or a comma-separated list of {', '.join(allowed)}")
    return names


def _common(fn):
    opts = [
        click.option("--estimators", default="all", show_default=True,
                     help=f"comma-separated subset of {', '.join(ESTIMATORS)}"),
        click.option("--reps", type=int, default=None,
                     help="repetitions (independent draws) per point of a curve"),
        click.option("--seed", type=SEED, default=0, show_default=True),
        click.option("--out", default="results", show_default=True,
                     help="directory for the CSV and PNG files"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _outputs(out: str, csv: str, *pngs: str) -> Path:
    """Check the CSV and the plots under --out before the work, which takes minutes at the
    default sizes: a bad --out then fails at once and nothing on disk is touched."""
    out = Path(out)
    check_csv(out / csv)
    for png in pngs:
        check_output_file(out / png)
    return out


def _echo_table(df, cols: list[str]) -> None:
    import pandas as pd  # here, so that `es-compact --help` does not pay for it

    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        click.echo(df[cols].to_string(index=False))


@click.group()
def kernels() -> None:
    """Angular-kernel estimation with random features: urn, orn, horn, kama."""


@kernels.command()
@click.option("--datasets", default="boston,wine", show_default=True,
              help=f"comma-separated subset of {', '.join(DATASETS)}, or 'all'")
@_common
@click.option("--blocks", type=int, default=10, show_default=True, help="largest m / d")
@click.option("--pairs", type=COUNT, default=200, show_default=True,
              help="random pairs of points per dataset")
def mse(datasets, estimators, reps, seed, out, blocks, pairs):
    """Figure 1: pointwise MSE against the number of blocks (default r = 100)."""
    import pandas as pd

    from es_compact.experiments import kernels as ex

    names = _names(datasets, DATASETS, "dataset")
    ests = _names(estimators, ESTIMATORS, "estimator")
    reps = 100 if reps is None else reps
    out = _outputs(out, "fig1_mse.csv", "fig1_mse.png")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        click.echo(f"{name}: {reps} repetitions...", err=True)
        rows += ex.pointwise_mse(name, ests, blocks, reps, pairs, seed)
    new = append_rows(out / "fig1_mse.csv", rows, run_metadata(time.perf_counter() - t0))
    ex.plot_mse(rows, out / "fig1_mse.png")
    urn = new[new["estimator"] == "urn"].set_index(["dataset", "blocks"])["mse"]
    new["vs_urn"] = new["mse"].to_numpy() / urn.reindex(
        pd.MultiIndex.from_frame(new[["dataset", "blocks"]])).to_numpy()
    _echo_table(new[new["blocks"].isin([1, blocks])],
                ["dataset", "d", "estimator", "blocks", "mse", "mse_se", "vs_urn", "seconds"])
    click.echo(f"wrote {out / 'fig1_mse.csv'} and {out / 'fig1_mse.png'} "
               f"in {time.perf_counter() - t0:.1f} s")


@kernels.command()
@click.option("--datasets", default="all", show_default=True,
              help=f"comma-separated subset of {', '.join(DATASETS)}, or 'all'")
@_common
@click.option("--blocks", type=int, default=10, show_default=True, help="largest m / d")
@click.option("--points", type=click.IntRange(min=2), default=550, show_default=True,
              help="N points per dataset (all of them when fewer; at least 2)")
def gram(datasets, estimators, reps, seed, out, blocks, points):
    """Figure 2: relative Frobenius error of the kernel matrix, and time (default r = 10)."""
    from es_compact.experiments import kernels as ex

    names = _names(datasets, DATASETS, "dataset")
    ests = _names(estimators, ESTIMATORS, "estimator")
    reps = 10 if reps is None else reps
    out = _outputs(out, "fig2_gram.csv", "fig2_gram.png", "fig2_time.png")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        click.echo(f"{name}: {reps} repetitions...", err=True)
        rows += ex.gram_error(name, ests, blocks, reps, points, seed)
    new = append_rows(out / "fig2_gram.csv", rows, run_metadata(time.perf_counter() - t0))
    ex.plot_gram(rows, out / "fig2_gram.png")
    ex.plot_time(rows, out / "fig2_time.png")
    _echo_table(new[new["blocks"].isin([1, blocks])],
                ["dataset", "points", "d", "estimator", "blocks", "rel_err", "rel_err_se",
                 "draw_ms", "project_ms"])
    click.echo(f"wrote {out / 'fig2_gram.csv'}, {out / 'fig2_gram.png'} and "
               f"{out / 'fig2_time.png'} in {time.perf_counter() - t0:.1f} s")


@kernels.command()
@click.option("--datasets", default="wine,boston,g50", show_default=True,
              help=f"comma-separated subset of {', '.join(DATASETS)}, or 'all'")
@click.option("--reps", type=int, default=20000, show_default=True,
              help="independent one-block draws per setting")
@click.option("--pairs", type=COUNT, default=200, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", default="results", show_default=True)
def bias(datasets, reps, pairs, seed, out):
    """Bias² of kama against its rotations k (and of horn against its HD blocks) vs the MSE."""
    from es_compact.experiments import kernels as ex

    names = _names(datasets, DATASETS, "dataset")
    out = _outputs(out, "kernel_bias.csv", "kernel_bias.png")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        click.echo(f"{name}: {reps} draws per setting...", err=True)
        rows += ex.bias_vs_rotations(name, reps=reps, pairs=pairs, seed=seed)
    new = append_rows(out / "kernel_bias.csv", rows, run_metadata(time.perf_counter() - t0))
    ex.plot_bias(rows, out / "kernel_bias.png")
    _echo_table(new, ["dataset", "d", "estimator", "knob", "value", "bias2", "noise2", "mse",
                      "bias2_over_mse", "max_abs_z"])
    click.echo(f"wrote {out / 'kernel_bias.csv'} and {out / 'kernel_bias.png'} "
               f"in {time.perf_counter() - t0:.1f} s")


@bench.command()
@click.option("--out", default="results/bench_features.csv", show_default=True,
              help="CSV to append the rows to")
def features(out):
    """Microseconds to project points with urn, orn, horn and kama at d = 256, 1024, 4096."""
    from es_compact.bench import features as bf

    check_csv(out)
    click.echo("timing projections (best of 7 batches each)...", err=True)
    t0 = time.perf_counter()
    rows = bf.run()
    new = append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    _echo_table(new, ["d", "batch", "estimator", "us_per_batch", "us_per_point",
                      "speedup_vs_urn", "speedup_vs_orn", "draw_ms"])
    click.echo(f"appended {len(new)} rows to {out}")
