"""Unit tests of module_utils/velero.py: spec building, phases, schedule comparison, latest-backup choice."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V

UTC = datetime.UTC


def backup(name, phase, start=None, schedule=None, **status):
    labels = {"velero.io/schedule-name": schedule} if schedule else {}
    st = {"phase": phase, **status}
    if start:
        st["startTimestamp"] = start
    return {"apiVersion": V.API_VERSION, "kind": "Backup", "metadata": {"name": name, "namespace": "velero", "labels": labels},
            "spec": {}, "status": st}


DURATIONS = [("720h0m0s", 2592000), ("168h", 604800), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("0", 0), ("500ms", 0.5)]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text, seconds):
    assert V.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1 h", "h", "abc", "-1h"])
def test_parse_duration_rejects_non_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        V.parse_duration(text)


def test_ttl_is_written_in_velero_canonical_form():
    assert V.backup_spec({"ttl": "30d"})["ttl"] == "720h0m0s"
    assert V.backup_spec({"ttl": "5430"})["ttl"] == "1h30m30s"


def test_backup_spec_maps_every_option_and_drops_unset_ones():
    spec = V.backup_spec({"included_namespaces": ["production", "istio-system"], "excluded_resources": ["events"],
                          "label_selector": {"app": "web"}, "ttl": "720h", "storage_location": "default",
                          "snapshot_volumes": False, "default_volumes_to_fs_backup": True,
                          "hooks": {"resources": [{"name": "freeze"}]}, "included_resources": None})
    assert spec == {"includedNamespaces": ["production", "istio-system"], "excludedResources": ["events"],
                    "labelSelector": {"matchLabels": {"app": "web"}}, "ttl": "720h0m0s", "storageLocation": "default",
                    "snapshotVolumes": False, "defaultVolumesToFsBackup": True, "hooks": {"resources": [{"name": "freeze"}]}}


def test_label_selector_keeps_a_full_selector():
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}
    assert V.label_selector(sel) == sel


def test_restore_spec_prefers_backup_name_and_maps_namespaces():
    spec = V.restore_spec({"schedule_name": "daily", "namespace_mapping": {"production": "production-copy"},
                           "existing_resource_policy": "update", "restore_pvs": True, "included_namespaces": ["production"]},
                          backup_name="daily-20260101020000")
    assert spec == {"backupName": "daily-20260101020000", "includedNamespaces": ["production"],
                    "namespaceMapping": {"production": "production-copy"}, "existingResourcePolicy": "update", "restorePVs": True}
    assert V.restore_spec({"schedule_name": "daily"}) == {"scheduleName": "daily"}


def test_schedule_spec_validates_cron():
    assert V.schedule_spec("0 2 * * *", {"ttl": "720h0m0s"})["schedule"] == "0 2 * * *"
    assert V.schedule_spec("@every 1h", {})["schedule"] == "@every 1h"
    with pytest.raises(ValueError, match="5"):
        V.schedule_spec("0 2 * *", {})
    with pytest.raises(ValueError, match="empty"):
        V.schedule_spec("", {})


def test_schedule_plan_unchanged_for_equivalent_spellings():
    desired = V.schedule_spec("0 2 * * *", V.backup_spec({"included_namespaces": ["production", "monitoring"], "ttl": "720h"}))
    existing = {"metadata": {"name": "daily"}, "spec": {"schedule": "0 2 * * *", "paused": False,
                                                        "template": {"includedNamespaces": ["monitoring", "production"],
                                                                     "ttl": "720h0m0s", "excludedResources": []}}}
    plan = V.schedule_plan(existing, desired)
    assert plan["action"] == "none", plan
    assert plan["changes"] == []


def test_schedule_plan_names_the_changed_fields():
    desired = V.schedule_spec("0 * * * *", V.backup_spec({"included_namespaces": ["production"], "ttl": "168h"}), paused=True)
    existing = {"spec": {"schedule": "0 2 * * *", "template": {"includedNamespaces": ["production"], "ttl": "720h0m0s"}}}
    plan = V.schedule_plan(existing, desired)
    assert plan["action"] == "update"
    assert plan["changes"] == ["paused", "schedule", "template.ttl"]
    assert plan["before"]["spec"]["schedule"] == "0 2 * * *" and plan["after"]["spec"]["schedule"] == "0 * * * *"
    assert V.schedule_plan(None, desired)["action"] == "create"


def test_schedule_update_patches_only_the_fields_set_and_keeps_the_rest():
    existing = {"metadata": {"name": "daily", "labels": {"team": "a"}},
                "spec": {"schedule": "0 2 * * *", "csiSnapshotTimeout": "20m0s", "resourcePolicy": {"kind": "configmap", "name": "p"},
                         "template": {"includedNamespaces": ["production"], "ttl": "720h0m0s", "metadata": {"labels": {"x": "y"}},
                                      "csiSnapshotTimeout": "10m0s"}},
                "status": {"phase": "Enabled", "lastBackup": "2026-01-01T02:00:00Z"}}
    desired = V.schedule_spec("0 3 * * *", V.backup_spec({"included_namespaces": ["production"], "ttl": "7d"}))
    plan = V.schedule_plan(existing, desired, {"team": "a"})
    assert plan["changes"] == ["schedule", "template.ttl"]
    assert plan["patch"] == {"spec": {"schedule": "0 3 * * *", "template": {"ttl": "168h0m0s"}}}
    assert plan["before"] == {"spec": {"schedule": "0 2 * * *", "template": {"ttl": "720h0m0s"}}}
    assert plan["after"] == {"spec": {"schedule": "0 3 * * *", "template": {"ttl": "168h0m0s"}}}
    # a second run against the patched object changes nothing
    patched = {"metadata": existing["metadata"], "status": existing["status"],
               "spec": dict(existing["spec"], schedule="0 3 * * *",
                            template=dict(existing["spec"]["template"], ttl="168h0m0s"))}
    assert V.schedule_plan(patched, desired, {"team": "a"})["action"] == "none"


def test_schedule_unpause_is_patched():
    existing = {"spec": {"schedule": "0 2 * * *", "paused": True, "template": {}}}
    plan = V.schedule_plan(existing, V.schedule_spec("0 2 * * *", {}, paused=False))
    assert plan["patch"] == {"spec": {"paused": False}}


def test_schedule_plan_sees_label_changes():
    desired = V.schedule_spec("0 2 * * *", {})
    plan = V.schedule_plan({"metadata": {"labels": {"team": "a"}}, "spec": dict(desired)}, desired, {"team": "b"})
    assert plan["changes"] == ["metadata.labels.team"]


def test_summarize_partially_failed():
    obj = backup("b1", "PartiallyFailed", "2026-01-01T02:00:00Z", errors=2, warnings=1,
                 completionTimestamp="2026-01-01T02:01:30Z", progress={"itemsBackedUp": 40, "totalItems": 42})
    s = V.summarize(obj)
    assert (s["terminal"], s["succeeded"], s["errors"], s["warnings"], s["duration_seconds"]) == (True, False, 2, 1, 90.0)
    assert (s["items_backed_up"], s["total_items"]) == (40, 42)
    assert V.diagnose(s) == "Backup velero/b1 is PartiallyFailed with 2 error(s) and 1 warning(s)"


def test_summarize_failed_and_failed_validation_give_reasons():
    s = V.summarize(backup("b2", "Failed", failureReason="backup storage location is not available"))
    assert V.diagnose(s).endswith("Failed: backup storage location is not available")
    s = V.summarize(backup("b3", "FailedValidation", validationErrors=["invalid ttl", "no location"]))
    assert V.diagnose(s).endswith("FailedValidation: invalid ttl; no location")
    assert V.diagnose(V.summarize(backup("b4", "Completed"))) is None


def test_in_progress_past_the_deadline_is_stuck():
    obj = backup("b5", "InProgress", "2026-01-01T00:00:00Z")
    now = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    s = V.summarize(obj, now=now, in_progress_deadline=3600)
    assert s["stuck"] and s["in_progress_seconds"] == 7200
    assert "stuck in InProgress for 7200s (deadline 3600s" in V.diagnose(s, 3600)
    s = V.summarize(obj, now=now, in_progress_deadline=10800)
    assert not s["stuck"] and not s["terminal"]


def test_latest_backup_of_a_schedule():
    items = [backup("daily-1", "Completed", "2026-01-01T02:00:00Z", "daily"),
             backup("daily-3", "PartiallyFailed", "2026-01-03T02:00:00Z", "daily"),
             backup("daily-2", "Completed", "2026-01-02T02:00:00Z", "daily"),
             backup("hourly-9", "Completed", "2026-01-04T02:00:00Z", "hourly")]
    assert V.latest_backup(items, "daily")["metadata"]["name"] == "daily-2"
    assert V.latest_backup(items, "daily", phases=("Completed", "PartiallyFailed"))["metadata"]["name"] == "daily-3"
    assert V.latest_backup(items)["metadata"]["name"] == "hourly-9"
    assert V.latest_backup(items, "weekly") is None


class FakeClock:
    """Time for the waiting loop (the loop's own clock and sleep are parameters, not patched)."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class Phases:
    """A stand-in for KubeClient.get returning a scripted sequence of objects (the loop's input)."""

    def __init__(self, objects):
        self.objects = list(objects)
        self.calls = 0

    def get(self, api_version, kind, name, namespace=None):
        obj = self.objects[min(self.calls, len(self.objects) - 1)]
        self.calls += 1
        return obj


def test_wait_for_phase_returns_the_terminal_object():
    clock = FakeClock()
    client = Phases([backup("b", "New"), backup("b", "InProgress", "2026-01-01T00:00:00Z"), backup("b", "Completed")])
    _obj, s = V.wait_for_phase(client, "Backup", "b", "velero", timeout=60, poll_interval=1, clock=clock, sleep=clock.sleep)
    assert s["phase"] == "Completed" and client.calls == 3


def test_wait_for_phase_times_out_naming_the_phase():
    clock = FakeClock()
    client = Phases([backup("b", "InProgress", V.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))])
    with pytest.raises(V.VeleroError, match=r"Backup velero/b did not reach a terminal phase within 5s: last seen InProgress"):
        V.wait_for_phase(client, "Backup", "b", "velero", timeout=5, poll_interval=1, clock=clock, sleep=clock.sleep)


def test_wait_for_phase_fails_fast_when_stuck():
    clock = FakeClock()
    client = Phases([backup("b", "InProgress", "2020-01-01T00:00:00Z")])
    with pytest.raises(V.VeleroError, match="stuck in InProgress"):
        V.wait_for_phase(client, "Backup", "b", "velero", timeout=600, poll_interval=1, in_progress_deadline=60, clock=clock, sleep=clock.sleep)
    assert client.calls == 1


def test_wait_for_phase_object_gone():
    class Gone:
        def get(self, *a, **k):
            return None

    with pytest.raises(V.VeleroError, match="disappeared"):
        V.wait_for_phase(Gone(), "Restore", "r", "velero", timeout=5)


def test_delete_request_body_like_the_cli():
    body = V.delete_request_body("daily-20260101020000", "velero")
    assert body["metadata"]["generateName"] == "daily-20260101020000-"
    assert body["spec"] == {"backupName": "daily-20260101020000"}
    assert body["metadata"]["labels"]["velero.io/backup-name"] == "daily-20260101020000"
