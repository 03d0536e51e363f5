"""Experiment tracking: TensorBoard and Weights & Biases as thin adapters of the trainer's
per-iteration callback (``Trainer.run(on_iteration)``).

Each adapter logs every progress column at step = timesteps (x = environment steps, as
Stable-Baselines3 logs), the resolved configuration once (as TensorBoard hparams / the W&B
config) and, at the end, the final evaluation and best evaluation. A resumed run continues the
same curves without duplicate steps:

- TensorBoard: the writer opens at the first row it is given with ``purge_step`` = that row's
  step, so events a stopped run wrote beyond its last checkpoint (the rows the resumed run
  trains again) are hidden by TensorBoard and replaced by the new ones;
- W&B: the run keeps one id (stored in the run directory's tracking record) and resumes it; a
  row at or before the last step logged is not sent again (the trainer's rows are bitwise the
  same on a resume, timings apart).

Both packages are optional extras (``es-compact[tensorboard]``, ``es-compact[wandb]``); a
missing one is a ConfigError naming the extra. Library code never prints: the adapters only
write events.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from pathlib import Path

from es_compact.config import TrainConfig
from es_compact.errors import ConfigError
from es_compact.run_dir import RunDir


def _require(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed: pip install 'es-compact[{extra}]' "
                          f"(or pip install {module})") from None


def flat_config(config: TrainConfig) -> dict:
    """The resolved configuration as section.field -> bool / int / float / str (tuples, env.kwargs
    and None as their text): what TensorBoard's hparams accept."""
    out = {}
    for section, fields in config.to_dict().items():
        for name, value in fields.items():
            if value is None or isinstance(value, (list, tuple, dict)):
                value = str(value)
            out[f"{section}.{name}"] = value
    return out


def _scalars(row: dict) -> dict[str, float]:
    """The row's numeric columns that hold a number (NaN: not logged this iteration)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _final(summary: dict) -> dict[str, float]:
    return {k: float(summary[k]) for k in ("final_eval", "best_eval")
            if isinstance(summary.get(k), (int, float)) and math.isfinite(summary[k])}


class TensorBoard:
    """Events in DIR/<run directory's name>; every progress column as progress/<column>."""

    def __init__(self, directory: str | Path, run_dir: str | Path, config: TrainConfig):
        self._module = _require("tensorboardX", "tensorboard")
        self.logdir = Path(directory) / Path(run_dir).resolve().name
        self.config = config
        self.writer = None

    def _open(self, step: int) -> None:
        # tensorboardX names a file by the second it opened it; a run resumed within the same
        # second would overwrite the stopped one's file. A counter keeps every file and sorts
        # them in the order they were written, the order TensorBoard reads (and purges) in.
        n = len(list(self.logdir.glob("events.out.tfevents.*"))) if self.logdir.is_dir() else 0
        self.writer = self._module.SummaryWriter(logdir=str(self.logdir), purge_step=step,
                                                 filename_suffix=f".{n:04d}")
        self.writer.add_text("config", "\n".join(
            f"    {k} = {v!r}" for k, v in flat_config(self.config).items()), step)

    def log(self, row: dict) -> None:
        step = int(row["timesteps"])
        if self.writer is None:
            self._open(step)
        for key, value in _scalars(row).items():
            self.writer.add_scalar(f"progress/{key}", value, step)
        self.writer.flush()  # tensorboardX writes from a thread: this bounds what a stop loses

    def finish(self, summary: dict) -> None:
        from tensorboardX.summary import hparams

        if self.writer is None:  # nothing trained in this session: nothing to add
            return
        metrics = {f"final/{k}": v for k, v in _final(summary).items()}
        exp, ssi, sei = hparams(flat_config(self.config), metrics)
        fw = self.writer.file_writer
        for s in (exp, ssi, sei):
            fw.add_summary(s)
        step = int(summary.get("timesteps") or 0)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.close()

    def close(self) -> None:
        """Write what is pending (a run stopped early: no final evaluation)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandB:
    """A W&B run (project PROJECT, name = the run directory's name) resumed by its stored id."""

    def __init__(self, project: str | None, run_dir: str | Path, config: TrainConfig):
        self._module = _require("wandb", "wandb")
        self.dir = RunDir(run_dir)
        self.project = project or "es-compact"
        self.config = config
        self.run = None
        self.last_step = -1

    def _open(self) -> None:
        record = self.dir.read_tracking()
        # A new id for a new run (it names the run on the W&B server, not a training choice)
        run_id = record.get("wandb_id") or secrets.token_hex(6)
        self.last_step = int(record.get("wandb_last_step", -1))
        self.run = self._module.init(project=self.project, id=run_id, resume="allow",
                                     name=self.dir.path.resolve().name,
                                     config=self.config.to_dict())
        self.dir.write_tracking({**record, "wandb_id": run_id,
                                 "wandb_last_step": self.last_step})

    def log(self, row: dict) -> None:
        if self.run is None:
            self._open()
        step = int(row["timesteps"])
        if step <= self.last_step:  # logged before the stop this run resumes from
            return
        self.run.log(_scalars(row), step=step)
        self.last_step = step
        self.dir.write_tracking({**self.dir.read_tracking(), "wandb_last_step": step})

    def finish(self, summary: dict) -> None:
        if self.run is None:
            return
        for key, value in _final(summary).items():
            self.run.summary[key] = value
        self.close()

    def close(self) -> None:
        """End the W&B run (a run stopped early: no final evaluation)."""
        if self.run is not None:
            self.run.finish()
            self.run = None


def trackers(config: TrainConfig, run_dir: str | Path, tensorboard: str | None = None,
             wandb_project: str | None = None, wandb: bool = False) -> list:
    """The adapters asked for (ConfigError for a missing package, before anything runs)."""
    out: list = []
    if tensorboard:
        out.append(TensorBoard(tensorboard, run_dir, config))
    if wandb:
        out.append(WandB(wandb_project, run_dir, config))
    return out


def with_trackers(on_iteration: Callable[[dict, dict], None] | None,
                  adapters: list) -> Callable[[dict, dict], None] | None:
    """on_iteration, then every adapter's log(row)."""
    if not adapters:
        return on_iteration

    def both(row: dict, info: dict) -> None:
        if on_iteration is not None:
            on_iteration(row, info)
        for a in adapters:
            a.log(row)

    return both
