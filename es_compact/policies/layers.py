"""The layer base class: a slice of the flat θ plus what the numba interpreter needs to run it.

Every layer stores its weights at ``θ[offset : offset + weight_size]`` and, when it has a bias,
the bias right after. Subclasses (one family per file) say how many weights they hold, how to
initialise them, how to build the equivalent dense matrix (``weight``) and which derived values
(``extra_size``/``fill_extra``) the forward kernel needs precomputed per θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.policies import kernels as K

ACTIVATIONS = {"identity": K.IDENTITY, "tanh": K.TANH, "leaky_relu": K.LEAKY_RELU}


@dataclass(frozen=True, eq=False, kw_only=True)
class Layer:
    """One weight matrix (out_dim x in_dim), an optional bias and a pointwise activation."""

    in_dim: int
    out_dim: int
    offset: int
    bias: bool = False
    activation: str = "identity"
    slope: float = 0.0
    """Negative-side slope of a leaky ReLU activation (unused otherwise)."""

    kind = "abstract"

    @property
    def weight_size(self) -> int:
        raise NotImplementedError

    @property
    def size(self) -> int:
        return self.weight_size + (self.out_dim if self.bias else 0)

    @property
    def bias_offset(self) -> int:
        return self.offset + self.weight_size if self.bias else -1

    def blocks(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """Name -> (offset in θ, shape) of every parameter block of this layer."""
        out = self._weight_blocks()
        if self.bias:
            out["bias"] = (self.bias_offset, (self.out_dim,))
        return out

    def _weight_blocks(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        raise NotImplementedError

    def view(self, theta: np.ndarray, name: str) -> np.ndarray:
        """A view (no copy) of one named block of θ."""
        off, shape = self.blocks()[name]
        return theta[off : off + int(np.prod(shape))].reshape(shape)

    def init(self, theta: np.ndarray, rng: np.random.Generator) -> None:
        """Write initial values of this layer's parameters into θ (biases start at zero)."""
        if self.bias:
            self.view(theta, "bias")[:] = 0.0
        self._init_weights(theta, rng)

    def _init_weights(self, theta: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def weight(self, theta: np.ndarray) -> np.ndarray:
        """The equivalent dense (out_dim, in_dim) matrix."""
        raise NotImplementedError

    def bias_vector(self, theta: np.ndarray) -> np.ndarray:
        if not self.bias:
            return np.zeros(self.out_dim)
        return self.view(theta, "bias").copy()

    # What the interpreter needs --------------------------------------------------------------

    @property
    def extra_size(self) -> int:
        """Floats of per-θ derived values this layer needs after θ in the prepared array."""
        return 0

    def fill_extra(self, theta: np.ndarray, prep: np.ndarray, extra_off: int) -> None:
        """Compute the derived values into prep[extra_off : extra_off + extra_size]."""

    def planes(self) -> np.ndarray:
        """Fixed integer structure (Givens planes), flattened; empty for other layers."""
        return np.zeros(0, dtype=np.int64)

    @property
    def width(self) -> int:
        """Widest vector the layer touches (the scratch buffers are sized by the maximum)."""
        return max(self.in_dim, self.out_dim)

    def table_row(self, extra_off: int, planes_off: int) -> list[int]:
        raise NotImplementedError

    def _row(self, kind: int, w: int, aux: int = 0, n: int = 0, s: int = 0) -> list[int]:
        row = [0] * K.N_COLS
        row[K.COL_KIND] = kind
        row[K.COL_IN] = self.in_dim
        row[K.COL_OUT] = self.out_dim
        row[K.COL_W] = w
        row[K.COL_B] = self.bias_offset
        row[K.COL_ACT] = ACTIVATIONS[self.activation]
        row[K.COL_AUX] = aux
        row[K.COL_N] = n
        row[K.COL_S] = s
        return row
