"""The guide's alert rules fire in the lab Prometheus and reach the webhook receiver through Alertmanager."""

from __future__ import annotations

import uuid

import pytest

from lab.servers.testing import create_istio_app, delete_namespace, http_json, prom_query, running_pods, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def shop(kubeconfig):
    ns = f"alerts-{uuid.uuid4().hex[:6]}"
    create_istio_app(kubeconfig, ns, "checkout", versions={"v1": 2})
    pods = wait_for(lambda: len(running_pods(kubeconfig, ns, "app=checkout")) == 2 and running_pods(kubeconfig, ns, "app=checkout"),
                    what="two running checkout pods")
    yield ns, sorted(p["metadata"]["name"] for p in pods)
    delete_namespace(kubeconfig, ns)


def notifications_for(webhook, alertname, **labels):
    found = []
    for item in http_json(webhook["alerts_url"]):
        for alert in (item.get("payload") or {}).get("alerts") or []:
            lbl = alert.get("labels") or {}
            if lbl.get("alertname") == alertname and all(lbl.get(k) == v for k, v in labels.items()):
                found.append(alert)
    return found


def test_rules_are_the_guides_with_short_for(prometheus_url):
    groups = http_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert {"HighErrorRate", "HighLatency", "HighCPUUsage", "HighMemoryUsage"} <= set(rules)
    assert 'http_requests_total{job="machine-native-ops",status=~"5.."}[5m]' in rules["HighErrorRate"]["query"]
    assert rules["HighErrorRate"]["labels"]["severity"] == "critical"
    assert "histogram_quantile(0.95" in rules["HighLatency"]["query"] and rules["HighLatency"]["query"].rstrip().endswith("> 1")
    assert all(r["duration"] <= 5 for r in rules.values())


def test_error_burst_fires_high_error_rate_and_reaches_the_webhook(prometheus_url, webhook, lab_faults, shop):
    ns, pods = shop
    target = pods[0]
    # the pod serves without errors first: its app metrics are scraped, no 5xx series
    wait_for(lambda: prom_query(prometheus_url, f'http_requests_total{{job="machine-native-ops",namespace="{ns}",pod="{target}"}}'),
             what="app metrics of the pod")
    assert prom_query(prometheus_url, f'http_requests_total{{namespace="{ns}",status=~"5.."}}') == []
    lab_faults.inject("error_burst", namespace=ns, name=target, target_kind="Pod", params={"ratio": 0.5})
    alerts = wait_for(lambda: notifications_for(webhook, "HighErrorRate", namespace=ns, pod=target), timeout=90,
                      what="HighErrorRate notification at the webhook")
    assert alerts[0]["status"] == "firing"
    assert alerts[0]["labels"]["severity"] == "critical"
    assert "Error rate is" in alerts[0]["annotations"]["description"]
    # only the faulty pod
    assert not notifications_for(webhook, "HighErrorRate", namespace=ns, pod=pods[1])
    lab_faults.clear(namespace=ns, name=target, fault_kind="error_burst", target_kind="Pod")


def test_memory_leak_fires_high_memory_usage(prometheus_url, webhook, lab_faults, shop):
    ns, pods = shop
    target = pods[1]
    lab_faults.inject("memory_leak", namespace=ns, name=target, target_kind="Pod", params={"rate": 2 * 1024**3})
    alerts = wait_for(lambda: notifications_for(webhook, "HighMemoryUsage", namespace=ns, pod=target), timeout=90,
                      what="HighMemoryUsage notification at the webhook")
    assert alerts[0]["status"] == "firing"
    value = prom_query(prometheus_url, f'container_memory_usage_bytes{{namespace="{ns}",pod="{target}"}}')
    assert float(value[0]["value"][1]) > 0.9 * 256 * 1024**2
    lab_faults.clear(namespace=ns, name=target, fault_kind="memory_leak", target_kind="Pod")


def test_latency_rise_fires_high_latency(prometheus_url, webhook, lab_faults, shop):
    ns, pods = shop
    target = pods[0]
    lab_faults.inject("latency_rise", namespace=ns, name=target, target_kind="Pod", params={"factor": 50})
    alerts = wait_for(lambda: notifications_for(webhook, "HighLatency", namespace=ns, pod=target), timeout=90,
                      what="HighLatency notification at the webhook")
    assert alerts[0]["status"] == "firing" and alerts[0]["labels"]["severity"] == "warning"
    p95 = prom_query(prometheus_url, f'histogram_quantile(0.95, rate(http_request_duration_seconds_bucket{{namespace="{ns}",pod="{target}"}}[5m]))')
    assert float(p95[0]["value"][1]) > 1
    lab_faults.clear(namespace=ns, name=target, fault_kind="latency_rise", target_kind="Pod")


def test_webhook_records_and_clears(webhook):
    http_json(webhook["url"], "POST", {"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "Manual"}}]})
    assert notifications_for(webhook, "Manual")
    http_json(webhook["alerts_url"], "DELETE")
    assert not notifications_for(webhook, "Manual")
