"""Read the objects the exporters need from the API emulator with the official kubernetes client."""

from __future__ import annotations

import json

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lab.exporters.model import TRAFFIC_CONFIGMAP, TRAFFIC_KEY, TRAFFIC_NAMESPACE, Snapshot

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1beta1", "v1", "v1alpha3")


def api_client(kubeconfig: str, context: str | None = None) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def _items(response) -> list[dict]:
    return json.loads(response.data).get("items") or []


def _istio(custom: client.CustomObjectsApi, plural: str) -> list[dict]:
    for version in ISTIO_VERSIONS:
        try:
            return custom.list_cluster_custom_object(ISTIO_GROUP, version, plural).get("items") or []
        except ApiException as exc:
            if exc.status != 404:
                raise
    return []


def read_traffic(core: client.CoreV1Api) -> dict:
    try:
        cm = json.loads(core.read_namespaced_config_map(TRAFFIC_CONFIGMAP, TRAFFIC_NAMESPACE, _preload_content=False).data)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    raw = (cm.get("data") or {}).get(TRAFFIC_KEY) or "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def read_snapshot(api: client.ApiClient) -> Snapshot:
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    custom = client.CustomObjectsApi(api)
    return Snapshot(
        pods=_items(core.list_pod_for_all_namespaces(_preload_content=False)),
        nodes=_items(core.list_node(_preload_content=False)),
        deployments=_items(apps.list_deployment_for_all_namespaces(_preload_content=False)),
        services=_items(core.list_service_for_all_namespaces(_preload_content=False)),
        virtualservices=_istio(custom, "virtualservices"),
        destinationrules=_istio(custom, "destinationrules"),
        traffic=read_traffic(core),
    )
