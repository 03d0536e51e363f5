"""`es-compact bench ...`: speed benchmarks that print ratios and append to results/*.csv."""

from __future__ import annotations

import time

import click

from es_compact.config import ALGOS, RunConfig
from es_compact.results import append_rows, check_csv, run_metadata
from es_compact.settings import field_default
from es_compact_cli.options import COUNT, config_option, given, refuse_ignored


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
    import pandas as pd  # here, so that `es-compact --help` does not pay for it

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo(new[cols].to_string(index=False, na_rep=""))
    click.echo(f"appended {len(new)} rows to {out}")


def _step_gain(env_id: str, rounds: int, out: str) -> None:
    from es_compact.bench import steps

    check_csv(out)
    t0 = time.perf_counter()
    names = ", ".join(steps.versions(env_id))
    click.echo(f"timing gymnasium's step and the rollouts' step for {names}, {rounds} rounds...",
               err=True)
    rows = steps.step_gain(env_id, rounds=rounds)
    append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    click.echo(f"{'env':<18} {'gymnasium':>10} {'bare env':>10} {'rollouts':>10} "
               f"{'gain':>6} {'(min-max)':>12}")
    for r in rows:
        click.echo(f"{r['env']:<18} {r['gym_steps_per_s']:>10,.0f} {r['bare_steps_per_s']:>10,.0f} "
                   f"{r['fast_steps_per_s']:>10,.0f} {r['fast_vs_gym']:>5.2f}x "
                   f"{r['fast_vs_gym_min_max']:>12}"
                   + ("" if r["fast_step"] else "  (no fast step: the bare env's own)"))
    if len(rows) == 2:
        v5 = rows[1]
        click.echo(f"{v5['env']} in training: {v5['v5_fast_vs_v4_fast']:.2f} x {rows[0]['env']}'s "
                   f"rollout step rate, {v5['v5_fast_vs_v4_gym']:.2f} x its gymnasium step rate")
    click.echo(f"appended {len(rows)} rows to {out} (steps/s, medians over rounds; gain: "
               "rollouts / gymnasium)")


@bench.command()
@config_option("env", "id", "--env", "env_id")
@config_option("policy", "arch")
@click.option("--workers", type=COUNT, default=2, show_default=True)
@config_option("run", "backend", type=click.Choice(["mp", "ray"]),
               help="mp: worker processes; ray: actors")
@click.option("--iterations", type=int, default=6, show_default=True,
              help="timed iterations + 1 warm-up (at least 6)")
@click.option("--directions", type=COUNT, help="antithetic directions per iteration [preset]")
@click.option("--memory-table", type=click.IntRange(min=0), default=0, show_default=True,
              help="also measure driver+worker memory (PSS) with a noise table of this many "
                   "float32 entries (at least 1000; 0: off) for 1 and --memory-workers "
                   "workers (e.g. 100000000)")
@click.option("--memory-workers", type=COUNT, default=4, show_default=True)
@click.option("--algo", "algos", multiple=True, type=click.Choice([*ALGOS, "all"]),
              help="compare these strategies' efficiency with ARS's, side by side in one "
                   "run (repeatable; 'all': every built-in one)")
@click.option("--rounds", type=COUNT, default=2, show_default=True,
              help="with --algo: rounds of ARS and each strategy in turn; with --step-gain: "
                   "rounds of the step functions in turn (default 7)")
@click.option("--step-gain", is_flag=True,
              help="instead: gymnasium's step against the rollouts' (fast) step for the "
                   "env's v4 and v5 versions, side by side")
@click.option("--out", default="results/bench_throughput.csv", show_default=True)
@click.pass_context
def throughput(ctx, env_id, arch, workers, backend, iterations, directions, memory_table,
               memory_workers, algos, rounds, step_gain, out):
    """Training env-steps/s against the raw gymnasium step rate, measured in one run:
    efficiency = training rate / (workers x single-process rate). With --algo, each
    strategy's efficiency against ARS's, its bytes per iteration and the driver's share of
    time in the strategy."""
    from es_compact.bench import throughput as tp
    from es_compact.config import PolicyConfig
    from es_compact.errors import ConfigError
    from es_compact.policies import ARCHITECTURES
    from es_compact.presets import resolve

    # Everything is checked before the measurements, which take minutes: a bad value found
    # after them would throw them away.
    if iterations < 6:
        raise ConfigError("--iterations must be at least 6 (one warm-up + five timed)")
    refuse_ignored(ctx, {"memory_workers": (memory_table > 0, "with --memory-table"),
                         "rounds": (bool(algos) or step_gain, "with --algo or --step-gain")})
    if step_gain:
        refuse_ignored(ctx, {k: (False, "without --step-gain") for k in
                             ("arch", "workers", "backend", "iterations", "directions",
                              "memory_table", "algos")})
        _step_gain(env_id, rounds if given(ctx, "rounds") else 7, out)
        return
    if algos and memory_table:
        raise ConfigError("--memory-table and --algo are separate measurements; run them "
                          "one at a time")
    if 0 < memory_table < 1000:
        raise ConfigError(f"--memory-table must be 0 (off) or at least 1000 entries, got "
                          f"{memory_table}")
    PolicyConfig(arch=arch).validate(tuple(ARCHITECTURES))
    check_csv(out)
    t0 = time.perf_counter()
    if algos:
        names = list(ALGOS) if "all" in algos else list(dict.fromkeys(algos))
        for algo in names:  # each strategy's settings resolve before minutes are spent
            resolve(tp._config(env_id, arch, backend, workers, iterations, directions,
                               RunConfig.noise_table_size, algo=algo))
        rows = tp.compare_strategies(env_id, arch, backend, workers, names, iterations,
                                     directions, rounds,
                                     log=lambda text: click.echo(text, err=True))
        append_rows(out, rows, run_metadata(time.perf_counter() - t0))
        click.echo(f"{'algo':<9} {'steps/s':>9} {'efficiency':>10} {'vs ARS':>7} "
                   f"{'(min-max)':>12} {'strategy':>8} {'sent/it':>10} {'received/it':>11}")
        for r in rows:
            click.echo(f"{r['algo']:<9} {r['train_steps_per_s']:>9,.0f} "
                       f"{r['efficiency']:>10.3f} {r['efficiency_vs_ars']:>7.3f} "
                       f"{r['efficiency_vs_ars_min_max']:>12} "
                       f"{r['strategy_share']:>8.2%} {r['bytes_sent_per_iteration']:>10,.0f} "
                       f"{r['bytes_received_per_iteration']:>11,.0f}")
        click.echo(f"appended {len(rows)} rows to {out} (strategy: the driver's share of wall "
                   "time in ask and tell; sent/received: bytes per iteration)")
        return
    m = tp.measure(env_id, arch, backend, workers, iterations, directions, memory_table,
                   memory_workers, log=lambda text: click.echo(text, err=True))
    rows = m.rows()
    append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    b, s, samples = m.parallel, m.serial, m.gym_samples
    click.echo(f"(a) gymnasium, 1 process:   {m.gym:10,.0f} steps/s  (mean of {len(samples)} "
               f"samples, {min(samples):,.0f} to {max(samples):,.0f}; {m.gym_before:,.0f} "
               f"before and {m.gym_after:,.0f} after (b))")
    click.echo(f"(s) serial training:        {s['steps_per_s']:10,.0f} steps/s  "
               f"({rows[0]['serial_vs_gym']:.2f} x (a); rollouts step the bare env, see "
               "fast_envs)")
    click.echo(f"(b) {backend}, {workers} workers:       {b['steps_per_s']:10,.0f} steps/s")
    click.echo(f"efficiency (b) / ({workers} x (a)) = {m.efficiency:.3f}")
    click.echo(f"(c) gymnasium, {workers} processes at once: {m.concurrent:,.0f} steps/s = "
               f"{m.concurrent_vs_workers_x_gym:.2f} x ({workers} x (a)); (b) / (c) = "
               f"{m.train_vs_concurrent:.3f} (training against the machine's own parallel "
               "step rate)")
    click.echo(f"inside the workers, policy + noise + normalisation + loop: "
               f"{b['rollout_overhead']:.1%} of task time")
    click.echo(f"of all worker-time, not in the environment: {b['non_env_share']:.1%} = "
               f"{b['task_overhead_share']:.1%} in tasks (as above) + "
               f"{b['messaging_share']:.1%} messaging + {m.driver_and_idle_share:.1%} driver "
               "and idle workers (waiting for the iteration's last task)")
    if b["bytes_sent_per_iteration"] == b["bytes_sent_per_iteration"]:  # not nan
        click.echo(f"bytes sent per iteration: {b['bytes_sent_per_iteration']:,.0f} "
                   f"(θ has {b['num_params']} float64 = {m.theta_bytes:,} bytes)")
    for r in m.memory:
        click.echo(f"memory, {r['workers']} worker(s): driver + workers PSS "
                   f"{r['pss_total_mib']:,.1f} MiB, of which the shared noise table "
                   f"{r['pss_table_mib']:,.1f} MiB (one table is {r['table_mib']:,.1f} MiB)")
    if m.memory_added is not None:
        d_total, d_table = m.memory_added
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
@click.option("--every", type=float, default=field_default("run", "checkpoint_every_s"),
              show_default=True,
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


@bench.command()
@click.option("--rounds", type=COUNT, default=20, show_default=True,
              help="timed rounds, after one warm-up; each runs every command once")
@click.option("--executable", type=click.Path(exists=True, dir_okay=False),
              help="the es-compact to time [the one installed beside this Python]")
@click.option("--label", default="", help="a word stored in every row (e.g. before, after)")
@click.option("--out", default="results/bench_startup.csv", show_default=True)
def startup(rounds, executable, label, out):
    """Seconds until `es-compact --help` and `es-compact train --help` have printed, each a
    fresh process, against `python -c pass`: medians over interleaved rounds, wall and CPU."""
    from es_compact.bench import startup as st

    check_csv(out)
    t0 = time.perf_counter()
    rows = st.run(rounds, executable, label, log=lambda text: click.echo(text, err=True))
    append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    click.echo(f"measured at load {rows[0]['load_1min_start']:.2f}-"
               f"{rows[0]['load_1min_end']:.2f} (1-minute average, start-end), "
               f"median of {rounds} rounds:")
    click.echo(f"{'timed':<24} {'wall s':>7} {'x python':>8} {'beyond':>7} "
               f"{'cpu s':>7} {'x python':>8} {'beyond':>7}")
    for r in rows:
        click.echo(f"{r['timed']:<24} {r['wall_s']:>7.3f} {r['wall_vs_python']:>8.2f} "
                   f"{r['wall_beyond_python_s']:>7.3f} {r['cpu_s']:>7.3f} "
                   f"{r['cpu_vs_python']:>8.2f} {r['cpu_beyond_python_s']:>7.3f}")
    click.echo(f"appended {len(rows)} rows to {out}")


def _counts(text: str, flag: str) -> list[int]:
    """'2,4,8' -> [2, 4, 8]: positive integers, each once."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        from es_compact.errors import ConfigError

        raise ConfigError(f"{flag} takes a comma-separated list of positive integers, got "
                          f"{text!r}")
    return sorted(set(values))


@bench.command()
@click.option("--backend", "backends", multiple=True, type=click.Choice(["mp", "ray", "ray-hier"]),
              help="repeatable; ray-hier: Ray with --actor-workers (hierarchical dispatch)  "
                   "[default: mp and ray]")
@click.option("--workers", default="2,4,8,16,32,64", show_default=True,
              help="worker counts (comma-separated)")
@click.option("--actor-workers", "actor_workers", default="4,8", show_default=True,
              help="with --backend ray-hier: workers per actor G (comma-separated); each G "
                   "is measured with the --workers that are multiples of it (two actors at "
                   "least)")
@click.option("--directions", default="8,64,230,1000", show_default=True,
              help="directions N per iteration (comma-separated)")
@click.option("--shape", "shapes", multiple=True, type=click.Choice(["humanoid", "halfcheetah"]),
              help="the stand-in's spaces (repeatable)  [default: both]")
@click.option("--episode-ms", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True, help="the stand-in's episode: a sleep of this many ms")
@click.option("--iterations", type=COUNT, default=3, show_default=True,
              help="timed iterations per point, after one warm-up (the median is kept)")
@click.option("--limit-directions", default="230,1000", show_default=True,
              help="N for which the worker limits are extrapolated (comma-separated)")
@click.option("--episode-steps", type=COUNT, default=1000, show_default=True,
              help="at least this many steps of each real environment are timed (whole "
                   "episodes; the cost per step is scaled to a 1000-step episode)")
@click.option("--label", default="", help="a word stored in every row (e.g. before, after)")
@click.option("--refit", metavar="LABEL",
              help="measure nothing: extrapolate the points labelled LABEL in --out anew")
@click.option("--episodes-of", metavar="LABEL",
              help="with --refit: with the episode costs of the run labelled LABEL  "
                   "[LABEL of --refit]")
@click.option("--out", default="results/bench_driver.csv", show_default=True)
@click.pass_context
def driver(ctx, backends, workers, actor_workers, directions, shapes, episode_ms, iterations,
           limit_directions, episode_steps, label, refit, episodes_of, out):
    """The driver's time per iteration (ask, dispatch, gather, merge, tell) with rollouts that
    cost a sleep, for mp and Ray from 2 workers up and N from 8 to 1000; bytes per iteration;
    and from linear fits of these, the worker count at which the driver would take more than
    5 % of an iteration with HalfCheetah's and Humanoid's measured episode costs."""
    from es_compact.bench import driver as drv

    measuring = refit is None
    refuse_ignored(ctx, {**{name: (measuring, "when measuring, not with --refit") for name in
                            ("backends", "workers", "directions", "shapes", "episode_ms",
                             "iterations", "episode_steps", "label")},
                         "actor_workers": ("ray-hier" in backends and measuring,
                                           "with --backend ray-hier"),
                         "episodes_of": (not measuring, "with --refit")})
    if not measuring:
        _refit(out, refit, episodes_of or refit, _counts(limit_directions, "--limit-directions"))
        return
    # Checked before the measurements, which take many minutes.
    workers_list = _counts(workers, "--workers")
    groups = _counts(actor_workers, "--actor-workers")
    directions_list = _counts(directions, "--directions")
    limit_list = _counts(limit_directions, "--limit-directions")
    backends = list(dict.fromkeys(backends)) or ["mp", "ray"]
    shapes = list(dict.fromkeys(shapes)) or ["humanoid", "halfcheetah"]
    if "ray-hier" in backends and not any(w % g == 0 and w > g for g in groups
                                          for w in workers_list):
        from es_compact.errors import ConfigError

        raise ConfigError("--backend ray-hier needs a --workers count that is a multiple of, "
                          "and larger than, one of --actor-workers")
    if "ray" in backends or "ray-hier" in backends:
        from es_compact.backends.ray_backend import _import_ray

        _import_ray()
    check_csv(out)
    t0 = time.perf_counter()
    rows = drv.run(shapes, backends, workers_list, directions_list, episode_ms / 1e3,
                   iterations, limit_list, episode_steps, label,
                   log=lambda text: click.echo(text, err=True), actor_workers=groups)
    append_rows(out, rows, run_metadata(time.perf_counter() - t0))
    points = [r for r in rows if r["case"] == "point"]
    click.echo(f"measured at load {rows[0]['load_1min_start']:.2f}-"
               f"{rows[0]['load_1min_end']:.2f} (1-minute average, start-end), "
               f"{episode_ms:g} ms episodes")
    for r in rows:
        if r["case"] == "episode":
            click.echo(f"{r['env']}: {r['step_us']:.1f} us per step, a 1000-step episode "
                       f"{r['episode_s'] * 1e3:.0f} ms (timed over {r['steps_timed']} steps, "
                       f"{r['episodes']} episode(s))")
    click.echo("driver CPU time per iteration by phase (ms; bg: Ray's own threads), the "
               "driver's wall time, the iteration's, and bytes per iteration:")
    click.echo(f"{'shape':<11} {'backend':<8} {'W':>3} {'G':>3} {'N':>5} " + " ".join(
        f"{p[:8]:>8}" for p in drv.PHASES) + f" {'bg':>6} {'cpu':>8} {'wall':>8} {'iter':>8} "
        f"{'sent':>10} {'received':>10}")
    for r in points:
        click.echo(f"{r['shape']:<11} {r['backend']:<8} {r['workers']:>3} "
                   f"{r['actor_workers']:>3} {r['directions']:>5} "
                   + " ".join(f"{r[p + '_cpu_ms']:>8.2f}" for p in drv.PHASES)
                   + f" {r['background_cpu_ms']:>6.2f} {r['driver_cpu_ms']:>8.2f} "
                   f"{r['driver_ms']:>8.2f} {r['iteration_ms']:>8.1f} "
                   f"{r['bytes_sent']:>10,} {r['bytes_received']:>10,}")
    limits = [r for r in rows if r["case"] == "limit"]
    if not limits:
        click.echo("no worker limits: extrapolating needs at least two worker counts and two "
                   "values of N")
    _echo_limits(limits)
    click.echo(f"appended {len(rows)} rows to {out}")


def _refit(out: str, points_label: str, episodes_label: str, limit_directions) -> None:
    import pandas as pd

    from es_compact.bench import driver as drv
    from es_compact.errors import ConfigError

    check_csv(out)
    try:
        stored = pd.read_csv(out).to_dict("records")
    except FileNotFoundError:
        raise ConfigError(f"--refit reads {out}, which does not exist") from None
    rows = drv.refit_rows(stored, points_label, episodes_label, limit_directions)
    append_rows(out, rows, run_metadata())
    _echo_limits(rows)
    click.echo(f"appended {len(rows)} rows to {out}")


def _echo_limits(limits) -> None:
    for r in limits:
        g = r.get("actor_workers")
        name = f"{r['backend']} G={int(g)}" if r["backend"] == "ray-hier" else r["backend"]
        click.echo(f"{name:<13} {r['env']:<15} N={r['directions']:<5} "
                   f"E={r['episode_s']:.3f} s: driver > 5 % of an iteration from "
                   f"{r['workers_at_5pct']} workers; at 512: {r['share_at_512']:.1%} "
                   f"({r['driver_ms_at_512']:.1f} ms CPU)")
