"""anomaly_score through ansible-playbook: a metrics file, and the lab's Prometheus with an injected fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import anomaly_features as af

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
FILES = Path(__file__).resolve().parent / "files"


def run_playbook(playbook, extra_vars=None, tmp_path=None):
    """ansible-playbook with the json callback; returns {task name: [host result, ...]}."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    })
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=900, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook did not print JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            results[task["task"]["name"]] = task["hosts"]["localhost"]
    assert proc.returncode == 0, json.dumps(out.get("stats"), indent=1) + proc.stderr[-2000:]
    return results


def by_target(result):
    return {t["target"]: t for t in result["targets"]}


def test_metrics_file_through_ansible_playbook(tmp_path):
    truth = json.loads((FILES / "anomaly_pods.truth.json").read_text())
    res = run_playbook(PLAYBOOKS / "anomaly_file.yml", tmp_path=tmp_path)
    real = res["Score the pods in the metrics file"]
    check = res["Score the same file in check mode"]
    detect = res["Score the same file with the detector only and a pinned model digest"]
    assert real["changed"] is False and check["changed"] is False
    # check mode predicts exactly what the real run returns
    assert real["targets"] == check["targets"] and real["summary"] == check["summary"]
    targets = by_target(real)
    assert set(targets) == set(truth)
    for name, t in truth.items():
        got = targets[name]
        assert got["status"] == "ok"
        if t["label"] == "healthy":
            assert got["anomalous"] is False, got
            continue
        assert got["anomalous"] is True, got
        onset = af.parse_timestamp(t["onset"])
        first = af.parse_timestamp(got["first_anomalous_at"])
        assert onset <= first <= onset + 600, (name, t["onset"], got["first_anomalous_at"])
        assert got["anomaly_type"] == t["label"]
        assert got["contributing_metrics"]
        assert len(got["timeline"]) > 100
    assert real["summary"]["anomalous"] == 2
    assert real["model"]["sha256"] == detect["model"]["sha256"]
    # the detector-only run flags the same targets and does not classify
    for name, t in by_target(detect).items():
        assert t["anomalous"] == targets[name]["anomalous"]
        assert t["anomaly_type"] is None
