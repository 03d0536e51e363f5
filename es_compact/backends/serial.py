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

    def run(self, broadcast, tasks, progress=None):
        if progress is None:
            return self.worker.run(broadcast, tasks)
        results = []
        for task in tasks:  # as RolloutWorker.run does, hearing of each task
            results.append(self.worker.run_task(broadcast, task))
            progress(len(results), len(tasks))
        return results

    def close(self):
        if self.worker is not None:
            self.worker.close()
            self.worker = None
