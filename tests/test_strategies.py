"""Strategies by hand: an ARS step on two parameters, centred ranks, top-b, directions,
the observation normaliser's merge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from es_compact.config import StrategyConfig, TrainConfig
from es_compact.errors import ConfigError
from es_compact.exploration import Directions, Plan, hadamard_block, orthogonal_block
from es_compact.noise import NoiseTable, build_table
from es_compact.normalizer import RunningStat
from es_compact.presets import resolve
from es_compact.strategies import STRATEGIES, Strategy, make_strategy, register_strategy
from es_compact.strategies.shaping import centered_ranks, top_directions

TABLE = NoiseTable(np.array([1, 0, 0, 1, 5, 5], dtype=np.float32))
PLAN = Plan(iteration=0, count=2, offsets=np.array([0, 2]))  # δ0 = (1, 0), δ1 = (0, 1)
RETURNS = np.array([[3.0, 1.0], [2.0, 2.0]])


def strategy(**kw):
    cfg = StrategyConfig(directions=2, top=2, step_size=0.1, noise_std=0.02, **kw)
    return make_strategy(cfg, Directions("gaussian", 0, 2, TABLE))


def test_ars_step_by_hand():
    theta = np.array([0.5, -0.25])
    # V1: all directions; σ_R = std(3, 1, 2, 2) = sqrt(0.5); Σ (r+ - r-) δ = 2 δ0 + 0 δ1
    new = strategy(variant="v1").tell(theta, PLAN, RETURNS)
    np.testing.assert_array_equal(new, theta + 0.1 / (2 * np.sqrt(0.5)) * np.array([2.0, 0.0]))
    # V1-t with b = 1: direction 0 wins (max 3 > 2); σ_R = std(3, 1) = 1
    cfg = StrategyConfig(variant="v1t", directions=2, top=1, step_size=0.1, noise_std=0.02)
    new = make_strategy(cfg, Directions("gaussian", 0, 2, TABLE)).tell(theta, PLAN, RETURNS)
    np.testing.assert_array_equal(new, theta + np.array([0.2, 0.0]))


def test_ars_drops_invalid_pairs_and_equal_returns_give_no_step():
    theta = np.array([0.5, -0.25])
    new = strategy(variant="v1").tell(theta, PLAN, np.array([[3.0, 1.0], [np.nan, 2.0]]),
                                      valid=np.array([True, False]))
    np.testing.assert_array_equal(new, theta + 0.1 / (1 * 1.0) * np.array([2.0, 0.0]))
    same = strategy(variant="v1").tell(theta, PLAN, np.ones((2, 2)))
    np.testing.assert_array_equal(same, theta)


def test_es_adam_step_by_hand():
    theta = np.array([0.5, -0.25])
    es = strategy(algo="es", l2_coeff=0.0)
    # centred ranks of (3, 1, 2, 2): 1 -> -1/2, 2 -> -1/6, 2 -> 1/6, 3 -> 1/2
    g = (1.0 * np.array([1.0, 0.0]) + (-1 / 3) * np.array([0.0, 1.0])) / 4
    np.testing.assert_allclose(es.gradient(theta, PLAN, np.arange(2), RETURNS), g, atol=1e-15)
    new = es.tell(theta, PLAN, RETURNS)
    # Adam's first step: a = lr √(1-β2) / (1-β1), m = (1-β1) g, √v = √(1-β2) |g|
    a = 0.1 * np.sqrt(0.001) / 0.1
    np.testing.assert_allclose(new, theta + a * 0.1 * g / (np.sqrt(0.001) * np.abs(g) + 1e-8),
                               rtol=1e-12)
    arrays, meta = es.state()
    assert meta["opt_t"] == 1 and arrays["opt_m"].shape == (2,)


def test_es_l2_decay_and_momentum():
    theta = np.array([1.0, 2.0])
    sgd = strategy(algo="es", optimizer="sgd", momentum=0.5, l2_coeff=0.1)
    g = sgd.gradient(theta, PLAN, np.arange(2), RETURNS)
    np.testing.assert_allclose(g, np.array([0.25, -1 / 12]) - 0.1 * theta)
    new = sgd.tell(theta, PLAN, RETURNS)
    np.testing.assert_allclose(new, theta + 0.1 * 0.5 * g)


def test_centered_ranks():
    r = centered_ranks(np.array([[5.0, 1.0], [3.0, 7.0]]))
    np.testing.assert_allclose(r, [[1 / 6, -0.5], [-1 / 6, 0.5]])
    ties = centered_ranks(np.array([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(ties, [-0.5, 0.0, 0.5])  # stable: by position
    assert centered_ranks(np.array([4.0])).tolist() == [0.0]


def test_top_directions():
    r = np.array([[1.0, 0.0], [0.0, 9.0], [5.0, 5.0], [9.0, 2.0]])
    assert top_directions(r, 2).tolist() == [1, 3]  # ties by index
    assert top_directions(r, 10).tolist() == [1, 3, 2, 0]


@pytest.mark.parametrize("rows,dim", [(5, 5), (3, 40), (40, 40)])
def test_orthogonal_block_is_exactly_orthogonal(rows, dim):
    B = orthogonal_block(np.random.default_rng(0), rows, dim)
    G = B @ B.T
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() < 1e-10 * np.diag(G).max()


def test_orthogonal_directions_norms_are_chi_and_entries_gaussian():
    dim = 10
    rng = np.random.default_rng(1)
    blocks = np.concatenate([orthogonal_block(rng, dim, dim) for _ in range(400)])
    norms = np.linalg.norm(blocks, axis=1)
    assert scipy.stats.kstest(norms, scipy.stats.chi(dim).cdf).pvalue > 0.01
    assert scipy.stats.kstest(blocks[:, 3], "norm").pvalue > 0.01


def test_hadamard_directions():
    B = hadamard_block(np.random.default_rng(3), 16, 16)  # power of two: exactly orthogonal
    G = B @ B.T
    assert np.abs(G - np.diag(np.diag(G))).max() < 1e-9 * np.diag(G).max()
    B = hadamard_block(np.random.default_rng(4), 6, 13)  # padded and truncated
    assert B.shape == (6, 13) and np.isfinite(B).all()


def test_directions_reproducible_and_blocked():
    d = Directions("orthogonal", 7, 4, None)
    plan = d.plan(3, 10)  # blocks of 4, 4, 2
    M = d.matrix(plan, range(10))
    again = Directions("orthogonal", 7, 4, None).matrix(plan, range(10))
    np.testing.assert_array_equal(M, again)
    first = M[:4] @ M[:4].T
    assert np.abs(first - np.diag(np.diag(first))).max() < 1e-10 * first.max()
    table = NoiseTable.build(5, 10_000)
    g = Directions("gaussian", 5, 30, table)
    p1, p2 = g.plan(4, 6), g.plan(4, 6)
    np.testing.assert_array_equal(p1.offsets, p2.offsets)
    assert not np.array_equal(p1.offsets, g.plan(5, 6).offsets)
    np.testing.assert_array_equal(g.get(p1, 2), table.table[p1.offsets[2] : p1.offsets[2] + 30])


def test_noise_table_is_seeded_standard_normal():
    a, b = build_table(1, 200_000), build_table(1, 200_000)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01
    assert not np.array_equal(a[:100], build_table(2, 100))


def test_normaliser_merge_equals_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, (n, 4)) for n in (1, 7, 100, 3, 0, 50)]
    stat = RunningStat(4)
    for c in chunks:
        stat.merge(*RunningStat.moments(c))
    data = np.concatenate(chunks)
    assert stat.count == len(data)
    np.testing.assert_allclose(stat.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stat.var, data.var(axis=0), rtol=1e-10)


def test_normaliser_floors_tiny_variance():
    stat = RunningStat(2, var_floor=1e-8)
    stat.merge(*RunningStat.moments(np.array([[1.0, 5.0], [1.0, 6.0]])))
    mean, std = stat.frozen()
    assert std[0] == pytest.approx(1e-4) and np.isfinite((np.array([1.0, 5.0]) - mean) / std).all()
    fresh = RunningStat(3).frozen()
    np.testing.assert_array_equal(fresh[1], np.ones(3))


def test_a_registered_strategy_is_built_and_resolved(monkeypatch):
    class Still(Strategy):
        name = "still"

        def _tell(self, theta, plan, ks, returns_n2):
            return theta.copy()

    monkeypatch.setitem(STRATEGIES, "still", None)  # so the registration is undone afterwards
    assert register_strategy("still", Still) is Still
    cfg = resolve(TrainConfig(strategy=StrategyConfig(algo="still")))
    s = make_strategy(cfg.strategy, Directions("gaussian", 0, 2, TABLE))
    assert isinstance(s, Still)
    np.testing.assert_array_equal(s.tell(np.ones(2), PLAN, RETURNS), np.ones(2))
    with pytest.raises(ConfigError, match="Strategy subclass"):
        register_strategy("bad", dict)
