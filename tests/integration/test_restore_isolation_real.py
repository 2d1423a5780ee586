"""The restore test's isolation (issue 12 item 2) on the real control plane (LAB_KUBE=real): the objects the resource
modifiers change (a ClusterIP Service without node ports, 0 replicas, a suspended CronJob, a DaemonSet node selector)
must be accepted by the real kube-apiserver's validation, and the real controllers then start nothing. The same test
as against the emulator (imported from tests/integration/test_velero_backup.py, so pytest runs it here too), on a
private real lab with the simulated Velero."""

from __future__ import annotations

import uuid

import pytest

from lab.controllers.testing import private_lab
from lab.kube import build
from tests.integration.test_velero_backup import test_restore_test_brings_nothing_to_life  # noqa: F401  # pylint: disable=unused-import
from tests.integration.velero_support import VeleroLab

pytestmark = [pytest.mark.lab, pytest.mark.real_kube]


@pytest.fixture(scope="module")
def lab_endpoints(tmp_path_factory):
    if build.installed() is None:
        pytest.fail("the real control plane is not built: `make setup` runs `python -m lab build`")
    with private_lab(tmp_path_factory.mktemp("restore-real"), {"s3", "apiserver", "controllers"}, kube="real") as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def cluster(lab_endpoints):
    return VeleroLab(lab_endpoints)


@pytest.fixture
def app_ns(cluster):
    name = f"ri-{uuid.uuid4().hex[:6]}"
    cluster.app_namespace(name)
    yield name
    cluster.delete_namespace(name)
