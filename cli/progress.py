"""The live progress bar of `es-compact train`: the directions (then the evaluation episodes)
finished within an iteration, with the time elapsed and an estimate of the time left.

It is drawn on stderr, where the per-iteration lines go (as tqdm and rl-zoo draw theirs), and
only when stderr is a terminal whose TERM is not 'dumb', without --quiet or --no-progress.
A phase's bar first shows once it has run ``DELAY_S`` seconds, so quick iterations look
exactly as piped output does, and it is erased (carriage return, erase to end of line) before
the iteration's line is printed, so a terminal's scroll-back reads like piped output. Piped
output is untouched. Hand-written (one line, ``\\r``), because that is all it needs; tqdm would
add a dependency for it. A thread redraws it twice a second, so the elapsed time moves while
large chunks are out; the counts come from Trainer.run(on_progress=...) in the main thread. A
log record (a worker replaced, a task given up) bound for the same stream erases the bar
first, so it gets a line of its own.

``ES_COMPACT_PROGRESS_DELAY`` (seconds) overrides ``DELAY_S``; the tests set it to 0.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import TextIO

from es_compact.errors import ConfigError

DELAY_S = 2.0
"""Seconds a phase runs before its bar is first drawn."""
DELAY_ENV = "ES_COMPACT_PROGRESS_DELAY"
"""Environment variable overriding DELAY_S (for tests)."""
REDRAW_S = 0.5
"""Seconds between redraws while a phase runs."""
ERASE = "\r\x1b[K"
"""Back to the line's start, then erase to its end."""
UNITS = {"train": "directions", "eval": "episodes"}


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def bar_text(phase: str, done: int, total: int, elapsed: float,
             width: int | None = None) -> str:
    """'train [#####-----] 115/230 directions | 0:00:12 elapsed | ~0:00:12 left', cut to
    width - 1 characters if given (a full line would wrap on some terminals)."""
    left = elapsed / done * (total - done) if done else math.inf
    cells = 20
    full = cells * done // total if total else cells
    text = (f"{phase:<5} [{'#' * full}{'-' * (cells - full)}] {done}/{total} "
            f"{UNITS.get(phase, 'tasks')} | {_clock(elapsed)} elapsed | ~{_clock(left)} left")
    return text if width is None else text[: max(1, width - 1)]


class LiveBar:
    """The bar on one terminal stream: update() from on_progress, clear() before printing."""

    def __init__(self, stream: TextIO, delay: float = DELAY_S):
        self.stream = stream
        self.delay = delay
        self._lock = threading.RLock()
        self._phase: list | None = None  # [phase, done, total, start]
        self._drawn = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw, name="progress-bar", daemon=True)

    def __enter__(self) -> LiveBar:
        for h in self._handlers():
            h.addFilter(self._before_log)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for h in self._handlers():
            h.removeFilter(self._before_log)
        self.clear()

    def _handlers(self) -> list[logging.Handler]:
        return [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream is self.stream]

    def _before_log(self, record: logging.LogRecord) -> bool:
        """A logging filter that lets every record through, erasing the bar first."""
        self.clear()
        return True

    def update(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            if done == 0 or self._phase is None or self._phase[0] != phase:
                self._phase = [phase, done, total, time.monotonic()]
            self._phase[1] = done
            self._draw()

    def clear(self) -> None:
        """Erase the bar (if drawn) and draw nothing until the next phase starts."""
        with self._lock:
            self._phase = None
            if self._drawn:
                self.stream.write(ERASE)
                self.stream.flush()
                self._drawn = False

    def _draw(self) -> None:  # with the lock held
        phase, done, total, start = self._phase
        elapsed = time.monotonic() - start
        if elapsed < self.delay:
            return
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 80  # 0: unknown
        except (OSError, ValueError):
            width = 80
        self.stream.write("\r" + bar_text(phase, done, total, elapsed, width) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _redraw(self) -> None:
        while not self._stop.wait(REDRAW_S):
            with self._lock:
                if self._phase is not None and self._phase[1] < self._phase[2]:
                    self._draw()


def live_bar(stream: TextIO, enabled: bool = True,
             environ: dict | None = None) -> LiveBar | None:
    """A LiveBar on stream if it is wanted there (enabled, a terminal, TERM not 'dumb'),
    else None."""
    env = os.environ if environ is None else environ
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not (enabled and tty) or env.get("TERM", "") == "dumb":
        return None
    delay = env.get(DELAY_ENV)
    try:
        seconds = DELAY_S if delay is None else float(delay)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise ConfigError(f"{DELAY_ENV}={delay!r}: expected a number of seconds >= 0")
    return LiveBar(stream, seconds)
