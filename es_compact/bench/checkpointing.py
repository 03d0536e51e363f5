"""What writing ``checkpoints/latest`` costs a training run.

One configuration is trained with ``latest`` written after every iteration
(``checkpoint_every_s = 0``, the behaviour before the interval existed) and every
``every`` seconds, alternating the two over rounds so that the machine's drift falls on both
alike. The serial backend keeps everything in one process, so the loop's own costs are not
hidden behind workers. The two runs must end with the same θ: the interval changes when state
is written, never what is trained.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from es_compact.config import EnvConfig, PolicyConfig, RunConfig, TrainConfig
from es_compact.run_dir import RunDir
from es_compact.trainer import Trainer


def config(env_id: str, arch: str, iterations: int, every: float) -> TrainConfig:
    return TrainConfig(env=EnvConfig(id=env_id), policy=PolicyConfig(arch=arch),
                       run=RunConfig(iterations=iterations, backend="serial",
                                     noise_table_size=2_000_000, checkpoint_every_s=every))


def run(env_id: str = "InvertedDoublePendulum-v4", arch: str = "dense", iterations: int = 300,
        rounds: int = 3, every: float = 30.0, work_dir: str | Path = "runs",
        log=lambda s: None) -> dict:
    """Median seconds per iteration of each schedule, their ratio, and whether θ agrees."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench_checkpoint_", dir=work_dir))
    times: dict[float, list[float]] = {0.0: [], every: []}
    thetas = {}
    try:
        # Warm-up: numba compiles the policy and the environment loads on first use.
        Trainer(config(env_id, arch, 2, every), root / "warm-up").run()
        for r in range(rounds):
            for each in (0.0, every) if r % 2 == 0 else (every, 0.0):
                d = root / f"every{each:g}_round{r}"
                t = time.perf_counter()
                Trainer(config(env_id, arch, iterations, each), d).run()
                times[each].append((time.perf_counter() - t) / iterations)
                log(f"round {r + 1}/{rounds}, latest every {each:g} s: "
                    f"{1e3 * times[each][-1]:.1f} ms per iteration")
                thetas[each] = RunDir(d).load_checkpoint("latest")[0]["theta"]
                shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_iteration, per_interval = (statistics.median(times[k]) for k in (0.0, every))
    ratios = [a / b for a, b in zip(times[0.0], times[every], strict=True)]
    return {"case": "checkpoint", "env": env_id, "arch": arch, "iterations": iterations,
            "rounds": rounds, "every_s": every,
            "ms_per_iteration_every_iteration": round(1e3 * per_iteration, 2),
            "ms_per_iteration_interval": round(1e3 * per_interval, 2),
            "speedup": round(per_iteration / per_interval, 3),
            "speedup_per_round": " ".join(f"{x:.3f}" for x in ratios),
            "same_theta": bool(np.array_equal(thetas[0.0], thetas[every]))}
