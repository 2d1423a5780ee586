"""``python -m lab up|down|status``: start, stop and describe the whole lab."""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from pathlib import Path

from lab.services import LabContext, LabError, load_services, read_endpoints


@contextmanager
def _locked(lab_dir: Path):
    lab_dir.mkdir(parents=True, exist_ok=True)
    with open(lab_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(lab_dir: Path | str, only: set[str] | None = None, without: set[str] | None = None, kube: str | None = None) -> dict:
    """Start every service (or a subset) and write endpoints.json; return the endpoints.

    A lab that already runs in ``lab_dir`` is stopped first, so a second ``up``
    always gives a clean, known state. If a service fails, everything started so
    far is stopped again and the error names the service and shows its log. ``kube`` picks the
    Kubernetes API ("real" or "emulator"; default: env LAB_KUBE, see lab.services.KUBE_KINDS).
    """
    lab_dir = Path(lab_dir).resolve()
    with _locked(lab_dir):
        _down(lab_dir)
        ctx = LabContext(dir=lab_dir)
        ctx.endpoints = {"lab_dir": str(lab_dir), "services": [], "timings": {}}
        started = []
        t0 = time.monotonic()
        try:
            for service in load_services(only, without, kube):
                t = time.monotonic()
                # Listed before start() so a service that fails half-way is stopped too.
                started.append(service)
                info = service.start(ctx) or {}
                ctx.endpoints[service.name] = info
                ctx.endpoints["services"].append(service.name)
                ctx.endpoints["timings"][service.name] = round(time.monotonic() - t, 3)
        except BaseException:
            for service in reversed(started):  # stop() of a service that never started is a no-op
                try:
                    service.stop(ctx)
                except Exception as exc:  # keep stopping the others
                    print(f"lab: stopping {service.name} failed: {exc}")
            raise
        ctx.endpoints["timings"]["total"] = round(time.monotonic() - t0, 3)
        (lab_dir / "endpoints.json").write_text(json.dumps(ctx.endpoints, indent=2, sort_keys=True))
        return ctx.endpoints


def _down(lab_dir: Path) -> list[str]:
    endpoints_path = lab_dir / "endpoints.json"
    if not endpoints_path.exists() and not (lab_dir / "pids").exists():
        return []
    ctx = LabContext(dir=lab_dir)
    if endpoints_path.exists():
        ctx.endpoints = json.loads(endpoints_path.read_text())
    stopped = []
    errors = []
    # Stop the kind of Kubernetes API that was started, whatever LAB_KUBE says now.
    kube = (ctx.endpoints.get("apiserver") or {}).get("kind", "emulator") if ctx.endpoints else None
    for service in reversed(load_services(kube=kube)):
        try:
            service.stop(ctx)
            stopped.append(service.name)
        except Exception as exc:
            errors.append(f"{service.name}: {exc}")
    # Anything else with a pid file (a service that was renamed or removed) goes too.
    pid_dir = lab_dir / "pids"
    if pid_dir.exists():
        for pid_file in pid_dir.glob("*.pid"):
            ctx.stop_pid(pid_file.stem)
    endpoints_path.unlink(missing_ok=True)
    if errors:
        raise LabError("lab down left errors: " + "; ".join(errors))
    return stopped


def down(lab_dir: Path | str) -> list[str]:
    """Stop everything the lab started in ``lab_dir``; nothing is left running."""
    lab_dir = Path(lab_dir).resolve()
    with _locked(lab_dir):
        return _down(lab_dir)


def status(lab_dir: Path | str) -> dict:
    """Each started service and whether its process is alive."""
    lab_dir = Path(lab_dir).resolve()
    endpoints = read_endpoints(lab_dir)
    ctx = LabContext(dir=lab_dir, endpoints=endpoints)
    result = {}
    names = set(endpoints.get("services", []))
    for service in load_services(kube=(endpoints.get("apiserver") or {}).get("kind", "emulator")):
        if service.name in names:
            result[service.name] = "running" if service.healthy(ctx) else "stopped"
    return result
