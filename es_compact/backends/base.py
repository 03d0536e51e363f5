"""One signature for every backend: ``run(broadcast, tasks) -> results`` in task order.

The training loop cannot tell backends apart; results must not depend on how tasks were spread
over workers (every random choice is in the tasks and the broadcast).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from es_compact.config import TrainConfig
from es_compact.noise import NoiseTable
from es_compact.rollout import Broadcast, Result, Task


def split_tasks(tasks: list, workers: int) -> list[list]:
    """Guided self-scheduling: chunks of ceil(remaining / (2 x workers)) tasks, so the first
    are large (few messages) and the last hold one task each (a worker that finishes early
    waits at most about one task's time at the end of the iteration, not a whole chunk's)."""
    chunks, i = [], 0
    while i < len(tasks):
        size = max(1, -(-(len(tasks) - i) // (2 * workers)))
        chunks.append(tasks[i : i + size])
        i += size
    return chunks


class Backend(ABC):
    name = "abstract"

    @classmethod
    def from_settings(cls, workers: int = 1, **settings) -> Backend:
        """Build from the run's settings (workers, and ``address`` and ``dashboard`` for Ray);
        each backend takes the ones it reads. The registry's make_backend calls this."""
        return cls()

    def table_buffer(self, size: int):
        """Memory for the noise table (float32[size]); a backend that shares it between
        processes returns its shared block so the driver builds the table there, once."""
        return None

    @abstractmethod
    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        """Create the workers (each builds its environment and policy once)."""

    @abstractmethod
    def run(self, broadcast: Broadcast, tasks: list[Task]) -> list[Result]:
        """Run every task with the broadcast's θ; results in the order of tasks."""

    def describe(self) -> dict:
        """What the backend did, for the run summary (workers, bytes, nodes, replacements)."""
        return {"backend": self.name}

    @abstractmethod
    def close(self) -> None:
        """Stop the workers; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
