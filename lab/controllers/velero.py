"""Velero's server side, simulated: backups, restores, schedules, storage locations, deletions.

Backups write Velero's real object-store layout (``backups/<name>/velero-backup.json``,
``<name>.tar.gz`` with ``metadata/version`` and ``resources/<group-resource>/...``, logs,
resource list, results) to the BackupStorageLocation's bucket through boto3; restores read
that tarball back and recreate the objects through the Kubernetes API.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import tarfile
import time
from datetime import datetime, timedelta

from lab.controllers import logic as L
from lab.controllers import velero_modifiers as VM
from lab.controllers.clock import format_time, parse_time
from lab.controllers.cron import CronError, parse_cron, parse_duration
from lab.controllers.kube import KubeError

FORMAT_VERSION = "1.1.0"
SKIP_BACKUP = {"nodes", "events", "events.events.k8s.io", "backups.velero.io", "restores.velero.io",
               "deletebackuprequests.velero.io", "downloadrequests.velero.io", "podvolumebackups.velero.io",
               "podvolumerestores.velero.io", "backuprepositories.velero.io", "serverstatusrequests.velero.io",
               "componentstatuses", "bindings", "leases.coordination.k8s.io"}
SKIP_RESTORE = SKIP_BACKUP | {"nodes"}
RESTORE_PRIORITY = ["customresourcedefinitions.apiextensions.k8s.io", "namespaces", "storageclasses.storage.k8s.io",
                    "persistentvolumes", "persistentvolumeclaims", "serviceaccounts", "secrets", "configmaps", "limitranges",
                    "pods", "replicasets.apps"]
DEFAULT_TTL = "720h0m0s"


def s3_key(prefix: str, *parts: str) -> str:
    prefix = (prefix or "").strip("/")
    return "/".join([prefix, *parts] if prefix else parts)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _resource_matches(entry: str, info: dict) -> bool:
    entry = entry.lower()
    if entry == "*":
        return True
    names = {info["plural"], info["gr"], info["kind"].lower(), (info.get("singular") or "").lower()}
    names.update(s.lower() for s in info.get("shortNames") or [])
    return entry in names


def resource_included(info: dict, included: list | None, excluded: list | None) -> bool:
    if any(_resource_matches(e, info) for e in excluded or []):
        return False
    if not included or "*" in included:
        return True
    return any(_resource_matches(e, info) for e in included)


def namespace_included(ns: str, included: list | None, excluded: list | None) -> bool:
    if ns in (excluded or []):
        return False
    return not included or "*" in included or ns in included


class Velero:
    """Reconcilers of the velero.io/v1 kinds; runs inside ``Controllers``."""

    def __init__(self, ctl, s3: dict):
        self.ctl = ctl
        self.s3 = dict(s3 or {})
        self._clients: dict[str, object] = {}
        self._discovery: tuple[float, dict] | None = None
        self.backup_seconds = max(ctl.ready_delay, 0.0)

    # -- S3 ------------------------------------------------------------------------------------
    def client(self, endpoint: str | None, region: str | None = None):
        import boto3  # noqa: PLC0415 - imported when first needed
        from botocore.config import Config  # noqa: PLC0415

        endpoint = endpoint or self.s3.get("endpoint_url")
        key = f"{endpoint}|{region}"
        if key not in self._clients:
            self._clients[key] = boto3.client(
                "s3", endpoint_url=endpoint, region_name=region or self.s3.get("region", "us-east-1"),
                aws_access_key_id=self.s3.get("access_key", "lab"), aws_secret_access_key=self.s3.get("secret_key", "lab"),
                config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=15,
                              s3={"addressing_style": "path"}))
        return self._clients[key]

    def location(self, bsl: dict):
        spec = bsl.get("spec") or {}
        storage = spec.get("objectStorage") or {}
        config = spec.get("config") or {}
        client = self.client(config.get("s3Url"), config.get("region"))
        return client, storage.get("bucket") or self.s3.get("bucket", "velero"), storage.get("prefix") or ""

    def put(self, bsl: dict, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        client, bucket, prefix = self.location(bsl)
        client.put_object(Bucket=bucket, Key=s3_key(prefix, key), Body=data, ContentType=content_type)

    def get_object(self, bsl: dict, key: str) -> bytes:
        client, bucket, prefix = self.location(bsl)
        return client.get_object(Bucket=bucket, Key=s3_key(prefix, key))["Body"].read()

    def delete_prefix(self, bsl: dict, key_prefix: str) -> int:
        client, bucket, prefix = self.location(bsl)
        full = s3_key(prefix, key_prefix)
        deleted = 0
        token = None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = client.list_objects_v2(**kwargs)
            keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
            if not page.get("IsTruncated"):
                return deleted
            token = page.get("NextContinuationToken")

    # -- helpers -------------------------------------------------------------------------------
    def find_bsl(self, namespace: str, name: str | None) -> dict | None:
        if name:
            return self.ctl.get("BackupStorageLocation", namespace, name)
        candidates = [b for b in self.ctl.objects("BackupStorageLocation") if L.meta(b).get("namespace") == namespace]
        default = next((b for b in candidates if (b.get("spec") or {}).get("default")), None)
        return default or self.ctl.get("BackupStorageLocation", namespace, "default")

    def discover(self) -> dict[str, dict]:
        """group-resource -> {gr, group, version, plural, kind, namespaced, ...} of listable resources."""
        if self._discovery and time.monotonic() - self._discovery[0] < 30:
            return self._discovery[1]
        kube = self.ctl.kube
        found: dict[str, dict] = {}

        def add(group: str, version: str, data: dict | None) -> None:
            for r in (data or {}).get("resources") or []:
                name = r.get("name", "")
                if "/" in name or "list" not in (r.get("verbs") or []):
                    continue
                gr = f"{name}.{group}" if group else name
                found.setdefault(gr, {"gr": gr, "group": group, "version": version, "plural": name, "kind": r.get("kind", ""),
                                      "namespaced": bool(r.get("namespaced")), "singular": r.get("singularName"),
                                      "shortNames": r.get("shortNames") or []})

        add("", "v1", kube.get("/api/v1"))
        for group in (kube.get("/apis") or {}).get("groups") or []:
            pv = (group.get("preferredVersion") or {}).get("groupVersion") or (group.get("versions") or [{}])[0].get("groupVersion")
            if pv:
                add(group["name"], pv.split("/", 1)[1], kube.get(f"/apis/{pv}"))
        self._discovery = (time.monotonic(), found)
        return found

    @staticmethod
    def path_for(info: dict, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{info['group']}/{info['version']}" if info["group"] else f"/api/{info['version']}"
        parts = [base]
        if info["namespaced"] and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(info["plural"])
        if name:
            parts.append(name)
        return "/".join(parts)

    # -- BackupStorageLocation -----------------------------------------------------------------
    def reconcile_backupstoragelocation(self, bsl: dict) -> datetime | None:
        now = self.ctl.clock.now()
        name = L.meta(bsl)["name"]
        spec = bsl.get("spec") or {}
        faults = L.read_faults(bsl)
        prev = bsl.get("status") or {}
        try:
            freq = parse_duration(spec.get("validationFrequency") or "1m")
        except CronError:
            freq = timedelta(minutes=1)
        last = parse_time(prev.get("lastValidationTime"))
        if last is not None and now < last + freq and prev.get("phase") and \
                ("bsl_unavailable" in faults) == (prev.get("message", "").endswith("(lab fault bsl_unavailable)")):
            return last + freq
        message = None
        if "bsl_unavailable" in faults:
            phase = "Unavailable"
            message = f'BackupStorageLocation "{name}" is unavailable: rpc error: code = Unknown desc = (lab fault bsl_unavailable)'
        else:
            try:
                client, bucket, _ = self.location(bsl)
                client.head_bucket(Bucket=bucket)
                phase = "Available"
            except Exception as exc:
                phase = "Unavailable"
                message = f'BackupStorageLocation "{name}" is unavailable: rpc error: code = Unknown desc = {exc}'
        status = {"phase": phase, "lastValidationTime": format_time(now)}
        if message:
            status["message"] = message
        if prev.get("lastSyncedTime"):
            status["lastSyncedTime"] = prev["lastSyncedTime"]
        if spec.get("accessMode") or True:
            status["accessMode"] = spec.get("accessMode", "ReadWrite")
        if L.differs(status, prev):
            self.ctl.write_status("BackupStorageLocation", bsl, status)
        return now + freq

    # -- Backup --------------------------------------------------------------------------------
    def reconcile_backup(self, backup: dict) -> datetime | None:
        now = self.ctl.clock.now()
        m = L.meta(backup)
        ns = m.get("namespace") or "velero"
        spec = backup.get("spec") or {}
        prev = backup.get("status") or {}
        phase = prev.get("phase") or "New"
        if phase == "New":
            bsl = self.find_bsl(ns, spec.get("storageLocation"))
            status = {"phase": "InProgress", "version": 1, "formatVersion": FORMAT_VERSION,
                      "startTimestamp": format_time(now)}
            try:
                ttl = parse_duration(spec.get("ttl") or DEFAULT_TTL)
            except CronError:
                ttl = parse_duration(DEFAULT_TTL)
            status["expiration"] = format_time(now + ttl)
            errors = []
            if bsl is None:
                errors.append(f'an existing backup storage location was not specified at backup creation time and the default '
                              f'"{spec.get("storageLocation") or "default"}" could not be found')
            elif (bsl.get("status") or {}).get("phase") == "Unavailable":
                errors.append(f"backup can't be created because BackupStorageLocation {L.meta(bsl)['name']} is in Unavailable status.")
            elif not (bsl.get("status") or {}).get("phase"):
                return now + timedelta(seconds=1)
            if errors:
                status = {"phase": "FailedValidation", "validationErrors": errors, "version": 1, "formatVersion": FORMAT_VERSION}
                self.ctl.write_status("Backup", backup, status)
                return None
            lbl = {"velero.io/storage-location": L.meta(bsl)["name"]}
            if L.labels(backup).get("velero.io/storage-location") != lbl["velero.io/storage-location"]:
                backup = self.ctl.patch("Backup", backup, {"metadata": {"labels": lbl}}) or backup
            self.ctl.write_status("Backup", backup, status)
            return now + timedelta(seconds=self.backup_seconds)
        if phase == "InProgress":
            start = parse_time(prev.get("startTimestamp")) or now
            if now < start + timedelta(seconds=self.backup_seconds):
                return start + timedelta(seconds=self.backup_seconds)
            return self._finish_backup(backup, now)
        if phase in ("Completed", "PartiallyFailed", "Failed"):
            expiration = parse_time(prev.get("expiration"))
            if expiration is not None and now >= expiration:
                bsl = self.find_bsl(ns, spec.get("storageLocation"))
                if bsl is not None:
                    try:
                        self.delete_prefix(bsl, f"backups/{m['name']}/")
                    except Exception as exc:
                        self.ctl._note_error(f"expire backup {m['name']}", exc)
                        return now + timedelta(minutes=1)
                self.ctl.delete("Backup", backup)
                return None
            return expiration
        return None

    def collect(self, spec: dict) -> tuple[list[tuple[dict, dict]], list[str]]:
        """Objects a backup with ``spec`` holds: [(resource info, object)], and log lines."""
        included_ns, excluded_ns = spec.get("includedNamespaces"), spec.get("excludedNamespaces")
        included_res, excluded_res = spec.get("includedResources"), spec.get("excludedResources")
        selector = spec.get("labelSelector")
        cluster = spec.get("includeClusterResources")
        all_ns = not included_ns or "*" in included_ns
        items: list[tuple[dict, dict]] = []
        logs = [f"Including namespaces: {', '.join(included_ns or ['*'])}",
                f"Excluding namespaces: {', '.join(excluded_ns or []) or '<none>'}",
                f"Including resources: {', '.join(included_res or ['*'])}",
                f"Excluding resources: {', '.join(excluded_res or []) or '<none>'}"]
        resources = self.discover()
        ns_objects = {}
        for gr in sorted(resources):
            info = resources[gr]
            if gr in SKIP_BACKUP:
                continue
            if gr == "namespaces":
                continue
            if not resource_included(info, included_res, excluded_res):
                continue
            if not info["namespaced"] and not (cluster is True or (cluster is None and all_ns)):
                continue
            try:
                objs, _ = self.ctl.kube.list(self.path_for(info))
            except KubeError as exc:
                logs.append(f"Error listing {gr}: {exc}")
                continue
            for obj in objs:
                om = L.meta(obj)
                if info["namespaced"] and not namespace_included(om.get("namespace", ""), included_ns, excluded_ns):
                    continue
                if not L.match_selector(selector, L.labels(obj)) or L.labels(obj).get("velero.io/exclude-from-backup") == "true":
                    continue
                obj.setdefault("apiVersion", f"{info['group']}/{info['version']}" if info["group"] else info["version"])
                obj.setdefault("kind", info["kind"])
                items.append((info, obj))
                if info["namespaced"]:
                    ns_objects[om.get("namespace")] = True
        if "namespaces" in resources and resource_included(resources["namespaces"], included_res, excluded_res):
            info = resources["namespaces"]
            try:
                namespaces, _ = self.ctl.kube.list(self.path_for(info))
            except KubeError:
                namespaces = []
            for obj in namespaces:
                name = L.meta(obj).get("name")
                if not namespace_included(name, included_ns, excluded_ns):
                    continue
                if selector and name not in ns_objects and not L.match_selector(selector, L.labels(obj)):
                    continue
                obj.setdefault("apiVersion", "v1")
                obj.setdefault("kind", "Namespace")
                items.append((info, obj))
        return items, logs

    def _finish_backup(self, backup: dict, now: datetime) -> datetime | None:
        m = L.meta(backup)
        name = m["name"]
        ns = m.get("namespace") or "velero"
        spec = backup.get("spec") or {}
        prev = backup.get("status") or {}
        bsl = self.find_bsl(ns, spec.get("storageLocation"))
        faults = {**L.read_faults(bsl), **L.read_faults(backup)} if bsl else L.read_faults(backup)
        status = dict(prev)
        log_lines = [f'time="{prev.get("startTimestamp")}" level=info msg="Setting up backup temp file" backup={ns}/{name}']

        def logline(level, msg):
            log_lines.append(f'time="{format_time(now)}" level={level} msg="{msg}" backup={ns}/{name}')

        if bsl is None or "bsl_unavailable" in L.read_faults(bsl):
            status.update({"phase": "Failed", "completionTimestamp": format_time(now),
                           "failureReason": "backup storage location is not available"})
            self.ctl.write_status("Backup", backup, status)
            return None
        if "backup_failed" in faults:
            reason = str((faults["backup_failed"].get("params") or {}).get("reason", "lab fault backup_failed: error backing up items"))
            logline("error", reason)
            status.update({"phase": "Failed", "completionTimestamp": format_time(now), "failureReason": reason, "errors": 1})
            final = self._backup_document(backup, status)
            try:
                self.put(bsl, f"backups/{name}/velero-backup.json", json.dumps(final, indent=2).encode(), "application/json")
                self.put(bsl, f"backups/{name}/{name}-logs.gz", _gz("\n".join(log_lines).encode() + b"\n"))
            except Exception as exc:
                status["failureReason"] = f"{reason}; uploading backup metadata failed: {exc}"
            self.ctl.write_status("Backup", backup, status)
            return parse_time(status.get("expiration"))
        try:
            items, collect_logs = self.collect(spec)
        except KubeError as exc:
            status.update({"phase": "Failed", "completionTimestamp": format_time(now), "failureReason": f"error listing items: {exc}"})
            self.ctl.write_status("Backup", backup, status)
            return None
        for line in collect_logs:
            logline("info", line)
        errors: dict = {}
        warnings: dict = {}
        error_count = 0
        failed_keys = set()
        if "backup_partially_failed" in faults:
            want = int(L.fault_param(faults["backup_partially_failed"], "errors", 1))
            candidates = [(info, obj) for info, obj in items if info["namespaced"]] or items
            for info, obj in candidates[:want]:
                om = L.meta(obj)
                msg = (f"error executing custom action (groupResource={info['gr']}, namespace={om.get('namespace', '')}, "
                       f"name={om.get('name')}): lab fault backup_partially_failed")
                if info["namespaced"]:
                    errors.setdefault("namespaces", {}).setdefault(om.get("namespace"), []).append(msg)
                else:
                    errors.setdefault("cluster", []).append(msg)
                failed_keys.add((info["gr"], om.get("namespace", ""), om.get("name")))
                error_count += 1
                logline("error", msg)
            if error_count == 0:
                errors.setdefault("velero", []).append("lab fault backup_partially_failed")
                error_count = 1
        buf = io.BytesIO()
        resource_list: dict[str, list[str]] = {}
        backed_up = 0
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            def add(path: str, data: bytes) -> None:
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mtime = int(now.timestamp())
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))

            add("metadata/version", FORMAT_VERSION.encode())
            for info, obj in items:
                om = L.meta(obj)
                if (info["gr"], om.get("namespace", ""), om.get("name")) in failed_keys:
                    continue
                data = json.dumps(obj).encode()
                scope = f"namespaces/{om['namespace']}" if info["namespaced"] else "cluster"
                add(f"resources/{info['gr']}/{scope}/{om['name']}.json", data)
                add(f"resources/{info['gr']}/{info['version']}-preferredversion/{scope}/{om['name']}.json", data)
                gvk = f"{info['group']}/{info['version']}/{info['kind']}" if info["group"] else f"{info['version']}/{info['kind']}"
                resource_list.setdefault(gvk, []).append(f"{om['namespace']}/{om['name']}" if info["namespaced"] else om["name"])
                backed_up += 1
        logline("info", f"Backed up a total of {backed_up} items")
        phase = "PartiallyFailed" if error_count else "Completed"
        status.update({"phase": phase, "completionTimestamp": format_time(now),
                       "progress": {"totalItems": len(items), "itemsBackedUp": backed_up}})
        if error_count:
            status["errors"] = error_count
        else:
            status.pop("errors", None)
        warn_count = sum(len(v) for v in warnings.values())
        if warn_count:
            status["warnings"] = warn_count
        final = self._backup_document(backup, status)
        try:
            self.put(bsl, f"backups/{name}/{name}.tar.gz", buf.getvalue(), "application/gzip")
            self.put(bsl, f"backups/{name}/{name}-logs.gz", _gz("\n".join(log_lines).encode() + b"\n"))
            self.put(bsl, f"backups/{name}/{name}-resource-list.json.gz", _gz(json.dumps(resource_list).encode()))
            self.put(bsl, f"backups/{name}/{name}-results.gz", _gz(json.dumps({"errors": errors, "warnings": warnings}).encode()))
            self.put(bsl, f"backups/{name}/{name}-volumesnapshots.json.gz", _gz(b"[]"))
            self.put(bsl, f"backups/{name}/{name}-podvolumebackups.json.gz", _gz(b"[]"))
            self.put(bsl, f"backups/{name}/{name}-itemoperations.json.gz", _gz(b"[]"))
            self.put(bsl, f"backups/{name}/velero-backup.json", json.dumps(final, indent=2).encode(), "application/json")
        except Exception as exc:
            status = dict(prev)
            status.update({"phase": "Failed", "completionTimestamp": format_time(now),
                           "failureReason": f"error uploading backup to object storage: {exc}"})
        self.ctl.write_status("Backup", backup, status)
        return parse_time(status.get("expiration"))

    @staticmethod
    def _backup_document(backup: dict, status: dict) -> dict:
        doc = copy.deepcopy(backup)
        doc.setdefault("apiVersion", "velero.io/v1")
        doc.setdefault("kind", "Backup")
        doc.get("metadata", {}).pop("managedFields", None)
        doc["status"] = status
        return doc

    # -- Restore -------------------------------------------------------------------------------
    def reconcile_restore(self, restore: dict) -> datetime | None:
        now = self.ctl.clock.now()
        m = L.meta(restore)
        ns = m.get("namespace") or "velero"
        spec = restore.get("spec") or {}
        prev = restore.get("status") or {}
        phase = prev.get("phase") or "New"
        if phase == "New":
            errors = []
            backup = self.ctl.get("Backup", ns, spec.get("backupName") or "")
            if not spec.get("backupName") and not spec.get("scheduleName"):
                errors.append("Either a backup or schedule must be specified as a source for the restore, but not both")
            elif spec.get("scheduleName") and not spec.get("backupName"):
                candidates = [b for b in self.ctl.objects("Backup") if L.meta(b).get("namespace") == ns
                              and L.labels(b).get("velero.io/schedule-name") == spec["scheduleName"]
                              and (b.get("status") or {}).get("phase") in ("Completed", "PartiallyFailed")]
                backup = max(candidates, key=lambda b: (b.get("status") or {}).get("startTimestamp") or "", default=None)
                if backup is None:
                    errors.append(f"No backups found for schedule {spec['scheduleName']}")
            if backup is None and not errors:
                errors.append(f"Error retrieving backup: backup.velero.io \"{spec.get('backupName')}\" not found")
            elif backup is not None and (backup.get("status") or {}).get("phase") not in ("Completed", "PartiallyFailed"):
                errors.append(f"backup {L.meta(backup)['name']} is not ready to be restored from (phase {(backup.get('status') or {}).get('phase')})")
            if errors:
                self.ctl.write_status("Restore", restore, {"phase": "FailedValidation", "validationErrors": errors})
                return None
            status = {"phase": "InProgress", "startTimestamp": format_time(now)}
            if spec.get("scheduleName") and not spec.get("backupName"):
                restore = self.ctl.patch("Restore", restore, {"spec": {"backupName": L.meta(backup)["name"]}}) or restore
            self.ctl.write_status("Restore", restore, status)
            return now + timedelta(seconds=self.backup_seconds)
        if phase != "InProgress":
            return None
        start = parse_time(prev.get("startTimestamp")) or now
        if now < start + timedelta(seconds=self.backup_seconds):
            return start + timedelta(seconds=self.backup_seconds)
        return self._run_restore(restore, now)

    def _run_restore(self, restore: dict, now: datetime) -> None:
        m = L.meta(restore)
        ns = m.get("namespace") or "velero"
        rname = m["name"]
        spec = restore.get("spec") or {}
        status = dict(restore.get("status") or {})
        backup = self.ctl.get("Backup", ns, spec.get("backupName") or "")
        bsl = self.find_bsl(ns, (backup or {}).get("spec", {}).get("storageLocation")) if backup else None
        if backup is None or bsl is None:
            status.update({"phase": "Failed", "completionTimestamp": format_time(now),
                           "failureReason": "backup or its storage location disappeared"})
            self.ctl.write_status("Restore", restore, status)
            return None
        bname = L.meta(backup)["name"]
        try:
            raw = self.get_object(bsl, f"backups/{bname}/{bname}.tar.gz")
        except Exception as exc:
            status.update({"phase": "Failed", "completionTimestamp": format_time(now),
                           "failureReason": f"error downloading backup tarball: {exc}"})
            self.ctl.write_status("Restore", restore, status)
            return None
        entries = []
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if not member.isfile() or len(parts) < 4 or parts[0] != "resources":
                    continue
                if parts[2].endswith("-preferredversion"):
                    continue
                gr = parts[1]
                if parts[2] == "namespaces" and len(parts) == 5:
                    namespace, fname = parts[3], parts[4]
                elif parts[2] == "cluster" and len(parts) == 4:
                    namespace, fname = "", parts[3]
                else:
                    continue
                data = tar.extractfile(member).read()
                entries.append((gr, namespace, fname[:-5], json.loads(data)))
        modifiers = []
        ref = spec.get("resourceModifier") or {}
        if ref:
            try:
                if (ref.get("kind") or "").lower() != "configmap":
                    raise VM.ModifierError(f"resourceModifier kind {ref.get('kind')!r} is not ConfigMap")
                modifiers = VM.load(self.ctl.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{ref.get('name')}"))
            except (VM.ModifierError, ValueError) as exc:
                status.update({"phase": "FailedValidation", "completionTimestamp": format_time(now),
                               "validationErrors": [f"resource modifier ConfigMap {ns}/{ref.get('name')}: {exc}"]})
                self.ctl.write_status("Restore", restore, status)
                return None
        resources = self.discover()
        included_ns, excluded_ns = spec.get("includedNamespaces"), spec.get("excludedNamespaces")
        included_res, excluded_res = spec.get("includedResources"), spec.get("excludedResources")
        mapping = spec.get("namespaceMapping") or {}
        policy = (spec.get("existingResourcePolicy") or "none").lower()
        selector = spec.get("labelSelector")
        errors: dict = {}
        warnings: dict = {}
        logs = []

        def note(bucket: dict, namespace: str, msg: str) -> None:
            if namespace:
                bucket.setdefault("namespaces", {}).setdefault(namespace, []).append(msg)
            else:
                bucket.setdefault("cluster", []).append(msg)

        def order(entry):
            gr = entry[0]
            return (RESTORE_PRIORITY.index(gr) if gr in RESTORE_PRIORITY else len(RESTORE_PRIORITY), gr, entry[1], entry[2])

        selected = []
        for gr, namespace, name, obj in sorted(entries, key=order):
            info = resources.get(gr)
            if gr in SKIP_RESTORE:
                continue
            source_ns = name if gr == "namespaces" else namespace
            if (namespace or gr == "namespaces") and not namespace_included(source_ns, included_ns, excluded_ns):
                continue
            if info is not None and not resource_included(info, included_res, excluded_res):
                continue
            if not L.match_selector(selector, L.labels(obj)) and gr != "namespaces":
                continue
            if L.controller_of(obj) is not None:
                logs.append(f"Skipping {gr} {namespace}/{name}: owned by a controller that recreates it")
                continue
            selected.append((gr, namespace, name, obj, info))
        restored = 0
        ensured = set()
        for gr, namespace, name, obj, info in selected:
            target_ns = mapping.get(namespace, namespace) if namespace else ""
            if info is None:
                note(errors, target_ns, f"error restoring {gr}/{name}: the server does not serve resource {gr}")
                continue
            body = self._clean(obj, target_ns, L.meta(backup)["name"], rname)
            if gr == "namespaces":
                body["metadata"]["name"] = mapping.get(name, name)
            if modifiers:
                try:
                    body, applied = VM.apply(modifiers, body, gr)
                except VM.ModifierError as exc:
                    note(errors, target_ns, f"error restoring {gr}/{name}: resource modifier: {exc}")
                    continue
                if applied:
                    logs.append(f"Applied {applied} resource modifier rule(s) to {gr} {target_ns}/{name}")
            if target_ns and target_ns not in ensured:
                self._ensure_namespace(target_ns, L.meta(backup)["name"], rname)
                ensured.add(target_ns)
            path = self.path_for(info, target_ns)
            shown = f"{target_ns}/{body['metadata']['name']}" if target_ns else body["metadata"]["name"]
            try:
                self.ctl.kube.create(path, body)
                restored += 1
                logs.append(f"Restored {gr} {shown}")
            except KubeError as exc:
                if exc.status != 409:
                    note(errors, target_ns, f"error restoring {gr}/{shown}: {exc.api_message}")
                    continue
                existing = self.ctl.kube.get(self.path_for(info, target_ns, body["metadata"]["name"]))
                if existing is None:
                    note(errors, target_ns, f"error restoring {gr}/{shown}: {exc.api_message}")
                    continue
                if self._same_content(existing, body):
                    restored += 1
                    continue
                if policy == "update":
                    merged = copy.deepcopy(existing)
                    for key, value in body.items():
                        if key not in ("metadata", "status", "apiVersion", "kind"):
                            merged[key] = value
                    merged["metadata"]["labels"] = {**(L.labels(existing)), **(body["metadata"].get("labels") or {})}
                    if body["metadata"].get("annotations"):
                        merged["metadata"]["annotations"] = {**L.annotations(existing), **body["metadata"]["annotations"]}
                    try:
                        self.ctl.kube.replace(self.path_for(info, target_ns, body["metadata"]["name"]), merged)
                        restored += 1
                        logs.append(f"Updated existing {gr} {shown}")
                    except KubeError as uexc:
                        note(warnings, target_ns, f"could not restore, {info['kind']} \"{body['metadata']['name']}\" already exists "
                                                  f"and could not be updated: {uexc.api_message}")
                else:
                    note(warnings, target_ns, f"could not restore, {info['kind']} \"{body['metadata']['name']}\" already exists. "
                                              "Warning: the in-cluster version is different than the backed-up version")
        error_count = sum(len(v) for v in errors.get("namespaces", {}).values()) + len(errors.get("cluster", []))
        warn_count = sum(len(v) for v in warnings.get("namespaces", {}).values()) + len(warnings.get("cluster", []))
        status.update({"phase": "PartiallyFailed" if error_count else "Completed", "completionTimestamp": format_time(now),
                       "progress": {"totalItems": len(selected), "itemsRestored": restored}})
        if error_count:
            status["errors"] = error_count
        if warn_count:
            status["warnings"] = warn_count
        try:
            self.put(bsl, f"restores/{rname}/restore-{rname}-results.gz", _gz(json.dumps({"errors": errors, "warnings": warnings}).encode()))
            self.put(bsl, f"restores/{rname}/restore-{rname}-logs.gz", _gz("\n".join(logs).encode() + b"\n"))
        except Exception as exc:
            self.ctl._note_error(f"upload restore results {rname}", exc)
        self.ctl.write_status("Restore", restore, status)
        return None

    def _ensure_namespace(self, name: str, backup: str, restore: str) -> None:
        if self.ctl.kube.get(f"/api/v1/namespaces/{name}") is None:
            try:
                self.ctl.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": name, "labels": {"velero.io/backup-name": backup, "velero.io/restore-name": restore}}})
            except KubeError as exc:
                if exc.status != 409:
                    raise

    @staticmethod
    def _clean(obj: dict, namespace: str, backup: str, restore: str) -> dict:
        body = copy.deepcopy(obj)
        md = body.setdefault("metadata", {})
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"):
            md.pop(key, None)
        if namespace:
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        md["labels"] = {**(md.get("labels") or {}), "velero.io/backup-name": backup, "velero.io/restore-name": restore}
        body.pop("status", None)
        if body.get("kind") == "Service":
            spec = body.get("spec") or {}
            if spec.get("clusterIP") not in (None, "None"):
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
        return body

    @staticmethod
    def _same_content(existing: dict, wanted: dict) -> bool:
        for key, value in wanted.items():
            if key in ("metadata", "status", "apiVersion", "kind"):
                continue
            if existing.get(key) != value:
                return False
        return True

    # -- Schedule ------------------------------------------------------------------------------
    def reconcile_schedule(self, schedule: dict) -> datetime | None:
        now = self.ctl.clock.now()
        m = L.meta(schedule)
        spec = schedule.get("spec") or {}
        prev = schedule.get("status") or {}
        try:
            cron = parse_cron(spec.get("schedule", ""))
        except CronError as exc:
            status = {"phase": "FailedValidation", "validationErrors": [f"invalid schedule: {exc}"]}
            if L.differs(status, prev):
                self.ctl.write_status("Schedule", schedule, status)
            return None
        status = {"phase": "Enabled"}
        if prev.get("lastBackup"):
            status["lastBackup"] = prev["lastBackup"]
        if prev.get("lastSkipped"):
            status["lastSkipped"] = prev["lastSkipped"]
        due = None
        if not spec.get("paused"):
            last_backup = parse_time(prev.get("lastBackup"))
            if last_backup is None:
                first = self.ctl.first_seen.setdefault(m.get("uid") or m["name"], now)
                if spec.get("skipImmediately"):
                    when, _ = cron.last_due(first, now)
                else:
                    when = now
            else:
                when, _ = cron.last_due(last_backup, now)
            if when is not None:
                self._create_scheduled_backup(schedule, when)
                status["lastBackup"] = format_time(when)
            base = parse_time(status.get("lastBackup")) or self.ctl.first_seen.get(m.get("uid") or m["name"], now)
            due = cron.next_after(max(base, now))
        if L.differs(status, prev):
            self.ctl.write_status("Schedule", schedule, status)
        return due

    def _create_scheduled_backup(self, schedule: dict, when: datetime) -> None:
        m = L.meta(schedule)
        spec = schedule.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.pop("metadata", None) or {}
        labels = {**(tmeta.get("labels") or {}), "velero.io/schedule-name": m["name"]}
        name = f"{m['name']}-{when.strftime('%Y%m%d%H%M%S')}"
        body = {"apiVersion": "velero.io/v1", "kind": "Backup",
                "metadata": {"name": name, "namespace": m.get("namespace"), "labels": labels,
                             "annotations": {**(tmeta.get("annotations") or {}), "velero.io/source-cluster-k8s-gitversion": "v1.31.4"}},
                "spec": template}
        inherited = L.annotations(schedule).get(L.FAULTS_ANNOTATION)
        if inherited:
            # backup faults on a Schedule apply to the backups it creates
            body["metadata"]["annotations"][L.FAULTS_ANNOTATION] = inherited
        if spec.get("useOwnerReferencesInBackup"):
            body["metadata"]["ownerReferences"] = [L.owner_ref(schedule, "Schedule", "velero.io/v1")]
        self.ctl.create("Backup", m.get("namespace"), body)

    # -- DeleteBackupRequest -------------------------------------------------------------------
    def reconcile_deletebackuprequest(self, dbr: dict) -> datetime | None:
        m = L.meta(dbr)
        ns = m.get("namespace") or "velero"
        spec = dbr.get("spec") or {}
        prev = dbr.get("status") or {}
        if prev.get("phase") == "Processed":
            return None
        name = spec.get("backupName") or ""
        if L.labels(dbr).get("velero.io/backup-name") != name:
            dbr = self.ctl.patch("DeleteBackupRequest", dbr, {"metadata": {"labels": {"velero.io/backup-name": name}}}) or dbr
        backup = self.ctl.get("Backup", ns, name)
        errors = []
        if backup is None:
            errors.append(f'backup "{name}" not found')
        else:
            bsl = self.find_bsl(ns, (backup.get("spec") or {}).get("storageLocation"))
            if bsl is not None:
                try:
                    self.delete_prefix(bsl, f"backups/{name}/")
                    for restore in self.ctl.objects("Restore"):
                        if L.meta(restore).get("namespace") == ns and (restore.get("spec") or {}).get("backupName") == name:
                            self.delete_prefix(bsl, f"restores/{L.meta(restore)['name']}/")
                            self.ctl.delete("Restore", restore)
                except Exception as exc:
                    errors.append(f"error deleting backup data from object storage: {exc}")
            if not errors:
                self.ctl.delete("Backup", backup)
        status = {"phase": "Processed"}
        if errors:
            status["errors"] = errors
        self.ctl.write_status("DeleteBackupRequest", dbr, status)
        return None

    # -- setup ---------------------------------------------------------------------------------
    def ensure_default_location(self, namespace: str = "velero") -> dict | None:
        """Namespace ``velero``, Secret ``cloud-credentials`` and BackupStorageLocation ``default`` for the lab bucket."""
        if not self.ctl.served.get("BackupStorageLocation") or not self.s3.get("bucket"):
            return None
        self._ensure_namespace_plain(namespace)
        kube = self.ctl.kube
        secret_path = f"/api/v1/namespaces/{namespace}/secrets"
        if kube.get(f"{secret_path}/cloud-credentials") is None:
            ini = (f"[default]\naws_access_key_id={self.s3.get('access_key', '')}\n"
                   f"aws_secret_access_key={self.s3.get('secret_key', '')}\n")
            try:
                kube.create(secret_path, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                          "metadata": {"name": "cloud-credentials", "namespace": namespace},
                                          "stringData": {"cloud": ini}})
            except KubeError as exc:
                if exc.status != 409:
                    self.ctl._note_error("create Secret velero/cloud-credentials", exc)
        existing = self.ctl.get("BackupStorageLocation", namespace, "default")
        if existing is not None:
            return existing
        body = {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
                "metadata": {"name": "default", "namespace": namespace},
                "spec": {"provider": "aws", "default": True, "accessMode": "ReadWrite",
                         "objectStorage": {"bucket": self.s3["bucket"], **({"prefix": self.s3["prefix"]} if self.s3.get("prefix") else {})},
                         "credential": {"name": "cloud-credentials", "key": "cloud"},
                         "config": {"region": self.s3.get("region", "us-east-1"), "s3Url": self.s3.get("endpoint_url", ""),
                                    "s3ForcePathStyle": "true"}}}
        return self.ctl.create("BackupStorageLocation", namespace, body)

    def _ensure_namespace_plain(self, name: str) -> None:
        if self.ctl.kube.get(f"/api/v1/namespaces/{name}") is None:
            try:
                self.ctl.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            except KubeError as exc:
                if exc.status != 409:
                    raise
