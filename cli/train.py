"""`es-compact train`: build a TrainConfig from defaults < --config FILE.toml < flags, and run it.

Only flags given on the command line override the file (and, with --resume, the stored
config.json); a resumed run may change its budget and workers, nothing that shapes θ, and
takes neither --config nor another --out.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shlex
import sys

import click

from es_compact.config import ALGOS, ARS_VARIANTS, BACKENDS, EXPLORATION, OPTIMIZERS, TrainConfig
from es_compact.errors import ConfigError
from es_compact_cli.options import (
    SEED,
    given,
    parse_rotations,
    policy_applies,
    policy_options,
    refuse_ignored,
)

# CLI parameter -> (config section, field).
FIELDS = {
    "env_id": ("env", "id"), "reward_shift": ("env", "reward_shift"),
    "max_episode_steps": ("env", "max_episode_steps"),
    "arch": ("policy", "arch"), "hidden": ("policy", "hidden"),
    "hidden_layers": ("policy", "hidden_layers"), "rotations": ("policy", "rotations"),
    "depth": ("policy", "depth"), "nonlin_every": ("policy", "nonlin_every"),
    "slope": ("policy", "slope"), "dcnn_init": ("policy", "dcnn_init"),
    "squash": ("policy", "squash"),
    "algo": ("strategy", "algo"), "variant": ("strategy", "variant"),
    "step_size": ("strategy", "step_size"), "directions": ("strategy", "directions"),
    "top": ("strategy", "top"), "noise_std": ("strategy", "noise_std"),
    "exploration": ("strategy", "exploration"), "optimizer": ("strategy", "optimizer"),
    "l2_coeff": ("strategy", "l2_coeff"),
    "seed": ("run", "seed"), "iterations": ("run", "iterations"),
    "target_return": ("run", "target_return"),
    "timesteps": ("run", "timesteps"), "time_limit": ("run", "time_limit"),
    "eval_every": ("run", "eval_every"), "eval_episodes": ("run", "eval_episodes"),
    "workers": ("run", "workers"), "backend": ("run", "backend"),
    "ray_address": ("run", "ray_address"), "ray_dashboard": ("run", "ray_dashboard"),
    "noise_table_size": ("run", "noise_table_size"),
    "max_failed_fraction": ("run", "max_failed_fraction"),
    "checkpoint_every": ("run", "checkpoint_every_s"),
}
BUDGET = ("iterations", "timesteps", "time_limit")


def read_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:  # TOML is UTF-8 by definition (a UTF-16 file from an editor)
        raise ConfigError(f"config file {path} is not UTF-8 text, which TOML requires") from None


def build_config(ctx: click.Context, kw: dict, base: dict | None,
                 source: str | None = None) -> TrainConfig:
    """base (a TOML file's tables or a stored config.json) overridden by the flags given;
    source names the file in an error about its structure."""
    if base is not None:
        try:  # tables and setting names only; the values are validated once flags are in
            TrainConfig.from_dict(base)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
    data = {s: dict(v) for s, v in (base or {}).items()}
    flags = {k for k in FIELDS if k in kw and given(ctx, k)}
    if flags & set(BUDGET):  # a new budget replaces the whole old one
        run = data.setdefault("run", {})
        for b in BUDGET:
            run[b] = None
    for key in flags:
        section, name = FIELDS[key]
        value = kw[key]
        if key == "rotations":
            value = parse_rotations(value)
        data.setdefault(section, {})[name] = value
    run = data.setdefault("run", {})
    if all(run.get(b) is None for b in BUDGET):
        run["iterations"] = 100
    return TrainConfig.from_dict(data)


def fmt_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    return str(_dt.timedelta(seconds=int(seconds)))


def progress_line(row: dict, info: dict) -> str:
    ev = info["last_eval"]
    return (f"it {row['iteration']:>4} | steps {row['timesteps']:>10,} | train "
            f"{row['train_return_mean']:9.1f} (max {row['train_return_max']:9.1f}) | eval "
            f"{'       -' if math.isnan(ev) else f'{ev:9.1f}'} | "
            f"{row['steps_per_s']:>8,.0f} steps/s | {fmt_duration(info['elapsed_s'])} elapsed"
            f" | ~{fmt_duration(info['remaining_s'])} left"
            + (f" | {row['failed_rollouts']} failed" if row["failed_rollouts"] else ""))


@click.command()
@click.option("--env", "env_id", default="HalfCheetah-v4", show_default=True,
              help="gymnasium id, or module:Class of your own gymnasium.Env")
@policy_options
@click.option("--algo", type=click.Choice(ALGOS), default="ars", show_default=True)
@click.option("--variant", type=click.Choice(ARS_VARIANTS), default="v2t", show_default=True,
              help="ARS variant")
@click.option("--step-size", type=float, help="α (ARS) or learning rate (ES) [preset]")
@click.option("--directions", type=int, help="antithetic directions N per iteration [preset]")
@click.option("--top", type=int, help="ARS top-b directions [preset]")
@click.option("--noise-std", type=float, help="exploration noise ν [preset]")
@click.option("--exploration", type=click.Choice(EXPLORATION), default="gaussian",
              show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="ES optimiser")
@click.option("--l2-coeff", type=float, default=0.005, show_default=True, help="ES L2 decay")
@click.option("--reward-shift", type=float, help="subtracted per training step [preset]")
@click.option("--max-episode-steps", type=int, help="episode limit [env spec]")
@click.option("--iterations", type=int, help="budget: iterations (default 100 if no budget)")
@click.option("--timesteps", type=int, help="budget: training environment steps")
@click.option("--time-limit", type=float, help="budget: seconds of wall time")
@click.option("--target-return", type=float, help="stop once an evaluation reaches this")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--eval-every", type=int, default=10, show_default=True)
@click.option("--eval-episodes", type=int, default=5, show_default=True)
@click.option("--workers", type=int, help="rollout workers [one per CPU core]")
@click.option("--backend", type=click.Choice(BACKENDS), default="mp", show_default=True,
              help="mp: worker processes; ray: actors (local or --ray-address); serial: debug")
@click.option("--ray-address", help="Ray: auto or HOST:PORT of an existing cluster")
@click.option("--ray-dashboard", is_flag=True,
              help="Ray: start the local Ray with its dashboard (off by default)")
@click.option("--noise-table-size", type=int, default=25_000_000, show_default=True)
@click.option("--max-failed-fraction", type=float, default=0.5, show_default=True)
@click.option("--checkpoint-every", type=float, default=30.0, show_default=True,
              help="seconds between checkpoints/latest writes (0: every iteration); Ctrl-C "
                   "and errors still write the last finished iteration")
@click.option("--out", type=click.Path(file_okay=False), help="run directory "
              "[runs/ENV_ARCH_seedSEED]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file with [env], [policy], [strategy], [run] tables")
@click.option("--resume", type=click.Path(file_okay=False), help="continue this run directory")
@click.option("--overwrite", is_flag=True, help="replace a run already in --out")
@click.option("--quiet", is_flag=True, help="no progress lines")
@click.option("--no-plot", is_flag=True, help="skip plot.png at the end")
@click.pass_context
def train(ctx, out, config_file, resume, overwrite, quiet, no_plot, **kw):
    """Train a compact policy with ARS or OpenAI-ES.

    Writes config.json, progress.csv, checkpoints/{latest,best}.{npz,json} and plot.png into
    the run directory. Ctrl-C stops after writing a checkpoint; --resume continues exactly.
    """
    from es_compact.run_dir import RunDir, default_path, target
    from es_compact.trainer import Trainer, TrainingError

    where = target(out=out, resume=resume, overwrite=overwrite, config_file=config_file)
    base = (where.stored.to_dict() if where.stored is not None else
            read_toml(config_file) if config_file else None)
    config = build_config(ctx, kw, base, source=None if resume else
                          f"config file {config_file}")
    run_dir = where.path or default_path(config)
    mode = where.mode
    trainer = Trainer(config, run_dir, mode=mode)
    trainer.check()  # a mistyped env or an unusable --out fails before the banner, writing nothing
    c = trainer.config
    s, r = c.strategy, c.run
    refuse_ignored(ctx, {**policy_applies(c.policy, trainer.policy.action.discrete),
                         "variant": (s.algo == "ars", "with --algo ars"),
                         "optimizer": (s.algo == "es", "with --algo es"),
                         "l2_coeff": (s.algo == "es", "with --algo es"),
                         "workers": (r.backend != "serial" or r.workers == 1,
                                     "with --backend mp or ray (serial runs one)"),
                         "ray_address": (r.backend == "ray", "with --backend ray"),
                         "ray_dashboard": (r.backend == "ray" and r.ray_address is None,
                                           "with --backend ray when it starts Ray itself "
                                           "(no --ray-address)")})
    cpus = os.cpu_count() or 1
    if c.run.backend != "serial" and c.run.workers > cpus and c.run.ray_address is None:
        click.echo(f"warning: {c.run.workers} workers on {cpus} CPU cores; they will share "
                   "cores and each run slower", err=True)
    flavour = c.strategy.variant if c.strategy.algo == "ars" else c.strategy.optimizer
    run = RunDir(run_dir)
    resuming = resume and run.has_checkpoint()  # else nothing was trained: start afresh
    click.echo(f"{'resuming' if resuming else 'training'} {c.policy.arch} on {c.env.id} with "
               f"{c.strategy.algo.upper()} ({flavour}, N={c.strategy.directions}, "
               f"b={c.strategy.top}, α={c.strategy.step_size}, ν={c.strategy.noise_std}) "
               f"-> {run_dir}", err=True)
    try:
        summary = trainer.run(None if quiet else
                              lambda row, info: click.echo(progress_line(row, info), err=True))
    except KeyboardInterrupt:
        if run.has_checkpoint():
            click.echo(f"interrupted; the last checkpoint is in {run.checkpoints}; continue "
                       f"with: es-compact train --resume {shlex.quote(str(run_dir))}", err=True)
        else:
            click.echo("interrupted before the first iteration finished: nothing was trained; "
                       "run the same command again to start afresh", err=True)
        sys.exit(130)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    if not no_plot:
        from es_compact.plotting import plot_runs

        try:
            plot_runs([run_dir], run.plot_path, title=f"{c.env.id} {c.policy.arch}")
        except ConfigError:
            pass  # no evaluation yet: nothing to plot
    # Strict JSON: no evaluation yet leaves best_eval -inf and last_eval nan, printed as null.
    click.echo(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                           for k, v in summary.items()}))
