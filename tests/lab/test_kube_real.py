"""The lab on a real control plane (LAB_KUBE=real): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler built from their Go modules, and KWOK as the simulated kubelets.

These tests check behaviour the Python emulator never had: RBAC decisions, CRD schema validation and
pruning, the real scheduler and controllers. They start one private lab (apiserver + s3 + controllers).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lab import orchestrator
from lab.controllers.testing import private_real_lab
from lab.kube import build

pytestmark = [pytest.mark.lab, pytest.mark.real_kube]


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory):
    with private_real_lab(tmp_path_factory.mktemp("real-lab")) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def api(real_lab):
    return config.new_client_from_config(config_file=real_lab["apiserver"]["kubeconfig"], context="lab")


@pytest.fixture(scope="module")
def readonly(real_lab):
    return config.new_client_from_config(config_file=real_lab["apiserver"]["kubeconfig"], context="lab-readonly")


@pytest.fixture
def ns(api):
    name = "t-" + uuid.uuid4().hex[:8]
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    _wait(lambda: _default_sa(api, name), 30, f"default ServiceAccount in {name}")
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def _default_sa(api, namespace):
    try:
        return client.CoreV1Api(api).read_namespaced_service_account("default", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _kubectl(real_lab, *args, context="lab"):
    kubectl = Path(build.installed()["dir"]) / "bin" / "kubectl"
    return subprocess.run([str(kubectl), "--kubeconfig", real_lab["apiserver"]["kubeconfig"], "--context", context, *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_version_namespaces_and_nodes(real_lab, api):
    info = client.VersionApi(api).get_code()
    assert info.git_version == build.K8S_VERSION and info.major == "1"
    core = client.CoreV1Api(api)
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    # Every namespace got its default ServiceAccount from the real serviceaccount controller before `up` returned.
    have = {sa.metadata.namespace for sa in core.list_service_account_for_all_namespaces(field_selector="metadata.name=default").items}
    assert names <= have

    def ready_nodes():
        nodes = core.list_node().items
        ready = [n.metadata.name for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
        return sorted(ready) if len(ready) == len(real_lab["apiserver"]["nodes"]) else None

    assert _wait(ready_nodes, 30, "KWOK nodes Ready") == sorted(real_lab["apiserver"]["nodes"])
    leases = client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
    assert {lease.metadata.name for lease in leases} >= set(real_lab["apiserver"]["nodes"])


def test_readonly_identity_is_limited_by_rbac(real_lab, readonly, ns):
    core = client.CoreV1Api(readonly)
    assert core.list_namespaced_pod(ns).items == []  # view allows reading pods
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "nope"}})
    assert denied.value.status == 403
    status = json.loads(denied.value.body)
    assert status["reason"] == "Forbidden" and 'User "lab-viewer" cannot create resource "configmaps"' in status["message"]
    # The built-in view role does not include Secrets: a real cluster's least privilege, which the emulator never had.
    with pytest.raises(ApiException) as secret:
        core.list_namespaced_secret(ns)
    assert secret.value.status == 403


def test_kubectl_auth_can_i_answers_from_rbac(real_lab):
    assert _kubectl(real_lab, "auth", "can-i", "list", "pods", context="lab-readonly").stdout.strip() == "yes"
    denied = _kubectl(real_lab, "auth", "can-i", "create", "deployments", context="lab-readonly")
    assert denied.returncode == 1 and denied.stdout.strip() == "no"
    assert _kubectl(real_lab, "auth", "can-i", "get", "secrets", "-A", context="lab-readonly").stdout.strip() == "no"
    assert _kubectl(real_lab, "auth", "can-i", "create", "deployments").stdout.strip() == "yes"


def test_crd_schema_rejects_and_prunes(real_lab, api, ns):
    custom = client.CustomObjectsApi(api)
    backup = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "typed", "namespace": "velero"},
              "spec": {"includedNamespaces": [ns], "ttl": 3600}}
    with pytest.raises(ApiException) as wrong_type:
        custom.create_namespaced_custom_object("velero.io", "v1", "velero", "backups", backup)
    assert wrong_type.value.status == 422 and "spec.ttl" in wrong_type.value.body
    # A field the schema does not know is pruned (not stored), as in a real cluster ...
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web"},
          "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web", "subset": "stable"}, "weight": 100}]}],
                   "canaryWeight": 10}}
    created = custom.create_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", vs)
    assert "canaryWeight" not in created["spec"] and created["spec"]["http"][0]["route"][0]["weight"] == 100
    # ... and rejected with fieldValidation=Strict, which kubectl apply and kubernetes.core can ask for.
    vs["metadata"]["name"] = "strict"
    with pytest.raises(ApiException) as strict:
        custom.create_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", vs, field_validation="Strict")
    message = json.loads(strict.value.body)["message"]
    assert strict.value.status == 400 and 'strict decoding error: unknown field "spec.canaryWeight"' in message


def test_upstream_crds_storage_versions_and_subresources(api):
    crds = {c.metadata.name: c for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert {"backups.velero.io", "virtualservices.networking.istio.io", "prometheusrules.monitoring.coreos.com",
            "certificates.cert-manager.io", "kustomizations.kustomize.toolkit.fluxcd.io", "applications.argoproj.io",
            "helmreleases.helm.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"} <= set(crds)

    def storage(name):
        return next(v.name for v in crds[name].spec.versions if v.storage)

    assert storage("virtualservices.networking.istio.io") == "v1"
    bsl = next(v for v in crds["backupstoragelocations.velero.io"].spec.versions if v.storage)
    assert bsl.subresources is None or bsl.subresources.status is None
    for crd in crds.values():  # structural schemas, never a top-level "keep everything"
        for version in crd.spec.versions:
            assert not version.schema.open_apiv3_schema.x_kubernetes_preserve_unknown_fields, crd.metadata.name


def test_deployment_is_scheduled_and_becomes_available(api, ns):
    apps = client.AppsV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    })
    _wait(lambda: (apps.read_namespaced_deployment_status("web", ns).status.available_replicas or 0) == 3, 60, "3 available replicas")
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 3
    for pod in pods:
        assert pod.spec.node_name.startswith("lab-node-") and pod.status.phase == "Running"
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert all(s.ready for s in pod.status.container_statuses)
    # A rollout is done by the real deployment controller: a new ReplicaSet with revision 2.
    apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
    _wait(lambda: apps.read_namespaced_deployment("web", ns).metadata.annotations.get("deployment.kubernetes.io/revision") == "2"
          and (apps.read_namespaced_deployment_status("web", ns).status.updated_replicas or 0) == 3
          and (apps.read_namespaced_deployment_status("web", ns).status.available_replicas or 0) == 3, 90, "rollout to revision 2")
    assert len(apps.list_namespaced_replica_set(ns, label_selector="app=web").items) == 2


def test_unschedulable_pod_comes_from_the_real_scheduler(api, ns):
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, {"metadata": {"name": "nowhere"},
                                    "spec": {"nodeSelector": {"disk": "nvme"}, "containers": [{"name": "c", "image": "busybox"}]}})

    def unschedulable():
        pod = core.read_namespaced_pod("nowhere", ns)
        return [c for c in pod.status.conditions or [] if c.type == "PodScheduled" and c.reason == "Unschedulable"]

    condition = _wait(unschedulable, 30, "PodScheduled=False Unschedulable")[0]
    assert condition.status == "False" and "node(s) didn't match Pod's node affinity/selector" in condition.message


def test_namespace_deletion_is_done_by_the_namespace_controller(api):
    core = client.CoreV1Api(api)
    name = "gone-" + uuid.uuid4().hex[:6]
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    core.delete_namespace(name)

    def deleted():
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    _wait(deleted, 60, f"namespace {name} removed")


def test_down_leaves_no_process_and_up_again_starts_an_empty_cluster(tmp_path):
    lab_dir = tmp_path / "lab"
    pid_dir = lab_dir / "pids"
    for run in (1, 2):  # the second up in the same directory: a new, empty cluster (like the emulator's)
        endpoints = orchestrator.up(lab_dir, only={"apiserver"}, kube="real")
        pids = [int(p.read_text()) for p in pid_dir.glob("*.pid")]
        assert {p.stem for p in pid_dir.glob("*.pid")} == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        assert endpoints["apiserver"]["timings"]["ready"] > 0
        api = config.new_client_from_config(config_file=endpoints["apiserver"]["kubeconfig"], context="lab")
        names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
        assert "left-from-run-1" not in names
        if run == 1:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": "left-from-run-1"}})
        orchestrator.down(lab_dir)
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
