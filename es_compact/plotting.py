"""Learning curves from run directories: return against timesteps, mean ± std across seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from es_compact.errors import ConfigError
from es_compact.run_dir import RunDir


def read_progress(run_dir: str | Path) -> pd.DataFrame:
    return RunDir(run_dir).read_progress()


def run_label(run_dir: str | Path) -> str:
    """'env / arch / algo' of the stored configuration (runs differing only in seed share a
    label)."""
    return RunDir(run_dir).label()


def curves(run_dirs, column: str = "eval_return_mean", points: int = 200):
    """{label: (timesteps grid, mean, std, n_runs)}; each run is interpolated onto a common
    grid up to the shortest run of its label, so seeds are averaged at equal timesteps."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for d in run_dirs:
        df = read_progress(d).dropna(subset=[column])
        if df.empty:
            raise ConfigError(f"{d}: no {column} values yet")
        groups.setdefault(run_label(d), []).append(df)
    out = {}
    for label, dfs in groups.items():
        end = min(df["timesteps"].iloc[-1] for df in dfs)
        start = max(df["timesteps"].iloc[0] for df in dfs)
        grid = np.linspace(start, end, points) if end > start else np.array([end])
        ys = np.array([np.interp(grid, df["timesteps"], df[column]) for df in dfs])
        out[label] = (grid, ys.mean(axis=0), ys.std(axis=0), len(dfs))
    return out


def plot_runs(run_dirs, out: str | Path, column: str = "eval_return_mean",
              title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (x, mean, std, n) in curves(run_dirs, column).items():
        line, = ax.plot(x, mean, label=f"{label} ({n} run{'s' if n > 1 else ''})")
        if n > 1:
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("timesteps")
    ax.set_ylabel(column.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def check_plot_inputs(run_dirs, out: str | Path, column: str) -> None:
    """ConfigError naming the first problem: a directory without a run or progress, a column
    progress.csv lacks, or an image format matplotlib cannot write."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError(f"cannot write a {suffix or 'suffix-less'} image {out}; use one of "
                          f"{', '.join(sorted(formats))}")
    for d in run_dirs:
        run = RunDir(d)
        run.read_config()  # "holds no run" when there is none
        df = run.read_progress()
        if column not in df.columns:
            raise ConfigError(f"{run.progress_path} has no column {column!r}; it has "
                              f"{', '.join(c for c in df.columns if c != 'timesteps')}")
