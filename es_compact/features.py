"""Random features for PNG kernels: a random one-layer network as a kernel estimator.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Sections 4 and 6.1, after Choromanski, Rowland and Weller, "The unreasonable effectiveness of
structured random orthogonal embeddings" (NIPS 2017). For a pointwise nonlinearity f the
Pointwise Nonlinear Gaussian (PNG) kernel is

    K_f(x, y) = E_{g ~ N(0, I_d)} [ f(gᵀx) f(gᵀy) ]                                        (1)

and m random rows w_1..w_m estimate it by K̂(x, y) = (1/m) Σ_i f(w_iᵀx) f(w_iᵀy), i.e. the
inner product of the features φ(x) = f(W x) / √m. The estimators differ only in how W is drawn,
in blocks of d rows (blocks stacked for m > d, the last one cut short when d does not divide m):

    urn   i.i.d. N(0, 1) entries                                       O(m d) per point
    orn   per block: Haar-orthogonal Q (QR of a Gaussian block, signs    O(m d)
          fixed) with each row scaled by an independent chi_d norm
    horn  per block: p = 2^⌈log2 d⌉, the orthogonal p x p matrix        O(m/d · p log p)
          H D_1 H D_2 H D_3 / p^{3/2} (H Walsh-Hadamard, D_i random signs),
          points zero-padded to p, first d rows, rows scaled by chi_p
    kama  per block: P = G_k ··· G_1, k random Givens rotations         O(m/d · k)
          (default k = ⌈5 d ln d⌉), rows scaled by chi_d; never materialised

Zero-padding x to p dimensions leaves every PNG kernel unchanged (it depends on x and y only
through ‖x‖, ‖y‖ and xᵀy), which is why `horn` may work in p dimensions.

Every row of `urn` and `orn` is exactly N(0, I) in law, so their estimates are unbiased. `horn`
and `kama` rows are only approximately Gaussian (finitely many Hadamard blocks or rotations);
``es-compact kernels bias`` measures how that bias shrinks with k.

Exact kernels (1) for g ~ N(0, I) and θ the angle between x and y:

    identity   xᵀy
    sign       1 - 2θ/π                                   (the angular kernel)
    heaviside  (π - θ) / (2π)                             (half Cho & Saul's arc-cosine k_0)
    relu       ‖x‖‖y‖ (sin θ + (π - θ) cos θ) / (2π)      (half Cho & Saul's arc-cosine k_1)
    sincos     exp(-‖x - y‖² / 2)                          (features cos(wᵀx), sin(wᵀx): the
                                                            Gaussian kernel, Rahimi & Recht)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from es_compact.checks import is_integer
from es_compact.errors import ConfigError
from es_compact.givens import RandomKama, kernel_arrays, rotate_rows
from es_compact.hadamard import fwht_reference, fwht_rows

# ---------------------------------------------------------------------------------------------
# Nonlinearities and exact kernels


def _angles(nx: np.ndarray, ny: np.ndarray, dot: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        c = dot / (nx[:, None] * ny[None, :])
    return np.arccos(np.clip(np.nan_to_num(c, nan=1.0), -1.0, 1.0))


def _zero_where_null(K: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    # f(gᵀ0) = f(0) = 0 for sign, heaviside (H(0) = 0 here) and relu.
    return np.where((nx[:, None] == 0) | (ny[None, :] == 0), 0.0, K)


def _exact_identity(nx, ny, dot):
    return dot


def _exact_sign(nx, ny, dot):
    return _zero_where_null(1.0 - 2.0 * _angles(nx, ny, dot) / np.pi, nx, ny)


def _exact_heaviside(nx, ny, dot):
    return _zero_where_null((np.pi - _angles(nx, ny, dot)) / (2.0 * np.pi), nx, ny)


def _exact_relu(nx, ny, dot):
    t = _angles(nx, ny, dot)
    return nx[:, None] * ny[None, :] * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2.0 * np.pi)


def _exact_sincos(nx, ny, dot):
    return np.exp(-0.5 * np.maximum(nx[:, None] ** 2 + ny[None, :] ** 2 - 2.0 * dot, 0.0))


def _sincos(Z: np.ndarray) -> np.ndarray:
    return np.concatenate([np.cos(Z), np.sin(Z)], axis=1)


@dataclass(frozen=True)
class Nonlinearity:
    """A pointwise f: ``apply`` maps projections (n, m) to features (n, m · width); ``exact``
    maps (‖x‖ (n,), ‖y‖ (n',), XYᵀ (n, n')) to the kernel (1), or is None (estimate only)."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    exact: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    width: int = 1
    """features per row of W (2 for sin/cos pairs)."""


NONLINEARITIES: dict[str, Nonlinearity] = {
    "identity": Nonlinearity("identity", lambda Z: Z, _exact_identity),
    "sign": Nonlinearity("sign", np.sign, _exact_sign),
    "heaviside": Nonlinearity("heaviside", lambda Z: (Z > 0).astype(np.float64),
                              _exact_heaviside),
    "relu": Nonlinearity("relu", lambda Z: np.maximum(Z, 0.0), _exact_relu),
    "sincos": Nonlinearity("sincos", _sincos, _exact_sincos, width=2),
}


def nonlinearity(f: str | Nonlinearity | Callable[[np.ndarray], np.ndarray]) -> Nonlinearity:
    """A registered name, a Nonlinearity, or any vectorised callable (estimate only)."""
    if isinstance(f, Nonlinearity):
        return f
    if isinstance(f, str):
        try:
            return NONLINEARITIES[f]
        except KeyError:
            raise ConfigError(f"unknown nonlinearity {f!r}: use one of "
                              f"{', '.join(NONLINEARITIES)} or a callable") from None
    if callable(f):
        return Nonlinearity(getattr(f, "__name__", "custom"), f, None)
    raise ConfigError(f"nonlinearity must be a name or a callable, got {type(f).__name__}")


def check_points(X, dim: int | None = None, name: str = "X") -> np.ndarray:
    """X as a float64 (n, d) array of finite values, or a ConfigError saying what is wrong."""
    if np.iscomplexobj(X):  # the cast below would silently drop the imaginary parts
        raise ConfigError(f"{name} must be real, got complex values")
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be an array of real numbers: {exc}") from None
    if X.ndim != 2:
        raise ConfigError(f"{name} must be a 2-d array of points (n, d), got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise ConfigError(f"{name} has points of dimension {X.shape[1]}, expected {dim}")
    if not np.all(np.isfinite(X)):
        bad = int(np.count_nonzero(~np.isfinite(X).all(axis=1)))
        raise ConfigError(f"{name} has non-finite values in {bad} of {X.shape[0]} points")
    return X


def exact_kernel(f: str | Nonlinearity, X, Y=None) -> np.ndarray:
    """The exact kernel matrix K_f(x_i, y_j) of (1), where a closed form exists."""
    nl = nonlinearity(f)
    if nl.exact is None:
        raise ConfigError(f"no closed-form kernel for nonlinearity {nl.name!r} (estimate only)")
    X = check_points(X)
    Y = X if Y is None else check_points(Y, X.shape[1], "Y")
    return nl.exact(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1), X @ Y.T)


# ---------------------------------------------------------------------------------------------
# Projections W: one class per estimator, each with a dense reference


def default_rotations(dim: int) -> int:
    """k = ⌈5 d ln d⌉ Givens rotations per block, the KAMA-NN paper's experimental choice."""
    if not is_integer(dim) or dim < 1:
        raise ConfigError(f"dimension d must be a positive integer, got {dim!r}")
    return max(1, math.ceil(5 * dim * math.log(dim)))


def _block_rows(dim: int, m: int) -> list[int]:
    full, rest = divmod(m, dim)
    return [dim] * full + ([rest] if rest else [])


def _chi(rng: np.random.Generator, dof: int, size: int) -> np.ndarray:
    return np.sqrt(rng.chisquare(dof, size))


_CHUNK_BYTES = 1 << 19


def _column_chunks(dim: int, n: int) -> list[slice]:
    """Groups of points small enough that a (dim, cols) block stays in L2 cache while thousands
    of rotations or butterflies sweep it (measured for kama at d = 4096, n = 128 on a loaded
    2-core machine: 189 ms in one sweep, 62-67 ms in groups of 16 to 32 points)."""
    cols = max(8, _CHUNK_BYTES // (8 * dim))
    return [slice(c, min(c + cols, n)) for c in range(0, n, cols)]


@dataclass(frozen=True, eq=False)
class DenseProjection:
    """W stored densely, (m, d): `urn` and `orn`."""

    W: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T

    def to_dense(self) -> np.ndarray:
        return self.W


def draw_urn(dim: int, m: int, rng: np.random.Generator, **_) -> DenseProjection:
    return DenseProjection(rng.standard_normal((m, dim)))


def draw_orn(dim: int, m: int, rng: np.random.Generator, **_) -> DenseProjection:
    blocks = []
    for rows in _block_rows(dim, m):
        Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
        Q = Q * np.sign(np.diag(R))[None, :]  # makes Q Haar-distributed (Mezzadri 2007)
        blocks.append(Q[:rows] * _chi(rng, dim, rows)[:, None])
    return DenseProjection(np.vstack(blocks))


@dataclass(frozen=True, eq=False)
class HadamardProjection:
    """Per block b: W_b = diag(s_b) · (H D_1 H D_2 ··· H D_L / p^{L/2})[:rows_b, :d]
    (the right part of the product sees the zero-padded point)."""

    dim: int
    p: int
    signs: np.ndarray
    """(blocks, L, p) ±1: D_1 .. D_L of each block."""
    scales: np.ndarray
    """(m,) chi_p row norms."""
    rows: tuple[int, ...]

    def project(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        out = np.empty((n, int(sum(self.rows))))
        norm = self.p ** (-0.5 * self.signs.shape[1])
        for part in _column_chunks(self.p, n):
            col = 0
            for b, rows in enumerate(self.rows):
                Z = np.zeros((self.p, part.stop - part.start))
                Z[: self.dim] = X[part].T
                for D in self.signs[b, ::-1]:  # D_L acts first
                    Z *= D[:, None]
                    fwht_rows(Z)
                s = norm * self.scales[col : col + rows, None]
                out[part, col : col + rows] = (Z[:rows] * s).T
                col += rows
        return out

    def to_dense(self) -> np.ndarray:
        H = fwht_reference(np.eye(self.p))
        blocks = []
        col = 0
        for b, rows in enumerate(self.rows):
            M = np.eye(self.p)
            for D in self.signs[b]:
                M = M @ H @ np.diag(D)
            M *= self.p ** (-0.5 * self.signs.shape[1])
            blocks.append(M[:rows, : self.dim] * self.scales[col : col + rows, None])
            col += rows
        return np.vstack(blocks)


def draw_horn(dim: int, m: int, rng: np.random.Generator, *, hd_blocks: int = 3,
              **_) -> HadamardProjection:
    if not is_integer(hd_blocks) or hd_blocks < 1:
        raise ConfigError(f"hd_blocks must be a positive integer, got {hd_blocks!r}")
    p = 1 << (dim - 1).bit_length()
    rows = _block_rows(dim, m)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(len(rows), int(hd_blocks), p))
    return HadamardProjection(dim, p, signs, _chi(rng, p, m), tuple(rows))


@dataclass(frozen=True, eq=False)
class KamaProjection:
    """Per block b: W_b = diag(s_b) · (G_k ··· G_1)[:rows_b, :], a square random KAMA matrix
    (:class:`es_compact.givens.RandomKama` with chi_d scales), applied in O(k) per point
    by the numba kernel :func:`rotate_rows` on points stored as columns."""

    dim: int
    blocks: tuple[RandomKama, ...]
    rows: tuple[int, ...]
    _cs: tuple[np.ndarray, ...] = field(repr=False, default=())
    _planes: tuple[np.ndarray, ...] = field(repr=False, default=())

    @classmethod
    def of(cls, dim: int, blocks: list[RandomKama], rows: list[int]) -> KamaProjection:
        packed = [kernel_arrays(k.planes, k.angles) for k in blocks]
        cs = tuple(c for c, _ in packed)
        planes = tuple(p for _, p in packed)
        return cls(dim, tuple(blocks), tuple(rows), cs, planes)

    def project(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        out = np.empty((n, int(sum(self.rows))))
        for part in _column_chunks(self.dim, n):
            XT = np.ascontiguousarray(X[part].T)
            col = 0
            for b, rows in enumerate(self.rows):
                Z = XT.copy()
                rotate_rows(self._cs[b], self._planes[b], Z)
                out[part, col : col + rows] = (Z[:rows] * self.blocks[b].scales[:rows, None]).T
                col += rows
        return out

    def to_dense(self) -> np.ndarray:
        return np.vstack([k.matrix()[:rows] for k, rows in
                          zip(self.blocks, self.rows, strict=True)])


def draw_kama(dim: int, m: int, rng: np.random.Generator, *, rotations: int | None = None,
              **_) -> KamaProjection:
    k = default_rotations(dim) if rotations is None else rotations
    if not is_integer(k) or k < 1:
        raise ConfigError(f"rotations must be a positive integer, got {rotations!r}")
    rows = _block_rows(dim, m)
    blocks = [RandomKama.draw(dim, dim, int(k), rng, scales="chi") for _ in rows]
    return KamaProjection.of(dim, blocks, rows)


ESTIMATORS: dict[str, Callable[..., DenseProjection | HadamardProjection | KamaProjection]] = {
    "urn": draw_urn,
    "orn": draw_orn,
    "horn": draw_horn,
    "kama": draw_kama,
}
OPTIONS: dict[str, set[str]] = {"urn": set(), "orn": set(), "horn": {"hd_blocks"},
                                "kama": {"rotations"}}
"""The keyword options each estimator accepts."""


# ---------------------------------------------------------------------------------------------
# The feature map


@dataclass(frozen=True, eq=False)
class RandomFeatures:
    """φ(x) = f(W x) / √m for a W drawn by one of :data:`ESTIMATORS`; K̂(x, y) = φ(x)ᵀφ(y).

    Build with :meth:`draw`; ``to_dense()`` is the W the fast ``project`` applies."""

    estimator: str
    dim: int
    m: int
    f: Nonlinearity
    projection: DenseProjection | HadamardProjection | KamaProjection = field(repr=False)

    @classmethod
    def draw(cls, estimator: str, dim: int, m: int, rng: np.random.Generator,
             f: str | Nonlinearity | Callable = "sign", **options) -> RandomFeatures:
        """m features of points in R^dim. options: ``rotations`` (kama, default
        ⌈5 d ln d⌉), ``hd_blocks`` (horn, default 3)."""
        if not isinstance(estimator, str) or estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {estimator!r}: use one of "
                              f"{', '.join(ESTIMATORS)}")
        if not is_integer(dim) or dim < 2:
            raise ConfigError(f"dimension d must be an integer >= 2, got {dim!r}")
        if not is_integer(m) or m < 1:
            raise ConfigError(f"number of features m must be a positive integer, got {m!r}")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng must be a numpy Generator (np.random.default_rng(seed)), "
                              f"got {type(rng).__name__}")
        unknown = set(options) - OPTIONS[estimator]
        if unknown:
            raise ConfigError(f"estimator {estimator!r} takes no option "
                              f"{', '.join(sorted(unknown))} (it takes: "
                              f"{', '.join(sorted(OPTIONS[estimator])) or 'none'})")
        nl = nonlinearity(f)
        proj = ESTIMATORS[estimator](int(dim), int(m), rng, **options)
        return cls(estimator, int(dim), int(m), nl, proj)

    def project(self, X) -> np.ndarray:
        """W x for every row x of X: (n, d) -> (n, m)."""
        return self.projection.project(check_points(X, self.dim))

    def transform(self, X) -> np.ndarray:
        """φ(x) for every row of X: (n, d) -> (n, m · width)."""
        return self.f.apply(self.project(X)) / math.sqrt(self.m)

    def K(self, X, Y=None) -> np.ndarray:
        """The kernel estimate K̂(x_i, y_j) = φ(x_i)ᵀφ(y_j), (n, n'); Y defaults to X."""
        PX = self.transform(X)
        return PX @ (PX if Y is None else self.transform(Y)).T

    def exact(self, X, Y=None) -> np.ndarray:
        """The kernel being estimated, in closed form (ConfigError for a user function)."""
        return exact_kernel(self.f, X, Y)

    def to_dense(self) -> np.ndarray:
        return self.projection.to_dense()
