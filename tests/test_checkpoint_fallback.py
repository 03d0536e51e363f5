"""A damaged newest 'latest' checkpoint falls back to the generation before it (latest.prev)
with a one-line warning saying what is wrong; resuming from it is exact, and eval and export
say the same. Real runs of a real MuJoCo environment, damaged the ways a disk or an editor
damages files."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_checks import invoke, one_line_error

from es_compact import checkpoint
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.run_dir import TIMING_COLUMNS, RunDir
from es_compact.trainer import Trainer

ENV = "InvertedPendulum-v4"


def config(iterations: int) -> TrainConfig:
    # checkpoint_every_s=0: 'latest' after every iteration, so latest.prev is the one before.
    return TrainConfig(
        env=EnvConfig(id=ENV, max_episode_steps=100),
        policy=PolicyConfig(arch="kama", hidden=8, rotations=(12,)),
        strategy=StrategyConfig(directions=4, top=2),
        run=RunConfig(seed=3, iterations=iterations, eval_every=2, eval_episodes=2,
                      noise_table_size=100_000, backend="serial", checkpoint_every_s=0.0))


def outcome(run: Path):
    arrays, meta = checkpoint.load(run / "checkpoints", "latest")
    rows = pd.read_csv(run / "progress.csv").drop(columns=list(TIMING_COLUMNS))
    return arrays, meta, rows


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    run = tmp_path_factory.mktemp("undisturbed") / "run"
    Trainer(config(5), run).run()
    return outcome(run)


def damage(ck: Path, kind: str) -> None:
    """Damage checkpoint 'latest' in ck."""
    js, npz = ck / "latest.json", checkpoint.npz_path(ck, "latest")
    if kind == "json truncated":
        js.write_bytes(js.read_bytes()[:150])
    elif kind == "json garbage":
        js.write_text("{not json")
    elif kind == "json empty":
        js.write_bytes(b"")
    elif kind == "json scalar changed":  # valid JSON, but not what was written
        js.write_text(re.sub(r'"iteration": 3', '"iteration": 2', js.read_text()))
    elif kind == "json missing":
        js.unlink()
    elif kind == "npz truncated":
        npz.write_bytes(npz.read_bytes()[:-20])
    elif kind == "npz bit flipped":  # same size, one byte changed
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0x10
        npz.write_bytes(bytes(data))
    elif kind == "npz missing":
        npz.unlink()
    else:  # pragma: no cover
        raise ValueError(kind)


DAMAGE = [
    ("json truncated", "latest.json is truncated or corrupted (not valid JSON: "),
    ("json garbage", "latest.json is truncated or corrupted (not valid JSON: Expecting "
                     "property name enclosed in double quotes: line 1 column 2 (char 1); 9 "
                     "bytes)"),
    ("json empty", "latest.json is corrupted: it is empty (0 bytes)"),
    ("json scalar changed", "latest.json is corrupted (checksum mismatch of its scalars)"),
    ("json missing", "no checkpoint 'latest' in "),
    ("npz truncated", ".npz is truncated or corrupted ("),
    ("npz bit flipped", ".npz is truncated or corrupted (checksum mismatch)"),
    ("npz missing", ".npz, which is missing"),
]


@pytest.mark.parametrize("kind,why", DAMAGE)
def test_a_damaged_latest_falls_back_one_generation_and_resumes_exactly(
        tmp_path, undisturbed, caplog, kind, why):
    run = tmp_path / "run"
    Trainer(config(3), run).run()  # latest at 3, latest.prev at 2
    ck = run / "checkpoints"
    assert checkpoint.load(ck, "latest.prev")[1]["iteration"] == 2
    damage(ck, kind)
    rd = RunDir(run)
    assert rd.has_checkpoint() and rd.latest_meta()["iteration"] == 2
    assert rd.status(config(5)) == "resume"
    with caplog.at_level(logging.WARNING, logger="es_compact.run_dir"):
        Trainer(config(5), run, mode="resume").run()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "es_compact.run_dir"]
    assert "\n" not in warning and why in warning, warning
    assert warning.endswith(f"; using the generation before it, {ck / 'latest.prev.json'} "
                            "(iteration 2)")
    # progress.csv was cut back to iteration 2 and rows 3-5 written again: all as undisturbed.
    arrays, meta, rows = outcome(run)
    ref_arrays, ref_meta, ref_rows = undisturbed
    assert set(arrays) == set(ref_arrays)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], ref_arrays[k])
    pd.testing.assert_frame_equal(rows, ref_rows)
    assert meta["iteration"] == 5 and meta["timesteps"] == ref_meta["timesteps"]
    # The next saves rotate normally again: latest 5, latest.prev 4, no stray npz.
    assert checkpoint.load(ck, "latest.prev")[1]["iteration"] == 4
    assert sorted(p.name for p in ck.glob("latest*.npz")) == sorted(
        checkpoint.npz_path(ck, n).name for n in ("latest", "latest.prev"))


def test_the_previous_generation_is_the_last_good_one(tmp_path):
    """A save over a damaged newest keeps the good one before as latest.prev, never the
    damaged one; every save leaves exactly the npz files its two jsons name."""
    d = tmp_path / "ck"
    for i in (1, 2):
        checkpoint.save(d, "latest", {"theta": np.full(3, float(i))}, {"iteration": i},
                        keep_previous=True)
    assert checkpoint.load(d, "latest.prev")[1]["iteration"] == 1
    (d / "latest.json").write_text("{")  # generation 2 damaged
    got = checkpoint.load_newest(d, "latest")
    assert (got.name, got.meta["iteration"]) == ("latest.prev", 1) and "corrupted" in got.damage
    checkpoint.save(d, "latest", {"theta": np.full(3, 3.0)}, {"iteration": 3},
                    keep_previous=True)
    assert checkpoint.load(d, "latest.prev")[0]["theta"].tolist() == [1.0] * 3
    got = checkpoint.load_newest(d, "latest")
    assert (got.name, got.meta["iteration"], got.damage) == ("latest", 3, None)
    assert len(list(d.glob("latest-*.npz"))) == 2
    # Saving the same arrays twice shares one file, which stays.
    checkpoint.save(d, "latest", {"theta": np.full(3, 3.0)}, {"iteration": 3},
                    keep_previous=True)
    assert [p.name for p in d.glob("latest-*.npz")] == [checkpoint.npz_path(d, "latest").name]
    assert checkpoint.load(d, "latest.prev")[1]["iteration"] == 3
    # 'best' (keep_previous=False) keeps one generation, as before.
    for i in (1, 2):
        checkpoint.save(d, "best", {"theta": np.full(3, float(i))}, {"iteration": i})
    assert not checkpoint.exists(d, "best.prev") and len(list(d.glob("best-*.npz"))) == 1


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("damaged") / "run"
    Trainer(config(3), run).run()
    damage(run / "checkpoints", "npz bit flipped")
    return run


def test_eval_and_export_fall_back_with_the_same_warning(damaged_run, tmp_path, caplog):
    ck = damaged_run / "checkpoints"
    with caplog.at_level(logging.WARNING, logger="es_compact.run_dir"):
        res = invoke("eval", damaged_run, "--checkpoint", "latest", "--episodes", "1")
        assert res.exit_code == 0, res.output
        assert "(latest, iteration 2)" in res.output
        res = invoke("export", damaged_run, "-o", tmp_path / "p.npz", "--checkpoint", "latest")
        assert res.exit_code == 0, res.output
        assert "latest checkpoint at iteration 2" in res.output
        # plot reads progress.csv only: the damage does not concern it.
        res = invoke("plot", damaged_run, "-o", tmp_path / "p.png")
        assert res.exit_code == 0, res.output
    warnings = [r.getMessage() for r in caplog.records if r.name == "es_compact.run_dir"]
    assert len(warnings) == 2 and warnings[0] == warnings[1]
    assert warnings[0] == (f"checkpoint {checkpoint.npz_path(ck, 'latest')} is truncated or "
                           "corrupted (checksum mismatch); using the generation before it, "
                           f"{ck / 'latest.prev.json'} (iteration 2)")


def test_with_both_generations_damaged_eval_export_and_resume_say_so_in_one_line(
        damaged_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(damaged_run, run)
    ck = run / "checkpoints"
    (ck / "latest.prev.json").write_text("{")
    message = (f"error: checkpoint {checkpoint.npz_path(ck, 'latest')} is truncated or "
               "corrupted (checksum mismatch); the generation before it is unusable too: "
               f"checkpoint {ck / 'latest.prev.json'} is truncated or corrupted (not valid JSON")
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    for args in (["eval", run, "--checkpoint", "latest"],
                 ["export", run, "-o", tmp_path / "p.npz", "--checkpoint", "latest"]):
        one_line_error(invoke(*args), message[len("error: "):])
    res = invoke("train", "--resume", run, "--iterations", "5", "--quiet")
    banner, error = res.output.strip().splitlines()
    assert res.exit_code == 2 and banner.startswith("resuming ") and error.startswith(message)
    assert not (tmp_path / "p.npz").exists()
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


def test_the_warning_is_one_line_on_stderr(damaged_run):
    """What a user sees, from a real process."""
    proc = subprocess.run([sys.executable, "-m", "es_compact_cli", "eval", str(damaged_run),
                           "--checkpoint", "latest", "--episodes", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["iteration"] == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("WARNING: checkpoint ") and "(checksum mismatch); using the " \
        "generation before it" in line, proc.stderr
