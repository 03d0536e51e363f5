"""Record one evaluation episode of a trained run as an mp4, with headless MuJoCo rendering.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is first imported, and a failed
backend cannot be swapped for another in the same process. So the episode is rendered in a
child process (``python -m es_compact.video``), once per candidate backend: the one in
``MUJOCO_GL`` if the user set it, otherwise EGL, then OSMesa. The child exits with
``GL_UNAVAILABLE`` when it cannot render a first frame, and the parent tries the next backend;
when none works, :class:`RenderError` names the system packages to install.

Frames are encoded with imageio's ffmpeg plugin (the ``imageio-ffmpeg`` wheel ships ffmpeg) to a
temporary file renamed into place, so a failed recording never leaves a partial video. Both are
the optional extra ``es-compact[video]``; :func:`check_recording` says so before any episode
runs, and names pygame for the gymnasium environments that draw with it (CartPole, ...), whose
frames need no OpenGL at all.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from es_compact.envs import make_env
from es_compact.errors import ConfigError, ESCompactError
from es_compact.evaluate import load_run
from es_compact.results import check_output_file
from es_compact.run_dir import load_run_config

HEADLESS_BACKENDS = ("egl", "osmesa")
GL_UNAVAILABLE = 3
VIDEO_EXTRA = "pip install 'es-compact[video]'"
PYGAME_RENDERED = {"gymnasium.envs.classic_control": "classic-control",
                   "gymnasium.envs.box2d": "box2d", "gymnasium.envs.toy_text": "toy-text"}
"""gymnasium's environment families that render through pygame, and their gymnasium extra."""
INSTALL_HINT = ("install EGL (Debian/Ubuntu: apt-get install libegl1 libgl1; with an NVIDIA "
                "driver its libEGL works too) or OSMesa (apt-get install libosmesa6), or set "
                "MUJOCO_GL to a backend that works here")


class RenderError(ESCompactError):
    """No OpenGL backend can render, or the video cannot be written."""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def _failure_line(text: str) -> str:
    """The line of a failed child's stderr that says what went wrong. imageio ends its ffmpeg
    errors with the command and an 'FFMPEG STDERR OUTPUT:' header that is empty when ffmpeg
    wrote to the inherited stderr itself: then ffmpeg's own last line, printed before the
    Python error (a bare 'Broken pipe'), is the one that names the cause."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if "FFMPEG COMMAND:" in lines:
        at = lines.index("FFMPEG COMMAND:")
        captured = lines[lines.index("FFMPEG STDERR OUTPUT:") + 1:] \
            if "FFMPEG STDERR OUTPUT:" in lines else []
        own = lines[:at - 1]  # lines[at - 1] is the Python error that carries the block
        if captured or own:
            return (captured or own)[-1]
    return _last_line(text)


def check_video_path(out: str | Path) -> Path:
    """OUT as a Path after checking it names an .mp4 file in a directory that exists (it is
    created if missing) and can be written: before any episode runs, so a bad path costs
    nothing."""
    if not str(out):
        raise ConfigError("the video path is empty: give a file name ending in .mp4")
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ConfigError(f"the video path must end in .mp4, got {out}")
    return check_output_file(out)


def _entry_module(env_id: str) -> str:
    """The module an environment's class comes from ('' when it cannot be told without
    building it)."""
    if ":" in env_id and "-v" not in env_id.partition(":")[2]:
        return env_id.partition(":")[0]  # module:Class
    import gymnasium as gym

    entry = gym.registry[env_id].entry_point if env_id in gym.registry else None
    if isinstance(entry, str):
        return entry.partition(":")[0]
    return getattr(entry, "__module__", "") or ""


def check_recording(env_id: str) -> None:
    """RenderError, before any episode runs, when recording env_id lacks a package: the video
    extra (imageio, imageio-ffmpeg), or pygame for an environment drawn with it."""
    missing = [m for m in ("imageio", "imageio_ffmpeg") if importlib.util.find_spec(m) is None]
    if missing:
        raise RenderError(f"recording a video needs the video extra ({' and '.join(missing)} "
                          f"missing): {VIDEO_EXTRA}")
    module = _entry_module(env_id)
    family = next((extra for prefix, extra in PYGAME_RENDERED.items()
                   if module == prefix or module.startswith(prefix + ".")), None)
    if family is not None and importlib.util.find_spec("pygame") is None:
        raise RenderError(f"recording {env_id} needs pygame, which draws its frames: "
                          f"pip install 'gymnasium[{family}]'")


def record(run_dir: str | Path, name: str, out: str | Path, env_seed: int,
           timeout: float = 600.0, env_id: str | None = None,
           env_kwargs: dict | None = None) -> dict:
    """Render one noiseless episode of checkpoint NAME into OUT (.mp4); env_id and env_kwargs
    as for evaluate.load_run (another environment of the run's shapes).

    Returns {frames, steps, return, backend, width, height, fps}."""
    out = check_video_path(out)
    check_recording(env_id or load_run_config(run_dir).env.id)
    where = json.dumps({"env_id": env_id, "env_kwargs": env_kwargs or {}})
    user = os.environ.get("MUJOCO_GL")
    backends = (user,) if user else HEADLESS_BACKENDS
    failures = []
    for backend in backends:
        env = {**os.environ, "MUJOCO_GL": backend}
        env.pop("PYOPENGL_PLATFORM", None)  # MuJoCo sets it to match MUJOCO_GL
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "es_compact.video", str(run_dir), name, str(out),
                 str(int(env_seed)), where], env=env, capture_output=True, text=True,
                timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RenderError(f"recording with MUJOCO_GL={backend} took over {timeout:.0f} s; "
                              "gave up") from None
        if proc.returncode == 0:
            return {**json.loads(_last_line(proc.stdout)), "backend": backend}
        if proc.returncode != GL_UNAVAILABLE:
            raise RenderError(f"recording failed: {_failure_line(proc.stderr)}")
        failures.append(f"{backend}: {_last_line(proc.stderr)}")
    chosen = f"MUJOCO_GL={user} cannot render" if user else "neither EGL nor OSMesa can render"
    raise RenderError(f"{chosen} ({'; '.join(failures)}); {INSTALL_HINT}")


def _render_episode(run_dir: str, name: str, out: str, seed: int, env_id: str | None = None,
                    env_kwargs: dict | None = None) -> dict:
    """The child's work; MUJOCO_GL is already set. Raises _NoGL if no frame can be drawn."""
    import gymnasium as gym
    import imageio.v2 as imageio
    import numpy as np

    try:
        import mujoco  # noqa: F401  (reads MUJOCO_GL on import)
    except Exception as exc:
        raise _NoGL(f"{type(exc).__name__}: {exc}") from exc
    run = load_run(run_dir, name, env_id, env_kwargs)
    kwargs = {**run.config.env.make_kwargs(), "render_mode": "rgb_array"}
    try:
        env = make_env(run.config.env.id, **kwargs)
        obs, _ = env.reset(seed=seed)
        frame = env.render()
    except gym.error.DependencyNotInstalled:  # pygame, say: no backend would help
        raise
    except Exception as exc:  # any other failure before the first frame is the GL backend's
        raise _NoGL(f"{type(exc).__name__}: {exc}") from exc
    if frame is None or np.asarray(frame).ndim != 3:
        raise _NoGL("render() returned no RGB frame")
    actor = run.policy.actor(run.theta, run.obs_mean, run.obs_std)
    act = np.empty(run.policy.action.dim)
    discrete = run.policy.action.discrete
    fps = int(env.metadata.get("render_fps") or 30)
    tmp = Path(out).with_name(f".{Path(out).name}.partial.mp4")
    total, steps, frames = 0.0, 0, 0
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7,
                                macro_block_size=1) as writer:
            while True:
                writer.append_data(np.asarray(frame, dtype=np.uint8))
                frames += 1
                actor.raw(np.asarray(obs, dtype=np.float64).reshape(-1), act)
                obs, reward, terminated, truncated, _ = env.step(
                    int(np.argmax(act)) if discrete else act)
                total += float(reward)
                steps += 1
                frame = env.render()
                if terminated or truncated:
                    writer.append_data(np.asarray(frame, dtype=np.uint8))
                    frames += 1
                    break
        os.replace(tmp, out)
    finally:
        env.close()  # OSMesa crashes at interpreter exit if the context is left open
        if tmp.exists():
            tmp.unlink()
    h, w = np.asarray(frame).shape[:2]
    return {"frames": frames, "steps": steps, "return": total, "width": int(w),
            "height": int(h), "fps": fps}


class _NoGL(Exception):
    pass


def _main(argv: list[str]) -> int:
    run_dir, name, out, seed, *where = argv  # where: {env_id, env_kwargs} as JSON, optional
    try:
        result = _render_episode(run_dir, name, out, int(seed),
                                 **(json.loads(where[0]) if where else {}))
    except _NoGL as exc:
        print(exc, file=sys.stderr)
        return GL_UNAVAILABLE
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
