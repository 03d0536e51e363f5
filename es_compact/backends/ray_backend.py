"""The Ray backend: one actor per worker, on a local Ray or an existing cluster.

- The noise table is put once in the object store; actors on a node map that one copy.
- Per iteration the Broadcast is put once and passed by reference; chunks of tasks
  (base.split_tasks) go to actors as they become free, and results are put back in task
  order. Each call's completion is announced by a callback (ObjectRef.future) into a queue,
  so the driver wakes up in O(1) per finished chunk rather than in one ray.wait over every
  busy actor (0.3 ms of CPU with 512 of them), and takes the result the callback's thread has
  already deserialized; deadlines sit in a heap.
- An actor that dies (killed process, lost node) is replaced and its chunk is run again by
  another. The replacement is asked for and never waited for: when its node was lost and no
  other has room, the run goes on with the actors it has (one warning line, "node lost:
  continuing on 1 of 2 workers"), and the replacement joins when Ray can place it (a node
  joined again). An actor past its chunk's deadline (base.Deadlines) is killed and replaced
  the same way; base.Schedule retries its tasks.
- ``address``: None starts a local Ray with one CPU per worker (dashboard off; on, on
  127.0.0.1 only, with ``include_dashboard``) and tightens the permissions of the token file
  Ray writes for it; 'auto' or HOST:PORT joins a running cluster (checked with a plain TCP
  connection first, so an unreachable address fails within seconds instead of hanging).
- ``actor_workers`` G (hierarchical dispatch): workers / G actors, each reserving G CPUs and
  running a local pool of G worker processes (the mp backend inside the actor: shared-memory
  noise table, θ once an iteration, dynamic chunks, dead-worker replacement, deadlines). The
  driver's chunks are at least G tasks (base.split_tasks' min_size), one call per chunk, so
  it pays Ray's per-call cost (about 0.75 ms of driver CPU, bench driver) W / G times fewer;
  results are still put back in task order, so θ is the same for any W and G. A worker killed
  inside an actor is replaced by the actor's pool; a killed actor or a lost node is handled as
  above. The driver's deadline for a batch is 2^MAX_ATTEMPTS times its derived one, so the
  pool's own deadlines retry a hung environment first.
- ``ray.init`` replaces the driver's SIGTERM handler (with one that exits 15, and a C++ crash
  dump); the one in place before is put back, so SIGTERM stops a Ray run as it stops an mp
  run (the CLI: a checkpoint, "interrupted; continue with ...", exit 130).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import stat
import threading
import time
from pathlib import Path

from es_compact.backends.base import MAX_ATTEMPTS, Backend, Deadlines, Schedule, describe_chunk
from es_compact.checks import is_integer
from es_compact.config import TrainConfig
from es_compact.errors import ConfigError, ESCompactError
from es_compact.noise import NoiseTable
from es_compact.rollout import Results, RolloutWorker

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
START_WAIT_S = 120.0
CLOSE_WAIT_S = 10.0
"""How long close() lets hierarchical actors stop their pools before killing them."""
"""How long start() waits for every actor to be placed before going on with those that are."""
LOCAL_HOST = "127.0.0.1"


class RayUnavailable(ESCompactError):
    """Ray is not installed or the cluster cannot be reached."""


class RayWorkerError(ESCompactError):
    """A Ray actor failed to build its environment or policy (a bug or a bad setting, which
    another actor would repeat)."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("the ray backend needs Ray: pip install 'ray>=2.9' (or use "
                             "--backend mp)") from None
    return ray


def check_dashboard_packages() -> None:
    """RayUnavailable, in one line naming the extra, when Ray's dashboard cannot start."""
    try:
        import ray.dashboard.optional_deps  # noqa: F401  (what Ray itself checks)
    except ImportError as exc:
        raise RayUnavailable(f"--ray-dashboard needs Ray's dashboard packages ({exc}): pip "
                             "install 'es-compact[ray-dashboard]' (or leave the dashboard "
                             "off)") from None


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast and clearly when HOST:PORT does not accept TCP connections."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--ray-address must be 'auto' or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayUnavailable(f"cannot reach a Ray cluster at {address}: {exc}") from None


def token_path() -> Path:
    """Where Ray keeps the token of token authentication (RAY_AUTH_TOKEN_PATH, else
    ~/.ray/auth_token)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _restrict_token_file() -> None:
    """Ray writes its token readable by everyone (0644): make it its owner's only."""
    path = token_path()
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and path.stat().st_uid == os.getuid():
            path.chmod(stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        pass  # no token file (authentication off), or not ours to change


class _ActorImpl:
    """The body of a Ray actor: a RolloutWorker built once."""

    def __init__(self, config_dict: dict, table_ref):
        import ray

        table = None
        if table_ref is not None:
            table = NoiseTable(ray.get(table_ref[0]))  # zero-copy view of the object store
        self.worker = RolloutWorker(TrainConfig.from_dict(config_dict), table)

    def node(self) -> tuple[str, int | None]:
        """(node id, the environment's step limit): asked once, when the actor is ready."""
        import ray

        return ray.get_runtime_context().get_node_id(), self.worker.episode_limit

    def run(self, broadcast, tasks):
        return self.worker.run(broadcast, tasks)

    def pid(self) -> int:
        import os

        return os.getpid()


class _PoolActorImpl:
    """The body of a hierarchical Ray actor: a local pool of worker processes (the mp
    backend), started once, that runs each batch of tasks it is sent."""

    def __init__(self, config_dict: dict, table_ref, workers: int):
        import ray

        from es_compact.backends.multiprocess import MultiprocessBackend

        self.pool = MultiprocessBackend(workers)
        table = None
        if table_ref is not None:
            source = ray.get(table_ref[0])
            buffer = self.pool.table_buffer(len(source))  # the pool's shared block
            buffer[:] = source
            table = NoiseTable(buffer)
        self.pool.start(TrainConfig.from_dict(config_dict), table)

    def node(self) -> tuple[str, int | None]:
        import ray

        return ray.get_runtime_context().get_node_id(), self.pool.deadlines.episode_limit

    def run(self, broadcast, tasks):
        # Results: the batch travels as one array per field (rollout.Results), as a worker's
        # chunk does; a plain list would cost the driver's Ray threads ~30 us a result.
        return Results(self.pool.run(broadcast, tasks))

    def pid(self) -> int:
        return os.getpid()

    def pool_pids(self) -> list[int]:
        """The pids of the pool's worker processes."""
        return [w.pid for w in self.pool.workers]

    def replaced_workers(self) -> int:
        return self.pool.replaced_workers

    def close(self) -> None:
        self.pool.close()


class RayBackend(Backend):
    name = "ray"

    @classmethod
    def from_settings(cls, workers: int = 1, **settings) -> RayBackend:
        return cls(workers, address=settings.get("address"),
                   include_dashboard=bool(settings.get("dashboard", False)),
                   actor_workers=settings.get("actor_workers"))

    def __init__(self, workers: int = 2, address: str | None = None,
                 include_dashboard: bool = False, actor_workers: int | None = None):
        if actor_workers is not None and (not is_integer(actor_workers) or actor_workers < 1
                                          or not is_integer(workers) or workers < 1
                                          or workers % actor_workers):
            raise ConfigError(f"workers ({workers!r}) must be a positive multiple of "
                              f"actor_workers ({actor_workers!r})")
        self.n_workers = workers
        self.actor_workers = actor_workers
        self.group = actor_workers or 1
        """Workers an actor runs (1: the actor itself)."""
        self.n_actors = workers // self.group
        self.address = address
        self.include_dashboard = include_dashboard
        self.actors: list = []
        self._nodes: list[str | None] = []
        """Each slot's node id; None while its actor is not placed yet."""
        self._starting: dict = {}  # node() ref of an actor not ready yet -> slot
        self.replaced_workers = 0
        self.lost_nodes: set[str] = set()
        self.timed_out_chunks = 0
        self.nodes_used: set[str] = set()
        self.chunks_per_node: dict[str, int] = {}
        self.bytes_sent = 0
        self.transit_seconds = 0.0
        """Worker-seconds per chunk outside its tasks (submit to result, minus task time)."""
        self.dashboard_url: str | None = None
        self.deadlines = Deadlines()
        self._started_ray = False
        self._short_of = 0  # workers missing when that was last announced
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        """(ref, future) of every watched call, as it completes (Ray's thread puts them)."""

    # Life cycle -------------------------------------------------------------------------------

    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        ray = _import_ray()
        if self.address not in (None, "auto"):
            check_address(self.address)
        if not ray.is_initialized():
            self._init(ray)
        self._ray = ray
        self._actor_cls = ray.remote(num_cpus=self.group, max_restarts=0)(
            _ActorImpl if self.actor_workers is None else _PoolActorImpl)
        self._config_dict = config.to_dict()
        self.deadlines = Deadlines(config.run.rollout_timeout)
        # Wrapped in a list so Ray passes the reference itself, not the resolved array.
        self._table_ref = [ray.put(table.table)] if table is not None else None
        self.actors = [None] * self.n_actors
        self._nodes = [None] * self.n_actors
        for slot in range(self.n_actors):
            self._start_actor(slot)
        done, _ = ray.wait(list(self._starting), num_returns=len(self._starting),
                           timeout=START_WAIT_S)
        for ref in done:
            self._started(ref)
        self._announce()

    def _init(self, ray) -> None:
        kwargs = {"include_dashboard": self.include_dashboard, "log_to_driver": False,
                  "configure_logging": False}
        if self.address is None:
            if self.include_dashboard:
                check_dashboard_packages()
            # Ray binds its own servers where it decides (2.60: every interface, token
            # authentication on); the dashboard is the one it lets us keep on loopback.
            kwargs.update(num_cpus=self.n_workers, dashboard_host=LOCAL_HOST)
        else:
            kwargs["address"] = self.address
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            context = ray.init(**kwargs)
        except ConnectionError as exc:
            raise RayUnavailable(f"cannot join the Ray cluster at {self.address}: "
                                 f"{exc}") from None
        finally:
            if main and sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        self._started_ray = True
        if self.address is None:
            _restrict_token_file()
        if self.include_dashboard:
            self.dashboard_url = getattr(context, "dashboard_url", None) or None

    def _start_actor(self, slot: int) -> None:
        """Ask for slot's actor; it joins the pool when Ray has placed it (_started)."""
        args = (() if self.actor_workers is None else (self.group,))
        actor = self._actor_cls.remote(self._config_dict, self._table_ref, *args)
        self.actors[slot] = actor
        self._nodes[slot] = None
        ref = actor.node.remote()
        self._starting[ref] = slot
        self._watch(ref)

    def _watch(self, ref) -> None:
        ref.future().add_done_callback(lambda future: self._done.put((ref, future)))

    def _ready(self, timeout: float | None) -> list:
        """The driver's one blocking call of an iteration: (ref, future) of the calls that
        completed, at least one unless timeout seconds passed first."""
        try:
            ready = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                ready.append(self._done.get_nowait())
            except queue.Empty:
                return ready

    def _started(self, ref) -> int | None:
        """The slot whose actor is now ready, or None if it died while starting (then a
        replacement is asked for)."""
        from ray.exceptions import RayActorError

        slot = self._starting.pop(ref)
        try:
            node, limit = self._ray.get(ref)
        except RayActorError as exc:
            if getattr(exc, "actor_init_failed", False):  # its environment or policy failed
                message = (getattr(exc, "error_msg", "") or str(exc)).strip().splitlines()
                raise RayWorkerError(f"a Ray worker could not start: {message[-1]}") from None
            self._start_actor(slot)  # it died (its node with it): ask for another
            return None
        self._nodes[slot] = node
        self.nodes_used.add(node)
        self.deadlines.episode_limit = limit
        return slot

    @property
    def ready_workers(self) -> int:
        return self.group * sum(n is not None for n in self._nodes)

    def _announce(self, lost: bool = False) -> None:
        """One line when the pool shrinks below (a node lost, or too little room at the
        start), or grows back to, its size."""
        ready, n = self.ready_workers, self.n_workers
        if ready < n and (lost or ready < n - self._short_of):
            log.warning("%s: continuing on %d of %d workers", "node lost" if lost else
                        "not every Ray worker could be placed", ready, n)
            self._short_of = n - ready
        elif self._short_of and ready == n:
            log.warning("all %d workers running again", n)
            self._short_of = 0

    def close(self) -> None:
        if not self.actors and not self._started_ray:
            return
        ray = self._ray
        if self.actor_workers is not None:  # let each pool stop its workers (and free its
            try:                             # shared memory), then kill what is left
                ray.wait([a.close.remote() for a in self.actors], num_returns=len(self.actors),
                         timeout=CLOSE_WAIT_S)
            except Exception:
                pass
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # already dead
                pass
        self.actors = []
        self._starting = {}
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # One iteration ----------------------------------------------------------------------------

    def run(self, broadcast, tasks, progress=None):
        ray = self._ray
        bc_ref = ray.put(broadcast)
        sched = Schedule(tasks, self.n_actors, self.deadlines, min_chunk=self.group,
                         progress=progress)
        # What goes out, as pickled: the broadcast once (object store), then each chunk.
        self.bytes_sent += len(pickle.dumps(broadcast, protocol=5)) + sum(
            len(pickle.dumps(c.tasks, protocol=5)) for c in sched.chunks)
        idle = [s for s in range(self.n_actors) if self._nodes[s] is not None]
        busy: dict = {}  # ref -> (slot, chunk id, sent at, deadline)
        due, order = [], itertools.count()  # heap of (deadline, n, ref); stale ones skipped
        while sched:
            while sched.pending and idle:
                slot, cid = idle.pop(), sched.next()
                ref = self.actors[slot].run.remote(bc_ref, sched.tasks_of(cid))
                deadline = time.monotonic() + self._deadline(sched, cid)
                busy[ref] = (slot, cid, time.perf_counter(), deadline)
                heapq.heappush(due, (deadline, next(order), ref))
                self._watch(ref)
            while due and due[0][2] not in busy:
                heapq.heappop(due)
            timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
            for ref, future in self._ready(timeout):
                if ref in self._starting:
                    slot = self._started(ref)
                    if slot is not None:
                        idle.append(slot)
                        self._announce()
                elif ref in busy:  # else: a call given up on (timed out) or of a past run
                    slot = self._finished(ref, busy.pop(ref), sched, future)
                    if slot is not None:
                        idle.append(slot)
            now = time.monotonic()
            while due and due[0][0] <= now:
                ref = heapq.heappop(due)[2]
                if ref in busy:
                    self._timed_out(busy.pop(ref), sched)
        return sched.results()

    def _finished(self, ref, entry, sched: Schedule, future=None) -> int | None:
        """Take a chunk's results (from its completed future, else by ray.get); the slot,
        free again (None: its actor died)."""
        from ray.exceptions import RayActorError

        slot, cid, sent_at, _ = entry
        try:
            results = future.result() if future is not None else self._ray.get(ref)
        except RayActorError as exc:
            self._lost(slot, cid, exc)
            outcome = sched.lost(cid)
            if outcome:
                log.warning("%s", outcome)
            return None
        self.transit_seconds += time.perf_counter() - sent_at - sum(
            r.busy_seconds for r in results)
        node = self._nodes[slot]
        self.chunks_per_node[node] = self.chunks_per_node.get(node, 0) + 1
        sched.done(cid, results)
        return slot

    def _lost(self, slot: int, cid: int, exc: Exception) -> None:
        node = self._nodes[slot]
        self.replaced_workers += 1
        self._start_actor(slot)
        if node is not None and not self._node_alive(node):
            if node not in self.lost_nodes:  # one line a node, however many actors it had
                self.lost_nodes.add(node)
                self._announce(lost=True)
            else:
                self._short_of = self.n_workers - self.ready_workers
        else:
            log.warning("Ray actor %d died (%s); starting a replacement and re-running "
                        "chunk %d", slot, type(exc).__name__, cid)

    def _deadline(self, sched: Schedule, cid: int) -> float:
        """Seconds the actor may take over chunk cid: the derived deadline, or for a pool's
        batch 2^MAX_ATTEMPTS times it (more than the pool's retries of a hung task take)."""
        seconds = sched.deadline(cid)
        return seconds if self.actor_workers is None else seconds * 2 ** MAX_ATTEMPTS

    def _timed_out(self, entry, sched: Schedule) -> None:
        slot, cid, _, _ = entry
        seconds = self._deadline(sched, cid)
        what = describe_chunk(sched.tasks_of(cid))
        try:
            self._ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # already dead
            pass
        outcome = sched.timed_out(cid, seconds)
        self.timed_out_chunks += 1
        self.replaced_workers += 1
        self._start_actor(slot)
        log.warning("Ray actor %d passed its %.3g s deadline on %s; killed it, %s; starting "
                    "a replacement", slot, seconds, what, outcome)

    def _node_alive(self, node: str) -> bool:
        try:
            return any(n.get("NodeID") == node and n.get("Alive") for n in self._ray.nodes())
        except Exception:  # cannot tell: treat it as an actor's death
            return True

    def worker_pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self.actors])

    def pool_pids(self) -> list[list[int]]:
        """Each hierarchical actor's worker processes' pids."""
        return self._ray.get([a.pool_pids.remote() for a in self.actors])

    def pool_replaced_workers(self) -> int:
        """Workers the hierarchical actors' pools replaced (those alive now)."""
        return sum(self._ray.get([a.replaced_workers.remote() for a in self.actors]))

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.n_workers,
                "actor_workers": self.actor_workers, "bytes_sent": self.bytes_sent,
                "transit_seconds": round(self.transit_seconds, 3),
                "chunks_per_node": dict(self.chunks_per_node),
                "dashboard_url": self.dashboard_url,
                "replaced_workers": self.replaced_workers,
                "lost_nodes": len(self.lost_nodes),
                "timed_out_chunks": self.timed_out_chunks}
