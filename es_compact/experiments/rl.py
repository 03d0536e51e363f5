"""The KAMA-NN paper's RL comparison (Choromanski et al., AISTATS 2019, Section 6.2, Figures 3
and 4), answered with ES: ARS V2-t trains dense, toeplitz, kama, dcnn and linear policies on six
MuJoCo tasks; learning curves (evaluation return against timesteps, mean ± std over seeds) and
a final-return table with parameter counts.

The paper trained with PPO and TRPO; we use the ARS paper's presets (es_compact.presets) for
every architecture, so the comparison is between architectures under one ES, not against the
paper's numbers. ``quick`` budgets are a smoke test of the whole pipeline (minutes on 2 cores);
``full`` budgets are long enough for the curves to flatten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import PolicyConfig, RunConfig, TrainConfig
from es_compact.experiments.runner import (
    Budget,
    RunSpec,
    draw_curves,
    figure,
    fmt_cell,
    make_config,
    per_seed,
    seed_count,
    summarise,
)

ENVS = ("InvertedPendulum-v4", "InvertedDoublePendulum-v4", "Swimmer-v4", "Hopper-v4",
        "HalfCheetah-v4", "Walker2d-v4")
ARCHS = ("dense", "toeplitz", "kama", "dcnn", "linear")
SEEDS = {"quick": 3, "full": 5}
NOISE_TABLE = {"quick": 2_000_000, "full": 25_000_000}
BUDGETS = {
    # Quick: a few iterations each (evaluations every few, so about 5-10 points a curve).
    # HalfCheetah's preset (N = 32, 64k steps an iteration) would not finish one, so the quick
    # form uses N = 8, b = 4 there.
    "quick": {
        "InvertedPendulum-v4": Budget(15_000, 5, 3),
        "InvertedDoublePendulum-v4": Budget(15_000, 3, 3),
        "Swimmer-v4": Budget(16_000, 2, 2),
        "Hopper-v4": Budget(15_000, 1, 3),
        "HalfCheetah-v4": Budget(32_000, 1, 2, directions=8, top=4),
        "Walker2d-v4": Budget(15_000, 1, 3),
    },
    "full": {
        "InvertedPendulum-v4": Budget(300_000, 5),
        "InvertedDoublePendulum-v4": Budget(1_000_000, 10),
        "Swimmer-v4": Budget(2_000_000, 50),
        "Hopper-v4": Budget(5_000_000, 10),
        "HalfCheetah-v4": Budget(5_000_000, 5),
        "Walker2d-v4": Budget(10_000_000, 10),
    },
}


def specs(form: str = "quick", envs=ENVS, archs=ARCHS, seeds: int | None = None,
          backend: str = RunConfig.backend, workers: int | None = None,
          budgets: dict[str, Budget] | None = None) -> list[RunSpec]:
    budgets = budgets or BUDGETS[form]
    out = []
    # Seeds outside architectures: an experiment stopped part-way (they run for hours) has
    # every architecture at the same number of seeds, a fair partial comparison.
    for env_id in envs:
        for seed in range(SEEDS[form] if seeds is None else seeds):
            for arch in archs:
                cfg = make_config(env_id, PolicyConfig(arch=arch), budgets[env_id], seed,
                                  backend, workers, NOISE_TABLE[form])
                out.append(RunSpec(f"{env_id}/{arch}/seed{seed}", cfg,
                                   {"env": env_id, "arch": arch, "seed": seed}))
    return out


def shared_name(config: TrainConfig, form: str) -> str | None:
    """This experiment's run of this very configuration, as a name relative to another
    experiment's run root (RUNS/FORM/NAME, beside RUNS/FORM/rl), so a run both need (the
    ablation's K = 200, the dcnn-init comparison's paper initialisation) is trained once and
    used by both tables. None when the rl grid has no such run."""
    env_id, arch, seed = config.env.id, config.policy.arch, config.run.seed
    if env_id not in ENVS or arch not in ARCHS:
        return None
    twin, = specs(form, envs=(env_id,), archs=(arch,), seeds=seed + 1,
                  backend=config.run.backend, workers=config.run.workers)[-1:]
    return f"../rl/{twin.name}" if twin.config == config else None


def table(rows: list[dict]) -> pd.DataFrame:
    return summarise(rows, ["env", "arch"])


def markdown(rows: list[dict]) -> str:
    """Final return (mean ± std over seeds) per environment and architecture, parameter counts
    beneath, and kama's return against dense's and toeplitz's over their common seeds, with
    Welch's two-sided p-value (the chance of a gap at least this large between equal means)."""
    s = table(rows)
    finals = per_seed(rows, ["env", "arch"])
    envs = list(dict.fromkeys(s["env"]))
    archs = list(dict.fromkeys(s["arch"]))
    lines = ["| env | " + " | ".join(archs) + " | kama − dense | kama − toeplitz |",
             "|---|" + "---|" * (len(archs) + 2)]
    for env_id in envs:
        sub = s[s["env"] == env_id].set_index("arch")
        seeds = seed_count(sub)
        cells = [fmt_cell(sub.loc[a], seeds is None) if a in sub.index else "not run yet"
                 for a in archs]
        diff = []
        for other in ("dense", "toeplitz"):
            if "kama" in sub.index and other in sub.index:
                diff.append(gap(finals[(env_id, "kama")], finals[(env_id, other)]))
            else:
                diff.append("")
        steps = int(sub["timesteps"].mean())
        lines.append(f"| {env_id.split('-')[0]} ({steps:,} steps"
                     f"{'' if seeds is None else ', ' + seeds}) | " + " | ".join(cells + diff)
                     + " |")
    return "\n".join(lines) + "\n"


def gap(a: dict, b: dict) -> str:
    """Mean return of a minus b over the seeds both have run (a table in progress can hold
    more seeds of one architecture than of another), with Welch's p when it is defined."""
    common = sorted(set(a) & set(b))
    if not common:
        return ""
    x, y = [a[s] for s in common], [b[s] for s in common]
    text = f"{np.mean(x) - np.mean(y):+.0f}"
    p = welch_p(x, y)
    notes = ([] if p is None else [f"p = {p:.2f}"]) + (
        [f"seed{'s' if len(common) > 1 else ''} {', '.join(map(str, common))}"]
        if len(common) < max(len(a), len(b)) else [])
    return f"{text} ({'; '.join(notes)})" if notes else text


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Welch's t-test p-value (two-sided) of two seed samples; None with fewer than two seeds
    a side, or when neither varies (as when every seed solves a task)."""
    from scipy.stats import ttest_ind

    if min(len(a), len(b)) < 2 or np.std(a) == np.std(b) == 0:
        return None
    return float(ttest_ind(a, b, equal_var=False).pvalue)


def plot(rows: list[dict], path: str | Path) -> None:
    """One panel per environment, one band per architecture."""
    df = pd.DataFrame(rows)
    envs = list(dict.fromkeys(df["env"]))
    cols = min(3, len(envs))
    plt, fig, axes = figure((len(envs) + cols - 1) // cols, cols)
    for ax, env_id in zip(axes.ravel(), envs, strict=False):
        sub = df[df["env"] == env_id]
        groups = {f"{a} ({int(g['params'].iloc[0])} p)": list(g["run_dir"])
                  for a, g in sub.groupby("arch", sort=False)}
        draw_curves(ax, groups)
        ax.set_title(env_id, fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(envs):]:
        ax.axis("off")
    fig.suptitle("ARS V2-t: evaluation return against timesteps\n(mean ± std over seeds)",
                 fontsize=11 if cols > 1 else 9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
