"""The run directory: the one module that knows its files, its lock and its rules.

A run directory holds::

    config.json        the fully resolved TrainConfig (rewritten with the new budget on resume)
    progress.csv       one row per finished iteration (PROGRESS_COLUMNS)
    checkpoints/       latest and best, each npz + json (es_compact.checkpoint), and
                       latest.prev, the generation before latest, used when latest is damaged
    final_eval.json    the evaluation of the final θ when the budget ended off the schedule
    plot.png           the learning curve `es-compact train` draws at the end
    experiment.json    provenance of a run trained by an experiment (command, commit, ...)
    .lock              held (flock) by the process training in it

Everything else in the directory is the user's and is never touched. The rules live here once:
what counts as a run (a valid config.json), whether it trained anything (a 'latest'
checkpoint), whether it is finished (its budget is spent and the final θ's evaluation is on
disk), and when a stored run may be resumed with a given configuration (everything that shapes
θ is equal; only the budget, evaluation schedule and parallelism may change).

A damaged ``latest`` (checksum mismatch, truncation, unparsable json, missing npz) falls back to
``latest.prev`` with a warning logged (``logging``, as the backends' warnings: the CLI shows
it as one line); a training session that fails before anything is trained leaves the directory
as it found it (RunDir.lock(leave_as_found=True)).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from es_compact import checkpoint
from es_compact.config import CHECKPOINTS as CHECKPOINT_NAMES
from es_compact.config import TrainConfig
from es_compact.errors import ConfigError
from es_compact.policies.architectures import applies
from es_compact.presets import resolve
from es_compact.state import TrainState, budget_spent

CONFIG, PROGRESS, CHECKPOINTS = "config.json", "progress.csv", "checkpoints"
FINAL_EVAL, PLOT, EXPERIMENT, LOCK = "final_eval.json", "plot.png", "experiment.json", ".lock"
TRACKING = "tracking.json"
"""What experiment tracking needs across a resume (es_compact.tracking: the W&B run's id)."""
RUN_FILES = (CONFIG, PROGRESS, CHECKPOINTS, PLOT, FINAL_EVAL, TRACKING)
"""A run's own files: what --overwrite (or a restart) deletes."""
MODES = ("new", "overwrite", "resume")

PROGRESS_COLUMNS = ["iteration", "timesteps", "wall_time_s", "train_return_mean",
                    "train_return_std", "train_return_max", "train_return_min",
                    "eval_return_mean", "eval_return_std", "eval_se", "eval_episodes",
                    "steps_per_s", "failed_rollouts", "theta_norm", "eval_seconds"]
"""eval_se: the evaluation's standard error (sample std / sqrt(episodes)); eval_episodes: how
many episodes it ran; eval_seconds: its wall time. A progress.csv begun before these columns
keeps its own header when resumed."""
TIMING_COLUMNS = ("wall_time_s", "steps_per_s", "eval_seconds")
"""The progress columns that measure time, so differ between otherwise identical runs."""
SHAPES_THETA = ("env", "policy", "strategy")
"""Config sections a resumed run must keep (with run.seed): they shape every θ."""


log = logging.getLogger(__name__)


class RunBusy(ConfigError):
    """Another process is training in this run directory."""


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else repr(x)
    return str(x)


class _Unset:
    def __repr__(self) -> str:
        return "unset"


UNSET = _Unset()
"""The value of an environment setting (env.kwargs.NAME) that one configuration does not give."""


def _flat(config: TrainConfig) -> dict[str, object]:
    """'section.field' -> value for every field of a configuration, each environment setting
    as its own 'env.kwargs.NAME', so that a refused resume names the one that differs."""
    flat = {f"{s}.{k}": v for s, sub in config.to_dict().items() for k, v in sub.items()}
    flat.update({f"env.kwargs.{k}": v for k, v in flat.pop("env.kwargs").items()})
    return flat


def _unused(config: TrainConfig) -> set[str]:
    """'section.field' of the settings this configuration does not read (squash judged as
    for continuous actions: a discrete run's squash is compared, harmlessly)."""
    return {f"{a.section}.{a.field}" for a in applies(config, discrete=False) if not a.used}


def resume_differences(stored: TrainConfig, wanted: TrainConfig) -> list[tuple[str, object,
                                                                                  object]]:
    """(field, stored value, wanted value) for every setting that shapes θ and differs: the
    sections SHAPES_THETA and run.seed, both configurations resolved, leaving out a setting
    neither configuration reads (a dcnn without a leaky ReLU reads no slope). Empty:
    compatible."""
    stored, wanted = resolve(stored), resolve(wanted)
    a, b = _flat(stored), _flat(wanted)
    ignore = _unused(stored) & _unused(wanted)
    keys = [k for k in {**a, **b} if k.split(".")[0] in SHAPES_THETA and k not in ignore]
    keys.append("run.seed")
    return [(k, a.get(k, UNSET), b.get(k, UNSET)) for k in keys
            if a.get(k, UNSET) != b.get(k, UNSET) or (
                # an environment setting of True is not one of 1 (nor 2.0 one of 2) to the
                # constructor, which may test `is True` or use it as a count
                k.startswith("env.kwargs.") and type(a[k]) is not type(b[k]))]


class RunDir:
    """A run directory at ``path`` (which need not exist yet). Constructing one does no I/O."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # File names: nobody else spells them.
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def progress_path(self) -> Path:
        return self.path / PROGRESS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def plot_path(self) -> Path:
        return self.path / PLOT

    # What the directory holds ------------------------------------------------------------------

    def has_config(self) -> bool:
        return self.config_path.exists()

    def read_config(self) -> TrainConfig:
        """The validated stored configuration; ConfigError naming the file when it is missing,
        unreadable or not a configuration."""
        if not self.config_path.exists():
            raise ConfigError(f"{self.path} holds no run (no {CONFIG})")
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
            return resolve(TrainConfig.from_dict(data))
        except (ValueError, TypeError) as exc:  # JSON, UTF-8 and ConfigError are ValueErrors
            raise ConfigError(f"{self.config_path} is not a valid run configuration: "
                              f"{exc}") from None

    def is_run(self) -> bool:
        """Whether it holds a run: a config.json that is a valid configuration. Only a run's
        files are ever replaced or deleted; any other directory is the user's."""
        try:
            self.read_config()
        except ConfigError:
            return False
        return True

    def has_checkpoint(self, name: str = "latest") -> bool:
        """Whether checkpoint NAME exists; 'latest' exists once a run trained anything (a run
        stopped inside its first iteration has only its config.json, and starts afresh), and
        counts its previous generation (a run whose latest.json is gone resumes from that)."""
        return checkpoint.exists(self.checkpoints, name) or (
            name == "latest" and checkpoint.exists(self.checkpoints, checkpoint.previous(name)))

    def latest_meta(self) -> dict | None:
        """The scalars of the latest checkpoint that verifies (iteration, timesteps, wall time,
        ...): latest, or the generation before it when latest is damaged; None when neither
        can be used."""
        try:
            return checkpoint.verify_newest(self.checkpoints, "latest")[1]
        except (checkpoint.CheckpointError, OSError):
            return None

    def final_eval(self, meta: dict | None = None) -> tuple[float, float] | None:
        """(mean, std) of the evaluation of the last θ, or None when it is not on disk: the
        progress row of the latest checkpoint's iteration, or final_eval.json for it. meta:
        the latest checkpoint's scalars, when the caller has read them already."""
        meta = meta or self.latest_meta()
        if meta is None:
            return None
        rec = self.read_final_eval()
        if rec is not None:
            if rec.get("iteration") == meta["iteration"] and \
                    rec.get("eval_return_mean") is not None:
                return float(rec["eval_return_mean"]), float(rec["eval_return_std"])
        if self.progress_path.exists():
            df = self.read_progress()
            last = df[df["iteration"] == meta["iteration"]]
            if len(last) and not math.isnan(last["eval_return_mean"].iloc[-1]):
                return (float(last["eval_return_mean"].iloc[-1]),
                        float(last["eval_return_std"].iloc[-1]))
        return None

    def finished(self, config: TrainConfig | None = None) -> bool:
        """Whether the run is finished under config's budget (default: its own): the latest
        checkpoint spent it and the final θ's evaluation is on disk."""
        meta = self.latest_meta()
        if meta is None:
            return False
        run = (config or self.read_config()).run
        last = math.nan if meta.get("last_eval") is None else float(meta["last_eval"])
        return budget_spent(run, int(meta["iteration"]), int(meta["timesteps"]), last,
                            float(meta["wall_time_s"])) and self.final_eval(meta) is not None

    def status(self, config: TrainConfig) -> str:
        """'new' (no run), 'restart' (a run that trained nothing), 'resume' (unfinished under
        config's budget) or 'done'. A run of another configuration is a ConfigError naming
        what differs, never silently reused."""
        if not self.has_config():
            return "new"
        diff = resume_differences(self.read_config(), config)
        if diff:
            raise ConfigError(f"{self.path} holds a run of another configuration "
                              f"({self._describe(diff)}); move it away or delete it to train "
                              "this one")
        if not self.has_checkpoint():
            return "restart"
        # A latest.json that cannot be read is 'resume': the trainer's restore then names what
        # is wrong with it, and nothing of the run is deleted, as a restart would.
        return "done" if self.finished(config) else "resume"

    def _describe(self, diff) -> str:
        return "; ".join(f"{k} is {a!r} in {self.config_path}, {b!r} here" for k, a, b in diff)

    # Modes: new, overwrite, resume -------------------------------------------------------------

    def check_mode(self, mode: str) -> None:
        """Refuse, before anything is written, a directory that does not suit the mode."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}")
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} exists and is not a directory")
        if mode == "resume":
            if not self.has_config():
                raise ConfigError(f"cannot resume: {self.path} holds no run")
            self.read_config()  # names the file when it is not a configuration
        else:
            self._check_not_foreign()

    def _check_not_foreign(self) -> None:
        """Refuse a non-empty directory that is not a run: its files are not ours to write
        over or delete, --overwrite or not. (A .lock alone is what a run stopped before
        writing its config.json leaves.)"""
        d = self.path
        if d.is_dir() and not self.is_run() and any(p.name != LOCK for p in d.iterdir()):
            why = (f"its {CONFIG} is not a run configuration" if self.has_config()
                   else f"it has no {CONFIG}")
            raise ConfigError(f"{d} is not empty and holds no run ({why}); choose another "
                              "directory for the run, or empty this one")

    def check_resumable(self, config: TrainConfig) -> None:
        """ConfigError naming every setting that shapes θ and differs from the stored run's."""
        stored = self.read_config()
        for what, a, b in (("environment", stored.env.id, config.env.id),
                           ("architecture", stored.policy.arch, config.policy.arch)):
            if a != b:
                raise ConfigError(f"cannot resume: {self.path} was trained on {what} {a}, "
                                  f"not {b}")
        diff = resume_differences(stored, config)
        if diff:
            raise ConfigError(f"cannot resume: {self._describe(diff)}")

    def prepare(self, mode: str, config: TrainConfig) -> bool:
        """Make the directory ready for training (under the lock); True when training
        continues from its latest checkpoint."""
        if mode == "resume":
            self.check_resumable(config)
            if self.has_checkpoint():
                return True
            # Stopped inside its first iteration: nothing to continue, so start it afresh.
            self.clear()
            return False
        self._check_not_foreign()  # again: the directory may have changed since check_mode
        if self.is_run():
            # A run without a checkpoint trained nothing, so starting it again loses nothing;
            # refusing would leave a directory that can be neither resumed nor rerun.
            if mode != "overwrite" and self.has_checkpoint():
                raise ConfigError(f"{self.path} already holds a run; use --resume to continue "
                                  "it or --overwrite to replace it")
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        return False

    def clear(self) -> None:
        """Delete the run's own files (never anything else the directory holds)."""
        for name in RUN_FILES:
            p = self.path / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    @contextlib.contextmanager
    def lock(self, leave_as_found: bool = False) -> Iterator[None]:
        """Hold an exclusive lock on .lock while training, so two processes (a second `make
        paper`, a resumed run started twice) never write one run directory at once. The
        operating system drops the lock when the holder exits, however it exits.

        leave_as_found: when the body raises an error (not an interrupt), put the directory
        back as it was found before releasing the lock: the run files this session wrote are
        deleted when there were none before and nothing trained is on disk (no 'latest'),
        .lock gets its old content back (or goes), and the directories the lock created are
        removed when empty. So a refused start (an unreachable Ray cluster, a full disk) leaves no
        trace, and an existing run directory stays byte-identical."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            yield
            return
        lock_path = self.path / LOCK
        created = self._missing_dirs()
        old_lock = lock_path.read_bytes() if lock_path.is_file() else None
        had_run_files = any((self.path / name).exists() for name in RUN_FILES)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            _remove_empty(created)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunBusy(f"{self.path} is being trained by {holder}; wait for it or stop "
                          "it") from None
        try:
            try:
                with checkpoint.writing(lock_path):  # unbuffered: a full disk fails here, once
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
                yield
            except Exception:
                if leave_as_found:
                    if not had_run_files and not self.has_checkpoint():
                        self.clear()  # nothing trained, so nothing of value is lost
                    with contextlib.suppress(OSError):
                        if old_lock is None:
                            lock_path.unlink()
                        else:
                            os.ftruncate(fd, 0)
                            os.pwrite(fd, old_lock, 0)
                    _remove_empty(created)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _missing_dirs(self) -> list[Path]:
        """The run directory and those of its ancestors that do not exist yet, deepest first
        (what mkdir(parents=True) would create)."""
        out, p = [], self.path
        while not p.exists() and p != p.parent:
            out.append(p)
            p = p.parent
        return out

    # Writing and reading the run's files -------------------------------------------------------

    def write_config(self, config: TrainConfig) -> None:
        """config.json, fully resolved, every default written out."""
        checkpoint.atomic_write_text(self.config_path, json.dumps(config.to_dict(), indent=1))

    def append_progress(self, row: dict) -> None:
        """Append one row (the header first in a new file). A failed write (a full disk)
        leaves the file as it was: a partial row would read as a row on resume."""
        path = self.progress_path
        new = not path.exists()
        columns = PROGRESS_COLUMNS if new else self._progress_header()
        data = ((",".join(columns) + "\n" if new else "")
                + ",".join(_fmt(row[c]) for c in columns) + "\n").encode()
        with checkpoint.writing(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                except OSError:
                    if new:
                        path.unlink()
                    else:
                        os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)

    def _progress_header(self) -> list[str]:
        """progress.csv's own columns (an older run's lack the newer ones)."""
        with open(self.progress_path, newline="") as f:
            header = next(csv.reader(f), None)
        return [c for c in header if c in PROGRESS_COLUMNS] if header else PROGRESS_COLUMNS

    def truncate_progress(self, iteration: int) -> None:
        """Drop progress rows after `iteration` (a crash between the row and the checkpoint
        write leaves rows the resumed run will write again)."""
        if not self.progress_path.exists():
            return
        with open(self.progress_path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= iteration]
        checkpoint.atomic_write_text(self.progress_path,
                                     "".join(",".join(r) + "\n" for r in kept))

    def read_progress(self) -> pd.DataFrame:
        """progress.csv as a frame; ConfigError when there is none or it is empty."""
        if not self.progress_path.exists():
            raise ConfigError(f"{self.path} has no {PROGRESS}")
        try:
            return pd.read_csv(self.progress_path)
        except pd.errors.EmptyDataError:
            raise ConfigError(f"{self.progress_path} is empty") from None

    def write_final_eval(self, record: dict) -> None:
        checkpoint.atomic_write_text(self.path / FINAL_EVAL, json.dumps(record))

    def read_final_eval(self) -> dict | None:
        """final_eval.json's record as written, or None when there is none."""
        path = self.path / FINAL_EVAL
        return json.loads(path.read_text()) if path.exists() else None

    def write_experiment(self, record: dict) -> None:
        checkpoint.atomic_write_text(self.path / EXPERIMENT, json.dumps(record, indent=1))

    def read_experiment(self) -> dict | None:
        path = self.path / EXPERIMENT
        return json.loads(path.read_text()) if path.exists() else None

    def write_tracking(self, record: dict) -> None:
        checkpoint.atomic_write_text(self.path / TRACKING, json.dumps(record, indent=1))

    def read_tracking(self) -> dict:
        """The tracking record ({} when there is none or it is unreadable: a tracker then
        starts a new record, and nothing of the training depends on it)."""
        try:
            record = json.loads((self.path / TRACKING).read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def save_state(self, name: str, state: TrainState, config: TrainConfig,
                   num_params: int) -> None:
        """Checkpoint NAME ('latest' or 'best') of a training state; 'latest' keeps the
        generation before it as 'latest.prev'."""
        checkpoint.save(self.checkpoints, name, *state.to_checkpoint(config, num_params),
                        keep_previous=name == "latest")

    def load_checkpoint(self, name: str = "latest") -> tuple[dict[str, np.ndarray], dict]:
        """Checkpoint NAME's arrays and scalars; CheckpointError if missing or corrupt. A
        damaged 'latest' falls back to the generation before it, with a warning logged that
        says why (resuming from it is exact: the trainer truncates progress.csv to it)."""
        if name not in CHECKPOINT_NAMES:
            raise ConfigError(f"unknown checkpoint {name!r}: choose "
                              f"{' or '.join(CHECKPOINT_NAMES)}")
        if name != "latest":
            return checkpoint.load(self.checkpoints, name)
        got = checkpoint.load_newest(self.checkpoints, name)
        if got.damage is not None:
            log.warning("%s; using the generation before it, %s (iteration %s)", got.damage,
                        self.checkpoints / f"{got.name}.json", got.meta.get("iteration"))
        return got.arrays, got.meta

    def npz_path(self, name: str) -> Path:
        return checkpoint.npz_path(self.checkpoints, name)

    def label(self) -> str:
        """'env / arch / algo' of the stored configuration."""
        c = self.read_config()
        return f"{c.env.id} / {c.policy.arch} / {c.strategy.algo}"


def _remove_empty(dirs: list[Path]) -> None:
    """Remove these directories, deepest first, while they are empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def load_run_config(path: str | Path) -> TrainConfig:
    """The validated configuration stored in a run directory (RunDir.read_config)."""
    return RunDir(path).read_config()


def run_lock(path: str | Path) -> contextlib.AbstractContextManager:
    """Hold a run directory's lock (RunDir.lock)."""
    return RunDir(path).lock()


def default_path(config: TrainConfig, root: str | Path = "runs") -> Path:
    """Where a run goes when no --out is given: runs/ENV_ARCH_seedSEED."""
    env = config.env.id.replace(":", "_").replace("/", "_")
    return Path(root) / f"{env}_{config.policy.arch}_seed{config.run.seed}"


@dataclasses.dataclass(frozen=True)
class Target:
    """Where and how a `train` invocation runs: the directory (None: default_path of the
    built configuration) and the mode, with the stored configuration when resuming."""

    path: Path | None
    mode: str
    stored: TrainConfig | None = None


def target(out: str | Path | None = None, resume: str | Path | None = None,
           overwrite: bool = False, config_file: str | Path | None = None) -> Target:
    """The rules of --out, --resume, --overwrite and --config, checked before anything is
    built: a resumed run keeps its directory and its stored settings (a new budget, workers
    and backend may be given as flags), so it takes neither --config nor another --out."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if not resume:
        return Target(Path(out) if out else None, "overwrite" if overwrite else "new")
    run = RunDir(resume)
    stored = run.read_config()
    if config_file:
        raise ConfigError(f"--config cannot be combined with --resume: the run continues "
                          f"with {run.config_path}; give a new budget as flags "
                          "(--iterations, --timesteps, --time-limit)")
    if out and Path(out).resolve() != run.path.resolve():
        raise ConfigError("--out cannot be combined with --resume: a run continues in its "
                          "own directory (copy it first to continue it elsewhere)")
    return Target(run.path, "resume", stored)
