"""Faults of the lab: inject, clear and list them (Python API and ``python -m lab fault``).

A fault is recorded as the annotation ``lab.machinenativeops.io/faults`` on the target object
(a JSON list of ``{"kind", "since", "params"}``), written through the Kubernetes API like any
client would. The controllers (``effect: controller``) and the exporters (``effect: metrics``)
read it and make the cluster and its metrics behave accordingly.

    from lab.faults import Faults
    faults = Faults.from_lab_dir(".lab")
    faults.inject("crash_loop", namespace="shop", name="reviews")          # the Deployment's pods crash
    faults.clear(namespace="shop", name="reviews")                          # they recover
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from lab.controllers.kube import KINDS, Kube, KubeError
from lab.services import LabError, read_endpoints

ANNOTATION = "lab.machinenativeops.io/faults"
WORKLOADS = ["Deployment", "Pod", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"]

FAULT_KINDS: dict[str, dict] = {
    # effects the controllers simulate (object status)
    "crash_loop": {"targets": WORKLOADS, "effect": "controller",
                   "help": "containers crash every `interval` seconds (default 10): restartCount climbs, waiting CrashLoopBackOff, "
                           "lastState terminated Error, pod not ready; the exporters show the restarts"},
    "oom_killed": {"targets": WORKLOADS, "effect": "controller",
                   "help": "containers are OOM-killed every `interval` seconds (default 60): lastState terminated OOMKilled (137), restarts"},
    "image_pull_backoff": {"targets": WORKLOADS, "effect": "controller",
                           "help": "containers wait in ErrImagePull then ImagePullBackOff; pod not ready"},
    "unschedulable": {"targets": WORKLOADS, "effect": "controller",
                      "help": "pods stay Pending with PodScheduled=False reason Unschedulable and no nodeName (bound pods are replaced)"},
    "readiness_failing": {"targets": WORKLOADS, "effect": "controller", "help": "containers run but the readiness probe fails: pod not ready"},
    "rollout_stuck": {"targets": ["Deployment"], "effect": "controller",
                      "help": "pods of the Deployment's newest ReplicaSet never become ready: Progressing=False ProgressDeadlineExceeded "
                              "after progressDeadlineSeconds"},
    "node_not_ready": {"targets": ["Node"], "effect": "controller",
                       "help": "Node Ready=False (param status=Unknown for Unknown); no new pods are scheduled there, its pods turn not ready"},
    "node_memory_pressure": {"targets": ["Node"], "effect": "controller", "help": "Node condition MemoryPressure=True"},
    "node_disk_pressure": {"targets": ["Node"], "effect": "controller", "help": "Node condition DiskPressure=True"},
    "node_pid_pressure": {"targets": ["Node"], "effect": "controller", "help": "Node condition PIDPressure=True"},
    "backup_partially_failed": {"targets": ["Backup", "Schedule", "BackupStorageLocation"], "effect": "controller",
                                "help": "Velero backups end PartiallyFailed with `errors` item errors (default 1) in <name>-results.gz"},
    "backup_failed": {"targets": ["Backup", "Schedule", "BackupStorageLocation"], "effect": "controller",
                      "help": "Velero backups end Failed with failureReason (param reason)"},
    "bsl_unavailable": {"targets": ["BackupStorageLocation"], "effect": "controller",
                        "help": "the BackupStorageLocation validates as Unavailable; new backups fail validation"},
    # effects the exporters simulate (metrics only)
    "cpu_spike": {"targets": WORKLOADS, "effect": "metrics",
        "help": "container CPU usage jumps to `ratio` of its limit (default 0.97), or to usage times `factor` when given"},
    "memory_leak": {"targets": WORKLOADS, "effect": "metrics",
        "help": "container memory working set grows by `bytes_per_minute` (default a tenth of the limit per minute)"},
    "oom_kill": {"targets": WORKLOADS, "effect": "metrics",
        "help": "memory climbs to the limit and OOM kills show in the metrics every `period_seconds` (default 60)"},
    "latency_rise": {"targets": WORKLOADS, "effect": "metrics", "help": "request latency of the workload rises `factor` times (default 5)"},
    "error_burst": {"targets": WORKLOADS, "effect": "metrics", "help": "5xx error ratio of the workload rises to `ratio` (default 0.5)"},
    "network_saturation": {"targets": [*WORKLOADS, "Node"], "effect": "metrics",
        "help": "network bytes rise to `bytes_per_second` (default 125e6) and drops appear"},
    "disk_fill": {"targets": [*WORKLOADS, "Node"], "effect": "metrics",
        "help": "filesystem usage climbs to `ratio` of its limit (default 0.97) over `duration_seconds` (default 60)"},
}


class FaultError(LabError):
    pass


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def read(obj: dict) -> list[dict]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict) and i.get("kind")] if isinstance(items, list) else []


class Faults:
    """Inject/clear/list faults through the Kubernetes API of a lab (or any kubeconfig)."""

    def __init__(self, kubeconfig: str, context: str | None = None, admin_url: str | None = None):
        self.kube = Kube(kubeconfig, context)
        self.admin_url = admin_url

    @classmethod
    def from_lab_dir(cls, lab_dir: str | Path = ".lab") -> Faults:
        endpoints = read_endpoints(lab_dir)
        return cls.from_endpoints(endpoints)

    @classmethod
    def from_endpoints(cls, endpoints: dict) -> Faults:
        return cls(endpoints["apiserver"]["kubeconfig"], admin_url=(endpoints.get("controllers") or {}).get("admin_url"))

    def now(self) -> str:
        """The controllers' clock (manual in tests), else real time."""
        if self.admin_url:
            try:
                from lab.controllers.client import ControllersAdmin  # noqa: PLC0415 - optional

                return ControllersAdmin(self.admin_url, timeout=5).status()["clock"]["now"]
            except Exception:  # the controllers are optional: real time then
                return _now()
        return _now()

    def _path(self, target_kind: str, namespace: str | None, name: str) -> str:
        if target_kind not in KINDS:
            raise FaultError(f"unknown target kind {target_kind!r}; one of {', '.join(sorted(KINDS))}")
        k = KINDS[target_kind]
        return k.path(namespace if k.namespaced else None, name)

    def resolve(self, fault_kind: str | None, namespace: str | None, name: str, target_kind: str | None = None) -> tuple[str, dict]:
        """(target kind, object) for the first existing candidate target."""
        candidates = [target_kind] if target_kind else (FAULT_KINDS[fault_kind]["targets"] if fault_kind else
                                                        list(dict.fromkeys(t for f in FAULT_KINDS.values() for t in f["targets"])))
        tried = []
        for kind in candidates:
            k = KINDS.get(kind)
            if k is None:
                raise FaultError(f"unknown target kind {kind!r}")
            if k.namespaced and not namespace:
                tried.append(f"{kind} (needs --namespace)")
                continue
            try:
                obj = self.kube.get(self._path(kind, namespace, name))
            except KubeError as exc:
                if exc.status in (404, 405):
                    tried.append(f"{kind} (not served)")
                    continue
                raise FaultError(str(exc)) from None
            if obj is not None:
                return kind, obj
            tried.append(kind)
        where = f"{namespace}/{name}" if namespace else name
        raise FaultError(f"no target {where} found (tried {', '.join(tried)})")

    def _write(self, kind: str, obj: dict, faults: list[dict]) -> dict:
        md = obj.get("metadata") or {}
        value = json.dumps(faults, sort_keys=True) if faults else None
        try:
            return self.kube.patch(self._path(kind, md.get("namespace"), md["name"]), {"metadata": {"annotations": {ANNOTATION: value}}})
        except KubeError as exc:
            raise FaultError(f"writing faults on {kind} {md.get('namespace', '')}/{md['name']} failed: {exc}") from None

    def inject(self, fault_kind: str, namespace: str | None = None, name: str = "", target_kind: str | None = None,
               params: dict | None = None) -> dict:
        """Add (or replace) a fault on the target; returns {"target_kind", "namespace", "name", "fault", "faults"}."""
        if fault_kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault {fault_kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        if target_kind and target_kind not in FAULT_KINDS[fault_kind]["targets"]:
            raise FaultError(f"fault {fault_kind} applies to {', '.join(FAULT_KINDS[fault_kind]['targets'])}, not {target_kind}")
        kind, obj = self.resolve(fault_kind, namespace, name, target_kind)
        current = [f for f in read(obj) if f.get("kind") != fault_kind]
        fault = {"kind": fault_kind, "since": self.now(), "params": dict(params or {})}
        current.append(fault)
        self._write(kind, obj, current)
        return {"target_kind": kind, "namespace": (obj["metadata"].get("namespace")), "name": name, "fault": fault, "faults": current}

    def clear(self, namespace: str | None = None, name: str = "", fault_kind: str | None = None, target_kind: str | None = None) -> list[str]:
        """Remove one fault (or all) from the target; returns the kinds removed."""
        if fault_kind is not None and fault_kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault {fault_kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        candidates = [target_kind] if target_kind else (FAULT_KINDS[fault_kind]["targets"] if fault_kind else
                                                        list(dict.fromkeys(t for f in FAULT_KINDS.values() for t in f["targets"])))
        removed: list[str] = []
        found_any = False
        for kind in candidates:
            k = KINDS[kind]
            if k.namespaced and not namespace:
                continue
            try:
                obj = self.kube.get(self._path(kind, namespace, name))
            except KubeError:
                continue
            if obj is None:
                continue
            found_any = True
            current = read(obj)
            keep = [f for f in current if fault_kind is not None and f.get("kind") != fault_kind]
            gone = [f["kind"] for f in current if f not in keep]
            if gone:
                self._write(kind, obj, keep)
                removed.extend(gone)
        if not found_any:
            raise FaultError(f"no target {namespace + '/' if namespace else ''}{name} found")
        return removed

    def active(self, namespace: str | None = None) -> list[dict]:
        """Every object carrying faults: [{"target_kind", "namespace", "name", "faults"}]."""
        found = []
        for kind in dict.fromkeys(t for f in FAULT_KINDS.values() for t in f["targets"]):
            k = KINDS[kind]
            try:
                items, _ = self.kube.list(k.path(namespace if k.namespaced else None))
            except KubeError:
                continue
            for obj in items:
                faults = read(obj)
                if faults:
                    md = obj.get("metadata") or {}
                    found.append({"target_kind": kind, "namespace": md.get("namespace"), "name": md.get("name"), "faults": faults})
        return found


# -- CLI ---------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.description = "Inject, clear and list lab faults. Examples: `fault crash_loop -n shop --name reviews`, " \
                         "`fault clear -n shop --name reviews [crash_loop]`, `fault --list`, `fault active`."
    parser.add_argument("words", nargs="*", metavar="KIND|clear [KIND]|active", help="fault kind to inject, `clear [KIND]` or `active`")
    parser.add_argument("--list", action="store_true", help="list the fault kinds")
    parser.add_argument("--namespace", "-n")
    parser.add_argument("--name")
    parser.add_argument("--kind-of-target", dest="target_kind", help="Pod, Deployment, Node, Backup, BackupStorageLocation, ...")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="fault parameter (repeatable)")
    parser.add_argument("--dir", default=".lab", help="lab directory with endpoints.json (default .lab)")
    parser.add_argument("--kubeconfig", help="use this kubeconfig instead of the lab's")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    if args.list:
        if args.json:
            print(json.dumps(FAULT_KINDS, indent=2, sort_keys=True))
        else:
            for kind, info in FAULT_KINDS.items():
                print(f"{kind:24} {info['effect']:10} {','.join(info['targets']):40} {info['help']}")
        return 0
    if not args.words:
        print("lab fault: give a fault KIND, `clear`, `active` or --list", file=sys.stderr)
        return 2
    if args.kubeconfig:
        faults = Faults(args.kubeconfig)
    else:
        faults = Faults.from_lab_dir(args.dir)
    verb = args.words[0]
    if verb == "active":
        result = faults.active(args.namespace)
        print(json.dumps(result, indent=2))
        return 0
    if not args.name:
        print("lab fault: --name is required", file=sys.stderr)
        return 2
    if verb == "clear":
        kind = args.words[1] if len(args.words) > 1 else None
        removed = faults.clear(args.namespace, args.name, kind, args.target_kind)
        print(json.dumps({"removed": removed}) if args.json else f"cleared: {', '.join(removed) or 'nothing'}")
        return 0
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"lab fault: --param needs K=V, got {item!r}", file=sys.stderr)
            return 2
        params[key] = _parse_value(value)
    result = faults.inject(verb, args.namespace, args.name, args.target_kind, params)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        where = f"{result['namespace']}/{result['name']}" if result["namespace"] else result["name"]
        print(f"injected {verb} on {result['target_kind']} {where}")
    return 0
