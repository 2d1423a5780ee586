"""canary_step through ansible-playbook against the lab: its API emulator (VirtualService/DestinationRule),
its controllers, its traffic exporter and its real Prometheus (1 s scrapes).

Analysis windows are 6 s so the suite stays short; the playbook loop paces itself with `until`/`delay`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from lab.faults import Faults
from tests.integration.canary_support import PLAYBOOKS, LabApp, canary_vars, kill_tree, playbook_command, playbook_env, run_canary

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ANALYSIS = {"interval": "6s", "min_requests": 10}
LOOP = {"loop_retries": 20, "delay": 6}


@pytest.fixture
def make_app(lab_endpoints):
    apps = []

    def make(**kwargs) -> LabApp:
        app = LabApp(lab_endpoints, f"canary-{uuid.uuid4().hex[:8]}").create(**kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.delete()


def history(app: LabApp) -> list[dict]:
    return app.state()["history"]


def wait_until_due(app: LabApp, interval: float = 6.0, timeout: float = 60.0) -> None:
    """Wait until the canary's next analysis window is complete (read from its state, not a fixed sleep)."""
    state = app.state()
    marks = [state.get("last_change_at"), state.get("last_analysis_at")]
    since = max(datetime.fromisoformat(m.replace("Z", "+00:00")).timestamp() for m in marks if m)
    deadline = time.monotonic() + timeout
    while time.time() < since + interval + 0.2:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def start_loop(app: LabApp, result_file: Path, **extra) -> subprocess.Popen:
    extravars = canary_vars(app, result_file, **extra)
    return subprocess.Popen(playbook_command(PLAYBOOKS / "canary_step.yml", extravars), cwd=Path(__file__).resolve().parents[2],
                            env=playbook_env(app.endpoints), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_weight(app: LabApp, weight: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.weights()["canary"] == weight:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the canary loop ended before weight {weight}: {proc.stdout.read()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"canary weight never reached {weight}: {app.weights()}")


def test_healthy_canary_is_promoted_step_by_step(make_app):
    app = make_app()
    rc, result, out = run_canary(app, analysis=ANALYSIS, **LOOP)
    assert rc == 0, out
    assert result["decision"] == "promoted" and result["phase"] == "promoted"
    assert result["weights_after"] == {"stable": 0, "canary": 100}
    assert app.weights() == {"stable": 0, "canary": 100}
    # an inconclusive analysis (a scrape gap on a loaded machine) may hold a step; nothing may fail
    entries = [h for h in history(app) if h["decision"] in ("advanced", "promoted")]
    assert [h["weight"] for h in entries] == [10, 30, 50, 80, 100]
    assert [h["decision"] for h in entries] == ["advanced"] * 4 + ["promoted"]
    assert all(h.get("verdict") != "failed" for h in history(app))
    for entry in entries[1:]:
        assert entry["verdict"] == "passed"
        assert {m["name"]: m["verdict"] for m in entry["metrics"]} == {
            "request_count": "passed", "request_success_rate": "passed", "request_error_rate": "passed", "request_duration": "passed"}
    last = result["analysis"]
    assert last["verdict"] == "passed" and last["requests"] >= 10
    assert all("reviews-canary" in m["query"] for m in last["metrics"])
    # finished: another step changes nothing
    rc, again, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and again["changed"] is False and again["decision"] == "promoted", out


def test_error_burst_at_30_rolls_back(make_app, lab_endpoints):
    app = make_app()
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        proc = start_loop(app, result_file, analysis=ANALYSIS, max_failed_checks=2, **LOOP)
        try:
            wait_weight(app, 30, proc)
            Faults.from_endpoints(lab_endpoints).inject("error_burst", namespace=app.namespace, name="reviews-canary",
                                                        target_kind="Deployment", params={"ratio": 0.5})
            # the breach is visible in Prometheus (the 5xx of the canary workload)
            errors = app.canary_requests_query().replace('destination_workload="reviews-canary"', 'destination_workload="reviews-canary",response_code=~"5.."')
            assert app.wait_for(errors, lambda v: v > 0) > 0
            out, _err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                kill_tree(proc)
        assert proc.returncode == 0, out
        result = json.loads(result_file.read_text())
    assert result["decision"] == "rolled_back"
    assert app.weights() == {"stable": 100, "canary": 0}
    entries = history(app)
    assert max(h["weight_before"] for h in entries) == 30  # never went past 30
    failed = [h for h in entries if h.get("verdict") == "failed"]
    assert len(failed) == 2
    for entry in failed:
        verdicts = {m["name"]: m["verdict"] for m in entry["metrics"]}
        assert verdicts["request_error_rate"] == "failed" and verdicts["request_success_rate"] == "failed"
    assert any("request_error_rate" in r and "above the maximum" in r for r in result["reasons"])
    assert any("rolled back" in r for r in result["reasons"])


def test_latency_regression_rolls_back(make_app):
    app = make_app()
    app.set_traffic(version="canary", p50_ms=400, p95_ms=2000)
    rc, result, out = run_canary(app, analysis=ANALYSIS, max_failed_checks=2, **LOOP)
    assert rc == 0, out
    assert result["decision"] == "rolled_back" and app.weights() == {"stable": 100, "canary": 0}
    latency = next(m for m in result["analysis"]["metrics"] if m["name"] == "request_duration")
    assert latency["verdict"] == "failed" and latency["value"] > 500 and latency["max"] == 500
    assert [h["weight"] for h in history(app)] == [10, 10, 0]


def test_zero_traffic_is_inconclusive_and_fails_without_promoting(make_app):
    app = make_app(rps=0)
    rc, result, out = run_canary(app, analysis=ANALYSIS, max_inconclusive=3, **LOOP)
    assert rc == 0, out
    assert app.query(app.canary_requests_query("1m")) == []  # Istio has no series at all for the canary
    entries = history(app)
    assert [h["decision"] for h in entries] == ["advanced", "inconclusive", "inconclusive", "rolled_back"]
    assert all(h.get("verdict") in (None, "inconclusive") for h in entries)
    assert all(h["weight"] <= 10 for h in entries)
    assert result["decision"] == "rolled_back" and app.weights() == {"stable": 100, "canary": 0}
    assert any("not enough traffic: no canary requests" in r for r in result["reasons"])
    assert any("too many inconclusive" in r for r in result["reasons"])


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_prometheus_down_holds_and_resumes(make_app):
    app = make_app()
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and result["decision"] == "advanced", out
    wait_until_due(app)
    before = app.virtual_service()
    rc, result, out = run_canary(app, analysis=ANALYSIS, prometheus_url=_closed_port_url(), prometheus_retries=0, prometheus_timeout=2)
    assert rc == 0, out
    assert result["decision"] == "held" and result["changed"] is False and result["verdict"] == "unavailable"
    assert any("Prometheus is unreachable" in r for r in result["reasons"])
    after = app.virtual_service()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert app.state()["failed_checks"] == 0 and app.state()["inconclusive_checks"] == 0
    # Prometheus back: the same canary goes on
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and result["decision"] == "advanced" and result["weights_after"]["canary"] == 30, out


def test_rerun_after_crash_resumes_at_the_same_step(make_app):
    app = make_app()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_loop(app, Path(tmp) / "result.json", analysis=ANALYSIS, **LOOP)
        try:
            wait_weight(app, 30, proc)
        finally:
            kill_tree(proc)  # the AWX job dies mid-canary, with its workers

    state = app.state()
    assert state["weight"] == 30 and state["step_index"] == 1
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0, out
    assert result["weights_before"] == {"stable": 70, "canary": 30}
    assert result["state"]["started_at"] == state["started_at"]
    assert result["decision"] in ("held", "advanced") and result["weights_after"]["canary"] in (30, 50)
    rc, result, out = run_canary(app, analysis=ANALYSIS, **LOOP)
    assert rc == 0 and result["decision"] == "promoted", out
    assert [h["weight"] for h in history(app) if h["decision"] in ("advanced", "promoted")] == [10, 30, 50, 80, 100]


def test_check_mode_and_diff_match_the_real_run(make_app):
    app = make_app()
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and result["decision"] == "advanced", out
    wait_until_due(app)
    before = app.virtual_service()
    rc, predicted, out = run_canary(app, analysis=ANALYSIS, check=True, diff=True)
    assert rc == 0, out
    assert app.virtual_service()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert predicted["changed"] is True and predicted["decision"] == "advanced"
    rc, real, out = run_canary(app, analysis=ANALYSIS, diff=True)
    assert rc == 0, out
    for key in ("changed", "decision", "verdict", "weights_before", "weights_after", "step_index", "phase", "diff"):
        assert predicted[key] == real[key], key
    assert real["diff"]["before"]["weights"] == {"stable": 90, "canary": 10}
    assert real["diff"]["after"]["weights"] == {"stable": 70, "canary": 30}
    assert set(predicted["patch"]) == set(real["patch"]) and predicted["patch"]["spec"] == real["patch"]["spec"]
    assert app.weights() == {"stable": 70, "canary": 30}
    # the same window again (a 60 s window cannot have completed since the change): nothing to do,
    # in check mode and for real
    for check in (True, False):
        rc, again, out = run_canary(app, analysis={**ANALYSIS, "interval": "60s"}, check=check)
        assert rc == 0 and again["changed"] is False and again["decision"] == "held", json.dumps(again, indent=1)[:4000]
        assert any("next analysis window" in r for r in again["reasons"])
    assert app.weights() == {"stable": 70, "canary": 30}


def test_missing_subset_is_reported_before_any_weight_changes(make_app):
    app = make_app(subsets=("stable",))
    before = app.virtual_service()
    for check in (True, False):
        rc, result, out = run_canary(app, analysis=ANALYSIS, check=check, ignore_errors=True)
        assert rc == 0, out
        assert result.get("failed") is True
        assert "DestinationRule" in result["msg"] and "no subset 'canary'" in result["msg"], result["msg"]
    after = app.virtual_service()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert app.weights() == {"stable": 100, "canary": 0}


def test_manual_rollback_and_status(make_app):
    app = make_app()
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and result["decision"] == "advanced", out
    rc, status, out = run_canary(app, action="status")
    assert rc == 0 and status["changed"] is False and status["weights_after"] == {"stable": 90, "canary": 10}, out
    assert status["phase"] == "progressing" and status["step_index"] == 0
    for changed in (True, False):
        rc, result, out = run_canary(app, action="rollback")
        assert rc == 0 and result["decision"] == "rolled_back" and result["changed"] is changed, out
    assert app.weights() == {"stable": 100, "canary": 0}
    rc, result, out = run_canary(app, analysis=ANALYSIS)
    assert rc == 0 and result["decision"] == "rolled_back" and result["changed"] is False, out


def test_comparison_with_stable_rolls_back_a_worse_canary(make_app):
    app = make_app()
    app.set_traffic(version="canary", error_ratio=0.1)
    analysis = {**ANALYSIS, "builtin_metrics": ["latency"], "compare": {"enabled": True, "error_ratio_tolerance": 1.0}}
    rc, result, out = run_canary(app, analysis=analysis, max_failed_checks=1, **LOOP)
    assert rc == 0, out
    assert result["decision"] == "rolled_back" and app.weights() == {"stable": 100, "canary": 0}
    names = {m["name"] for m in result["analysis"]["metrics"]}
    assert names == {"request_count", "request_duration"}  # the absolute error checks were disabled
    comparison = {c["name"]: c for c in result["analysis"]["comparisons"]}
    errors = comparison["error_ratio_vs_stable"]
    assert errors["verdict"] == "failed" and errors["p_value"] < 0.05
    assert errors["canary_ratio"] > 0.05 and errors["stable_ratio"] == 0.0
    assert comparison["latency_vs_stable"]["verdict"] in ("passed", "failed")


def test_canary_replicas_follow_the_weight_before_it_moves(make_app):
    """capacity.mode=proportional (issue 12 item 7): 50 % of a 4-replica stable needs 2 canary replicas; the first call
    scales the canary and holds the weight, a later call moves it once both replicas are ready."""
    app = make_app()
    app.apps.patch_namespaced_deployment("reviews", app.namespace, {"spec": {"replicas": 4}})
    app.wait_available("reviews")
    ask = {"action": "set_weight", "weight": 50, "capacity": {"mode": "proportional"}}
    rc, predicted, out = run_canary(app, check=True, **ask)
    assert rc == 0 and predicted["changed"] and predicted["decision"] == "held", out
    assert predicted["capacity"]["action"] == "scale" and predicted["capacity"]["needed"] == 2
    assert app.apps.read_namespaced_deployment("reviews-canary", app.namespace).spec.replicas == 1   # check mode wrote nothing
    rc, scaled, out = run_canary(app, **ask)
    assert rc == 0 and scaled["changed"] and scaled["decision"] == "held", out
    assert {k: scaled["capacity"][k] for k in ("action", "needed", "replicas", "stable_replicas")} == {
        "action": "scale", "needed": 2, "replicas": 1, "stable_replicas": 4}
    assert f"scaling Deployment {app.namespace}/reviews-canary from 1 to 2 replicas" in scaled["reasons"][-1]
    assert app.weights() == {"stable": 100, "canary": 0} and app.state() is None   # no weight, no state before capacity
    assert app.apps.read_namespaced_deployment("reviews-canary", app.namespace).spec.replicas == 2
    app.wait_available("reviews-canary")
    rc, moved, out = run_canary(app, **ask)
    assert rc == 0 and moved["changed"] and moved["decision"] == "advanced" and moved["capacity"]["action"] == "ready", out
    assert app.weights() == {"stable": 50, "canary": 50}
    rc, again, out = run_canary(app, **ask)
    assert rc == 0 and not again["changed"] and "capacity" not in again, out


def test_lease_keeps_a_second_job_off_the_canary_but_never_blocks_a_rollback(make_app):
    """Issue 12 item 6: two jobs on one canary; the lease is kept without a write by its holder, refused to the second
    job and to a call without holder, taken over once expired, and a rollback by anyone goes through."""
    app = make_app()
    # 30 s: the calls below (a few seconds each) keep it valid and within its first half (no renewal write)
    job1 = {"action": "set_weight", "lease": {"holder": "job-1", "duration": "30s"}}
    rc, first, out = run_canary(app, weight=10, **job1)
    assert rc == 0 and first["decision"] == "advanced" and first["lease"]["holder"] == "job-1", out
    assert first["lease"]["action"] == "acquired"
    rc, again, out = run_canary(app, weight=10, **job1)
    assert rc == 0 and not again["changed"] and again["lease"]["action"] == "kept", out   # idempotent: no renewal write
    rc, second, out = run_canary(app, weight=30, action="set_weight", lease={"holder": "job-2"}, ignore_errors=True)
    assert second.get("failed") and "is being driven by job-1" in second["msg"], out
    rc, anonymous, out = run_canary(app, weight=30, action="set_weight", ignore_errors=True)
    assert anonymous.get("failed") and "is being driven by job-1" in anonymous["msg"], out
    assert app.weights() == {"stable": 90, "canary": 10}
    # job-1 stops calling (a crashed job): its lease expires and does not block the canary for ever
    expires = datetime.fromisoformat(again["lease"]["expires_at"].replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, expires - time.time()) + 0.3)
    rc, takeover, out = run_canary(app, weight=30, action="set_weight", lease={"holder": "job-2"})
    assert rc == 0 and takeover["changed"] and takeover["lease"]["holder"] == "job-2" and takeover["lease"]["action"] == "acquired", out
    assert any("the lease of job-1 expired at" in r and "job-2 takes it over" in r for r in takeover["reasons"])
    rc, rolled, out = run_canary(app, action="rollback")   # no holder, lease of job-2 valid: still allowed
    assert rc == 0 and rolled["decision"] == "rolled_back" and app.weights() == {"stable": 100, "canary": 0}, out
    assert rolled["lease"]["holder"] == "job-2"
    rc, done, out = run_canary(app, weight=30, action="set_weight", lease={"holder": "job-2"}, ignore_errors=True)
    assert done.get("failed") and "rolled back" in done["msg"], out   # a finished canary stays finished
