"""Too many workers for this machine's memory are refused before any process starts, with the
estimate in the message (es_compact.memory); more workers than cores is only a warning
(tests/test_trainer.py::test_more_workers_than_cores_warns_and_runs)."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.memory import MIB, WORKER_MIB, available_memory, check_workers_fit, workers_estimate
from es_compact.presets import resolve
from es_compact.trainer import Trainer

GIB = 2**30


def config(workers=4, backend="mp", exploration="gaussian", **run) -> TrainConfig:
    return resolve(TrainConfig(
        env=EnvConfig(id="HalfCheetah-v4"), policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(exploration=exploration),
        run=RunConfig(iterations=1, backend=backend, workers=workers,
                      noise_table_size=25_000_000, **run)))


def test_the_estimate_is_workers_times_their_cost_plus_the_table_once():
    table = 4 * 25_000_000
    assert workers_estimate(config(10)) == (10, 10 * 68 * MIB + table)
    assert workers_estimate(config(10, exploration="orthogonal")) == (10, 10 * 68 * MIB)
    assert workers_estimate(config(10, backend="ray")) == (10, 10 * 116 * MIB + table)
    # Workers elsewhere or none: nothing to check.
    assert workers_estimate(config(10, backend="ray", ray_address="10.0.0.1:6379")) == (0, 0)
    assert workers_estimate(config(1, backend="serial")) == (0, 0)
    assert WORKER_MIB == {"mp": 68, "ray": 116}


def test_a_count_that_does_not_fit_is_refused_with_the_estimate():
    check_workers_fit(config(300), available=24 * GIB)  # 20 GiB: fits
    with pytest.raises(ConfigError) as exc:
        check_workers_fit(config(1000), available=24 * GIB)
    assert str(exc.value) == (
        "1000 mp workers would need about 66.5 GiB of memory (68 MiB each + 95 MiB for the "
        "noise table, once), but 24.0 GiB is available (MemAvailable): at most 360 fit")
    with pytest.raises(ConfigError, match=r"^2 local Ray actors would need about 327 MiB of "
                                          r"memory \(116 MiB each \+ 95 MiB for the noise "
                                          r"table, once\), but 200 MiB is available "
                                          r"\(MemAvailable\): not even one fits$"):
        check_workers_fit(config(2, backend="ray"), available=200 * MIB)
    check_workers_fit(config(10**6, backend="ray", ray_address="auto"), available=MIB)


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_too_many_workers_for_this_machine_are_refused_before_any_process_starts(tmp_path):
    """The smallest count that does not fit in this machine's MemAvailable, from the CLI: one
    line stating the estimate, exit 2, no run directory, and no process started (a watchdog
    kills the command should it start one, so a regression cannot exhaust the machine)."""
    per = WORKER_MIB["mp"] * MIB
    n = int(1.25 * available_memory()) // per + 1  # a margin: MemAvailable moves meanwhile
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "es_compact_cli", "train", "--env", "InvertedPendulum-v4",
         "--arch", "linear", "--iterations", "1", "--noise-table-size", "100000",
         "--workers", str(n), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started, deadline = set(), time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        started |= _children(proc.pid)
        if started:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    stdout, stderr = proc.communicate(timeout=60)
    assert not started, f"the command started processes {started}"
    assert proc.returncode == 2 and stdout == "", stderr
    [line] = stderr.strip().splitlines()
    need = f"{(n * per + 4 * 100_000) / 2**30:.1f} GiB"
    m = re.fullmatch(rf"error: {n} mp workers would need about {need} of memory \(68 MiB "
                     r"each \+ 0\.4 MiB for the noise table, once\), but \d+\.\d GiB is "
                     r"available \(MemAvailable\): at most (\d+) fit", line)
    assert m and int(m[1]) < n, line
    assert not out.exists()


def test_the_trainer_refuses_it_too_and_writes_nothing(tmp_path):
    cfg = config(10**6)
    cfg = dataclasses.replace(cfg, env=EnvConfig(id="InvertedPendulum-v4"))
    with pytest.raises(ConfigError, match=r"^1000000 mp workers would need about 64\.8 TiB"):
        Trainer(cfg, tmp_path / "run").run()
    assert not (tmp_path / "run").exists()
