"""The architecture registry: name -> builder of the layer list over θ.

Default shape (as in the KAMA-NN paper): obs -> h -> h -> act, tanh on hidden layers, biases on
hidden layers, h = 64. `linear` is the ARS policy a = W s; `dcnn` is L diagonal-circulant layers
of width n = max(obs, h, act).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np

from es_compact.config import PolicyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.policies.circulant import CirculantLayer
from es_compact.policies.dense import DenseLayer
from es_compact.policies.givens import GivensLayer
from es_compact.policies.layers import Layer
from es_compact.policies.spec import ActionSpec, Policy, obs_dim_of
from es_compact.policies.toeplitz import ToeplitzLayer
from es_compact.settings import Applies, refuse_unused, run_applies

Builder = Callable[[int, int, PolicyConfig, np.random.Generator], list[Layer]]
ARCHITECTURES: dict[str, Builder] = {}


@dataclass(frozen=True)
class Reads:
    """The PolicyConfig fields an architecture reads (besides arch and squash, which every
    policy reads). only_if: a field read only under a condition, as (condition, when the
    condition holds, in words; other fields named {policy.field})."""

    fields: frozenset[str]
    only_if: Mapping[str, tuple[Callable[[PolicyConfig], bool], str]]


READS: dict[str, Reads] = {}
"""Architecture name -> the fields it reads; an architecture registered without them may read
any field, and none of its settings is refused."""


def register(name: str, reads: Iterable[str] | None = None,
             only_if: Mapping[str, tuple[Callable[[PolicyConfig], bool], str]] | None = None):
    """Register a builder under name. reads: the PolicyConfig fields it reads, so that
    setting another one is refused as changing nothing (see check_applicable)."""
    def deco(fn: Builder) -> Builder:
        ARCHITECTURES[name] = fn
        READS.pop(name, None)
        if reads is not None:
            READS[name] = Reads(frozenset(reads), dict(only_if or {}))
        return fn

    return deco


MLP_READS = ("hidden", "hidden_layers", "output_bias")


def _mlp(obs_dim: int, act_dim: int, cfg: PolicyConfig, make) -> list[Layer]:
    dims = [obs_dim] + [cfg.hidden] * cfg.hidden_layers + [act_dim]
    layers, off, last = [], 0, len(dims) - 2
    for i in range(len(dims) - 1):
        layer = make(i, in_dim=dims[i], out_dim=dims[i + 1], offset=off,
                     bias=i < last or cfg.output_bias,
                     activation="tanh" if i < last else "identity")
        layers.append(layer)
        off += layer.size
    return layers


@register("linear", reads=("linear_bias",))
def build_linear(obs_dim, act_dim, cfg, rng):
    return [DenseLayer(in_dim=obs_dim, out_dim=act_dim, offset=0, bias=cfg.linear_bias,
                       zero_init=True)]


@register("dense", reads=MLP_READS)
def build_dense(obs_dim, act_dim, cfg, rng):
    return _mlp(obs_dim, act_dim, cfg, lambda i, **kw: DenseLayer(**kw))


@register("toeplitz", reads=MLP_READS)
def build_toeplitz(obs_dim, act_dim, cfg, rng):
    return _mlp(obs_dim, act_dim, cfg, lambda i, **kw: ToeplitzLayer(**kw))


def rotations_per_matrix(cfg: PolicyConfig, n_matrices: int) -> tuple[int, ...]:
    rot = tuple(cfg.rotations)
    if len(rot) == 1:
        return rot * n_matrices
    if len(rot) != n_matrices:
        raise ConfigError(f"give one rotation count for all matrices or one per matrix "
                          f"({n_matrices}), got {len(rot)}")
    return rot


@register("kama", reads=(*MLP_READS, "rotations"))
def build_kama(obs_dim, act_dim, cfg, rng):
    rot = rotations_per_matrix(cfg, cfg.hidden_layers + 1)
    return _mlp(obs_dim, act_dim, cfg,
                lambda i, **kw: GivensLayer.build(rotations=rot[i], rng=rng, **kw))


def dcnn_relu_after(depth: int, every: int) -> tuple[int, ...]:
    """The layers (1-based) of a depth-layer dcnn that a leaky ReLU follows: every `every`-th,
    never the last, whose output is the action."""
    return tuple(i for i in range(1, depth) if i % every == 0)


# The slope shapes only the leaky ReLUs (and, with dcnn_init 'scaled', the gain before them):
# with nonlin_every >= depth the network has none.
@register("dcnn", reads=("hidden", "depth", "nonlin_every", "slope", "bias_std", "dcnn_init"),
          only_if={"slope": (lambda cfg: bool(dcnn_relu_after(cfg.depth, cfg.nonlin_every)),
                             "with a leaky ReLU ({policy.nonlin_every} below {policy.depth})")})
def build_dcnn(obs_dim, act_dim, cfg, rng):
    n = max(obs_dim, cfg.hidden, act_dim)
    relu_after = dcnn_relu_after(cfg.depth, cfg.nonlin_every)
    layers, off = [], 0
    for i in range(cfg.depth):
        last = i == cfg.depth - 1
        nonlinear = i + 1 in relu_after
        in_dim = obs_dim if i == 0 else n
        c_std = None
        if cfg.dcnn_init == "scaled":  # second moment kept: E φ(z)² = (1 + slope²)/2 · E z²
            c_std = float(np.sqrt((2.0 / (1.0 + cfg.slope**2) if nonlinear else 1.0) / in_dim))
        layer = CirculantLayer(in_dim=in_dim, out_dim=act_dim if last else n,
                               offset=off, n=n, bias=True, bias_std=cfg.bias_std, c_std=c_std,
                               activation="leaky_relu" if nonlinear else "identity",
                               slope=cfg.slope if nonlinear else 0.0)
        layers.append(layer)
        off += layer.size
    return layers


def structure_rng(seed: int) -> np.random.Generator:
    """The generator for fixed structure (Givens planes), derived from the run's seed alone."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x57C7]))


def make_policy(config: PolicyConfig, obs, action, seed: int = 0) -> Policy:
    """Build a policy. obs: a Box space or an int dimension; action: a Box/Discrete space, an
    ActionSpec, or an int (unbounded continuous outputs)."""
    config.validate(tuple(ARCHITECTURES))
    obs_dim = obs if isinstance(obs, (int, np.integer)) else obs_dim_of(obs)
    if isinstance(action, ActionSpec):
        spec = action
    elif isinstance(action, (int, np.integer)):
        spec = ActionSpec(dim=int(action), low=np.full(int(action), -np.inf),
                          high=np.full(int(action), np.inf))
    else:
        spec = ActionSpec.from_space(action)
    if obs_dim < 1 or spec.dim < 1:
        raise ConfigError(f"observation and action sizes must be positive, got {obs_dim}, "
                          f"{spec.dim}")
    layers = ARCHITECTURES[config.arch](int(obs_dim), spec.dim, config, structure_rng(seed))
    return Policy(config.arch, layers, int(obs_dim), spec, config.squash)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def policy_applies(cfg: PolicyConfig, discrete: bool) -> list[Applies]:
    """Which policy settings shape this policy. squash is judged for every architecture;
    the others only for an architecture that declared what it reads (the built-in ones)."""
    out = [Applies("policy", "squash", not discrete, "to continuous (Box) actions")]
    reads = READS.get(cfg.arch)
    if reads is None:
        return out
    for f in fields(PolicyConfig):
        readers = [a for a, r in READS.items() if f.name in r.fields]
        if not readers:  # arch and squash: read by every policy
            continue
        used = f.name in reads.fields
        if used and f.name in reads.only_if:
            used = reads.only_if[f.name][0](cfg)
        where = [a + (f" {READS[a].only_if[f.name][1]}" if f.name in READS[a].only_if else "")
                 for a in readers]
        out.append(Applies("policy", f.name, used, f"to {{policy.arch}} {_and(where)}"))
    return out


def applies(config: TrainConfig, discrete: bool) -> list[Applies]:
    """Every judged setting of a configuration: the policy's (this registry) and the
    strategy's and run's (es_compact.settings.run_applies)."""
    return [*policy_applies(config.policy, discrete), *run_applies(config)]


def check_applicable(config: TrainConfig, discrete: bool, given: Collection[str] | None = None,
                     name: Callable[[str, str], str] | None = None) -> None:
    """ConfigError for a setting given that this configuration would ignore, e.g.
    "policy.rotations applies only to arch kama; here it would be ignored".

    discrete: whether the environment's actions are discrete (squash then does nothing).
    given: the "section.field" settings the user set; None (a config from Python or TOML):
    every field that differs from its dataclass default, so a fully resolved config.json
    holding defaults is never refused for them. name renders a setting (the CLI: its flag).
    """
    refuse_unused(applies(config, discrete), config, given, name)
