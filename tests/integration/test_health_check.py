"""machinenativeops.platform.health_check and playbooks/health.yml against the lab.

The module runs through real ``ansible-playbook`` subprocesses (and once through ansible-runner, the AWX
path); the lab's controllers run on their manual clock so that fault effects and ages are exact, and the
module gets the controllers' time as ``reference_time``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab.controllers.testing import private_lab
from lab.services import load_services

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "integration" / "playbooks" / "health_run.yml"
NS = "health-it"
NODES = ["lab-node-1", "lab-node-2", "lab-node-3"]
WORKLOAD_FAULTS = ["crash_loop", "oom_killed", "image_pull_backoff", "unschedulable", "readiness_failing", "rollout_stuck"]


@pytest.fixture(scope="module")
def lab_endpoints(tmp_path_factory):
    """A lab of its own (overrides the session lab): these tests assert what a whole, otherwise untouched cluster
    reports, so no other test's namespaces, backups or firing alerts may be in it."""
    every_service = {service.name for service in load_services()}
    with private_lab(tmp_path_factory.mktemp("health-lab"), every_service, reuse=False) as endpoints:
        yield endpoints


def _env():
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / "build" / "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("PROMETHEUS_URL", None)
    env.pop("ALERTMANAGER_URL", None)
    env.pop("LAB_DIR", None)  # the module-scoped lab, never a lab named by the caller
    return env


def run_module(tmp_path, kubeconfig, check=False, **hc):
    """Run health_check through ansible-playbook; return the registered result."""
    result_file = tmp_path / f"result-{time.monotonic_ns()}.json"
    extra = {f"hc_{k}": v for k, v in hc.items()}
    extra.update(hc_kubeconfig=kubeconfig, hc_result_file=str(result_file), ansible_python_interpreter=sys.executable)
    vars_file = tmp_path / f"vars-{time.monotonic_ns()}.json"
    vars_file.write_text(json.dumps(extra))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(PLAYBOOK), "-e", f"@{vars_file}"]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(result_file.read_text())


def key(f):
    return (f["check"], f["kind"], f["namespace"], f["name"], f["severity"], f["reason"])


def comparable(result):
    """The result without the fields that legitimately differ between two runs."""
    return {k: v for k, v in result.items() if k not in ("duration_seconds", "api_calls", "api_calls_by_target", "invocation")}


# -- lab fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kube(lab_endpoints):
    from kubernetes import config  # noqa: PLC0415 - test dependency

    return config.new_client_from_config(config_file=lab_endpoints["apiserver"]["kubeconfig"], context="lab")


@pytest.fixture(scope="module")
def admin(lab_endpoints):
    from lab.controllers.client import ControllersAdmin  # noqa: PLC0415

    client = ControllersAdmin.from_endpoints(lab_endpoints)
    client.manual()
    try:
        yield client
    finally:
        client.real()


@pytest.fixture(scope="module")
def faults(lab_endpoints):
    from lab.faults import Faults  # noqa: PLC0415

    return Faults.from_endpoints(lab_endpoints)


def now_of(admin):
    return admin.status()["clock"]["now"]


def wait_for(what, predicate, admin, timeout=60):
    """Advance the lab clock second by second until ``predicate()`` holds (the controllers act on advance)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the lab did not reach: {what}")
        admin.advance(1)
        time.sleep(0.05)


def deployment_body(name, replicas=1, deadline=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "version": "v1"}},
                         "spec": {"containers": [{"name": "app", "image": f"registry.lab/{name}:1.0"}]}}}
    if deadline:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS, "labels": {"team": "health"}}, "spec": spec}


def all_ready(kube, namespace):
    from kubernetes import client  # noqa: PLC0415

    apps = client.AppsV1Api(kube)
    items = apps.list_namespaced_deployment(namespace).items
    return bool(items) and all((d.status.ready_replicas or 0) == d.spec.replicas and (d.status.updated_replicas or 0) == d.spec.replicas
                               and (d.status.observed_generation or 0) >= d.metadata.generation for d in items)


@pytest.fixture(scope="module")
def workloads(kube, admin, faults):
    """Namespace health-it with one Deployment per workload fault, all ready."""
    from kubernetes import client  # noqa: PLC0415

    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    names = [f.replace("_", "-") for f in WORKLOAD_FAULTS]
    if not core.list_namespace(field_selector=f"metadata.name={NS}").items:
        core.create_namespace({"metadata": {"name": NS}})
    for existing in apps.list_namespaced_deployment(NS).items:   # left over by an interrupted run on a reused lab
        faults.clear(namespace=NS, name=existing.metadata.name, target_kind="Deployment")
        apps.delete_namespaced_deployment(existing.metadata.name, NS)
    wait_for("no pods left in health-it", lambda: not core.list_namespaced_pod(NS).items, admin)
    for fault in WORKLOAD_FAULTS:
        apps.create_namespaced_deployment(NS, deployment_body(fault.replace("_", "-"), deadline=30 if fault == "rollout_stuck" else None))
    wait_for("all health-it Deployments ready", lambda: all_ready(kube, NS), admin)
    admin.advance(2)
    yield names
    for name in names:
        apps.delete_namespaced_deployment(name, NS)


def pod_names(kube, app):
    from kubernetes import client  # noqa: PLC0415

    return sorted(p.metadata.name for p in client.CoreV1Api(kube).list_namespaced_pod(NS, label_selector=f"app={app}").items)


# -- the tests, in order --------------------------------------------------------------------------------
def test_healthy_lab_yields_no_finding(tmp_path, lab_endpoints, workloads, admin):
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], reference_time=now_of(admin),
                        prometheus_url=lab_endpoints["prometheus"]["url"], fail_on="warning")
    assert not result.get("failed"), result.get("msg")
    assert result["status"] == "healthy"
    assert result["findings"] == []
    assert result["changed"] is False
    counts = result["summary"]["checks"]
    assert counts["workloads"] == {"ok": len(workloads), "warning": 0, "critical": 0, "unknown": 0}
    assert counts["pods"]["ok"] >= len(workloads) and counts["nodes"] == {"ok": 3, "warning": 0, "critical": 0, "unknown": 0}
    skipped = {s["check"]: s["reason"] for s in result["skipped_checks"]}
    assert set(skipped) == {"mesh", "endpoints"}, skipped
    assert "Istio is not in use" in skipped["mesh"]


def test_inline_kubeconfig_masks_only_its_secrets(tmp_path, lab_endpoints, workloads, admin):
    """An inline kubeconfig whose context names the namespace: the namespace and object names stay readable
    (no_log on kubeconfig used to mask them), its token appears nowhere in the result (issue 12 item 11)."""
    import yaml  # noqa: PLC0415

    inline = yaml.safe_load(Path(lab_endpoints["apiserver"]["kubeconfig"]).read_text())
    current = inline["current-context"]
    for context in inline["contexts"]:
        if context["name"] == current:
            context["context"]["namespace"] = NS
    tokens = [u["user"]["token"] for u in inline["users"] if u.get("user", {}).get("token")]
    assert tokens, "the lab kubeconfig is expected to hold a token"
    result = run_module(tmp_path, inline, reference_time=now_of(admin), namespaces=[NS], checks=["workloads"],
                        only_unhealthy=False)
    assert not result.get("failed"), result.get("msg")
    text = json.dumps(result)
    assert {f["namespace"] for f in result["findings"]} == {NS}, result["findings"]
    assert {f["name"] for f in result["findings"]} == set(workloads)
    assert "********" not in text
    for token in tokens:
        assert token not in text


def test_workload_faults_yield_exactly_the_expected_findings(tmp_path, lab_endpoints, kube, workloads, admin, faults):  # noqa: PLR0917
    from kubernetes import client  # noqa: PLC0415

    for fault in WORKLOAD_FAULTS:
        faults.inject(fault, namespace=NS, name=fault.replace("_", "-"), target_kind="Deployment")
    # a new revision for the stuck rollout: its pods never become ready
    client.AppsV1Api(kube).patch_namespaced_deployment("rollout-stuck", NS, {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}})
    admin.reconcile()
    admin.advance(5)     # OOM kill happened, the container is running (and ready) again; image pulls back off
    admin.advance(30)    # past progressDeadlineSeconds of rollout-stuck, before the next OOM kill (60s)
    reference = now_of(admin)
    expected = set()
    for app, pod_reason, pod_severity, dep in [
        ("crash-loop", "CrashLoopBackOff", "critical", ("critical", "ReplicasNotReady")),
        ("oom-killed", "OOMKilled", "warning", None),
        ("image-pull-backoff", "ImagePullBackOff", "critical", ("critical", "ReplicasNotReady")),
        ("unschedulable", "Unschedulable", "critical", ("critical", "ReplicasNotReady")),
        ("readiness-failing", "NotReady", "warning", ("critical", "ReplicasNotReady")),
    ]:
        for pod in pod_names(kube, app):
            expected.add(("pods", "Pod", NS, pod, pod_severity, pod_reason))
        if dep:
            expected.add(("workloads", "Deployment", NS, app, *dep))
    stuck_pods = pod_names(kube, "rollout-stuck")
    assert len(stuck_pods) == 2, stuck_pods   # the old ready pod and the new never-ready one
    expected.add(("workloads", "Deployment", NS, "rollout-stuck", "critical", "ProgressDeadlineExceeded"))
    ready = {p.metadata.name: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
             for p in client.CoreV1Api(kube).list_namespaced_pod(NS, label_selector="app=rollout-stuck").items}
    for pod, is_ready in ready.items():
        if not is_ready:
            expected.add(("pods", "Pod", NS, pod, "warning", "NotReady"))
    # the API server stamps creationTimestamp with its wall clock while the controllers run on the manual
    # clock: any Pending pod counts as too old here
    options = dict(namespaces=[NS], reference_time=reference, thresholds={"max_pending_seconds": 0})
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], **options)
    assert {key(f) for f in result["findings"]} == expected, json.dumps(result["findings"], indent=1)
    assert result["status"] == "critical"
    by_name = {f["name"]: f for f in result["findings"]}
    crash_pod = pod_names(kube, "crash-loop")[0]
    assert "in CrashLoopBackOff" in by_name[crash_pod]["message"] and by_name[crash_pod]["since"]
    assert "OOM-killed (exit code 137" in by_name[pod_names(kube, "oom-killed")[0]]["message"]
    assert "Insufficient cpu" in by_name[pod_names(kube, "unschedulable")[0]]["message"]
    assert "0/1 replicas ready" in by_name["crash-loop"]["message"]

    # check mode predicts the same result; a second run at the same reference time agrees
    checked = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], check=True, **options)
    again = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], **options)
    assert comparable(checked) == comparable(result) == comparable(again)
    assert checked["changed"] is again["changed"] is False

    # the module fails with fail_on=critical and still returns the findings
    failing = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], fail_on="critical", **options)
    assert failing["failed"] is True
    assert failing["msg"].startswith("platform health is critical: ")
    assert {key(f) for f in failing["findings"]} == expected

    # the label selector is evaluated by the API server: only the crash-loop Deployment's objects
    selected = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], label_selector="app=crash-loop", checks=["pods"], **options)
    assert {key(f) for f in selected["findings"]} == {k for k in expected if k[0] == "pods" and k[3].startswith("crash-loop-")}


def test_api_calls_do_not_depend_on_objects(tmp_path, lab_endpoints, workloads, admin):
    """One list per kind and scope: the request count with 2 namespaces is twice that of one, whatever they hold."""
    base = dict(checks=["workloads", "pods", "storage", "jobs"], reference_time=now_of(admin))
    one = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], namespaces=[NS], **base)
    empty = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], namespaces=["kube-public"], **base)
    two = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], namespaces=[NS, "kube-public"], **base)
    assert one["objects_evaluated"] > empty["objects_evaluated"] == 0
    lists = 7  # Deployment, StatefulSet, DaemonSet, Pod, PersistentVolumeClaim, Job, CronJob: one list each per scope
    assert two["api_calls"] - one["api_calls"] == lists
    assert one["api_calls"] == empty["api_calls"]


def test_clearing_the_faults_makes_the_namespace_healthy(tmp_path, lab_endpoints, kube, workloads, admin, faults):  # noqa: PLR0917
    from kubernetes import client  # noqa: PLC0415

    for fault in WORKLOAD_FAULTS:
        faults.clear(namespace=NS, name=fault.replace("_", "-"), target_kind="Deployment")
    # the OOM-killed container keeps its lastState until it restarts again: restart the pods of that Deployment
    core = client.CoreV1Api(kube)
    for pod in pod_names(kube, "oom-killed") + pod_names(kube, "crash-loop"):
        core.delete_namespaced_pod(pod, NS)
    wait_for("health-it healthy again", lambda: all_ready(kube, NS), admin, timeout=90)
    admin.advance(2)
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], namespaces=[NS], reference_time=now_of(admin),
                        checks=["workloads", "pods"])
    assert result["findings"] == [], json.dumps(result["findings"], indent=1)


def test_node_faults(tmp_path, lab_endpoints, admin, faults):
    faults.inject("node_not_ready", name="lab-node-1")
    faults.inject("node_memory_pressure", name="lab-node-2")
    faults.inject("node_disk_pressure", name="lab-node-3")
    faults.inject("node_pid_pressure", name="lab-node-3")
    try:
        admin.reconcile()
        admin.advance(2)
        result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], checks=["nodes"], reference_time=now_of(admin))
        assert {key(f) for f in result["findings"]} == {
            ("nodes", "Node", None, "lab-node-1", "critical", "NodeNotReady"),
            ("nodes", "Node", None, "lab-node-2", "warning", "MemoryPressure"),
            ("nodes", "Node", None, "lab-node-3", "warning", "DiskPressure"),
        }
        node3 = next(f for f in result["findings"] if f["name"] == "lab-node-3")
        assert "DiskPressure=True" in node3["message"] and "PIDPressure=True" in node3["message"]
    finally:
        for node in NODES:
            faults.clear(name=node)
        admin.reconcile()
        admin.advance(2)
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], checks=["nodes"], reference_time=now_of(admin))
    assert result["findings"] == []


def _schedule(name, fault=None):
    body = {"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": name, "namespace": "velero"},
            "spec": {"schedule": "0 3 * * *", "template": {"includedNamespaces": [NS], "ttl": "72h0m0s"}}}
    if fault:
        # the fault recorded from the start (lab.faults' annotation): every backup of the schedule inherits it
        body["metadata"]["annotations"] = {"lab.machinenativeops.io/faults": json.dumps([{"kind": fault[0], "since": "2026-01-01T00:00:00Z",
                                                                                          "params": fault[1]}])}
    return body


def test_backup_faults(tmp_path, lab_endpoints, kube, admin, faults):
    from kubernetes import client  # noqa: PLC0415

    custom = client.CustomObjectsApi(kube)

    def clean():
        for plural in ("schedules", "backups"):
            for leftover in custom.list_namespaced_custom_object("velero.io", "v1", "velero", plural)["items"]:
                custom.delete_namespaced_custom_object("velero.io", "v1", "velero", plural, leftover["metadata"]["name"])

    def phases():
        """schedule name -> phases of its backups, oldest first"""
        items = custom.list_namespaced_custom_object("velero.io", "v1", "velero", "backups")["items"]
        out = {}
        for b in sorted(items, key=lambda b: b["metadata"]["name"]):
            out.setdefault((b["metadata"].get("labels") or {}).get("velero.io/schedule-name"), []).append((b.get("status") or {}).get("phase"))
        return out

    clean()
    custom.create_namespaced_custom_object("velero.io", "v1", "velero", "schedules", _schedule("health-ok"))
    custom.create_namespaced_custom_object("velero.io", "v1", "velero", "schedules", _schedule("health-partial", ("backup_partially_failed", {})))
    custom.create_namespaced_custom_object("velero.io", "v1", "velero", "schedules",
                                           _schedule("health-failed", ("backup_failed", {"reason": "lab: bucket gone"})))
    final = ("Completed", "PartiallyFailed", "Failed")
    wait_for("the first backups finished", lambda: all(len(v) == 1 and v[0] in final for v in phases().values()) and len(phases()) == 3, admin)
    assert phases() == {"health-ok": ["Completed"], "health-partial": ["PartiallyFailed"], "health-failed": ["Failed"]}
    kubeconfig = lab_endpoints["apiserver"]["kubeconfig"]
    try:
        result = run_module(tmp_path, kubeconfig, checks=["backups"], reference_time=now_of(admin))
        assert {key(f) for f in result["findings"]} == {
            ("backups", "Schedule", "velero", "health-partial", "warning", "LastBackupPartiallyFailed"),
            ("backups", "Schedule", "velero", "health-failed", "warning", "LastBackupFailed"),
        }, json.dumps(result["findings"], indent=1)
        assert result["summary"]["checks"]["backups"] == {"ok": 2, "warning": 2, "critical": 0, "unknown": 0}   # + health-ok and the location
        failed = next(f for f in result["findings"] if f["name"] == "health-failed")
        assert "is Failed: lab: bucket gone" in failed["message"]

        # once max_backup_age has passed without a Completed backup, the schedules are critical. The API server
        # stamps creationTimestamp with its wall clock, the controllers use their manual clock: evaluate two
        # minutes after the later of both, with a one minute limit.
        later = max(datetime.now(UTC), datetime.fromisoformat(now_of(admin).replace("Z", "+00:00"))) + timedelta(minutes=2)
        result = run_module(tmp_path, kubeconfig, checks=["backups"], reference_time=later.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            thresholds={"max_backup_age": "1m"})
        assert {key(f) for f in result["findings"]} == {
            ("backups", "Schedule", "velero", "health-ok", "critical", "BackupTooOld"),
            ("backups", "Schedule", "velero", "health-partial", "critical", "NoCompletedBackup"),
            ("backups", "Schedule", "velero", "health-failed", "critical", "NoCompletedBackup"),
        }, json.dumps(result["findings"], indent=1)

        faults.inject("bsl_unavailable", name="default", namespace="velero", target_kind="BackupStorageLocation")
        admin.reconcile()
        admin.advance(1)
        result = run_module(tmp_path, kubeconfig, checks=["backups"], reference_time=now_of(admin))
        assert {key(f) for f in result["findings"]} == {
            ("backups", "Schedule", "velero", "health-partial", "warning", "LastBackupPartiallyFailed"),
            ("backups", "Schedule", "velero", "health-failed", "warning", "LastBackupFailed"),
            ("backups", "BackupStorageLocation", "velero", "default", "critical", "Unavailable"),
        }, json.dumps(result["findings"], indent=1)
    finally:
        faults.clear(name="default", namespace="velero", target_kind="BackupStorageLocation")
        clean()
        admin.reconcile()
        admin.advance(1)


def test_metric_faults_do_not_show_in_object_checks(tmp_path, lab_endpoints, kube, workloads, admin, faults):  # noqa: PLR0917
    """Metric faults change only what the exporters report; the object checks stay clean (they reach the
    report through Prometheus alerts once the lab's rules fire)."""
    from lab.faults import FAULT_KINDS  # noqa: PLC0415

    metric_faults = [k for k, v in FAULT_KINDS.items() if v["effect"] == "metrics"]
    for fault in metric_faults:
        faults.inject(fault, namespace=NS, name="crash-loop", target_kind="Deployment")
    try:
        admin.reconcile()
        admin.advance(2)
        result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], namespaces=[NS], reference_time=now_of(admin),
                            checks=["workloads", "pods", "nodes", "storage", "jobs"])
        assert result["findings"] == [], json.dumps(result["findings"], indent=1)
    finally:
        faults.clear(namespace=NS, name="crash-loop", target_kind="Deployment")


def test_alertmanager_alerts(tmp_path, lab_endpoints, admin):
    url = lab_endpoints["alertmanager"]["url"]
    alert = [{"labels": {"alertname": "HealthCheckProbe", "severity": "critical", "namespace": NS, "team": "health"},
              "annotations": {"summary": "integration test alert"},
              "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}]
    request = urllib.request.Request(url.rstrip("/") + "/api/v2/alerts", data=json.dumps(alert).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], checks=["alerts"], alertmanager_url=url, alert_labels={"team": "health"})
    assert [key(f) for f in result["findings"]] == [("alerts", "Alert", NS, "HealthCheckProbe", "critical", "HealthCheckProbe")]
    assert "integration test alert" in result["findings"][0]["message"]
    assert result["api_calls_by_target"]["alertmanager"] == 1


# -- error paths -------------------------------------------------------------------------------------------
def test_prometheus_down_is_a_finding(tmp_path, lab_endpoints):
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], checks=["alerts", "nodes"], prometheus_url="http://127.0.0.1:1",
                        prometheus_retries=0, fail_on="critical")
    assert result["failed"] is True
    findings = [f for f in result["findings"] if f["check"] == "alerts"]
    assert [(f["kind"], f["severity"], f["reason"]) for f in findings] == [("Prometheus", "critical", "CheckError")]
    assert findings[0]["message"].startswith("alerts check could not run: Prometheus request to http://127.0.0.1:1/api/v1/alerts failed: cannot connect")
    assert result["summary"]["checks"]["nodes"]["ok"] == 3   # the other checks ran


def test_cluster_down_fails_clearly(tmp_path):
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "down",
                                      "clusters": [{"name": "down", "cluster": {"server": "http://127.0.0.1:1"}}],
                                      "users": [{"name": "u", "user": {}}],
                                      "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}]}))
    result = run_module(tmp_path, str(kubeconfig), checks=["nodes"])
    assert result["failed"] is True
    assert result["msg"].startswith("cannot use the Kubernetes API: ")
    assert "cannot reach the API server http://127.0.0.1:1" in result["msg"]
    assert "findings" not in result


def test_bad_token_fails_and_readonly_token_is_enough(tmp_path, lab_endpoints):
    kubeconfig = lab_endpoints["apiserver"]["kubeconfig"]
    result = run_module(tmp_path, kubeconfig, context="lab-tls", api_key="not-the-token", checks=["nodes"])
    assert result["failed"] is True
    assert result["msg"].startswith("cannot use the Kubernetes API: ")
    assert "failed: 401 Unauthorized" in result["msg"]   # discovery or GET /version, whichever comes first
    assert "not-the-token" not in json.dumps(result)
    # the module only reads: the read-only token (403 on every write) runs every check
    result = run_module(tmp_path, kubeconfig, context="lab-readonly", checks=["workloads", "pods", "nodes", "backups"])
    assert not result.get("failed"), result.get("msg")
    assert not [f for f in result["findings"] if f["reason"] == "CheckError"]


def test_invalid_option(tmp_path, lab_endpoints):
    result = run_module(tmp_path, lab_endpoints["apiserver"]["kubeconfig"], thresholds={"max_backup_age": "soon"})
    assert result["failed"] is True
    assert result["msg"].startswith("invalid option: threshold max_backup_age: invalid duration 'soon': ")
    assert "1h30m, 7d or a number of seconds" in result["msg"]


# -- the playbook, as AWX runs it -------------------------------------------------------------------------
def test_health_playbook_through_ansible_runner(tmp_path, lab_endpoints, workloads):
    import ansible_runner  # noqa: PLC0415

    (tmp_path / "runner").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"), project_dir=str(ROOT), playbook=str(ROOT / "playbooks" / "health.yml"),
        inventory=str(ROOT / "inventories" / "lab" / "hosts.yml"),
        extravars={"lab_dir": lab_endpoints["lab_dir"], "health_namespaces": [NS], "health_checks": ["workloads", "pods", "nodes"]},
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
                 "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}, quiet=True)
    stdout = runner.stdout.read()
    assert runner.status == "successful", stdout
    assert "Platform health: HEALTHY" in stdout
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifact = stats[0]["event_data"]["artifact_data"]["health"]
    assert artifact["status"] == "healthy" and artifact["findings"] == []
    assert artifact["summary"]["checks"]["workloads"]["ok"] == len(workloads)


def test_health_playbook_reports_and_fails_on_findings(tmp_path, lab_endpoints, kube, admin, faults):
    faults.inject("crash_loop", namespace=NS, name="crash-loop", target_kind="Deployment")
    try:
        admin.reconcile()
        admin.advance(2)
        env = _env()
        extra = {"lab_dir": lab_endpoints["lab_dir"], "health_namespaces": [NS], "health_checks": ["pods"]}
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories" / "lab" / "hosts.yml"),
               str(ROOT / "playbooks" / "health.yml"), "-e", json.dumps(extra)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 2, proc.stdout
        pod = pod_names(kube, "crash-loop")[0]
        assert f"[CRITICAL] pods Pod {NS}/{pod}: CrashLoopBackOff" in proc.stdout
        assert "platform health is critical: 1 critical and 0 warning findings (health_fail_on=critical)" in proc.stdout
    finally:
        faults.clear(namespace=NS, name="crash-loop", target_kind="Deployment")
