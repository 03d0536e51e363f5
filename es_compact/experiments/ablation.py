"""The KAMA-NN paper's Figure 5 question (Choromanski et al., AISTATS 2019, Section 6.2): do
more Givens rotations K per matrix give more return? kama policies (h = 64) with
K in {10, 20, 50, 100, 200} on HalfCheetah and Hopper, trained by ARS V2-t. The K = 200 runs
are the rl experiment's kama runs (same configurations), shared rather than trained twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import PolicyConfig, RunConfig
from es_compact.experiments import rl
from es_compact.experiments.report import spearman, stats_frame, stats_markdown, welch
from es_compact.experiments.runner import (
    Budget,
    RunSpec,
    draw_curves,
    figure,
    fmt_cell,
    make_config,
    seed_count,
    summarise,
)

ENVS = ("HalfCheetah-v4", "Hopper-v4")
ROTATIONS = (10, 20, 50, 100, 200)
SEEDS = {"quick": 2, "full": 5}
NOISE_TABLE = {"quick": 2_000_000, "full": 25_000_000}
BUDGETS = {
    "quick": {"HalfCheetah-v4": Budget(32_000, 1, 2, directions=8, top=4),
              "Hopper-v4": Budget(15_000, 1, 3)},
    "full": {"HalfCheetah-v4": Budget(5_000_000, 5), "Hopper-v4": Budget(5_000_000, 10)},
}


def specs(form: str = "quick", envs=ENVS, rotations=ROTATIONS, seeds: int | None = None,
          backend: str = RunConfig.backend, workers: int | None = None,
          budgets: dict[str, Budget] | None = None) -> list[RunSpec]:
    budgets = budgets or BUDGETS[form]
    out = []
    for env_id in envs:  # seeds outside K, as in rl.specs
        for seed in range(SEEDS[form] if seeds is None else seeds):
            for k in rotations:
                cfg = make_config(env_id, PolicyConfig(arch="kama", rotations=(k,)),
                                  budgets[env_id], seed, backend, workers, NOISE_TABLE[form])
                out.append(RunSpec(rl.shared_name(cfg, form) or f"{env_id}/K{k}/seed{seed}", cfg,
                                   {"env": env_id, "rotations": k, "seed": seed}))
    return out


def markdown(rows: list[dict]) -> str:
    s = summarise(rows, ["env", "rotations"])
    ks = sorted(set(s["rotations"]))
    lines = ["| env | " + " | ".join(f"K = {k}" for k in ks) + " |",
             "|---|" + "---|" * len(ks)]
    for env_id in dict.fromkeys(s["env"]):
        sub = s[s["env"] == env_id].set_index("rotations")
        seeds = seed_count(sub)
        cells = [fmt_cell(sub.loc[k], seeds is None) if k in sub.index else "not run yet"
                 for k in ks]
        lines.append(f"| {env_id.split('-')[0]} ({int(sub['timesteps'].mean()):,} steps"
                     f"{'' if seeds is None else ', ' + seeds}) | " + " | ".join(cells) + " |")
    lines.append("")
    for env_id, (slope, common) in trend(rows).items():
        lines.append(f"{env_id}: {slope:+.0f} return per tenfold K (least-squares slope of the "
                     f"mean over seeds {', '.join(map(str, common))}, which every K has "
                     "finished).")
    st = stats(rows)
    if len(st):
        lines += ["", "Over the same seeds: Spearman's ρ of the final return against K (every "
                  "run of those seeds), and Welch's test of each K against the next smaller "
                  "one (stds over runs; ablation_*_stats.csv holds t and p):", "",
                  stats_markdown(st).rstrip("\n")]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str | Path) -> None:
    """Top: final return against K (mean ± std over seeds); bottom: the curves per K."""
    df = pd.DataFrame(rows)
    s = summarise(rows, ["env", "rotations"])
    envs = list(dict.fromkeys(df["env"]))
    plt, fig, axes = figure(2, len(envs))
    for c, env_id in enumerate(envs):
        sub = s[s["env"] == env_id]
        ax = axes[0, c]
        ax.errorbar(sub["rotations"], sub["final_mean"], yerr=sub["final_std"], fmt="o-",
                    capsize=3)
        ax.set_xscale("log")
        ax.set_xticks(list(sub["rotations"]), [str(k) for k in sub["rotations"]])
        ax.set_xlabel("Givens rotations K per matrix")
        ax.set_ylabel("final evaluation return")
        ax.set_title(f"{env_id}: kama, h = 64", fontsize=10)
        ax.grid(alpha=0.3)
        groups = {f"K={k}": list(g["run_dir"])
                  for k, g in df[df["env"] == env_id].groupby("rotations")}
        draw_curves(axes[1, c], groups)
        axes[1, c].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def trend(rows: list[dict]) -> dict[str, tuple[float, list[int]]]:
    """Per environment, the least-squares slope of the seed-mean final return against log10 K
    (return gained per tenfold more rotations), over the seeds every K has finished (a grid in
    progress holds more seeds of K = 200, shared with the rl experiment, than of the others),
    and those seeds."""
    df = pd.DataFrame(rows)
    out = {}
    for env_id, g in df.groupby("env", sort=False):
        common = sorted(set.intersection(*(set(x) for _, x in g.groupby("rotations")["seed"])))
        means = g[g["seed"].isin(common)].groupby("rotations")["final_return_mean"].mean()
        if len(means) > 1:
            out[env_id] = float(np.polyfit(np.log10(means.index), means.values, 1)[0]), common
    return out


def stats(rows: list[dict]) -> pd.DataFrame:
    """Per environment, over the seeds every K has finished (as trend()): Spearman's ρ of the
    final return against K over those runs, and Welch's test of each K against the next
    smaller K."""
    df = pd.DataFrame(rows)
    out = []
    for env_id, g in df.groupby("env", sort=False):
        common = sorted(set.intersection(*(set(x) for _, x in g.groupby("rotations")["seed"])))
        g = g[g["seed"].isin(common)]
        ks = sorted(set(g["rotations"]))
        if len(ks) < 2:
            continue
        final = {k: list(g[g["rotations"] == k]["final_return_mean"]) for k in ks}
        for small, big in zip(ks[:-1], ks[1:], strict=True):
            out.append(welch(env_id, "against the next smaller K", f"K = {big}",
                             final[big], f"K = {small}", final[small]))
        out.append(spearman(env_id, "final return against K", "final return",
                            list(g["final_return_mean"]), "K", list(g["rotations"])))
    return stats_frame(out)
