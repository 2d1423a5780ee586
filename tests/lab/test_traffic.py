"""Flagger-style canary queries against the real lab Prometheus over the generated Istio metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from lab.exporters.model import ISTIO_BUCKETS_MS, histogram_quantile, lognormal_cdf, lognormal_params
from lab.servers.testing import create_istio_app, delete_namespace, prom_query, prom_scalar, wait_for

pytestmark = pytest.mark.lab

SUCCESS_RATE = (
    'sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{ns}",'
    'destination_workload=~"{wl}",response_code!~"5.*"}}[1m])) / '
    'sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{ns}",destination_workload=~"{wl}"}}[1m]))'
)
P95 = (
    'histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{{reporter="destination",'
    'destination_workload_namespace="{ns}",destination_workload=~"{wl}"}}[1m])) by (le))'
)


def expected_p95(p50: float, p95: float) -> float:
    """What histogram_quantile interpolates in Istio's buckets for a lognormal with this p50/p95."""
    mu, sigma = lognormal_params(p50, p95)
    return histogram_quantile(0.95, ISTIO_BUCKETS_MS, [lognormal_cdf(b, mu, sigma) for b in ISTIO_BUCKETS_MS])


@pytest.fixture(scope="module")
def canary(kubeconfig, traffic):
    ns = f"canary-{uuid.uuid4().hex[:6]}"
    # Traffic settings first, so the very first requests already follow them.
    traffic.set(ns, "reviews", rps=40, error_ratio=0.01, p50_ms=20, p95_ms=90)
    traffic.set(ns, "reviews", version="v2", error_ratio=0.12, p50_ms=60, p95_ms=700)
    traffic.set(ns, "ratings", rps=0)
    create_istio_app(kubeconfig, ns, "reviews", versions={"v1": 2, "v2": 1}, weights={"v1": 75, "v2": 25})
    create_istio_app(kubeconfig, ns, "ratings", versions={"v1": 1, "v2": 1}, weights={"v1": 100, "v2": 0})
    yield ns
    traffic.clear(ns, "reviews")
    traffic.clear(ns, "ratings")
    delete_namespace(kubeconfig, ns)


def test_success_rate_per_version_matches_the_configured_error_ratio(prometheus_url, canary):
    def close(workload, target):
        value = prom_scalar(prometheus_url, SUCCESS_RATE.format(ns=canary, wl=workload))
        return value is not None and abs(value - target) < 0.01 and value

    assert wait_for(lambda: close("reviews-v2", 0.88), what="v2 success rate 0.88")
    assert wait_for(lambda: close("reviews-v1", 0.99), what="v1 success rate 0.99")


def test_p95_latency_per_version(prometheus_url, canary):
    def close(workload, target):
        value = prom_scalar(prometheus_url, P95.format(ns=canary, wl=workload))
        return value is not None and abs(value - target) / target < 0.05 and value

    v2 = wait_for(lambda: close("reviews-v2", expected_p95(60, 700)), what="v2 p95")
    assert 500 < v2 <= 1000  # the configured 700 ms lies in Istio's (500, 1000] bucket
    v1 = wait_for(lambda: close("reviews-v1", expected_p95(20, 90)), what="v1 p95")
    assert 50 < v1 <= 100


def test_split_follows_the_virtualservice_weights(prometheus_url, canary):
    query = ('sum by (destination_version) (increase(istio_requests_total{reporter="destination",'
             f'destination_service_namespace="{canary}",destination_service_name="reviews"}}[1m]))')

    def share():
        result = {r["metric"]["destination_version"]: float(r["value"][1]) for r in prom_query(prometheus_url, query)}
        total = sum(result.values())
        return total > 200 and abs(result.get("v2", 0) / total - 0.25) < 0.03 and result

    assert wait_for(share, what="25 % of the requests on v2")


def test_zero_traffic_gives_an_empty_result_not_zero(prometheus_url, canary):
    # reviews has data by now, ratings (0 rps) and the 0-weight canary of reviews... have none
    wait_for(lambda: prom_query(prometheus_url, SUCCESS_RATE.format(ns=canary, wl="reviews-v1")), what="reviews data")
    assert prom_query(prometheus_url, SUCCESS_RATE.format(ns=canary, wl="ratings-v1")) == []
    assert prom_query(prometheus_url, P95.format(ns=canary, wl="ratings-v1")) == []
    assert prom_query(prometheus_url, f'istio_requests_total{{destination_service_namespace="{canary}",destination_service_name="ratings"}}') == []


def test_traffic_change_is_picked_up_and_cli_round_trip(prometheus_url, canary, kubeconfig):
    argv = [sys.executable, "-m", "lab", "traffic", "--kubeconfig", kubeconfig, "set", "-n", canary, "-s", "ratings", "--rps", "20",
            "--error-ratio", "0.3"]
    subprocess.run(argv, check=True, capture_output=True)
    shown = json.loads(subprocess.run([sys.executable, "-m", "lab", "traffic", "--kubeconfig", kubeconfig, "show"],
                                      check=True, capture_output=True, text=True).stdout)
    assert shown["services"][f"{canary}/ratings"]["rps"] == 20
    assert shown["services"][f"{canary}/ratings"]["default"]["error_ratio"] == 0.3

    def close():
        value = prom_scalar(prometheus_url, SUCCESS_RATE.format(ns=canary, wl="ratings-v1"))
        return value is not None and abs(value - 0.7) < 0.02 and value

    assert wait_for(close, what="ratings success rate 0.7 after the CLI change")
    # the 0-weight version still gets nothing
    assert prom_query(prometheus_url, SUCCESS_RATE.format(ns=canary, wl="ratings-v2")) == []
    bad = subprocess.run([sys.executable, "-m", "lab", "traffic", "--kubeconfig", kubeconfig, "set", "-n", canary, "-s", "ratings",
                          "--error-ratio", "1.5"], check=False, capture_output=True, text=True)
    assert bad.returncode == 1 and "error_ratio" in bad.stderr
