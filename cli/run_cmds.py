"""Commands that read a finished (or running) run directory: `eval`, `plot` and `export`.

None of them writes into the run directory, and none replaces an existing output file unless
given --overwrite.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from es_compact.errors import ConfigError
from es_compact_cli.options import SEED, parse_env_kwargs, warn_outdated

CHECKPOINT_HELP = ("which checkpoint: best (highest evaluation) or latest [best, or latest "
                   "when the run has no best yet]")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise ConfigError(f"{path} is a directory")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; use --overwrite to replace it")


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
# The cap keeps a typo like 10**20 from hanging in building the list of episode seeds.
@click.option("--episodes", type=click.IntRange(1, 1_000_000),
              help="a fixed number of episodes [as many as --precision needs]")
@click.option("--precision", type=click.FloatRange(0, min_open=True),
              help="without --episodes: run episodes, 10 at a time, until the standard error "
                   "of the mean is at most this fraction of |mean| [0.01]")
@click.option("--min-episodes", type=click.IntRange(1, 1_000_000),
              help="without --episodes: at least this many [10]")
@click.option("--max-episodes", type=click.IntRange(1, 1_000_000),
              help="without --episodes: at most this many, precision met or not [200]")
@click.option("--checkpoint", "name", help=CHECKPOINT_HELP)
@click.option("--seed", type=SEED, help="seed of the episodes' environment seeds [the run's]")
@click.option("--video", type=click.Path(dir_okay=False),
              help="also record episode 0 as an mp4 (headless EGL or OSMesa rendering; "
                   "es-compact[video])")
@click.option("--overwrite", is_flag=True, help="replace an existing --video file")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead")
@click.option("--env", "env_id", help="evaluate on this environment instead, with the run's "
              "observation and action shapes (a v4 run on v5) [the run's]")
@click.option("--env-kwargs", "env_kwargs", multiple=True, metavar="NAME=VALUE",
              help="an environment setting for these episodes, replacing the run's of that "
                   "name; repeat for each")
def eval_cmd(run_dir, episodes, precision, min_episodes, max_episodes, name, seed, video,
             overwrite, as_json, env_id, env_kwargs):
    """Evaluate a run's policy: noiseless episodes with the frozen observation statistics.

    Prints mean ± std and the standard error of the unshifted return. Without --episodes it
    runs episodes in batches of 10 until the standard error is at most --precision of |mean|
    (between --min-episodes and --max-episodes). With the run's seed and --episodes its
    eval_episodes, the episodes are those the trainer evaluated at that checkpoint. --env and
    --env-kwargs evaluate it on another environment of the same observation and action shapes.
    """
    from es_compact.evaluate import (
        episode_seeds,
        evaluate,
        evaluate_to_precision,
        load_run,
        standard_error,
    )
    from es_compact.video import check_recording, check_video_path

    if video is not None:  # before the episodes, which may take minutes: "" is a bad path too
        _refuse_existing(check_video_path(video), overwrite)
    override = dict(parse_env_kwargs(env_kwargs))
    if env_id is not None:
        warn_outdated(env_id)
    adaptive = {k: v for k, v in (("precision", precision), ("min_episodes", min_episodes),
                                  ("max_episodes", max_episodes)) if v is not None}
    if episodes is not None and adaptive:
        raise ConfigError(f"--{next(iter(adaptive)).replace('_', '-')} applies only without "
                          "--episodes")
    run = load_run(run_dir, name, env_id, override)
    if name is None and run.name != "best":
        click.echo(f"note: {run_dir} has no best checkpoint yet; using latest (iteration "
                   f"{run.iteration})", err=True)
    name = run.name
    if video is not None:  # the video extra, and pygame for the envs it draws
        check_recording(run.config.env.id)
    res = (evaluate(run, episodes, seed) if episodes is not None
           else evaluate_to_precision(run, seed=seed, **adaptive))
    rets = res["returns"]
    episodes = len(res["seeds"])
    se = standard_error(rets)
    summary = {"run_dir": str(run_dir), "checkpoint": name, "iteration": run.iteration,
               "env": run.config.env.id, "env_kwargs": dict(run.config.env.kwargs),
               "arch": run.config.policy.arch,
               "episodes": episodes, "return_mean": float(rets.mean()) if rets.size else None,
               "return_std": float(rets.std()) if rets.size else None,
               "return_se": None if se != se else se,
               "precision_met": res.get("precision_met"),
               "returns": rets.tolist(), "steps": res["steps"].tolist(),
               "failed": res["failed"]}
    if video is not None:
        from es_compact.video import record

        click.echo(f"recording episode 0 to {video} ...", err=True)
        summary["video"] = {"path": str(video),
                            **record(run_dir, name, video, episode_seeds(run, 1, seed)[0],
                                     env_id=env_id, env_kwargs=override)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    if rets.size:
        click.echo(f"{run.config.env.id} {run.config.policy.arch} ({name}, iteration "
                   f"{run.iteration}): return {rets.mean():.2f} ± {rets.std():.2f} over "
                   f"{rets.size} episodes (se {se:.2f}, min {rets.min():.2f}, max "
                   f"{rets.max():.2f})"
                   + ("" if res.get("precision_met") is None else
                      "; precision met" if res["precision_met"] else
                      f"; precision not met within {episodes} episodes"))
    for err in res["failed"]:
        click.echo(f"failed episode: {err}", err=True)
    if "video" in summary:
        v = summary["video"]
        click.echo(f"video: {video} ({v['frames']} frames, {v['width']}x{v['height']} at "
                   f"{v['fps']} fps, return {v['return']:.2f}, MUJOCO_GL={v['backend']})")
    if not rets.size:
        raise click.ClickException(f"all {episodes} episodes failed")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="image file (png, pdf, svg, ...)")
@click.option("--column", default="eval_return_mean", show_default=True,
              help="progress.csv column to draw against timesteps")
@click.option("--title", help="figure title")
@click.option("--label", "labels", multiple=True,
              help="a curve's legend label, repeated: one per curve (in order of first "
                   "appearance) or one per run (runs sharing a label become one curve)")
@click.option("--group-by", "group_by", metavar="FIELD[,FIELD]",
              help="one curve per value of these settings (arch, rotations, "
                   "strategy.step_size, seed, ...) instead of one per configuration")
@click.option("--overwrite", is_flag=True, help="replace an existing -o file")
def plot(run_dirs, out, column, title, labels, group_by, overwrite):
    """Learning curves of one or more runs against timesteps.

    Runs whose config.json differ only in the seed (and in budget, evaluation schedule or
    parallelism) are one curve: the mean over them at equal timesteps with a 95% bootstrap
    confidence interval, continued with fewer runs where some are shorter (the legend says
    how many). Curves are labelled by the settings that differ. The evaluation of the final
    policy (final_eval.json) is each run's last point. Prints each curve's final value: the
    mean of its runs' last values.
    """
    from es_compact.plotting import check_plot_inputs, draw, final_text, learning_curves

    out = Path(out)
    _refuse_existing(out, overwrite)
    # A run given twice (R R, or R and ./R) would count as two seeds of its label.
    unique = list({Path(d).resolve(): d for d in run_dirs}.values())
    if labels and len(unique) < len(run_dirs) and len(labels) == len(run_dirs):
        raise ConfigError("a run is given twice; give each run once with its --label")
    run_dirs = unique
    fields = [f.strip() for f in group_by.split(",") if f.strip()] if group_by else None
    if group_by is not None and not fields:
        raise ConfigError("--group-by needs at least one setting, e.g. --group-by arch")
    check_plot_inputs(run_dirs, out, column)
    found, legend_title = learning_curves(run_dirs, column, labels, fields)
    draw(found, out, column, title, legend_title)
    for curve in found:
        click.echo(f"{curve.label}: {final_text(curve, column)}")
    click.echo(f"wrote {out}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="policy file (.npz); policy_runner.py is written beside it")
@click.option("--checkpoint", "name", help=CHECKPOINT_HELP)
@click.option("--overwrite", is_flag=True, help="replace existing output files")
def export(run_dir, out, name, overwrite):
    """Write a self-contained policy (structured parameters, rotation planes, normaliser,
    action bounds; no pickle) and a NumPy-only runner for it."""
    from es_compact.evaluate import load_run
    from es_compact.export import export as export_policy

    out = Path(out)
    _refuse_existing(out, overwrite)  # before loading: nothing to do if it would fail anyway
    run = load_run(run_dir, name)
    if name is None and run.name != "best":
        click.echo(f"note: {run_dir} has no best checkpoint yet; using latest (iteration "
                   f"{run.iteration})", err=True)
    npz, runner = export_policy(run, out, overwrite)
    click.echo(f"wrote {npz} ({run.config.policy.arch}, {run.policy.num_params} parameters, "
               f"{run.name} checkpoint at iteration {run.iteration}) and {runner}")


def register(group: click.Group) -> None:
    for cmd in (eval_cmd, plot, export):
        group.add_command(cmd)
