"""canary_step benchmark against the lab (API emulator, controllers, traffic exporter, real Prometheus).

1. Rollback time: a canary runs at 30 % in an ansible-playbook loop (``until``/``delay`` = the analysis
   interval); an error burst (50 % 5xx) starts on the canary; we measure from the burst to the moment the
   VirtualService sends 0 % to the canary. Flagger's floor for the same settings is interval x threshold
   (threshold = max_failed_checks): it needs that many failed checks, one per interval.
2. Module overhead per step: wall time of one canary_step call inside a running play (loop of N calls,
   minus a play with one call), for action=status (Kubernetes only), a held step (window not complete)
   and action=analyze (Kubernetes + 4 Prometheus queries); plus the pure decision function in-process.

Run: ``python -m bench canary`` (LAB_DIR=<running lab> to reuse one; BENCH_CANARY_INTERVALS=5,10 and
BENCH_CANARY_THRESHOLDS=1,2 to pick the grid). Prints figures; no pass/fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "build" / "collections"))

from ansible_collections.machinenativeops.platform.plugins.module_utils import canary as cn

from lab.controllers.testing import private_lab
from lab.faults import Faults
from tests.integration.canary_support import PLAYBOOKS, LabApp, canary_vars, kill_tree, playbook_command, playbook_env, run_playbook

SERVICES = {"apiserver", "controllers", "exporters", "prometheus"}

LOOP_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - machinenativeops.platform.canary_step:
        kubeconfig: "{{ k8s_kubeconfig }}"
        context: "{{ k8s_context }}"
        prometheus_url: "{{ prometheus_url }}"
        action: "{{ bench_action }}"
        namespace: "{{ bench_namespace }}"
        virtual_service: reviews
        stable: {host: reviews, subset: stable}
        canary: {host: reviews, subset: canary}
        canary_workload: reviews-canary
        stable_workload: reviews
        revision: v2
        analysis: {interval: 1h, min_requests: 10}
      loop: "{{ range(bench_calls | int) | list }}"
"""


def _ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


def rollback_time(endpoints: dict, interval: int, threshold: int) -> dict:
    app = LabApp(endpoints, f"bench-canary-{uuid.uuid4().hex[:6]}").create()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            extravars = canary_vars(app, Path(tmp) / "result.json", analysis={"interval": f"{interval}s", "min_requests": 10},
                                    max_failed_checks=threshold, loop_retries=60, delay=interval)
            proc = subprocess.Popen(playbook_command(PLAYBOOKS / "canary_step.yml", extravars), cwd=Path(__file__).resolve().parents[1],
                                    env=playbook_env(endpoints), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                while app.weights()["canary"] != 30:
                    if proc.poll() is not None:
                        raise RuntimeError("the canary loop ended before 30 %")
                    time.sleep(0.05)
                t_breach = time.time()
                Faults.from_endpoints(endpoints).inject("error_burst", namespace=app.namespace, name="reviews-canary",
                                                        target_kind="Deployment", params={"ratio": 0.5})
                while app.weights()["canary"] != 0:
                    if proc.poll() is not None and app.weights()["canary"] != 0:
                        raise RuntimeError("the canary loop ended without a rollback")
                    time.sleep(0.05)
                t_back = time.time()
            finally:
                if proc.poll() is None:
                    kill_tree(proc)
        decisions = [h["decision"] for h in app.state()["history"]]
        return {"interval_s": interval, "threshold": threshold, "rollback_s": round(t_back - t_breach, 2),
                "flagger_floor_s": interval * threshold, "ratio": round((t_back - t_breach) / (interval * threshold), 2),
                "decisions": decisions}
    finally:
        app.delete()


def module_overhead(endpoints: dict, calls: int = 10) -> dict:
    app = LabApp(endpoints, f"bench-canary-{uuid.uuid4().hex[:6]}").create()
    out = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            from tests.integration.canary_support import run_canary  # noqa: PLC0415

            rc, result, text = run_canary(app, analysis={"interval": "1h", "min_requests": 10})
            if rc or result.get("decision") != "advanced":
                raise RuntimeError("could not start the canary: " + text[-2000:])
            playbook = Path(tmp) / "loop.yml"
            playbook.write_text(LOOP_PLAYBOOK)
            for action in ("status", "step", "analyze"):
                times = {}
                for n in (1, calls + 1):
                    start = time.perf_counter()
                    proc = run_playbook(endpoints, playbook, {"bench_namespace": app.namespace, "bench_action": action, "bench_calls": n})
                    times[n] = time.perf_counter() - start
                    if proc.returncode:
                        raise RuntimeError(f"{action} loop failed: {proc.stdout[-2000:]}")
                label = {"status": "status (Kubernetes only)", "step": "step, window not complete (held)",
                         "analyze": "analyze (Kubernetes + Prometheus)"}[action]
                out[label] = round((times[calls + 1] - times[1]) / calls, 3)
                out.setdefault("_play_with_one_call_s", {})[action] = round(times[1], 2)
    finally:
        app.delete()
    return out


def decision_cost() -> float:
    opts = cn.options_from_params({'action': 'step', 'namespace': 'shop', 'virtual_service': 'reviews',
                                   'stable': {'host': 'reviews', 'subset': 'stable'}, 'canary': {'host': 'reviews', 'subset': 'canary'},
                                   'canary_workload': 'reviews-canary', 'revision': 'v2', 'analysis': {'interval': '30s'}})
    state = cn.new_state('v2', 1e9)
    state.update(step_index=1, weight=30, last_change_at=cn.format_time(1e9))
    values = {'increase': 100.0, 'response_code!~': 99.0, 'response_code=~': 1.0, 'histogram_quantile': 90.0}

    def query(q):
        return next(v for k, v in values.items() if k in q)

    def once():
        analysis = cn.run_analysis(cn.build_metrics(opts), query, opts, 1e9 + 60)
        cn.decide(state, opts, 1e9 + 60, analysis)
    n = 2000
    return timeit.timeit(once, number=n) / n


def _run(endpoints: dict) -> int:
    print(f"decision + analysis evaluation in-process: {decision_cost() * 1e6:.0f} us per step")
    overhead = module_overhead(endpoints)
    plays = overhead.pop("_play_with_one_call_s")
    for label, seconds in overhead.items():
        print(f"module overhead per step, {label}: {seconds:.3f} s")
    print("ansible-playbook with one call (startup included): " + ", ".join(f"{k} {v} s" for k, v in plays.items()))
    print("rollback after an error burst at 30 % (ansible-playbook loop, delay = interval):")
    print(f"  {'interval':>8} {'threshold':>9} {'rollback':>9} {'flagger floor':>13} {'ratio':>6}  decisions")
    rows = []
    for interval in _ints("BENCH_CANARY_INTERVALS", "5,10"):
        for threshold in _ints("BENCH_CANARY_THRESHOLDS", "1,2"):
            row = rollback_time(endpoints, interval, threshold)
            rows.append(row)
            print(f"  {row['interval_s']:>7}s {row['threshold']:>9} {row['rollback_s']:>8}s {row['flagger_floor_s']:>12}s {row['ratio']:>6}  "
                  + ",".join(row["decisions"]), flush=True)
    print(json.dumps({"canary_rollback": rows, "canary_module_overhead_s": overhead}, sort_keys=True))
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-canary-lab-") as tmp, private_lab(Path(tmp), SERVICES) as endpoints:
        return _run(endpoints)


if __name__ == "__main__":
    raise SystemExit(main())
