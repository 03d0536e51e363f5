"""Export a trained policy as one self-contained npz and a NumPy-only runner.

The npz (read with ``allow_pickle=False``) holds, per layer ``i``, the structured parameters
exactly as θ stores them, under ``layer{i}.{name}``:

    dense      W (out, in)
    toeplitz   v (out + in - 1 diagonals)          T[r, j] = v[r - j + in - 1]
    kama       angles (K), planes (K, 2) int64, scales (min(in, out))
    circulant  c (n), d (n)                        y = d * (C x)[:out], C[r, j] = c[(r - j) mod n]
    all        bias (out), when the layer has one

plus ``obs_mean``/``obs_std`` (the checkpoint's frozen normaliser), ``action_low``/
``action_high`` and ``spec``: a JSON string with each layer's kind, sizes, activation, slope
and bias flag, the squash mode (``clip``, ``tanh`` or ``argmax`` for Discrete actions) and
where the policy came from (the run, its checkpoint, the environment's id and its settings,
``env_kwargs``). ``STANDALONE_SOURCE`` is a short documented module that runs it
with NumPy alone; ``export`` writes it next to the npz as ``policy_runner.py``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from es_compact.checkpoint import writing
from es_compact.errors import ConfigError
from es_compact.evaluate import LoadedRun
from es_compact.results import check_output_dir

FORMAT = "es-compact-policy/1"
RUNNER_NAME = "policy_runner.py"
KINDS = ("dense", "toeplitz", "kama", "circulant")  # the layer kinds the runner knows

STANDALONE_SOURCE = '''\
"""Run a policy exported by `es-compact export`, with NumPy alone (no numba, no gymnasium).

    policy = load_policy("policy.npz")
    action = act(policy, observation)      # a float vector, or an int for Discrete actions

    python policy_runner.py policy.npz observations.npy actions.npy   # one row per observation

Layers are run from their structured parameters, never from dense matrices: Toeplitz as a
convolution with its diagonals v, diagonal-circulant D C x through the FFT of c, KAMA as its
Givens rotations (planes, angles) applied in order to a buffer of width max(in, out), then
scaled (scales). See es_compact/export.py for the file layout.
"""
import json
import sys

import numpy as np


def load_policy(path):
    with np.load(path, allow_pickle=False) as f:
        p = {k: f[k] for k in f.files}
    p["spec"] = json.loads(str(p["spec"]))
    return p


def act(p, obs):
    x = (np.asarray(obs, dtype=np.float64).ravel() - p["obs_mean"]) / p["obs_std"]
    for i, L in enumerate(p["spec"]["layers"]):
        g = lambda name: p[f"layer{i}.{name}"]  # noqa: E731
        n_in, n_out, kind = L["in"], L["out"], L["kind"]
        if kind == "dense":
            y = g("W") @ x
        elif kind == "toeplitz":  # y[r] = sum_j v[r - j + n_in - 1] x[j]
            y = np.convolve(g("v"), x, "valid")
        elif kind == "circulant":  # C x is the circular convolution of c and x (zero-padded)
            n = L["n"]
            y = g("d")[:n_out] * np.fft.irfft(np.fft.rfft(g("c")) * np.fft.rfft(x, n), n)[:n_out]
        elif kind == "kama":  # wide: diag(s) P[:n_out] x;  tall: P[:, :n_in] diag(s) x
            s, wide = g("scales"), n_out <= n_in
            b = np.zeros(max(n_in, n_out))
            b[:n_in] = x if wide else s * x
            for (a, c), t in zip(g("planes"), g("angles")):  # G_1 first
                co, si = np.cos(t), np.sin(t)
                b[a], b[c] = co * b[a] - si * b[c], si * b[a] + co * b[c]
            y = s * b[:n_out] if wide else b[:n_out]
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        y = y + g("bias") if L["bias"] else y
        if L["activation"] == "tanh":
            y = np.tanh(y)
        elif L["activation"] == "leaky_relu":
            y = np.where(y < 0, L["slope"] * y, y)
        x = y
    low, high, squash = p["action_low"], p["action_high"], p["spec"]["squash"]
    if squash == "argmax":
        return int(np.argmax(x))
    if squash == "tanh":
        return low + 0.5 * (np.tanh(x) + 1.0) * (high - low)
    return np.clip(x, low, high)


if __name__ == "__main__":
    policy = load_policy(sys.argv[1])
    actions = np.array([act(policy, o) for o in np.atleast_2d(np.load(sys.argv[2]))])
    np.save(sys.argv[3], actions) if len(sys.argv) > 3 else print(actions)
'''


def policy_arrays(run: LoadedRun) -> dict[str, np.ndarray]:
    """Everything the runner needs, as plain arrays plus one JSON string (``spec``)."""
    policy, theta = run.policy, run.theta
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for i, layer in enumerate(policy.layers):
        if layer.kind not in KINDS:
            raise ConfigError(f"export does not know how to write a {layer.kind!r} layer")
        for name in layer.blocks():
            arrays[f"layer{i}.{name}"] = layer.view(theta, name).copy()
        entry = {"kind": layer.kind, "in": layer.in_dim, "out": layer.out_dim,
                 "bias": bool(layer.bias), "activation": layer.activation,
                 "slope": float(layer.slope)}
        if layer.kind == "kama":
            arrays[f"layer{i}.planes"] = np.asarray(layer.planes_array, dtype=np.int64)
        if layer.kind == "circulant":
            entry["n"] = layer.n
        layers.append(entry)
    spec = policy.action
    if spec.discrete:
        squash, low, high = "argmax", np.full(spec.dim, -np.inf), np.full(spec.dim, np.inf)
    else:
        squash = policy.squash
        low = np.full(spec.dim, -np.inf) if spec.low is None else spec.low
        high = np.full(spec.dim, np.inf) if spec.high is None else spec.high
    meta = {"format": FORMAT, "arch": policy.arch, "env": run.config.env.id,
            "env_kwargs": dict(run.config.env.kwargs),
            "run_dir": str(run.run_dir), "checkpoint": run.name, "iteration": run.iteration,
            "obs_dim": policy.obs_dim, "act_dim": spec.dim, "squash": squash, "layers": layers}
    arrays.update(obs_mean=np.asarray(run.obs_mean, dtype=np.float64),
                  obs_std=np.asarray(run.obs_std, dtype=np.float64),
                  action_low=np.asarray(low, dtype=np.float64),
                  action_high=np.asarray(high, dtype=np.float64),
                  spec=np.array(json.dumps(meta)))
    return arrays


def export(run: LoadedRun, out: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write OUT (.npz) and policy_runner.py beside it; refuses to replace files unless
    overwrite. Returns (npz path, runner path)."""
    out = Path(out)
    if out.suffix != ".npz":
        raise ConfigError(f"the exported policy must be an .npz file, got {out}")
    runner = out.with_name(RUNNER_NAME)
    if out.is_dir():
        raise ConfigError(f"{out} is a directory")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; use --overwrite to replace it")
    if runner.is_dir():
        raise ConfigError(f"{runner} is a directory")
    if runner.exists() and runner.read_text() != STANDALONE_SOURCE and not overwrite:
        raise ConfigError(f"{runner} already exists with other content; use --overwrite")
    arrays = policy_arrays(run)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    # Names the file in the way ("x is not a directory"), where mkdir would raise a bare
    # FileExistsError about it.
    check_output_dir(out.parent)
    for path, data in ((out, buf.getvalue()), (runner, STANDALONE_SOURCE.encode())):
        tmp = path.with_name(f".{path.name}.tmp")
        with writing(path, tmp):  # a full disk: the error names the file, no partial is left
            tmp.write_bytes(data)
            os.replace(tmp, path)
    return out, runner
