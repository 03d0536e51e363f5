"""One signature for every backend: ``run(broadcast, tasks) -> results`` in task order.

The training loop cannot tell backends apart; results must not depend on how tasks were spread
over workers (every random choice is in the tasks and the broadcast).

Every chunk of tasks a worker is given has a deadline (:class:`Deadlines`); a worker past it is
killed and replaced by the backend, and :class:`Schedule` decides what happens to its tasks: a
chunk of several is split and each task retried alone, a task alone is retried with the same
environment seed up to ``MAX_ATTEMPTS`` times in all, each time with twice the deadline, and
then reported as a failed pair (``Result.failed``, ``Result.error`` naming the task and the
deadline), which the trainer counts like an environment that raised. A transient hang
therefore changes nothing: the retried task gives the result it would have given.

A worker that dies while running a chunk (killed, out of memory, a lost node, a crash in the
environment's own code) is replaced and the chunk runs again. Since a crash that repeats
would otherwise be re-run for ever, a lost chunk of several tasks is split and each task
retried alone, and a task whose worker died ``MAX_LOSSES`` times running it alone is reported
as a failed pair as above.

``run`` takes an optional ``progress(done, total)``, called in the driver's thread each time a
task's result is in (``done`` of the call's ``total`` tasks, never decreasing, ending at
``total``); it sees counts only, so it cannot change a result, and unused it costs one None
check per chunk.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from es_compact.config import TrainConfig
from es_compact.noise import NoiseTable
from es_compact.rollout import EVAL, Broadcast, Result, Task

MAX_ATTEMPTS = 3
"""Times a task is run before it counts as failed for passing its deadline (1 + 2 retries)."""
MAX_LOSSES = 4
"""Times a task alone may lose its worker before it counts as failed: more than a worker killed
at random or a lost node makes likely, so only a crash that repeats is given up on."""
TIMEOUT_FLOOR_S = 30.0
"""The derived deadline of a chunk is never shorter than this."""
TIMEOUT_FACTOR = 20.0
"""The derived deadline: this many times the measured time of the chunk's longest possible
episodes."""
UNMEASURED_STEP_S = 0.01
"""Seconds per environment step assumed before any rollout was measured (a MuJoCo step takes
about 0.05-0.1 ms, so the first deadline is very generous)."""
Progress = Callable[[int, int], None]
"""progress(done, total): how many of a run() call's tasks have their result."""


def split_tasks(tasks: list, workers: int, min_size: int = 1) -> list[list]:
    """Guided self-scheduling: chunks of ceil(remaining / (2 x workers)) tasks, so the first
    are large (few messages) and the last hold one task each (a worker that finishes early
    waits at most about one task's time at the end of the iteration, not a whole chunk's).
    min_size: no chunk but the last is smaller (a Ray actor running a pool of that many
    workers is given at least one task for each)."""
    chunks, i = [], 0
    while i < len(tasks):
        size = max(min_size, -(-(len(tasks) - i) // (2 * workers)))
        chunks.append(tasks[i : i + size])
        i += size
    return chunks


def _episodes(task: Task) -> int:
    return 1 if task.kind == EVAL else 2


class Deadlines:
    """How long a worker may take over a chunk of tasks.

    ``timeout`` (run.rollout_timeout) given: that many seconds per task (an antithetic pair's
    two episodes, or one evaluation episode). None: derived from the episode length,
    ``max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR x step time x episode steps x episodes)`` for the
    chunk, where the step time is the mean measured over every rollout finished so far
    (worker time per environment step, policy and messaging included; ``UNMEASURED_STEP_S``
    before the first) and the episode steps are the environment's step limit (the longest
    episode seen when it has none). A retry gets twice its previous deadline."""

    def __init__(self, timeout: float | None = None):
        self.timeout = timeout
        self.episode_limit: int | None = None
        """The environment's step limit, as a worker reported it (None: unknown)."""
        self._busy = 0.0
        self._steps = 0
        self._longest = 1

    def observe(self, results: list[Result]) -> None:
        """Learn the step time and episode lengths from finished rollouts."""
        for r in results:
            if not r.failed and r.busy_seconds > 0:
                steps = np.asarray(r.steps).tolist()  # two ints: NumPy's sum and max cost more
                self._busy += r.busy_seconds
                self._steps += max(1, sum(steps))
                self._longest = max(self._longest, max(steps))

    @property
    def step_seconds(self) -> float:
        return self._busy / self._steps if self._steps else UNMEASURED_STEP_S

    def seconds(self, tasks: list[Task], attempt: int = 0) -> float:
        """The deadline, in seconds from sending, of a chunk run for the attempt-th time
        (0: the first)."""
        if self.timeout is not None:
            base = self.timeout * len(tasks)
        else:
            steps = self.episode_limit or self._longest
            base = max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * self.step_seconds * steps
                       * sum(_episodes(t) for t in tasks))
        return base * 2.0 ** attempt


@dataclass
class _Chunk:
    tasks: list[Task]
    attempt: int = 0
    losses: int = 0


class Schedule:
    """The chunks of one run() call: which are still to run, their results, their retries.

    A backend takes chunk ids with :meth:`next`, runs them, and reports each as
    :meth:`done` (results), :meth:`lost` (the worker died: run it again, as it was) or
    :meth:`timed_out` (the worker passed :meth:`deadline` and was killed); :meth:`results`
    gives every task's result in task order, and ``progress`` (if given) hears of each chunk
    done or task given up."""

    def __init__(self, tasks: list[Task], workers: int, deadlines: Deadlines,
                 min_chunk: int = 1, progress: Progress | None = None):
        self.tasks = tasks
        self.deadlines = deadlines
        self.progress = progress
        self.chunks = [_Chunk(c) for c in split_tasks(tasks, workers, min_chunk)]
        self.pending = list(range(len(self.chunks)))
        self.outstanding = len(self.chunks)
        self._results: dict[Task, Result] = {}

    def __bool__(self) -> bool:
        """True while some chunk has neither results nor a final failure."""
        return self.outstanding > 0

    def next(self) -> int | None:
        return self.pending.pop(0) if self.pending else None

    def tasks_of(self, cid: int) -> list[Task]:
        return self.chunks[cid].tasks

    def deadline(self, cid: int) -> float:
        c = self.chunks[cid]
        return self.deadlines.seconds(c.tasks, c.attempt)

    def done(self, cid: int, results: list[Result]) -> None:
        self.deadlines.observe(results)
        for t, r in zip(self.chunks[cid].tasks, results, strict=True):
            self._results[t] = r
        self.outstanding -= 1
        if self.progress is not None:
            self.progress(len(self._results), len(self.tasks))

    def lost(self, cid: int, ran: bool = True) -> str | None:
        """The chunk's worker died: run it again, as it was where the worker died before
        running it (ran False), else split it or count the loss of its task alone; a message
        for the log when a task is given up (MAX_LOSSES), else None."""
        c = self.chunks[cid]
        if not ran:
            self.pending.insert(0, cid)
            return None
        if len(c.tasks) > 1:
            self._split(c, c.attempt)
            return None
        c.losses += 1
        if c.losses < MAX_LOSSES:
            self.pending.insert(0, cid)
            return None
        self.outstanding -= 1
        task = c.tasks[0]
        error = (f"{describe_task(task)} lost its worker {MAX_LOSSES} times (a crash that "
                 "repeats, e.g. in the environment's own code)")
        return self._give_up(task, error)

    def timed_out(self, cid: int, seconds: float) -> str:
        """Retry the chunk's tasks (alone) or fail the last one; what happens, for the log."""
        c = self.chunks[cid]
        if len(c.tasks) > 1:
            self._split(c, c.attempt + 1)
            return f"retrying its {len(c.tasks)} tasks one by one"
        self.outstanding -= 1
        task = c.tasks[0]
        if c.attempt + 1 < MAX_ATTEMPTS:
            self.chunks.append(_Chunk([task], c.attempt + 1))
            self.pending.insert(0, len(self.chunks) - 1)
            self.outstanding += 1
            return f"retrying {describe_task(task)} (attempt {c.attempt + 2} of {MAX_ATTEMPTS})"
        error = (f"{describe_task(task)} timed out {MAX_ATTEMPTS} times (the last deadline "
                 f"{seconds:.3g} s; run.rollout_timeout sets it)")
        return self._give_up(task, error)

    def _split(self, c: _Chunk, attempt: int) -> None:
        """Replace the outstanding chunk c by one chunk per task, run first."""
        new = list(range(len(self.chunks), len(self.chunks) + len(c.tasks)))
        self.chunks += [_Chunk([t], attempt) for t in c.tasks]
        self.pending[:0] = new
        self.outstanding += len(new) - 1

    def _give_up(self, task: Task, error: str) -> str:
        """The task's result is a failed pair (NaN returns, no steps) carrying the error."""
        n = _episodes(task)
        self._results[task] = Result(task.kind, task.index, np.full(n, math.nan),
                                     np.zeros(n, dtype=np.int64), failed=True, error=error)
        if self.progress is not None:
            self.progress(len(self._results), len(self.tasks))
        return f"giving up: {error}"

    def results(self) -> list[Result]:
        return [self._results[t] for t in self.tasks]


def describe_task(task: Task) -> str:
    """'direction 5 (env seed 123)' or 'evaluation episode 2 (env seed 123)'."""
    what = "evaluation episode" if task.kind == EVAL else "direction"
    return f"{what} {task.index} (env seed {task.env_seed})"


def describe_chunk(tasks: list[Task]) -> str:
    if len(tasks) == 1:
        return describe_task(tasks[0])
    what = "evaluation episodes" if tasks[0].kind == EVAL else "directions"
    return f"{what} {tasks[0].index}-{tasks[-1].index}"


class Backend(ABC):
    name = "abstract"

    @classmethod
    def from_settings(cls, workers: int = 1, **settings) -> Backend:
        """Build from the run's settings (workers; ``rollout_timeout`` for mp and Ray,
        ``address`` and ``dashboard`` for Ray); each backend takes the ones it reads. The
        registry's make_backend calls this."""
        return cls()

    def table_buffer(self, size: int):
        """Memory for the noise table (float32[size]); a backend that shares it between
        processes returns its shared block so the driver builds the table there, once."""
        return None

    @abstractmethod
    def start(self, config: TrainConfig, table: NoiseTable | None) -> None:
        """Create the workers (each builds its environment and policy once)."""

    @abstractmethod
    def run(self, broadcast: Broadcast, tasks: list[Task],
            progress: Progress | None = None) -> list[Result]:
        """Run every task with the broadcast's θ; results in the order of tasks. progress:
        see the module docstring."""

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
