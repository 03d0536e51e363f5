"""Givens coordinate descent on SO(d) (es_compact.so_d) and its benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import special_ortho_group

from es_compact.errors import ConfigError
from es_compact.experiments import givens as gx
from es_compact.givens import givens_matrix, product_matrix
from es_compact.policies.givens import GivensLayer
from es_compact.so_d import (
    DenseScorer,
    ObjectiveError,
    QuadraticObjective,
    all_pairs,
    minimize,
    riemannian_slopes,
    rotate_columns,
    steps_to_planes,
    theorem3_margins,
    trig_argmin,
    trig_argmin_reference,
    trig_eval,
    trig_fit,
    trig_nodes,
)


def mixed_objective(d: int, seed: int) -> QuadraticObjective:
    """Linear plus Brockett part: a degree-2 trigonometric polynomial with both harmonics."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((d, d))
    return QuadraticObjective(0.5 * (G + G.T), rng.standard_normal(d),
                              rng.standard_normal((d, d)), 1.5)


def random_rotation(d: int, seed: int) -> np.ndarray:
    return special_ortho_group.rvs(d, random_state=seed)


# ---------------------------------------------------------------- trigonometric polynomials


@pytest.mark.parametrize("p", [1, 2, 3])
def test_fit_from_2p_plus_1_values_is_exact(p):
    rng = np.random.default_rng(p)
    a, b = rng.standard_normal((5, p + 1)), rng.standard_normal((5, p + 1))
    b[:, 0] = 0.0
    vals = trig_eval(a, b, np.broadcast_to(trig_nodes(p), (5, 2 * p + 1)).copy())
    a2, b2 = trig_fit(vals)
    np.testing.assert_allclose(a2, a, atol=1e-13)
    np.testing.assert_allclose(b2, b, atol=1e-13)


def test_argmin_hand_cases():
    # cos Θ: minimum -1 at π; sin 2Θ: minimum -1 at -π/4 (the solution nearest 0);
    # constant: stay at 0
    a = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    t, v = trig_argmin(a, b)
    np.testing.assert_allclose(t, [np.pi, -np.pi / 4, 0.0], atol=1e-15)
    np.testing.assert_allclose(v, [-1.0, -1.0, 3.0], atol=1e-15)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_argmin_kernel_equals_numpy_twin(p):
    rng = np.random.default_rng(10 + p)
    a, b = rng.standard_normal((400, p + 1)), rng.standard_normal((400, p + 1))
    b[:, 0] = 0.0
    if p >= 2:  # single-harmonic, vanishing-top-harmonic and nearly degenerate rows
        a[:50, 1:p] = b[:50, 1:p] = 0.0
        a[50:100, p] = b[50:100, p] = 0.0
        a[100:150, p] *= 1e-9
        b[100:150, p] *= 1e-9
    t, v = trig_argmin(a, b)
    tr, vr = trig_argmin_reference(a, b)
    np.testing.assert_allclose(v, vr, atol=1e-12)
    np.testing.assert_allclose(trig_eval(a, b, t[:, None])[:, 0], v, atol=1e-13)
    # and no point of a fine grid is lower
    grid = np.broadcast_to(np.linspace(-np.pi, np.pi, 2001), (400, 2001)).copy()
    assert np.all(v <= trig_eval(a, b, grid).min(axis=1) + 1e-13)


# ---------------------------------------------------------------- incremental scorer


def test_quadratic_scorer_equals_dense_evaluation():
    d = 7
    obj = mixed_objective(d, 0)
    M = random_rotation(d, 1)
    sc = obj.scorer()
    sc.reset(M)
    I, J = all_pairs(d)
    thetas = np.array([0.0, 0.3, -2.0, 3.1])
    fast = sc.along(I, J, thetas)
    dense = DenseScorer(obj)
    dense.reset(M)
    np.testing.assert_allclose(fast, dense.along(I, J, thetas), rtol=1e-12, atol=1e-12)
    a, b = sc.coefficients(I, J)
    a2, b2 = trig_fit(dense.along(I, J, trig_nodes(2)))
    np.testing.assert_allclose(a, a2, atol=1e-11)
    np.testing.assert_allclose(b, b2, atol=1e-11)
    # incremental updates of MᵀC and MᵀAM agree with a recomputation
    for i, j, t in [(0, 3, 0.7), (2, 6, -1.1), (0, 2, 2.5)]:
        f = sc.apply(i, j, t)
        M = M @ givens_matrix(d, i, j, t)
        assert f == pytest.approx(obj(M), rel=1e-12)
    np.testing.assert_allclose(sc.M, M, atol=1e-14)
    np.testing.assert_allclose(sc.P, M.T @ obj.C, atol=1e-12)
    np.testing.assert_allclose(sc.Q, M.T @ obj.A @ M, atol=1e-12)


def test_rotate_columns_is_right_multiplication():
    M = random_rotation(5, 2)
    X = M.copy()
    rotate_columns(X, 1, 4, 0.9)
    np.testing.assert_allclose(X, M @ givens_matrix(5, 1, 4, 0.9), atol=1e-15)


def test_vectorised_greedy_takes_the_dense_path():
    d = 6
    obj = mixed_objective(d, 3)
    fast = minimize(obj, dim=d, max_steps=25)
    slow = minimize(lambda M: obj(M), dim=d, degree=2, max_steps=25)
    assert [s[:2] for s in fast.steps] == [s[:2] for s in slow.steps]
    np.testing.assert_allclose([s[2] for s in fast.steps], [s[2] for s in slow.steps],
                               atol=1e-9)
    np.testing.assert_allclose(fast.objective, slow.objective, rtol=1e-11)


# ---------------------------------------------------------------- steps as a KAMA layer


def test_hand_computed_step_d2():
    # F(G(0, 1, Θ)) = ⟨C, G⟩ = -2 cos(Θ - φ) for C = -G(0, 1, φ): one step lands on Θ = φ
    phi = 0.7
    res = minimize(QuadraticObjective(np.zeros((2, 2)), np.zeros(2), -givens_matrix(2, 0, 1, phi)),
                   dim=2, max_steps=5)
    assert len(res.steps) == 1
    i, j, t = res.steps[0]
    assert (i, j) == (0, 1)
    assert t == pytest.approx(phi, abs=1e-14)
    assert res.value == pytest.approx(-2.0, abs=1e-14)
    assert res.stop_reason == "gain_tol"


def test_steps_load_as_kama_layer():
    d = 8
    obj = mixed_objective(d, 4)
    res = minimize(obj, dim=d, variant="cyclic", max_steps=200)
    planes, angles = res.planes_angles()
    assert planes.shape == (len(res.steps), 2) and planes.dtype == np.int64
    np.testing.assert_allclose(product_matrix(d, planes, angles), res.M, atol=1e-13)
    layer = GivensLayer(in_dim=d, out_dim=d, offset=0, rotations=len(angles),
                        planes_array=planes)
    theta = np.concatenate([angles, np.ones(d)])
    np.testing.assert_allclose(layer.weight(theta), res.M, atol=1e-13)
    # the order matters: product of the steps left to right, not the reverse
    M = np.eye(d)
    for i, j, t in res.steps:
        M = M @ givens_matrix(d, i, j, t)
    np.testing.assert_allclose(M, res.M, atol=1e-13)
    assert not np.allclose(product_matrix(d, planes[::-1], angles[::-1]), res.M, atol=1e-6)


def test_steps_from_a_rotated_start():
    d = 5
    M0 = random_rotation(d, 5)
    res = minimize(mixed_objective(d, 5), M0=M0, max_steps=30)
    np.testing.assert_allclose(M0 @ product_matrix(d, *steps_to_planes(res.steps)), res.M,
                               atol=1e-13)
    assert steps_to_planes([])[0].shape == (0, 2)


# ---------------------------------------------------------------- benchmarks with known optima


@pytest.mark.parametrize("name", ["procrustes", "brockett"])
def test_greedy_reaches_the_optimum_at_d16(name):
    prob = gx.make_problem(name, 16, seed=0)
    res, _ = gx.solve(prob, "greedy", 20000)
    assert res.stop_reason == "gain_tol"
    assert abs(prob.rel_gap(prob.objective(res.M))) < 1e-6
    assert prob.objective(res.M) >= prob.optimum - 1e-9 * abs(prob.optimum)  # F* is a minimum


def test_known_optima_are_attained():
    # the formulas for F* match the closed-form minimisers
    prob = gx.make_problem("brockett", 6, seed=1)
    lam, V = np.linalg.eigh(prob.objective.A)
    M = V[:, ::-1]
    M[:, 0] *= np.linalg.det(M)
    assert prob.objective(M) == pytest.approx(prob.optimum, rel=1e-12)
    prob = gx.make_problem("procrustes", 6, seed=1)
    U, s, Vt = np.linalg.svd(-0.5 * prob.objective.C)
    M = U @ np.diag([1, 1, 1, 1, 1, np.linalg.det(U @ Vt)]) @ Vt
    assert prob.objective(M) == pytest.approx(prob.optimum, rel=1e-12)


@pytest.mark.parametrize("variant", ["random", "cyclic"])
@pytest.mark.parametrize("name", ["procrustes", "brockett", "target"])
def test_random_and_cyclic_converge_at_d6(name, variant):
    prob = gx.make_problem(name, 6, seed=2)
    res, _ = gx.solve(prob, variant, 100000, seed=3)
    assert res.stop_reason == "gain_tol"
    assert abs(prob.rel_gap(prob.objective(res.M))) < 1e-6


def test_target_error_decreases_with_k():
    prob = gx.make_problem("target", 8, seed=0)
    res, _ = gx.solve(prob, "greedy", 40)
    assert np.all(np.diff(res.objective) <= 1e-12)
    assert res.objective[40] < 0.5 * res.objective[0]


def test_fallback_line_search_without_a_degree():
    # sqrt(1 + ‖M - R‖²) is no trigonometric polynomial; minimum 1 at M = R
    d = 4
    R = random_rotation(d, 6)
    res = minimize(lambda M: np.sqrt(1.0 + np.sum((M - R) ** 2)), M0=random_rotation(d, 7),
                   max_steps=400)
    assert res.value == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_allclose(res.M, R, atol=1e-3)


# ---------------------------------------------------------------- gradient and Theorem 3


def test_slopes_analytic_fit_and_finite_differences_agree():
    d = 6
    obj = mixed_objective(d, 8)
    M = random_rotation(d, 9)
    analytic = riemannian_slopes(obj, M, grad=obj.euclidean_grad)
    fitted = riemannian_slopes(obj, M)
    fd = riemannian_slopes(lambda X: obj(X), M)  # no degree: central differences
    np.testing.assert_allclose(fitted, analytic, atol=1e-10)
    np.testing.assert_allclose(fd, analytic, atol=1e-6)


@pytest.mark.parametrize("name", ["procrustes", "brockett"])
def test_curvature_bound_holds(name):
    obj = gx.make_problem(name, 8, seed=3).objective
    B = obj.curvature_bound()
    sc = obj.scorer()
    I, J = all_pairs(8)
    worst = 0.0
    for s in range(5):
        sc.reset(random_rotation(8, 100 + s))
        a, b = sc.coefficients(I, J)
        grid = np.broadcast_to(np.linspace(-np.pi, np.pi, 64), (len(I), 64)).copy()
        worst = max(worst, np.abs(trig_eval(a, b, grid, 2)).max())
    assert worst <= B
    assert worst > 0.2 * B  # the bound is not vacuous


@pytest.mark.parametrize("name", ["procrustes", "brockett", "mixed"])
def test_theorem3_gain_bound(name):
    d = 8
    obj = mixed_objective(d, 11) if name == "mixed" else gx.make_problem(name, d, 4).objective
    res = minimize(obj, dim=d, max_steps=150)
    assert np.all(np.isfinite(res.grad_norm_sq))
    B = obj.curvature_bound()
    tol = 1e-9 * (1.0 + np.abs(res.objective).max())
    margins = theorem3_margins(res, B)
    assert margins["paper"].min() >= -tol
    assert margins["pair"].min() >= -tol
    # the check can fail: a bound B far too small is violated
    assert theorem3_margins(res, B / 1000)["pair"].min() < 0


def test_theorem3_needs_a_positive_bound():
    res = minimize(mixed_objective(3, 0), dim=3, max_steps=2)
    with pytest.raises(ConfigError, match="curvature bound"):
        theorem3_margins(res, 0.0)


# ---------------------------------------------------------------- determinism and bad input


def test_same_seed_same_run():
    obj = mixed_objective(6, 12)
    r1 = minimize(obj, dim=6, variant="random", max_steps=300, seed=5)
    r2 = minimize(obj, dim=6, variant="random", max_steps=300, seed=5)
    r3 = minimize(obj, dim=6, variant="random", max_steps=300, seed=6)
    assert r1.steps == r2.steps
    np.testing.assert_array_equal(r1.M, r2.M)
    assert r1.steps != r3.steps


@pytest.mark.parametrize("M0, match", [
    (np.array([[1.0, 0.1], [0.0, 1.0]]), "not orthogonal"),
    (np.diag([1.0, 1.0, -1.0]), "reflection"),
    (np.ones((1, 1)), "d >= 2"),
    (np.eye(3)[:2], "square"),
    (np.full((2, 2), np.nan), "non-finite"),
])
def test_bad_start_matrix(M0, match):
    with pytest.raises(ConfigError, match=match):
        minimize(lambda M: 0.0, M0=M0)


def test_bad_dimension_and_options():
    with pytest.raises(ConfigError, match="d >= 2"):
        minimize(lambda M: 0.0, dim=1)
    with pytest.raises(ConfigError, match="give M0 or dim"):
        minimize(lambda M: 0.0)
    with pytest.raises(ConfigError, match="unknown variant"):
        minimize(lambda M: 0.0, dim=3, variant="sweep")
    with pytest.raises(ConfigError, match="degree"):
        minimize(lambda M: 0.0, dim=3, degree=0)


@pytest.mark.parametrize("F, match", [
    (lambda M: np.nan, "nan"),
    (lambda M: M[0], "one real number"),
    (lambda M: "1.0", "one real number"),
    (lambda M: 1j, "complex"),
    (lambda M: np.inf if M[0, 1] > 0.5 else 0.0, "inf|non-finite"),
])
def test_bad_objective_values(F, match):
    with pytest.raises(ObjectiveError, match=match):
        minimize(F, dim=3, degree=1, max_steps=3)


# ---------------------------------------------------------------- command line


def test_cli_prints_trace_and_errors_cleanly():
    from es_compact_cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["givens", "--problem", "target", "--dim", "4", "--lines", "5"])
    assert out.exit_code == 0, out.output
    assert "rel gap" in out.output and "relative error" in out.output
    bad = runner.invoke(cli, ["givens", "--dim", "1"])
    assert bad.exit_code == 2
    assert "error: SO(d) needs d >= 2" in bad.output


@pytest.mark.slow
def test_greedy_d64_converges():
    prob = gx.make_problem("procrustes", 64, seed=0)
    res, _ = gx.solve(prob, "greedy", 40000)
    assert abs(prob.rel_gap(prob.objective(res.M))) < 1e-6


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 2.5}, "dim must be an integer, got 2.5"),
    ({"dim": "3"}, "dim must be an integer, got '3'"),
    ({"dim": True}, "dim must be an integer, got True"),
    ({"max_steps": 2.5}, "max_steps must be an integer, got 2.5"),
    ({"max_steps": None}, "max_steps must be an integer, got None"),
    ({"max_steps": -1}, "max_steps must be at least 0, got -1"),
    ({"seed": -1}, "seed must be at least 0, got -1"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"grid": 3.5}, "grid must be an integer, got 3.5"),
    ({"grid": 2}, "grid must be at least 3, got 2"),
])
def test_minimize_checks_its_arguments(kwargs, match):
    args = {"dim": 3, "degree": 1, "max_steps": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        minimize(lambda M: float(M[0, 0]), **args)


@pytest.mark.parametrize("tol", [np.nan, -1.0, np.inf, "1e-9", None])
def test_check_rotation_needs_a_finite_tolerance(tol):
    # With tol = nan the orthogonality test `err > tol` was never true: 2 I passed as SO(3).
    from es_compact.so_d import check_rotation

    with pytest.raises(ConfigError, match="tol must be a finite number >= 0"):
        check_rotation(2 * np.eye(3), tol=tol)


@pytest.mark.parametrize("dim, seed, match", [
    ("3", 0, "dim must be an integer, got '3'"),
    (2.5, 0, "dim must be an integer, got 2.5"),
    (3, -1, "seed must be at least 0, got -1"),
    (3, 0.5, "seed must be an integer, got 0.5"),
])
def test_make_problem_checks_dim_and_seed(dim, seed, match):
    with pytest.raises(ConfigError, match=match):
        gx.make_problem("target", dim, seed)


def test_thin_steps_checks_points_and_does_not_allocate_them():
    with pytest.raises(ConfigError, match="points must be at least 1, got 0"):
        gx.thin_steps(10, 0)
    with pytest.raises(ConfigError, match="points must be an integer, got 2.5"):
        gx.thin_steps(10, 2.5)
    # A billion points are every step, without a billion-element geomspace.
    np.testing.assert_array_equal(gx.thin_steps(50, 10**9), np.arange(51))
    np.testing.assert_array_equal(gx.thin_steps(50, 10**9), gx.thin_steps(50, 10**4))


@pytest.mark.parametrize("lines", ["-2", "0", "1000000000"])
def test_cli_lines_out_of_range_is_one_line_error_before_any_output(lines):
    from es_compact_cli.main import cli

    res = CliRunner().invoke(cli, ["givens", "--dim", "4", "--max-steps", "10", "--lines",
                                   lines])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: Invalid value for '--lines': {lines} is not in the "
                                  "range 1<=x<=10000.")


def test_cli_huge_dim_is_one_line_error():
    from es_compact_cli.main import cli

    res = CliRunner().invoke(cli, ["givens", "--dim", "1000000000"])
    assert res.exit_code == 2
    assert res.output.strip() == ("error: Invalid value for '--dim': 1000000000 is not in the "
                                  "range x<=1024.")


@pytest.mark.parametrize("make", [
    lambda tmp: (tmp / "p.sh", tmp / "p.sh", "is not a directory"),
    lambda tmp: (tmp / "givens_trace.csv", tmp, "is not a CSV file this tool wrote"),
])
def test_cli_benchmark_checks_out_dir_before_running(tmp_path, make):
    from es_compact_cli.main import cli

    precious, out_dir, words = make(tmp_path)
    precious.write_bytes(b"precious notes\n")
    res = CliRunner().invoke(cli, ["givens", "--benchmark", "--out-dir", str(out_dir)])
    assert res.exit_code == 2
    # One line, and no "d=16 procrustes ..." progress: the benchmarks did not run.
    assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert words in res.output
    assert precious.read_bytes() == b"precious notes\n"


def test_cli_benchmark_writes_every_problem_and_variant(tmp_path):
    """`make givens`' quick form end to end (about 30 s): d = 16 runs of each problem and
    variant converge, d = 64 greedy is timed against the dense callable, the plot is drawn."""
    import pandas as pd

    from es_compact_cli.main import cli

    res = CliRunner().invoke(cli, ["givens", "--benchmark", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(tmp_path / "givens_summary.csv")
    small = summary[summary["dim"] == 16]
    assert sorted(zip(small["problem"], small["variant"], strict=True)) == sorted(
        (p, v) for p in gx.PROBLEMS for v in gx.VARIANTS)
    assert (small["stop"] == "gain_tol").all() and (small["rel_error"].abs() < 1e-6).all()
    timing = pd.read_csv(tmp_path / "givens_timing.csv")
    assert sorted(timing["problem"]) == sorted(gx.PROBLEMS) and (timing["dim"] == 64).all()
    assert (timing["steps"] == 3000).all()  # the quick form caps d = 64 at 3000 steps
    assert {"command", "commit", "date", "cores", "wall_time_s"} <= set(timing.columns)
    trace = pd.read_csv(tmp_path / "givens_trace.csv")
    assert set(trace["variant"]) == set(gx.VARIANTS)
    assert (tmp_path / "givens.png").stat().st_size > 10_000
