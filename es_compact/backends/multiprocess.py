"""The multiprocessing backend: persistent worker processes, one environment each.

- The noise table lives in one shared-memory block built by the driver; workers map it, so
  adding workers adds no copy of it.
- Per iteration each worker receives the Broadcast once (θ: the only parameter-sized message),
  then chunks of tasks (large first, single tasks last: base.split_tasks), handed out as
  workers become free; results are put back in task order, so nothing depends on which
  worker ran what.
- A worker that dies mid-iteration (even by SIGKILL) is replaced, its unfinished chunk is run
  again by another worker, and a warning is logged; the results are the same as undisturbed.
- Workers ignore SIGINT, so Ctrl-C reaches only the driver, which then stops them; a worker
  whose driver vanished sees its pipe close and exits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from multiprocessing import shared_memory
from multiprocessing.connection import wait

import numpy as np

from es_compact.backends.base import Backend, split_tasks
from es_compact.checks import is_integer
from es_compact.config import TrainConfig
from es_compact.errors import ConfigError, ESCompactError
from es_compact.noise import NoiseTable
from es_compact.rollout import RolloutWorker

log = logging.getLogger(__name__)
# forkserver: workers fork from a clean server process (no inherited driver threads or locks)
# that has already imported the rollout code and loaded the compiled policy kernels
# (backends/preload.py), so those pages are shared rather than loaded once per worker.
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["es_compact.backends.preload", "es_compact.backends.multiprocess"])


class WorkerError(ESCompactError):
    """A worker raised something that is not an environment failure (a bug, not bad luck)."""


def _dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=5)


def _worker_main(conn, config_dict: dict, shm_name: str | None, table_size: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shm = table = None
    if shm_name is not None:
        shm = _attach(shm_name)
        table = NoiseTable(np.ndarray((table_size,), dtype=np.float32, buffer=shm.buf))
    worker = RolloutWorker(TrainConfig.from_dict(config_dict), table)
    conn.send_bytes(_dumps(("ready", None)))
    broadcast = None
    try:
        while True:
            try:
                kind, payload = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break  # the driver is gone
            if kind == "broadcast":
                broadcast = payload
            elif kind == "tasks":
                chunk_id, tasks = payload
                try:
                    results = worker.run(broadcast, tasks)
                    conn.send_bytes(_dumps(("results", (chunk_id, results))))
                except Exception:
                    conn.send_bytes(_dumps(("error", traceback.format_exc())))
            elif kind == "touch":
                total = float(table.table.sum(dtype=np.float64)) if table is not None else 0.0
                conn.send_bytes(_dumps(("touched", total)))
            elif kind == "stop":
                break
    finally:
        worker.close()


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map the driver's block. Spawned workers share the driver's resource tracker, so the
    registration this makes is the driver's own, which the driver's unlink() removes."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    return shared_memory.SharedMemory(name=name)


class _Worker:
    def __init__(self, backend: MultiprocessBackend):
        parent, child = _CTX.Pipe()
        self.conn = parent
        self.proc = _CTX.Process(target=_worker_main, daemon=True,
                                 args=(child, backend.config_dict, backend.shm_name,
                                       backend.table_size))
        self.proc.start()
        child.close()
        self.chunk: int | None = None
        self.sent_at = 0.0
        self.broadcast_version = -1


class MultiprocessBackend(Backend):
    name = "mp"

    @classmethod
    def from_settings(cls, workers: int = 1, **settings) -> MultiprocessBackend:
        return cls(workers)

    def __init__(self, workers: int = 2):
        # ConfigError, like RunConfig's check: the CLI shows it as one line, before any work.
        if not is_integer(workers) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.n_workers = workers
        self.workers: list[_Worker] = []
        self.shm: shared_memory.SharedMemory | None = None
        self.shm_name: str | None = None
        self.table_size = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.replaced_workers = 0
        self.transit_seconds = 0.0
        """Worker-seconds per chunk outside its tasks: from sending (with the broadcast when
        it goes too) to receiving the results, minus the tasks' own time. Messaging."""
        self._version = 0
        self._broadcast_bytes = b""

    # Life cycle -------------------------------------------------------------------------------

    def table_buffer(self, size: int) -> np.ndarray:
        self.shm = shared_memory.SharedMemory(create=True, size=max(4, 4 * size))
        self.table_size = size
        return np.ndarray((size,), dtype=np.float32, buffer=self.shm.buf)

    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        self.config_dict = config.to_dict()
        if table is not None:
            if self.shm is None or self.table_size != len(table):  # built elsewhere: copy
                self.table_buffer(len(table))[:] = table.table
            self.shm_name = self.shm.name
        self.workers = [_Worker(self) for _ in range(self.n_workers)]
        for w in self.workers:
            self._await_ready(w)

    def _await_ready(self, w: _Worker) -> None:
        try:
            kind, _ = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError):
            w.proc.join(5)
            raise WorkerError(f"a worker process exited while starting (exit code "
                              f"{w.proc.exitcode})") from None
        if kind != "ready":
            raise WorkerError(f"unexpected first message from a worker: {kind}")

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send_bytes(_dumps(("stop", None)))
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []
        if self.shm is not None:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass
            try:
                self.shm.close()
            except BufferError:
                pass  # the driver's table still views it; unmapped when that is collected
            self.shm = None

    def touch_table(self) -> list[float]:
        """Make every worker read the whole noise table (as a long run eventually does), for
        memory measurements; returns each worker's table sum."""
        sums = []
        for w in self.workers:
            self._send(w, _dumps(("touch", None)))
        for w in self.workers:
            kind, payload = pickle.loads(w.conn.recv_bytes())
            sums.append(payload)
        return sums

    # One iteration ----------------------------------------------------------------------------

    def _send(self, w: _Worker, data: bytes) -> None:
        w.conn.send_bytes(data)
        self.bytes_sent += len(data)

    def run(self, broadcast, tasks):
        self._version += 1
        self._broadcast_bytes = _dumps(("broadcast", broadcast))
        chunks = split_tasks(tasks, self.n_workers)
        pending = deque(range(len(chunks)))
        results: list = [None] * len(chunks)
        idle = list(self.workers)
        busy: dict = {}
        while pending or busy:
            while pending and idle:
                w = idle.pop()
                cid = pending.popleft()
                try:
                    w.sent_at = time.perf_counter()
                    if w.broadcast_version != self._version:
                        self._send(w, self._broadcast_bytes)
                        w.broadcast_version = self._version
                    self._send(w, _dumps(("tasks", (cid, chunks[cid]))))
                except (OSError, ValueError):
                    pending.appendleft(cid)
                    idle.append(self._replace(w, None))
                    continue
                w.chunk = cid
                busy[w.conn] = w
            ready = wait(list(busy) + [w.proc.sentinel for w in busy.values()])
            for obj in ready:
                w = busy.get(obj) or next((b for b in busy.values() if b.proc.sentinel == obj),
                                          None)
                if w is None or w.conn not in busy:
                    continue
                try:
                    data = w.conn.recv_bytes() if w.conn.poll() else None
                except (EOFError, OSError):
                    data = None
                if data is None:
                    if w.proc.is_alive() and obj is w.conn:
                        continue
                    del busy[w.conn]
                    pending.appendleft(w.chunk)
                    idle.append(self._replace(w, w.chunk))
                    continue
                self.bytes_received += len(data)
                kind, payload = pickle.loads(data)
                if kind == "error":
                    raise WorkerError(f"a rollout worker failed:\n{payload}")
                cid, chunk_results = payload
                self.transit_seconds += time.perf_counter() - w.sent_at - sum(
                    r.busy_seconds for r in chunk_results)
                results[cid] = chunk_results
                del busy[w.conn]
                w.chunk = None
                idle.append(w)
        return [r for chunk in results for r in chunk]

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.n_workers, "bytes_sent": self.bytes_sent,
                "transit_seconds": round(self.transit_seconds, 3),
                "bytes_received": self.bytes_received, "replaced_workers": self.replaced_workers}

    def _replace(self, dead: _Worker, chunk: int | None) -> _Worker:
        code = dead.proc.exitcode
        dead.proc.join(timeout=1)
        dead.conn.close()
        log.warning("rollout worker %s died (exit code %s)%s; starting a replacement",
                    dead.proc.pid, code,
                    f", re-running its chunk {chunk}" if chunk is not None else "")
        new = _Worker(self)
        self._await_ready(new)
        self.workers[self.workers.index(dead)] = new
        self.replaced_workers += 1
        return new
