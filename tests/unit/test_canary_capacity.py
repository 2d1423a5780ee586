"""Canary capacity (issue 12 item 7): replicas that follow the weight, HPA-owned canaries, readiness gate."""

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import canary_capacity as C


def deployment(name, replicas=1, *, ready=None, updated=None, generation=1, observed=1):
    ready = replicas if ready is None else ready
    return {"metadata": {"namespace": "shop", "name": name, "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": replicas if updated is None else updated}}


def hpa(target, minimum=1, maximum=10):
    return {"metadata": {"namespace": "shop", "name": f"{target}-hpa"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": minimum, "maxReplicas": maximum}}


OPTS = C.options({"mode": "proportional"})


@pytest.mark.parametrize(("stable", "weight", "minimum", "maximum", "needed"), [
    (10, 10, 1, None, 1), (10, 30, 1, None, 3), (10, 33, 1, None, 4), (4, 50, 1, None, 2), (3, 80, 1, None, 3),
    (3, 100, 1, None, 3), (1, 10, 1, None, 1), (0, 50, 1, None, 1), (10, 10, 2, None, 2), (20, 80, 1, 5, 5),
    (7, 0, 1, None, 0), (1000, 1, 1, None, 10),
])
def test_needed_replicas(stable, weight, minimum, maximum, needed):
    assert C.needed_replicas(stable, weight, minimum, maximum) == needed


def test_scale_before_the_weight_moves():
    plan = C.plan(deployment("web-canary", 1), deployment("web", 4), None, 50, OPTS)
    assert (plan["action"], plan["needed"], plan["replicas"], plan["patch"]) == ("scale", 2, 1, {"spec": {"replicas": 2}})
    assert "scaling Deployment shop/web-canary from 1 to 2 replicas" in plan["reason"]


def test_wait_until_the_replicas_are_ready_then_ready():
    assert C.plan(deployment("web-canary", 2, ready=1), deployment("web", 4), None, 50, OPTS)["action"] == "wait"
    # a rollout the controller has not observed yet counts no ready replicas
    assert C.plan(deployment("web-canary", 2, generation=3, observed=2), deployment("web", 4), None, 50, OPTS)["action"] == "wait"
    # ready pods of an old template do not count
    assert C.plan(deployment("web-canary", 2, updated=1), deployment("web", 4), None, 50, OPTS)["action"] == "wait"
    plan = C.plan(deployment("web-canary", 2), deployment("web", 4), None, 50, OPTS)
    assert plan["action"] == "ready" and plan["patch"] is None


def test_more_replicas_than_needed_are_kept():
    assert C.plan(deployment("web-canary", 5), deployment("web", 4), None, 10, OPTS)["action"] == "ready"


def test_an_hpa_on_the_canary_gets_its_min_raised():
    plan = C.plan(deployment("web-canary", 1), deployment("web", 10), hpa("web-canary", 1, 10), 30, OPTS)
    assert plan["action"] == "raise_hpa" and plan["patch"] == {"spec": {"minReplicas": 3}} and plan["hpa"] == "shop/web-canary-hpa"
    assert C.plan(deployment("web-canary", 3), deployment("web", 10), hpa("web-canary", 3, 10), 30, OPTS)["action"] == "ready"
    with pytest.raises(C.CapacityError, match="allows at most 2: raise its maxReplicas"):
        C.plan(deployment("web-canary", 1), deployment("web", 10), hpa("web-canary", 1, 2), 30, OPTS)


def test_hpa_lookup_matches_kind_and_name():
    hpas = [hpa("web"), hpa("web-canary")]
    assert C.hpa_for(hpas, "web-canary")["metadata"]["name"] == "web-canary-hpa"
    assert C.hpa_for(hpas, "other") is None
    assert C.hpa_for([dict(hpa("web-canary"), spec={"scaleTargetRef": {"kind": "StatefulSet", "name": "web-canary"}})], "web-canary") is None


def test_missing_workloads_and_bad_options_are_errors():
    with pytest.raises(C.CapacityError, match="canary Deployment does not exist"):
        C.plan(None, deployment("web", 4), None, 50, OPTS)
    with pytest.raises(C.CapacityError, match="stable Deployment does not exist"):
        C.plan(deployment("web-canary"), None, None, 50, OPTS)
    with pytest.raises(C.CapacityError, match="mode must be one of"):
        C.options({"mode": "linear"})
    with pytest.raises(C.CapacityError, match="min_replicas must be at least 1"):
        C.options({"mode": "proportional", "min_replicas": 0})
    with pytest.raises(C.CapacityError, match="max_replicas \\(1\\) is below"):
        C.options({"mode": "proportional", "min_replicas": 2, "max_replicas": 1})
    assert C.options(None) == {"mode": "none", "min_replicas": 1, "max_replicas": None}
