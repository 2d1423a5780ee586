"""The ``s3`` lab service: a moto S3 server with the bucket ``velero``.

Endpoints (CONTRACTS C): ``{"endpoint_url", "access_key", "secret_key", "region", "bucket", "prefix"}``.
``start_moto(ctx_or_dir, name)`` is also used by tests that need a private S3 server.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from lab.services import LabContext, LabError, Service, free_port

ACCESS_KEY = "lab-access-key"
SECRET_KEY = "lab-secret-key"  # moto accepts any credentials; these only have to be consistent
REGION = "us-east-1"
BUCKET = "velero"


def moto_argv(python: str, port: int) -> list[str]:
    """``<venv>/bin/moto_server -H 127.0.0.1 -p PORT`` next to ``python``, else ``python -m moto.server``."""
    candidate = Path(python).parent / "moto_server"
    if candidate.exists():
        return [str(candidate), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def s3_client(endpoints: dict):
    import boto3  # noqa: PLC0415 - the lab's other parts do not need boto3
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client("s3", endpoint_url=endpoints["endpoint_url"], region_name=endpoints.get("region", REGION),
                        aws_access_key_id=endpoints.get("access_key", ACCESS_KEY),
                        aws_secret_access_key=endpoints.get("secret_key", SECRET_KEY),
                        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=15,
                                      s3={"addressing_style": "path"}))


def start_moto(ctx: LabContext, name: str = "s3", bucket: str | None = BUCKET) -> dict:
    port = free_port()
    env = {"MOTO_ALLOW_NONEXISTENT_REGION": "true", "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    proc = ctx.spawn(name, moto_argv(ctx.python, port), env=env)
    try:
        return _prepare(ctx, name, f"http://127.0.0.1:{port}", proc, bucket)
    except BaseException:
        ctx.stop_pid(name)  # never leave a half-started server behind
        raise


def _prepare(ctx: LabContext, name: str, url: str, proc, bucket: str | None) -> dict:
    ctx.wait_http(url + "/moto-api/", name, timeout=60, proc=proc)
    endpoints = {"endpoint_url": url, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "region": REGION,
                 "bucket": bucket or "", "prefix": ""}
    if bucket:
        client = s3_client(endpoints)
        deadline = time.monotonic() + 20
        while True:
            try:
                try:
                    client.create_bucket(Bucket=bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass  # an earlier attempt got through
                client.head_bucket(Bucket=bucket)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise LabError(f"{name}: creating bucket {bucket} failed: {exc}\n{ctx.log_tail(name)}") from None
                time.sleep(0.2)
    return endpoints


class S3Service(Service):
    name = "s3"

    def start(self, ctx: LabContext) -> dict:
        return start_moto(ctx, self.name, BUCKET)


if __name__ == "__main__":  # pragma: no cover - manual use: python -m lab.s3 DIR
    lab_dir = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LAB_DIR", ".lab"))
    print(start_moto(LabContext(dir=lab_dir.resolve())))
