"""Result files under results/: every row says when, where and by which command it was made."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit (with '+dirty' when tracked files outside results/ have
    changes), or 'unknown'. Committed outputs under results/ are left out: regenerating them is
    what the commands writing this record do, and it says nothing about the code that ran."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, text=True,
                             capture_output=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)results"],
                               cwd=cwd, text=True, capture_output=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_metadata(wall_time_s: float | None = None, command: str | None = None) -> dict:
    """Columns every result row carries: command, commit, date, core count, wall time."""
    meta = {
        "command": command if command is not None else " ".join(
            [Path(sys.argv[0]).name] + sys.argv[1:]),
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
    }
    if wall_time_s is not None:
        meta["wall_time_s"] = round(float(wall_time_s), 3)
    return meta


def append_rows(path: str | Path, rows: list[dict], meta: dict) -> pd.DataFrame:
    """Append rows (each extended by meta) to a CSV, creating it with a header when absent.

    Columns that the existing file lacks are added (older rows get empty cells), so a file
    written by an older version keeps working."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame([{**row, **meta} for row in rows])
    if path.exists() and path.stat().st_size > 0:
        old = pd.read_csv(path)
        out = pd.concat([old, new], ignore_index=True, sort=False)
    else:
        out = new
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return new
