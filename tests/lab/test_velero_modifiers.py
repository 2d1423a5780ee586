"""The lab Velero's resource modifiers (lab/controllers/velero_modifiers.py): conditions, JSON patch operations, Velero's
value forms, test-guarded rules, errors."""

import json

import pytest

from lab.controllers import velero_modifiers as VM


def cm(doc):
    return {"data": {"m.yaml": json.dumps(doc)}}


SERVICE = {"metadata": {"name": "public", "namespace": "shop-x", "labels": {"tier": "edge"}},
           "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 31080}]}}


def test_load_validates_the_document():
    with pytest.raises(VM.ModifierError, match="does not exist"):
        VM.load(None)
    with pytest.raises(VM.ModifierError, match="exactly one key"):
        VM.load({"data": {"a": "", "b": ""}})
    with pytest.raises(VM.ModifierError, match="unsupported resource modifier version"):
        VM.load(cm({"version": "v2"}))
    with pytest.raises(VM.ModifierError, match="groupResource"):
        VM.load(cm({"version": "v1", "resourceModifierRules": [{"conditions": {}}]}))


def test_guarded_rules_apply_or_skip():
    rules = VM.load(cm({"version": "v1", "resourceModifierRules": [
        {"conditions": {"groupResource": "services", "resourceNameRegex": "^public$"},
         "patches": [{"operation": "test", "path": "/spec/type", "value": "LoadBalancer"},
                     {"operation": "replace", "path": "/spec/type", "value": "ClusterIP"},
                     {"operation": "remove", "path": "/spec/externalTrafficPolicy"}]},
        {"conditions": {"groupResource": "services"},
         "patches": [{"operation": "test", "path": "/spec/ports/0/nodePort", "value": "31080"},
                     {"operation": "remove", "path": "/spec/ports/0/nodePort"}]},
        {"conditions": {"groupResource": "services"},   # a test that fails skips its rule
         "patches": [{"operation": "test", "path": "/spec/type", "value": "NodePort"}, {"operation": "add", "path": "/spec/x", "value": "1"}]},
        {"conditions": {"groupResource": "deployments.apps"}, "patches": [{"operation": "add", "path": "/spec/replicas", "value": "0"}]},
    ]}))
    out, applied = VM.apply(rules, SERVICE, "services")
    assert applied == 2 and out["spec"] == {"type": "ClusterIP", "ports": [{"port": 80}]}
    assert SERVICE["spec"]["type"] == "LoadBalancer"   # the input is not changed


def test_conditions_and_value_forms():
    rules = [{"conditions": {"groupResource": "services", "namespaces": ["other"]}, "patches": [{"operation": "add", "path": "/a", "value": "1"}]},
             {"conditions": {"groupResource": "services", "labelSelector": {"matchLabels": {"tier": "edge"}}},
              "patches": [{"operation": "add", "path": "/n", "value": "3"}, {"operation": "add", "path": "/b", "value": "true"},
                          {"operation": "add", "path": "/o", "value": '{"k": "v"}'}, {"operation": "add", "path": "/s", "value": "text"}]}]
    out, applied = VM.apply(rules, SERVICE, "services")
    assert applied == 1 and "a" not in out
    assert (out["n"], out["b"], out["o"], out["s"]) == (3, True, {"k": "v"}, "text")


def test_a_failing_patch_is_an_error():
    rules = [{"conditions": {"groupResource": "services"}, "patches": [{"operation": "remove", "path": "/spec/missing"}]}]
    with pytest.raises(VM.ModifierError, match="no such member"):
        VM.apply(rules, SERVICE, "services")
