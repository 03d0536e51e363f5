"""Click options shared by several commands, declared from the config dataclasses.

A config option takes its default and its help text from the field it sets (es_compact.config),
so neither is repeated here; the option remembers its (section, field), so a command builds its
config from the options given without a hand-kept map.

Building the options imports only click and the config dataclasses: the policies (numba) are
imported by the functions that use them, when a command runs, so `--help` starts quickly
(tests/test_cli_startup.py).
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from types import UnionType

import click
from click.core import ParameterSource

from es_compact.config import DCNN_INITS, SECTION_TYPES, SQUASH_MODES, PolicyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.settings import field_default, field_help

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


def parse_env_kwargs(values) -> tuple[tuple[str, object], ...]:
    """('frame_skip=2', 'xml_file=my.xml') -> (('frame_skip', 2), ('xml_file', 'my.xml')): the
    --env-kwargs given, each value read as JSON (2, 0.2, true, [0.8, 1.5]) or else a string."""
    from es_compact.config import parse_env_kwarg

    pairs = tuple(parse_env_kwarg(v) for v in values)
    names = [k for k, _ in pairs]
    twice = sorted({k for k in names if names.count(k) > 1})
    if twice:
        raise ConfigError(f"--env-kwargs {', '.join(twice)} given twice")
    return pairs


def env_kwargs_option(fn):
    """--env-kwargs NAME=VALUE, repeated: env.kwargs, for every command that builds an
    environment (train, params)."""
    return config_option("env", "kwargs", "--env-kwargs", multiple=True, metavar="NAME=VALUE",
                         to_config=parse_env_kwargs, show_default=False,
                         help=option_help("env", "kwargs") + "; repeat for each (--env-kwargs "
                              "frame_skip=2 --env-kwargs ctrl_cost_weight=0.2)")(fn)


def warn_outdated(env_id: str) -> None:
    """gymnasium's 'out of date' notice, once, for an environment id the user chose (the
    library silences it where environments are built, in every worker process)."""
    from es_compact.envs import outdated

    notice = outdated(env_id)
    if notice:
        click.echo(f"warning: gymnasium: {notice}", err=True)


class ConfigOption(click.Option):
    """A click option that sets one config field: config_field is (section, field), and
    to_config turns the parsed value into the field's value (e.g. '200,100' -> (200, 100))."""

    def __init__(self, *args, config_field: tuple[str, str],
                 to_config: Callable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_field = config_field
        self.to_config = to_config or (lambda v: v)


@functools.cache
def _hints(section: str) -> dict[str, object]:
    return typing.get_type_hints(SECTION_TYPES[section])  # evaluated once, not per option


def _base_type(section: str, name: str) -> type:
    """int, float, str, bool or tuple: the field's annotation without its None."""
    hint = _hints(section)[name]
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def option_help(section: str, name: str, hint: str | None = None) -> str:
    """The field's first docstring sentence as help; its "; None: X" becomes " [X]", the
    usual form of what an option left out means."""
    text = field_help(section, name).rstrip(".")
    m = re.search(r";\s*None:\s*(.*)$", text)
    if m:
        text, hint = text[:m.start()], hint or m[1]
    return f"{text} [{hint}]" if hint else text


def config_option(section: str, name: str, *decls: str, help: str | None = None,
                  hint: str | None = None, to_config: Callable | None = None, **kwargs):
    """click.option for section.name: default and help from the field (help overrides the
    docstring's first sentence; hint adds "[hint]"). decls default to --name-with-dashes;
    the type is the field's (int, float, str; a bool is a flag) unless given."""
    default = field_default(section, name)
    base = _base_type(section, name)
    if base is bool:
        kwargs.setdefault("is_flag", True)
    else:
        kwargs.setdefault("show_default", True)
        if base in (int, float) and "type" not in kwargs:
            kwargs["type"] = base
    if isinstance(default, tuple) and not kwargs.get("multiple"):  # given as a,b,c
        default = ",".join(map(str, default))
    return click.option(*(decls or (f"--{name.replace('_', '-')}",)), cls=ConfigOption,
                        config_field=(section, name), to_config=to_config, default=default,
                        help=option_help(section, name, hint) if help is None else help,
                        **kwargs)


def config_params(ctx: click.Context) -> list[ConfigOption]:
    return [p for p in ctx.command.params if isinstance(p, ConfigOption)]


def given(ctx: click.Context, name: str) -> bool:
    """Whether the parameter was set on the command line (or the environment), not defaulted."""
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def given_fields(ctx: click.Context) -> set[str]:
    """The "section.field" settings given as flags on the command line."""
    return {".".join(p.config_field) for p in config_params(ctx) if given(ctx, p.name)}


def flag_namer(ctx: click.Context) -> Callable[[str, str], str]:
    """(section, field) -> the command's flag for it (its field name if it has none)."""
    flags = {p.config_field: p.opts[0] for p in config_params(ctx)}
    return lambda section, name: flags.get((section, name), name)


def policy_options(fn):
    """The architecture options of every command that builds a policy."""
    opts = [
        config_option("policy", "arch"),
        config_option("policy", "hidden"),
        config_option("policy", "hidden_layers"),
        config_option("policy", "rotations", to_config=parse_rotations,
                      help="KAMA rotations K: one value for every weight matrix, or one per "
                           "matrix (a,b,c)"),
        config_option("policy", "depth"),
        config_option("policy", "nonlin_every"),
        config_option("policy", "slope"),
        config_option("policy", "dcnn_init", type=click.Choice(DCNN_INITS),
                      help="DCNN: c ~ N(0, 2/n) as the paper, or 'scaled' to the fan-in and "
                           "activation so every depth starts at one output scale"),
        config_option("policy", "squash", type=click.Choice(SQUASH_MODES)),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def policy_config(kw: dict) -> PolicyConfig:
    """Pop the policy options out of a command's keyword arguments into a PolicyConfig."""
    values = {p.config_field[1]: p.to_config(kw.pop(p.name))
              for p in config_params(click.get_current_context())
              if p.config_field[0] == "policy"}
    from es_compact.policies import ARCHITECTURES

    return PolicyConfig(**values).validate(tuple(ARCHITECTURES))


def refuse_ignored(ctx: click.Context, applies: dict[str, tuple[bool, str]]) -> None:
    """ConfigError for the first option given on the command line that would have no effect.

    applies maps a parameter name to (whether it takes effect here, when it does). An option
    that is accepted and then ignored lets a user believe a run used a setting it never used.
    """
    for name, (used, when) in applies.items():
        if not used and given(ctx, name):
            flag = next((p.opts[0] for p in ctx.command.params if p.name == name), name)
            raise ConfigError(f"{flag} applies only {when}; here it would be ignored")


def refuse_ignored_settings(ctx: click.Context, config: TrainConfig, discrete: bool) -> None:
    """The library's check (es_compact.policies.check_applicable) of the flags given, named
    as flags: "--rotations applies only to --arch kama; here it would be ignored"."""
    from es_compact.policies import check_applicable

    check_applicable(config, discrete, given=given_fields(ctx), name=flag_namer(ctx))
