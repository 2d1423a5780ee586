"""lab.faults: the fault annotation contract, the Python API and ``python -m lab fault``."""

from __future__ import annotations

import json
import subprocess
import sys

import kubernetes
import pytest

from lab.controllers.client import ControllersAdmin
from lab.controllers.kube import KINDS
from lab.controllers.testing import private_lab
from lab.faults import ANNOTATION, FAULT_KINDS, FaultError, Faults

pytestmark = pytest.mark.lab

CONTROLLER_FAULTS = {"crash_loop", "oom_killed", "image_pull_backoff", "unschedulable", "node_not_ready", "node_memory_pressure",
                     "readiness_failing", "rollout_stuck", "backup_partially_failed", "backup_failed", "bsl_unavailable"}
METRIC_FAULTS = {"cpu_spike", "memory_leak", "oom_kill", "latency_rise", "error_burst", "network_saturation", "disk_fill"}


def test_fault_kinds_follow_the_contract():
    assert CONTROLLER_FAULTS <= set(FAULT_KINDS)
    assert METRIC_FAULTS <= set(FAULT_KINDS)
    for kind in CONTROLLER_FAULTS:
        assert FAULT_KINDS[kind]["effect"] == "controller", kind
    for kind in METRIC_FAULTS:
        assert FAULT_KINDS[kind]["effect"] == "metrics", kind
    for kind, info in FAULT_KINDS.items():
        assert info["targets"] and set(info["targets"]) <= set(KINDS), kind
        assert info["help"], kind
    assert "Deployment" in FAULT_KINDS["crash_loop"]["targets"] and "Pod" in FAULT_KINDS["crash_loop"]["targets"]
    assert FAULT_KINDS["node_not_ready"]["targets"] == ["Node"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with private_lab(tmp_path_factory.mktemp("faults-lab"), {"apiserver", "controllers"}) as endpoints:
        admin = ControllersAdmin.from_endpoints(endpoints)
        admin.manual("2031-05-01T12:00:00Z")
        try:
            yield endpoints
        finally:
            admin.real()


@pytest.fixture(scope="module")
def k8s(lab):
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=lab["apiserver"]["kubeconfig"], client_configuration=config)
    api = kubernetes.client.ApiClient(config)
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": "f"}})
    apps.create_namespaced_deployment("f", {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    core.create_namespaced_pod("f", {"metadata": {"name": "lonely"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    return core, apps


def annotation(obj) -> list | None:
    raw = (obj.metadata.annotations or {}).get(ANNOTATION)
    return json.loads(raw) if raw is not None else None


def test_inject_records_the_annotation_with_the_controllers_clock(lab, k8s):
    _, apps = k8s
    faults = Faults.from_endpoints(lab)
    result = faults.inject("crash_loop", "f", "web", params={"interval": 5})
    assert result["target_kind"] == "Deployment"
    assert annotation(apps.read_namespaced_deployment("web", "f")) == [
        {"kind": "crash_loop", "since": "2031-05-01T12:00:00Z", "params": {"interval": 5}}]
    faults.inject("crash_loop", "f", "web")  # injecting again replaces, never duplicates
    faults.inject("readiness_failing", "f", "web")
    kinds = [f["kind"] for f in annotation(apps.read_namespaced_deployment("web", "f"))]
    assert kinds == ["crash_loop", "readiness_failing"]
    active = faults.active("f")
    assert [(a["target_kind"], a["name"], len(a["faults"])) for a in active] == [("Deployment", "web", 2)]
    assert faults.clear("f", "web", "crash_loop") == ["crash_loop"]
    assert [f["kind"] for f in annotation(apps.read_namespaced_deployment("web", "f"))] == ["readiness_failing"]
    assert faults.clear("f", "web") == ["readiness_failing"]
    assert annotation(apps.read_namespaced_deployment("web", "f")) is None
    assert faults.active("f") == []


def test_targets_are_resolved_and_checked(lab, k8s):
    core, _ = k8s
    faults = Faults.from_endpoints(lab)
    assert faults.inject("crash_loop", "f", "lonely")["target_kind"] == "Pod"  # no Deployment of that name
    assert annotation(core.read_namespaced_pod("lonely", "f"))[0]["kind"] == "crash_loop"
    assert faults.inject("node_disk_pressure", None, "lab-node-1")["target_kind"] == "Node"
    assert annotation(core.read_node("lab-node-1"))[0]["kind"] == "node_disk_pressure"
    faults.clear(None, "lab-node-1")
    faults.clear("f", "lonely")
    with pytest.raises(FaultError, match="unknown fault"):
        faults.inject("meteor_strike", "f", "web")
    with pytest.raises(FaultError, match="applies to Node"):
        faults.inject("node_not_ready", "f", "web", target_kind="Deployment")
    with pytest.raises(FaultError, match="no target f/ghost"):
        faults.inject("crash_loop", "f", "ghost")


def lab_cli(*args):
    return subprocess.run([sys.executable, "-m", "lab", "fault", *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_lists_injects_and_clears(lab, k8s):
    _, apps = k8s
    listing = lab_cli("--list")
    assert listing.returncode == 0
    for kind in CONTROLLER_FAULTS | METRIC_FAULTS:
        assert kind in listing.stdout
    as_json = json.loads(lab_cli("--list", "--json").stdout)
    assert as_json == FAULT_KINDS

    out = lab_cli("oom_killed", "--dir", lab["lab_dir"], "--namespace", "f", "--name", "web", "--param", "interval=30", "--param", "note=x")
    assert out.returncode == 0, out.stderr
    assert "injected oom_killed on Deployment f/web" in out.stdout
    assert annotation(apps.read_namespaced_deployment("web", "f"))[0]["params"] == {"interval": 30, "note": "x"}
    out = lab_cli("active", "--dir", lab["lab_dir"], "-n", "f")
    assert json.loads(out.stdout)[0]["faults"][0]["kind"] == "oom_killed"
    out = lab_cli("clear", "oom_killed", "--dir", lab["lab_dir"], "--namespace", "f", "--name", "web")
    assert out.returncode == 0 and "cleared: oom_killed" in out.stdout
    assert annotation(apps.read_namespaced_deployment("web", "f")) is None
    bad = lab_cli("crash_loop", "--dir", lab["lab_dir"], "--namespace", "f", "--name", "ghost")
    assert bad.returncode == 1 and "no target f/ghost" in bad.stderr
