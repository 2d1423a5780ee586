"""A 403 from RBAC: KubeClient names the permission the request needed (KubeError.permission), and health_check turns
it into an `unknown` finding instead of a critical one (issue 12 item 12). Against the fixture server in
tests/unit/kube_api_server.py, which answers the scripted 403s like kube-apiserver does."""

import datetime

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import health as H
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import KubeClient, KubeError, build_configuration, resolve_auth

from tests.unit.kube_api_server import KubeApiServer

TOKEN = "forbidden-token-0123456789"
PODS = "/api/v1/namespaces/shop/pods"
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)

pytestmark = pytest.mark.usefixtures("clean_kube_env")


@pytest.fixture
def api():
    server = KubeApiServer(token=TOKEN)
    server.add_pod("shop", "web-0", labels={"app": "web"})
    server.add_pod("payments", "api-0", labels={"app": "api"})
    yield server
    server.close()


@pytest.fixture
def kube(api, tmp_path):
    configuration = build_configuration(resolve_auth({"host": api.url, "api_key": TOKEN}))[0]
    return KubeClient(configuration, cache_file=str(tmp_path / "d.json"), sleep=lambda _s: None)


def forbid(api, path, method="GET"):
    api.faults.append({"method": method, "path": path, "code": 403})


@pytest.mark.parametrize(("verb", "call", "namespace"), [
    ("list", lambda k: list(k.list("v1", "Pod", namespace="shop")), "shop"),
    ("list", lambda k: list(k.list("v1", "Pod")), None),
    ("get", lambda k: k.get("v1", "Pod", "web-0", "shop"), "shop"),
    ("patch", lambda k: k.patch("v1", "Pod", "web-0", {"metadata": {"labels": {"a": "b"}}}, "shop"), "shop"),
    ("delete", lambda k: k.delete("v1", "Pod", "web-0", "shop"), "shop"),
])
def test_permission_of_a_403(api, kube, verb, call, namespace):
    path = "/api/v1/pods" if namespace is None else PODS + ("" if verb == "list" else "/web-0")
    forbid(api, path, {"list": "GET", "get": "GET", "patch": "PATCH", "delete": "DELETE"}[verb])
    with pytest.raises(KubeError) as err:
        call(kube)
    assert err.value.status == 403
    assert err.value.permission == {"verb": verb, "group": "", "resource": "pods", "namespace": namespace}
    assert err.value.to_dict()["permission"] == err.value.permission


def test_other_errors_name_no_permission(api, kube):
    api.faults.append({"method": "GET", "path": PODS, "code": 400})
    with pytest.raises(KubeError) as err:
        list(kube.list("v1", "Pod", namespace="shop"))
    assert err.value.status == 400 and err.value.permission is None


def test_forbidden_check_is_unknown_with_the_permission_and_does_not_change_the_status(api, kube):
    forbid(api, "/api/v1/pods")
    result = H.HealthRunner(kube, {}, now=NOW, kube_error=KubeError).run(["pods"])
    assert result["status"] == "healthy"
    (finding,) = result["findings"]
    assert (finding["check"], finding["kind"], finding["severity"], finding["reason"]) == ("pods", "Pod", "unknown", "Forbidden")
    assert finding["permission"] == {"verb": "list", "group": "", "resource": "pods", "namespace": None}
    assert finding["message"].startswith("pods check could not run: the credentials may not list pods (cluster-wide) (RBAC answered 403: ")
    assert result["missing_permissions"] == [finding["permission"]]
    assert result["summary"]["checks"]["pods"] == {"ok": 0, "warning": 0, "critical": 0, "unknown": 1}
    assert result["summary"]["totals"]["unknown"] == 1


def test_one_forbidden_namespace_leaves_the_others_checked(api, kube):
    api.pods[("payments", "api-0")]["status"] = {"phase": "Failed", "reason": "Evicted"}
    forbid(api, PODS)
    result = H.HealthRunner(kube, {"namespaces": ["shop", "payments"]}, now=NOW, kube_error=KubeError).run(["pods"])
    by_severity = {f["severity"]: f for f in result["findings"]}
    assert set(by_severity) == {"unknown", "critical"} or set(by_severity) == {"unknown", "warning"}
    assert by_severity["unknown"]["namespace"] == "shop" and by_severity["unknown"]["permission"]["namespace"] == "shop"
    assert result["status"] != "healthy"   # the problem in payments counts; the unknown shop does not hide it
    # most severe first, unknown after the problems
    assert result["findings"][-1]["severity"] == "unknown"


def test_unique_permissions_and_their_description():
    perms = [{"verb": "list", "group": "velero.io", "resource": "backups", "namespace": None},
             {"verb": "list", "group": "", "resource": "nodes", "namespace": None},
             {"verb": "list", "group": "velero.io", "resource": "backups", "namespace": None}]
    assert H.unique_permissions(perms) == perms[1:]
    assert H.describe_permission(perms[0]) == "list backups.velero.io (cluster-wide)"
    assert H.describe_permission({"verb": "get", "group": "", "resource": "pods", "namespace": "shop"}) == "get pods in namespace shop"
