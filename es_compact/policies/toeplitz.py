"""Toeplitz layers (Choromanski et al. 2018, "Structured evolution with compact architectures").

A rectangular m x n Toeplitz matrix is constant along each diagonal, so it has m + n - 1
parameters v, one per diagonal, stored from the top-right corner to the bottom-left:

        | v3 v2 v1 v0 |
    T = | v4 v3 v2 v1 |     m = 3, n = 4:  T[i, j] = v[i - j + n - 1]
        | v5 v4 v3 v2 |

In SciPy's terms T = scipy.linalg.toeplitz(c=v[n-1:], r=v[n-1::-1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer


@dataclass(frozen=True, eq=False, kw_only=True)
class ToeplitzLayer(Layer):
    kind = "toeplitz"

    @property
    def weight_size(self) -> int:
        return self.out_dim + self.in_dim - 1

    def _weight_blocks(self):
        return {"v": (self.offset, (self.weight_size,))}

    def _init_weights(self, theta, rng):
        v = self.view(theta, "v")
        v[:] = rng.standard_normal(v.shape) / np.sqrt(self.in_dim)

    def weight(self, theta):
        v = self.view(theta, "v")
        i = np.arange(self.out_dim)[:, None]
        j = np.arange(self.in_dim)[None, :]
        return v[i - j + self.in_dim - 1].copy()

    @property
    def extra_size(self) -> int:
        return self.weight_size

    def fill_extra(self, theta, prep, extra_off):
        # The kernel reads v reversed so every row is a forward (vectorisable) loop.
        prep[extra_off : extra_off + self.weight_size] = self.view(theta, "v")[::-1]

    def table_row(self, extra_off, planes_off):
        return self._row(K.TOEPLITZ, extra_off)
