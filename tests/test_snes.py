"""SNES: the NES utilities, one update by hand, the sphere via AskTell, exact resume, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from es_compact.config import StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan, perturb
from es_compact.noise import NoiseTable
from es_compact.presets import resolve
from es_compact.strategies import make_strategy
from es_compact.strategies.ask_tell import AskTell
from es_compact.strategies.shaping import nes_utilities

# δ0 = (1, 2), δ1 = (-0.5, 1): exact in float32.
TABLE = NoiseTable(np.array([1.0, 2.0, -0.5, 1.0], dtype=np.float32))
PLAN = Plan(iteration=0, count=2, offsets=np.array([0, 2]))
A = math.log(3) / math.log(4.5)  # u1 + 1/4 for λ = 4, see test_nes_utilities
B = math.log(1.5) / math.log(4.5)  # u2 + 1/4; A + B = 1


def snes(**kw):
    cfg = StrategyConfig(algo="snes", directions=2, top=2, step_size=1.0, noise_std=0.1, **kw)
    return make_strategy(cfg, Directions("gaussian", 0, 2, TABLE))


def sphere(X):
    return -np.sum(X**2, axis=1)


def test_nes_utilities():
    # λ = 4: ln(λ/2 + 1) = ln 3; max(0, ln 3 - ln i) = ln 3, ln 1.5, 0, 0 for i = 1..4;
    # their sum ln 3 + ln 1.5 = ln 4.5; u_i = that / ln 4.5 - 1/4.
    # Fitness (3, 1, 2, 2): ranks 1, 4, 2, 3 (the tied 2s by position).
    u = nes_utilities(np.array([[3.0, 1.0], [2.0, 2.0]]))
    np.testing.assert_allclose(u, [[A - 0.25, -0.25], [B - 0.25, -0.25]], rtol=0, atol=1e-15)
    assert abs(u.sum()) < 1e-15
    # λ = 2: max(0, ln 2 - ln 1) = ln 2, max(0, ln 2 - ln 2) = 0: u = (1 - 1/2, 0 - 1/2).
    assert nes_utilities(np.array([1.0, 7.0])).tolist() == [-0.5, 0.5]
    assert nes_utilities(np.array([5.0, 5.0])).tolist() == [0.5, -0.5]  # tie: by position
    assert nes_utilities(np.array([4.0])).tolist() == [0.0]
    u = nes_utilities(np.random.default_rng(0).normal(size=15))
    assert abs(u.sum()) < 1e-15 and np.sum(u == -1 / 15) == 7  # ranks i >= 8.5 get -1/λ


def test_snes_step_by_hand():
    theta = np.array([0.5, -0.25])
    es = snes()
    # Returns (3, 1), (2, 2): u_0+ = A - 1/4, u_0- = -1/4, u_1+ = B - 1/4, u_1- = -1/4.
    # ∇_μ = Σ_k (u_k+ - u_k-) δ_k = A δ0 + B δ1 = (A - B/2, 2A + B) ≈ (0.595634, 1.730423)
    # μ <- μ + η_μ σ ⊙ ∇_μ = (0.5, -0.25) + 1 · 0.1 · ∇_μ ≈ (0.559563, -0.076958)
    new = es.tell(theta, PLAN, np.array([[3.0, 1.0], [2.0, 2.0]]))
    np.testing.assert_allclose(new, theta + 0.1 * np.array([A - B / 2, 2 * A + B]),
                               rtol=0, atol=1e-15)
    # ∇_σ = Σ_k (u_k+ + u_k-) (δ_k² - 1) = (A - 1/2)(0, 3) + (B - 1/2)(-0.75, 0)
    #     = (0.75 c, 3 c) with c = A - 1/2 = 1/2 - B ≈ 0.230423: ≈ (0.172817, 0.691268)
    # η_σ = (3 + ln 2) / (5 √2) ≈ 0.522290; σ = 0.1 exp(η_σ/2 ∇_σ) ≈ (0.104616, 0.119784)
    c = A - 0.5
    eta = (3 + math.log(2)) / (5 * math.sqrt(2))
    expected = 0.1 * np.exp(eta / 2 * np.array([0.75 * c, 3 * c]))
    np.testing.assert_allclose(es.sigma, expected, rtol=1e-12)
    nu, scale = es.noise()
    assert nu == 1.0 and np.array_equal(scale, es.sigma)
    # A given sigma_lr replaces η_σ: σ = 0.1 exp(0.2 ∇_σ) ≈ (0.103517, 0.114827)
    es = snes(sigma_lr=0.4)
    es.tell(theta, PLAN, np.array([[3.0, 1.0], [2.0, 2.0]]))
    np.testing.assert_allclose(es.sigma, 0.1 * np.exp(0.2 * np.array([0.75 * c, 3 * c])),
                               rtol=1e-12)


def test_snes_uses_the_updated_sigma_and_one_valid_pair_keeps_it():
    theta = np.array([0.5, -0.25])
    es = snes(sigma_lr=0.4)
    es.sigma = np.array([0.2, 0.05])
    # Only pair 1 is valid: λ = 2, u_1+ = 1/2, u_1- = -1/2 (r+ = 4 > r- = 0), so
    # ∇_μ = δ1 = (-0.5, 1), μ <- θ + σ ⊙ δ1 = (0.5 - 0.1, -0.25 + 0.05); ∇_σ = 0: σ stays.
    new = es.tell(theta, PLAN, np.array([[np.nan, 1.0], [4.0, 0.0]]),
                  valid=np.array([False, True]))
    np.testing.assert_array_equal(new, theta + np.array([0.2, 0.05]) * np.array([-0.5, 1.0]))
    np.testing.assert_array_equal(es.sigma, [0.2, 0.05])


@pytest.mark.parametrize("dim,iterations", [(10, 400), (30, 800)])
def test_snes_solves_the_sphere(dim, iterations):
    # Default popsize 4 + ⌊3 ln d⌋ (10, 14), η_μ = 1, default η_σ; start 1, σ0 = 0.5.
    # (Rosenbrock 10-d is not solved in a test's budget: the diagonal σ follows its curved
    # valley slowly, f ≈ 0.02 after 12000 iterations; the unmirrored method is no faster.)
    for seed in (0, 1):
        es = AskTell("snes", np.ones(dim), seed, sigma=0.5)
        for _ in range(iterations):
            X = es.ask()
            es.tell(sphere(X))
        assert np.sum(es.mean**2) < 1e-12
        assert es.strategy.sigma.max() < 1e-5  # σ adapted down with the distance


def trainer_like(algo, x0, seed, popsize, sigma, iterations, f, exploration):
    """A fresh strategy object every iteration, given only the previous state() (as the
    trainer does): resume is exact only if state() / load() carry everything."""
    es = AskTell(algo, x0, seed, popsize=popsize, sigma=sigma, exploration=exploration)
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
def test_snes_resumes_exactly(tmp_path, exploration):
    def run(es, n):
        for _ in range(n):
            X = es.ask()
            f = sphere(X - 0.3)
            f[3] = np.nan  # pair 1 fails every iteration: dropped
            es.tell(f)
        return es

    kw = dict(popsize=12, sigma=0.4, exploration=exploration)
    x0 = np.linspace(-1, 1, 5)
    whole = run(AskTell("snes", x0, 3, **kw), 12)
    half = run(AskTell("snes", x0, 3, **kw), 7)
    half.save(tmp_path)
    resumed = run(AskTell.load(tmp_path), 5)
    again = run(AskTell.from_state(*half.state()), 5)
    for es in (resumed, again):
        assert np.array_equal(es.mean, whole.mean)
        assert np.array_equal(es.strategy.sigma, whole.strategy.sigma)
        assert es.iteration == 12
    assert not np.array_equal(whole.strategy.sigma, np.full(5, 0.4))  # σ did move

    theta, arrays = trainer_like("snes", x0, 3, 12, 0.4, 12, lambda X: sphere(X - 0.3),
                                 exploration)
    plain = AskTell("snes", x0, 3, **kw)
    for _ in range(12):
        plain.tell(sphere(plain.ask() - 0.3))
    assert np.array_equal(theta, plain.mean)
    assert np.array_equal(arrays["snes_sigma"], plain.strategy.sigma)


def test_snes_refuses_bad_input():
    # One pair: its utilities are ±1/2, so ∇_σ = 0 for ever.
    with pytest.raises(ConfigError, match=r"^snes needs at least 2 antithetic pairs per "
                       r"iteration \(4 candidates\), got directions = 1$"):
        AskTell("snes", np.zeros(3), popsize=2)
    with pytest.raises(ConfigError, match="at least 2 antithetic pairs"):
        resolve(TrainConfig(strategy=StrategyConfig(algo="snes", directions=1)))
    with pytest.raises(ConfigError, match=r"^sigma_lr must be a positive number, got -0\.1$"):
        AskTell("snes", np.zeros(3), popsize=4, sigma_lr=-0.1)
    es = snes()
    with pytest.raises(ConfigError, match=r"^snes_sigma has shape \(3,\), expected \(2,\)$"):
        es.load({"snes_sigma": np.ones(3)}, {})


def test_snes_defaults_resolve():
    cfg = resolve(TrainConfig(strategy=StrategyConfig(algo="snes", directions=4)))
    assert cfg.strategy.step_size == 1.0 and cfg.strategy.optimizer is None
    s = make_strategy(cfg.strategy, Directions("orthogonal", 0, 50, None))
    assert s.sigma_lr == pytest.approx((3 + math.log(50)) / (5 * math.sqrt(50)))
    np.testing.assert_array_equal(s.sigma, np.full(50, cfg.strategy.noise_std))
