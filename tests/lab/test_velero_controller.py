"""Velero simulated over the real emulator and a real moto S3 server, checked with boto3."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import kubernetes
import pytest

from lab.controllers.client import ControllersAdmin
from lab.controllers.clock import parse_time
from lab.controllers.testing import private_lab
from lab.faults import Faults
from lab.s3 import s3_client, start_moto
from lab.services import LabContext

pytestmark = pytest.mark.lab
V = ("velero.io", "v1", "velero")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with private_lab(tmp_path_factory.mktemp("velero-lab")) as endpoints:
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
def co(api):
    return kubernetes.client.CustomObjectsApi(api)


@pytest.fixture(scope="module")
def clock(lab):
    return ControllersAdmin.from_endpoints(lab)


@pytest.fixture(scope="module")
def faults(lab):
    return Faults.from_endpoints(lab)


@pytest.fixture(scope="module")
def s3(lab):
    return s3_client(lab["s3"])


@pytest.fixture(scope="module")
def shop(core, apps, clock):
    """Namespace ``shop``: a ConfigMap, a Secret, a Deployment; ``other`` namespace with a ConfigMap."""
    for ns in ("shop", "other"):
        core.create_namespace({"metadata": {"name": ns, "labels": {"team": ns}}})
    core.create_namespaced_config_map("shop", {"metadata": {"name": "settings", "labels": {"app": "shop"}}, "data": {"mode": "live"}})
    core.create_namespaced_config_map("shop", {"metadata": {"name": "unlabelled"}, "data": {"x": "1"}})
    core.create_namespaced_config_map("shop", {"metadata": {"name": "private", "labels": {"velero.io/exclude-from-backup": "true"}}})
    core.create_namespaced_secret("shop", {"metadata": {"name": "creds", "labels": {"app": "shop"}}, "stringData": {"k": "v"}})
    core.create_namespaced_config_map("other", {"metadata": {"name": "elsewhere"}, "data": {"y": "2"}})
    apps.create_namespaced_deployment("shop", {
        "metadata": {"name": "web", "labels": {"app": "shop"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})
    clock.advance(1)
    return "shop"


def backup(co, name, spec, annotations=None):
    body = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name}, "spec": spec}
    if annotations:
        body["metadata"]["annotations"] = annotations
    return co.create_namespaced_custom_object(*V, "backups", body)


def get(co, plural, name):
    return co.get_namespaced_custom_object(*V, plural, name)


def read_gz_json(s3, key):
    return json.loads(gzip.decompress(s3.get_object(Bucket="velero", Key=key)["Body"].read()))


def tarball(s3, name) -> dict[str, bytes]:
    raw = s3.get_object(Bucket="velero", Key=f"backups/{name}/{name}.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def keys(s3, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="velero", Prefix=prefix).get("Contents") or [])


def test_default_storage_location_is_available(co, clock):
    clock.advance(0)
    bsl = get(co, "backupstoragelocations", "default")
    assert bsl["spec"]["objectStorage"]["bucket"] == "velero" and bsl["spec"]["default"] is True
    assert bsl["status"]["phase"] == "Available" and bsl["status"]["lastValidationTime"]


def test_backup_phases_and_velero_layout_in_s3(co, s3, clock, shop):
    backup(co, "shop-1", {"includedNamespaces": ["shop"], "ttl": "48h0m0s"})
    clock.advance(0)
    status = get(co, "backups", "shop-1")["status"]
    assert status["phase"] == "InProgress" and status["startTimestamp"]
    clock.advance(1)
    b = get(co, "backups", "shop-1")
    status = b["status"]
    assert status["phase"] == "Completed" and status["completionTimestamp"] and status["formatVersion"] == "1.1.0"
    assert status["progress"]["totalItems"] == status["progress"]["itemsBackedUp"] > 0
    assert "errors" not in status and "warnings" not in status
    assert b["metadata"]["labels"]["velero.io/storage-location"] == "default"
    assert (parse_time(status["expiration"]) - parse_time(status["startTimestamp"])).total_seconds() == 48 * 3600

    assert set(keys(s3, "backups/shop-1/")) >= {
        "backups/shop-1/velero-backup.json", "backups/shop-1/shop-1.tar.gz", "backups/shop-1/shop-1-logs.gz",
        "backups/shop-1/shop-1-resource-list.json.gz", "backups/shop-1/shop-1-results.gz"}
    doc = json.loads(s3.get_object(Bucket="velero", Key="backups/shop-1/velero-backup.json")["Body"].read())
    assert doc["kind"] == "Backup" and doc["metadata"]["name"] == "shop-1" and doc["status"]["phase"] == "Completed"
    files = tarball(s3, "shop-1")
    assert files["metadata/version"] == b"1.1.0"
    assert "resources/namespaces/cluster/shop.json" in files
    dep = json.loads(files["resources/deployments.apps/namespaces/shop/web.json"])
    assert dep["kind"] == "Deployment" and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json" in files
    assert json.loads(files["resources/configmaps/namespaces/shop/settings.json"])["data"] == {"mode": "live"}
    assert "resources/secrets/namespaces/shop/creds.json" in files
    assert "resources/configmaps/namespaces/shop/private.json" not in files  # velero.io/exclude-from-backup
    assert any(k.startswith("resources/pods/namespaces/shop/web-") for k in files)
    assert not any("/other/" in k or k.endswith("/other.json") for k in files)  # not an included namespace
    assert not any(k.startswith("resources/nodes/") for k in files)  # cluster resources only for all-namespace backups
    listing = read_gz_json(s3, "backups/shop-1/shop-1-resource-list.json.gz")
    assert "shop/web" in listing["apps/v1/Deployment"] and listing["v1/Namespace"] == ["shop"]
    assert sum(len(v) for v in listing.values()) == status["progress"]["itemsBackedUp"]
    logs = gzip.decompress(s3.get_object(Bucket="velero", Key="backups/shop-1/shop-1-logs.gz")["Body"].read()).decode()
    assert "Backed up a total of" in logs


def test_backup_filters_resources_and_labels(co, s3, clock, shop):
    backup(co, "only-cm", {"includedNamespaces": ["*"], "excludedNamespaces": ["other", "velero"],
                           "includedResources": ["configmaps"], "labelSelector": {"matchLabels": {"app": "shop"}}})
    clock.advance(0)
    clock.advance(1)
    files = tarball(s3, "only-cm")
    resources = sorted(k for k in files if k.startswith("resources/") and "preferredversion" not in k)
    assert "resources/configmaps/namespaces/shop/settings.json" in resources
    assert "resources/configmaps/namespaces/shop/unlabelled.json" not in resources
    assert not any(k.startswith(("resources/secrets/", "resources/deployments.apps/")) for k in resources)
    assert not any("/other/" in k for k in resources)


def test_partially_failed_backup_writes_results(co, s3, clock, faults, shop):
    backup(co, "partial", {"includedNamespaces": ["shop"]})
    faults.inject("backup_partially_failed", "velero", "partial", params={"errors": 2})
    clock.advance(0)
    clock.advance(1)
    status = get(co, "backups", "partial")["status"]
    assert status["phase"] == "PartiallyFailed" and status["errors"] == 2
    assert status["progress"]["itemsBackedUp"] == status["progress"]["totalItems"] - 2
    results = read_gz_json(s3, "backups/partial/partial-results.gz")
    messages = results["errors"]["namespaces"]["shop"]
    assert len(messages) == 2 and all("backup_partially_failed" in m for m in messages)


def test_failed_backup(co, s3, clock, faults, shop):
    backup(co, "broken", {"includedNamespaces": ["shop"]})
    faults.inject("backup_failed", "velero", "broken", params={"reason": "disk on fire"})
    clock.advance(0)
    clock.advance(1)
    status = get(co, "backups", "broken")["status"]
    assert status["phase"] == "Failed" and status["failureReason"] == "disk on fire"
    assert "backups/broken/broken.tar.gz" not in keys(s3, "backups/broken/")
    assert "backups/broken/velero-backup.json" in keys(s3, "backups/broken/")


def test_restore_with_namespace_mapping(co, core, apps, clock, shop):
    backup(co, "for-restore", {"includedNamespaces": ["shop"]})
    clock.advance(0)
    clock.advance(1)
    co.create_namespaced_custom_object(*V, "restores", {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "to-copy"},
                                                        "spec": {"backupName": "for-restore", "namespaceMapping": {"shop": "shop-copy"}}})
    clock.advance(0)
    assert get(co, "restores", "to-copy")["status"]["phase"] == "InProgress"
    clock.advance(1)
    status = get(co, "restores", "to-copy")["status"]
    assert status["phase"] == "Completed" and status["completionTimestamp"]
    assert status["progress"]["itemsRestored"] == status["progress"]["totalItems"] > 0
    cm = core.read_namespaced_config_map("settings", "shop-copy")
    assert cm.data == {"mode": "live"}
    assert cm.metadata.labels["velero.io/restore-name"] == "to-copy" and cm.metadata.labels["velero.io/backup-name"] == "for-restore"
    assert core.read_namespaced_secret("creds", "shop-copy").data["k"]
    dep = apps.read_namespaced_deployment("web", "shop-copy")
    assert dep.metadata.uid != apps.read_namespaced_deployment("web", "shop").metadata.uid
    clock.advance(2)  # the restored Deployment is reconciled like any other
    assert apps.read_namespaced_deployment("web", "shop-copy").status.ready_replicas == 2


def test_restore_existing_resource_policy(co, core, clock, shop):
    backup(co, "policy", {"includedNamespaces": ["shop"], "includedResources": ["configmaps"]})
    clock.advance(0)
    clock.advance(1)
    core.patch_namespaced_config_map("settings", "shop", {"data": {"mode": "broken"}})
    co.create_namespaced_custom_object(*V, "restores", {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "keep"},
                                                        "spec": {"backupName": "policy"}})
    clock.advance(0)
    clock.advance(1)
    status = get(co, "restores", "keep")["status"]
    assert status["phase"] == "Completed" and status["warnings"] >= 1
    assert core.read_namespaced_config_map("settings", "shop").data == {"mode": "broken"}
    co.create_namespaced_custom_object(*V, "restores", {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "overwrite"},
                                                        "spec": {"backupName": "policy", "existingResourcePolicy": "update"}})
    clock.advance(0)
    clock.advance(1)
    assert get(co, "restores", "overwrite")["status"]["phase"] == "Completed"
    assert core.read_namespaced_config_map("settings", "shop").data == {"mode": "live"}


def test_restore_of_a_missing_backup_fails_validation(co, clock):
    co.create_namespaced_custom_object(*V, "restores", {"apiVersion": "velero.io/v1", "kind": "Restore", "metadata": {"name": "nothing"},
                                                        "spec": {"backupName": "does-not-exist"}})
    clock.advance(0)
    status = get(co, "restores", "nothing")["status"]
    assert status["phase"] == "FailedValidation" and "not found" in status["validationErrors"][0]


def test_schedule_creates_backups_on_its_cron(co, clock, faults, shop):
    co.create_namespaced_custom_object(*V, "schedules", {"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": "hourly"},
                                                         "spec": {"schedule": "0 * * * *", "template": {"includedNamespaces": ["shop"]}}})
    clock.advance(0)

    def scheduled():
        items = co.list_namespaced_custom_object(*V, "backups", label_selector="velero.io/schedule-name=hourly")["items"]
        return sorted(b["metadata"]["name"] for b in items)

    first = scheduled()
    assert len(first) == 1  # a new schedule runs once right away, like Velero
    sched = get(co, "schedules", "hourly")
    assert sched["status"]["phase"] == "Enabled" and sched["status"]["lastBackup"]
    now = clock.now()
    clock.advance(3600 - now.minute * 60 - now.second)  # to the next full hour
    names = scheduled()
    assert len(names) == 2
    top = clock.now().strftime("%Y%m%d%H0000")
    assert f"hourly-{top}" in names
    clock.advance(7200)
    assert len(scheduled()) == 4
    assert get(co, "backups", f"hourly-{top}")["status"]["phase"] == "Completed"
    faults.inject("backup_partially_failed", "velero", "hourly", target_kind="Schedule")
    clock.advance(3600)
    clock.advance(1)  # the backup created on the hour finishes a second later
    newest = scheduled()[-1]
    assert get(co, "backups", newest)["status"]["phase"] == "PartiallyFailed"
    faults.clear("velero", "hourly")
    co.patch_namespaced_custom_object(*V, "schedules", "hourly", {"spec": {"paused": True}})
    clock.advance(7200)
    assert len(scheduled()) == 5


def test_delete_backup_request_removes_backup_and_objects(co, s3, clock, shop):
    backup(co, "doomed", {"includedNamespaces": ["shop"]})
    clock.advance(0)
    clock.advance(1)
    assert keys(s3, "backups/doomed/")
    co.create_namespaced_custom_object(*V, "deletebackuprequests", {"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
                                                                    "metadata": {"name": "doomed-del"}, "spec": {"backupName": "doomed"}})
    clock.advance(0)
    assert keys(s3, "backups/doomed/") == []
    with pytest.raises(kubernetes.client.ApiException) as err:
        get(co, "backups", "doomed")
    assert err.value.status == 404
    assert get(co, "deletebackuprequests", "doomed-del")["status"]["phase"] == "Processed"


def test_expired_backups_are_garbage_collected(co, s3, clock, shop):
    backup(co, "short", {"includedNamespaces": ["shop"], "ttl": "1h0m0s"})
    clock.advance(0)
    clock.advance(1)
    assert keys(s3, "backups/short/")
    clock.advance(3600)
    assert keys(s3, "backups/short/") == []
    names = [b["metadata"]["name"] for b in co.list_namespaced_custom_object(*V, "backups")["items"]]
    assert "short" not in names


def test_storage_location_unavailable_when_its_s3_stops_and_with_fault(co, clock, faults, tmp_path, shop):
    ctx = LabContext(dir=tmp_path)
    private = start_moto(ctx, "s3-private", bucket="private")
    try:
        co.create_namespaced_custom_object(*V, "backupstoragelocations", {
            "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": "private"},
            "spec": {"provider": "aws", "objectStorage": {"bucket": "private"}, "validationFrequency": "30s",
                     "config": {"region": "us-east-1", "s3Url": private["endpoint_url"]}}})
        clock.advance(0)
        assert get(co, "backupstoragelocations", "private")["status"]["phase"] == "Available"
        backup(co, "to-private", {"includedNamespaces": ["shop"], "storageLocation": "private"})
        clock.advance(0)
        clock.advance(1)
        assert get(co, "backups", "to-private")["status"]["phase"] == "Completed"
        assert s3_client(private).head_object(Bucket="private", Key="backups/to-private/to-private.tar.gz")["ContentLength"] > 0
    finally:
        ctx.stop_pid("s3-private")
    clock.advance(31)
    status = get(co, "backupstoragelocations", "private")["status"]
    assert status["phase"] == "Unavailable" and "unavailable" in status["message"]
    backup(co, "cannot", {"storageLocation": "private"})
    clock.advance(0)
    status = get(co, "backups", "cannot")["status"]
    assert status["phase"] == "FailedValidation" and "Unavailable" in status["validationErrors"][0]

    faults.inject("bsl_unavailable", "velero", "default")
    clock.advance(0)
    assert get(co, "backupstoragelocations", "default")["status"]["phase"] == "Unavailable"
    faults.clear("velero", "default")
    clock.advance(0)
    assert get(co, "backupstoragelocations", "default")["status"]["phase"] == "Available"
