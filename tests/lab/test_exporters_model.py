"""The metric generator on hand-made cluster objects (no servers): traffic split, ratios, faults, determinism."""

from __future__ import annotations

import json
import math

import pytest

from lab.controllers.logic import FAULTS_ANNOTATION
from lab.exporters.model import (
    ISTIO_BUCKETS_MS,
    Generator,
    Snapshot,
    exposition,
    histogram_quantile,
    lognormal_cdf,
    lognormal_params,
    parse_quantity,
)

T0 = 1_790_000_000.0


def deployment(name, *, ns="demo", app="reviews", version="v1", replicas=2, available=None, annotations=None):
    labels = {"app": app, "version": version}
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}},
        "status": {"replicas": replicas, "availableReplicas": replicas if available is None else available},
    }


def pod(name, dep, *, ns="demo", app="reviews", version="v1", annotations=None, restarts=0, cpu_limit="500m", mem_limit="256Mi"):
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {"app": app, "version": version},
                     "annotations": annotations or {}, "ownerReferences": [{"kind": "ReplicaSet", "name": f"{dep}-5d8f7c9b4"}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": app, "image": f"example/{app}:1", "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": cpu_limit, "memory": mem_limit}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": app, "restartCount": restarts, "state": {"running": {}}}]},
    }


def faults(*items):
    return {FAULTS_ANNOTATION: json.dumps([{"kind": k, "since": None, "params": p} for k, p in items])}


def mesh(weights=(90, 10), traffic=None, v2_annotations=None, v2_available=None):
    return Snapshot(
        pods=[pod("reviews-v1-5d8f7c9b4-aaaaa", "reviews-v1"), pod("reviews-v1-5d8f7c9b4-bbbbb", "reviews-v1"),
              pod("reviews-v2-5d8f7c9b4-ccccc", "reviews-v2", version="v2")],
        nodes=[{"metadata": {"name": "node-1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                           "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}}],
        deployments=[deployment("reviews-v1"), deployment("reviews-v2", version="v2", replicas=1, annotations=v2_annotations, available=v2_available)],
        services=[{"metadata": {"name": "reviews", "namespace": "demo"}, "spec": {"selector": {"app": "reviews"}}}],
        virtualservices=[{"metadata": {"name": "reviews", "namespace": "demo"}, "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": weights[0]},
            {"destination": {"host": "reviews.demo.svc.cluster.local", "subset": "v2"}, "weight": weights[1]}]}]}}],
        destinationrules=[{"metadata": {"name": "reviews", "namespace": "demo"}, "spec": {"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}],
        traffic=traffic if traffic is not None else {"services": {"demo/reviews": {
            "rps": 50, "default": {"error_ratio": 0.01, "p50_ms": 20, "p95_ms": 80},
            "versions": {"v2": {"error_ratio": 0.2, "p50_ms": 40, "p95_ms": 600}}}}},
    )


def run(snapshot, seconds=600.0, step=1.0, state=None):
    gen = Generator(snapshot, state)
    t = T0
    gen.advance(t)
    while t < T0 + seconds:
        t += step
        gen.advance(t)
    return gen, gen.render(t)


def select(series, name, **match):
    return [(labels, value) for labels, value in series.get(name, []) if all(labels.get(k) == v for k, v in match.items())]


def total(series, name, **match):
    return sum(value for _, value in select(series, name, **match))


def test_weights_split_the_configured_rps_and_error_ratios_hold():
    _, series = run(mesh())
    v1 = total(series, "istio_requests_total", reporter="destination", destination_version="v1")
    v2 = total(series, "istio_requests_total", reporter="destination", destination_version="v2")
    assert v1 + v2 == pytest.approx(50 * 600, rel=0.02)
    assert v2 / (v1 + v2) == pytest.approx(0.10, rel=0.05)
    ok_v2 = sum(v for lbl, v in select(series, "istio_requests_total", reporter="destination", destination_version="v2")
                if not lbl["response_code"].startswith("5"))
    assert ok_v2 / v2 == pytest.approx(0.8, abs=0.005)
    labels = select(series, "istio_requests_total", reporter="destination", destination_version="v2")[0][0]
    assert labels["destination_workload"] == "reviews-v2"
    assert labels["destination_service"] == "reviews.demo.svc.cluster.local"
    assert labels["destination_service_name"] == "reviews"
    assert labels["destination_app"] == "reviews"
    assert labels["connection_security_policy"] == "mutual_tls"
    # the source reporter sees the same requests
    assert total(series, "istio_requests_total", reporter="source") == pytest.approx(v1 + v2, rel=1e-6)


def test_latency_buckets_give_the_configured_p95():
    _, series = run(mesh())
    buckets = {}
    for labels, value in select(series, "istio_request_duration_milliseconds_bucket", reporter="destination", destination_version="v2"):
        buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
    bounds = list(ISTIO_BUCKETS_MS)
    cum = [buckets[repr(float(b)) if not float(b).is_integer() else f"{float(b):.1f}"] for b in bounds]
    count = buckets["+Inf"]
    p95 = histogram_quantile(0.95, tuple(bounds), [c / count for c in cum])
    mu, sigma = lognormal_params(40, 600)
    expected = histogram_quantile(0.95, tuple(bounds), [lognormal_cdf(b, mu, sigma) for b in bounds])
    assert 500 <= p95 <= 1000  # 600 ms falls in Istio's (500, 1000] bucket
    assert p95 == pytest.approx(expected, rel=0.01)
    sums = total(series, "istio_request_duration_milliseconds_sum", reporter="destination", destination_version="v2")
    assert sums / count == pytest.approx(math.exp(mu + sigma**2 / 2), rel=0.01)


def test_zero_traffic_has_no_istio_series_and_zero_weight_version_gets_nothing():
    traffic = {"services": {"demo/reviews": {"rps": 0}}}
    _, series = run(mesh(traffic=traffic), seconds=30)
    assert not series.get("istio_requests_total")
    _, series = run(mesh(weights=(100, 0)), seconds=30)
    assert select(series, "istio_requests_total", destination_version="v1")
    assert not select(series, "istio_requests_total", destination_version="v2")


def test_counters_are_monotonic_and_deterministic():
    snap = mesh(v2_annotations=faults(("error_burst", {"ratio": 0.5})))
    gen = Generator(snap)
    gen.advance(T0)
    previous: dict = {}
    for i in range(1, 40):
        gen.advance(T0 + i * 0.7)
        for name, items in gen.render(T0 + i * 0.7).items():
            if not name.endswith(("_total", "_bucket", "_count", "_sum")):
                continue
            for labels, value in items:
                key = (name, tuple(sorted(labels.items())))
                assert value >= previous.get(key, 0.0), key
                previous[key] = value
    _, first = run(mesh(), seconds=120)
    _, second = run(mesh(), seconds=120)
    assert exposition(first, app=False) == exposition(second, app=False)
    # a different schedule of scrapes integrates to the same totals (rates do not depend on the scrape interval)
    _, coarse = run(mesh(), seconds=120, step=5.0)
    assert total(coarse, "istio_requests_total") == pytest.approx(total(first, "istio_requests_total"), rel=0.01)


def test_state_round_trip_continues_counters():
    gen, _ = run(mesh(), seconds=60)
    state = json.loads(json.dumps(gen.state()))
    resumed = Generator(mesh(), state)
    resumed.advance(T0 + 120)
    gen.advance(T0 + 120)
    assert total(resumed.render(), "istio_requests_total") == pytest.approx(total(gen.render(), "istio_requests_total"), rel=1e-9)


def test_no_available_endpoint_means_503_uh_seen_by_the_source_only():
    _, series = run(mesh(v2_available=0), seconds=30)
    v2 = select(series, "istio_requests_total", destination_service_name="reviews", response_flags="UH")
    assert v2 and all(lbl["reporter"] == "source" and lbl["response_code"] == "503" for lbl, _ in v2)
    assert not select(series, "istio_requests_total", reporter="destination", destination_version="v2")


def test_without_virtualservice_traffic_follows_ready_pods():
    snap = mesh()
    snap.virtualservices = []
    _, series = run(snap, seconds=300)
    v1 = total(series, "istio_requests_total", reporter="destination", destination_version="v1")
    v2 = total(series, "istio_requests_total", reporter="destination", destination_version="v2")
    assert v1 / (v1 + v2) == pytest.approx(2 / 3, rel=0.03)


def test_deployment_faults_change_istio_and_app_metrics():
    burst = faults(("error_burst", {"ratio": 0.6}), ("latency_rise", {"factor": 10}))
    _, series = run(mesh(v2_annotations=burst), seconds=300)
    v2 = select(series, "istio_requests_total", reporter="destination", destination_version="v2")
    errors = sum(v for lbl, v in v2 if lbl["response_code"].startswith("5"))
    assert errors / sum(v for _, v in v2) == pytest.approx(0.6, abs=0.01)
    sums = total(series, "istio_request_duration_milliseconds_sum", reporter="destination", destination_version="v2")
    count = total(series, "istio_request_duration_milliseconds_count", reporter="destination", destination_version="v2")
    mu, sigma = lognormal_params(400, 6000)
    assert sums / count == pytest.approx(math.exp(mu + sigma**2 / 2), rel=0.02)
    app_errors = total(series, "http_requests_total", pod="reviews-v2-5d8f7c9b4-ccccc", status="500")
    app_all = total(series, "http_requests_total", pod="reviews-v2-5d8f7c9b4-ccccc")
    assert app_errors / app_all == pytest.approx(0.6, abs=0.01)
    assert not select(series, "http_requests_total", pod="reviews-v1-5d8f7c9b4-aaaaa", status="500") or \
        total(series, "http_requests_total", pod="reviews-v1-5d8f7c9b4-aaaaa", status="500") / \
        total(series, "http_requests_total", pod="reviews-v1-5d8f7c9b4-aaaaa") < 0.02


def _pod_with(*items):
    snap = mesh()
    snap.pods[0]["metadata"]["annotations"] = faults(*items)
    return snap


def test_cpu_spike_runs_the_container_at_its_limit():
    _, quiet = run(mesh(), seconds=120)
    _, spiked = run(_pod_with(("cpu_spike", {})), seconds=120)
    name = "reviews-v1-5d8f7c9b4-aaaaa"
    assert total(spiked, "container_cpu_usage_seconds_total", pod=name) / 120 == pytest.approx(0.5 * 0.97, rel=0.02)
    assert total(quiet, "container_cpu_usage_seconds_total", pod=name) / 120 < 0.1


def test_memory_leak_grows_and_stays_below_the_limit():
    snap = _pod_with(("memory_leak", {"bytes_per_minute": 32 * 1024 * 1024}))
    gen = Generator(snap)
    name = "reviews-v1-5d8f7c9b4-aaaaa"
    readings = []
    for minute in range(0, 12, 2):
        gen.advance(T0 + minute * 60)
        readings.append(total(gen.render(), "container_memory_working_set_bytes", pod=name))
    assert readings == sorted(readings) and readings[-1] > readings[0] + 100 * 1024 * 1024
    assert readings[-1] < parse_quantity("256Mi")


def test_crash_loop_and_oom_kill_add_restarts_and_reasons():
    snap = _pod_with(("crash_loop", {"interval_seconds": 10}))
    snap.pods[1]["metadata"]["annotations"] = faults(("oom_kill", {"period_seconds": 20}))
    gen = Generator(snap)
    gen.advance(T0)
    first = gen.render(T0)
    gen.advance(T0 + 100)
    later = gen.render(T0 + 100)
    a, b = "reviews-v1-5d8f7c9b4-aaaaa", "reviews-v1-5d8f7c9b4-bbbbb"
    assert total(later, "kube_pod_container_status_restarts_total", pod=a) > total(first, "kube_pod_container_status_restarts_total", pod=a)
    assert total(later, "kube_pod_container_status_restarts_total", pod=a) >= 10
    assert select(later, "kube_pod_container_status_waiting_reason", pod=a, reason="CrashLoopBackOff")
    assert total(later, "kube_pod_container_status_restarts_total", pod=b) >= 5
    assert select(later, "kube_pod_container_status_last_terminated_reason", pod=b, reason="OOMKilled")
    # a restart count the controllers wrote in the pod status is reported as is
    snap = mesh()
    snap.pods[2]["status"]["containerStatuses"][0]["restartCount"] = 7
    _, series = run(snap, seconds=5)
    assert total(series, "kube_pod_container_status_restarts_total", pod="reviews-v2-5d8f7c9b4-ccccc") == 7


def test_network_saturation_and_disk_fill():
    snap = _pod_with(("network_saturation", {"bytes_per_second": 1e8}), ("disk_fill", {"ratio": 0.9, "duration_seconds": 60}))
    _, series = run(snap, seconds=120)
    name = "reviews-v1-5d8f7c9b4-aaaaa"
    assert total(series, "container_network_transmit_bytes_total", pod=name) == pytest.approx(1e8 * 120, rel=0.01)
    usage = total(series, "container_fs_usage_bytes", pod=name)
    limit = total(series, "container_fs_limit_bytes", pod=name)
    assert usage / limit == pytest.approx(0.9, abs=0.001)


def test_kube_state_series_follow_the_objects():
    snap = mesh(v2_available=0)
    snap.pods[2]["status"]["phase"] = "Pending"
    snap.nodes[0]["status"]["conditions"].append({"type": "MemoryPressure", "status": "True"})
    _, series = run(snap, seconds=5)
    assert total(series, "kube_deployment_status_replicas_available", deployment="reviews-v2") == 0
    assert total(series, "kube_deployment_status_replicas_available", deployment="reviews-v1") == 2
    assert total(series, "kube_pod_status_phase", pod="reviews-v2-5d8f7c9b4-ccccc", phase="Pending") == 1
    assert total(series, "kube_pod_status_phase", pod="reviews-v2-5d8f7c9b4-ccccc", phase="Running") == 0
    assert not select(series, "container_cpu_usage_seconds_total", pod="reviews-v2-5d8f7c9b4-ccccc")
    assert total(series, "kube_node_status_condition", node="node-1", condition="MemoryPressure", status="true") == 1
    assert total(series, "kube_pod_container_resource_limits", pod="reviews-v1-5d8f7c9b4-aaaaa", resource="cpu") == 0.5


def test_diurnal_traffic_follows_the_daily_curve_and_averages_to_rps():
    from lab.exporters.model import diurnal  # noqa: PLC0415

    snap = mesh(traffic={"services": {"demo/reviews": {"rps": 10, "diurnal": True}}})
    day = 86400.0
    night, afternoon = day * 4 / 24, day * 16 / 24  # 04:00 and 16:00 UTC
    assert diurnal(night) < 0.7 and diurnal(afternoon) > 1.3
    counts = {}
    for label, start in (("night", night), ("afternoon", afternoon)):
        gen = Generator(snap)
        gen.advance(T0 - T0 % day + start)
        gen.advance(T0 - T0 % day + start + 600)
        counts[label] = total(gen.render(), "istio_requests_total", reporter="destination")
    assert counts["afternoon"] > 1.8 * counts["night"]
    expected_night = 10 * 600 * sum(diurnal(T0 - T0 % day + night + s) for s in range(600)) / 600
    assert counts["night"] == pytest.approx(expected_night, rel=0.02)
    # the curve averages to 1 over a day, so the configured rps is the daily mean
    assert sum(diurnal(m * 60.0) for m in range(1440)) / 1440 == pytest.approx(1.0, abs=1e-6)
