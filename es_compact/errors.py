"""Exceptions raised by es-compact's API; the CLI turns each into a one-line error."""


class ESCompactError(Exception):
    """Base class: every error the library raises on purpose derives from this."""


class ConfigError(ESCompactError, ValueError):
    """A configuration value is invalid (unknown name, non-positive size, ...)."""


class SpaceError(ESCompactError, TypeError):
    """An observation or action space the policies cannot handle."""


class ParameterError(ESCompactError, ValueError):
    """A parameter vector θ has the wrong length, dtype or non-finite entries."""
