"""HealthRunner with the real KubeClient against an in-process API emulator (no controllers): scoping,
skipped checks, CRD-based checks (cert-manager, Flux, Argo CD, Istio) and the request count."""

from __future__ import annotations

import datetime
import http.client
import json

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import health as H
from ansible_collections.machinenativeops.platform.plugins.module_utils.kube import KubeError, get_kube_client

from lab.apiserver.testing import running_apiserver

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)


def _request(api, method, path, body=None):
    host, port = api.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status in (200, 201), (method, path, resp.status, data[:300])
    return json.loads(data)


def create(api, path, body, status=None):
    if status is not None and path.startswith("/apis/argoproj.io/"):
        # Argo CD's Application has no status subresource: the controller writes the whole object
        return _request(api, "POST", path, dict(body, status=status))
    obj = _request(api, "POST", path, body)
    if status is not None:
        obj["status"] = status
        name = obj["metadata"]["name"]
        _request(api, "PUT", f"{path}/{name}/status", obj)
    return obj


def ready(status="True", reason="Succeeded", message=""):
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": "2026-03-01T11:00:00Z"}]}


def client_for(api, tmp_path):
    return get_kube_client({"kubeconfig": api.kubeconfig}, cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture(scope="module")
def crd_api(tmp_path_factory):
    with running_apiserver(tmp_path_factory.mktemp("api"), load_crds=True, tls=False) as api:
        for ns in ("shop", "flux-system", "argocd", "istio-system", "payments"):
            create(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
                "istio-injection": "enabled"} if ns == "shop" else {}}})
        create(api, "/apis/cert-manager.io/v1/namespaces/shop/certificates",
               {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web-tls"}, "spec": {"secretName": "web-tls"}},
               dict(ready(), notAfter="2026-03-05T00:00:00Z"))
        create(api, "/apis/cert-manager.io/v1/namespaces/payments/certificates",
               {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "api-tls"}, "spec": {"secretName": "api-tls"}},
               dict(ready(), notAfter="2026-09-01T00:00:00Z"))
        create(api, "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations",
               {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps"}, "spec": {"interval": "5m"}},
               ready("False", "BuildFailed", "kustomize build failed: accumulating resources"))
        create(api, "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories",
               {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "platform"}, "spec": {"interval": "1m"}},
               ready())
        create(api, "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases",
               {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "redis"}, "spec": {"interval": "5m"}},
               ready())
        create(api, "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
               {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "shop"}, "spec": {"project": "default"}},
               {"health": {"status": "Healthy"}, "sync": {"status": "OutOfSync"}})
        create(api, "/apis/apps/v1/namespaces/istio-system/deployments",
               {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "labels": {"app": "istiod"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}},
                         "template": {"metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [{"name": "discovery", "image": "pilot:1"}]}}}},
               {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1})
        for ns in ("shop", "payments"):
            create(api, f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices",
                   {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web"}, "spec": {"hosts": ["web"]}})
        yield api


def keys(result):
    return {(f["check"], f["kind"], f["namespace"], f["name"], f["severity"], f["reason"]) for f in result["findings"]}


def test_crd_checks(crd_api, tmp_path):
    kube = client_for(crd_api, tmp_path)
    result = H.HealthRunner(kube, {}, now=NOW, kube_error=KubeError).run(["certificates", "gitops", "mesh"])
    assert keys(result) == {
        ("certificates", "Certificate", "shop", "web-tls", "warning", "ExpiringSoon"),
        ("gitops", "Kustomization", "flux-system", "apps", "critical", "BuildFailed"),
        ("gitops", "Application", "argocd", "shop", "warning", "SyncOutOfSync"),
        ("mesh", "Namespace", None, "payments", "warning", "InjectionLabelMissing"),
    }
    assert result["status"] == "critical"
    assert result["skipped_checks"] == []
    assert result["summary"]["checks"] == {"certificates": {"ok": 1, "warning": 1, "critical": 0, "unknown": 0},
                                           "gitops": {"ok": 2, "warning": 1, "critical": 1, "unknown": 0},
                                           "mesh": {"ok": 2, "warning": 1, "critical": 0, "unknown": 0}}   # istiod + namespace shop


def test_namespaces_scope_and_mesh_namespaces(crd_api, tmp_path):
    kube = client_for(crd_api, tmp_path)
    result = H.HealthRunner(kube, {"namespaces": ["shop"]}, now=NOW, kube_error=KubeError).run(["certificates", "mesh"])
    assert keys(result) == {("certificates", "Certificate", "shop", "web-tls", "warning", "ExpiringSoon")}
    result = H.HealthRunner(kube, {"mesh_namespaces": ["shop", "missing"]}, now=NOW, kube_error=KubeError).run(["mesh"])
    assert keys(result) == {("mesh", "Namespace", None, "missing", "warning", "NamespaceMissing")}


def test_only_unhealthy_false_returns_healthy_objects(crd_api, tmp_path):
    kube = client_for(crd_api, tmp_path)
    result = H.HealthRunner(kube, {"only_unhealthy": False}, now=NOW, kube_error=KubeError).run(["certificates"])
    assert {(f["name"], f["severity"]) for f in result["findings"]} == {("web-tls", "warning"), ("api-tls", "ok")}
    assert result["findings"][0]["severity"] == "warning"   # most severe first


def test_absent_crds_are_skipped_with_the_reason(tmp_path):
    with running_apiserver(tmp_path / "bare", load_crds=False, tls=False) as api:
        kube = client_for(api, tmp_path)
        result = H.HealthRunner(kube, {}, now=NOW, kube_error=KubeError).run(list(H.CHECKS))
    skipped = {s["check"]: s["reason"] for s in result["skipped_checks"]}
    assert set(skipped) == {"certificates", "gitops", "backups", "mesh", "alerts", "endpoints"}
    assert skipped["certificates"].startswith("cert-manager is not installed")
    assert skipped["gitops"].startswith("neither Flux")
    assert skipped["backups"].startswith("Velero is not installed")
    assert skipped["alerts"] == "no prometheus_url or alertmanager_url given"
    assert set(result["summary"]["checks"]) == {"workloads", "pods", "nodes", "storage", "jobs"}
    assert result["status"] == "healthy"


def test_request_count_does_not_grow_with_objects(tmp_path):
    """One list per kind and scope: 10 or 400 pods (page size 500) cost the same number of requests."""
    with running_apiserver(tmp_path / "count", load_crds=False, tls=False) as api:
        create(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        kube = client_for(api, tmp_path)
        H.HealthRunner(kube, {"namespaces": ["shop"]}, now=NOW, kube_error=KubeError).run(["pods", "workloads"])   # discovery
        counts = []
        total = 0
        for target in (10, 400):
            while total < target:
                create(api, "/api/v1/namespaces/shop/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{total:04d}"},
                                                             "spec": {"containers": [{"name": "c", "image": "x"}]}},
                       {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
                total += 1
            before = kube.api_calls
            result = H.HealthRunner(kube, {"namespaces": ["shop"]}, now=NOW, kube_error=KubeError).run(["pods", "workloads"])
            assert result["summary"]["checks"]["pods"]["ok"] == target
            counts.append(kube.api_calls - before)
        assert counts[0] == counts[1] == 4   # Pod, Deployment, StatefulSet, DaemonSet
        before = kube.api_calls
        H.HealthRunner(kube, {"namespaces": ["shop"], "page_size": 100}, now=NOW, kube_error=KubeError).run(["pods"])
        assert kube.api_calls - before == 4   # 400 pods in 4 pages of 100: only pagination adds requests


def test_check_errors_become_findings_but_auth_errors_stop():
    runner = H.HealthRunner(None, {}, now=NOW, kube_error=KubeError)
    forbidden = KubeError("list", "Certificate", "shop", status=403, reason="Forbidden",
                          api_message='certificates.cert-manager.io is forbidden: User "ro" cannot list')
    runner._error_finding("certificates", forbidden)
    assert runner.findings == [{"check": "certificates", "kind": "Certificate", "namespace": "shop", "name": None, "severity": "critical",
                                "reason": "CheckError", "since": None,
                                "message": 'certificates check could not run: list Certificate in namespace shop failed: 403 Forbidden: '
                                           'certificates.cert-manager.io is forbidden: User "ro" cannot list'}]
    with pytest.raises(H.HealthError, match="401 Unauthorized"):
        runner._error_finding("pods", KubeError("list", "Pod", status=401, reason="Unauthorized"))
    with pytest.raises(H.HealthError, match="cannot reach the API server"):
        runner._error_finding("pods", KubeError("list", "Pod", reason="cannot reach the API server http://127.0.0.1:1"))
