"""Pure functions of the controllers: desired state from objects and the clock.

Nothing here does I/O; ``lab.controllers.core`` reads objects from the API, calls
these functions and writes back only what differs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import datetime, timedelta

from lab.controllers.clock import format_time, parse_time

FAULTS_ANNOTATION = "lab.machinenativeops.io/faults"
FAIL_ANNOTATION = "lab.machinenativeops.io/fail"
DURATION_ANNOTATION = "lab.machinenativeops.io/duration"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- small helpers -------------------------------------------------------------------------------
def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def annotations(obj: dict) -> dict:
    return meta(obj).get("annotations") or {}


def labels(obj: dict) -> dict:
    return meta(obj).get("labels") or {}


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def _prune(value):
    """Drop nulls and empty maps/lists, as Go's omitempty serialization does (``resources: {}``, ``creationTimestamp: null``)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v not in ({}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def differs(desired: dict | None, current: dict | None) -> bool:
    """Whether writing ``desired`` would change ``current`` (nulls and empty values do not count)."""
    return _prune(desired or {}) != _prune(current or {})


def strip_hash(template: dict) -> dict:
    """The template without the pod-template-hash label, in a normal form for comparing and hashing."""
    t = copy.deepcopy(template or {})
    lbl = (t.get("metadata") or {}).get("labels")
    if lbl and HASH_LABEL in lbl:
        del lbl[HASH_LABEL]
    return _prune(t)


def template_hash(template: dict) -> str:
    """Deterministic pod-template-hash of a pod template (FNV-32a, safe-encoded like Kubernetes)."""
    return safe_encode(str(fnv32a(canonical(strip_hash(template)).encode())))


def same_template(a: dict, b: dict) -> bool:
    return canonical(strip_hash(a)) == canonical(strip_hash(b))


def suffix(seed: str, index: int, length: int = 5) -> str:
    digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:length])


def pod_ip(name: str, node_index: int) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.244.{node_index}.{2 + digest[0] % 250}"


def owner_ref(obj: dict, kind: str, api_version: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": meta(obj)["name"], "uid": meta(obj).get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: dict) -> dict | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def scaled_value(value, total: int, round_up: bool) -> int:
    """intstr semantics: an int, or a percentage of ``total`` rounded up or down."""
    if value is None:
        value = "25%"
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        pct = float(text[:-1]) * total / 100.0
        return int(math.ceil(pct) if round_up else math.floor(pct))
    return int(text)


def match_selector(selector: dict | None, lbl: dict) -> bool:
    """LabelSelector (matchLabels + matchExpressions) against labels; None/empty matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if lbl.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and lbl.get(key) not in values:
            return False
        if op == "NotIn" and key in lbl and lbl[key] in values:
            return False
        if op == "Exists" and key not in lbl:
            return False
        if op == "DoesNotExist" and key in lbl:
            return False
    return True


# -- faults --------------------------------------------------------------------------------------
def read_faults(obj: dict | None) -> dict[str, dict]:
    """kind -> {"kind", "since", "params"} from the faults annotation (bad JSON = no faults)."""
    if not obj:
        return {}
    raw = annotations(obj).get(FAULTS_ANNOTATION)
    if not raw:
        return {}
    try:
        items = json.loads(raw)
    except ValueError:
        return {}
    if isinstance(items, dict):
        items = [items]
    found = {}
    for raw_item in items if isinstance(items, list) else []:
        item = {"kind": raw_item} if isinstance(raw_item, str) else raw_item
        if isinstance(item, dict) and item.get("kind"):
            found[item["kind"]] = {"kind": item["kind"], "since": item.get("since"), "params": item.get("params") or {}}
    return found


def fault_param(fault: dict, name: str, default: float) -> float:
    try:
        return float((fault.get("params") or {}).get(name, default))
    except (TypeError, ValueError):
        return default


# -- conditions ----------------------------------------------------------------------------------
def condition(prev_conditions: list | None, ctype: str, status: str, now: datetime, reason: str | None = None,  # noqa: PLR0917
              message: str | None = None, probe: bool = False, update_time: bool = False) -> dict:
    """A condition that keeps lastTransitionTime when its status did not change."""
    prev = next((c for c in prev_conditions or [] if c.get("type") == ctype), None)
    cond = {"type": ctype, "status": status}
    transition = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    if probe:
        cond["lastProbeTime"] = None
    if update_time:
        same = prev and prev.get("status") == status and prev.get("reason") == reason and prev.get("message") == message
        cond["lastUpdateTime"] = prev.get("lastUpdateTime") if same and prev.get("lastUpdateTime") else format_time(now)
    cond["lastTransitionTime"] = transition or format_time(now)
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def find_condition(obj_or_status: dict, ctype: str) -> dict | None:
    status = obj_or_status.get("status", obj_or_status) if "status" in obj_or_status else obj_or_status
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


# -- pods ----------------------------------------------------------------------------------------
def qos_class(spec: dict) -> str:
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if not lim.get(r) or (req.get(r) and req.get(r) != lim.get(r)):
                guaranteed = False
    if guaranteed and any_set:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def desired_pod_status(pod: dict, now: datetime, *, faults: dict[str, dict], node: dict | None, node_index: int,
                       ready_delay: float, stuck: bool = False, job: dict | None = None) -> tuple[dict, datetime | None]:
    """Status the kubelet would report for ``pod`` at ``now``; returns (status, next time it changes).

    ``faults``: active controller faults for this pod (its own and its workload's);
    ``node``: the Node it is bound to (None if unscheduled); ``stuck``: the pod belongs to a
    rollout that never becomes ready; ``job``: {"fail": bool, "duration": seconds} for Job pods.
    """
    spec = pod.get("spec") or {}
    prev = pod.get("status") or {}
    prev_conds = prev.get("conditions")
    name = meta(pod).get("name", "")
    qos = qos_class(spec)
    containers = spec.get("containers") or []
    if prev.get("phase") in ("Succeeded", "Failed"):
        return prev, None
    if not spec.get("nodeName"):
        msg = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found."
               if "unschedulable" in faults else "0/0 nodes are available: no Ready schedulable node.")
        status = {"phase": "Pending", "qosClass": qos,
                  "conditions": [condition(prev_conds, "PodScheduled", "False", now, "Unschedulable", msg, probe=True)]}
        return status, None

    start = parse_time(prev.get("startTime")) or now
    node_ready = bool(node) and (find_condition(node, "Ready") or {}).get("status") == "True"
    prev_cs = {c.get("name"): c for c in prev.get("containerStatuses") or []}
    statuses = []
    next_due: datetime | None = None
    ever_started = False
    all_ready = True

    def due(t: datetime) -> None:
        nonlocal next_due
        if next_due is None or t < next_due:
            next_due = t

    job_state = None
    if job is not None:
        duration = timedelta(seconds=job.get("duration", ready_delay))
        fails = job.get("fail") or "crash_loop" in faults or "oom_killed" in faults
        if now >= start + duration:
            job_state = "Failed" if fails else "Succeeded"
        else:
            due(start + duration)

    for c in containers:
        cname = c.get("name", "main")
        old = prev_cs.get(cname) or {}
        restarts = int(old.get("restartCount") or 0)
        old_state = old.get("state") or {}
        last_state = old.get("lastState") or {}
        running_since = parse_time((old_state.get("running") or {}).get("startedAt"))
        ready = False
        state: dict
        image = c.get("image", "")
        if job_state is not None:
            exit_code = 1 if job_state == "Failed" else 0
            state = {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed",
                                    "startedAt": format_time(running_since or start),
                                    "finishedAt": format_time(start + timedelta(seconds=job.get("duration", ready_delay))),
                                    "containerID": f"containerd://{_digest(name, cname, str(restarts))[:64]}"}}
            ever_started = True
        elif "image_pull_backoff" in faults:
            since = parse_time(faults["image_pull_backoff"].get("since")) or start
            backoff_at = max(since, start) + timedelta(seconds=max(ready_delay, 1.0))
            if now >= backoff_at:
                reason = "ImagePullBackOff"
                message = f'Back-off pulling image "{image}"'
            else:
                reason = "ErrImagePull"
                message = f'failed to pull and unpack image "{image}": not found'
                due(backoff_at)
            state = {"waiting": {"reason": reason, "message": message}}
            ever_started = ever_started or restarts > 0 or bool(old_state.get("running")) or bool(last_state)
        elif "crash_loop" in faults:
            fault = faults["crash_loop"]
            interval = timedelta(seconds=fault_param(fault, "interval", 10.0))
            finished = parse_time((last_state.get("terminated") or {}).get("finishedAt"))
            since = parse_time(fault.get("since")) or now
            if finished is None or finished < min(since, now) or now >= finished + interval:
                restarts += 1
                last_state = {"terminated": {"exitCode": int(fault_param(fault, "exit_code", 1)), "reason": "Error",
                                             "startedAt": format_time(running_since or finished or start),
                                             "finishedAt": format_time(now),
                                             "containerID": f"containerd://{_digest(name, cname, str(restarts))[:64]}"}}
                finished = now
            state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off {int(interval.total_seconds())}s restarting failed container={cname} pod={name}"}}
            due(finished + interval)
            ever_started = True
        elif "oom_killed" in faults:
            fault = faults["oom_killed"]
            interval = timedelta(seconds=fault_param(fault, "interval", 60.0))
            finished = parse_time((last_state.get("terminated") or {}).get("finishedAt"))
            since = parse_time(fault.get("since")) or now
            if finished is None or finished < min(since, now) or now >= finished + interval:
                restarts += 1
                last_state = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                             "startedAt": format_time(running_since or finished or start),
                                             "finishedAt": format_time(now),
                                             "containerID": f"containerd://{_digest(name, cname, str(restarts))[:64]}"}}
                finished = now
                running_since = now
            running_since = max(running_since or now, finished)
            state = {"running": {"startedAt": format_time(running_since)}}
            due(finished + interval)
            ready = now >= running_since + timedelta(seconds=ready_delay)
            if not ready:
                due(running_since + timedelta(seconds=ready_delay))
            ever_started = True
        else:
            if running_since is None:
                running_since = now if old_state else start
            state = {"running": {"startedAt": format_time(running_since)}}
            ready_at = running_since + timedelta(seconds=ready_delay)
            ever_started = True
            if now >= ready_at:
                ready = not ("readiness_failing" in faults or stuck or not node_ready)
            else:
                due(ready_at)
        if job is None and not ready:
            all_ready = False
        if job is not None and job_state is None and not ready:
            all_ready = False
        cs = {"name": cname, "image": image,
              "imageID": f"{image.split(':')[0]}@sha256:{_digest(image)}",
              "containerID": f"containerd://{_digest(name, cname, str(restarts))[:64]}",
              "ready": ready, "started": bool(state.get("running")), "restartCount": restarts,
              "state": state, "lastState": last_state}
        statuses.append(cs)

    if job_state is not None:
        phase = job_state
        ready_all = False
    else:
        phase = "Running" if ever_started else "Pending"
        ready_all = all_ready and bool(containers)
    not_ready_reason = None if ready_all else ("PodCompleted" if job_state else "ContainersNotReady")
    not_ready_msg = None if ready_all or job_state else \
        "containers with unready status: [" + " ".join(c["name"] for c in statuses if not c["ready"]) + "]"
    if not node_ready and not job_state and not ready_all and ever_started:
        not_ready_reason = "NodeNotReady" if node else not_ready_reason
    host_ip = next((a.get("address") for a in (node or {}).get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"), None)
    ip = pod_ip(name, node_index)
    status = {
        "phase": phase,
        "conditions": [
            condition(prev_conds, "PodReadyToStartContainers", "True", now),
            condition(prev_conds, "Initialized", "True", now),
            condition(prev_conds, "Ready", "True" if ready_all else "False", now, not_ready_reason, not_ready_msg),
            condition(prev_conds, "ContainersReady", "True" if ready_all else "False", now, not_ready_reason, not_ready_msg),
            condition(prev_conds, "PodScheduled", "True", now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}] if host_ip else None,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": format_time(start),
        "containerStatuses": statuses,
        "qosClass": qos,
    }
    return status, next_due


def pod_ready(pod: dict) -> bool:
    cond = find_condition(pod.get("status") or {}, "Ready")
    return bool(cond) and cond.get("status") == "True"


def pod_active(pod: dict) -> bool:
    return not meta(pod).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


# -- deployments ---------------------------------------------------------------------------------
def rolling_targets(desired: int, max_surge: int, max_unavailable: int, new: tuple[int, int],
                    olds: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """One rolling-update step: (new RS replicas, old RS replicas) from (spec, available) counts.

    Follows the Deployment controller: scale the new ReplicaSet up within maxSurge, then
    scale old ones down (unhealthy replicas first, oldest first) while at least
    ``desired - maxUnavailable`` pods stay available.
    """
    if max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    new_spec, new_avail = new
    old_specs = [s for s, _ in olds]
    total = new_spec + sum(old_specs)
    if new_spec > desired:
        new_spec = desired
    elif new_spec < desired:
        room = desired + max_surge - total
        if room > 0:
            new_spec = min(desired, new_spec + room)
    total = new_spec + sum(old_specs)
    min_available = desired - max_unavailable
    new_unavailable = max(0, new_spec - new_avail)
    max_scaled_down = total - min_available - new_unavailable
    if max_scaled_down > 0:
        # clean up unhealthy old replicas first
        for i, (_spec, avail) in enumerate(olds):
            if max_scaled_down <= 0:
                break
            unhealthy = max(0, old_specs[i] - avail)
            cut = min(unhealthy, max_scaled_down)
            old_specs[i] -= cut
            max_scaled_down -= cut
        available = new_avail + sum(min(avail, old_specs[i]) for i, (_, avail) in enumerate(olds))
        can_remove = min(available - min_available, new_spec + sum(old_specs) - min_available - new_unavailable)
        for i in range(len(old_specs)):
            if can_remove <= 0:
                break
            cut = min(old_specs[i], can_remove)
            old_specs[i] -= cut
            can_remove -= cut
    return new_spec, old_specs


def deployment_strategy(dep: dict) -> tuple[str, int, int]:
    spec = dep.get("spec") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return "Recreate", 0, desired
    ru = strategy.get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return "RollingUpdate", surge, unavailable


def deployment_status(dep: dict, now: datetime, *, new_rs: dict | None, rs_counts: list[tuple[dict, int, int]],
                      new_rs_created: bool = False) -> tuple[dict, datetime | None]:
    """Deployment status from its ReplicaSets: ``rs_counts`` = [(rs, pods, ready pods)]."""
    spec = dep.get("spec") or {}
    prev = dep.get("status") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    _, _, max_unavailable = deployment_strategy(dep)
    replicas = sum(p for _, p, _ in rs_counts)
    ready = sum(r for _, _, r in rs_counts)
    spec_total = sum(int((rs.get("spec") or {}).get("replicas") or 0) for rs, _, _ in rs_counts)
    updated = next((p for rs, p, _ in rs_counts if new_rs is not None and meta(rs).get("name") == meta(new_rs).get("name")), 0)
    new_ready = next((r for rs, _, r in rs_counts if new_rs is not None and meta(rs).get("name") == meta(new_rs).get("name")), 0)
    available = ready
    status = {"observedGeneration": meta(dep).get("generation", 1), "replicas": replicas, "updatedReplicas": updated,
              "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(0, max(spec_total, desired) - available) if replicas or desired else 0}
    for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas", "unavailableReplicas"):
        if not status[key]:
            status.pop(key)
    prev_conds = prev.get("conditions") or []
    conds = []
    if available >= desired - max_unavailable:
        conds.append(condition(prev_conds, "Available", "True", now, "MinimumReplicasAvailable", "Deployment has minimum availability.",
                               update_time=True))
    else:
        conds.append(condition(prev_conds, "Available", "False", now, "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.", update_time=True))
    rs_name = meta(new_rs).get("name") if new_rs else meta(dep).get("name")
    prev_prog = next((c for c in prev_conds if c.get("type") == "Progressing"), None)
    deadline = spec.get("progressDeadlineSeconds", 600)
    next_due = None
    complete = new_rs is not None and updated == desired and replicas == desired and available == desired and new_ready == desired
    counts = (status.get("replicas", 0), status.get("updatedReplicas", 0), status.get("readyReplicas", 0))
    prev_counts = (prev.get("replicas", 0) or 0, prev.get("updatedReplicas", 0) or 0, prev.get("readyReplicas", 0) or 0)
    if spec.get("paused"):
        prog = condition(prev_conds, "Progressing", "Unknown", now, "DeploymentPaused", "Deployment is paused", update_time=True)
    elif complete:
        prog = condition(prev_conds, "Progressing", "True", now, "NewReplicaSetAvailable",
                         f'ReplicaSet "{rs_name}" has successfully progressed.', update_time=True)
    elif new_rs_created:
        prog = condition(prev_conds, "Progressing", "True", now, "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', update_time=True)
        prog["lastUpdateTime"] = format_time(now)
    elif prev_prog is None or counts != prev_counts or prev_prog.get("reason") in ("NewReplicaSetAvailable", "DeploymentPaused") \
            or (prev_prog.get("reason") == "ProgressDeadlineExceeded" and counts != prev_counts):
        prog = condition(prev_conds, "Progressing", "True", now, "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', update_time=True)
        prog["lastUpdateTime"] = format_time(now)
    else:
        prog = dict(prev_prog)
        last = parse_time(prev_prog.get("lastUpdateTime")) or now
        if prev_prog.get("reason") != "ProgressDeadlineExceeded" and deadline is not None:
            limit = last + timedelta(seconds=int(deadline))
            if now > limit:
                prog = condition(prev_conds, "Progressing", "False", now, "ProgressDeadlineExceeded",
                                 f'ReplicaSet "{rs_name}" has timed out progressing.', update_time=True)
            else:
                next_due = limit + timedelta(seconds=1)
    conds.append(prog)
    status["conditions"] = conds
    if prev.get("collisionCount") is not None:
        status["collisionCount"] = prev["collisionCount"]
    return status, next_due
