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
Also the bytes the backend sent per iteration, and the memory check: proportional set size
(PSS, shared pages split among the processes mapping them) of the driver and its workers with
a large noise table, for 1 and for N workers.
"""

from __future__ import annotations

import os
import tempfile
import time
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


def _config(env_id, arch, backend, workers, iterations, directions, table_size, seed=0):
    return TrainConfig(env=EnvConfig(id=env_id), policy=PolicyConfig(arch=arch),
                       strategy=StrategyConfig(directions=directions),
                       run=RunConfig(seed=seed, iterations=iterations, eval_every=10**9,
                                     backend=backend, workers=workers,
                                     noise_table_size=table_size))


def training_rate(env_id, arch, backend, workers, iterations=6, directions=None,
                  table_size=25_000_000, probe: GymProbe | None = None) -> dict:
    """Train `iterations` iterations; rate over all but the first (warm-up) iteration. With a
    probe, (a) is sampled after every iteration; that time is left out of the window."""
    rows = []
    paused = [0.0]
    backend_obj = make_backend(backend, workers)
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(_config(env_id, arch, backend, workers, iterations, directions,
                                  table_size), Path(d) / "run", backend=backend_obj)
        sent = []

        def on_iter(row, info):
            now = time.perf_counter()
            rows.append((row["timesteps"], now - paused[0], trainer.env_seconds,
                         trainer.busy_seconds, getattr(backend_obj, "transit_seconds", 0.0)))
            sent.append(getattr(backend_obj, "bytes_sent", 0))
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
    per_iter_bytes = np.diff(sent).mean() if len(sent) > 1 else float("nan")
    return {"steps_per_s": steps / secs, "iterations_timed": len(rows) - 1,
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
