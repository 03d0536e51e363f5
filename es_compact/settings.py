"""What the config's settings are and where they apply: each field's default and help text,
read from the dataclasses (es_compact.config) so that nothing repeats them, and the rules that
refuse a setting a configuration would ignore (the policy's rules live with the architectures,
es_compact.policies)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, fields

from es_compact.config import SECTION_TYPES, TrainConfig
from es_compact.errors import ConfigError

# Declared once: a field's default and its documentation live on the dataclass; a CLI option
# or a report takes both from there rather than repeating them.


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstring of every field of a config dataclass, as {field: text}.

    Python keeps no attribute docstrings at runtime, so the class's source is parsed: a string
    statement right after an annotated assignment documents that field. A class at the top of
    its module is found in one parse of the module, shared by its neighbours (the CLI reads
    every section's docs when it starts); any other class is parsed from its own source."""
    if "." not in cls.__qualname__:
        node = _module_classes(cls.__module__).get(cls.__qualname__)
        if node is not None:
            return _attribute_docs(node)
    return _attribute_docs(ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0])


@functools.cache
def _module_classes(module: str) -> dict[str, ast.ClassDef]:
    """The top-level classes of an imported module by name, from one parse of its source."""
    try:
        tree = ast.parse(inspect.getsource(sys.modules[module]))
    except (KeyError, OSError, TypeError):  # no module or no source: parse the class instead
        return {}
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _attribute_docs(node: ast.ClassDef) -> dict[str, str]:
    body = node.body
    docs = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and \
                isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and \
                isinstance(nxt.value.value, str):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _field(section: str, name: str) -> dataclasses.Field:
    if section not in SECTION_TYPES:
        raise ConfigError(f"unknown config section {section!r}")
    f = {g.name: g for g in fields(SECTION_TYPES[section])}.get(name)
    if f is None:
        raise ConfigError(f"unknown {section} setting {name!r}")
    return f


def field_default(section: str, name: str):
    """The dataclass default of section.name."""
    return _field(section, name).default


def field_help(section: str, name: str) -> str:
    """The first sentence of section.name's docstring, on one line."""
    _field(section, name)
    text = " ".join(field_docs(SECTION_TYPES[section]).get(name, "").split())
    # A sentence ends at a full stop before a capital or a quoted value ("... variance.
    # 'scaled' draws ..."); "e.g. 1000" does not end one.
    return re.split(r"(?<=\.)\s+(?=[A-Z'(])", text, maxsplit=1)[0]


# Settings that only some configurations read. A setting that is accepted and then ignored
# lets a user believe a run used it; the check below refuses it instead, for the CLI, TOML
# files and Python alike. The policy's table lives with the architectures (es_compact.policies).


@dataclass(frozen=True)
class Applies:
    """Whether section.field takes effect in a configuration (used), and when it does (when,
    e.g. "with {strategy.algo} es": other settings are named as {section.field}, for the
    caller to render as field names or as command-line flags)."""

    section: str
    field: str
    used: bool
    when: str


def run_applies(config: TrainConfig) -> list[Applies]:
    """The strategy, run and warm-start settings that only some algorithms, backends or
    warm starts read."""
    s, r = config.strategy, config.run
    es, pgpe = s.algo == "es", s.algo == "pgpe"
    clipup = pgpe and s.optimizer in (None, "clipup")
    return [
        Applies("strategy", "variant", s.algo == "ars", "with {strategy.algo} ars"),
        Applies("strategy", "optimizer", es or pgpe, "with {strategy.algo} es or pgpe"),
        Applies("strategy", "momentum", (es and s.optimizer == "sgd") or clipup,
                "with {strategy.algo} es and {strategy.optimizer} sgd, or {strategy.algo} "
                "pgpe and {strategy.optimizer} clipup"),
        Applies("strategy", "l2_coeff", es, "with {strategy.algo} es"),
        Applies("strategy", "max_speed", clipup,
                "with {strategy.algo} pgpe and {strategy.optimizer} clipup"),
        Applies("strategy", "sigma_lr", pgpe or s.algo == "snes",
                "with {strategy.algo} pgpe or snes"),
        Applies("strategy", "sigma_max_change", pgpe, "with {strategy.algo} pgpe"),
        Applies("strategy", "elite_fraction", s.algo == "cem", "with {strategy.algo} cem"),
        Applies("strategy", "obs_norm_floor", s.normalizes_obs,
                "with observation normalisation (every {strategy.algo} but ars, or "
                "{strategy.variant} v2 or v2t)"),
        Applies("run", "workers", r.backend != "serial" or r.workers in (None, 1),
                "with {run.backend} mp or ray (serial runs one)"),
        Applies("run", "ray_address", r.backend == "ray", "with {run.backend} ray"),
        Applies("run", "actor_workers", r.backend == "ray", "with {run.backend} ray"),
        Applies("run", "rollout_timeout", r.backend != "serial",
                "with {run.backend} mp or ray (a serial run cannot stop its own rollout)"),
        Applies("run", "ray_dashboard", r.backend == "ray" and r.ray_address is None,
                "with {run.backend} ray when it starts Ray itself (no {run.ray_address})"),
        *(Applies("init", name, config.init.run_dir is not None, "with {init.run_dir}")
          for name in ("checkpoint", "iteration", "theta_sha256")),
    ]


def differs_from_default(config: TrainConfig, section: str, name: str) -> bool:
    """Whether section.name holds something other than its dataclass default (a config from
    Python or TOML "gives" a setting this way; a fully resolved config.json holding defaults
    gives nothing)."""
    return getattr(getattr(config, section), name) != field_default(section, name)


def render_when(when: str, name: Callable[[str, str], str]) -> str:
    """`when` with every {section.field} replaced by name(section, field)."""
    return re.sub(r"\{(\w+)\.(\w+)\}", lambda m: name(m[1], m[2]), when)


def refuse_unused(applies: Iterable[Applies], config: TrainConfig,
                  given: Collection[str] | None = None,
                  name: Callable[[str, str], str] | None = None) -> None:
    """ConfigError for the first given setting that would change nothing.

    given: the "section.field" names the user set (the CLI: the flags on the command line);
    None: every field that differs from its default. name(section, field) renders a setting
    in the message (the CLI: its flag); by default "policy.rotations applies only to arch
    kama; here it would be ignored"."""
    for a in applies:
        if a.used:
            continue
        if not (f"{a.section}.{a.field}" in given if given is not None else
                differs_from_default(config, a.section, a.field)):
            continue
        subject = name(a.section, a.field) if name else f"{a.section}.{a.field}"
        when = render_when(a.when, name or (lambda _section, f: f))
        raise ConfigError(f"{subject} applies only {when}; here it would be ignored")
