"""The ``lab_clock`` and ``lab_faults`` fixtures of lab.pytest_plugin against the session lab."""

from __future__ import annotations

import kubernetes
import pytest

pytestmark = pytest.mark.lab


def test_lab_clock_and_lab_faults(lab_clock, lab_faults, kubeconfig):
    assert lab_clock.status()["clock"]["mode"] == "manual"
    before = lab_clock.now()
    lab_clock.advance(60)
    assert (lab_clock.now() - before).total_seconds() == 60
    result = lab_faults.inject("node_pid_pressure", None, "lab-node-2")
    try:
        assert result["fault"]["since"] == lab_clock.status()["clock"]["now"]
        lab_clock.advance(0)
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
        node = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config)).read_node("lab-node-2")
        assert next(c for c in node.status.conditions if c.type == "PIDPressure").status == "True"
    finally:
        lab_faults.clear(None, "lab-node-2", "node_pid_pressure")
        lab_clock.advance(0)
