"""playbooks/deploy.yml through ansible-playbook against the lab inventory (rolling and canary strategies)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest

from lab.faults import Faults
from tests.integration.canary_support import ROOT, LabApp, run_playbook
from tests.integration.canary_support import run_canary as run_canary_step

pytestmark = [pytest.mark.lab, pytest.mark.slow]

DEPLOY = ROOT / "playbooks" / "deploy.yml"
FAST_CANARY = {"deploy_analysis": {"interval": "6s", "min_requests": 10}, "deploy_canary_pause": 6, "deploy_canary_max_checks": 20}


@pytest.fixture
def app(lab_endpoints):
    lab_app = LabApp(lab_endpoints, f"deploy-{uuid.uuid4().hex[:8]}").create(canary=False)
    yield lab_app
    lab_app.delete()


def deploy(app: LabApp, tmp_path: Path, **extra):
    result_file = tmp_path / "canary.json"
    extravars = {"deploy_namespace": app.namespace, "deploy_app": "reviews", "deploy_image": "example/reviews:2.0.0",
                 "deploy_canary_result_file": str(result_file), "deploy_webhook_url": app.endpoints["webhook"]["url"]}
    extravars.update(extra)
    proc = run_playbook(app.endpoints, DEPLOY, extravars)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return proc.returncode, result, proc.stdout + proc.stderr


def notifications(app: LabApp) -> list[dict]:
    with urllib.request.urlopen(app.endpoints["webhook"]["alerts_url"], timeout=10) as resp:
        received = json.loads(resp.read())
    found = []
    for item in received:
        payload = item.get("payload", item) if isinstance(item, dict) else {}
        if isinstance(payload, dict) and payload.get("source") == "machinenativeops.platform.deploy" and payload.get("namespace") == app.namespace:
            found.append(payload)
    return found


def stable_image(app: LabApp) -> str:
    return app.apps.read_namespaced_deployment("reviews", app.namespace).spec.template.spec.containers[0].image


def test_canary_strategy_promotes_and_moves_stable(app, tmp_path):
    rc, result, out = deploy(app, tmp_path, **FAST_CANARY)
    assert rc == 0, out[-4000:]
    assert result["decision"] == "promoted"
    # the promotion to 100 % waited for as many ready canary replicas as stable has (2): capacity followed the weight
    assert {k: result["capacity"][k] for k in ("action", "needed", "stable_replicas")} == {"action": "ready", "needed": 2, "stable_replicas": 2}
    dep = app.apps.read_namespaced_deployment("reviews", app.namespace)
    assert dep.spec.template.spec.containers[0].image == "example/reviews:2.0.0"
    assert dep.spec.template.metadata.labels["version"] == "2.0.0"
    assert app.weights() == {"stable": 100, "canary": 0}
    assert app.state()["phase"] == "promoted"
    assert app.apps.read_namespaced_deployment("reviews-canary", app.namespace).spec.replicas == 0
    dr = app.custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", app.namespace, "destinationrules", "reviews")
    assert {s["name"] for s in dr["spec"]["subsets"]} == {"stable", "canary"}
    assert [n["outcome"] for n in notifications(app)] == ["promoted"]
    assert app.endpoints["webhook"]["url"] not in out  # the URL is a secret


def test_canary_strategy_rolls_back_on_errors(app, tmp_path):
    app.set_traffic(version="canary", error_ratio=0.3)
    rc, result, out = deploy(app, tmp_path, **FAST_CANARY)
    assert rc != 0
    assert "Canary example/reviews:2.0.0 rolled back" in out
    assert result["decision"] == "rolled_back"
    assert app.weights() == {"stable": 100, "canary": 0}
    assert stable_image(app) == "example/reviews:1.0.0"
    assert app.apps.read_namespaced_deployment("reviews-canary", app.namespace).spec.replicas == 0
    assert [n["outcome"] for n in notifications(app)] == ["rolled_back"]


def test_rolling_strategy_updates_the_image(app, tmp_path):
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling")
    assert rc == 0, out[-4000:]
    assert stable_image(app) == "example/reviews:2.0.0"
    assert [n["outcome"] for n in notifications(app)] == ["deployed"]


def test_rolling_strategy_undoes_a_stuck_rollout(app, tmp_path, lab_endpoints):
    Faults.from_endpoints(lab_endpoints).inject("rollout_stuck", namespace=app.namespace, name="reviews", target_kind="Deployment")
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling", deploy_rollout_timeout=8)
    assert rc != 0
    assert "was rolled back" in out
    assert stable_image(app) == "example/reviews:1.0.0"
    assert [n["outcome"] for n in notifications(app)] == ["rolled_back"]


def closed_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rolling_failing_notification_does_not_roll_back_a_good_rollout(app, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/hook"  # nothing listens there: the notification fails
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling", deploy_webhook_url=url)
    assert rc != 0
    assert "and stays so, but notifications failed: webhook notification (deployed) not sent" in out, out[-4000:]
    assert stable_image(app) == "example/reviews:2.0.0"
    assert url not in out  # the URL is a secret


def test_rolling_rejected_patch_changes_and_rolls_back_nothing(app, tmp_path):
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling")
    assert rc == 0, out[-4000:]
    # the lab's read-only identity may read the Deployment but its patch is refused (403)
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling", deploy_image="example/reviews:3.0.0", k8s_context="lab-readonly")
    assert rc != 0
    assert "was rejected" in out and "Nothing was changed and nothing was rolled back; the Deployment still runs example/reviews:2.0.0" in out, out[-4000:]
    assert stable_image(app) == "example/reviews:2.0.0"
    assert [n["outcome"] for n in notifications(app)] == ["deployed", "rejected"]


def test_rolling_refuses_a_container_the_deployment_does_not_have(app, tmp_path):
    rc, _result, out = deploy(app, tmp_path, deploy_strategy="rolling", deploy_container="sidecar")
    assert rc != 0 and "has no container sidecar (containers: reviews); a patch would add one" in out, out[-4000:]
    containers = app.apps.read_namespaced_deployment("reviews", app.namespace).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("reviews", "example/reviews:1.0.0")]


def test_canary_check_mode_predicts_one_step_and_changes_nothing(app, tmp_path):
    """Issue 12 item 6: --check predicts the first step and stops (it used to loop for deploy_canary_max_checks x pause)."""
    extravars = {"deploy_namespace": app.namespace, "deploy_app": "reviews", "deploy_image": "example/reviews:2.0.0",
                 **FAST_CANARY, "deploy_canary_pause": 60, "deploy_canary_max_checks": 60}
    proc = run_playbook(app.endpoints, DEPLOY, extravars, check=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "check mode: the first step would be" in out, out[-6000:]
    prediction = out[out.index("check mode: the first step would be"):][:300]
    assert "advanced" in prediction and "canary started: 10% of the" in prediction, prediction
    assert app.weights() == {"stable": 100, "canary": 0} and app.state() is None
    assert "canary.machinenativeops.io/lease" not in (app.virtual_service()["metadata"].get("annotations") or {})
    assert "reviews-canary" not in {d.metadata.name for d in app.apps.list_namespaced_deployment(app.namespace).items}
    assert notifications(app) == []


# two series for one metric: a configuration error of canary_step (not "Prometheus unreachable"), raised on the first
# analysed step, after the canary already has traffic
TWO_SERIES = 'label_replace(vector(1), "s", "a", "", "") or label_replace(vector(1), "s", "b", "", "")'


def test_canary_module_error_rolls_back_and_scales_down_then_says_so(app, tmp_path):
    analysis = {**FAST_CANARY["deploy_analysis"], "metrics": [{"name": "two_series", "query": TWO_SERIES, "max": 10}]}
    rc, result, out = deploy(app, tmp_path, **{**FAST_CANARY, "deploy_analysis": analysis})
    assert rc != 0, out[-4000:]
    out = " ".join(out.split())   # the failure message, unwrapped
    assert "aborted at Analyse and shift traffic step by step: " in out and "two_series" in out
    assert result.get("failed") and "two_series" in result["msg"]   # the failed step's result is saved all the same
    assert "State left: traffic on stable (100%), canary Deployment reviews-canary scaled to 0" in out
    assert app.weights() == {"stable": 100, "canary": 0}
    assert app.state()["phase"] == "rolled_back" and any(h["weight_before"] == 10 for h in app.state()["history"])
    assert app.apps.read_namespaced_deployment("reviews-canary", app.namespace).spec.replicas == 0
    assert "canary.machinenativeops.io/lease" not in (app.virtual_service()["metadata"].get("annotations") or {})   # released
    assert [n["outcome"] for n in notifications(app)] == ["aborted"]
    assert stable_image(app) == "example/reviews:1.0.0"


def test_second_job_on_a_leased_canary_stops_without_touching_it(app, tmp_path):
    """Another job holds the canary's lease: a second deploy.yml run fails before it changes the canary Deployment,
    the weights or the lease, and its rescue does not roll the other job's canary back."""
    app.apps.create_namespaced_deployment(app.namespace, app.deployment("reviews-canary", "canary", "v2", "example/reviews:2.0.0"))
    app.wait_available("reviews-canary")
    rc, first, out = run_canary_step(app, action="set_weight", weight=10, lease={"holder": "awx-job-1", "duration": "10m"})
    assert rc == 0 and first["lease"]["action"] == "acquired", out
    lease_before = app.virtual_service()["metadata"]["annotations"]["canary.machinenativeops.io/lease"]
    rc, result, out = deploy(app, tmp_path, **FAST_CANARY, deploy_image="example/reviews:3.0.0")
    assert rc != 0
    out = " ".join(out.split())
    assert "not started: Take the canary lease: " in out and "is being driven by awx-job-1" in out
    assert "This run did not change the canary" in out
    assert result == {}   # no step of this run's canary ran
    assert app.weights() == {"stable": 90, "canary": 10}
    assert app.virtual_service()["metadata"]["annotations"]["canary.machinenativeops.io/lease"] == lease_before
    canary = app.apps.read_namespaced_deployment("reviews-canary", app.namespace)
    assert canary.spec.replicas == 1 and canary.spec.template.spec.containers[0].image == "example/reviews:2.0.0"
    assert notifications(app) == []
