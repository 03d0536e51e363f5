"""Result files under results/: every row says when, where and by which command it was made."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from es_compact.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

PROVENANCE = ("command", "commit", "date")
"""Columns :func:`run_metadata` puts in every row: a CSV without them was not written here."""


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


def check_output_dir(path: str | Path) -> Path:
    """Create the directory `path` (and its parents), or raise a ConfigError naming the part of
    it that is a file. Called before the work, so a bad --out costs seconds, not the run."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                raise ConfigError(f"cannot write under {path}: {part} is not a directory")
            break
    path.mkdir(parents=True, exist_ok=True)
    # A real file, not os.access: root passes every access check, yet cannot create files in
    # /proc or on a read-only mount.
    try:
        fd, probe = tempfile.mkstemp(prefix=".es-compact-", suffix=".probe", dir=path)
    except OSError as exc:
        raise ConfigError(f"cannot write under {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_file(path: str | Path) -> Path:
    """Create the directory of the output file `path` and check that `path` is not a
    directory: the checks an output that is replaced anyway (a plot) needs before the work."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a file")
    check_output_dir(path.parent)
    return path


def check_csv(path: str | Path) -> Path:
    """Check, before any work, that :func:`append_rows` can append to `path`: it ends in .csv,
    its directory exists or can be created, and the file is absent, empty, or a CSV this tool
    wrote (its header has the provenance columns). Anything else on disk is left untouched."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"the results file must end in .csv, got {path}")
    check_output_file(path)
    if path.exists() and path.stat().st_size > 0:
        _read_own_csv(path, nrows=0)
    return path


def _read_own_csv(path: Path, nrows: int | None = None) -> pd.DataFrame:
    import pandas as pd

    try:
        df = pd.read_csv(path, nrows=nrows)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise ConfigError(f"{path} is not a CSV file this tool wrote ({type(exc).__name__}); "
                          "left it untouched: choose another file") from None
    missing = [c for c in PROVENANCE if c not in df.columns]
    if missing:
        raise ConfigError(f"{path} is not a CSV file this tool wrote (it has no "
                          f"{' or '.join(missing)} column); left it untouched: choose another "
                          "file") from None
    return df


def append_rows(path: str | Path, rows: list[dict], meta: dict) -> pd.DataFrame:
    """Append rows (each extended by meta) to a CSV, creating it with a header when absent.

    Columns that the existing file lacks are added (older rows get empty cells), so a file
    written by an older version keeps working. A file that is not a CSV written here is a
    ConfigError and stays as it was (:func:`check_csv` runs the same checks before the work)."""
    import pandas as pd

    path = check_csv(path)
    new = pd.DataFrame([{**row, **meta} for row in rows])
    if path.exists() and path.stat().st_size > 0:
        old = _read_own_csv(path)
        out = pd.concat([old, new], ignore_index=True, sort=False)
    else:
        out = new
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return new
