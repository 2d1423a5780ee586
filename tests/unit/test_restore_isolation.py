"""The restore test's isolation plan (issue 12 item 2): what is excluded, what is patched, and the patches' form."""

import json

from ansible_collections.machinenativeops.platform.plugins.module_utils import restore_isolation as R


def item(resource, name, namespace="shop", owned=False, service=None):
    out = {"resource": resource, "name": name, "namespace": namespace, "owned": owned, "api_version": "v1", "kind": "X"}
    if service is not None:
        out["service"] = service
    return out


def test_service_details():
    lb = {"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerIP": "1.2.3.4",
                   "ports": [{"port": 80, "nodePort": 31080}, {"port": 443}]}}
    assert R.service_details(lb) == {"type": "LoadBalancer", "node_ports": [[0, 31080]], "fields": ["externalTrafficPolicy", "loadBalancerIP"]}
    assert R.service_details({"spec": {"ports": [{"port": 80}]}}) == {"type": "ClusterIP", "node_ports": [], "fields": []}


def test_plan_reports_and_patches_only_what_is_in_scope():
    items = [item("deployments.apps", "web"), item("replicasets.apps", "web-1", owned=True), item("cronjobs.batch", "nightly"),
             item("jobs.batch", "migrate"), item("daemonsets.apps", "agent"), item("ingresses.networking.k8s.io", "shop"),
             item("services", "public", service={"type": "LoadBalancer", "node_ports": [[0, 31080]], "fields": ["externalTrafficPolicy"]}),
             item("services", "internal", service={"type": "ClusterIP", "node_ports": [], "fields": []}),
             item("deployments.apps", "other", namespace="elsewhere")]
    plan = R.plan(items, ["shop"])
    report = plan["report"]
    assert report["scaled_to_zero"] == ["deployments.apps shop/web"]          # owned ReplicaSets and other namespaces not
    assert report["suspended_cronjobs"] == ["shop/nightly"] and report["unscheduled_daemonsets"] == ["shop/agent"]
    assert report["excluded"] == {"jobs.batch": ["shop/migrate"], "ingresses.networking.k8s.io": ["shop/shop"]}
    assert report["services_to_cluster_ip"] == ["shop/public (LoadBalancer)"]
    assert plan["restore_pvs"] is False and "persistentvolumeclaims" in plan["excluded_resources"]
    rules = plan["modifiers"]["resourceModifierRules"]
    assert plan["modifiers"]["version"] == "v1"
    by_resource = {}
    for rule in rules:
        by_resource.setdefault(rule["conditions"]["groupResource"], []).append(rule)
    assert by_resource["deployments.apps"][0]["patches"] == [{"operation": "add", "path": "/spec/replicas", "value": "0"}]
    assert by_resource["cronjobs.batch"][0]["patches"] == [{"operation": "add", "path": "/spec/suspend", "value": "true"}]
    selector = json.loads(by_resource["daemonsets.apps"][0]["patches"][0]["value"])
    assert selector == {"machinenativeops.io/restore-test": "never-scheduled"}
    service_rules = by_resource["services"]
    assert [r["conditions"]["resourceNameRegex"] for r in service_rules] == ["^public$", "^public$"]
    assert service_rules[0]["patches"] == [{"operation": "test", "path": "/spec/type", "value": "LoadBalancer"},
                                           {"operation": "replace", "path": "/spec/type", "value": "ClusterIP"},
                                           {"operation": "remove", "path": "/spec/externalTrafficPolicy"}]
    # each nodePort in a rule of its own, guarded by a test of its value
    assert service_rules[1]["patches"] == [{"operation": "test", "path": "/spec/ports/0/nodePort", "value": "31080"},
                                           {"operation": "remove", "path": "/spec/ports/0/nodePort"}]


def test_names_with_dots_are_anchored_and_escaped():
    plan = R.plan([item("services", "a.b", service={"type": "NodePort", "node_ports": [], "fields": []})], ["shop"])
    (rule,) = [r for r in plan["modifiers"]["resourceModifierRules"] if r["conditions"]["groupResource"] == "services"]
    assert rule["conditions"]["resourceNameRegex"] == "^a\\.b$"


def test_configmap_holds_one_json_document():
    cm = R.configmap("r-modifiers", "velero", {"version": "v1", "resourceModifierRules": []}, {"k": "v"})
    assert list(cm["data"]) == ["resource-modifiers.yaml"] and json.loads(cm["data"]["resource-modifiers.yaml"])["version"] == "v1"
    assert cm["metadata"] == {"name": "r-modifiers", "namespace": "velero", "labels": {"k": "v"}}
