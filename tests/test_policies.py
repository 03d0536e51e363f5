"""Numerical truth of the policy architectures: fast forward == dense reference, kernel == twin."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import scipy.linalg

from es_compact.config import PolicyConfig
from es_compact.errors import ConfigError, ParameterError, SpaceError
from es_compact.givens import RandomKama, givens_matrix, product_matrix, random_planes
from es_compact.policies import ARCHITECTURES, ActionSpec, make_policy
from es_compact.policies import kernels as K
from es_compact.policies.circulant import CirculantLayer
from es_compact.policies.givens import GivensLayer
from es_compact.policies.spec import Policy
from es_compact.policies.toeplitz import ToeplitzLayer

SHAPES = [(17, 6, 64), (5, 11, 7), (8, 8, 8), (3, 1, 4), (30, 2, 9)]


def random_theta(policy, seed):
    rng = np.random.default_rng(seed)
    return policy.init(rng) + 0.3 * rng.standard_normal(policy.num_params)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("obs,act,hidden", SHAPES)
def test_forward_equals_dense_reference(arch, obs, act, hidden):
    cfg = PolicyConfig(arch=arch, hidden=hidden, rotations=(13,), depth=5, nonlin_every=2)
    policy = make_policy(cfg, obs, act, seed=3)
    theta = random_theta(policy, 4)
    X = np.random.default_rng(5).standard_normal((6, obs))
    mean, std = X.mean(0), X.std(0) + 0.5
    fast = policy.forward(theta, X, mean, std)
    slow = policy.reference_forward(theta, X, mean, std)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)
    # one observation at a time gives the same as the batch
    np.testing.assert_allclose(policy.forward(theta, X[2], mean, std), fast[2], atol=1e-12)
    # to_dense has one (out, in) matrix per layer chaining obs -> act
    dense = policy.to_dense(theta)
    assert dense[0].W.shape[1] == obs and dense[-1].W.shape[0] == act


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_views_tile_theta(arch):
    policy = make_policy(PolicyConfig(arch=arch, hidden=9, rotations=(7,)), 5, 3, seed=0)
    covered = np.zeros(policy.num_params, dtype=int)
    for layer in policy.blocks():
        for block in layer["blocks"].values():
            size = int(np.prod(block["shape"]))
            covered[block["offset"] : block["offset"] + size] += 1
    assert (covered == 1).all()


def test_views_are_views_not_copies():
    policy = make_policy(PolicyConfig(arch="kama", hidden=8, rotations=(5,)), 4, 2, seed=0)
    theta = np.zeros(policy.num_params)
    policy.layers[0].view(theta, "angles")[:] = 1.5
    assert theta[:5].tolist() == [1.5] * 5


def test_box_squash_clip_and_tanh_and_discrete():
    rng = np.random.default_rng(0)
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 3.0])
    box = ActionSpec(dim=2, low=low, high=high)
    X = 10 * rng.standard_normal((50, 4))
    for squash in ("clip", "tanh"):
        policy = make_policy(PolicyConfig(arch="dense", hidden=5, squash=squash), 4, box)
        theta = random_theta(policy, 1)
        A = policy.forward(theta, X)
        assert (A >= low).all() and (A <= high).all()
        np.testing.assert_allclose(A, policy.reference_forward(theta, X), atol=1e-10)
    disc = ActionSpec(dim=3, discrete=True)
    policy = make_policy(PolicyConfig(arch="kama", hidden=5, rotations=(9,)), 4, disc)
    theta = random_theta(policy, 2)
    a = policy.forward(theta, X[0])
    assert isinstance(a, int) and a == policy.reference_forward(theta, X[0])
    np.testing.assert_array_equal(policy.forward(theta, X), policy.reference_forward(theta, X))


def test_spaces_from_gymnasium():
    import gymnasium.spaces as S

    policy = make_policy(PolicyConfig(arch="linear"), S.Box(-1, 1, (3, 2)), S.Discrete(4))
    assert policy.obs_dim == 6 and policy.action.discrete and policy.num_params == 24
    with pytest.raises(SpaceError, match="action space"):
        make_policy(PolicyConfig(arch="linear"), S.Box(-1, 1, (3,)), S.MultiDiscrete([2, 2]))
    with pytest.raises(SpaceError, match="observation space"):
        make_policy(PolicyConfig(arch="linear"), S.Discrete(3), S.Discrete(2))


# Kernels against their NumPy twins ------------------------------------------------------------


@pytest.mark.parametrize("nin,nout", [(7, 3), (3, 7), (5, 5), (1, 4)])
def test_matvec_kernels_equal_twins(nin, nout):
    rng = np.random.default_rng(nin * 10 + nout)
    x = rng.standard_normal(nin)
    y = np.empty(nout)
    W = rng.standard_normal(nin * nout)
    K.dense_matvec(W, nin, nout, x, y)
    np.testing.assert_allclose(y, ref.dense_matvec(W, nin, nout, x), atol=1e-12)
    vr = rng.standard_normal(nin + nout - 1)
    K.toeplitz_matvec(vr, nin, nout, x, y)
    np.testing.assert_allclose(y, ref.toeplitz_matvec(vr, nin, nout, x), atol=1e-12)


def test_givens_kernel_equals_twin():
    rng = np.random.default_rng(0)
    planes = random_planes(9, 40, rng).ravel()
    cs = rng.standard_normal(80)
    buf = rng.standard_normal(9)
    expect = ref.givens_apply(cs, planes, buf)
    K.givens_apply(cs, planes.astype(np.uint64), buf)
    np.testing.assert_allclose(buf, expect, atol=1e-12)


@pytest.mark.parametrize("n,nin,nout", [(8, 8, 8), (9, 4, 9), (16, 16, 3), (300, 17, 300)])
@pytest.mark.parametrize("fft", [False, True])
def test_circulant_layer_equals_scipy(n, nin, nout, fft):
    rng = np.random.default_rng(n)
    layer = CirculantLayer(in_dim=nin, out_dim=nout, offset=0, n=n, use_fft=fft)
    policy = Policy("dcnn", [layer], nin, ActionSpec(dim=nout, low=np.full(nout, -np.inf),
                                                     high=np.full(nout, np.inf)))
    theta = rng.standard_normal(policy.num_params)
    x = rng.standard_normal(nin)
    c, d = theta[:n], theta[n : 2 * n]
    xp = np.zeros(n)
    xp[:nin] = x
    expect = (d * (scipy.linalg.circulant(c) @ xp))[:nout]
    np.testing.assert_allclose(policy.forward(theta, x), expect, atol=1e-10)
    np.testing.assert_allclose(expect, ref.circulant(c, d, n, nin, nout, x), atol=1e-10)


@pytest.mark.parametrize("m,n", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_toeplitz_layer_equals_scipy(m, n):
    rng = np.random.default_rng(m + 7 * n)
    layer = ToeplitzLayer(in_dim=n, out_dim=m, offset=0)
    v = rng.standard_normal(layer.weight_size)
    T = scipy.linalg.toeplitz(c=v[n - 1 :], r=v[n - 1 :: -1])
    np.testing.assert_array_equal(layer.weight(v), T)
    policy = Policy("toeplitz", [layer], n,
                    ActionSpec(dim=m, low=np.full(m, -np.inf), high=np.full(m, np.inf)))
    x = rng.standard_normal(n)
    np.testing.assert_allclose(policy.forward(v, x), T @ x, atol=1e-12)


# KAMA: the paper's identities -----------------------------------------------------------------


def test_givens_factor_is_matrix_exponential_of_skew_basis():
    rng = np.random.default_rng(1)
    d = 6
    for _ in range(10):
        i, j = sorted(rng.choice(d, 2, replace=False))
        angle = rng.uniform(0, 2 * np.pi)
        A = np.zeros((d, d))
        A[i, j], A[j, i] = 1.0, -1.0
        np.testing.assert_allclose(givens_matrix(d, i, j, angle),
                                   scipy.linalg.expm(-angle * A), atol=1e-12)


def test_product_order_and_orthogonality():
    rng = np.random.default_rng(2)
    d, k = 7, 30
    planes = random_planes(d, k, rng)
    angles = rng.uniform(0, 2 * np.pi, k)
    P = product_matrix(d, planes, angles)
    expect = np.eye(d)
    for (i, j), a in zip(planes, angles, strict=True):
        expect = givens_matrix(d, i, j, a) @ expect  # G_1 applied first
    np.testing.assert_allclose(P, expect, atol=1e-12)
    np.testing.assert_allclose(P.T @ P, np.eye(d), atol=1e-12)
    assert np.linalg.det(P) == pytest.approx(1.0, abs=1e-12)


def test_square_kama_layer_without_truncation_is_a_rotation():
    rng = np.random.default_rng(3)
    layer = GivensLayer.build(in_dim=12, out_dim=12, offset=0, rotations=80, rng=rng)
    theta = np.zeros(layer.size)
    layer.init(theta, rng)  # scales start at one
    M = layer.weight(theta)
    np.testing.assert_allclose(M.T @ M, np.eye(12), atol=1e-12)
    assert np.linalg.det(M) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("d1,d2", [(3, 8), (8, 3)])
def test_kama_truncation_and_scaling(d1, d2):
    rng = np.random.default_rng(4)
    layer = GivensLayer.build(in_dim=d2, out_dim=d1, offset=0, rotations=25, rng=rng)
    theta = rng.standard_normal(layer.size)
    P = product_matrix(max(d1, d2), layer.planes_array, layer.view(theta, "angles"))
    s = layer.view(theta, "scales")
    expect = np.diag(s) @ P[:d1, :] if d1 <= d2 else P[:, :d2] @ np.diag(s)
    np.testing.assert_allclose(layer.weight(theta), expect, atol=1e-12)
    assert s.shape == (min(d1, d2),)


def test_planes_are_uniform_pairs_and_fixed_by_seed():
    rng = np.random.default_rng(5)
    d = 5
    planes = random_planes(d, 20000, rng)
    assert (planes[:, 0] < planes[:, 1]).all()
    idx = planes[:, 0] * d + planes[:, 1]
    counts = np.bincount(idx, minlength=d * d)[[i * d + j for i in range(d)
                                                 for j in range(i + 1, d)]]
    expected = 20000 / 10
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)
    cfg = PolicyConfig(arch="kama", hidden=8, rotations=(10,))
    a, b, c = (make_policy(cfg, 4, 2, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.ip, b.ip)
    assert not np.array_equal(a.ip, c.ip)


def test_rotations_per_matrix():
    policy = make_policy(PolicyConfig(arch="kama", hidden=8, rotations=(3, 4, 5)), 4, 2)
    assert [layer.rotations for layer in policy.layers] == [3, 4, 5]
    with pytest.raises(ConfigError, match="one per matrix"):
        make_policy(PolicyConfig(arch="kama", hidden=8, rotations=(3, 4)), 4, 2)


def test_random_kama_variant():
    rng = np.random.default_rng(6)
    for out_dim, in_dim in [(5, 9), (9, 5), (6, 6)]:
        rk = RandomKama.draw(out_dim, in_dim, 40, rng, scales="chi")
        assert ((rk.angles >= 0) & (rk.angles < 2 * np.pi)).all()
        X = rng.standard_normal((7, in_dim))
        np.testing.assert_allclose(rk.apply(X), X @ rk.matrix().T, atol=1e-12)
    rk = RandomKama.draw(4, 4, 10, rng, scales=lambda r, m: np.full(m, 2.0))
    np.testing.assert_allclose(np.linalg.svd(rk.matrix())[1], 2.0)
    with pytest.raises(ConfigError, match="scale distribution"):
        RandomKama.draw(4, 4, 10, rng, scales="poisson")


# DCNN initialisation (Araujo et al., Proposition 4) --------------------------------------------


@pytest.mark.parametrize("depth", [1, 8, 32])
def test_dcnn_init_output_covariance(depth):
    """With ReLU after every layer but the last, σ' = 0, c ~ N(0, 2/n), d ~ ±1, the output
    covariance over initialisations is (2/n)·‖x‖²·I whatever the depth."""
    n, samples = 64, 4000
    cfg = PolicyConfig(arch="dcnn", hidden=n, depth=depth, nonlin_every=1, slope=0.0,
                       bias_std=0.0)
    policy = make_policy(cfg, n, n, seed=0)
    rng = np.random.default_rng(depth)
    x = rng.standard_normal(n)
    Y = np.array([policy.forward(policy.init(rng), x) for _ in range(samples)])
    target = 2.0 / n * (x @ x)
    diag = (Y**2).mean(axis=1)                      # one pooled diagonal estimate per sample
    se = diag.std() / np.sqrt(samples)
    assert abs(diag.mean() - target) < 4 * se, (diag.mean(), target, se)
    assert abs(diag.mean() - target) < 0.2 * target
    off = (Y[:, :-1] * Y[:, 1:]).mean(axis=1)       # neighbouring off-diagonal entries
    assert abs(off.mean()) < 4 * off.std() / np.sqrt(samples)


@pytest.mark.parametrize("depth,every,slope", [(1, 1, 0.0), (4, 3, 0.5), (8, 1, 0.0),
                                               (8, 2, 0.25), (8, 3, 0.5)])
def test_dcnn_scaled_init_keeps_the_input_scale(depth, every, slope):
    """dcnn_init='scaled', σ' = 0: the output's mean second moment over initialisations is the
    input's mean x_j² (17 entries, zero-padded to n = 64) at any depth and placement; the
    paper's c ~ N(0, 2/n) instead doubles it for every linear layer."""
    samples = 3000
    x = np.random.default_rng(depth * 10 + every).standard_normal(17)
    target = x @ x / x.size
    found = {}
    for init in ("scaled", "paper"):
        cfg = PolicyConfig(arch="dcnn", hidden=64, depth=depth, nonlin_every=every, slope=slope,
                           bias_std=0.0, dcnn_init=init)
        policy = make_policy(cfg, 17, 6, seed=0)
        rng = np.random.default_rng(depth)
        Y = np.array([policy.forward(policy.init(rng), x) for _ in range(samples)])
        second = (Y**2).mean(axis=1)
        found[init] = (second.mean(), second.std() / np.sqrt(samples))
    mean, se = found["scaled"]
    assert abs(mean - target) < 4 * se and abs(mean - target) < 0.25 * target, (mean, target)
    linear = sum(1 for i in range(depth - 1) if (i + 1) % every)  # identity hidden layers
    if linear:  # paper, L = 4, k = 3 (the rl experiment's dcnn): 2.6x; L = 8, k = 3: 27x
        assert found["paper"][0] > 2 ** (linear - 1) * target, found


# Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change,match", [
    ({"arch": "resnet"}, "unknown architecture"),
    ({"hidden": 0}, "hidden must be a positive"),
    ({"depth": -1}, "depth must be a positive"),
    ({"rotations": (0,)}, "rotations must be positive"),
    ({"slope": 2.0}, "slope"),
    ({"dcnn_init": "xavier"}, "dcnn_init must be one of"),
])
def test_bad_config(change, match):
    with pytest.raises(ConfigError, match=match):
        make_policy(PolicyConfig(**change), 4, 2)


def test_bad_theta():
    policy = make_policy(PolicyConfig(arch="dense", hidden=4), 3, 2)
    with pytest.raises(ParameterError, match=f"vector of {policy.num_params} parameters"):
        policy.forward(np.zeros(policy.num_params + 1), np.zeros(3))
    theta = np.zeros(policy.num_params)
    theta[5] = np.nan
    with pytest.raises(ParameterError, match="non-finite entries \\(first at index 5\\)"):
        policy.forward(theta, np.zeros(3))
    with pytest.raises(ParameterError, match="observation must have 3 entries"):
        policy.forward(np.zeros(policy.num_params), np.zeros(4))


def test_kernel_tanh_within_three_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([10 ** rng.uniform(-300, 1.5, 10**6), rng.uniform(-3, 3, 10**6),
                        rng.normal(0, 0.3, 10**6),
                        [0.0, 19.99, 20.0, 20.01, 700.0, 1e300, np.inf, 0.34657359, 0.3466]])
    x = np.concatenate([x, -x])
    got = x.copy()
    K.tanh_rows(got, got.size)
    ref = np.tanh(x)
    assert (np.abs(got - ref) <= 3 * np.spacing(np.abs(ref))).all()
    assert (np.signbit(got) == np.signbit(ref)).all()  # tanh(-0.0) is -0.0
    # the scalar form (used for tanh-squashed actions) is the same function
    assert np.array_equal([K.tanh(v) for v in x[::1000]], got[::1000])
    mixed = np.array([np.nan, 1.0])  # a NaN stays NaN and leaves its neighbours alone
    K.tanh_rows(mixed, 2)
    assert np.isnan(mixed[0]) and abs(mixed[1] - np.tanh(1.0)) <= 3 * np.spacing(np.tanh(1.0))


