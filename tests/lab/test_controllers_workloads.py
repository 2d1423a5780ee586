"""The controllers against the real API emulator over HTTP, driven by the manual clock.

Each test works in its own namespace; objects are created and read with the official
``kubernetes`` client, and ``kubectl`` for rollout undo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

from lab.controllers.client import ControllersAdmin
from lab.controllers.testing import private_lab
from lab.faults import Faults

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with private_lab(tmp_path_factory.mktemp("ctl-lab")) as endpoints:
        admin = ControllersAdmin.from_endpoints(endpoints)
        admin.manual()
        try:
            yield endpoints
        finally:
            admin.real()


@pytest.fixture(scope="module")
def api(lab):
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=lab["apiserver"]["kubeconfig"], client_configuration=config)
    return kubernetes.client.ApiClient(config)


@pytest.fixture(scope="module")
def core(api):
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api):
    return kubernetes.client.AppsV1Api(api)


@pytest.fixture(scope="module")
def dyn(api):
    return kubernetes.dynamic.DynamicClient(api)


@pytest.fixture(scope="module")
def batch(api):
    return kubernetes.client.BatchV1Api(api)


@pytest.fixture(scope="module")
def clock(lab):
    return ControllersAdmin.from_endpoints(lab)


@pytest.fixture(scope="module")
def faults(lab):
    return Faults.from_endpoints(lab)


@pytest.fixture
def ns(core, request):
    name = "t-" + request.node.name.replace("_", "-").lower()[:50].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    return name


def deployment(name, replicas=3, image="nginx:1.25", *, surge=1, unavailable=0, deadline=None, labels=None):
    lbl = {"app": name, **(labels or {})}
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": lbl}, "spec": {"containers": [{"name": "app", "image": image}]}}}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def pods_of(core, ns, selector=None):
    return sorted(core.list_namespaced_pod(ns, label_selector=selector).items, key=lambda p: p.metadata.name)


def ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def cond(obj, ctype):
    return next((c for c in obj.status.conditions or [] if c.type == ctype), None)


# -- nodes ---------------------------------------------------------------------------------------
def test_nodes_are_created_ready_with_capacity(core, clock):
    clock.reconcile()
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert {"lab-node-1", "lab-node-2", "lab-node-3"} <= set(nodes)
    node = nodes["lab-node-1"]
    assert cond(node, "Ready").status == "True"
    for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert cond(node, ctype).status == "False"
    assert node.status.capacity["cpu"] == "8" and node.status.allocatable["pods"] == "110"
    assert node.status.node_info.kubelet_version.startswith("v1.")


# -- deployments ---------------------------------------------------------------------------------
def test_deployment_creates_replicaset_and_pods_that_become_ready(core, apps, clock, ns):
    apps.create_namespaced_deployment(ns, deployment("web", replicas=3, labels={"version": "v1"}))
    clock.advance(0)
    rss = apps.list_namespaced_replica_set(ns).items
    assert len(rss) == 1
    rs = rss[0]
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{h}" and rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.metadata.owner_references[0].kind == "Deployment" and rs.metadata.owner_references[0].controller
    pods = pods_of(core, ns)
    assert len(pods) == 3
    for pod in pods:
        assert pod.metadata.name.startswith(rs.metadata.name + "-") and len(pod.metadata.name) == len(rs.metadata.name) + 6
        assert pod.metadata.labels == {"app": "web", "version": "v1", "pod-template-hash": h}
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        assert pod.status.phase == "Running" and not ready(pod)
    assert {p.spec.node_name for p in pods} == {"lab-node-1", "lab-node-2", "lab-node-3"}  # round robin
    clock.advance(1)
    pods = pods_of(core, ns)
    assert all(ready(p) for p in pods)
    pod = pods[0]
    cs = pod.status.container_statuses[0]
    assert cs.ready and cs.restart_count == 0 and cs.state.running.started_at is not None
    assert pod.status.pod_ip.startswith("10.244.") and pod.status.start_time is not None
    dep = apps.read_namespaced_deployment("web", ns)
    s = dep.status
    assert (s.replicas, s.ready_replicas, s.updated_replicas, s.available_replicas) == (3, 3, 3, 3)
    assert s.unavailable_replicas is None and s.observed_generation == dep.metadata.generation
    assert cond(dep, "Available").status == "True"
    assert cond(dep, "Progressing").reason == "NewReplicaSetAvailable"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "1"


def test_rolling_update_honours_surge_and_unavailability_then_kubectl_rollout_undo(core, apps, clock, ns, lab):
    apps.create_namespaced_deployment(ns, deployment("api", replicas=4, surge=1, unavailable=0))
    clock.advance(1)
    first_rs = apps.list_namespaced_replica_set(ns).items[0].metadata.name
    apps.patch_namespaced_deployment("api", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}})
    seen_max, seen_min_ready = 0, 99
    for _ in range(12):
        clock.advance(0)
        pods = pods_of(core, ns)
        seen_max = max(seen_max, len(pods))
        seen_min_ready = min(seen_min_ready, sum(ready(p) for p in pods))
        clock.advance(1)
    assert seen_max == 5 and seen_min_ready >= 4  # maxSurge 1, maxUnavailable 0
    dep = apps.read_namespaced_deployment("api", ns)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert cond(dep, "Progressing").reason == "NewReplicaSetAvailable" and dep.status.updated_replicas == 4
    images = {p.spec.containers[0].image for p in pods_of(core, ns)}
    assert images == {"nginx:1.26"}
    rss = {r.metadata.name: r for r in apps.list_namespaced_replica_set(ns).items}
    assert rss[first_rs].spec.replicas == 0 and len(rss) == 2

    out = subprocess.run(["kubectl", "--kubeconfig", lab["apiserver"]["kubeconfig"], "-n", ns, "rollout", "undo", "deployment/api"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "rolled back" in out.stdout
    clock.advance(0)
    for _ in range(12):
        clock.advance(1)
    dep = apps.read_namespaced_deployment("api", ns)
    assert dep.spec.template.spec.containers[0].image == "nginx:1.25"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    rss = {r.metadata.name: r for r in apps.list_namespaced_replica_set(ns).items}
    assert rss[first_rs].metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert rss[first_rs].spec.replicas == 4
    assert {p.spec.containers[0].image for p in pods_of(core, ns)} == {"nginx:1.25"}
    history = subprocess.run(["kubectl", "--kubeconfig", lab["apiserver"]["kubeconfig"], "-n", ns, "rollout", "history", "deployment/api"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]


def test_scale_subresource_and_pause(core, apps, clock, ns):
    apps.create_namespaced_deployment(ns, deployment("svc", replicas=2))
    clock.advance(1)
    apps.patch_namespaced_deployment_scale("svc", ns, {"spec": {"replicas": 5}})
    clock.advance(1)
    assert len(pods_of(core, ns)) == 5 and apps.read_namespaced_deployment("svc", ns).status.ready_replicas == 5
    apps.patch_namespaced_deployment_scale("svc", ns, {"spec": {"replicas": 1}})
    clock.advance(0)
    assert len(pods_of(core, ns)) == 1
    apps.patch_namespaced_deployment("svc", ns, {"spec": {"paused": True}})
    apps.patch_namespaced_deployment("svc", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}})
    clock.advance(5)
    assert len(apps.list_namespaced_replica_set(ns).items) == 1
    assert cond(apps.read_namespaced_deployment("svc", ns), "Progressing").reason == "DeploymentPaused"
    apps.patch_namespaced_deployment("svc", ns, {"spec": {"paused": False}})
    clock.advance(0)
    clock.advance(3)
    assert {p.spec.containers[0].image for p in pods_of(core, ns)} == {"nginx:2"}
    assert apps.read_namespaced_deployment("svc", ns).metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_rollout_stuck_exceeds_the_progress_deadline_and_recovers_when_cleared(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("pay", replicas=2, deadline=30))
    clock.advance(1)
    faults.inject("rollout_stuck", ns, "pay")
    apps.patch_namespaced_deployment("pay", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:bad"}]}}}})
    clock.advance(10)
    dep = apps.read_namespaced_deployment("pay", ns)
    assert cond(dep, "Progressing").status == "True"
    assert dep.status.ready_replicas == 2  # old pods keep serving (maxUnavailable 0)
    clock.advance(40)
    dep = apps.read_namespaced_deployment("pay", ns)
    prog = cond(dep, "Progressing")
    assert (prog.status, prog.reason) == ("False", "ProgressDeadlineExceeded")
    assert "has timed out progressing" in prog.message
    assert faults.clear(ns, "pay") == ["rollout_stuck"]
    clock.advance(0)
    clock.advance(5)
    dep = apps.read_namespaced_deployment("pay", ns)
    assert cond(dep, "Progressing").reason == "NewReplicaSetAvailable"
    assert {p.spec.containers[0].image for p in pods_of(core, ns)} == {"nginx:bad"}


# -- pod faults ----------------------------------------------------------------------------------
def test_crash_loop_and_clear(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("cart", replicas=2))
    clock.advance(1)
    faults.inject("crash_loop", ns, "cart", params={"interval": 10})
    clock.advance(0)
    clock.advance(35)
    pods = pods_of(core, ns)
    for pod in pods:
        cs = pod.status.container_statuses[0]
        assert cs.state.waiting.reason == "CrashLoopBackOff"
        assert cs.last_state.terminated.reason == "Error" and cs.last_state.terminated.exit_code == 1
        assert cs.restart_count == 4 and not cs.ready and not ready(pod)
    dep = apps.read_namespaced_deployment("cart", ns)
    assert (dep.status.ready_replicas or 0) == 0 and cond(dep, "Available").status == "False"
    faults.clear(ns, "cart", "crash_loop")
    clock.advance(0)
    clock.advance(1)
    pods = pods_of(core, ns)
    assert all(ready(p) for p in pods) and all(p.status.container_statuses[0].restart_count == 4 for p in pods)
    assert apps.read_namespaced_deployment("cart", ns).status.ready_replicas == 2


def test_oom_killed_restarts_with_reason(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("mem", replicas=1))
    clock.advance(1)
    faults.inject("oom_killed", ns, "mem", params={"interval": 30})
    clock.advance(0)
    clock.advance(65)
    cs = pods_of(core, ns)[0].status.container_statuses[0]
    assert cs.last_state.terminated.reason == "OOMKilled" and cs.last_state.terminated.exit_code == 137
    assert cs.restart_count == 3


def test_image_pull_backoff(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("img", replicas=1))
    faults.inject("image_pull_backoff", ns, "img")
    clock.advance(0)
    pod = pods_of(core, ns)[0]
    assert pod.status.container_statuses[0].state.waiting.reason == "ErrImagePull"
    clock.advance(2)
    pod = pods_of(core, ns)[0]
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    assert pod.status.phase == "Pending" and not ready(pod)
    faults.clear(ns, "img")
    clock.advance(0)
    clock.advance(1)
    assert ready(pods_of(core, ns)[0])


def test_readiness_failing_on_a_single_pod(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("rd", replicas=2))
    clock.advance(1)
    victim = pods_of(core, ns)[0].metadata.name
    result = faults.inject("readiness_failing", ns, victim, target_kind="Pod")
    assert result["target_kind"] == "Pod"
    clock.advance(0)
    pods = {p.metadata.name: p for p in pods_of(core, ns)}
    assert not ready(pods[victim]) and pods[victim].status.phase == "Running"
    assert pods[victim].status.container_statuses[0].state.running is not None
    assert sum(ready(p) for p in pods.values()) == 1
    assert apps.read_namespaced_deployment("rd", ns).status.ready_replicas == 1
    faults.clear(ns, victim, target_kind="Pod")
    clock.advance(0)
    assert all(ready(p) for p in pods_of(core, ns))


def test_unschedulable_pods_stay_pending_and_schedule_after_clear(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("big", replicas=2))
    clock.advance(1)
    faults.inject("unschedulable", ns, "big")
    clock.advance(0)
    clock.advance(0)
    pods = pods_of(core, ns)
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Pending" and pod.spec.node_name is None
        sched = cond(pod, "PodScheduled")
        assert (sched.status, sched.reason) == ("False", "Unschedulable")
    faults.clear(ns, "big")
    clock.advance(0)
    clock.advance(1)
    pods = pods_of(core, ns)
    assert all(p.spec.node_name and ready(p) for p in pods)


def test_node_faults(core, apps, clock, faults, ns):
    faults.inject("node_not_ready", None, "lab-node-3")
    faults.inject("node_memory_pressure", None, "lab-node-2")
    faults.inject("node_disk_pressure", None, "lab-node-2")
    faults.inject("node_pid_pressure", None, "lab-node-2")
    try:
        clock.advance(0)
        nodes = {n.metadata.name: n for n in core.list_node().items}
        assert cond(nodes["lab-node-3"], "Ready").status == "False"
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert cond(nodes["lab-node-2"], ctype).status == "True"
        apps.create_namespaced_deployment(ns, deployment("nodes", replicas=4))
        clock.advance(1)
        pods = pods_of(core, ns)
        assert "lab-node-3" not in {p.spec.node_name for p in pods} and all(ready(p) for p in pods)
    finally:
        faults.clear(None, "lab-node-3")
        faults.clear(None, "lab-node-2")
    clock.advance(0)
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert cond(nodes["lab-node-3"], "Ready").status == "True"
    assert cond(nodes["lab-node-2"], "MemoryPressure").status == "False"


def test_node_not_ready_makes_its_pods_not_ready(core, apps, clock, faults, ns):
    apps.create_namespaced_deployment(ns, deployment("onnode", replicas=3))
    clock.advance(1)
    faults.inject("node_not_ready", None, "lab-node-1", params={"status": "Unknown"})
    try:
        clock.advance(0)
        node = core.read_node("lab-node-1")
        assert cond(node, "Ready").status == "Unknown" and cond(node, "Ready").reason == "NodeStatusUnknown"
        on_node = [p for p in pods_of(core, ns) if p.spec.node_name == "lab-node-1"]
        assert on_node and not any(ready(p) for p in on_node)
    finally:
        faults.clear(None, "lab-node-1")
    clock.advance(0)
    assert all(ready(p) for p in pods_of(core, ns))


# -- statefulsets / daemonsets -------------------------------------------------------------------
def test_statefulset_creates_ordered_pods(core, apps, dyn, clock, ns):
    # the dynamic client: the typed model rejects a create response without status counters
    dyn.resources.get(api_version="apps/v1", kind="StatefulSet").create(namespace=ns, body={
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}}})
    clock.advance(0)
    assert [p.metadata.name for p in pods_of(core, ns)] == ["db-0"]  # OrderedReady: one at a time
    clock.advance(1)
    clock.advance(1)
    clock.advance(1)
    pods = pods_of(core, ns)
    assert [p.metadata.name for p in pods] == ["db-0", "db-1", "db-2"] and all(ready(p) for p in pods)
    assert pods[1].metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    sts = apps.read_namespaced_stateful_set("db", ns)
    assert (sts.status.replicas, sts.status.ready_replicas, sts.status.updated_replicas) == (3, 3, 3)
    assert sts.status.current_revision == sts.status.update_revision
    apps.patch_namespaced_stateful_set("db", ns, {"spec": {"template": {"spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}}}})
    for _ in range(8):
        clock.advance(1)
    sts = apps.read_namespaced_stateful_set("db", ns)
    assert {p.spec.containers[0].image for p in pods_of(core, ns)} == {"postgres:17"}
    assert sts.status.updated_replicas == 3 and sts.status.current_revision == sts.status.update_revision


def test_daemonset_runs_one_pod_per_node(core, apps, dyn, clock, ns):
    dyn.resources.get(api_version="apps/v1", kind="DaemonSet").create(namespace=ns, body={
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}})
    clock.advance(1)
    pods = pods_of(core, ns)
    assert sorted(p.spec.node_name for p in pods) == ["lab-node-1", "lab-node-2", "lab-node-3"]
    ds = apps.read_namespaced_daemon_set("agent", ns)
    s = ds.status
    assert (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.updated_number_scheduled) == (3, 3, 3, 3)


# -- jobs / cronjobs -----------------------------------------------------------------------------
def job(name, fail=False, backoff=6, duration=None):
    ann = {}
    if fail:
        ann["lab.machinenativeops.io/fail"] = "true"
    if duration is not None:
        ann["lab.machinenativeops.io/duration"] = str(duration)
    return {"metadata": {"name": name},
            "spec": {"backoffLimit": backoff,
                     "template": {"metadata": {"annotations": ann},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "j", "image": "busybox"}]}}}}


def test_job_completes(core, batch, clock, ns):
    batch.create_namespaced_job(ns, job("once", duration=5))
    clock.advance(0)
    j = batch.read_namespaced_job("once", ns)
    assert j.status.active == 1 and j.status.start_time is not None
    pod = pods_of(core, ns)[0]
    assert pod.metadata.labels["job-name"] == "once" and pod.metadata.name.startswith("once-")
    clock.advance(5)
    j = batch.read_namespaced_job("once", ns)
    assert j.status.succeeded == 1 and not j.status.active and j.status.completion_time is not None
    assert cond(j, "Complete").status == "True"
    assert pods_of(core, ns)[0].status.phase == "Succeeded"


def test_job_fails_after_backoff_limit(core, batch, clock, ns):
    batch.create_namespaced_job(ns, job("broken", fail=True, backoff=1))
    for _ in range(4):
        clock.advance(1)
    j = batch.read_namespaced_job("broken", ns)
    assert j.status.failed == 2 and cond(j, "Failed").reason == "BackoffLimitExceeded"
    assert j.status.succeeded is None and j.status.completion_time is None
    assert [p.status.phase for p in pods_of(core, ns)] == ["Failed", "Failed"]


def test_cronjob_creates_jobs_on_schedule(batch, clock, ns):
    now = clock.now()
    batch.create_namespaced_cron_job(ns, {
        "metadata": {"name": "tick"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job("x")["spec"]}}})
    clock.advance(0)
    assert batch.list_namespaced_job(ns).items == []
    seconds_to_next = (5 - now.minute % 5) * 60 - now.second
    clock.advance(seconds_to_next)
    jobs = batch.list_namespaced_job(ns).items
    assert len(jobs) == 1 and jobs[0].metadata.owner_references[0].kind == "CronJob"
    cj = batch.read_namespaced_cron_job("tick", ns)
    assert cj.status.last_schedule_time is not None and cj.status.last_schedule_time.minute % 5 == 0
    clock.advance(2)
    cj = batch.read_namespaced_cron_job("tick", ns)
    assert cj.status.last_successful_time is not None and not cj.status.active
    clock.advance(600)
    assert len(batch.list_namespaced_job(ns).items) == 3
    batch.patch_namespaced_cron_job("tick", ns, {"spec": {"suspend": True}})
    clock.advance(900)
    assert len(batch.list_namespaced_job(ns).items) == 3


def test_admin_status_reports_clock_and_counts(clock):
    status = clock.status()
    assert status["clock"]["mode"] == "manual"
    assert status["objects"]["Node"] == 3 and status["served"]["Deployment"] is True
    assert status["stats"]["errors"] == 0, status["stats"]["last_error"]
    before = clock.now()
    result = clock.advance(30)
    after = clock.now()
    assert (after - before).total_seconds() == 30 and result["now"] == after.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_kubernetes_core_k8s_rollback(core, apps, clock, ns, lab):
    apps.create_namespaced_deployment(ns, deployment("rb", replicas=2))
    clock.advance(1)
    apps.patch_namespaced_deployment("rb", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:9"}]}}}})
    for _ in range(6):
        clock.advance(1)
    assert apps.read_namespaced_deployment("rb", ns).metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    ansible = shutil.which("ansible", path=str(Path(sys.executable).parent)) or shutil.which("ansible")
    out = subprocess.run([ansible, "localhost", "-m", "kubernetes.core.k8s_rollback", "-a",
                          f"api_version=apps/v1 kind=Deployment name=rb namespace={ns} kubeconfig={lab['apiserver']['kubeconfig']}"],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "CHANGED" in out.stdout
    for _ in range(6):
        clock.advance(1)
    dep = apps.read_namespaced_deployment("rb", ns)
    assert dep.spec.template.spec.containers[0].image == "nginx:1.25"
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert cond(dep, "Progressing").reason == "NewReplicaSetAvailable" and dep.status.updated_replicas == 2
    assert {p.spec.containers[0].image for p in pods_of(core, ns)} == {"nginx:1.25"}


def test_recreate_strategy_stops_old_pods_first(core, apps, clock, ns):
    body = deployment("rc", replicas=3)
    body["spec"]["strategy"] = {"type": "Recreate"}
    apps.create_namespaced_deployment(ns, body)
    clock.advance(1)
    apps.patch_namespaced_deployment("rc", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:3"}]}}}})
    clock.advance(0)
    images = {p.spec.containers[0].image for p in pods_of(core, ns)}
    assert images == {"nginx:3"}  # old pods went before any new one started
    clock.advance(1)
    dep = apps.read_namespaced_deployment("rc", ns)
    assert dep.status.ready_replicas == 3 and dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
