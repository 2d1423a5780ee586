"""PostgreSQL (the Debian package's binaries) for the lab.

``initdb`` is the slow part (several seconds), so the first start builds a template
cluster once per PostgreSQL version, with the role (LOGIN, CREATEDB) and database ``lab``
already in it, under ``/tmp/lab-postgres-template-<version>``; every later start copies that
template into ``<lab dir>/data/postgres/pgdata``. PostgreSQL refuses to run as root,
so the cluster belongs to the ``postgres`` user and the server runs as that user.
Durability is switched off (fsync, synchronous_commit, full_page_writes): this is a
throwaway test database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from lab.services import LabContext, LabError, Service, free_port

USER = "lab"
PASSWORD = "lab"  # the lab's documented throwaway credential (CONTRACTS C)
DBNAME = "lab"
OS_USER = "postgres"
TEMPLATE_ROOT = Path(tempfile.gettempdir())
# Bumped when what the template contains changes, so an older cached template is not reused.
TEMPLATE_REVISION = 2


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin that has initdb and postgres."""
    env = os.environ.get("LAB_POSTGRES_BINDIR")
    candidates = [Path(env)] if env else sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise LabError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: apt-get install -y postgresql")


def _major(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        return 0


def server_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\d+(\.\d+)+", out)
    return match.group(0) if match else out.strip().replace(" ", "_")


def _os_user() -> tuple[str | None, int, int]:
    """The OS user the server runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise LabError(f"running as root but there is no '{OS_USER}' user to run PostgreSQL as") from exc
    return OS_USER, pw.pw_uid, pw.pw_gid


def _server_args(bindir: Path, pgdata: Path, port: int, socket_dir: Path, listen: str) -> list[str]:
    return [
        str(bindir / "postgres"), "-D", str(pgdata), "-p", str(port),
        "-c", f"listen_addresses={listen}",
        "-c", f"unix_socket_directories={socket_dir}",
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        "-c", "max_connections=50", "-c", "shared_buffers=32MB",
        "-c", "logging_collector=off", "-c", "log_min_messages=warning",
    ]


def _wait_socket(socket_dir: Path, port: int, proc: subprocess.Popen, log: str, timeout: float = 30.0) -> None:
    path = socket_dir / f".s.PGSQL.{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"postgres exited with code {proc.returncode} while starting:\n{log_tail(log)}")
        if path.exists():
            return
        time.sleep(0.05)
    raise LabError(f"postgres did not create {path} within {timeout:.0f}s:\n{log_tail(log)}")


def log_tail(path: str | Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    return ""


def _connect(conninfo: str, timeout: float = 30.0, proc: subprocess.Popen | None = None, log: str = ""):
    import psycopg  # noqa: PLC0415 - only the postgres service needs it

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"postgres exited with code {proc.returncode} while starting:\n{log_tail(log)}")
        try:
            return psycopg.connect(conninfo, connect_timeout=2, autocommit=True)
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.1)
    raise LabError(f"cannot connect to postgres ({last}):\n{log_tail(log)}")


def ensure_template(bindir: Path) -> Path:
    """Build (once) and return the template cluster for this PostgreSQL version."""
    user, uid, gid = _os_user()
    version = server_version(bindir)
    template = TEMPLATE_ROOT / f"lab-postgres-template-{version}-r{TEMPLATE_REVISION}-{uid}"
    if (template / "PG_VERSION").exists():
        return template
    lock_path = TEMPLATE_ROOT / f"lab-postgres-template-{version}-r{TEMPLATE_REVISION}-{uid}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (template / "PG_VERSION").exists():
            return template
        build = Path(tempfile.mkdtemp(prefix=f"lab-postgres-build-{version}-", dir=TEMPLATE_ROOT))
        try:
            os.chown(build, uid, gid)
            pgdata = build / "pgdata"
            log = build / "build.log"
            with open(log, "wb") as fh:
                os.chown(log, uid, gid)
                result = subprocess.run(
                    [str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
                     "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
                    stdout=fh, stderr=subprocess.STDOUT, user=user, check=False,
                )
            if result.returncode != 0:
                raise LabError(f"initdb failed ({result.returncode}):\n{log_tail(log)}")
            port = free_port()
            with open(log, "ab") as fh:
                proc = subprocess.Popen(_server_args(bindir, pgdata, port, build, ""), stdout=fh, stderr=subprocess.STDOUT,
                                        user=user, start_new_session=True)
            try:
                _wait_socket(build, port, proc, str(log))
                with _connect(f"host={build} port={port} user=postgres dbname=postgres", proc=proc, log=str(log)) as conn:
                    # CREATEDB: backup verification restores into scratch databases, as a backup operator's role may.
                    conn.execute(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
                    conn.execute(f"CREATE DATABASE {DBNAME} OWNER {USER}")
            finally:
                _stop_postmaster(proc.pid)
                proc.wait(timeout=30)
            with contextlib.suppress(FileNotFoundError):
                (pgdata / "postmaster.pid").unlink()
            os.rename(pgdata, template)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return template


def _stop_postmaster(pid: int, timeout: float = 15.0) -> None:
    """Fast shutdown (SIGINT): PostgreSQL disconnects clients and stops cleanly."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        time.sleep(0.05)


def _reachable_by(path: Path, uid: int) -> bool:
    """Whether a process running as ``uid`` can reach ``path`` (every ancestor searchable)."""
    if os.geteuid() != 0 or uid == 0:
        return True
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return False
    return True


class PostgresService(Service):
    name = "postgres"

    def start(self, ctx: LabContext) -> dict:
        bindir = find_bindir()
        user, uid, gid = _os_user()
        template = ensure_template(bindir)
        base = ctx.data_dir("postgres")
        self._cleanup(base)
        if _reachable_by(base, uid) and len(str(base)) < 80:
            home = base
        else:
            # The lab dir is private (e.g. pytest's 0700 tmp dirs) or too long for a unix socket path:
            # the cluster lives in its own /tmp dir, linked from the lab dir and removed by stop().
            home = Path(tempfile.mkdtemp(prefix="lab-postgres-"))
            (base / "external_dir").write_text(str(home))
            (base / "pgdata").symlink_to(home / "pgdata")
        pgdata = home / "pgdata"
        # cp -a keeps the owner and the 0700 mode PostgreSQL insists on.
        subprocess.run(["cp", "-a", str(template), str(pgdata)], check=True)
        socket_dir = home / "run"
        socket_dir.mkdir(exist_ok=True)
        for path in {base, home, socket_dir}:
            os.chown(path, uid, gid)
        port = free_port()
        proc = ctx.spawn(self.name, _server_args(bindir, pgdata, port, socket_dir, "127.0.0.1"), user=user)
        dsn = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DBNAME}"
        _wait_socket(socket_dir, port, proc, str(ctx.log_dir / f"{self.name}.log"))
        with _connect(dsn, proc=proc, log=str(ctx.log_dir / f"{self.name}.log")) as conn:
            conn.execute("SELECT 1")
        return {
            "dsn": dsn, "host": "127.0.0.1", "port": port, "user": USER, "password": PASSWORD, "dbname": DBNAME,
            "bindir": str(bindir), "socket_dir": str(socket_dir), "data_dir": str(base / "pgdata"),
        }

    def stop(self, ctx: LabContext) -> None:
        pid_file = ctx.pid_dir / f"{self.name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError):
                _stop_postmaster(int(pid_file.read_text().strip()))
        ctx.stop_pid(self.name)
        self._cleanup(ctx.dir / "data" / "postgres", keep_local=True)

    @staticmethod
    def _cleanup(base: Path, keep_local: bool = False) -> None:
        """Remove the cluster's own /tmp dir (if any); the in-lab data dir too unless ``keep_local`` (after a stop)."""
        marker = base / "external_dir"
        if marker.exists():
            shutil.rmtree(marker.read_text().strip(), ignore_errors=True)
            marker.unlink()
        link = base / "pgdata"
        if link.is_symlink():
            link.unlink()
        elif link.exists() and not keep_local:
            shutil.rmtree(link)
