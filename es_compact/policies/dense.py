"""Unstructured dense layers: the `dense` MLP baseline and the ARS `linear` policy
(Mania, Guy and Recht 2018, a = W s).

        | w00 w01 w02 |
    W = | w10 w11 w12 |     out_dim x in_dim free parameters, row-major in θ
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer


@dataclass(frozen=True, eq=False, kw_only=True)
class DenseLayer(Layer):
    zero_init: bool = False
    """Start from W = 0 (the ARS linear policy) instead of N(0, 1/in_dim)."""

    kind = "dense"

    @property
    def weight_size(self) -> int:
        return self.out_dim * self.in_dim

    def _weight_blocks(self):
        return {"W": (self.offset, (self.out_dim, self.in_dim))}

    def _init_weights(self, theta, rng):
        W = self.view(theta, "W")
        if self.zero_init:
            W[:] = 0.0
        else:
            W[:] = rng.standard_normal(W.shape) / np.sqrt(self.in_dim)

    def weight(self, theta):
        return self.view(theta, "W").copy()

    def table_row(self, extra_off, planes_off):
        return self._row(K.DENSE, self.offset)
