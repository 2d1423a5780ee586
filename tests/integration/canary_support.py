"""Shared by the canary integration tests and bench/canary.py: an Istio-routed app in the lab,
traffic settings, and canary_step run through ansible-playbook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lab import traffic

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
ISTIO = ("networking.istio.io", "v1beta1")
STATE_ANNOTATION = "canary.machinenativeops.io/state"


class LabApp:
    """reviews (stable, track=stable, version v1) and reviews-canary (track=canary, version v2) behind one
    Service, a DestinationRule with subsets stable/canary and a VirtualService all on stable."""

    def __init__(self, endpoints: dict, namespace: str):
        self.endpoints = endpoints
        self.namespace = namespace
        self.kubeconfig = endpoints["apiserver"]["kubeconfig"]
        self.api = config.new_client_from_config(config_file=self.kubeconfig, context="lab")
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.prometheus_url = endpoints["prometheus"]["url"]

    # -- objects
    def deployment(self, name: str, track: str, version: str, image: str, replicas: int = 1) -> dict:
        labels = {"app": "reviews", "track": track, "version": version}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "reviews", "track": track}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "reviews", "image": image, "ports": [{"containerPort": 9080}]}]}}},
        }

    def create(self, subsets=("stable", "canary"), canary: bool = True, rps: float = 40.0) -> LabApp:
        ns = self.namespace
        self.core.create_namespace({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
        self.apps.create_namespaced_deployment(ns, self.deployment("reviews", "stable", "v1", "example/reviews:1.0.0", replicas=2))
        if canary:
            self.apps.create_namespaced_deployment(ns, self.deployment("reviews-canary", "canary", "v2", "example/reviews:2.0.0"))
        self.core.create_namespaced_service(ns, {"metadata": {"name": "reviews"},
                                                 "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 9080, "name": "http"}]}})
        self.custom.create_namespaced_custom_object(*ISTIO, ns, "destinationrules", {
            "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "subsets": [{"name": s, "labels": {"track": s}} for s in subsets]}})
        self.custom.create_namespaced_custom_object(*ISTIO, ns, "virtualservices", {
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "reviews", "subset": "stable"}, "weight": 100}]}]}})
        self.set_traffic(rps=rps)
        self.wait_available("reviews")
        if canary:
            self.wait_available("reviews-canary")
        return self

    def set_traffic(self, **kwargs) -> None:
        traffic.set_traffic(self.kubeconfig, self.namespace, "reviews", **kwargs)

    def wait_available(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dep = self.apps.read_namespaced_deployment(name, self.namespace)
            if (dep.status.available_replicas or 0) >= (dep.spec.replicas or 0) > 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"Deployment {self.namespace}/{name} never became available")

    def virtual_service(self) -> dict:
        return self.custom.get_namespaced_custom_object(*ISTIO, self.namespace, "virtualservices", "reviews")

    def weights(self) -> dict:
        out = {"stable": 0, "canary": 0}
        for dest in self.virtual_service()["spec"]["http"][0]["route"]:
            out[dest["destination"]["subset"]] = dest.get("weight", 100)
        return out

    def state(self) -> dict | None:
        raw = (self.virtual_service()["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
        return json.loads(raw) if raw else None

    def delete(self) -> None:
        try:
            traffic.clear(self.kubeconfig, self.namespace, "reviews")
        except ApiException:
            pass
        try:
            self.core.delete_namespace(self.namespace)
        except ApiException:
            pass

    # -- Prometheus
    def query(self, promql: str) -> list:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())["data"]["result"]

    def wait_for(self, promql: str, predicate, timeout: float = 60.0) -> float:
        """Poll Prometheus until the scalar value of ``promql`` satisfies ``predicate``; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                last = float(result[0]["value"][1])
                if predicate(last):
                    return last
            time.sleep(0.5)
        raise AssertionError(f"{promql} never satisfied the condition (last value {last})")

    def canary_requests_query(self, window: str = "5s") -> str:
        return (f'sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{self.namespace}",'
                f'destination_workload="reviews-canary"}}[{window}]))')


def canary_vars(app: LabApp, result_file: Path, **extra) -> dict:
    extravars = {"canary_namespace": app.namespace, "canary_result_file": str(result_file)}
    extravars.update({f"canary_{k}": v for k, v in extra.items()})
    return extravars


def run_canary(app: LabApp, *, check: bool = False, diff: bool = False, timeout: float = 600, **extra) -> tuple[int, dict, str]:
    """ansible-playbook canary_step.yml with ``canary_<key>`` extra vars; returns (rc, result, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        extravars = canary_vars(app, result_file, **extra)
        proc = run_playbook(app.endpoints, PLAYBOOKS / "canary_step.yml", extravars, check=check, diff=diff, timeout=timeout)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return proc.returncode, result, proc.stdout + proc.stderr


def playbook_command(playbook: Path, extravars: dict, *, check: bool = False, diff: bool = False) -> list[str]:
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(ROOT / "inventories" / "lab" / "hosts.yml"),
           str(playbook), "-e", json.dumps(extravars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    return cmd


def playbook_env(endpoints: dict) -> dict:
    env = dict(os.environ)
    env.update({"LAB_DIR": endpoints["lab_dir"], "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    return env


def run_playbook(endpoints: dict, playbook: Path, extravars: dict, *, check: bool = False, diff: bool = False,
                 timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(playbook_command(playbook, extravars, check=check, diff=diff), cwd=ROOT, env=playbook_env(endpoints),
                          capture_output=True, text=True, timeout=timeout, check=False)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Ansible's workers call setsid(), so a process group is not enough)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process we started and everything it started, like a crashed AWX job container."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
