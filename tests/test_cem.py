"""CEM: the elite, one update by hand, too few valid pairs, the sphere via AskTell, exact
resume, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from es_compact.config import StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan, perturb
from es_compact.noise import NoiseTable
from es_compact.presets import resolve
from es_compact.strategies import make_strategy
from es_compact.strategies.ask_tell import AskTell
from es_compact.strategies.cem import elite_count, elite_mask

# δ0 = (1, 2), δ1 = (-0.5, 1), δ2 = (2, 0): exact in float32.
TABLE = NoiseTable(np.array([1.0, 2.0, -0.5, 1.0, 2.0, 0.0], dtype=np.float32))
PLAN = Plan(iteration=0, count=3, offsets=np.array([0, 2, 4]))
RETURNS = np.array([[3.0, 1.0], [2.0, 2.0], [0.0, 5.0]])
THETA = np.array([0.5, -0.25])


def cem(**kw):
    cfg = StrategyConfig(algo="cem", directions=3, top=3, noise_std=0.1,
                         **{"step_size": 1.0, **kw})
    return make_strategy(cfg, Directions("gaussian", 0, 2, TABLE))


def sphere(X):
    return -np.sum(X**2, axis=1)


def test_elite_count_and_mask():
    assert elite_count(0.5, 6) == 3 and elite_count(0.15, 10) == 2 and elite_count(1.0, 4) == 4
    assert 0.07 * 100 > 7 and elite_count(0.07, 100) == 7  # not 8 from the last bit
    # Candidates 0+ 3, 0- 1, 1+ 2, 1- 2, 2+ 0, 2- 5: the best three are 2-, 0+ and 1+ (1+
    # before the tied 1- by position).
    assert elite_mask(RETURNS, 3).tolist() == [[True, False], [True, False], [False, True]]
    assert elite_mask(np.full((2, 2), 7.0), 3).tolist() == [[True, True], [True, False]]


def test_cem_step_by_hand():
    es = cem()
    # elite_fraction 0.5 of 6 candidates: n_e = 3, the elite 2-, 0+, 1+ (test above), with
    # z = -δ2 = (-2, 0), δ0 = (1, 2), δ1 = (-0.5, 1).
    # z̄ = ((-2 + 1 - 0.5) / 3, (0 + 2 + 1) / 3) = (-0.5, 1)
    # m <- m + α σ ⊙ z̄ = (0.5, -0.25) + 1 · 0.1 · (-0.5, 1) = (0.45, -0.15)
    new = es.tell(THETA, PLAN, RETURNS)
    np.testing.assert_array_equal(new, THETA + 0.1 * np.array([-0.5, 1.0]))
    # z - z̄: (-1.5, -1), (1.5, 1), (0, 0); mean of squares (4.5 / 3, 2 / 3) = (1.5, 2/3)
    # σ <- σ ⊙ sqrt(that) = 0.1 (√1.5, √(2/3)) ≈ (0.122474, 0.081650)
    np.testing.assert_array_equal(es.sigma, 0.1 * np.sqrt([4.5 / 3, 2.0 / 3]))
    nu, scale = es.noise()
    assert nu == 1.0 and np.array_equal(scale, es.sigma)
    # The same from the candidates themselves: the elite's mean and (ddof 0) std.
    X = np.array([perturb(THETA, s, 1.0, np.full(2, 0.1), TABLE.get(2 * k, 2))
                  for k in range(3) for s in (1.0, -1.0)])
    elite = X[elite_mask(RETURNS, 3).ravel()]
    np.testing.assert_allclose(new, elite.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(es.sigma, elite.std(axis=0), rtol=1e-12)
    # α = 0.5 moves half way: m + 0.5 · 0.1 · (-0.5, 1) = (0.475, -0.2); σ as before.
    half = cem(step_size=0.5)
    np.testing.assert_array_equal(half.tell(THETA, PLAN, RETURNS),
                                  THETA + 0.5 * (0.1 * np.array([-0.5, 1.0])))
    np.testing.assert_array_equal(half.sigma, es.sigma)


def test_cem_with_too_few_valid_pairs_keeps_sigma():
    # Only pair 2 valid: n_e = ⌈0.5 · 2⌉ = 1, the candidate 2- (5 > 0): m moves to it
    # (m + 0.1 · (-2, 0) = (0.3, -0.25)), and σ is kept (one candidate has no spread).
    es = cem()
    valid = np.array([False, False, True])
    np.testing.assert_array_equal(es.tell(THETA, PLAN, RETURNS, valid), [0.3, -0.25])
    np.testing.assert_array_equal(es.sigma, [0.1, 0.1])
    # elite_fraction 0.6, pair 0 alone valid: n_e = ⌈1.2⌉ = 2, the whole pair: z̄ = 0, so m
    # stays, and σ is kept (a selection of everything says nothing).
    es = cem(elite_fraction=0.6)
    np.testing.assert_array_equal(es.tell(THETA, PLAN, RETURNS, np.array([True, False, False])),
                                  THETA)
    np.testing.assert_array_equal(es.sigma, [0.1, 0.1])
    # Two valid pairs, 0.5: n_e = 2 of 4 (0+ 3 and 1+ 2): z̄ = (δ0 + δ1) / 2 = (0.25, 1.5),
    # spread (|δ0 - δ1| / 2) = (0.75, 0.5).
    es = cem()
    new = es.tell(THETA, PLAN, RETURNS, np.array([True, True, False]))
    np.testing.assert_array_equal(new, THETA + 0.1 * np.array([0.25, 1.5]))
    np.testing.assert_allclose(es.sigma, [0.075, 0.05], rtol=1e-15)


def test_cem_solves_the_sphere():
    # Plain CEM shrinks σ geometrically and can stop short of the optimum when the elite is
    # small next to d (the default popsize 14 at d = 30 stalls near f ≈ 10); 300 candidates
    # (elite 150) reach f < 1e-4 at d = 30 within 100 iterations for each seed tried (0-5).
    for seed in (0, 1):
        es = AskTell("cem", np.ones(30), seed, popsize=300, sigma=0.5)
        for _ in range(100):
            es.tell(sphere(es.ask()))
        assert np.sum(es.mean**2) < 1e-4  # from 30


def trainer_like(x0, seed, popsize, sigma, iterations, f, exploration):
    """A fresh strategy object every iteration, given only the previous state() (as the
    trainer does): resume is exact only if state() / load() carry everything."""
    es = AskTell("cem", x0, seed, popsize=popsize, sigma=sigma, exploration=exploration)
    theta, (arrays, meta) = es.theta, es.strategy.state()
    for it in range(iterations):
        s = make_strategy(es.config, es.strategy.directions)
        s.load(arrays, meta)
        plan = s.ask(it)
        nu, scale = s.noise()
        X = np.array([perturb(theta, sign, nu, scale, s.directions.get(plan, k))
                      for k in range(plan.count) for sign in (1.0, -1.0)])
        theta = s.tell(theta, plan, f(X).reshape(-1, 2))
        arrays, meta = s.state()
    return theta, arrays


@pytest.mark.parametrize("exploration", ["gaussian", "orthogonal"])
def test_cem_resumes_exactly(tmp_path, exploration):
    def run(es, n):
        for _ in range(n):
            f = sphere(es.ask() - 0.3)
            f[3] = np.nan  # pair 1 fails every iteration: dropped
            es.tell(f)
        return es

    kw = dict(popsize=12, sigma=0.4, exploration=exploration, elite_fraction=0.4)
    x0 = np.linspace(-1, 1, 5)
    whole = run(AskTell("cem", x0, 3, **kw), 12)
    half = run(AskTell("cem", x0, 3, **kw), 7)
    half.save(tmp_path)
    resumed = run(AskTell.load(tmp_path), 5)
    again = run(AskTell.from_state(*half.state()), 5)
    for es in (resumed, again):
        assert np.array_equal(es.mean, whole.mean)
        assert np.array_equal(es.strategy.sigma, whole.strategy.sigma)
        assert es.iteration == 12 and es.config.elite_fraction == 0.4

    theta, arrays = trainer_like(x0, 3, 12, 0.4, 12, lambda X: sphere(X - 0.3), exploration)
    plain = AskTell("cem", x0, 3, popsize=12, sigma=0.4, exploration=exploration)
    for _ in range(12):
        plain.tell(sphere(plain.ask() - 0.3))
    assert np.array_equal(theta, plain.mean)
    assert np.array_equal(arrays["cem_sigma"], plain.strategy.sigma)


def test_cem_refuses_bad_input():
    with pytest.raises(ConfigError, match=r"^cem's elite must hold at least 2 candidates \(or "
                       r"σ collapses to 0\): elite_fraction 0\.1 of 2N = 10 candidates keeps "
                       r"1; raise elite_fraction or directions$"):
        AskTell("cem", np.zeros(3), popsize=10, elite_fraction=0.1)
    with pytest.raises(ConfigError, match=r"^cem's elite must leave a candidate out .*: "
                       r"elite_fraction 1\.0 of 2N = 8 candidates keeps all 8; lower "
                       r"elite_fraction$"):
        AskTell("cem", np.zeros(3), popsize=8, elite_fraction=1.0)
    # One pair (below min_directions = 2) is refused by the elite's rules, which say why.
    with pytest.raises(ConfigError, match=r"of 2N = 2 candidates keeps 1; raise"):
        AskTell("cem", np.zeros(3), popsize=2)
    with pytest.raises(ConfigError, match=r"of 2N = 2 candidates keeps all 2; lower"):
        AskTell("cem", np.zeros(3), popsize=2, elite_fraction=0.6)
    with pytest.raises(ConfigError, match="keeps 1; raise elite_fraction"):
        resolve(TrainConfig(strategy=StrategyConfig(algo="cem", directions=4,
                                                    elite_fraction=0.1)))
    with pytest.raises(ConfigError, match=r"^elite_fraction must lie in \(0, 1\], got 0$"):
        AskTell("cem", np.zeros(3), popsize=8, elite_fraction=0)
    with pytest.raises(ConfigError, match=r"^cem_sigma has shape \(3,\), expected \(2,\)$"):
        cem().load({"cem_sigma": np.ones(3)}, {})
    assert AskTell("cem", np.zeros(3), popsize=10, elite_fraction=0.15).popsize == 10  # n_e 2


def test_cem_defaults_resolve():
    cfg = resolve(TrainConfig(strategy=StrategyConfig(algo="cem", directions=4)))
    assert cfg.strategy.step_size == 1.0 and cfg.strategy.optimizer is None
    s = make_strategy(cfg.strategy, Directions("orthogonal", 0, 7, None))
    np.testing.assert_array_equal(s.sigma, np.full(7, cfg.strategy.noise_std))
