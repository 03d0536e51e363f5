"""The throughput benchmark's arithmetic on hand-made measurements (the measurements
themselves run in tests/test_bench.py, marked slow)."""

from __future__ import annotations

import pytest

from es_compact.bench.throughput import Throughput


def measured(memory=()) -> Throughput:
    parallel = {"steps_per_s": 1500.0, "iterations_timed": 5, "rollout_overhead": 0.25,
                "non_env_share": 0.5, "task_overhead_share": 0.2, "messaging_share": 0.1,
                "bytes_sent_per_iteration": 4096.0, "num_params": 10, "directions": 8}
    return Throughput("Env-v4", "linear", "mp", 2, (1000.0, 900.0, 1100.0),
                      {"steps_per_s": 800.0}, parallel, 1800.0, memory)


def test_ratios_are_set_against_the_mean_of_the_gym_samples():
    m = measured()
    assert m.gym == 1000.0 and m.gym_before == 1000.0 and m.gym_after == 1100.0
    assert m.efficiency == 1500 / (2 * 1000)
    assert m.concurrent_vs_workers_x_gym == 1800 / 2000
    assert m.train_vs_concurrent == 1500 / 1800
    assert m.serial_vs_gym == 0.8
    assert m.driver_and_idle_share == pytest.approx(0.2)
    assert m.theta_bytes == 80 and m.memory_added is None


def test_the_row_rounds_what_it_stores():
    row = measured().row()
    assert row["efficiency"] == 0.75 and row["train_vs_concurrent"] == 0.833
    assert row["gym_after_vs_before"] == 1.1 and row["gym_samples_min_max"] == "900-1100"
    assert row["concurrent_vs_workers_x_a"] == 0.9 and row["serial_vs_gym"] == 0.8
    assert row["case"] == "throughput" and row["workers"] == 2 and row["directions"] == 8


def test_memory_from_one_to_n_workers():
    one = {"case": "memory", "workers": 1, "table_mib": 7.6, "pss_total_mib": 300.0,
           "pss_table_mib": 7.6}
    four = {**one, "workers": 4, "pss_total_mib": 600.5, "pss_table_mib": 7.8}
    m = measured((one, four))
    assert m.memory_added == pytest.approx((300.5, 0.2))
    assert m.rows() == [m.row(), one, four]
