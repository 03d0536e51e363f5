"""Table 1 of the KAMA-NN paper (Choromanski et al., AISTATS 2019, Section 6.2): trainable
parameters of the compact policies as a percentage of the dense MLP obs -> h -> h -> act.

Counts are those of es_compact's architectures (learned angles, scalars, weights and biases;
KAMA rotation planes come from the seed and are not parameters). The paper gives values for
KAMA and Toeplitz only; dcnn (depth 4, width max(obs, h, act)) and linear are ours.
"""

from __future__ import annotations

from es_compact.config import PolicyConfig
from es_compact.envs import env_spaces
from es_compact.policies import make_policy

ENVS = ("HalfCheetah-v4", "Walker2d-v4", "Hopper-v4")
SETTINGS = ((64, 200), (32, 100))
"""(hidden width h, rotations K per matrix) of the paper's two columns."""
ARCHS = ("kama", "toeplitz", "dcnn", "linear")
PAPER = {
    (64, 200): {"kama": (15, 15, 17), "toeplitz": (7, 7, 8)},
    (32, 100): {"kama": (24, 24, 28), "toeplitz": (12, 12, 13)},
}
"""The paper's Table 1, percent of dense, in the order of ENVS."""


def rows() -> list[dict]:
    out = []
    for hidden, rotations in SETTINGS:
        for e, env_id in enumerate(ENVS):
            obs, act = env_spaces(env_id)
            base = PolicyConfig(hidden=hidden, rotations=(rotations,))
            dense = make_policy(base.replace(arch="dense"), obs, act, seed=0).num_params
            for arch in ARCHS:
                n = make_policy(base.replace(arch=arch), obs, act, seed=0).num_params
                paper = PAPER[(hidden, rotations)].get(arch)
                ratio = 100.0 * n / dense
                out.append({"env": env_id, "hidden": hidden, "rotations": rotations,
                            "arch": arch, "params": n, "dense_params": dense,
                            "ratio_pct": round(ratio, 2),
                            "paper_pct": paper[e] if paper else None,
                            "diff_points": round(ratio - paper[e], 2) if paper else None})
    return out


def markdown(table: list[dict]) -> str:
    """One line per (h, K, architecture), one column per environment: ours (paper)."""
    head = "| h / K | architecture | " + " | ".join(e.split("-")[0] for e in ENVS) + " |"
    lines = [head, "|" + "---|" * (2 + len(ENVS))]
    for hidden, rotations in SETTINGS:
        for arch in ("dense",) + ARCHS:
            cells = []
            for env_id in ENVS:
                r = [x for x in table if x["env"] == env_id and x["hidden"] == hidden
                     and x["arch"] == (arch if arch != "dense" else "kama")][0]
                if arch == "dense":
                    cells.append(f"{r['dense_params']} params")
                    continue
                paper = f" (paper {r['paper_pct']}%)" if r["paper_pct"] is not None else ""
                cells.append(f"{r['ratio_pct']:.1f}%{paper}, {r['params']} params")
            lines.append(f"| {hidden} / {rotations} | {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
