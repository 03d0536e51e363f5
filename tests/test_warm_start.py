"""Warm starts (config.init, `train --init-from RUN`): θ and the observation statistics of a
trained run start a new one with other settings, the source is recorded in config.json, a
resume never reads it again, and whatever does not fit is one line with nothing written. Real
MuJoCo environments, real runs of one or two iterations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest
from cli_checks import invoke, one_line_error

from es_compact.backends import SerialBackend
from es_compact.config import (
    EnvConfig,
    InitConfig,
    PolicyConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
)
from es_compact.errors import ConfigError
from es_compact.normalizer import RunningStat
from es_compact.run_dir import TIMING_COLUMNS, RunDir
from es_compact.trainer import Trainer
from es_compact.warm_start import WarmStartError, theta_sha256

SMALL = ["--max-episode-steps", "100", "--directions", "3", "--top", "2", "--iterations", "1",
         "--eval-episodes", "1", "--backend", "serial", "--noise-table-size", "100000",
         "--no-plot", "--quiet"]


def config(env="HalfCheetah-v5", arch="linear", algo="ars", iterations=2, eval_every=2,
           backend="serial", workers=1, seed=0, init=None, **strategy):
    return TrainConfig(
        env=EnvConfig(id=env, max_episode_steps=100),
        policy=PolicyConfig(arch=arch, **({"hidden": 8, "rotations": (4,)} if arch == "kama"
                                          else {})),
        strategy=StrategyConfig(algo=algo, directions=3,
                                **({"top": 2} if algo == "ars" else {}), **strategy),
        run=RunConfig(iterations=iterations, backend=backend, workers=workers, seed=seed,
                      eval_every=eval_every, eval_episodes=1, noise_table_size=100_000),
        init=init or InitConfig())


def latest(run_dir) -> tuple[dict, dict]:
    return RunDir(run_dir).load_checkpoint("latest")


def rows(run_dir) -> str:
    """progress.csv without its timing columns, as text (nan equals nan)."""
    df = RunDir(run_dir).read_progress().drop(columns=list(TIMING_COLUMNS))
    return df.to_csv(index=False, float_format=repr)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A v4 linear ARS run with a best checkpoint (evaluated at iteration 2), one without,
    and a small kama run."""
    root = tmp_path_factory.mktemp("sources")
    Trainer(config("HalfCheetah-v4"), root / "v4").run()
    Trainer(config(iterations=1, eval_every=5), root / "no_best").run()
    for best in ("best.json", RunDir(root / "no_best").npz_path("best").name):
        # a run whose final evaluation is promoted to best has one: take it away
        (root / "no_best" / "checkpoints" / best).unlink(missing_ok=True)
    assert not RunDir(root / "no_best").has_checkpoint("best")
    Trainer(config(arch="kama", iterations=1), root / "kama").run()
    return root


class Recording(SerialBackend):
    """The serial backend, keeping every broadcast it ran (what the workers were sent)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def run(self, broadcast, tasks, *args, **kwargs):
        self.seen.append(broadcast)
        return super().run(broadcast, tasks, *args, **kwargs)


def test_theta_and_statistics_are_copied_exactly_and_the_source_recorded(sources, tmp_path):
    """v4 -> v5, another step size: the θ the workers perturb at iteration 0 is the source's,
    bit for bit, normalised by the source's statistics, which go on accumulating."""
    arrays, meta = RunDir(sources / "v4").load_checkpoint("best")
    backend = Recording()
    try:
        Trainer(config(step_size=0.05, init=InitConfig(run_dir=str(sources / "v4"))),
                tmp_path / "warm", backend=backend).run()
    finally:
        backend.close()
    first = backend.seen[0]
    assert first.iteration == 0 and first.theta.tobytes() == arrays["theta"].tobytes()
    stat = RunningStat(17, StrategyConfig().obs_norm_floor)
    stat.load({k: arrays[k] for k in ("obs_count", "obs_mean", "obs_m2")})
    mean, std = stat.frozen()
    assert first.obs_mean.tobytes() == mean.tobytes() and first.obs_std.tobytes() == std.tobytes()
    new, new_meta = latest(tmp_path / "warm")
    assert new["obs_count"] > arrays["obs_count"] and new_meta["iteration"] == 2
    stored = json.loads((tmp_path / "warm" / "config.json").read_text())
    sha = hashlib.sha256(arrays["theta"].astype("<f8").tobytes()).hexdigest()
    assert stored["init"] == {"run_dir": str((sources / "v4").resolve()), "checkpoint": "best",
                              "iteration": meta["iteration"], "theta_sha256": sha}
    assert stored["env"]["id"] == "HalfCheetah-v5" and stored["strategy"]["step_size"] == 0.05


def test_another_strategy_is_identical_on_serial_and_mp_and_resumes_without_the_source(
        sources, tmp_path):
    """ARS -> CMA-ES: serial and two worker processes agree bitwise; a run split by a resume
    ends the same, though the source has gone by then (a resume never reads it)."""
    src = shutil.copytree(sources / "v4", tmp_path / "src")
    init = InitConfig(run_dir=str(src))
    Trainer(config(algo="cmaes", init=init), tmp_path / "serial").run()
    Trainer(config(algo="cmaes", backend="mp", workers=2, init=init), tmp_path / "mp").run()
    Trainer(config(algo="cmaes", iterations=1, init=init), tmp_path / "split").run()
    src.rename(tmp_path / "gone")
    Trainer(config(algo="cmaes", init=init), tmp_path / "split", mode="resume").run()
    theta = latest(tmp_path / "serial")[0]["theta"].tobytes()
    assert latest(tmp_path / "mp")[0]["theta"].tobytes() == theta
    assert latest(tmp_path / "split")[0]["theta"].tobytes() == theta
    assert rows(tmp_path / "mp") == rows(tmp_path / "serial") == rows(tmp_path / "split")
    split = json.loads((tmp_path / "split" / "config.json").read_text())
    assert split["init"] == json.loads((tmp_path / "serial" / "config.json").read_text())["init"]


def test_a_resume_from_python_keeps_the_record_and_refuses_another_source(sources, tmp_path):
    init = InitConfig(run_dir=str(sources / "v4"))
    Trainer(config(iterations=1, init=init), tmp_path / "warm").run()
    record = RunDir(tmp_path / "warm").read_config().init
    Trainer(config(), tmp_path / "warm", mode="resume").run()  # no init given: the record kept
    assert RunDir(tmp_path / "warm").read_config().init == record
    other = InitConfig(run_dir=str(sources / "no_best"))
    with pytest.raises(ConfigError, match="cannot resume with another warm start"):
        Trainer(config(iterations=3, init=other), tmp_path / "warm", mode="resume").check()


def test_a_run_stopped_before_its_first_iteration_reads_its_recorded_source_again(
        sources, tmp_path):
    """Only a config.json on disk (stopped inside iteration 1): the resume starts afresh from
    the recorded source, as a run in one go does, and refuses it once its θ has moved on."""
    src = shutil.copytree(sources / "v4", tmp_path / "src")
    init = InitConfig(run_dir=str(src), checkpoint="latest")
    Trainer(config(init=init), tmp_path / "whole").run()
    for name in ("stopped", "moved"):
        early = Trainer(config(init=init), tmp_path / name)
        early.check()
        tmp_path.joinpath(name).mkdir()
        RunDir(tmp_path / name).write_config(early.config)  # what a kill in iteration 1 leaves
    Trainer(config(), tmp_path / "stopped", mode="resume").run()
    assert latest(tmp_path / "stopped")[0]["theta"].tobytes() == \
        latest(tmp_path / "whole")[0]["theta"].tobytes()
    Trainer(config("HalfCheetah-v4", iterations=3), src, mode="resume").run()  # θ moves on
    with pytest.raises(WarmStartError, match="the source has changed"):
        Trainer(config(), tmp_path / "moved", mode="resume").run()
    assert RunDir(tmp_path / "moved").read_config().init == early.config.init


def test_a_toml_init_table_and_a_flag_that_replaces_its_source(sources, tmp_path):
    """[init] in a --config file names a source; --init-from replaces it, and the record the
    file held of the old source (its iteration and θ's hash) goes with it."""
    toml = tmp_path / "warm.toml"
    toml.write_text(f'[policy]\narch = "linear"\n[init]\nrun_dir = "{sources / "v4"}"\n'
                    f'iteration = 99\ntheta_sha256 = "{"0" * 64}"\n')
    one_line_error(invoke("train", "--config", toml, *SMALL, "--out", tmp_path / "a"),
                   "its best checkpoint holds iteration 2, not the 99 recorded")
    res = invoke("train", "--config", toml, "--init-from", sources / "no_best", *SMALL,
                 "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    init = RunDir(tmp_path / "b").read_config().init
    assert init.run_dir == str((sources / "no_best").resolve()) and init.iteration == 1
    assert not (tmp_path / "a").exists()


def test_best_falls_back_to_latest_with_a_note(sources, tmp_path):
    res = invoke("train", "--init-from", sources / "no_best", *SMALL, "--arch", "linear",
                 "--out", tmp_path / "warm")
    assert res.exit_code == 0, res.output
    assert f"note: {(sources / 'no_best').resolve()} has no best checkpoint; starting from " \
           "its latest (iteration 1)" in res.output
    assert RunDir(tmp_path / "warm").read_config().init.checkpoint == "latest"


def test_a_recorded_source_that_changed_is_refused(sources, tmp_path):
    arrays, meta = RunDir(sources / "v4").load_checkpoint("best")
    good = InitConfig(run_dir=str(sources / "v4"), iteration=meta["iteration"],
                      theta_sha256=theta_sha256(arrays["theta"]))
    Trainer(config(iterations=1, init=good), tmp_path / "ok").check()
    for changed in ({"iteration": 7}, {"theta_sha256": "0" * 64}):
        with pytest.raises(WarmStartError, match="the source has changed"):
            Trainer(config(init=dataclasses.replace(good, **changed)), tmp_path / "no").check()
    assert not (tmp_path / "no").exists()


def _corrupt_best(sources, tmp_path):
    src = shutil.copytree(sources / "v4", tmp_path / "corrupt")
    npz = RunDir(src).npz_path("best")
    npz.write_bytes(npz.read_bytes()[:100])
    return src


REFUSED = [
    ("v4", ["--arch", "linear", "--env", "Hopper-v5"],
     ["its policy (linear on HalfCheetah-v4: obs 17, act 6, 102 parameters) does not fit this "
      "run's (linear on Hopper-v5: obs 11, act 3, 33 parameters)"]),
    ("v4", ["--arch", "dense"], ["does not fit this run's (dense on HalfCheetah-v5"]),
    ("v4", ["--arch", "linear", "--env-kwargs", "exclude_current_positions_from_observation=false"],
     ["obs 18, act 6, 108 parameters"]),
    ("kama", ["--arch", "kama", "--hidden", "8", "--rotations", "4", "--seed", "3"],
     ["another structure", "from its seed 0, this run's from seed 3: use seed 0"]),
    ("v4", ["--arch", "linear", "--variant", "v1t"],
     ["its θ acts on normalised observations (ars v2t) and this run's would not (ars v1t)"]),
    ("missing", ["--arch", "linear"], ["cannot warm-start from", "missing: no such directory"]),
    ("empty", ["--arch", "linear"], ["holds no run (no config.json)"]),
    ("corrupt", ["--arch", "linear"], ["cannot warm-start from", "(best checkpoint)", "corrupt"]),
]


@pytest.mark.parametrize("source,args,words", REFUSED,
                         ids=["shape", "arch", "env-kwargs", "kama-seed", "normalisation",
                              "missing", "empty", "corrupt-best"])
def test_what_does_not_fit_is_one_line_and_writes_nothing(sources, tmp_path, source, args,
                                                          words):
    src = {"missing": tmp_path / "missing", "empty": tmp_path / "empty",
           "corrupt": None}.get(source, sources / source)
    if source == "empty":
        src.mkdir()
    if source == "corrupt":
        src = _corrupt_best(sources, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = invoke("train", "--init-from", src, *SMALL, *args, "--out", tmp_path / "warm")
    one_line_error(res, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_init_from_with_resume_and_checkpoint_alone_are_refused(sources, tmp_path):
    one_line_error(invoke("train", "--resume", sources / "v4", "--init-from", sources / "kama"),
                   "--init-from cannot be combined with --resume")
    one_line_error(invoke("train", "--resume", sources / "v4", "--checkpoint", "latest"),
                   "--checkpoint cannot be combined with --resume")
    one_line_error(invoke("train", *SMALL, "--checkpoint", "latest", "--out", tmp_path / "x"),
                   "--checkpoint applies only with --init-from; here it would be ignored")
    one_line_error(invoke("train", "--init-from", sources / "v4", *SMALL, "--arch", "linear",
                          "--out", sources / "v4", "--overwrite"),
                   "it is this run's own directory")
    assert not (tmp_path / "x").exists() and RunDir(sources / "v4").has_checkpoint("best")
