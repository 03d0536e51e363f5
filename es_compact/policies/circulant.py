"""Diagonal-circulant layers (Araujo et al., "Understanding and training deep diagonal circulant
neural networks", ECAI 2020, Sections 4-5).

Every layer has width n and computes x -> φ(D C x + b) with D = diag(d) and C circulant:

        | c0 c3 c2 c1 |
    C = | c1 c0 c3 c2 |     C[i, j] = c[(i - j) mod n]  (scipy.linalg.circulant(c))
        | c2 c1 c0 c3 |
        | c3 c2 c1 c0 |

so a layer holds 3n parameters (c, d, b). A narrower input is zero-padded to n and a narrower
output truncated. Initialisation (the paper's Section 5): c_i ~ N(0, 2/n), d_i uniform on
{-1, +1}, b_i ~ N(0, σ'^2) with small σ' (``c_std`` replaces √(2/n); see
PolicyConfig.dcnn_init). C x is computed directly in O(n · in_dim) when n is
small and through the FFT in O(n log n) when n >= FFT_MIN_WIDTH (measured by
`es-compact bench forward`: the direct loop wins below it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer

FFT_MIN_WIDTH = 256


@dataclass(frozen=True, eq=False, kw_only=True)
class CirculantLayer(Layer):
    n: int
    bias_std: float = 0.01
    c_std: float | None = None
    """Standard deviation of the initial c_i; None: the paper's √(2/n)."""
    use_fft: bool | None = None
    """Force the FFT (True) or direct (False) product; None chooses by width."""

    kind = "circulant"

    @property
    def fft(self) -> bool:
        return self.n >= FFT_MIN_WIDTH if self.use_fft is None else self.use_fft

    @property
    def weight_size(self) -> int:
        return 2 * self.n

    @property
    def width(self) -> int:
        return self.n

    def _weight_blocks(self):
        return {"c": (self.offset, (self.n,)), "d": (self.offset + self.n, (self.n,))}

    def init(self, theta, rng):
        self.view(theta, "c")[:] = rng.normal(0.0, np.sqrt(2.0 / self.n) if self.c_std is None
                                             else self.c_std, self.n)
        self.view(theta, "d")[:] = rng.choice([-1.0, 1.0], self.n)
        if self.bias:
            self.view(theta, "bias")[:] = rng.normal(0.0, self.bias_std, self.out_dim)

    def weight(self, theta):
        import scipy.linalg  # only for the dense reference: keeps it out of rollout workers

        C = scipy.linalg.circulant(self.view(theta, "c"))
        DC = self.view(theta, "d")[:, None] * C
        return DC[: self.out_dim, : self.in_dim].copy()

    @property
    def extra_size(self) -> int:
        # FFT: rfft(c) as (re, im) pairs; direct: cr2[k] = c[(n - k) mod n], k < 2n.
        return 2 * (self.n // 2 + 1) if self.fft else 2 * self.n

    def fill_extra(self, theta, prep, extra_off):
        c = self.view(theta, "c")
        extra = prep[extra_off : extra_off + self.extra_size]
        if self.fft:
            fc = np.fft.rfft(c)
            extra[:] = np.stack([fc.real, fc.imag], 1).ravel()
        else:
            extra[:] = c[(self.n - np.arange(2 * self.n)) % self.n]

    def table_row(self, extra_off, planes_off):
        kind = K.CIRCULANT_FFT if self.fft else K.CIRCULANT
        return self._row(kind, extra_off, n=self.n, s=self.offset + self.n)
