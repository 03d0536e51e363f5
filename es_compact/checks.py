"""Argument checks shared by the API's entry points (so_d, features, kernels, givens,
evaluate, backends): a wrong type fails at once as a ConfigError naming the argument, not deep
inside numpy, and is never silently converted (int() would truncate 2.5 and accept '3').

Config dataclasses have their own checks (config.py); they turn NumPy scalars into Python
ones first, as json cannot write NumPy scalars into config.json."""

from __future__ import annotations

import numpy as np

from es_compact.errors import ConfigError


def is_integer(value) -> bool:
    """An int or numpy integer, not a bool (True is an int to Python but never a count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def integer(name: str, value, minimum: int | None = None) -> int:
    """value as an int, or ConfigError "NAME must be an integer, got VALUE" (or "NAME must be
    at least MINIMUM, got VALUE")."""
    if not is_integer(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return int(value)
