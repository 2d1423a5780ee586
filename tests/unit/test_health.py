"""Unit tests of the health evaluators (plugins/module_utils/health.py) with fixture objects."""

from __future__ import annotations

import datetime
import http.server
import threading

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import health as H

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
T = H.normalize_thresholds({})


def ts(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name, namespace="shop", **extra):
    data = {"name": name, "namespace": namespace, "creationTimestamp": ts(3600)}
    data.update(extra)
    return data


def cond(ctype, status, reason=None, message=None, ago=60):
    out = {"type": ctype, "status": status, "lastTransitionTime": ts(ago)}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


# -- helpers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), ("90", 90.0), ("25h", 90000.0), ("7d", 604800.0), ("1h30m", 5400.0),
                                                ("2w", 1209600.0), ("45s", 45.0), (0, 0.0)])
def test_parse_duration(value, seconds):
    assert H.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "abc", "5x", -1, "-3", True])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="invalid duration"):
        H.parse_duration(value)


def test_parse_time_variants():
    assert H.parse_time("2026-03-01T12:00:00Z") == NOW
    assert H.parse_time("2026-03-01T13:00:00+01:00") == NOW
    assert H.parse_time("2026-03-01T12:00:00.123456789Z") == NOW + datetime.timedelta(microseconds=123456)
    assert H.parse_time(None) is None
    assert H.parse_time("not a time") is None


def test_thresholds_defaults_and_validation():
    assert T["max_restarts"] == 5 and T["max_backup_age"] == 90000.0 and T["min_ready_ratio"] == 1.0
    assert H.normalize_thresholds({"max_backup_age": "2h", "max_restarts": None})["max_backup_age"] == 7200.0
    with pytest.raises(ValueError, match="unknown threshold"):
        H.normalize_thresholds({"max_restart": 3})
    with pytest.raises(ValueError, match="between 0 and 1"):
        H.normalize_thresholds({"min_ready_ratio": 1.5})
    with pytest.raises(ValueError, match="must not be negative"):
        H.normalize_thresholds({"max_pending_seconds": -1})


def test_overall_status_and_fail_on():
    assert H.overall_status([]) == "healthy"
    assert H.overall_status([{"severity": "ok"}, {"severity": "warning"}]) == "degraded"
    assert H.overall_status([{"severity": "warning"}, {"severity": "critical"}]) == "critical"
    assert H.should_fail("critical", "critical") and not H.should_fail("degraded", "critical")
    assert H.should_fail("degraded", "warning") and not H.should_fail("healthy", "warning")
    assert not H.should_fail("critical", "never")


def test_select_checks():
    assert H.select_checks(None) == list(H.CHECKS)
    assert H.select_checks(["pods", "nodes"]) == ["pods", "nodes"]
    assert H.select_checks(["nodes", "pods"]) == ["pods", "nodes"]
    with pytest.raises(H.HealthError, match="unknown checks podz"):
        H.select_checks(["podz"])


# -- workloads -----------------------------------------------------------------------------------------
def deployment(*, replicas=3, ready=3, updated=3, generation=2, observed=2, conditions=None, paused=False):
    return {"kind": "Deployment", "metadata": meta("web", generation=generation),
            "spec": {"replicas": replicas, "paused": paused},
            "status": {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready, "updatedReplicas": updated,
                       "conditions": conditions or [cond("Available", "True"), cond("Progressing", "True", "NewReplicaSetAvailable")]}}


def test_deployment_healthy():
    f = H.evaluate_deployment(deployment(), T, NOW)
    assert (f["severity"], f["reason"], f["kind"], f["namespace"], f["name"]) == ("ok", "Healthy", "Deployment", "shop", "web")


def test_deployment_partially_ready_is_warning():
    f = H.evaluate_deployment(deployment(ready=2), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "ReplicasNotReady")
    assert "2/3 replicas ready" in f["message"]


def test_deployment_ratio_threshold():
    assert H.evaluate_deployment(deployment(ready=2), H.normalize_thresholds({"min_ready_ratio": 0.6}), NOW)["severity"] == "ok"


def test_deployment_nothing_ready_is_critical_with_since():
    conditions = [cond("Available", "False", "MinimumReplicasUnavailable", ago=120), cond("Progressing", "True")]
    f = H.evaluate_deployment(deployment(ready=0, conditions=conditions), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "ReplicasNotReady", ts(120))


def test_deployment_progress_deadline_exceeded_wins():
    conditions = [cond("Available", "True"), cond("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-abc" has timed out progressing.', 30)]
    f = H.evaluate_deployment(deployment(ready=3, updated=1, conditions=conditions), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "ProgressDeadlineExceeded", ts(30))
    assert "timed out progressing" in f["message"] and "1/3 replicas updated" in f["message"]


def test_deployment_rollout_incomplete_and_generation_lag():
    assert H.evaluate_deployment(deployment(updated=2), T, NOW)["reason"] == "RolloutIncomplete"
    f = H.evaluate_deployment(deployment(generation=3, observed=2), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "ObservedGenerationLag")


def test_deployment_scaled_to_zero_is_healthy():
    assert H.evaluate_deployment(deployment(replicas=0, ready=0, updated=0), T, NOW)["severity"] == "ok"


def test_statefulset():
    sts = {"kind": "StatefulSet", "metadata": meta("db", generation=1), "spec": {"replicas": 3},
           "status": {"observedGeneration": 1, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
                      "currentRevision": "db-1", "updateRevision": "db-1"}}
    assert H.evaluate_statefulset(sts, T, NOW)["severity"] == "ok"
    sts["status"]["readyReplicas"] = 0
    assert (H.evaluate_statefulset(sts, T, NOW)["severity"], H.evaluate_statefulset(sts, T, NOW)["reason"]) == ("critical", "ReplicasNotReady")
    sts["status"].update(readyReplicas=3, updatedReplicas=1, updateRevision="db-2")
    assert H.evaluate_statefulset(sts, T, NOW)["reason"] == "RolloutIncomplete"


def test_daemonset():
    ds = {"kind": "DaemonSet", "metadata": meta("agent", generation=4),
          "status": {"observedGeneration": 4, "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3}}
    assert H.evaluate_daemonset(ds, T, NOW)["severity"] == "ok"
    ds["status"]["numberReady"] = 2
    f = H.evaluate_daemonset(ds, T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "ReplicasNotReady")
    ds["status"].update(numberReady=3, numberMisscheduled=1)
    assert H.evaluate_daemonset(ds, T, NOW)["reason"] == "Misscheduled"


# -- pods ----------------------------------------------------------------------------------------------
def pod(phase="Running", ready=True, containers=None, created_ago=3600, conditions=None):
    if containers is None:
        containers = [{"name": "app", "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": ts(3000)}}, "lastState": {}}]
    conds = conditions if conditions is not None else [cond("PodScheduled", "True"), cond("Ready", "True" if ready else "False", ago=90)]
    return {"kind": "Pod", "metadata": meta("web-abc12", creationTimestamp=ts(created_ago)),
            "status": {"phase": phase, "conditions": conds, "containerStatuses": containers}}


def container(name="app", restarts=0, waiting=None, last=None, ready=False):
    state = {"waiting": waiting} if waiting else {"running": {"startedAt": ts(10)}}
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state, "lastState": {"terminated": last} if last else {}}


def test_pod_healthy_and_succeeded():
    assert H.evaluate_pod(pod(), T, NOW)["severity"] == "ok"
    assert H.evaluate_pod(pod(phase="Succeeded", ready=False), T, NOW)["severity"] == "ok"


def test_pod_crash_loop():
    c = container(restarts=3, waiting={"reason": "CrashLoopBackOff", "message": "back-off 10s"},
                  last={"exitCode": 1, "reason": "Error", "finishedAt": ts(5)})
    f = H.evaluate_pod(pod(ready=False, containers=[c]), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "CrashLoopBackOff", ts(5))
    assert "container app in CrashLoopBackOff (3 restarts, last exit: Error)" in f["message"]
    assert "pod not ready" in f["message"]


def test_pod_image_pull_backoff_while_pending():
    c = container(waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'})
    f = H.evaluate_pod(pod(phase="Pending", ready=False, containers=[c], created_ago=30), T, NOW)
    assert (f["severity"], f["reason"]) == ("critical", "ImagePullBackOff")
    assert "Back-off pulling image" in f["message"]
    c = container(waiting={"reason": "ErrImagePull"})
    assert H.evaluate_pod(pod(phase="Pending", ready=False, containers=[c], created_ago=30), T, NOW)["reason"] == "ImagePullBackOff"


def test_pod_oom_killed_last_state():
    c = container(restarts=1, last={"exitCode": 137, "reason": "OOMKilled", "finishedAt": ts(20)}, ready=True)
    f = H.evaluate_pod(pod(containers=[c]), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("warning", "OOMKilled", ts(20))
    # OOM kills that end in CrashLoopBackOff are critical and keep the more specific reason
    c = container(restarts=4, waiting={"reason": "CrashLoopBackOff"}, last={"exitCode": 137, "reason": "OOMKilled", "finishedAt": ts(20)})
    f = H.evaluate_pod(pod(ready=False, containers=[c]), T, NOW)
    assert (f["severity"], f["reason"]) == ("critical", "OOMKilled")


def test_pod_restarts_above_threshold():
    c = container(restarts=6, last={"exitCode": 1, "reason": "Error", "finishedAt": ts(600)}, ready=True)
    f = H.evaluate_pod(pod(containers=[c]), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "RestartsAboveThreshold")
    assert "restarted 6 times (threshold 5)" in f["message"]
    assert H.evaluate_pod(pod(containers=[c]), H.normalize_thresholds({"max_restarts": 6}), NOW)["severity"] == "ok"


def test_pod_pending_thresholds():
    unsched = [cond("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.")]
    young = pod(phase="Pending", containers=[], created_ago=60, conditions=unsched)
    assert H.evaluate_pod(young, T, NOW)["severity"] == "ok"
    old = pod(phase="Pending", containers=[], created_ago=900, conditions=unsched)
    f = H.evaluate_pod(old, T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "Unschedulable", ts(900))
    assert "Insufficient cpu" in f["message"] and "pending for 15m (threshold 300s)" in f["message"]
    f = H.evaluate_pod(pod(phase="Pending", containers=[], created_ago=900, conditions=[]), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "PendingTooLong")


def test_pod_not_ready():
    f = H.evaluate_pod(pod(ready=False), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("warning", "NotReady", ts(90))
    assert "containers not ready: app" in f["message"]


def test_pod_failed_and_unknown():
    p = pod(phase="Failed", ready=False)
    p["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    f = H.evaluate_pod(p, T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "Evicted")
    assert H.evaluate_pod(pod(phase="Unknown", ready=False), T, NOW)["severity"] == "critical"


def test_pod_init_container_crash():
    p = pod(ready=False)
    p["status"]["phase"] = "Pending"
    p["status"]["initContainerStatuses"] = [container(name="init", restarts=2, waiting={"reason": "CrashLoopBackOff"})]
    f = H.evaluate_pod(p, T, NOW)
    assert (f["reason"], f["severity"]) == ("CrashLoopBackOff", "critical") and "container init" in f["message"]


# -- nodes ---------------------------------------------------------------------------------------------
def node(conditions, unschedulable=False):
    return {"kind": "Node", "metadata": {"name": "lab-node-1", "creationTimestamp": ts(86400)}, "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions}}


HEALTHY_NODE = [cond("Ready", "True"), cond("MemoryPressure", "False"), cond("DiskPressure", "False"), cond("PIDPressure", "False")]


def test_node_healthy():
    f = H.evaluate_node(node(HEALTHY_NODE), T, NOW)
    assert (f["severity"], f["namespace"], f["name"]) == ("ok", None, "lab-node-1")


def test_node_not_ready_and_unknown():
    f = H.evaluate_node(node([cond("Ready", "False", "KubeletNotReady", "PLEG is not healthy", ago=45)]), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "NodeNotReady", ts(45))
    assert "Ready=False: PLEG is not healthy" in f["message"]
    assert "Ready=Unknown" in H.evaluate_node(node([cond("Ready", "Unknown")]), T, NOW)["message"]
    assert H.evaluate_node(node([]), T, NOW)["reason"] == "NodeNotReady"


@pytest.mark.parametrize("pressure", ["MemoryPressure", "DiskPressure", "PIDPressure"])
def test_node_pressure(pressure):
    conditions = [c if c["type"] != pressure else cond(pressure, "True", "KubeletHas" + pressure, ago=10) for c in HEALTHY_NODE]
    f = H.evaluate_node(node(conditions), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("warning", pressure, ts(10))


def test_node_cordoned():
    f = H.evaluate_node(node(HEALTHY_NODE, unschedulable=True), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "Unschedulable")


# -- storage -------------------------------------------------------------------------------------------
def pvc(phase, created_ago=3600):
    return {"kind": "PersistentVolumeClaim", "metadata": meta("data", creationTimestamp=ts(created_ago)), "spec": {"volumeName": "pv-1"},
            "status": {"phase": phase}}


def test_pvc():
    assert H.evaluate_pvc(pvc("Bound"), T, NOW)["severity"] == "ok"
    assert H.evaluate_pvc(pvc("Pending", created_ago=60), T, NOW)["severity"] == "ok"
    f = H.evaluate_pvc(pvc("Pending", created_ago=600), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "Pending")
    f = H.evaluate_pvc(pvc("Lost"), T, NOW)
    assert (f["severity"], f["reason"]) == ("critical", "Lost") and "pv-1" in f["message"]


# -- jobs ----------------------------------------------------------------------------------------------
def test_job():
    job = {"kind": "Job", "metadata": meta("migrate"), "status": {"conditions": [cond("Complete", "True")]}}
    assert H.evaluate_job(job, T, NOW)["severity"] == "ok"
    job["status"]["conditions"] = [cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", 100)]
    f = H.evaluate_job(job, T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("warning", "BackoffLimitExceeded", ts(100))
    assert "backoff limit" in f["message"]


def cronjob(last_success_ago=None, created_ago=86400 * 3, suspend=False):
    status = {"lastScheduleTime": ts(60)}
    if last_success_ago is not None:
        status["lastSuccessfulTime"] = ts(last_success_ago)
    return {"kind": "CronJob", "metadata": meta("report", creationTimestamp=ts(created_ago)), "spec": {"schedule": "0 * * * *", "suspend": suspend},
            "status": status}


def test_cronjob():
    assert H.evaluate_cronjob(cronjob(last_success_ago=3600), T, NOW)["severity"] == "ok"
    f = H.evaluate_cronjob(cronjob(last_success_ago=2 * 86400), T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("warning", "LastSuccessTooOld", ts(2 * 86400))
    f = H.evaluate_cronjob(cronjob(), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "NoSuccessfulRun")
    assert H.evaluate_cronjob(cronjob(created_ago=600), T, NOW)["severity"] == "ok"
    assert H.evaluate_cronjob(cronjob(suspend=True), T, NOW)["severity"] == "ok"
    assert H.evaluate_cronjob(cronjob(last_success_ago=7200), H.normalize_thresholds({"max_cronjob_age": "1h"}), NOW)["reason"] == "LastSuccessTooOld"


# -- certificates --------------------------------------------------------------------------------------
def certificate(ready="True", not_after_in_days=60, reason=None, message=None):
    status = {"conditions": [cond("Ready", ready, reason, message)]}
    if not_after_in_days is not None:
        status["notAfter"] = (NOW + datetime.timedelta(days=not_after_in_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"kind": "Certificate", "metadata": meta("web-tls"), "status": status}


def test_certificate():
    assert H.evaluate_certificate(certificate(), T, NOW)["severity"] == "ok"
    f = H.evaluate_certificate(certificate(not_after_in_days=5), T, NOW)
    assert (f["severity"], f["reason"]) == ("warning", "ExpiringSoon") and "threshold 14 days" in f["message"]
    f = H.evaluate_certificate(certificate(not_after_in_days=-1, ready="False", reason="Expired"), T, NOW)
    assert f["severity"] == "critical"
    f = H.evaluate_certificate(certificate(ready="False", reason="IssuerNotReady", message="Issuer letsencrypt not ready"), T, NOW)
    assert (f["severity"], f["reason"]) == ("critical", "IssuerNotReady") and "Issuer letsencrypt not ready" in f["message"]
    assert H.evaluate_certificate({"kind": "Certificate", "metadata": meta("new"), "status": {}}, T, NOW)["reason"] == "NotReady"
    assert H.evaluate_certificate(certificate(not_after_in_days=5), H.normalize_thresholds({"cert_expiry_days": 3}), NOW)["severity"] == "ok"


# -- gitops --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Kustomization", "HelmRelease", "GitRepository"])
def test_flux(kind):
    obj = {"kind": kind, "metadata": meta("apps", namespace="flux-system"), "spec": {}, "status": {"conditions": [cond("Ready", "True", "Succeeded")]}}
    assert H.evaluate_flux(obj, T, NOW)["severity"] == "ok"
    obj["status"]["conditions"] = [cond("Ready", "False", "BuildFailed", "kustomize build failed: missing resource", 70)]
    f = H.evaluate_flux(obj, T, NOW)
    assert (f["check"], f["kind"], f["severity"], f["reason"], f["since"]) == ("gitops", kind, "critical", "BuildFailed", ts(70))
    assert "missing resource" in f["message"]
    obj["status"]["conditions"] = [cond("Ready", "Unknown", "Progressing", "reconciliation in progress")]
    assert (H.evaluate_flux(obj, T, NOW)["severity"], H.evaluate_flux(obj, T, NOW)["reason"]) == ("warning", "Progressing")
    obj["status"] = {}
    assert H.evaluate_flux(obj, T, NOW)["reason"] == "NotReconciled"
    obj["spec"]["suspend"] = True
    obj["status"]["conditions"] = [cond("Ready", "True")]
    assert H.evaluate_flux(obj, T, NOW)["reason"] == "Suspended"


def test_argo_application():
    app = {"kind": "Application", "metadata": meta("shop", namespace="argocd"),
           "status": {"health": {"status": "Healthy"}, "sync": {"status": "Synced"}}}
    assert H.evaluate_argo_application(app, T, NOW)["severity"] == "ok"
    app["status"]["sync"]["status"] = "OutOfSync"
    assert (H.evaluate_argo_application(app, T, NOW)["severity"], H.evaluate_argo_application(app, T, NOW)["reason"]) == ("warning", "SyncOutOfSync")
    app["status"]["health"] = {"status": "Degraded", "message": "Deployment web exceeded its progress deadline"}
    f = H.evaluate_argo_application(app, T, NOW)
    assert (f["severity"], f["reason"]) == ("critical", "HealthDegraded") and "progress deadline" in f["message"] and "OutOfSync" in f["message"]
    app["status"] = {"health": {"status": "Healthy"}, "sync": {"status": "Synced"}, "operationState": {"phase": "Failed", "message": "hook failed"}}
    assert H.evaluate_argo_application(app, T, NOW)["reason"] == "SyncFailed"


# -- backups -------------------------------------------------------------------------------------------
def backup(name, phase, completed_ago, schedule="daily", created_ago=None):
    labels = {"velero.io/schedule-name": schedule} if schedule else {}
    status = {"phase": phase}
    if completed_ago is not None:
        status["completionTimestamp"] = ts(completed_ago)
    if phase == "Failed":
        status["failureReason"] = "object store unreachable"
    return {"kind": "Backup", "metadata": meta(name, namespace="velero", labels=labels,
                                               creationTimestamp=ts(created_ago if created_ago is not None else (completed_ago or 0) + 60)),
            "status": status}


def schedule(name="daily", created_ago=86400 * 10, paused=False):
    return {"kind": "Schedule", "metadata": meta(name, namespace="velero", creationTimestamp=ts(created_ago)),
            "spec": {"schedule": "0 1 * * *", "paused": paused}}


def test_backups_recent_completed():
    index = H.BackupIndex(T, NOW)
    index.add(backup("daily-1", "Completed", 3600))
    index.add(backup("daily-0", "Completed", 90000 + 3600))
    index.add(backup("other-1", "Completed", 3600 * 30, schedule="weekly"))
    assert index.evaluate_schedule(schedule())["severity"] == "ok"
    f = index.evaluate_schedule(schedule("weekly"))
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "BackupTooOld", ts(3600 * 30)) and "other-1" in f["message"]


def test_backups_failures():
    index = H.BackupIndex(T, NOW)
    index.add(backup("daily-2", "PartiallyFailed", 600))
    index.add(backup("daily-1", "Completed", 3600))
    f = index.evaluate_schedule(schedule())
    assert (f["severity"], f["reason"]) == ("warning", "LastBackupPartiallyFailed") and "daily-2" in f["message"]
    index = H.BackupIndex(T, NOW)
    index.add(backup("daily-1", "Failed", 600))
    f = index.evaluate_schedule(schedule())
    assert (f["severity"], f["reason"]) == ("critical", "NoCompletedBackup")
    assert "latest backup daily-1 is Failed: object store unreachable" in f["message"]
    # a new schedule has until max_backup_age to produce its first backup
    assert H.BackupIndex(T, NOW).evaluate_schedule(schedule(created_ago=600))["severity"] == "ok"
    assert H.BackupIndex(T, NOW).evaluate_schedule(schedule(paused=True))["reason"] == "Paused"


def test_backups_without_schedule():
    index = H.BackupIndex(T, NOW)
    index.add(backup("manual", "Failed", 600, schedule=None))
    index.add(backup("old-manual", "Failed", 86400 * 5, schedule=None))
    index.add(backup("fine", "Completed", 600, schedule=None))
    assert [(f["name"], f["reason"], f["severity"]) for f in index.unscheduled_failures] == [("manual", "BackupFailed", "warning")]


def test_backup_storage_location():
    bsl = {"kind": "BackupStorageLocation", "metadata": meta("default", namespace="velero"), "status": {"phase": "Available"}}
    assert H.evaluate_backup_storage_location(bsl, T, NOW)["severity"] == "ok"
    bsl["status"] = {"phase": "Unavailable", "message": "bucket velero not found", "lastValidationTime": ts(30)}
    f = H.evaluate_backup_storage_location(bsl, T, NOW)
    assert (f["severity"], f["reason"], f["since"]) == ("critical", "Unavailable", ts(30)) and "bucket velero not found" in f["message"]


# -- mesh ----------------------------------------------------------------------------------------------
def test_istiod():
    f = H.evaluate_istiod([], T, NOW)
    assert (f["severity"], f["reason"], f["namespace"]) == ("critical", "IstiodMissing", "istio-system")
    dep = {"kind": "Deployment", "metadata": meta("istiod", namespace="istio-system"), "spec": {"replicas": 2}, "status": {"readyReplicas": 0}}
    assert H.evaluate_istiod([dep], T, NOW)["reason"] == "IstiodNotReady"
    dep["status"]["readyReplicas"] = 1
    assert (H.evaluate_istiod([dep], T, NOW)["severity"], H.evaluate_istiod([dep], T, NOW)["reason"]) == ("warning", "IstiodDegraded")
    dep["status"]["readyReplicas"] = 2
    assert H.evaluate_istiod([dep], T, NOW)["severity"] == "ok"


def test_namespace_injection():
    def ns(labels):
        return {"kind": "Namespace", "metadata": {"name": "shop", "labels": labels}}

    assert H.evaluate_namespace_injection(ns({"istio-injection": "enabled"}), T, NOW)["severity"] == "ok"
    assert H.evaluate_namespace_injection(ns({"istio.io/rev": "1-22"}), T, NOW)["severity"] == "ok"
    f = H.evaluate_namespace_injection(ns({}), T, NOW)
    assert (f["severity"], f["reason"], f["namespace"], f["name"]) == ("warning", "InjectionLabelMissing", None, "shop")
    assert H.evaluate_namespace_injection(ns({"istio-injection": "disabled"}), T, NOW)["reason"] == "InjectionDisabled"


# -- alerts --------------------------------------------------------------------------------------------
PROM_ALERT = {"labels": {"alertname": "PodCrashLooping", "severity": "critical", "namespace": "shop", "pod": "web-abc12"},
              "annotations": {"summary": "Pod shop/web-abc12 is crash looping"}, "state": "firing", "activeAt": "2026-03-01T11:50:00.5Z"}
AM_ALERT = {"labels": {"alertname": "HighLatency", "severity": "warning", "namespace": "shop", "service": "web"},
            "annotations": {"description": "p99 above 500ms"}, "status": {"state": "active"}, "startsAt": "2026-03-01T11:40:00Z"}


def test_alert_prometheus_shape():
    f = H.evaluate_alert(PROM_ALERT, ["critical", "warning"], {}, "prometheus")
    assert f == {"check": "alerts", "kind": "Alert", "namespace": "shop", "name": "PodCrashLooping", "severity": "critical",
                 "reason": "PodCrashLooping", "since": "2026-03-01T11:50:00Z",
                 "message": "PodCrashLooping firing in prometheus (severity critical, web-abc12): Pod shop/web-abc12 is crash looping"}
    assert H.evaluate_alert(dict(PROM_ALERT, state="pending"), ["critical"], {}, "prometheus") is None


def test_alert_alertmanager_shape_and_filters():
    f = H.evaluate_alert(AM_ALERT, ["critical", "warning"], {}, "alertmanager")
    assert (f["severity"], f["name"], f["since"]) == ("warning", "HighLatency", "2026-03-01T11:40:00Z") and "p99 above 500ms" in f["message"]
    assert H.evaluate_alert(AM_ALERT, ["critical"], {}, "alertmanager") is None
    assert H.evaluate_alert(AM_ALERT, ["warning"], {"namespace": "other"}, "alertmanager") is None
    assert H.evaluate_alert(AM_ALERT, ["warning"], {"namespace": "shop"}, "alertmanager") is not None
    watchdog = {"labels": {"alertname": "Watchdog", "severity": "none"}, "state": "firing"}
    assert H.evaluate_alert(watchdog, ["critical", "warning"], {}, "prometheus") is None


# -- endpoints -----------------------------------------------------------------------------------------
def test_endpoint_response_evaluation():
    spec = {"url": "http://svc/health", "status_code": [200, 204], "body_contains": "ok"}
    assert H.evaluate_endpoint_response(spec, 200, "status: ok", None)["severity"] == "ok"
    f = H.evaluate_endpoint_response(spec, 503, "down", None)
    assert (f["severity"], f["reason"], f["name"]) == ("critical", "UnexpectedStatus", "http://svc/health") and "expected 200 or 204" in f["message"]
    assert H.evaluate_endpoint_response(spec, 204, "nope", None)["reason"] == "BodyMismatch"
    f = H.evaluate_endpoint_response(dict(spec, name="svc", severity="warning"), None, None, "cannot connect: refused")
    assert (f["severity"], f["reason"], f["name"]) == ("warning", "Unreachable", "svc")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/ok" else 500
        body = b"all good" if code == 200 else b"broken"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_endpoint_against_a_real_server(http_server):
    assert H.probe_endpoint({"url": http_server + "/ok", "body_contains": "good"})["severity"] == "ok"
    f = H.probe_endpoint({"url": http_server + "/broken"})
    assert (f["reason"], f["severity"]) == ("UnexpectedStatus", "critical") and "answered 500" in f["message"]
    assert H.probe_endpoint({"url": http_server + "/broken", "status_code": [500]})["severity"] == "ok"
    f = H.probe_endpoint({"url": "http://127.0.0.1:1/none", "timeout": 2})
    assert f["reason"] == "Unreachable" and "cannot connect" in f["message"]


def test_alertmanager_fetch_error_is_a_check_error():
    with pytest.raises(H.CheckError, match=r"Alertmanager request to http://127.0.0.1:1 failed: cannot connect"):
        H.fetch_alertmanager_alerts("http://127.0.0.1:1", timeout=2)
