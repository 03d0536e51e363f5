"""CMA-ES (Hansen 2016, "The CMA evolution strategy: a tutorial", arXiv:1604.00772) with
mirrored sampling and pairwise selection, in the formulation of pycma's ``purecma``
(``cma.more_algorithms.purecma`` in pycma 4.5): the same constants, h_σ test, squared-norm σ
update and lazy eigendecomposition, so that one update here equals purecma's on the same samples
to rounding (tests/test_cmaes.py).

The distribution is N(m, σ² C), m = θ, C = B D² Bᵀ. Iteration t's λ = 2N candidates are

    x_k± = m ± σ y_k,    y_k = B D z_k,    z_k = δ_k ~ N(0, I)  (the directions)

With mirrored pairs, selection is pairwise (Auger, Brockhoff and Hansen 2011, "Mirrored sampling
in evolution strategies with weighted recombination"): only the better member of each valid
pair competes (the + member on a tie), and the pairs' winners, sorted by descending fitness
(ties by pair index), give y_i:λ = (x_i:λ - m) / σ = ±y_k; the first μ = λ/2 of them (all N
winners when no pair failed) get the weights and

    w_i = (ln(λ/2 + 0.5) - ln i) / Σ_{j≤μ} (ln(λ/2 + 0.5) - ln j),   μ_eff = 1 / Σ w_i²
    c_c = (4 + μ_eff/d) / (d + 4 + 2 μ_eff/d),   c_σ = (μ_eff + 2) / (d + μ_eff + 5)
    c_1 = 2 / ((d + 1.3)² + μ_eff)
    c_μ = min(1 - c_1, 2 (μ_eff - 2 + 1/μ_eff) / ((d + 2)² + μ_eff))
    d_σ = 2 μ_eff / λ + 0.3 + c_σ

    y_w = Σ w_i y_i:λ;   m <- m + c_m σ y_w                      (c_m = step_size, default 1)
    p_σ <- (1 - c_σ) p_σ + √(c_σ (2 - c_σ) μ_eff) C^(-1/2) y_w,    C^(-1/2) y_w = B Σ w_i z_i:λ
    h_σ = [‖p_σ‖² / d / (1 - (1 - c_σ)^(2 counteval / λ)) < 2 + 4 / (d + 1)]
    p_c <- (1 - c_c) p_c + h_σ √(c_c (2 - c_c) μ_eff) y_w
    c_1a = c_1 (1 - (1 - h_σ²) c_c (2 - c_c))
    C <- (1 - c_1a - c_μ Σ w_i) C + c_1 p_c p_cᵀ + c_μ Σ w_i y_i:λ y_i:λᵀ
    σ <- σ exp(min(1, c_σ / d_σ (‖p_σ‖² / d - 1) / 2))

counteval counts all λ candidates of every update (failed ones too: it is spent evaluations,
and counteval / λ is the number of updates the h_σ correction needs). After the update, when
counteval > (counteval at the last decomposition) + 0.5 λ / ((c_1 + c_μ) d), C is symmetrised,
(C + Cᵀ) / 2, and decomposed, C = B diag(D²) Bᵀ (purecma does this at the start of its next
ask, with the same counteval: the same schedule). purecma computes C^(-1/2) y_w as B D⁻¹ Bᵀ y_w;
since y_k = B D z_k with the same B, D, that is B z_w exactly, which needs no inverse.

purecma has no c_m (it is 1 there); with c_m the paths still take y_w = (m' - m) / (c_m σ), as
in the tutorial's algorithm summary (its Appendix A). Why pairwise: purecma samples
independently; if both members of a pair could be among the μ best, their ±y_k would partly
cancel in y_w and shorten p_σ, so σ would shrink on a fitness that carries no information
(Auger et al. select at most one of each pair for that reason). Measured on random fitness, d =
10, λ = 10, σ0 = 1, mean ln σ over 10 seeds after 300 iterations: -8.1 with both members
selectable, -0.6 with pairwise selection, -0.9 for purecma's independent samples. With
the losers of the pairs given fitness +∞, purecma's update is this one, which is how the tests
compare the two.

Failed pairs: the trainer and AskTell drop a pair whose rollout failed, so its two candidates
have no fitness and take no part. With N' < μ valid pairs, their N' winners keep w_1..w_N',
renormalised to sum 1, and μ_eff in the two path updates is that of these weights (so p_σ keeps
its N(0, I) scale under random selection); the other constants stay λ's.

The separable variant (diagonal C, linear time and memory) is in
:mod:`es_compact.strategies.sepcmaes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from es_compact.errors import ConfigError, ESCompactError
from es_compact.exploration import Plan
from es_compact.memory import available_memory
from es_compact.strategies.base import Strategy

BYTES_PER_DIM2 = 6 * 8
"""Bytes the full variant holds per d² at its peak: the previous state's C and B (the trainer
keeps them until the step ends: nothing here writes to an array it has handed out), the new C,
and numpy.linalg.eigh's input copy, LAPACK workspace and eigenvectors (about 3 d² more, measured
with ru_maxrss at d = 2000)."""


@dataclass(frozen=True)
class Constants:
    """purecma's CMAESParameters for dimension d and population λ (weights: the μ positive)."""

    dim: int
    lam: int
    mu: int
    weights: np.ndarray
    mueff: float
    cc: float
    cs: float
    c1: float
    cmu: float
    damps: float
    lazy_gap_evals: float


def constants(dim: int, lam: int, separable: bool = False) -> Constants:
    """The default strategy parameters, written as purecma writes them. separable: c_1 and
    c_μ times (d + 2) / 3 (Ros and Hansen 2008, section 2), c_μ capped at 1 - c_1."""
    n = dim
    mu = int(lam / 2)
    raw = [math.log(lam / 2 + 0.5) - math.log(i + 1) for i in range(mu)]
    w_sum = sum(raw)
    weights = [w / w_sum for w in raw]
    mueff = sum(weights) ** 2 / sum(w**2 for w in weights)
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    cs = (mueff + 2) / (n + mueff + 5)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu_raw = 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff)
    if separable:
        c1 = c1 * (n + 2) / 3
        cmu_raw = cmu_raw * (n + 2) / 3
    cmu = min([1 - c1, cmu_raw])
    damps = 2 * mueff / lam + 0.3 + cs
    lazy = 0.5 * n * lam * (c1 + cmu) ** -1 / n**2
    return Constants(n, lam, mu, np.array(weights), mueff, cc, cs, c1, cmu, damps, lazy)


def select(returns_n2: np.ndarray, weights: np.ndarray):
    """Pairwise selection over the valid pairs (rows of returns_n2, maximised): each pair's
    better member (+ on a tie), the μ best of these as (pair index into returns_n2, sign
    +1 / -1, weight), best first, ties by pair index. Fewer than μ pairs: the weights of their
    ranks, renormalised to sum 1."""
    minus = returns_n2[:, 1] > returns_n2[:, 0]
    best = np.where(minus, returns_n2[:, 1], returns_n2[:, 0])
    order = np.argsort(-best, kind="stable")[: len(weights)]
    w = weights[: len(order)]
    if len(order) < len(weights):
        w = w / w.sum()
    return order, np.where(minus[order], -1.0, 1.0), w


class CMABase(Strategy):
    """The update shared by the full and the separable variant; subclasses give the selected
    y_i:λ and C^(-1/2) y_w, update C and export their covariance state."""

    default_step_size = 1.0
    optimizers = ()
    min_directions = 2
    separable = False

    def __init__(self, config, directions):
        super().__init__(config, directions)
        self.c = constants(directions.dim, 2 * self.num_directions, self.separable)
        self.sigma = float(self.config.noise_std)
        self.pc = np.zeros(directions.dim)
        self.ps = np.zeros(directions.dim)
        self.counteval = 0

    def _z(self, plan: Plan, k: np.ndarray) -> np.ndarray:
        """z_k (float64 rows), regenerated from the plan's offsets or block seeds."""
        return self.directions.matrix(Plan(plan.iteration, plan.count, plan.offsets), k)

    def _selected(self, plan, k, sign):
        """(Y, Z): rows ±y_k and ±z_k of the selected candidates."""
        raise NotImplementedError

    def _whiten(self, z_w: np.ndarray) -> np.ndarray:
        """C^(-1/2) y_w from z_w = Σ w_i z_i:λ."""
        raise NotImplementedError

    def _update_cov(self, a: float, pc: np.ndarray, Y: np.ndarray, w: np.ndarray) -> None:
        """C <- a C + c_1 p_c p_cᵀ + c_μ Σ w_i y_i yᵢᵀ (then any decomposition)."""
        raise NotImplementedError

    def _tell(self, theta, plan, ks, returns_n2):
        c, d = self.c, self.c.dim
        pair, sign, w = select(returns_n2, c.weights)
        mueff = c.mueff if len(w) == c.mu else float(w.sum() ** 2 / (w @ w))
        Y, Z = self._selected(plan, ks[pair], sign)
        y_w = w @ Y
        self.counteval += 2 * plan.count
        ps = (1 - c.cs) * self.ps + math.sqrt(c.cs * (2 - c.cs) * mueff) * self._whiten(w @ Z)
        sq = float(ps @ ps)
        hsig = sq / d / (1 - (1 - c.cs) ** (2 * self.counteval / c.lam)) < 2 + 4.0 / (d + 1)
        pc = (1 - c.cc) * self.pc + (math.sqrt(c.cc * (2 - c.cc) * mueff) * hsig) * y_w
        c1a = c.c1 * (1 - (1 - hsig**2) * c.cc * (2 - c.cc))
        self._update_cov(1 - c1a - c.cmu * float(w.sum()), pc, Y, w)
        new_theta = theta + (self.config.step_size * self.sigma) * y_w
        self.ps, self.pc = ps, pc
        self.sigma *= math.exp(min(1, c.cs / c.damps * (sq / d - 1) / 2))
        return new_theta

    def _scalars(self) -> dict:
        return {"cma_sigma": self.sigma, "cma_counteval": self.counteval}

    def _load_scalars(self, arrays, meta) -> None:
        self.pc = _vector(arrays["cma_pc"])
        self.ps = _vector(arrays["cma_ps"])
        self.sigma = float(meta["cma_sigma"])
        self.counteval = int(meta["cma_counteval"])


def _vector(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


class CMAES(CMABase):
    """CMA-ES with a full covariance matrix (purecma's update; see the module docstring).

    ask() carries the directions y_k = B D z_k in the plan: a worker cannot regenerate them
    from a seed, since B D is the strategy's state. Y = (Z D) Bᵀ, computed once on the driver,
    is N d floats per iteration; the other exact form, sending B D so that workers multiply
    their own z_k, is d² floats, and d ≫ N for the policies here (d = 5696, N = 32: 0.18 M
    against 32 M floats). noise() is (σ, None): the candidates are θ ± σ y_k.

    Every array is replaced, never written to, so state() and load() share arrays without
    copies (C and B are d² floats each); all arrays are kept C-contiguous, so that a resumed
    run's matrix products are those of an uninterrupted one."""

    name = "cmaes"

    def __init__(self, config, directions):
        super().__init__(config, directions)
        d = directions.dim
        self.C = np.eye(d)
        self.B = np.eye(d)
        self.D = np.ones(d)
        self.eigen_eval = 0

    @classmethod
    def check_dim(cls, config, dim):
        need = BYTES_PER_DIM2 * dim * dim
        avail = available_memory()
        if avail is not None and need > avail / 2:
            raise ConfigError(f"cmaes with d = {dim} parameters needs about {need / 2**30:.1f} "
                              f"GiB (C, B and the eigendecomposition, {BYTES_PER_DIM2 // 8} d^2 "
                              f"floats), more than half the {avail / 2**30:.1f} GiB available: "
                              "use --algo sepcmaes (diagonal covariance, linear memory)")

    def ask(self, iteration: int) -> Plan:
        return self.with_vectors(self.directions.plan(iteration, self.num_directions))

    def with_vectors(self, plan: Plan) -> Plan:
        """plan with vectors y_k = B D z_k (rows) for its directions z_k."""
        Z = self._z(plan, np.arange(plan.count))
        return Plan(plan.iteration, plan.count, offsets=plan.offsets,
                    vectors=(Z * self.D) @ self.B.T)

    def noise(self):
        return self.sigma, None

    def _selected(self, plan, k, sign):
        if plan.vectors is None:
            plan = self.with_vectors(plan)
        return plan.vectors[k] * sign[:, None], self._z(plan, k) * sign[:, None]

    def _whiten(self, z_w):
        return self.B @ z_w

    def _update_cov(self, a, pc, Y, w):
        M = np.vstack([pc, Y])
        coef = np.concatenate([[self.c.c1], self.c.cmu * w])
        C = a * self.C
        C += (M.T * coef) @ M
        self.C = C
        if self.counteval > self.eigen_eval + self.c.lazy_gap_evals:
            self._decompose()

    def _decompose(self) -> None:
        C = (self.C + self.C.T) / 2
        ev, B = np.linalg.eigh(C)
        if not ev.min() > 0:
            raise ESCompactError(f"cmaes: the covariance matrix is no longer positive definite "
                                 f"after {self.counteval} evaluations (smallest eigenvalue "
                                 f"{ev.min():.3g}); the run cannot continue")
        self.C, self.B, self.D = C, np.ascontiguousarray(B), np.sqrt(ev)
        self.eigen_eval = self.counteval

    def state(self):
        arrays = {"cma_C": self.C, "cma_B": self.B, "cma_D": self.D, "cma_pc": self.pc,
                  "cma_ps": self.ps}
        return arrays, {**self._scalars(), "cma_eigen_eval": self.eigen_eval}

    def load(self, arrays, meta):
        self._load_scalars(arrays, meta)
        self.C = _vector(arrays["cma_C"])
        self.B = _vector(arrays["cma_B"])
        self.D = _vector(arrays["cma_D"])
        self.eigen_eval = int(meta["cma_eigen_eval"])
