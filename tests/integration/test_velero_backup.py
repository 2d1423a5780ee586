"""machinenativeops.platform.velero_backup through ansible-playbook against the lab (API emulator, simulated Velero
writing its real layout to the lab's moto S3)."""

from __future__ import annotations

import datetime
import json
import socket
import time
import uuid

import pytest
from kubernetes import client

from tests.integration.velero_support import VELERO, VeleroLab, run_steps

pytestmark = pytest.mark.lab


def step(check: bool = False, diff: bool = False, s3: bool = True, **args) -> dict:
    args.setdefault("poll_interval", 0.3)
    return {"args": args, "check": check, "diff": diff, "s3": s3}


@pytest.fixture(scope="module")
def cluster(lab_endpoints):
    return VeleroLab(lab_endpoints)


@pytest.fixture
def app_ns(cluster):
    name = f"vb-{uuid.uuid4().hex[:6]}"
    cluster.app_namespace(name)
    yield name
    cluster.delete_namespace(name)


def checks_of(result: dict) -> dict:
    return {c["name"]: c for c in result["verification"]["checks"]}


def test_backup_completed_verified_and_idempotent(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-b"
    spec = {"action": "backup", "name": name, "included_namespaces": [app_ns], "ttl": "720h", "labels": {"purpose": "test"}}
    verify = {"action": "verify", "name": name, "expected_namespaces": [app_ns],
              "expected_resources": ["deployments.apps", "services", "configmaps"], "min_size": 256}
    predicted, created, again, verified, verified_check = run_steps(
        lab_endpoints, [step(check=True, **spec), step(**spec), step(**spec), step(**verify), step(check=True, **verify)])
    assert predicted["changed"] and not predicted.get("failed") and predicted["backup"]["phase"] == "New"
    assert created["changed"] and not created.get("failed"), created.get("msg")
    b = created["backup"]
    assert (b["phase"], b["succeeded"], b["errors"], b["schedule"]) == ("Completed", True, 0, None)
    assert b["items_backed_up"] == b["total_items"] > 0 and b["duration_seconds"] is not None
    assert created["diagnosis"] is None and created["timings"]["wait"] >= 0
    obj = cluster.velero("backups", name)
    assert obj["spec"]["ttl"] == "720h0m0s" and obj["spec"]["includedNamespaces"] == [app_ns]
    assert obj["metadata"]["labels"]["purpose"] == "test"
    assert not again["changed"] and again["backup"]["phase"] == "Completed"
    assert not verified["changed"] and not verified.get("failed"), verified.get("msg")
    assert verified["verification"]["passed"] and verified["verification"]["failed_checks"] == []
    s3 = verified["verification"]["s3"]
    assert s3["items"] == b["items_backed_up"] and s3["namespaces"][app_ns] > 0
    # every ConfigMap of the namespace: the two of the test and, on a real cluster, kube-root-ca.crt
    configmaps = len(cluster.core.list_namespaced_config_map(app_ns).items)
    assert s3["resources"]["deployments.apps"] == 2 and s3["resources"]["configmaps"] == configmaps >= 2
    assert not verified_check["changed"] and verified_check["verification"]["checks"] == verified["verification"]["checks"]


def test_partially_failed_is_reported_with_reasons(lab_endpoints, cluster, app_ns, lab_faults, lab_clock):
    name = f"{app_ns}-pf"
    spec = {"action": "backup", "name": name, "included_namespaces": [app_ns]}
    (started,) = run_steps(lab_endpoints, [step(wait=False, **spec)])
    assert started["changed"] and started["backup"]["phase"] in ("New", "InProgress")
    lab_faults.inject("backup_partially_failed", "velero", name, target_kind="Backup", params={"errors": 2})
    lab_clock.advance(30)
    failing, accepted, status, verified = run_steps(lab_endpoints, [
        step(**spec), step(allow_partially_failed=True, **spec), step(action="status", name=name),
        step(action="verify", name=name, fail_on_error=False)])
    assert failing.get("failed") and not failing["changed"]
    assert failing["backup"]["phase"] == "PartiallyFailed" and failing["backup"]["errors"] == 2
    assert f"Backup velero/{name} is PartiallyFailed with 2 error(s)" in failing["msg"]
    assert f"first errors: namespace {app_ns}: error executing custom action" in failing["msg"]
    assert len(failing["details"]["errors"]) == 2 and all("lab fault backup_partially_failed" in e for e in failing["details"]["errors"])
    assert failing["details"]["log_errors"] and failing["details"]["unavailable"] == []
    assert not accepted.get("failed") and accepted["details"] == failing["details"]
    assert status["backup"]["phase"] == "PartiallyFailed" and status["diagnosis"].startswith(f"Backup velero/{name} is PartiallyFailed")
    assert not verified.get("failed") and not verified["verification"]["passed"]
    assert "metadata_completed" in verified["verification"]["failed_checks"]


def test_deleted_tarball_fails_verification_although_completed(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-gone"
    (created,) = run_steps(lab_endpoints, [step(action="backup", name=name, included_namespaces=[app_ns])])
    assert created["backup"]["phase"] == "Completed"
    key = f"backups/{name}/{name}.tar.gz"
    assert key in cluster.keys(f"backups/{name}/")
    cluster.s3.delete_object(Bucket=cluster.bucket, Key=key)
    (verified,) = run_steps(lab_endpoints, [step(action="verify", name=name, restore_test=True)])
    assert verified.get("failed") and not verified["changed"]
    assert cluster.velero("backups", name)["status"]["phase"] == "Completed"
    checks = checks_of(verified)
    assert checks["metadata_completed"]["passed"]
    assert not checks["tarball_present"]["passed"]
    assert "although the Backup object says Completed" in checks["tarball_present"]["reason"]
    assert not checks["restore_test"]["passed"]
    assert f"backup velero/{name} failed verification: tarball_present" in verified["msg"]


def test_restore_test_reproduces_the_objects_in_scratch_namespaces(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-rt"
    suffix = "rt1"
    created, verified = run_steps(lab_endpoints, [
        step(action="backup", name=name, included_namespaces=[app_ns]),
        step(action="verify", name=name, restore_test=True, restore_test_suffix=suffix, expected_namespaces=[app_ns])])
    assert created["backup"]["phase"] == "Completed"
    assert not verified.get("failed"), verified.get("msg")
    test = verified["verification"]["restore_test"]
    scratch = f"{app_ns}-{suffix}"
    assert test["namespace_mapping"] == {app_ns: scratch}
    assert test["restore"]["phase"] == "Completed"
    assert test["compared"]["deployments.apps"] == {"expected": 2, "restored": 2, "missing": []}
    configmaps = len(cluster.core.list_namespaced_config_map(app_ns).items)   # kube-root-ca.crt too on a real cluster
    assert test["compared"]["services"]["restored"] == 2 and test["compared"]["configmaps"]["restored"] == configmaps >= 2
    assert test["source_objects"] == test["restored_objects"] >= 7
    assert test["not_compared"]["owned"] >= 2  # pods and replicasets are recreated by their controllers
    assert test["cleanup"] == {"deleted": [scratch], "remaining": []}
    assert not cluster.namespace_exists(scratch)
    assert cluster.velero("restores", test["restore"]["name"]) is None
    # the test created a Restore, its modifier ConfigMap and a namespace, and removed them again: a change
    assert verified["changed"]
    assert set(test["created"]) == {f"Restore velero/{test['restore']['name']}", f"ConfigMap velero/{test['restore']['name']}-modifiers",
                                    f"Namespace {scratch}"}
    assert set(test["removed"]) == set(test["created"])
    assert cluster.core.list_namespaced_config_map("velero", label_selector="machinenativeops.io/restore-test=true").items == []


def _risky_objects(cluster, ns):
    """Objects that would act if a restore test brought them back as they are: a CronJob, a Job, a LoadBalancer Service
    with a fixed nodePort, a NodePort Service, an Ingress, a VirtualService of a real host, a DaemonSet, a PVC, an HPA."""
    labels = {"app": "risky"}
    pod = {"metadata": {"labels": labels}, "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}}
    batch = client.BatchV1Api(cluster.core.api_client)
    batch.create_namespaced_cron_job(ns, {"metadata": {"name": "nightly"}, "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": pod}}}})
    batch.create_namespaced_job(ns, {"metadata": {"name": "migrate"}, "spec": {"template": pod}})
    cluster.core.create_namespaced_service(ns, {"metadata": {"name": "public"}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "web0"},
        "ports": [{"name": "http", "port": 80, "nodePort": 31080}, {"name": "https", "port": 443}]}})
    cluster.core.create_namespaced_service(ns, {"metadata": {"name": "node"}, "spec": {
        "type": "NodePort", "selector": {"app": "web1"}, "ports": [{"port": 8080, "nodePort": 31081}]}})
    client.NetworkingV1Api(cluster.core.api_client).create_namespaced_ingress(ns, {"metadata": {"name": "shop"}, "spec": {"rules": [
        {"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web0", "port": {"number": 80}}}}]}}]}})
    cluster.custom.create_namespaced_custom_object("networking.istio.io", "v1beta1", ns, "virtualservices", {
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "shop"},
        "spec": {"hosts": ["shop.example.com"], "gateways": ["istio-system/public"], "http": [{"route": [{"destination": {"host": "web0"}}]}]}})
    cluster.apps.create_namespaced_daemon_set(ns, {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}})
    cluster.core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    client.AutoscalingV2Api(cluster.core.api_client).create_namespaced_horizontal_pod_autoscaler(ns, {
        "metadata": {"name": "web0"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web0"},
                                               "minReplicas": 2, "maxReplicas": 5}})


def test_restore_test_brings_nothing_to_life(lab_endpoints, cluster, app_ns):
    """Issue 12 item 2: restored into scratch namespaces, workloads have 0 replicas, CronJobs are suspended, DaemonSets
    schedule nowhere, exposed Services become ClusterIP, and Jobs, Ingresses, VirtualServices, PVCs and HPAs are not
    restored at all; each is reported, and the comparison accounts for the exclusions."""
    _risky_objects(cluster, app_ns)
    name = f"{app_ns}-iso"
    suffix = "iso1"
    scratch = f"{app_ns}-{suffix}"
    try:
        created, verified = run_steps(lab_endpoints, [
            step(action="backup", name=name, included_namespaces=[app_ns]),
            step(action="verify", name=name, restore_test=True, restore_test_suffix=suffix, restore_test_cleanup=False,
                 expected_namespaces=[app_ns])])
        assert created["backup"]["phase"] == "Completed"
        assert not verified.get("failed"), verified.get("msg")
        test = verified["verification"]["restore_test"]
        iso = test["isolation"]
        assert sorted(iso["scaled_to_zero"]) == [f"deployments.apps {app_ns}/web0", f"deployments.apps {app_ns}/web1"]
        assert iso["suspended_cronjobs"] == [f"{app_ns}/nightly"] and iso["unscheduled_daemonsets"] == [f"{app_ns}/agent"]
        assert sorted(iso["services_to_cluster_ip"]) == [f"{app_ns}/node (NodePort)", f"{app_ns}/public (LoadBalancer)"]
        for resource, obj in (("jobs.batch", "migrate"), ("ingresses.networking.k8s.io", "shop"), ("virtualservices.networking.istio.io", "shop"),
                              ("persistentvolumeclaims", "data"), ("horizontalpodautoscalers.autoscaling", "web0")):
            assert f"{app_ns}/{obj}" in iso["excluded"][resource], resource
        assert iso["restore_pvs"] is False and test["not_compared"]["excluded"] >= 5
        restore = cluster.velero("restores", test["restore"]["name"])
        assert restore["spec"]["restorePVs"] is False and "jobs.batch" in restore["spec"]["excludedResources"]
        assert restore["spec"]["resourceModifier"] == {"kind": "ConfigMap", "name": f"{test['restore']['name']}-modifiers"}
        # what is in the scratch namespace, read back from the API
        assert {d.metadata.name: d.spec.replicas for d in cluster.apps.list_namespaced_deployment(scratch).items} == {"web0": 0, "web1": 0}
        batch = client.BatchV1Api(cluster.core.api_client)
        assert [(c.metadata.name, c.spec.suspend) for c in batch.list_namespaced_cron_job(scratch).items] == [("nightly", True)]
        assert batch.list_namespaced_job(scratch).items == []
        agent = cluster.apps.read_namespaced_daemon_set("agent", scratch)
        assert agent.spec.template.spec.node_selector == {"machinenativeops.io/restore-test": "never-scheduled"}
        services = {s.metadata.name: s.spec for s in cluster.core.list_namespaced_service(scratch).items}
        assert services["public"].type == services["node"].type == "ClusterIP"
        assert all(p.node_port is None for s in ("public", "node") for p in services[s].ports)
        assert services["public"].external_traffic_policy is None
        assert client.NetworkingV1Api(cluster.core.api_client).list_namespaced_ingress(scratch).items == []
        assert cluster.custom.list_namespaced_custom_object("networking.istio.io", "v1beta1", scratch, "virtualservices")["items"] == []
        assert cluster.core.list_namespaced_persistent_volume_claim(scratch).items == []
        assert test["compared"]["services"]["restored"] == test["compared"]["services"]["expected"] == 4
        assert "jobs.batch" not in test["compared"] and test["passed"]
        assert verified["changed"] and f"Namespace {scratch}" in test["created"] and test["removed"] == []
    finally:
        cluster.delete_namespace(scratch, wait=True)
        for cm in cluster.core.list_namespaced_config_map("velero", label_selector="machinenativeops.io/restore-test=true").items:
            cluster.core.delete_namespaced_config_map(cm.metadata.name, "velero")


def test_restore_action_into_a_mapped_namespace(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-src"
    target = f"{app_ns}-copy"
    restore = {"action": "restore", "name": f"{app_ns}-restore", "backup_name": name, "namespace_mapping": {app_ns: target}}
    try:
        created, predicted, restored, again = run_steps(lab_endpoints, [
            step(action="backup", name=name, included_namespaces=[app_ns]), step(check=True, **restore), step(**restore), step(**restore)])
        assert created["backup"]["phase"] == "Completed"
        assert predicted["changed"] and predicted["restore"]["phase"] == "New"
        assert restored["changed"] and restored["restore"]["phase"] == "Completed" and restored["restore"]["backup_name"] == name
        assert restored["restore"]["items_restored"] >= 7
        assert not again["changed"] and again["restore"]["phase"] == "Completed"
        assert {d.metadata.name for d in cluster.apps.list_namespaced_deployment(target).items} == {"web0", "web1"}
    finally:
        cluster.delete_namespace(target)


def test_schedule_update_keeps_unmanaged_fields_and_status(lab_endpoints, cluster, app_ns):
    sname = f"{app_ns}-keep"
    base = {"action": "schedule", "name": sname, "schedule": "0 * * * *", "included_namespaces": [app_ns], "ttl": "168h",
            "paused": True}
    run_steps(lab_endpoints, [step(**base)])
    # fields the module cannot express (where Velero's Schedule CRD has them: in the backup template), and the status
    # Velero keeps, set by someone else
    cluster.custom.patch_namespaced_custom_object(*VELERO, "schedules", sname, {
        "spec": {"template": {"csiSnapshotTimeout": "20m0s", "metadata": {"labels": {"keep": "me"}}}}})
    # Velero's Schedule CRD has no status subresource (subresources: {}): status is written with the object
    cluster.custom.patch_namespaced_custom_object(*VELERO, "schedules", sname, {
        "status": {"lastBackup": "2026-01-01T02:00:00Z"}})
    changed = {**base, "ttl": "7d", "schedule": "0 3 * * *"}
    predicted, updated, again = run_steps(lab_endpoints, [step(check=True, diff=True, **changed), step(diff=True, **changed),
                                                          step(diff=True, **changed)])
    # ttl 7d is the same duration as 168h: not a change
    assert updated["changes"] == ["schedule"] and updated["changed"]
    assert predicted["changes"] == updated["changes"] and predicted["diff"] == updated["diff"]
    assert updated["diff"] == {"before": {"spec": {"schedule": "0 * * * *"}}, "after": {"spec": {"schedule": "0 3 * * *"}}}
    assert not again["changed"] and again["changes"] == []
    obj = cluster.velero("schedules", sname)
    assert obj["spec"]["schedule"] == "0 3 * * *"
    assert obj["spec"]["template"]["csiSnapshotTimeout"] == "20m0s"
    assert obj["spec"]["template"]["metadata"] == {"labels": {"keep": "me"}}
    assert obj["status"]["lastBackup"] == "2026-01-01T02:00:00Z"


def test_schedule_idempotence_diff_and_restore_from_schedule(lab_endpoints, cluster, app_ns):
    sname = f"{app_ns}-hourly"
    base = {"action": "schedule", "name": sname, "schedule": "0 * * * *", "included_namespaces": [app_ns], "ttl": "168h"}
    changed_ttl = {**base, "ttl": "720h"}
    results = run_steps(lab_endpoints, [
        step(check=True, diff=True, **base), step(diff=True, **base), step(diff=True, **{**base, "ttl": "168h0m0s"}),
        step(check=True, diff=True, **changed_ttl), step(diff=True, **changed_ttl), step(**changed_ttl),
        step(action="status", schedule_name=sname)])
    predicted, created, same, predicted_change, updated, same_again, status = results
    assert predicted["changed"] and predicted["diff"]["before"] == {}
    assert created["changed"] and created["diff"] == predicted["diff"]
    assert created["schedule"]["schedule"] == "0 * * * *"
    assert not same["changed"] and same["changes"] == []
    assert predicted_change["changed"] and predicted_change["changes"] == ["template.ttl"]
    assert predicted_change["diff"] == {"before": {"spec": {"template": {"ttl": "168h0m0s"}}},
                                        "after": {"spec": {"template": {"ttl": "720h0m0s"}}}}
    assert updated["changed"] and updated["changes"] == ["template.ttl"]
    assert not same_again["changed"]
    assert cluster.velero("schedules", sname)["spec"]["template"]["ttl"] == "720h0m0s"
    assert status["schedule"]["name"] == sname
    # The lab's Velero creates the schedule's first backup at once (no skipImmediately).
    deadline = time.monotonic() + 60
    while True:
        (status,) = run_steps(lab_endpoints, [step(action="status", schedule_name=sname)])
        if status["schedule"]["last_completed_backup"] or time.monotonic() > deadline:
            break
    newest = status["schedule"]["last_completed_backup"]
    assert newest and newest.startswith(f"{sname}-") and status["backup"]["schedule"] == sname
    target = f"{app_ns}-fromsched"
    restore = {"action": "restore", "name": f"{app_ns}-rs", "schedule_name": sname, "namespace_mapping": {app_ns: target}}
    try:
        restored, removed, removed_again = run_steps(lab_endpoints, [
            step(**restore), step(action="schedule", name=sname, state="absent"), step(action="schedule", name=sname, state="absent")])
        assert restored["restore"]["backup_name"] == newest and restored["restore"]["phase"] == "Completed"
        assert removed["changed"] and not removed_again["changed"]
        assert cluster.velero("schedules", sname) is None
    finally:
        cluster.delete_namespace(target)


def test_delete_uses_a_delete_backup_request(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-del"
    created, predicted, deleted, again = run_steps(lab_endpoints, [
        step(action="backup", name=name, included_namespaces=[app_ns]), step(action="delete", name=name, check=True),
        step(action="delete", name=name), step(action="delete", name=name)])
    assert created["backup"]["phase"] == "Completed"
    assert predicted["changed"] and deleted["changed"] and not again["changed"]
    assert deleted["delete_request"]["phase"] == "Processed" and deleted["delete_request"]["errors"] == []
    assert deleted["backup"]["exists"] is False and cluster.velero("backups", name) is None
    assert cluster.keys(f"backups/{name}/") == []


def test_s3_endpoint_down_gives_a_clear_error(lab_endpoints, cluster, app_ns):
    name = f"{app_ns}-down"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = lab_endpoints["s3"]["secret_key"]
    created, verified = run_steps(lab_endpoints, [
        step(action="backup", name=name, included_namespaces=[app_ns]),
        step(action="verify", name=name, s3_endpoint_url=f"http://127.0.0.1:{port}", s3_timeout=2)])
    assert created["backup"]["phase"] == "Completed"
    assert verified.get("failed")
    assert f"at http://127.0.0.1:{port} failed: the S3 endpoint is unreachable" in verified["msg"]
    assert verified["verification"]["failed_checks"] == ["s3_reachable"]
    assert secret not in json.dumps(verified)


def test_stuck_in_progress_fails_with_the_diagnosis(lab_endpoints, cluster, app_ns, lab_clock):
    name = f"{app_ns}-stuck"
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    lab_clock.manual(past.strftime("%Y-%m-%dT%H:%M:%SZ"))
    spec = {"action": "backup", "name": name, "included_namespaces": [app_ns]}
    started, waited, status = run_steps(lab_endpoints, [
        step(wait=False, **spec), step(in_progress_deadline=3600, wait_timeout=60, **spec),
        step(action="status", name=name, in_progress_deadline=3600)])
    assert started["backup"]["phase"] in ("New", "InProgress")
    assert waited.get("failed") and waited["backup"]["stuck"]
    assert f"Backup velero/{name} is stuck in InProgress for" in waited["msg"] and "deadline 3600s" in waited["msg"]
    assert "did not reach a terminal phase" not in waited["msg"]  # the deadline diagnosis, not the wait timeout
    assert status["backup"]["stuck"] and "stuck in InProgress" in status["diagnosis"]
    assert not status.get("failed")


def test_list_reports_backups_newest_first(lab_endpoints, cluster, app_ns):
    _first, _second, listed = run_steps(lab_endpoints, [
        step(action="backup", name=f"{app_ns}-l1", included_namespaces=[app_ns]),
        step(action="backup", name=f"{app_ns}-l2", included_namespaces=[app_ns]), step(action="list")])
    names = [b["name"] for b in listed["backups"]]
    assert {f"{app_ns}-l1", f"{app_ns}-l2"} <= set(names)
    assert names.index(f"{app_ns}-l2") < names.index(f"{app_ns}-l1")
    assert not listed["changed"]
