"""Rollout backends behind one interface: serial, multiprocessing and Ray.

The registry: :data:`BACKENDS` maps ``run.backend`` to its class and :func:`make_backend` is a
lookup in it (each class builds itself from the run's settings with ``from_settings``). Ray is
imported only when a Ray backend starts.
"""

from __future__ import annotations

from es_compact.backends.base import Backend
from es_compact.backends.multiprocess import MultiprocessBackend
from es_compact.backends.ray_backend import RayBackend
from es_compact.backends.serial import SerialBackend
from es_compact.errors import ConfigError

BACKENDS: dict[str, type[Backend]] = {"serial": SerialBackend, "mp": MultiprocessBackend,
                                      "ray": RayBackend}
"""run.backend name -> Backend class."""


def make_backend(name: str, workers: int = 1, **settings) -> Backend:
    """The backend `name` for `workers` workers; settings: ``address`` and ``dashboard``
    (Ray)."""
    try:
        cls = BACKENDS[name]
    except (KeyError, TypeError):
        names = [repr(n) for n in BACKENDS]
        raise ConfigError(f"unknown backend {name!r}; use {', '.join(names[:-1])} or "
                          f"{names[-1]}") from None
    return cls.from_settings(workers, **settings)


__all__ = ["BACKENDS", "Backend", "make_backend"]
