"""Discovery, TLS and tokens, error Status objects, and the dynamic client."""

from __future__ import annotations

import json
import ssl

import apiserver_support as sup
import pytest
from kubernetes import dynamic
from kubernetes.client import ApiException, CoreV1Api

api = sup.api
client = sup.client
ns = sup.ns


def test_version_and_group_discovery(api):
    code, version = sup.raw(api.url, "GET", "/version")
    assert code == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")
    code, groups = sup.raw(api.url, "GET", "/apis")
    by_name = {g["name"]: g for g in groups["groups"]}
    assert {"apps", "batch", "autoscaling", "policy", "coordination.k8s.io", "apiextensions.k8s.io", "velero.io",
            "networking.istio.io", "monitoring.coreos.com", "cert-manager.io", "argoproj.io"} <= set(by_name)
    assert by_name["networking.istio.io"]["preferredVersion"]["version"] == "v1"
    assert {v["version"] for v in by_name["monitoring.coreos.com"]["versions"]} == {"v1", "v1alpha1"}
    code, group = sup.raw(api.url, "GET", "/apis/velero.io")
    assert code == 200 and group["kind"] == "APIGroup" and group["preferredVersion"]["groupVersion"] == "velero.io/v1"


def test_resource_discovery(api):
    _, core = sup.raw(api.url, "GET", "/api/v1")
    res = {r["name"]: r for r in core["resources"]}
    assert res["pods"]["kind"] == "Pod" and res["pods"]["shortNames"] == ["po"] and "all" in res["pods"]["categories"]
    assert "watch" in res["pods"]["verbs"] and res["pods"]["namespaced"] is True
    assert {"pods/status", "pods/log", "namespaces/status", "nodes/status"} <= set(res)
    assert res["namespaces"]["namespaced"] is False
    _, apps = sup.raw(api.url, "GET", "/apis/apps/v1")
    res = {r["name"]: r for r in apps["resources"]}
    assert res["deployments/scale"]["group"] == "autoscaling" and res["deployments/scale"]["kind"] == "Scale"
    assert res["deployments/status"]["verbs"] == ["get", "patch", "update"]
    _, hpa = sup.raw(api.url, "GET", "/apis/autoscaling/v2")
    assert [r["kind"] for r in hpa["resources"] if "/" not in r["name"]] == ["HorizontalPodAutoscaler"]
    _, velero = sup.raw(api.url, "GET", "/apis/velero.io/v1")
    names = {r["name"] for r in velero["resources"]}
    assert {"backups", "restores", "schedules", "backupstoragelocations", "backupstoragelocations/status",
            "deletebackuprequests", "volumesnapshotlocations"} <= names
    assert "backups/status" not in names
    code, _ = sup.raw(api.url, "GET", "/apis/nothing.example/v1")
    assert code == 404


def test_openapi_v3_index(api):
    code, index = sup.raw(api.url, "GET", "/openapi/v3")
    assert code == 200 and "api/v1" in index["paths"] and "apis/apps/v1" in index["paths"]
    code, doc = sup.raw(api.url, "GET", index["paths"]["apis/apps/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch["parameters"]


def test_tls_with_token_and_ca(api):
    tls_client = sup.api_client(api.kubeconfig, context="lab-tls")
    names = {n.metadata.name for n in CoreV1Api(tls_client).list_namespace().items}
    assert "default" in names
    tls_client.close()


def test_tls_without_or_with_bad_token_is_401(api):
    ctx = ssl.create_default_context(cafile=api.pki["ca_cert"])
    code, body = sup.raw(api.https_url, "GET", "/api/v1/namespaces", context=ctx)
    assert code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    code, body = sup.raw(api.https_url, "GET", "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}, context=ctx)
    assert code == 401
    code, body = sup.raw(api.https_url, "GET", "/api/v1/namespaces", headers={"Authorization": f"Bearer {api.token}"}, context=ctx)
    assert code == 200 and body["kind"] == "NamespaceList"
    with pytest.raises(OSError):  # the server certificate is not trusted without the lab CA
        sup.raw(api.https_url, "GET", "/version", context=ssl.create_default_context())


def test_readonly_token_is_forbidden_to_write(api, ns):
    ro = sup.api_client(api.kubeconfig, context="lab-readonly")
    core = CoreV1Api(ro)
    assert core.list_namespaced_config_map(ns).items == []
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    assert err.value.status == 403 and '"reason":"Forbidden"' in err.value.body.replace(" ", "")
    with pytest.raises(ApiException) as err:
        core.delete_namespace(ns)
    assert err.value.status == 403
    ro.close()
    code, _ = sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "y"}},
                      headers={"Authorization": f"Bearer {api.readonly_token}"})
    assert code == 403


def test_error_statuses(api, ns):
    code, body = sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/configmaps/named", {"metadata": {"name": "named"}})
    assert code == 405 and body["reason"] == "MethodNotAllowed"
    code, body = sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/configmaps", "{broken")
    assert code == 400 and body["reason"] == "BadRequest"
    code, body = sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"kind": "Secret", "metadata": {"name": "k"}})
    assert code == 400
    code, body = sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "k", "namespace": "elsewhere"}})
    assert code == 400 and "does not match the namespace" in body["message"]
    code, body = sup.raw(api.url, "GET", f"/api/v1/namespaces/{ns}/nothings")
    assert code == 404 and body["kind"] == "Status"
    code, body = sup.raw(api.url, "GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=a%20in%20(b")
    assert code == 400


def test_table_output_for_kubectl(api, ns):
    sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/pods", sup.pod("tp"))
    code, table = sup.raw(api.url, "GET", f"/api/v1/namespaces/{ns}/pods",
                          headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert code == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:3] == ["tp", "0/1", "Pending"]


def test_dynamic_client(client, ns):
    dyn = dynamic.DynamicClient(client)
    vs = dyn.resources.get(api_version="networking.istio.io/v1beta1", kind="VirtualService")
    vs.create(namespace=ns, body={"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "r"},
                                  "spec": {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}, "weight": 100}]}]}})
    got = vs.get(name="r", namespace=ns)
    assert got.spec.hosts == ["r"]
    vs.patch(name="r", namespace=ns, body={"spec": {"hosts": ["r", "s"]}}, content_type="application/merge-patch+json")
    applied = vs.server_side_apply(namespace=ns, field_manager="dyn", body={
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "r"}, "spec": {"gateways": ["gw"]}})
    assert applied.spec.hosts == ["r", "s"] and applied.spec.gateways == ["gw"]
    assert [i.metadata.name for i in vs.get(namespace=ns).items] == ["r"]
    vs.delete(name="r", namespace=ns)
    assert vs.get(namespace=ns).items == []


def test_watch_events_as_tables_for_kubectl_get_watch(api, ns):
    sup.raw(api.url, "POST", f"/api/v1/namespaces/{ns}/pods", sup.pod("wt"))
    code, text = sup.raw(api.url, "GET", f"/api/v1/namespaces/{ns}/pods?watch=true&timeoutSeconds=1",
                         headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    events = [json.loads(line) for line in text.splitlines()] if isinstance(text, str) else [text]
    assert code == 200 and [e["type"] for e in events] == ["ADDED"]
    assert events[0]["object"]["kind"] == "Table" and events[0]["object"]["rows"][0]["cells"][0] == "wt"


def test_self_subject_access_review(api):
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}}
    code, body = sup.raw(api.url, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    assert code == 201 and body["status"]["allowed"] is True
    ro = {"Authorization": f"Bearer {api.readonly_token}"}
    code, body = sup.raw(api.url, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, headers=ro)
    assert code == 201 and body["status"]["allowed"] is False
    review["spec"]["resourceAttributes"]["verb"] = "list"
    code, body = sup.raw(api.url, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, headers=ro)
    assert body["status"]["allowed"] is True
    code, _ = sup.raw(api.url, "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert code == 405
