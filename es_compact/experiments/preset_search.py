"""Preset searches for tasks the ARS paper did not tune (Mania, Guy, Recht 2018, Table 9 has
no InvertedDoublePendulum): a few ARS V2-t candidates (α, N, b, ν) trained on a few seeds, so
the preset the rl experiment uses is chosen by a recorded, repeatable run, not by hand.

A candidate is judged by what the rl experiment reports, the return at the end of the budget,
and by whether it holds: the mean evaluation return over the budget's last fifth. A preset
that solves a task and then loses it (InvertedDoublePendulum under the default preset: dense
reached 9357 and fell to about 150) scores low on both.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, StrategyConfig, TrainConfig
from es_compact.experiments.runner import RunSpec, draw_curves, figure
from es_compact.presets import DEFAULT, Preset
from es_compact.run_dir import RunDir

CANDIDATES = {
    "InvertedDoublePendulum-v4": {
        # The default, which collapses; then smaller steps (the random walk V2-t takes on a
        # plateau, where σ_R is tiny, scales with α) and more directions (a less noisy step).
        "A": DEFAULT,
        "B": Preset(0.01, 8, 4, 0.025, 0.0),
        "C": Preset(0.005, 8, 4, 0.025, 0.0),
        "D": Preset(0.01, 16, 8, 0.025, 0.0),
        "E": Preset(0.005, 16, 8, 0.02, 0.0),
    },
}
BUDGETS = {"InvertedDoublePendulum-v4": (1_000_000, 10)}
"""(timesteps, evaluate every n iterations): the rl experiment's full budget for the task."""
LATE = 0.8
"""The 'holds' score averages the evaluations after this fraction of the budget."""


def specs(env_id: str, archs=("dense",), seeds: int = 3, backend: str = RunConfig.backend,
          workers: int | None = None) -> list[RunSpec]:
    timesteps, every = BUDGETS[env_id]
    out = []
    for name, p in CANDIDATES[env_id].items():
        for arch in archs:
            for seed in range(seeds):
                strategy = StrategyConfig(step_size=p.step_size, directions=p.directions,
                                          top=p.top, noise_std=p.noise_std)
                run = RunConfig(seed=seed, timesteps=timesteps, eval_every=every,
                                backend=backend, workers=workers)
                cfg = TrainConfig(env=EnvConfig(id=env_id, reward_shift=p.reward_shift),
                                  policy=PolicyConfig(arch=arch), strategy=strategy, run=run)
                out.append(RunSpec(f"{env_id}/{name}/{arch}/seed{seed}", cfg, {
                    "env": env_id, "arch": arch, "candidate": name, "step_size": p.step_size,
                    "directions": p.directions, "top": p.top, "noise_std": p.noise_std,
                    "seed": seed}))
    return out


def late_return(run_dir: str | Path, budget: int, late: float = LATE) -> float:
    """Mean evaluation return over the evaluations at or after late × budget timesteps."""
    df = RunDir(run_dir).read_progress().dropna(subset=["eval_return_mean"])
    tail = df[df["timesteps"] >= late * budget]["eval_return_mean"]
    return float(tail.mean()) if len(tail) else math.nan


def with_late(rows: list[dict]) -> list[dict]:
    return [{**r, "late_return": late_return(r["run_dir"], BUDGETS[r["env"]][0])} for r in rows]


def table(rows: list[dict]) -> pd.DataFrame:
    """Per candidate and architecture: final, late and best return (mean over seeds), the
    worst seed's late return, ranked by the mean late return."""
    df = pd.DataFrame(rows)
    keys = ["env", "candidate", "step_size", "directions", "top", "noise_std", "arch"]
    out = df.groupby(keys, sort=False).agg(
        seeds=("seed", "size"), final=("final_return_mean", "mean"),
        late=("late_return", "mean"), worst_late=("late_return", "min"),
        best=("best_eval", "mean")).reset_index()
    return out.sort_values(["env", "arch", "late"], ascending=[True, True, False])


def markdown(rows: list[dict]) -> str:
    t = table(rows)
    lines = ["| env | arch | candidate | α | N | b | ν | seeds | final | late (last fifth) "
             "| worst seed, late | best evaluation |", "|---" * 12 + "|"]
    for r in t.itertuples():
        lines.append(f"| {r.env.split('-')[0]} | {r.arch} | {r.candidate} | {r.step_size:g} | "
                     f"{r.directions} | {r.top} | {r.noise_std:g} | {r.seeds} | "
                     f"{r.final:.0f} | {r.late:.0f} | {r.worst_late:.0f} | {r.best:.0f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str | Path) -> None:
    """One panel per environment and architecture, one band per candidate."""
    df = pd.DataFrame(rows)
    panels = list(dict.fromkeys(zip(df["env"], df["arch"], strict=True)))
    cols = min(3, len(panels))
    plt, fig, axes = figure((len(panels) + cols - 1) // cols, cols, width=5.0)
    for ax, (env_id, arch) in zip(axes.ravel(), panels, strict=False):
        sub = df[(df["env"] == env_id) & (df["arch"] == arch)]
        groups = {}
        for name, g in sub.groupby("candidate", sort=False):
            r = g.iloc[0]
            groups[f"{name}: α {r.step_size:g}, N {r.directions}, b {r.top}, ν {r.noise_std:g}"] \
                = list(g["run_dir"])
        draw_curves(ax, groups)
        ax.set_title(f"{env_id} ({arch})", fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle("ARS V2-t preset candidates (mean ± std over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stem(env_id: str) -> str:
    """results/presets_<stem>.*: InvertedDoublePendulum-v4 -> inverted_double_pendulum."""
    name = env_id.split("-v")[0]
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))

