"""Environments: resolve an id (a gymnasium id or a ``module:Class`` entry point) and build it.

This is the only module that creates environments; rollouts step what it returns.

The trust model: a run directory names its environment, and ``eval``, ``export`` and
``--resume`` of a run directory someone else made build it. A ``module:Class`` id imports that
module (running its code, as importing it would) and constructs ``Class`` only when it is a
``gymnasium.Env`` subclass: anything else the module holds (``os:abort``, ``json:dumps``, a
class that is no environment) is refused before it is called. A registered gymnasium id is
built by gymnasium from its registry.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import signal
import threading
import warnings

from es_compact.errors import ConfigError


def _quiet_gymnasium() -> None:
    # Gymnasium warns that the v4 MuJoCo environments are superseded; the papers use v4.
    warnings.filterwarnings("ignore", message=".*is out of date.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="gymnasium")
    try:
        import gymnasium as gym

        gym.logger.min_level = 40  # errors only
    except ImportError:  # pragma: no cover - gymnasium is a hard dependency
        pass
    try:
        import mujoco

        # MuJoCo prints its warnings (e.g. the v4 models' deprecated 'settotalmass') to stderr
        # and to MUJOCO_LOG.TXT in the working directory; send them to logging instead.
        mujoco.set_mju_user_warning(_mujoco_warning)
    except (ImportError, AttributeError):
        pass


def _mujoco_warning(message: str) -> None:
    logging.getLogger("es_compact.mujoco").debug("MuJoCo: %s", message)


def known_env_ids() -> list[str]:
    import gymnasium as gym

    return sorted(gym.registry.keys())


def make_env(env_id: str, **kwargs):
    """A gymnasium environment from a registered id or a ``module:Class`` entry point.

    Raises ConfigError naming close ids when the id is unknown. Ctrl-C or SIGTERM during the
    build takes effect when the build returns (see :func:`signals_deferred`)."""
    with signals_deferred():
        return _make_env(env_id, **kwargs)


@contextlib.contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold SIGINT and SIGTERM while MuJoCo loads a model, then act on them.

    MuJoCo calls our Python warning callback (_mujoco_warning) from C++ while loading a v4
    model; a KeyboardInterrupt raised there cannot unwind through MuJoCo and the process
    aborts ("Fatal Python error: Aborted") instead of stopping cleanly. Inside this block the
    handlers only record a signal; on leaving it the original handler runs. Signal handlers
    can be replaced only in the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        if callable(previous[s]):  # SIG_IGN / SIG_DFL stay as they are
            signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(caught):
            previous[s](s, None)


def _make_env(env_id: str, **kwargs):
    import gymnasium as gym

    _quiet_gymnasium()
    if ":" in env_id and env_id.split(":", 1)[0] not in ("", None):
        module_name, _, attr = env_id.partition(":")
        if attr and "-v" not in attr:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigError(f"cannot import environment module {module_name!r}: {exc}") \
                    from exc
            cls = getattr(module, attr, None)
            if cls is None:
                raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
            # Checked before anything is called: a run directory may name any callable.
            if not isinstance(cls, type):
                raise ConfigError(f"{env_id} is a {type(cls).__name__}, not an environment "
                                  "class")
            if not issubclass(cls, gym.Env):
                raise ConfigError(f"{env_id} is a class that does not derive from "
                                  "gymnasium.Env, not an environment class")
            limit = kwargs.pop("max_episode_steps", None)
            try:
                env = cls(**kwargs)
            except Exception as exc:  # the user's constructor: any failure is a bad --env
                raise ConfigError(f"could not build environment {env_id}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            _check_env(env, env_id)
            if limit is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=limit)
            return env
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, known_env_ids(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown environment id {env_id!r}{hint}")
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"environment {env_id} needs a missing dependency: {exc}") from exc


def _check_env(env, env_id: str) -> None:
    """ConfigError unless env is a gymnasium.Env with both spaces (gymnasium.Env itself
    declares them but sets neither) and reset/step: what rollouts use."""
    import gymnasium as gym

    if not isinstance(env, gym.Env):
        raise ConfigError(f"{env_id} did not build a gymnasium.Env")
    for name in ("observation_space", "action_space"):
        if not isinstance(getattr(env, name, None), gym.spaces.Space):
            raise ConfigError(f"{env_id} built an environment without a gymnasium "
                              f"{name}")
    for name in ("reset", "step"):
        if not callable(getattr(env, name, None)):
            raise ConfigError(f"{env_id} built an environment without a {name} method")


def env_spaces(env_id: str):
    """(observation_space, action_space) of an environment, building and closing it once."""
    env = make_env(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
