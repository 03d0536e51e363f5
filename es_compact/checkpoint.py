"""Checkpoints as npz (arrays) + json (scalars), written atomically, read without pickle.

``save(dir, name, arrays, meta)`` writes the arrays to a new file ``name-<sha>.npz`` (renamed
into place from a temporary), then ``name.json``, which names that file and records its
SHA-256 and size and a SHA-256 of the json's own scalars, then deletes the previous npz.
Renaming the json into place is the one step that switches a checkpoint to its new state, so a
process killed anywhere in ``save`` leaves the old checkpoint or the new one, never a json of
one state beside the arrays of another; and a truncated or corrupted file is detected on load
(and said to be corrupt, with why) rather than silently resumed from. Checkpoints written
before this layout (``name.npz``, no file named in the json) still load.

``save(..., keep_previous=True)`` also keeps the generation before: the json being replaced is
first copied to ``name.prev.json`` (its npz is kept), when it verifies; a damaged one is not
copied, so ``name.prev`` is always the last good generation before the newest.
``load_newest`` falls back to it when the newest is damaged and says why. An OSError while
writing (a full disk: ENOSPC) names the file being written, and the partial file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_compact.errors import ESCompactError

FORMAT = "es-compact-checkpoint/1"
OWN_KEYS = ("format", "npz", "npz_sha256", "npz_bytes", "json_sha256")
"""The keys save() adds to a checkpoint's json beside the caller's scalars."""
PREVIOUS = ".prev"
"""``name + PREVIOUS`` is the generation kept before checkpoint ``name``."""


class CheckpointError(ESCompactError):
    """A checkpoint is missing, truncated or corrupted."""


def previous(name: str) -> str:
    """The name of the generation kept before checkpoint ``name`` ('latest.prev')."""
    return name + PREVIOUS


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_sha256(record: dict) -> str:
    """SHA-256 of a record's scalars (without json_sha256), as they read back from the json:
    what a checkpoint's json records as its 'json_sha256'. Code that edits a checkpoint's
    scalars on purpose (a test marking one) records it anew, or the edit reads as damage."""
    body = {k: v for k, v in record.items() if k != "json_sha256"}
    canonical = json.dumps(json.loads(json.dumps(body)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextlib.contextmanager
def writing(path: str | Path, partial: str | Path | None = None) -> Iterator[None]:
    """Name ``path`` in an OSError raised while writing it (a write into an open file raises
    one without a file name: a full disk's ENOSPC names nothing) and delete ``partial``, the
    temporary being written, so a failed write leaves nothing behind."""
    try:
        yield
    except OSError as exc:
        if partial is not None:
            with contextlib.suppress(OSError):
                Path(partial).unlink(missing_ok=True)
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def save(directory: str | Path, name: str, arrays: dict[str, np.ndarray], meta: dict,
         keep_previous: bool = False) -> Path:
    """Write checkpoint ``name``; keep_previous: keep the generation it replaces as
    ``name.prev`` (when that one verifies)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{name}.npz.tmp"
    with writing(tmp, tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            f.flush()
            os.fsync(f.fileno())
    sha, size = _sha256(tmp), tmp.stat().st_size
    npz = directory / f"{name}-{sha[:16]}.npz"
    os.replace(tmp, npz)
    try:
        kept = {npz.name}
        if keep_previous:
            good = _verified_text(directory, name)
            if good is not None:  # a damaged newest never replaces the last good generation
                atomic_write_text(directory / f"{previous(name)}.json", good)
            if exists(directory, previous(name)):
                kept.add(npz_path(directory, previous(name)).name)
        record = {"format": FORMAT, **meta, "npz": npz.name, "npz_sha256": sha,
                  "npz_bytes": size}
        record["json_sha256"] = json_sha256(record)
        atomic_write_text(directory / f"{name}.json",
                          json.dumps(record, indent=1, sort_keys=True))
    except Exception:
        # Not switched to the new arrays (a full disk): delete them unless a json names them
        # (the same arrays saved twice share one file). An interrupt leaves them, harmlessly:
        # the next save deletes every npz no json names.
        if npz.name not in _named(directory, name):
            with contextlib.suppress(OSError):
                npz.unlink()
        raise
    kept |= _named(directory, name)
    ours = re.compile(re.escape(name) + r"(-[0-9a-f]{16})?\.npz")
    for old in directory.iterdir():
        if old.name not in kept and ours.fullmatch(old.name):
            old.unlink()
    return npz


def _named(directory: Path, name: str) -> set[str]:
    """The npz files the jsons of checkpoint name and its previous generation name."""
    return {npz_path(directory, n).name for n in (name, previous(name))
            if exists(directory, n)}


def _verified_text(directory: Path, name: str) -> str | None:
    """The text of checkpoint name's json when it verifies and names its npz (this layout),
    else None."""
    try:
        meta = verify(directory, name)
        text = (directory / f"{name}.json").read_text()
    except (CheckpointError, OSError):
        return None
    return text if "npz" in meta else None


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


def _read_json(meta_path: Path) -> dict:
    try:
        raw = meta_path.read_bytes()
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {meta_path} is a directory, not a file") from None
    if not raw.strip():
        raise CheckpointError(f"checkpoint {meta_path} is corrupted: it is empty "
                              f"({len(raw)} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"checkpoint {meta_path} is corrupted: not UTF-8 text") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {meta_path} is truncated or corrupted (not valid "
                              f"JSON: {exc}; {len(raw)} bytes)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not an es-compact checkpoint")
    if "json_sha256" in meta and meta["json_sha256"] != json_sha256(meta):
        raise CheckpointError(f"checkpoint {meta_path} is corrupted (checksum mismatch of "
                              "its scalars)")
    return meta


def verify(directory: str | Path, name: str) -> dict:
    """Checkpoint name's scalars once its json and its npz's size and checksum are checked;
    CheckpointError saying what is missing, truncated or corrupted."""
    directory = Path(directory)
    meta_path = directory / f"{name}.json"
    if not meta_path.exists():
        raise CheckpointError(f"no checkpoint '{name}' in {directory}")
    meta = _read_json(meta_path)  # before looking for the arrays: unreadable is not missing
    npz = npz_path(directory, name)
    if not npz.exists():
        raise CheckpointError(f"checkpoint {meta_path} names {npz.name}, which is missing")
    size = npz.stat().st_size
    if "npz_bytes" in meta and size != meta["npz_bytes"]:
        raise CheckpointError(f"checkpoint {npz} is truncated or corrupted ({size} bytes "
                              f"where {meta['npz_bytes']} were written)")
    if _sha256(npz) != meta.get("npz_sha256"):
        raise CheckpointError(f"checkpoint {npz} is truncated or corrupted (checksum mismatch)")
    return meta


def load(directory: str | Path, name: str) -> tuple[dict[str, np.ndarray], dict]:
    """Checkpoint name's arrays and scalars; CheckpointError if missing or damaged."""
    meta = verify(directory, name)
    npz = npz_path(directory, name)
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {npz} cannot be read: {exc}") from None
    return arrays, meta


@dataclass(frozen=True, eq=False)
class Loaded:
    """A checkpoint read by load_newest: which generation, and why not the newest."""

    arrays: dict[str, np.ndarray]
    meta: dict
    name: str
    """The generation read: the checkpoint's name, or previous(name) after a fallback."""
    damage: str | None = None
    """Why the newest generation could not be used (None: it was used)."""


def load_newest(directory: str | Path, name: str) -> Loaded:
    """Checkpoint name, or its previous generation when the newest is missing or damaged
    (Loaded.damage says why); CheckpointError naming both when neither can be used."""
    try:
        return Loaded(*load(directory, name), name)
    except CheckpointError as newest:
        if not exists(directory, previous(name)):
            raise
        try:
            return Loaded(*load(directory, previous(name)), previous(name), str(newest))
        except CheckpointError as exc:
            raise CheckpointError(f"{newest}; the generation before it is unusable too: "
                                  f"{exc}") from None


def verify_newest(directory: str | Path, name: str) -> tuple[str, dict]:
    """(generation, scalars) of what load_newest would read, without reading the arrays."""
    try:
        return name, verify(directory, name)
    except CheckpointError:
        if not exists(directory, previous(name)):
            raise
        return previous(name), verify(directory, previous(name))
