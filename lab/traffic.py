"""Simulated Istio traffic: what each service receives and how each version answers.

The settings live in the emulator as ConfigMap ``lab-system/lab-traffic`` (key
``traffic.json``), written through the kubernetes API, and the exporters read them::

    {"services": {"<namespace>/<service>": {
        "rps": 20,                                   # total requests/s to the service
        "source_workload": "istio-ingressgateway",   # caller (default), and its namespace
        "source_namespace": "istio-system",
        "diurnal": false,                            # true: rps follows a daily curve (average = rps)
        "default": {"error_ratio": 0.0, "p50_ms": 20, "p95_ms": 80},
        "versions": {"v2": {"error_ratio": 0.1, "p50_ms": 40, "p95_ms": 400}}}}}

``<service>`` is a VirtualService's name or one of its hosts; the total is split by the
route weights of that VirtualService (subsets -> ``version`` labels of its DestinationRule),
or over the ready pods when there is no VirtualService. A version's own ``rps`` replaces its
share of the total. Latency is lognormal with the given median (p50) and 95th percentile.
``rps`` 0 means no traffic: Istio then has no series at all for the service.

Python::

    from lab import traffic
    traffic.set_traffic(kubeconfig, "demo", "reviews", rps=20)
    traffic.set_traffic(kubeconfig, "demo", "reviews", version="v2", error_ratio=0.2, p95_ms=900)
    traffic.clear(kubeconfig, "demo", "reviews")

CLI: ``python -m lab traffic set|show|clear`` (``--help`` on each).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lab.exporters.model import TRAFFIC_CONFIGMAP, TRAFFIC_KEY, TRAFFIC_NAMESPACE

VERSION_FIELDS = ("rps", "error_ratio", "p50_ms", "p95_ms")


def _core(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _read(core: client.CoreV1Api) -> tuple[dict, str | None]:
    try:
        cm = core.read_namespaced_config_map(TRAFFIC_CONFIGMAP, TRAFFIC_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return {"services": {}}, None
        raise
    try:
        value = json.loads((cm.data or {}).get(TRAFFIC_KEY) or "{}")
    except ValueError:
        value = {}
    value.setdefault("services", {})
    return value, cm.metadata.resource_version


def _write(core: client.CoreV1Api, value: dict, resource_version: str | None) -> None:
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=TRAFFIC_CONFIGMAP, namespace=TRAFFIC_NAMESPACE, resource_version=resource_version,
                                     labels={"app.kubernetes.io/part-of": "machinenativeops-lab"}),
        data={TRAFFIC_KEY: json.dumps(value, indent=2, sort_keys=True)},
    )
    if resource_version is None:
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TRAFFIC_NAMESPACE)))
        except ApiException as exc:
            if exc.status != 409:
                raise
        core.create_namespaced_config_map(TRAFFIC_NAMESPACE, body)
    else:
        core.replace_namespaced_config_map(TRAFFIC_CONFIGMAP, TRAFFIC_NAMESPACE, body)


def _update(kubeconfig: str, change) -> dict:
    """Read-modify-write with the resourceVersion; retried when someone else wrote in between."""
    core = _core(kubeconfig)
    for _attempt in range(10):
        value, rv = _read(core)
        change(value)
        try:
            _write(core, value, rv)
            return value
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"could not update ConfigMap {TRAFFIC_NAMESPACE}/{TRAFFIC_CONFIGMAP}: conflicts kept happening")


def get_traffic(kubeconfig: str) -> dict:
    """The current settings (``{"services": {...}}``)."""
    return _read(_core(kubeconfig))[0]


def set_traffic(kubeconfig: str, namespace: str, service: str, *, rps: float | None = None, version: str | None = None,
                error_ratio: float | None = None, p50_ms: float | None = None, p95_ms: float | None = None,
                source_workload: str | None = None, source_namespace: str | None = None, diurnal: bool | None = None) -> dict:
    """Set the service's total ``rps`` or, with ``version``, that version's behaviour; other fields stay."""
    for name, value in (("rps", rps), ("error_ratio", error_ratio), ("p50_ms", p50_ms), ("p95_ms", p95_ms)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if error_ratio is not None and error_ratio > 1:
        raise ValueError(f"error_ratio must be between 0 and 1, got {error_ratio}")
    if p50_ms is not None and p95_ms is not None and p95_ms < p50_ms:
        raise ValueError(f"p95_ms ({p95_ms}) must not be below p50_ms ({p50_ms})")

    def change(value: dict) -> None:
        entry = value["services"].setdefault(f"{namespace}/{service}", {})
        if source_workload is not None:
            entry["source_workload"] = source_workload
        if source_namespace is not None:
            entry["source_namespace"] = source_namespace
        if diurnal is not None:
            entry["diurnal"] = bool(diurnal)
        fields = {"error_ratio": error_ratio, "p50_ms": p50_ms, "p95_ms": p95_ms}
        if version is None:
            if rps is not None:
                entry["rps"] = float(rps)
            target = entry.setdefault("default", {})
        else:
            entry.setdefault("rps", 0.0)
            target = entry.setdefault("versions", {}).setdefault(version, {})
            fields["rps"] = rps
        target.update({k: float(v) for k, v in fields.items() if v is not None})

    return _update(kubeconfig, change)


def clear(kubeconfig: str, namespace: str | None = None, service: str | None = None, version: str | None = None) -> dict:
    """Remove one version's settings, one service, or (no arguments) everything."""

    def change(value: dict) -> None:
        if namespace is None:
            value["services"] = {}
            return
        key = f"{namespace}/{service}"
        if version is None:
            value["services"].pop(key, None)
        else:
            (value["services"].get(key) or {}).get("versions", {}).pop(version, None)

    return _update(kubeconfig, change)


# -- CLI ---------------------------------------------------------------------------------------------
def _kubeconfig(args) -> str:
    if args.kubeconfig:
        return args.kubeconfig
    path = Path(args.dir) / "kubeconfig"
    if not path.exists():
        raise SystemExit(f"lab traffic: no kubeconfig at {path}: start the lab (`python -m lab up --dir {args.dir}`) or pass --kubeconfig")
    return str(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=".lab", help="lab directory (its kubeconfig is used)")
    parser.add_argument("--kubeconfig", help="kubeconfig of the API emulator (default: <dir>/kubeconfig)")
    sub = parser.add_subparsers(dest="traffic_command", required=True)
    p_set = sub.add_parser("set", help="set a service's traffic or a version's behaviour")
    p_set.add_argument("--namespace", "-n", required=True)
    p_set.add_argument("--service", "-s", required=True, help="VirtualService name or host")
    p_set.add_argument("--version", help="the version (DestinationRule subset / version label) to configure")
    p_set.add_argument("--rps", type=float, help="requests per second (service total, or this version's own with --version)")
    p_set.add_argument("--error-ratio", type=float, help="share of 5xx answers, 0..1")
    p_set.add_argument("--p50-ms", type=float, help="median latency in ms")
    p_set.add_argument("--p95-ms", type=float, help="95th percentile latency in ms")
    p_set.add_argument("--source-workload", help="calling workload (default istio-ingressgateway)")
    p_set.add_argument("--source-namespace", help="namespace of the calling workload (default istio-system)")
    p_set.add_argument("--diurnal", action=argparse.BooleanOptionalAction, default=None,
                       help="let the service's rps follow a daily load curve (average = rps)")
    sub.add_parser("show", help="print the settings as JSON")
    p_clear = sub.add_parser("clear", help="remove settings (all, a service, or a version)")
    p_clear.add_argument("--namespace", "-n")
    p_clear.add_argument("--service", "-s")
    p_clear.add_argument("--version")


def run(args: argparse.Namespace) -> int:
    kubeconfig = _kubeconfig(args)
    try:
        if args.traffic_command == "set":
            value = set_traffic(kubeconfig, args.namespace, args.service, rps=args.rps, version=args.version,
                                error_ratio=args.error_ratio, p50_ms=args.p50_ms, p95_ms=args.p95_ms,
                                source_workload=args.source_workload, source_namespace=args.source_namespace, diurnal=args.diurnal)
        elif args.traffic_command == "clear":
            if (args.namespace is None) != (args.service is None):
                print("lab traffic clear: give both --namespace and --service, or neither", file=sys.stderr)
                return 2
            value = clear(kubeconfig, args.namespace, args.service, args.version)
        else:
            value = get_traffic(kubeconfig)
    except (ValueError, ApiException) as exc:
        print(f"lab traffic: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0
