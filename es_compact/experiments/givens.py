"""Benchmarks of Givens coordinate descent on SO(d) with known optima (KAMA-NN paper, Section 5).

Three costs, all minimised from M0 = I:

- **procrustes**: ‖M X - Y‖²_F for X of shape (d, 4d) (4d point pairs) and Y = R X + 0.5 noise,
  R Haar on SO(d). With Y Xᵀ = U S Vᵀ the optimum over SO(d) is U diag(1, ..., 1, det UVᵀ) Vᵀ
  (Umeyama 1991), F* = ‖X‖² + ‖Y‖² - 2 (s_1 + ... + s_{d-1} + det(UVᵀ) s_d).
- **brockett**: tr(Mᵀ A M N) with A = (G + Gᵀ)/2 Gaussian and N = diag(1, ..., d); the minimum
  pairs A's eigenvalues in increasing order with N's in decreasing order (Brockett 1991).
- **target**: ‖M - R‖²_F for R Haar on SO(d): F* = 0, and F after K steps is the error of the
  best K-factor Givens approximation the greedy path finds.

:func:`run_benchmarks` returns the rows that `es-compact givens --benchmark` appends to
results/givens_trace.csv (objective against steps, thinned to log-spaced steps),
givens_summary.csv (one row per run) and givens_timing.csv (d = 64: seconds per greedy step with
the vectorised scorer and with a dense callable); :func:`plot` draws results/givens.png.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import special_ortho_group

from es_compact.checks import integer
from es_compact.errors import ConfigError
from es_compact.so_d import VARIANTS, GivensResult, QuadraticObjective, check_dim, minimize


@dataclass(frozen=True, eq=False)
class Problem:
    name: str
    objective: QuadraticObjective
    optimum: float
    """The known minimum of the objective over SO(d)."""
    start_value: float
    """F(I), the value at the default start."""

    @property
    def dim(self) -> int:
        return self.objective.dim

    def rel_gap(self, value: np.ndarray | float) -> np.ndarray | float:
        """(F - F*) / |F*|, or relative to the starting gap F(I) - F* when F* = 0."""
        scale = abs(self.optimum) if self.optimum != 0 else self.start_value - self.optimum
        return (np.asarray(value) - self.optimum) / scale


def _haar(dim: int, rng: np.random.Generator) -> np.ndarray:
    return special_ortho_group.rvs(dim, random_state=rng)


def procrustes(dim: int, rng: np.random.Generator) -> Problem:
    X = rng.standard_normal((dim, 4 * dim))
    Y = _haar(dim, rng) @ X + 0.5 * rng.standard_normal((dim, 4 * dim))
    const = float(np.sum(X**2) + np.sum(Y**2))
    obj = QuadraticObjective(np.zeros((dim, dim)), np.zeros(dim), -2.0 * Y @ X.T, const)
    U, s, Vt = np.linalg.svd(Y @ X.T)
    sign = np.ones(dim)
    sign[-1] = np.sign(np.linalg.det(U @ Vt))
    return Problem("procrustes", obj, const - 2.0 * float(np.sum(sign * s)), obj(np.eye(dim)))


def brockett(dim: int, rng: np.random.Generator) -> Problem:
    G = rng.standard_normal((dim, dim))
    A = 0.5 * (G + G.T)
    n = np.arange(1.0, dim + 1.0)
    obj = QuadraticObjective(A, n, np.zeros((dim, dim)))
    lam = np.linalg.eigvalsh(A)  # increasing
    return Problem("brockett", obj, float(np.sum(lam * n[::-1])), obj(np.eye(dim)))


def target(dim: int, rng: np.random.Generator) -> Problem:
    R = _haar(dim, rng)
    obj = QuadraticObjective(np.zeros((dim, dim)), np.zeros(dim), -2.0 * R, 2.0 * dim)
    return Problem("target", obj, 0.0, obj(np.eye(dim)))


PROBLEMS: dict[str, Callable[[int, np.random.Generator], Problem]] = {
    "procrustes": procrustes, "brockett": brockett, "target": target}


def make_problem(name: str, dim: int, seed: int = 0) -> Problem:
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ConfigError(f"unknown problem {name!r}: use one of {', '.join(PROBLEMS)}")
    check_dim(dim)
    integer("seed", seed, minimum=0)  # numpy's SeedSequence takes non-negative integers only
    return PROBLEMS[name](int(dim), np.random.default_rng(int(seed)))


def solve(problem: Problem, variant: str, max_steps: int, seed: int = 0,
          gain_tol: float = 1e-13) -> tuple[GivensResult, float]:
    """Run one variant from the identity; returns the result and its wall time in seconds."""
    t0 = time.perf_counter()
    res = minimize(problem.objective, dim=problem.dim, variant=variant, max_steps=max_steps,
                   seed=seed, gain_tol=gain_tol)
    return res, time.perf_counter() - t0


def thin_steps(n: int, points: int = 300) -> np.ndarray:
    """About `points` log-spaced indices in 0..n (always 0 and n)."""
    integer("n", n, minimum=0)
    integer("points", points, minimum=1)
    # Past this many points consecutive values of the geomspace are under 1/2 apart, so the
    # rounded indices are already every step 0..n: capping changes nothing but keeps a huge
    # `points` from allocating (and hanging on) an array of that size.
    points = min(int(points), 2 * (n + 1) * math.ceil(math.log(n + 2)) + 2)
    idx = np.unique(np.round(np.geomspace(1, n + 1, points)).astype(int) - 1)
    return np.union1d(idx, [0, n])


def trace_rows(problem: Problem, res: GivensResult, seed: int) -> list[dict]:
    evals = np.concatenate([[0], res.evaluations])
    gap = problem.rel_gap(res.objective)
    return [{"problem": problem.name, "dim": problem.dim, "variant": res.variant, "seed": seed,
             "step": int(t), "evaluations": int(evals[t]), "objective": float(res.objective[t]),
             "optimum": problem.optimum, "rel_gap": float(gap[t])}
            for t in thin_steps(res.iterations)]


def summary_row(problem: Problem, res: GivensResult, wall: float, seed: int) -> dict:
    return {"problem": problem.name, "dim": problem.dim, "variant": res.variant, "seed": seed,
            "steps": res.iterations, "rotations": len(res.steps), "stop": res.stop_reason,
            "objective": res.value, "objective_dense": problem.objective(res.M),
            "optimum": problem.optimum,
            "rel_error": float(problem.rel_gap(problem.objective(res.M))),
            "evaluations": int(res.evaluations[-1]) if res.iterations else 0,
            "seconds": wall, "ms_per_step": 1e3 * wall / max(res.iterations, 1)}


def dense_step_seconds(problem: Problem, steps: int = 2) -> float:
    """Seconds per greedy step when the cost is a plain callable (every pair scored by forming
    M G and calling F, 2p + 1 times): the baseline the vectorised scorer replaces."""
    obj = problem.objective
    t0 = time.perf_counter()
    minimize(lambda M: obj(M), dim=problem.dim, degree=obj.degree, max_steps=steps,
             gain_tol=-1.0)
    return (time.perf_counter() - t0) / steps


def run_benchmarks(quick: bool = True, seed: int = 0,
                   log: Callable[[str], None] = lambda s: None) -> dict[str, list[dict]]:
    """Every problem and variant at d = 16 (traces, summary), greedy at d = 64 (timing).

    quick caps the d = 64 greedy runs at 3000 steps (timings per step stay exact; errors are
    those reached by then); the full run lets them converge (up to 40000 steps)."""
    small, large = 16, 64
    budget = {"greedy": 20000, "random": 400000, "cyclic": 400000}
    traces, summary, timing = [], [], []
    for name in PROBLEMS:
        problem = make_problem(name, small, seed)
        for variant in VARIANTS:
            res, wall = solve(problem, variant, budget[variant], seed)
            traces += trace_rows(problem, res, seed)
            summary.append(summary_row(problem, res, wall, seed))
            log(f"d={small} {name:10s} {variant:7s} steps={res.iterations:7d} "
                f"rel_error={summary[-1]['rel_error']:.2e} ({wall:.1f} s)")
    for name in PROBLEMS:
        problem = make_problem(name, large, seed)
        res, wall = solve(problem, "greedy", 3000 if quick else 40000, seed)
        row = summary_row(problem, res, wall, seed)
        summary.append(row)
        dense = dense_step_seconds(problem)
        timing.append({"problem": name, "dim": large, "variant": "greedy",
                       "pairs_per_step": large * (large - 1) // 2, "steps": res.iterations,
                       "stop": res.stop_reason, "rel_error": row["rel_error"],
                       "seconds": wall, "ms_per_step": row["ms_per_step"],
                       "dense_callable_ms_per_step": 1e3 * dense,
                       "speedup": 1e3 * dense / row["ms_per_step"]})
        log(f"d={large} {name:10s} greedy  steps={res.iterations:7d} "
            f"rel_error={row['rel_error']:.2e} {row['ms_per_step']:.2f} ms/step "
            f"(dense callable {1e3 * dense:.0f} ms/step)")
    return {"trace": traces, "summary": summary, "timing": timing}


def plot(traces: list[dict], path: str | Path) -> None:
    """Objective against steps (with the optimum dashed) and relative gap against evaluations,
    one column per problem, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(traces)
    names = list(dict.fromkeys(df["problem"]))
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False)
    for c, name in enumerate(names):
        sub = df[df["problem"] == name]
        top, bottom = axes[0, c], axes[1, c]
        for variant, g in sub.groupby("variant", sort=False):
            top.plot(g["step"] + 1, g["objective"], label=variant)
            bottom.plot(g["evaluations"] + 1, g["rel_gap"].clip(lower=1e-16), label=variant)
        top.axhline(float(sub["optimum"].iloc[0]), color="k", ls="--", lw=1, label="optimum")
        top.set_xscale("log")
        top.set_title(f"{name}, d = {int(sub['dim'].iloc[0])}")
        top.set_xlabel("steps + 1")
        top.set_ylabel("F(M)")
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        bottom.axhline(1e-6, color="grey", ls=":", lw=1)
        bottom.set_xlabel("evaluations along geodesics + 1")
        bottom.set_ylabel("relative gap to optimum")
        top.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
