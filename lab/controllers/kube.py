"""A thin REST layer over the official ``kubernetes`` ApiClient (plain dicts, streaming watches).

The controllers speak to the API emulator exactly like any client: HTTP requests made
by ``kubernetes.client.ApiClient``; objects stay plain JSON dicts so that 5,000 pods
are cheap to hold and compare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        parts = [self.base()]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if sub:
            parts.append(sub)
        return "/".join(parts)


KINDS = {
    k.kind: k
    for k in [
        Kind("Namespace", "", "v1", "namespaces", False),
        Kind("Node", "", "v1", "nodes", False),
        Kind("Pod", "", "v1", "pods", True),
        Kind("Event", "", "v1", "events", True),
        Kind("ReplicaSet", "apps", "v1", "replicasets", True),
        Kind("Deployment", "apps", "v1", "deployments", True),
        Kind("StatefulSet", "apps", "v1", "statefulsets", True),
        Kind("DaemonSet", "apps", "v1", "daemonsets", True),
        Kind("ControllerRevision", "apps", "v1", "controllerrevisions", True),
        Kind("Job", "batch", "v1", "jobs", True),
        Kind("CronJob", "batch", "v1", "cronjobs", True),
        Kind("Backup", "velero.io", "v1", "backups", True),
        Kind("Restore", "velero.io", "v1", "restores", True),
        Kind("Schedule", "velero.io", "v1", "schedules", True),
        Kind("BackupStorageLocation", "velero.io", "v1", "backupstoragelocations", True),
        Kind("DeleteBackupRequest", "velero.io", "v1", "deletebackuprequests", True),
    ]
}


class KubeError(RuntimeError):
    def __init__(self, verb: str, path: str, status: int | None, message: str):
        super().__init__(f"{verb} {path} failed: {status or ''} {message}".strip())
        self.verb = verb
        self.path = path
        self.status = status
        self.api_message = message


def _message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body).get("message") or str(exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(body or exc.reason)


class Kube:
    """Plain-dict requests through one ``kubernetes.client.ApiClient``."""

    def __init__(self, kubeconfig: str, context: str | None = None):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=config)
        config.connection_pool_maxsize = 16
        self.api = kubernetes.client.ApiClient(config)
        self.requests = 0

    def close(self) -> None:
        self.api.close()

    def _send(self, method: str, path: str, query: list | None = None, body=None, content_type: str | None = None,  # noqa: PLR0917
              timeout=30, stream: bool = False):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self.api.param_serialize(method, path, query_params=query or [], header_params=headers, body=body,
                                           auth_settings=["BearerToken"])
        self.requests += 1
        try:
            resp = self.api.call_api(*request, _request_timeout=timeout)
        except ApiException as exc:
            raise KubeError(method, path, exc.status, _message(exc)) from None
        if stream:
            if not 200 <= resp.status <= 299:
                resp.read()
                raise KubeError(method, path, resp.status, (resp.data or b"").decode("utf-8", "replace")[:500])
            return resp.response
        data = resp.read()
        if not 200 <= resp.status <= 299:
            try:
                message = json.loads(data).get("message", "")
            except (TypeError, ValueError, AttributeError):
                message = (data or b"").decode("utf-8", "replace")[:500]
            raise KubeError(method, path, resp.status, message)
        return json.loads(data) if data else None

    # -- verbs ---------------------------------------------------------------------------------
    def get(self, path: str, query: list | None = None):
        try:
            return self._send("GET", path, query)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, label_selector: str | None = None, page: int = 1000) -> tuple[list[dict], str]:
        """All items of a collection (paginated); returns (items, collection resourceVersion)."""
        items: list[dict] = []
        cont = None
        rv = ""
        while True:
            query = [("limit", page)]
            if cont:
                query.append(("continue", cont))
            if label_selector:
                query.append(("labelSelector", label_selector))
            data = self._send("GET", path, query, timeout=120)
            items.extend(data.get("items") or [])
            meta = data.get("metadata") or {}
            rv = meta.get("resourceVersion", rv)
            cont = meta.get("continue")
            if not cont:
                return items, rv

    def create(self, path: str, body: dict) -> dict:
        return self._send("POST", path, body=body)

    def replace(self, path: str, body: dict) -> dict:
        return self._send("PUT", path, body=body)

    def patch(self, path: str, body, patch_type: str = "merge") -> dict:
        content_type = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                        "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return self._send("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, propagation: str | None = None):
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation} if propagation else None
        try:
            return self._send("DELETE", path, body=body)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 300):
        """Yield watch events (dicts with type/object) until the server ends the stream."""
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", timeout_seconds)]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        resp = self._send("GET", path, query, timeout=(10, timeout_seconds + 30), stream=True)
        buffer = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
        finally:
            resp.release_conn()
