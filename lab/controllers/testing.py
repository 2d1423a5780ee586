"""Helpers for tests of the controllers: a private lab with only the services they need."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lab import orchestrator
from lab.services import read_endpoints

CONTROLLER_SERVICES = {"s3", "apiserver", "controllers"}


@contextlib.contextmanager
def private_real_lab(lab_dir: Path, services: set[str] | None = None) -> Iterator[dict]:
    """``private_lab`` on the real control plane (LAB_KUBE=real); fails the test when its binaries are not built."""
    import pytest  # noqa: PLC0415 - a test helper

    from lab.kube import build  # noqa: PLC0415

    if build.installed() is None:
        pytest.fail("the real control plane is not built: `make setup` runs `python -m lab build`")
    with private_lab(lab_dir, services, kube="real") as endpoints:
        yield endpoints


@contextlib.contextmanager
def private_lab(lab_dir: Path, services: set[str] | None = None, reuse: bool = True, kube: str | None = None) -> Iterator[dict]:
    """Start ``services`` (default s3, apiserver, controllers) in ``lab_dir``; stop them afterwards.

    With ``reuse`` and LAB_DIR set to a running lab that has the services, that lab is reused (and left running).
    ``kube``: "real" or "emulator" (default: env LAB_KUBE); a reused lab must be of that kind.
    """
    wanted = services or CONTROLLER_SERVICES
    running = os.environ.get("LAB_DIR") if reuse else None
    if running and (Path(running) / "endpoints.json").exists():
        endpoints = read_endpoints(running)
        kind = (endpoints.get("apiserver") or {}).get("kind", "emulator")
        if wanted <= set(endpoints.get("services", [])) and (kube is None or kube == kind):
            yield endpoints
            return
    endpoints = orchestrator.up(lab_dir, only=wanted, kube=kube)
    try:
        yield endpoints
    finally:
        orchestrator.down(lab_dir)
