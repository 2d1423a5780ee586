"""Patch engines (JSON patch, merge patch, strategic merge patch) and server-side apply."""

from __future__ import annotations

import json

import apiserver_support as sup
import pytest
from kubernetes.client import ApiException, AppsV1Api, CoreV1Api

from lab.apiserver import patch as patching
from lab.apiserver.errors import ApiError

api = sup.api
client = sup.client
ns = sup.ns

# ------------------------------------------------------------------ engines, directly


def test_json_patch_operations():
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    out = patching.json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/c"},
        {"op": "replace", "path": "/a/b/1", "value": 10},
        {"op": "copy", "from": "/a/b", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e"},
        {"op": "add", "path": "/k~1x", "value": 1},
        {"op": "test", "path": "/e/0", "value": 0},
    ])
    assert out == {"a": {"b": [0, 10, 2, 3]}, "e": [0, 10, 2, 3], "k/x": 1}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}  # input untouched
    with pytest.raises(ApiError) as err:
        patching.json_patch(doc, [{"op": "test", "path": "/c", "value": "y"}])
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        patching.json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        patching.json_patch(doc, {"op": "add"})
    assert err.value.code == 400


def test_merge_patch_rfc7386():
    assert patching.merge_patch({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}, {"a": None, "b": {"c": 5}, "l": [3]}) == \
        {"b": {"c": 5, "d": 3}, "l": [3]}


def _pod_spec():
    return {"containers": [
        {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80}, {"containerPort": 443}], "volumeMounts": [{"mountPath": "/data", "name": "d"}]},
        {"name": "side", "image": "busybox"},
    ], "volumes": [{"name": "d", "emptyDir": {}}], "tolerations": [{"key": "a"}]}


def test_strategic_merge_lists_by_merge_key():
    out = patching.strategic_merge({"spec": _pod_spec()}, {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
         "ports": [{"containerPort": 8080}]},
    ], "tolerations": [{"key": "b"}]}})
    web, side = out["spec"]["containers"]
    assert web["image"] == "nginx:2" and side == {"name": "side", "image": "busybox"}
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert [p["containerPort"] for p in web["ports"]] == [80, 443, 8080]
    assert web["volumeMounts"] == [{"mountPath": "/data", "name": "d"}]
    assert out["spec"]["tolerations"] == [{"key": "b"}]  # atomic list: replaced


def test_strategic_merge_directives():
    base = {"spec": _pod_spec(), "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}}
    out = patching.strategic_merge(base, {
        "spec": {"containers": [{"name": "side", "$patch": "delete"}], "volumes": [{"$patch": "replace"}, {"name": "n", "emptyDir": {}}],
                 "$setElementOrder/containers": [{"name": "web"}]},
        "metadata": {"finalizers": ["b"], "labels": {"y": None}},
    })
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]
    assert out["spec"]["volumes"] == [{"name": "n", "emptyDir": {}}]
    assert out["metadata"] == {"finalizers": ["a", "b"], "labels": {"x": "1"}}
    replaced = patching.strategic_merge(base, {"metadata": {"$patch": "replace", "labels": {"z": "3"}}})
    assert replaced["metadata"] == {"labels": {"z": "3"}}
    removed = patching.strategic_merge(base, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == []
    reordered = patching.strategic_merge({"spec": _pod_spec()}, {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}})
    assert [c["name"] for c in reordered["spec"]["containers"]] == ["side", "web"]
    retained = patching.strategic_merge({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
                                        {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}})
    assert retained == {"strategy": {"type": "Recreate"}}
    svc = patching.strategic_merge({"ports": [{"port": 80, "name": "http"}]}, {"ports": [{"port": 80, "targetPort": 8080}, {"port": 9090}]})
    assert svc["ports"] == [{"port": 80, "name": "http", "targetPort": 8080}, {"port": 9090}]


def test_field_paths_and_delete_path():
    obj = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}}
    paths = patching.field_values(obj)
    key = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"w"}', "f:image")
    assert paths[key] == "i" and paths[("f:metadata", "f:labels", "f:a")] == "1"
    assert ("f:metadata", "f:name") not in paths
    patching.delete_path(obj, key)
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "w"}]
    patching.delete_path(obj, (*key[:-1], "f:name"))  # the key field: the item goes, and the maps it leaves empty
    assert obj == {"metadata": {"name": "x", "labels": {"a": "1"}}}
    assert patching.format_path(key) == '.spec.template.spec.containers[name="w"].image'

# ------------------------------------------------------------------ through HTTP


def test_patch_content_types(api, client, ns):
    apps = AppsV1Api(client)
    apps.create_namespaced_deployment(ns, sup.deployment("p"))
    base = f"/apis/apps/v1/namespaces/{ns}/deployments/p"
    code, body = sup.raw(api.url, "PATCH", base, [{"op": "replace", "path": "/spec/replicas", "value": 3}], "application/json-patch+json")
    assert code == 200 and body["spec"]["replicas"] == 3
    code, body = sup.raw(api.url, "PATCH", base, {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}},
                         "application/merge-patch+json")
    assert code == 200 and body["spec"]["template"]["spec"]["containers"] == [{"name": "main", "image": "nginx:2"}]
    code, body = sup.raw(api.url, "PATCH", base, {"spec": {"template": {"spec": {"containers": [{"name": "extra", "image": "busybox"}]}}}},
                         "application/strategic-merge-patch+json")
    assert code == 200 and [c["name"] for c in body["spec"]["template"]["spec"]["containers"]] == ["main", "extra"]
    code, body = sup.raw(api.url, "PATCH", base, {"spec": {}}, "text/plain")
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    code, body = sup.raw(api.url, "PATCH", base, "{not json", "application/merge-patch+json")
    assert code == 400 and body["reason"] == "BadRequest"
    code, body = sup.raw(api.url, "PATCH", base, [{"op": "test", "path": "/spec/replicas", "value": 99}], "application/json-patch+json")
    assert code == 422
    code, body = sup.raw(api.url, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/missing", {"spec": {}}, "application/merge-patch+json")
    assert code == 404


def _apply(api, ns, body, manager, *, force=False, dry_run=False):
    q = f"?fieldManager={manager}" + ("&force=true" if force else "") + ("&dryRun=All" if dry_run else "")
    name = body["metadata"]["name"]
    return sup.raw(api.url, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}{q}", json.dumps(body), "application/apply-patch+yaml")


def test_server_side_apply_create_merge_and_managed_fields(api, client, ns):
    code, body = _apply(api, ns, sup.deployment("ssa", replicas=2), "alice")
    assert code == 201
    assert [(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]] == [("alice", "Apply")]
    assert "f:replicas" in body["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
    # YAML bodies work too, and re-applying the same config changes nothing
    yaml_body = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n"
    code, again = sup.raw(api.url, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/ssa?fieldManager=bob", yaml_body,
                          "application/apply-patch+yaml")
    assert code == 200 and again["spec"]["replicas"] == 2
    code, same = _apply(api, ns, sup.deployment("ssa", replicas=2), "alice")
    assert code == 200 and same["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]


def test_server_side_apply_conflicts_and_force(api, client, ns):
    _apply(api, ns, sup.deployment("own", replicas=2), "alice")
    code, body = _apply(api, ns, sup.deployment("own", replicas=5), "bob")
    assert code == 409 and body["reason"] == "Conflict"
    assert body["details"]["causes"][0] == {"reason": "FieldManagerConflict", "message": 'conflict with "alice" using apps/v1',
                                            "field": ".spec.replicas"}
    # same value: shared ownership, no conflict
    code, _ = _apply(api, ns, sup.deployment("own", replicas=2), "carol")
    assert code == 200
    code, body = _apply(api, ns, sup.deployment("own", replicas=5), "bob", force=True)
    assert code == 200 and body["spec"]["replicas"] == 5
    owners = {m["manager"]: m["fieldsV1"] for m in body["metadata"]["managedFields"]}
    assert "f:replicas" in owners["bob"]["f:spec"] and "f:replicas" not in owners["alice"]["f:spec"]
    # an Update by another client takes ownership: alice's next apply of another value conflicts with it
    AppsV1Api(client).patch_namespaced_deployment("own", ns, {"spec": {"replicas": 7}}, field_manager="scaler")
    code, body = _apply(api, ns, sup.deployment("own", replicas=5), "bob")
    assert code == 409 and 'conflict with "scaler"' in body["message"]


def test_server_side_apply_removes_fields_dropped_from_config(api, client, ns):
    d = sup.deployment("drop")
    d["metadata"]["labels"]["extra"] = "yes"
    _apply(api, ns, d, "alice")
    d["metadata"]["labels"].pop("extra")
    code, body = _apply(api, ns, d, "alice")
    assert code == 200 and "extra" not in body["metadata"]["labels"]


def test_server_side_apply_needs_field_manager(api, ns):
    code, body = sup.raw(api.url, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/x", json.dumps(sup.deployment("x")),
                         "application/apply-patch+yaml")
    assert code == 400 and "fieldManager" in body["message"]


def test_update_records_managed_fields(client, ns):
    core = CoreV1Api(client)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "mf"}, "data": {"a": "1"}}, field_manager="maker")
    assert [(m.manager, m.operation) for m in cm.metadata.managed_fields] == [("maker", "Update")]
    cm = core.patch_namespaced_config_map("mf", ns, {"data": {"a": "2"}}, field_manager="editor")
    assert [m.manager for m in cm.metadata.managed_fields] == ["editor"]
    with pytest.raises(ApiException):
        core.patch_namespaced_config_map("mf", ns, [{"op": "test", "path": "/data/a", "value": "1"}])
