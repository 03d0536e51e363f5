"""RunningStat: merge_all is merge in a loop, bitwise; both equal np.mean / np.var."""

from __future__ import annotations

import numpy as np
import pytest

from es_compact.normalizer import RunningStat


def _parts(rng, rows, dim, empty_every=0):
    parts = []
    for j in range(rows):
        n = 0 if empty_every and j % empty_every == 3 else int(rng.integers(1, 2000))
        X = rng.normal(rng.normal(0, 10, dim), rng.uniform(0.01, 5, dim), (n, dim))
        parts.append((X, RunningStat.moments(X)))
    return parts


@pytest.mark.parametrize("dim,rows,empty_every", [(17, 32, 0), (376, 230, 7), (3, 1, 0),
                                                  (5, 50, 2)])
def test_merge_all_is_merge_in_turn_bitwise(dim, rows, empty_every):
    rng = np.random.default_rng(dim + rows)
    parts = _parts(rng, rows, dim, empty_every)
    for start in (None, _parts(rng, 1, dim)[0][1]):  # fresh, and already holding data
        one, many = RunningStat(dim), RunningStat(dim)
        if start is not None:
            one.merge(*start)
            many.merge(*start)
        held = one.mean
        for _, (c, m, q) in parts:
            one.merge(c, m, q)
        many.merge_all(*zip(*[p[1] for p in parts], strict=True))
        assert many.count == one.count
        assert many.mean.tobytes() == one.mean.tobytes()
        assert many.m2.tobytes() == one.m2.tobytes()
        if start is not None:
            assert held is not many.mean  # the arrays held before are not changed in place


def test_merged_moments_equal_numpy_on_the_concatenation():
    rng = np.random.default_rng(0)
    parts = _parts(rng, 40, 6)
    stat = RunningStat(6)
    stat.merge_all(*zip(*[p[1] for p in parts], strict=True))
    X = np.concatenate([p[0] for p in parts])
    assert stat.count == len(X)
    np.testing.assert_allclose(stat.mean, X.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stat.var, X.var(axis=0), rtol=1e-10)


def test_merge_all_of_nothing_changes_nothing():
    stat = RunningStat(4)
    stat.merge_all([], [], [])
    stat.merge_all([0], [np.ones(4)], [np.ones(4)])
    assert stat.count == 0 and not stat.mean.any()
