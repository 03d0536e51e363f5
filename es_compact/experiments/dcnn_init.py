"""Does the DCNN paper's initialisation hold DCNN policies back? (Araujo et al., ECAI 2020,
Section 5: c_i ~ N(0, 2/n), d_i = ±1.)

That initialisation keeps the output scale at any depth only with a plain ReLU (slope 0)
after every layer (the paper's Proposition 4); a leaky ReLU of slope a multiplies the output
variance by 1 + a² a layer, 1.25 at the slope 0.5 the paper recommends. With the placement
the paper recommends and the rl experiment uses (L = 4, a leaky ReLU with slope 0.5 after
layer 3), the two linear layers double the output variance each: the initial policy's actions
are 2.6 times the input's second moment and about half of them are clipped at the bounds,
where dense's are not (es_compact.experiments.dcnn.initial_scale). The comparison trains the
rl experiment's dcnn with PolicyConfig.dcnn_init = 'scaled' (variance kept layer by layer) on
the tasks where dcnn did worst, at the rl budgets and seeds; the 'paper' cells are the rl
experiment's own dcnn runs, shared rather than trained twice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from es_compact.config import DCNN_INITS, PolicyConfig, RunConfig
from es_compact.experiments import rl
from es_compact.experiments.dcnn import initial_scale
from es_compact.experiments.runner import (
    RunSpec,
    draw_curves,
    figure,
    fmt_cell,
    make_config,
    per_seed,
    seed_count,
    summarise,
)

ENVS = ("HalfCheetah-v4", "Walker2d-v4")
SEEDS = rl.SEEDS


def specs(form: str = "quick", envs=ENVS, inits=DCNN_INITS, seeds: int | None = None,
          backend: str = RunConfig.backend, workers: int | None = None) -> list[RunSpec]:
    out = []
    for env_id in envs:  # seeds outside the initialisations, as in rl.specs
        for seed in range(SEEDS[form] if seeds is None else seeds):
            for init in inits:
                cfg = make_config(env_id, PolicyConfig(arch="dcnn", dcnn_init=init),
                                  rl.BUDGETS[form][env_id], seed, backend, workers,
                                  rl.NOISE_TABLE[form])
                out.append(RunSpec(rl.shared_name(cfg, form) or f"{env_id}/{init}/seed{seed}",
                                   cfg, {"env": env_id, "init": init, "seed": seed}))
    return out


def markdown(rows: list[dict]) -> str:
    """Final return per task and initialisation (mean ± std over seeds), the gap over the
    seeds both have with Welch's p, and each initialisation's starting scale."""
    s = summarise(rows, ["env", "init"])
    finals = per_seed(rows, ["env", "init"])
    inits = [i for i in DCNN_INITS if i in set(s["init"])]
    lines = ["| env | " + " | ".join(f"{i} init" for i in inits) + " | scaled − paper | "
             "initial action rms | actions clipped at init |", "|---|" + "---|" * (len(inits)
                                                                                    + 3)]
    for env_id in dict.fromkeys(s["env"]):
        sub = s[s["env"] == env_id].set_index("init")
        seeds = seed_count(sub)
        cells = [fmt_cell(sub.loc[i], seeds is None) if i in sub.index else "not run yet"
                 for i in inits]
        both = all((env_id, i) in finals for i in ("scaled", "paper"))
        diff = rl.gap(finals[(env_id, "scaled")], finals[(env_id, "paper")]) if both else ""
        scale = {i: initial_scale(env_id, PolicyConfig(arch="dcnn", dcnn_init=i))
                 for i in inits}
        lines.append(f"| {env_id.split('-')[0]} ({int(sub['timesteps'].mean()):,} steps"
                     f"{'' if seeds is None else ', ' + seeds}) | " + " | ".join(cells)
                     + f" | {diff} | " + " / ".join(f"{scale[i]['rms']:.2f}" for i in inits)
                     + " | " + " / ".join(f"{scale[i]['clipped']:.0%}" for i in inits) + " |")
    dense = {e: initial_scale(e, PolicyConfig(arch="dense")) for e in dict.fromkeys(s["env"])}
    return "\n".join(lines) + (
        "\n\nInitial scale: the raw outputs (before clipping) on standard normal observations, "
        f"{' / '.join(inits)}, over 20 initialisations; dense (h = 64, tanh) for comparison: "
        + ", ".join(f"{e.split('-')[0]} rms {d['rms']:.2f}, {d['clipped']:.0%} clipped"
                    for e, d in dense.items())
        + ". The 'paper' runs are the rl experiment's dcnn runs.\n")


def plot(rows: list[dict], path: str | Path) -> None:
    """One panel per task, one band per initialisation."""
    df = pd.DataFrame(rows)
    envs = list(dict.fromkeys(df["env"]))
    plt, fig, axes = figure(1, len(envs))
    for ax, env_id in zip(axes.ravel(), envs, strict=True):
        sub = df[df["env"] == env_id]
        draw_curves(ax, {f"{i} init": list(g["run_dir"]) for i, g in sub.groupby("init")})
        ax.set_title(f"{env_id}: dcnn, L = 4", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
