"""CMA-ES and separable CMA-ES: a first step by hand, one update after another equal to pycma's
purecma on the same samples (failed pairs and eigendecompositions included), blackboxes solved,
exact resume, and refusals (too few pairs, a covariance that would not fit in memory)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cma.more_algorithms import purecma

from es_compact.config import StrategyConfig
from es_compact.errors import ConfigError, ESCompactError
from es_compact.exploration import Directions, Plan, perturb
from es_compact.noise import NoiseTable
from es_compact.strategies import STRATEGIES, make_strategy
from es_compact.strategies import cmaes as cmaes_module
from es_compact.strategies.ask_tell import AskTell
from es_compact.strategies.cmaes import CMAES, constants, select

TABLE = NoiseTable(np.array([1, 0, 0, 1, 5, 5], dtype=np.float32))
PLAN = Plan(iteration=0, count=2, offsets=np.array([0, 2]))  # δ0 = (1, 0), δ1 = (0, 1)
RETURNS = np.array([[3.0, 1.0], [2.0, 2.0]])
THETA = np.array([0.5, -0.25])
RTOL = 1e-10


def strategy(algo, step_size=0.5, noise_std=0.3):
    cfg = StrategyConfig(algo=algo, directions=2, top=2, step_size=step_size,
                         noise_std=noise_std)
    return make_strategy(cfg, Directions("gaussian", 0, 2, TABLE))


def rosenbrock(X):
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2, axis=1)


def sphere(X):
    return np.sum(X**2, axis=1)


# By hand ------------------------------------------------------------------------------------

def hand_constants(separable):
    """d = 2, λ = 4, μ = 2, written out."""
    w = np.array([math.log(2.5), math.log(1.25)]) / math.log(3.125)  # ln(2.5) - ln(1), - ln(2)
    mueff = 1 / (w[0] ** 2 + w[1] ** 2)  # Σ w = 1
    cc = (4 + mueff / 2) / (2 + 4 + 2 * mueff / 2)
    cs = (mueff + 2) / (2 + mueff + 5)
    c1 = 2 / (3.3**2 + mueff)
    cmu = 2 * (mueff - 2 + 1 / mueff) / (4**2 + mueff)
    if separable:  # (d + 2) / 3 = 4 / 3
        c1, cmu = c1 * 4 / 3, cmu * 4 / 3
    damps = 2 * mueff / 4 + 0.3 + cs
    return w, mueff, cc, cs, c1, min(1 - c1, cmu), damps


@pytest.mark.parametrize("algo", ["cmaes", "sepcmaes"])
def test_first_step_by_hand(algo):
    w, mueff, cc, cs, c1, cmu, damps = hand_constants(algo == "sepcmaes")
    s = strategy(algo)
    plan = s.with_vectors(PLAN) if algo == "cmaes" else PLAN
    np.testing.assert_array_equal(s.directions.matrix(plan, [0, 1]), np.eye(2))  # C = I: y = z
    new = s.tell(THETA, plan, RETURNS)
    # Fitness 3 (δ0, +), 2 (δ1, +), 2 (δ1, -), 1 (δ0, -): the tie goes to the earlier row, so
    # y_1:λ = +δ0, y_2:λ = +δ1 and y_w = (w1, w2).
    y_w = w
    np.testing.assert_allclose(new, THETA + 0.5 * 0.3 * y_w, rtol=1e-12)  # m + c_m σ y_w
    # C = I: C^(-1/2) y_w = y_w, so ‖p_σ‖² = c_σ (2 - c_σ) μ_eff Σ w² = c_σ (2 - c_σ)
    ps = math.sqrt(cs * (2 - cs) * mueff) * y_w
    np.testing.assert_allclose(s.ps, ps, rtol=1e-12)
    # h_σ: ‖p_σ‖²/2 / (1 - (1 - c_σ)^(2·4/4)) = 1/2 < 2 + 4/3, so h_σ = 1 and c_1a = c_1
    pc = math.sqrt(cc * (2 - cc) * mueff) * y_w
    np.testing.assert_allclose(s.pc, pc, rtol=1e-12)
    # C <- (1 - c_1 - c_μ) I + c_1 p_c p_cᵀ + c_μ (w1 δ0 δ0ᵀ + w2 δ1 δ1ᵀ)
    C = (1 - c1 - cmu) * np.eye(2) + c1 * np.outer(pc, pc) + cmu * np.diag(w)
    # σ <- σ exp(min(1, c_σ/d_σ (‖p_σ‖²/2 - 1)/2))
    sigma = 0.3 * math.exp(min(1, cs / damps * (cs * (2 - cs) / 2 - 1) / 2))
    assert s.sigma == pytest.approx(sigma, rel=1e-12)
    arrays, meta = s.state()
    assert meta["cma_counteval"] == 4
    if algo == "cmaes":
        np.testing.assert_allclose(arrays["cma_C"], C, rtol=1e-12)
        # lazy gap 0.5 λ / ((c_1 + c_μ) d) = 1 / (c_1 + c_μ) ≈ 5.2 > 4: no decomposition yet
        assert meta["cma_eigen_eval"] == 0 and 4 < 1 / (c1 + cmu)
        np.testing.assert_array_equal(arrays["cma_B"], np.eye(2))
        assert s.noise() == (s.sigma, None)
    else:
        np.testing.assert_allclose(arrays["cma_diagC"], np.diag(C), rtol=1e-12)
        nu, scale = s.noise()
        assert nu == s.sigma
        np.testing.assert_allclose(scale, np.sqrt(np.diag(C)), rtol=1e-12)


@pytest.mark.parametrize("d,lam", [(2, 4), (8, 10), (30, 64), (815, 64)])
def test_constants_are_purecmas(d, lam):
    ours, theirs = constants(d, lam), purecma.CMAESParameters(d, lam)
    np.testing.assert_array_equal(ours.weights, theirs.weights[: theirs.mu])
    assert ours.mu == theirs.mu and not any(theirs.weights[theirs.mu:])
    for name in ("mueff", "cc", "cs", "c1", "cmu", "damps", "lazy_gap_evals"):
        assert getattr(ours, name) == getattr(theirs, name), name


# Against purecma ----------------------------------------------------------------------------

def failed_pairs(it, n):
    """Iteration 3: one pair fails (4 winners < μ = 5: their weights renormalised); iteration
    6: three fail (2 winners, renormalised). (Iteration 8 has h_σ = 0.)"""
    return {3: [2], 6: [0, 2, 4]}.get(it, [])


def compare_with_purecma(algo, d=8, n=5, iterations=10, seed=3):
    """Our ask's candidates, told to both: purecma minimises the negated fitness; a failed pair
    is NaN for us (dropped) and +∞ for purecma (ranked last), and so is each pair's loser
    (pairwise selection: purecma's μ = λ/2 best are then exactly the pairs' winners)."""
    x0 = np.linspace(-1, 1, d)
    es = AskTell(algo, x0, seed=seed, popsize=2 * n, sigma=0.3)
    ref = purecma.CMAES(list(x0), 0.3, popsize=2 * n, randn=lambda mu, s: 0.0)
    par = ref.params
    if algo == "sepcmaes":
        # Ros and Hansen's rates; C restricted to its diagonal, decomposed every iteration
        par.c1 = par.c1 * (d + 2) / 3
        par.cmu = min(1 - par.c1, par.cmu * (d + 2) / 3)
        par.lazy_gap_evals = 0
    s, refreshes = es.strategy, 0
    for it in range(iterations):
        X = es.ask()
        ref.ask()  # its lazy eigendecomposition, as its own loop would (samples unused)
        if algo == "cmaes":
            assert s.eigen_eval == ref.C.updated_eval
            refreshes += it > 0 and s.eigen_eval == 2 * n * it
            np.testing.assert_allclose(np.sort(s.D**2), np.sort(ref.C.eigenvalues), rtol=RTOL)
        f = rosenbrock(X)
        mine, theirs = -f, f.copy()
        for k in range(n):  # the loser of each pair (the - member on a tie)
            theirs[2 * k + int(f[2 * k + 1] >= f[2 * k])] = np.inf
        fail = failed_pairs(it, n)
        for k in fail:
            mine[2 * k: 2 * k + 2] = np.nan
            theirs[2 * k: 2 * k + 2] = np.inf
        weights, mueff = par.weights, par.mueff
        if n - len(fail) < par.mu:  # our renormalised weights, for this tell only
            w = np.zeros(2 * n)
            w[: n - len(fail)] = weights[: n - len(fail)]
            par.weights, par.mueff = list(w / w.sum()), w.sum() ** 2 / (w @ w)
        if it == 8:  # a long p_σ in both, so that h_σ = 0 (no rank-one term, c_1a < c_1)
            arrays, meta = s.state()
            s.load({**arrays, "cma_ps": np.full(d, 4.0)}, meta)
            ref.ps = [4.0] * d
        ref.tell([list(x) for x in X], list(theirs))
        par.weights, par.mueff = weights, mueff
        es.tell(mine)
        if it == 8:
            bias = 1 - (1 - par.cs) ** (2 * ref.counteval / par.lam)
            assert s.ps @ s.ps / d / bias >= 2 + 4 / (d + 1)
        if algo == "sepcmaes":
            for i in range(d):
                ref.C[i][:i] = [0] * i
                ref.C[i][i + 1:] = [0] * (d - i - 1)
        np.testing.assert_allclose(es.mean, ref.xmean, rtol=RTOL, atol=1e-14)
        assert s.sigma == pytest.approx(ref.sigma, rel=RTOL)
        np.testing.assert_allclose(s.pc, ref.pc, rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(s.ps, ref.ps, rtol=RTOL, atol=1e-14)
        C = s.C if algo == "cmaes" else np.diag(s.diag_c)
        np.testing.assert_allclose(C, np.array(ref.C, dtype=float), rtol=RTOL, atol=1e-14)
        assert s.counteval == ref.counteval
    return refreshes


def test_cmaes_updates_equal_purecmas_on_the_same_samples():
    """Ten iterations in 8 d with λ = 10: m, σ, C, p_c, p_σ and the eigenvalues agree to
    1e-10, the decompositions happen at the same evaluations (purecma's lazy gap is 14.2
    evaluations, so every second iteration), a failed pair, a renormalised iteration and an
    h_σ = 0 iteration included."""
    assert compare_with_purecma("cmaes") >= 3


def test_sepcmaes_updates_equal_purecmas_restricted_to_the_diagonal():
    """purecma with c_1, c_μ times (d + 2)/3, decomposing every iteration and its C set to its
    diagonal after every tell is the separable update: diag C, m, σ, p_c, p_σ agree to 1e-10."""
    compare_with_purecma("sepcmaes")


def test_failed_candidates_never_get_weight():
    c = constants(8, 6)  # μ = 3
    r = np.array([[1.0, 5.0], [3.0, 3.0], [0.0, 2.0], [4.0, -1.0]])  # 4 valid pairs
    # pairwise: the winners are 5 (pair 0, -), 3 (pair 1, + on the tie), 2 (2, -), 4 (3, +)
    pair, sign, w = select(r, c.weights)
    assert pair.tolist() == [0, 3, 1] and sign.tolist() == [-1, 1, 1]
    np.testing.assert_array_equal(w, c.weights)
    pair, sign, w = select(r[:2], c.weights)  # 2 pairs < μ: ranks 1..2's weights, renormalised
    assert pair.tolist() == [0, 1] and sign.tolist() == [-1, 1]
    np.testing.assert_allclose(w, c.weights[:2] / c.weights[:2].sum(), rtol=1e-15)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    # Through AskTell: a failed pair's direction takes no part in the step
    es = AskTell("cmaes", np.zeros(4), seed=1, popsize=8, sigma=1.0)
    X = es.ask()
    f = -sphere(X)
    f[[0, 1]] = np.nan, 0.0  # pair 0 failed (one NaN drops the pair)
    es.tell(f)
    dirs = es.strategy._z(es.strategy.ask(0), np.arange(4))
    coef, *_ = np.linalg.lstsq(dirs.T, es.mean, rcond=None)
    assert coef[0] == pytest.approx(0.0, abs=1e-12) and np.abs(coef[1:]).max() > 0.1


# Blackboxes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("algo,d,f,x0,iterations", [
    ("cmaes", 20, sphere, 1.0, 300),
    ("sepcmaes", 30, sphere, 1.0, 350),
    ("cmaes", 10, rosenbrock, 0.0, 800),
])
def test_solves_a_blackbox(algo, d, f, x0, iterations):
    """f(mean) < 1e-10 within the stated iterations (default λ, σ0 = 0.5, seed 0); seen at
    245 (sphere 20 d), 273 (sep, sphere 30 d) and 570 (Rosenbrock 10 d from 0)."""
    es = AskTell(algo, np.full(d, x0), seed=0, sigma=0.5)
    while es.iteration < iterations and f(es.mean[None])[0] >= 1e-10:
        es.tell(-f(es.ask()))
    assert f(es.mean[None])[0] < 1e-10, es.iteration


# Resume -------------------------------------------------------------------------------------

def final(es):
    arrays, meta = es.state()
    return arrays, meta["strategy"]


def assert_same(a, b):
    assert sorted(a[0]) == sorted(b[0]) and a[1] == b[1]
    for k in a[0]:
        assert np.array_equal(a[0][k], b[0][k]), k


@pytest.mark.parametrize("algo", ["cmaes", "sepcmaes"])
def test_resume_through_save_and_load_is_bitwise(tmp_path, algo):
    def start():
        return AskTell(algo, np.full(6, 0.5), seed=2, popsize=6, sigma=0.4)

    def run(es, k):
        for _ in range(k):
            es.tell(-rosenbrock(es.ask()))
        return es

    whole = run(start(), 12)  # λ = 6 in 6 d: a decomposition every ~3 iterations
    es = run(start(), 5)
    es.save(tmp_path)
    split = run(AskTell.load(tmp_path), 7)
    assert split.iteration == 12
    assert_same(final(whole), final(split))
    if algo == "cmaes":
        assert whole.strategy.eigen_eval >= 6 * 9


@pytest.mark.parametrize("algo", ["cmaes", "sepcmaes"])
def test_resume_through_state_and_load_as_the_trainer_does(algo):
    """The trainer's sequence: load(state) before each ask, state() after each tell, through a
    JSON round trip and a copy; a fresh strategy object takes over at iteration 5."""
    d, n = 5, 3

    def fresh():
        cfg = StrategyConfig(algo=algo, directions=n, top=n, step_size=1.0, noise_std=0.4)
        return make_strategy(cfg, Directions("gaussian", 4, d, NoiseTable.build(4, 10_000)))

    def run(switch):
        s, theta = fresh(), np.full(d, 0.3)
        arrays, meta = s.state()
        for it in range(10):
            if it == switch:
                s = fresh()
            s.load(arrays, meta)
            plan = s.ask(it)
            nu, scale = s.noise()
            X = np.array([perturb(theta, sign, nu, scale, s.directions.get(plan, k))
                          for k in range(n) for sign in (1.0, -1.0)])
            theta = s.tell(theta, plan, -rosenbrock(X).reshape(n, 2))
            arrays, meta = s.state()
            arrays = {k: np.array(v) for k, v in arrays.items()}
            meta = json.loads(json.dumps(meta))
        return {"theta": theta, **arrays}, meta

    assert_same(run(None), run(5))


@pytest.mark.parametrize("algo", ["cmaes", "sepcmaes"])
def test_state_arrays_are_never_written_after_they_are_handed_out(algo):
    es = AskTell(algo, np.zeros(4), seed=0, popsize=4, sigma=0.5)
    for _ in range(8):
        arrays, _ = es.strategy.state()
        before = {k: v.copy() for k, v in arrays.items()}
        es.tell(-sphere(es.ask()))
        for k, v in arrays.items():
            assert np.array_equal(v, before[k]), k


# Refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["cmaes", "sepcmaes"])
def test_too_few_pairs_is_a_one_line_error(algo):
    with pytest.raises(ConfigError) as exc:
        AskTell(algo, np.zeros(3), popsize=2)
    msg = str(exc.value)
    assert "\n" not in msg and f"{algo} needs at least 2 antithetic pairs" in msg
    assert STRATEGIES[algo].min_directions == 2


def test_a_covariance_that_cannot_fit_is_refused_in_one_line(monkeypatch):
    cfg = StrategyConfig(algo="cmaes", directions=32, top=32, step_size=1.0, noise_std=0.1)
    with pytest.raises(ConfigError) as exc:  # d = 10^6: 48 TB; nothing is allocated
        CMAES.check_dim(cfg, 10**6)
    msg = str(exc.value)
    assert "\n" not in msg and "44703.5 GiB" in msg and "--algo sepcmaes" in msg
    STRATEGIES["sepcmaes"].check_dim(cfg, 10**6)  # linear memory: accepted
    monkeypatch.setattr(cmaes_module, "available_memory", lambda: 2**30)
    CMAES.check_dim(cfg, 3000)  # 0.40 GiB <= half of 1 GiB
    with pytest.raises(ConfigError, match=r"about 0\.6 GiB .* half the 1\.0 GiB available"):
        CMAES.check_dim(cfg, 3600)
    monkeypatch.setattr(cmaes_module, "available_memory", lambda: None)
    CMAES.check_dim(cfg, 10**6)  # memory unknown: no refusal


def test_available_memory_falls_back_to_sysconf(monkeypatch):
    from es_compact import memory as memory_module

    assert memory_module.available_memory() > 0

    def no_meminfo(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(memory_module, "open", no_meminfo, raising=False)
    import os
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert abs(memory_module.available_memory() - pages) < 0.1 * pages


def test_a_covariance_no_longer_positive_definite_stops_with_one_line():
    s = strategy("cmaes")
    arrays, meta = s.state()
    s.load({**arrays, "cma_C": np.diag([1.0, -1.0])}, {**meta, "cma_counteval": 100})
    with pytest.raises(ESCompactError, match="no longer positive definite") as exc:
        s.tell(THETA, s.with_vectors(PLAN), RETURNS)
    assert "\n" not in str(exc.value)
