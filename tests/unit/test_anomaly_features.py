"""Feature engineering: parsing, counters, grids, baselines, canonical mapping (hostile input included)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af


def series(cols, times=None, target="ns/pod"):
    n = len(next(iter(cols.values())))
    times = np.arange(n, dtype=float) * 15.0 + 1_700_000_000.0 if times is None else np.asarray(times, dtype=float)
    names = sorted(cols)
    return af.RawSeries(target, times, names, np.vstack([np.asarray(cols[c], dtype=float) for c in names]).T)


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize(("value", "expected"), [
    (1_700_000_000, 1_700_000_000.0),
    ("1700000000.5", 1_700_000_000.5),
    (1_700_000_000_000, 1_700_000_000.0),          # milliseconds
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
    ("2023-11-14 22:13:20", 1_700_000_000.0),        # naive = UTC
])
def test_parse_timestamp_accepts_unix_ms_and_iso(value, expected):
    assert af.parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", None, True, float("nan"), "inf"])
def test_parse_timestamp_rejects_garbage(value):
    with pytest.raises(af.FeatureError):
        af.parse_timestamp(value)


def test_to_float_hostile_values():
    assert math.isnan(af.to_float("abc"))
    assert math.isnan(af.to_float(float("inf")))
    assert math.isnan(af.to_float("1e400"))
    assert math.isnan(af.to_float(None))
    assert math.isnan(af.to_float(""))
    assert af.to_float(True) == 1.0
    assert af.to_float("2.5") == 2.5
    assert af.to_float(1e200) == 1e200


def test_samples_to_series_merges_and_drops_non_numeric_columns():
    samples = [
        {"target": "a", "timestamp": 0, "metrics": {"cpu": 1}},
        {"target": "a", "timestamp": 15, "metrics": {"cpu": 2}},
        {"target": "a", "timestamp": 15, "metrics": {"mem": 7}},   # same time, other metric: merged (long format)
        {"target": "a", "timestamp": 30, "metrics": {"cpu": 3, "note": "x"}},
        {"target": "b", "timestamp": 0, "metrics": {"weird": None}},
    ]
    notes = []
    out = af.samples_to_series(samples, warnings_out=notes, now=100)
    assert notes == []
    assert sorted(out) == ["a", "b"]
    a = out["a"]
    assert list(a.timestamps) == [0.0, 15.0, 30.0]
    assert a.columns == ["cpu", "mem"]       # "note" never numeric -> dropped
    assert list(a.values[:, 0]) == [1.0, 2.0, 3.0]
    assert a.values[1, 1] == 7.0 and math.isnan(a.values[0, 1])
    assert out["b"].columns == []


def test_out_of_order_duplicate_and_future_samples_are_ignored_with_warnings():
    now = 1_700_000_000.0
    samples = [{"target": "a", "timestamp": now - 600 + 60 * i, "metrics": {"cpu": float(i)}} for i in range(5)]
    samples.append({"target": "a", "timestamp": now - 600, "metrics": {"cpu": 99.0}})                 # out of order
    samples.append({"target": "a", "timestamp": now - 600 + 240, "metrics": {"cpu": 98.0}})           # duplicate
    samples.append({"target": "a", "timestamp": now + 6 * 365 * 86400, "metrics": {"cpu": 97.0}})     # six years ahead
    samples.append({"target": "a", "timestamp": now + 60, "metrics": {"cpu": 5.0}})                   # skew: accepted
    notes = []
    out = af.samples_to_series(samples, warnings_out=notes, now=now)
    a = out["a"]
    assert list(a.values[:, 0]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert a.timestamps[-1] == now + 60
    kinds = dict((n["kind"], n["count"]) for n in notes)
    assert kinds == {"out_of_order": 1, "duplicate": 1, "future": 1}
    assert all(n["target"] == "a" and "target a" in n["message"] for n in notes)
    assert "sample #5" in next(n for n in notes if n["kind"] == "out_of_order")["message"]


@pytest.mark.parametrize("bad", [[{"timestamp": 1, "metrics": {}}], [{"target": "a", "metrics": {}}], ["not a dict"],
                                 [{"target": "a", "timestamp": 1, "metrics": [1, 2]}]])
def test_samples_to_series_names_the_bad_sample(bad):
    with pytest.raises(af.FeatureError, match="sample #0"):
        af.samples_to_series(bad)


def test_read_metrics_file_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("timestamp,target,cpu,unknown_col\n0,a,1,x\n15,a,2,3\n")
    samples = af.read_metrics_file(str(csv_path))
    assert [s["metrics"]["cpu"] for s in samples] == ["1", "2"]
    out = af.samples_to_series(samples)
    assert out["a"].columns == ["cpu", "unknown_col"]
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"timestamp": "2024-01-01T00:00:00Z", "pod": "p1", "metrics": {"mem": 5}}) + "\n\n"
                  + json.dumps({"timestamp": "2024-01-01T00:00:15Z", "pod": "p1", "mem": 6}) + "\n")
    samples = af.read_metrics_file(str(jl), target_column="pod")
    out = af.samples_to_series(samples)
    assert list(out["p1"].values[:, 0]) == [5.0, 6.0]


def test_read_metrics_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 1, "target": "a"}\n{not json\n')
    with pytest.raises(af.FeatureError, match="line 2"):
        af.read_metrics_file(str(bad))
    nots = tmp_path / "nots.csv"
    nots.write_text("time,target,cpu\n1,a,1\n")
    with pytest.raises(af.FeatureError, match="no 'timestamp' column"):
        af.read_metrics_file(str(nots))
    with pytest.raises(af.FeatureError, match="cannot read"):
        af.read_metrics_file(str(tmp_path / "missing.csv"))
    single = tmp_path / "single.csv"
    single.write_text("timestamp,cpu\n1,1\n")
    with pytest.raises(af.FeatureError, match="default_target"):
        af.read_metrics_file(str(single))
    assert af.read_metrics_file(str(single), default_target="only")[0]["target"] == "only"


# ---------------------------------------------------------------- counters and grids

def test_counter_to_rate_handles_resets():
    col = np.array([0.0, 10.0, 20.0, 5.0, 15.0, np.nan, 35.0])
    rate, resets, floor = af.counter_to_rate(col, 1.0, 1)
    assert list(rate[1:5]) == [10.0, 10.0, 5.0, 10.0]   # the drop to 5 counts as +5 (reset), never negative
    assert math.isnan(rate[5])
    assert rate[6] == pytest.approx(20.0)               # increase across the missing sample lands on the next one
    assert resets[3] == 1.0 and resets.sum() == 1.0
    assert floor == pytest.approx(5.0)


def test_column_kind():
    rng = np.random.default_rng(0)
    assert af.column_kind("foo_total", np.array([1.0, 1.0, 1.0])) == "counter"
    assert af.column_kind("requests", np.cumsum(rng.uniform(1, 2, 50))) == "counter"
    assert af.column_kind("mem", 100 + rng.normal(0, 1, 50)) == "gauge"
    assert af.column_kind("flag", np.zeros(50)) == "constant"
    assert af.column_kind("temp", np.cumsum(rng.uniform(1, 2, 50)) - 1000) == "gauge"   # negative values: not a counter
    assert af.column_kind("x", np.array([1.0, np.nan])) == "gauge"


def test_prepare_buckets_samples_to_the_nearest_grid_point_and_marks_gaps():
    raw = series({"g": [1.0, 2.0, 3.0, 4.0]}, times=[0.0, 15.0, 31.0, 75.0])
    prep = af.prepare(raw, min_history=60, step=15, smooth=0)
    assert prep.step == 15.0
    assert list(prep.times - prep.times[0]) == [0, 15, 30, 45, 60, 75]
    # the sample at 31 s belongs to the 30 s bucket (tolerance 7.5 s), not a step later
    assert list(prep.observed) == [True, True, True, False, False, True]
    assert prep.gaps == 2 and prep.merged == 0


def test_one_second_jitter_neither_drops_nor_delays_samples():
    rng = np.random.default_rng(3)
    n = 600
    times = 60.0 * np.arange(n) + rng.uniform(-1.0, 1.0, n)
    times[0] = 0.4
    raw = series({"g": -np.arange(n, dtype=float)}, times=times)   # negative: a gauge
    prep = af.prepare(raw, min_history=1800, smooth=0)
    assert prep.step == 60.0
    assert prep.merged == 0 and prep.gaps == 0
    assert prep.observed.all() and prep.times.size == n
    # every sample sits at its own bucket: a trailing median of 3 points lags by one point, never more
    np.testing.assert_array_equal(prep.values[2:, 0], -np.arange(1, n - 1, dtype=float))


def test_two_samples_in_one_bucket_keep_the_latest():
    raw = series({"g": [1.0, 2.0, 3.0, 4.0]}, times=[0.0, 15.0, 20.0, 30.0])
    prep = af.prepare(raw, min_history=60, step=15, smooth=0)
    assert prep.merged == 1
    assert list(prep.observed) == [True, True, True]
    # 15 s and 20 s share the 15 s bucket: 3.0 (the later) is kept, 2.0 is not used
    # (a 3-point trailing median of [1, 3, 4] is 3; with 2.0 kept it would be 2)
    assert prep.values[2, 0] == 3.0


def test_prepare_is_prefix_invariant():
    """Streaming: the prepared values up to t do not depend on samples after t."""
    rng = np.random.default_rng(1)
    n = 400
    cols = {"c_total": np.cumsum(rng.uniform(0, 5, n)), "g": rng.normal(10, 1, n), "spiky": rng.normal(0, 1, n)}
    cols["c_total"][300:] -= cols["c_total"][299]          # a counter reset after the prefix
    cols["g"][rng.random(n) < 0.05] = np.nan
    raw = series(cols)
    full = af.prepare(raw, min_history=1800)
    for cut in (130, 250, 399):
        part = af.prepare(raw.truncate(raw.timestamps[cut]), min_history=1800)
        np.testing.assert_array_equal(part.values, full.values[: cut + 1])
        assert part.kinds == full.kinds


def test_prepare_refuses_absurd_spans():
    raw = series({"g": [1.0, 2.0, 3.0]}, times=[0.0, 15.0, 1e9])
    with pytest.raises(af.FeatureError, match="grid points"):
        af.prepare(raw, max_points=1000)


def test_rolling_baseline_is_causal_and_lagged():
    rng = np.random.default_rng(2)
    v = rng.normal(0, 1, (200, 2))
    med, mad = af.rolling_baseline(v, 40, 5, 10, stride=4)
    w = v.copy()
    w[150:] += 100.0      # a change from row 150 on
    med2, _mad2 = af.rolling_baseline(w, 40, 5, 10, stride=4)
    np.testing.assert_array_equal(med[:155], med2[:155])   # rows < 150 + gap never see the change
    assert np.all(np.isnan(med[:5]))
    assert np.nanmax(np.abs(med)) < 1.0 and np.nanmin(mad) > 0


def test_nanmedian_last_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 3, 17))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[0, 0, :] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmedian(a, axis=2)
    np.testing.assert_allclose(af.nanmedian_last(a), ref, equal_nan=True)


def test_robust_z_is_clipped_for_huge_values():
    z = af.robust_z(np.array([1e250, -1e250, 1.0]), np.zeros(3), np.full(3, 1e-9))
    assert list(z) == [af.Z_CLIP, -af.Z_CLIP, af.Z_CLIP]


# ---------------------------------------------------------------- canonical mapping and classifier features

def test_map_columns_known_names_overrides_and_unknown():
    cols = ["container_cpu_usage_seconds_total", "Memory Usage", "p95_ms", "queue_depth", "kube_pod_container_status_restarts_total"]
    mapping = af.map_columns(cols)
    assert mapping["cpu"] == ["container_cpu_usage_seconds_total"]
    assert mapping["memory"] == ["Memory Usage"]
    assert mapping["restarts"] == ["kube_pod_container_status_restarts_total"]
    assert "latency" not in mapping
    mapping = af.map_columns(cols, {"latency": "p95_ms", "requests": ["nope"]})
    assert mapping["latency"] == ["p95_ms"] and "requests" not in mapping
    with pytest.raises(af.FeatureError, match="unknown canonical metric"):
        af.map_columns(cols, {"gpu": "x"})


def test_classifier_features_shape_and_missing_metrics():
    rng = np.random.default_rng(4)
    n = 300
    raw = series({"cpu_usage": rng.normal(1, 0.05, n), "memory": np.r_[rng.normal(100, 1, 200), np.linspace(100, 200, 100)]})
    prep = af.prepare(raw, min_history=1800)
    mapping = af.map_columns(prep.columns)
    canon = af.canonical_matrix(prep, mapping)
    vec, mapped = af.classifier_features(canon, prep.resets, prep.observed, prep.step, 200, 260)
    assert vec.shape == (len(af.CLASSIFIER_FEATURE_NAMES),)
    assert mapped == 2
    names = af.CLASSIFIER_FEATURE_NAMES
    assert vec[names.index("memory_z")] > 10          # the memory ramp is visible
    assert abs(vec[names.index("cpu_z")]) < 5
    assert math.isnan(vec[names.index("latency_z")])  # unmapped -> NaN (the classifier handles missing values)


def test_error_ratio_from_counters():
    n = 100
    raw = series({"requests_total": np.arange(n) * 100.0, "errors_total": np.arange(n) * 5.0})
    prep = af.prepare(raw, min_history=600)
    canon = af.canonical_matrix(prep, af.map_columns(prep.columns))
    ratio = canon[:, af.CANONICAL_FEATURES.index("error_ratio")]
    assert np.nanmax(np.abs(ratio[5:] - 0.05)) < 1e-9


# ---------------------------------------------------------------- Prometheus helpers

def test_parse_duration_and_selector():
    assert af.parse_duration("2h") == 7200
    assert af.parse_duration("1h30m") == 5400
    assert af.parse_duration(90) == 90
    for bad in ("soon", "-5", "5x"):
        with pytest.raises(af.FeatureError):
            af.parse_duration(bad)
    assert af.build_selector(["shop", "pay"], None, 'cluster="a"') == 'namespace=~"shop|pay",pod!="",cluster="a"'
    with pytest.raises(af.FeatureError, match="namespace"):
        af.build_selector(['x"}) or vector(1) #'])
    with pytest.raises(af.FeatureError, match="double quotes"):
        af.build_selector(None, 'a"b')
    q = af.render_query(af.DEFAULT_PROMETHEUS_METRIC_MAP["cpu_usage"], 'namespace=~"shop"', "2m")
    assert q == 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",namespace=~"shop"}[2m]))'
    assert af.promql_duration(120) == "2m" and af.promql_duration(90) == "90s"
