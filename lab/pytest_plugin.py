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
