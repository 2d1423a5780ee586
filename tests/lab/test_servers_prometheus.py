"""The lab Prometheus and Alertmanager are the real Debian binaries, wired to the exporters and the webhook receiver."""

from __future__ import annotations

import pytest

from lab.servers.testing import http_json, prom_query, wait_for

pytestmark = pytest.mark.lab


def test_prometheus_scrapes_both_exporter_jobs(prometheus_url):
    build = http_json(f"{prometheus_url}/api/v1/status/buildinfo")["data"]
    assert build["version"].startswith("2.")
    flags = http_json(f"{prometheus_url}/api/v1/status/flags")["data"]
    assert flags["rules.alert.resend-delay"] == "1s" and flags["web.enable-admin-api"] == "true"

    def targets_up():
        result = prom_query(prometheus_url, "up")
        return {r["metric"]["job"]: r["value"][1] for r in result} == {"lab-exporters": "1", "machine-native-ops": "1"}

    wait_for(targets_up, what="both exporter targets up")
    # the nodes of the emulated cluster show up through kube-state-metrics names
    nodes = prom_query(prometheus_url, 'kube_node_status_condition{condition="Ready",status="true"} == 1')
    assert nodes and all(r["metric"]["job"] == "lab-exporters" for r in nodes)


def test_alertmanager_routes_to_the_webhook(alertmanager_url, webhook, prometheus_url):
    status = http_json(f"{alertmanager_url}/api/v2/status")
    assert status["versionInfo"]["version"].startswith("0.")
    assert webhook["url"] in status["config"]["original"]
    assert "group_wait: 1s" in status["config"]["original"]
    ams = http_json(f"{prometheus_url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [a["url"].split("/api/")[0] for a in ams] == [alertmanager_url]
