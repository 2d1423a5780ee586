"""The in-memory object store: CRUD, resourceVersions, finalizers, garbage collection,
namespace termination, CRD registration and the watch history."""

from __future__ import annotations

import base64
import collections
import copy
import json
import queue
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass

from lab.apiserver import errors
from lab.apiserver import patch as patching
from lab.apiserver.errors import ApiError
from lab.apiserver.resources import Registry, Resource
from lab.apiserver.selectors import field_selector_name, parse_field_selector, parse_label_selector, selector_string

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME_KINDS = {"Namespace", "Service"}
PATH_SEGMENT_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def clone(obj):
    """A deep copy of a JSON-compatible value (faster than copy.deepcopy)."""
    return json.loads(json.dumps(obj))


def _copy_managers(managers: dict) -> dict:
    return {k: {**v, "paths": set(v["paths"])} for k, v in managers.items()}


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _get_path(obj, dotted: str):
    cur = obj
    for part in dotted.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj, dotted: str, value) -> None:
    parts = dotted.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def _qualified_name(key: str) -> bool:
    """A label or annotation key: [DNS subdomain prefix "/"] name (name at most 63 characters)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_VALUE.match(name))


@dataclass
class Entry:
    obj: dict
    raw: bytes
    managers: dict  # (manager, operation) -> {"paths": set, "apiVersion": str, "time": str}


@dataclass
class Event:
    rv: int
    type: str
    key: tuple
    namespace: str
    obj: dict
    raw: bytes
    prev: dict | None


class Store:
    def __init__(self, registry: Registry | None = None, history: int = 50000):
        self.registry = registry or Registry()
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.data: dict[tuple, dict[tuple, Entry]] = collections.defaultdict(dict)
        self.uids: dict[str, tuple] = {}
        self.dependents: dict[str, set] = collections.defaultdict(set)
        self.history: collections.deque[Event] = collections.deque(maxlen=history)
        self.compacted_rv = 0  # events at or below this rv are no longer in history
        self._work: queue.Queue = queue.Queue()
        self._stopping = False
        self._worker = threading.Thread(target=self._run_worker, name="lab-apiserver-gc", daemon=True)
        self._worker.start()
        ns_res = self.registry.get("", "v1", "namespaces")
        for name in SYSTEM_NAMESPACES:
            self.create(ns_res, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, manager="lab")

    def close(self) -> None:
        self._stopping = True
        self._work.put(None)

    # ------------------------------------------------------------ helpers

    def _res_for_key(self, key) -> Resource | None:
        return self.registry.by_store_key(key)

    def render(self, res: Resource, entry: Entry) -> bytes:
        """The stored JSON, converted to the version ``res`` serves (CRDs: apiVersion only)."""
        if res.version == res.storage_version or not res.crd:
            return entry.raw
        obj = json.loads(entry.raw)
        obj["apiVersion"] = res.api_version
        return dumps(obj)

    def render_obj(self, res: Resource, obj: dict) -> dict:
        if res.crd and res.version != res.storage_version:
            obj = dict(obj)
            obj["apiVersion"] = res.api_version
        return obj

    def _lookup(self, res: Resource, ns: str | None, name: str) -> Entry:
        entry = self.data[res.store_key].get((ns or "", name))
        if entry is None:
            raise errors.not_found(res, name)
        return entry

    def get(self, res: Resource, ns: str | None, name: str) -> Entry:
        with self.lock:
            return self._lookup(res, ns, name)

    def namespace_phase(self, name: str) -> str | None:
        entry = self.data[("", "namespaces")].get(("", name))
        if entry is None:
            return None
        return (entry.obj.get("status") or {}).get("phase", "Active")

    # ------------------------------------------------------------ validation and defaults

    def _validate_name(self, res: Resource, name: str) -> list[dict]:
        causes = []
        if res.kind in PATH_SEGMENT_KINDS:
            if name in (".", "..") or "/" in name or "%" in name:
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                               "message": f'Invalid value: "{name}": may not contain "/" or "%" and may not be "." or ".."'})
            return causes
        if res.kind in LABEL_NAME_KINDS:
            if len(name) > 63 or not DNS_LABEL.match(name):
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                               "message": f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                                          "alphanumeric characters or '-', and must start and end with an alphanumeric character"})
            return causes
        if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                                      "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"})
        return causes

    def _validate_spec(self, res: Resource, obj: dict) -> list[dict]:
        causes = []
        spec = obj.get("spec") or {}
        if res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
            selector = spec.get("selector")
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector:
                causes.append({"reason": "FieldValueRequired", "field": "spec.selector", "message": "Required value"})
            else:
                match = parse_label_selector(selector_string(selector))
                if match is not None and not match(labels):
                    causes.append({"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                                   "message": f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`"})
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
            if not containers:
                causes.append({"reason": "FieldValueRequired", "field": "spec.template.spec.containers", "message": "Required value"})
            replicas = spec.get("replicas")
            if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
                causes.append({"reason": "FieldValueInvalid", "field": "spec.replicas",
                               "message": f"Invalid value: {replicas}: must be greater than or equal to 0"})
        if res.kind == "Pod":
            containers = spec.get("containers")
            if not containers:
                causes.append({"reason": "FieldValueRequired", "field": "spec.containers", "message": "Required value"})
            for idx, c in enumerate(containers or []):
                if not isinstance(c, dict) or not c.get("name"):
                    causes.append({"reason": "FieldValueRequired", "field": f"spec.containers[{idx}].name", "message": "Required value"})
                if isinstance(c, dict) and not c.get("image"):
                    causes.append({"reason": "FieldValueRequired", "field": f"spec.containers[{idx}].image", "message": "Required value"})
        if res.kind == "ConfigMap":
            for key in list(obj.get("data") or {}) + list(obj.get("binaryData") or {}):
                if not re.match(r"^[-._a-zA-Z0-9]+$", key):
                    causes.append({"reason": "FieldValueInvalid", "field": f"data[{key}]",
                                   "message": f'Invalid value: "{key}": a valid config key must consist of alphanumeric characters, "-", "_" or "."'})
        if res.kind == "CustomResourceDefinition":
            causes.extend(_validate_crd(obj))
        return causes

    def _defaults(self, res: Resource, obj: dict, old: dict | None) -> None:
        spec = obj.get("spec")
        kind = res.kind
        if kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif kind in ("Deployment", "ReplicaSet", "StatefulSet") and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            if kind == "Deployment":
                spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
                spec.setdefault("revisionHistoryLimit", 10)
                spec.setdefault("progressDeadlineSeconds", 600)
            if kind == "StatefulSet":
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
                spec.setdefault("revisionHistoryLimit", 10)
        elif kind == "Service" and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if old is not None and (old.get("spec") or {}).get("clusterIP") and "clusterIP" not in spec:
                spec["clusterIP"] = old["spec"]["clusterIP"]
                spec["clusterIPs"] = old["spec"].get("clusterIPs", [spec["clusterIP"]])
            if spec.get("clusterIP") is None:
                ip = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    if "port" in port:
                        port.setdefault("targetPort", port["port"])
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None)
            if string_data:
                data = obj.setdefault("data", {}) or {}
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
        elif kind == "Job" and isinstance(spec, dict):
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
        elif kind == "CronJob" and isinstance(spec, dict):
            spec.setdefault("suspend", False)
            spec.setdefault("concurrencyPolicy", "Allow")

    def _initial_status(self, res: Resource, obj: dict) -> dict | None:
        if res.kind == "Namespace":
            return {"phase": "Active"}
        if res.kind == "Pod":
            return {"phase": "Pending", "qosClass": "BestEffort"}
        if res.kind == "PersistentVolumeClaim":
            return {"phase": "Pending"}
        if res.kind == "PersistentVolume":
            return {"phase": "Pending"}
        if res.kind == "Service":
            return {"loadBalancer": {}}
        if res.kind == "CustomResourceDefinition":
            return _crd_status(obj)
        # fields the kubernetes client's models require, as a real server would return them
        if res.kind in ("ReplicaSet", "StatefulSet"):
            return {"replicas": 0}
        if res.kind == "DaemonSet":
            return {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}
        if res.kind == "PodDisruptionBudget":
            return {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
        if res.kind == "HorizontalPodAutoscaler":
            return {"currentReplicas": 0, "desiredReplicas": 0}
        return None

    # ------------------------------------------------------------ the write path

    def _commit(self, res: Resource, ns: str, name: str, obj: dict, etype: str, prev: Entry | None,  # noqa: PLR0917
                managers: dict, dry_run: bool) -> dict:
        """Store ``obj`` (already complete except resourceVersion); emit an event; return it."""
        key = res.store_key
        if dry_run:
            return obj
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if res.kind == "CustomResourceDefinition":
            obj["status"] = _crd_status(obj)
        obj["metadata"]["managedFields"] = _render_managers(managers)
        if not obj["metadata"]["managedFields"]:
            obj["metadata"].pop("managedFields")
        raw = dumps(obj)
        entry = Entry(obj=obj, raw=raw, managers=managers)
        table = self.data[key]
        if etype == "DELETED":
            table.pop((ns, name), None)
            self.uids.pop(obj["metadata"]["uid"], None)
        else:
            table[(ns, name)] = entry
            self.uids[obj["metadata"]["uid"]] = (key, ns, name)
        self._index_owners(key, ns, name, prev.obj if prev else None, None if etype == "DELETED" else obj)
        self.history.append(Event(self.rv, etype, key, ns, obj, raw, prev.obj if prev else None))
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv - 1
        self.cond.notify_all()
        if res.kind == "CustomResourceDefinition":
            self._sync_crd(obj, deleted=etype == "DELETED")
        if etype == "DELETED":
            self._work.put(("owner_gone", obj["metadata"]["uid"]))
            if ns and self.namespace_phase(ns) == "Terminating":
                self._work.put(("namespace", ns))
        elif obj["metadata"].get("ownerReferences") and etype == "ADDED":
            self._work.put(("check_owners", key, ns, name))
        return obj

    def _index_owners(self, key, ns, name, old: dict | None, new: dict | None) -> None:
        for o in (old or {}).get("metadata", {}).get("ownerReferences") or []:
            self.dependents[o.get("uid")].discard((key, ns, name))
        for o in (new or {}).get("metadata", {}).get("ownerReferences") or []:
            self.dependents[o.get("uid")].add((key, ns, name))

    def _check_namespace(self, res: Resource, ns: str | None) -> str:
        if not res.namespaced:
            return ""
        if not ns:
            raise ApiError(400, "the server could not find the requested resource: a namespace is required for " + res.plural)
        phase = self.namespace_phase(ns)
        if phase is None:
            raise errors.namespace_not_found(ns)
        if phase == "Terminating":
            raise ApiError(403, f"{res.plural} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                           reason="Forbidden", details={"name": "", "kind": res.plural, "causes": [
                               {"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                                "field": "metadata.namespace"}]})
        return ns

    def _prepare_body(self, res: Resource, ns: str, body) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        obj = clone(body)
        kind = obj.get("kind")
        if kind and kind != res.kind:
            raise ApiError(400, f"the kind {kind!r} of the body does not match the resource {res.plural} (kind {res.kind!r})")
        api_version = obj.get("apiVersion")
        if api_version and api_version.split("/")[0] != (res.group or api_version.split("/")[0]) and res.group:
            raise ApiError(400, f"the apiVersion {api_version!r} of the body does not match the group {res.group!r}")
        obj["kind"] = res.kind
        obj["apiVersion"] = res.group + "/" + res.storage_version if res.group else res.storage_version
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        body_ns = meta.get("namespace")
        if res.namespaced:
            if body_ns and body_ns != ns:
                raise ApiError(400, f"the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        causes = []
        for label_map in ("labels", "annotations"):
            values = meta.get(label_map)
            if values is not None and not isinstance(values, dict):
                raise ApiError(400, f"metadata.{label_map} must be a map of strings")
            for k, v in (values or {}).items():
                if not isinstance(v, str):
                    causes.append({"reason": "FieldValueInvalid", "field": f"metadata.{label_map}",
                                   "message": f"Invalid value: {k!r}: values must be strings"})
                    continue
                if not _qualified_name(k):
                    causes.append({"reason": "FieldValueInvalid", "field": f"metadata.{label_map}",
                                   "message": f'Invalid value: "{k}": name part must consist of alphanumeric characters, '
                                              "'-', '_' or '.', and must start and end with an alphanumeric character "
                                              "(an optional DNS subdomain prefix and '/' may come first)"})
                if label_map == "labels" and v and (len(v) > 63 or not LABEL_VALUE.match(v)):
                    causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                                   "message": f'Invalid value: "{v}": a valid label must be an empty string or consist of '
                                              "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                              "alphanumeric character (at most 63 characters)"})
        if causes:
            raise errors.invalid(res, meta.get("name", ""), causes)
        return obj

    def create(self, res: Resource, ns: str | None, body, dry_run: bool = False, manager: str = "unknown") -> dict:
        with self.lock:
            ns = self._check_namespace(res, ns)
            obj = self._prepare_body(res, ns, body)
            meta = obj["metadata"]
            name = meta.get("name")
            if not name:
                if meta.get("generateName"):
                    for _ in range(100):
                        name = meta["generateName"] + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                        if (ns, name) not in self.data[res.store_key]:
                            break
                    meta["name"] = name
                else:
                    raise errors.invalid(res, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                    "message": "Required value: name or generateName is required"}])
            causes = self._validate_name(res, name)
            if meta.get("resourceVersion"):
                causes.append({"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                               "message": "Invalid value: must be empty on create"})
            if causes:
                raise errors.invalid(res, name, causes)
            if (ns, name) in self.data[res.store_key]:
                raise errors.already_exists(res, name)
            self._defaults(res, obj, None)
            causes = self._validate_spec(res, obj)
            if causes:
                raise errors.invalid(res, name, causes)
            if res.status:
                initial = self._initial_status(res, obj)
                if initial is None and res.crd:
                    obj.pop("status", None)
                elif initial is None:
                    obj["status"] = {}
                else:
                    obj["status"] = initial
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
                meta.pop(k, None)
            if res.status or res.crd or "spec" in obj:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            managers = {}
            _track_update(managers, manager, res, None, obj)
            result = self._commit(res, ns, name, obj, "ADDED", None, managers, dry_run)
            if res.kind == "Namespace" and not dry_run:
                self._work.put(("namespace_created", name))
            return result

    def _apply_update(self, res: Resource, ns: str, name: str, entry: Entry, obj: dict, subresource: str | None,  # noqa: PLR0917
                      dry_run: bool, manager: str, *, managers: dict | None = None, check_rv: bool = True) -> dict:
        """Common tail of PUT and PATCH: ``obj`` is the full desired object."""
        old = entry.obj
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        if meta.get("name") not in (None, name):
            raise ApiError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        rv = meta.get("resourceVersion")
        if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res, name, "the object has been modified; please apply your changes to the latest version and try again")
        uid = meta.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise errors.conflict(res, name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata']['uid']}")
        obj = self._prepare_body(res, ns, obj)
        meta = obj["metadata"]
        meta["name"] = name
        if subresource == "status":
            new = json.loads(entry.raw)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
            meta = obj["metadata"]
        else:
            if res.status:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
            self._defaults(res, obj, old)
            causes = self._validate_spec(res, obj)
            if causes:
                raise errors.invalid(res, name, causes)
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
                else:
                    meta.pop(k, None)
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
                if added:
                    raise errors.invalid(res, name, [{"reason": "FieldValueForbidden", "field": "metadata.finalizers",
                                                      "message": "Forbidden: no new finalizers can be added if the object is being deleted"}])
            if res.kind == "Namespace":
                obj.setdefault("spec", {})["finalizers"] = copy.deepcopy((old.get("spec") or {}).get("finalizers", ["kubernetes"]))
        meta.pop("managedFields", None)
        if "generation" in old["metadata"]:
            def strip(o):
                return {k: v for k, v in o.items() if k not in ("metadata", "status")} if (res.status or not res.crd) else \
                    {k: v for k, v in o.items() if k != "metadata"}
            meta["generation"] = old["metadata"]["generation"] + (1 if strip(obj) != strip(old) else 0)
        if managers is None:
            managers = _copy_managers(entry.managers)
            _track_update(managers, manager, res, old, obj)
        # nothing changed: keep the resourceVersion (no event), like the real server
        probe = dict(obj)
        probe_meta = dict(meta)
        probe_meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        probe_meta["managedFields"] = old["metadata"].get("managedFields")
        if probe_meta["managedFields"] is None:
            probe_meta.pop("managedFields")
        probe["metadata"] = probe_meta
        if probe == old and managers == entry.managers:
            return json.loads(entry.raw)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and res.kind != "Namespace":
            return self._commit(res, ns, name, obj, "DELETED", entry, managers, dry_run)
        return self._commit(res, ns, name, obj, "MODIFIED", entry, managers, dry_run)

    def update(self, res: Resource, ns: str | None, name: str, body, *, subresource: str | None = None,
               dry_run: bool = False, manager: str = "unknown") -> dict:
        with self.lock:
            ns = ns or ""
            if not isinstance(body, dict):
                raise ApiError(400, "the request body must be a JSON object")
            entry = self._lookup(res, ns, name)
            if subresource == "scale":
                return self._scale_write(res, ns, name, entry, body, dry_run, manager)
            return self._apply_update(res, ns, name, entry, body, subresource, dry_run, manager)

    def patch(self, res: Resource, ns: str | None, name: str, patch_type: str, body, *, subresource: str | None = None,
              dry_run: bool = False, manager: str | None = None, force: bool = False) -> tuple[dict, bool]:
        """Return (object, created)."""
        with self.lock:
            ns = ns or ""
            entry = self.data[res.store_key].get((ns, name))
            if patch_type == "apply":
                return self._server_side_apply(res, ns, name, entry, body, subresource, dry_run, manager, force)
            if entry is None:
                raise errors.not_found(res, name)
            if patch_type == "strategic" and res.crd:
                raise ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
            if subresource == "scale":
                current = self._scale_of(res, entry)
            else:
                current = json.loads(self.render(res, entry))
            new = _patched(current, patch_type, body)
            if subresource == "scale":
                return self._scale_write(res, ns, name, entry, new, dry_run, manager or "unknown"), False
            if not isinstance(new, dict):
                raise ApiError(422, "the patch does not result in an object", reason="Invalid")
            return self._apply_update(res, ns, name, entry, new, subresource, dry_run, manager or "unknown"), False

    # ------------------------------------------------------------ server-side apply

    def _server_side_apply(self, res, ns, name, entry, body, subresource, dry_run, manager, force):  # noqa: PLR0917
        if not manager:
            raise ApiError(400, "PATCH, application/apply-patch+yaml requests must have a fieldManager query parameter")
        if not isinstance(body, dict):
            raise ApiError(400, "the apply patch must be a YAML or JSON object")
        kind = body.get("kind")
        if not kind or not body.get("apiVersion"):
            raise ApiError(400, "apply patches must set apiVersion and kind")
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise ApiError(400, f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        applied = clone(body)
        applied.setdefault("metadata", {})["name"] = name
        include_status = subresource == "status"
        if subresource == "scale":
            raise ApiError(415, "server-side apply of the scale subresource is not supported by the lab")
        new_paths = patching.field_values(applied, include_status=include_status)
        if not include_status:
            new_paths = {p: v for p, v in new_paths.items() if not (res.status and p[0] == "f:status")}
        else:
            new_paths = {p: v for p, v in new_paths.items() if p[0] == "f:status"}
        if entry is None:
            if subresource:
                raise errors.not_found(res, name)
            applied.get("metadata", {}).pop("resourceVersion", None)
            managers: dict = {}
            obj = self.create(res, ns or None, applied, dry_run=True, manager=manager)
            managers[(manager, "Apply")] = {"paths": set(new_paths), "apiVersion": res.api_version, "time": now()}
            obj["metadata"]["managedFields"] = []
            with self.lock:
                if (ns, name) in self.data[res.store_key]:
                    raise errors.already_exists(res, name)
                result = self._commit(res, ns, name, obj, "ADDED", None, managers, dry_run)
                if res.kind == "Namespace" and not dry_run:
                    self._work.put(("namespace_created", name))
                return result, True
        current = json.loads(self.render(res, entry))
        old_values = patching.field_values(current, include_status=True)
        conflicts = []
        for path, value in new_paths.items():
            for (mgr, op), info in entry.managers.items():
                if (mgr, op) == (manager, "Apply"):
                    continue
                if path in info["paths"] and old_values.get(path, _MISSING) != value:
                    conflicts.append((path, mgr, info["apiVersion"]))
        if conflicts and not force:
            causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {v}', "field": patching.format_path(p)}
                      for p, m, v in conflicts]
            if len(causes) == 1:
                text = f'Apply failed with 1 conflict: {causes[0]["message"]}: {causes[0]["field"]}'
            else:
                text = f"Apply failed with {len(causes)} conflicts: " + "\n".join(f'{c["message"]}: {c["field"]}' for c in causes)
            raise ApiError(409, text,
                           details={"name": name, "group": res.group, "kind": res.plural, "causes": causes})
        managers = _copy_managers(entry.managers)
        for path, mgr, _v in conflicts:
            for (m, op), info in managers.items():
                if m == mgr and (m, op) != (manager, "Apply"):
                    info["paths"].discard(path)
        previous = managers.get((manager, "Apply"), {}).get("paths", set())
        merged = patching.strategic_merge(current, _without_rv(applied))
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != entry.obj["metadata"]["resourceVersion"]:
            raise errors.conflict(res, name, "the object has been modified; please apply your changes to the latest version and try again")
        others = set()
        for key, info in managers.items():
            if key != (manager, "Apply"):
                others |= info["paths"]
        for path in sorted(previous - set(new_paths), key=len, reverse=True):
            if path not in others:
                patching.delete_path(merged, path)
        mine = managers.get((manager, "Apply"))
        if mine is None or mine["paths"] != set(new_paths) or mine["apiVersion"] != res.api_version:
            managers[(manager, "Apply")] = {"paths": set(new_paths), "apiVersion": res.api_version, "time": now()}
        for k in [k for k, v in managers.items() if not v["paths"]]:
            managers.pop(k)
        merged["metadata"]["resourceVersion"] = entry.obj["metadata"]["resourceVersion"]
        return self._apply_update(res, ns, name, entry, merged, subresource, dry_run, manager, managers=managers, check_rv=False), False

    # ------------------------------------------------------------ scale subresource

    def _scale_of(self, res: Resource, entry: Entry) -> dict:
        if not res.scale:
            raise ApiError(404, f"the server could not find the requested resource: {res.plural} has no scale subresource")
        obj = entry.obj
        meta = obj["metadata"]
        selector = _get_path(obj, res.scale.get("selector") or "")
        if isinstance(selector, dict):
            selector = selector_string(selector)
        status_replicas = _get_path(obj, res.scale.get("status") or "status.replicas") or 0
        scale = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": _get_path(obj, res.scale["spec"]) or 0},
            "status": {"replicas": status_replicas},
        }
        if selector:
            scale["status"]["selector"] = selector
        return scale

    def scale(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            return self._scale_of(res, self._lookup(res, ns or "", name))

    def _scale_write(self, res, ns, name, entry, body, dry_run, manager) -> dict:  # noqa: PLR0917
        if not res.scale:
            raise ApiError(404, f"the server could not find the requested resource: {res.plural} has no scale subresource")
        if not isinstance(body, dict):
            raise ApiError(400, "the Scale body must be an object")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != entry.obj["metadata"]["resourceVersion"]:
            raise errors.conflict(res, name, "the object has been modified; please apply your changes to the latest version and try again")
        replicas = (body.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(res, name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                              "message": f"Invalid value: {replicas!r}: must be greater than or equal to 0"}])
        new = json.loads(entry.raw)
        _set_path(new, res.scale["spec"], replicas)
        self._apply_update(res, ns, name, entry, new, None, dry_run, manager, check_rv=False)
        if dry_run:
            scale = self._scale_of(res, Entry(new, b"", {}))
            return scale
        return self._scale_of(res, self.data[res.store_key][(ns, name)])

    # ------------------------------------------------------------ delete

    def delete(self, res: Resource, ns: str | None, name: str, options: dict | None = None, dry_run: bool = False) -> dict:
        options = options or {}
        with self.lock:
            ns = ns or ""
            entry = self._lookup(res, ns, name)
            obj = json.loads(entry.raw)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise errors.conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {obj['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise errors.conflict(res, name, "the ResourceVersion in the precondition does not match the ResourceVersion in record. "
                                                 "The object might have been modified")
            policy = options.get("propagationPolicy")
            if policy not in (None, "", "Orphan", "Background", "Foreground"):
                raise ApiError(400, f"propagationPolicy {policy!r} is not one of Orphan, Background, Foreground")
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            if dry_run:
                return obj
            if policy == "Orphan":
                self._orphan(obj["metadata"]["uid"])
            meta = obj["metadata"]
            if res.kind == "Namespace":
                if name in ("default", "kube-system", "kube-public"):
                    raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted', reason="Forbidden",
                                   details={"name": name, "kind": "namespaces"})
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now()
                    meta["deletionGracePeriodSeconds"] = 0
                    obj.setdefault("status", {})["phase"] = "Terminating"
                    result = self._commit(res, ns, name, obj, "MODIFIED", entry, entry.managers, False)
                else:
                    result = obj
                self._work.put(("namespace", name))
                return clone(result)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return obj
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                return clone(self._commit(res, ns, name, obj, "MODIFIED", entry, entry.managers, False))
            if res.kind == "CustomResourceDefinition":
                self._drop_crd_objects(obj)
            return clone(self._commit(res, ns, name, obj, "DELETED", entry, entry.managers, False))

    def evict(self, res: Resource, ns: str, name: str, body, dry_run: bool = False) -> dict:
        """policy/v1 Eviction of a pod: refused with 429 while a PodDisruptionBudget allows no
        disruption, otherwise the pod is deleted (and the budget's disruptionsAllowed decremented)."""
        with self.lock:
            entry = self._lookup(res, ns, name)
            labels = entry.obj["metadata"].get("labels") or {}
            pdb_res = self.registry.get("policy", "v1", "poddisruptionbudgets")
            for (pns, pname), pdb in sorted(self.data[pdb_res.store_key].items()):
                if pns != ns:
                    continue
                match = parse_label_selector(selector_string((pdb.obj.get("spec") or {}).get("selector")))
                if match is None or not match(labels):
                    continue
                status = pdb.obj.get("status") or {}
                if "observedGeneration" in status:
                    allowed, desired, healthy = status.get("disruptionsAllowed", 0), status.get("desiredHealthy", 0), status.get("currentHealthy", 0)
                else:  # no disruption controller wrote the status: compute it from the pods now
                    allowed, desired, healthy = self._pdb_budget(pdb.obj, match)
                if allowed < 1:
                    raise ApiError(429, "Cannot evict pod as it would violate the pod's disruption budget.", reason="TooManyRequests",
                                   details={"causes": [{"reason": "DisruptionBudget", "message":
                                                        f"The disruption budget {pname} needs {desired} healthy pods and has {healthy} currently"}]})
                if not dry_run and "observedGeneration" in status:
                    new = json.loads(pdb.raw)
                    new["status"]["disruptionsAllowed"] = allowed - 1
                    self._commit(pdb_res, pns, pname, new, "MODIFIED", pdb, pdb.managers, False)
            options = (body or {}).get("deleteOptions") or {}
            self.delete(res, ns, name, options, dry_run)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _pdb_budget(self, pdb: dict, match) -> tuple[int, int, int]:
        pods = [e.obj for (pns, _n), e in self.data[("", "pods")].items()
                if pns == pdb["metadata"]["namespace"] and match(e.obj["metadata"].get("labels") or {})]
        expected = len(pods)
        healthy = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in (p.get("status") or {}).get("conditions") or []))
        spec = pdb.get("spec") or {}

        def amount(value) -> int:
            if isinstance(value, str) and value.endswith("%"):
                return -(-int(value[:-1]) * expected // 100)
            return int(value)

        if "minAvailable" in spec:
            desired = amount(spec["minAvailable"])
        elif "maxUnavailable" in spec:
            desired = max(0, expected - amount(spec["maxUnavailable"]))
        else:
            desired = expected
        return max(0, healthy - desired), desired, healthy

    def _orphan(self, owner_uid: str) -> None:
        for key, ns, name in list(self.dependents.get(owner_uid, ())):
            entry = self.data[key].get((ns, name))
            dres = self._res_for_key(key)
            if entry is None or dres is None:
                continue
            obj = json.loads(entry.raw)
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)
            self._commit(dres, ns, name, obj, "MODIFIED", entry, entry.managers, False)

    def delete_collection(self, res: Resource, ns: str | None, *, label_selector=None, field_selector=None,
                          options: dict | None = None, dry_run: bool = False) -> list[dict]:
        with self.lock:
            label_match = parse_label_selector(label_selector)
            field_match = parse_field_selector(field_selector)
            out = []
            for (ons, oname), entry in sorted(self.data[res.store_key].items()):
                if ns and ons != ns:
                    continue
                if label_match and not label_match(entry.obj["metadata"].get("labels")):
                    continue
                if field_match and not field_match(entry.obj):
                    continue
                out.append(self.delete(res, ons, oname, options, dry_run))
            return out

    # ------------------------------------------------------------ list and watch

    def list(self, res: Resource, ns: str | None, *, label_selector=None, field_selector=None, limit: int = 0,
             continue_token: str | None = None) -> tuple[list[bytes], int, str | None, int | None]:
        label_match = parse_label_selector(label_selector)
        field_match = parse_field_selector(field_selector)
        start = None
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = (token["ns"], token["name"])
                token_rv = int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "continue key is not valid: the continue token is malformed") from None
            if token_rv < self.compacted_rv:
                raise ApiError(410, "The provided continue parameter is too old to display a consistent list result. You can start a new "
                                    "list without the continue parameter.", reason="Expired")
        with self.lock:
            table = self.data[res.store_key]
            pinned = field_selector_name(field_selector)
            if pinned is not None and ns:
                keys = [(ns, pinned)] if (ns, pinned) in table else []
            else:
                keys = sorted(table)
            rv = self.rv
            out: list[bytes] = []
            last = None
            remaining = 0
            for key in keys:
                if ns and key[0] != ns:
                    continue
                if start is not None and key <= start:
                    continue
                entry = table[key]
                if label_match and not label_match(entry.obj["metadata"].get("labels")):
                    continue
                if field_match and not field_match(entry.obj):
                    continue
                if limit and len(out) >= limit:
                    remaining += 1
                    continue
                out.append(self.render(res, entry))
                last = key
            cont = None
            if limit and remaining and last is not None:
                cont = base64.urlsafe_b64encode(json.dumps({"ns": last[0], "name": last[1], "rv": rv}).encode()).decode()
            return out, rv, cont, (remaining if cont else None)

    def watch_start(self, res: Resource, ns: str | None, rv: str | None, *, label_selector=None, field_selector=None):
        """Return (initial events as bytes list, start rv, predicate) or raise 410 via an ERROR event list."""
        label_match = parse_label_selector(label_selector)
        field_match = parse_field_selector(field_selector)

        def matches(obj: dict | None, ens: str) -> bool:
            if obj is None:
                return False
            if ns and ens != ns:
                return False
            if label_match and not label_match(obj["metadata"].get("labels")):
                return False
            return not (field_match and not field_match(obj))

        with self.lock:
            initial: list[bytes] = []
            if rv in (None, "", "0"):
                for (ens, _n), entry in sorted(self.data[res.store_key].items()):
                    if matches(entry.obj, ens):
                        initial.append(b'{"type":"ADDED","object":' + self.render(res, entry) + b"}\n")
                return initial, self.rv, matches, None
            try:
                start = int(rv)
            except ValueError:
                raise ApiError(400, f"invalid resource version {rv!r}") from None
            if start < self.compacted_rv:
                gone = ApiError(410, f"too old resource version: {start} ({self.compacted_rv + 1})", reason="Expired")
                return [], start, matches, gone
            return initial, start, matches, None

    def events_after(self, res: Resource, last: int, matches) -> tuple[list[bytes], int]:
        """Encoded watch events for ``res`` with rv > last, and the new last rv (lock held by caller)."""
        out = []
        newest = last
        key = res.store_key
        pending = []
        for ev in reversed(self.history):
            if ev.rv <= last:
                break
            pending.append(ev)
        for ev in reversed(pending):
            newest = ev.rv
            if ev.key != key:
                continue
            now_match = ev.type != "DELETED" and matches(ev.obj, ev.namespace)
            was_match = ev.prev is not None and matches(ev.prev, ev.namespace)
            if ev.type == "DELETED":
                etype = "DELETED" if matches(ev.obj, ev.namespace) or was_match else None
            elif ev.type == "ADDED":
                etype = "ADDED" if now_match else None
            elif now_match and was_match:
                etype = "MODIFIED"
            elif now_match:
                etype = "ADDED"
            elif was_match:
                etype = "DELETED"
            else:
                etype = None
            if etype is None:
                continue
            raw = ev.raw
            if res.crd and res.version != res.storage_version:
                obj = json.loads(raw)
                obj["apiVersion"] = res.api_version
                raw = dumps(obj)
            out.append(b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n")
        return out, max(newest, last)

    # ------------------------------------------------------------ CRDs

    def _sync_crd(self, crd: dict, deleted: bool) -> None:
        name = crd["metadata"]["name"]
        with self.registry.lock:
            for old in self.registry.crd_owned.pop(name, []):
                self.registry.remove(old)
            if deleted:
                return
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            versions = spec.get("versions") or []
            storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "v1")
            owned = []
            for v in versions:
                if v.get("served") is False:
                    continue
                subs = v.get("subresources") or {}
                scale = None
                if "scale" in subs:
                    s = subs["scale"] or {}
                    scale = {"spec": s.get("specReplicasPath", ".spec.replicas"), "status": s.get("statusReplicasPath", ".status.replicas"),
                             "selector": s.get("labelSelectorPath") or ""}
                res = Resource(spec.get("group", ""), v["name"], names.get("plural", ""), names.get("kind", ""),
                               namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                               short_names=list(names.get("shortNames") or []), categories=list(names.get("categories") or []),
                               status="status" in subs, scale=scale, crd=True, storage_version=storage,
                               singular=names.get("singular") or names.get("kind", "").lower())
                self.registry.add(res)
                owned.append(res)
            self.registry.crd_owned[name] = owned

    def _drop_crd_objects(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        res = self._res_for_key(key)
        if res is None:
            return
        for (ns, name), entry in sorted(self.data[key].items()):
            self._commit(res, ns, name, json.loads(entry.raw), "DELETED", entry, entry.managers, False)

    # ------------------------------------------------------------ background work: GC and namespaces

    def _run_worker(self) -> None:
        while not self._stopping:
            item = self._work.get()
            if item is None:
                return
            try:
                with self.lock:
                    self._handle(item)
            except ApiError:
                pass
            except Exception as exc:  # keep the worker alive; report on stderr (the service log)
                print(f"lab-apiserver: background work {item!r} failed: {exc!r}", flush=True)

    def _handle(self, item) -> None:
        kind = item[0]
        if kind == "owner_gone":
            uid = item[1]
            for key, ns, name in sorted(self.dependents.pop(uid, set())):
                self._collect_if_orphaned(key, ns, name)
        elif kind == "check_owners":
            self._collect_if_orphaned(*item[1:])
        elif kind == "namespace_created":
            ns = item[1]
            sa = self.registry.get("", "v1", "serviceaccounts")
            if self.namespace_phase(ns) == "Active" and (ns, "default") not in self.data[sa.store_key]:
                self.create(sa, ns, {"metadata": {"name": "default"}}, manager="lab-serviceaccount-controller")
        elif kind == "namespace":
            self._terminate_namespace(item[1])

    def _collect_if_orphaned(self, key, ns, name) -> None:
        entry = self.data[key].get((ns, name))
        res = self._res_for_key(key)
        if entry is None or res is None:
            return
        refs = entry.obj["metadata"].get("ownerReferences") or []
        if refs and all(r.get("uid") not in self.uids for r in refs):
            self.delete(res, ns, name, {"propagationPolicy": "Background"})

    def _terminate_namespace(self, ns: str) -> None:
        if self.namespace_phase(ns) != "Terminating":
            return
        for key, table in list(self.data.items()):
            res = self._res_for_key(key)
            if res is None or not res.namespaced:
                continue
            for (ons, name) in sorted(k for k in table if k[0] == ns):
                entry = table.get((ons, name))
                if entry is not None and not entry.obj["metadata"].get("deletionTimestamp"):
                    self.delete(res, ons, name, {"propagationPolicy": "Background"})
        if not any(k[0] == ns for table in self.data.values() for k in table):
            ns_res = self.registry.get("", "v1", "namespaces")
            entry = self.data[ns_res.store_key].get(("", ns))
            if entry is not None:
                self._commit(ns_res, "", ns, json.loads(entry.raw), "DELETED", entry, entry.managers, False)


_MISSING = object()


def _without_rv(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    (obj.get("metadata") or {}).pop("resourceVersion", None)
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _patched(current: dict, patch_type: str, body):
    if patch_type == "json":
        return patching.json_patch(current, body)
    if not isinstance(body, dict):
        raise ApiError(400, f"a {patch_type} merge patch must be a JSON object")
    if patch_type == "merge":
        return patching.merge_patch(current, body)
    if patch_type == "strategic":
        return patching.strategic_merge(current, body)
    raise ApiError(415, f"unsupported patch type {patch_type!r}")


def _track_update(managers: dict, manager: str, res: Resource, old: dict | None, new: dict) -> None:
    """Fields an Update (create/PUT/PATCH) changes become owned by ``manager``; others lose them."""
    new_values = patching.field_values(new)
    old_values = patching.field_values(old) if old is not None else {}
    changed = {p for p, v in new_values.items() if old_values.get(p, _MISSING) != v}
    removed = set(old_values) - set(new_values)
    if not changed and not removed:
        return
    for info in managers.values():
        info["paths"] -= changed
        info["paths"] -= removed
    if changed:
        slot = managers.setdefault((manager, "Update"), {"paths": set(), "apiVersion": res.api_version, "time": now()})
        slot["paths"] |= changed
        slot["time"] = now()
    for k in [k for k, v in managers.items() if not v["paths"]]:
        managers.pop(k)


def _render_managers(managers: dict) -> list:
    out = []
    for (manager, op), info in managers.items():
        out.append({"manager": manager, "operation": op, "apiVersion": info["apiVersion"], "time": info["time"],
                    "fieldsType": "FieldsV1", "fieldsV1": patching.fields_v1(info["paths"])})
    return out


def _validate_crd(obj: dict) -> list[dict]:
    causes = []
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    if not group:
        causes.append({"reason": "FieldValueRequired", "field": "spec.group", "message": "Required value"})
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append({"reason": "FieldValueRequired", "field": f"spec.names.{field}", "message": "Required value"})
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append({"reason": "FieldValueNotSupported", "field": "spec.scope",
                       "message": f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"'})
    versions = spec.get("versions") or []
    if not versions:
        causes.append({"reason": "FieldValueRequired", "field": "spec.versions",
                       "message": "Required value: must have exactly one version marked as storage version"})
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                       "message": "Invalid value: must have exactly one version marked as storage version"})
    name = obj["metadata"].get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
    return causes


def _crd_status(obj: dict) -> dict:
    spec = obj.get("spec") or {}
    versions = spec.get("versions") or []
    storage = [v["name"] for v in versions if v.get("storage")]
    ts = obj["metadata"].get("creationTimestamp") or now()
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": ts},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted",
             "lastTransitionTime": ts},
        ],
    }
