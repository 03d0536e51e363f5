"""A chunk's Results travel as one array per field and arrive equal, field for field."""

from __future__ import annotations

import pickle

import numpy as np

from es_compact.rollout import EVAL, TRAIN, Result, Results


def _same(a: Result, b: Result) -> bool:
    def arr(x, y):
        return (x is None and y is None) or (
            x is not None and y is not None and x.dtype == y.dtype and x.shape == y.shape
            and x.tobytes() == y.tobytes())
    return (a.kind, a.index, a.obs_count, a.failed, a.error, a.env_seconds, a.busy_seconds) == \
        (b.kind, b.index, b.obs_count, b.failed, b.error, b.env_seconds, b.busy_seconds) and \
        arr(a.returns, b.returns) and arr(a.steps, b.steps) and \
        arr(a.obs_mean, b.obs_mean) and arr(a.obs_m2, b.obs_m2)


def _train(rng, k, failed=False, dim=7):
    if failed:
        return Result(TRAIN, k, np.full(2, np.nan), np.array([3, 0]), failed=True,
                      error="ValueError: boom", busy_seconds=0.25)
    return Result(TRAIN, k, rng.normal(size=2), rng.integers(1, 1000, 2), int(rng.integers(2000)),
                  rng.normal(size=dim), rng.random(dim), env_seconds=rng.random(),
                  busy_seconds=rng.random())


def test_results_round_trip_field_for_field():
    rng = np.random.default_rng(0)
    chunks = [
        [_train(rng, k, failed=k % 4 == 1) for k in range(9)],
        [Result(EVAL, e, np.array([rng.normal()]), np.array([1000])) for e in range(3)],
        [_train(rng, 5)],
        [_train(rng, 0, dim=3), _train(rng, 1, dim=4)],  # not of one shape: sent as a list
        [],
    ]
    for chunk in chunks:
        back = pickle.loads(pickle.dumps(Results(chunk), protocol=5))
        assert type(back) is Results and len(back) == len(chunk)
        assert all(_same(a, b) for a, b in zip(chunk, back, strict=True))


def test_results_travel_in_fewer_bytes_than_a_list():
    rng = np.random.default_rng(1)
    chunk = [_train(rng, k) for k in range(50)]
    assert len(pickle.dumps(Results(chunk), protocol=5)) < len(pickle.dumps(chunk, protocol=5))
