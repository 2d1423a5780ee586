"""Shared by the Velero integration tests (velero_backup module, backup_verify.yml, disaster_recovery.yml): the lab's
cluster, its Velero objects and its bucket, through the kubernetes client and boto3."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lab.s3 import s3_client
from tests.integration.canary_support import run_playbook

VELERO = ("velero.io", "v1", "velero")
ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests" / "integration" / "playbooks" / "velero_run.yml"


def run_steps(endpoints: dict, steps: list[dict], timeout: float = 900) -> list[dict]:
    """Run velero_run.yml (velero_backup / pg_backup tasks) with ``steps``; returns one registered result per step."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        proc = run_playbook(endpoints, RUN, {"velero_steps": steps, "velero_result_file": str(out)}, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results = json.loads(out.read_text())
    assert len(results) == len(steps)
    return results


class VeleroLab:
    def __init__(self, endpoints: dict):
        self.endpoints = endpoints
        api = config.new_client_from_config(config_file=endpoints["apiserver"]["kubeconfig"], context="lab")
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.s3 = s3_client(endpoints["s3"])
        self.bucket = endpoints["s3"]["bucket"]
        self.prefix = endpoints["s3"].get("prefix") or ""

    def app_namespace(self, name: str, deployments: int = 2, configmaps: int = 2) -> str:
        """A namespace with ``deployments`` Deployments (web0, web1, ...) each with its Service, and ``configmaps`` ConfigMaps."""
        self.core.create_namespace({"metadata": {"name": name}})
        for i in range(deployments):
            labels = {"app": f"web{i}"}
            self.apps.create_namespaced_deployment(name, {
                "metadata": {"name": f"web{i}", "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
            self.core.create_namespaced_service(name, {"metadata": {"name": f"web{i}"}, "spec": {"selector": labels, "ports": [{"port": 80}]}})
        for i in range(configmaps):
            self.core.create_namespaced_config_map(name, {"metadata": {"name": f"config{i}"}, "data": {"k": str(i)}})
        return name

    def delete_namespace(self, name: str, wait: bool = False) -> None:
        try:
            self.core.delete_namespace(name)
        except ApiException:
            return
        deadline = time.monotonic() + 60
        while wait and self.namespace_exists(name) and time.monotonic() < deadline:
            time.sleep(0.3)

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def namespaces(self) -> set[str]:
        """The namespaces that exist and are not being deleted (a real cluster deletes namespaces asynchronously)."""
        return {n.metadata.name for n in self.core.list_namespace().items if not n.metadata.deletion_timestamp}

    def velero(self, plural: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(*VELERO, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def restores(self) -> list[str]:
        return [r["metadata"]["name"] for r in self.custom.list_namespaced_custom_object(*VELERO, "restores")["items"]]

    def schedule_with_backup(self, name: str, namespaces: list[str], cron: str = "0 2 * * *", ttl: str = "720h") -> str:
        """Create a Schedule (the lab's Velero runs it once at creation) and wait for that backup to complete."""
        self.custom.create_namespaced_custom_object(*VELERO, "schedules", {
            "apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": name},
            "spec": {"schedule": cron, "template": {"includedNamespaces": namespaces, "ttl": ttl}}})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            selector = f"velero.io/schedule-name={name}"
            items = self.custom.list_namespaced_custom_object(*VELERO, "backups", label_selector=selector)["items"]
            done = [b for b in items if (b.get("status") or {}).get("phase") == "Completed"]
            if done:
                return done[0]["metadata"]["name"]
            time.sleep(0.5)
        raise AssertionError(f"schedule {name} produced no Completed backup")

    def keys(self, prefix: str) -> list[str]:
        page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in page.get("Contents") or [])

    def names(self, ns: str) -> dict[str, list[str]]:
        """Names of the Deployments, Services and ConfigMaps of ``ns``."""
        return {"deployments": sorted(d.metadata.name for d in self.apps.list_namespaced_deployment(ns).items),
                "services": sorted(s.metadata.name for s in self.core.list_namespaced_service(ns).items),
                "configmaps": sorted(c.metadata.name for c in self.core.list_namespaced_config_map(ns).items)}
