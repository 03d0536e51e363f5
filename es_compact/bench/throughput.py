"""`es-compact bench throughput`: how close training comes to the machine's raw step rate.

Measured in one run, side by side:
(a) the single-process gymnasium step rate with zero actions (gym.make's full wrapper stack);
(s) the serial training step rate (one process: env + policy + noise + normalisation), whose
    shortfall against (a) is the per-step cost of everything that is not the environment;
(b) the training step rate with the chosen backend and workers over >= 5 iterations after one
    warm-up iteration (no evaluations), and efficiency = (b) / (workers x (a)); (a) is sampled
    before, between the iterations of (b) and after it, as the machine's speed drifts;
(c) gymnasium's step rate in `workers` processes stepping at once: what the machine gives that
    many busy processes, below workers x (a) where cores share hardware or a host.
Also the bytes the backend sent (and, for mp, received) per iteration, the share of the wall
time the driver spent in the strategy (load, ask, tell, state), and the memory check:
proportional set size (PSS, shared pages split among the processes mapping them) of the driver
and its workers with a large noise table, for 1 and for N workers. With --algo, each strategy's
efficiency is measured beside ARS's in one run (compare_strategies).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from es_compact.backends import make_backend
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.envs import make_env
from es_compact.trainer import Trainer


class GymProbe:
    """gymnasium's step with zero actions, timed: (a) and the samples of it taken between
    training iterations, while the workers wait for the next one, so that (a) and (b) are
    measured over the same minutes of a machine whose speed drifts."""

    def __init__(self, env_id: str, steps: int = 2000):
        self.env = make_env(env_id)
        self.action = np.zeros(self.env.action_space.shape, dtype=self.env.action_space.dtype)
        self.env.reset(seed=0)
        self.steps = steps
        self.rates: list[float] = []

    def sample(self, steps: int | None = None) -> float:
        """Steps per second over `steps` steps (default: the probe's), also kept in rates."""
        env, a, n = self.env, self.action, steps or self.steps
        t = time.perf_counter()
        for _ in range(n):
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        self.rates.append(n / (time.perf_counter() - t))
        return self.rates[-1]

    def close(self) -> None:
        self.env.close()


def gym_step_rate(env_id: str, steps: int = 5000) -> float:
    """Steps per second of env.step with zero actions, best of three runs."""
    probe = GymProbe(env_id, steps)
    try:
        return max(probe.sample() for _ in range(3))
    finally:
        probe.close()


def _concurrent_rate_worker(env_id: str, steps: int, barrier, queue) -> None:
    probe = GymProbe(env_id, steps)
    probe.sample(200)  # warm up before the common start
    barrier.wait()
    queue.put(probe.sample())
    probe.close()


def concurrent_gym_rate(env_id: str, processes: int, steps: int = 10000) -> float:
    """(c): total steps per second of gymnasium's step with zero actions in `processes`
    processes started together, what the machine gives that many busy processes at once.
    On a machine whose cores share hardware (or a host), this is below processes x (a)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_rate_worker, args=(env_id, steps, barrier, queue))
             for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def _config(env_id, arch, backend, workers, iterations, directions, table_size, seed=0,
            algo="ars"):
    return TrainConfig(env=EnvConfig(id=env_id), policy=PolicyConfig(arch=arch),
                       strategy=StrategyConfig(algo=algo, directions=directions),
                       run=RunConfig(seed=seed, iterations=iterations, eval_every=10**9,
                                     backend=backend, workers=workers,
                                     noise_table_size=table_size))


def training_rate(env_id, arch, backend, workers, iterations=6, directions=None,
                  table_size=RunConfig.noise_table_size, probe: GymProbe | None = None,
                  algo: str = "ars") -> dict:
    """Train `iterations` iterations with strategy `algo`; rate over all but the first
    (warm-up) iteration. With a probe, (a) is sampled after every iteration; that time is
    left out of the window."""
    rows = []
    paused = [0.0]
    backend_obj = make_backend(backend, workers)
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(_config(env_id, arch, backend, workers, iterations, directions,
                                  table_size, algo=algo), Path(d) / "run", backend=backend_obj)
        sent, received = [], []

        def on_iter(row, info):
            now = time.perf_counter()
            rows.append((row["timesteps"], now - paused[0], trainer.env_seconds,
                         trainer.busy_seconds, getattr(backend_obj, "transit_seconds", 0.0),
                         trainer.strategy_seconds))
            sent.append(getattr(backend_obj, "bytes_sent", 0))
            received.append(getattr(backend_obj, "bytes_received", np.nan))
            if probe is not None:
                probe.sample()
                paused[0] += time.perf_counter() - now

        try:
            trainer.run(on_iter)
        finally:
            backend_obj.close()
    steps = rows[-1][0] - rows[0][0]
    secs = rows[-1][1] - rows[0][1]
    env_s = rows[-1][2] - rows[0][2]
    busy_s = rows[-1][3] - rows[0][3]
    transit_s = rows[-1][4] - rows[0][4]
    strategy_s = rows[-1][5] - rows[0][5]
    per_iter_bytes = np.diff(sent).mean() if len(sent) > 1 else float("nan")
    per_iter_received = np.diff(received).mean() if len(received) > 1 else float("nan")
    return {"steps_per_s": steps / secs, "iterations_timed": len(rows) - 1, "algo": algo,
            # the driver's time in the strategy, as a share of the timed wall time
            "strategy_share": strategy_s / secs,
            "bytes_received_per_iteration": float(per_iter_received),
            # inside the workers: share of task time not spent in the environment
            "rollout_overhead": 1 - env_s / busy_s,
            # of all worker-time in the timed window, the share not spent in the environment
            # (policy, noise, normalisation, messaging, driver work, idle workers)
            "non_env_share": 1 - env_s / (workers * secs),
            # of it: policy, noise, normalisation and the loop inside tasks; messaging (chunk
            # round trips minus task time); the rest is driver work and workers idling
            "task_overhead_share": (busy_s - env_s) / (workers * secs),
            "messaging_share": transit_s / (workers * secs),
            "bytes_sent_per_iteration": float(per_iter_bytes),
            "num_params": trainer.policy.num_params,
            "directions": trainer.config.strategy.directions}


def pss_kib(pid: int) -> int:
    """Proportional set size of a process in KiB (Linux /proc/PID/smaps_rollup)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise OSError(f"no Pss line for {pid}")


def mapping_pss_kib(pid: int, name: str) -> int:
    """PSS in KiB of the mappings of one process whose path contains `name`."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping header line
                inside = name in line
            elif inside and first == "Pss:":
                total += int(line.split()[1])
    return total


def forkserver_pids() -> list[int]:
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return [pid] if pid else []


def memory_rows(env_id: str, table_size: int, worker_counts=(1, 4)) -> list[dict]:
    """Total PSS of driver + workers after 2 iterations and a read of the whole table by every
    worker, and the part of it that is the noise table's shared block."""
    out = []
    for n in worker_counts:
        backend = make_backend("mp", n)
        with tempfile.TemporaryDirectory() as d:
            cfg = _config(env_id, "linear", "mp", n, 2, 8 * n, table_size)
            Trainer(cfg, Path(d) / "run", backend=backend).run()
            # The workers are still up: each reads the whole table, as a long run would.
            backend.touch_table()
            pids = [os.getpid()] + [w.proc.pid for w in backend.workers]
            pids += forkserver_pids()  # the process workers fork from holds shared pages too
            total = sum(pss_kib(p) for p in pids)
            table = sum(mapping_pss_kib(p, backend.shm_name.lstrip("/")) for p in pids)
            backend.close()
        out.append({"case": "memory", "workers": n, "table_mib": table_size * 4 / 2**20,
                    "pss_total_mib": round(total / 1024, 1),
                    "pss_table_mib": round(table / 1024, 1)})
    return out


@dataclass(frozen=True)
class Throughput:
    """One throughput measurement: (a) sampled before, between the iterations of (b) and after
    it, (s), (b) and (c) as measured, and everything derived from them."""

    env_id: str
    arch: str
    backend: str
    workers: int
    gym_samples: tuple[float, ...]
    """(a): before (b), between its iterations, after it."""
    serial: dict
    """(s): training_rate of the serial backend."""
    parallel: dict
    """(b): training_rate of the backend with `workers` workers."""
    concurrent: float
    """(c): gymnasium's step rate in `workers` processes at once."""
    memory: tuple[dict, ...] = ()
    """memory_rows for 1 and N workers, when measured."""

    @property
    def gym_before(self) -> float:
        return self.gym_samples[0]

    @property
    def gym_after(self) -> float:
        return self.gym_samples[-1]

    @property
    def gym(self) -> float:
        """(a), the mean of its samples: the machine's speed drifts by tens of percent between
        minutes, so (b) is set against (a) over the same minutes."""
        return sum(self.gym_samples) / len(self.gym_samples)

    @property
    def efficiency(self) -> float:
        """(b) / (workers x (a))."""
        return self.parallel["steps_per_s"] / (self.workers * self.gym)

    @property
    def concurrent_vs_workers_x_gym(self) -> float:
        """(c) / (workers x (a)): below 1 where cores share hardware or a host."""
        return self.concurrent / (self.workers * self.gym)

    @property
    def train_vs_concurrent(self) -> float:
        """(b) / (c): training against the machine's own parallel step rate."""
        return self.parallel["steps_per_s"] / self.concurrent

    @property
    def serial_vs_gym(self) -> float:
        """(s) / (a)."""
        return self.serial["steps_per_s"] / self.gym

    @property
    def driver_and_idle_share(self) -> float:
        """Of all worker-time, the share neither in tasks nor messaging: driver work and
        workers waiting for an iteration's last task."""
        b = self.parallel
        return b["non_env_share"] - b["task_overhead_share"] - b["messaging_share"]

    @property
    def theta_bytes(self) -> int:
        """θ's size as float64."""
        return 8 * self.parallel["num_params"]

    @property
    def memory_added(self) -> tuple[float, float] | None:
        """Going from 1 to N workers: (MiB added in total, MiB of it noise table)."""
        if len(self.memory) != 2:
            return None
        one, many = self.memory
        return (many["pss_total_mib"] - one["pss_total_mib"],
                many["pss_table_mib"] - one["pss_table_mib"])

    def row(self) -> dict:
        """The CSV row of the throughput case."""
        a, b, s = self.gym, self.parallel, self.serial
        return {"case": "throughput", "env": self.env_id, "arch": self.arch,
                "backend": self.backend, "workers": self.workers,
                "directions": b["directions"], "num_params": b["num_params"],
                "iterations_timed": b["iterations_timed"], "gym_steps_per_s": round(a, 1),
                "gym_after_vs_before": round(self.gym_after / self.gym_before, 3),
                "gym_samples_min_max": f"{min(self.gym_samples):.0f}-"
                                       f"{max(self.gym_samples):.0f}",
                "serial_train_steps_per_s": round(s["steps_per_s"], 1),
                "train_steps_per_s": round(b["steps_per_s"], 1),
                "efficiency": round(self.efficiency, 3),
                "concurrent_gym_steps_per_s": round(self.concurrent, 1),
                "concurrent_vs_workers_x_a": round(self.concurrent_vs_workers_x_gym, 3),
                "train_vs_concurrent": round(self.train_vs_concurrent, 3),
                "serial_vs_gym": round(self.serial_vs_gym, 3),
                "rollout_overhead": round(b["rollout_overhead"], 4),
                "non_env_share": round(b["non_env_share"], 4),
                "task_overhead_share": round(b["task_overhead_share"], 4),
                "messaging_share": round(b["messaging_share"], 4),
                "bytes_sent_per_iteration": b["bytes_sent_per_iteration"]}

    def rows(self) -> list[dict]:
        """The throughput row, then the memory rows."""
        return [self.row(), *self.memory]


def measure(env_id: str, arch: str, backend: str, workers: int, iterations: int = 6,
            directions: int | None = None, memory_table: int = 0, memory_workers: int = 4,
            log: Callable[[str], None] = lambda _: None) -> Throughput:
    """(a), (s), (b) with (a) sampled between its iterations, (a) again, (c), and with
    memory_table > 0 the memory rows for 1 and memory_workers workers; log(text) announces
    each measurement, which take minutes."""
    log(f"(a) single-process gymnasium step rate of {env_id}, zero actions...")
    before = gym_step_rate(env_id)
    log("(s) serial training rate (policy, noise, normalisation in one process)...")
    serial = training_rate(env_id, arch, "serial", 1, iterations, directions)
    log(f"(b) {backend} training rate with {workers} workers, (a) sampled between its "
        "iterations...")
    probe = GymProbe(env_id)
    try:
        parallel = training_rate(env_id, arch, backend, workers, iterations, directions,
                                 probe=probe)
    finally:
        probe.close()
    after = gym_step_rate(env_id)
    log(f"(c) gymnasium in {workers} processes at once (the machine's parallel capacity)...")
    concurrent = concurrent_gym_rate(env_id, workers)
    memory = ()
    if memory_table:
        log(f"memory: noise table of {memory_table:,} entries, 1 and {memory_workers} "
            "workers...")
        memory = tuple(memory_rows(env_id, memory_table, (1, memory_workers)))
    return Throughput(env_id, arch, backend, workers, (before, *probe.rates, after), serial,
                      parallel, concurrent, memory)


def compare_strategies(env_id: str, arch: str, backend: str, workers: int, algos,
                       iterations: int = 6, directions: int | None = None, rounds: int = 2,
                       log: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Each strategy's training efficiency set against ARS's, side by side in one run.

    In every round ARS and each strategy train `iterations` iterations in turn (the order
    reversed every other round, so a drifting machine favours none), each with (a) sampled
    between its iterations; a strategy's ratio is its efficiency over ARS's of the same round,
    averaged over the rounds. Also per strategy: the bytes sent and received per iteration
    and the share of wall time the driver spent in the strategy."""
    names = ["ars", *[a for a in algos if a != "ars"]]
    runs: dict[str, list[tuple[dict, float]]] = {a: [] for a in names}
    for r in range(rounds):
        for algo in names if r % 2 == 0 else names[::-1]:
            log(f"round {r + 1}/{rounds}: {algo} on {env_id} / {arch}, {backend} with "
                f"{workers} workers...")
            probe = GymProbe(env_id)
            try:
                b = training_rate(env_id, arch, backend, workers, iterations, directions,
                                  probe=probe, algo=algo)
            finally:
                probe.close()
            gym = sum(probe.rates) / len(probe.rates)
            runs[algo].append((b, b["steps_per_s"] / (workers * gym)))
    ars = [eff for _, eff in runs["ars"]]
    rows = []
    for algo in names:
        effs = [eff for _, eff in runs[algo]]
        ratios = [e / a for e, a in zip(effs, ars, strict=True)]
        bs = [b for b, _ in runs[algo]]
        rows.append({
            "case": "strategy", "env": env_id, "arch": arch, "backend": backend,
            "workers": workers, "algo": algo, "rounds": rounds,
            "directions": bs[0]["directions"], "num_params": bs[0]["num_params"],
            "iterations_timed": bs[0]["iterations_timed"],
            "train_steps_per_s": round(float(np.mean([b["steps_per_s"] for b in bs])), 1),
            "efficiency": round(float(np.mean(effs)), 4),
            "efficiency_vs_ars": round(float(np.mean(ratios)), 4),
            "efficiency_vs_ars_min_max": f"{min(ratios):.3f}-{max(ratios):.3f}",
            "strategy_share": round(float(np.mean([b["strategy_share"] for b in bs])), 5),
            "bytes_sent_per_iteration": round(float(np.mean(
                [b["bytes_sent_per_iteration"] for b in bs])), 1),
            "bytes_received_per_iteration": round(float(np.mean(
                [b["bytes_received_per_iteration"] for b in bs])), 1)})
    return rows
