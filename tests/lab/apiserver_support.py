"""Shared helpers for the API emulator tests (an in-process emulator per test module)."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request

import kubernetes
import pytest

from lab.apiserver.testing import running_apiserver

_counter = itertools.count()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{next(_counter)}-{int(time.time() * 1000) % 100000}"


def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``check`` until it returns a truthy value; fail with its last value otherwise.

    This waits for asynchronous work (garbage collection, namespace termination); it does
    not assert anything about speed."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not reached within {timeout}s (last value: {last!r})")


def api_client(kubeconfig: str, context: str = "lab") -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


@pytest.fixture(scope="module")
def client(api):
    c = api_client(api.kubeconfig)
    yield c
    c.close()


@pytest.fixture
def ns(client):
    name = unique("ns")
    kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": name}})
    return name


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.25", labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 80}],
                                         "env": [{"name": "A", "value": "1"}]}]},
            },
        },
    }


def pod(name: str, labels: dict | None = None, node: str | None = None) -> dict:
    spec = {"containers": [{"name": "main", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def raw(base_url: str, method: str, path: str, body=None, content_type: str = "application/json", *, headers: dict | None = None,
        context=None) -> tuple[int, dict | str]:
    """One plain HTTP request; returns (status, parsed JSON body or text)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    req = urllib.request.Request(base_url + path, data=data, method=method, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text
