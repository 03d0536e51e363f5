"""`es-compact train`: build a TrainConfig from defaults < --config FILE.toml < flags, and run it.

Only flags given on the command line override the file (and, with --resume, the stored
config.json); a resumed run may change its budget and workers, nothing that shapes θ, and
takes neither --config nor another --out.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import shlex
import sys

import click

from es_compact.config import (
    ALGOS,
    ARS_VARIANTS,
    BACKENDS,
    CHECKPOINTS,
    EXPLORATION,
    OPTIMIZERS,
    TrainConfig,
)
from es_compact.errors import ConfigError
from es_compact_cli.options import (
    SEED,
    config_option,
    config_params,
    env_kwargs_option,
    given,
    option_help,
    policy_options,
    refuse_ignored_settings,
    warn_outdated,
)

BUDGET = ("iterations", "timesteps", "time_limit")
"""The run fields of a budget: a new one given as flags replaces the whole old one."""
PINNED = ("iteration", "theta_sha256")
"""The init fields a run records of its warm start's source: a new source given as flags
drops those a file recorded of another."""
DEFAULT_ITERATIONS = TrainConfig().run.iterations
"""The budget when none is given."""


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
    flags = [p for p in config_params(ctx) if p.name in kw and given(ctx, p.name)]
    if any(p.config_field in [("run", b) for b in BUDGET] for p in flags):
        run = data.setdefault("run", {})
        for b in BUDGET:
            run[b] = None
    for p in flags:
        section, name = p.config_field
        value = p.to_config(kw[p.name])
        stored = data.get(section, {}).get(name)
        if (section, name) == ("env", "kwargs") and isinstance(stored, dict):
            value = {**stored, **dict(value)}  # the flags set their names, the file the rest
        data.setdefault(section, {})[name] = value
    if any(p.config_field[0] == "init" for p in flags):
        for name in PINNED:
            data["init"].pop(name, None)
    run = data.setdefault("run", {})
    if all(run.get(b) is None for b in BUDGET):
        run["iterations"] = DEFAULT_ITERATIONS
    return TrainConfig.from_dict(data)


def fmt_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    return str(_dt.timedelta(seconds=int(seconds)))


def eval_text(row: dict, last_eval: float) -> str:
    """'3610.2 ± 41.3 (se, 5 ep)' for an iteration that evaluated, else the last evaluation."""
    if row.get("eval_episodes"):
        se = row["eval_se"]
        return (f"{row['eval_return_mean']:9.1f} ± "
                f"{'-' if math.isnan(se) else f'{se:.1f}'} (se, {row['eval_episodes']} ep)")
    return "       -" if math.isnan(last_eval) else f"{last_eval:9.1f}"


def progress_line(row: dict, info: dict) -> str:
    return (f"it {row['iteration']:>4} | steps {row['timesteps']:>10,} | train "
            f"{row['train_return_mean']:9.1f} (max {row['train_return_max']:9.1f}) | eval "
            f"{eval_text(row, info['last_eval'])} | "
            f"{row['steps_per_s']:>8,.0f} steps/s | {fmt_duration(info['elapsed_s'])} elapsed"
            f" | ~{fmt_duration(info['remaining_s'])} left"
            + (f" | {row['failed_rollouts']} failed" if row["failed_rollouts"] else ""))


@click.command()
@config_option("env", "id", "--env", "env_id")
@policy_options
@config_option("strategy", "algo", type=click.Choice(ALGOS))
@config_option("strategy", "variant", type=click.Choice(ARS_VARIANTS))
@config_option("strategy", "step_size")
@config_option("strategy", "directions")
@config_option("strategy", "top")
@config_option("strategy", "noise_std")
@config_option("strategy", "exploration", type=click.Choice(EXPLORATION))
@config_option("strategy", "optimizer", type=click.Choice(OPTIMIZERS))
@config_option("strategy", "momentum")
@config_option("strategy", "l2_coeff")
@config_option("strategy", "max_speed")
@config_option("strategy", "sigma_lr")
@config_option("strategy", "sigma_max_change")
@config_option("strategy", "elite_fraction")
@config_option("env", "reward_shift")
@config_option("env", "max_episode_steps")
@env_kwargs_option
@config_option("run", "iterations", hint=f"{DEFAULT_ITERATIONS} if no budget is given")
@config_option("run", "timesteps")
@config_option("run", "time_limit")
@config_option("run", "target_return")
@config_option("run", "seed", type=SEED)
@config_option("run", "eval_every")
@config_option("run", "eval_episodes")
@config_option("run", "workers")
@config_option("run", "backend", type=click.Choice(BACKENDS))
@config_option("run", "ray_address")
@config_option("run", "actor_workers")
@config_option("run", "ray_dashboard")
@config_option("run", "noise_table_size")
@config_option("run", "max_failed_fraction")
@config_option("run", "rollout_timeout")
@config_option("run", "checkpoint_every_s", "--checkpoint-every")
@config_option("init", "run_dir", "--init-from", "init_from", type=click.Path(file_okay=False),
               metavar="RUN")
@config_option("init", "checkpoint", type=click.Choice(CHECKPOINTS),
               help=option_help("init", "checkpoint") + " (with --init-from)")
@click.option("--out", type=click.Path(file_okay=False), help="run directory "
              "[runs/ENV_ARCH_seedSEED]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file with [env], [policy], [strategy], [run], [init] tables")
@click.option("--resume", type=click.Path(file_okay=False), help="continue this run directory")
@click.option("--overwrite", is_flag=True, help="replace a run already in --out")
@click.option("--quiet", is_flag=True, help="no progress lines")
@click.option("--no-plot", is_flag=True, help="skip plot.png at the end")
@click.option("--no-progress", is_flag=True, help="no live bar of the directions done within "
              "an iteration (drawn on a terminal's stderr once an iteration takes over 2 s)")
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False),
              help="also write TensorBoard events into DIR/<run name> (es-compact[tensorboard])")
@click.option("--wandb", "wandb_project", is_flag=False, flag_value="es-compact", default=None,
              metavar="[PROJECT]", help="also log to Weights & Biases, project PROJECT "
              "[es-compact] (es-compact[wandb]; WANDB_MODE=offline works offline)")
@click.pass_context
def train(ctx, out, config_file, resume, overwrite, quiet, no_plot, no_progress,
          tensorboard_dir, wandb_project, **kw):
    """Train a compact policy with an evolution strategy (--algo: ARS by default).

    Writes config.json, progress.csv, checkpoints/{latest,best}.{npz,json} and plot.png into
    the run directory. Ctrl-C stops after writing a checkpoint; --resume continues exactly.
    """
    from es_compact.run_dir import default_path, target
    from es_compact.trainer import Trainer, TrainingError

    for name in ("init_from", "checkpoint"):
        if resume and given(ctx, name):
            raise ConfigError(f"--{name.replace('_', '-')} cannot be combined with --resume: a "
                              "resumed run continues from its own checkpoint")
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
    refuse_ignored_settings(ctx, c, trainer.policy.action.discrete)  # named as flags
    trainer.check_settings()  # and what a --config file set, named as fields
    from es_compact.tracking import trackers, with_trackers

    adapters = trackers(c, run_dir, tensorboard=tensorboard_dir, wandb_project=wandb_project,
                        wandb=wandb_project is not None)  # a missing package: refused here
    if mode != "resume":  # after every refusal; a resumed run's environment was chosen before
        warn_outdated(c.env.id)
    cpus = os.cpu_count() or 1
    if c.run.backend != "serial" and c.run.workers > cpus and c.run.ray_address is None:
        click.echo(f"warning: {c.run.workers} workers on {cpus} CPU cores; they will share "
                   "cores and each run slower", err=True)
    asked = config.init.checkpoint
    if mode != "resume" and c.init.run_dir is not None and c.init.checkpoint != asked:
        click.echo(f"note: {c.init.run_dir} has no {asked} checkpoint; "
                   f"starting from its {c.init.checkpoint} (iteration {c.init.iteration})",
                   err=True)
    s = c.strategy
    if s.algo == "ars":
        flavour = f"{s.variant}, N={s.directions}, b={s.top}, α={s.step_size}, ν={s.noise_std}"
    else:
        flavour = ", ".join([*([s.optimizer] if s.optimizer else []),
                             f"N={s.directions}", f"lr={s.step_size}",
                             f"{'ν' if s.algo == 'es' else 'σ0'}={s.noise_std}"])
    run = trainer.dir
    resuming = resume and run.has_checkpoint()  # else nothing was trained: start afresh
    settings = "".join(f", {k}={v!r}" for k, v in c.env.kwargs)
    click.echo(f"{'resuming' if resuming else 'training'} {c.policy.arch} on {c.env.id}"
               f"{f' ({settings[2:]})' if settings else ''} with {s.algo.upper()} ({flavour}) "
               f"-> {run_dir}", err=True)
    if c.init.run_dir is not None and not resuming:
        click.echo(f"warm start from {c.init.run_dir} ({c.init.checkpoint} checkpoint, "
                   f"iteration {c.init.iteration}, θ sha256 {c.init.theta_sha256[:12]})",
                   err=True)
    from es_compact_cli.progress import live_bar

    bar = live_bar(sys.stderr, enabled=not (quiet or no_progress))  # None: not a terminal

    def printer(row: dict, info: dict) -> None:
        if bar is not None:
            bar.clear()  # so a terminal's log reads as piped output does
        click.echo(progress_line(row, info), err=True)

    try:
        with bar or contextlib.nullcontext():
            summary = trainer.run(with_trackers(None if quiet else printer, adapters),
                                  None if bar is None else bar.update)
    except KeyboardInterrupt:
        for a in adapters:
            a.close()
        if run.has_checkpoint():
            click.echo(f"interrupted; the last checkpoint is in {run.checkpoints}; continue "
                       f"with: es-compact train --resume {shlex.quote(str(run_dir))}", err=True)
        else:
            click.echo("interrupted before the first iteration finished: nothing was trained; "
                       "run the same command again to start afresh", err=True)
        sys.exit(130)
    except TrainingError as exc:
        for a in adapters:
            a.close()
        raise click.ClickException(str(exc)) from None
    for a in adapters:
        a.finish(summary)
    if not no_plot:
        from es_compact.plotting import plot_runs

        try:
            plot_runs([run_dir], run.plot_path, title=f"{c.env.id} {c.policy.arch}")
        except Exception as exc:  # the run is trained: say why, and still print its summary
            click.echo(f"{run.plot_path} not written: {exc}", err=True)
    if summary.get("session_seconds"):
        share = summary["eval_seconds"] / summary["session_seconds"]
        click.echo(f"evaluation took {summary['eval_seconds']:.1f} s, {share:.1%} of this "
                   f"session's {summary['session_seconds']:.1f} s", err=True)
    # Strict JSON: no evaluation yet leaves best_eval -inf and last_eval nan, printed as null.
    click.echo(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                           for k, v in summary.items()}))
