"""The restore test's isolation (issue 12 item 2) on the real control plane (LAB_KUBE=real): the objects the resource
modifiers change (a ClusterIP Service without node ports, 0 replicas, a suspended CronJob, a DaemonSet node selector)
must be accepted by the real kube-apiserver's validation, and the real controllers then start nothing. The same test
and fixtures as against the emulator (imported from tests/integration/test_velero_backup.py, so pytest runs them here),
on a private real lab with the simulated Velero."""

from __future__ import annotations

import pytest

from lab.controllers.testing import private_real_lab
from tests.integration.test_velero_backup import (  # noqa: F401  # pylint: disable=unused-import
    app_ns,
    cluster,
    test_restore_test_brings_nothing_to_life,
)

pytestmark = [pytest.mark.lab, pytest.mark.real_kube]


@pytest.fixture(scope="module")
def lab_endpoints(tmp_path_factory):
    with private_real_lab(tmp_path_factory.mktemp("restore-real")) as endpoints:
        yield endpoints
