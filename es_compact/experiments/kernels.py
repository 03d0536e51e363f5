"""Figures 1 and 2 of the KAMA-NN paper (Choromanski et al., AISTATS 2019, Section 6.1), and the
bias of the structured estimators against their number of rotations.

- :func:`pointwise_mse` (Figure 1): for random pairs (x, y) of a dataset, the mean squared error
  of K̂(x, y) against the exact kernel, as the number of blocks of d rows grows.
- :func:`gram_error` (Figure 2): ‖K̂ - K‖_F / ‖K‖_F on N randomly chosen points, and the time
  each estimator took to draw its matrix and compute the features.
- :func:`bias_vs_rotations`: E[K̂] - K for `kama` as the number k of Givens rotations grows and
  for `horn` as the number of HD blocks grows (with `urn` and `orn` as exactly unbiased
  controls), against the MSE.

Every function returns plain rows (dicts); the CLI writes them to CSV and plots them. Each
(dataset, estimator) pair has its own random stream derived from ``seed``, so adding an estimator
or a dataset does not change the numbers of the others. Within one repetition the estimates for
1, 2, ..., B blocks share their first blocks (one draw of B blocks, cumulative sums): every
point of a curve is still an unbiased MSE estimate, and the curves are smoother.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from es_compact.checks import integer
from es_compact.datasets import DATASETS, check_name, load, subsample
from es_compact.errors import ConfigError
from es_compact.features import (
    ESTIMATORS,
    RandomFeatures,
    default_rotations,
    exact_kernel,
)


def _check(estimators: Sequence[str], datasets: Sequence[str], reps: int, blocks: int,
           seed: int, **sizes: int) -> None:
    """ConfigError for any bad argument, before the work; sizes: name=value, each >= 1."""
    if isinstance(estimators, str):  # "urn" would be read as the names "u", "r", "n"
        raise ConfigError(f"estimators must be a list of names, got the string {estimators!r}")
    for e in estimators:
        if not isinstance(e, str) or e not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {e!r}: use one of {', '.join(ESTIMATORS)}")
    for name in datasets:
        check_name(name)
    if integer("reps", reps) < 2:
        raise ConfigError(f"need at least 2 repetitions for a standard error, got {reps}")
    if integer("max_blocks", blocks) < 1:
        raise ConfigError(f"number of blocks must be positive, got {blocks}")
    integer("seed", seed, 0)  # numpy's SeedSequence takes non-negative integers only
    for name, value in sizes.items():
        integer(name, value, 1)


def _rng(seed: int, dataset: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, DATASETS.index(dataset), stream])


def random_pairs(n: int, pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """pairs index pairs (i, j), i != j, uniform over ordered pairs."""
    i = rng.integers(0, n, size=pairs)
    j = (i + rng.integers(1, n, size=pairs)) % n
    return i, j


def _block_products(fm: RandomFeatures, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """f(Wa) ⊙ f(Wb) summed over each row's features (width), then over each block of d rows:
    (pairs, blocks). Dividing the cumulative sum by b·d gives K̂ with the first b blocks."""
    FA = fm.f.apply(fm.project(A))
    FB = fm.f.apply(fm.project(B))
    prod = (FA * FB).reshape(A.shape[0], -1, fm.m).sum(axis=1)
    return prod.reshape(A.shape[0], -1, fm.dim).sum(axis=2)


def pointwise_mse(dataset: str, estimators: Sequence[str] = tuple(ESTIMATORS),
                  max_blocks: int = 10, reps: int = 100, pairs: int = 200, seed: int = 0,
                  f: str = "sign") -> list[dict]:
    """Figure 1 on one dataset: rows (estimator, blocks, mse, mse_se), the MSE averaged over
    `pairs` random pairs and `reps` independent draws; the standard error is over draws."""
    _check(estimators, [dataset], reps, max_blocks, seed, pairs=pairs)
    X = load(dataset)
    n, d = X.shape
    i, j = random_pairs(n, pairs, _rng(seed, dataset, 0))
    A, B = X[i], X[j]
    exact = np.diag(exact_kernel(f, A, B))
    counts = d * np.arange(1, max_blocks + 1)
    rows = []
    for e in estimators:
        rng = _rng(seed, dataset, 1 + list(ESTIMATORS).index(e))
        err = np.empty((reps, max_blocks))
        t0 = time.perf_counter()
        for r in range(reps):
            fm = RandomFeatures.draw(e, d, max_blocks * d, rng, f=f)
            K_hat = np.cumsum(_block_products(fm, A, B), axis=1) / counts
            err[r] = ((K_hat - exact[:, None]) ** 2).mean(axis=0)
        seconds = time.perf_counter() - t0
        for b in range(max_blocks):
            rows.append({"dataset": dataset, "d": d, "kernel": f, "estimator": e,
                         "blocks": b + 1, "m": int(counts[b]), "mse": err[:, b].mean(),
                         "mse_se": err[:, b].std(ddof=1) / np.sqrt(reps), "reps": reps,
                         "pairs": pairs, "seed": seed, "seconds": round(seconds, 3)})
    return rows


def gram_error(dataset: str, estimators: Sequence[str] = tuple(ESTIMATORS),
               max_blocks: int = 10, reps: int = 10, points: int = 550, seed: int = 0,
               f: str = "sign") -> list[dict]:
    """Figure 2 on one dataset: rows (estimator, blocks, rel_err, rel_err_se, draw_ms,
    project_ms, features_ms), the relative Frobenius error of the kernel matrix on `points` random
    points (all points when the dataset has fewer), averaged over `reps` draws. The times are per
    draw of all `max_blocks` blocks: drawing W, computing W x for every point (the part the
    estimators differ in), and f(W x) including that."""
    _check(estimators, [dataset], reps, max_blocks, seed)
    # One point has no pairs: its Gram matrix is [[1]], estimated exactly by any W.
    integer("points", points, 2)
    X = subsample(load(dataset), points, _rng(seed, dataset, 0))
    n, d = X.shape
    K = exact_kernel(f, X)
    K_norm = np.linalg.norm(K)
    m = max_blocks * d
    rows = []
    for e in estimators:
        rng = _rng(seed, dataset, 1 + list(ESTIMATORS).index(e))
        err = np.empty((reps, max_blocks))
        draw_s = proj_s = feat_s = 0.0
        for r in range(reps):
            t0 = time.perf_counter()
            fm = RandomFeatures.draw(e, d, m, rng, f=f)
            t1 = time.perf_counter()
            Z = fm.project(X)
            t2 = time.perf_counter()
            F = fm.f.apply(Z).reshape(n, -1, m)  # (n, width, m)
            t3 = time.perf_counter()
            draw_s += t1 - t0
            proj_s += t2 - t1
            feat_s += t3 - t1
            G = np.zeros((n, n))
            for b in range(max_blocks):
                Fb = F[:, :, b * d : (b + 1) * d].reshape(n, -1)
                G += Fb @ Fb.T
                err[r, b] = np.linalg.norm(G / ((b + 1) * d) - K) / K_norm
        for b in range(max_blocks):
            rows.append({"dataset": dataset, "points": n, "d": d, "kernel": f, "estimator": e,
                         "blocks": b + 1, "m": (b + 1) * d, "rel_err": err[:, b].mean(),
                         "rel_err_se": err[:, b].std(ddof=1) / np.sqrt(reps), "reps": reps,
                         "seed": seed, "draw_ms": 1e3 * draw_s / reps,
                         "project_ms": 1e3 * proj_s / reps, "features_ms": 1e3 * feat_s / reps})
    return rows


def bias_vs_rotations(dataset: str, rotations: Sequence[int] | None = None,
                      hd_blocks: Sequence[int] = (1, 2, 3), reps: int = 20000,
                      pairs: int = 200, seed: int = 0, f: str = "sign") -> list[dict]:
    """Bias of one block (m = d rows) of each estimator, on `pairs` random pairs.

    For each pair, b = mean_r K̂_r - K over `reps` draws; ``bias2`` = mean over pairs of
    b² - s²/reps (s² the sample variance of K̂_r: subtracting it removes the noise b² carries),
    ``noise2`` = mean s²/reps (the floor below which bias2 is not resolved) and ``mse`` = mean
    (K̂ - K)². E[K̂] does not depend on m (K̂ is a mean of identically distributed rows' terms
    within each block), so the bias at m = d is the bias at every m while the MSE falls as 1/m:
    ``bias2_over_mse`` at m = d is the largest share bias takes."""
    _check(["kama"], [dataset], reps, 1, seed, pairs=pairs)
    X = load(dataset)
    n, d = X.shape
    if rotations is None:
        k0 = default_rotations(d)
        rotations = sorted({1, d // 2 or 1, d, 2 * d, k0 // 5, k0 // 2, k0, 2 * k0})
    i, j = random_pairs(n, pairs, _rng(seed, dataset, 0))
    A, B = X[i], X[j]
    exact = np.diag(exact_kernel(f, A, B))
    configs = ([("urn", {}, "", None), ("orn", {}, "", None)]
               + [("horn", {"hd_blocks": int(h)}, "hd_blocks", int(h)) for h in hd_blocks]
               + [("kama", {"rotations": int(k)}, "rotations", int(k)) for k in rotations])
    rows = []
    for c, (e, options, knob, value) in enumerate(configs):
        rng = _rng(seed, dataset, 100 + c)
        K_hat = np.empty((reps, pairs))
        t0 = time.perf_counter()
        for r in range(reps):
            fm = RandomFeatures.draw(e, d, d, rng, f=f, **options)
            K_hat[r] = _block_products(fm, A, B)[:, 0] / d
        b = K_hat.mean(axis=0) - exact
        s2 = K_hat.var(axis=0, ddof=1)
        bias2 = float(np.mean(b**2 - s2 / reps))
        noise2 = float(np.mean(s2 / reps))
        mse = float(np.mean((K_hat - exact) ** 2))
        rows.append({"dataset": dataset, "d": d, "kernel": f, "estimator": e, "knob": knob,
                     "value": value, "default": value == (default_rotations(d) if e == "kama"
                                                          else 3 if e == "horn" else None),
                     "bias2": bias2, "noise2": noise2, "rms_bias": float(np.sqrt(max(bias2, 0))),
                     "max_abs_z": float(np.max(np.abs(b[s2 > 0]) / np.sqrt(s2[s2 > 0] / reps),
                                               initial=0.0)),
                     "mse": mse, "bias2_over_mse": bias2 / mse, "reps": reps, "pairs": pairs,
                     "seed": seed, "seconds": round(time.perf_counter() - t0, 3)})
    return rows


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib imported lazily: the estimators do not need it)

COLORS = {"urn": "tab:gray", "orn": "tab:blue", "horn": "tab:green", "kama": "tab:red"}


def _grid(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return plt, fig, axes.ravel()


def _curves(rows: list[dict], y: str, ylabel: str, title: str, path) -> None:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    plt, fig, axes = _grid(len(datasets))
    for ax, name in zip(axes, datasets, strict=False):
        sub = [r for r in rows if r["dataset"] == name]
        for e in dict.fromkeys(r["estimator"] for r in sub):
            pts = [r for r in sub if r["estimator"] == e]
            ax.errorbar([r["blocks"] for r in pts], [r[y] for r in pts],
                        yerr=[r[y + "_se"] for r in pts], label=e, color=COLORS.get(e),
                        marker="o", ms=3, capsize=2, lw=1.2)
        ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("number of blocks (m / d)")
        ax.set_ylabel(ylabel)
        reps = sub[0]["reps"]
        ax.set_title(f"{name} (d = {sub[0]['d']}, r = {reps})", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_mse(rows: list[dict], path) -> None:
    _curves(rows, "mse", "MSE of K̂(x, y)",
            "Figure 1: pointwise MSE of the angular-kernel estimate", path)


def plot_gram(rows: list[dict], path) -> None:
    _curves(rows, "rel_err", "‖K̂ - K‖_F / ‖K‖_F",
            "Figure 2: angular-kernel matrix error", path)


def plot_time(rows: list[dict], path) -> None:
    """Milliseconds per repetition at the largest block count: computing W x for all points
    (left) and drawing W (right)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    last = {(r["dataset"], r["estimator"]): r for r in rows}
    estimators = list(dict.fromkeys(r["estimator"] for r in rows))
    plt, fig, axes = _grid(2)
    fig.set_size_inches(12, 3.8)
    width = 0.8 / len(estimators)
    x = np.arange(len(datasets))
    labels = [f"{n}\nd={last[(n, estimators[0])]['d']}, m={last[(n, estimators[0])]['m']}"
              for n in datasets]
    for ax, key, title in ((axes[0], "project_ms", "W x for all N points"),
                           (axes[1], "draw_ms", "drawing W")):
        for k, e in enumerate(estimators):
            ax.bar(x + k * width, [last[(n, e)][key] for n in datasets], width,
                   color=COLORS.get(e), label=e)
        ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=7)
        ax.set_ylabel("ms per repetition")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y", which="both")
        ax.legend(fontsize=7, ncol=4)
        ax.set_title(f"Figure 2 timing: {title} (r = {rows[0]['reps']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bias(rows: list[dict], path) -> None:
    """kama's bias² against k: filled where resolved (bias² > 2 · noise floor), an open
    triangle at 2 · floor (an upper bound) where not; horn's bias² / MSE per L in the legend."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    plt, fig, axes = _grid(len(datasets))
    for ax, name in zip(axes, datasets, strict=False):
        sub = [r for r in rows if r["dataset"] == name]
        kama = [r for r in sub if r["estimator"] == "kama"]
        ks = np.array([r["value"] for r in kama])
        b2 = np.array([r["bias2"] for r in kama])
        floor = np.array([r["noise2"] for r in kama])
        ok = b2 > 2 * floor
        ax.plot(ks[ok], b2[ok], "o-", color=COLORS["kama"], label="kama bias²")
        ax.plot(ks[~ok], 2 * floor[~ok], "v", mfc="none", color=COLORS["kama"],
                label="kama bias² unresolved (< 2 floor)")
        ax.plot(ks, floor, ":", color="k", label="noise floor (var / r)")
        ax.plot(ks, [r["mse"] for r in kama], "--", color=COLORS["kama"], label="MSE at m = d")
        for r in sub:
            if r["estimator"] == "horn":
                ax.plot([], [], " ", label=f"horn L={int(r['value'])}: bias²/MSE "
                        f"{r['bias2_over_mse']:.1e}")
        ax.axvline(default_rotations(sub[0]["d"]), color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Givens rotations k per block (grey: default ⌈5 d ln d⌉)")
        ax.set_title(f"{name} (d = {sub[0]['d']}, r = {sub[0]['reps']})", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.suptitle("Bias² of the angular-kernel estimate against the number of rotations",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
