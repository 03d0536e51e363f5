"""Checkpoints as npz (arrays) + json (scalars), written atomically, read without pickle.

``save(dir, name, arrays, meta)`` writes the arrays to a new file ``name-<sha>.npz`` (renamed
into place from a temporary), then ``name.json``, which names that file and records its
SHA-256, then deletes the previous npz. Renaming the json into place is the one step that
switches a checkpoint to its new state, so a process killed anywhere in ``save`` leaves the old
checkpoint or the new one, never a json of one state beside the arrays of another; and a
truncated or corrupted file is detected on load rather than silently resumed from. Checkpoints
written before this layout (``name.npz``, no file named in the json) still load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from es_compact.errors import ESCompactError

FORMAT = "es-compact-checkpoint/1"
OWN_KEYS = ("format", "npz", "npz_sha256")
"""The keys save() adds to a checkpoint's json beside the caller's scalars."""


class CheckpointError(ESCompactError):
    """A checkpoint is missing, truncated or corrupted."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(directory: str | Path, name: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{name}.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        f.flush()
        os.fsync(f.fileno())
    sha = _sha256(tmp)
    npz = directory / f"{name}-{sha[:16]}.npz"
    os.replace(tmp, npz)
    record = {"format": FORMAT, **meta, "npz": npz.name, "npz_sha256": sha}
    atomic_write_text(directory / f"{name}.json", json.dumps(record, indent=1, sort_keys=True))
    ours = re.compile(re.escape(name) + r"(-[0-9a-f]{16})?\.npz")
    for old in directory.iterdir():
        if old != npz and ours.fullmatch(old.name):
            old.unlink()
    return npz


def npz_path(directory: str | Path, name: str) -> Path:
    """The arrays file of checkpoint ``name``, as its json names it (``name.npz`` for a
    checkpoint of the earlier layout or when the json is unreadable)."""
    directory = Path(directory)
    try:
        file = json.loads((directory / f"{name}.json").read_text()).get("npz")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        file = None
    if not isinstance(file, str) or Path(file).name != file:
        file = f"{name}.npz"
    return directory / file


def exists(directory: str | Path, name: str) -> bool:
    return (Path(directory) / f"{name}.json").exists()


def load(directory: str | Path, name: str) -> tuple[dict[str, np.ndarray], dict]:
    directory = Path(directory)
    meta_path = directory / f"{name}.json"
    if not meta_path.exists():
        raise CheckpointError(f"no checkpoint '{name}' in {directory}")
    try:  # before looking for the arrays: an unreadable json is corrupt, not missing
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {meta_path} is corrupted: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not an es-compact checkpoint")
    npz = npz_path(directory, name)
    if not npz.exists():
        raise CheckpointError(f"checkpoint {meta_path} names {npz.name}, which is missing")
    if _sha256(npz) != meta.get("npz_sha256"):
        raise CheckpointError(f"checkpoint {npz} is truncated or corrupted (checksum mismatch)")
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {npz} cannot be read: {exc}") from None
    return arrays, meta
