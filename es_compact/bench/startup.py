"""How long `es-compact` takes to start: `--help` and `train --help` against `python -c pass`.

Each command is a fresh process, as a user's shell starts it: the `es-compact` entry point
installed beside this Python (or another one given), and this Python for the baseline. The
commands take turns within every round, in an order that rotates from round to round, so that
a change in the machine's load falls on all of them alike; the median over rounds is kept.

What the CLI costs is the time beyond the bare interpreter's: a ratio to `python -c pass` and
the difference in seconds. Wall time is what a user waits; CPU time (user + system of the
child) is reported beside it because it moves much less when other processes share the cores.
The 1-minute load average before and after is stored with every row.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from es_compact.errors import ConfigError

COMMANDS = (("python -c pass", None), ("es-compact --help", ("--help",)),
            ("es-compact train --help", ("train", "--help")))
"""(name, arguments of es-compact); None is the bare interpreter every other is set against."""


def default_executable() -> str:
    """The `es-compact` script installed with this Python (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "es-compact"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("es-compact")
    if found is None:
        raise ConfigError("no es-compact executable beside this Python or on PATH; give one "
                          "with --executable")
    return found


def _time_once(argv: Sequence[str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run of argv, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"{' '.join(argv)} exited with {proc.returncode}: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(rounds: int = 20, executable: str | None = None,
            log: Callable[[str], None] = lambda _: None) -> dict[str, dict[str, list[float]]]:
    """{command name: {"wall": [s per round], "cpu": [s per round]}} after one warm-up round
    (which fills the page cache and writes bytecode), the commands interleaved."""
    exe = executable or default_executable()
    argvs = {name: [sys.executable, "-c", "pass"] if args is None else [exe, *args]
             for name, args in COMMANDS}
    names = list(argvs)
    for name in names:  # warm-up, not timed
        _time_once(argvs[name])
    times = {name: {"wall": [], "cpu": []} for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = _time_once(argvs[name])
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
        if (r + 1) % 10 == 0 or r + 1 == rounds:
            log(f"round {r + 1}/{rounds}")
    return times


def rows(times: dict[str, dict[str, list[float]]], executable: str, label: str = "",
         load: tuple[float, float] = (float("nan"), float("nan"))) -> list[dict]:
    """One row a command: medians (and min, max) of wall and CPU time, and both set against
    the bare interpreter's as a ratio and as seconds beyond it."""
    base = {k: statistics.median(times["python -c pass"][k]) for k in ("wall", "cpu")}
    out = []
    for name, t in times.items():
        wall, cpu = statistics.median(t["wall"]), statistics.median(t["cpu"])
        out.append({
            "case": "startup", "timed": name, "rounds": len(t["wall"]),
            "wall_s": round(wall, 4), "wall_min_s": round(min(t["wall"]), 4),
            "wall_max_s": round(max(t["wall"]), 4),
            "wall_vs_python": round(wall / base["wall"], 2),
            "wall_beyond_python_s": round(wall - base["wall"], 4),
            "cpu_s": round(cpu, 4),
            "cpu_vs_python": round(cpu / base["cpu"], 2) if base["cpu"] > 0 else float("nan"),
            "cpu_beyond_python_s": round(cpu - base["cpu"], 4),
            "executable": executable, "python": sys.version.split()[0], "label": label,
            "load_1min_start": round(load[0], 2), "load_1min_end": round(load[1], 2)})
    return out


def run(rounds: int = 20, executable: str | None = None, label: str = "",
        log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """The whole benchmark: measure, then one row a command with the load around it."""
    exe = executable or default_executable()
    load0 = os.getloadavg()[0]
    times = measure(rounds, exe, log)
    return rows(times, exe, label, (load0, os.getloadavg()[0]))
