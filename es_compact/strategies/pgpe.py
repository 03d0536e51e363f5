"""PGPE (Sehnke et al. 2010, "Parameter-exploring policy gradients", Neural Networks 23(4)) with
its symmetric sampling and a per-parameter σ; the centre follows ClipUp (Toklu, Liskowski,
Srivastava 2020, "ClipUp: a simple and powerful optimizer for distribution-based policy
evolution", PPSN XVI) or Adam (Kingma and Ba 2015).

Iteration t samples N mirrored pairs θ ± ε_k, ε_k = σ ⊙ δ_k (``noise()`` is (1, σ)). With f
the centred ranks of the 2N' returns of the N' valid pairs (``shaping.centered_ranks``, as the
ClipUp paper and EvoTorch do), f⁺_k, f⁻_k those of r(θ + ε_k), r(θ - ε_k), and

    d_k = (f⁺_k - f⁻_k) / 2,        a_k = (f⁺_k + f⁻_k) / 2,

the gradients are (everything elementwise, δ_k in float64)

    g_μ = σ ⊙ Σ_k d_k δ_k / N'               ( = Σ_k ε_k (f⁺_k - f⁻_k) / 2 / N' )
    g_σ = σ ⊙ Σ_k a_k (δ_k² - 1) / N'        ( = Σ_k a_k (ε_k² - σ²) / σ / N' ).

Sehnke et al.'s σ-gradient has a_k - b with b the mean reward; the centred ranks of all 2N'
returns sum to zero, so b = 0 here (EvoTorch does the same with its 'centered' ranking). Both
sums are divided by the number of pairs, as EvoTorch's SymmetricSeparableGaussian
(divide_*_grad_by = "num_directions") and pgpelib's compute_reinforce_update do; here it is the
number of valid pairs N'. Both gradients use the σ the candidates were drawn with.

The centre, ClipUp (α = step_size, m = momentum, v_max = max_speed, None: 2α):

    v <- m v + α g_μ / ‖g_μ‖;   if ‖v‖ > v_max: v <- v (v_max / ‖v‖);   θ <- θ + v

and when g_μ = 0 exactly there is no direction to follow: θ and v stay as they are (EvoTorch and
pgpelib would divide by zero). Or Adam (lr α, β1 0.9, β2 0.999, ε 1e-8, as OpenAI-ES here):

    t <- t + 1;  m <- β1 m + (1 - β1) g_μ;  s <- β2 s + (1 - β2) g_μ²
    θ <- θ + α √(1 - β2^t) / (1 - β1^t) · m / (√s + ε).

Then σ (η_σ = sigma_lr, None: 0.1; c = sigma_max_change, EvoTorch's stdev_max_change 0.2):

    σ <- min(max(σ + η_σ g_σ, σ - c σ), σ + c σ)

so each σ_i changes by at most the fraction c of itself per iteration and, as c < 1, stays
positive.
"""

from __future__ import annotations

import numpy as np

from es_compact.strategies.base import Strategy
from es_compact.strategies.shaping import centered_ranks

SIGMA_LR = 0.1
"""η_σ when sigma_lr is None: the ClipUp paper's and EvoTorch's rl_clipup.py stdev learning rate."""


def clipup(velocity: np.ndarray, g: np.ndarray, step_size: float, momentum: float,
           max_speed: float) -> np.ndarray | None:
    """ClipUp's next velocity from the gradient g (ascent), or None when g is zero (no step)."""
    norm = float(np.linalg.norm(g))
    if not norm > 0.0:
        return None
    v = momentum * velocity + step_size * (g / norm)
    speed = float(np.linalg.norm(v))
    if speed > max_speed:
        v = v * (max_speed / speed)
    return v


class PGPE(Strategy):
    """PGPE with symmetric sampling and ClipUp (default) or Adam.

    default_step_size 0.0075 is ClipUp's α for linear policies on MuJoCo in the ClipUp paper
    (Walker2d-v2 and Humanoid-v2: v_max 0.015, α = v_max / 2, the paper's rule of thumb;
    nnaisense/pgpelib train_agents/train_walker2d.sh and train_humanoid.sh), so with max_speed
    None (2α) the defaults are that configuration. The paper's initial radius 15 v_max = 0.225
    is a σ of 0.225 / √d, about 0.022 for Walker2d's 102-parameter linear policy: the ARS
    preset's ν (0.025), taken as the initial σ, is close. Adam shares the default (EvoTorch's
    examples/scripts/rl_clipup.py uses 4e-3 on Walker2d, 6e-4 on Humanoid): give step_size when
    choosing adam.
    """

    name = "pgpe"
    default_step_size = 0.0075
    optimizers = ("clipup", "adam")
    min_directions = 1
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, config, directions):
        super().__init__(config, directions)
        dim = directions.dim
        self.sigma = np.full(dim, float(self.config.noise_std))
        if self.optimizer == "clipup":
            self.velocity = np.zeros(dim)
        else:
            self.m, self.s, self.t = np.zeros(dim), np.zeros(dim), 0

    @property
    def max_speed(self) -> float:
        ms = self.config.max_speed
        return 2.0 * float(self.config.step_size) if ms is None else float(ms)

    @property
    def sigma_lr(self) -> float:
        lr = self.config.sigma_lr
        return SIGMA_LR if lr is None else float(lr)

    def noise(self):
        return 1.0, self.sigma

    def gradients(self, plan, ks, returns_n2) -> tuple[np.ndarray, np.ndarray]:
        """(g_μ, g_σ) from the valid pairs ks and their returns (module docstring)."""
        f = centered_ranks(returns_n2)
        d = (f[:, 0] - f[:, 1]) / 2
        a = (f[:, 0] + f[:, 1]) / 2
        sum_mu = np.zeros(self.directions.dim)
        sum_sigma = np.zeros(self.directions.dim)
        for k, dk, ak in zip(ks, d, a, strict=True):
            delta = np.asarray(self.directions.get(plan, int(k)), dtype=np.float64)
            sum_mu += dk * delta
            sum_sigma += ak * (delta * delta - 1.0)
        n = len(ks)
        return self.sigma * sum_mu / n, self.sigma * sum_sigma / n

    def _tell(self, theta, plan, ks, returns_n2):
        g_mu, g_sigma = self.gradients(plan, ks, returns_n2)
        lr = float(self.config.step_size)
        if self.optimizer == "clipup":
            v = clipup(self.velocity, g_mu, lr, self.config.momentum, self.max_speed)
            if v is None:
                new = theta.copy()
            else:
                self.velocity = v
                new = theta + v
        else:
            self.t += 1
            self.m = self.beta1 * self.m + (1 - self.beta1) * g_mu
            self.s = self.beta2 * self.s + (1 - self.beta2) * g_mu * g_mu
            a = lr * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
            new = theta + a * self.m / (np.sqrt(self.s) + self.eps)
        c = self.config.sigma_max_change
        target = self.sigma + self.sigma_lr * g_sigma
        self.sigma = np.minimum(np.maximum(target, self.sigma - c * self.sigma),
                                self.sigma + c * self.sigma)
        return new

    def state(self):
        if self.optimizer == "clipup":
            return {"pgpe_sigma": self.sigma.copy(), "pgpe_velocity": self.velocity.copy()}, {}
        return ({"pgpe_sigma": self.sigma.copy(), "pgpe_adam_m": self.m.copy(),
                 "pgpe_adam_s": self.s.copy()}, {"pgpe_adam_t": self.t})

    def load(self, arrays, meta):
        self.sigma = np.array(arrays["pgpe_sigma"], dtype=np.float64)
        if self.optimizer == "clipup":
            self.velocity = np.array(arrays["pgpe_velocity"], dtype=np.float64)
        else:
            self.m = np.array(arrays["pgpe_adam_m"], dtype=np.float64)
            self.s = np.array(arrays["pgpe_adam_s"], dtype=np.float64)
            self.t = int(meta["pgpe_adam_t"])
