"""Environments: resolve an id (a gymnasium id or a ``module:Class`` entry point) and build it.

This is the only module that creates environments; rollouts step what it returns.
"""

from __future__ import annotations

import difflib
import importlib
import logging
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

    Raises ConfigError naming close ids when the id is unknown."""
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
            if not callable(cls):
                raise ConfigError(f"{env_id} is a {type(cls).__name__}, not an environment "
                                  "class")
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
