"""A policy: a frozen list of layers over one flat float64 θ, run by one numba kernel.

``Policy.forward(θ, obs)`` is the convenient entry point; rollouts build an :class:`Actor` once per
θ (``policy.actor(θ, mean, std)``) whose call is a single compiled kernel invocation.
Actions: Box spaces get the network's linear output clipped to the bounds (``squash='clip'``,
the ARS convention) or mapped into them by tanh (``squash='tanh'``); Discrete spaces get the
argmax of one output per action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from es_compact.errors import ParameterError, SpaceError
from es_compact.policies import kernels as K
from es_compact.policies.layers import Layer


@dataclass(frozen=True, eq=False)
class ActionSpec:
    """What the policy outputs: `dim` continuous values within [low, high], or a choice among
    `dim` discrete actions."""

    dim: int
    discrete: bool = False
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    def from_space(cls, space) -> ActionSpec:
        import gymnasium.spaces as S

        if isinstance(space, S.Discrete):
            return cls(dim=int(space.n), discrete=True)
        if isinstance(space, S.Box):
            if len(space.shape) != 1:
                raise SpaceError(f"Box action spaces must be one-dimensional, got shape "
                                 f"{space.shape}")
            return cls(dim=int(space.shape[0]), low=space.low.astype(np.float64),
                       high=space.high.astype(np.float64))
        raise SpaceError(f"unsupported action space {space}: use Box or Discrete")


def obs_dim_of(space) -> int:
    import gymnasium.spaces as S

    if not isinstance(space, S.Box):
        raise SpaceError(f"unsupported observation space {space}: use Box")
    return int(np.prod(space.shape))


@dataclass(frozen=True, eq=False)
class DenseWeights:
    """One layer as plain arrays: y = act(W x + b)."""

    W: np.ndarray
    b: np.ndarray
    activation: str
    slope: float


class Policy:
    """Layers over a flat θ; construct through :func:`es_compact.policies.make_policy`."""

    def __init__(self, arch: str, layers: list[Layer], obs_dim: int, action: ActionSpec,
                 squash: str = "clip"):
        self.arch = arch
        self.layers = tuple(layers)
        self.obs_dim = obs_dim
        self.action = action
        self.squash = "none" if action.discrete else squash
        self.num_params = sum(layer.size for layer in layers)
        self._check_layout()
        if action.discrete or self.squash == "none":
            self._low = np.full(action.dim, -np.inf)
            self._high = np.full(action.dim, np.inf)
        else:
            self._low, self._high = action.low, action.high
            if self.squash == "tanh" and not (np.isfinite(self._low).all()
                                              and np.isfinite(self._high).all()):
                raise SpaceError("squash='tanh' needs finite action bounds; use squash='clip'")
        self._pack()

    def _pack(self):
        """Lay out the kernel's two packed arrays (see kernels.policy_forward).

        fp (float64, one per Actor): [θ | derived values | slopes | mean | 1/std | low | high |
        scratch]; ip (int64, fixed for the policy's life): [header | layer table | planes].
        """
        layers = self.layers
        self.prep_size = self.num_params + sum(layer.extra_size for layer in layers)
        rows, planes, extra, poff = [], [], self.num_params, 0
        self._extra_offsets = []
        for layer in layers:
            rows.append(layer.table_row(extra, poff))
            self._extra_offsets.append(extra)
            extra += layer.extra_size
            p = layer.planes()
            planes.append(p)
            poff += p.size
        self.max_width = max([self.obs_dim, self.action.dim] + [lay.width for lay in layers])
        n_obs, n_act, n_layers = self.obs_dim, self.action.dim, len(layers)
        h = np.zeros(K.N_HEADER, dtype=np.int64)
        h[K.H_LAYERS] = n_layers
        h[K.H_SQUASH] = {"none": K.SQUASH_NONE, "clip": K.SQUASH_CLIP,
                         "tanh": K.SQUASH_TANH}[self.squash]
        h[K.H_SLOPES] = self.prep_size
        h[K.H_MEAN] = h[K.H_SLOPES] + n_layers
        h[K.H_INV_STD] = h[K.H_MEAN] + n_obs
        h[K.H_LOW] = h[K.H_INV_STD] + n_obs
        h[K.H_HIGH] = h[K.H_LOW] + n_act
        h[K.H_WORK] = h[K.H_HIGH] + n_act
        h[K.H_WIDTH] = self.max_width
        h[K.H_TABLE] = K.N_HEADER
        h[K.H_PLANES] = K.N_HEADER + n_layers * K.N_COLS
        self._header = h
        self.fp_size = int(h[K.H_WORK] + 3 * self.max_width)
        self.ip = np.concatenate([h, np.array(rows, dtype=np.int64).ravel()]
                                 + [p.astype(np.int64) for p in planes])
        self._slopes = np.array([layer.slope for layer in layers], dtype=np.float64)

    def pack_floats(self, theta: np.ndarray, mean: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
        """The float array an Actor runs on: prepared θ, normaliser, bounds and scratch."""
        h = self._header
        fp = np.zeros(self.fp_size)
        fp[: self.prep_size] = self.prepare(theta)
        fp[h[K.H_SLOPES] : h[K.H_MEAN]] = self._slopes
        fp[h[K.H_MEAN] : h[K.H_INV_STD]] = mean
        fp[h[K.H_INV_STD] : h[K.H_LOW]] = inv_std
        fp[h[K.H_LOW] : h[K.H_HIGH]] = self._low
        fp[h[K.H_HIGH] : h[K.H_WORK]] = self._high
        return fp

    def _check_layout(self):
        off = 0
        for layer in self.layers:
            assert layer.offset == off, "layers must tile θ contiguously"
            off += layer.size
        dims = [self.obs_dim] + [layer.out_dim for layer in self.layers]
        for layer, d_in in zip(self.layers, dims[:-1], strict=True):
            assert layer.in_dim == d_in, "layer input size must match the previous output"
        assert dims[-1] == self.action.dim

    # Parameters ------------------------------------------------------------------------------

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """A fresh θ drawn with the architecture's initialisation."""
        theta = np.zeros(self.num_params)
        for layer in self.layers:
            layer.init(theta, rng)
        return theta

    def check(self, theta) -> np.ndarray:
        """θ as a contiguous float64 vector, or ParameterError saying what is wrong with it."""
        theta = np.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != self.num_params:
            raise ParameterError(f"θ must be a vector of {self.num_params} parameters for this "
                                 f"{self.arch} policy, got shape {theta.shape}")
        if not np.issubdtype(theta.dtype, np.floating):
            raise ParameterError(f"θ must be floating point, got {theta.dtype}")
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        if not np.isfinite(theta).all():
            bad = np.flatnonzero(~np.isfinite(theta))
            raise ParameterError(f"θ has {bad.size} non-finite entries (first at index {bad[0]})")
        return theta

    def prepare(self, theta: np.ndarray) -> np.ndarray:
        """θ followed by the derived values the kernel reads (cos/sin of angles, FFTs)."""
        prep = np.empty(self.prep_size)
        prep[: self.num_params] = theta
        for layer, off in zip(self.layers, self._extra_offsets, strict=True):
            layer.fill_extra(theta, prep, off)
        return prep

    def same_structure(self, other: Policy) -> bool:
        """Whether a θ means the same to both policies: equal observation and action sizes,
        layers, Givens planes, slopes and squash (the kernel's integer layout and slopes)."""
        return (self.obs_dim == other.obs_dim and self.action.dim == other.action.dim
                and self.squash == other.squash and np.array_equal(self.ip, other.ip)
                and np.array_equal(self._slopes, other._slopes))

    def blocks(self) -> list[dict]:
        """Every layer's kind, shape, offset, size and named blocks, as plain data."""
        return [{"kind": layer.kind, "in": layer.in_dim, "out": layer.out_dim,
                 "offset": layer.offset, "size": layer.size, "activation": layer.activation,
                 "blocks": {k: {"offset": o, "shape": list(s)}
                            for k, (o, s) in layer.blocks().items()}}
                for layer in self.layers]

    # Running it -------------------------------------------------------------------------------

    def actor(self, theta, obs_mean=None, obs_std=None) -> Actor:
        """A callable obs -> action for a fixed θ and observation normalisation."""
        return Actor(self, self.check(theta), obs_mean, obs_std)

    def forward(self, theta, obs, obs_mean=None, obs_std=None):
        """Action for one observation (obs_dim,) or actions for a batch (n, obs_dim)."""
        return self.actor(theta, obs_mean, obs_std)(obs)

    # Dense reference --------------------------------------------------------------------------

    def to_dense(self, theta) -> list[DenseWeights]:
        """The equivalent dense layers (for tests and export)."""
        theta = self.check(theta)
        return [DenseWeights(layer.weight(theta), layer.bias_vector(theta), layer.activation,
                             layer.slope) for layer in self.layers]

    def reference_forward(self, theta, obs, obs_mean=None, obs_std=None):
        """forward() computed in plain NumPy from to_dense(); slow, for checking."""
        x = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        mean, inv_std = _normaliser(self.obs_dim, obs_mean, obs_std)
        x = (x - mean) * inv_std
        for dw in self.to_dense(theta):
            x = x @ dw.W.T + dw.b
            if dw.activation == "tanh":
                x = np.tanh(x)
            elif dw.activation == "leaky_relu":
                x = np.where(x < 0, dw.slope * x, x)
        if self.action.discrete:
            a = np.argmax(x, axis=1)
        elif self.squash == "clip":
            a = np.clip(x, self._low, self._high)
        else:
            a = self._low + 0.5 * (np.tanh(x) + 1.0) * (self._high - self._low)
        return a if np.ndim(obs) == 2 else a[0]


def _normaliser(dim, mean, std):
    mean = np.zeros(dim) if mean is None else np.ascontiguousarray(mean, dtype=np.float64)
    if std is None:
        inv_std = np.ones(dim)
    else:
        std = np.asarray(std, dtype=np.float64)
        if (std <= 0).any():
            raise ParameterError("observation std must be positive")
        inv_std = 1.0 / std
    if mean.shape != (dim,) or inv_std.shape != (dim,):
        raise ParameterError(f"observation mean/std must have shape ({dim},)")
    return mean, np.ascontiguousarray(inv_std)


_F64 = np.dtype(np.float64)  # a singleton: `is` is the cheapest dtype test


class Actor:
    """A policy bound to one θ and normaliser: ``actor(obs)`` is one compiled kernel call.

    An Actor owns scratch space, so one Actor must not be called from two threads at once.
    """

    __slots__ = ("policy", "fp", "ip", "_discrete", "_adim", "_odim", "_oshape")

    def __init__(self, policy: Policy, theta: np.ndarray, obs_mean=None, obs_std=None):
        self.policy = policy
        mean, inv_std = _normaliser(policy.obs_dim, obs_mean, obs_std)
        self.fp = policy.pack_floats(theta, mean, inv_std)
        self.ip = policy.ip
        self._discrete = policy.action.discrete
        self._adim = policy.action.dim
        self._odim = policy.obs_dim
        self._oshape = (policy.obs_dim,)

    def raw(self, obs: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fast path, no checks: obs a float64 vector (obs_dim,), out a float64 vector
        (act_dim,) that receives the action (the logits for Discrete spaces)."""
        K.policy_forward(self.fp, self.ip, obs, out)
        return out

    def __call__(self, obs):
        if type(obs) is np.ndarray and obs.dtype is _F64 and obs.shape == self._oshape:
            out = np.empty(self._adim)
            K.policy_forward(self.fp, self.ip, obs, out)
            return int(np.argmax(out)) if self._discrete else out
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim == 1:
            if obs.shape[0] != self._odim:
                raise ParameterError(f"observation must have {self._odim} entries, "
                                     f"got {obs.shape[0]}")
            out = np.empty(self._adim)
            K.policy_forward(self.fp, self.ip, obs, out)
            return int(np.argmax(out)) if self._discrete else out
        obs = obs.reshape(obs.shape[0], -1)
        if obs.shape[1] != self._odim:
            raise ParameterError(f"observations must have {self._odim} entries, "
                                 f"got {obs.shape[1]}")
        out = np.empty((obs.shape[0], self._adim))
        K.policy_forward_batch(self.fp, self.ip, np.ascontiguousarray(obs), out)
        return np.argmax(out, axis=1) if self._discrete else out
