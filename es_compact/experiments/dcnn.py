"""The DCNN paper's Figure 2 question (Araujo et al., ECAI 2020, Section 5: where to put the
non-linearities in a deep diagonal-circulant network, and how leaky), asked of ES-trained
policies: dcnn policies on HalfCheetah with a leaky ReLU after every 1, 2 or 3 layers, slopes
0, 0.25 and 0.5, at several depths. The expressivity check of the same paper's Theorem 2 is in
es_compact.experiments.theorem2.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.config import PolicyConfig, RunConfig
from es_compact.envs import env_spaces
from es_compact.experiments.report import spearman, stats_frame, stats_markdown, welch
from es_compact.experiments.runner import (
    Budget,
    RunSpec,
    figure,
    fmt_cell,
    make_config,
    seed_count,
    summarise,
)
from es_compact.policies import make_policy
from es_compact.policies.architectures import dcnn_relu_after as positions  # the policy's rule

ENV = "HalfCheetah-v4"
EVERY = (1, 2, 3)
SLOPES = (0.0, 0.25, 0.5)


def nonlinearities(depth: int, every: int) -> int:
    """Leaky ReLUs in the network."""
    return len(positions(depth, every))


def distinct(grid: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The cells of a (depth, every, slope) grid that build different networks, in order.
    Without a leaky ReLU (depth 2 with one every 2 or 3 layers) neither the placement nor the
    slope changes anything, so that linear network is kept once, as its first cell, rather
    than trained again under other names."""
    seen, out = set(), []
    for depth, every, slope in grid:
        where = positions(depth, every)
        key = (depth, where, slope if where else None)
        if key not in seen:
            seen.add(key)
            out.append((depth, every, slope))
    return out


GRID = {
    # quick: the placement grid at depth 4, and depths 2 and 8 at one placement; one seed.
    "quick": [(4, k, a) for k in EVERY for a in SLOPES] + [(2, 1, 0.5), (8, 1, 0.5)],
    # full: depths 2, 4 and 8 by every placement and slope; 22 distinct networks of the 27.
    "full": distinct([(d, k, a) for d in (2, 4, 8) for k in EVERY for a in SLOPES]),
}
SEEDS = {"quick": 1, "full": 3}
NOISE_TABLE = {"quick": 2_000_000, "full": 25_000_000}
BUDGETS = {"quick": Budget(32_000, 1, 2, directions=8, top=4), "full": Budget(3_000_000, 5)}


def specs(form: str = "quick", grid=None, seeds: int | None = None,
          backend: str = RunConfig.backend, workers: int | None = None,
          budget: Budget | None = None) -> list[RunSpec]:
    budget = budget or BUDGETS[form]
    out = []
    for seed in range(SEEDS[form] if seeds is None else seeds):  # outside, as in rl.specs
        for depth, every, slope in (GRID[form] if grid is None else grid):
            # A network without a leaky ReLU reads no slope: it keeps the default, and its
            # name and tags keep the grid's cell.
            policy = PolicyConfig(arch="dcnn", depth=depth, nonlin_every=every,
                                  slope=slope if positions(depth, every) else PolicyConfig.slope)
            cfg = make_config(ENV, policy, budget, seed, backend, workers, NOISE_TABLE[form])
            out.append(RunSpec(f"L{depth}_every{every}_slope{slope:g}/seed{seed}", cfg,
                               {"env": ENV, "depth": depth, "every": every, "slope": slope,
                                "nonlinearities": nonlinearities(depth, every),
                                "seed": seed}))
    return out


def markdown(rows: list[dict]) -> str:
    s = summarise(rows, ["depth", "every", "slope"])
    slopes = sorted(set(s["slope"]))
    lines = ["| depth L | leaky ReLU after every | " + " | ".join(f"slope {a:g}" for a in slopes)
             + " | params |", "|---|---|" + "---|" * (len(slopes) + 1)]
    seeds = seed_count(s)
    groups = list(s.groupby(["depth", "every"], sort=True))
    for (depth, every), g in groups:
        g = g.set_index("slope")
        cells = [fmt_cell(g.loc[a], seeds is None, params=False) if a in g.index else ""
                 for a in slopes]
        lines.append(f"| {depth} | {_placement(depth, every)} | "
                     + " | ".join(cells) + f" | {int(g['params'].iloc[0])} |")
    steps = int(s["timesteps"].mean())
    per_cell = "seeds as marked in each cell" if seeds is None else f"{seeds} per cell"
    lines += ["", f"{ENV}, {steps:,} steps, {per_cell}; final evaluation return (mean ± std "
              "over seeds)."]
    if any(nonlinearities(d, k) == 0 for (d, k), _ in groups):
        lines += ["", "A row with no leaky ReLU is a linear network (the last layer never has "
                  "one): its placement and slope change nothing, so it is trained once, under "
                  "the first slope."]
    lines += ["", "Where each cell starts: the root mean square of the initial "
              "policy's raw actions and the fraction clipped at the bounds, on standard normal "
              "observations over 20 initialisations (the DCNN paper's c ~ N(0, 2/n) keeps the "
              "scale only with a plain ReLU, slope 0, after every layer; a leaky one of slope a "
              "multiplies the output variance by 1 + a² a layer, and each linear layer doubles "
              "it):", "",
              "| depth L | leaky ReLU after every | " + " | ".join(f"slope {a:g}" for a in slopes)
              + " |", "|---|---|" + "---|" * len(slopes)]
    for (depth, every), g in groups:
        cells = []
        for a in slopes:
            if a not in set(g["slope"]):
                cells.append("")
                continue
            sc = start(depth, every, a)
            cells.append(f"{sc['rms']:.2f} ({sc['clipped']:.0%})")
        lines.append(f"| {depth} | {_placement(depth, every)} | " + " | ".join(cells) + " |")
    st = stats(rows)
    if len(st):
        lines += ["", "Pooled comparisons (runs pooled as named; stds over runs; "
                  "dcnn_policy_*_stats.csv holds t and p), and how a network's mean final "
                  "return ranks against its start:", "", stats_markdown(st).rstrip("\n")]
    return "\n".join(lines) + "\n"


@functools.cache
def start(depth: int, every: int, slope: float) -> dict:
    """initial_scale of the grid's cell (depth, every, slope) on ENV."""
    return initial_scale(ENV, PolicyConfig(arch="dcnn", depth=int(depth),
                                           nonlin_every=int(every), slope=float(slope)))


def stats(rows: list[dict]) -> pd.DataFrame:
    """Welch's tests of the final return between pooled groups of runs (placement, depth,
    slope, a non-linearity at all), and Spearman's ρ over the networks of the mean final
    return against the fraction of actions clipped at initialisation. A comparison one of
    whose groups has no run is left out."""
    df = pd.DataFrame(rows)
    leaky = df["nonlinearities"] > 0
    d, k, a = df["depth"], df["every"], df["slope"]
    groups = [
        ("placement", "after every layer", leaky & (k == 1),
         "every 2 or 3 layers", leaky & k.isin([2, 3])),
        *[(f"placement, L = {n}", "after every layer", leaky & (d == n) & (k == 1),
           "every 2 or 3 layers", leaky & (d == n) & k.isin([2, 3])) for n in (4, 8)],
        *[(f"placement at slope 0.5, L = {n}", "after every layer",
           (d == n) & (k == 1) & (a == 0.5), "every 2 or 3 layers",
           (d == n) & k.isin([2, 3]) & (a == 0.5)) for n in (4, 8)],
        ("the rl experiment's placement (L = 4, slope 0.5)", "after every layer",
         (d == 4) & (k == 1) & (a == 0.5), "after layer 3 only", (d == 4) & (k == 3)
         & (a == 0.5)),
        *[("depth", f"L = {x}", d == x, f"L = {y}", d == y)
          for x, y in ((4, 2), (8, 2), (8, 4))],
        *[("slope (with a leaky ReLU)", f"slope {x:g}", leaky & (a == x), f"slope {y:g}",
           leaky & (a == y)) for x, y in ((0.25, 0.0), (0.5, 0.0), (0.5, 0.25))],
        ("a non-linearity at all, L = 2", "a leaky ReLU", leaky & (d == 2), "linear",
         ~leaky & (d == 2)),
    ]
    out = [welch("", name, na, df[ga]["final_return_mean"], nb, df[gb]["final_return_mean"])
           for name, na, ga, nb, gb in groups if ga.any() and gb.any()]
    cells = frame(rows)
    if len(cells) > 2:
        clipped = [start(r.depth, r.every, r.slope)["clipped"] for r in cells.itertuples()]
        out.append(spearman("", "networks", "mean final return", list(cells["final_mean"]),
                            "actions clipped at init", clipped))
    return stats_frame(out)


def _placement(depth: int, every: int) -> str:
    n = nonlinearities(depth, every)
    return f"{every} ({n} in all)" if n else "none (linear)"


def initial_scale(env_id: str, config: PolicyConfig, policies: int = 20,
                  inputs: int = 200) -> dict:
    """A policy at initialisation, on standard normal observations (what the observation
    normaliser makes of them): the root mean square of its raw outputs and the fraction of
    actions clipped at the bounds, over `policies` initialisations (seeds 0, 1, ...) and
    `inputs` observations each."""
    obs_space, act_space = env_spaces(env_id)
    raw, clipped = [], []
    x = np.random.default_rng(0).standard_normal((inputs, obs_space.shape[0]))
    # An int action dimension: unbounded outputs, the values the rollout then clips.
    for seed in range(policies):
        policy = make_policy(config, obs_space, act_space.shape[0], seed=seed)
        a = policy.forward(policy.init(np.random.default_rng(seed)), x)
        raw.append(a)
        clipped.append((a <= act_space.low) | (a >= act_space.high))
    return {"rms": float(np.sqrt(np.mean(np.square(raw)))),
            "clipped": float(np.mean(clipped))}


def plot(rows: list[dict], path: str | Path) -> None:
    """Grouped bars: final return per (depth, every), one bar per slope."""
    s = summarise(rows, ["depth", "every", "slope"])
    keys = list(s.groupby(["depth", "every"], sort=True).groups)
    slopes = sorted(set(s["slope"]))
    plt, fig, axes = figure(1, 1, width=max(6.0, 0.8 * len(keys) + 2), height=4.0)
    ax = axes[0, 0]
    width = 0.8 / len(slopes)
    x = np.arange(len(keys))
    for j, a in enumerate(slopes):
        sub = s[s["slope"] == a].set_index(["depth", "every"])
        ys = [sub.at[k, "final_mean"] if k in sub.index else np.nan for k in keys]
        es = [sub.at[k, "final_std"] if k in sub.index else 0.0 for k in keys]
        ax.bar(x + j * width, ys, width, yerr=es, capsize=2, label=f"slope {a:g}")
    labels = [f"L={d}\n" + (f"every {k}" if nonlinearities(d, k) else "no ReLU")
              for d, k in keys]
    ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=8)
    ax.set_ylabel("final evaluation return")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_title(f"dcnn on {ENV}: depth and leaky-ReLU placement "
                 f"({int(s['timesteps'].mean()):,} steps)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def frame(rows: list[dict]) -> pd.DataFrame:
    return summarise(rows, ["depth", "every", "slope"])
