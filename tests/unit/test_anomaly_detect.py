"""The streaming detector: hostile input, streaming semantics, persistence, counters, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_detect as ad
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af

T0 = 1_700_000_000.0
CFG = {"threshold": 8.0}


def make(cols, step=15.0, target="ns/pod"):
    n = len(next(iter(cols.values())))
    names = sorted(cols)
    mat = np.vstack([np.asarray(cols[c], dtype=float) for c in names]).T
    return af.RawSeries(target, T0 + step * np.arange(n), names, mat)


def normal_cols(n, seed=0):
    rng = np.random.default_rng(seed)
    load = 1 + 0.1 * np.sin(np.arange(n) / 200.0)
    return {
        "cpu_seconds_total": np.cumsum(0.5 * load * 15 * np.exp(rng.normal(0, 0.05, n))),
        "memory_bytes": 3e8 * (1 + rng.normal(0, 0.005, n)),
        "latency_ms": 80 * load * np.exp(rng.normal(0, 0.08, n)),
        "queue_depth": 20 + rng.normal(0, 2, n),
    }


# ---------------------------------------------------------------- hostile input

def test_empty_and_single_sample():
    empty = af.RawSeries("e", np.array([]), [], np.zeros((0, 0)))
    r = ad.analyze_target(empty, CFG)
    assert r["status"] == "insufficient_data" and r["anomalous"] is False
    one = make({"cpu": [1.0]})
    r = ad.analyze_target(one, CFG)
    assert r["status"] == "insufficient_history" and r["score"] is None


def test_short_history_is_reported_not_scored():
    r = ad.analyze_target(make(normal_cols(60)), CFG)   # 15 minutes < 30 minutes of min_history
    assert r["status"] == "insufficient_history"
    assert "min_history" in r["message"]


def test_constant_and_all_nan_columns():
    n = 480
    cols = normal_cols(n)
    cols["replicas"] = np.full(n, 3.0)
    cols["broken"] = np.full(n, np.nan)
    raw = make(cols)
    r = ad.analyze_target(raw, CFG)
    assert r["status"] == "ok"
    assert r["anomalous"] is False
    assert "replicas" in r["metrics_used"]
    assert "broken" in r["metrics_ignored"]
    assert math.isfinite(r["score"])


def test_only_constant_columns_never_alarm():
    raw = make({"a": np.full(480, 5.0), "b": np.zeros(480)})
    r = ad.analyze_target(raw, CFG)
    assert r["status"] == "ok" and r["anomalous"] is False and r["max_score"] == 0.0


def test_nan_holes_and_huge_values():
    n = 480
    cols = normal_cols(n, seed=3)
    cols["memory_bytes"][np.random.default_rng(0).random(n) < 0.2] = np.nan
    cols["queue_depth"][300:] = 1e250            # absurd but finite
    r = ad.analyze_target(make(cols), CFG)
    assert r["anomalous"] is True
    assert r["contributing_metrics"][0]["metric"] == "queue_depth"
    assert r["contributing_metrics"][0]["z"] == af.Z_CLIP
    assert r["max_score"] <= af.Z_CLIP


def test_unknown_columns_only_are_still_scored():
    rng = np.random.default_rng(5)
    n = 480
    cols = {"foo": rng.normal(50, 1, n), "bar": rng.normal(-3, 0.1, n), "baz_count": np.cumsum(rng.poisson(4, n)).astype(float)}
    cols["bar"][360:] -= 2.0                     # 20 sigma drop at 90 minutes
    r = ad.analyze_target(make(cols), CFG)
    assert r["anomalous"] is True
    assert r["contributing_metrics"][0]["metric"] == "bar"
    assert r["contributing_metrics"][0]["direction"] == "down"
    assert "baz_count" in r["counters"]
    onset = T0 + 360 * 15
    first = af.parse_timestamp(r["first_anomalous_at"])
    assert onset <= first <= onset + 300


# ---------------------------------------------------------------- detection behaviour

def test_step_change_is_detected_with_persistence_and_single_spike_is_not():
    n = 480
    spike = normal_cols(n, seed=7)
    spike["latency_ms"][300] *= 50               # one sample
    r = ad.analyze_target(make(spike), CFG)
    assert r["anomalous"] is False
    leak = normal_cols(n, seed=7)
    leak["memory_bytes"][400:] *= np.linspace(1.0, 1.3, n - 400)
    r = ad.analyze_target(make(leak), CFG)
    assert r["anomalous"] is True
    assert r["contributing_metrics"][0]["metric"] == "memory_bytes"
    assert r["active"] is True       # still inside the trailing baseline's memory (a shift older than ~30 min is absorbed)


def test_counter_reset_without_anomaly_does_not_alarm():
    n = 480
    cols = normal_cols(n, seed=9)
    cols["cpu_seconds_total"][250:] -= cols["cpu_seconds_total"][249]   # exporter restart: counter back to ~0
    r = ad.analyze_target(make(cols), CFG)
    assert r["anomalous"] is False
    assert "cpu_seconds_total" in r["counters"]


def test_restart_counter_increment_is_flagged():
    n = 480
    cols = normal_cols(n, seed=11)
    restarts = np.zeros(n)
    restarts[300:] = 1
    restarts[330:] = 2
    cols["kube_pod_container_status_restarts_total"] = restarts
    r = ad.analyze_target(make(cols), CFG)
    assert r["anomalous"] is True
    assert r["contributing_metrics"][0]["metric"] == "kube_pod_container_status_restarts_total"


def test_streaming_score_at_t_uses_only_samples_up_to_t():
    n = 600
    cols = normal_cols(n, seed=13)
    cols["latency_ms"][400:] *= 4
    raw = make(cols)
    full = ad.score_raw(raw, CFG)
    for cut in (200, 399, 450):
        part = ad.score_raw(raw.truncate(raw.timestamps[cut]), CFG)
        np.testing.assert_allclose(part.score, full.score[: cut + 1], equal_nan=True)


def test_alarm_flags_and_episodes():
    s = np.array([np.nan, 1, 9, 9, np.nan, 9, 1, 9, 9, 9, 9, 1])
    flags = ad.alarm_flags(s, 3, 8.0)
    # 9, 9, (nan), 9 -> third point above threshold at index 5; NaN neither counts nor breaks
    assert list(np.where(flags)[0]) == [5, 9, 10]
    eps = ad.episodes(flags, s, 8.0)
    assert eps == [(2, 5, 5), (7, 9, 10)]
    assert ad.count_alarm_episodes(s, 3, 8.0) == 2
    assert ad.persistence_points(15, 60) == 4
    assert ad.persistence_points(60, 60) == 2


def test_calibrate_threshold_meets_the_target():
    rng = np.random.default_rng(0)
    scores = [np.abs(rng.standard_t(3, 5760)) for _i in range(10)]
    thr, rate = ad.calibrate_threshold(scores, 10.0, [4] * 10, 1.0)
    assert rate <= 1.0
    total = sum(ad.count_alarm_episodes(s, 4, thr - 0.05) for s in scores)
    assert total / 10.0 > 1.0     # a slightly lower threshold would break the target: the search is tight


def test_sensitivity_scales_threshold():
    assert ad.SENSITIVITY["high"] < ad.SENSITIVITY["medium"] < ad.SENSITIVITY["low"]


def test_timeline_is_returned_on_request():
    r = ad.analyze_target(make(normal_cols(200)), CFG, timeline=True)
    assert len(r["timeline"]) == 200
    assert r["timeline"][0]["score"] is None        # reference window: not scored
    assert r["timeline"][-1]["score"] is not None


@pytest.mark.parametrize("step", [15.0, 60.0])
def test_works_at_both_sampling_rates(step):
    n = int(4 * 3600 / step)
    cols = normal_cols(n, seed=17)
    onset = n // 2
    cols["latency_ms"][onset:] *= 5
    r = ad.analyze_target(make(cols, step=step), CFG)
    assert r["anomalous"] is True
    first = af.parse_timestamp(r["first_anomalous_at"])
    assert 0 <= first - (T0 + onset * step) <= 300


# ---------------------------------------------------------------- scale floors per metric kind (issue 16)

CFG2 = {"threshold": 8.0, "scoring": 2}


def _flat_pod(n, seed, latency):
    rng = np.random.default_rng(seed)
    return {
        "cpu_usage": 0.2 + rng.normal(0, 0.002, n),                      # cores, almost no spread
        "memory_working_set_bytes": 2e8 + rng.normal(0, 2e4, n),
        "latency_seconds": latency,
        "requests_per_second": 20 + rng.normal(0, 0.2, n),
    }


def test_near_constant_histogram_latency_does_not_saturate_the_score():
    n = 480
    rng = np.random.default_rng(21)
    # a percentile from histogram buckets: 4.96 ms throughout, then 7.4 ms for a while (the case)
    latency = np.full(n, 0.00496)
    latency[300:330] = 0.0074
    assert rng is not None
    r = ad.analyze_target(make(_flat_pod(n, 21, latency)), CFG2)
    assert r["anomalous"] is False
    assert r["max_score"] < 5.0          # 1.0.0 scored this at the cap (30)
    old = ad.analyze_target(make(_flat_pod(n, 21, latency)), CFG)
    assert old["max_score"] == af.Z_CLIP


def test_a_real_latency_rise_and_a_cpu_fault_still_alarm():
    n = 480
    rng = np.random.default_rng(22)
    latency = 0.05 * np.exp(rng.normal(0, 0.05, n))
    latency[320:] += 0.25                # +250 ms network delay
    r = ad.analyze_target(make(_flat_pod(n, 22, latency)), CFG2)
    assert r["anomalous"] is True and r["contributing_metrics"][0]["metric"] == "latency_seconds"
    cols = _flat_pod(n, 23, 0.05 * np.exp(rng.normal(0, 0.05, n)))
    cols["cpu_usage"][320:] += 0.8       # a stress process takes most of a core
    r = ad.analyze_target(make(cols), CFG2)
    assert r["anomalous"] is True and r["contributing_metrics"][0]["metric"] == "cpu_usage"


def test_no_latency_verdict_on_a_handful_of_requests():
    n = 480
    rng = np.random.default_rng(24)
    cols = _flat_pod(n, 24, 0.05 * np.exp(rng.normal(0, 0.05, n)))
    cols["requests_per_second"] = np.full(n, 0.05)    # 6 requests per 2-minute rate window
    cols["latency_seconds"][320:] = 0.8               # the p99 of six requests is whichever was slowest
    r = ad.analyze_target(make(cols), CFG2)
    assert r["anomalous"] is False
    cols["requests_per_second"] = np.full(n, 20.0)    # the same latency on real traffic is a verdict
    r = ad.analyze_target(make(cols), CFG2)
    assert r["anomalous"] is True


def test_two_independent_groups_agreeing_raise_an_alarm_one_weak_signal_does_not():
    n = 480
    rng = np.random.default_rng(25)
    base = 0.05 * np.exp(rng.normal(0, 0.03, n))
    one = _flat_pod(n, 25, base.copy())
    one["cpu_usage"][320:] += 0.13                    # 0.13 cores: z = 0.13 / 0.025 = 5.2 on its own
    r1 = ad.analyze_target(make(one), CFG2)
    assert r1["anomalous"] is False
    both = _flat_pod(n, 25, base.copy())
    both["cpu_usage"][320:] += 0.13
    both["memory_working_set_bytes"][320:] += 4.4e7   # and 42 MiB: z = 5.2 in an independent group (5.2 / 0.6 > 8)
    r2 = ad.analyze_target(make(both), CFG2)
    assert r2["anomalous"] is True


def test_hysteresis_keeps_one_episode_and_close_alarms_merge():
    s = np.array([1, 9, 9, 9, 5, 5, 9, 1, 1, 9, 9, 9, 1], dtype=float)
    plain = ad.alarm_flags(s, 2, 8.0)
    held = ad.alarm_flags(s, 2, 8.0, release=4.0)
    assert list(np.where(plain)[0]) == [2, 3, 10, 11]
    assert list(np.where(held)[0]) == [2, 3, 4, 5, 6, 10, 11]
    assert ad.count_alarm_episodes(s, 2, 8.0, 4.0) == 2
    assert ad.count_alarm_episodes(s, 2, 8.0, 4.0, merge_pts=5) == 1
    assert len(ad.episodes(held, s, 8.0, merge_pts=5)) == 1


def test_a_fault_inside_the_warm_up_window_is_not_learnt_as_normal():
    n = 480
    rng = np.random.default_rng(26)
    cols = _flat_pod(n, 26, 0.05 * np.exp(rng.normal(0, 0.05, n)))
    onset = 60                                        # minute 15 of a 30-minute reference window
    cols["cpu_usage"][onset:onset + 120] += 0.8
    r = ad.analyze_target(make(cols), CFG2)
    assert r["anomalous"] is True
    first = af.parse_timestamp(r["first_anomalous_at"])
    assert T0 + onset * 15 <= first <= T0 + onset * 15 + 300
    old = ad.analyze_target(make(cols), CFG)          # 1.0.0 scoring: learnt as normal
    assert old["anomalous"] is False or af.parse_timestamp(old["first_anomalous_at"]) > T0 + onset * 15 + 300
