"""Pure functions of the controllers: cron, rollout steps, hashes, pod and deployment status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lab.controllers import logic as L
from lab.controllers.clock import Clock, format_time, parse_time
from lab.controllers.cron import CronError, parse_cron, parse_duration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- cron ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("*/15 * * * *", T0, T0 + timedelta(minutes=15)),
    ("0 2 * * *", T0, T0 + timedelta(hours=2)),
    ("30 4 1 * *", T0 + timedelta(hours=5), datetime(2026, 2, 1, 4, 30, tzinfo=UTC)),
    ("0 0 * * mon", T0, datetime(2026, 1, 5, tzinfo=UTC)),  # 2026-01-01 is a Thursday
    ("0 0 * * 7", T0, datetime(2026, 1, 4, tzinfo=UTC)),  # 7 is Sunday too
    ("0 0 29 2 *", T0, datetime(2028, 2, 29, tzinfo=UTC)),
    ("0 0 13 * 5", T0, datetime(2026, 1, 2, tzinfo=UTC)),  # day-of-month OR day-of-week
    ("@hourly", T0 + timedelta(minutes=1), T0 + timedelta(hours=1)),
    ("@daily", T0, T0 + timedelta(days=1)),
    ("0 9-17/4 * jan-mar *", T0, T0 + timedelta(hours=9)),
    ("@every 1h30m", T0, T0 + timedelta(minutes=90)),
])
def test_cron_next_after(schedule, after, expected):
    assert parse_cron(schedule).next_after(after) == expected


@pytest.mark.parametrize("bad", ["", "* * * *", "61 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "a b c d e", "@every 0s"])
def test_cron_rejects_bad_schedules(bad):
    with pytest.raises(CronError):
        parse_cron(bad)


def test_cron_last_due_counts_missed_runs():
    last, count = parse_cron("*/10 * * * *").last_due(T0, T0 + timedelta(minutes=35))
    assert (last, count) == (T0 + timedelta(minutes=30), 3)
    assert parse_cron("0 0 * * *").last_due(T0, T0 + timedelta(hours=23)) == (None, 0)


def test_durations():
    assert parse_duration("720h0m0s") == timedelta(days=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(CronError):
        parse_duration("5 minutes")


# -- clock ---------------------------------------------------------------------------------------
def test_manual_clock_advances_and_keeps_its_lead_in_real_mode():
    clock = Clock.manual("2030-01-01T00:00:00Z")
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    clock.advance(90)
    assert format_time(clock.now()) == "2030-01-01T00:01:30Z"
    clock.set_real()
    assert clock.now() >= datetime(2030, 1, 1, 0, 1, 30, tzinfo=UTC)  # never backwards
    with pytest.raises(ValueError, match="real mode"):
        clock.advance(1)


def test_parse_time_forms():
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time(None) is None


# -- hashes, names, selectors ----------------------------------------------------------------------
def test_template_hash_is_deterministic_and_ignores_the_hash_label():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
    h = L.template_hash(t)
    assert h == L.template_hash({"spec": t["spec"], "metadata": {"labels": {"app": "web", "pod-template-hash": "zzz"}}})
    assert set(h) <= set(L.SAFE_ALPHABET) and 1 <= len(h) <= 10
    t2 = {"metadata": t["metadata"], "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    assert L.template_hash(t2) != h
    assert L.suffix("web-abc", 0) == L.suffix("web-abc", 0) != L.suffix("web-abc", 1)
    assert len(L.suffix("x", 3)) == 5


def test_scaled_values_round_like_kubernetes():
    assert L.scaled_value("25%", 10, True) == 3
    assert L.scaled_value("25%", 10, False) == 2
    assert L.scaled_value(2, 10, True) == 2
    assert L.scaled_value("3", 10, True) == 3


def test_label_selector_matching():
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                                               {"key": "skip", "operator": "DoesNotExist"}]}
    assert L.match_selector(sel, {"app": "web", "tier": "a"})
    assert not L.match_selector(sel, {"app": "web", "tier": "c"})
    assert not L.match_selector(sel, {"app": "web", "tier": "a", "skip": "1"})
    assert L.match_selector(None, {})


def test_read_faults_tolerates_bad_annotations():
    good = {"metadata": {"annotations": {L.FAULTS_ANNOTATION: '[{"kind": "crash_loop", "since": "2026-01-01T00:00:00Z", "params": {"interval": 5}}]'}}}
    assert L.read_faults(good)["crash_loop"]["params"] == {"interval": 5}
    assert L.read_faults({"metadata": {"annotations": {L.FAULTS_ANNOTATION: "not json"}}}) == {}
    assert L.read_faults({"metadata": {}}) == {}


# -- rolling updates -----------------------------------------------------------------------------
def test_rolling_update_surges_then_replaces_old_pods_as_new_ones_become_available():
    # 4 replicas, maxSurge 1, maxUnavailable 0: one new pod at a time
    new, olds = L.rolling_targets(4, 1, 0, (0, 0), [(4, 4)])
    assert (new, olds) == (1, [4])
    new, olds = L.rolling_targets(4, 1, 0, (1, 0), [(4, 4)])  # the new pod is not ready yet
    assert (new, olds) == (1, [4])
    new, olds = L.rolling_targets(4, 1, 0, (1, 1), [(4, 4)])  # it is: one old pod goes
    assert (new, olds) == (1, [3])
    new, olds = L.rolling_targets(4, 1, 0, (1, 1), [(3, 3)])
    assert (new, olds) == (2, [3])


def test_rolling_update_with_max_unavailable_scales_old_down_at_once():
    new, olds = L.rolling_targets(4, 0, 2, (0, 0), [(4, 4)])
    assert (new, olds) == (0, [2])
    new, olds = L.rolling_targets(4, 0, 2, (0, 0), [(2, 2)])
    assert (new, olds) == (2, [2])


def test_rolling_update_never_exceeds_surge_or_unavailability_over_a_full_rollout():
    desired, surge, unavailable = 5, 2, 1
    new_spec, old_spec = 0, 5
    for _ in range(20):
        # every scheduled pod becomes ready between steps
        new_spec, (old_spec,) = L.rolling_targets(desired, surge, unavailable, (new_spec, new_spec), [(old_spec, old_spec)])
        assert new_spec + old_spec <= desired + surge
        assert new_spec + old_spec >= desired - unavailable
    assert (new_spec, old_spec) == (5, 0)


def test_scaling_without_rollout_goes_straight_to_desired():
    assert L.rolling_targets(6, 1, 1, (3, 3), []) == (6, [])
    assert L.rolling_targets(2, 1, 1, (3, 3), []) == (2, [])


# -- pod status ----------------------------------------------------------------------------------
NODE = {"metadata": {"name": "lab-node-1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                       "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]}}


def _pod(**status):
    return {"metadata": {"name": "web-abc-xyz12"}, "spec": {"nodeName": "lab-node-1", "containers": [{"name": "app", "image": "nginx:1"}]},
            "status": status}


def _ready(status):
    return next(c["status"] for c in status["conditions"] if c["type"] == "Ready")


def test_pod_becomes_ready_after_the_delay():
    status, due = L.desired_pod_status(_pod(), T0, faults={}, node=NODE, node_index=1, ready_delay=2)
    assert status["phase"] == "Running" and _ready(status) == "False" and due == T0 + timedelta(seconds=2)
    assert status["hostIP"] == "10.0.0.11" and status["podIP"].startswith("10.244.1.")
    later, due2 = L.desired_pod_status({**_pod(), "status": status}, T0 + timedelta(seconds=2), faults={}, node=NODE, node_index=1, ready_delay=2)
    assert _ready(later) == "True" and due2 is None
    assert later["containerStatuses"][0]["ready"] is True and later["containerStatuses"][0]["restartCount"] == 0
    again, _ = L.desired_pod_status({**_pod(), "status": later}, T0 + timedelta(seconds=50), faults={}, node=NODE, node_index=1, ready_delay=2)
    assert again == later  # stable: nothing to write


def test_crash_loop_restarts_every_interval():
    fault = {"crash_loop": {"kind": "crash_loop", "since": format_time(T0), "params": {"interval": 10}}}
    s1, due = L.desired_pod_status(_pod(), T0, faults=fault, node=NODE, node_index=1, ready_delay=1)
    cs = s1["containerStatuses"][0]
    assert cs["restartCount"] == 1 and cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["reason"] == "Error" and _ready(s1) == "False"
    assert due == T0 + timedelta(seconds=10)
    s2, _ = L.desired_pod_status({**_pod(), "status": s1}, T0 + timedelta(seconds=10), faults=fault, node=NODE, node_index=1, ready_delay=1)
    assert s2["containerStatuses"][0]["restartCount"] == 2


def test_image_pull_backoff_then_unschedulable_and_job_pods():
    fault = {"image_pull_backoff": {"kind": "image_pull_backoff", "since": format_time(T0), "params": {}}}
    s1, _ = L.desired_pod_status(_pod(), T0, faults=fault, node=NODE, node_index=1, ready_delay=1)
    assert s1["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull" and s1["phase"] == "Pending"
    s2, _ = L.desired_pod_status({**_pod(), "status": s1}, T0 + timedelta(seconds=1), faults=fault, node=NODE, node_index=1, ready_delay=1)
    assert s2["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    pending = _pod()
    del pending["spec"]["nodeName"]
    s3, _ = L.desired_pod_status(pending, T0, faults={"unschedulable": {}}, node=None, node_index=0, ready_delay=1)
    assert s3["phase"] == "Pending" and s3["conditions"][0]["reason"] == "Unschedulable"
    s4, due = L.desired_pod_status(_pod(), T0, faults={}, node=NODE, node_index=1, ready_delay=1, job={"fail": True, "duration": 5})
    assert s4["phase"] == "Running" and due == T0 + timedelta(seconds=1)  # ready while it runs
    s5, _ = L.desired_pod_status({**_pod(), "status": s4}, T0 + timedelta(seconds=5), faults={}, node=NODE, node_index=1, ready_delay=1,
                                 job={"fail": True, "duration": 5})
    assert s5["phase"] == "Failed" and s5["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_pods_on_a_not_ready_node_are_not_ready():
    node = {"metadata": {"name": "lab-node-1"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    status, _ = L.desired_pod_status(_pod(), T0 + timedelta(seconds=5), faults={}, node=node, node_index=1, ready_delay=1)
    assert _ready(status) == "False"


# -- deployment status ---------------------------------------------------------------------------
def test_deployment_status_progress_deadline():
    dep = {"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 2, "progressDeadlineSeconds": 30}}
    rs = {"metadata": {"name": "web-new"}, "spec": {"replicas": 2}}
    status, due = L.deployment_status(dep, T0, new_rs=rs, rs_counts=[(rs, 2, 0)], new_rs_created=True)
    prog = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert prog["reason"] == "NewReplicaSetCreated" and status["observedGeneration"] == 2
    dep["status"] = status
    status, due = L.deployment_status(dep, T0 + timedelta(seconds=10), new_rs=rs, rs_counts=[(rs, 2, 0)])
    assert due == T0 + timedelta(seconds=31)  # no progress since the ReplicaSet was created
    dep["status"] = status
    status, _ = L.deployment_status(dep, T0 + timedelta(seconds=31), new_rs=rs, rs_counts=[(rs, 2, 0)])
    prog = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")
    dep["status"] = status
    status, _ = L.deployment_status(dep, T0 + timedelta(seconds=50), new_rs=rs, rs_counts=[(rs, 2, 2)])
    prog = next(c for c in status["conditions"] if c["type"] == "Progressing")
    avail = next(c for c in status["conditions"] if c["type"] == "Available")
    assert (prog["status"], prog["reason"], avail["status"]) == ("True", "NewReplicaSetAvailable", "True")
    assert status["availableReplicas"] == 2 and "unavailableReplicas" not in status
