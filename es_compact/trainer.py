"""The training loop: ask -> backend.run -> tell -> log -> checkpoint.

A run directory holds ``config.json`` (fully resolved), ``progress.csv`` (one row per
iteration), and ``checkpoints/{latest,best}.json``, each beside the npz it names (see
es_compact.checkpoint). Every random choice derives from (seed, iteration, index), so the
only state carried between iterations is θ, the observation statistics, the optimiser's
moments and two counters, all in the checkpoint: a resumed run continues bitwise identically.
``latest`` is written every ``run.checkpoint_every_s`` seconds (each write costs two fsyncs),
after the last iteration, and on any stop, from the state of the last finished iteration.
The library never prints: pass ``on_iteration`` to see rows.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from es_compact import checkpoint
from es_compact.backends import Backend, make_backend
from es_compact.config import TrainConfig
from es_compact.envs import env_spaces
from es_compact.errors import ConfigError, ESCompactError
from es_compact.noise import NoiseTable, build_table
from es_compact.normalizer import RunningStat
from es_compact.policies import make_policy
from es_compact.presets import resolve
from es_compact.rollout import EVAL, TRAIN, Broadcast, Task, env_seed
from es_compact.strategies import Directions, make_strategy

PROGRESS_COLUMNS = ["iteration", "timesteps", "wall_time_s", "train_return_mean",
                    "train_return_std", "train_return_max", "train_return_min",
                    "eval_return_mean", "eval_return_std", "steps_per_s", "failed_rollouts",
                    "theta_norm"]
TIMING_COLUMNS = ("wall_time_s", "steps_per_s")
RUN_FILES = ("config.json", "progress.csv", "checkpoints", "plot.png", "final_eval.json")


class TrainingError(ESCompactError):
    """Training cannot go on (too many failed rollouts); a valid checkpoint was written."""


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The validated configuration stored in a run directory; ConfigError naming the file
    when it is missing, unreadable or not a configuration."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError(f"{run_dir} holds no run (no config.json)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))).validate()
    except (ValueError, TypeError) as exc:  # JSON, UTF-8 and ConfigError are ValueErrors
        raise ConfigError(f"{path} is not a valid run configuration: {exc}") from None


def is_run(run_dir: str | Path) -> bool:
    """Whether run_dir holds a run: a config.json that is a valid configuration. Only a run's
    files are ever replaced or deleted; any other directory is the user's."""
    try:
        load_run_config(run_dir)
    except ConfigError:
        return False
    return True


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether a run has trained anything: a 'latest' checkpoint to resume from. A run stopped
    inside its first iteration has only its config.json, and starts afresh."""
    return (Path(run_dir) / "checkpoints" / "latest.json").exists()


def _fmt(x) -> str:
    if isinstance(x, float):
        return "" if math.isnan(x) else repr(x)
    return str(x)


class RunBusy(ConfigError):
    """Another process is training in this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on run_dir/.lock while training, so two processes (a second
    `make paper`, a resumed run started twice) never write one run directory at once. The
    operating system drops the lock when the holder exits, however it exits."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise RunBusy(f"{run_dir} is being trained by {holder}; wait for it or stop it") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


class Trainer:
    """Train one policy. mode: 'new' (refuses a directory holding a trained run), 'overwrite'
    (replaces a run's files) or 'resume' (continue from checkpoints/latest with this config's
    budget). A run that trained nothing (no checkpoint) starts afresh in every mode; a
    non-empty directory that is not a run is refused in every mode, and nothing in it is
    touched."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, mode: str = "new",
                 backend: Backend | None = None):
        if mode not in ("new", "overwrite", "resume"):
            raise ConfigError(f"unknown mode {mode!r}")
        self.config = resolve(config)
        self.run_dir = Path(run_dir)
        self.mode = mode
        self._backend = backend
        self.policy = None  # built by check()

    # Set-up -----------------------------------------------------------------------------------

    def check(self) -> None:
        """Everything that can be checked before anything is written: the run directory suits
        the mode, and the environment and the policy can be built. run() calls it first, so a
        mistyped environment or a directory of someone else's files leaves no trace; call it
        yourself to learn of those before announcing a run."""
        d = self.run_dir
        if d.exists() and not d.is_dir():
            raise ConfigError(f"{d} exists and is not a directory")
        if self.mode == "resume":
            if not (d / "config.json").exists():
                raise ConfigError(f"cannot resume: {d} holds no run")
            load_run_config(d)  # names the file when it is not a configuration
        else:
            self._check_not_foreign(d)
        if self.policy is None:
            obs_space, act_space = env_spaces(self.config.env.id)
            self.policy = make_policy(self.config.policy, obs_space, act_space,
                                      seed=self.config.run.seed)

    @staticmethod
    def _check_not_foreign(d: Path) -> None:
        """Refuse a non-empty directory that is not a run: its files are not ours to write
        over or delete, --overwrite or not. (A .lock alone is what a run stopped before
        writing its config.json leaves.)"""
        if d.is_dir() and not is_run(d) and any(p.name != ".lock" for p in d.iterdir()):
            why = ("its config.json is not a run configuration" if (d / "config.json").exists()
                   else "it has no config.json")
            raise ConfigError(f"{d} is not empty and holds no run ({why}); choose another "
                              "directory for the run, or empty this one")

    def _prepare_dir(self) -> bool:
        """Make the run directory ready under the lock; True when training continues from its
        checkpoint."""
        d = self.run_dir
        if self.mode == "resume":
            stored = load_run_config(d)
            for what, a, b in (("environment", stored.env.id, self.config.env.id),
                               ("architecture", stored.policy.arch, self.config.policy.arch)):
                if a != b:
                    raise ConfigError(f"cannot resume: {d} was trained on {what} {a}, not {b}")
            keep = ("env", "policy", "strategy")
            if any(getattr(resolve(stored), k) != getattr(self.config, k) for k in keep) or \
                    stored.run.seed != self.config.run.seed:
                raise ConfigError(f"cannot resume: the configuration differs from {d}/config.json "
                                  "beyond the budget")
            if has_checkpoint(d):
                return True
            # Stopped inside its first iteration: nothing to continue, so start it afresh.
            self._clear_run_files(d)
            return False
        self._check_not_foreign(d)  # again: the directory may have changed since check()
        if is_run(d):
            # A run without a checkpoint trained nothing, so starting it again loses nothing;
            # refusing would leave a directory that can be neither resumed nor rerun.
            if self.mode != "overwrite" and has_checkpoint(d):
                raise ConfigError(f"{d} already holds a run; use --resume to continue it or "
                                  "--overwrite to replace it")
            self._clear_run_files(d)
        d.mkdir(parents=True, exist_ok=True)
        return False

    @staticmethod
    def _clear_run_files(d: Path) -> None:
        """Delete a run's own files (never anything else the directory holds)."""
        for name in RUN_FILES:
            p = d / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _setup(self, backend: Backend):
        cfg = self.config
        self.table = None
        if cfg.strategy.exploration == "gaussian":
            size = cfg.run.noise_table_size
            self.table = NoiseTable(build_table(cfg.run.seed, size,
                                                out=backend.table_buffer(size)))
        self.directions = Directions(cfg.strategy.exploration, cfg.run.seed,
                                     self.policy.num_params, self.table)
        self.strategy = make_strategy(cfg.strategy, self.directions)
        self.stats = RunningStat(self.policy.obs_dim, cfg.strategy.obs_norm_floor)
        self.theta = self.policy.init(np.random.default_rng([cfg.run.seed, 0x1417]))
        self.iteration, self.timesteps, self.wall0 = 0, 0, 0.0
        self.best_eval, self.last_eval = -math.inf, math.nan
        self.env_seconds = self.busy_seconds = 0.0  # rollout time inside the env / in all
        # The state after the last finished iteration, replaced in one assignment, so an
        # interrupt landing anywhere in step() still finds a consistent state to write.
        self._finished: tuple[dict, dict] | None = None
        self._written, self._written_at = -1, -math.inf  # the 'latest' on disk

    # State ------------------------------------------------------------------------------------

    def _save(self, name: str) -> None:
        self._write(name, self._snapshot())

    def _snapshot(self) -> tuple[dict, dict]:
        """The training state as checkpoint arrays and meta, copied, so it stays the state of
        this moment while training goes on."""
        opt_arrays, opt_meta = self.strategy.state()
        arrays = {k: np.array(v, copy=True) for k, v in
                  {"theta": self.theta, **self.stats.state(), **opt_arrays}.items()}
        meta = {"iteration": self.iteration, "timesteps": self.timesteps,
                "wall_time_s": self.wall0 + time.perf_counter() - self._t0,
                "best_eval": None if self.best_eval == -math.inf else self.best_eval,
                "last_eval": None if math.isnan(self.last_eval) else self.last_eval,
                "env": self.config.env.id, "arch": self.config.policy.arch,
                "num_params": self.policy.num_params,
                "rng": {"seed": self.config.run.seed, "next_iteration": self.iteration,
                        "note": "all randomness derives from (seed, iteration, index)"},
                **opt_meta}
        return arrays, meta

    def _write(self, name: str, snap: tuple[dict, dict]) -> None:
        checkpoint.save(self.run_dir / "checkpoints", name, *snap)
        if name == "latest":
            self._written = snap[1]["iteration"]
            self._written_at = time.perf_counter()

    def _flush_latest(self) -> None:
        """Write the last finished iteration's state as 'latest' if it is not on disk yet."""
        snap = self._finished
        if snap is not None and snap[1]["iteration"] > self._written:
            self._write("latest", snap)

    def _restore(self) -> None:
        arrays, meta = checkpoint.load(self.run_dir / "checkpoints", "latest")
        if arrays["theta"].shape != (self.policy.num_params,):
            raise checkpoint.CheckpointError("checkpoint θ does not fit this policy")
        self.theta = arrays["theta"].astype(np.float64)
        self.stats.load(arrays)
        self.strategy.load(arrays, meta)
        self.iteration, self.timesteps = int(meta["iteration"]), int(meta["timesteps"])
        self.wall0 = float(meta["wall_time_s"])
        self._written = self.iteration  # this state is the 'latest' on disk
        self.best_eval = -math.inf if meta["best_eval"] is None else float(meta["best_eval"])
        self.last_eval = math.nan if meta["last_eval"] is None else float(meta["last_eval"])
        # Drop progress rows written after the checkpoint (a crash between the two writes).
        prog = self.run_dir / "progress.csv"
        if prog.exists():
            with open(prog, newline="") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.iteration]
            checkpoint.atomic_write_text(prog, "".join(",".join(r) + "\n" for r in kept))

    # The loop ---------------------------------------------------------------------------------

    def _done(self, elapsed: float) -> bool:
        r = self.config.run
        return ((r.iterations is not None and self.iteration >= r.iterations)
                or (r.target_return is not None and not math.isnan(self.last_eval)
                    and self.last_eval >= r.target_return)
                or (r.timesteps is not None and self.timesteps >= r.timesteps)
                or (r.time_limit is not None and elapsed >= r.time_limit))

    def remaining_s(self, elapsed: float, per_iter: float, steps_per_s: float) -> float:
        r, est = self.config.run, []
        if r.iterations is not None:
            est.append((r.iterations - self.iteration) * per_iter)
        if r.timesteps is not None and steps_per_s > 0:
            est.append(max(0, r.timesteps - self.timesteps) / steps_per_s)
        if r.time_limit is not None:
            est.append(max(0.0, r.time_limit - elapsed))
        return max(0.0, min(est)) if est else math.nan

    def evaluate(self, iteration: int, episodes: int) -> np.ndarray:
        mean, std = self._frozen_stats()
        bc = Broadcast(iteration, self.theta, mean, std, 0.0, None)
        tasks = [Task(EVAL, e, env_seed(self.config.run.seed, iteration, e, EVAL))
                 for e in range(episodes)]
        results = self.backend.run(bc, tasks)
        return np.array([r.returns[0] for r in results if not r.failed])

    def _frozen_stats(self):
        if self.config.strategy.normalizes_obs:
            return self.stats.frozen()
        return np.zeros(self.policy.obs_dim), np.ones(self.policy.obs_dim)

    def step(self) -> dict:
        """One iteration; returns its progress row."""
        cfg, it = self.config, self.iteration
        t_start = time.perf_counter()
        plan = self.strategy.ask(it)
        mean, std = self._frozen_stats()
        bc = Broadcast(it, self.theta, mean, std, float(cfg.strategy.noise_std), plan)
        tasks = [Task(TRAIN, k, env_seed(cfg.run.seed, it, k, TRAIN))
                 for k in range(plan.count)]
        results = sorted(self.backend.run(bc, tasks), key=lambda r: r.index)
        self.env_seconds += sum(r.env_seconds for r in results)
        self.busy_seconds += sum(r.busy_seconds for r in results)
        returns = np.array([r.returns for r in results])
        steps = np.array([r.steps for r in results])
        valid = np.array([not r.failed for r in results])
        failed = int((~valid).sum())
        if failed > cfg.run.max_failed_fraction * len(results):
            self._save("latest")
            first = next(r.error for r in results if r.failed)
            raise TrainingError(f"iteration {it}: {failed} of {len(results)} rollout pairs "
                                f"failed (first: {first}); checkpoint kept at iteration "
                                f"{self.iteration}")
        shifted = returns - cfg.env.reward_shift * steps
        self.theta = self.strategy.tell(self.theta, plan, shifted, valid)
        for r in results:  # direction order: independent of which worker ran what
            if not r.failed:
                self.stats.merge(r.obs_count, r.obs_mean, r.obs_m2)
        self.timesteps += int(steps.sum())
        self.iteration += 1
        eval_mean = eval_std = math.nan
        # Only on schedule, so a run split by a resume logs exactly the same rows.
        if self.iteration % cfg.run.eval_every == 0:
            ev = self.evaluate(self.iteration, cfg.run.eval_episodes)
            if ev.size:
                eval_mean, eval_std = float(ev.mean()), float(ev.std())
                self.last_eval = eval_mean
        dt = time.perf_counter() - t_start
        ok = returns[valid]
        row = {"iteration": self.iteration, "timesteps": self.timesteps,
               "wall_time_s": round(self.wall0 + time.perf_counter() - self._t0, 3),
               "train_return_mean": float(ok.mean()) if ok.size else math.nan,
               "train_return_std": float(ok.std()) if ok.size else math.nan,
               "train_return_max": float(ok.max()) if ok.size else math.nan,
               "train_return_min": float(ok.min()) if ok.size else math.nan,
               "eval_return_mean": eval_mean, "eval_return_std": eval_std,
               "steps_per_s": round(int(steps.sum()) / dt, 1), "failed_rollouts": failed,
               "theta_norm": float(np.linalg.norm(self.theta))}
        self._write_row(row)
        improved = not math.isnan(eval_mean) and eval_mean > self.best_eval
        if improved:
            self.best_eval = eval_mean
        snap = self._snapshot()
        if improved:
            self._write("best", snap)
        self._finished = snap
        if time.perf_counter() - self._written_at >= cfg.run.checkpoint_every_s:
            self._flush_latest()  # the first iteration's always: _written_at starts at -inf
        return row

    def _write_row(self, row: dict) -> None:
        prog = self.run_dir / "progress.csv"
        new = not prog.exists()
        with open(prog, "a", newline="") as f:
            if new:
                f.write(",".join(PROGRESS_COLUMNS) + "\n")
            f.write(",".join(_fmt(row[c]) for c in PROGRESS_COLUMNS) + "\n")

    def run(self, on_iteration: Callable[[dict, dict], None] | None = None) -> dict:
        """Train until the budget is spent. on_iteration(row, info) is called after each
        iteration with info = {last_eval, remaining_s, elapsed_s}."""
        self.check()  # before taking the lock, which creates the directory
        with run_lock(self.run_dir):
            return self._run_locked(on_iteration)

    def _run_locked(self, on_iteration) -> dict:
        restore = self._prepare_dir()
        self._t0 = time.perf_counter()
        self.backend = self._backend or make_backend(self.config.run.backend,
                                                     self.config.run.workers,
                                                     address=self.config.run.ray_address,
                                                     dashboard=self.config.run.ray_dashboard)
        try:
            self._setup(self.backend)
            if restore:
                self._restore()
            # Fully resolved, every default written out (on resume: with the new budget).
            checkpoint.atomic_write_text(self.run_dir / "config.json",
                                         json.dumps(self.config.to_dict(), indent=1))
            self.backend.start(self.config, self.table)
            start_it, t_loop = self.iteration, time.perf_counter()
            try:
                while not self._done(self.wall0 + time.perf_counter() - self._t0):
                    row = self.step()
                    if on_iteration is not None:
                        done_here = self.iteration - start_it
                        per_iter = (time.perf_counter() - t_loop) / done_here
                        elapsed = self.wall0 + time.perf_counter() - self._t0
                        on_iteration(row, {"last_eval": self.last_eval, "elapsed_s": elapsed,
                                           "remaining_s": self.remaining_s(
                                               elapsed, per_iter, row["steps_per_s"])})
            finally:  # the budget spent, an error or an interrupt: keep what was trained
                self._flush_latest()
            final = self._final_eval()
            backend_info = self.backend.describe()
        finally:
            if self._backend is None:
                self.backend.close()
        return {"iterations": self.iteration, "timesteps": self.timesteps,
                "best_eval": self.best_eval, "last_eval": self.last_eval,
                "final_eval": final, "run_dir": str(self.run_dir),
                "env_time_fraction": (round(self.env_seconds / self.busy_seconds, 4)
                                      if self.busy_seconds else None), **backend_info}

    def _final_eval(self) -> float:
        """Evaluate the final θ when the budget ended off the evaluation schedule; written to
        final_eval.json (not progress.csv, whose rows must not depend on where a run was
        split)."""
        if self.iteration == 0:
            return math.nan
        if self.iteration % self.config.run.eval_every == 0:
            return self.last_eval
        ev = self.evaluate(self.iteration, self.config.run.eval_episodes)
        mean = float(ev.mean()) if ev.size else math.nan
        record = {"iteration": self.iteration, "timesteps": self.timesteps,
                  "eval_return_mean": None if math.isnan(mean) else mean,
                  "eval_return_std": float(ev.std()) if ev.size else None,
                  "episodes": int(ev.size)}
        checkpoint.atomic_write_text(self.run_dir / "final_eval.json", json.dumps(record))
        return mean
