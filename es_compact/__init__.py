"""es-compact: evolution strategies for compact structured policies.

Policies map observations to actions from one flat float64 parameter vector θ; see
:mod:`es_compact.policies` for the architectures (linear, dense, toeplitz, kama, dcnn).
"""

from es_compact.errors import ConfigError, ESCompactError, ParameterError, SpaceError

__version__ = "0.1.0"

__all__ = ["ConfigError", "ESCompactError", "ParameterError", "SpaceError", "__version__"]
