"""The expressivity check of the DCNN paper's Theorem 2 (Araujo et al., "Understanding and
training deep diagonal circulant neural networks", ECAI 2020, Section 4).

Theorem 2: an n x n matrix A of rank at most k (k dividing n) is, for every ε > 0, within ε of
a product B_1 B_2 ... B_{4k+1} with B_i circulant for odd i and diagonal for even i. The bound
is over the complex field.

We fit a random rank-k matrix A = U Vᵀ (U, V Gaussian n x k, scaled to ‖A‖_F = √n) by
products of m alternating factors, m = 1, 2, ..., and report the best relative error
‖B_1 ... B_m - A‖_F / ‖A‖_F over a few random near-identity starts and one warm start (the
previous m's solution with identity factors appended, so the error cannot grow with m merely
because longer chains are harder to optimise); the random starts' best is reported too.
The optimiser is scipy's L-BFGS-B on the factors' parameters (real and imaginary parts of
every circulant's first column c and every diagonal d) with the exact analytic gradient:

    L = ‖P - A‖²_F,   P = L_i B_i R_i,   ∂L/∂B_i = 2 L_iᴴ (P - A) R_iᴴ  (conjugate convention),

computed without forming any L_i or R_i: one forward and one backward sweep in which every
circulant is applied, and its gradient taken, by FFT (O(n² log n) per factor). ``product``
builds the dense product from scipy.linalg.circulant, the reference the tests compare against.
``field='real'`` restricts every factor to real entries (what a DCNN layer uses); the theorem
itself needs complex ones.

L-BFGS-B calls BLAS on vectors of a few thousand entries; with several BLAS threads on a busy
machine that overhead dominates, so `make dcnn` sets OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import circulant
from scipy.optimize import minimize

from es_compact import checkpoint
from es_compact.errors import ConfigError

FIELDS = ("complex", "real")
# `experiment dcnn`'s sweeps. Odd m only: chains that start and end with a circulant, like the
# theorem's 4k + 1.
FORMS = {
    "quick": {"ks": (1, 2, 4), "n": 64, "fields": ("complex",), "restarts": 2,
              "max_iter": 2000, "odd_only": True},
    "full": {"ks": (1, 2, 4, 8), "n": 64, "fields": ("complex", "real"), "restarts": 4,
             "max_iter": 10000, "odd_only": True},
}


def rank_k_matrix(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A real n x n matrix of rank k with Frobenius norm √n (the identity's)."""
    A = rng.standard_normal((n, k)) @ rng.standard_normal((k, n))
    return A * (np.sqrt(n) / np.linalg.norm(A))


def is_circulant(i: int) -> bool:
    """Factor i (0-based) is circulant at even i: B_1, B_3, ... in the paper's 1-based count."""
    return i % 2 == 0


@dataclass(frozen=True)
class ChainFit:
    """L(θ) = ‖B_1 ... B_m - A‖²_F over m alternating factors; θ holds n entries per factor
    (real field) or 2n (real parts, then imaginary parts)."""

    A: np.ndarray
    m: int
    field: str = "complex"

    def __post_init__(self):
        if self.field not in FIELDS:
            raise ConfigError(f"field must be one of {FIELDS}, got {self.field!r}")
        if self.m < 1:
            raise ConfigError(f"need at least one factor, got m = {self.m}")

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def size(self) -> int:
        return self.m * self.n * (2 if self.field == "complex" else 1)

    def params(self, theta: np.ndarray) -> np.ndarray:
        """(m, n) factor parameters: a circulant's first column or a diagonal."""
        if self.field == "real":
            return theta.reshape(self.m, self.n)
        re, im = np.split(theta, 2)
        return (re + 1j * im).reshape(self.m, self.n)

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        return [circulant(p) if is_circulant(i) else np.diag(p)
                for i, p in enumerate(self.params(theta))]

    def product(self, theta: np.ndarray) -> np.ndarray:
        P = np.eye(self.n, dtype=self.params(theta).dtype)
        for B in self.factors(theta):
            P = P @ B
        return P

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """L and ∂L/∂θ by one forward and one backward sweep, every factor applied by FFT.

        Forward: X_{m+1} = I, X_i = B_i X_{i+1}, P = X_1. Backward from G_1 = P - A: a
        circulant's gradient is the circular cross-correlation Σ_cols ifft(fft(G_i) ·
        conj(fft(X_{i+1}))), a diagonal's is Σ_cols G_i ⊙ conj(X_{i+1}); G_{i+1} = B_iᴴ G_i."""
        ps = self.params(theta)
        spectra = {i: np.fft.fft(p) for i, p in enumerate(ps) if is_circulant(i)}
        X = [None] * (self.m + 1)
        X[self.m] = np.eye(self.n, dtype=complex)
        for i in range(self.m - 1, -1, -1):
            if is_circulant(i):
                X[i] = np.fft.ifft(spectra[i][:, None] * np.fft.fft(X[i + 1], axis=0), axis=0)
            else:
                X[i] = ps[i][:, None] * X[i + 1]
        G = X[0] - self.A
        value = float(np.sum(np.abs(G) ** 2))
        grads = np.empty((self.m, self.n), dtype=complex)
        for i in range(self.m):
            if is_circulant(i):
                FG = np.fft.fft(G, axis=0)
                grads[i] = np.fft.ifft(np.sum(FG * np.fft.fft(X[i + 1], axis=0).conj(), axis=1))
                G = np.fft.ifft(spectra[i].conj()[:, None] * FG, axis=0)
            else:
                grads[i] = np.sum(G * X[i + 1].conj(), axis=1)
                G = ps[i].conj()[:, None] * G
        flat = 2.0 * grads.ravel()
        if self.field == "real":
            return value, flat.real.copy()
        return value, np.concatenate([flat.real, flat.imag])

    def init(self, rng: np.random.Generator, scale: float = 0.3) -> np.ndarray:
        """Near the identity (c = e_0, d = 1) plus noise: the product starts well scaled."""
        base = np.zeros((self.m, self.n))
        for i in range(self.m):
            if is_circulant(i):
                base[i, 0] = 1.0
            else:
                base[i] = 1.0
        noise = scale * rng.standard_normal((self.m, self.n)) / np.sqrt(self.n)
        if self.field == "real":
            return (base + noise).ravel()
        im = scale * rng.standard_normal((self.m, self.n)) / np.sqrt(self.n)
        return np.concatenate([(base + noise).ravel(), im.ravel()])

    def rel_error(self, theta: np.ndarray) -> float:
        return float(np.linalg.norm(self.product(theta) - self.A) / np.linalg.norm(self.A))


def identity_params(i: int, n: int) -> np.ndarray:
    """Parameters of factor i when it is the identity: c = e_0 for a circulant, d = 1."""
    p = np.zeros(n)
    if is_circulant(i):
        p[0] = 1.0
    else:
        p[:] = 1.0
    return p


def extend(theta: np.ndarray, fit_from: ChainFit, m: int) -> np.ndarray:
    """θ of a longer chain with the same product: identity factors appended at the end."""
    n, old = fit_from.n, fit_from.params(theta)
    extra = np.array([identity_params(i, n) for i in range(fit_from.m, m)])
    full = np.concatenate([old, extra.astype(old.dtype)])
    return full.ravel() if fit_from.field == "real" else np.concatenate(
        [full.real.ravel(), full.imag.ravel()])


@dataclass(frozen=True)
class StartStore:
    """Where a fit keeps each finished start (npz + json, as checkpoints are), so a fit stopped
    part-way resumes at the start it was in: a full-form k = 8 fit runs half an hour or more,
    and its random starts are drawn from the seed, so a saved start is the one it would redo."""

    directory: Path
    settings: dict

    def load(self, i: int) -> tuple[np.ndarray, dict] | None:
        """(x, info) of start i when saved, None when not."""
        saved = _load_saved(self.directory, f"start{i}", self.settings)
        return None if saved is None else (saved[0]["x"], saved[1]["start"])

    def save(self, i: int, x: np.ndarray, info: dict) -> None:
        checkpoint.save(self.directory, f"start{i}", {"x": x},
                        {"settings": self.settings, "start": info})

    def clear(self) -> None:
        """Drop the starts once the whole fit is saved: they are in it."""
        if self.directory.exists():
            shutil.rmtree(self.directory)


def fit(A: np.ndarray, m: int, field: str = "complex", restarts: int = 3, seed: int = 0,
        max_iter: int = 3000, warm: np.ndarray | None = None,
        log: Callable[[str], None] = lambda s: None,
        store: StartStore | None = None) -> tuple[dict, np.ndarray]:
    """Best of `restarts` L-BFGS-B runs from random near-identity starts, and of one more from
    `warm` (a shorter chain's solution extended by identity factors) when given. Returns the
    row (rel_error: best of all; rel_error_random: best of the random starts) and the best θ.
    log gets one line per finished start (a full-form fit takes tens of minutes); with
    `store`, each finished start is saved there and a start saved before is read back."""
    problem = ChainFit(A, m, field)
    t0, iters, earlier = time.perf_counter(), 0, 0.0
    best = {"random": (np.inf, None), "warm": (np.inf, None)}
    starts = [("random", problem.init(np.random.default_rng([seed, m, r])))
              for r in range(restarts)]
    if warm is not None:
        starts.append(("warm", warm))
    for i, (kind, x0) in enumerate(starts, 1):
        saved = None if store is None else store.load(i)
        if saved is None:
            t_start = time.perf_counter()
            res = minimize(problem.value_and_grad, x0, jac=True, method="L-BFGS-B",
                           options={"maxiter": max_iter, "maxfun": 2 * max_iter,
                                    "ftol": 1e-15, "gtol": 1e-12})
            x, info = res.x, {"kind": kind, "nit": int(res.nit),
                              "rel_error": problem.rel_error(res.x),
                              "seconds": time.perf_counter() - t_start}
            if store is not None:
                store.save(i, x, info)
        else:
            x, info = saved
            # Time spent on it by an earlier, interrupted invocation.
            earlier += info["seconds"]
        iters += info["nit"]
        err = info["rel_error"]
        log(f"start {i} of {len(starts)} ({kind}): rel_error {err:.3e} after {info['nit']} "
            f"L-BFGS-B iterations, {time.perf_counter() - t0 + earlier:.0f} s into the fit"
            + (" (saved before)" if saved is not None else ""))
        if err < best[kind][0]:
            best[kind] = (err, x)
    err, theta = min(best.values(), key=lambda b: b[0])
    row = {"m": m, "field": field, "rel_error": err, "rel_error_random": best["random"][0],
           "restarts": restarts, "warm_start": warm is not None, "lbfgs_iterations": iters,
           "seconds": time.perf_counter() - t0 + earlier, "params": problem.size}
    return row, theta


def sweep(ks: Sequence[int] = (1, 2, 4), n: int = 64, fields: Sequence[str] = ("complex",),
          extra: int = 2, restarts: int = 3, max_iter: int = 3000, seed: int = 0,
          odd_only: bool = False, log: Callable[[str], None] = lambda s: None,
          cache: str | Path | None = None, cached_only: bool = False) -> list[dict]:
    """Rows (n, k, field, m, rel_error, ...) for m = 1 .. 4k + 1 + extra (odd m only, the
    chains that start and end with a circulant as the theorem's does, with odd_only).

    With `cache`, every fit is saved there (npz + json, as checkpoints are) as it finishes, and
    a fit already saved with the same settings is read back instead of run, so an interrupted
    sweep resumes; a fit in progress keeps its finished starts in CACHE/NAME.starts/ and
    resumes at the start it was in. `cached_only` runs no fit: the rows of the fits saved so far."""
    if cached_only and cache is None:
        raise ConfigError("cached_only needs a cache directory")
    # odd_only decides the warm start (from m - 2 or m - 1), so it is part of a fit's identity.
    settings = {"n": n, "seed": seed, "restarts": restarts, "max_iter": max_iter,
                "odd_only": odd_only}
    rows = []
    for k in ks:
        if k < 1 or n % k:
            raise ConfigError(f"Theorem 2 needs k >= 1 dividing n = {n}, got k = {k}")
        A = rank_k_matrix(n, k, np.random.default_rng([seed, n, k]))
        for field in fields:
            prev = None
            for m in chain_lengths(k, extra, odd_only):
                name = f"k{k}_{field}_m{m:02d}"
                saved = _load_fit(cache, name, settings)
                if saved is None and cached_only:
                    break
                if saved is None:
                    warm = None if prev is None else extend(prev[1], prev[0], m)
                    store = (None if cache is None
                             else StartStore(Path(cache) / f"{name}.starts", settings))
                    result, theta = fit(A, m, field, restarts, seed, max_iter, warm,
                                        log=lambda s, k=k, field=field, m=m: log(
                                            f"  k={k} {field:7s} m={m:2d}: {s}"),
                                        store=store)
                    if store is not None:
                        checkpoint.save(cache, name, {"theta": theta},
                                        {"settings": settings, "row": result})
                        store.clear()
                else:
                    result, theta = saved
                prev = (ChainFit(A, m, field), theta)
                row = {"n": n, "k": k, "bound_4k_plus_1": 4 * k + 1, **result}
                rows.append(row)
                log(f"k={k} {field:7s} m={m:2d} rel_error={row['rel_error']:.3e} "
                    f"({row['seconds']:.1f} s{', saved before' if saved else ''})")
    return rows


def chain_lengths(k: int, extra: int = 2, odd_only: bool = False) -> range:
    """The m a sweep fits for rank k: 1 .. 4k + 1 + extra, odd m only with odd_only."""
    return range(1, 4 * k + 2 + extra, 2 if odd_only else 1)


def _load_fit(cache: str | Path | None, name: str, settings: dict):
    """(row, θ) of a fit saved in `cache` under `name`, or None when there is none."""
    saved = None if cache is None else _load_saved(cache, name, settings)
    return None if saved is None else (saved[1]["row"], saved[0]["theta"])


def _load_saved(directory: str | Path, name: str, settings: dict):
    """(arrays, meta) of a fit or start saved under `name`, None when there is none;
    ConfigError when it was fitted with other settings."""
    if not checkpoint.exists(directory, name):
        return None
    arrays, meta = checkpoint.load(directory, name)
    if meta.get("settings") != settings:
        raise ConfigError(f"{Path(directory) / name}.json was fitted with "
                          f"{meta.get('settings')}, not {settings}: use another directory or "
                          "delete it")
    return arrays, meta


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = list(dict.fromkeys((r["k"], r["field"]) for r in rows))
    for k, field in keys:
        sub = [r for r in rows if r["k"] == k and r["field"] == field]
        line, = ax.plot([r["m"] for r in sub], [max(r["rel_error"], 1e-16) for r in sub],
                        "o-" if field == "complex" else "s--", ms=4, label=f"k = {k}, {field}")
        ax.plot([r["m"] for r in sub], [max(r["rel_error_random"], 1e-16) for r in sub], "x",
                color=line.get_color(), ms=5, alpha=0.6)
        ax.axvline(4 * k + 1, color=line.get_color(), ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("factors m (circulant, diagonal, circulant, ...); dotted: m = 4k + 1")
    ax.set_ylabel("best relative error ‖B₁…Bₘ - A‖_F / ‖A‖_F\n(x: random starts only)")
    ax.set_title(f"DCNN Theorem 2: fitting a rank-k {rows[0]['n']}x{rows[0]['n']} matrix "
                 "(L-BFGS-B)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    """Relative error per (k, field) and m; the m = 4k + 1 cell in bold."""
    ms = sorted({r["m"] for r in rows})
    lines = ["| k | field | " + " | ".join(f"m = {m}" for m in ms) + " |",
             "|---|---|" + "---|" * len(ms)]
    for k, field in dict.fromkeys((r["k"], r["field"]) for r in rows):
        err = {r["m"]: r["rel_error"] for r in rows if r["k"] == k and r["field"] == field}
        cells = [("" if m not in err else f"**{err[m]:.1e}**" if m == 4 * k + 1
                  else f"{err[m]:.1e}") for m in ms]
        lines.append(f"| {k} | {field} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
