"""Session-scoped pytest fixtures that start one lab per test run.

``lab_endpoints`` starts the whole lab in a temporary directory (or reuses a running
one when LAB_DIR names it) and stops it at the end of the session. Other parts of the
lab add their fixtures here (kubeconfig, fault API, clock, Prometheus URL, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab import orchestrator
from lab.services import read_endpoints


@pytest.fixture(scope="session")
def lab_endpoints(tmp_path_factory) -> dict:
    reuse = os.environ.get("LAB_DIR")
    if reuse and (Path(reuse) / "endpoints.json").exists():
        yield read_endpoints(reuse)
        return
    lab_dir = tmp_path_factory.mktemp("lab")
    endpoints = orchestrator.up(lab_dir)
    try:
        yield endpoints
    finally:
        orchestrator.down(lab_dir)


@pytest.fixture(scope="session")
def lab_dir(lab_endpoints) -> Path:
    return Path(lab_endpoints["lab_dir"])


@pytest.fixture(scope="session")
def kubeconfig(lab_endpoints) -> str:
    return lab_endpoints["apiserver"]["kubeconfig"]


# -- controllers helper: faults and the controllers' clock ---------------------------------------
@pytest.fixture(scope="session")
def lab_faults(lab_endpoints):
    """``lab.faults.Faults`` bound to the session lab: inject/clear/active."""
    from lab.faults import Faults  # noqa: PLC0415 - only when used

    return Faults.from_endpoints(lab_endpoints)


@pytest.fixture
def lab_clock(lab_endpoints):
    """The controllers' clock switched to manual for one test (``.advance(seconds)``, ``.reconcile()``,
    ``.now()``); it goes back to real time afterwards."""
    from lab.controllers.client import ControllersAdmin  # noqa: PLC0415 - only when used

    admin = ControllersAdmin.from_endpoints(lab_endpoints)
    admin.manual()
    try:
        yield admin
    finally:
        admin.real()


# -- servers helper: Prometheus, Alertmanager, webhook receiver, PostgreSQL, S3, traffic ----------
@pytest.fixture(scope="session")
def prometheus_url(lab_endpoints) -> str:
    """Base URL of the lab Prometheus (scrapes the exporters every 1s, evaluates rules every 1s)."""
    return lab_endpoints["prometheus"]["url"]


@pytest.fixture(scope="session")
def alertmanager_url(lab_endpoints) -> str:
    return lab_endpoints["alertmanager"]["url"]


@pytest.fixture(scope="session")
def webhook(lab_endpoints) -> dict:
    """``{"url", "alerts_url"}`` of the receiver Alertmanager notifies; GET alerts_url lists the notifications."""
    return lab_endpoints["webhook"]


@pytest.fixture(scope="session")
def postgres_dsn(lab_endpoints) -> str:
    return lab_endpoints["postgres"]["dsn"]


@pytest.fixture(scope="session")
def s3(lab_endpoints) -> dict:
    """The moto S3 endpoint: ``{"endpoint_url", "access_key", "secret_key", "region", "bucket", "prefix"}``."""
    return lab_endpoints["s3"]


@pytest.fixture(scope="session")
def traffic(kubeconfig):
    """``lab.traffic`` bound to the lab: ``traffic.set(ns, service, rps=..., version=..., error_ratio=..., p50_ms=..., p95_ms=...)``,
    ``traffic.clear(ns, service)``, ``traffic.get()``."""
    from lab import traffic as lab_traffic  # noqa: PLC0415 - only when used

    class _Traffic:
        def set(self, namespace, service, **kwargs):
            return lab_traffic.set_traffic(kubeconfig, namespace, service, **kwargs)

        def clear(self, namespace=None, service=None, version=None):
            return lab_traffic.clear(kubeconfig, namespace, service, version)

        def get(self):
            return lab_traffic.get_traffic(kubeconfig)

    return _Traffic()
