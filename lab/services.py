"""Service registry and process helpers shared by every part of the lab.

A service is one thing ``python -m lab up`` starts (a process of ours or a real
server). Each part of the lab defines its services in its own module and is listed
in ``SERVICES`` below, in start order. ``start`` returns what goes under the
service's name in ``endpoints.json``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Which Kubernetes API the lab serves (env LAB_KUBE): "real" = etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and KWOK built from their Go modules (lab/kube/); "emulator" = the Python API emulator
# (lab/apiserver/) and its simulated controllers, kept until every test passes on the real control plane.
KUBE_KINDS = {"real": "lab.kube.service:KubeService", "emulator": "lab.apiserver.service:ApiServerService"}
DEFAULT_KUBE = "emulator"


def kube_kind(kind: str | None = None) -> str:
    kind = kind or os.environ.get("LAB_KUBE") or DEFAULT_KUBE
    if kind not in KUBE_KINDS:
        raise LabError(f"LAB_KUBE={kind!r}: expected one of {', '.join(sorted(KUBE_KINDS))}")
    return kind


# "module:Class" in start order. A service may read the endpoints of those before it.
# "apiserver" stands for the Kubernetes API of the kind above.
SERVICES: list[str] = [
    "lab.s3:S3Service",
    "apiserver",
    "lab.controllers.service:ControllersService",
    "lab.servers.postgres:PostgresService",
    "lab.servers.webhook:WebhookService",
    "lab.servers.alertmanager:AlertmanagerService",
    "lab.exporters.service:ExportersService",
    "lab.servers.prometheus:PrometheusService",
]


class LabError(RuntimeError):
    """A lab service failed to start or stop; the message says which and why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LabContext:
    """What a service sees while it starts or stops."""

    dir: Path
    endpoints: dict = field(default_factory=dict)
    python: str = sys.executable

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.dir / "pids"

    def data_dir(self, name: str) -> Path:
        path = self.dir / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spawn(self, name: str, argv: list[str], env: dict | None = None, user: str | None = None, cwd: str | None = None) -> subprocess.Popen:
        """Start a detached process, log to logs/<name>.log, record its pid in pids/<name>.pid."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        full_env.update(env or {})
        log = open(self.log_dir / f"{name}.log", "ab")
        kwargs: dict = {}
        if user is not None and os.geteuid() == 0:
            kwargs["user"] = user
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=full_env, cwd=cwd, start_new_session=True, **kwargs,
        )
        log.close()
        (self.pid_dir / f"{name}.pid").write_text(str(proc.pid))
        return proc

    def stop_pid(self, name: str, timeout: float = 10.0) -> None:
        """Stop the process group recorded under ``name`` (TERM, then KILL)."""
        pid_file = self.pid_dir / f"{name}.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip() or 0)
        if pid > 0 and _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                while _alive(pid) and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def running(self, name: str) -> bool:
        pid_file = self.pid_dir / f"{name}.pid"
        if not pid_file.exists():
            return False
        try:
            return _alive(int(pid_file.read_text().strip()))
        except ValueError:
            return False

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, url: str, name: str, timeout: float = 30.0, proc: subprocess.Popen | None = None, ok=(200,)) -> None:
        """Wait until ``url`` answers with a status in ``ok``; raise LabError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LabError(f"{name} exited with code {proc.returncode} while starting:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status in ok:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                if exc.code in ok:
                    return
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise LabError(f"{name} did not answer at {url} within {timeout:.0f}s ({last}):\n{self.log_tail(name)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


class Service:
    """Base class: override ``start``; the default ``stop`` stops the process named like the service."""

    name = "service"

    def start(self, ctx: LabContext) -> dict:
        raise LabError(f"{type(self).__name__} does not define start()")

    def stop(self, ctx: LabContext) -> None:
        ctx.stop_pid(self.name)

    def healthy(self, ctx: LabContext) -> bool:
        return ctx.running(self.name)


def load_services(only: set[str] | None = None, without: set[str] | None = None, kube: str | None = None) -> list[Service]:
    """Instantiate the registered services, in order, honouring --only / --without names (``kube``: see KUBE_KINDS)."""
    found = []
    for registered in SERVICES:
        spec = KUBE_KINDS[kube_kind(kube)] if registered == "apiserver" else registered
        module_name, _, class_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A part of the lab that is not in this tree (yet) is reported, not fatal.
            if exc.name and module_name.startswith(exc.name):
                print(f"lab: {module_name} is not available, skipping", file=sys.stderr)
                continue
            raise
        service = getattr(module, class_name)()
        if only and service.name not in only:
            continue
        if without and service.name in without:
            continue
        found.append(service)
    return found


def read_endpoints(lab_dir: Path | str) -> dict:
    path = Path(lab_dir) / "endpoints.json"
    if not path.exists():
        raise LabError(f"no lab is running in {lab_dir} (no endpoints.json): run `python -m lab up --dir {lab_dir}`")
    return json.loads(path.read_text())
