"""The memory a run's workers will take, against what this machine has: a worker count that
cannot fit is refused before any process starts (1000 mp workers were OOM-killed on a 24 GiB
machine 36 s into a run; issue 26), rather than found out by the kernel's OOM killer.

The estimate is ``workers x WORKER_MIB[backend] + the noise table once`` (the table is one
shared block however many workers map it), set against MemAvailable from /proc/meminfo; with
``run.actor_workers`` (Ray actors each running a pool of mp workers) it is ``workers x mp's +
actors x (Ray's + the table)``, since each actor copies the table into its pool's block. It
applies to the workers on this machine: the mp backend's processes and the actors of a local
Ray; a Ray cluster's (``--ray-address``) live elsewhere, and the serial backend starts none.
"""

from __future__ import annotations

import os

from es_compact.config import TrainConfig
from es_compact.errors import ConfigError

MIB = 2**20
WORKER_MIB = {"mp": 68, "ray": 116}
"""Memory one more worker takes, in MiB, measured after one HalfCheetah-v4 iteration (kama
policy, 25M-float noise table) on the 2-core, 24 GiB machine of issue 26, and rounded up:

- mp: 66.9 MiB, each worker's private memory (USS, Private_Clean + Private_Dirty in
  /proc/PID/smaps_rollup) at 1, 2, 4 and 8 workers; the marginal proportional set size,
  (es_compact.bench.throughput.memory_rows at 4 workers - at 1) / 3 = (594.8 - 392.2) / 3,
  is 67.5 MiB. Humanoid-v4 (66.9) and InvertedPendulum-v4 with a linear policy (65.2) cost
  the same to 2 MiB: a worker is mostly Python, NumPy, numba and MuJoCo.
- ray: 115.5 MiB, an actor's private memory on a local Ray (Ray's own processes come on top).
"""


def available_memory() -> int | None:
    """Bytes of memory available now: MemAvailable from /proc/meminfo, else os.sysconf's free
    physical pages; None if neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / MIB:.{0 if n >= 10 * MIB else 1}f} MiB"


def workers_estimate(config: TrainConfig) -> tuple[int, int]:
    """(workers on this machine, bytes they and the noise table will take); (0, 0) when the
    workers live elsewhere or there are none. config: resolved (workers set)."""
    run = config.run
    if run.backend not in WORKER_MIB or (run.backend == "ray" and run.ray_address is not None):
        return 0, 0
    table = 4 * run.noise_table_size if config.strategy.exploration == "gaussian" else 0
    if run.backend == "ray" and run.actor_workers is not None:
        actors = run.workers // run.actor_workers
        return run.workers, (run.workers * WORKER_MIB["mp"] + actors * WORKER_MIB["ray"]) * MIB \
            + (actors + 1) * table
    return run.workers, run.workers * WORKER_MIB[run.backend] * MIB + table


def check_workers_fit(config: TrainConfig, available: int | None = None) -> None:
    """ConfigError stating the estimate when the run's workers would not fit in the memory
    available (default: MemAvailable now; nothing is checked when it cannot be read)."""
    n, need = workers_estimate(config)
    available = available_memory() if available is None else available
    if not n or available is None or need <= available:
        return
    run = config.run
    if run.backend == "ray" and run.actor_workers is not None:
        raise ConfigError(
            f"{n} workers in {n // run.actor_workers} local Ray actors would need about "
            f"{_size(need)} of memory ({WORKER_MIB['mp']} MiB a worker, {WORKER_MIB['ray']} "
            f"MiB and a copy of the noise table an actor), but {_size(available)} is "
            "available (MemAvailable)")
    per = WORKER_MIB[config.run.backend]
    table = need - n * per * MIB
    fit = max(0, (available - table) // (per * MIB))
    backend = "mp workers" if config.run.backend == "mp" else "local Ray actors"
    raise ConfigError(
        f"{n} {backend} would need about {_size(need)} of memory ({per} MiB each"
        + (f" + {_size(table)} for the noise table, once" if table else "")
        + f"), but {_size(available)} is available (MemAvailable): "
        + (f"at most {fit} fit" if fit else "not even one fits"))
