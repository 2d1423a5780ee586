"""Helpers for tests against the lab servers: PromQL over HTTP, polling, an Istio demo workload."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


def http_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def prom_query(prometheus_url: str, promql: str) -> list[dict]:
    """The instant vector of ``promql`` (``[{"metric": {...}, "value": [t, "v"]}]``); raises on a query error."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    answer = http_json(url)
    if answer.get("status") != "success":
        raise AssertionError(f"query failed: {promql}: {answer}")
    return answer["data"]["result"]


def prom_scalar(prometheus_url: str, promql: str) -> float | None:
    result = prom_query(prometheus_url, promql)
    return float(result[0]["value"][1]) if result else None


def wait_for(fn, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):
    """Call ``fn`` until it returns a truthy value (returned) or the deadline passes (AssertionError with the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def create_if_absent(fn, *args):
    """``fn(*args)``, or None when the object already exists (409)."""
    try:
        return fn(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise
        return None


def create_istio_app(kubeconfig: str, namespace: str, app: str = "reviews", *, versions: dict | None = None,
                     weights: dict | None = None, resources: dict | None = None) -> None:
    """Namespace, one Deployment per version (``{"v1": replicas}``), a Service, a DestinationRule with
    one subset per version, and a VirtualService splitting by ``weights`` (``{"v1": 80, "v2": 20}``)."""
    versions = versions or {"v1": 1}
    resources = resources or {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    c = api(kubeconfig)
    core, apps, custom = client.CoreV1Api(c), client.AppsV1Api(c), client.CustomObjectsApi(c)
    create_if_absent(core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for version, replicas in versions.items():
        labels = {"app": app, "version": version}
        create_if_absent(apps.create_namespaced_deployment, namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{app}-{version}", "namespace": namespace, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": app, "image": f"example/{app}:{version}", "resources": resources}]}}},
        })
    create_if_absent(core.create_namespaced_service, namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": namespace},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 9080}]},
    })
    group, version = "networking.istio.io", "v1beta1"
    create_if_absent(custom.create_namespaced_custom_object, group, version, namespace, "destinationrules", {
        "apiVersion": f"{group}/{version}", "kind": "DestinationRule", "metadata": {"name": app, "namespace": namespace},
        "spec": {"host": app, "subsets": [{"name": v, "labels": {"version": v}} for v in versions]},
    })
    if weights is not None:
        create_if_absent(custom.create_namespaced_custom_object, group, version, namespace, "virtualservices", {
            "apiVersion": f"{group}/{version}", "kind": "VirtualService", "metadata": {"name": app, "namespace": namespace},
            "spec": {"hosts": [app], "http": [{"route": [
                {"destination": {"host": app, "subset": v}, "weight": w} for v, w in weights.items()]}]},
        })


def delete_namespace(kubeconfig: str, namespace: str) -> None:
    try:
        client.CoreV1Api(api(kubeconfig)).delete_namespace(namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise


def running_pods(kubeconfig: str, namespace: str, selector: str = "") -> list[dict]:
    pods = client.CoreV1Api(api(kubeconfig)).list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
    return [p for p in json.loads(pods.data)["items"] if (p.get("status") or {}).get("phase") == "Running"]
