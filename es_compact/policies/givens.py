"""KAMA layers: weight matrices as truncated, scaled products of Givens rotations.

Choromanski et al., "KAMA-NNs: low-dimensional rotation based neural networks" (AISTATS 2019),
Section 2. With G(I, J, Θ) the Givens rotation of size D on the plane (I, J) (drawn in
:mod:`es_compact.givens`), P = G_K ··· G_2 G_1 (G_1 applied first) and D = max(d1, d2), a
d1 x d2 KAMA matrix is

    d1 <= d2:  M = diag(s_1..s_d1) · P[:d1, :]     (first d1 rows, each row scaled)
    d1 >  d2:  M = P[:, :d2] · diag(s_1..s_d2)     (first d2 columns, each column scaled)

The planes (I_t, J_t) are drawn uniformly from a seed when the policy is built and stay fixed;
the K angles and min(d1, d2) scalars are learned. The rotations, the dense reference and the
random structure are in :mod:`es_compact.givens`; the forward pass is ``givens_layer`` in
:mod:`es_compact.policies.kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from es_compact.errors import ConfigError
from es_compact.givens import kama_matrix, product_matrix, random_angles, random_planes
from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer


@dataclass(frozen=True, eq=False, kw_only=True)
class GivensLayer(Layer):
    rotations: int
    planes_array: np.ndarray = field(repr=False)
    """(rotations, 2) int64 rotation planes, fixed at build time."""

    kind = "kama"

    @classmethod
    def build(cls, *, in_dim: int, out_dim: int, offset: int, rotations: int,
              rng: np.random.Generator, **kw) -> GivensLayer:
        if rotations < 1:
            raise ConfigError(f"rotation count must be positive, got {rotations}")
        planes = random_planes(max(in_dim, out_dim), rotations, rng)
        return cls(in_dim=in_dim, out_dim=out_dim, offset=offset, rotations=rotations,
                   planes_array=planes, **kw)

    @property
    def n_scales(self) -> int:
        return min(self.in_dim, self.out_dim)

    @property
    def weight_size(self) -> int:
        return self.rotations + self.n_scales

    def _weight_blocks(self):
        return {"angles": (self.offset, (self.rotations,)),
                "scales": (self.offset + self.rotations, (self.n_scales,))}

    def _init_weights(self, theta, rng):
        self.view(theta, "angles")[:] = random_angles(self.rotations, rng)
        self.view(theta, "scales")[:] = 1.0

    def weight(self, theta):
        P = product_matrix(self.width, self.planes_array, self.view(theta, "angles"))
        return kama_matrix(P, self.out_dim, self.in_dim, self.view(theta, "scales"))

    @property
    def extra_size(self) -> int:
        return 2 * self.rotations

    def fill_extra(self, theta, prep, extra_off):
        angles = self.view(theta, "angles")
        cs = prep[extra_off : extra_off + 2 * self.rotations].reshape(self.rotations, 2)
        cs[:, 0] = np.cos(angles)
        cs[:, 1] = np.sin(angles)

    def planes(self):
        return self.planes_array.ravel()

    def table_row(self, extra_off, planes_off):
        return self._row(K.GIVENS, extra_off, aux=planes_off, n=self.rotations,
                         s=self.offset + self.rotations)
