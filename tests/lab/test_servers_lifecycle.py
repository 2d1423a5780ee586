"""A private lab: history imported at ``up`` and preloaded into a running lab, then ``down`` leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

import pytest

from lab import history, orchestrator
from lab import traffic as lab_traffic
from lab.servers.testing import create_istio_app, prom_query, prom_scalar, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def process_groups() -> dict[int, list[int]]:
    """Live (non-zombie) processes by process group."""
    groups: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_history_at_up_preload_and_down(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HISTORY_HOURS", "1")
    monkeypatch.setenv("LAB_HISTORY_STEP", "30")
    lab_dir = tmp_path / "lab"
    endpoints = orchestrator.up(lab_dir)
    pids = {p.stem: int(p.read_text()) for p in (lab_dir / "pids").glob("*.pid")}
    ports = [endpoints[name]["port"] for name in ("postgres", "webhook", "alertmanager", "exporters", "prometheus")]
    try:
        assert {"postgres", "webhook", "alertmanager", "exporters", "prometheus"} <= set(pids)
        assert all(port_open(port) for port in ports)
        prom = endpoints["prometheus"]["url"]
        kubeconfig = endpoints["apiserver"]["kubeconfig"]

        # 1. LAB_HISTORY_HOURS at up: the nodes that existed at start have an hour of kube-state-metrics series
        assert endpoints["prometheus"]["history_imported"] is True
        assert endpoints["exporters"]["history"]["samples"] > 0
        old = prom_query(prom, 'kube_node_status_condition{condition="Ready",status="true"} offset 50m')
        assert old and all(r["metric"]["job"] == "lab-exporters" for r in old)

        # 2. preload into the running lab: workloads created now get an hour before the live data
        lab_traffic.set_traffic(kubeconfig, "hist", "api", rps=10, error_ratio=0.05)
        create_istio_app(kubeconfig, "hist", "api", versions={"v1": 1}, weights={"v1": 100})
        flows_url = endpoints["exporters"]["url"] + "/debug/flows"

        def reachable():
            with urllib.request.urlopen(flows_url, timeout=5) as resp:
                return any(f["reachable"] and f["labels"]["destination_service_namespace"] == "hist" for f in json.load(resp))

        wait_for(reachable, what="the exporters to see the hist/api flow")
        written = history.preload(lab_dir, 1.0, step=30)
        assert written["samples"] > 0
        restarted = json.loads((lab_dir / "endpoints.json").read_text())["prometheus"]
        assert restarted["url"] == prom  # same port after the restart
        past = 'sum(increase(istio_requests_total{reporter="destination",destination_service_namespace="hist"}[20m] offset 30m))'
        value = wait_for(lambda: prom_scalar(prom, past), what="preloaded history")
        assert value == pytest.approx(10 * 1200, rel=0.1)
        ratio = prom_scalar(prom, 'sum(increase(istio_requests_total{destination_service_namespace="hist",response_code!~"5.."}[20m] offset 30m))'
                                  ' / sum(increase(istio_requests_total{destination_service_namespace="hist"}[20m] offset 30m))')
        assert ratio == pytest.approx(0.95, abs=0.01)
        # the live series go on after the restart
        wait_for(lambda: prom_query(prom, 'istio_requests_total{destination_service_namespace="hist"}'), what="live series")
        pids = {p.stem: int(p.read_text()) for p in (lab_dir / "pids").glob("*.pid")}
    finally:
        orchestrator.down(lab_dir)

    groups = process_groups()
    left = {name: groups[pid] for name, pid in pids.items() if pid in groups}
    assert left == {}, f"processes left after down: {left}"
    assert [p for p in ports if port_open(p)] == []
    assert not (lab_dir / "endpoints.json").exists()
    assert os.listdir(lab_dir / "pids") == []
