"""boto3 against the lab S3 (moto server): write and list, and read the Velero layout the controllers wrote."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from kubernetes import client

from lab.servers.testing import api, create_istio_app, delete_namespace, wait_for

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def s3_client(s3):
    return boto3.client("s3", endpoint_url=s3["endpoint_url"], aws_access_key_id=s3["access_key"],
                        aws_secret_access_key=s3["secret_key"], region_name=s3["region"])


def test_put_and_list(s3, s3_client):
    key = f"lab-probe/{uuid.uuid4().hex}.json"
    s3_client.put_object(Bucket=s3["bucket"], Key=key, Body=b'{"ok": true}')
    listed = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3["bucket"], Prefix="lab-probe/").get("Contents", [])]
    assert key in listed
    assert json.loads(s3_client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read()) == {"ok": True}
    s3_client.delete_object(Bucket=s3["bucket"], Key=key)


def test_velero_backup_layout_written_by_the_controllers(s3, s3_client, kubeconfig):
    ns = f"backup-{uuid.uuid4().hex[:6]}"
    name = f"{ns}-b1"
    create_istio_app(kubeconfig, ns, "shop", versions={"v1": 1})
    custom = client.CustomObjectsApi(api(kubeconfig))
    custom.create_namespaced_custom_object("velero.io", "v1", "velero", "backups", {
        "apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name, "namespace": "velero"},
        "spec": {"includedNamespaces": [ns], "storageLocation": "default"},
    })
    try:
        def phase():
            status = custom.get_namespaced_custom_object("velero.io", "v1", "velero", "backups", name).get("status") or {}
            return status.get("phase") in ("Completed", "PartiallyFailed", "Failed") and status["phase"]

        assert wait_for(phase, timeout=60, what=f"backup {name} to finish") == "Completed"
        prefix = f"{s3['prefix'].strip('/') + '/' if s3['prefix'] else ''}backups/{name}/"
        keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=s3["bucket"], Prefix=prefix).get("Contents", [])}
        assert {f"{prefix}velero-backup.json", f"{prefix}{name}.tar.gz"} <= keys
        doc = json.loads(s3_client.get_object(Bucket=s3["bucket"], Key=f"{prefix}velero-backup.json")["Body"].read())
        assert doc["kind"] == "Backup" and doc["metadata"]["name"] == name and doc["spec"]["includedNamespaces"] == [ns]
    finally:
        delete_namespace(kubeconfig, ns)
