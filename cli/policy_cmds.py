"""`es-compact params`: trainable parameter counts of an architecture against `dense`."""

from __future__ import annotations

import click

from es_compact.config import TrainConfig
from es_compact_cli.options import policy_config, policy_options, refuse_ignored_settings


@click.command()
@click.option("--env", "env_id", required=True, help="gymnasium id or module:Class")
@policy_options
@click.option("--layers", "show_layers", is_flag=True, help="also list every layer's blocks")
@click.pass_context
def params(ctx, env_id, show_layers, **kw):
    """Print the trainable parameter count and its ratio to `dense` of the same shape.

    Counts learned angles, scalars, weights and biases; KAMA rotation planes come from the
    seed and are not parameters.
    """
    from es_compact.envs import env_spaces
    from es_compact.policies import make_policy

    cfg = policy_config(kw)
    obs_space, act_space = env_spaces(env_id)
    policy = make_policy(cfg, obs_space, act_space, seed=0)
    refuse_ignored_settings(ctx, TrainConfig(policy=cfg), policy.action.discrete)
    dense = make_policy(cfg.replace(arch="dense"), obs_space, act_space, seed=0)
    ratio = policy.num_params / dense.num_params
    click.echo(f"{env_id}  obs {policy.obs_dim}  act {policy.action.dim}  h {cfg.hidden}")
    click.echo(f"{cfg.arch}: {policy.num_params} parameters; dense: {dense.num_params}; "
               f"ratio {100 * ratio:.1f}%")
    if show_layers:
        for i, layer in enumerate(policy.blocks()):
            blocks = ", ".join(f"{k}@{v['offset']}{tuple(v['shape'])}"
                               for k, v in layer["blocks"].items())
            click.echo(f"  layer {i}: {layer['kind']} {layer['in']}->{layer['out']} "
                       f"{layer['activation']}: {blocks}")
