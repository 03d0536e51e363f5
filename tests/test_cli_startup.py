"""`es-compact --help` stays quick: building the command tree imports click and the config
dataclasses only, and every command imports its heavy libraries when it runs. This checks the
import graph, not a time, so it cannot flake on a loaded machine; `es-compact bench startup`
measures the time (results/bench_startup.csv)."""

from __future__ import annotations

import json
import subprocess
import sys

from es_compact import names

HEAVY = ("numpy", "numba", "pandas", "scipy", "matplotlib", "gymnasium", "mujoco", "ray",
         "imageio", "tensorboardX", "wandb")

# In a fresh interpreter: `es-compact --help`, then every command's and group's --help in
# turn, recording the heavy modules loaded after each (the first one to load any is named).
CHECK = """
import contextlib, io, json, sys
import click
from es_compact_cli.main import cli

HEAVY = {heavy!r}

def loaded():
    return sorted(m for m in HEAVY if m in sys.modules)

def helps(group, path):
    yield path
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from helps(cmd, path + [name])
        else:
            yield path + [name]

report = {{"import": loaded(), "help": []}}
for path in helps(cli, []):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            cli.main([*path, "--help"], prog_name="es-compact")
        except SystemExit as exc:
            code = exc.code
    report["help"].append([" ".join(path), code, "Usage:" in out.getvalue(), loaded()])
print(json.dumps(report))
"""


def test_no_help_imports_a_heavy_library():
    proc = subprocess.run([sys.executable, "-c", CHECK.format(heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["import"] == [], f"importing the CLI loaded {report['import']}"
    commands = {path for path, *_ in report["help"]}
    assert {"", "train", "eval", "bench startup", "kernels mse"} <= commands
    for path, code, usage, heavy in report["help"]:
        assert code == 0 and usage, f"es-compact {path} --help failed"
        assert heavy == [], f"es-compact {path} --help loaded {heavy}"


def test_the_light_names_are_the_registries():
    from es_compact.datasets import FILES
    from es_compact.features import ESTIMATORS

    assert names.ESTIMATORS == tuple(ESTIMATORS)
    assert set(names.DATASETS) == {"g50", *FILES} and len(set(names.DATASETS)) == 6
