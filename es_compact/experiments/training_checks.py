"""The training engine's "it must really learn" checks (issue: ES training engine).

- linear ARS V2-t on HalfCheetah-v4 reaches an evaluation return >= 3000 within 3M timesteps
  in at least 2 of 3 seeds;
- kama (h = 64, K = 200) on HalfCheetah-v4 reaches >= 2500 within 5M timesteps;
- every architecture solves InvertedPendulum-v4 (return 1000) within 200k timesteps.

``python -m es_compact.experiments.training_checks [--run]`` runs what is missing (existing
finished runs are kept; unfinished ones resume) and writes results/training_checks.md from the
run directories.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from es_compact.policies import ARCHITECTURES
from es_compact.run_dir import RunDir

ROOT = Path("runs/checks")
HC = "HalfCheetah-v4"
IP = "InvertedPendulum-v4"


def checks() -> list[dict]:
    out = [{"name": f"hc_linear_s{s}", "env": HC, "arch": "linear", "seed": s,
            "budget": 3_000_000, "threshold": 3000.0,
            "args": ["--variant", "v2t", "--timesteps", "3000000"]} for s in (0, 1, 2)]
    out.append({"name": "hc_kama_s0", "env": HC, "arch": "kama", "seed": 0,
                "budget": 5_000_000, "threshold": 2500.0,
                "args": ["--hidden", "64", "--rotations", "200", "--variant", "v2t",
                         "--timesteps", "5000000"]})
    out += [{"name": f"ip_{a}", "env": IP, "arch": a, "seed": 0, "budget": 200_000,
             "threshold": 1000.0, "args": ["--timesteps", "200000", "--target-return", "1000",
                                           "--eval-every", "5"]} for a in ARCHITECTURES]
    return out


def command(check: dict) -> list[str]:
    return ["es-compact", "train", "--env", check["env"], "--arch", check["arch"], "--seed",
            str(check["seed"]), *check["args"], "--out", str(ROOT / check["name"]), "--quiet"]


def summarize(check: dict) -> dict:
    run = RunDir(ROOT / check["name"])
    rows = run.read_progress()
    evals = rows.dropna(subset=["eval_return_mean"])
    hit = evals[evals["eval_return_mean"] >= check["threshold"]]
    final = None
    if (record := run.read_final_eval()) is not None:
        final = record["eval_return_mean"]
    elif len(evals):
        final = float(evals["eval_return_mean"].iloc[-1])
    first = int(hit["timesteps"].iloc[0]) if len(hit) else None
    return {"check": check["name"], "env": check["env"], "arch": check["arch"],
            "seed": check["seed"], "threshold": check["threshold"],
            "budget": check["budget"],
            "first_timesteps_at_threshold": "" if first is None else str(first),
            "passed": first is not None and first <= check["budget"],
            "best_eval": round(float(evals["eval_return_mean"].max()), 1),
            "final_eval": None if final is None else round(float(final), 1),
            "timesteps": int(rows["timesteps"].iloc[-1]),
            "backend": "{0.backend} x{0.workers}".format(run.read_config().run),
            "wall_time_s": round(float(rows["wall_time_s"].iloc[-1]), 1),
            "command": " ".join(command(check))}


def markdown_table(df: pd.DataFrame) -> list[str]:
    cells = [[("" if v is None or v != v else str(v)) for v in row] for row in df.values]
    return ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)] + [
        "| " + " | ".join(r) + " |" for r in cells]


def main(run: bool = False) -> None:
    for check in checks():
        path = RunDir(ROOT / check["name"])
        if run and not (path.has_config() and path.finished()):
            extra = ["--resume", str(path)] if path.has_config() else []
            cmd = command(check) if not extra else ["es-compact", "train", *extra, "--quiet"]
            subprocess.run([sys.executable, "-m", "es_compact_cli", *cmd[1:]], check=True)
    rows = [summarize(c) for c in checks() if RunDir(ROOT / c["name"]).progress_path.exists()]
    df = pd.DataFrame(rows)
    out = Path("results/training_checks.md")
    lines = ["# Training checks", "",
             "Evaluation = mean unshifted return of 5 noiseless episodes every 10 iterations",
             "(every 5 on InvertedPendulum); `first at threshold` is the first evaluation at or",
             "above the threshold. Wall times are on a shared 2-core machine (other jobs ran",
             "beside these). Regenerate: `python -m es_compact.experiments.training_checks --run`.",
             "", *markdown_table(df.drop(columns=["command"])), "",
             "Presets: HalfCheetah uses the ARS paper's V2-t values (α 0.02, N 32, b 4, ν 0.03)",
             "for `linear` and, unchanged, for `kama` (h = 64, K = 200): it passed its check, so",
             "no separate structured preset was needed there. InvertedPendulum is not in the ARS",
             "paper: seven candidate presets were tried with `linear` on seeds 0-2; two solved",
             "every seed, and of those α 0.05, N 16, b 8, ν 0.2 then solved every seed of every",
             "architecture (15/15, at most 63k timesteps) while the other missed one `kama`",
             "seed (`results/presets_inverted_pendulum.csv`). The HalfCheetah returns swing",
             "between evaluations (e.g. seed 1: 4298 at 2.56M, 984 at the end), as ARS's do;",
             "`checkpoints/best` keeps the best evaluated θ.", "", "Commands:", ""]
    lines += [f"- `{c}`" for c in df["command"]]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(run="--run" in sys.argv)
