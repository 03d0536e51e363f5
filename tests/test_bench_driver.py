"""`es-compact bench driver`: the stand-in environment, the split of an iteration, the model and
its worker limit (by hand), and the command end to end at its smallest size (slow: larger)."""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from cli_checks import invoke, one_line_error

from es_compact.backends.multiprocess import MultiprocessBackend
from es_compact.backends.serial import SerialBackend
from es_compact.bench import driver as D
from es_compact.envs import make_env
from es_compact.exploration import Directions
from es_compact.noise import NoiseTable, build_table
from es_compact.strategies import make_strategy
from es_compact.trainer import Trainer


def test_stand_in_is_a_gymnasium_env_that_sleeps_its_episode():
    env_id = D.stand_in_id(5, 2, 0.003, steps=3)
    assert env_id == "es_compact.bench.driver:StandIn_o5_a2_s3_e3000us"
    env = make_env(env_id)
    assert isinstance(env, gym.Env) and env.observation_space.shape == (5,)
    assert env.action_space.shape == (2,)
    obs, _ = env.reset(seed=4)
    again, _ = make_env(env_id).reset(seed=4)
    assert np.array_equal(obs, again) and obs.dtype == np.float64
    ends = [env.step(np.ones(2))[3] for _ in range(3)]
    assert ends == [False, False, True]
    with pytest.raises(AttributeError):
        D.NoSuchThing  # noqa: B018


def _trainer(tmp_path, backend, directions=4):
    """A Trainer on the stand-in, built as measure_point builds it (the backend started)."""
    cfg = D.bench_config("halfcheetah", backend.name, 1, directions, 0.0005)
    trainer = Trainer(cfg, tmp_path / "run", backend=backend)
    trainer.check()
    table = NoiseTable(build_table(0, D.TABLE_SIZE))
    trainer.table = table
    trainer.strategy = make_strategy(trainer.config.strategy, Directions(
        "gaussian", 0, trainer.policy.num_params, table))
    backend.start(trainer.config, table)
    return trainer


def test_the_split_adds_up_to_the_iteration_and_changes_nothing(tmp_path):
    plain = _trainer(tmp_path / "a", SerialBackend())
    timed = _trainer(tmp_path / "b", SerialBackend())
    inst = D.Instrument(timed.backend)
    inst.attach(timed)
    s_plain, s_timed = plain.initial_state(), timed.initial_state()
    for _ in range(2):
        s_plain, row_plain = plain.step(s_plain)
        s_timed, row_timed, split, cpu = inst.step(timed, s_timed)
        assert np.array_equal(s_plain.theta, s_timed.theta)
        assert np.array_equal(s_plain.obs["obs_m2"], s_timed.obs["obs_m2"])
        assert row_plain["train_return_mean"] == row_timed["train_return_mean"]
    assert s_timed.theta.any()
    assert split.driver + split.wait == pytest.approx(split.iteration, abs=1e-9)
    assert min(getattr(split, p) for p in D.PHASES) >= 0 and split.merge > 0
    assert split.wait >= 4 * 2 * 0.0005  # serial: the rollouts are the wait
    # a sleeping rollout costs no CPU: on the driver thread's CPU clock the phases are all
    assert sum(getattr(cpu, p) for p in D.PHASES) + cpu.wait == pytest.approx(
        cpu.iteration, abs=1e-9)
    assert cpu.iteration < split.iteration
    inst.close()
    assert "run" not in vars(timed.backend)


def test_mp_writes_theta_once_into_a_block_it_removes(tmp_path):
    backend = MultiprocessBackend(2)
    trainer = _trainer(tmp_path, backend, directions=6)
    try:
        sent = backend.bytes_sent
        state, _ = trainer.step(trainer.initial_state())
        theta_bytes = 8 * trainer.policy.num_params
        assert theta_bytes < backend.bytes_sent - sent < 2 * theta_bytes + 2000
        name = backend._bc_block.name
        assert os.path.exists(f"/dev/shm/{name}")
    finally:
        backend.close()
    assert not os.path.exists(f"/dev/shm/{name}")


def test_instrument_takes_its_wrappers_off():
    b = MultiprocessBackend(2)
    inst = D.Instrument(b)
    assert {"run", "_dispatch", "_select"} <= set(vars(b))
    inst.close()
    assert not vars(b).keys() & {"run", "_dispatch", "_select"}


def test_fit_recovers_a_linear_model_exactly():
    truth = {"background": {"const": 0.0, "N": 1e-6, "chunks": 2e-6},
             "ask": {"const": 1e-4, "N": 2e-5}, "dispatch": {"const": 3e-4, "W": 5e-5,
                                                          "chunks": 1e-5},
             "gather": {"const": 2e-4, "N": 3e-5, "chunks": 2e-5, "chunks_x_W": 1e-7},
             "merge": {"const": 0.0, "N": 7e-6}, "tell": {"const": 1e-4, "N": 1.5e-5},
             "other": {"const": 1.5e-4}}
    rows = []
    for w in (2, 4, 8, 16, 32, 64):
        for n in (8, 64, 230, 1000):
            f = D.feature_values(w, n)
            rows.append({"workers": w, "directions": n, **{
                f"{ph}_cpu_ms": 1e3 * sum(c * f[k] for k, c in co.items())
                for ph, co in truth.items()}})
    model = D.fit(rows)
    for ph, co in truth.items():
        for k, c in co.items():
            assert model[ph][k] == pytest.approx(c, rel=1e-6, abs=1e-12), (ph, k)
    assert D.predict(model, 512, 230) == pytest.approx(D.predict(truth, 512, 230), rel=1e-9)


def test_worker_limit_by_hand():
    # A driver costing 20 ms an iteration, episodes of 0.1 s, N = 230: the share is
    # 0.02 / (0.02 + 0.2 ceil(230 / W)), above 5 % only once every worker runs a single pair
    # (ceil = 1: 0.02 / 0.22 = 9 %), from W = 230 on; at 10 ms it never is (0.01 / 0.21).
    const = {ph: {"const": 0.0} for ph in D.FEATURES}
    assert D.worker_limit({**const, "other": {"const": 0.02}}, 230, 0.1) == 230
    assert D.worker_limit({**const, "other": {"const": 0.01}}, 230, 0.1) is None
    # 0.1 ms per worker, N = 1000: 1e-4 W / (1e-4 W + 0.2 ceil(1000 / W)) > 5 % first at
    # W = 334 (ceil 3: 0.0334 > 0.05 x 0.0934); W = 333 still has ceil 4.
    per_worker = {**const, "dispatch": {"W": 1e-4}}
    assert D.worker_limit(per_worker, 1000, 0.1) == 334
    assert D.share(per_worker, 334, 1000, 0.1) == pytest.approx(0.0334 / (0.0334 + 0.6))


def test_features_count_the_chunks_the_backends_send():
    # ceil(remaining / 8): 8 7 7 6 5 4 4 3 3 3 2 2 2 (56 tasks), then 8 single ones
    f = D.feature_values(4, 64)
    assert f["chunks"] == D.chunk_count(4, 64) == 21 and f["W"] == 4
    assert f["chunks_x_W"] == 21 * 4
    from es_compact.backends.base import split_tasks

    for w, n in [(1, 1), (2, 8), (3, 230), (64, 1000), (512, 230)]:
        assert D.chunk_count(w, n) == len(split_tasks(list(range(n)), w))
    # more workers than directions: one chunk each for N of them, the rest idle
    assert D.feature_values(512, 230)["W"] == 230


def test_bench_driver_at_its_smallest_size_writes_rows(tmp_path):
    out = tmp_path / "bd.csv"
    res = invoke("bench", "driver", "--backend", "mp", "--workers", "2", "--directions", "8",
                 "--iterations", "1", "--shape", "halfcheetah", "--episode-ms", "0.5",
                 "--episode-steps", "1", "--label", "test", "--out", out)
    assert res.exit_code == 0, res.output
    assert "no worker limits" in res.output and "measured at load" in res.output
    df = pd.read_csv(out)
    assert list(df["case"]) == ["episode", "point"]
    ep, pt = df.iloc[0], df.iloc[1]
    assert ep["env"] == "HalfCheetah-v4" and ep["steps_timed"] == 1000 and ep["step_us"] > 0
    assert pt["workers"] == 2 and pt["directions"] == 8 and pt["chunks"] == 6
    phases = sum(pt[f"{p}_ms"] for p in D.PHASES)
    assert pt["driver_ms"] == pytest.approx(phases, abs=0.01)
    cpu = sum(pt[f"{p}_cpu_ms"] for p in D.CPU_PHASES)
    assert pt["driver_cpu_ms"] == pytest.approx(cpu, abs=0.01) and 0 < cpu
    assert pt["driver_ms"] + pt["wait_ms"] == pytest.approx(pt["iteration_ms"], abs=0.01)
    # θ (102 float64) goes out once, into shared memory; 8 results come back
    assert 102 * 8 < pt["bytes_sent"] < 2 * 102 * 8 + 2000
    assert pt["bytes_received"] > 8 * 2 * 17 * 8
    assert pt["label"] == "test" and pt["commit"] and not math.isnan(pt["load_1min_start"])


@pytest.mark.parametrize("args,words", [
    (["--workers", "0"], ["--workers", "positive integers"]),
    (["--directions", "8,x"], ["--directions", "'8,x'"]),
    (["--limit-directions", ""], ["--limit-directions"]),
    (["--out", "x.txt"], ["must end in .csv"]),
])
def test_bench_driver_refuses_bad_values_before_measuring(args, words):
    one_line_error(invoke("bench", "driver", "--backend", "mp", *args), *words)


@pytest.mark.slow
def test_bench_driver_extrapolates_limits_on_mp_and_ray(tmp_path):
    out = tmp_path / "bd.csv"
    res = invoke("bench", "driver", "--workers", "2,3", "--directions", "8,16",
                 "--iterations", "1", "--shape", "humanoid", "--episode-ms", "0.5",
                 "--episode-steps", "200", "--limit-directions", "230", "--out", out)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    pts = df[df["case"] == "point"]
    assert len(pts) == 8 and set(pts["backend"]) == {"mp", "ray"}
    # the same iterations on either backend and worker count: the same θ
    assert pts.groupby("directions")["theta_norm"].nunique().eq(1).all()
    lim = df[df["case"] == "limit"].set_index("backend")
    assert set(lim.index) == {"mp", "ray"} and (lim["env"] == "Humanoid-v4").all()
    assert lim["model"].str.contains("dispatch = ").all()
    assert "driver > 5 % of an iteration from" in res.output


def _stored_rows(label, driver_s_per_direction, episode_s):
    """Point rows of a driver costing driver_s_per_direction x N (CPU), and episode rows."""
    rows = [{"case": "episode", "shape": s, "env": D.REAL_ENVS[s], "episode_s": episode_s,
             "label": label} for s in ("humanoid",)]
    for w in (2, 4):
        for n in (8, 64):
            rows.append({"case": "point", "shape": "humanoid", "backend": "mp", "workers": w,
                         "directions": n, "label": label, "driver_cpu_ms": 0.0,
                         **{f"{p}_cpu_ms": 0.0 for p in D.CPU_PHASES},
                         "ask_cpu_ms": 1e3 * driver_s_per_direction * n})
    for r in rows:
        if r["case"] == "point":
            r["driver_cpu_ms"] = r["ask_cpu_ms"]
    return rows


def test_refit_compares_two_runs_at_the_same_episode_costs(tmp_path):
    from es_compact.results import append_rows

    out = tmp_path / "bd.csv"
    # before: 1 ms a direction, after: 0.1 ms; episodes of 1 s (before's run) and 0.5 s
    append_rows(out, _stored_rows("before", 1e-3, 1.0) + _stored_rows("after", 1e-4, 0.5),
                {"command": "test", "commit": "x", "date": "d"})
    res = invoke("bench", "driver", "--refit", "before", "--episodes-of", "after",
                 "--limit-directions", "1000", "--out", out)
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out).iloc[-1]
    assert row["label"] == "before points, after episodes" and row["episode_s"] == 0.5
    # share = 1e-3 N / (1e-3 N + 2 x 0.5 x ceil(N / W)) > 5 % from ceil(1000 / W) <= 18
    assert int(row["workers_at_5pct"]) == 56 and row["directions"] == 1000
    stored = pd.read_csv(out).to_dict("records")
    again = D.refit_rows(stored, "after", "after", [1000])[0]
    # 0.1 / (0.1 + ceil(1000 / W)) > 5 % only at ceil = 1, from W = 1000 on
    assert again["workers_at_5pct"] == 1000


@pytest.mark.parametrize("args,words", [
    (["--refit", "before", "--workers", "4"], ["--workers", "not with --refit"]),
    (["--episodes-of", "after"], ["--episodes-of", "with --refit"]),
    (["--refit", "nothing"], ["no points labelled 'nothing'"]),
])
def test_refit_refuses_what_it_would_ignore_or_cannot_fit(tmp_path, args, words):
    from es_compact.results import append_rows

    out = tmp_path / "bd.csv"
    append_rows(out, _stored_rows("before", 1e-3, 1.0), {"command": "t", "commit": "x",
                                                         "date": "d"})
    one_line_error(invoke("bench", "driver", *args, "--out", out), *words)


def test_hierarchical_features_count_the_batches_ray_sends():
    """ray-hier: the driver's workers are the W / G actors, its chunks batches of >= G tasks,
    as RayBackend(actor_workers=G) splits them (base.Schedule with min_chunk=G)."""
    from es_compact.backends.base import Deadlines, Schedule

    for w, g, n in [(8, 4, 8), (64, 16, 1000), (512, 32, 1000), (512, 64, 230), (32, 16, 7)]:
        sched = Schedule(list(range(n)), w // g, Deadlines(), min_chunk=g)
        f = D.feature_values(w, n, g)
        assert f["chunks"] == D.chunk_count(w // g, n, g) == len(sched.chunks)
        assert f["W"] == min(w // g, len(sched.chunks))
    # 1000 directions on 512 workers: 1000 single-task chunks to 512 actors, or 32 batches of
    # (at least) 32 tasks to 16 actors
    assert D.feature_values(512, 1000)["chunks"] == 1000
    assert D.feature_values(512, 1000, 32)["chunks"] == 32


def test_hierarchical_worker_limit_is_a_multiple_of_the_group():
    # 20 ms an iteration, episodes of 0.1 s, N = 230: above 5 % once every worker runs one
    # pair, W >= 230 (test_worker_limit_by_hand); in actors of 32, the first such W is 256.
    const = {ph: {"const": 0.0} for ph in D.FEATURES}
    model = {**const, "other": {"const": 0.02}}
    assert D.worker_limit(model, 230, 0.1, group=32) == 256
    assert D.worker_limit({**const, "other": {"const": 0.01}}, 230, 0.1, group=32) is None
    # a cost per call (chunk): the limit is the first multiple of G past 5 %, never one below
    per_call = {**const, "dispatch": {"chunks": 2e-3}}
    for g in (1, 16, 32):
        w = D.worker_limit(per_call, 1000, 0.1, group=g)
        assert w is not None and w % g == 0
        assert D.share(per_call, w, 1000, 0.1, g) > 0.05
        assert all(D.share(per_call, v, 1000, 0.1, g) <= 0.05 for v in range(g, w, g))


@pytest.mark.parametrize("args,words", [
    (["--backend", "mp", "--actor-workers", "4"], ["--actor-workers", "ray-hier"]),
    (["--backend", "ray-hier", "--workers", "4,6", "--actor-workers", "4"],
     ["multiple of, and larger than"]),
    (["--backend", "ray-hier", "--actor-workers", "0"], ["--actor-workers"]),
])
def test_bench_driver_refuses_actor_workers_it_cannot_use(tmp_path, args, words):
    out = tmp_path / "bd.csv"
    one_line_error(invoke("bench", "driver", *args, "--out", out), *words)
    assert not out.exists()


@pytest.mark.slow
def test_bench_driver_measures_hierarchical_ray(tmp_path):
    out = tmp_path / "bd.csv"
    res = invoke("bench", "driver", "--backend", "ray-hier", "--workers", "4,8",
                 "--actor-workers", "2", "--directions", "8,16", "--iterations", "1",
                 "--shape", "humanoid", "--episode-ms", "0.5", "--episode-steps", "200",
                 "--limit-directions", "1000", "--out", out)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    pts = df[df["case"] == "point"]
    assert len(pts) == 4 and set(pts["backend"]) == {"ray-hier"}
    assert set(pts["actor_workers"]) == {2}
    # 8 directions over 2 actors of 2: batches of max(2, ceil(remaining / 4)): 2 2 2 2
    assert pts[(pts.workers == 4) & (pts.directions == 8)]["chunks"].item() == 4
    assert pts.groupby("directions")["theta_norm"].nunique().eq(1).all()
    lim = df[df["case"] == "limit"]
    assert sorted(lim["actor_workers"]) == sorted(D.LIMIT_ACTOR_WORKERS)
    assert "ray-hier G=32" in res.output
