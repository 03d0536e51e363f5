"""A full disk (ENOSPC) at a run's start or in its middle: one line naming the file and the free
space, a non-zero exit code, the last checkpoint intact (the resume is exact), and a new run
that trained nothing leaves no directory behind.

On a real small filesystem: a tmpfs mounted for the test (root only, as in CI; skipped with
the reason where mounting is not permitted), filled by a real file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_checks import invoke

from es_compact import checkpoint
from es_compact.run_dir import TIMING_COLUMNS

ARGS = ["train", "--env", "InvertedPendulum-v5", "--arch", "linear", "--directions", "4",
        "--top", "2", "--max-episode-steps", "50", "--eval-every", "2", "--eval-episodes", "1",
        "--noise-table-size", "10000", "--backend", "serial", "--checkpoint-every", "0",
        "--quiet", "--no-plot"]


@pytest.fixture
def disk(tmp_path):
    """A 2 MiB tmpfs mounted at tmp_path/disk for the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int = 0) -> Path:
    """Fill the filesystem at mnt with one file, then give back `leave` bytes."""
    path = mnt / "fill"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    block = b"\0" * (1 << 16)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
        if leave:
            os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)
    return path


def disk_full(line: str, run: Path, mnt: Path) -> bool:
    """Whether line is the one-line error of a full disk while writing a file of run."""
    m = re.fullmatch(r"error: no space left on device writing (\S+): \d+(\.\d)? (B|KiB) free "
                     r"on (\S+)", line)
    return bool(m) and Path(m[1]).is_relative_to(run) and Path(m[4]) == mnt


def outcome(run: Path):
    arrays, _ = checkpoint.load(run / "checkpoints", "latest")
    rows = pd.read_csv(run / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays, rows


def assert_same(a, b):
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    pd.testing.assert_frame_equal(a[1], b[1])


def test_a_new_run_on_a_full_disk_is_one_line_and_leaves_no_directory(disk):
    fill(disk)
    for out in (disk / "run", disk / "a" / "b" / "run"):
        res = invoke(*ARGS, "--iterations", "2", "--out", out)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        banner, error = res.output.strip().splitlines()
        assert error == (f"error: no space left on device writing {out / '.lock'}: 0 B free "
                         f"on {disk}")
        assert [p.name for p in disk.iterdir()] == ["fill"]  # no run, no parents


def test_nearly_full_disks_fail_in_one_line_leaving_no_trace_or_a_whole_checkpoint(
        disk, tmp_path):
    """With 0, 4, ... 44 KiB free, a new run fails at every stage of its start and first
    iterations (.lock, config.json, progress.csv, best, latest, latest.prev): each time one
    line, and either no directory at all or a run whose last checkpoint resumes exactly."""
    reference = tmp_path / "reference"
    assert invoke(*ARGS, "--iterations", "3", "--out", reference).exit_code == 0
    stages, resumed = set(), 0
    for kib in range(0, 48, 4):
        for p in disk.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        filler = fill(disk, leave=kib * 1024)
        run = disk / "run"
        res = invoke(*ARGS, "--iterations", "3", "--out", run)
        if res.exit_code == 0:
            continue
        error = res.output.strip().splitlines()[-1]
        assert res.exit_code == 2 and disk_full(error, run, disk), (kib, res.output)
        stages.add(Path(error.split(" writing ")[1].split(":")[0]).name)
        if not run.exists():
            continue
        assert checkpoint.exists(run / "checkpoints", "latest"), (kib, error)
        filler.unlink()
        res = invoke("train", "--resume", run, "--quiet", "--no-plot")
        assert res.exit_code == 0, res.output
        assert_same(outcome(reference), outcome(run))
        resumed += 1
    assert {".lock", "config.json"} <= stages and resumed, (stages, resumed)


def test_a_disk_filling_up_mid_run_stops_it_in_one_line_and_the_resume_is_exact(disk,
                                                                               tmp_path):
    """A real process trains; once its first checkpoint is on disk, a thread of this test
    fills the disk. The process ends with one line and exit code 2; with the space freed,
    --resume ends where an undisturbed run ends."""
    run, reference = disk / "run", tmp_path / "reference"
    assert invoke(*ARGS, "--iterations", "40", "--out", reference).exit_code == 0
    filled: list[Path] = []

    def fill_after_first_checkpoint():
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "latest.json").exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
        filled.append(fill(disk))

    t = threading.Thread(target=fill_after_first_checkpoint, daemon=True)
    t.start()
    proc = subprocess.run([sys.executable, "-m", "es_compact_cli", *ARGS, "--iterations", "40",
                           "--out", str(run)], capture_output=True, text=True, timeout=300)
    t.join()
    assert filled, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr  # the banner, the error
    assert disk_full(lines[1], run, disk), lines[1]
    stopped = checkpoint.load(run / "checkpoints", "latest")[1]["iteration"]
    assert 1 <= stopped < 40
    filled[0].unlink()
    res = invoke("train", "--resume", run, "--quiet", "--no-plot")
    assert res.exit_code == 0, res.output
    assert_same(outcome(reference), outcome(run))


def test_plot_and_export_onto_a_full_disk_are_one_line_naming_the_file(disk, tmp_path):
    """The figure and the exported policy are written beside and renamed over: on a full disk
    the error names the file (a write into an open file raises ENOSPC without one) and no
    partial file is left; a figure already there is kept."""
    run = tmp_path / "run"
    res = invoke(*ARGS, "--iterations", "2", "--out", run)
    assert res.exit_code == 0, res.output
    old = disk / "plot.png"
    old.write_bytes(b"an earlier figure")
    fill(disk)
    for out, command in ((old, "plot"), (disk / "policy.npz", "export")):
        res = invoke(command, run, "--out", out, "--overwrite")
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        error = res.output.strip().splitlines()[-1]
        m = re.fullmatch(r"error: no space left on device writing (\S+): \d+(\.\d)? (B|KiB) "
                         r"free on (\S+)", error)
        assert m and Path(m[1]).parent == disk and Path(m[4]) == disk, error
    assert old.read_bytes() == b"an earlier figure"
    assert sorted(p.name for p in disk.iterdir()) == ["fill", "plot.png"]
