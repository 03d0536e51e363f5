"""Environments: resolve an id (a gymnasium id or a ``module:Class`` entry point) and build it.

This is the only module that creates environments; rollouts step what it returns.

The trust model: a run directory names its environment, and ``eval``, ``export`` and
``--resume`` of a run directory someone else made build it. A ``module:Class`` id imports that
module (running its code, as importing it would) and constructs ``Class`` only when it is a
``gymnasium.Env`` subclass: anything else the module holds (``os:abort``, ``json:dumps``, a
class that is no environment) is refused before it is called. A registered gymnasium id is
built by gymnasium from its registry.

Environment settings (``EnvConfig.kwargs``) are checked against the constructor's signature
before it runs: an unknown keyword is one line naming those it accepts. An id gymnasium no
longer builds itself (the mujoco-py v2 and v3 MuJoCo ids, moved to gymnasium-robotics) or one
whose package is missing (Atari's ale-py, Box2D) is one line naming what to install; where
that package is installed, it is imported, which registers its ids.

gymnasium's "out of date" warning for an id with a newer version is silenced here, where every
worker process builds environments (each would print it); :func:`outdated` gives its text, and
the CLI prints it once, for ids the user chose (not for the paper experiments' v4 runs).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import logging
import signal
import threading
import warnings

from es_compact.errors import ConfigError


def _quiet_gymnasium() -> None:
    # Gymnasium warns that the v4 MuJoCo environments are superseded, once in every process
    # that builds one: the CLI says so once instead (outdated()); the papers use v4.
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


NAMESPACES = {"ALE": ("ale_py", "ale-py", "an Atari environment")}
"""Namespaces of ids that a package registers when imported: (module, pip package, what)."""
ROBOTICS = ("gymnasium_robotics", "gymnasium-robotics mujoco-py")
"""Where gymnasium >= 1.2 moved the mujoco-py (v2, v3) MuJoCo ids: module, pip packages."""
MADE_BY_ES_COMPACT = ("max_episode_steps", "render_mode")
"""make_env keywords that are gymnasium.make's or the renderer's, not the user's settings."""


def _parse_id(env_id: str):
    """(namespace, name, version) of a registry id, or None when it is not one."""
    from gymnasium.envs.registration import parse_env_id

    try:
        return parse_env_id(env_id)
    except Exception:  # gymnasium.error.Error for a malformed id
        return None


def outdated(env_id: str) -> str | None:
    """gymnasium's notice for a registered id with a newer version (the MuJoCo v4 ids), in
    its own words: 'The environment HalfCheetah-v4 is out of date. You should consider
    upgrading to version `v5`.'; None for a current id or a module:Class."""
    import gymnasium as gym
    from gymnasium.envs.registration import find_highest_version

    if env_id not in gym.registry or (parsed := _parse_id(env_id)) is None:
        return None
    ns, name, version = parsed
    latest = find_highest_version(ns, name)
    if version is None or latest is None or latest <= version:
        return None
    return (f"The environment {env_id} is out of date. You should consider upgrading to "
            f"version `v{latest}`.")


def _import_provider(module: str) -> bool:
    """Import module, which registers its ids with gymnasium, if it is installed."""
    if importlib.util.find_spec(module) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception as exc:  # installed but broken (a missing dependency of its own)
        raise ConfigError(f"cannot import {module}: {type(exc).__name__}: "
                          f"{_one_line(exc)}") from None
    return True


def _moved_away(spec) -> bool:
    """Whether the registry holds the id only to say it moved (gymnasium's v2 and v3)."""
    return getattr(spec.entry_point, "__name__", "") == "_raise_mujoco_py_error"


def _spec(env_id: str):
    """The registry's spec of env_id, importing the package that registers it where one is
    installed; ConfigError naming the package when it is needed and missing, None when
    nothing registers the id."""
    import gymnasium as gym
    from gymnasium.envs.registration import find_highest_version

    spec = gym.registry.get(env_id)
    parsed = _parse_id(env_id)
    if spec is not None and _moved_away(spec):
        if _import_provider(ROBOTICS[0]):
            spec = gym.registry.get(env_id)
        if spec is None or _moved_away(spec):
            latest = find_highest_version(*parsed[:2]) if parsed else None
            instead = f", or use {parsed[1]}-v{latest}" if latest else ""
            raise ConfigError(f"{env_id} is a mujoco-py environment, which gymnasium "
                              f"{gym.__version__} no longer includes: pip install "
                              f"{ROBOTICS[1]} (mujoco-py needs MuJoCo 2.1){instead}")
    if spec is None and parsed is not None and parsed[0] in NAMESPACES:
        module, package, what = NAMESPACES[parsed[0]]
        if not _import_provider(module):
            raise ConfigError(f"{env_id} is {what} of {package}, which is not installed: "
                              f"pip install {package}")
        spec = gym.registry.get(env_id)
    return spec


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _keywords(fn) -> tuple[list[str], bool]:
    """(the keyword parameters of fn, whether it also takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: it may take anything
        return [], True
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return ([p.name for p in params if p.kind in kinds],
            any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params))


def _accepted(creator) -> list[str] | None:
    """The keywords a constructor takes, following **kwargs up the class's bases (MuJoCo's
    width, height, camera_id, ... of MujocoEnv, whose required arguments the subclass gives);
    None when it takes any keyword (a **kwargs that reaches no signature that ends it)."""
    names, open_ = _keywords(creator)
    if open_ and isinstance(creator, type):
        for base in creator.__mro__[1:]:
            init = vars(base).get("__init__")
            if init is None:
                continue
            if base is object:
                break
            try:
                params = inspect.signature(init).parameters.values()
            except (TypeError, ValueError):
                break
            names += [p.name for p in params if p.default is not p.empty
                      and p.kind is not p.VAR_KEYWORD and p.name not in names]
            open_ = any(p.kind is p.VAR_KEYWORD for p in params)
            if not open_:
                break
    return None if open_ else [n for n in names if n not in MADE_BY_ES_COMPACT]


def accepted_kwargs(env_id: str) -> list[str] | None:
    """The settings (constructor keywords) env_id's environment accepts, in its signature's
    order; None when it accepts any or cannot be told without building it."""
    from gymnasium.envs.registration import load_env_creator

    if _is_entry_point(env_id):
        creator = getattr(importlib.import_module(env_id.partition(":")[0]),
                          env_id.partition(":")[2], None)
    else:
        spec = _spec(env_id)
        if spec is None:
            return None
        try:
            creator = (load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str)
                       else spec.entry_point)
        except Exception:  # gymnasium.make will say what is wrong with it
            return None
    return None if creator is None else _accepted(creator)


def check_kwargs(env_id: str, kwargs: dict) -> None:
    """ConfigError, before anything is built, for a setting the environment does not take:
    'HalfCheetah-v5 has no setting frame_skp (did you mean frame_skip?); it accepts
    xml_file, frame_skip, ...'."""
    settings = [k for k in kwargs if k not in MADE_BY_ES_COMPACT]
    if not settings:
        return
    accepted = accepted_kwargs(env_id)
    if accepted is None:
        return
    unknown = [k for k in settings if k not in accepted]
    if unknown:
        close = [c for k in unknown for c in difflib.get_close_matches(k, accepted, n=1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{env_id} has no setting {', '.join(unknown)}{hint}; it accepts "
                          f"{', '.join(accepted) if accepted else 'none'}")


def _is_entry_point(env_id: str) -> bool:
    module, _, attr = env_id.partition(":")
    return bool(module) and bool(attr) and "-v" not in attr


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
        if _is_entry_point(env_id):
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
            check_kwargs(env_id, kwargs)
            try:
                env = cls(**kwargs)
            except Exception as exc:  # the user's constructor: any failure is a bad --env
                raise ConfigError(f"could not build environment {env_id}: "
                                  f"{type(exc).__name__}: {exc}") from exc
            _check_env(env, env_id)
            if limit is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps=limit)
            return env
    if _spec(env_id) is None:
        buildable = [i for i in known_env_ids() if not _moved_away(gym.registry[i])]
        close = difflib.get_close_matches(env_id, buildable, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown environment id {env_id!r}{hint}")
    check_kwargs(env_id, kwargs)
    settings = {k: v for k, v in kwargs.items() if k not in MADE_BY_ES_COMPACT}
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"environment {env_id} needs a missing dependency: "
                          f"{_one_line(exc)}") from exc
    except ImportError as exc:  # an entry point importing a package that is not installed
        raise ConfigError(f"environment {env_id} needs a package that is not installed: "
                          f"{type(exc).__name__}: {_one_line(exc)}") from exc
    except Exception as exc:
        if not settings:
            raise
        # A value the constructor refuses (a missing xml_file, a keyword given twice): the
        # user's setting, so one line naming it.
        given = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise ConfigError(f"could not build {env_id} with {given}: {type(exc).__name__}: "
                          f"{_one_line(exc)}") from exc


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


def env_spaces(env_id: str, **kwargs):
    """(observation_space, action_space) of an environment built with kwargs (its settings:
    some change the observation), building and closing it once."""
    env = make_env(env_id, **kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
