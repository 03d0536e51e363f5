"""Configuration: one tree of frozen dataclasses, every field documented.

The CLI only builds these; the library validates them (``validate()`` raises ConfigError) and a
run writes them out fully resolved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from es_compact.errors import ConfigError

SQUASH_MODES = ("clip", "tanh")


@dataclass(frozen=True)
class PolicyConfig:
    """Shape and structure of a policy (see es_compact.policies for the architectures)."""

    arch: str = "kama"
    """Architecture name: linear, dense, toeplitz, kama or dcnn."""
    hidden: int = 64
    """Hidden width h of the MLP architectures (dense, toeplitz, kama); DCNN width is
    max(obs, hidden, act)."""
    hidden_layers: int = 2
    """Number of hidden layers of the MLP architectures: obs -> h -> h -> act by default."""
    rotations: tuple[int, ...] = (200,)
    """KAMA rotations K: one value for every weight matrix, or one value per matrix."""
    depth: int = 4
    """DCNN: number of diagonal-circulant layers L."""
    nonlin_every: int = 3
    """DCNN: a leaky ReLU after every k-th layer (never after the last, which is linear)."""
    slope: float = 0.5
    """DCNN: negative-side slope of the leaky ReLU."""
    bias_std: float = 0.01
    """DCNN: standard deviation σ' of the initial biases."""
    linear_bias: bool = False
    """linear: add a bias, a = W s + b."""
    output_bias: bool = False
    """MLP architectures: a bias on the output layer too (hidden layers always have one)."""
    squash: str = "clip"
    """Box actions: 'clip' the linear output to the bounds, or 'tanh' to squash it into them."""

    def validate(self, known_archs: tuple[str, ...] | None = None) -> PolicyConfig:
        if known_archs is not None and self.arch not in known_archs:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose from "
                              f"{', '.join(known_archs)}")
        for name in ("hidden", "hidden_layers", "depth", "nonlin_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        rotations = tuple(self.rotations)
        if not rotations or any(not isinstance(k, int) or k < 1 for k in rotations):
            raise ConfigError(f"rotations must be positive integers, got {self.rotations!r}")
        if not 0.0 <= self.slope <= 1.0:
            raise ConfigError(f"slope must lie in [0, 1], got {self.slope}")
        if self.bias_std < 0:
            raise ConfigError(f"bias_std must be >= 0, got {self.bias_std}")
        if self.squash not in SQUASH_MODES:
            raise ConfigError(f"squash must be one of {SQUASH_MODES}, got {self.squash!r}")
        return self

    def replace(self, **changes) -> PolicyConfig:
        return dataclasses.replace(self, **changes)
