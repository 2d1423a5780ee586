"""Backup verification benchmark: time to verify a Velero backup of 1,000 objects, the bucket checks and the restore
test measured separately, each next to a naive baseline measured in the same run against the same lab.

1. S3 checks: ``backup_verify.verify_backup`` (velero-backup.json, tarball head/size/read/contents, item count,
   expected namespaces and resources, resource list) against a naive check with boto3: download the tarball,
   list every member and parse every JSON file.
2. Restore test: ``backup_verify.run_restore_test`` (Restore into a scratch namespace, wait, compare, clean up), with
   its comparison step timed on its own: one paginated list per kind (what the module does) against kubectl-style
   per-object GETs (``kubectl get <kind> <name>`` for every restored object).

The objects: one namespace with 1,000 objects (BENCH_VELERO_OBJECTS): Deployments, Services and ConfigMaps.
The lab's API emulator, controllers (Velero) and moto S3 run as their own processes; the verification runs
in-process through the collection's module_utils (what the module calls), so ansible-playbook start-up is not in
the figures. Run: ``python -m bench velero`` (LAB_DIR=<running lab> to reuse one). Prints figures; no pass/fail.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "build" / "collections"))

from ansible_collections.machinenativeops.platform.plugins.module_utils import backup_verify as bv
from ansible_collections.machinenativeops.platform.plugins.module_utils import velero as V
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import get_kube_client
from kubernetes import client, config

from lab.controllers.testing import private_lab
from lab.s3 import s3_client

SERVICES = {"s3", "apiserver", "controllers"}
REPEAT = 3


def populate(api: client.ApiClient, ns: str, objects: int) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    deployments = max(1, objects // 20)
    services = deployments
    for i in range(deployments):
        labels = {"app": f"web{i}"}
        apps.create_namespaced_deployment(ns, {"metadata": {"name": f"web{i}", "labels": labels}, "spec": {
            "replicas": 0, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
        core.create_namespaced_service(ns, {"metadata": {"name": f"web{i}"}, "spec": {"selector": labels, "ports": [{"port": 80}]}})
    for i in range(objects - deployments - services):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"config{i}"}, "data": {"key": "x" * 200, "i": str(i)}})


def make_backup(api: client.ApiClient, ns: str) -> str:
    custom = client.CustomObjectsApi(api)
    name = f"{ns}-bench"
    custom.create_namespaced_custom_object("velero.io", "v1", "velero", "backups", {
        "apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": name}, "spec": {"includedNamespaces": [ns]}})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        phase = (custom.get_namespaced_custom_object("velero.io", "v1", "velero", "backups", name).get("status") or {}).get("phase")
        if phase in V.BACKUP_TERMINAL_PHASES:
            if phase != "Completed":
                raise RuntimeError(f"backup {name} is {phase}")
            return name
        time.sleep(0.5)
    raise RuntimeError(f"backup {name} did not finish")


def naive_s3(endpoints: dict, name: str) -> int:
    """What a shell script does: download the tarball, list it, parse every JSON member."""
    s3 = s3_client(endpoints["s3"])
    prefix = (endpoints["s3"].get("prefix") or "").strip("/")
    key = f"{prefix + '/' if prefix else ''}backups/{name}/{name}.tar.gz"
    data = s3.get_object(Bucket=endpoints["s3"]["bucket"], Key=key)["Body"].read()
    parsed = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                json.loads(tar.extractfile(member).read())
                parsed += 1
    meta = s3.get_object(Bucket=endpoints["s3"]["bucket"], Key=f"{prefix + '/' if prefix else ''}backups/{name}/velero-backup.json")
    json.loads(meta["Body"].read())
    return parsed


def timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    return time.perf_counter() - t0, out


def compare_by_lists(kube, expected: dict) -> dict:
    actual = {}
    for key, names in expected.items():
        api_version, kind, resource, target = key
        if resource == "namespaces":
            actual[key] = {n for n in names if kube.get("v1", "Namespace", n) is not None}
            continue
        actual[key] = {(o.get("metadata") or {}).get("name") for o in kube.list(api_version, kind, namespace=target)}
    return actual


def compare_by_gets(kube, expected: dict) -> dict:
    actual = {}
    for key, names in expected.items():
        api_version, kind, resource, target = key
        found = set()
        for name in names:
            obj = kube.get("v1", "Namespace", name) if resource == "namespaces" else kube.get(api_version, kind, name, target)
            if obj is not None:
                found.add(name)
        actual[key] = found
    return actual


def _run(endpoints: dict) -> int:
    objects = int(os.environ.get("BENCH_VELERO_OBJECTS", "1000"))
    api = config.new_client_from_config(config_file=endpoints["apiserver"]["kubeconfig"], context="lab")
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        t_pop, _ = timed(populate, api, ns, objects)
        t_backup, name = timed(make_backup, api, ns)
        print(f"setup: {objects} objects in {ns} created in {t_pop:.1f} s, Velero backup {name} in {t_backup:.1f} s")
        kube = get_kube_client({"kubeconfig": endpoints["apiserver"]["kubeconfig"], "context": "lab"})
        bsl = kube.get(V.API_VERSION, "BackupStorageLocation", "default", "velero")
        params = {"s3_endpoint_url": endpoints["s3"]["endpoint_url"], "s3_region": endpoints["s3"]["region"],
                  "s3_access_key": endpoints["s3"]["access_key"], "s3_secret_key": endpoints["s3"]["secret_key"]}

        # 1. S3 checks
        module_s3, naive = [], []
        report = None
        for _ in range(REPEAT):
            store = bv.S3Store.from_params(params, bsl)
            seconds, report = timed(bv.verify_backup, store, name, expected_namespaces=[ns],
                                    expected_resources=["deployments.apps", "services", "configmaps"], min_size=512,
                                    cluster_phase="Completed", keep_contents=True)
            module_s3.append(seconds)
            seconds, parsed = timed(naive_s3, endpoints, name)
            naive.append(seconds)
        assert report["passed"], report["failed_checks"]
        m, n = statistics.median(module_s3), statistics.median(naive)
        print(f"S3 checks ({len(report['checks'])} checks, {report['items']} items, {report['tarball_size']} bytes, "
              f"{report['s3_requests']} requests): {m * 1000:.0f} ms median of {REPEAT}")
        print(f"  baseline boto3 download + full tar listing + JSON parse of {parsed} members: {n * 1000:.0f} ms; "
              f"ratio verify/baseline {m / n:.2f}")

        # 2. restore test, comparison step measured against per-object GETs
        items = report["contents"]["items"]
        tag = "vt-bench"
        t_restore, rt = timed(bv.run_restore_test, kube, name, "velero", [ns], items, tag, timeout=600, poll_interval=0.2,
                              cleanup=False)
        assert rt["passed"], [c for c in rt["checks"] if not c["passed"]]
        expected, _ = bv.restore_expectations(items, rt["namespace_mapping"])
        t_lists, by_lists = timed(compare_by_lists, kube, expected)
        t_gets, by_gets = timed(compare_by_gets, kube, expected)
        assert {k: v & expected[k] for k, v in by_lists.items()} == by_gets
        compared = sum(len(v) for v in expected.values())
        t_clean, cleaned = timed(bv.cleanup_namespaces, kube, list(rt["namespace_mapping"].values()), 300, 0.2)
        print(f"restore test: restore + wait + compare {t_restore:.2f} s ({rt['restored_objects']} of {rt['source_objects']} "
              f"objects restored, {rt['restore']['duration_seconds']} s in Velero), cleanup {t_clean:.2f} s "
              f"(remaining {cleaned['remaining']}); total {t_restore + t_clean:.2f} s")
        print(f"  comparison of {compared} objects: one list per kind {t_lists * 1000:.0f} ms, "
              f"per-object GETs (kubectl-style) {t_gets * 1000:.0f} ms; ratio {t_gets / t_lists:.1f}x")
        print(f"verify of a {objects}-object backup: S3 checks {m:.2f} s + restore test {t_restore + t_clean:.2f} s")
        print(json.dumps({"velero_verify": {"objects": objects, "s3_checks_s": round(m, 4), "s3_baseline_s": round(n, 4),
                                            "restore_test_s": round(t_restore, 3), "cleanup_s": round(t_clean, 3),
                                            "compare_lists_s": round(t_lists, 4), "compare_gets_s": round(t_gets, 4)}}, sort_keys=True))
    finally:
        for leftover in (ns, f"{ns}-vt-bench"):
            try:
                client.CoreV1Api(api).delete_namespace(leftover)
            except client.exceptions.ApiException:
                pass
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-velero-lab-") as tmp, private_lab(Path(tmp), SERVICES) as endpoints:
        return _run(endpoints)


if __name__ == "__main__":
    sys.exit(main())
