"""Every setting is declared once, on its dataclass field: the CLI's defaults and help come from
there. Parametrised over the fields and the options, so a new one is checked the day it is added.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from es_compact.config import SECTION_TYPES, TrainConfig
from es_compact.errors import ConfigError
from es_compact.settings import field_default, field_docs, field_help
from es_compact_cli.bench import bench
from es_compact_cli.main import cli
from es_compact_cli.options import ConfigOption, option_help
from es_compact_cli.train import build_config, train

FIELDS = [(s, f.name) for s, cls in SECTION_TYPES.items() for f in fields(cls)]
COMMANDS = {"train": train, "params": cli.commands["params"],
            "bench throughput": bench.commands["throughput"]}
OPTIONS = [(name, p) for name, cmd in COMMANDS.items() for p in cmd.params
           if isinstance(p, ConfigOption)]


@pytest.mark.parametrize("section,name", FIELDS, ids=[f"{s}.{n}" for s, n in FIELDS])
def test_every_field_has_help_text(section, name):
    doc = field_docs(SECTION_TYPES[section])[name]
    first = field_help(section, name)
    assert first and doc.startswith(first.split()[0]) and first.endswith(".")
    assert "\n" not in first and "``" not in first


@pytest.mark.parametrize("section,name", FIELDS, ids=[f"{s}.{n}" for s, n in FIELDS])
def test_cli_defaults_equal_the_dataclass_defaults(section, name):
    for _, p in OPTIONS:
        if p.config_field == (section, name):
            assert p.to_config(p.default) == field_default(section, name), p.opts


@pytest.mark.parametrize("command,option", OPTIONS,
                         ids=[f"{c}:{p.opts[0]}" for c, p in OPTIONS])
def test_an_option_says_its_default_and_help(command, option):
    section, name = option.config_field
    # the docstring's first sentence, except where a command says more (or less) of it
    overridden = {("train", "--rotations"), ("train", "--dcnn-init"),
                  ("params", "--rotations"), ("params", "--dcnn-init"),
                  ("bench throughput", "--backend")}
    assert option.help
    assert option.help.startswith(option_help(section, name)) != ((command, option.opts[0])
                                                                      in overridden)
    if field_default(section, name) is None and "None:" in field_help(section, name):
        assert "[" in option.help and "None" not in option.help  # e.g. "[the preset]"


def test_train_keeps_its_flags():
    flags = {p.opts[0]: p.config_field for p in train.params if isinstance(p, ConfigOption)}
    assert flags["--env"] == ("env", "id")
    assert flags["--checkpoint-every"] == ("run", "checkpoint_every_s")
    assert set(flags) == {
        "--env", "--env-kwargs", "--reward-shift", "--max-episode-steps", "--arch", "--hidden",
        "--hidden-layers", "--rotations", "--depth", "--nonlin-every", "--slope", "--dcnn-init",
        "--squash", "--algo", "--variant", "--step-size", "--directions", "--top",
        "--noise-std", "--exploration", "--optimizer", "--l2-coeff", "--momentum", "--max-speed",
        "--sigma-lr", "--sigma-max-change", "--elite-fraction", "--seed", "--iterations",
        "--target-return", "--timesteps", "--time-limit", "--eval-every", "--eval-episodes",
        "--workers", "--backend", "--ray-address", "--actor-workers", "--ray-dashboard",
            "--noise-table-size",
        "--max-failed-fraction", "--rollout-timeout", "--checkpoint-every", "--init-from",
        "--checkpoint"}


def test_no_flags_build_the_default_config():
    ctx = train.make_context("train", [])
    assert build_config(ctx, dict(ctx.params), None) == TrainConfig()


def test_field_docs_reads_attribute_docstrings():
    @dataclass(frozen=True)
    class Example:
        """Not a field's."""

        a: int = 1
        """First sentence. Second one, e.g. this."""
        b: str = "x"
        c: float = 0.5
        """Only one: e.g. 1000 is no sentence end."""

    assert field_docs(Example) == {"a": "First sentence. Second one, e.g. this.",
                                   "c": "Only one: e.g. 1000 is no sentence end."}


def test_an_unknown_field_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown run setting 'speed'"):
        field_default("run", "speed")
    with pytest.raises(ConfigError, match="unknown config section 'runs'"):
        field_help("runs", "seed")
