"""Progress within an iteration: the backends' progress(done, total) hook through
Trainer.run(on_progress=...), on real runs, and the CLI's live bar (a real `es-compact train`
under a pseudo-terminal, and piped)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select
import struct
import subprocess
import sys
import termios

import numpy as np
import pandas as pd
import pytest

from es_compact import checkpoint
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.trainer import TIMING_COLUMNS, Trainer
from es_compact_cli.progress import DELAY_ENV, ERASE, LiveBar, bar_text, live_bar

ENV = "InvertedPendulum-v4"
DIRECTIONS, EPISODES = 6, 3


def config(backend: str, workers: int = 1) -> TrainConfig:
    # 3 iterations, evaluated at 2 and (off schedule) finally at 3
    return TrainConfig(
        env=EnvConfig(id=ENV, max_episode_steps=100),
        policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(directions=DIRECTIONS, top=3),
        run=RunConfig(seed=4, iterations=3, eval_every=2, eval_episodes=EPISODES,
                      noise_table_size=100_000, backend=backend, workers=workers))


def phases(calls: list[tuple[str, int, int]]) -> list[tuple[str, int, list[int]]]:
    """The calls cut where done is 0: (phase, total, the done counts)."""
    out = []
    for phase, done, total in calls:
        if done == 0:
            out.append((phase, total, []))
        assert out and out[-1][:2] == (phase, total)
        out[-1][2].append(done)
    return out


def result(run_dir):
    arrays, _ = checkpoint.load(run_dir / "checkpoints", "latest")
    rows = pd.read_csv(run_dir / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays, rows


def check_run(tmp_path, backend: str, workers: int) -> None:
    calls = []
    Trainer(config(backend, workers), tmp_path / backend).run(
        on_progress=lambda *a: calls.append(a))
    got = phases(calls)
    assert [(p, t) for p, t, _ in got] == [("train", DIRECTIONS), ("train", DIRECTIONS),
                                           ("eval", EPISODES), ("train", DIRECTIONS),
                                           ("eval", EPISODES)]
    for _, total, counts in got:
        assert counts[0] == 0 and counts[-1] == total and len(counts) >= 2
        assert counts == sorted(counts), counts
    # hearing of progress changes nothing: the same θ, statistics and rows as a run without
    Trainer(config("serial"), tmp_path / "plain").run()
    (ta, ra), (tb, rb) = result(tmp_path / backend), result(tmp_path / "plain")
    assert ta.keys() == tb.keys()
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key])
    pd.testing.assert_frame_equal(ra, rb)


def test_progress_serial_counts_each_task(tmp_path):
    check_run(tmp_path, "serial", 1)


def test_progress_mp_counts_each_chunk(tmp_path):
    check_run(tmp_path, "mp", 2)


@pytest.mark.slow
def test_progress_ray(tmp_path):
    check_run(tmp_path, "ray", 2)


def test_bar_text_counts_eta_and_width():
    assert bar_text("train", 115, 230, 12.0) == (
        "train [##########----------] 115/230 directions | 0:00:12 elapsed | ~0:00:12 left")
    assert bar_text("eval", 3, 5, 90.0).startswith("eval  [############--------] 3/5 episodes")
    assert bar_text("eval", 3, 5, 90.0).endswith("~0:01:00 left")
    assert bar_text("train", 0, 230, 1.0).endswith("~? left")
    assert len(bar_text("train", 1, 230, 1.0, width=30)) == 29  # never wraps the line


def test_live_bar_only_on_a_terminal_that_is_not_dumb(tmp_path):
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty, open(tmp_path / "f", "w") as plain:
        assert isinstance(live_bar(tty, environ={"TERM": "xterm"}), LiveBar)
        assert live_bar(tty, environ={"TERM": "dumb"}) is None
        assert live_bar(tty, enabled=False, environ={}) is None
        assert live_bar(plain, environ={"TERM": "xterm"}) is None
        assert live_bar(tty, environ={DELAY_ENV: "0"}).delay == 0
        with pytest.raises(ConfigError, match=DELAY_ENV):
            live_bar(tty, environ={DELAY_ENV: "soon"})
    os.close(master)


def test_a_log_record_erases_the_bar_first():
    master, slave = os.openpty()
    root, handler = logging.getLogger(), None
    with os.fdopen(slave, "w") as tty:
        handler = logging.StreamHandler(tty)
        root.addHandler(handler)
        try:
            with LiveBar(tty, delay=0) as bar:
                bar.update("train", 0, 4)
                bar.update("train", 1, 4)
                logging.getLogger("es_compact.backends").warning("a worker was replaced")
            out = os.read(master, 65536).decode().replace("\r\n", "\n")
        finally:
            root.removeHandler(handler)
    os.close(master)
    assert out.startswith("\rtrain [-------") and "1/4 directions" in out
    assert out.endswith("\x1b[K" + ERASE + "a worker was replaced\n")


CLI = ["train", "--env", ENV, "--arch", "linear", "--backend", "serial", "--directions",
       str(DIRECTIONS), "--top", "3", "--max-episode-steps", "100", "--iterations", "3",
       "--eval-every", "2", "--eval-episodes", str(EPISODES), "--noise-table-size", "100000",
       "--seed", "4", "--no-plot"]
LINE = re.compile(r"^it +\d+ \| steps +[\d,]+ \| train .* steps/s \| .* elapsed \| ~.* left$")


def train_on_pty(out, *extra: str) -> tuple[str, str]:
    """(stderr, stdout) of a real `es-compact train` whose stderr is a pseudo-terminal, with the
    bar's delay 0 so that it is drawn at every count whatever the machine's speed."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # 200 columns
    env = {**os.environ, "TERM": "xterm", DELAY_ENV: "0"}
    proc = subprocess.Popen([sys.executable, "-m", "es_compact_cli", *CLI, "--out", str(out),
                             *extra], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        assert ready, "no output for 120 s"
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode().replace("\r\n", "\n"), stdout


def stable(line: str) -> str:
    """A progress line without its timings (steps/s, elapsed, left)."""
    return line.split(" | ")[:4].__repr__()


def test_cli_bar_on_a_terminal_and_plain_lines_piped(tmp_path):
    text, stdout = train_on_pty(tmp_path / "tty")
    drawn = re.findall(r"\r([^\r\n]+)\x1b\[K", text)
    assert f"train [{'#' * 20}] {DIRECTIONS}/{DIRECTIONS} directions" in "\n".join(drawn)
    assert f"eval  [{'#' * 20}] {EPISODES}/{EPISODES} episodes" in "\n".join(drawn)
    # every iteration's line starts on an erased line, and without the bar's drawings the
    # terminal shows exactly the lines a pipe gets
    starts = re.findall(r"(\r\x1b\[K)?it +\d+ \| steps", text)
    assert starts == [ERASE] * 3
    plain = re.sub(r"\r[^\r\n]*\x1b\[K", "", text)
    assert "\r" not in plain and "\x1b" not in plain

    piped = subprocess.run([sys.executable, "-m", "es_compact_cli", *CLI, "--out",
                            str(tmp_path / "pipe")], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "TERM": "xterm", DELAY_ENV: "0"})
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr and "[#" not in piped.stderr
    piped_lines = [ln for ln in piped.stderr.splitlines() if ln.startswith("it ")]
    assert len(piped_lines) == 3 and all(LINE.match(ln) for ln in piped_lines)
    tty_lines = [ln for ln in plain.splitlines() if ln.startswith("it ")]
    assert [stable(ln) for ln in tty_lines] == [stable(ln) for ln in piped_lines]
    assert plain.splitlines()[0] == piped.stderr.splitlines()[0].replace(
        str(tmp_path / "pipe"), str(tmp_path / "tty"))  # the banner, as piped
    assert stdout.strip().startswith("{") and piped.stdout.strip().startswith("{")


def test_cli_no_progress_draws_no_bar_on_a_terminal(tmp_path):
    text, _ = train_on_pty(tmp_path / "r", "--no-progress")
    assert "\x1b" not in text and "\r" not in text and "[#" not in text
    assert sum(1 for ln in text.splitlines() if LINE.match(ln)) == 3
