"""S3 verification of Velero backups against a real moto S3 server holding tarballs in Velero's layout."""

from __future__ import annotations

import gzip
import io
import json
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import backup_verify as BV

KEY, SECRET = "unit-access", "unit-secret-value"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    argv = [str(exe), "-H", "127.0.0.1", "-p", str(port)] if exe.exists() else [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def store(moto, request):
    bucket = "b-" + request.node.name.lower().replace("_", "-")[:50]
    s = BV.S3Store(bucket=bucket, prefix="velero", endpoint_url=moto, region="us-east-1", access_key=KEY, secret_key=SECRET)
    s.client.create_bucket(Bucket=bucket)
    return s


def obj(kind, api_version, name, namespace=None, owner=None):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "controller": True}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def sample_objects(namespaces=("production", "monitoring"), per_ns=3):
    out = []
    for ns in namespaces:
        out.append(("namespaces", obj("Namespace", "v1", ns)))
        for i in range(per_ns):
            out.append(("deployments.apps", obj("Deployment", "apps/v1", f"app{i}", ns)))
            out.append(("configmaps", obj("ConfigMap", "v1", f"cm{i}", ns)))
            out.append(("pods", obj("Pod", "v1", f"app{i}-abc-x1", ns, owner=f"app{i}-abc")))
    return out


def tarball(objects, version=b"1.1.0"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        if version is not None:
            add("metadata/version", version)
        for resource, o in objects:
            ns = o["metadata"].get("namespace")
            scope = f"namespaces/{ns}" if ns else "cluster"
            data = json.dumps(o).encode()
            add(f"resources/{resource}/{scope}/{o['metadata']['name']}.json", data)
            add(f"resources/{resource}/v1-preferredversion/{scope}/{o['metadata']['name']}.json", data)
    return buf.getvalue()


def upload(store, name, objects, phase="Completed", tar=None, items=None, errors=None, logs=None):  # noqa: PLR0917
    doc = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
           "status": {"phase": phase, "progress": {"itemsBackedUp": len(objects) if items is None else items}}}
    store.put(store.backup_key(name, "velero-backup.json"), json.dumps(doc).encode())
    if tar is not False:
        store.put(store.backup_key(name, f"{name}.tar.gz"), tar if tar is not None else tarball(objects))
    rl = {}
    for _resource, o in objects:
        rl.setdefault(f"{o['apiVersion']}/{o['kind']}", []).append(o["metadata"]["name"])
    store.put(store.backup_key(name, f"{name}-resource-list.json.gz"), gzip.compress(json.dumps(rl).encode()))
    store.put(store.backup_key(name, f"{name}-results.gz"), gzip.compress(json.dumps({"errors": errors or {}, "warnings": {}}).encode()))
    store.put(store.backup_key(name, f"{name}-logs.gz"), gzip.compress("\n".join(logs or ['level=info msg="ok"']).encode()))


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_complete_backup_passes_every_check(store):
    objects = sample_objects()
    upload(store, "daily-1", objects)
    report = BV.verify_backup(store, "daily-1", expected_namespaces=["production", "monitoring"],
                              expected_resources=["deployments", "configmaps", "pods", "namespaces"], min_size=100)
    assert report["passed"], report["checks"]
    checks = by_name(report)
    assert set(checks) == {"metadata_present", "metadata_completed", "tarball_present", "tarball_size", "tarball_readable",
                           "item_count", "expected_namespaces", "expected_resources", "resource_list"}
    assert report["items"] == len(objects) == 20
    assert report["resources"] == {"namespaces": 2, "deployments.apps": 6, "configmaps": 6, "pods": 6}
    assert report["namespaces"] == {"production": 9, "monitoring": 9}
    assert report["format_version"] == "1.1.0"


def test_missing_tarball_fails_although_metadata_says_completed(store):
    upload(store, "gone", sample_objects(), tar=False)
    report = BV.verify_backup(store, "gone", cluster_phase="Completed")
    checks = by_name(report)
    assert not report["passed"]
    assert checks["metadata_completed"]["passed"]
    assert not checks["tarball_present"]["passed"]
    assert "gone.tar.gz does not exist although the Backup object says Completed" in checks["tarball_present"]["reason"]
    assert report["failed_checks"] == ["tarball_present"]


def test_corrupt_tarball_is_not_readable(store):
    upload(store, "corrupt", sample_objects(), tar=b"\x1f\x8b\x08\x00garbage" * 50)
    checks = by_name(BV.verify_backup(store, "corrupt"))
    assert not checks["tarball_readable"]["passed"]
    assert "not a readable gzip tar" in checks["tarball_readable"]["reason"]
    assert checks["tarball_size"]["passed"]


def test_tar_without_velero_version_is_rejected(store):
    objects = sample_objects(per_ns=1)
    upload(store, "noversion", objects, tar=tarball(objects, version=None))
    checks = by_name(BV.verify_backup(store, "noversion"))
    assert not checks["tarball_readable"]["passed"]
    assert "metadata/version is missing" in checks["tarball_readable"]["reason"]


def test_size_floor_and_expectations(store):
    objects = sample_objects(namespaces=("production",), per_ns=1)
    upload(store, "small", objects, items=7)
    report = BV.verify_backup(store, "small", expected_namespaces=["production", "istio-system"],
                              expected_resources=["deployments.apps", "secrets"], min_size=10**6)
    checks = by_name(report)
    assert not checks["tarball_size"]["passed"] and "< the floor of 1000000 bytes" in checks["tarball_size"]["reason"]
    assert checks["expected_namespaces"]["reason"] == "missing namespaces: istio-system"
    assert checks["expected_resources"]["reason"] == "missing resources: secrets"
    assert checks["item_count"]["reason"] == "the tarball holds 4 items, Velero reports 7 backed up"
    assert set(report["failed_checks"]) == {"tarball_size", "expected_namespaces", "expected_resources", "item_count"}


def test_partially_failed_metadata_and_first_errors(store):
    errors = {"namespaces": {"production": ["error executing custom action (groupResource=pods, name=web-1): boom"]}}
    upload(store, "pf", sample_objects(), phase="PartiallyFailed", errors=errors,
           logs=['time="t" level=info msg="start"', 'time="t" level=error msg="boom" backup=velero/pf'])
    report = BV.verify_backup(store, "pf")
    assert by_name(report)["metadata_completed"]["reason"].startswith("velero-backup.json says phase PartiallyFailed")
    details = BV.failure_details(store, "pf")
    assert details["errors"] == ["namespace production: error executing custom action (groupResource=pods, name=web-1): boom"]
    assert details["log_errors"] == ['time="t" level=error msg="boom" backup=velero/pf']
    assert details["unavailable"] == []


def test_missing_metadata(store):
    report = BV.verify_backup(store, "never-written")
    checks = by_name(report)
    assert not checks["metadata_present"]["passed"] and not checks["tarball_present"]["passed"]
    assert "velero/backups/never-written/velero-backup.json does not exist" in checks["metadata_present"]["reason"]
    details = BV.failure_details(store, "never-written")
    assert len(details["unavailable"]) == 2


def test_endpoint_down_is_a_clear_error_without_secrets():
    port = _free_port()  # nothing listens there
    s = BV.S3Store(bucket="velero", endpoint_url=f"http://127.0.0.1:{port}", access_key=KEY, secret_key=SECRET, timeout=1, retries=1)
    with pytest.raises(BV.S3Error) as err:
        BV.verify_backup(s, "x")
    text = str(err.value)
    assert f"HEAD s3://velero at http://127.0.0.1:{port} failed: the S3 endpoint is unreachable" in text
    assert SECRET not in text


def test_missing_bucket_names_it(moto):
    s = BV.S3Store(bucket="no-such-bucket", endpoint_url=moto, access_key=KEY, secret_key=SECRET)
    with pytest.raises(BV.S3Error, match=r"HEAD s3://no-such-bucket at .* failed: 404"):
        s.head_bucket()


def test_store_from_bsl_and_params():
    bsl = {"spec": {"objectStorage": {"bucket": "bk", "prefix": "cluster-a"}, "config": {"s3Url": "http://s3.local:9000", "region": "eu-west-1"}}}
    s = BV.S3Store.from_params({"s3_access_key": KEY, "s3_secret_key": SECRET}, bsl)
    assert (s.bucket, s.prefix, s.endpoint_url) == ("bk", "cluster-a", "http://s3.local:9000")
    assert s.backup_key("b", "b.tar.gz") == "cluster-a/backups/b/b.tar.gz"
    s = BV.S3Store.from_params({"s3_bucket": "other", "s3_prefix": "", "s3_endpoint_url": "http://x:1"}, bsl)
    assert (s.bucket, s.prefix, s.endpoint_url) == ("other", "", "http://x:1")
    with pytest.raises(BV.S3Error, match="no bucket"):
        BV.S3Store.from_params({}, None)


def test_restore_expectations_and_comparison():
    contents = BV.read_tarball(tarball(sample_objects(per_ns=2)))
    mapping = BV.scratch_mapping(["production"], "vt1")
    assert mapping == {"production": "production-vt1"}
    expected, skipped = BV.restore_expectations(contents["items"], mapping)
    assert skipped == {"owned": 2, "non_restorable": 0, "excluded": 0}
    assert expected == {("v1", "Namespace", "namespaces", ""): {"production-vt1"},
                        ("apps/v1", "Deployment", "deployments.apps", "production-vt1"): {"app0", "app1"},
                        ("v1", "ConfigMap", "configmaps", "production-vt1"): {"cm0", "cm1"}}
    actual = {k: set(v) for k, v in expected.items()}
    actual[("v1", "ConfigMap", "configmaps", "production-vt1")] = {"cm0", "kube-root-ca.crt"}
    checks, by_resource = BV.compare_restore(expected, actual)
    result = {c["name"]: c for c in checks}
    assert result["restored_deployments.apps"]["passed"]
    assert not result["restored_configmaps"]["passed"]
    assert result["restored_configmaps"]["reason"] == "1 of 2 configmaps restored; missing: production-vt1/cm1"
    assert by_resource["configmaps"] == {"expected": 2, "restored": 1, "missing": ["production-vt1/cm1"]}


def test_scratch_names_fit_kubernetes_limits():
    long_ns = "n" * 63
    target = BV.scratch_mapping([long_ns], "verify-20260101")[long_ns]
    assert len(target) == 63 and target.endswith("-verify-20260101")
