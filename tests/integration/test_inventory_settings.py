"""Every playbook's variables are settable from an inventory: a group_var of an inventory changes what the playbook does.

Each test copies the lab inventory into a temporary directory and adds ``group_vars/lab.yml`` (the group the lab's
host is in) with the settings under test; before, the playbooks' play-level ``vars:`` silently beat the inventory.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.canary_support import ROOT, LabApp, playbook_env

pytestmark = pytest.mark.lab

PLAYBOOKS = ROOT / "playbooks"


def inventory(tmp_path: Path, group_vars: dict) -> Path:
    """The lab inventory plus ``group_vars`` for the group ``lab`` (JSON is YAML)."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / "lab" / "hosts.yml", inv / "hosts.yml")
    shutil.copy(ROOT / "inventories" / "lab" / "group_vars" / "all.yml", inv / "group_vars" / "all.yml")
    (inv / "group_vars" / "lab.yml").write_text(json.dumps(group_vars))
    return inv / "hosts.yml"


def run(endpoints: dict, playbook: str, inv: Path, extravars: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inv), str(PLAYBOOKS / playbook)]
    cmd += ["-e", json.dumps(extravars)] if extravars else []
    cmd += ["--check"] if check else []
    return subprocess.run(cmd, cwd=ROOT, env=playbook_env(endpoints), capture_output=True, text=True, timeout=600, check=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_fail_on_and_checks_from_the_inventory(lab_endpoints, tmp_path):
    probe = {"url": f"http://127.0.0.1:{closed_port()}/healthz", "name": "inventory-probe", "severity": "warning", "timeout": 2}
    settings = {"health_checks": ["endpoints"], "health_endpoints": [probe]}
    proc = run(lab_endpoints, "health.yml", inventory(tmp_path / "a", settings))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "[WARNING] endpoints Endpoint inventory-probe" in out, out[-3000:]
    # the staging inventory's setting: warnings fail the play too
    proc = run(lab_endpoints, "health.yml", inventory(tmp_path / "b", {**settings, "health_fail_on": "warning"}))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "(health_fail_on=warning)" in out, out[-3000:]
    # -e still beats the inventory
    proc = run(lab_endpoints, "health.yml", inventory(tmp_path / "c", {**settings, "health_fail_on": "warning"}), {"health_fail_on": "never"})
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_deploy_container_from_the_inventory(lab_endpoints, tmp_path):
    app = LabApp(lab_endpoints, f"inv-{uuid.uuid4().hex[:8]}").create(canary=False)
    try:
        proc = run(lab_endpoints, "deploy.yml", inventory(tmp_path, {"deploy_container": "sidecar", "deploy_rollout_timeout": 60}),
                   {"deploy_namespace": app.namespace, "deploy_app": "reviews", "deploy_image": "example/reviews:2.0.0",
                    "deploy_strategy": "rolling"})
        assert proc.returncode != 0 and "has no container sidecar" in proc.stdout, proc.stdout[-3000:]
        assert app.apps.read_namespaced_deployment("reviews", app.namespace).spec.template.spec.containers[0].image == "example/reviews:1.0.0"
    finally:
        app.delete()


def test_backup_verify_schedules_and_report_file_from_the_inventory(lab_endpoints, tmp_path):
    report = tmp_path / "backup-report.json"
    settings = {"backup_verify_schedules": [{"name": "inventory-schedule", "namespaces": ["inventory-ns"]}],
                "backup_verify_restore_test": False, "backup_verify_report_file": str(report)}
    proc = run(lab_endpoints, "backup_verify.yml", inventory(tmp_path, settings))
    assert proc.returncode != 0
    assert report.exists(), proc.stdout[-3000:]
    failures = json.loads(report.read_text())["failures"]
    assert "Schedule velero/inventory-schedule does not exist" in failures


def test_disaster_recovery_mode_from_the_inventory_but_never_the_confirmation(lab_endpoints, tmp_path):
    settings = {"dr_mode": "namespace", "dr_namespaces": ["inventory-ns"], "dr_schedule_name": "inventory-schedule"}
    proc = run(lab_endpoints, "disaster_recovery.yml", inventory(tmp_path / "a", settings), check=True)
    assert proc.returncode != 0 and "schedule velero/inventory-schedule has no Completed backup to restore" in proc.stdout, proc.stdout[-3000:]
    # a restore is confirmed for one run with -e, never by an inventory
    proc = run(lab_endpoints, "disaster_recovery.yml", inventory(tmp_path / "b", {**settings, "dr_confirm": True}))
    assert proc.returncode != 0 and "refusing to run a namespace restore without confirmation" in proc.stdout, proc.stdout[-3000:]
