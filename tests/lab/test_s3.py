"""The ``s3`` lab service: a real moto server with the ``velero`` bucket."""

from __future__ import annotations

import pytest

from lab.s3 import S3Service, moto_argv, s3_client
from lab.services import LabContext

pytestmark = pytest.mark.lab


def test_moto_server_is_started_from_the_venv(tmp_path):
    argv = moto_argv("/work/main/.venv/bin/python", 1234)
    assert argv[-4:] == ["-H", "127.0.0.1", "-p", "1234"]
    assert argv[0].endswith("moto_server") or argv[1:3] == ["-m", "moto.server"]


def test_service_serves_the_velero_bucket_and_stops(tmp_path):
    ctx = LabContext(dir=tmp_path)
    service = S3Service()
    endpoints = service.start(ctx)
    try:
        assert endpoints["bucket"] == "velero" and endpoints["region"] == "us-east-1" and endpoints["prefix"] == ""
        assert endpoints["endpoint_url"].startswith("http://127.0.0.1:")
        assert service.healthy(ctx)
        client = s3_client(endpoints)
        client.head_bucket(Bucket="velero")
        client.put_object(Bucket="velero", Key="backups/x/velero-backup.json", Body=b"{}")
        assert client.get_object(Bucket="velero", Key="backups/x/velero-backup.json")["Body"].read() == b"{}"
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["velero"]
    finally:
        service.stop(ctx)
    assert not service.healthy(ctx)
    assert not (tmp_path / "pids" / "s3.pid").exists()
