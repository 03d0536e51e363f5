"""`es-compact bench driver`: how many workers one driver can feed.

Real training iterations (``Trainer.step``: ask -> backend.run -> tell -> merge of the
observation statistics) whose rollouts cost almost nothing: a stand-in environment with
Humanoid's or HalfCheetah's spaces whose episode is a sleep of a given time, so the workers
leave the cores to the driver and the driver's own work is what is measured. For each backend
(mp, ray), worker count W and number of directions N, the driver's time per iteration is split
into

- ask: the strategy's load, ask and noise, the broadcast and the tasks (their env seeds);
- dispatch: inside backend.run, what puts the broadcast and the chunks of tasks on their way;
- gather: inside backend.run, what takes the results in (receiving, unpickling, bookkeeping,
  and the driver's own CPU time inside the wait for them), then the trainer's ordering of them
  into arrays;
- merge: every result's observation moments merged into the running statistics;
- tell: the strategy's update and its state;
- other: the rest of Trainer.step (the new state, the progress row).

The time the driver spends blocked in the wait (rollouts and messages in flight) is ``wait``,
not driver time. Timers: wrappers put on the trainer's strategy, statistics and backend for
the measurement (:class:`Instrument`); nothing in the computation changes. Each phase is
timed on the wall clock and as the driver thread's CPU time; Ray's own threads' CPU time is
``background``. With 64 workers on 2 cores, the wall clock also counts the driver's waits for
a core, which a driver with a core of its own does not pay: the model uses the CPU times.

From the measured points, each phase is fitted by non-negative least squares as a linear
function of the
quantities its work is proportional to (:data:`FEATURES`: a constant, N, the workers that get
work, the chunks, and for the wait loops chunks x busy workers), and the driver's share of an
iteration is extrapolated for real episode costs E (HalfCheetah-v4, Humanoid-v4, linear policy,
measured in the same run):

    share(W, N) = D(W, N) / (D(W, N) + 2 E ceil(N / W))

(a mirrored pair is two episodes; a worker runs ceil(N / W) pairs; with W > N the extra
workers idle). The reported limit is the smallest W at which share > 5 %.

``ray-hier`` is Ray with hierarchical dispatch (run.actor_workers = G: W / G actors, each a
pool of G worker processes, sent batches of at least G tasks). The driver sees actors, not
workers: its features count the actors that get work and the batches (chunks of at least G
tasks over W / G actors), so points measured at small G (4-16 workers an actor, here) fit the
per-call and per-task costs, and the limits are extrapolated for G = LIMIT_ACTOR_WORKERS
(one actor per 16-64-core node), W a multiple of G. What an actor's pool spends on its own
chunks is the actor's CPU, on its node, not the driver's.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from scipy.optimize import nnls

from es_compact.backends import make_backend
from es_compact.backends.base import split_tasks
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions
from es_compact.noise import NoiseTable, build_table
from es_compact.presets import resolve
from es_compact.rollout import RolloutWorker
from es_compact.strategies import make_strategy
from es_compact.trainer import Trainer

SHAPES = {"humanoid": (376, 17), "halfcheetah": (17, 6)}
"""Stand-in spaces (observation, action dimensions) of the environments the limits are for."""
REAL_ENVS = {"halfcheetah": "HalfCheetah-v4", "humanoid": "Humanoid-v4"}
PHASES = ("ask", "dispatch", "gather", "merge", "tell", "other")
CPU_PHASES = (*PHASES, "background")
SHARE_LIMIT = 0.05
HIER = "ray-hier"
"""The benchmark's name for Ray with hierarchical dispatch (backend ray, run.actor_workers)."""
LIMIT_ACTOR_WORKERS = (16, 32, 64)
"""Workers an actor (G) for which ray-hier's limits are extrapolated."""
TABLE_SIZE = 2_000_000
"""Noise table entries of the measured runs (enough for θ; small, so it builds in a blink)."""

# Stand-in environment -------------------------------------------------------------------------

_STAND_IN = re.compile(r"StandIn_o(\d+)_a(\d+)_s(\d+)_e(\d+)us")


class StandInEnv(gym.Env):
    """An environment whose episode costs a sleep: ``steps`` steps of ``episode_s / steps``
    seconds each, Gaussian observations of ``obs_dim`` (seeded by reset), reward the mean action.
    Build one by name (:func:`stand_in_id`), e.g. ``StandIn_o376_a17_s1_e2000us``."""

    obs_dim, act_dim, steps, episode_s = 376, 17, 1, 0.002
    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), np.float64)
        self._rng = np.random.default_rng(0)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._rng = np.random.default_rng(seed)
        self._t = 0
        return self._rng.standard_normal(self.obs_dim), {}

    def step(self, action):
        time.sleep(self.episode_s / self.steps)
        self._t += 1
        reward = float(np.sum(action)) / self.act_dim
        return self._rng.standard_normal(self.obs_dim), reward, False, self._t >= self.steps, {}


def stand_in_id(obs_dim: int, act_dim: int, episode_s: float, steps: int = 1) -> str:
    """The ``module:Class`` id of a stand-in environment (a class made on first use, in the
    driver and in every worker alike)."""
    return f"{__name__}:StandIn_o{obs_dim}_a{act_dim}_s{steps}_e{round(episode_s * 1e6)}us"


def __getattr__(name: str):
    """StandIn_o{obs}_a{act}_s{steps}_e{micro-seconds}us -> a StandInEnv subclass."""
    m = _STAND_IN.fullmatch(name)
    if m is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    obs, act, steps, us = (int(g) for g in m.groups())
    cls = type(name, (StandInEnv,), {"obs_dim": obs, "act_dim": act, "steps": max(1, steps),
                                     "episode_s": us / 1e6, "__module__": __name__})
    globals()[name] = cls
    return cls


# Real episode costs ---------------------------------------------------------------------------

def episode_seconds(env_id: str, steps: int = 1000, repeats: int = 3, seed: int = 0) -> dict:
    """Seconds of `steps` environment steps of a linear policy on the rollouts' own path
    (RolloutWorker.episode: bare env step, compiled forward, observations recorded), the
    fastest of `repeats`, as a step time and a 1000-step episode's time. Whole episodes are
    run until at least `steps` steps are done: one for HalfCheetah (1000 steps), several for a
    Humanoid that falls under an untrained policy (resets included)."""
    cfg = resolve(TrainConfig(env=EnvConfig(id=env_id), policy=PolicyConfig(arch="linear"),
                              strategy=StrategyConfig(exploration="orthogonal"),
                              run=RunConfig(backend="serial", seed=seed, iterations=1)))
    worker = RolloutWorker(cfg, None)
    try:
        rng = np.random.default_rng(seed)
        theta = cfg.strategy.noise_std * rng.standard_normal(worker.policy.num_params)
        dim = worker.policy.obs_dim
        actor = worker.policy.actor(theta, np.zeros(dim), np.ones(dim))
        worker.episode(actor, seed, record=True)  # warm up: compile, caches
        best, episodes = math.inf, 0
        for r in range(repeats):
            t0, n, episodes = time.perf_counter(), 0, 0
            while n < steps:
                _, t, _, err = worker.episode(actor, seed + 1000 * r + episodes, record=True)
                if err:
                    raise RuntimeError(f"{env_id}: {err}")
                n, episodes = n + t, episodes + 1
            best = min(best, (time.perf_counter() - t0) / n)
    finally:
        worker.close()
    return {"env": env_id, "step_us": best * 1e6, "episode_s": best * 1000,
            "steps_timed": n, "episodes": episodes}


# The split of one iteration -------------------------------------------------------------------

@dataclass
class Split:
    """One Trainer.step: seconds by phase (PHASES) on one clock, the wait, and the bytes."""

    ask: float = 0.0
    dispatch: float = 0.0
    gather: float = 0.0
    merge: float = 0.0
    tell: float = 0.0
    other: float = 0.0
    background: float = 0.0
    """CPU time of the driver's other threads (Ray's own submit and receive threads); 0 on
    the wall clock, where that work overlaps the phases."""
    wait: float = 0.0
    iteration: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def driver(self) -> float:
        return sum(getattr(self, p) for p in PHASES) + self.background


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


class Instrument:
    """Timestamps of Trainer.step's phases, taken by wrappers on the trainer's objects, on
    two clocks: the wall clock and the driver thread's CPU time.

    Trainer.step runs: strategy.load/ask/noise, the broadcast and tasks (ask) ->
    backend.run -> ordering of the results (gather) -> strategy.tell, strategy.state (tell)
    -> _stats(state) and one merge per result (merge) -> the new state and row (other).
    Inside backend.run: for mp, _dispatch and the code before the first one are dispatch, the
    rest outside the blocking wait (_select, or multiprocessing's wait() before it) is
    gather; for Ray, _finished (taking a chunk's results) is gather, the rest outside the
    blocking wait (_ready, or ray.wait before it) is dispatch. The driver's CPU time inside the wait
    counts as gather (polling is work); the rest of the wait is wait.

    On a machine with fewer cores than workers, the wall clock also counts the time the
    driver waited for a core; the CPU clock counts only its own work, what a driver with a
    core of its own pays (plus ``background``: the CPU time of its other threads)."""

    def __init__(self, backend):
        self.backend = backend
        self.kind = backend.name
        self._reset()
        self._results: list = []
        self._install_backend()

    def _reset(self) -> None:
        self.m: dict[str, tuple[float, float]] = {}
        self.sums = {k: [0.0, 0.0] for k in ("dispatch", "finished", "wait")}

    def _mark(self, key: str) -> None:
        self.m[key] = _now()

    def _summing(self, key: str, fn: Callable, first: str | None = None) -> Callable:
        def timed(*a, **k):
            t = _now()
            if first is not None:
                self.m.setdefault(first, t)
            try:
                return fn(*a, **k)
            finally:
                e, acc = _now(), self.sums[key]
                acc[0] += e[0] - t[0]
                acc[1] += e[1] - t[1]
        return timed

    def _marking(self, fn: Callable, key: str) -> Callable:
        def marked(*a, **k):
            out = fn(*a, **k)
            self._mark(key)
            return out
        return marked

    def _install_backend(self) -> None:
        b = self.backend
        run = b.run

        def timed_run(broadcast, tasks, *args, **kwargs):
            self._mark("run_start")
            out = run(broadcast, tasks, *args, **kwargs)
            self._mark("run_end")
            self._results = out
            return out

        b.run = timed_run
        self._undo = [lambda: delattr(b, "run")]
        if self.kind == "mp":
            from es_compact.backends import multiprocess

            b._dispatch = self._summing("dispatch", b._dispatch, first="first_dispatch")
            self._undo.append(lambda: delattr(b, "_dispatch"))
            if hasattr(b, "_select"):  # the blocking call of an iteration
                b._select = self._summing("wait", b._select)
                self._undo.append(lambda: delattr(b, "_select"))
            else:  # before it had one: multiprocessing's wait()
                wait = multiprocess.wait
                multiprocess.wait = self._summing("wait", wait)
                self._undo.append(lambda: setattr(multiprocess, "wait", wait))
        elif self.kind == "ray":
            import ray

            b._finished = self._summing("finished", b._finished)
            self._undo.append(lambda: delattr(b, "_finished"))
            if hasattr(b, "_ready"):  # the blocking call of an iteration
                b._ready = self._summing("wait", b._ready)
                self._undo.append(lambda: delattr(b, "_ready"))
            else:  # before it had one: ray.wait
                wait = ray.wait
                ray.wait = self._summing("wait", wait)
                self._undo.append(lambda: setattr(ray, "wait", wait))

    def close(self) -> None:
        """Take the wrappers off the backend (the trainer's go with the trainer)."""
        for undo in self._undo:
            undo()
        self._undo = []

    def attach(self, trainer: Trainer) -> None:
        """Wrap the trainer's strategy and statistics (after they are built)."""
        s = trainer.strategy
        tell, state, stats = s.tell, s.state, trainer._stats

        def timed_tell(*a, **k):
            self._mark("tell_start")
            return tell(*a, **k)

        def timed_state(*a, **k):
            out = state(*a, **k)
            self._mark("state_end")
            return out

        def timed_stats(*a, **k):
            rs = stats(*a, **k)
            for name in ("merge", "merge_all"):  # whichever the trainer calls
                if hasattr(rs, name):
                    setattr(rs, name, self._marking(getattr(rs, name), "merge_end"))
            return rs

        s.tell, s.state, trainer._stats = timed_tell, timed_state, timed_stats

    def _split(self, i: int, start: float, end: float) -> Split:
        """The split on clock i (0: wall, 1: the driver thread's CPU time)."""
        m = {k: v[i] for k, v in self.m.items()}
        s = {k: v[i] for k, v in self.sums.items()}
        wait_cpu = self.sums["wait"][1]
        run = m["run_end"] - m["run_start"]
        if self.kind == "mp":
            dispatch = m.get("first_dispatch", m["run_end"]) - m["run_start"] + s["dispatch"]
            gather_b = run - s["wait"] - dispatch + wait_cpu
        elif self.kind == "ray":
            gather_b = s["finished"] + wait_cpu
            dispatch = run - s["wait"] - s["finished"]
        else:  # serial: everything in run is the rollouts
            dispatch = gather_b = 0.0
        merge_end = m.get("merge_end", m["state_end"])
        return Split(ask=m["run_start"] - start, dispatch=dispatch,
                     gather=gather_b + m["tell_start"] - m["run_end"],
                     tell=m["state_end"] - m["tell_start"], merge=merge_end - m["state_end"],
                     other=end - merge_end, wait=run - dispatch - gather_b,
                     iteration=end - start)

    def step(self, trainer: Trainer, state):
        """trainer.step(state) timed: (new state, row, wall-clock Split, CPU-time Split)."""
        sent0 = getattr(self.backend, "bytes_sent", 0)
        received0 = getattr(self.backend, "bytes_received", None)
        self._reset()
        p0, (w0, c0) = time.process_time(), _now()
        new, row = trainer.step(state)
        w1, c1 = _now()
        p1 = time.process_time()
        wall, cpu = self._split(0, w0, w1), self._split(1, c0, c1)
        cpu.background = max(0.0, (p1 - p0) - (c1 - c0))
        for split in (wall, cpu):
            split.bytes_sent = getattr(self.backend, "bytes_sent", 0) - sent0
            if received0 is not None:
                split.bytes_received = self.backend.bytes_received - received0
            elif self.kind == "ray":  # Ray counts none: the chunks' results as pickled
                split.bytes_received = sum(
                    len(pickle.dumps(c, protocol=5))
                    for c in split_tasks(self._results, getattr(self.backend, "n_actors",
                                                                self.backend.n_workers),
                                         getattr(self.backend, "group", 1)))
        return new, row, wall, cpu


# Measuring a grid -----------------------------------------------------------------------------

def bench_config(shape: str, backend: str, workers: int, directions: int, episode_s: float,
                 seed: int = 0, actor_workers: int | None = None) -> TrainConfig:
    """ARS V2-t over all N directions (the Humanoid preset's b = N: tell sums every one),
    linear policy, the stand-in environment of `shape`, no evaluations; backend ray-hier is
    ray with actor_workers."""
    if backend == HIER:
        backend = "ray"
    obs, act = SHAPES[shape]
    return TrainConfig(env=EnvConfig(id=stand_in_id(obs, act, episode_s)),
                       policy=PolicyConfig(arch="linear"),
                       strategy=StrategyConfig(algo="ars", directions=directions,
                                               top=directions),
                       run=RunConfig(seed=seed, iterations=10**6, eval_every=10**9,
                                     backend=backend, workers=workers,
                                     actor_workers=actor_workers,
                                     noise_table_size=TABLE_SIZE))


def measure_point(backend_obj, table: NoiseTable, shape: str, workers: int, directions: int,
                  episode_s: float, iterations: int) -> dict:
    """One (backend, W, N) point on a started backend: one warm-up iteration, then the median
    of each phase over `iterations` timed ones."""
    group = getattr(backend_obj, "actor_workers", None)
    name = HIER if group is not None else backend_obj.name
    cfg = bench_config(shape, name, workers, directions, episode_s, actor_workers=group)
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(cfg, Path(d) / "run", backend=backend_obj)
        trainer.check()
        # What Trainer._start does, on a backend started once for every N.
        trainer.table = table
        trainer.strategy = make_strategy(trainer.config.strategy, Directions(
            trainer.config.strategy.exploration, trainer.config.run.seed,
            trainer.policy.num_params, table))
        inst = Instrument(backend_obj)
        try:
            inst.attach(trainer)
            state = trainer.initial_state()
            walls, cpus = [], []
            for _ in range(iterations + 1):
                state, _, wall, cpu = inst.step(trainer, state)
                walls.append(wall)
                cpus.append(cpu)
        finally:
            inst.close()
    walls, cpus = walls[1:], cpus[1:]

    def med(splits, key):
        return statistics.median(getattr(s, key) for s in splits)

    row = {"case": "point", "shape": shape, "backend": name, "workers": workers,
           "actor_workers": group or 1,
           "directions": directions, "num_params": trainer.policy.num_params,
           "obs_dim": SHAPES[shape][0], "episode_ms": round(episode_s * 1e3, 3),
           "iterations_timed": len(walls),
           "chunks": chunk_count((workers // group) if group else workers, directions,
                                 group or 1),
           "driver_ms": round(1e3 * sum(med(walls, p) for p in PHASES), 3),
           "driver_cpu_ms": round(1e3 * sum(med(cpus, p) for p in CPU_PHASES), 3)}
    for k in (*PHASES, "wait", "iteration"):
        row[f"{k}_ms"] = round(1e3 * med(walls, k), 3)
    for k in CPU_PHASES:
        row[f"{k}_cpu_ms"] = round(1e3 * med(cpus, k), 3)
    row["bytes_sent"] = int(med(walls, "bytes_sent"))
    row["bytes_received"] = int(med(walls, "bytes_received"))
    row["theta_norm"] = float(np.linalg.norm(state.theta))
    return row


def measure_grid(shapes: Iterable[str], backends: Iterable[str], workers: Iterable[int],
                 directions: Iterable[int], episode_s: float, iterations: int,
                 log: Callable[[str], None] = lambda _: None,
                 actor_workers: Iterable[int] = ()) -> list[dict]:
    """Every (shape, backend, W, N) point; each backend is started once per (shape, W). For
    ray-hier, every G of actor_workers with each W that is a multiple of it (and more than
    G: two actors at least)."""
    rows = []
    directions = sorted(directions)
    for shape in shapes:
        table = None
        for backend in backends:
            setups = ([(w, g) for g in sorted(actor_workers) for w in sorted(workers)
                       if w % g == 0 and w > g] if backend == HIER
                      else [(w, None) for w in sorted(workers)])
            for w, g in setups:
                log(f"{shape}, {backend} with {w} workers"
                    + (f" ({w // g} actors of {g})" if g else "") + ": starting...")
                b = make_backend("ray" if backend == HIER else backend, w, actor_workers=g)
                try:
                    cfg = resolve(bench_config(shape, backend, w, directions[-1], episode_s,
                                               actor_workers=g))
                    table = NoiseTable(build_table(cfg.run.seed, TABLE_SIZE,
                                                   out=b.table_buffer(TABLE_SIZE)))
                    b.start(cfg, table)
                    for n in directions:
                        row = measure_point(b, table, shape, w, n, episode_s, iterations)
                        log(f"  N={n}: driver {row['driver_cpu_ms']:.1f} ms CPU, "
                            f"{row['driver_ms']:.1f} ms wall of {row['iteration_ms']:.1f} ms "
                            "per iteration")
                        rows.append(row)
                finally:
                    b.close()
    return rows


# The model ------------------------------------------------------------------------------------

def chunk_count(workers: int, directions: int, min_size: int = 1) -> int:
    """len(split_tasks(range(directions), workers, min_size)), without building the chunks."""
    count, i = 0, 0
    while i < directions:
        i += max(min_size, -(-(directions - i) // (2 * workers)))
        count += 1
    return count


def feature_values(workers: int, directions: int, group: int = 1) -> dict[str, float]:
    """What each phase's work is proportional to: 1, N, the workers that get work (each
    receives the broadcast once), the chunks (one message each way) and chunks x busy workers
    (each completed chunk wakes a wait over every busy worker). group G > 1 (ray-hier): the
    driver's workers are the W / G actors, its chunks batches of at least G tasks."""
    units = workers // group
    c = chunk_count(units, directions, group)
    used = min(units, c)
    return {"const": 1.0, "N": float(directions), "W": float(used), "chunks": float(c),
            "chunks_x_W": float(c * used)}


FEATURES = {"ask": ("const", "N"), "dispatch": ("const", "W", "chunks"),
            "gather": ("const", "N", "chunks", "chunks_x_W"), "merge": ("const", "N"),
            "tell": ("const", "N"), "other": ("const",),
            "background": ("const", "N", "chunks")}
"""The linear model of each phase's CPU time (seconds = Σ coefficient x feature)."""


def fit(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Non-negative least-squares coefficients (seconds per feature unit) of each phase's CPU
    time, from point rows of one backend and shape. Non-negative: every feature counts work
    done, and N, the chunks and the workers grow together, so an unconstrained fit trades
    them against each other (a negative per-worker cost that extrapolates to nothing)."""
    out = {}
    for phase, names in FEATURES.items():
        X = np.array([[feature_values(r["workers"], r["directions"], _group(r))[n]
                       for n in names] for r in rows])
        y = np.array([r[f"{phase}_cpu_ms"] / 1e3 for r in rows])
        coef, _ = nnls(X, y)
        out[phase] = dict(zip(names, (float(c) for c in coef), strict=True))
    return out


def _group(row: dict) -> int:
    """A point's workers per actor (1 unless ray-hier; rows from before it have none)."""
    g = row.get("actor_workers")
    return int(g) if row.get("backend") == HIER and g == g and g else 1


def predict(model: dict[str, dict[str, float]], workers: int, directions: int,
            group: int = 1) -> float:
    """The driver's seconds per iteration the model gives for W workers and N directions
    (W / group actors of group workers each, for ray-hier)."""
    f = feature_values(workers, directions, group)
    return sum(max(0.0, sum(c * f[n] for n, c in coefs.items())) for coefs in model.values())


def share(model, workers: int, directions: int, episode_s: float, group: int = 1) -> float:
    d = predict(model, workers, directions, group)
    return d / (d + 2.0 * episode_s * math.ceil(directions / workers))


def worker_limit(model, directions: int, episode_s: float,
                 limit: float = SHARE_LIMIT, group: int = 1) -> int | None:
    """The smallest W (a multiple of group) at which the driver takes more than `limit` of an
    iteration, or None if there is none. Only W up to the first multiple of group >= N need be
    tried: beyond it, the extra workers get no task (every feature and the rollout time stay
    those of W = N, or they grow with idle actors)."""
    for w in range(group, directions + group, group):
        if share(model, w, directions, episode_s, group) > limit:
            return w
    return None


def limit_rows(points: list[dict], episodes: dict[str, dict], directions: Iterable[int],
               ) -> list[dict]:
    """For each backend and shape with points: the fitted model, and for each N the worker
    count at which the driver's share passes 5 % with that shape's real episode cost."""
    rows = []
    groups = sorted({(p["backend"], p["shape"]) for p in points})
    for backend, shape in groups:
        pts = [p for p in points if p["backend"] == backend and p["shape"] == shape]
        model = fit(pts)
        resid = [p["driver_cpu_ms"] - 1e3 * predict(model, p["workers"], p["directions"],
                                                    _group(p)) for p in pts]
        base = {"backend": backend, "shape": shape,
                "model": "; ".join(f"{ph} = " + " + ".join(f"{c:.4g} {n}" for n, c in co.items())
                                   for ph, co in model.items()),
                "fit_points": len(pts),
                "fit_max_abs_residual_ms": round(max(abs(r) for r in resid), 3)}
        ep = episodes[shape]
        for g in LIMIT_ACTOR_WORKERS if backend == HIER else (1,):
            for n in directions:
                w = worker_limit(model, n, ep["episode_s"], group=g)
                at = min(n, 512)
                rows.append({"case": "limit", **base, "actor_workers": g, "env": ep["env"],
                             "directions": n, "episode_s": round(ep["episode_s"], 4),
                             "workers_at_5pct": w if w is not None else "never",
                             "share_at_512": round(share(model, 512, n, ep["episode_s"], g),
                                                   4),
                             "driver_ms_at_512": round(1e3 * predict(model, 512, n, g), 2),
                             "useful_workers_at_512": at})
    return rows


def can_fit(points: list[dict]) -> bool:
    """Limits are extrapolated only from at least two worker counts and two values of N."""
    return len({p["workers"] for p in points}) >= 2 and len({p["directions"]
                                                           for p in points}) >= 2


def run(shapes: Iterable[str], backends: Iterable[str], workers: Iterable[int],
        directions: Iterable[int], episode_s: float, iterations: int,
        limit_directions: Iterable[int] = (230, 1000), episode_steps: int = 1000,
        label: str = "", log: Callable[[str], None] = lambda _: None,
        actor_workers: Iterable[int] = ()) -> list[dict]:
    """The whole benchmark: the real episode costs, every point, and (when the points allow a
    fit) the worker limits; every row with the load averages before and after."""
    shapes, load0 = list(shapes), os.getloadavg()
    episodes = {}
    for s in shapes:
        log(f"timing {episode_steps} steps of {REAL_ENVS[s]} with a linear policy...")
        episodes[s] = episode_seconds(REAL_ENVS[s], episode_steps)
    points = measure_grid(shapes, backends, workers, directions, episode_s, iterations, log,
                          actor_workers)
    rows = [{"case": "episode", "shape": s, **e, "episode_s": round(e["episode_s"], 5),
             "step_us": round(e["step_us"], 2)}
            for s, e in episodes.items()] + points
    if can_fit(points):
        rows += limit_rows(points, episodes, sorted(set(limit_directions)))
    load1 = os.getloadavg()
    for r in rows:
        r.update(label=label, load_1min_start=round(load0[0], 2),
                 load_1min_end=round(load1[0], 2))
    return rows


def refit_rows(rows: list[dict], points_label: str, episodes_label: str,
               directions: Iterable[int]) -> list[dict]:
    """Limit rows from stored rows: the points labelled `points_label`, extrapolated with the
    episode costs of the run labelled `episodes_label` (the newest such rows), so that two
    versions of the driver are compared at the same episode costs."""
    points = [{**r, "workers": int(r["workers"]), "directions": int(r["directions"])}
              for r in rows if r.get("case") == "point" and r.get("label") == points_label]
    episodes = {r["shape"]: r for r in rows
                if r.get("case") == "episode" and r.get("label") == episodes_label}
    missing = {p["shape"] for p in points} - set(episodes)
    if not can_fit(points) or missing:
        raise ConfigError(f"no points labelled {points_label!r} to fit (two worker counts and "
                          "two values of N at least)" if not can_fit(points) else
                          f"no episode costs labelled {episodes_label!r} for {sorted(missing)}")
    out = limit_rows(points, episodes, sorted(set(directions)))
    for r in out:
        r.update(label=f"{points_label} points, {episodes_label} episodes",
                 refit_of=points_label, episodes_of=episodes_label)
    return out
