"""Integration smoke of one leg of the compatibility matrix (tools/matrix.py): health.yml, one canary step and one
Velero backup verification against the lab, each run by the ``ansible-playbook`` of the leg under test.

The lab and pytest run from the project's virtualenv; ``MATRIX_ANSIBLE_BIN`` names the bin directory of the leg's
virtualenv (default: the project's own), so that the modules run with the leg's ansible-core and Python (the lab
inventory sets ``ansible_python_interpreter`` to ``ansible_playbook_python``). ``MATRIX_ANSIBLE_CORE`` (``2.16``)
is the ansible-core minor that ``ansible-playbook --version`` must report. The lab is used only through its
endpoints (kubeconfig, Prometheus, S3), so the smoke runs on whichever API server the lab provides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.integration.canary_support import PLAYBOOKS, LabApp, canary_vars, playbook_command, playbook_env
from tests.integration.velero_support import RUN as VELERO_RUN
from tests.integration.velero_support import VeleroLab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MATRIX_ANSIBLE_BIN") or ROOT / ".venv" / "bin")


def leg_env(endpoints: dict | None = None) -> dict:
    """The shared environment of the integration tests, with the leg's collections path (this collection staged,
    then the leg's kubernetes.core) when the matrix names one."""
    env = playbook_env(endpoints) if endpoints else dict(os.environ)
    if os.environ.get("MATRIX_COLLECTIONS_PATH"):
        env["ANSIBLE_COLLECTIONS_PATH"] = os.environ["MATRIX_COLLECTIONS_PATH"]
    return env


def leg_playbook(endpoints: dict, playbook: Path, extravars: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """The shared playbook command of the integration tests, run by the leg's ansible-playbook."""
    cmd = playbook_command(playbook, extravars)
    cmd[0] = str(BIN / "ansible-playbook")
    return subprocess.run(cmd, cwd=ROOT, env=leg_env(endpoints), capture_output=True, text=True, timeout=timeout, check=False)


def test_the_leg_ansible_core_runs_the_playbooks():
    out = subprocess.run([str(BIN / "ansible-playbook"), "--version"], capture_output=True, text=True, check=True, timeout=120).stdout
    core = re.search(r"\[core (\d+\.\d+)\.\d+", out)
    assert core, out
    wanted = os.environ.get("MATRIX_ANSIBLE_CORE")
    if wanted:
        assert core.group(1) == wanted, out
    python = re.search(r"python version = .*\((/[^()]+)\)\s*$", out, re.MULTILINE)
    assert python and os.path.realpath(os.path.dirname(python.group(1))) == os.path.realpath(BIN), out


def test_the_leg_kubernetes_core_comes_first():
    """The first kubernetes.core on the collections path is the one the leg pins (not an older bundled copy)."""
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "kubernetes.core", "--format", "json"], cwd=ROOT, env=leg_env(),
                          capture_output=True, text=True, check=True, timeout=120)
    found = [(path, info["version"]) for path, collections in json.loads(proc.stdout).items()
             for name, info in collections.items() if name == "kubernetes.core"]
    assert found, proc.stdout + proc.stderr
    wanted = os.environ.get("MATRIX_KUBERNETES_CORE")
    if wanted:
        assert found[0][1] == wanted, found


def test_health_playbook(lab_endpoints):
    api = config.new_client_from_config(config_file=lab_endpoints["apiserver"]["kubeconfig"], context="lab")
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = f"smoke-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        labels = {"app": "web"}
        apps.create_namespaced_deployment(ns, {
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
        deadline = time.monotonic() + 60
        while (apps.read_namespaced_deployment("web", ns).status.ready_replicas or 0) < 1:
            assert time.monotonic() < deadline, "Deployment web never became ready"
            time.sleep(0.3)
        proc = leg_playbook(lab_endpoints, ROOT / "playbooks" / "health.yml",
                            {"health_namespaces": [ns], "health_checks": ["workloads", "pods"], "health_fail_on": "warning"})
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "Platform health: HEALTHY" in proc.stdout, proc.stdout[-4000:]
    finally:
        core.delete_namespace(ns)


def test_canary_step(lab_endpoints):
    app = LabApp(lab_endpoints, f"smoke-canary-{uuid.uuid4().hex[:6]}").create()
    try:
        analysis = {"interval": "6s", "min_requests": 10}
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            result_file = Path(tmp) / "result.json"
            deadline = time.monotonic() + 180
            # the first step shifts 10 %; the next ones hold until an analysis window is complete, then advance on its verdict
            while app.weights()["canary"] < 30:
                assert time.monotonic() < deadline, f"the canary never reached 30 %: {results[-1:]}"
                proc = leg_playbook(lab_endpoints, PLAYBOOKS / "canary_step.yml", canary_vars(app, result_file, analysis=analysis))
                assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
                results.append(json.loads(result_file.read_text()))
                assert results[-1]["decision"] in ("advanced", "held"), results[-1]
                time.sleep(1)
        assert results[0]["decision"] == "advanced" and results[0]["weights_after"] == {"stable": 90, "canary": 10}
        last = results[-1]
        assert last["decision"] == "advanced" and last["weights_after"] == {"stable": 70, "canary": 30}
        assert last["analysis"]["verdict"] == "passed" and last["analysis"]["requests"] >= 10
        assert app.weights() == {"stable": 70, "canary": 30}
    finally:
        app.delete()


def test_velero_backup_verify(lab_endpoints):
    cluster = VeleroLab(lab_endpoints)
    ns = cluster.app_namespace(f"smoke-vb-{uuid.uuid4().hex[:6]}")
    try:
        name = f"{ns}-b"
        steps = [{"args": {"action": "backup", "name": name, "included_namespaces": [ns], "poll_interval": 0.3}},
                 {"args": {"action": "verify", "name": name, "expected_namespaces": [ns],
                           "expected_resources": ["deployments.apps", "services", "configmaps"], "poll_interval": 0.3}}]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "results.json"
            proc = leg_playbook(lab_endpoints, VELERO_RUN, {"velero_steps": steps, "velero_result_file": str(out)})
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
            created, verified = json.loads(out.read_text())
        assert created["changed"] and created["backup"]["phase"] == "Completed", created
        assert not verified.get("failed") and verified["verification"]["passed"], verified
        assert verified["verification"]["s3"]["resources"]["deployments.apps"] == 2
    finally:
        cluster.delete_namespace(ns)


def test_kubernetes_core_module_runs(lab_endpoints):
    """kubernetes.core.k8s_info (what deploy.yml and disaster_recovery.yml use) through the leg's ansible."""
    args = json.dumps({"kind": "Namespace", "name": "default", "kubeconfig": lab_endpoints["apiserver"]["kubeconfig"], "context": "lab"})
    cmd = [str(BIN / "ansible"), "localhost", "-c", "local", "-m", "kubernetes.core.k8s_info", "-a", args,
           "-e", f"ansible_python_interpreter={BIN / 'python'}", "-o"]
    proc = subprocess.run(cmd, cwd=ROOT, env=leg_env(lab_endpoints), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r'"name": ?"default"', proc.stdout), proc.stdout[-3000:]
