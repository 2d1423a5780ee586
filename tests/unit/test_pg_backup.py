"""pg_backup: pg_dump --format=custom to S3 with a checksum, verified by pg_restore into a scratch database.

Uses a real PostgreSQL (the lab's service class started privately in a temp dir) and a real moto S3 server.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.machinenativeops.platform.plugins.module_utils import backup_verify as BV
from ansible_collections.machinenativeops.platform.plugins.module_utils import pg_backup as PG

UTC = datetime.UTC


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- pure functions -----------------------------------------------------------------------------------
def test_dump_keys_sort_by_time_and_parse_back():
    when = datetime.datetime(2026, 1, 27, 2, 0, 0, tzinfo=UTC)
    key = PG.dump_key("postgres", "app", when)
    assert key == "postgres/app/app-20260127-020000.dump"
    assert PG.dump_time(key) == when
    assert PG.dump_time("postgres/app/app.dump.sha256") is None
    assert PG.dump_prefix("", "app") == "app/"


def test_plan_backup_with_max_age():
    now = datetime.datetime(2026, 1, 27, 5, 0, tzinfo=UTC)
    dumps = [{"key": "k1", "time": "2026-01-27T00:00:00+00:00"}, {"key": "k2", "time": "2026-01-27T02:00:00+00:00"}]
    assert PG.plan_backup([], now, 14400)["due"]
    plan = PG.plan_backup(dumps, now, 4 * 3600)
    assert not plan["due"] and plan["newest"]["key"] == "k2" and "10800s old, younger than max_age 14400s" in plan["reason"]
    assert PG.plan_backup(dumps, now, 3600)["due"]
    assert PG.plan_backup(dumps, now, None)["due"]


@pytest.mark.parametrize("name", ["app; DROP DATABASE x", "1abc", "", "a" * 64, 'x"y'])
def test_identifiers_are_checked(name):
    with pytest.raises(PG.PgBackupError, match="invalid"):
        PG.quote_ident(name)


def test_evaluate_check():
    assert PG.evaluate_check("3", minimum=1) == (True, "check query returned 3, minimum 1")
    assert PG.evaluate_check("0", minimum=1)[0] is False
    assert PG.evaluate_check("ok", expect="ok")[0] is True
    assert PG.evaluate_check("abc", minimum=1)[0] is False


def test_toc_tables():
    toc = (";\n; Archive created at 2026-01-01\n;\n215; 1259 16390 TABLE public orders lab\n"
           "216; 1259 16395 TABLE public items lab\n3340; 0 16390 TABLE DATA public orders lab\n")
    assert PG.toc_tables(toc) == ["public.orders", "public.items"]


def test_connection_env_keeps_the_password_out_of_argv():
    env = PG.connection_env({"login_host": "db", "login_port": 5433, "login_user": "u", "login_password": "s3cret"}, "app")
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]) == ("db", "5433", "u", "s3cret", "app")
    assert "PGPASSWORD" not in PG.connection_env({"login_user": "u"})


# -- against real servers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres():
    from lab.servers.postgres import PostgresService  # noqa: PLC0415
    from lab.services import LabContext  # noqa: PLC0415

    # PostgreSQL runs as the postgres user: a world-traversable directory (pytest's tmp dirs are 0700).
    base = Path(tempfile.mkdtemp(prefix="pg-backup-unit-"))
    base.chmod(0o711)
    ctx = LabContext(dir=base)
    service = PostgresService()
    info = service.start(ctx)
    ctx.endpoints["postgres"] = info
    bindir = info["bindir"]
    params = {"login_host": info["host"], "login_port": info["port"], "login_user": info["user"], "login_password": info["password"],
              "ssl_mode": "disable", "maintenance_db": info["dbname"], "bindir": bindir}
    PG.psql(bindir, params, info["dbname"], "CREATE TABLE IF NOT EXISTS orders (id int primary key, total numeric);"
            "INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g ON CONFLICT DO NOTHING;"
            "CREATE TABLE IF NOT EXISTS customers (id int primary key, name text);"
            "INSERT INTO customers VALUES (1, 'a'), (2, 'b') ON CONFLICT DO NOTHING", "seed")
    yield {"info": info, "params": params}
    service.stop(ctx)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    store = BV.S3Store(bucket="pgdumps", endpoint_url=url, access_key="a", secret_key="b")
    store.client.create_bucket(Bucket="pgdumps")
    yield store
    proc.terminate()
    proc.wait(timeout=10)


def test_backup_then_verify_by_restoring(postgres, s3):
    params, db = postgres["params"], postgres["info"]["dbname"]
    when = datetime.datetime(2026, 1, 27, 4, 0, tzinfo=UTC)
    stored = PG.backup(params, s3, db, "postgres", now=when)
    assert stored["key"] == f"postgres/{db}/{db}-20260127-040000.dump"
    head = s3.head(stored["key"])
    assert head["metadata"]["sha256"] == stored["sha256"] and head["size"] == stored["size"] > 0
    assert s3.get(stored["checksum_key"]).decode().split() == [stored["sha256"], f"{db}-20260127-040000.dump"]
    assert [d["key"] for d in PG.list_dumps(s3, "postgres", db)] == [stored["key"]]

    report = PG.verify(params, s3, stored["key"], "lab_verify_unit", check_query="SELECT count(*) FROM orders", minimum=500)
    assert report["passed"], report["checks"]
    assert [c["name"] for c in report["checks"]] == ["dump_present", "checksum", "archive_readable", "restore", "tables_restored", "check_query"]
    assert report["check_result"] == "500" and report["tables_in_dump"] == 2 and report["scratch_dropped"]
    exists = PG.psql(params["bindir"], params, db, "SELECT count(*) FROM pg_database WHERE datname = 'lab_verify_unit'", "probe")
    assert exists == "0"

    failing = PG.verify(params, s3, stored["key"], "lab_verify_unit", check_query="SELECT count(*) FROM orders WHERE id > 1000", minimum=1)
    assert not failing["passed"] and failing["failed_checks"] == ["check_query"]


def test_tampered_dump_fails_the_checksum(postgres, s3):
    params, db = postgres["params"], postgres["info"]["dbname"]
    stored = PG.backup(params, s3, db, "tamper", now=datetime.datetime(2026, 1, 27, 8, 0, tzinfo=UTC))
    data = bytearray(s3.get(stored["key"]))
    data[-10] ^= 0xFF
    s3.put(stored["key"], bytes(data), metadata={"sha256": stored["sha256"]})
    report = PG.verify(params, s3, stored["key"], "lab_verify_tamper", restore=False)
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["checksum"]["passed"] and "differs from the recorded" in checks["checksum"]["reason"]


def test_not_a_dump_and_missing_dump(postgres, s3):
    params = postgres["params"]
    s3.put("junk/x-20260101-000000.dump", b"not a custom archive")
    s3.put("junk/x-20260101-000000.dump.sha256", b"abc  x\n")
    report = PG.verify(params, s3, "junk/x-20260101-000000.dump", "lab_verify_junk")
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["archive_readable"]["passed"] and "pg_restore --list failed" in checks["archive_readable"]["reason"]
    missing = PG.verify(params, s3, "nothing/here.dump", "lab_verify_junk")
    assert missing["failed_checks"] == ["dump_present"]


def test_dump_of_a_missing_database_names_it(postgres, s3):
    with pytest.raises(PG.PgBackupError, match=r"pg_dump of database nosuchdb failed .*nosuchdb"):
        PG.backup(postgres["params"], s3, "nosuchdb", "postgres")
