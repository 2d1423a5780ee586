"""kubernetes.core modules (k8s, k8s_info, k8s_scale, k8s_rollback) through ansible-playbook."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import apiserver_support as sup
import pytest

from lab import orchestrator

api = sup.api
PLAYBOOKS = Path(__file__).parent / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-playbook is not installed next to this Python")]


def _play(playbook: str, kubeconfig: str, namespace: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1", HOME=str(tmp_path))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(PLAYBOOKS / playbook), "-e", f"kubeconfig={kubeconfig}",
            "-e", f"ns_name={namespace}", "-e", f"ansible_python_interpreter={sys.executable}"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_kubernetes_core_modules(api, tmp_path):
    proc = _play("kubernetes_core.yml", api.kubeconfig, sup.unique("kcore"), tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("lab.controllers") is None,
                    reason="wait on a Deployment and k8s_rollback need the lab's controllers (lab.controllers), absent in this tree")
def test_kubernetes_core_wait_and_rollback(tmp_path):
    lab_dir = tmp_path / "lab"
    endpoints = orchestrator.up(lab_dir, only={"apiserver", "controllers"})
    try:
        proc = _play("kubernetes_core_controllers.yml", endpoints["apiserver"]["kubeconfig"], "rollback", tmp_path)
    finally:
        orchestrator.down(lab_dir)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
