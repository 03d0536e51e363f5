"""`es-compact bench ...`: speed benchmarks that print ratios and append to results/*.csv."""

from __future__ import annotations

import time

import click
import pandas as pd

from es_compact.results import append_rows, check_csv, run_metadata
from es_compact_cli.options import COUNT, refuse_ignored


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

    check_csv(out)  # before the timings, so a bad --out costs nothing
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


@bench.command()
@click.option("--env", "env_id", default="HalfCheetah-v4", show_default=True)
@click.option("--arch", default="kama", show_default=True)
@click.option("--workers", type=COUNT, default=2, show_default=True)
@click.option("--backend", type=click.Choice(["mp", "ray"]), default="mp", show_default=True)
@click.option("--iterations", type=int, default=6, show_default=True,
              help="timed iterations + 1 warm-up (at least 6)")
@click.option("--directions", type=COUNT, help="antithetic directions per iteration [preset]")
@click.option("--memory-table", type=click.IntRange(min=0), default=0, show_default=True,
              help="also measure driver+worker memory (PSS) with a noise table of this many "
                   "float32 entries (at least 1000; 0: off) for 1 and --memory-workers "
                   "workers (e.g. 100000000)")
@click.option("--memory-workers", type=COUNT, default=4, show_default=True)
@click.option("--out", default="results/bench_throughput.csv", show_default=True)
@click.pass_context
def throughput(ctx, env_id, arch, workers, backend, iterations, directions, memory_table,
               memory_workers, out):
    """Training env-steps/s against the raw gymnasium step rate, measured in one run:
    efficiency = training rate / (workers x single-process rate)."""
    from es_compact.bench import throughput as tp
    from es_compact.config import PolicyConfig
    from es_compact.errors import ConfigError
    from es_compact.policies import ARCHITECTURES

    # Everything is checked before the measurements, which take minutes: a bad value found
    # after them would throw them away.
    if iterations < 6:
        raise ConfigError("--iterations must be at least 6 (one warm-up + five timed)")
    refuse_ignored(ctx, {"memory_workers": (memory_table > 0, "with --memory-table")})
    if 0 < memory_table < 1000:
        raise ConfigError(f"--memory-table must be 0 (off) or at least 1000 entries, got "
                          f"{memory_table}")
    PolicyConfig(arch=arch).validate(tuple(ARCHITECTURES))
    check_csv(out)
    t0 = time.perf_counter()
    click.echo(f"(a) single-process gymnasium step rate of {env_id}, zero actions...", err=True)
    a_before = tp.gym_step_rate(env_id)
    click.echo("(s) serial training rate (policy, noise, normalisation in one process)...",
               err=True)
    s = tp.training_rate(env_id, arch, "serial", 1, iterations, directions)
    click.echo(f"(b) {backend} training rate with {workers} workers, (a) sampled between its "
               "iterations...", err=True)
    # The machine's speed drifts by tens of percent between minutes: (a) is sampled before,
    # between the iterations of (b) (while its workers wait) and after it, and (b) is set
    # against the mean of those samples.
    probe = tp.GymProbe(env_id)
    try:
        b = tp.training_rate(env_id, arch, backend, workers, iterations, directions,
                             probe=probe)
    finally:
        probe.close()
    a_after = tp.gym_step_rate(env_id)
    samples = [a_before, *probe.rates, a_after]
    a = sum(samples) / len(samples)
    eff = b["steps_per_s"] / (workers * a)
    click.echo(f"(c) gymnasium in {workers} processes at once (the machine's parallel "
               "capacity)...", err=True)
    c = tp.concurrent_gym_rate(env_id, workers)
    row = {"case": "throughput", "env": env_id, "arch": arch, "backend": backend,
           "workers": workers, "directions": b["directions"], "num_params": b["num_params"],
           "iterations_timed": b["iterations_timed"], "gym_steps_per_s": round(a, 1),
           "gym_after_vs_before": round(a_after / a_before, 3),
           "gym_samples_min_max": f"{min(samples):.0f}-{max(samples):.0f}",
           "serial_train_steps_per_s": round(s["steps_per_s"], 1),
           "train_steps_per_s": round(b["steps_per_s"], 1), "efficiency": round(eff, 3),
           "concurrent_gym_steps_per_s": round(c, 1),
           "concurrent_vs_workers_x_a": round(c / (workers * a), 3),
           "train_vs_concurrent": round(b["steps_per_s"] / c, 3),
           "serial_vs_gym": round(s["steps_per_s"] / a, 3),
           "rollout_overhead": round(b["rollout_overhead"], 4),
           "non_env_share": round(b["non_env_share"], 4),
           "task_overhead_share": round(b["task_overhead_share"], 4),
           "messaging_share": round(b["messaging_share"], 4),
           "bytes_sent_per_iteration": b["bytes_sent_per_iteration"]}
    rows = [row]
    if memory_table:
        click.echo(f"memory: noise table of {memory_table:,} entries, 1 and {memory_workers} "
                   "workers...", err=True)
        rows += tp.memory_rows(env_id, memory_table, (1, memory_workers))
    append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    click.echo(f"(a) gymnasium, 1 process:   {a:10,.0f} steps/s  (mean of {len(samples)} "
               f"samples, {min(samples):,.0f} to {max(samples):,.0f}; {a_before:,.0f} before "
               f"and {a_after:,.0f} after (b))")
    click.echo(f"(s) serial training:        {s['steps_per_s']:10,.0f} steps/s  "
               f"({row['serial_vs_gym']:.2f} x (a); rollouts step the bare env, see fast_envs)")
    click.echo(f"(b) {backend}, {workers} workers:       {b['steps_per_s']:10,.0f} steps/s")
    click.echo(f"efficiency (b) / ({workers} x (a)) = {eff:.3f}")
    click.echo(f"(c) gymnasium, {workers} processes at once: {c:,.0f} steps/s = "
               f"{c / (workers * a):.2f} x ({workers} x (a)); (b) / (c) = "
               f"{b['steps_per_s'] / c:.3f} (training against the machine's own parallel "
               "step rate)")
    click.echo(f"inside the workers, policy + noise + normalisation + loop: "
               f"{100 * b['rollout_overhead']:.1f}% of task time")
    click.echo(f"of all worker-time, not in the environment: {100 * b['non_env_share']:.1f}% = "
               f"{100 * b['task_overhead_share']:.1f}% in tasks (as above) + "
               f"{100 * b['messaging_share']:.1f}% messaging + "
               f"{100 * (b['non_env_share'] - b['task_overhead_share'] - b['messaging_share']):.1f}"
               "% driver and idle workers (waiting for the iteration's last task)")
    if b["bytes_sent_per_iteration"] == b["bytes_sent_per_iteration"]:
        click.echo(f"bytes sent per iteration: {b['bytes_sent_per_iteration']:,.0f} "
                   f"(θ has {b['num_params']} float64 = {8 * b['num_params']:,} bytes)")
    for m in rows[1:]:
        click.echo(f"memory, {m['workers']} worker(s): driver + workers PSS "
                   f"{m['pss_total_mib']:,.1f} MiB, of which the shared noise table "
                   f"{m['pss_table_mib']:,.1f} MiB (one table is {m['table_mib']:,.1f} MiB)")
    if len(rows) == 3:
        d_total = rows[2]["pss_total_mib"] - rows[1]["pss_total_mib"]
        d_table = rows[2]["pss_table_mib"] - rows[1]["pss_table_mib"]
        click.echo(f"going from 1 to {memory_workers} workers adds {d_total:,.1f} MiB in total "
                   f"({d_table:,.1f} MiB of it table; the rest is each worker's own Python, "
                   "numba and MuJoCo)")
    click.echo(f"appended {len(rows)} rows to {out}")


@bench.command()
@click.option("--env", "env_id", default="InvertedDoublePendulum-v4", show_default=True)
@click.option("--arch", default="dense", show_default=True)
@click.option("--iterations", type=int, default=300, show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True,
              help="each round trains both schedules, in alternating order")
@click.option("--every", type=float, default=30.0, show_default=True,
              help="the interval (seconds) set against writing after every iteration")
@click.option("--out", default="results/bench_checkpoint.csv", show_default=True)
def checkpoint(env_id, arch, iterations, rounds, every, out):
    """Training time per iteration with checkpoints/latest written after every iteration
    against every --every seconds (serial backend, same run, θ compared)."""
    from es_compact.bench import checkpointing
    from es_compact.errors import ConfigError

    if iterations < 1 or rounds < 1 or not every > 0:
        raise ConfigError("--iterations and --rounds must be at least 1 and --every positive")
    check_csv(out)
    t0 = time.perf_counter()
    row = checkpointing.run(env_id, arch, iterations, rounds, every,
                            log=lambda s: click.echo(s, err=True))
    append_rows(out, [row], run_metadata(time.perf_counter() - t0))
    click.echo(f"{env_id} {arch}, {iterations} iterations x {rounds} rounds (median): "
               f"{row['ms_per_iteration_every_iteration']:.1f} ms per iteration writing latest "
               f"after each, {row['ms_per_iteration_interval']:.1f} ms writing it every "
               f"{every:g} s: {row['speedup']:.2f}x (rounds: {row['speedup_per_round']}); "
               f"same θ: {row['same_theta']}")
    click.echo(f"appended 1 row to {out}")
