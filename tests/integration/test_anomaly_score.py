"""anomaly_score through ansible-playbook: a metrics file, and the lab's Prometheus with an injected fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


@pytest.mark.lab
@pytest.mark.slow
def test_prometheus_with_injected_cpu_spike(lab_endpoints, lab_dir, lab_faults, tmp_path):
    """Lab pods with an hour of preloaded history; a cpu_spike fault on one Deployment must be flagged
    from the lab's Prometheus through ansible-playbook, with CPU as the contributing metric."""
    from lab import history  # noqa: PLC0415 - the lab only for this test
    from lab import traffic as lab_traffic  # noqa: PLC0415
    from lab.servers.testing import create_istio_app, prom_query, wait_for  # noqa: PLC0415

    kubeconfig = lab_endpoints["apiserver"]["kubeconfig"]
    prom = lab_endpoints["prometheus"]["url"]
    ns = "anomaly-it"
    lab_traffic.set_traffic(kubeconfig, ns, "shop", rps=20, error_ratio=0.01)
    create_istio_app(kubeconfig, ns, "shop", versions={"v1": 1, "v2": 1}, weights={"v1": 50, "v2": 50})
    wait_for(lambda: len(prom_query(prom, f'container_cpu_usage_seconds_total{{namespace="{ns}"}}')) >= 2, timeout=120,
             what="live cAdvisor series of both pods")
    history.preload(lab_dir, 1.0, step=15)
    wait_for(lambda: len(prom_query(prom, f'container_cpu_usage_seconds_total{{namespace="{ns}"}}')) >= 2, timeout=120,
             what="live series after the preload")
    # Where the preloaded history meets the live series, counter rates step on both pods and the detector may alarm
    # (about 45 s later). Inject only once such alarms are in the past, so that every alarm after the injection is
    # the fault's.
    time.sleep(150)
    injected = lab_faults.inject("cpu_spike", ns, "shop-v2", target_kind="Deployment")
    since = af.parse_timestamp(injected["fault"]["since"])
    extra = {"anomaly_prometheus_url": prom, "anomaly_namespace": ns, "anomaly_lookback": "90m", "anomaly_step": "15s",
             "anomaly_rate_window": "1m"}
    state = {}

    def cpu_episodes(target: dict) -> list[dict]:
        """Episodes alarmed after the injection whose strongest contributor is CPU going up."""
        return [ep for ep in target.get("episode_details", []) if af.parse_timestamp(ep["alarm_at"]) >= since
                and ep["contributing_metrics"] and ep["contributing_metrics"][0]["metric"] == "cpu_usage"
                and ep["contributing_metrics"][0]["direction"] == "up"]

    def flagged():
        extra["anomaly_end"] = str(time.time())
        res = run_playbook(PLAYBOOKS / "anomaly_prometheus.yml", extra, tmp_path=tmp_path)
        state["res"] = res
        targets = by_target(res["Score the namespace's pods over the lookback window"])
        spiky = [t for name, t in targets.items() if "/shop-v2-" in name]
        return bool(spiky and cpu_episodes(spiky[0]))

    try:
        wait_for(flagged, timeout=600, interval=20, what="the cpu_spike pod to be flagged")
    finally:
        lab_faults.clear(ns, "shop-v2", "cpu_spike", target_kind="Deployment")
    real = state["res"]["Score the namespace's pods over the lookback window"]
    check = state["res"]["The same in check mode"]
    assert real["targets"] == check["targets"]
    targets = by_target(real)
    assert len(targets) == 2 and all(t["status"] == "ok" for t in targets.values())
    assert all(name.startswith(ns + "/shop-v") for name in targets)
    spiky = next(t for name, t in targets.items() if "/shop-v2-" in name)
    episode = cpu_episodes(spiky)[0]
    assert af.parse_timestamp(episode["alarm_at"]) - since <= 300, episode
    assert "cpu_usage" in spiky["metrics_used"] and "memory_working_set_bytes" in spiky["metrics_used"]
    assert {q["column"] for q in real["queries"]} >= {"cpu_usage", "memory_working_set_bytes", "restarts_total"}
    # the pod without a fault is not alarmed by CPU after the injection
    calm = next(t for name, t in targets.items() if "/shop-v1-" in name)
    for ep in calm.get("episode_details", []):
        if af.parse_timestamp(ep["alarm_at"]) >= since:
            assert all(m["metric"] != "cpu_usage" for m in ep["contributing_metrics"]), ep
