"""Is es-compact's ARS the paper's ARS? A seed-for-seed comparison on Swimmer-v4.

Both sides run ARS V1 (Mania, Guy, Recht 2018, Algorithm 1: no observation normalisation) with
the paper's Swimmer preset (α 0.02, N = b = 1, ν 0.01) on a linear policy a = clip(M s), M
starting at zero, for 150 iterations (300k environment steps), evaluating M every 25 iterations
on 5 episodes:

- ``ours``: es_compact's Trainer (serial backend: shared noise table, our rollouts, fast step);
- ``reference``: the algorithm written out again below in plain NumPy on gymnasium's own
  Swimmer-v4, with fresh Gaussian directions and none of our code.

Swimmer has two optima: a gait scoring about 350 and a drift near 40-50. Which one a run ends
in depends on its seed, in either implementation, so the comparison is the share of seeds that
reach the paper's Swimmer threshold (325) and the spread of final returns, not a curve.

``python -m es_compact.experiments.swimmer_reference [--seeds 10]`` trains what is missing
(finished runs under runs/checks/swimmer_reference are kept) and writes
results/swimmer_reference.{csv,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.experiments.rl import welch_p
from es_compact.experiments.runner import fmt_return
from es_compact.results import run_metadata
from es_compact.run_dir import RunDir
from es_compact.trainer import Trainer

ENV = "Swimmer-v4"
ALPHA, NU, ITERATIONS, EVAL_EVERY, EPISODES = 0.02, 0.01, 150, 25, 5
THRESHOLD = 325.0  # the ARS paper's Swimmer threshold (its Table 1)
ROOT = Path("runs/checks/swimmer_reference")


def reference_ars(seed: int) -> tuple[list[tuple[int, int, float]], float]:
    """(iteration, timesteps, mean evaluation return) of plain-NumPy ARS V1 on Swimmer-v4,
    and the wall time."""
    import gymnasium as gym

    env = gym.make(ENV)
    rng = np.random.default_rng([seed, 0xA125])
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    M = np.zeros((act_dim, obs_dim))
    steps, t0 = 0, time.perf_counter()

    def episode(W, env_seed):
        obs, _ = env.reset(seed=int(env_seed))
        total, t = 0.0, 0
        while True:
            obs, r, terminated, truncated, _ = env.step(np.clip(W @ obs, low, high))
            total, t = total + r, t + 1
            if terminated or truncated:
                return total, t

    out = []
    for it in range(1, ITERATIONS + 1):
        delta = rng.standard_normal(M.shape)
        env_seed = rng.integers(1 << 31)  # the same start for both signs, as ours does
        (r_plus, n1), (r_minus, n2) = episode(M + NU * delta, env_seed), episode(
            M - NU * delta, env_seed)
        steps += n1 + n2
        sigma = np.std([r_plus, r_minus])
        if sigma > 0:
            M = M + ALPHA / sigma * (r_plus - r_minus) * delta
        if it % EVAL_EVERY == 0:
            evals = [episode(M, 10_000 + 97 * seed + e)[0] for e in range(EPISODES)]
            out.append((it, steps, float(np.mean(evals))))
    env.close()
    return out, time.perf_counter() - t0


def ours(seed: int) -> tuple[list[tuple[int, int, float]], float]:
    """The same, trained by es_compact's Trainer (kept under ROOT/seedN), and its wall time."""

    cfg = TrainConfig(
        env=EnvConfig(id=ENV, reward_shift=0.0), policy=PolicyConfig(arch="linear"),
        strategy=StrategyConfig(variant="v1", step_size=ALPHA, directions=1, top=1,
                                noise_std=NU),
        run=RunConfig(seed=seed, iterations=ITERATIONS, eval_every=EVAL_EVERY,
                      eval_episodes=EPISODES, backend="serial", workers=1))
    run_dir = RunDir(ROOT / f"seed{seed}")
    if run_dir.final_eval() is None:
        Trainer(cfg, run_dir.path, mode="overwrite").run()
    progress = run_dir.read_progress()
    rows = progress.dropna(subset=["eval_return_mean"])
    return [(int(r.iteration), int(r.timesteps), float(r.eval_return_mean))
            for r in rows.itertuples()], float(progress["wall_time_s"].iloc[-1])


def summarize(impl: str, seed: int, evals: list[tuple[int, int, float]], wall: float) -> dict:
    returns = [e[2] for e in evals]
    hit = [e for e in evals if e[2] >= THRESHOLD]
    return {"implementation": impl, "seed": seed, "final_eval": round(returns[-1], 1),
            "best_eval": round(max(returns), 1), "reached_325": bool(hit),
            "first_timesteps_at_325": hit[0][1] if hit else None,
            "evals": " ".join(f"{r:.0f}" for r in returns), "wall_time_s": round(wall, 1)}


def fisher_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value of hits_a of n_a against hits_b of n_b."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]]).pvalue)


def markdown(df: pd.DataFrame, meta: dict) -> str:

    lines = ["# ARS on Swimmer-v4: es-compact against a plain-NumPy reference", "",
             f"ARS V1, linear policy, α {ALPHA}, N = b = 1, ν {NU} (the ARS paper's Swimmer "
             f"preset), {ITERATIONS} iterations; evaluation = mean return of {EPISODES} "
             f"episodes every {EVAL_EVERY} iterations. See "
             "`es_compact/experiments/swimmer_reference.py`.", "",
             "| implementation | seeds | reached 325 | final return, mean ± std | median "
             "| best evaluation, median |", "|---|---|---|---|---|---|"]
    for impl, g in df.groupby("implementation", sort=False):
        f = g["final_eval"]
        lines.append(f"| {impl} | {len(g)} | {int(g['reached_325'].sum())} of {len(g)} | "
                     f"{fmt_return(f.mean(), f.std(ddof=1), len(f))} | {f.median():.0f} | "
                     f"{g['best_eval'].median():.0f} |")
    a, b = (df[df["implementation"] == impl] for impl in ("es-compact", "reference"))
    gap = a["final_eval"].mean() - b["final_eval"].mean()
    p = welch_p(list(a["final_eval"]), list(b["final_eval"]))  # None below two seeds a side
    lines += ["", f"es-compact − reference, final return: {gap:+.0f} (Welch's two-sided p = "
              f"{'n/a' if p is None else f'{p:.2f}'}); seeds reaching "
              f"{THRESHOLD:.0f}: Fisher's exact two-sided p = "
              f"{fisher_p(a['reached_325'].sum(), len(a), b['reached_325'].sum(), len(b)):.2f}."]
    lines += ["", "| implementation | seed | evaluations (every 25 iterations) | final | "
              "reached 325 at |", "|---|---|---|---|---|"]
    for r in df.itertuples():
        at = "" if pd.isna(r.first_timesteps_at_325) else f"{int(r.first_timesteps_at_325):,}"
        lines.append(f"| {r.implementation} | {r.seed} | {r.evals} | {r.final_eval} | {at} |")
    # The invocation's own time leaves out runs read back from an earlier invocation; the
    # rows' wall times are each run's own.
    trained = ", ".join(f"{impl} {g['wall_time_s'].sum():.0f} s"
                        for impl, g in df.groupby("implementation", sort=False))
    lines += ["", f"`{meta['command']}` at {meta['commit']}, {meta['date']}, {meta['cores']} "
              f"cores, {meta['wall_time_s']:.0f} s (training, summed over seeds: {trained})",
              ""]
    return "\n".join(lines)


def main(seeds: int = 10, out: str = "results",
         log: Callable[[str], None] = lambda s: None) -> pd.DataFrame:
    t0, rows = time.perf_counter(), []
    for seed in range(seeds):
        for impl, fn in (("es-compact", ours), ("reference", reference_ars)):
            evals, wall = fn(seed)
            rows.append(summarize(impl, seed, evals, wall))
            log(f"{impl} seed {seed}: {rows[-1]['evals']}")
    df = pd.DataFrame(rows).sort_values(["implementation", "seed"], kind="stable")
    meta = run_metadata(time.perf_counter() - t0, command=(
        f"python -m es_compact.experiments.swimmer_reference --seeds {seeds}"))
    Path(out).mkdir(parents=True, exist_ok=True)
    df.assign(**{k: meta[k] for k in ("command", "commit", "date", "cores")}).to_csv(
        Path(out) / "swimmer_reference.csv", index=False)
    (Path(out) / "swimmer_reference.md").write_text(markdown(df, meta))
    return df


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m es_compact.experiments.swimmer_reference",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_count, default=10, help="seeds a side (default 10)")
    main(seeds=parser.parse_args().seeds, log=lambda s: print(s, file=sys.stderr, flush=True))
