"""`es-compact eval`, `plot` and `export` on real tiny runs: evaluation repeats the trainer's,
the NumPy-only runner reproduces Policy.forward for every architecture in a clean interpreter,
videos are really rendered (EGL or OSMesa) and bad input gives one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import invoke, one_line_error

from es_compact import checkpoint
from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.evaluate import load_run
from es_compact.export import RUNNER_NAME, STANDALONE_SOURCE
from es_compact.policies import ARCHITECTURES
from es_compact.trainer import Trainer

ENV = "InvertedPendulum-v4"
# Every registered architecture, plus tanh-squashed actions and a Discrete action space.
CASES = {arch: (ENV, arch, "clip") for arch in ARCHITECTURES}
CASES.update({"kama-tanh": (ENV, "kama", "tanh"), "dense-discrete": ("CartPole-v1", "dense",
                                                                     "clip")})


def config(env=ENV, arch="kama", squash="clip", seed=0, iterations=3):
    return TrainConfig(
        env=EnvConfig(id=env, max_episode_steps=60),
        # Only the settings this architecture reads: one it ignores is refused.
        policy=PolicyConfig(arch=arch, squash=squash,
                            **({} if arch == "linear" else {"hidden": 8}),
                            **({"rotations": (12,)} if arch == "kama" else {})),
        strategy=StrategyConfig(directions=2, top=1),
        run=RunConfig(seed=seed, iterations=iterations, eval_every=1, eval_episodes=2,
                      noise_table_size=100_000))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, (env, arch, squash) in CASES.items():
        Trainer(config(env, arch, squash), root / name).run()
        out[name] = root / name
    Trainer(config(seed=1), root / "kama-seed1").run()
    out["kama-seed1"] = root / "kama-seed1"
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# eval -----------------------------------------------------------------------------------------

def test_eval_repeats_the_trainers_evaluation_and_changes_nothing(runs):
    run_dir = runs["kama"]
    before = {p.name: digest(p) for p in (run_dir / "checkpoints").iterdir()}
    _, meta = checkpoint.load(run_dir / "checkpoints", "best")
    res = invoke("eval", run_dir, "--episodes", 2, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # Same seeds, same θ, same frozen statistics: exactly the return the trainer logged.
    assert out["return_mean"] == meta["best_eval"]
    assert out["iteration"] == meta["iteration"] and out["checkpoint"] == "best"
    other = json.loads(invoke("eval", run_dir, "--episodes", 3, "--seed", 5, "--checkpoint",
                              "latest", "--json").stdout)
    assert len(other["returns"]) == 3 and other["checkpoint"] == "latest"
    text = invoke("eval", run_dir, "--episodes", 2).output
    assert f"return {out['return_mean']:.2f} ± {out['return_std']:.2f} over 2 episodes" in text
    assert {p.name: digest(p) for p in (run_dir / "checkpoints").iterdir()} == before


def test_eval_as_a_real_subprocess(runs):
    proc = subprocess.run([sys.executable, "-m", "es_compact_cli", "eval", str(runs["linear"]),
                           "--episodes", "2", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["returns"]) == 2


# export ---------------------------------------------------------------------------------------

CLEAN_RUN = """
import runpy, sys
import numpy as np
m = runpy.run_path(sys.argv[1])
policy = m["load_policy"](sys.argv[2])
np.save(sys.argv[4], np.array([m["act"](policy, o) for o in np.load(sys.argv[3])]))
heavy = {"es_compact", "es_compact_cli", "numba", "scipy", "gymnasium", "mujoco", "pandas"}
loaded = heavy & {k.split(".")[0] for k in sys.modules}
assert not loaded, f"the runner imported {sorted(loaded)}"
"""


@pytest.mark.parametrize("case", list(CASES))
def test_exported_runner_matches_policy_forward(runs, tmp_path, case):
    npz = tmp_path / "policy.npz"
    res = invoke("export", runs[case], "-o", npz)
    assert res.exit_code == 0, res.output
    runner = tmp_path / RUNNER_NAME
    assert runner.read_text() == STANDALONE_SOURCE
    run = load_run(runs[case], "best")
    with np.load(npz, allow_pickle=False) as f:  # no object arrays anywhere
        stored = {k: f[k] for k in f.files}
    kinds = [layer.kind for layer in run.policy.layers]
    for i, kind in enumerate(kinds):  # structured parameters as stored, not dense matrices
        names = {k.split(".", 1)[1] for k in stored if k.startswith(f"layer{i}.")}
        expected = set(run.policy.layers[i].blocks()) | ({"planes"} if kind == "kama" else set())
        assert names == expected
        assert kind == "dense" or "W" not in names
    rng = np.random.default_rng(1)
    obs = run.obs_mean + run.obs_std * rng.standard_normal((300, run.policy.obs_dim))
    np.save(tmp_path / "obs.npy", obs)
    # A clean interpreter: isolated mode, only numpy may be imported.
    subprocess.run([sys.executable, "-I", "-c", CLEAN_RUN, str(runner), str(npz),
                    str(tmp_path / "obs.npy"), str(tmp_path / "act.npy")], check=True,
                   cwd=tmp_path, timeout=60)
    subprocess.run([sys.executable, "-I", str(runner), str(npz), str(tmp_path / "obs.npy"),
                    str(tmp_path / "act_main.npy")], check=True, cwd=tmp_path, timeout=60)
    got, got_main = np.load(tmp_path / "act.npy"), np.load(tmp_path / "act_main.npy")
    want = run.policy.forward(run.theta, obs, run.obs_mean, run.obs_std)
    np.testing.assert_array_equal(got, got_main)
    if run.policy.action.discrete:
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(want)) > 1, "all observations chose one action: vacuous"
    else:
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-10
        low, high = run.policy.action.low, run.policy.action.high
        inside = ((want > low) & (want < high)).mean()
        assert inside > 0.5, f"only {inside:.0%} of actions off the bounds: vacuous"


# plot -----------------------------------------------------------------------------------------

def test_plot_groups_seeds(runs, tmp_path):
    out = tmp_path / "curves.png"
    res = invoke("plot", runs["kama"], runs["kama-seed1"], runs["linear"], "-o", out)
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "kama / ars: 2 runs" in res.output and "linear / ars: 1 run," in res.output
    res = invoke("plot", runs["kama"], "-o", out, "--column", "train_return_max")
    one_line_error(res, "already exists", "--overwrite")
    res = invoke("plot", runs["kama"], "-o", out, "--column", "train_return_max", "--overwrite")
    assert res.exit_code == 0, res.output


# bad input ------------------------------------------------------------------------------------

def test_bad_input_is_one_line_and_overwrites_nothing(runs, tmp_path):
    one_line_error(invoke("eval", tmp_path), "holds no run")
    one_line_error(invoke("export", tmp_path, "-o", tmp_path / "p.npz"), "holds no run")
    one_line_error(invoke("plot", tmp_path, "-o", tmp_path / "c.png"), "holds no run")
    one_line_error(invoke("eval", runs["kama"], "--checkpoint", "middle"), "unknown checkpoint",
                   "best or latest")
    one_line_error(invoke("plot", runs["kama"], "-o", tmp_path / "c.png", "--column", "nope"),
                   "no column 'nope'")
    one_line_error(invoke("plot", runs["kama"], "-o", tmp_path / "c.xyz"), "cannot write")
    one_line_error(invoke("export", runs["kama"], "-o", tmp_path / "p.txt"), ".npz")
    # An existing output is never replaced without --overwrite.
    existing = tmp_path / "policy.npz"
    existing.write_bytes(b"precious")
    one_line_error(invoke("export", runs["kama"], "-o", existing), "already exists")
    assert existing.read_bytes() == b"precious"
    video = tmp_path / "v.mp4"
    video.write_bytes(b"precious")
    one_line_error(invoke("eval", runs["kama"], "--video", video), "already exists")
    assert video.read_bytes() == b"precious"
    # A damaged copy of a run: truncated best, then no best at all.
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs["kama"], bad)
    npz = checkpoint.npz_path(bad / "checkpoints", "best")
    npz.write_bytes(npz.read_bytes()[:100])
    one_line_error(invoke("eval", bad), "truncated or corrupted")
    one_line_error(invoke("export", bad, "-o", tmp_path / "q.npz"), "truncated or corrupted")
    assert not (tmp_path / "q.npz").exists()
    (bad / "checkpoints" / "best.json").unlink()
    one_line_error(invoke("eval", bad, "--checkpoint", "best"), "no checkpoint 'best'",
                   "it has latest")
    assert invoke("eval", bad, "--checkpoint", "latest", "--episodes", 1).exit_code == 0


# video ----------------------------------------------------------------------------------------

PROBE = """
import mujoco
ctx = mujoco.GLContext(64, 64)
ctx.make_current()
ctx.free()
"""


def gl_works(backend: str) -> str:
    """'' if MuJoCo can make an offscreen context with this backend, else why not."""
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("PYOPENGL_PLATFORM", None)
    p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=60)
    return "" if p.returncode == 0 else (p.stderr.strip().splitlines() or ["?"])[-1]


@pytest.mark.parametrize("backend", ["egl", "osmesa"])
def test_video_is_really_rendered(runs, tmp_path, monkeypatch, backend):
    why = gl_works(backend)
    if why:
        pytest.skip(f"MuJoCo cannot open a {backend} context here ({why}); install "
                    f"{'libegl1' if backend == 'egl' else 'libosmesa6'}")
    import imageio.v2 as imageio

    monkeypatch.setenv("MUJOCO_GL", backend)
    out = tmp_path / "episode.mp4"
    res = invoke("eval", runs["kama"], "--episodes", 1, "--video", out, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    v = info["video"]
    assert v["backend"] == backend and v["frames"] == v["steps"] + 1
    assert v["return"] == info["returns"][0]  # rendering does not change the episode
    with imageio.get_reader(out) as reader:
        frames = np.array([np.asarray(f) for f in reader])
    assert frames.shape == (v["frames"], v["height"], v["width"], 3)
    assert min(f.std() for f in frames) > 5.0  # a scene, not a blank frame
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.1  # it moves
    assert not list(tmp_path.glob(".*partial*"))


def test_video_without_a_working_backend_names_what_to_install(runs, tmp_path):
    # GLFW needs a display; without one it is a real, unavailable backend.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = "glfw"
    out = tmp_path / "v.mp4"
    p = subprocess.run([sys.executable, "-m", "es_compact_cli", "eval", str(runs["linear"]),
                        "--episodes", "1", "--video", str(out)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    err = [ln for ln in lines if ln.startswith("error: ")]
    assert len(err) == 1 and err[0] == lines[-1], p.stderr
    for word in ("MUJOCO_GL=glfw cannot render", "libegl1", "libosmesa6"):
        assert word in err[0]
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_video_without_the_video_extra_names_it(runs, tmp_path, monkeypatch):
    for module in ("imageio", "imageio_ffmpeg"):  # as if not installed: import fails
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "v.mp4"
    res = invoke("eval", runs["linear"], "--episodes", 1, "--video", out)
    one_line_error(res, "needs the video extra", "pip install 'es-compact[video]'")
    assert not out.exists()


def test_a_cartpole_video_without_pygame_names_pygame_not_egl(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    out = tmp_path / "v.mp4"
    res = invoke("eval", runs["dense-discrete"], "--episodes", 1, "--video", out)
    one_line_error(res, "recording CartPole-v1 needs pygame",
                   "pip install 'gymnasium[classic-control]'")
    assert "EGL" not in res.output and "MUJOCO_GL" not in res.output
    assert not out.exists()


def test_the_recording_child_reports_a_missing_package_not_a_gl_failure(runs, tmp_path):
    """Past the parent's check (an environment it cannot classify, say), the child's missing
    package is its error (exit 1), not a reason to try the next OpenGL backend."""
    (tmp_path / "pygame.py").write_text("raise ImportError('no pygame here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, "-m", "es_compact.video", str(runs["dense-discrete"]),
                        "best", str(tmp_path / "v.mp4"), "1"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1, p.stderr  # GL_UNAVAILABLE (3) would try the next backend
    assert p.stderr.strip().splitlines()[-1].startswith("DependencyNotInstalled: pygame")


@pytest.mark.parametrize("command", [
    ("train", "--env", "Hopper-v4", "--iterations", "1", "--out", "{blocked}/run"),
    ("experiment", "rl", "--env", "Hopper-v4", "--runs", "{blocked}/runs"),
    ("experiment", "table1", "--out", "{blocked}/results"),
])
def test_output_path_the_filesystem_refuses_is_one_line_error(tmp_path, command):
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"precious")
    res = invoke(*(a.format(blocked=blocked) for a in command))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(f"error: Not a directory: {blocked}/"), last
    assert blocked.read_bytes() == b"precious"


# bad input found before the work ---------------------------------------------------------------


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """One tiny serial run, for the tests below that need a run but not every architecture."""
    import dataclasses

    cfg = config()
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, backend="serial"))
    run_dir = tmp_path_factory.mktemp("one") / "run"
    Trainer(cfg, run_dir).run()
    return run_dir


@pytest.mark.parametrize("video, words", [
    ("{tmp}/p.sh/x.mp4", ["p.sh is not a directory"]),
    ("/proc/x.mp4", ["cannot write under /proc"]),
    ("", ["the video path is empty"]),
    ("{tmp}/v.avi", ["the video path must end in .mp4"]),
])
def test_eval_video_path_is_checked_before_the_episodes(one_run, tmp_path, video, words):
    (tmp_path / "p.sh").write_bytes(b"precious")
    res = invoke("eval", one_run, "--episodes", 2, "--video", video.format(tmp=tmp_path))
    one_line_error(res, *words)  # one line: no "recording episode 0" and no return printed
    assert (tmp_path / "p.sh").read_bytes() == b"precious"


def test_eval_with_more_episodes_than_could_ever_run_is_one_line_error(one_run):
    res = invoke("eval", one_run, "--episodes", 10**20)
    one_line_error(res, "Invalid value for '--episodes'", "1<=x<=1000000")


@pytest.mark.parametrize("episodes, seed, match", [
    (2.5, None, "episodes must be an integer, got 2.5"),
    ("3", None, "episodes must be an integer, got '3'"),
    (None, None, "episodes must be an integer, got None"),
    (0, None, "--episodes must be positive, got 0"),
    (1, -1, "seed must be None or an integer >= 0, got -1"),
    (1, 2.5, "seed must be None or an integer >= 0, got 2.5"),
])
def test_evaluate_checks_episodes_and_seed(one_run, episodes, seed, match):
    from es_compact.errors import ConfigError
    from es_compact.evaluate import evaluate

    with pytest.raises(ConfigError, match=match):
        evaluate(load_run(one_run), episodes, seed)


def test_export_under_a_file_names_the_file(one_run, tmp_path):
    from es_compact.errors import ConfigError
    from es_compact.export import export

    blocked = tmp_path / "p.sh"
    blocked.write_bytes(b"precious")
    with pytest.raises(ConfigError, match=f"cannot write under {blocked}: {blocked} is not a "
                                          "directory"):
        export(load_run(one_run), blocked / "x.npz")
    one_line_error(invoke("export", one_run, "-o", blocked / "x.npz"), "is not a directory")
    assert blocked.read_bytes() == b"precious"


def test_plot_counts_a_run_given_twice_once(one_run, tmp_path, monkeypatch):
    monkeypatch.chdir(one_run.parent)
    res = invoke("plot", one_run, one_run, "run", "./run/", "-o", tmp_path / "c.png")
    assert res.exit_code == 0, res.output
    assert "kama / ars: 1 run, final" in res.output and "±" not in res.output


def test_a_failed_recording_says_why(one_run, tmp_path):
    """The child's real ffmpeg failure: the error line is ffmpeg's, not imageio's header."""
    from es_compact.video import _failure_line

    why = gl_works("egl")
    if why:
        pytest.skip(f"MuJoCo cannot open an egl context here ({why})")
    blocked = tmp_path / "p.sh"
    blocked.write_bytes(b"precious")
    env = {**os.environ, "MUJOCO_GL": "egl"}
    p = subprocess.run([sys.executable, "-m", "es_compact.video", str(one_run), "best",
                        str(blocked / "x.mp4"), "1"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 1, p.stderr
    assert "FFMPEG STDERR OUTPUT:" in p.stderr  # imageio's block the old message ended on
    assert _failure_line(p.stderr) == "Error opening output files: Not a directory"
