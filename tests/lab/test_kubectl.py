"""kubectl against the emulator: get, apply (client- and server-side), patch, scale, delete, rollout."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess

import apiserver_support as sup
import pytest

from lab import orchestrator

api = sup.api

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec:
      containers:
      - name: web
        image: IMAGE
        env: [{name: A, value: "1"}]
        ports: [{containerPort: 80}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web, subset: v1}, weight: WEIGHT}]}]
"""


@pytest.fixture
def kubectl(api, tmp_path):
    namespace = sup.unique("kc")
    env = dict(os.environ, KUBECONFIG=api.kubeconfig, HOME=str(tmp_path))

    def run(*args, stdin: str | None = None, check: bool = True, context: str | None = None) -> subprocess.CompletedProcess:
        argv = ["kubectl", *([f"--context={context}"] if context else []), "--namespace", namespace, *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    run("create", "namespace", namespace)
    run.namespace = namespace
    return run


def _manifest(image="nginx:1.25", weight=100):
    return DEPLOYMENT.replace("IMAGE", image).replace("WEIGHT", str(weight))


def _get(kubectl, *what):
    return json.loads(kubectl("get", *what, "-o", "json").stdout)


def test_get_tables_and_json(kubectl):
    out = kubectl("get", "namespaces").stdout
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"] and "kube-system" in out
    kubectl("apply", "-f", "-", stdin=_manifest())
    assert _get(kubectl, "deploy", "web")["spec"]["replicas"] == 2
    assert "web" in kubectl("get", "vs").stdout
    assert "deployment.apps/web" in kubectl("get", "all").stdout
    assert kubectl("get", "deploy", "missing", check=False).stderr.strip() == 'Error from server (NotFound): deployments.apps "missing" not found'


def test_client_side_apply_is_idempotent_and_updates(kubectl):
    out = kubectl("apply", "-f", "-", stdin=_manifest()).stdout
    assert "deployment.apps/web created" in out and "virtualservice.networking.istio.io/web created" in out
    out = kubectl("apply", "-f", "-", stdin=_manifest()).stdout
    assert "deployment.apps/web unchanged" in out and "virtualservice.networking.istio.io/web unchanged" in out
    kubectl("patch", "deploy", "web", "--type=strategic", "-p",
            json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}}))
    out = kubectl("apply", "-f", "-", stdin=_manifest(image="nginx:1.26", weight=80)).stdout
    assert "deployment.apps/web configured" in out and "virtualservice.networking.istio.io/web configured" in out
    d = _get(kubectl, "deploy", "web")
    container = d["spec"]["template"]["spec"]["containers"][0]
    # apply's three-way merge keeps the env var added out of band and changes the image
    assert container["image"] == "nginx:1.26" and [e["name"] for e in container["env"]] == ["A", "B"]
    assert d["metadata"]["generation"] == 3
    assert _get(kubectl, "vs", "web")["spec"]["http"][0]["route"][0]["weight"] == 80


def test_patch_types(kubectl):
    kubectl("apply", "-f", "-", stdin=_manifest())
    kubectl("patch", "deploy", "web", "--type=merge", "-p", '{"metadata":{"labels":{"team":"a"}}}')
    kubectl("patch", "deploy", "web", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    d = _get(kubectl, "deploy", "web")
    assert d["metadata"]["labels"]["team"] == "a" and d["spec"]["replicas"] == 4
    kubectl("patch", "vs", "web", "--type=merge", "-p", '{"spec":{"hosts":["web","web.example"]}}')
    assert _get(kubectl, "vs", "web")["spec"]["hosts"] == ["web", "web.example"]
    err = kubectl("patch", "vs", "web", "-p", '{"spec":{"hosts":["x"]}}', check=False).stderr
    assert "strategic-merge-patch" in err and "not supported" in err


def test_scale(kubectl):
    kubectl("apply", "-f", "-", stdin=_manifest())
    assert "scaled" in kubectl("scale", "deploy/web", "--replicas=5").stdout
    assert _get(kubectl, "deploy", "web")["spec"]["replicas"] == 5
    out = kubectl("scale", "deploy/web", "--replicas=1", "--current-replicas=3", check=False)
    assert out.returncode != 0
    assert _get(kubectl, "deploy", "web")["spec"]["replicas"] == 5


def test_server_side_apply_conflict_and_force(kubectl):
    kubectl("apply", "--server-side", "-f", "-", stdin=_manifest())
    kubectl("scale", "deploy/web", "--replicas=3")
    out = kubectl("apply", "--server-side", "-f", "-", stdin=_manifest(), check=False)
    assert out.returncode != 0 and "conflict" in out.stderr and ".spec.replicas" in out.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=_manifest())
    assert _get(kubectl, "deploy", "web")["spec"]["replicas"] == 2


def test_delete_and_label_selection(kubectl):
    kubectl("create", "configmap", "one", "--from-literal=a=1")
    kubectl("create", "configmap", "two", "--from-literal=a=2")
    kubectl("label", "configmap", "two", "keep=yes")
    assert kubectl("get", "cm", "-l", "keep=yes", "-o", "name").stdout.split() == ["configmap/two"]
    assert 'configmap "one" deleted' in kubectl("delete", "configmap", "one").stdout
    assert kubectl("get", "cm", "-o", "name").stdout.split() == ["configmap/two"]
    kubectl("delete", "namespace", kubectl.namespace, "--wait=true")
    assert kubectl("get", "namespace", kubectl.namespace, check=False).returncode != 0


def test_readonly_context_is_forbidden(kubectl):
    out = kubectl("create", "configmap", "ro", context="lab-readonly", check=False)
    assert out.returncode != 0 and "is forbidden" in out.stderr
    assert kubectl("get", "cm", context="lab-tls").returncode == 0


CONTROLLERS = importlib.util.find_spec("lab.controllers") is not None


@pytest.mark.skipif(not CONTROLLERS, reason="rollout status/undo need the lab's Deployment controller (lab.controllers), absent in this tree")
def test_rollout_status_and_undo(tmp_path):
    endpoints = orchestrator.up(tmp_path, only={"apiserver", "controllers"})
    try:
        env = dict(os.environ, KUBECONFIG=endpoints["apiserver"]["kubeconfig"], HOME=str(tmp_path))

        def run(*args, stdin=None):
            proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        run("apply", "-f", "-", stdin=_manifest())
        assert "successfully rolled out" in run("rollout", "status", "deploy/web", "--timeout=60s")
        run("set", "image", "deploy/web", "web=nginx:1.26")
        assert "successfully rolled out" in run("rollout", "status", "deploy/web", "--timeout=60s")
        run("rollout", "undo", "deploy/web")
        assert "successfully rolled out" in run("rollout", "status", "deploy/web", "--timeout=60s")
        image = json.loads(run("get", "deploy", "web", "-o", "json"))["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "nginx:1.25"
    finally:
        orchestrator.down(tmp_path)


def test_top_reads_metrics_written_to_the_metrics_api(kubectl):
    kubectl("run", "busy", "--image=busybox")
    assert "busy" in kubectl("get", "pods").stdout  # core pods, not metrics.k8s.io pods
    kubectl("create", "-f", "-", stdin=f"""
apiVersion: metrics.k8s.io/v1beta1
kind: PodMetrics
metadata: {{name: busy, namespace: {kubectl.namespace}}}
timestamp: "2026-01-01T00:00:00Z"
window: 30s
containers: [{{name: busy, usage: {{cpu: 250m, memory: 64Mi}}}}]
""")
    rows = [line.split() for line in kubectl("top", "pods").stdout.splitlines()]
    assert rows == [["NAME", "CPU(cores)", "MEMORY(bytes)"], ["busy", "250m", "64Mi"]]
