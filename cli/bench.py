"""`es-compact bench ...`: speed benchmarks that print ratios and append to results/*.csv."""

from __future__ import annotations

import time

import click
import pandas as pd

from es_compact.results import append_rows, run_metadata


@click.group()
def bench() -> None:
    """Speed benchmarks (measured side by side in one run; CSV under results/)."""


@bench.command()
@click.option("--quick", is_flag=True, help="smaller sizes, for a first look (d <= 1024)")
@click.option("--out", default="results/bench_forward.csv", show_default=True,
              help="CSV to append the rows to")
def forward(quick, out):
    """Microseconds per forward pass: every architecture at the default size, and one square
    layer (KAMA, DC) against a dense NumPy matvec at d = 64 ... 4096."""
    from es_compact.bench import forward as fwd

    click.echo("timing forward passes (best of 15 batches each)...", err=True)
    t0 = time.perf_counter()
    rows = fwd.run(quick=quick)
    new = append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    cols = [c for c in ("case", "arch", "d", "params", "us_per_call", "us_raw",
                        "dense_numpy_us", "speedup_vs_dense", "fraction_of_env_step", "seconds")
            if c in new]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo(new[cols].to_string(index=False, na_rep=""))
    click.echo(f"appended {len(new)} rows to {out}")
