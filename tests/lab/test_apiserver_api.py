"""CRUD semantics of the API emulator through the official kubernetes client."""

from __future__ import annotations

import json

import apiserver_support as sup
import kubernetes
import pytest
from kubernetes.client import ApiException, AppsV1Api, CoreV1Api, CustomObjectsApi

api = sup.api
client = sup.client
ns = sup.ns


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_system_namespaces_exist(client):
    names = {n.metadata.name for n in CoreV1Api(client).list_namespace().items}
    assert {"default", "kube-system", "kube-public"} <= names


def test_create_sets_server_fields_and_201(client, ns):
    data, code, _headers = CoreV1Api(client).create_namespaced_config_map_with_http_info(ns, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    assert code == 201
    assert data.metadata.uid and data.metadata.resource_version and data.metadata.creation_timestamp
    got = CoreV1Api(client).read_namespaced_config_map("cm", ns)
    assert got.data == {"a": "1"} and got.metadata.uid == data.metadata.uid


def test_create_twice_is_already_exists(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    assert err.value.status == 409
    body = _status(err.value)
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists" and body["details"]["name"] == "dup"


def test_generate_name(client, ns):
    created = CoreV1Api(client).create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}})
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == len("gen-") + 5


def test_invalid_names_are_422_with_causes(client, ns):
    core = CoreV1Api(client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Bad_Name"}})
    body = _status(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {}})
    assert err.value.status == 422
    assert _status(err.value)["details"]["causes"][0]["reason"] == "FieldValueRequired"


def test_create_in_missing_namespace_is_404(client):
    with pytest.raises(ApiException) as err:
        CoreV1Api(client).create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert err.value.status == 404
    assert 'namespaces "no-such-ns" not found' in _status(err.value)["message"]


def test_get_missing_is_404_status(client, ns):
    with pytest.raises(ApiException) as err:
        AppsV1Api(client).read_namespaced_deployment("nope", ns)
    body = _status(err.value)
    assert err.value.status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'


def test_resource_version_is_monotonic_and_stale_put_conflicts(client, ns):
    core = CoreV1Api(client)
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "rv"}, "data": {"k": "1"}})
    first.data = {"k": "2"}
    second = core.replace_namespaced_config_map("rv", ns, first)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("rv", ns, first)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("rv", ns, {"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"k": "4"}})
    assert err.value.status == 409
    assert core.read_namespaced_config_map("rv", ns).data == {"k": "2"}


def test_unchanged_update_keeps_resource_version(client, ns):
    core = CoreV1Api(client)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "same"}, "data": {"k": "1"}})
    again = core.patch_namespaced_config_map("same", ns, {"data": {"k": "1"}})
    assert again.metadata.resource_version == cm.metadata.resource_version


def test_generation_bumps_on_spec_changes_only(client, ns):
    apps = AppsV1Api(client)
    d = apps.create_namespaced_deployment(ns, sup.deployment("gen"))
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("gen", ns, {"metadata": {"labels": {"extra": "yes"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment_status("gen", ns, {"status": {"replicas": 2, "observedGeneration": 1}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("gen", ns, {"spec": {"replicas": 3}})
    assert d.metadata.generation == 2


def test_status_subresource_isolation(client, ns):
    apps = AppsV1Api(client)
    apps.create_namespaced_deployment(ns, sup.deployment("iso"))
    # a write to the main resource ignores status
    d = apps.patch_namespaced_deployment("iso", ns, {"status": {"readyReplicas": 7}, "spec": {"replicas": 4}})
    assert d.spec.replicas == 4 and (d.status.ready_replicas or 0) == 0
    # a write to /status changes only status
    d = apps.patch_namespaced_deployment_status("iso", ns, {"status": {"readyReplicas": 2}, "spec": {"replicas": 9},
                                                            "metadata": {"labels": {"sneaky": "1"}}})
    assert d.status.ready_replicas == 2 and d.spec.replicas == 4 and "sneaky" not in d.metadata.labels
    body = apps.read_namespaced_deployment("iso", ns)
    body.status.ready_replicas = 1
    body.spec.replicas = 5
    replaced = apps.replace_namespaced_deployment_status("iso", ns, body)
    assert replaced.status.ready_replicas == 1 and replaced.spec.replicas == 4


def test_pod_status_phase_is_set_through_status(client, ns):
    core = CoreV1Api(client)
    p = core.create_namespaced_pod(ns, sup.pod("p1"))
    assert p.status.phase == "Pending"
    p = core.patch_namespaced_pod_status("p1", ns, {"status": {"phase": "Running"}})
    assert p.status.phase == "Running"


def test_scale_subresource(client, ns):
    apps = AppsV1Api(client)
    apps.create_namespaced_deployment(ns, sup.deployment("sc", replicas=2))
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert scale.kind == "Scale" and scale.spec.replicas == 2 and scale.status.selector == "app=sc"
    apps.replace_namespaced_deployment_scale("sc", ns, {"metadata": {"name": "sc"}, "spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 5
    result = apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 1}, "metadata": {"labels": {"x": "y"}}})
    assert result.spec.replicas == 1
    d = apps.read_namespaced_deployment("sc", ns)
    assert d.spec.replicas == 1 and "x" not in d.metadata.labels and d.spec.template.spec.containers[0].image == "nginx:1.25"
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("sc", ns, {"metadata": {"name": "sc", "resourceVersion": "1"}, "spec": {"replicas": 2}})
    assert err.value.status == 409


def test_deployment_selector_must_match_template(client, ns):
    body = sup.deployment("mismatch")
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as err:
        AppsV1Api(client).create_namespaced_deployment(ns, body)
    assert err.value.status == 422
    assert _status(err.value)["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", {"a", "b"}),
    ("app==web", {"a", "b"}),
    ("app!=web", {"c", "d"}),
    ("tier in (front,back)", {"a", "c"}),
    ("tier notin (front)", {"b", "c", "d"}),
    ("tier", {"a", "c"}),
    ("!tier", {"b", "d"}),
    ("app=web,tier=front", {"a"}),
])
def test_label_selectors(client, ns, selector, expected):
    core = CoreV1Api(client)
    for name, labels in {"a": {"app": "web", "tier": "front"}, "b": {"app": "web"}, "c": {"app": "db", "tier": "back"}, "d": {}}.items():
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})
    assert {i.metadata.name for i in core.list_namespaced_config_map(ns, label_selector=selector).items} == expected


def test_field_selectors(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_pod(ns, sup.pod("on-n1", node="n1"))
    core.create_namespaced_pod(ns, sup.pod("on-n2", node="n2"))
    core.patch_namespaced_pod_status("on-n2", ns, {"status": {"phase": "Running"}})

    def names(sel):
        return {i.metadata.name for i in core.list_namespaced_pod(ns, field_selector=sel).items}

    assert names("metadata.name=on-n1") == {"on-n1"}
    assert names("metadata.name!=on-n1") == {"on-n2"}
    assert names("spec.nodeName=n2") == {"on-n2"}
    assert names("status.phase=Running") == {"on-n2"}
    assert names("status.phase!=Running,spec.nodeName=n1") == {"on-n1"}
    assert {i.metadata.name for i in core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items} == {"on-n1", "on-n2"}


def test_pagination_and_list_metadata(client, ns):
    core = CoreV1Api(client)
    for i in range(7):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"page-{i}"}})
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3 and seen == sorted(f"page-{i}" for i in range(7))
    raw = json.loads(core.list_namespaced_config_map(ns, _preload_content=False).data)
    assert raw["kind"] == "ConfigMapList" and raw["apiVersion"] == "v1" and int(raw["metadata"]["resourceVersion"]) > 0
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, limit=3, _continue="not-a-token")
    assert err.value.status == 400


def test_finalizers_hold_deletion(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "fin", "finalizers": ["lab/test"]}})
    deleted = core.delete_namespaced_config_map("fin", ns)
    assert deleted.metadata.deletion_timestamp is not None if hasattr(deleted, "metadata") else True
    held = core.read_namespaced_config_map("fin", ns)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("fin", ns)
    assert err.value.status == 404


def test_delete_returns_the_object(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "gone"}})
    resp = core.delete_namespaced_config_map("gone", ns, _preload_content=False)
    body = json.loads(resp.data)
    assert resp.status == 200 and body["kind"] == "ConfigMap" and body["metadata"]["name"] == "gone"
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("gone", ns)
    assert err.value.status == 404


def test_namespace_deletion_terminates_then_removes(client):
    core = CoreV1Api(client)
    name = sup.unique("term")
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "plain"}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "held", "finalizers": ["lab/hold"]}})
    core.delete_namespace(name)
    assert core.read_namespace(name).status.phase == "Terminating"
    sup.eventually(lambda: [c.metadata.name for c in core.list_namespaced_config_map(name).items] == ["held"])
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert err.value.status == 403
    assert core.read_namespace(name).status.phase == "Terminating"
    core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})

    def gone():
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    sup.eventually(gone)


def _owned_cm(name, owner):
    return {"metadata": {"name": name, "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}]}}


def test_garbage_collection_background(client, ns):
    core = CoreV1Api(client)
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(ns, _owned_cm("child", owner))
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Background")
    sup.eventually(lambda: [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == [])


def test_garbage_collection_orphan(client, ns):
    core = CoreV1Api(client)
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(ns, _owned_cm("kept", owner))
    core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
    kept = core.read_namespaced_config_map("kept", ns)
    assert not kept.metadata.owner_references
    # a later owner deletion elsewhere must not collect it
    other = core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    core.create_namespaced_config_map(ns, _owned_cm("child2", other))
    core.delete_namespaced_config_map("other", ns)
    sup.eventually(lambda: [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["kept"])


def test_dependent_created_with_missing_owner_is_collected(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dangling", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]}})
    sup.eventually(lambda: not core.list_namespaced_config_map(ns).items)


def test_delete_collection_with_selector(client, ns):
    core = CoreV1Api(client)
    for name, tier in (("x1", "a"), ("x2", "a"), ("x3", "b")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"tier": tier}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="tier=a")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["x3"]


def test_dry_run_stores_nothing(api, client, ns):
    core = CoreV1Api(client)
    made = core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}, "data": {"a": "1"}}, dry_run="All")
    assert made.metadata.name == "dry"
    assert core.list_namespaced_config_map(ns).items == []
    core.create_namespaced_config_map(ns, {"metadata": {"name": "real"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map("real", ns, {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    body = core.read_namespaced_config_map("real", ns)
    body.data = {"a": "3"}
    assert core.replace_namespaced_config_map("real", ns, body, dry_run="All").data == {"a": "3"}
    core.delete_namespaced_config_map("real", ns, dry_run="All")
    assert core.read_namespaced_config_map("real", ns).data == {"a": "1"}
    code, applied = sup.raw(api.url, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/new?fieldManager=t&dryRun=All",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}, "application/apply-patch+yaml")
    assert code == 201
    assert applied["metadata"]["name"] == "new"
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["real"]


def test_secret_string_data_is_encoded(client, ns):
    s = CoreV1Api(client).create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    assert s.data == {"password": "aHVudGVyMg=="} and s.type == "Opaque"


def test_custom_objects_crud_and_status(client, ns):
    custom = CustomObjectsApi(client)
    group, version, plural = "velero.io", "v1", "backupstoragelocations"
    body = {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": {"name": "default"},
            "spec": {"provider": "aws", "objectStorage": {"bucket": "velero"}}, "status": {"phase": "Available"}}
    created = custom.create_namespaced_custom_object(group, version, ns, plural, body)
    assert "status" not in created  # status subresource: create drops status
    updated = custom.patch_namespaced_custom_object_status(group, version, ns, plural, "default", {"status": {"phase": "Available"}})
    assert updated["status"] == {"phase": "Available"} and updated["metadata"]["generation"] == 1
    listed = custom.list_namespaced_custom_object(group, version, ns, plural)
    assert listed["kind"] == "BackupStorageLocationList" and [i["metadata"]["name"] for i in listed["items"]] == ["default"]
    # no status subresource on Backup: status is part of the object
    b = custom.create_namespaced_custom_object(group, version, ns, "backups", {"apiVersion": "velero.io/v1", "kind": "Backup",
                                                                              "metadata": {"name": "b1"}, "status": {"phase": "New"}})
    assert b["status"] == {"phase": "New"}
    custom.delete_namespaced_custom_object(group, version, ns, "backups", "b1")
    assert custom.list_namespaced_custom_object(group, version, ns, "backups")["items"] == []


def test_crd_served_in_several_versions(client, ns):
    custom = CustomObjectsApi(client)
    body = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"]}}
    custom.create_namespaced_custom_object("networking.istio.io", "v1beta1", ns, "virtualservices", body)
    as_v1 = custom.get_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", "reviews")
    assert as_v1["apiVersion"] == "networking.istio.io/v1" and as_v1["spec"] == {"hosts": ["reviews"]}


def test_strategic_merge_on_custom_resource_is_415(api, client, ns):
    custom = CustomObjectsApi(client)
    custom.create_namespaced_custom_object("cert-manager.io", "v1", ns, "certificates", {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}, "spec": {"secretName": "c"}})
    code, body = sup.raw(api.url, "PATCH", f"/apis/cert-manager.io/v1/namespaces/{ns}/certificates/c", {"spec": {"secretName": "d"}},
                         "application/strategic-merge-patch+json")
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    code, body = sup.raw(api.url, "PATCH", f"/apis/cert-manager.io/v1/namespaces/{ns}/certificates/c", {"spec": {"secretName": "d"}},
                         "application/merge-patch+json")
    assert code == 200 and body["spec"]["secretName"] == "d"


def test_new_crd_is_served_and_removed(client, ns):
    ext = kubernetes.client.ApiextensionsV1Api(client)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                                  "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                                           "statusReplicasPath": ".status.size"}}}]}}
    made = ext.create_custom_resource_definition(crd)
    assert {c.type for c in made.status.conditions if c.status == "True"} == {"Established", "NamesAccepted"}
    resources = kubernetes.client.CustomObjectsApi(client).get_api_resources("example.com", "v1")
    names = {r.name for r in resources.resources}
    assert names == {"widgets", "widgets/status", "widgets/scale"}
    custom = CustomObjectsApi(client)
    custom.create_namespaced_custom_object("example.com", "v1", ns, "widgets",
                                           {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})
    custom.patch_namespaced_custom_object_scale("example.com", "v1", ns, "widgets", "w", {"spec": {"replicas": 4}})
    assert custom.get_namespaced_custom_object("example.com", "v1", ns, "widgets", "w")["spec"]["size"] == 4
    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as err:
        custom.list_namespaced_custom_object("example.com", "v1", ns, "widgets")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        ext.create_custom_resource_definition({**crd, "metadata": {"name": "wrong.example.com"}})
    assert err.value.status == 422


def test_cluster_scoped_resources(client):
    core = CoreV1Api(client)
    name = sup.unique("node")
    core.create_node({"metadata": {"name": name, "labels": {"role": "worker"}}})
    assert name in {n.metadata.name for n in core.list_node(label_selector="role=worker").items}
    core.patch_node_status(name, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert core.read_node(name).status.conditions[0].status == "True"
    core.delete_node(name)
    assert name not in {n.metadata.name for n in core.list_node().items}


def test_delete_preconditions(client, ns):
    core = CoreV1Api(client)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "pre"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"resourceVersion": "1"}})
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"uid": "not-the-uid"}})
    assert err.value.status == 409
    core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"uid": cm.metadata.uid}})
    assert core.list_namespaced_config_map(ns).items == []


def test_no_new_finalizers_while_deleting(client, ns):
    core = CoreV1Api(client)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "f", "finalizers": ["a/one"]}})
    core.delete_namespaced_config_map("f", ns)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": ["a/one", "a/two"]}})
    assert err.value.status == 422
    core.patch_namespaced_config_map("f", ns, {"metadata": {"finalizers": None}})
    assert core.list_namespaced_config_map(ns).items == []


def test_system_namespace_cannot_be_deleted_and_new_ones_get_a_service_account(client, ns):
    core = CoreV1Api(client)
    with pytest.raises(ApiException) as err:
        core.delete_namespace("kube-system")
    assert err.value.status == 403
    sup.eventually(lambda: [sa.metadata.name for sa in core.list_namespaced_service_account(ns).items] == ["default"])
    assert core.read_namespace(ns).metadata.labels["kubernetes.io/metadata.name"] == ns


def test_foreground_deletion_collects_dependents(client, ns):
    apps = AppsV1Api(client)
    d = apps.create_namespaced_deployment(ns, sup.deployment("fg"))
    rs = sup.deployment("fg-abc")
    rs.update(kind="ReplicaSet")
    rs["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "fg", "uid": d.metadata.uid,
                                          "controller": True, "blockOwnerDeletion": True}]
    apps.create_namespaced_replica_set(ns, rs)
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    sup.eventually(lambda: apps.list_namespaced_replica_set(ns).items == [])


def test_workload_statuses_deserialize_in_the_client(client, ns):
    apps = AppsV1Api(client)
    sts = sup.deployment("sts")
    sts.update(kind="StatefulSet")
    sts["spec"]["serviceName"] = "sts"
    assert apps.create_namespaced_stateful_set(ns, sts).status.replicas == 0
    ds = sup.deployment("ds")
    ds.update(kind="DaemonSet")
    ds["spec"].pop("replicas")
    assert apps.create_namespaced_daemon_set(ns, ds).status.number_ready == 0
    pdb = kubernetes.client.PolicyV1Api(client).create_namespaced_pod_disruption_budget(
        ns, {"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}})
    assert pdb.status.disruptions_allowed == 0
    hpa = kubernetes.client.AutoscalingV2Api(client).create_namespaced_horizontal_pod_autoscaler(
        ns, {"metadata": {"name": "h"}, "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}})
    assert hpa.status.desired_replicas == 0


def test_label_and_annotation_syntax_is_validated(client, ns):
    core = CoreV1Api(client)
    for meta in ({"labels": {"app": "has space"}}, {"labels": {"-bad": "x"}}, {"annotations": {"example.com/ok/extra": "x"}},
                 {"labels": {"app": "x" * 64}}):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_config_map(ns, {"metadata": {"name": "lbl", **meta}})
        assert err.value.status == 422, meta
    ok = core.create_namespaced_config_map(ns, {"metadata": {"name": "lbl", "labels": {"app.kubernetes.io/name": "web", "empty": ""},
                                                             "annotations": {"example.com/note": "any text at all"}}})
    assert ok.metadata.labels == {"app.kubernetes.io/name": "web", "empty": ""}


def test_eviction_respects_disruption_budgets(client, ns):
    core = CoreV1Api(client)
    ready = {"conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}
    for name in ("e1", "e2"):
        core.create_namespaced_pod(ns, sup.pod(name, labels={"app": "db"}))
        core.patch_namespaced_pod_status(name, ns, {"status": ready})
    core.create_namespaced_pod(ns, sup.pod("free", labels={"app": "other"}))
    kubernetes.client.PolicyV1Api(client).create_namespaced_pod_disruption_budget(
        ns, {"metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}})
    evict = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "e1", "namespace": ns}}
    core.create_namespaced_pod_eviction("e1", ns, evict)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("e2", ns, {**evict, "metadata": {"name": "e2", "namespace": ns}})
    assert err.value.status == 429 and _status(err.value)["reason"] == "TooManyRequests"
    core.create_namespaced_pod_eviction("free", ns, {**evict, "metadata": {"name": "free", "namespace": ns}})
    assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == ["e2"]


def test_defaults_like_the_real_server(client, ns):
    svc = CoreV1Api(client).create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                                                                                              "ports": [{"port": 80}]}})
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip.startswith("10.96.")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 80
    replaced = CoreV1Api(client).patch_namespaced_service("web", ns, {"spec": {"ports": [{"port": 80, "name": "http"}]}})
    assert replaced.spec.cluster_ip == svc.spec.cluster_ip
    body = sup.deployment("defaults")
    body["spec"].pop("replicas")
    d = AppsV1Api(client).create_namespaced_deployment(ns, body)
    assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10
    assert d.spec.progress_deadline_seconds == 600


def test_pod_and_configmap_validation(client, ns):
    core = CoreV1Api(client)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, {"metadata": {"name": "nocontainers"}, "spec": {"containers": []}})
    assert err.value.status == 422 and _status(err.value)["details"]["causes"][0]["field"] == "spec.containers"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, {"metadata": {"name": "noimage"}, "spec": {"containers": [{"name": "c"}]}})
    assert _status(err.value)["details"]["causes"][0]["field"] == "spec.containers[0].image"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "badkey"}, "data": {"no spaces": "x"}})
    assert err.value.status == 422
