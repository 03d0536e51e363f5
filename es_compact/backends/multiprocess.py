"""The multiprocessing backend: persistent worker processes, one environment each.

- The noise table lives in one shared-memory block built by the driver; workers map it, so
  adding workers adds no copy of it.
- Per iteration the Broadcast (θ: the only parameter-sized message) is written once into a
  shared-memory block, and each worker is told where it is (a message of a few dozen bytes,
  once an iteration), then given chunks of tasks (large first, single tasks last:
  base.split_tasks), handed out as workers become free; results are put back in task order,
  so nothing depends on which worker ran what.
- A worker that dies mid-iteration (even by SIGKILL) is replaced, its unfinished chunk is run
  again by another worker, and one warning line is logged; the results are the same as
  undisturbed. A worker's death is seen as its pipe closing (the pipe is the only thing it
  holds of the driver's), so a fork server that dies (SIGKILLed with the workers) is one
  warning too and costs nothing: the workers go on, and a new server starts when a worker
  must be replaced.
- A worker past its chunk's deadline (base.Deadlines: run.rollout_timeout, or derived from
  the measured step time) is killed and replaced; base.Schedule retries its tasks.
- Workers ignore SIGINT, so Ctrl-C reaches only the driver, which then stops them; a worker
  whose driver vanished sees its pipe close and exits, silently.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import sys
import time
import traceback
from multiprocessing import shared_memory

import numpy as np

from es_compact.backends.base import Backend, Deadlines, Schedule, describe_chunk
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
STOP_WAIT_S = 5.0
"""How long close() waits for a worker to exit before killing it."""
STARTS = 3
"""Workers started in a row, each dying while it starts, before that is an error."""


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
    try:
        conn.send_bytes(_dumps(("ready", worker.episode_limit)))
        _serve(conn, worker, table)
    except (EOFError, OSError):
        pass  # the driver is gone (or gave up on this worker): nothing to report to
    finally:
        worker.close()


def _serve(conn, worker: RolloutWorker, table: NoiseTable | None) -> None:
    broadcast = block = None
    try:
        while True:
            kind, payload = pickle.loads(conn.recv_bytes())
            if kind == "broadcast_at":
                block, broadcast = _read_broadcast(block, *payload)
            elif kind == "stop":
                return
            else:
                _answer(conn, worker, table, broadcast, kind, payload)
    finally:
        if block is not None:
            block.close()


def _read_broadcast(block, name: str, size: int):
    """(the driver's broadcast block, mapped, and the broadcast unpickled from it: a copy, so
    the driver may overwrite the block once this iteration's chunks are done)."""
    if block is None or block.name != name:  # the driver made a larger one
        if block is not None:
            block.close()
        block = _attach(name)
    with block.buf[:size] as view:
        return block, pickle.loads(view)


def _answer(conn, worker: RolloutWorker, table, broadcast, kind, payload) -> None:
    if kind == "tasks":
        chunk_id, tasks = payload
        try:
            reply = ("results", (chunk_id, worker.run(broadcast, tasks)))
        except Exception:
            reply = ("error", traceback.format_exc())
        conn.send_bytes(_dumps(reply))
    elif kind == "touch":
        total = float(table.table.sum(dtype=np.float64)) if table is not None else 0.0
        conn.send_bytes(_dumps(("touched", total)))


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
        self.pid = self.proc.pid
        self.chunk: int | None = None
        self.sent_at = 0.0
        self.deadline = 0.0
        self.broadcast_version = -1
        self.watch_sentinel = True
        """False once its fork server died: the sentinel then says nothing of the worker."""

    def kill(self) -> None:
        """SIGKILL the worker unless its pipe has closed: while the worker holds its end, it
        has not exited, so its pid is still its own."""
        if self.closed_by_worker():
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def closed_by_worker(self) -> bool:
        """Whether the worker's end of the pipe is closed (what it sent first is dropped)."""
        try:
            while self.conn.poll():
                self.conn.recv_bytes()
        except (EOFError, OSError):
            return True
        return False

    def wait_closed(self, timeout: float) -> bool:
        """Drop whatever the worker still sends until its pipe closes (it exited), or
        timeout seconds pass."""
        end = time.monotonic() + timeout
        while not self.closed_by_worker():
            if time.monotonic() >= end:
                return False
            self.conn.poll(max(0.0, end - time.monotonic()))
        return True


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
        self.timed_out_chunks = 0
        self.transit_seconds = 0.0
        """Worker-seconds per chunk outside its tasks: from sending (with the broadcast when
        it goes too) to receiving the results, minus the tasks' own time. Messaging."""
        self.deadlines = Deadlines()
        self._version = 0
        self._broadcast_bytes = b""  # where this iteration's broadcast is, as sent
        self._bc_block: shared_memory.SharedMemory | None = None
        self._server_lost_logged = False

    # Life cycle -------------------------------------------------------------------------------

    def table_buffer(self, size: int) -> np.ndarray:
        self.shm = shared_memory.SharedMemory(create=True, size=max(4, 4 * size))
        self.table_size = size
        return np.ndarray((size,), dtype=np.float32, buffer=self.shm.buf)

    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        self.config_dict = config.to_dict()
        self.deadlines = Deadlines(config.run.rollout_timeout)
        if table is not None:
            if self.shm is None or self.table_size != len(table):  # built elsewhere: copy
                self.table_buffer(len(table))[:] = table.table
            self.shm_name = self.shm.name
        self.workers = [_Worker(self) for _ in range(self.n_workers)]  # all start at once
        for i, w in enumerate(self.workers):
            try:
                self._await_ready(w)
            except WorkerError as exc:
                self.workers[i] = self._ready_worker(str(exc))

    def _ready_worker(self, failed: str | None = None) -> _Worker:
        """A new worker, ready; one that dies while starting (killed, say) is replaced by
        another, STARTS times in all (failed: why an earlier one did not start)."""
        tries = 0 if failed is None else 1
        while True:
            if failed is not None:
                if tries >= STARTS:
                    raise WorkerError(failed)
                log.warning("%s; starting another", failed)
            w = _Worker(self)
            tries += 1
            try:
                self._await_ready(w)
                return w
            except WorkerError as exc:
                w.conn.close()
                failed = str(exc)

    def _await_ready(self, w: _Worker) -> None:
        try:
            kind, limit = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError):
            w.proc.join(5)
            raise WorkerError(f"a worker process exited while starting (exit code "
                              f"{w.proc.exitcode})") from None
        if kind != "ready":
            raise WorkerError(f"unexpected first message from a worker: {kind}")
        self.deadlines.episode_limit = limit

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send_bytes(_dumps(("stop", None)))
            except (OSError, ValueError):
                pass
        for w in self.workers:
            if not w.wait_closed(STOP_WAIT_S):
                w.kill()
                w.wait_closed(STOP_WAIT_S)
            w.proc.join(timeout=1)
            w.conn.close()
        self.workers = []
        if self._bc_block is not None:
            self._bc_block.close()
            self._bc_block.unlink()
            self._bc_block = None
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

    def _dispatch(self, w: _Worker, sched: Schedule, cid: int) -> bool:
        """Send chunk cid (and the broadcast, once an iteration) to w; False if w is gone."""
        try:
            w.sent_at = time.perf_counter()
            if w.broadcast_version != self._version:
                self._send(w, self._broadcast_bytes)
                w.broadcast_version = self._version
            self._send(w, _dumps(("tasks", (cid, sched.tasks_of(cid)))))
        except (OSError, ValueError):
            return False
        w.chunk = cid
        w.deadline = time.monotonic() + sched.deadline(cid)
        return True

    def _put_broadcast(self, broadcast) -> None:
        """Write the broadcast into the shared block (a larger one when it has grown) and
        make the message that says where it is. Safe to overwrite: every worker that read the
        previous one has finished that iteration's chunks (or was killed)."""
        data = _dumps(broadcast)
        block = self._bc_block
        if block is None or block.size < len(data):
            if block is not None:
                block.close()
                block.unlink()  # workers drop their mapping when told of the new one
            block = self._bc_block = shared_memory.SharedMemory(
                create=True, size=len(data) + len(data) // 4 + 4096)
        block.buf[:len(data)] = data
        self.bytes_sent += len(data)  # θ goes out once, however many workers read it
        self._broadcast_bytes = _dumps(("broadcast_at", (block.name, len(data))))

    def run(self, broadcast, tasks, progress=None):
        self._version += 1
        self._put_broadcast(broadcast)
        sched = Schedule(tasks, self.n_workers, self.deadlines, progress=progress)
        idle = list(self.workers)
        busy: dict = {}  # conn -> worker
        # A selector a run with every worker registered once, and a heap of deadlines: a
        # wake-up costs the driver O(ready) and O(log W), and a chunk no registration at all
        # (multiprocessing's wait() registers every busy worker anew each call: O(W) each).
        sel, due, order = selectors.DefaultSelector(), [], itertools.count()
        for w in self.workers:
            _watch(sel, w)

        def replace(w: _Worker, chunk: int | None) -> None:
            _unwatch(sel, w)
            new = self._replace(w, chunk)
            _watch(sel, new)
            idle.append(new)

        try:
            while sched:
                while sched.pending and idle:
                    w, cid = idle.pop(), sched.next()
                    if self._dispatch(w, sched, cid):
                        busy[w.conn] = w
                        heapq.heappush(due, (w.deadline, next(order), w))
                    else:  # found dead before it ran the chunk
                        sched.lost(cid, ran=False)
                        replace(w, None)
                if not busy:
                    continue
                while due[0][2].conn not in busy or due[0][2].deadline != due[0][0]:
                    heapq.heappop(due)  # done (or sent another chunk) since it was pushed
                timeout = max(0.0, due[0][0] - time.monotonic())
                for key, _ in self._select(sel, timeout):
                    w = key.data
                    if w.conn.closed:
                        continue  # replaced already (its pipe and its sentinel were both ready)
                    if key.fileobj is not w.conn:  # its process's sentinel
                        if not w.conn.poll():  # the sentinel closed, yet the worker lives on
                            self._server_lost(w)
                            for other in self.workers:
                                _unwatch(sel, other, conn=False)
                        else:  # it died: its pipe says so too, and is handled as such
                            _unwatch(sel, w, conn=False)
                        continue
                    if w.conn not in busy:  # an idle worker's pipe: closed, it died
                        _unwatch(sel, w)  # (found and replaced when it is given a chunk)
                        continue
                    try:
                        data = w.conn.recv_bytes()
                    except (EOFError, OSError):
                        del busy[w.conn]
                        outcome = sched.lost(w.chunk)
                        replace(w, w.chunk)
                        if outcome:
                            log.warning("%s", outcome)
                        continue
                    self.bytes_received += len(data)
                    kind, payload = pickle.loads(data)
                    if kind == "error":
                        raise WorkerError(f"a rollout worker failed:\n{payload}")
                    cid, chunk_results = payload
                    self.transit_seconds += time.perf_counter() - w.sent_at - sum(
                        r.busy_seconds for r in chunk_results)
                    sched.done(cid, chunk_results)
                    del busy[w.conn]
                    w.chunk = None
                    idle.append(w)
                now = time.monotonic()
                while due and due[0][0] <= now:
                    deadline, _, w = heapq.heappop(due)
                    if w.conn in busy and w.deadline == deadline:
                        del busy[w.conn]
                        _unwatch(sel, w)
                        new = self._timed_out(w, sched)
                        _watch(sel, new)
                        idle.append(new)
        finally:
            sel.close()
        return sched.results()

    def _select(self, sel: selectors.BaseSelector, timeout: float) -> list:
        """The driver's one blocking call of an iteration: until a busy worker's pipe (or
        its process's sentinel) is ready, or timeout seconds."""
        return sel.select(timeout)

    def _timed_out(self, w: _Worker, sched: Schedule) -> _Worker:
        cid, seconds = w.chunk, sched.deadline(w.chunk)
        what = describe_chunk(sched.tasks_of(cid))
        w.kill()
        w.wait_closed(STOP_WAIT_S)
        outcome = sched.timed_out(cid, seconds)
        self.timed_out_chunks += 1
        return self._replace(w, None, f"passed its {seconds:.3g} s deadline on {what}; "
                                      f"killed it, {outcome}")

    def _server_lost(self, w: _Worker) -> None:
        """The fork server died: every worker's sentinel closed, the workers did not."""
        for other in self.workers:
            other.watch_sentinel = False
        if not self._server_lost_logged:
            self._server_lost_logged = True
            log.warning("the workers' fork server (pid %s) exited; the workers go on, and a "
                        "new server starts if one must be replaced", _forkserver_pid())

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.n_workers, "bytes_sent": self.bytes_sent,
                "transit_seconds": round(self.transit_seconds, 3),
                "bytes_received": self.bytes_received, "replaced_workers": self.replaced_workers,
                "timed_out_chunks": self.timed_out_chunks}

    def _replace(self, dead: _Worker, chunk: int | None, why: str | None = None) -> _Worker:
        dead.proc.join(timeout=1)
        code = dead.proc.exitcode if dead.watch_sentinel else None
        dead.conn.close()
        if why is None:
            why = "died" + (f" (exit code {code})" if code is not None else "") + (
                f", re-running its chunk {chunk}" if chunk is not None else "")
        log.warning("rollout worker %s %s; starting a replacement", dead.pid, why)
        new = self._ready_worker()
        self.workers[self.workers.index(dead)] = new
        self.replaced_workers += 1
        return new


def _watch(sel: selectors.BaseSelector, w: _Worker) -> None:
    sel.register(w.conn, selectors.EVENT_READ, w)
    if w.watch_sentinel:
        sel.register(w.proc.sentinel, selectors.EVENT_READ, w)


def _unwatch(sel: selectors.BaseSelector, w: _Worker, conn: bool = True) -> None:
    for obj in (w.conn, w.proc.sentinel) if conn else (w.proc.sentinel,):
        try:
            sel.unregister(obj)
        except (KeyError, ValueError, OSError):
            pass  # not registered (its sentinel, once the fork server died)


def _forkserver_pid():
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)
