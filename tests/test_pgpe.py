"""PGPE with ClipUp and Adam: steps by hand on two parameters, ClipUp's speed limit and σ's
change limit as properties, blackboxes solved by ask / tell, exact resume, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from es_compact.config import StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan, perturb
from es_compact.noise import NoiseTable
from es_compact.presets import resolve
from es_compact.strategies import STRATEGIES, make_strategy
from es_compact.strategies.ask_tell import AskTell
from es_compact.strategies.pgpe import PGPE, clipup
from es_compact.strategies.shaping import centered_ranks

# δ0 = (1, 2), δ1 = (-1, 0.5): exact in float32.
TABLE = NoiseTable(np.array([1, 2, -1, 0.5, 0, 0], dtype=np.float32))
PLAN = Plan(iteration=0, count=2, offsets=np.array([0, 2]))
D0, D1 = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
THETA = np.array([0.5, -0.25])
SIGMA = np.array([0.1, 0.2])
# Centred ranks of (3, 1, 2, 5): 1 -> -1/2, 2 -> -1/6, 3 -> 1/6, 5 -> 1/2, so
# f+ = (1/6, -1/6), f- = (-1/2, 1/2); d = (f+ - f-)/2 = (1/3, -1/3); a = (f+ + f-)/2 = (-1/6, 1/6).
RETURNS = np.array([[3.0, 1.0], [2.0, 5.0]])


def pgpe(optimizer="clipup", sigma=SIGMA, **kw):
    cfg = StrategyConfig(algo="pgpe", directions=2, top=2, step_size=0.1, noise_std=0.1,
                         optimizer=optimizer, **kw)
    s = make_strategy(cfg, Directions("gaussian", 0, 2, TABLE))
    arrays, meta = s.state()
    s.load({**arrays, "pgpe_sigma": sigma}, meta)
    return s


def unit(x):
    return x / np.linalg.norm(x)


def test_registered_with_its_defaults():
    assert STRATEGIES["pgpe"] is PGPE
    assert PGPE.optimizers == ("clipup", "adam") and PGPE.min_directions == 1
    s = resolve(TrainConfig(strategy=StrategyConfig(algo="pgpe"))).strategy
    assert s.step_size == 0.0075 and s.optimizer == "clipup"
    p = make_strategy(s, Directions("gaussian", 0, 3, NoiseTable.build(0, 1000)))
    assert p.max_speed == 0.015 and p.sigma_lr == 0.1
    nu, scale = p.noise()
    assert nu == 1.0 and np.array_equal(scale, np.full(3, s.noise_std))


def test_gradients_by_hand():
    g_mu, g_sigma = pgpe().gradients(PLAN, np.arange(2), RETURNS)
    # g_μ = σ ⊙ (d0 δ0 + d1 δ1) / 2 = σ ⊙ (1/3 (1, 2) - 1/3 (-1, 0.5)) / 2 = σ ⊙ (1/3, 1/4)
    np.testing.assert_allclose(g_mu, SIGMA * np.array([1 / 3, 1 / 4]), rtol=0, atol=1e-15)
    # g_σ = σ ⊙ (a0 (δ0² - 1) + a1 (δ1² - 1)) / 2 = σ ⊙ (-1/6 (0, 3) + 1/6 (0, -0.75)) / 2
    #     = σ ⊙ (0, -0.3125) = (0, -0.0625)
    np.testing.assert_allclose(g_sigma, [0.0, -0.0625], rtol=0, atol=1e-15)


def test_clipup_steps_by_hand():
    s = pgpe(max_speed=0.15)
    new = s.tell(THETA, PLAN, RETURNS)
    # Step 1: v = 0 m + α g/‖g‖ with g = (1/30, 1/20) ∝ (2, 3): v = 0.1 (2, 3)/√13, ‖v‖ = 0.1
    # below v_max = 0.15, so θ1 = θ + v.
    v1 = 0.1 * np.array([2.0, 3.0]) / np.sqrt(13.0)
    np.testing.assert_allclose(new, THETA + v1, rtol=0, atol=1e-12)
    # σ1 = σ + 0.1 g_σ = (0.1, 0.2 - 0.00625): a change of 3.125 %, inside the 20 % limit.
    sigma1 = np.array([0.1, 0.19375])
    np.testing.assert_allclose(s.sigma, sigma1, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(s.state()[0]["pgpe_velocity"], s.velocity)
    # Step 2 (same directions and returns): g2 = σ1 ⊙ (1/3, 1/4); v' = 0.9 v1 + 0.1 g2/‖g2‖ has
    # ‖v'‖ ≈ 0.19 > 0.15, so v2 = 0.15 v'/‖v'‖.
    g2 = sigma1 * np.array([1 / 3, 1 / 4])
    v_raw = 0.9 * v1 + 0.1 * unit(g2)
    assert np.linalg.norm(v_raw) > 0.15
    v2 = 0.15 * unit(v_raw)
    newer = s.tell(new, PLAN, RETURNS)
    np.testing.assert_allclose(newer, THETA + v1 + v2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.velocity, v2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(s.velocity), 0.15, rtol=1e-12)
    np.testing.assert_allclose(s.sigma, sigma1 * np.array([1.0, 1 - 0.03125]), rtol=1e-12)


def test_adam_steps_by_hand():
    s = pgpe("adam")
    new = s.tell(THETA, PLAN, RETURNS)
    g1 = SIGMA * np.array([1 / 3, 1 / 4])
    # t = 1: m = (1 - β1) g, s = (1 - β2) g², a = α √(1 - β2) / (1 - β1)
    m1, s1 = 0.1 * g1, 0.001 * g1**2
    a1 = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    theta1 = THETA + a1 * m1 / (np.sqrt(s1) + 1e-8)
    np.testing.assert_allclose(new, theta1, rtol=0, atol=1e-12)
    # t = 2 with σ1 = (0.1, 0.19375): a = α √(1 - β2²) / (1 - β1²)
    g2 = np.array([0.1, 0.19375]) * np.array([1 / 3, 1 / 4])
    m2, s2 = 0.9 * m1 + 0.1 * g2, 0.999 * s1 + 0.001 * g2**2
    a2 = 0.1 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    newer = s.tell(new, PLAN, RETURNS)
    np.testing.assert_allclose(newer, theta1 + a2 * m2 / (np.sqrt(s2) + 1e-8), rtol=0,
                               atol=1e-12)
    arrays, meta = s.state()
    assert meta == {"pgpe_adam_t": 2}
    assert sorted(arrays) == ["pgpe_adam_m", "pgpe_adam_s", "pgpe_sigma"]
    np.testing.assert_allclose(arrays["pgpe_adam_m"], m2, rtol=1e-12)
    np.testing.assert_allclose(arrays["pgpe_adam_s"], s2, rtol=1e-12)


def test_sigma_relative_change_is_clipped():
    # Returns (3, 1, 2, 5): g_σ = (0, -0.0625); with η_σ = 1 the target σ2 = 0.2 - 0.0625 =
    # 0.1375 (-31 %) is clipped to 0.2 (1 - 0.2) = 0.16; σ1's target is itself (g_σ1 = 0).
    s = pgpe(sigma_lr=1.0)
    s.tell(THETA, PLAN, RETURNS)
    np.testing.assert_allclose(s.sigma, [0.1, 0.16], rtol=0, atol=1e-15)
    # Returns (5, 3, 1, 2): f = (1/2, 1/6, -1/2, -1/6), a = (1/3, -1/3);
    # g_σ = σ ⊙ (1/3 (0, 3) - 1/3 (0, -0.75)) / 2 = σ ⊙ (0, 0.625) = (0, 0.125); with η_σ = 0.5
    # the target 0.2625 (+31 %) is clipped to 0.24, or kept with sigma_max_change 0.5.
    up = np.array([[5.0, 3.0], [1.0, 2.0]])
    s = pgpe(sigma_lr=0.5)
    s.tell(THETA, PLAN, up)
    np.testing.assert_allclose(s.sigma, [0.1, 0.24], rtol=0, atol=1e-15)
    s = pgpe(sigma_lr=0.5, sigma_max_change=0.5)
    s.tell(THETA, PLAN, up)
    np.testing.assert_allclose(s.sigma, [0.1, 0.2625], rtol=0, atol=1e-15)


def test_sigma_change_never_exceeds_the_limit_while_searching():
    # At the sphere's optimum with σ = 1 every σ_i wants to shrink fast: η_σ = 5 asks for more
    # than the 15 % a step allows. (Far from it, in the linear regime, each pair has one good
    # and one bad end, a_k is often 0 for every pair and σ does not move.)
    es = AskTell("pgpe", np.zeros(12), seed=4, popsize=8, sigma=1.0, sigma_lr=5.0,
                 sigma_max_change=0.15)
    ratios = []
    for _ in range(60):
        before = es.strategy.sigma
        X = es.ask()
        es.tell(-np.sum(X**2, axis=1))
        ratios.append(np.abs(es.strategy.sigma / before - 1))
    ratios = np.concatenate(ratios)
    assert ratios.max() <= 0.15 * (1 + 1e-12)
    assert (ratios > 0.15 * (1 - 1e-12)).mean() > 0.5  # the limit is in force, often


def test_clipup_speed_never_exceeds_max_speed():
    rng = np.random.default_rng(0)
    for _ in range(200):
        dim = int(rng.integers(1, 40))
        step, momentum = 10.0 ** rng.uniform(-4, 1), rng.uniform(0, 0.999)
        max_speed = step * 10.0 ** rng.uniform(-1, 1.5)  # below and above α
        v = np.zeros(dim)
        for _ in range(30):
            g = rng.standard_normal(dim) * 10.0 ** rng.uniform(-150, 150)
            if rng.random() < 0.5:  # persistent directions build speed up to the limit
                g = np.abs(g)
            v = clipup(v, g, step, momentum, max_speed)
            assert np.linalg.norm(v) <= max_speed * (1 + 1e-12)
    # Along one direction the speed saturates at exactly v_max (α / (1 - m) = 1 > 0.3).
    v = np.zeros(3)
    for _ in range(50):
        v = clipup(v, np.array([1.0, 2.0, 2.0]), 0.1, 0.9, 0.3)
    np.testing.assert_allclose(v, 0.3 * np.array([1.0, 2.0, 2.0]) / 3, rtol=1e-12)


def test_clipup_centre_moves_at_most_max_speed():
    es = AskTell("pgpe", np.ones(15), seed=2, popsize=10, sigma=0.2, step_size=0.05,
                 max_speed=0.08)
    for _ in range(40):
        before = es.mean
        X = es.ask()
        es.tell(-np.sum(X**2, axis=1))
        assert np.linalg.norm(es.mean - before) <= 0.08 * (1 + 1e-12)


def test_zero_gradient_is_no_step():
    assert clipup(np.ones(2), np.zeros(2), 0.1, 0.9, 0.2) is None
    zero = Directions("gaussian", 0, 2, NoiseTable(np.zeros(6, dtype=np.float32)))
    cfg = StrategyConfig(algo="pgpe", directions=2, top=2, step_size=0.1, noise_std=0.1)
    s = make_strategy(cfg, zero)
    s.load({"pgpe_sigma": SIGMA, "pgpe_velocity": np.array([0.03, -0.04])}, {})
    # δ = 0: g_μ = 0 (θ and v stay) and g_σ = σ ⊙ (a0 + a1)(0 - 1)/2 = 0 (centred ranks sum to 0).
    new = s.tell(THETA, PLAN, RETURNS)
    np.testing.assert_array_equal(new, THETA)
    np.testing.assert_array_equal(s.velocity, [0.03, -0.04])
    np.testing.assert_array_equal(s.sigma, SIGMA)


def test_invalid_pairs_are_dropped():
    s = pgpe()
    new = s.tell(THETA, PLAN, np.array([[3.0, 1.0], [np.nan, 2.0]]), valid=np.array([True, False]))
    # One pair: f = (1/2, -1/2), d0 = 1/2, a0 = 0; g_μ = σ ⊙ δ0 / 2 = (0.05, 0.2) ∝ (1, 4), N' = 1.
    np.testing.assert_allclose(new, THETA + 0.1 * np.array([1.0, 4.0]) / np.sqrt(17.0),
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(s.sigma, SIGMA)


def test_candidates_are_theta_plus_minus_sigma_delta():
    es = AskTell("pgpe", np.arange(5.0), seed=3, popsize=6, sigma=0.1)
    sigma = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    arrays, meta = es.strategy.state()
    es.strategy.load({**arrays, "pgpe_sigma": sigma}, meta)
    X = es.ask()
    plan = es.strategy.ask(0)
    for k in range(3):
        delta = np.asarray(es.strategy.directions.get(plan, k), dtype=np.float64)
        np.testing.assert_array_equal(X[2 * k], perturb(np.arange(5.0), 1.0, 1.0, sigma, delta))
        np.testing.assert_allclose(X[2 * k + 1], np.arange(5.0) - sigma * delta, rtol=1e-15)


def reference_pgpe(f_n2, eps, sigma):
    """The gradients as Sehnke et al. and pgpelib write them, in ε = σ ⊙ δ, with the mean of
    the shaped fitness as baseline: a plain twin of PGPE.gradients."""
    ranks = centered_ranks(f_n2)
    b = ranks.mean()
    g_mu = sum(e * (fp - fm) / 2 for e, (fp, fm) in zip(eps, ranks, strict=True)) / len(eps)
    g_sigma = sum(((fp + fm) / 2 - b) * (e**2 - sigma**2) / sigma
                  for e, (fp, fm) in zip(eps, ranks, strict=True)) / len(eps)
    return g_mu, g_sigma


@pytest.mark.parametrize("optimizer", ["clipup", "adam"])
def test_equals_a_plain_reference_over_many_iterations(optimizer):
    es = AskTell("pgpe", np.ones(9), seed=7, popsize=10, sigma=0.2, step_size=0.05,
                 optimizer=optimizer)
    mu, sigma, v, m, s = np.ones(9), np.full(9, 0.2), np.zeros(9), np.zeros(9), np.zeros(9)
    for it in range(50):
        X = es.ask()
        f = -np.sum((X - 0.3) ** 2, axis=1)
        plan = es.strategy.ask(it)
        eps = [sigma * np.asarray(es.strategy.directions.get(plan, k), dtype=np.float64)
               for k in range(5)]
        g_mu, g_sigma = reference_pgpe(f.reshape(-1, 2), eps, sigma)
        if optimizer == "clipup":
            v = 0.9 * v + 0.05 * g_mu / np.sqrt(np.sum(g_mu**2))
            v = v * min(1.0, 0.1 / np.sqrt(np.sum(v**2)))
            mu = mu + v
        else:
            m, s = 0.9 * m + 0.1 * g_mu, 0.999 * s + 0.001 * g_mu**2
            mu = mu + 0.05 * np.sqrt(1 - 0.999 ** (it + 1)) / (1 - 0.9 ** (it + 1)) * m / (
                np.sqrt(s) + 1e-8)
        sigma = np.clip(sigma + 0.1 * g_sigma, 0.8 * sigma, 1.2 * sigma)
        es.tell(f)
        np.testing.assert_allclose(es.mean, mu, rtol=0, atol=1e-12)
        np.testing.assert_allclose(es.strategy.sigma, sigma, rtol=0, atol=1e-12)
    assert np.abs(mu - 1).max() > 0.5  # it moved


def sphere(X):
    return -np.sum(X**2, axis=1)


def rosenbrock(X):
    return -np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def test_clipup_solves_the_sphere():
    # 20-d sphere from (1, ..., 1), f = 20: below 0.02 within 300 iterations. ClipUp's constant
    # α keeps the centre moving at a speed of order α, so it settles at a distance of order α.
    es = AskTell("pgpe", np.ones(20), seed=1, popsize=20, sigma=0.5, step_size=0.02)
    for _ in range(300):
        X = es.ask()
        es.tell(sphere(X))
    assert np.sum(es.mean**2) < 0.02


def test_adam_solves_rosenbrock():
    # 10-d Rosenbrock from 0 (f = 9): below 1e-3 within 1000 iterations.
    es = AskTell("pgpe", np.zeros(10), seed=0, popsize=40, sigma=0.1, step_size=0.02,
                 optimizer="adam")
    for _ in range(1000):
        X = es.ask()
        es.tell(rosenbrock(X))
    assert -rosenbrock(es.mean[None])[0] < 1e-3


def run(es, iterations):
    for _ in range(iterations):
        X = es.ask()
        f = sphere(X - 0.5)
        f[3] = np.nan  # a failed candidate drops its pair
        es.tell(f)
    return es


def assert_same_state(a, b):
    (xa, ma), (xb, mb) = a.state(), b.state()
    assert sorted(xa) == sorted(xb) and ma == mb
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k


@pytest.mark.parametrize("optimizer", ["clipup", "adam"])
def test_exact_resume(tmp_path, optimizer):
    def fresh():
        return AskTell("pgpe", np.ones(7), seed=5, popsize=8, sigma=0.3, step_size=0.05,
                       optimizer=optimizer)

    whole = run(fresh(), 10)
    split = run(fresh(), 4)
    split.save(tmp_path)
    resumed = run(AskTell.load(tmp_path), 6)
    assert np.array_equal(resumed.mean, whole.mean)
    assert_same_state(resumed, whole)
    again = run(AskTell.from_state(*run(fresh(), 4).state()), 6)
    assert_same_state(again, whole)


@pytest.mark.parametrize("optimizer", ["clipup", "adam"])
def test_a_fresh_strategy_per_iteration_continues_exactly(optimizer):
    """The trainer's protocol: load() before every ask, state() after every tell. A strategy
    rebuilt each iteration from the last state() equals one kept throughout."""
    cfg = StrategyConfig(algo="pgpe", directions=4, top=4, step_size=0.05, noise_std=0.3,
                         optimizer=optimizer)
    directions = Directions("orthogonal", 9, 6, None)
    kept = make_strategy(cfg, directions)
    theta_a = theta_b = np.ones(6)
    state = kept.state()
    for it in range(8):
        fresh = make_strategy(cfg, directions)
        fresh.load(*state)
        for s, theta in ((kept, theta_a), (fresh, theta_b)):
            plan = s.ask(it)
            nu, scale = s.noise()
            X = np.array([[perturb(theta, sign, nu, scale, s.directions.get(plan, k))
                           for sign in (1.0, -1.0)] for k in range(plan.count)])
            new = s.tell(theta, plan, -np.sum((X - 0.5) ** 2, axis=2))
            if s is kept:
                theta_a = new
            else:
                theta_b = new
        state = fresh.state()
        assert np.array_equal(theta_a, theta_b)
        for k, v in kept.state()[0].items():
            assert np.array_equal(v, state[0][k]), k
        assert kept.state()[1] == state[1]


BAD = [
    (dict(optimizer="sgd"), "optimizer 'sgd' is not one of pgpe's: clipup, adam"),
    (dict(popsize=3), "popsize must be an even integer >= 2"),
    (dict(popsize=0), "popsize must be an even integer >= 2"),
    (dict(popsize=8, top=2), "top (b = 2) applies to ARS v1t and v2t only; PGPE uses all 4"),
    (dict(sigma_max_change=1.0), "sigma_max_change must lie in (0, 1)"),
    (dict(sigma_lr=0.0), "sigma_lr must be a positive number"),
    (dict(max_speed=-1.0), "max_speed must be a positive number"),
    (dict(step_size=float("nan")), "step_size must be a positive number"),
    (dict(momentum=1.0), "momentum must lie in [0, 1)"),
    (dict(sigma=0.0), "noise_std must be a positive number"),
]


@pytest.mark.parametrize("kw,message", BAD, ids=[m.split()[0] for _, m in BAD])
def test_bad_settings_are_one_line_errors(kw, message):
    with pytest.raises(ConfigError) as exc:
        AskTell("pgpe", np.zeros(4), **kw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_too_few_pairs_is_refused():
    with pytest.raises(ConfigError, match="^pgpe needs at least 1 antithetic pairs"):
        PGPE.check_config(StrategyConfig(algo="pgpe", directions=0))
