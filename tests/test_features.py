"""Random-feature kernel estimators: fast == dense reference, exact kernels, unbiasedness."""

from __future__ import annotations

import numpy as np
import pytest
from cli_checks import invoke, one_line_error
from scipy.linalg import hadamard

from es_compact.errors import ConfigError
from es_compact.features import (
    ESTIMATORS,
    NONLINEARITIES,
    RandomFeatures,
    default_rotations,
    exact_kernel,
    fwht_reference,
    fwht_rows,
)


def _points(n=6, d=9, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


# --- the Walsh-Hadamard kernel ---------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 8, 64])
def test_fwht_kernel_equals_numpy_twin_and_dense_hadamard(p):
    X = np.random.default_rng(p).standard_normal((p, 5))
    Y = X.copy()
    fwht_rows(Y)
    np.testing.assert_allclose(Y, fwht_reference(X), atol=1e-12)
    np.testing.assert_allclose(Y, hadamard(p) @ X, atol=1e-12)


def test_fwht_twice_is_p_times_identity():
    X = np.random.default_rng(1).standard_normal((32, 3))
    Y = X.copy()
    fwht_rows(Y)
    fwht_rows(Y)
    np.testing.assert_allclose(Y, 32 * X, atol=1e-10)


# --- projections equal their dense reference; block structure --------------------------------


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("d,m", [(9, 9), (9, 23), (16, 5), (2, 3)])
def test_projection_equals_dense_reference(estimator, d, m):
    fm = RandomFeatures.draw(estimator, d, m, np.random.default_rng(3))
    X = _points(7, d)
    W = fm.to_dense()
    assert W.shape == (m, d)
    np.testing.assert_allclose(fm.project(X), X @ W.T, atol=1e-10)


@pytest.mark.parametrize("estimator", ["horn", "kama"])
def test_projection_in_cache_sized_column_chunks_equals_dense(estimator):
    # 2000 points of dimension 300 are processed in several groups of columns.
    fm = RandomFeatures.draw(estimator, 300, 450, np.random.default_rng(2))
    X = _points(2000, 300)
    np.testing.assert_allclose(fm.project(X), X @ fm.to_dense().T, atol=1e-9)


@pytest.mark.parametrize("estimator", ["orn", "kama", "horn"])
def test_blocks_have_orthogonal_rows(estimator):
    # d = 16 is a power of two, so horn needs no padding and its block is square.
    d = 16
    fm = RandomFeatures.draw(estimator, d, 2 * d, np.random.default_rng(4))
    W = fm.to_dense()
    for b in range(2):
        Wb = W[b * d : (b + 1) * d]
        G = Wb @ Wb.T
        np.testing.assert_allclose(G - np.diag(np.diag(G)), 0.0, atol=1e-9)
    # The two blocks are drawn independently: not orthogonal to each other.
    assert np.abs(W[:d] @ W[d:].T).max() > 1e-3


def test_kama_uses_given_rotations_and_default():
    assert default_rotations(11) == int(np.ceil(5 * 11 * np.log(11)))
    fm = RandomFeatures.draw("kama", 11, 11, np.random.default_rng(0))
    assert fm.projection.blocks[0].planes.shape == (default_rotations(11), 2)
    fm = RandomFeatures.draw("kama", 11, 11, np.random.default_rng(0), rotations=3)
    assert fm.projection.blocks[0].planes.shape == (3, 2)


def test_row_norms_are_chi_distributed():
    # ‖row‖² is chi² with d degrees of freedom: mean d. (horn: the row lives in p = 16
    # dimensions with ‖row‖² ~ chi²_16, and its first d coordinates carry d / p of it.)
    rng = np.random.default_rng(5)
    d = 12
    for e in ESTIMATORS:
        W = RandomFeatures.draw(e, d, 400 * d, rng).to_dense()
        sq = (W**2).sum(axis=1)
        assert abs(sq.mean() - d) < 4 * np.sqrt(2 * d / sq.size) * (3 if e == "horn" else 1), e


def test_same_seed_same_features_different_seed_different():
    X = _points()
    for e in ESTIMATORS:
        a = RandomFeatures.draw(e, 9, 20, np.random.default_rng(7)).transform(X)
        b = RandomFeatures.draw(e, 9, 20, np.random.default_rng(7)).transform(X)
        c = RandomFeatures.draw(e, 9, 20, np.random.default_rng(8)).transform(X)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


# --- exact kernels ---------------------------------------------------------------------------


def test_exact_kernels_match_monte_carlo():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((3, 4)) * 0.5
    G = rng.standard_normal((400_000, 4))
    Z = X @ G.T  # (3, samples)
    for name, nl in NONLINEARITIES.items():
        if name == "sincos":
            mc = np.cos(Z)[:, None, :] * np.cos(Z)[None] + np.sin(Z)[:, None, :] * np.sin(Z)[None]
        else:
            F = nl.apply(Z)
            mc = F[:, None, :] * F[None]
        se = mc.std(axis=2) / np.sqrt(G.shape[0])
        diff = np.abs(mc.mean(axis=2) - exact_kernel(name, X))
        assert np.all(diff <= 4 * se + 1e-6), (name, diff / np.maximum(se, 1e-12))


def test_closed_forms_at_known_angles():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    S = exact_kernel("sign", x)
    np.testing.assert_allclose(S, [[1, 0, -1], [0, 1, 0], [-1, 0, 1]], atol=1e-12)
    H = exact_kernel("heaviside", x)
    np.testing.assert_allclose(np.diag(H), 0.5)
    np.testing.assert_allclose(H[0, 2], 0.0, atol=1e-12)
    R = exact_kernel("relu", x)
    np.testing.assert_allclose(np.diag(R), 0.5 * np.sum(x**2, axis=1))  # E relu(g)² = ½
    np.testing.assert_allclose(R[0, 1], 2.0 / (2 * np.pi))  # θ = π/2: ‖x‖‖y‖ / (2π)
    np.testing.assert_allclose(exact_kernel("sincos", x)[0, 1], np.exp(-2.5))
    np.testing.assert_allclose(exact_kernel("identity", x), x @ x.T)


def test_transform_shapes_and_kernel_estimate():
    X, Y = _points(5, 9, 1), _points(4, 9, 2)
    fm = RandomFeatures.draw("kama", 9, 30, np.random.default_rng(0), f="sincos")
    assert fm.transform(X).shape == (5, 60)
    np.testing.assert_allclose(fm.K(X, Y), fm.transform(X) @ fm.transform(Y).T)
    np.testing.assert_allclose(np.diag(fm.K(X)), 1.0)  # cos² + sin²
    assert fm.exact(X, Y).shape == (5, 4)


def test_user_function_estimates_but_has_no_exact_kernel():
    X = _points()
    fm = RandomFeatures.draw("orn", 9, 18, np.random.default_rng(0), f=np.tanh)
    W = fm.to_dense()
    np.testing.assert_allclose(fm.K(X), np.tanh(X @ W.T) @ np.tanh(X @ W.T).T / 18)
    with pytest.raises(ConfigError, match="no closed-form"):
        fm.exact(X)


# --- unbiasedness ----------------------------------------------------------------------------


def _mean_and_se(estimator, f, X, reps, seed=0, **options):
    rng = np.random.default_rng(seed)
    K = np.array([RandomFeatures.draw(estimator, X.shape[1], X.shape[1], rng, f=f,
                                      **options).K(X) for _ in range(reps)])
    return K.mean(axis=0), K.std(axis=0, ddof=1) / np.sqrt(reps)


@pytest.mark.parametrize("estimator", ["urn", "orn"])
@pytest.mark.parametrize("f", ["identity", "sign"])
def test_urn_and_orn_are_unbiased(estimator, f):
    X = _points(4, 6, 21)
    mean, se = _mean_and_se(estimator, f, X, 3000)
    K = exact_kernel(f, X)
    off = ~np.eye(4, dtype=bool)  # the sign diagonal is exactly 1, with zero spread
    assert np.all(np.abs(mean - K)[off] <= 3 * se[off])


def test_unbiasedness_check_detects_a_biased_estimator():
    # One Givens rotation leaves most rows at ±e_i: strongly biased for the angular kernel.
    # The same 3-standard-error check as above must reject it (the test above can fail).
    X = _points(4, 6, 21)
    mean, se = _mean_and_se("kama", "sign", X, 3000, rotations=1)
    off = ~np.eye(4, dtype=bool)
    assert np.any(np.abs(mean - exact_kernel("sign", X))[off] > 3 * se[off])


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"estimator": "gauss"}, "unknown estimator 'gauss'"),
    ({"dim": 1}, "dimension d must be an integer >= 2"),
    ({"m": 0}, "positive integer, got 0"),
    ({"m": 2.5}, "positive integer, got 2.5"),
    ({"m": True}, "positive integer, got True"),
    ({"f": "tanh"}, "unknown nonlinearity 'tanh'"),
    ({"estimator": "kama", "rotations": 0}, "rotations must be a positive integer"),
    ({"estimator": "horn", "hd_blocks": 0}, "hd_blocks must be a positive integer"),
    ({"estimator": "horn", "rotations": 5}, "'horn' takes no option rotations"),
])
def test_bad_arguments_raise_config_error(kwargs, match):
    args = {"estimator": "urn", "dim": 5, "m": 5, **kwargs}
    with pytest.raises(ConfigError, match=match):
        RandomFeatures.draw(args.pop("estimator"), args.pop("dim"), args.pop("m"),
                            np.random.default_rng(0), **args)


def test_bad_points_raise_config_error():
    fm = RandomFeatures.draw("kama", 5, 5, np.random.default_rng(0))
    X = np.ones((3, 5))
    X[1, 2] = np.nan
    with pytest.raises(ConfigError, match="non-finite values in 1 of 3 points"):
        fm.transform(X)
    with pytest.raises(ConfigError, match="dimension 4, expected 5"):
        fm.transform(np.ones((3, 4)))
    with pytest.raises(ConfigError, match="2-d array"):
        fm.transform(np.ones(5))
    with pytest.raises(ConfigError, match="non-finite"):
        exact_kernel("sign", np.full((2, 2), np.inf))


# --- the paper's claims (slow: enough repetitions to be stable) ------------------------------


@pytest.mark.slow
def test_orn_and_kama_beat_urn_at_m_equals_d_on_every_dataset():
    from es_compact.datasets import DATASETS
    from es_compact.experiments.kernels import pointwise_mse

    for name in DATASETS:
        rows = pointwise_mse(name, max_blocks=1, reps=400, pairs=200, seed=1)
        by = {r["estimator"]: r for r in rows}
        for e in ("orn", "kama"):
            gap = by["urn"]["mse"] - by[e]["mse"]
            se = np.hypot(by["urn"]["mse_se"], by[e]["mse_se"])
            assert gap > 3 * se, (name, e, by["urn"]["mse"], by[e]["mse"], se)


@pytest.mark.slow
def test_kama_bias_shrinks_with_rotations_and_is_negligible_at_default():
    from es_compact.experiments.kernels import bias_vs_rotations

    d = 11  # wine
    k0 = default_rotations(d)
    rows = bias_vs_rotations("wine", rotations=[1, d, k0], hd_blocks=[1, 3], reps=4000)
    kama = {r["value"]: r for r in rows if r["estimator"] == "kama"}
    assert kama[1]["bias2"] > kama[d]["bias2"] > 10 * max(kama[k0]["bias2"], 0)
    # At the default k the squared bias is below the resolution and far below the MSE at m = d.
    assert kama[k0]["bias2"] < 3 * kama[k0]["noise2"]
    assert kama[k0]["bias2"] < 1e-3 * kama[k0]["mse"]
    horn = {r["value"]: r for r in rows if r["estimator"] == "horn"}
    assert horn[1]["bias2"] > 10 * max(horn[3]["bias2"], horn[3]["noise2"])


# --- the command line ------------------------------------------------------------------------


def test_cli_kernels_writes_csv_and_png(tmp_path):
    from click.testing import CliRunner

    from es_compact_cli.main import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["kernels", "mse", "--datasets", "cpu", "--reps", "3", "--blocks",
                              "2", "--pairs", "10", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "fig1_mse.csv")
    assert len(df) == 4 * 2 and {"commit", "date", "cores", "wall_time_s"} <= set(df.columns)
    assert (tmp_path / "fig1_mse.png").stat().st_size > 0
    res = runner.invoke(cli, ["kernels", "gram", "--datasets", "cpu", "--reps", "2", "--blocks",
                              "1", "--points", "30", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "fig2_gram.csv")) == 4
    assert (tmp_path / "fig2_time.png").stat().st_size > 0


@pytest.mark.parametrize("args,message", [
    (["mse", "--datasets", "iris"], "error: unknown dataset 'iris'"),
    (["gram", "--estimators", "urn,fast"], "error: unknown estimator 'fast'"),
    (["mse", "--reps", "1"], "error: need at least 2 repetitions"),
    (["gram", "--blocks", "0"], "error: number of blocks must be positive"),
])
def test_cli_bad_input_is_one_line_error(args, message, tmp_path):
    from click.testing import CliRunner

    from es_compact_cli.main import cli

    res = CliRunner().invoke(cli, ["kernels", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), res.output


# --- bad input is found before the work, and nothing on disk is touched ----------------------


SMALL = {"mse": ["--datasets", "wine", "--estimators", "urn", "--reps", "2", "--blocks", "1",
                 "--pairs", "2"],
         "gram": ["--datasets", "wine", "--estimators", "urn", "--reps", "2", "--blocks", "1",
                  "--points", "5"],
         "bias": ["--datasets", "wine", "--reps", "2", "--pairs", "2"]}


@pytest.mark.parametrize("command", list(SMALL))
def test_cli_kernels_checks_out_before_the_work(tmp_path, command):
    blocked = tmp_path / "p.sh"
    blocked.write_bytes(b"precious")
    res = invoke("kernels", command, *SMALL[command], "--out", blocked / "x")
    # One line and no "wine: 2 repetitions..." progress line: nothing was computed.
    one_line_error(res, f"{blocked} is not a directory")
    assert blocked.read_bytes() == b"precious"


@pytest.mark.parametrize("content, words", [
    (b"my notes\nline two\n", ["has no command or commit or date column"]),
    (b'# README\nsome, text, "unbalanced\nmore\n', ["is not a CSV file this tool wrote"]),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01" * 50, ["is not a CSV file this tool wrote"]),
])
def test_cli_kernels_refuses_a_csv_it_did_not_write(tmp_path, content, words):
    csv = tmp_path / "fig1_mse.csv"
    csv.write_bytes(content)
    res = invoke("kernels", "mse", *SMALL["mse"], "--out", tmp_path)
    one_line_error(res, str(csv), *words, "left it untouched")
    assert csv.read_bytes() == content
    assert not (tmp_path / "fig1_mse.png").exists()


@pytest.mark.parametrize("name", ["notes.txt", "README", "plot.png"])
def test_bench_features_needs_a_csv_out(tmp_path, name):
    out = tmp_path / name
    out.write_bytes(b"precious")
    one_line_error(invoke("bench", "features", "--out", out), "must end in .csv", str(out))
    assert out.read_bytes() == b"precious"


def test_append_rows_appends_to_its_own_csv_and_refuses_others(tmp_path):
    from es_compact.results import append_rows, run_metadata

    meta = run_metadata(1.0, command="test")
    path = tmp_path / "sub" / "rows.csv"
    append_rows(path, [{"a": 1}], meta)
    append_rows(path, [{"a": 2, "b": 3}], meta)
    import pandas as pd

    df = pd.read_csv(path)
    assert list(df["a"]) == [1, 2] and df["b"].isna().tolist() == [True, False]
    with pytest.raises(ConfigError, match=r"must end in \.csv, got .*rows\.txt"):
        append_rows(tmp_path / "rows.txt", [{"a": 1}], meta)
    notes = tmp_path / "notes.csv"
    notes.write_text("a,b\n1,2\n")  # a CSV, but not one of ours: no provenance columns
    with pytest.raises(ConfigError, match="not a CSV file this tool wrote"):
        append_rows(notes, [{"a": 1}], meta)
    assert notes.read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("args, message", [
    (["bias", "--datasets", "wine", "--reps", "2", "--pairs", "0"],
     "Invalid value for '--pairs': 0 is not in the range x>=1"),
    (["bias", "--datasets", "wine", "--reps", "2", "--pairs", "-1"],
     "Invalid value for '--pairs': -1 is not in the range x>=1"),
    (["mse", "--datasets", "wine", "--reps", "2", "--pairs", "0"],
     "Invalid value for '--pairs': 0 is not in the range x>=1"),
    (["gram", "--datasets", "wine", "--reps", "2", "--points", "1"],
     "Invalid value for '--points': 1 is not in the range x>=2"),
])
def test_cli_kernels_bad_sizes_are_one_line_errors(tmp_path, args, message):
    res = invoke("kernels", *args, "--out", tmp_path)
    one_line_error(res, message)
    assert not list(tmp_path.iterdir())


def test_cli_kernels_computes_a_name_given_twice_once(tmp_path):
    res = invoke("kernels", "mse", "--datasets", "wine,wine", "--estimators", "urn,urn",
                  "--reps", "2", "--blocks", "1", "--pairs", "2", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "fig1_mse.csv")
    assert list(zip(df["dataset"], df["estimator"], strict=True)) == [("wine", "urn")]
    assert res.output.count("wine: 2 repetitions") == 1


@pytest.mark.parametrize("call, match", [
    (lambda ex: ex.pointwise_mse("wine", ["urn"], 1, 2, pairs=0), "pairs must be at least 1"),
    (lambda ex: ex.pointwise_mse("wine", ["urn"], 1, 2, pairs=-1), "pairs must be at least 1"),
    (lambda ex: ex.bias_vs_rotations("wine", [1], [1], reps=2, pairs=0),
     "pairs must be at least 1"),
    (lambda ex: ex.pointwise_mse("wine", ["urn"], 1, reps=2.5), "reps must be an integer"),
    (lambda ex: ex.pointwise_mse("wine", ["urn"], 1.5, 2), "max_blocks must be an integer"),
    (lambda ex: ex.pointwise_mse("wine", ["urn"], 1, 2, seed=-1), "seed must be at least 0"),
    (lambda ex: ex.pointwise_mse("wine", "urn", 1, 2), "list of names, got the string 'urn'"),
    (lambda ex: ex.gram_error("wine", ["urn"], 1, 2, points=2.5),
     "points must be an integer, got 2.5"),
    (lambda ex: ex.gram_error("wine", ["urn"], 1, 2, points=1), "points must be at least 2"),
    (lambda ex: ex.gram_error("wine", [["urn"]], 1, 2), r"unknown estimator \['urn'\]"),
])
def test_kernel_experiments_check_their_arguments(call, match):
    from es_compact.experiments import kernels as ex

    with pytest.raises(ConfigError, match=match):
        call(ex)


@pytest.mark.parametrize("kwargs, match", [
    ({"estimator": ["urn"]}, r"unknown estimator \['urn'\]"),
    ({"rng": None}, "rng must be a numpy Generator .* got NoneType"),
    ({"rng": 3}, "rng must be a numpy Generator .* got int"),
])
def test_draw_checks_estimator_and_rng(kwargs, match):
    args = {"estimator": "urn", "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(ConfigError, match=match):
        RandomFeatures.draw(args["estimator"], 5, 5, args["rng"])


@pytest.mark.parametrize("dim", [0, -3, 2.5, "3", True])
def test_default_rotations_needs_a_positive_integer(dim):
    with pytest.raises(ConfigError, match="dimension d must be a positive integer"):
        default_rotations(dim)


def test_complex_or_non_numeric_points_are_refused_not_truncated():
    fm = RandomFeatures.draw("orn", 3, 3, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="X must be real, got complex values"):
        fm.project(np.ones((2, 3)) + 1j)
    with pytest.raises(ConfigError, match="X must be an array of real numbers"):
        fm.project([["a", "b", "c"]])
    with pytest.raises(ConfigError, match="Y must be real"):
        exact_kernel("sign", np.ones((2, 3)), np.ones((2, 3), dtype=complex))
