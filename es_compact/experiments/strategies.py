"""Which evolution strategy trains compact policies best? Every strategy of the family (ARS
V2-t, OpenAI-ES, PGPE, SNES, CMA-ES, sep-CMA-ES, CEM; es_compact.strategies) trains a linear
and a kama policy (h = 64, K = 200) on HalfCheetah and Hopper at the rl experiment's budgets.

Each strategy runs with its own defaults (presets.resolve): N and the initial σ come from the
ARS paper's preset (Mania et al. 2018, Table 9), so every strategy samples as many candidates
per iteration, as widely, as ARS; step sizes and optimizers are the strategies' own, untuned.
The ARS cells are the rl experiment's runs of the same configurations, shared rather than
trained twice. Besides the final return and Welch's test against ARS, the table gives the
timesteps to the ARS paper's thresholds (its Table 1: HalfCheetah 3000, Hopper 3120).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import ALGOS, PolicyConfig, RunConfig
from es_compact.experiments import rl
from es_compact.experiments.report import fmt_p, stats_frame, welch
from es_compact.experiments.runner import (
    Budget,
    RunSpec,
    draw_curves,
    figure,
    fmt_return,
    make_config,
    plural,
    summarise,
)
from es_compact.run_dir import RunDir

ENVS = ("HalfCheetah-v4", "Hopper-v4")
ARCHS = ("linear", "kama")
SEEDS = {"quick": 1, "full": 3}
BUDGETS = {form: {e: rl.BUDGETS[form][e] for e in ENVS} for form in rl.BUDGETS}
"""rl's budgets (full: 5M steps, evaluations every 5 / 10 iterations), so ARS's cells are its
runs."""
THRESHOLDS = {"HalfCheetah-v4": 3000.0, "Hopper-v4": 3120.0}
"""The ARS paper's reward thresholds (Mania et al. 2018, Table 1)."""


def specs(form: str = "quick", envs=ENVS, archs=ARCHS, algos=ALGOS, seeds: int | None = None,
          backend: str = RunConfig.backend, workers: int | None = None,
          budgets: dict[str, Budget] | None = None) -> list[RunSpec]:
    budgets = budgets or BUDGETS[form]
    out = []
    # Seed by seed: a grid stopped part-way has every cell at the same number of seeds (but
    # those of the seed in progress), a fair partial comparison of the strategies.
    for seed in range(SEEDS[form] if seeds is None else seeds):
        for env_id in envs:
            for arch in archs:
                for algo in algos:
                    cfg = make_config(env_id, PolicyConfig(arch=arch), budgets[env_id], seed,
                                      backend, workers, rl.NOISE_TABLE[form], algo)
                    name = rl.shared_name(cfg, form) or f"{env_id}/{arch}/{algo}/seed{seed}"
                    out.append(RunSpec(name, cfg, {"env": env_id, "arch": arch, "algo": algo,
                                                   "seed": seed}))
    return out


def first_at(run_dir: str | Path, threshold: float) -> int | None:
    """Timesteps at the run's first evaluation at or above threshold (the progress rows'
    evaluations, then the final one when the budget ended off the schedule); None if none."""
    run = RunDir(run_dir)
    evals = run.read_progress().dropna(subset=["eval_return_mean"])
    hit = evals[evals["eval_return_mean"] >= threshold]
    if len(hit):
        return int(hit["timesteps"].iloc[0])
    final = run.read_final_eval()
    if final is not None and final.get("eval_return_mean") is not None and \
            final["eval_return_mean"] >= threshold:
        return int(final["timesteps"])
    return None


def with_columns(rows: list[dict]) -> list[dict]:
    """Each run's row with its task's threshold and the timesteps it first reached it at
    (NaN when it never did)."""
    out = []
    for r in rows:
        threshold = THRESHOLDS.get(r["env"], np.nan)
        hit = None if np.isnan(threshold) else first_at(r["run_dir"], threshold)
        out.append({**r, "threshold": threshold,
                    "timesteps_to_threshold": np.nan if hit is None else hit})
    return out


def _common(df: pd.DataFrame, a: str, b: str) -> tuple[list[float], list[float]]:
    """The final returns of strategies a and b over the seeds both have finished (ARS, shared
    with the rl experiment, can hold more)."""
    fa = dict(zip(df[df["algo"] == a]["seed"], df[df["algo"] == a]["final_return_mean"],
                  strict=True))
    fb = dict(zip(df[df["algo"] == b]["seed"], df[df["algo"] == b]["final_return_mean"],
                  strict=True))
    common = sorted(set(fa) & set(fb))
    return [fa[s] for s in common], [fb[s] for s in common]


def stats(rows: list[dict]) -> pd.DataFrame:
    """Per task and architecture, Welch's test of each strategy's final return against ARS's
    over the seeds both have finished (p NaN with fewer than two a side)."""
    df = pd.DataFrame(rows)
    out = []
    for (env_id, arch), g in df.groupby(["env", "arch"], sort=False):
        if "ars" not in set(g["algo"]):
            continue
        for algo in [a for a in dict.fromkeys(g["algo"]) if a != "ars"]:
            xa, xb = _common(g, algo, "ars")
            if xa:
                out.append(welch(env_id, f"{arch}: against ARS", algo, xa, "ars", xb))
    return stats_frame(out)


def fmt_threshold(hits: list[float]) -> str:
    """Mean timesteps to the threshold over the seeds that reached it, and 'not reached (k of
    n)' for the k of n seeds that did not."""
    reached = [h for h in hits if not np.isnan(h)]
    missed = len(hits) - len(reached)
    parts = [f"{np.mean(reached):,.0f}"] if reached else []
    if missed:
        parts.append(f"not reached ({missed} of {len(hits)})")
    return "; ".join(parts)


def markdown(rows: list[dict]) -> str:
    """Per task, one row per architecture and strategy: final return (mean ± std over seeds),
    seeds, the gap to ARS and Welch's p over their common seeds, wall time and timesteps to
    the ARS paper's threshold."""
    rows = rows if "timesteps_to_threshold" in rows[0] else with_columns(rows)
    df = pd.DataFrame(rows)
    s = summarise(rows, ["env", "arch", "algo"]).set_index(["env", "arch", "algo"])
    st = stats(rows).set_index(["env", "comparison", "a"])
    lines = []
    for env_id, g in df.groupby("env", sort=False):
        threshold = THRESHOLDS.get(env_id, np.nan)
        lines += [f"**{env_id}** ({int(g['timesteps'].mean()):,} steps a run, threshold "
                  f"{threshold:.0f})", "",
                  f"| arch | strategy | final return | seeds | − ARS | Welch p | wall time "
                  f"| timesteps to {threshold:.0f} |", "|---|---|---|---|---|---|---|---|"]
        for arch in dict.fromkeys(g["arch"]):
            cell = g[g["arch"] == arch]
            params = int(cell["params"].iloc[0])
            for algo in ALGOS:
                label = f"{arch} ({params} p)"
                runs = cell[cell["algo"] == algo]
                if not len(runs):
                    lines.append(f"| {label} | {algo} | not run yet | 0 | | | | |")
                    continue
                c = s.loc[(env_id, arch, algo)]
                diff = p = "—" if algo == "ars" else ""
                if (env_id, f"{arch}: against ARS", algo) in st.index:
                    w = st.loc[(env_id, f"{arch}: against ARS", algo)]
                    ars = int(s.loc[(env_id, arch, "ars"), "seeds"])
                    fewer = w["n_a"] < max(len(runs), ars)
                    gap = round(float(w["difference"]))  # never "-0"
                    diff = (f"{gap:+d}" if gap else "0") + (
                        f" (over {plural(int(w['n_a']), 'common seed')})" if fewer else "")
                    p = fmt_p(w["p"])
                wall = float(np.mean(runs["wall_time_s"]))
                lines.append(f"| {label} | {algo} | "
                             f"{fmt_return(c['final_mean'], c['final_std'], int(c['seeds']))} | "
                             f"{int(c['seeds'])} | {diff} | {p} | {wall:,.0f} s | "
                             f"{fmt_threshold(list(runs['timesteps_to_threshold']))} |")
        lines.append("")
    lines.append("Final return: the evaluation of the last θ, mean ± std over seeds (the "
                 "mean alone for one seed). − ARS and Welch's two-sided p: over the seeds both "
                 "strategies have finished (n/a with fewer than two, or when neither varies; "
                 "strategies_*_stats.csv holds t and p). Wall time: mean over seeds of a run's "
                 "training time. Timesteps to the threshold: the first evaluation at or above "
                 "it, mean over the seeds that reached it; not reached (k of n): k of the n "
                 "seeds never did. The ARS rows are the rl experiment's runs.")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str | Path) -> None:
    """A row of panels per task, one per architecture, one band per strategy; the dashed line
    is the ARS paper's threshold."""
    df = pd.DataFrame(rows)
    envs = list(dict.fromkeys(df["env"]))
    archs = list(dict.fromkeys(df["arch"]))
    plt, fig, axes = figure(len(envs), len(archs))
    for r, env_id in enumerate(envs):
        for c, arch in enumerate(archs):
            ax = axes[r, c]
            sub = df[(df["env"] == env_id) & (df["arch"] == arch)]
            if not len(sub):
                ax.axis("off")
                continue
            groups = {a: list(sub[sub["algo"] == a]["run_dir"]) for a in ALGOS
                      if a in set(sub["algo"])}
            draw_curves(ax, groups)
            if env_id in THRESHOLDS:
                ax.axhline(THRESHOLDS[env_id], color="0.4", ls="--", lw=0.8)
            ax.set_title(f"{env_id}: {arch} ({int(sub['params'].iloc[0])} p)", fontsize=10)
            ax.legend(fontsize=7)
    fig.suptitle("Evaluation return against timesteps\n(mean ± std over seeds; dashed: the "
                 "ARS paper's threshold)", fontsize=11 if len(archs) > 1 else 8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
