"""The point clouds of the KAMA-NN paper's kernel experiments (Figures 1 and 2).

Five small UCI / COIL files ship in ``es_compact/data`` (origins and licences in its README.md);
``g50`` (the g50c benchmark of Chapelle and Zien, "Semi-supervised classification by low density
separation", AISTATS 2005) is generated from a fixed seed: 550 points in R^50, two classes of 275
with identity covariance whose means are 2 Φ⁻¹(0.95) ≈ 3.29 apart (Bayes error 5%).

``load(name)`` returns the normalised points: every column standardised (zero mean, unit
variance) so that no feature dominates the angles by its units, then every point scaled to unit
norm. The angular kernel only sees directions, so the second step changes nothing for it; it puts
the other kernels (linear, ReLU, Gaussian) on a common scale.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from es_compact.errors import ConfigError
from es_compact.names import DATASETS  # declared where the CLI can read it without pandas

FILES = {
    "boston": "boston.csv.gz",
    "cpu": "cpu.csv.gz",
    "insurance": "insurance.csv.gz",
    "wine": "wine.csv.gz",
    "parkinson": "parkinsons.csv.gz",
}
G50_SEED = 50
G50_POINTS, G50_DIM = 550, 50


def check_name(name: str) -> str:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return name


def g50(seed: int = G50_SEED) -> np.ndarray:
    """g50c without labels: 275 points from N(-μ, I) then 275 from N(+μ, I) in R^50, with
    μ = (Φ⁻¹(0.95) / √50) · (1, ..., 1), so ‖2μ‖ = 2 Φ⁻¹(0.95)."""
    from scipy.stats import norm  # here: scipy.stats costs ~1 s, and the CLI imports this module

    rng = np.random.default_rng(seed)
    half = G50_POINTS // 2
    mu = norm.ppf(0.95) / np.sqrt(G50_DIM) * np.ones(G50_DIM)
    X = rng.standard_normal((G50_POINTS, G50_DIM))
    X[:half] -= mu
    X[half:] += mu
    return X


def raw(name: str) -> np.ndarray:
    """The points as shipped (float64, (n, d)), before normalisation."""
    if check_name(name) == "g50":
        return g50()
    with (resources.files("es_compact") / "data" / FILES[name]).open("rb") as fh:
        return pd.read_csv(fh, compression="gzip").to_numpy(dtype=np.float64)


def normalise(X: np.ndarray) -> np.ndarray:
    """Standardise every column (constant columns become 0), then scale every point to unit
    norm (a point that is all zeros stays zero)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ConfigError(f"expected a non-empty (n, d) array of points, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ConfigError("points have non-finite values")
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    n = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(n > 0, n, 1.0)


def load(name: str, normalised: bool = True) -> np.ndarray:
    """The points of a dataset, (n, d) float64; normalised as described above unless told."""
    X = raw(name)
    return normalise(X) if normalised else X


def subsample(X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points drawn without replacement (all of them, in order, when X has at most n)."""
    if n < 1:
        raise ConfigError(f"number of points must be positive, got {n}")
    if X.shape[0] <= n:
        return X
    return X[np.sort(rng.choice(X.shape[0], size=n, replace=False))]
