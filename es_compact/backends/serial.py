"""The serial backend: one worker in the driver's own process (for debugging and tests)."""

from __future__ import annotations

from es_compact.backends.base import Backend
from es_compact.rollout import RolloutWorker


class SerialBackend(Backend):
    name = "serial"

    def __init__(self):
        self.worker: RolloutWorker | None = None

    def start(self, config, table):
        self.worker = RolloutWorker(config, table)

    def run(self, broadcast, tasks):
        return self.worker.run(broadcast, tasks)

    def close(self):
        if self.worker is not None:
            self.worker.close()
            self.worker = None
