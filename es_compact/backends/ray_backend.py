"""The Ray backend: one actor per worker, on a local Ray or an existing cluster.

- The noise table is put once in the object store; actors on a node map that one copy.
- Per iteration the Broadcast is put once and passed by reference; chunks of tasks
  (base.split_tasks) go to actors as they become free, and results are put back in task
  order.
- An actor that dies (killed process, lost node) is replaced and its chunk is run again.
- ``address``: None starts a local Ray with one CPU per worker (dashboard off); 'auto' or
  HOST:PORT joins a running cluster (checked with a plain TCP connection first, so an
  unreachable address fails within seconds instead of hanging).
"""

from __future__ import annotations

import logging
import pickle
import socket
import time
from collections import deque

from es_compact.backends.base import Backend, split_tasks
from es_compact.config import TrainConfig
from es_compact.errors import ConfigError, ESCompactError
from es_compact.noise import NoiseTable
from es_compact.rollout import RolloutWorker

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0


class RayUnavailable(ESCompactError):
    """Ray is not installed or the cluster cannot be reached."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("the ray backend needs Ray: pip install 'ray>=2.9' (or use "
                             "--backend mp)") from None
    return ray


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


class _ActorImpl:
    """The body of a Ray actor: a RolloutWorker built once."""

    def __init__(self, config_dict: dict, table_ref):
        import ray

        table = None
        if table_ref is not None:
            table = NoiseTable(ray.get(table_ref[0]))  # zero-copy view of the object store
        self.worker = RolloutWorker(TrainConfig.from_dict(config_dict), table)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, broadcast, tasks):
        return self.worker.run(broadcast, tasks)

    def pid(self) -> int:
        import os

        return os.getpid()


class RayBackend(Backend):
    name = "ray"

    @classmethod
    def from_settings(cls, workers: int = 1, **settings) -> RayBackend:
        return cls(workers, address=settings.get("address"),
                   include_dashboard=bool(settings.get("dashboard", False)))

    def __init__(self, workers: int = 2, address: str | None = None,
                 include_dashboard: bool = False):
        self.n_workers = workers
        self.address = address
        self.include_dashboard = include_dashboard
        self.actors: list = []
        self.replaced_workers = 0
        self.nodes_used: set[str] = set()
        self.chunks_per_node: dict[str, int] = {}
        self.bytes_sent = 0
        self.transit_seconds = 0.0
        """Worker-seconds per chunk outside its tasks (submit to result, minus task time)."""
        self.dashboard_url: str | None = None
        self._started_ray = False

    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        ray = _import_ray()
        if self.address not in (None, "auto"):
            check_address(self.address)
        if not ray.is_initialized():
            kwargs = {"include_dashboard": self.include_dashboard, "log_to_driver": False,
                      "configure_logging": False}
            if self.address is None:
                kwargs["num_cpus"] = self.n_workers
            else:
                kwargs["address"] = self.address
            try:
                context = ray.init(**kwargs)
            except ConnectionError as exc:
                raise RayUnavailable(f"cannot join the Ray cluster at {self.address}: "
                                     f"{exc}") from None
            self._started_ray = True
            if self.include_dashboard:
                self.dashboard_url = getattr(context, "dashboard_url", None) or None
        self._ray = ray
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_ActorImpl)
        self._config_dict = config.to_dict()
        # Wrapped in a list so Ray passes the reference itself, not the resolved array.
        self._table_ref = [ray.put(table.table)] if table is not None else None
        self.actors = [self._new_actor() for _ in range(self.n_workers)]
        self._nodes = ray.get([a.node.remote() for a in self.actors])
        self.nodes_used = set(self._nodes)

    def _new_actor(self):
        return self._actor_cls.remote(self._config_dict, self._table_ref)

    def run(self, broadcast, tasks):
        ray = self._ray
        from ray.exceptions import RayActorError

        bc_ref = ray.put(broadcast)
        chunks = split_tasks(tasks, self.n_workers)
        # What goes out, as pickled: the broadcast once (object store), then each chunk.
        self.bytes_sent += len(pickle.dumps(broadcast, protocol=5)) + sum(
            len(pickle.dumps(c, protocol=5)) for c in chunks)
        pending = deque(range(len(chunks)))
        results: list = [None] * len(chunks)
        idle = list(range(len(self.actors)))
        busy: dict = {}
        while pending or busy:
            while pending and idle:
                slot, cid = idle.pop(), pending.popleft()
                sent_at = time.perf_counter()
                ref = self.actors[slot].run.remote(bc_ref, chunks[cid])
                busy[ref] = (slot, cid, sent_at)
            done, _ = ray.wait(list(busy), num_returns=1)
            ref = done[0]
            slot, cid, sent_at = busy.pop(ref)
            try:
                results[cid] = ray.get(ref)
                self.transit_seconds += time.perf_counter() - sent_at - sum(
                    r.busy_seconds for r in results[cid])
                node = self._nodes[slot]
                self.chunks_per_node[node] = self.chunks_per_node.get(node, 0) + 1
            except RayActorError as exc:
                log.warning("Ray actor %d died (%s); starting a replacement and re-running "
                            "chunk %d", slot, type(exc).__name__, cid)
                self.actors[slot] = self._new_actor()
                self._nodes[slot] = ray.get(self.actors[slot].node.remote())
                self.replaced_workers += 1
                pending.appendleft(cid)
            idle.append(slot)
        return [r for chunk in results for r in chunk]

    def worker_pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self.actors])

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.n_workers, "bytes_sent": self.bytes_sent,
                "transit_seconds": round(self.transit_seconds, 3),
                "chunks_per_node": dict(self.chunks_per_node),
                "dashboard_url": self.dashboard_url,
                "replaced_workers": self.replaced_workers}

    def close(self) -> None:
        if not self.actors and not self._started_ray:
            return
        ray = self._ray
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # already dead
                pass
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
