"""`es-compact givens`: Givens coordinate descent on SO(d) on a benchmark with a known optimum."""

from __future__ import annotations

import time

import click

from es_compact.results import append_rows, check_csv, check_output_file, run_metadata
from es_compact_cli.options import SEED, refuse_ignored


@click.command()
@click.option("--problem", type=click.Choice(["procrustes", "brockett", "target"]),
              default="procrustes", show_default=True, help="benchmark cost")
# d = 1024 is already ~500k pairs per greedy step; far larger d cannot even hold the data.
@click.option("--dim", type=click.IntRange(max=1024), default=16, show_default=True,
              help="d of SO(d), at most 1024")
@click.option("--variant", type=click.Choice(["greedy", "random", "cyclic"]), default="greedy",
              show_default=True, help="pair selection: Algorithm 1 (greedy), random, cyclic")
@click.option("--max-steps", type=int, default=20000, show_default=True, help="step budget")
@click.option("--gain-tol", type=float, default=1e-13, show_default=True,
              help="stop when the gain is at most gain_tol (1 + |F|)")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="seed of the problem data and of the random variant")
@click.option("--lines", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="trace lines to print (log-spaced steps), 1 to 10000")
@click.option("--benchmark", is_flag=True,
              help="instead: run every problem and variant (d = 16) and greedy at d = 64, "
                   "append to results/givens_*.csv and draw results/givens.png")
@click.option("--full", is_flag=True, help="with --benchmark: let the d = 64 runs converge")
@click.option("--out-dir", default="results", show_default=True, help="with --benchmark")
@click.pass_context
def givens(ctx, problem, dim, variant, max_steps, gain_tol, seed, lines, benchmark, full, out_dir):
    """Minimise a benchmark cost over SO(d) by Givens steps M -> M G(I, J, Θ) and print the
    trace: objective, relative gap to the known optimum, Riemannian gradient norm."""
    import numpy as np

    from es_compact.experiments import givens as gx

    single = (not benchmark, "without --benchmark (which runs its own problems and sizes)")
    refuse_ignored(ctx, {"full": (benchmark, "with --benchmark"),
                         "out_dir": (benchmark, "with --benchmark"),
                         **{k: single for k in ("problem", "dim", "variant", "max_steps",
                                                "gain_tol", "lines")}})
    if benchmark:
        # Checked before the benchmarks (minutes): a bad --out-dir fails at once.
        for kind in ("trace", "summary", "timing"):
            check_csv(f"{out_dir}/givens_{kind}.csv")
        check_output_file(f"{out_dir}/givens.png")
        t0 = time.perf_counter()
        out = gx.run_benchmarks(quick=not full, seed=seed,
                                log=lambda s: click.echo(s, err=True))
        meta = run_metadata(time.perf_counter() - t0)
        for kind, rows in out.items():
            path = f"{out_dir}/givens_{kind}.csv"
            append_rows(path, rows, meta)
            click.echo(f"appended {len(rows)} rows to {path}")
        gx.plot(out["trace"], f"{out_dir}/givens.png")
        click.echo(f"wrote {out_dir}/givens.png")
        return
    prob = gx.make_problem(problem, dim, seed)
    res, wall = gx.solve(prob, variant, max_steps, seed, gain_tol)
    click.echo(f"{problem}, d = {dim}, {variant}: F(I) = {prob.start_value:.10g}, "
               f"optimum F* = {prob.optimum:.10g}")
    click.echo(f"{'step':>8} {'F(M)':>20} {'rel gap':>10} {'|grad F|':>10}")
    gap = prob.rel_gap(res.objective)
    for t in gx.thin_steps(res.iterations, lines):
        g = res.grad_norm_sq[t] if t < res.iterations else np.nan
        gtxt = f"{np.sqrt(g):10.3e}" if np.isfinite(g) else f"{'-':>10}"
        click.echo(f"{t:8d} {res.objective[t]:20.12g} {gap[t]:10.3e} {gtxt}")
    err = prob.rel_gap(prob.objective(res.M))
    click.echo(f"stopped by {res.stop_reason} after {res.iterations} steps "
               f"({len(res.steps)} rotations) in {wall:.2f} s "
               f"({1e3 * wall / max(res.iterations, 1):.3f} ms/step); "
               f"relative error {err:.3e}")
