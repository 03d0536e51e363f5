"""The packaged point clouds and g50: shapes, normalisation, determinism, bad names."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from es_compact import datasets as ds
from es_compact.errors import ConfigError

SHAPES = {"g50": (550, 50), "boston": (506, 13), "cpu": (209, 7), "insurance": (5822, 85),
          "wine": (1599, 11), "parkinson": (5875, 20)}


@pytest.mark.parametrize("name", ds.DATASETS)
def test_every_dataset_loads_normalised(name):
    X = ds.load(name)
    assert X.shape == SHAPES[name]
    assert X.dtype == np.float64 and np.all(np.isfinite(X))
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)


def test_raw_files_are_the_shipped_values():
    X = ds.raw("boston")
    # First value of the shared CSV (mean-centred UCI housing).
    assert X[0, 0] == pytest.approx(-3.4688)
    assert set(ds.FILES) | {"g50"} == set(ds.DATASETS)


def test_normalise_standardises_columns_then_scales_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3)) * [1.0, 100.0, 0.01] + [5.0, -2.0, 0.0]
    X[:, 2] = 7.0  # a constant column becomes zero instead of dividing by zero
    Z = ds.normalise(X)
    S = (X[:, :2] - X[:, :2].mean(axis=0)) / X[:, :2].std(axis=0)
    expected = S / np.linalg.norm(S, axis=1, keepdims=True)
    np.testing.assert_allclose(Z[:, :2], expected, atol=1e-12)
    np.testing.assert_array_equal(Z[:, 2], 0.0)


def test_g50_is_deterministic_with_the_stated_separation():
    X = ds.g50()
    np.testing.assert_array_equal(X, ds.g50())
    assert not np.array_equal(X, ds.g50(seed=1))
    u = np.ones(50) / np.sqrt(50)
    gap = (X[275:].mean(axis=0) - X[:275].mean(axis=0)) @ u
    # 2 Φ⁻¹(0.95) ≈ 3.29 apart along u; the estimate has standard error sqrt(2 / 275).
    assert abs(gap - 2 * norm.ppf(0.95)) < 4 * np.sqrt(2 / 275)
    np.testing.assert_allclose(X.std(axis=0).mean(), np.sqrt(1 + norm.ppf(0.95) ** 2 / 50),
                               rtol=0.05)


def test_subsample_is_seeded_and_keeps_small_sets_whole():
    X = ds.load("cpu")
    assert ds.subsample(X, 550, np.random.default_rng(0)) is X
    a = ds.subsample(ds.load("wine"), 550, np.random.default_rng(3))
    b = ds.subsample(ds.load("wine"), 550, np.random.default_rng(3))
    assert a.shape == (550, 11)
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown dataset 'iris'"):
        ds.load("iris")
    with pytest.raises(ConfigError, match="non-finite"):
        ds.normalise(np.array([[1.0, np.nan]]))
    with pytest.raises(ConfigError, match="non-empty"):
        ds.normalise(np.ones(3))
    with pytest.raises(ConfigError, match="positive"):
        ds.subsample(np.ones((3, 2)), 0, np.random.default_rng(0))
