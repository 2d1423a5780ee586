"""``Controllers`` used in-process: switching controllers off, full passes, determinism."""

from __future__ import annotations

import pytest

from lab.controllers.clock import Clock
from lab.controllers.core import CONTROLLERS, Controllers, enabled_from_env
from lab.controllers.kube import Kube
from lab.controllers.testing import private_lab

pytestmark = pytest.mark.lab


def test_enabled_controllers_from_env(monkeypatch):
    monkeypatch.setenv("LAB_CONTROLLERS_DISABLE", "velero,cronjobs")
    monkeypatch.delenv("LAB_CONTROLLERS", raising=False)
    assert set(enabled_from_env()) == set(CONTROLLERS) - {"velero", "cronjobs"}
    monkeypatch.setenv("LAB_CONTROLLERS", "nodes,pods")
    assert enabled_from_env() == ["nodes", "pods"]


@pytest.fixture(scope="module")
def api_only(tmp_path_factory):
    # only the emulator: the controllers under test run in this process
    with private_lab(tmp_path_factory.mktemp("inproc-lab"), {"apiserver"}) as endpoints:
        yield endpoints["apiserver"]["kubeconfig"]


def deployment(ns, name, replicas):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_unknown_controller_is_rejected(api_only):
    with pytest.raises(ValueError, match="unknown controllers: nope"):
        Controllers(api_only, Clock.manual(), enabled=["nope"])


def test_switched_off_controllers_do_nothing(api_only):
    kube = Kube(api_only)
    kube.create("/api/v1/namespaces", {"metadata": {"name": "off"}})
    kube.create("/apis/apps/v1/namespaces/off/deployments", deployment("off", "web", 2))
    only_nodes = Controllers(api_only, Clock.manual("2030-01-01T00:00:00Z"), enabled=["nodes"], watch=False)
    only_nodes.reconcile_once()
    assert len(kube.list("/api/v1/nodes")[0]) == 3
    assert kube.list("/apis/apps/v1/namespaces/off/replicasets")[0] == []
    # Deployments and ReplicaSets on, pods off: pods are created and bound, but no kubelet reports them
    no_pods = Controllers(api_only, Clock.manual("2030-01-01T00:00:00Z"), enabled=["nodes", "deployments", "replicasets"], watch=False)
    no_pods.reconcile_once()
    no_pods.advance(5)
    pods, _ = kube.list("/api/v1/namespaces/off/pods")
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("lab-node-") for p in pods)
    assert all(p["status"].get("phase") == "Pending" and not p["status"].get("containerStatuses") for p in pods)
    dep = kube.get("/apis/apps/v1/namespaces/off/deployments/web")
    assert dep["status"].get("readyReplicas", 0) == 0
    # with pods on, the same objects come up
    full = Controllers(api_only, Clock.manual("2030-01-01T00:00:00Z"), enabled=["nodes", "deployments", "replicasets", "pods"], watch=False)
    full.reconcile_once()
    full.advance(1)
    dep = kube.get("/apis/apps/v1/namespaces/off/deployments/web")
    assert dep["status"]["readyReplicas"] == 2


def test_a_settled_cluster_needs_no_writes(api_only):
    kube = Kube(api_only)
    kube.create("/api/v1/namespaces", {"metadata": {"name": "calm"}})
    kube.create("/apis/apps/v1/namespaces/calm/deployments", deployment("calm", "app", 3))
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    kube.create("/apis/apps/v1/namespaces/calm/statefulsets", {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": template}})
    kube.create("/apis/apps/v1/namespaces/calm/daemonsets", {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": template}})
    job_template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    kube.create("/apis/batch/v1/namespaces/calm/jobs", {"metadata": {"name": "once"}, "spec": {"template": job_template}})
    kube.create("/apis/batch/v1/namespaces/calm/cronjobs", {"metadata": {"name": "tick"}, "spec": {
        "schedule": "* * * * *", "jobTemplate": {"spec": {"template": job_template}}}})
    ctl = Controllers(api_only, Clock.manual("2030-01-01T00:00:00Z"),
                      enabled=["nodes", "deployments", "replicasets", "pods", "statefulsets", "daemonsets", "jobs", "cronjobs"], watch=False)
    ctl.reconcile_once()
    ctl.advance(90)
    assert kube.get("/apis/batch/v1/namespaces/calm/jobs/once")["status"]["succeeded"] == 1
    assert kube.get("/apis/apps/v1/namespaces/calm/statefulsets/db")["status"]["readyReplicas"] == 2
    assert kube.get("/apis/batch/v1/namespaces/calm/cronjobs/tick")["status"]["lastSuccessfulTime"]
    writes = ctl.stats["writes"]
    result = ctl.reconcile_once()
    assert result["reconciles"] > 0 and ctl.stats["writes"] == writes
    assert ctl.stats["errors"] == 0, ctl.stats["last_error"]
    status = ctl.status()
    assert status["objects"]["Pod"] >= 3 and status["clock"]["now"] == "2030-01-01T00:01:30Z"


def test_pod_names_are_deterministic(api_only):
    kube = Kube(api_only)
    names = []
    for ns in ("det-a", "det-b"):
        kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment(ns, "same", 3))
        ctl = Controllers(api_only, Clock.manual("2030-01-01T00:00:00Z"), enabled=["nodes", "deployments", "replicasets", "pods"], watch=False)
        ctl.reconcile_once()
        names.append(sorted(p["metadata"]["name"] for p in kube.list(f"/api/v1/namespaces/{ns}/pods")[0]))
    assert names[0] == names[1] and len(set(names[0])) == 3
