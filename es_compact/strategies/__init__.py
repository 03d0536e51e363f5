"""Evolution strategies over the flat θ: ARS and OpenAI-ES, with gaussian, orthogonal or
Hadamard exploration directions."""

from es_compact.strategies.base import Strategy, make_strategy
from es_compact.strategies.directions import Directions, Plan

__all__ = ["Directions", "Plan", "Strategy", "make_strategy"]
