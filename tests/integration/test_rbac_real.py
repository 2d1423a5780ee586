"""The collection's least-privilege ClusterRoles (roles/rbac) on the real control plane (LAB_KUBE=real): the role applied
by ansible-playbook (check mode, real run, second run), each ClusterRole bound to a ServiceAccount, and the modules run
by the `ansible` CLI with that ServiceAccount's token. The real kube-apiserver's RBAC decides every request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from lab.controllers.testing import private_real_lab
from lab.kube import build
from lab.servers.testing import create_if_absent

pytestmark = [pytest.mark.lab, pytest.mark.real_kube]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFIX = "machinenativeops-platform"
ROLES = ["health-reader", "canary-operator", "backup-operator", "dr-operator"]
APP_NS = "shop"
SA_NS = "platform-ci"
ISTIO = ("networking.istio.io", "v1")


def _env() -> dict:
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    for name in ("LAB_DIR", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "PROMETHEUS_URL"):
        env.pop(name, None)
    return env


def _results(stdout: str) -> list[dict]:
    """The per-task results of localhost from the json callback's output."""
    data = json.loads(stdout[stdout.index("{"):])
    return [task["hosts"]["localhost"] for play in data["plays"] for task in play["tasks"] if "localhost" in task["hosts"]]


def module(name: str, args: dict, kubeconfig: str, check: bool = False) -> dict:
    """Run machinenativeops.platform.<name> once with the `ansible` CLI; the module's result."""
    cmd = [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", f"machinenativeops.platform.{name}",
           "-a", json.dumps({"kubeconfig": kubeconfig, **args})]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    (result,) = _results(proc.stdout)
    return result


def rbac_playbook(kubeconfig: str, extra: dict, check: bool = False) -> tuple[dict, list[dict]]:
    """playbooks/rbac.yml through ansible-playbook; (stats of localhost, task results)."""
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(ROOT / "playbooks" / "rbac.yml"),
           "-e", json.dumps({"k8s_kubeconfig": kubeconfig, "k8s_context": "lab", **extra})]
    if check:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    return data["stats"]["localhost"], _results(proc.stdout)


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory):
    with private_real_lab(tmp_path_factory.mktemp("rbac-lab")) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def admin_kubeconfig(real_lab) -> str:
    return real_lab["apiserver"]["kubeconfig"]


@pytest.fixture(scope="module")
def api(admin_kubeconfig):
    return config.new_client_from_config(config_file=admin_kubeconfig, context="lab")


def _sa_kubeconfig(api, admin_kubeconfig: str, name: str, out: Path) -> str:
    """A kubeconfig for ServiceAccount platform-ci/<name>: the lab's server and CA, a token from the TokenRequest API."""
    core = client.CoreV1Api(api)
    token = core.create_namespaced_service_account_token(name, SA_NS, {"spec": {"expirationSeconds": 3600}}).status.token
    lab = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c for c in lab["contexts"] if c["name"] == "lab")["context"]
    cluster = next(c for c in lab["clusters"] if c["name"] == context["cluster"])
    path = out / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name, "clusters": [cluster],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}]}))
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def cluster(api):
    """The namespaces, ServiceAccounts and the canary's Deployments, VirtualService and DestinationRule."""
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    for ns in (SA_NS, APP_NS):
        create_if_absent(core.create_namespace, {"metadata": {"name": ns}})
    for sa in ("health", "canary", "backup", "nobody"):
        create_if_absent(core.create_namespaced_service_account, SA_NS, {"metadata": {"name": sa}})
    for track in ("stable", "canary"):
        labels = {"app": "reviews", "track": track}
        create_if_absent(apps.create_namespaced_deployment, APP_NS, {
            "metadata": {"name": "reviews" if track == "stable" else "reviews-canary", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "reviews:1"}]}}}})
    create_if_absent(custom.create_namespaced_custom_object, *ISTIO, APP_NS, "destinationrules", {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "subsets": [{"name": "stable", "labels": {"track": "stable"}},
                                                {"name": "canary", "labels": {"track": "canary"}}]}})
    create_if_absent(custom.create_namespaced_custom_object, *ISTIO, APP_NS, "virtualservices", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "reviews", "subset": "canary"}, "weight": 0}]}]}})
    return api


def _sa(name):
    return [{"kind": "ServiceAccount", "name": name, "namespace": SA_NS}]


BINDINGS = [
    {"name": "ci-health", "role": "health-reader", "subjects": _sa("health")},
    {"name": "ci-canary", "role": "canary-operator", "subjects": _sa("canary"), "namespaces": [APP_NS]},
    {"name": "ci-backup", "role": "backup-operator", "subjects": _sa("backup"), "namespaces": ["velero"]},
]


@pytest.fixture(scope="module")
def installed(cluster, admin_kubeconfig):
    """playbooks/rbac.yml in check mode, for real, and again: (stats, results) of each run."""
    runs = [rbac_playbook(admin_kubeconfig, {"rbac_bindings": BINDINGS}, check=True),
            rbac_playbook(admin_kubeconfig, {"rbac_bindings": BINDINGS}),
            rbac_playbook(admin_kubeconfig, {"rbac_bindings": BINDINGS})]
    return runs


@pytest.fixture(scope="module")
def identities(installed, api, admin_kubeconfig, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("identities")
    return {name: _sa_kubeconfig(api, admin_kubeconfig, name, out) for name in ("health", "canary", "backup", "nobody")}


CANARY = {"namespace": APP_NS, "virtual_service": "reviews", "stable": {"host": "reviews", "subset": "stable"},
          "canary": {"host": "reviews", "subset": "canary"}, "canary_workload": "reviews-canary", "stable_workload": "reviews",
          "revision": "v2"}


def test_role_check_mode_predicts_the_real_run_and_a_second_run_changes_nothing(installed, api):
    (check_stats, check_results), real, again = installed
    real_stats, again_stats = real[0], again[0]
    assert check_stats["failures"] == real_stats["failures"] == again_stats["failures"] == 0
    assert check_stats["changed"] == real_stats["changed"] > 0
    assert again_stats["changed"] == 0
    # check mode showed the ClusterRoles it would create
    applied = next(r for r in check_results if [item.get("item") for item in r.get("results") or []] == ROLES)
    assert all(item["changed"] and item["result"]["kind"] == "ClusterRole" for item in applied["results"])
    rbac = client.RbacAuthorizationV1Api(api)
    names = {r.metadata.name for r in rbac.list_cluster_role(label_selector="app.kubernetes.io/managed-by=machinenativeops.platform").items}
    assert names == {f"{PREFIX}:{role}" for role in ROLES}
    binding = rbac.read_namespaced_role_binding(f"{PREFIX}:canary-operator:ci-canary", APP_NS)
    assert binding.role_ref.name == f"{PREFIX}:canary-operator" and binding.subjects[0].name == "canary"
    assert rbac.read_cluster_role_binding(f"{PREFIX}:health-reader:ci-health").subjects[0].namespace == SA_NS


def test_role_refuses_an_unknown_role_and_changes_nothing(installed, admin_kubeconfig, api):
    stats, results = rbac_playbook(admin_kubeconfig, {"rbac_bindings": [{"name": "x", "role": "cluster-admin", "subjects": _sa("nobody")}]})
    assert stats["failures"] == 1 and stats["changed"] == 0
    assert "rbac_roles may only name" in results[-1]["msg"]
    assert not client.RbacAuthorizationV1Api(api).list_cluster_role_binding(field_selector=f"metadata.name={PREFIX}:cluster-admin:x").items


def test_view_identity_reports_unknown_with_the_missing_permissions(cluster, admin_kubeconfig):
    """The built-in `view` ClusterRole (context lab-readonly) may not list Nodes or Velero objects: those checks are unknown
    (reason Forbidden, the permission named), not critical, and the status reflects only what could be checked."""
    result = module("health_check", {"context": "lab-readonly", "checks": ["workloads", "nodes", "backups"]}, admin_kubeconfig)
    assert not result.get("failed"), result.get("msg")
    forbidden = [f for f in result["findings"] if f["severity"] == "unknown"]
    assert {(f["check"], f["reason"]) for f in forbidden} == {("nodes", "Forbidden"), ("backups", "Forbidden")}
    nodes = next(f for f in forbidden if f["check"] == "nodes")
    assert nodes["permission"] == {"verb": "list", "group": "", "resource": "nodes", "namespace": None}
    assert "may not list nodes (cluster-wide)" in nodes["message"] and "cannot list resource" in nodes["message"]
    assert {"verb": "list", "group": "velero.io", "resource": "backups", "namespace": None} in result["missing_permissions"]
    assert result["status"] != "critical" and not [f for f in result["findings"] if f["reason"] == "CheckError"]
    assert result["missing_permissions"] == [{"verb": "list", "group": "", "resource": "nodes", "namespace": None},
                                             {"verb": "list", "group": "velero.io", "resource": "backups", "namespace": None},
                                             {"verb": "list", "group": "velero.io", "resource": "backupstoragelocations", "namespace": None}]
    assert result["summary"]["checks"]["nodes"]["unknown"] == 1 and result["summary"]["totals"]["unknown"] == 3
    assert result["summary"]["checks"]["workloads"]["unknown"] == 0   # view may list Deployments, StatefulSets, DaemonSets


def test_health_reader_runs_every_kubernetes_check(identities):
    result = module("health_check", {"checks": ["workloads", "pods", "nodes", "storage", "jobs", "certificates", "gitops", "backups", "mesh"],
                                     "fail_on": "never"}, identities["health"])
    assert not result.get("failed"), result.get("msg")
    assert result["missing_permissions"] == [] and result["summary"]["totals"]["unknown"] == 0
    assert result["summary"]["checks"]["nodes"]["ok"] >= 1


def test_health_reader_may_not_shift_traffic(identities, api):
    result = module("canary_step", {**CANARY, "action": "set_weight", "weight": 20}, identities["health"])
    assert result.get("failed") and result.get("api_status") == 403
    assert 'User "system:serviceaccount:platform-ci:health" cannot' in result["msg"]
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(*ISTIO, APP_NS, "virtualservices", "reviews")
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [100, 0]


def test_canary_operator_shifts_and_rolls_back_in_its_namespace_only(identities, api):
    kubeconfig = identities["canary"]
    predicted = module("canary_step", {**CANARY, "action": "set_weight", "weight": 20}, kubeconfig, check=True)
    shifted = module("canary_step", {**CANARY, "action": "set_weight", "weight": 20}, kubeconfig)
    again = module("canary_step", {**CANARY, "action": "set_weight", "weight": 20}, kubeconfig)
    rolled_back = module("canary_step", {**CANARY, "action": "rollback"}, kubeconfig)
    for result in (predicted, shifted, again, rolled_back):
        assert not result.get("failed"), result.get("msg")
    assert predicted["changed"] and shifted["changed"] and predicted["weights_after"] == shifted["weights_after"] == {"stable": 80, "canary": 20}
    assert not again["changed"]
    assert rolled_back["changed"] and rolled_back["weights_after"] == {"stable": 100, "canary": 0}
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(*ISTIO, APP_NS, "virtualservices", "reviews")
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [100, 0]
    elsewhere = module("canary_step", {**CANARY, "namespace": "default", "action": "status"}, kubeconfig)
    assert elsewhere.get("failed") and elsewhere.get("api_status") == 403


def _completed_backup(api, schedule: str, timeout: float = 90) -> str:
    """The Backup the lab's simulated Velero takes when a Schedule is created, once Completed."""
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object("velero.io", "v1", "velero", "backups",
                                                     label_selector=f"velero.io/schedule-name={schedule}")["items"]
        done = [b["metadata"]["name"] for b in items if (b.get("status") or {}).get("phase") == "Completed"]
        if done:
            return done[0]
        time.sleep(0.5)
    raise AssertionError(f"the simulated Velero took no Completed backup for Schedule velero/{schedule} within {timeout}s")


def test_backup_operator_schedules_and_lists_but_may_not_restore(identities, api):
    kubeconfig = identities["backup"]
    name = f"ci-{uuid.uuid4().hex[:6]}"
    schedule = {"action": "schedule", "name": name, "schedule": "0 3 * * *", "included_namespaces": [APP_NS], "ttl": "72h"}
    created = module("velero_backup", schedule, kubeconfig)
    again = module("velero_backup", schedule, kubeconfig)
    backup = _completed_backup(api, name)
    listed = module("velero_backup", {"action": "list"}, kubeconfig)
    restore = module("velero_backup", {"action": "restore", "name": f"{name}-r", "backup_name": backup, "wait": False}, kubeconfig)
    removed = module("velero_backup", {"action": "schedule", "name": name, "state": "absent"}, kubeconfig)
    for result in (created, again, listed, removed):
        assert not result.get("failed"), result.get("msg")
    assert created["changed"] and not again["changed"] and removed["changed"]
    assert name in [s["name"] for s in listed["schedules"]]
    assert restore.get("failed") and 'cannot create resource "restores"' in restore["msg"], restore.get("msg")


def test_an_unbound_identity_gets_403_everywhere(identities):
    result = module("health_check", {"checks": ["pods", "nodes"]}, identities["nobody"])
    assert not result.get("failed"), result.get("msg")
    assert {f["check"] for f in result["findings"] if f["severity"] == "unknown"} == {"pods", "nodes"}
    assert {p["resource"] for p in result["missing_permissions"]} == {"pods", "nodes"}


def test_kubectl_auth_can_i_matches_the_least_privilege_rules(identities):
    kubectl = Path(build.installed()["dir"]) / "bin" / "kubectl"

    def can(identity, *args):
        proc = subprocess.run([str(kubectl), "--kubeconfig", identities[identity], "auth", "can-i", *args],
                              capture_output=True, text=True, timeout=60, check=False)
        return proc.stdout.strip()

    assert can("health", "list", "nodes") == "yes"
    assert can("health", "delete", "pods", "-n", APP_NS) == "no"
    assert can("health", "get", "secrets", "-n", APP_NS) == "no"
    assert can("canary", "patch", "virtualservices.networking.istio.io", "-n", APP_NS) == "yes"
    assert can("canary", "patch", "virtualservices.networking.istio.io", "-n", "default") == "no"
    assert can("canary", "delete", "deployments", "-n", APP_NS) == "no"
    assert can("backup", "create", "backups.velero.io", "-n", "velero") == "yes"
    assert can("backup", "create", "restores.velero.io", "-n", "velero") == "no"
    assert can("backup", "delete", "namespaces") == "no"


def test_role_absent_removes_bindings_then_roles(identities, admin_kubeconfig, api):
    """Runs last in this module: removing is checked (check mode first), and the ServiceAccounts lose their access."""
    check_stats = rbac_playbook(admin_kubeconfig, {"rbac_bindings": BINDINGS, "rbac_state": "absent"}, check=True)[0]
    stats = rbac_playbook(admin_kubeconfig, {"rbac_bindings": BINDINGS, "rbac_state": "absent"})[0]
    assert check_stats["changed"] == stats["changed"] > 0 and stats["failures"] == 0
    rbac = client.RbacAuthorizationV1Api(api)
    assert not rbac.list_cluster_role(label_selector="app.kubernetes.io/managed-by=machinenativeops.platform").items
    assert not rbac.list_namespaced_role_binding(APP_NS, label_selector="app.kubernetes.io/managed-by=machinenativeops.platform").items
    result = module("health_check", {"checks": ["nodes"]}, identities["health"])
    assert result["missing_permissions"] == [{"verb": "list", "group": "", "resource": "nodes", "namespace": None}]
