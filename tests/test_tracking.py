"""TensorBoard and W&B (offline) adapters on real training runs: every progress column, the
configuration, the final evaluation, and a resumed run continuing the curves without
duplicate steps, read back with TensorBoard's own event reader and W&B's record format."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.presets import resolve
from es_compact.run_dir import TIMING_COLUMNS
from es_compact.tracking import TensorBoard, WandB, trackers, with_trackers
from es_compact.trainer import Trainer
from tests.cli_checks import invoke, one_line_error

ROOT = Path(__file__).resolve().parent.parent


def config(iterations=5, checkpoint_every_s=30.0):
    return resolve(TrainConfig(env=EnvConfig(id="InvertedPendulum-v4", max_episode_steps=100),
                       policy=PolicyConfig(arch="linear"),
                       strategy=StrategyConfig(directions=4, top=2),
                       run=RunConfig(iterations=iterations, eval_every=2, eval_episodes=2,
                                     noise_table_size=100_000, backend="serial",
                                     checkpoint_every_s=checkpoint_every_s)))


def train(cfg, run, adapters, mode="new"):
    summary = Trainer(cfg, run, mode=mode).run(with_trackers(None, adapters))
    for a in adapters:
        a.finish(summary)
    return summary


CRASH = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_tracking import config
from es_compact.tracking import {cls}, with_trackers
from es_compact.trainer import Trainer

adapter = {make}

def crash(row, info):
    if row["iteration"] == 3:  # logged, checkpoint still at iteration 1: a hard stop
        os.kill(os.getpid(), signal.SIGKILL)

Trainer(config(checkpoint_every_s=1e9), {run!r}).run(with_trackers(None, [adapter]))
"""


def crash_after_three(tmp_path, run, cls, make, env=None):
    """Train in a child process with the adapter, SIGKILLed after iteration 3 was logged
    while its latest checkpoint is iteration 1's."""
    code = CRASH.format(root=str(ROOT), cls=cls, make=make, run=str(run))
    # the adapter logs before the crash callback: with_trackers(crash, [adapter]) would log
    # after it, so the adapter goes first here
    code = code.replace("with_trackers(None, [adapter])",
                        "lambda r, i: (adapter.log(r), crash(r, i))")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == -9, res.stderr
    rows = pd.read_csv(run / "progress.csv")
    assert rows["iteration"].tolist() == [1, 2, 3]


def expected_rows(tmp_path, iterations=5):
    Trainer(config(iterations), tmp_path / "undisturbed").run()
    return pd.read_csv(tmp_path / "undisturbed" / "progress.csv")


# TensorBoard --------------------------------------------------------------------------------

def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logs_every_column_the_config_and_the_final_evaluation(tmp_path):
    pytest.importorskip("tensorboardX")
    run, tb = tmp_path / "run", tmp_path / "tb"
    summary = train(config(5), run, [TensorBoard(tb, run, config(5))])
    rows = pd.read_csv(run / "progress.csv")
    scalars = tensorboard_scalars(tb / "run")
    for col in rows.columns:
        values = rows[col].dropna()
        if col in TIMING_COLUMNS:
            continue
        logged = scalars[f"progress/{col}"]
        assert [s for s, _ in logged] == rows.loc[values.index, "timesteps"].tolist()
        assert [v for _, v in logged] == pytest.approx(values.tolist(), rel=1e-6)  # float32
    assert scalars["final/final_eval"][-1][1] == pytest.approx(summary["final_eval"], rel=1e-6)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb / "run"))
    acc.Reload()
    assert "config" in acc.Tags()["tensors"] or "config/text_summary" in acc.Tags()["tensors"]
    hp = [t for t in acc.summary_metadata if acc.summary_metadata[t].plugin_data.plugin_name
          == "hparams"]
    assert hp  # the hparams plugin's session records are in the same run


def test_a_resumed_run_continues_the_tensorboard_curves_without_duplicates(tmp_path):
    pytest.importorskip("tensorboardX")
    run, tb = tmp_path / "run", tmp_path / "tb"
    crash_after_three(tmp_path, run, "TensorBoard",
                      f"TensorBoard({str(tb)!r}, {str(run)!r}, config())")
    before = [v for _, v in tensorboard_scalars(tb / "run")["progress/iteration"]]
    # what the stopped run left (its writer is asynchronous: at least iteration 2, beyond the
    # checkpoint, so the resumed run logs steps that are on disk already)
    assert len(before) >= 2 and before == [float(i) for i in range(1, len(before) + 1)]
    train(config(5), run, [TensorBoard(tb, run, config(5))], mode="resume")
    ref = expected_rows(tmp_path)
    scalars = tensorboard_scalars(tb / "run")
    steps = [s for s, _ in scalars["progress/iteration"]]
    assert steps == ref["timesteps"].tolist()  # each iteration once, in order
    assert [v for _, v in scalars["progress/iteration"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [v for _, v in scalars["progress/train_return_mean"]] == pytest.approx(
        ref["train_return_mean"].tolist(), rel=1e-6)


# Weights & Biases (offline) -----------------------------------------------------------------

def wandb_history(root: Path) -> list[tuple[int, dict]]:
    """(step, {key: value}) of every history record in the offline runs under root, in the
    order of the runs' creation: the W&B transaction log (':W&B' header, then LevelDB log
    blocks of 32 KiB whose records are wandb_internal_pb2.Record). The W&B service writes
    the log after finish() returns: it is stopped (and so has written everything) first."""
    import wandb
    from wandb.proto import wandb_internal_pb2 as pb

    wandb.teardown()

    out = []
    for path in sorted(root.rglob("run-*.wandb"), key=lambda p: p.parent.name):
        data = path.read_bytes()
        assert data[:4] == b":W&B"
        pos, partial = 7, b""
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if length == 0 and kind == 0:
                pos += left
                continue
            chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
            if kind in (2, 3):  # first and middle fragments
                partial += chunk
                continue
            record = pb.Record()
            record.ParseFromString(partial + chunk)
            partial = b""
            if record.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in record.history.item}
                out.append((record.history.step.num, items))
    return out


@pytest.fixture
def offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    (tmp_path / "wb").mkdir()
    import wandb

    wandb.teardown()  # W&B reads its settings (WANDB_DIR) once per process: read them anew
    yield tmp_path / "wb"
    wandb.teardown()


def test_wandb_logs_every_column_and_resumes_one_run_without_duplicates(tmp_path, offline):
    run = tmp_path / "run"
    train(config(3), run, [WandB("es-compact-test", run, config(3))])
    first_id = json.loads((run / "tracking.json").read_text())["wandb_id"]
    train(config(5), run, [WandB("es-compact-test", run, config(5))], mode="resume")
    assert json.loads((run / "tracking.json").read_text())["wandb_id"] == first_id
    assert all(first_id in p.name for p in offline.rglob("run-*.wandb"))
    ref = expected_rows(tmp_path)
    history = wandb_history(offline)
    assert [s for s, _ in history] == ref["timesteps"].tolist()
    assert [h["iteration"] for _, h in history] == [1, 2, 3, 4, 5]
    assert [h["train_return_mean"] for _, h in history] == ref["train_return_mean"].tolist()


def test_wandb_skips_what_a_stopped_run_already_logged(tmp_path, offline):
    run = tmp_path / "run"
    # a trainer of its own, as a real stop and resume are two processes: not this process's
    # W&B service (which an earlier wandb.init here announced in WANDB_SERVICE)
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"},
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(offline)}
    crash_after_three(tmp_path, run, "WandB", f"WandB('t', {str(run)!r}, config())", env=env)
    record = json.loads((run / "tracking.json").read_text())
    ref = expected_rows(tmp_path)
    assert record["wandb_last_step"] == ref["timesteps"][2]
    # W&B names an offline run's directory by the second it started: a resume within the same
    # second as the stopped run would share its directory (and its dead writer's file)
    time.sleep(1.1)
    train(config(5), run, [WandB("t", run, config(5))], mode="resume")
    resumed = [s for s, _ in wandb_history(offline)
               if s > ref["timesteps"][2]]
    assert resumed == ref["timesteps"].tolist()[3:]


# Refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("module,extra,kw", [
    ("tensorboardX", "tensorboard", {"tensorboard": "tb"}),
    ("wandb", "wandb", {"wandb": True}),
])
def test_a_missing_package_names_its_extra(tmp_path, monkeypatch, module, extra, kw):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ConfigError, match=rf"pip install 'es-compact\[{extra}\]'"):
        trackers(config(), tmp_path / "run", **kw)


def test_the_cli_refuses_a_missing_tracker_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    out = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--iterations", "1", "--tensorboard",
                 tmp_path / "tb", "--out", out)
    one_line_error(res, "es-compact[tensorboard]")
    assert not out.exists() and not (tmp_path / "tb").exists()


def test_the_cli_writes_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "run"
    res = invoke("train", "--env", "InvertedPendulum-v4", "--arch", "linear", "--iterations",
                 "2", "--eval-every", "2", "--backend", "serial", "--tensorboard",
                 tmp_path / "tb", "--out", out, "--no-plot")
    assert res.exit_code == 0, res.output
    assert tensorboard_scalars(tmp_path / "tb" / "run")["progress/iteration"][-1][1] == 2.0
