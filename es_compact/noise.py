"""The shared noise table (Salimans et al. 2017; Mania et al. 2018, `shared_noise.py`).

One float32 table of standard normals is built once from a seed; a perturbation direction is an
offset into it, so workers exchange offsets and scalars, never parameter-sized vectors.
"""

from __future__ import annotations

import numpy as np

from es_compact.errors import ConfigError

NOISE_STREAM = 0x0153


def build_table(seed: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """size float32 standard normals from the seed (into `out`, e.g. shared memory, if given)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), NOISE_STREAM]))
    table = np.empty(size, dtype=np.float32) if out is None else out
    chunk = 1 << 22  # bounded float64 temporaries
    for start in range(0, size, chunk):
        stop = min(size, start + chunk)
        table[start:stop] = rng.standard_normal(stop - start, dtype=np.float32)
    return table


class NoiseTable:
    """Read-only view of a noise table: ``get(offset, dim)`` is a float32 slice, no copy."""

    def __init__(self, table: np.ndarray):
        self.table = table
        self.table.flags.writeable = False

    @classmethod
    def build(cls, seed: int, size: int) -> NoiseTable:
        return cls(build_table(seed, size))

    def __len__(self) -> int:
        return self.table.shape[0]

    def get(self, offset: int, dim: int) -> np.ndarray:
        return self.table[offset : offset + dim]

    def check_dim(self, dim: int) -> None:
        if dim >= len(self):
            raise ConfigError(f"noise table of {len(self)} entries is too small for {dim} "
                              "parameters; raise noise_table_size")

    def sample_offsets(self, rng: np.random.Generator, dim: int, count: int) -> np.ndarray:
        return rng.integers(0, len(self) - dim + 1, size=count)
