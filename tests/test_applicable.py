"""A setting that would change nothing is refused for a config from Python or TOML as it is on
the command line (tests/test_ignored_options.py), naming the field; the table of what each
architecture reads is checked against the policies it builds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from es_compact.config import (
    PolicyConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
)
from es_compact.errors import ConfigError
from es_compact.experiments import ablation, dcnn, dcnn_init, preset_search, rl
from es_compact.policies import (
    ARCHITECTURES,
    READS,
    check_applicable,
    make_policy,
    policy_applies,
    register,
)
from es_compact.policies.architectures import build_linear
from es_compact.presets import resolve
from es_compact.settings import field_default

BUILTIN = ("linear", "dense", "toeplitz", "kama", "dcnn")


def config(policy=None, strategy=None, run=None) -> TrainConfig:
    return TrainConfig(policy=PolicyConfig(**(policy or {})),
                       strategy=StrategyConfig(**(strategy or {})),
                       run=RunConfig(iterations=1, **(run or {})))


IGNORED = [
    ({"policy": {"arch": "dense", "rotations": (50,)}},
     "policy.rotations applies only to arch kama"),
    ({"policy": {"arch": "linear", "hidden": 32}},
     "policy.hidden applies only to arch dense, toeplitz, kama and dcnn"),
    ({"policy": {"arch": "dcnn", "hidden_layers": 3}},
     "policy.hidden_layers applies only to arch dense, toeplitz and kama"),
    ({"policy": {"arch": "kama", "depth": 3}}, "policy.depth applies only to arch dcnn"),
    ({"policy": {"arch": "dense", "bias_std": 0.1}}, "policy.bias_std applies only to arch dcnn"),
    ({"policy": {"arch": "kama", "linear_bias": True}},
     "policy.linear_bias applies only to arch linear"),
    ({"policy": {"arch": "linear", "output_bias": True}},
     "policy.output_bias applies only to arch dense, toeplitz and kama"),
    ({"policy": {"arch": "dcnn", "depth": 3, "nonlin_every": 3, "slope": 0.2}},
     "policy.slope applies only to arch dcnn with a leaky ReLU (nonlin_every below depth)"),
    ({"strategy": {"algo": "es", "variant": "v1"}},
     "strategy.variant applies only with algo ars"),
    ({"strategy": {"optimizer": "sgd"}}, "strategy.optimizer applies only with algo es or pgpe"),
    ({"strategy": {"l2_coeff": 0.01}}, "strategy.l2_coeff applies only with algo es"),
    ({"strategy": {"algo": "es", "momentum": 0.5}},
     "strategy.momentum applies only with algo es and optimizer sgd, or algo pgpe and optimizer "
     "clipup"),
    ({"strategy": {"algo": "pgpe", "optimizer": "adam", "max_speed": 0.3}},
     "strategy.max_speed applies only with algo pgpe and optimizer clipup"),
    ({"strategy": {"algo": "cmaes", "sigma_lr": 0.3}},
     "strategy.sigma_lr applies only with algo pgpe or snes"),
    ({"strategy": {"algo": "snes", "sigma_max_change": 0.3}},
     "strategy.sigma_max_change applies only with algo pgpe"),
    ({"strategy": {"elite_fraction": 0.3}}, "strategy.elite_fraction applies only with algo cem"),
    ({"strategy": {"variant": "v1", "obs_norm_floor": 1e-6}},
     "strategy.obs_norm_floor applies only with observation normalisation (every algo but "
     "ars, or variant v2 or v2t)"),
    ({"run": {"backend": "serial", "workers": 2}},
     "run.workers applies only with backend mp or ray (serial runs one)"),
    ({"run": {"ray_address": "auto"}}, "run.ray_address applies only with backend ray"),
    ({"run": {"backend": "ray", "ray_address": "auto", "ray_dashboard": True}},
     "run.ray_dashboard applies only with backend ray when it starts Ray itself (no "
     "ray_address)"),
]


@pytest.mark.parametrize("changes,message", IGNORED, ids=[m.split()[0] for _, m in IGNORED])
def test_a_python_config_setting_that_changes_nothing_is_refused(changes, message):
    with pytest.raises(ConfigError) as exc:
        check_applicable(config(**changes), discrete=False)
    assert str(exc.value) == f"{message}; here it would be ignored"


def test_squash_is_refused_for_discrete_actions_only():
    cfg = config({"arch": "linear", "squash": "tanh"})
    check_applicable(cfg, discrete=False)
    with pytest.raises(ConfigError, match="policy.squash applies only to continuous"):
        check_applicable(cfg, discrete=True)


def test_a_toml_config_is_judged_the_same_way():
    cfg = TrainConfig.from_dict({"policy": {"arch": "dense", "rotations": 10},
                                 "run": {"iterations": 1}})
    with pytest.raises(ConfigError, match="^policy.rotations applies only to arch kama"):
        check_applicable(cfg, discrete=False)


@pytest.mark.parametrize("arch", BUILTIN)
@pytest.mark.parametrize("algo,backend", [("ars", "serial"), ("es", "mp"), ("ars", "ray")])
def test_a_stored_fully_resolved_config_holding_defaults_passes(arch, algo, backend):
    cfg = resolve(config({"arch": arch}, {"algo": algo}, {"backend": backend}))
    stored = TrainConfig.from_dict(cfg.to_dict())  # config.json: every field written out
    check_applicable(stored, discrete=False)


def test_given_counts_a_setting_equal_to_its_default():
    # The command line's sense: a flag given is judged even at its default value.
    cfg = config({"arch": "dense"})
    check_applicable(cfg, discrete=False)
    with pytest.raises(ConfigError, match="policy.rotations"):
        check_applicable(cfg, discrete=False, given={"policy.rotations"})
    check_applicable(cfg, discrete=False, given={"policy.hidden"})


def test_name_renders_the_settings():
    flag = {("policy", "rotations"): "--rotations", ("policy", "arch"): "--arch"}
    with pytest.raises(ConfigError) as exc:
        check_applicable(config({"arch": "dense", "rotations": (5,)}), False,
                         name=lambda s, f: flag[(s, f)])
    assert str(exc.value) == "--rotations applies only to --arch kama; here it would be ignored"


@pytest.fixture
def user_arch():
    register("user_linear")(build_linear)
    yield "user_linear"
    del ARCHITECTURES["user_linear"]


def test_an_architecture_registered_without_reads_is_not_judged(user_arch):
    cfg = config({"arch": user_arch, "rotations": (5,), "depth": 2, "squash": "tanh"})
    check_applicable(cfg, discrete=False)
    with pytest.raises(ConfigError, match="policy.squash"):  # squash: the policy's, not the arch's
        check_applicable(cfg, discrete=True)


def test_every_builtin_architecture_declares_what_it_reads():
    names = {f.name for f in dataclasses.fields(PolicyConfig)}
    for arch in BUILTIN:
        assert READS[arch].fields <= names - {"arch", "squash"}
        assert set(READS[arch].only_if) <= READS[arch].fields


# A value other than the default for every field an architecture may read.
OTHER = {"hidden": 8, "hidden_layers": 1, "rotations": (5,), "depth": 3, "nonlin_every": 1,
         "slope": 0.2, "bias_std": 0.5, "dcnn_init": "scaled", "linear_bias": True,
         "output_bias": True}
BASES = [{"arch": a} for a in BUILTIN] + [{"arch": "dcnn", "depth": 3, "nonlin_every": 3}]


def _fingerprint(cfg: PolicyConfig):
    policy = make_policy(cfg, obs=5, action=3, seed=0)
    theta = policy.init(np.random.default_rng(0))
    theta = theta + np.random.default_rng(1).standard_normal(theta.shape)  # linear starts at 0
    x = np.random.default_rng(2).standard_normal(5)
    return policy.num_params, theta.tolist(), np.asarray(policy.forward(theta, x)).tolist()


@pytest.mark.parametrize("base", BASES, ids=lambda b: "-".join(map(str, b.values())))
def test_the_table_says_exactly_which_settings_shape_the_policy(base):
    """A setting the table calls used changes the policy built; one it refuses does not."""
    cfg = PolicyConfig(**base)
    used = {a.field: a.used for a in policy_applies(cfg, discrete=False)}
    before = _fingerprint(cfg)
    assert set(OTHER) == set(used) - {"squash"}
    for name, value in OTHER.items():
        if name in base:
            continue
        assert value != field_default("policy", name)
        changed = _fingerprint(cfg.replace(**{name: value})) != before
        assert changed == used[name], (base, name)


def _experiment_specs():
    out = []
    for form in ("quick", "full"):
        for mod in (rl, ablation, dcnn, dcnn_init):
            out += [(f"{mod.__name__.split('.')[-1]}:{form}:{s.name}", s.config)
                    for s in mod.specs(form)]
    for env_id in preset_search.CANDIDATES:
        out += [(f"preset_search:{s.name}", s.config) for s in preset_search.specs(env_id)]
    return out


def test_no_experiment_sets_a_setting_that_changes_nothing():
    refused = set()
    for name, cfg in _experiment_specs():
        try:
            check_applicable(cfg, discrete=False)  # every experiment's environment is MuJoCo
        except ConfigError as exc:
            refused.add(f"{name}: {exc}")
    assert refused == set()
