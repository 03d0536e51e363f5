"""Parallel rollouts: results independent of the backend and worker count, faults survived.

Real worker processes and Ray actors on this machine; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from es_compact import checkpoint
from es_compact.backends import make_backend
from es_compact.backends.base import split_tasks
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.trainer import TIMING_COLUMNS, Trainer, TrainingError

HERE = Path(__file__).parent


def config(backend="serial", workers=1, iterations=3, env="InvertedPendulum-v4", steps=200,
           directions=8, **run):
    return TrainConfig(
        env=EnvConfig(id=env, max_episode_steps=steps),
        policy=PolicyConfig(arch="kama", hidden=8, rotations=(12,)),
        strategy=StrategyConfig(directions=directions, top=4),
        run=RunConfig(iterations=iterations, eval_every=2, eval_episodes=3,
                      noise_table_size=200_000, backend=backend, workers=workers, **run))


def outcome(run_dir):
    arrays, _ = checkpoint.load(Path(run_dir) / "checkpoints", "latest")
    rows = pd.read_csv(Path(run_dir) / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays["theta"], arrays["obs_mean"], rows


def assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])


def test_mp_matches_serial_for_1_2_3_workers(tmp_path):
    Trainer(config(), tmp_path / "serial").run()
    ref = outcome(tmp_path / "serial")
    for w in (1, 2, 3):
        summary = Trainer(config("mp", w), tmp_path / f"mp{w}").run()
        assert_same(ref, outcome(tmp_path / f"mp{w}"))
        # messaging is measured (chunk round trips minus task time), and small
        assert 0 < summary["transit_seconds"] < 0.5 * summary["iterations"] * w


@pytest.mark.slow
def test_ray_matches_serial_for_1_and_2_workers(tmp_path):
    Trainer(config(), tmp_path / "serial").run()
    ref = outcome(tmp_path / "serial")
    for w in (1, 2):
        Trainer(config("ray", w), tmp_path / f"ray{w}").run()
        assert_same(ref, outcome(tmp_path / f"ray{w}"))


def test_killed_worker_is_replaced_and_result_unchanged(tmp_path):
    cfg = config("mp", 2, iterations=3, env="HalfCheetah-v4", steps=300, directions=6)
    Trainer(config(iterations=3, env="HalfCheetah-v4", steps=300, directions=6),
            tmp_path / "undisturbed").run()
    backend = make_backend("mp", 2)
    killed = []

    def killer():
        # Wait until iteration 2 is under way, then SIGKILL a worker mid-episode.
        prog = tmp_path / "killed" / "progress.csv"
        while not (prog.exists() and len(prog.read_text().splitlines()) >= 2):
            time.sleep(0.01)
        time.sleep(0.05)
        pid = backend.workers[0].proc.pid
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    Trainer(cfg, tmp_path / "killed", backend=backend).run()
    t.join(5)
    backend.close()
    assert killed and backend.replaced_workers >= 1
    assert_same(outcome(tmp_path / "undisturbed"), outcome(tmp_path / "killed"))


@pytest.mark.parametrize("mode", ["nan", "raise"])
def test_misbehaving_env_pairs_are_dropped_and_counted(tmp_path, mode, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # spawned workers inherit sys.path
    env = f"misbehaving_env:FlakyPendulum{'' if mode == 'nan' else 'Raise'}"
    cfg = config("mp", 2, iterations=4, env=env, directions=12, max_failed_fraction=0.9)
    Trainer(cfg, tmp_path / "run").run()
    rows = pd.read_csv(tmp_path / "run" / "progress.csv")
    assert rows["failed_rollouts"].sum() > 0
    theta = outcome(tmp_path / "run")[0]
    assert np.isfinite(theta).all()
    assert np.isfinite(rows["train_return_mean"]).all()


def test_too_many_failures_stop_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    cfg = config("serial", 1, iterations=5, env="misbehaving_env:AlwaysNaN",
                 max_failed_fraction=0.5)
    with pytest.raises(TrainingError, match="rollout pairs failed"):
        Trainer(cfg, tmp_path / "run").run()
    arrays, meta = checkpoint.load(tmp_path / "run" / "checkpoints", "latest")
    assert meta["iteration"] == 0 and np.isfinite(arrays["theta"]).all()


def _hang_once_env(monkeypatch) -> tuple[str, Path]:
    """A HangOnce environment of this test's own (its marker file absent: armed)."""
    import uuid

    from misbehaving_env import hang_marker

    monkeypatch.syspath_prepend(str(HERE))
    token = uuid.uuid4().hex[:12]
    hang_marker(token).unlink(missing_ok=True)
    return f"misbehaving_env:HangOnce_{token}", hang_marker(token)


def _hang_once_run(tmp_path, monkeypatch, backend: str, caplog):
    """An undisturbed run (marker present) and one whose first rollout to reach step 5 hangs
    (marker absent): the same θ and rows, and the hang named in one warning."""
    env, marker = _hang_once_env(monkeypatch)
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # for the Ray workers a local Ray starts
    kw = dict(iterations=3, env=env, rollout_timeout=2.0)
    marker.touch()
    Trainer(config(backend, 2, **kw), tmp_path / "undisturbed").run()
    marker.unlink()
    try:
        with caplog.at_level("WARNING"):
            summary = Trainer(config(backend, 2, **kw), tmp_path / "hung").run()
    finally:
        assert marker.exists()  # it did hang (the marker is made by the hanging episode)
        marker.unlink()
    assert summary["timed_out_chunks"] == 1 and summary["replaced_workers"] == 1
    lines = [r.getMessage() for r in caplog.records if "deadline" in r.getMessage()]
    assert len(lines) == 1 and re.search(r"passed its [24] s deadline on direction", lines[0])
    assert_same(outcome(tmp_path / "undisturbed"), outcome(tmp_path / "hung"))


def test_hung_env_is_killed_retried_and_result_unchanged(tmp_path, monkeypatch, caplog):
    _hang_once_run(tmp_path, monkeypatch, "mp", caplog)


@pytest.mark.slow
def test_hung_env_on_ray_is_killed_retried_and_result_unchanged(tmp_path, monkeypatch, caplog):
    _hang_once_run(tmp_path, monkeypatch, "ray", caplog)


def test_env_that_always_hangs_fails_its_pair_naming_it(tmp_path, monkeypatch):
    """A rollout that hangs on every attempt becomes a failed pair whose error says which
    task and why; here one of 8 is more than max_failed_fraction allows."""
    from es_compact.rollout import TRAIN, env_seed

    monkeypatch.syspath_prepend(str(HERE))
    seed = env_seed(0, 0, 3, TRAIN)
    cfg = config("mp", 2, iterations=1, env=f"misbehaving_env:HangSeed_{seed}",
                 rollout_timeout=0.25, max_failed_fraction=0.1)
    with pytest.raises(TrainingError) as info:
        Trainer(cfg, tmp_path / "run").run()
    assert str(info.value) == (
        f"iteration 0: 1 of 8 rollout pairs failed (first: direction 3 (env seed {seed}) "
        f"timed out 3 times (the last deadline 1 s; run.rollout_timeout sets it)); "
        f"checkpoint kept at iteration 0")


def test_env_that_always_crashes_its_worker_fails_its_pair_naming_it(tmp_path, monkeypatch,
                                                                    caplog):
    """A rollout that kills its worker process every time (SIGSEGV) is not re-run for ever:
    after MAX_LOSSES losses alone it is a failed pair whose error names it; the tasks that
    shared its chunk are run again alone and give their own results."""
    from es_compact.backends.base import MAX_LOSSES
    from es_compact.rollout import TRAIN, env_seed

    monkeypatch.syspath_prepend(str(HERE))
    seed = env_seed(0, 0, 3, TRAIN)
    cfg = config("mp", 2, iterations=1, env=f"misbehaving_env:CrashSeed_{seed}",
                 max_failed_fraction=0.1)
    with caplog.at_level("WARNING"), pytest.raises(TrainingError) as info:
        Trainer(cfg, tmp_path / "run").run()
    assert str(info.value) == (
        f"iteration 0: 1 of 8 rollout pairs failed (first: direction 3 (env seed {seed}) "
        f"lost its worker {MAX_LOSSES} times (a crash that repeats, e.g. in the environment's "
        "own code)); checkpoint kept at iteration 0")
    deaths = [r for r in caplog.records if "died" in r.getMessage()]
    assert MAX_LOSSES <= len(deaths) <= MAX_LOSSES + 1  # + 1: the chunk it was first sent in
    assert sum("giving up: direction 3" in r.getMessage() for r in caplog.records) == 1


def test_rollout_timeout_is_refused_where_nothing_can_enforce_it(tmp_path):
    with pytest.raises(ConfigError, match="run.rollout_timeout applies only with backend mp "
                                          "or ray"):
        Trainer(config("serial", rollout_timeout=5.0), tmp_path / "r").check_settings()
    for bad in (0, -1.0, float("inf"), "5", True):
        with pytest.raises(ConfigError, match="rollout_timeout must be a positive number"):
            RunConfig(iterations=1, rollout_timeout=bad).validate()


def test_deadlines_derived_from_measured_step_time():
    from es_compact.backends.base import (
        TIMEOUT_FACTOR,
        TIMEOUT_FLOOR_S,
        UNMEASURED_STEP_S,
        Deadlines,
    )
    from es_compact.rollout import EVAL, TRAIN, Result, Task

    pair, ev = Task(TRAIN, 0, 1), Task(EVAL, 0, 1)
    d = Deadlines()
    d.episode_limit = 1000
    assert d.seconds([pair]) == TIMEOUT_FACTOR * UNMEASURED_STEP_S * 2000  # 400 s
    d.observe([Result(TRAIN, 0, np.zeros(2), np.array([300, 100]), busy_seconds=0.04)])
    assert d.step_seconds == 0.04 / 400
    assert d.seconds([pair] * 4) == TIMEOUT_FLOOR_S  # 20 x 1e-4 x 8000 = 16 s: the floor
    assert d.seconds([pair] * 20, attempt=2) == 4 * TIMEOUT_FACTOR * 1e-4 * 40_000
    assert d.seconds([ev]) == TIMEOUT_FLOOR_S
    assert Deadlines(1.5).seconds([pair, ev], attempt=1) == 6.0


def test_bad_backend_settings(tmp_path):
    with pytest.raises(ConfigError, match="workers must be a positive integer, got 0"):
        Trainer(config("mp", 0), tmp_path / "r")
    with pytest.raises(ConfigError, match="unknown backend"):
        Trainer(config("dask", 1), tmp_path / "r")


def test_unreachable_ray_address_fails_fast(tmp_path):
    from es_compact.backends.ray_backend import RayUnavailable

    t = time.time()
    with pytest.raises(RayUnavailable, match="cannot reach a Ray cluster at 127.0.0.1:9"):
        Trainer(config("ray", 1, ray_address="127.0.0.1:9"), tmp_path / "r").run()
    assert time.time() - t < 30
    assert not (tmp_path / "r").exists()  # a refusal leaves nothing on disk


def _contents(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None
            for p in sorted(d.rglob("*"))}


def test_an_unreachable_ray_address_leaves_nothing_on_disk(tmp_path):
    """From the CLI: a new run leaves no directory (nor the parents it would have made); an
    existing run, resumed or --overwrite'n, stays byte-identical (.lock included): the
    workers start before anything is written."""
    from cli_checks import invoke

    train = ["train", "--env", "InvertedPendulum-v4", "--arch", "linear", "--iterations", "2",
             "--max-episode-steps", "20", "--noise-table-size", "100000", "--quiet",
             "--no-plot"]
    ray = ["--backend", "ray", "--ray-address", "127.0.0.1:9"]
    error = "error: cannot reach a Ray cluster at 127.0.0.1:9: "
    res = invoke(*train, *ray, "--out", tmp_path / "a" / "b" / "new")
    assert res.exit_code == 2 and res.output.splitlines()[-1].startswith(error), res.output
    assert not (tmp_path / "a").exists()
    old = tmp_path / "old"
    assert invoke(*train, "--backend", "serial", "--out", old).exit_code == 0
    before = _contents(old)
    for args in (["train", "--resume", old, "--iterations", "4", "--quiet", *ray],
                 [*train, *ray, "--out", old, "--overwrite"]):
        res = invoke(*args)
        assert res.exit_code == 2 and res.output.splitlines()[-1].startswith(error), res.output
        assert _contents(old) == before


def _processes(*needles: bytes) -> set[int]:
    """Pids of processes on this machine whose command line contains one of the needles."""
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if any(n in cmd for n in needles):
                pids.add(int(p.name))
    return pids


def _spawned_workers() -> set[int]:
    """multiprocessing workers and fork servers."""
    return _processes(b"spawn_main", b"multiprocessing.forkserver")


def _train_then_signal(out: Path, backend: str, sig) -> tuple[int, str]:
    """Start a long real training run, send `sig` after its second iteration, wait for it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "es_compact_cli", "train", "--env", "HalfCheetah-v4", "--arch",
         "linear", "--backend", backend, "--workers", "2", "--directions", "4", "--iterations",
         "1000", "--noise-table-size", "100000", "--out", str(out), "--no-plot"],
        stderr=subprocess.PIPE, text=True,
        # A shell without job control starts background commands with SIGINT ignored, and
        # Python keeps it so: the child gets the default back whatever launched pytest.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:  # wait for two finished iterations
        if line.startswith("it    2"):
            break
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _children(pid: int) -> dict[int, bytes]:
    """{pid: command line} of the processes whose parent is pid."""
    kids = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    kids[int(p.name)] = (p / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
    return kids


def test_killed_fork_server_and_worker_are_one_line_each(tmp_path):
    """SIGKILL the mp fork server, then a worker, of a real CLI run: one warning line each,
    no traceback, and the run ends normally."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "es_compact_cli", "train", "--env", "HalfCheetah-v4", "--arch",
         "linear", "--workers", "2", "--directions", "8", "--max-episode-steps", "200",
         "--iterations", "9", "--noise-table-size", "100000", "--out", str(tmp_path / "r"),
         "--no-plot"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    for victim, after in (("server", "it    3"), ("worker", "it    7")):
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(after):
                break
        if victim == "server":  # its workers live on, orphaned: one of them is next
            server = next(p for p, cmd in _children(proc.pid).items()
                          if b"multiprocessing.forkserver" in cmd)
            workers = sorted(_children(server))
            assert len(workers) == 2
        os.kill(server if victim == "server" else workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    notes = [ln for ln in err.splitlines() if ln.startswith("WARNING:")]
    assert len(notes) == 2, err
    assert "fork server" in notes[0] and "the workers go on" in notes[0]
    assert re.fullmatch(r"WARNING: rollout worker \d+ died(, re-running its chunk \d+)?; "
                        r"starting a replacement", notes[1]), notes[1]  # busy or idle
    assert json.loads(out)["replaced_workers"] == 1


@pytest.mark.parametrize("backend", ["mp", pytest.param("ray", marks=pytest.mark.slow)])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_checkpoints_and_leaves_no_orphans(tmp_path, sig, backend):
    """Ctrl-C or `kill PID`, on mp and Ray alike: a checkpoint, the line that says how to go
    on, exit 130, no traceback or crash dump, and no worker (or Ray process) left behind."""
    procs = _spawned_workers if backend == "mp" else _ray_processes
    before = procs()
    out = tmp_path / "run"
    returncode, err = _train_then_signal(out, backend, sig)
    assert returncode == 130, err
    assert "interrupted; the last checkpoint is in" in err
    assert f"continue with: es-compact train --resume {out}" in err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    arrays, meta = checkpoint.load(out / "checkpoints", "latest")
    assert meta["iteration"] >= 2
    deadline = time.time() + 30
    while procs() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not (procs() - before)


def test_ray_missing_is_a_clear_error(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from es_compact_cli.main import main\n"
            f"sys.argv = ['es-compact', 'train', '--env', 'InvertedPendulum-v4', '--backend', "
            f"'ray', '--iterations', '1', '--out', r'{tmp_path / 'r'}']\nmain()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert "error: the ray backend needs Ray: pip install" in res.stderr
    assert "Traceback" not in res.stderr


class _LoopbackCluster:
    """A real Ray cluster on 127.0.0.1, one CPU a node, started with `ray start`; node
    health checks every 0.5 s so that a lost node is declared dead within seconds. Only its
    own processes are stopped at the end (found by a marker in their environment), never
    another Ray's."""

    def __init__(self):
        import shutil

        self.ray_bin = shutil.which("ray", path=os.path.dirname(sys.executable))
        self.port = 27000 + os.getpid() % 1000
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: unix socket paths
        # The marker finds every process of this cluster, whatever name Ray gives it.
        self.env = {**os.environ, "ES_COMPACT_TEST_CLUSTER": self.temp,
                    "RAY_AUTH_MODE": "token", "RAY_health_check_period_ms":
                    "500", "RAY_health_check_timeout_ms": "1000",
                    "RAY_health_check_failure_threshold": "3"}
        self.address = f"127.0.0.1:{self.port}"

    def start(self, head: bool = False) -> int:
        """Start the head or one more node; the pid of its raylet."""
        before = self.raylets()
        where = (["--head", "--port", str(self.port), "--include-dashboard", "false"] if head
                 else ["--address", self.address])
        subprocess.run([self.ray_bin, "start", *where, "--num-cpus", "1", "--node-ip-address",
                        "127.0.0.1", "--temp-dir", self.temp], env=self.env, check=True,
                       capture_output=True, timeout=180)
        new = self.raylets() - before
        assert len(new) == 1, new
        return new.pop()

    def raylets(self) -> set[int]:
        """This cluster's raylets: the raylet program itself (its agents name it too)."""
        return {p for p in _processes(self.temp.encode())
                if _cmdline(p).split(b"\0")[0].endswith(b"/raylet")}

    def processes(self) -> set[int]:
        """This cluster's processes: a marker in their environment or, for the agents Ray
        starts with an environment of its own, their log files in its temp directory."""
        marker, temp = f"ES_COMPACT_TEST_CLUSTER={self.temp}".encode(), self.temp + "/"
        pids = set()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == os.getpid():
                continue
            try:
                if marker in (p / "environ").read_bytes().split(b"\0") or any(
                        os.readlink(fd).startswith(temp) for fd in (p / "fd").iterdir()):
                    pids.add(int(p.name))
            except OSError:
                continue
        return pids

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)


@pytest.mark.slow
def test_real_two_node_ray_cluster_on_loopback(tmp_path):
    """A Ray head and a second node on 127.0.0.1, one CPU each; two iterations through the
    CLI with --ray-address; both nodes must have run rollout chunks."""
    cluster = _LoopbackCluster()
    try:
        cluster.start(head=True)
        cluster.start()
        res = subprocess.run(
            [sys.executable, "-m", "es_compact_cli", "train", "--env", "InvertedPendulum-v4",
             "--arch", "kama", "--hidden", "8", "--rotations", "12", "--directions", "8",
             "--iterations", "2", "--backend", "ray", "--workers", "2", "--ray-address",
             cluster.address, "--noise-table-size", "200000", "--out",
             str(tmp_path / "run"), "--no-plot"], env=cluster.env, capture_output=True,
            text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert summary["iterations"] == 2
        assert len(summary["chunks_per_node"]) == 2, summary
        assert all(n > 0 for n in summary["chunks_per_node"].values())
    finally:
        cluster.stop()  # its own processes only: `ray stop` would stop every Ray here


# Non-default settings: the fast steps read the instance's own weights, ranges and flags.
_SETTINGS = {"terminate_when_unhealthy": False, "exclude_current_positions_from_observation":
             False, "healthy_reward": 0.5, "ctrl_cost_weight": 0.01}


@pytest.mark.parametrize("env_id,fast,kwargs", [
    ("HalfCheetah-v4", "HalfCheetahV4Step", {}), ("Hopper-v4", "HopperV4Step", {}),
    ("Walker2d-v4", "Walker2dV4Step", {}), ("Swimmer-v4", "SwimmerV4Step", {}),
    ("Hopper-v4", "HopperV4Step", _SETTINGS), ("Walker2d-v4", "Walker2dV4Step", _SETTINGS),
    ("HalfCheetah-v4", "HalfCheetahV4Step",
     {"exclude_current_positions_from_observation": False, "forward_reward_weight": 2.0}),
    ("Swimmer-v4", "SwimmerV4Step", {"exclude_current_positions_from_observation": False}),
    ("InvertedPendulum-v4", None, {}), ("CartPole-v1", None, {})])
def test_wrapper_bypass_is_behaviour_identical(env_id, fast, kwargs):
    """Rollouts step the bare environment (through es_compact.fast_envs where one exists) and
    re-apply TimeLimit themselves: the same observations, rewards, terminations and episode
    lengths as through gymnasium's wrappers, under a policy and under large random actions
    (falls, clipped velocities)."""
    from es_compact.config import PolicyConfig
    from es_compact.envs import make_env
    from es_compact.policies import make_policy
    from es_compact.rollout import bypass_wrappers

    wrapped = make_env(env_id, max_episode_steps=150, **kwargs)
    bare = make_env(env_id, max_episode_steps=150, **kwargs)
    step, limit = bypass_wrappers(bare)
    assert limit == 150 and step != bare.step
    assert fast is None or type(step).__name__ == fast
    policy = make_policy(PolicyConfig(arch="dense", hidden=8), wrapped.observation_space,
                         wrapped.action_space, seed=0)
    actor = policy.actor(policy.init(np.random.default_rng(0)))
    rng = np.random.default_rng(3)
    endings = set()
    for seed in (1, 2, 3, 4):
        o1, _ = wrapped.reset(seed=seed)
        o2, _ = bare.reset(seed=seed)
        for t in range(1, 400):
            a = actor(np.asarray(o1, dtype=np.float64))
            if seed > 2 and policy.action.discrete is False:  # random actions at the bounds
                a = rng.choice([-1.0, 1.0], a.shape) * wrapped.action_space.high
            o1, r1, term1, trunc1, _ = wrapped.step(a)
            o2, r2, term2, trunc2, _ = step(a)
            np.testing.assert_array_equal(o1, o2)
            assert r1 == r2 and term1 == term2
            if term1 or trunc1:
                assert term2 or trunc2 or t >= limit
                break
        endings.add("terminated" if term1 else "time limit")
        assert t <= 150
    if env_id in ("Hopper-v4", "Walker2d-v4") and not kwargs:
        assert "terminated" in endings  # the health checks were exercised


@pytest.mark.parametrize("env_id", ["Hopper-v4", "Walker2d-v4"])
def test_fast_health_check_equals_gymnasium_on_any_state(env_id):
    """Every range of the health check, both sides of each bound, and NaN entries: the fast
    check agrees with gymnasium's own is_healthy on states set directly into MjData."""
    from es_compact.envs import make_env
    from es_compact.fast_envs import fast_step

    env = make_env(env_id).unwrapped
    env.reset(seed=0)
    fast = fast_step(env)
    q, v = env.data.qpos, env.data.qvel
    rng = np.random.default_rng(0)
    verdicts = []
    for i in range(3000):
        q[:] = rng.normal(0, 1, q.size) * rng.choice([0.1, 1, 150])
        v[:] = rng.normal(0, 1, v.size) * rng.choice([1, 150])
        q[1] = rng.uniform(0.5, 2.2)  # z on both sides of the healthy range's lower bound
        if i % 7 == 0:
            (q if i % 2 else v)[rng.integers(2, v.size)] = np.nan
        verdicts.append(env.is_healthy)
        assert fast.is_healthy(q, v) == verdicts[-1], (q.copy(), v.copy())
    assert 100 < sum(verdicts) < 2900  # both verdicts were exercised


@pytest.mark.slow
def test_killed_ray_actor_is_replaced_and_result_unchanged(tmp_path):
    from es_compact.backends.ray_backend import RayBackend

    kw = dict(iterations=3, env="HalfCheetah-v4", steps=300, directions=6)
    Trainer(config(**kw), tmp_path / "undisturbed").run()
    backend = RayBackend(2)
    killed = []

    def killer():
        prog = tmp_path / "killed" / "progress.csv"
        while not (prog.exists() and len(prog.read_text().splitlines()) >= 2):
            time.sleep(0.01)
        pid = backend.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        Trainer(config("ray", 2, **kw), tmp_path / "killed", backend=backend).run()
    finally:
        t.join(30)
        backend.close()
    assert killed and backend.replaced_workers >= 1
    assert_same(outcome(tmp_path / "undisturbed"), outcome(tmp_path / "killed"))


def _ray_processes() -> set[int]:
    return _processes(b"raylet", b"gcs_server", b"default_worker.py")


@pytest.mark.parametrize("n,workers", [(1, 1), (7, 2), (32, 2), (32, 3), (100, 4), (5, 8)])
def test_split_tasks_is_guided(n, workers):
    tasks = list(range(n))
    chunks = split_tasks(tasks, workers)
    assert [t for c in chunks for t in c] == tasks  # every task once, in order
    sizes = [len(c) for c in chunks]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= 1
    assert sizes[0] == -(-n // (2 * workers))
    # the last min(n, workers) chunks are single tasks, so the iteration ends evenly
    assert sizes[-min(n, workers):] == [1] * min(n, workers)
    assert len(chunks) <= 2 * workers * (1 + np.log(n + 1))  # few messages


@pytest.mark.slow
def test_ray_dashboard_only_when_asked(tmp_path):
    """A local Ray starts without its dashboard unless --ray-dashboard is given, and then
    serves it on 127.0.0.1 only; the token file Ray writes for it is its owner's only (a
    HOME of the test's own, so Ray writes a new one)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    for flag, wanted in (([], False), (["--ray-dashboard"], True)):
        out = tmp_path / f"dash{wanted}"
        res = subprocess.run(
            [sys.executable, "-m", "es_compact_cli", "train", "--env", "InvertedPendulum-v4",
             "--arch", "linear", "--backend", "ray", "--workers", "1", "--directions", "2",
             "--iterations", "1", "--noise-table-size", "10000", "--out", str(out), "--quiet",
             "--no-plot", *flag], capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        assert bool(summary["dashboard_url"]) is wanted, summary
        assert not wanted or summary["dashboard_url"].startswith("127.0.0.1:"), summary
        assert json.loads((out / "config.json").read_text())["run"]["ray_dashboard"] is wanted
        token = home / ".ray" / "auth_token"
        assert token.stat().st_mode & 0o777 == 0o600, oct(token.stat().st_mode)


def test_ray_dashboard_without_its_packages_is_one_line(tmp_path):
    """Without ray[default], --ray-dashboard fails in one line naming the extra, before Ray
    starts (its own error is a 63-line traceback)."""
    code = ("import sys; sys.modules['ray.dashboard.optional_deps'] = None\n"
            "from es_compact_cli.main import main\n"
            f"sys.argv = ['es-compact', 'train', '--env', 'InvertedPendulum-v4', '--backend', "
            f"'ray', '--ray-dashboard', '--iterations', '1', '--out', r'{tmp_path / 'r'}']\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines()[-1].startswith(
        "error: --ray-dashboard needs Ray's dashboard packages (")
    assert "pip install 'es-compact[ray-dashboard]'" in res.stderr
    assert "Traceback" not in res.stderr


def test_mp_backend_refuses_bad_worker_counts_with_a_config_error():
    # A ConfigError, not a bare ValueError: the CLI shows it as one line.
    from es_compact.backends.multiprocess import MultiprocessBackend

    for workers in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match=f"workers must be a positive integer, got "
                                              f"{workers!r}$"):
            MultiprocessBackend(workers)


NOT_AN_ENV_CLASS = "is a class that does not derive from gymnasium.Env, not an environment class"


@pytest.mark.parametrize("env_id, message", [
    ("os:path", "os:path is a module, not an environment class"),
    ("os:sep", "os:sep is a str, not an environment class"),
    # Refused before they are called (json:dumps and OrderedDict used to be called, and
    # os:abort, tested in a subprocess below, killed the process):
    ("json:dumps", "json:dumps is a function, not an environment class"),
    ("collections:OrderedDict", f"collections:OrderedDict {NOT_AN_ENV_CLASS}"),
    ("subprocess:Popen", f"subprocess:Popen {NOT_AN_ENV_CLASS}"),
    ("gymnasium:Env", "gymnasium:Env built an environment without a gymnasium "
                      "observation_space"),
])
def test_an_entry_point_that_is_no_environment_is_a_config_error(env_id, message):
    from click.testing import CliRunner

    from es_compact.envs import env_spaces, make_env
    from es_compact_cli.main import cli

    for build in (make_env, env_spaces):
        with pytest.raises(ConfigError) as info:
            build(env_id)
        assert str(info.value) == message
    res = CliRunner().invoke(cli, ["params", "--env", env_id])
    assert res.exit_code == 2 and res.output == f"error: {message}\n"


REFUSE_A_FOREIGN_RUN = """
import json, sys
from cli_checks import invoke
run, out = sys.argv[1], sys.argv[2]
results = {}
for name, args in (("eval", ["eval", run, "--checkpoint", "latest"]),
                   ("export", ["export", run, "-o", out + "/p.npz", "--checkpoint", "latest"]),
                   ("resume", ["train", "--resume", run, "--iterations", "4", "--quiet"]),
                   ("plot", ["plot", run, "-o", out + "/p.png"])):
    res = invoke(*args)
    results[name] = [res.exit_code, res.output]
print(json.dumps(results))
"""


def test_a_run_directory_naming_a_callable_that_is_no_environment_is_refused(tmp_path):
    """Someone else's run directory whose config.json names os:abort: eval, export and
    --resume refuse it in one line before calling it (the process lives on: a subprocess, so
    a regression fails this test instead of aborting the suite); plot builds no environment."""
    import json

    from cli_checks import one_line_error

    run = tmp_path / "run"
    Trainer(config(iterations=2), run).run()
    cfg = json.loads((run / "config.json").read_text())
    cfg["env"]["id"] = "os:abort"
    (run / "config.json").write_text(json.dumps(cfg))
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    proc = subprocess.run([sys.executable, "-c", REFUSE_A_FOREIGN_RUN, str(run), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=HERE)
    assert proc.returncode == 0, proc.stderr  # -6 (SIGABRT) when os.abort was called
    results = json.loads(proc.stdout)

    class Res:  # what one_line_error reads of a click result
        def __init__(self, code, output):
            self.exit_code, self.output = code, output

    for name in ("eval", "export", "resume"):
        one_line_error(Res(*results[name]), "os:abort is a builtin_function_or_method, not an "
                                            "environment class")
    assert results["plot"][0] == 0, results["plot"]
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


def test_an_entry_point_environment_still_builds(monkeypatch):
    from es_compact.envs import make_env

    monkeypatch.syspath_prepend(str(HERE))
    env = make_env("misbehaving_env:FlakyPendulum", max_episode_steps=7)
    assert env.observation_space.shape == (4,)
    env.reset(seed=1)
    steps = 0
    truncated = terminated = False
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(np.zeros(1))
        steps += 1
    assert steps == 7
    env.close()


@pytest.mark.slow
def test_lost_ray_node_run_goes_on_and_uses_a_node_that_joins(tmp_path):
    """Two nodes on loopback, 2 workers; the second node's raylet is SIGKILLed mid-run: one
    line says the run goes on with 1 of 2 workers, it does, a node that joins is used again
    (one line), and θ and every progress row equal an undisturbed run's."""
    cluster = _LoopbackCluster()
    out = tmp_path / "run"
    try:
        cluster.start(head=True)
        node = cluster.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "es_compact_cli", "train", "--env", "HalfCheetah-v4",
             "--max-episode-steps", "100", "--arch", "kama", "--hidden", "8", "--rotations",
             "12", "--directions", "8", "--top", "4", "--eval-every", "2", "--eval-episodes",
             "3", "--iterations", "100000", "--backend", "ray", "--workers", "2",
             "--ray-address", cluster.address, "--noise-table-size", "200000", "--out",
             str(out), "--no-plot"], env=cluster.env, stderr=subprocess.PIPE, text=True)
        seen, notes = [], []

        def until(pred, timeout=240):
            end = time.time() + timeout
            for line in proc.stderr:
                seen.append(line)
                if line.startswith("WARNING:"):  # the backend's lines (library warnings)
                    notes.append(line.strip())
                if pred(line) or time.time() > end:
                    return line
            raise AssertionError("".join(seen))

        until(lambda ln: ln.startswith("it    2"))
        os.kill(node, signal.SIGKILL)
        t_lost = time.time()
        until(lambda ln: "node lost" in ln)
        lost_after = time.time() - t_lost
        n_it = sum(ln.startswith("it ") for ln in seen)
        until(lambda ln: ln.startswith("it ") and sum(x.startswith("it ") for x in seen)
              >= n_it + 3)  # it goes on with one worker
        cluster.start()
        until(lambda ln: "all 2 workers running again" in ln)
        n_it = sum(ln.startswith("it ") for ln in seen)
        until(lambda ln: ln.startswith("it ") and sum(x.startswith("it ") for x in seen)
              >= n_it + 3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, "".join(seen) + err
    finally:
        if "proc" in locals() and proc.poll() is None:
            proc.kill()
        cluster.stop()
    assert notes == ["WARNING: node lost: continuing on 1 of 2 workers",
                     "WARNING: all 2 workers running again"], notes
    assert lost_after < 60
    iterations = checkpoint.load(out / "checkpoints", "latest")[1]["iteration"]
    Trainer(config(iterations=iterations, env="HalfCheetah-v4", steps=100),
            tmp_path / "undisturbed").run()
    assert_same(outcome(tmp_path / "undisturbed"), outcome(out))


def _rows(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "progress.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mp", "ray"])
def test_chaos_run_ends_as_an_undisturbed_one(tmp_path, backend):
    """One run through the CLI while a harness SIGKILLs a random rollout worker every 3 s,
    SIGKILLs the trainer twice (resuming it each time) and, on Ray (a two-node loopback
    cluster), drops the second node and adds one again: θ and every progress row equal an
    undisturbed run's."""
    import random

    iterations, rng = 60, random.Random(26)
    out = tmp_path / "chaos"
    cluster = _LoopbackCluster() if backend == "ray" else None
    env = cluster.env if cluster else os.environ
    where = ["--ray-address", cluster.address] if cluster else []
    new = [sys.executable, "-m", "es_compact_cli", "train", "--env", "HalfCheetah-v4",
           "--max-episode-steps", "100", "--arch", "kama", "--hidden", "8", "--rotations", "12",
           "--directions", "8", "--top", "4", "--eval-every", "2", "--eval-episodes", "3",
           "--iterations", str(iterations), "--noise-table-size", "200000", "--backend",
           backend, "--workers", "2", *where, "--out", str(out)]
    resume = [*new[:4], "--resume", str(out)]
    log_file = (tmp_path / "stderr.txt").open("w")

    def launch(cmd):
        return subprocess.Popen([*cmd, "--quiet", "--no-plot"], env=env, stderr=log_file,
                                stdout=subprocess.DEVNULL)

    def workers(trainer: int) -> list[int]:
        if cluster:
            return sorted(p for p in cluster.processes()
                          if _cmdline(p).startswith(b"ray::_ActorImpl"))
        # workers are forked, so they share the server's command line (a subprocess the
        # server ran while importing, glfw's version check, does not: it is no worker)
        fork = b"multiprocessing.forkserver"
        servers = [p for p, c in _children(trainer).items() if fork in c]
        return sorted(p for s in servers for p, c in _children(s).items() if fork in c)

    kills = {"workers": 0, "trainer": 0, "node": 0}
    joined: list[int] = []  # the raylet of the node that joins again
    trainer_kills = [iterations // 4, iterations // 2]
    try:
        if cluster:
            cluster.start(head=True)
            node = cluster.start()
        proc, last_kill, end = launch(new), time.time(), time.time() + 600
        while proc.poll() is None or proc.returncode != 0:
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.time() < end, (tmp_path / "stderr.txt").read_text()
            rows = _rows(out)
            if trainer_kills and rows >= trainer_kills[0]:
                proc.kill()
                proc.wait()
                trainer_kills.pop(0)
                kills["trainer"] += 1
                proc = launch(resume)
            elif cluster and kills["node"] == 0 and rows >= iterations // 3:
                os.kill(node, signal.SIGKILL)
                kills["node"] += 1
            elif cluster and kills["node"] == 1 and rows >= iterations // 3 + 6:
                # `ray start` takes seconds: meanwhile the harness goes on
                joining = threading.Thread(target=lambda: joined.append(cluster.start()),
                                           daemon=True)
                joining.start()
                kills["node"] += 1
            elif time.time() - last_kill >= 3 and (pids := workers(proc.pid)):
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills["workers"] += 1
                except ProcessLookupError:
                    pass
                last_kill = time.time()
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        if cluster:
            if kills["node"] == 2:
                joining.join(180)
            cluster.stop()
        log_file.close()
    assert kills["trainer"] == 2 and kills["workers"] >= 3, kills
    assert kills["node"] == (2 if cluster else 0) and len(joined) == kills["node"] // 2, kills
    Trainer(config(iterations=iterations, env="HalfCheetah-v4", steps=100),
            tmp_path / "undisturbed").run()
    assert_same(outcome(tmp_path / "undisturbed"), outcome(out))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
