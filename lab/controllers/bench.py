"""Benchmark of the controllers at scale: ``python -m lab.controllers.bench --pods 1000 5000``.

For each size it starts a private API emulator, creates Deployments totalling N pods and
measures (in-process ``Controllers`` with a manual clock):

- rollout: wall time until every pod is Running and Ready (creates + status writes);
- full pass: ``reconcile_once`` on the settled cluster (relist everything, reconcile every
  object, nothing to write);
- incremental: ``advance`` after one fault on one Deployment (only what changed is reconciled);
- idle: CPU seconds the background loop (watches, real-time clock) uses over 10 s of wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from lab import orchestrator
from lab.controllers.clock import Clock
from lab.controllers.core import Controllers
from lab.controllers.kube import Kube
from lab.faults import Faults


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_size(pods: int, per_deployment: int = 50) -> dict:
    with tempfile.TemporaryDirectory(prefix="ctl-bench-") as tmp:
        endpoints = orchestrator.up(Path(tmp), only={"apiserver"})
        try:
            kubeconfig = endpoints["apiserver"]["kubeconfig"]
            kube = Kube(kubeconfig)
            kube.create("/api/v1/namespaces", {"metadata": {"name": "bench"}})
            deployments = max(1, pods // per_deployment)
            for i in range(deployments):
                kube.create("/apis/apps/v1/namespaces/bench/deployments", {
                    "metadata": {"name": f"app-{i}"},
                    "spec": {"replicas": per_deployment, "selector": {"matchLabels": {"app": f"app-{i}"}},
                             "template": {"metadata": {"labels": {"app": f"app-{i}", "version": "v1"}},
                                          "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})
            ctl = Controllers(kubeconfig, Clock.manual(), enabled=["nodes", "deployments", "replicasets", "pods"], watch=True)
            t0, c0 = time.monotonic(), _cpu()
            ctl.reconcile_once()
            ctl.advance(1)
            rollout = time.monotonic() - t0
            rollout_cpu = _cpu() - c0
            ready = sum(1 for p in ctl.objects("Pod") if any(c.get("type") == "Ready" and c.get("status") == "True"
                                                               for c in (p.get("status") or {}).get("conditions") or []))
            writes_before = ctl.stats["writes"]
            t0 = time.monotonic()
            ctl.reconcile_once()
            full_pass = time.monotonic() - t0
            idle_writes = ctl.stats["writes"] - writes_before
            Faults(kubeconfig).inject("crash_loop", "bench", "app-0")
            t0 = time.monotonic()
            result = ctl.advance(0)
            incremental = time.monotonic() - t0
            incremental_reconciles = result["reconciles"]
            # background loop with watches in real time: CPU used while nothing changes
            ctl.clock.set_real()
            Faults(kubeconfig).clear("bench", "app-0")
            ctl.start()
            time.sleep(2)
            c0, t0 = _cpu(), time.monotonic()
            time.sleep(10)
            idle_cpu = (_cpu() - c0) / (time.monotonic() - t0)
            ctl.stop()
            return {"pods": pods, "ready": ready, "deployments": deployments, "rollout_seconds": round(rollout, 2),
                    "rollout_cpu_seconds": round(rollout_cpu, 2), "rollout_requests": kube.requests + ctl.kube.requests,
                    "full_pass_seconds": round(full_pass, 3), "full_pass_writes": idle_writes,
                    "incremental_seconds": round(incremental, 3), "incremental_reconciles": incremental_reconciles,
                    "idle_cpu_fraction": round(idle_cpu, 4)}
        finally:
            orchestrator.down(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args(argv)
    for n in args.pods:
        print(json.dumps(run_size(n)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
