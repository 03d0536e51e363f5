"""`es-compact --help` stays quick: the CLI imports its heavy libraries where a command uses
them. scipy.stats alone took about 1 s of a 3.5 s `--help` here; this checks the import, not a
time, so it cannot flake on a loaded machine."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import es_compact_cli.main
heavy = sorted(m for m in ("scipy.stats", "matplotlib", "ray", "gymnasium", "mujoco")
               if m in sys.modules)
assert not heavy, f"importing the CLI loaded {heavy}"
"""


def test_the_cli_imports_no_heavy_library_before_a_command_runs():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
