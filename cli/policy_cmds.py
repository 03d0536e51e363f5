"""`es-compact params`: trainable parameter counts of an architecture against `dense`."""

from __future__ import annotations

import click

from es_compact.config import EnvConfig, TrainConfig
from es_compact_cli.options import (
    env_kwargs_option,
    parse_env_kwargs,
    policy_config,
    policy_options,
    refuse_ignored_settings,
)


@click.command()
@click.option("--env", "env_id", required=True, help="gymnasium id or module:Class")
@env_kwargs_option
@policy_options
@click.option("--layers", "show_layers", is_flag=True, help="also list every layer's blocks")
@click.pass_context
def params(ctx, env_id, env_kwargs, show_layers, **kw):
    """Print the trainable parameter count and its ratio to `dense` of the same shape.

    Counts learned angles, scalars, weights and biases; KAMA rotation planes come from the
    seed and are not parameters. --env-kwargs builds the environment with those settings,
    as train does (some change its observations).
    """
    from es_compact.envs import env_spaces
    from es_compact.policies import make_policy

    cfg = policy_config(kw)
    env = EnvConfig(id=env_id, kwargs=parse_env_kwargs(env_kwargs)).validate()
    obs_space, act_space = env_spaces(env.id, **env.make_kwargs())
    policy = make_policy(cfg, obs_space, act_space, seed=0)
    refuse_ignored_settings(ctx, TrainConfig(env=env, policy=cfg), policy.action.discrete)
    dense = make_policy(cfg.replace(arch="dense"), obs_space, act_space, seed=0)
    ratio = policy.num_params / dense.num_params
    settings = ", ".join(f"{k}={v!r}" for k, v in env.kwargs)
    click.echo(f"{env_id}{f' ({settings})' if settings else ''}  obs {policy.obs_dim}  "
               f"act {policy.action.dim}  h {cfg.hidden}")
    click.echo(f"{cfg.arch}: {policy.num_params} parameters; dense: {dense.num_params}; "
               f"ratio {100 * ratio:.1f}%")
    if show_layers:
        for i, layer in enumerate(policy.blocks()):
            blocks = ", ".join(f"{k}@{v['offset']}{tuple(v['shape'])}"
                               for k, v in layer["blocks"].items())
            click.echo(f"  layer {i}: {layer['kind']} {layer['in']}->{layer['out']} "
                       f"{layer['activation']}: {blocks}")
