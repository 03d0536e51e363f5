"""The training loop: ask -> backend.run -> tell -> log -> checkpoint.

The run directory's files and rules belong to es_compact.run_dir, the state carried between
iterations and its checkpoint form to es_compact.state. Every random choice derives from (seed,
iteration, index), so a resumed run continues bitwise identically. ``latest`` is written every
``run.checkpoint_every_s`` seconds (each write costs two fsyncs), after the first and the last
iteration, and on any stop, from the state of the last finished iteration. The library never
prints: pass ``on_iteration`` to see rows, and ``on_progress`` to hear of the tasks finished
within an iteration (for a progress bar).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from es_compact.backends import Backend, make_backend
from es_compact.config import TrainConfig
from es_compact.envs import env_spaces
from es_compact.errors import ConfigError, ESCompactError
from es_compact.evaluate import standard_error
from es_compact.exploration import Directions
from es_compact.memory import check_workers_fit
from es_compact.noise import NoiseTable, build_table
from es_compact.normalizer import RunningStat
from es_compact.policies import check_applicable, make_policy
from es_compact.presets import resolve
from es_compact.rollout import EVAL, TRAIN, Broadcast, Task, env_seed, env_seeds
from es_compact.run_dir import (
    MODES,
    PROGRESS_COLUMNS,
    TIMING_COLUMNS,
    RunBusy,
    RunDir,
    load_run_config,
    run_lock,
)
from es_compact.state import TrainState, budget_spent, remaining_s
from es_compact.strategies import STRATEGIES, make_strategy
from es_compact.warm_start import Source, load_source

PhaseProgress = Callable[[str, int, int], None]
"""on_progress(phase, done, total): phase 'train' (done of total directions) or 'eval' (done of
total evaluation episodes); called with done 0 as the phase starts, then as results come in."""

__all__ = ["PROGRESS_COLUMNS", "TIMING_COLUMNS", "RunBusy", "Trainer", "TrainingError",
           "load_run_config", "run_lock"]


class TrainingError(ESCompactError):
    """Training cannot go on (too many failed rollouts); a valid checkpoint was written."""


def _train_returns(ok: np.ndarray) -> dict[str, float]:
    """The progress row's training-return columns over the valid pairs' returns."""
    if not ok.size:
        return dict.fromkeys(("train_return_mean", "train_return_std", "train_return_max",
                              "train_return_min"), math.nan)
    return {"train_return_mean": float(ok.mean()), "train_return_std": float(ok.std()),
            "train_return_max": float(ok.max()), "train_return_min": float(ok.min())}


class Trainer:
    """Train one policy. mode: 'new' (refuses a directory holding a trained run), 'overwrite'
    (replaces a run's files) or 'resume' (continue from checkpoints/latest with this config's
    budget). A run that trained nothing (no checkpoint) starts afresh in every mode; a
    non-empty directory that is not a run is refused in every mode, and nothing in it is
    touched (es_compact.run_dir has the rules)."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, mode: str = "new",
                 backend: Backend | None = None):
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}")
        self.config = resolve(config)
        self.dir = RunDir(run_dir)
        self.mode = mode
        self._own_backend = backend is None
        self.backend = backend
        self.policy = None  # built by check()
        self._source: Source | None = None  # a warm start's θ and statistics, read by check()
        self.strategy = None  # built by run(), with the noise table and the directions
        self.table: NoiseTable | None = None
        self.env_seconds = self.busy_seconds = 0.0  # rollout time inside the env / in all
        self.strategy_seconds = 0.0  # driver time in the strategy's load, ask, tell and state
        self.eval_seconds = 0.0  # wall time in evaluations (periodic and final), this session
        self._t0 = time.perf_counter()  # this session's start; wall time adds the state's
        self._wall0 = 0.0
        self._written = (0, -math.inf)  # iteration and time of the latest on disk (0: none)

    @property
    def run_dir(self) -> Path:
        return self.dir.path

    def check(self) -> None:
        """Everything that can be checked before anything is written: the run directory suits
        the mode (a resumed run's settings match), the workers fit in memory
        (es_compact.memory), and the environment and the policy can be built. run() calls it
        first, so a mistyped environment, too many workers or a directory of someone else's
        files leaves no trace and starts no process; call it yourself to learn of those
        before announcing a run."""
        self.dir.check_mode(self.mode)
        if self.mode == "resume":
            self.dir.check_resumable(self.config)  # again under the lock, in run()
        if self._own_backend:  # a backend given to the trainer was sized by its caller
            check_workers_fit(self.config)
        if self.policy is None:
            obs_space, act_space = env_spaces(self.config.env.id, **self.config.env.make_kwargs())
            self.policy = make_policy(self.config.policy, obs_space, act_space,
                                      seed=self.config.run.seed)
            STRATEGIES[self.config.strategy.algo].check_dim(self.config.strategy,
                                                            self.policy.num_params)
        self._check_init()

    def _check_init(self) -> None:
        """A warm start's source (config.init), read, checked against this run's policy and
        pinned into self.config (es_compact.warm_start). A resumed run keeps the record it
        started with and reads the source again only when it trained nothing yet."""
        if self.mode == "resume":
            stored, given = self.dir.read_config().init, self.config.init
            if given.run_dir is not None and (stored.run_dir is None or Path(
                    given.run_dir).expanduser().resolve() != Path(stored.run_dir)):
                raise ConfigError("cannot resume with another warm start (init.run_dir): a "
                                  "resumed run continues from its own checkpoint")
            self.config = dataclasses.replace(self.config, init=stored)
            if self.dir.has_checkpoint():
                return
        if self.config.init.run_dir is not None and self._source is None:
            self._source = load_source(self.config, self.policy, into=self.dir.path)
            self.config = dataclasses.replace(self.config, init=self._source.init)

    def check_settings(self) -> None:
        """ConfigError for a setting that would change nothing here ('policy.rotations applies
        only to arch kama; ...'), as the CLI refuses such a flag; run() calls it. A resumed
        run's stored settings were judged when it started."""
        if self.mode != "resume":
            if self.policy is None:
                self.check()
            check_applicable(self.config, self.policy.action.discrete)

    # State ------------------------------------------------------------------------------------

    def initial_state(self) -> TrainState:
        """θ drawn from the run's seed, no observations seen, a fresh optimiser; a warm start
        (config.init) takes θ and the observation statistics from its source instead."""
        cfg = self.config
        opt_arrays, opt_meta = self.strategy.state()
        if cfg.init.run_dir is not None:
            if self._source is None:
                self._check_init()
            return self._source.state(opt_arrays, opt_meta)
        theta = self.policy.init(np.random.default_rng([cfg.run.seed, 0x1417]))
        fresh = self._stats(None)
        return TrainState(theta, fresh.state(), dict(opt_arrays), dict(opt_meta))

    def _stats(self, state: TrainState | None) -> RunningStat:
        dim, floor = self.policy.obs_dim, self.config.strategy.obs_norm_floor
        return RunningStat(dim, floor) if state is None else state.stats(dim, floor)

    def _elapsed(self) -> float:
        return self._wall0 + time.perf_counter() - self._t0

    def _save(self, name: str, state: TrainState) -> None:
        self.dir.save_state(name, state, self.config, self.policy.num_params)
        if name == "latest":
            self._written = (state.iteration, time.perf_counter())

    def _flush_latest(self, state: TrainState) -> None:
        """Write the last finished iteration's state as 'latest' if it is not on disk yet."""
        if state.iteration > self._written[0]:
            self._save("latest", state)

    def _read_latest(self) -> TrainState:
        """The state in checkpoints/latest (or the generation before it, when latest is
        damaged: the run directory logs a warning saying why)."""
        return TrainState.from_checkpoint(*self.dir.load_checkpoint("latest"),
                                          self.policy.num_params)

    def _restore(self, state: TrainState) -> TrainState:
        self._written = (state.iteration, -math.inf)  # this state is the 'latest' on disk
        self.dir.truncate_progress(state.iteration)  # rows after the generation resumed from
        return state

    # The loop ---------------------------------------------------------------------------------

    def _run_tasks(self, bc: Broadcast, tasks: list[Task], phase: str,
                   progress: PhaseProgress | None):
        if progress is None:
            return self.backend.run(bc, tasks)
        progress(phase, 0, len(tasks))
        return self.backend.run(bc, tasks, lambda done, total: progress(phase, done, total))

    def evaluate(self, state: TrainState, episodes: int,
                 progress: PhaseProgress | None = None) -> np.ndarray:
        """Unshifted returns of noiseless episodes of state's θ, seeded by its iteration."""
        mean, std = self._frozen_stats(state)
        bc = Broadcast(state.iteration, state.theta, mean, std, 0.0, None)
        tasks = [Task(EVAL, e, env_seed(self.config.run.seed, state.iteration, e, EVAL))
                 for e in range(episodes)]
        return np.array([r.returns[0] for r in self._run_tasks(bc, tasks, "eval", progress)
                         if not r.failed])

    def _frozen_stats(self, state: TrainState):
        if self.config.strategy.normalizes_obs:
            return self._stats(state).frozen()
        return np.zeros(self.policy.obs_dim), np.ones(self.policy.obs_dim)

    def step(self, state: TrainState,
             progress: PhaseProgress | None = None) -> tuple[TrainState, dict]:
        """One iteration from state: the next state and its progress row (not yet logged);
        progress hears of its directions and evaluation episodes as they finish."""
        cfg, it = self.config, state.iteration
        t_start = time.perf_counter()
        self.strategy.load(state.opt_arrays, state.opt_meta)
        plan = self.strategy.ask(it)
        nu, scale = self.strategy.noise()
        self.strategy_seconds += time.perf_counter() - t_start
        mean, std = self._frozen_stats(state)
        bc = Broadcast(it, state.theta, mean, std, nu, plan, scale)
        tasks = [Task(TRAIN, k, seed)
                 for k, seed in enumerate(env_seeds(cfg.run.seed, it, plan.count, TRAIN))]
        results = sorted(self._run_tasks(bc, tasks, "train", progress), key=lambda r: r.index)
        self.env_seconds += sum(r.env_seconds for r in results)
        self.busy_seconds += sum(r.busy_seconds for r in results)
        returns = np.array([r.returns for r in results])
        steps = np.array([r.steps for r in results])
        valid = np.array([not r.failed for r in results])
        failed = int((~valid).sum())
        if failed > cfg.run.max_failed_fraction * len(results):
            self._save("latest", state.replace(wall_time_s=self._elapsed()))
            first = next(r.error for r in results if r.failed)
            raise TrainingError(f"iteration {it}: {failed} of {len(results)} rollout pairs "
                                f"failed (first: {first}); checkpoint kept at iteration {it}")
        t_tell = time.perf_counter()
        theta = self.strategy.tell(state.theta, plan, returns - cfg.env.reward_shift * steps,
                                   valid)
        opt_arrays, opt_meta = self.strategy.state()
        self.strategy_seconds += time.perf_counter() - t_tell
        stats = self._stats(state)
        ok = [r for r in results if not r.failed]  # direction order: whoever ran what
        stats.merge_all([r.obs_count for r in ok], [r.obs_mean for r in ok],
                        [r.obs_m2 for r in ok])
        new = state.replace(theta=theta, obs=stats.state(), opt_arrays=dict(opt_arrays),
                            opt_meta=dict(opt_meta), iteration=it + 1,
                            timesteps=state.timesteps + int(steps.sum()))
        eval_mean = eval_std = eval_se = math.nan
        eval_n, eval_s = 0, 0.0
        # Only on schedule, so a run split by a resume logs exactly the same rows.
        if new.iteration % cfg.run.eval_every == 0:
            t_eval = time.perf_counter()
            ev = self.evaluate(new, cfg.run.eval_episodes, progress)
            eval_s = time.perf_counter() - t_eval
            self.eval_seconds += eval_s
            eval_n = int(ev.size)
            if ev.size:
                eval_mean, eval_std = float(ev.mean()), float(ev.std())
                eval_se = standard_error(ev)
                new = new.replace(last_eval=eval_mean, best_eval=max(new.best_eval, eval_mean))
        dt = time.perf_counter() - t_start
        new = new.replace(wall_time_s=self._elapsed())
        row = {"iteration": new.iteration, "timesteps": new.timesteps,
               "wall_time_s": round(new.wall_time_s, 3), **_train_returns(returns[valid]),
               "eval_return_mean": eval_mean, "eval_return_std": eval_std,
               "eval_se": eval_se, "eval_episodes": eval_n, "eval_seconds": round(eval_s, 3),
               "steps_per_s": round(int(steps.sum()) / dt, 1), "failed_rollouts": failed,
               "theta_norm": float(np.linalg.norm(theta))}
        return new, row

    def _log(self, state: TrainState, previous: TrainState, row: dict) -> None:
        """Append the row; checkpoint 'best' when the evaluation improved and 'latest' when
        it is due (the first iteration's always: the last write time starts at -inf)."""
        self.dir.append_progress(row)
        if state.best_eval > previous.best_eval:
            self._save("best", state)
        if time.perf_counter() - self._written[1] >= self.config.run.checkpoint_every_s:
            self._flush_latest(state)

    def run(self, on_iteration: Callable[[dict, dict], None] | None = None,
            on_progress: PhaseProgress | None = None) -> dict:
        """Train until the budget is spent. on_iteration(row, info) is called after each
        iteration with info = {last_eval, remaining_s, elapsed_s}; on_progress (see
        PhaseProgress), in this thread, as an iteration's tasks and the final evaluation's
        episodes finish. Neither can change a result."""
        self.check()  # before taking the lock, which creates the directory
        self.check_settings()
        # Reading first, then the workers, and only then writing: a checkpoint that cannot be
        # read fails before any worker starts, and a backend that cannot start (an unreachable
        # Ray cluster) or a full disk leaves the directory as it was found (the lock puts it
        # back on an error, and a new run's directory goes).
        with self.dir.lock(leave_as_found=True):
            saved = (self._read_latest() if self.mode == "resume" and self.dir.has_checkpoint()
                     else None)
            self._t0 = time.perf_counter()
            r = self.config.run
            if self._own_backend:
                self.backend = make_backend(r.backend, r.workers, address=r.ray_address,
                                            dashboard=r.ray_dashboard,
                                            actor_workers=r.actor_workers)
            try:
                self._start()
                restore = self.dir.prepare(self.mode, self.config)
                return self._train(saved if restore else None, on_iteration, on_progress)
            finally:
                if self._own_backend:
                    self.backend.close()

    def _start(self) -> None:
        """The noise table, the strategy and the backend's workers."""
        cfg = self.config
        if cfg.strategy.exploration == "gaussian":
            size = cfg.run.noise_table_size
            self.table = NoiseTable(build_table(cfg.run.seed, size,
                                                out=self.backend.table_buffer(size)))
        directions = Directions(cfg.strategy.exploration, cfg.run.seed,
                                self.policy.num_params, self.table)
        self.strategy = make_strategy(cfg.strategy, directions)
        self.backend.start(cfg, self.table)

    def _train(self, saved: TrainState | None, on_iteration, on_progress=None) -> dict:
        cfg = self.config
        state = self._restore(saved) if saved is not None else self.initial_state()
        self._wall0 = state.wall_time_s
        self.dir.write_config(cfg)  # on resume: with the new budget
        start_it, t_loop = state.iteration, time.perf_counter()
        try:
            while not budget_spent(cfg.run, state.iteration, state.timesteps, state.last_eval,
                                   self._elapsed()):
                new, row = self.step(state, on_progress)
                self._log(new, state, row)
                state = new  # one assignment: an interrupt finds a finished iteration's state
                if on_iteration is not None:
                    per_iter = (time.perf_counter() - t_loop) / (state.iteration - start_it)
                    elapsed = self._elapsed()
                    on_iteration(row, {"last_eval": state.last_eval, "elapsed_s": elapsed,
                                       "remaining_s": remaining_s(
                                           cfg.run, state, elapsed, per_iter,
                                           row["steps_per_s"])})
        finally:  # the budget spent, an error or an interrupt: keep what was trained
            self._flush_latest(state)
        final = self._final_eval(state, on_progress)
        return {"iterations": state.iteration, "timesteps": state.timesteps,
                "best_eval": state.best_eval, "last_eval": state.last_eval,
                "final_eval": final, "run_dir": str(self.run_dir),
                "env_time_fraction": (round(self.env_seconds / self.busy_seconds, 4)
                                      if self.busy_seconds else None),
                "strategy_seconds": round(self.strategy_seconds, 4),
                "eval_seconds": round(self.eval_seconds, 3),
                "session_seconds": round(time.perf_counter() - self._t0, 3),
                **self.backend.describe()}

    def _final_eval(self, state: TrainState, progress: PhaseProgress | None = None) -> float:
        """Evaluate the final θ when the budget ended off the evaluation schedule; written to
        final_eval.json (not progress.csv, whose rows must not depend on where a run was
        split). The final θ is a candidate for 'best': it becomes 'best' when its evaluation
        beats the best so far, or when there is no 'best' yet (a run shorter than eval_every).
        'latest' keeps the state the loop ended with, so a resumed run promotes exactly as one
        never split."""
        if state.iteration == 0:
            return math.nan
        if state.iteration % self.config.run.eval_every == 0:
            return state.last_eval
        t_eval = time.perf_counter()
        ev = self.evaluate(state, self.config.run.eval_episodes, progress)
        self.eval_seconds += time.perf_counter() - t_eval
        mean = float(ev.mean()) if ev.size else math.nan
        se = standard_error(ev)
        self.dir.write_final_eval({"iteration": state.iteration, "timesteps": state.timesteps,
                                   "eval_return_mean": None if math.isnan(mean) else mean,
                                   "eval_return_std": float(ev.std()) if ev.size else None,
                                   "eval_se": None if math.isnan(se) else se,
                                   "episodes": int(ev.size)})
        if not math.isnan(mean) and (mean > state.best_eval
                                     or not self.dir.has_checkpoint("best")):
            best = state.replace(best_eval=max(state.best_eval, mean))
            self._save("best", best)
        return mean
