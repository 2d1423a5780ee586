"""The table of resources the emulator serves, and the registry CRDs add to."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    status: bool = False  # has a /status subresource
    scale: dict | None = None  # {"spec": "spec.replicas", "status": "status.replicas", "selector": "..."}
    verbs: list = field(default_factory=lambda: list(ALL_VERBS))
    crd: bool = False
    storage_version: str = ""  # version objects are stored in (CRDs with several versions)
    singular: str = ""
    extra_sub: list = field(default_factory=list)  # extra subresource names listed in discovery (pods/log...)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


_SCALE = {"spec": "spec.replicas", "status": "status.replicas", "selector": "spec.selector"}

BUILTINS: list[Resource] = [
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=["ns"], status=True,
             verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
    Resource("", "v1", "pods", "Pod", short_names=["po"], categories=["all"], status=True, extra_sub=["log"]),
    Resource("", "v1", "services", "Service", short_names=["svc"], categories=["all"], status=True),
    Resource("", "v1", "endpoints", "Endpoints", short_names=["ep"]),
    Resource("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", short_names=["sa"]),
    Resource("", "v1", "events", "Event", short_names=["ev"]),
    Resource("", "v1", "nodes", "Node", namespaced=False, short_names=["no"], status=True),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=["pvc"], status=True),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, short_names=["pv"], status=True),
    Resource("apps", "v1", "deployments", "Deployment", short_names=["deploy"], categories=["all"], status=True, scale=_SCALE),
    Resource("apps", "v1", "replicasets", "ReplicaSet", short_names=["rs"], categories=["all"], status=True, scale=_SCALE),
    Resource("apps", "v1", "statefulsets", "StatefulSet", short_names=["sts"], categories=["all"], status=True, scale=_SCALE),
    Resource("apps", "v1", "daemonsets", "DaemonSet", short_names=["ds"], categories=["all"], status=True),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
    Resource("batch", "v1", "jobs", "Job", categories=["all"], status=True),
    Resource("batch", "v1", "cronjobs", "CronJob", short_names=["cj"], categories=["all"], status=True),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=["netpol"]),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=["ing"], status=True),
    Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=["hpa"], categories=["all"], status=True),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=["pdb"], status=True),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short_names=["sc"]),
    # metrics.k8s.io is read-only on a real cluster (metrics-server); here it is a plain store the
    # lab's simulators may write PodMetrics/NodeMetrics to, so that `kubectl top` has data.
    Resource("metrics.k8s.io", "v1beta1", "pods", "PodMetrics"),
    Resource("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", namespaced=False),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", namespaced=False, verbs=["create"]),
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
             short_names=["crd", "crds"], categories=["api-extensions"], status=True),
]

# Preferred version order of groups in /apis (built-ins first, like a real server).
GROUP_ORDER = ["apps", "batch", "autoscaling", "policy", "rbac.authorization.k8s.io", "networking.k8s.io",
               "coordination.k8s.io", "storage.k8s.io", "authorization.k8s.io", "metrics.k8s.io", "apiextensions.k8s.io"]


def _version_priority(version: str) -> tuple:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


class Registry:
    """Resources by (group, version, plural); CRDs add and remove theirs at run time."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_gvr: dict[tuple[str, str, str], Resource] = {}
        self.crd_owned: dict[str, list[Resource]] = {}  # CRD name -> its Resources
        for res in BUILTINS:
            res.storage_version = res.version
            self.add(res)

    def add(self, res: Resource) -> None:
        with self.lock:
            self.by_gvr[(res.group, res.version, res.plural)] = res

    def remove(self, res: Resource) -> None:
        with self.lock:
            self.by_gvr.pop((res.group, res.version, res.plural), None)

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self.by_gvr.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first."""
        with self.lock:
            out: dict[str, set] = {}
            for (g, v, _p) in self.by_gvr:
                out.setdefault(g, set()).add(v)
        ordered = {}
        names = [g for g in GROUP_ORDER if g in out] + sorted(g for g in out if g not in GROUP_ORDER and g)
        if "" in out:
            ordered[""] = sorted(out[""], key=_version_priority)
        for g in names:
            ordered[g] = sorted(out[g], key=_version_priority)
        return ordered

    def resources_of(self, group: str, version: str) -> list[Resource]:
        with self.lock:
            return [r for (g, v, _p), r in self.by_gvr.items() if g == group and v == version]

    def by_kind(self, group: str, kind: str) -> Resource | None:
        with self.lock:
            for (g, _v, _p), r in self.by_gvr.items():
                if g == group and r.kind == kind and r.version == r.storage_version:
                    return r
            for (g, _v, _p), r in self.by_gvr.items():
                if g == group and r.kind == kind:
                    return r
        return None

    def by_store_key(self, key: tuple[str, str]) -> Resource | None:
        with self.lock:
            best = None
            for (g, _v, p), r in self.by_gvr.items():
                if (g, p) == key:
                    if r.version == r.storage_version:
                        return r
                    best = r
            return best
