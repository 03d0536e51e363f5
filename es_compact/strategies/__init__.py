"""Evolution strategies over the flat θ: ARS, OpenAI-ES, PGPE, SNES, CMA-ES
(full and separable) and CEM, each usable alone by ask / tell on any NumPy blackbox
(:class:`AskTell`).

The registry: :data:`STRATEGIES` maps a StrategyConfig's ``algo`` to its class, and
:func:`make_strategy` is a lookup in it. A strategy of one's own is a :class:`Strategy` subclass
(fill ``_tell``; optimiser state in ``state`` / ``load``) registered under a new name with
:func:`register_strategy`; ``presets.resolve`` (and so the Trainer) then accepts that name as
``strategy.algo``. The exploration directions it is given live in :mod:`es_compact.exploration`.
"""

from __future__ import annotations

from es_compact.config import StrategyConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions
from es_compact.strategies.ars import ARS
from es_compact.strategies.ask_tell import AskTell
from es_compact.strategies.base import Strategy
from es_compact.strategies.cem import CEM
from es_compact.strategies.cmaes import CMAES
from es_compact.strategies.openai_es import OpenAIES
from es_compact.strategies.pgpe import PGPE
from es_compact.strategies.sepcmaes import SepCMAES
from es_compact.strategies.snes import SNES

STRATEGIES: dict[str, type[Strategy]] = {
    "ars": ARS,
    "es": OpenAIES,
    "pgpe": PGPE,
    "snes": SNES,
    "cem": CEM,
    "cmaes": CMAES,
    "sepcmaes": SepCMAES,
}
"""algo name -> Strategy class."""


def register_strategy(name: str, cls: type[Strategy]) -> type[Strategy]:
    """Add (or replace) the strategy built for ``strategy.algo == name``; returns cls."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a strategy's name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"a registered strategy must be a Strategy subclass, got {cls!r}")
    STRATEGIES[name] = cls
    return cls


def make_strategy(config: StrategyConfig, directions: Directions) -> Strategy:
    return STRATEGIES[config.algo](config, directions)


__all__ = ["STRATEGIES", "AskTell", "Strategy", "make_strategy", "register_strategy"]
