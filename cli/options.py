"""Click options shared by several commands (policy shape, environment)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from es_compact.config import DCNN_INITS, PolicyConfig
from es_compact.errors import ConfigError
from es_compact.policies import ARCHITECTURES

_D = PolicyConfig()
SEED = click.IntRange(min=0)
"""A seed: numpy's SeedSequence takes non-negative integers only."""
COUNT = click.IntRange(min=1)


def parse_rotations(value: str) -> tuple[int, ...]:
    """'200' -> (200,); '200,100,50' -> one count per weight matrix."""
    try:
        return tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ConfigError(f"--rotations takes an integer or a comma-separated list of "
                          f"integers, got {value!r}") from None


def policy_options(fn):
    """The architecture options of every command that builds a policy."""
    opts = [
        click.option("--arch", default=_D.arch, show_default=True,
                     help=f"architecture: {', '.join(ARCHITECTURES)}"),
        click.option("--hidden", type=int, default=_D.hidden, show_default=True,
                     help="hidden width h (DCNN width is max(obs, h, act))"),
        click.option("--hidden-layers", type=int, default=_D.hidden_layers, show_default=True,
                     help="hidden layers of dense/toeplitz/kama"),
        click.option("--rotations", default=",".join(map(str, _D.rotations)),
                     show_default=True,
                     help="KAMA rotations per matrix: one value, or one per matrix (a,b,c)"),
        click.option("--depth", type=int, default=_D.depth, show_default=True,
                     help="DCNN layers"),
        click.option("--nonlin-every", type=int, default=_D.nonlin_every, show_default=True,
                     help="DCNN: leaky ReLU after every k-th layer"),
        click.option("--slope", type=float, default=_D.slope, show_default=True,
                     help="DCNN leaky ReLU slope"),
        click.option("--dcnn-init", type=click.Choice(DCNN_INITS), default=_D.dcnn_init,
                     show_default=True, help="DCNN: c ~ N(0, 2/n) as the paper, or 'scaled' "
                     "to the fan-in and activation so every depth starts at one output scale"),
        click.option("--squash", type=click.Choice(["clip", "tanh"]), default=_D.squash,
                     show_default=True, help="Box actions: clip to bounds or tanh into them"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def policy_config(kw: dict) -> PolicyConfig:
    """Pop the policy options out of a command's keyword arguments into a PolicyConfig."""
    cfg = PolicyConfig(arch=kw.pop("arch"), hidden=kw.pop("hidden"),
                       hidden_layers=kw.pop("hidden_layers"),
                       rotations=parse_rotations(kw.pop("rotations")), depth=kw.pop("depth"),
                       nonlin_every=kw.pop("nonlin_every"), slope=kw.pop("slope"),
                       dcnn_init=kw.pop("dcnn_init"), squash=kw.pop("squash"))
    return cfg.validate(tuple(ARCHITECTURES))


BUILTIN_ARCHS = ("linear", "dense", "toeplitz", "kama", "dcnn")


def given(ctx: click.Context, name: str) -> bool:
    """Whether the parameter was set on the command line (or the environment), not defaulted."""
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def refuse_ignored(ctx: click.Context, applies: dict[str, tuple[bool, str]]) -> None:
    """ConfigError for the first option given on the command line that would have no effect.

    applies maps a parameter name to (whether it takes effect here, when it does). An option
    that is accepted and then ignored lets a user believe a run used a setting it never used.
    """
    for name, (used, when) in applies.items():
        if not used and given(ctx, name):
            flag = next((p.opts[0] for p in ctx.command.params if p.name == name), name)
            raise ConfigError(f"{flag} applies only {when}; here it would be ignored")


def policy_applies(cfg: PolicyConfig, discrete: bool) -> dict[str, tuple[bool, str]]:
    """Which policy options shape this policy (for refuse_ignored). Architectures registered
    by the user may read any field, so only the built-in ones are judged."""
    applies = {"squash": (not discrete, "to continuous (Box) actions")}
    if cfg.arch not in BUILTIN_ARCHS:
        return applies
    mlp, dcnn = cfg.arch in ("dense", "toeplitz", "kama"), cfg.arch == "dcnn"
    return {**applies,
            "hidden": (cfg.arch != "linear", "to --arch dense, toeplitz, kama and dcnn"),
            "hidden_layers": (mlp, "to --arch dense, toeplitz and kama"),
            "rotations": (cfg.arch == "kama", "to --arch kama"),
            "depth": (dcnn, "to --arch dcnn"),
            "nonlin_every": (dcnn, "to --arch dcnn"),
            "dcnn_init": (dcnn, "to --arch dcnn"),
            "slope": (dcnn and cfg.nonlin_every < cfg.depth,
                      "to --arch dcnn with a leaky ReLU (--nonlin-every below --depth)")}
