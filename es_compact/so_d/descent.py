"""Givens coordinate descent on SO(d): the driver of Algorithm 1 of the KAMA-NN paper.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 5. Each step moves M -> M G(I, J, Θ) along one geodesic, with (I, J) chosen by the
variant: **greedy** (Algorithm 1: solve every pair, apply the best), **random** (one uniform
pair per step, Shalit and Chechik 2014) or **cyclic** (pairs swept in order), and Θ by the exact
line search of :mod:`es_compact.so_d.linesearch`.

Theorem 3 (greedy step gain). Let D_IJ = d/dΘ F(M G(I, J, Θ)) at Θ = 0 and
‖∇F(M)‖² = Σ_{I<J} D_IJ², the Riemannian gradient's norm in the metric ⟨MΩ₁, MΩ₂⟩ = ½ tr(Ω₁ᵀΩ₂)
in which the M A_IJ are orthonormal (the embedded Frobenius norm is half of it). If
|d²/dΘ² F(M G(I, J, Θ))| <= B for every M, I, J, Θ, an exact line search along (I, J) gains at
least D_IJ² / (2B), so the greedy step gains at least max D_IJ² / (2B) >= ‖∇F‖² / (d (d - 1) B),
which implies the paper's bound ‖∇F‖² / (2 d (d - 1) B) (in either metric).
:func:`theorem3_margins` checks both on a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from es_compact.checks import integer
from es_compact.errors import ConfigError
from es_compact.givens import steps_to_planes
from es_compact.so_d.linesearch import line_search
from es_compact.so_d.scorers import ObjectiveError, as_scorer

VARIANTS = ("greedy", "random", "cyclic")

# ----------------------------------------------------------------------------------------------
# Input checks


def check_dim(dim) -> int:
    """dim as an int, or ConfigError: not an integer, or below 2 (SO(1) is one point)."""
    if integer("dim", dim) < 2:
        raise ConfigError(f"SO(d) needs d >= 2, got d = {dim}")
    return int(dim)


def check_rotation(M: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """M as a float64 (d, d) array, after checking d >= 2, MᵀM = I (max-abs error <= tol) and
    det M = +1."""
    # NaN compares false with everything, so `err > nan` would accept any matrix.
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) \
            or not 0 <= tol < np.inf:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol!r}")
    M = np.array(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ConfigError(f"the start matrix must be square, got shape {M.shape}")
    d = M.shape[0]
    if d < 2:
        raise ConfigError(f"SO(d) needs d >= 2, got d = {d}")
    if not np.all(np.isfinite(M)):
        raise ConfigError("the start matrix has non-finite entries")
    err = float(np.max(np.abs(M.T @ M - np.eye(d))))
    if err > tol:
        raise ConfigError(f"the start matrix is not orthogonal: max |MᵀM - I| = {err:.3g} "
                          f"> {tol:.1g}")
    det = float(np.linalg.det(M))
    if det < 0:
        raise ConfigError(f"the start matrix has det {det:.3g}: it is a reflection, not in SO(d)")
    return M


# ----------------------------------------------------------------------------------------------
# The optimiser


def all_pairs(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair I < J in lexicographic order, as two int64 arrays of length d (d - 1) / 2."""
    I, J = np.triu_indices(dim, k=1)
    return I.astype(np.int64), J.astype(np.int64)


@dataclass(frozen=True, eq=False)
class GivensResult:
    """What a run returns. Iteration t (0-based) moves objective[t] to objective[t + 1]."""

    variant: str
    M0: np.ndarray = field(repr=False)
    M: np.ndarray = field(repr=False)
    steps: list[tuple[int, int, float]] = field(repr=False)
    """Applied rotations in order (iterations with no gain apply nothing)."""
    objective: np.ndarray = field(repr=False)
    gains: np.ndarray = field(repr=False)
    grad_norm_sq: np.ndarray = field(repr=False)
    """‖∇F‖² = Σ D_IJ² before each iteration (NaN where not tracked)."""
    max_slope_sq: np.ndarray = field(repr=False)
    """max_IJ D_IJ² before each iteration (NaN where not tracked)."""
    evaluations: np.ndarray = field(repr=False)
    """Cumulative evaluations of F along geodesics after each iteration (2p + 1 per pair scored
    when the scorer supplies coefficients directly: what a fit would have cost)."""
    stop_reason: str = ""

    @property
    def iterations(self) -> int:
        return len(self.gains)

    @property
    def value(self) -> float:
        return float(self.objective[-1])

    @property
    def dim(self) -> int:
        return self.M.shape[0]

    def planes_angles(self) -> tuple[np.ndarray, np.ndarray]:
        """The steps as (planes, angles) of a KAMA layer: M = M0 @ product_matrix(...)."""
        return steps_to_planes(self.steps)


def riemannian_slopes(F, M: np.ndarray, *, grad: Callable | None = None,
                      degree: int | None = None) -> np.ndarray:
    """D_IJ for every pair (lexicographic order): analytically from a Euclidean gradient
    `grad(M)` when given (D_IJ = (Mᵀ∇F)_JI - (Mᵀ∇F)_IJ), else from the line-search fit."""
    M = check_rotation(M)
    I, J = all_pairs(M.shape[0])
    if grad is not None:
        G = np.asarray(grad(M), dtype=np.float64)
        if G.shape != M.shape:
            raise ObjectiveError(f"the gradient has shape {G.shape}, expected {M.shape}")
        W = M.T @ G
        return W[J, I] - W[I, J]
    scorer = as_scorer(F, degree)
    f0 = scorer.reset(M)
    return line_search(scorer, f0, I, J).slope


def minimize(F, M0: np.ndarray | None = None, *, dim: int | None = None,
             variant: str = "greedy", degree: int | None = None, max_steps: int = 1000,
             gain_tol: float = 1e-13, seed: int = 0, track_grad: bool | None = None,
             grad: Callable | None = None, grid: int = 16) -> GivensResult:
    """Minimise F over SO(d) by Givens coordinate steps M -> M G(I, J, Θ).

    F: a callable on (d, d) rotations returning a float, a :class:`Scorer`, or an object with a
    ``scorer()`` method (e.g. :class:`QuadraticObjective`). degree: the trigonometric degree of F
    along geodesics (exact 1-D solver); None selects the grid + Brent fallback unless F declares
    one. M0 defaults to the identity of size `dim`.

    Stops after max_steps iterations, or when the gain falls to gain_tol (1 + |F|) or below: per
    step for greedy, summed over the last sweep for cyclic (d (d - 1) / 2 steps) and the last
    3 d (d - 1) / 2 steps for random.
    track_grad (default: on for greedy, where it is free) records ‖∇F‖² before every step; for
    random and cyclic it costs a full scan of all pairs per step. grad: Euclidean gradient of F,
    used for the slopes instead of the fit or finite differences."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    if M0 is None:
        if dim is None:
            dim = getattr(F, "dim", None)
        if dim is None:
            raise ConfigError("give M0 or dim")
        M0 = np.eye(check_dim(dim))
    M0 = check_rotation(M0)
    d = M0.shape[0]
    if dim is not None and integer("dim", dim, 2) != d:
        raise ConfigError(f"dim = {dim} but M0 is {d} x {d}")
    integer("max_steps", max_steps, 0)
    integer("seed", seed, 0)  # numpy's SeedSequence takes non-negative integers only
    integer("grid", grid, 3)  # checked here too: line_search sees it only without a degree
    if track_grad is None:
        track_grad = variant == "greedy"
    scorer = as_scorer(F, degree)
    f = scorer.reset(M0)
    I_all, J_all = all_pairs(d)
    n_pairs = len(I_all)
    rng = np.random.default_rng(seed)
    hist, gains, gsq, msq, evals = [f], [], [], [], []
    steps: list[tuple[int, int, float]] = []
    n_eval, reason = 0, "max_steps"
    for t in range(max_steps):
        full = None
        if variant == "greedy" or track_grad:
            full = line_search(scorer, f, I_all, J_all, grid=grid)
            n_eval += full.evaluations
            if grad is not None:
                s2 = riemannian_slopes(F, scorer.M, grad=grad) ** 2
            else:
                s2 = full.slope**2
            gsq.append(float(np.sum(s2)) if track_grad else np.nan)
            msq.append(float(np.max(s2)) if track_grad else np.nan)
        else:
            gsq.append(np.nan)
            msq.append(np.nan)
        if variant == "greedy":
            k = int(np.argmin(full.value))
            i, j, theta, f_new = int(I_all[k]), int(J_all[k]), float(full.theta[k]), full.value[k]
        else:
            k = int(rng.integers(n_pairs)) if variant == "random" else t % n_pairs
            i, j = int(I_all[k]), int(J_all[k])
            ls = line_search(scorer, f, I_all[k:k + 1], J_all[k:k + 1], grid=grid)
            n_eval += ls.evaluations
            theta, f_new = float(ls.theta[0]), ls.value[0]
        if f_new < f and theta != 0.0:
            f_applied = scorer.apply(i, j, theta)
            n_eval += 1
            steps.append((i, j, theta))
            gain = f - f_applied
            f = f_applied
        else:
            gain = 0.0
        hist.append(f)
        gains.append(gain)
        evals.append(n_eval)
        # a sweep covers every pair once; random draws need ~3x as many to likely cover each
        window = {"greedy": 1, "cyclic": n_pairs, "random": 3 * n_pairs}[variant]
        if len(gains) >= window and sum(gains[-window:]) <= gain_tol * (1.0 + abs(f)):
            reason = "gain_tol"
            break
    M = scorer.M.copy()
    return GivensResult(variant=variant, M0=M0, M=M, steps=steps, objective=np.array(hist),
                        gains=np.array(gains), grad_norm_sq=np.array(gsq),
                        max_slope_sq=np.array(msq), evaluations=np.array(evals, dtype=np.int64),
                        stop_reason=reason)


def theorem3_margins(result: GivensResult, B: float) -> dict[str, np.ndarray]:
    """Per greedy step, gain minus each lower bound (all >= 0 when Theorem 3 holds):

    "paper":  ‖∇F‖² / (2 d (d - 1) B)        "pair": max_IJ D_IJ² / (2B)  (sharper)

    Only iterations with a recorded gradient are included. Valid for exact line searches; a
    Brent fallback may fall short by its tolerance."""
    if not B > 0:
        raise ConfigError(f"the curvature bound B must be positive, got {B}")
    d = result.dim
    ok = np.isfinite(result.grad_norm_sq)
    g = result.gains[ok]
    return {"paper": g - result.grad_norm_sq[ok] / (2.0 * d * (d - 1) * B),
            "pair": g - result.max_slope_sq[ok] / (2.0 * B)}
