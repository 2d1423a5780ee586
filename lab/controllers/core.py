"""The controller engine: list+watch caches, a work queue, clock timers and the reconcilers.

One ``Controllers`` object holds a cache of the watched kinds (filled by list, kept
current by watch streams), reconciles only keys that changed or whose timer is due, and
writes back only what differs. ``reconcile_once`` (a full pass) and ``advance`` (move a
manual clock and run until quiescent) are synchronous and deterministic.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from lab.controllers import logic as L
from lab.controllers.clock import Clock, format_time, parse_time
from lab.controllers.cron import CronError, parse_cron
from lab.controllers.kube import KINDS, Kube, KubeError

log = logging.getLogger("lab.controllers")

# controller name -> kinds it needs in its cache
CONTROLLERS = {
    "nodes": ["Node"],
    "deployments": ["Deployment", "ReplicaSet"],
    "replicasets": ["ReplicaSet"],
    "pods": ["Pod"],
    "statefulsets": ["StatefulSet"],
    "daemonsets": ["DaemonSet"],
    "jobs": ["Job"],
    "cronjobs": ["CronJob", "Job"],
    "velero": ["BackupStorageLocation", "Backup", "Restore", "Schedule", "DeleteBackupRequest"],
}
ORDER = ["Node", "CronJob", "Job", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Pod",
         "BackupStorageLocation", "DeleteBackupRequest", "Schedule", "Backup", "Restore"]
RECONCILED_BY = {"Node": "nodes", "Deployment": "deployments", "ReplicaSet": "replicasets", "Pod": "pods",
                 "StatefulSet": "statefulsets", "DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs",
                 "BackupStorageLocation": "velero", "Backup": "velero", "Restore": "velero", "Schedule": "velero",
                 "DeleteBackupRequest": "velero"}
WORKLOAD_KINDS = ("ReplicaSet", "StatefulSet", "DaemonSet", "Job")


def enabled_from_env(default: list[str] | None = None) -> list[str]:
    """LAB_CONTROLLERS (comma list, default all) minus LAB_CONTROLLERS_DISABLE."""
    names = default or [n.strip() for n in os.environ.get("LAB_CONTROLLERS", "").split(",") if n.strip()] or list(CONTROLLERS)
    disabled = {n.strip() for n in os.environ.get("LAB_CONTROLLERS_DISABLE", "").split(",") if n.strip()}
    return [n for n in names if n not in disabled]


def _rv(obj: dict) -> int | None:
    try:
        return int(L.meta(obj).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def _key_of(kind: str, obj: dict) -> tuple[str, str, str]:
    m = L.meta(obj)
    return (kind, m.get("namespace") or "", m.get("name") or "")


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class Controllers:
    """Simulated controllers over the Kubernetes API (see module docstring)."""

    def __init__(self, kubeconfig: str, clock: Clock | None = None, enabled: list[str] | None = None, *,
                 s3: dict | None = None, ready_delay: float = 1.0, node_count: int = 3, context: str | None = None,
                 watch: bool = True, resync_seconds: float = 300.0, default_bsl: bool = False):
        self.kubeconfig = kubeconfig
        self.context = context
        self.kube = Kube(kubeconfig, context)
        self.clock = clock or Clock()
        self.enabled = set(enabled if enabled is not None else enabled_from_env())
        unknown = self.enabled - set(CONTROLLERS)
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(sorted(unknown))} (known: {', '.join(CONTROLLERS)})")
        self.kinds = [k for k in ORDER if any(k in CONTROLLERS[c] for c in self.enabled)]
        if self.enabled & {"deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"}:
            for k in ("Pod", "Node"):
                if k not in self.kinds:
                    self.kinds.append(k)
        if "pods" in self.enabled and "Node" not in self.kinds:
            self.kinds.append("Node")
        self.ready_delay = ready_delay
        self.node_count = node_count
        self.use_watch = watch
        self.resync_seconds = resync_seconds
        self.cache: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in self.kinds}
        self.served: dict[str, bool] = {}
        self.list_rv: dict[str, str] = {}
        self.uid_index: dict[str, tuple[str, str, str]] = {}
        self.children: dict[str, set] = defaultdict(set)
        self.pods_by_node: dict[str, set] = defaultdict(set)
        self.current_rs: dict[str, str] = {}
        self.first_seen: dict[str, datetime] = {}
        self.queue: set[tuple[str, str, str]] = set()
        self.timers: list = []
        self.timer_due: dict[tuple[str, str, str], datetime] = {}
        self._seq = itertools.count()
        self.lock = threading.RLock()
        self.events: queue.Queue = queue.Queue()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.watchers: dict[str, threading.Thread] = {}
        self.rr = 0
        self.no_status_subresource: set[str] = set()
        self.stats = {"reconciles": 0, "writes": 0, "passes": 0, "last_pass_seconds": None, "errors": 0, "last_error": None}
        self.synced = False
        self.last_resync = 0.0
        self.velero = None
        self.default_bsl = default_bsl
        if "velero" in self.enabled:
            from lab.controllers.velero import Velero  # noqa: PLC0415 - boto3 only when velero runs

            self.velero = Velero(self, s3 or {})

    # -- cache ---------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.cache.get(kind, {}).get((namespace or "", name))

    def objects(self, kind: str) -> list[dict]:
        return list(self.cache.get(kind, {}).values())

    def children_of(self, owner: dict, kind: str) -> list[dict]:
        uid = L.meta(owner).get("uid")
        found = []
        for k, ns, name in sorted(self.children.get(uid, ())):
            if k == kind:
                obj = self.get(k, ns, name)
                if obj is not None:
                    found.append(obj)
        return found

    def owner_of(self, obj: dict) -> dict | None:
        ref = L.controller_of(obj)
        if not ref:
            return None
        key = self.uid_index.get(ref.get("uid"))
        if key:
            return self.get(*key)
        kind = ref.get("kind")
        if kind in self.cache:
            found = self.get(kind, L.meta(obj).get("namespace") or "", ref.get("name"))
            if found is not None and not ref.get("uid"):
                return found
        return None

    def _index(self, kind: str, key: tuple, obj: dict, add: bool) -> None:
        m = L.meta(obj)
        uid = m.get("uid")
        if uid:
            if add:
                self.uid_index[uid] = key
            elif self.uid_index.get(uid) == key:
                del self.uid_index[uid]
        ref = L.controller_of(obj)
        if ref and ref.get("uid"):
            if add:
                self.children[ref["uid"]].add(key)
            else:
                self.children[ref["uid"]].discard(key)
                if not self.children[ref["uid"]]:
                    del self.children[ref["uid"]]
        if kind == "Pod":
            node = (obj.get("spec") or {}).get("nodeName") or ""
            if add:
                self.pods_by_node[node].add(key)
            else:
                self.pods_by_node[node].discard(key)

    def store(self, kind: str, obj: dict, deleted: bool = False, force: bool = False) -> None:
        """Put a newer version of ``obj`` (or its deletion) in the cache and enqueue what depends on it."""
        if kind not in self.cache or not obj:
            return
        key = _key_of(kind, obj)
        old = self.cache[kind].get(key[1:])
        new_rv, old_rv = _rv(obj), (_rv(old) if old else None)
        if old is not None and not force and new_rv is not None and old_rv is not None:
            if new_rv < old_rv or (new_rv == old_rv and not deleted):
                return
        if deleted:
            if old is None:
                return
            if old_rv is not None and new_rv is not None and new_rv < old_rv:
                return
            self._index(kind, key, old, False)
            del self.cache[kind][key[1:]]
            self._changed(kind, key, old, None)
            return
        if old is not None:
            self._index(kind, key, old, False)
        self.cache[kind][key[1:]] = obj
        self._index(kind, key, obj, True)
        self._changed(kind, key, old, obj)

    def enqueue(self, key: tuple) -> None:
        controller = RECONCILED_BY.get(key[0])
        if controller in self.enabled:
            self.queue.add(key)

    def schedule(self, key: tuple, when: datetime | None) -> None:
        if when is None:
            return
        current = self.timer_due.get(key)
        if current is not None and current <= when:
            return
        self.timer_due[key] = when
        heapq.heappush(self.timers, (when, next(self._seq), key))

    def _changed(self, kind: str, key: tuple, old: dict | None, new: dict | None) -> None:
        obj = new or old
        self.enqueue(key)
        ref = L.controller_of(obj)
        if ref:
            owner_key = self.uid_index.get(ref.get("uid")) or (ref.get("kind"), key[1], ref.get("name"))
            self.enqueue(owner_key)
        if new is None and kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            self._gc_children(old)
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet") and new is not None:
            if old is None or L.annotations(old).get(L.FAULTS_ANNOTATION) != L.annotations(new).get(L.FAULTS_ANNOTATION) \
                    or (old.get("spec") or {}).get("template") != (new.get("spec") or {}).get("template"):
                self._enqueue_pods_of(new)
        if kind == "Node":
            if old is None or new is None or self._node_signature(old) != self._node_signature(new):
                for ds in self.objects("DaemonSet"):
                    self.enqueue(_key_of("DaemonSet", ds))
                for pod_key in list(self.pods_by_node.get(key[2], ())) + list(self.pods_by_node.get("", ())):
                    self.enqueue(pod_key)
        if kind == "BackupStorageLocation":
            for b in self.objects("Backup"):
                if (b.get("status") or {}).get("phase") in (None, "", "New"):
                    self.enqueue(_key_of("Backup", b))
        if kind == "Pod" and new is not None and old is not None:
            old_node = (old.get("spec") or {}).get("nodeName")
            if old_node != (new.get("spec") or {}).get("nodeName"):
                for ds in self.objects("DaemonSet"):
                    self.enqueue(_key_of("DaemonSet", ds))

    def _node_signature(self, node: dict) -> str:
        ready = (L.find_condition(node, "Ready") or {}).get("status")
        return f"{ready}|{(node.get('spec') or {}).get('unschedulable')}|{L.annotations(node).get(L.FAULTS_ANNOTATION)}"

    def _enqueue_pods_of(self, owner: dict) -> None:
        uid = L.meta(owner).get("uid")
        for child in list(self.children.get(uid, ())):
            if child[0] == "Pod":
                self.enqueue(child)
            elif child[0] == "ReplicaSet":
                rs = self.get(*child)
                if rs is not None:
                    for pod_key in list(self.children.get(L.meta(rs).get("uid"), ())):
                        if pod_key[0] == "Pod":
                            self.enqueue(pod_key)

    def _gc_children(self, owner: dict) -> None:
        uid = L.meta(owner).get("uid")
        for child in list(self.children.get(uid, ())):
            self._delete(child[0], child[1], child[2])

    # -- API writes ----------------------------------------------------------------------------
    def _note_error(self, what: str, exc: Exception) -> None:
        self.stats["errors"] += 1
        self.stats["last_error"] = f"{what}: {exc}"
        log.warning("%s: %s", what, exc)

    def create(self, kind: str, namespace: str, body: dict) -> dict | None:
        k = KINDS[kind]
        body.setdefault("apiVersion", k.api_version)
        body.setdefault("kind", kind)
        try:
            created = self.kube.create(k.path(namespace), body)
        except KubeError as exc:
            if exc.status == 409:
                existing = self.kube.get(k.path(namespace, body["metadata"]["name"]))
                if existing:
                    self.store(kind, existing)
                return existing
            self._note_error(f"create {kind} {namespace}/{body['metadata'].get('name')}", exc)
            return None
        self.stats["writes"] += 1
        self.store(kind, created)
        return created

    def patch(self, kind: str, obj: dict, body: dict) -> dict | None:
        m = L.meta(obj)
        try:
            result = self.kube.patch(KINDS[kind].path(m.get("namespace"), m["name"]), body)
        except KubeError as exc:
            if exc.status == 404:
                self.store(kind, obj, deleted=True, force=True)
                return None
            self._note_error(f"patch {kind} {m.get('namespace', '')}/{m['name']}", exc)
            return None
        self.stats["writes"] += 1
        self.store(kind, result)
        return result

    def write_status(self, kind: str, obj: dict, status: dict) -> dict | None:
        """Merge-patch ``status`` (keys that disappeared are nulled) through the status subresource."""
        m = L.meta(obj)
        old = obj.get("status") or {}
        body_status = dict(status)
        for key in old:
            if key not in status:
                body_status[key] = None
        body = {"status": body_status}
        k = KINDS[kind]
        try:
            if kind in self.no_status_subresource:
                result = self.kube.patch(k.path(m.get("namespace"), m["name"]), body)
            else:
                try:
                    result = self.kube.patch(k.path(m.get("namespace"), m["name"], "status"), body)
                except KubeError as exc:
                    if exc.status not in (404, 405):
                        raise
                    if self.kube.get(k.path(m.get("namespace"), m["name"])) is None:
                        self.store(kind, obj, deleted=True, force=True)
                        return None
                    self.no_status_subresource.add(kind)
                    result = self.kube.patch(k.path(m.get("namespace"), m["name"]), body)
        except KubeError as exc:
            if exc.status == 404:
                self.store(kind, obj, deleted=True, force=True)
                return None
            self._note_error(f"update status of {kind} {m.get('namespace', '')}/{m['name']}", exc)
            return None
        self.stats["writes"] += 1
        self.store(kind, result)
        return result

    def _delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.kube.delete(KINDS[kind].path(namespace, name), propagation="Background")
        except KubeError as exc:
            self._note_error(f"delete {kind} {namespace}/{name}", exc)
            return
        self.stats["writes"] += 1
        obj = self.get(kind, namespace, name)
        if obj is not None:
            self.store(kind, obj, deleted=True, force=True)

    def delete(self, kind: str, obj: dict) -> None:
        m = L.meta(obj)
        self._delete(kind, m.get("namespace") or "", m["name"])

    # -- list / watch --------------------------------------------------------------------------
    def sync(self) -> None:
        """Relist every watched kind and reconcile the differences (the watch may lag behind)."""
        self._apply_events()
        for kind in self.kinds:
            self._relist(kind)
        self.synced = True
        self.last_resync = time.monotonic()
        if self.use_watch and not self.stop_event.is_set() and self.threads:
            self._start_watchers()

    def _relist(self, kind: str) -> None:
        k = KINDS[kind]
        try:
            items, rv = self.kube.list(k.path())
        except KubeError as exc:
            if exc.status in (404, 405):
                self.served[kind] = False
                return
            raise
        self.served[kind] = True
        self.list_rv[kind] = rv
        seen = set()
        for item in items:
            item.setdefault("kind", kind)
            key = _key_of(kind, item)
            seen.add(key[1:])
            self.store(kind, item)
        for ckey, obj in list(self.cache[kind].items()):
            if ckey not in seen:
                self.store(kind, obj, deleted=True, force=True)

    def _start_watchers(self) -> None:
        for kind in self.kinds:
            if self.served.get(kind) and kind not in self.watchers:
                thread = threading.Thread(target=self._watch_loop, args=(kind,), name=f"watch-{kind}", daemon=True)
                self.watchers[kind] = thread
                thread.start()

    def _watch_loop(self, kind: str) -> None:
        kube = Kube(self.kubeconfig, self.context)
        path = KINDS[kind].path()
        rv = self.list_rv.get(kind, "")
        failures = 0
        while not self.stop_event.is_set():
            try:
                for event in kube.watch(path, rv, timeout_seconds=240):
                    if self.stop_event.is_set():
                        return
                    etype = event.get("type")
                    obj = event.get("object") or {}
                    if etype == "ERROR":
                        self.events.put(("RELIST", kind, None))
                        self.wake.set()
                        rv = ""
                        break
                    new_rv = L.meta(obj).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype == "BOOKMARK":
                        continue
                    obj.setdefault("kind", kind)
                    self.events.put((etype, kind, obj))
                    self.wake.set()
                failures = 0
            except Exception as exc:  # the stream broke: relist and watch again
                failures += 1
                log.info("watch %s ended: %s", kind, exc)
                self.events.put(("RELIST", kind, None))
                self.wake.set()
                rv = ""
                time.sleep(min(5.0, 0.2 * failures))
            if not rv:
                # wait for the relist to record a fresh resourceVersion
                deadline = time.monotonic() + 5
                while not self.stop_event.is_set() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    if self.list_rv.get(kind):
                        break
                rv = self.list_rv.get(kind, "")

    def _apply_events(self) -> None:
        relist = set()
        while True:
            try:
                etype, kind, obj = self.events.get_nowait()
            except queue.Empty:
                break
            if etype == "RELIST":
                relist.add(kind)
            elif etype == "DELETED":
                self.store(kind, obj, deleted=True)
            else:
                self.store(kind, obj)
        for kind in relist:
            self.list_rv.pop(kind, None)
            try:
                self._relist(kind)
            except KubeError as exc:
                self._note_error(f"relist {kind}", exc)

    # -- work loop -----------------------------------------------------------------------------
    def _fire_timers(self) -> None:
        now = self.clock.now()
        while self.timers and self.timers[0][0] <= now:
            when, _, key = heapq.heappop(self.timers)
            if self.timer_due.get(key) == when:
                del self.timer_due[key]
                self.enqueue(key)

    def next_timer(self) -> datetime | None:
        while self.timers and self.timer_due.get(self.timers[0][2]) != self.timers[0][0]:
            heapq.heappop(self.timers)
        return self.timers[0][0] if self.timers else None

    def drain(self, max_rounds: int = 500) -> int:
        """Reconcile queued and due keys until nothing is left; returns how many reconciles ran."""
        done = 0
        for _ in range(max_rounds):
            self._apply_events()
            self._fire_timers()
            if not self.queue:
                return done
            batch = sorted(self.queue, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1], k[2]))
            self.queue.clear()
            for key in batch:
                self._reconcile(key)
                done += 1
        log.warning("drain stopped after %d rounds with %d keys left", max_rounds, len(self.queue))
        return done

    def _reconcile(self, key: tuple) -> None:
        kind, ns, name = key
        obj = self.get(kind, ns, name)
        if obj is None:
            return
        handler = getattr(self, f"reconcile_{kind.lower()}", None)
        if handler is None and self.velero is not None:
            handler = getattr(self.velero, f"reconcile_{kind.lower()}", None)
        if handler is None:
            return
        self.stats["reconciles"] += 1
        try:
            due = handler(obj)
        except KubeError as exc:
            self._note_error(f"reconcile {kind} {ns}/{name}", exc)
            due = self.clock.now() + timedelta(seconds=1)
        except Exception as exc:
            log.exception("reconcile %s %s/%s", kind, ns, name)
            self._note_error(f"reconcile {kind} {ns}/{name}", exc)
            due = self.clock.now() + timedelta(seconds=5)
        self.schedule(key, due)

    def reconcile_once(self) -> dict:
        """One synchronous full pass: relist everything, reconcile every object, run until quiescent."""
        with self.lock:
            t0 = time.monotonic()
            self.sync()
            self.ensure_nodes()
            for kind in self.kinds:
                for obj in self.objects(kind):
                    self.enqueue(_key_of(kind, obj))
            count = self.drain()
            elapsed = time.monotonic() - t0
            self.stats["passes"] += 1
            self.stats["last_pass_seconds"] = round(elapsed, 4)
            return {"reconciles": count, "seconds": round(elapsed, 4), "now": format_time(self.clock.now())}

    def advance(self, seconds: float) -> dict:
        """Advance a manual clock by ``seconds``, firing every timer in order, until quiescent."""
        with self.lock:
            t0 = time.monotonic()
            if self.clock.mode != "manual":
                raise ValueError("the clock is in real mode; POST /clock {\"mode\": \"manual\"} first")
            self.sync()
            count = self.drain()
            target = self.clock.now() + timedelta(seconds=float(seconds))
            steps = 0
            while steps < 100000:
                nxt = self.next_timer()
                if nxt is None or nxt > target:
                    break
                self.clock.set(nxt)
                count += self.drain()
                steps += 1
            self.clock.set(target)
            count += self.drain()
            return {"reconciles": count, "steps": steps, "seconds": round(time.monotonic() - t0, 4),
                    "now": format_time(self.clock.now())}

    def start(self) -> None:
        """Initial sync, nodes, watches and the background loop (real time or reacting to changes)."""
        with self.lock:
            self.sync()
            self.ensure_nodes()
            if self.velero is not None and self.default_bsl:
                self.velero.ensure_default_location()
            for kind in self.kinds:
                for obj in self.objects(kind):
                    self.enqueue(_key_of(kind, obj))
            self.drain()
        loop = threading.Thread(target=self._loop, name="controllers-loop", daemon=True)
        self.threads.append(loop)
        if self.use_watch:
            self._start_watchers()
        loop.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                with self.lock:
                    if not self.use_watch or time.monotonic() - self.last_resync > self.resync_seconds:
                        self.sync()
                    self.drain()
                    nxt = self.next_timer()
                wait = 0.5 if self.use_watch else 2.0
                wait = self.clock.sleep_hint(nxt, wait)
            except Exception as exc:
                self._note_error("controller loop", exc)
                wait = 1.0
            self.wake.wait(wait)
            self.wake.clear()

    # -- nodes ---------------------------------------------------------------------------------
    def ensure_nodes(self) -> None:
        if "nodes" not in self.enabled or not self.served.get("Node"):
            return
        for i in range(1, self.node_count + 1):
            name = f"lab-node-{i}"
            if self.get("Node", "", name) is None:
                body = {
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {
                        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": f"lab-{'abc'[(i - 1) % 3]}", "node.kubernetes.io/instance-type": "lab.large",
                        "node-role.kubernetes.io/worker": ""}},
                    "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"], "providerID": f"lab://{name}"},
                }
                self.create("Node", "", body)

    def node_index(self, name: str | None) -> int:
        match = re.search(r"(\d+)$", name or "")
        return int(match.group(1)) % 250 if match else 0

    def reconcile_node(self, node: dict) -> datetime | None:
        now = self.clock.now()
        faults = L.read_faults(node)
        prev = node.get("status") or {}
        conds = prev.get("conditions") or []
        name = L.meta(node)["name"]
        idx = self.node_index(name)
        status = copy.deepcopy(prev)
        status.setdefault("capacity", {"cpu": "8", "memory": "32847708Ki", "pods": "110", "ephemeral-storage": "102350Mi",
                                       "hugepages-2Mi": "0"})
        status.setdefault("allocatable", {"cpu": "7800m", "memory": "31750000Ki", "pods": "110", "ephemeral-storage": "94310Mi",
                                          "hugepages-2Mi": "0"})
        status.setdefault("addresses", [{"type": "InternalIP", "address": f"10.0.0.{10 + idx}"}, {"type": "Hostname", "address": name}])
        status.setdefault("nodeInfo", {"kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.4", "containerRuntimeVersion": "containerd://1.7.24",
                                       "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-28-amd64",
                                       "operatingSystem": "linux", "architecture": "amd64", "machineID": L._digest(name)[:32],
                                       "systemUUID": L._digest("uuid", name)[:32], "bootID": L._digest("boot", name)[:32]})
        status.setdefault("daemonEndpoints", {"kubeletEndpoint": {"Port": 10250}})
        new_conds = []
        for ctype, fault_kind, reason_ok, msg_ok, reason_bad, msg_bad in (
            ("MemoryPressure", "node_memory_pressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
             "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
            ("DiskPressure", "node_disk_pressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
             "KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("PIDPressure", "node_pid_pressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available",
             "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ):
            if fault_kind in faults:
                c = L.condition(conds, ctype, "True", now, reason_bad, msg_bad)
            else:
                c = L.condition(conds, ctype, "False", now, reason_ok, msg_ok)
            c["lastHeartbeatTime"] = c["lastTransitionTime"]
            new_conds.append(c)
        if "node_not_ready" in faults:
            state = str((faults["node_not_ready"].get("params") or {}).get("status", "False"))
            if state == "Unknown":
                c = L.condition(conds, "Ready", "Unknown", now, "NodeStatusUnknown", "Kubelet stopped posting node status.")
            else:
                c = L.condition(conds, "Ready", "False", now, "KubeletNotReady",
                                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady")
        else:
            c = L.condition(conds, "Ready", "True", now, "KubeletReady", "kubelet is posting ready status")
        c["lastHeartbeatTime"] = c["lastTransitionTime"]
        new_conds.append(c)
        status["conditions"] = new_conds
        if L.differs(status, prev):
            self.write_status("Node", node, status)
        return None

    def schedulable_nodes(self) -> list[dict]:
        nodes = []
        for node in sorted(self.objects("Node"), key=lambda n: L.meta(n)["name"]):
            if (node.get("spec") or {}).get("unschedulable"):
                continue
            if (L.find_condition(node, "Ready") or {}).get("status") != "True":
                continue
            nodes.append(node)
        return nodes

    def pick_node(self) -> str | None:
        nodes = self.schedulable_nodes()
        if not nodes:
            return None
        node = nodes[self.rr % len(nodes)]
        self.rr += 1
        return L.meta(node)["name"]

    # -- pods ----------------------------------------------------------------------------------
    def pod_context(self, pod: dict) -> tuple[dict, bool, dict | None]:
        """(active faults, stuck in a rollout, job info) for a pod from itself and its owners."""
        faults = dict(L.read_faults(pod))
        stuck = False
        job = None
        owner = self.owner_of(pod)
        ref = L.controller_of(pod)
        if owner is not None:
            faults = {**L.read_faults(owner), **faults}
            okind = ref.get("kind")
            if okind == "ReplicaSet":
                dep = self.owner_of(owner)
                if dep is not None:
                    dep_faults = L.read_faults(dep)
                    faults = {**dep_faults, **faults}
                    if "rollout_stuck" in faults:
                        current = self.current_rs.get(L.meta(dep).get("uid"))
                        stuck = current is None or current == L.meta(owner)["name"]
            elif okind == "Job":
                ann = L.annotations(pod)
                fail = str(ann.get(L.FAIL_ANNOTATION, L.annotations(owner).get(L.FAIL_ANNOTATION, ""))).lower() == "true"
                duration = ann.get(L.DURATION_ANNOTATION) or L.annotations(owner).get(L.DURATION_ANNOTATION)
                try:
                    seconds = float(duration) if duration is not None else self.ready_delay
                except ValueError:
                    seconds = self.ready_delay
                job = {"fail": fail or "backup_failed" in faults, "duration": seconds}
        if "rollout_stuck" in faults and ref is None:
            stuck = True
        if "rollout_stuck" in faults and ref is not None and ref.get("kind") != "ReplicaSet":
            stuck = True
        if ref is None and str(L.annotations(pod).get(L.FAIL_ANNOTATION, "")).lower() == "true" \
                and (pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure"):
            job = {"fail": True, "duration": self.ready_delay}
        return faults, stuck, job

    def reconcile_pod(self, pod: dict) -> datetime | None:
        m = L.meta(pod)
        if m.get("deletionTimestamp"):
            return None
        ref = L.controller_of(pod)
        if ref and ref.get("kind") in WORKLOAD_KINDS and ref.get("kind") in self.cache and self.synced \
                and self.owner_of(pod) is None and self.served.get(ref.get("kind")):
            # the owner is gone: garbage-collect like the GC controller would
            self.delete("Pod", pod)
            return None
        if "pods" not in self.enabled:
            return None
        now = self.clock.now()
        faults, stuck, job = self.pod_context(pod)
        spec = pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if "unschedulable" in faults and node_name:
            # a bound pod cannot become unschedulable: its replacement will be
            if ref is not None:
                self.delete("Pod", pod)
                return None
            patched = self.patch("Pod", pod, {"spec": {"nodeName": None}})
            if patched is None:
                return None
            pod = patched
            node_name = None
        if not node_name and "unschedulable" not in faults and (pod.get("status") or {}).get("phase") in (None, "", "Pending"):
            chosen = self.pick_node()
            if chosen is not None:
                patched = self.patch("Pod", pod, {"spec": {"nodeName": chosen}})
                if patched is None:
                    return None
                pod = patched
                node_name = chosen
        node = self.get("Node", "", node_name) if node_name else None
        if node_name and node is None and "nodes" not in self.enabled:
            node = {"metadata": {"name": node_name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        status, due = L.desired_pod_status(pod, now, faults=faults, node=node, node_index=self.node_index(node_name),
                                           ready_delay=self.ready_delay, stuck=stuck, job=job)
        if node_name and node is None:
            status["conditions"] = [c if c["type"] != "Ready" else {**c, "status": "False"} for c in status["conditions"]]
        if L.differs(status, pod.get("status")):
            self.write_status("Pod", pod, status)
        return due

    def _pod_body(self, owner: dict, owner_kind: str, name: str, template: dict, extra_labels: dict, node: str | None,  # noqa: PLR0917
                  extra_spec: dict | None = None) -> dict:
        tmeta = template.get("metadata") or {}
        lbl = dict(tmeta.get("labels") or {})
        lbl.update(extra_labels)
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": L.meta(owner).get("namespace"), "labels": lbl,
                         "generateName": f"{L.meta(owner)['name']}-",
                         "ownerReferences": [L.owner_ref(owner, owner_kind, KINDS[owner_kind].api_version)]},
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if tmeta.get("annotations"):
            body["metadata"]["annotations"] = dict(tmeta["annotations"])
        body["spec"].setdefault("restartPolicy", "Always")
        body["spec"].setdefault("schedulerName", "default-scheduler")
        body["spec"].setdefault("serviceAccountName", body["spec"].get("serviceAccount", "default"))
        if extra_spec:
            body["spec"].update(extra_spec)
        if node:
            body["spec"]["nodeName"] = node
        return body

    def _unique_pod_name(self, owner_name: str, taken: set[str]) -> str:
        for i in itertools.count():
            name = f"{owner_name}-{L.suffix(owner_name, i)}"
            if name not in taken and self.get("Pod", "", name) is None:
                return name
        raise RuntimeError("unreachable")

    def _create_pods(self, owner: dict, owner_kind: str, template: dict, count: int, extra_labels: dict,  # noqa: PLR0917
                     extra_spec: dict | None = None) -> None:
        ns = L.meta(owner).get("namespace") or ""
        taken = {k for (pns, k) in self.cache["Pod"] if pns == ns}
        faults = {**L.read_faults(owner)}
        dep = self.owner_of(owner) if owner_kind == "ReplicaSet" else None
        if dep is not None:
            faults.update(L.read_faults(dep))
        for _ in range(count):
            name = self._unique_pod_name(L.meta(owner)["name"], taken)
            taken.add(name)
            node = None if "unschedulable" in faults else self.pick_node()
            self.create("Pod", ns, self._pod_body(owner, owner_kind, name, template, extra_labels, node, extra_spec))

    # -- replicasets / deployments -------------------------------------------------------------
    def _active_pods(self, owner: dict) -> list[dict]:
        return [p for p in self.children_of(owner, "Pod") if L.pod_active(p)]

    def reconcile_replicaset(self, rs: dict) -> datetime | None:
        spec = rs.get("spec") or {}
        want = _int(spec.get("replicas", 1), 1)
        pods = self._active_pods(rs)
        if len(pods) < want:
            self._create_pods(rs, "ReplicaSet", spec.get("template") or {}, want - len(pods), {})
        elif len(pods) > want:
            def rank(p):
                return ((p.get("spec") or {}).get("nodeName") is not None, L.pod_ready(p), L.meta(p).get("name"))
            for pod in sorted(pods, key=rank)[: len(pods) - want]:
                self.delete("Pod", pod)
        pods = self._active_pods(rs)
        ready = sum(1 for p in pods if L.pod_ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": L.meta(rs).get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        prev = rs.get("status") or {}
        if {k: prev.get(k) for k in status} != status or set(prev) - set(status) - {"conditions"}:
            self.write_status("ReplicaSet", rs, status)
        return None

    @staticmethod
    def revision(obj: dict) -> int:
        return _int(L.annotations(obj).get(L.REVISION), 0)

    def reconcile_deployment(self, dep: dict) -> datetime | None:
        now = self.clock.now()
        m = L.meta(dep)
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        desired = _int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1, 1)
        paused = bool(spec.get("paused"))
        rss = sorted(self.children_of(dep, "ReplicaSet"), key=lambda r: (self.revision(r), L.meta(r).get("creationTimestamp", "")))
        new_rs = next((rs for rs in rss if L.same_template((rs.get("spec") or {}).get("template") or {}, template)), None)
        max_rev = max((self.revision(rs) for rs in rss), default=0)
        created = False
        if new_rs is None and not paused:
            h = L.template_hash(template)
            rs_template = copy.deepcopy(template)
            rs_template.setdefault("metadata", {}).setdefault("labels", {})[L.HASH_LABEL] = h
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[L.HASH_LABEL] = h
            ann = {L.REVISION: str(max_rev + 1), "deployment.kubernetes.io/desired-replicas": str(desired),
                   "deployment.kubernetes.io/max-replicas": str(desired + L.deployment_strategy(dep)[1])}
            cause = L.annotations(dep).get("kubernetes.io/change-cause")
            if cause:
                ann["kubernetes.io/change-cause"] = cause
            body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"{m['name']}-{h}", "namespace": m.get("namespace"),
                                 "labels": dict(rs_template["metadata"]["labels"]), "annotations": ann,
                                 "ownerReferences": [L.owner_ref(dep, "Deployment", "apps/v1")]},
                    "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                             "template": rs_template}}
            new_rs = self.create("ReplicaSet", m.get("namespace"), body)
            created = new_rs is not None
            if new_rs is not None and L.controller_of(new_rs) and L.controller_of(new_rs).get("uid") != m.get("uid"):
                new_rs = None
            rss = sorted(self.children_of(dep, "ReplicaSet"), key=lambda r: (self.revision(r), L.meta(r).get("creationTimestamp", "")))
        elif new_rs is not None and not paused and self.revision(new_rs) < max_rev:
            # rollback to an older template: that ReplicaSet becomes the newest revision
            old_rev = self.revision(new_rs)
            history = [h for h in (L.annotations(new_rs).get("deployment.kubernetes.io/revision-history") or "").split(",") if h]
            history.append(str(old_rev))
            patched = self.patch("ReplicaSet", new_rs, {"metadata": {"annotations": {
                L.REVISION: str(max_rev + 1), "deployment.kubernetes.io/revision-history": ",".join(history)}}})
            new_rs = patched or new_rs
            created = True
            rss = sorted(self.children_of(dep, "ReplicaSet"), key=lambda r: (self.revision(r), L.meta(r).get("creationTimestamp", "")))
        if new_rs is not None:
            self.current_rs[m.get("uid")] = L.meta(new_rs)["name"]
            rev = str(self.revision(new_rs))
            if L.annotations(dep).get(L.REVISION) != rev:
                dep = self.patch("Deployment", dep, {"metadata": {"annotations": {L.REVISION: rev}}}) or dep
        new_name = L.meta(new_rs)["name"] if new_rs is not None else None
        olds = [rs for rs in rss if L.meta(rs)["name"] != new_name]
        counts = {}
        for rs in rss:
            pods = self._active_pods(rs)
            counts[L.meta(rs)["name"]] = (len(pods), sum(1 for p in pods if L.pod_ready(p)))

        def spec_of(rs):
            return _int((rs.get("spec") or {}).get("replicas"), 0)

        targets: dict[str, int] = {}
        if paused:
            current = new_rs or (rss[-1] if rss else None)
            if current is not None and not olds:
                targets[L.meta(current)["name"]] = desired
        elif new_rs is not None:
            strategy, surge, unavailable = L.deployment_strategy(dep)
            if strategy == "Recreate":
                if any(spec_of(o) > 0 for o in olds):
                    for o in olds:
                        targets[L.meta(o)["name"]] = 0
                elif sum(counts[L.meta(o)["name"]][0] for o in olds) == 0:
                    targets[new_name] = desired
            else:
                new_target, old_targets = L.rolling_targets(
                    desired, surge, unavailable, (spec_of(new_rs), counts[new_name][1]),
                    [(spec_of(o), counts[L.meta(o)["name"]][1]) for o in olds])
                targets[new_name] = new_target
                for o, t in zip(olds, old_targets, strict=True):
                    targets[L.meta(o)["name"]] = t
        for rs in rss:
            name = L.meta(rs)["name"]
            if name in targets and targets[name] != spec_of(rs):
                ann = {"deployment.kubernetes.io/desired-replicas": str(desired)}
                self.patch("ReplicaSet", rs, {"spec": {"replicas": targets[name]}, "metadata": {"annotations": ann}})
        # old ReplicaSets beyond revisionHistoryLimit go
        limit = _int(spec.get("revisionHistoryLimit", 10), 10)
        idle = [o for o in olds if targets.get(L.meta(o)["name"], spec_of(o)) == 0 and counts[L.meta(o)["name"]][0] == 0]
        for o in idle[: max(0, len(idle) - limit)]:
            self.delete("ReplicaSet", o)
        rss = [self.get("ReplicaSet", m.get("namespace") or "", L.meta(r)["name"]) for r in rss]
        rs_counts = [(r, *counts[L.meta(r)["name"]]) for r in rss if r is not None]
        new_rs = self.get("ReplicaSet", m.get("namespace") or "", new_name) if new_name else None
        dep = self.get("Deployment", m.get("namespace") or "", m["name"]) or dep
        status, due = L.deployment_status(dep, now, new_rs=new_rs, rs_counts=rs_counts, new_rs_created=created)
        if L.differs(status, dep.get("status")):
            self.write_status("Deployment", dep, status)
        return due

    # -- statefulsets / daemonsets -------------------------------------------------------------
    def reconcile_statefulset(self, sts: dict) -> datetime | None:
        m = L.meta(sts)
        spec = sts.get("spec") or {}
        name = m["name"]
        ns = m.get("namespace") or ""
        want = _int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1, 1)
        template = spec.get("template") or {}
        revision = f"{name}-{L.template_hash(template)}"
        parallel = spec.get("podManagementPolicy") == "Parallel"
        pods = {L.meta(p)["name"]: p for p in self._active_pods(sts)}
        for i in range(want):
            pname = f"{name}-{i}"
            if pname in pods:
                continue
            if not parallel and any(not L.pod_ready(pods.get(f"{name}-{j}", {})) for j in range(i)):
                break
            lbl = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pname, "apps.kubernetes.io/pod-index": str(i)}
            extra = {"hostname": pname}
            if spec.get("serviceName"):
                extra["subdomain"] = spec["serviceName"]
            body = self._pod_body(sts, "StatefulSet", pname, template, lbl, None, extra)
            faults = L.read_faults(sts)
            if "unschedulable" not in faults:
                body["spec"]["nodeName"] = self.pick_node()
                if body["spec"]["nodeName"] is None:
                    del body["spec"]["nodeName"]
            created = self.create("Pod", ns, body)
            if created is not None:
                pods[pname] = created
            if not parallel:
                break
        for pname, pod in sorted(pods.items(), key=lambda kv: -_int(kv[0].rsplit("-", 1)[-1], 0)):
            if _int(pname.rsplit("-", 1)[-1], 0) >= want:
                self.delete("Pod", pod)
                del pods[pname]
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and len(pods) == want and all(L.pod_ready(p) for p in pods.values()):
            partition = _int((strategy.get("rollingUpdate") or {}).get("partition", 0), 0)
            for i in range(want - 1, partition - 1, -1):
                pod = pods.get(f"{name}-{i}")
                if pod is not None and L.labels(pod).get("controller-revision-hash") != revision:
                    self.delete("Pod", pod)
                    del pods[f"{name}-{i}"]
                    break
        pods_list = list(pods.values())
        ready = sum(1 for p in pods_list if L.pod_ready(p))
        updated = sum(1 for p in pods_list if L.labels(p).get("controller-revision-hash") == revision)
        prev = sts.get("status") or {}
        current_rev = prev.get("currentRevision") or revision
        if updated == want and len(pods_list) == want:
            current_rev = revision
        current = sum(1 for p in pods_list if L.labels(p).get("controller-revision-hash") == current_rev)
        status = {"observedGeneration": m.get("generation", 1), "replicas": len(pods_list), "readyReplicas": ready,
                  "currentReplicas": current, "updatedReplicas": updated, "availableReplicas": ready,
                  "currentRevision": current_rev, "updateRevision": revision, "collisionCount": prev.get("collisionCount", 0)}
        if L.differs(status, prev):
            self.write_status("StatefulSet", sts, status)
        return None

    def reconcile_daemonset(self, ds: dict) -> datetime | None:
        m = L.meta(ds)
        spec = ds.get("spec") or {}
        ns = m.get("namespace") or ""
        template = spec.get("template") or {}
        revision = L.template_hash(template)
        selector = (template.get("spec") or {}).get("nodeSelector") or {}
        nodes = [n for n in sorted(self.objects("Node"), key=lambda n: L.meta(n)["name"])
                 if all(L.labels(n).get(k) == v for k, v in selector.items())]
        node_names = [L.meta(n)["name"] for n in nodes]
        pods = self._active_pods(ds)
        by_node = defaultdict(list)
        for p in pods:
            by_node[(p.get("spec") or {}).get("nodeName") or ""].append(p)
        taken = {k for (pns, k) in self.cache["Pod"] if pns == ns}
        for node in node_names:
            if not by_node.get(node):
                pname = self._unique_pod_name(m["name"], taken)
                taken.add(pname)
                lbl = {"controller-revision-hash": revision, "pod-template-generation": str(m.get("generation", 1))}
                created = self.create("Pod", ns, self._pod_body(ds, "DaemonSet", pname, template, lbl, node))
                if created is not None:
                    by_node[node].append(created)
        for node, plist in list(by_node.items()):
            extra = plist if node not in node_names else plist[1:]
            for p in extra:
                self.delete("Pod", p)
                plist.remove(p)
        pods = [p for n in node_names for p in by_node.get(n, [])]
        if all(L.pod_ready(p) for p in pods):
            for p in pods:
                if L.labels(p).get("controller-revision-hash") != revision:
                    self.delete("Pod", p)
                    pods.remove(p)
                    break
        ready = sum(1 for p in pods if L.pod_ready(p))
        updated = sum(1 for p in pods if L.labels(p).get("controller-revision-hash") == revision)
        status = {"observedGeneration": m.get("generation", 1), "desiredNumberScheduled": len(node_names),
                  "currentNumberScheduled": len(pods), "numberReady": ready, "numberAvailable": ready,
                  "numberUnavailable": max(0, len(node_names) - ready), "updatedNumberScheduled": updated,
                  "numberMisscheduled": 0}
        if not status["numberAvailable"]:
            status.pop("numberAvailable")
        if not status["numberUnavailable"]:
            status.pop("numberUnavailable")
        if L.differs(status, ds.get("status")):
            self.write_status("DaemonSet", ds, status)
        return None

    # -- jobs / cronjobs -----------------------------------------------------------------------
    def reconcile_job(self, job: dict) -> datetime | None:
        now = self.clock.now()
        m = L.meta(job)
        spec = job.get("spec") or {}
        prev = job.get("status") or {}
        conds = prev.get("conditions") or []
        if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conds):
            return None
        pods = self.children_of(job, "Pod")
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        active = [p for p in pods if L.pod_active(p)]
        completions = _int(spec.get("completions", 1) if spec.get("completions") is not None else 1, 1)
        parallelism = _int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1, 1)
        backoff = _int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6, 6)
        start = parse_time(prev.get("startTime")) or now
        status = {"startTime": format_time(start)}
        due = None
        new_conds = []
        if spec.get("suspend"):
            new_conds.append(L.condition(conds, "Suspended", "True", now, "JobSuspended", "Job suspended", probe=True))
            for p in active:
                self.delete("Pod", p)
            active = []
        elif failed > backoff:
            new_conds.append(L.condition(conds, "FailureTarget", "True", now, "BackoffLimitExceeded",
                                         "Job has reached the specified backoff limit", probe=True))
            new_conds.append(L.condition(conds, "Failed", "True", now, "BackoffLimitExceeded",
                                         "Job has reached the specified backoff limit", probe=True))
            for p in active:
                self.delete("Pod", p)
            active = []
        elif spec.get("activeDeadlineSeconds") is not None and now - start > timedelta(seconds=_int(spec["activeDeadlineSeconds"], 0)):
            new_conds.append(L.condition(conds, "Failed", "True", now, "DeadlineExceeded",
                                         "Job was active longer than specified deadline", probe=True))
            for p in active:
                self.delete("Pod", p)
            active = []
        elif succeeded >= completions:
            new_conds.append(L.condition(conds, "SuccessCriteriaMet", "True", now, "CompletionsReached",
                                         "Reached expected number of succeeded pods", probe=True))
            new_conds.append(L.condition(conds, "Complete", "True", now, "CompletionsReached",
                                         "Reached expected number of succeeded pods", probe=True))
            status["completionTime"] = format_time(now)
            for p in active:
                self.delete("Pod", p)
            active = []
        else:
            want = max(0, min(parallelism, completions - succeeded) - len(active))
            if want:
                template = spec.get("template") or {}
                uid = m.get("uid", "")
                lbl = {"job-name": m["name"], "batch.kubernetes.io/job-name": m["name"], "controller-uid": uid,
                       "batch.kubernetes.io/controller-uid": uid}
                self._create_pods(job, "Job", template, want, lbl)
                active = [p for p in self.children_of(job, "Pod") if L.pod_active(p)]
            if spec.get("activeDeadlineSeconds") is not None:
                due = start + timedelta(seconds=_int(spec["activeDeadlineSeconds"], 0) + 1)
        if active:
            status["active"] = len(active)
        ready = sum(1 for p in active if L.pod_ready(p))
        status["ready"] = ready
        status["terminating"] = 0
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        status["uncountedTerminatedPods"] = {}
        if new_conds:
            status["conditions"] = new_conds
        if L.differs(status, prev):
            self.write_status("Job", job, status)
        return due

    def reconcile_cronjob(self, cj: dict) -> datetime | None:
        now = self.clock.now()
        m = L.meta(cj)
        spec = cj.get("spec") or {}
        prev = cj.get("status") or {}
        try:
            sched = parse_cron(spec.get("schedule", ""))
        except CronError as exc:
            self._note_error(f"CronJob {m.get('namespace')}/{m['name']}", exc)
            return None
        uid = m.get("uid") or m["name"]
        first = self.first_seen.setdefault(uid, now)
        base = parse_time(prev.get("lastScheduleTime")) or first
        jobs = sorted(self.children_of(cj, "Job"), key=lambda j: L.meta(j)["name"])

        def finished(j):
            for c in (j.get("status") or {}).get("conditions") or []:
                if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
                    return c["type"]
            return None

        active = [j for j in jobs if not finished(j)]
        status = {}
        last_sched = prev.get("lastScheduleTime")
        if not spec.get("suspend"):
            last, _ = sched.last_due(base, now)
            deadline = spec.get("startingDeadlineSeconds")
            if last is not None and (deadline is None or (now - last).total_seconds() <= _int(deadline, 0)):
                policy = spec.get("concurrencyPolicy", "Allow")
                if policy == "Forbid" and active:
                    pass
                else:
                    if policy == "Replace":
                        for j in active:
                            self.delete("Job", j)
                        active = []
                    jt = spec.get("jobTemplate") or {}
                    jname = f"{m['name']}-{int(last.timestamp() // 60)}"
                    jmeta = jt.get("metadata") or {}
                    body = {"apiVersion": "batch/v1", "kind": "Job",
                            "metadata": {"name": jname, "namespace": m.get("namespace"),
                                         "labels": dict(jmeta.get("labels") or {}),
                                         "annotations": {**(jmeta.get("annotations") or {}),
                                                         "batch.kubernetes.io/cronjob-scheduled-timestamp": format_time(last)},
                                         "ownerReferences": [L.owner_ref(cj, "CronJob", "batch/v1")]},
                            "spec": copy.deepcopy(jt.get("spec") or {})}
                    created = self.create("Job", m.get("namespace"), body)
                    if created is not None:
                        active.append(created)
                        jobs.append(created)
                    last_sched = format_time(last)
            elif last is not None:
                last_sched = format_time(last)
        if last_sched:
            status["lastScheduleTime"] = last_sched
        if active:
            status["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": L.meta(j)["name"],
                                 "namespace": L.meta(j).get("namespace"), "uid": L.meta(j).get("uid")} for j in active]
        done_ok = [j for j in jobs if finished(j) == "Complete"]
        done_failed = [j for j in jobs if finished(j) == "Failed"]
        if done_ok:
            times = [(j.get("status") or {}).get("completionTime") for j in done_ok]
            times = [t for t in times if t]
            if times:
                status["lastSuccessfulTime"] = max(times, key=parse_time)
        elif prev.get("lastSuccessfulTime"):
            status["lastSuccessfulTime"] = prev["lastSuccessfulTime"]
        for group, limit in ((done_ok, _int(spec.get("successfulJobsHistoryLimit", 3), 3)),
                             (done_failed, _int(spec.get("failedJobsHistoryLimit", 1), 1))):
            for j in group[: max(0, len(group) - limit)]:
                self.delete("Job", j)
        if L.differs(status, prev):
            self.write_status("CronJob", cj, status)
        if spec.get("suspend"):
            return None
        return sched.next_after(max(now, base))

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        with self.lock:
            return {
                "clock": {"mode": self.clock.mode, "now": format_time(self.clock.now())},
                "enabled": sorted(self.enabled),
                "served": {k: v for k, v in self.served.items()},
                "objects": {k: len(v) for k, v in self.cache.items()},
                "queue": len(self.queue),
                "timers": len(self.timer_due),
                "next_timer": format_time(self.next_timer()) if self.next_timer() else None,
                "ready_delay": self.ready_delay,
                "watch": self.use_watch,
                "api_requests": self.kube.requests,
                "stats": dict(self.stats),
            }


def dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
