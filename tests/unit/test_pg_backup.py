"""pg_backup: pg_dump --format=custom to S3 with a checksum, verified by pg_restore into a scratch database.

Uses a real PostgreSQL (the lab's service class started privately in a temp dir) and a real moto S3 server.
"""

from __future__ import annotations

import datetime
import os
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


def run_program(argv, env, timeout):
    """The runner the module builds on run_command, here on subprocess (same contract: rc, stdout, stderr; 124 on timeout)."""
    try:
        proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return PG.TIMEOUT_RC, "", "timed out"
    return proc.returncode, proc.stdout, proc.stderr


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
    pg = PG.Pg(params, run_program)
    pg.psql(info["dbname"], "CREATE TABLE IF NOT EXISTS orders (id int primary key, total numeric);"
            "INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g ON CONFLICT DO NOTHING;"
            "CREATE TABLE IF NOT EXISTS customers (id int primary key, name text);"
            "INSERT INTO customers VALUES (1, 'a'), (2, 'b') ON CONFLICT DO NOTHING", "seed")
    yield {"info": info, "params": params, "pg": pg}
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
    pg, db = postgres["pg"], postgres["info"]["dbname"]
    when = datetime.datetime(2026, 1, 27, 4, 0, tzinfo=UTC)
    stored = PG.backup(pg, s3, db, "postgres", now=when)
    assert stored["key"] == f"postgres/{db}/{db}-20260127-040000.dump"
    head = s3.head(stored["key"])
    assert head["metadata"]["sha256"] == stored["sha256"] and head["size"] == stored["size"] > 0
    assert s3.get(stored["checksum_key"]).decode().split() == [stored["sha256"], f"{db}-20260127-040000.dump"]
    assert [d["key"] for d in PG.list_dumps(s3, "postgres", db)] == [stored["key"]]

    report = PG.verify(pg, s3, stored["key"], "lab_verify_unit", check_query="SELECT count(*) FROM orders", minimum=500)
    assert report["passed"], report["checks"]
    assert [c["name"] for c in report["checks"]] == ["dump_present", "checksum", "archive_readable", "restore", "tables_restored", "check_query"]
    assert report["check_result"] == "500" and report["tables_in_dump"] == 2 and report["scratch_dropped"]
    exists = pg.psql(db, "SELECT count(*) FROM pg_database WHERE datname = 'lab_verify_unit'", "probe")
    assert exists == "0"

    failing = PG.verify(pg, s3, stored["key"], "lab_verify_unit", check_query="SELECT count(*) FROM orders WHERE id > 1000", minimum=1)
    assert not failing["passed"] and failing["failed_checks"] == ["check_query"]


def test_tampered_dump_fails_the_checksum(postgres, s3):
    pg, db = postgres["pg"], postgres["info"]["dbname"]
    stored = PG.backup(pg, s3, db, "tamper", now=datetime.datetime(2026, 1, 27, 8, 0, tzinfo=UTC))
    data = bytearray(s3.get(stored["key"]))
    data[-10] ^= 0xFF
    s3.put(stored["key"], bytes(data), metadata={"sha256": stored["sha256"]})
    report = PG.verify(pg, s3, stored["key"], "lab_verify_tamper", restore=False)
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["checksum"]["passed"] and "differs from the recorded" in checks["checksum"]["reason"]


def test_not_a_dump_and_missing_dump(postgres, s3):
    pg = postgres["pg"]
    s3.put("junk/x-20260101-000000.dump", b"not a custom archive")
    s3.put("junk/x-20260101-000000.dump.sha256", b"abc  x\n")
    report = PG.verify(pg, s3, "junk/x-20260101-000000.dump", "lab_verify_junk")
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["archive_readable"]["passed"] and "pg_restore --list failed" in checks["archive_readable"]["reason"]
    missing = PG.verify(pg, s3, "nothing/here.dump", "lab_verify_junk")
    assert missing["failed_checks"] == ["dump_present"]


def test_dump_of_a_missing_database_names_it(postgres, s3):
    with pytest.raises(PG.PgBackupError, match=r"pg_dump of database nosuchdb failed .*nosuchdb"):
        PG.backup(postgres["pg"], s3, "nosuchdb", "postgres")


# -- restore: decisions -----------------------------------------------------------------------------------
NAMES = ("app_restoring", "app_before_20260127040000")
MARK = PG.restore_marker("b", "postgres/app/app-20260127-040000.dump", "ab" * 32)
ABSENT = {"exists": False, "comment": None, "owner": None}


def test_restore_names_fit_postgres_identifiers():
    when = datetime.datetime(2026, 1, 27, 4, 0, tzinfo=UTC)
    assert PG.restore_names("app", when) == NAMES
    working, before = PG.restore_names("x" * 63, when)
    assert len(working) == len(before) == 63 and working.endswith("_restoring") and before.endswith("_before_20260127040000")


def test_plan_restore_into_a_new_database():
    plan = PG.plan_restore("k", "app", ABSENT, ABSENT, MARK, force=False, names=NAMES)
    assert plan["action"] == "restore" and plan["reason"] == "database app does not exist"
    assert plan["steps"][0] == "create database app_restoring"
    assert plan["steps"][-1] == "in one transaction rename app_restoring to app and mark it as restored"
    assert not any("before" in step for step in plan["steps"])


def test_plan_restore_refuses_a_database_with_tables_without_force():
    target = {"exists": True, "comment": "", "owner": "app_owner", "tables": 3}
    plan = PG.plan_restore("k", "app", target, ABSENT, MARK, force=False, names=NAMES)
    assert plan["action"] == "refuse" and plan["steps"] == []
    assert plan["reason"].startswith("refusing to restore dump k into database app: it exists and holds 3 tables.")
    forced = PG.plan_restore("k", "app", target, ABSENT, MARK, force=True, names=NAMES)
    assert forced["action"] == "restore" and forced["reason"] == "database app holds 3 tables and force=true"
    assert forced["steps"][0] == "create database app_restoring owned by app_owner (the owner of app)"
    assert "rename app to app_before_20260127040000 and app_restoring to app" in forced["steps"][-2]
    assert forced["steps"][-1] == "keep app_before_20260127040000 (the replaced database, 3 tables) until you drop it"
    no_owner = PG.plan_restore("k", "app", target, ABSENT, MARK, force=True, keep_owners=False, keep_acls=False, names=NAMES)
    assert "(objects owned by the login role, GRANTs left out)" in no_owner["steps"][1]


def test_plan_restore_empty_database_needs_no_force_and_marked_database_is_done():
    empty = {"exists": True, "comment": "", "owner": "o", "tables": 0}
    assert PG.plan_restore("k", "app", empty, ABSENT, MARK, force=False, names=NAMES)["action"] == "restore"
    done = {"exists": True, "comment": MARK, "owner": "o", "tables": 5}
    plan = PG.plan_restore("k", "app", done, ABSENT, MARK, force=False, names=NAMES)
    assert plan["action"] == "none" and plan["steps"] == []
    # another dump's mark is not this one's
    other = dict(done, comment=PG.restore_marker("b", "postgres/app/app-20260126-040000.dump", "cd" * 32))
    assert PG.plan_restore("k", "app", other, ABSENT, MARK, force=True, names=NAMES)["action"] == "restore"


def test_plan_restore_refuses_a_work_database_it_did_not_create():
    foreign = {"exists": True, "comment": "someone's data"}
    plan = PG.plan_restore("k", "app", ABSENT, foreign, MARK, force=True, names=NAMES)
    assert plan["action"] == "refuse" and "the work database app_restoring exists and pg_backup did not create it" in plan["reason"]
    ours = {"exists": True, "comment": PG.WORK_MARK + ": k into app"}
    plan = PG.plan_restore("k", "app", ABSENT, ours, MARK, force=False, names=NAMES)
    assert plan["steps"][0] == "drop the work database app_restoring left by an unfinished earlier restore"


def test_scratch_database_equal_to_a_protected_database_is_refused():
    with pytest.raises(PG.PgBackupError, match="refusing to use database app as the scratch database"):
        PG.refuse_protected("app", ["other", "app"])
    PG.refuse_protected("app_verify", ["app", None])


# -- restore: against the private PostgreSQL --------------------------------------------------------------
@pytest.fixture(scope="module")
def shop(postgres, s3):
    """A database of its own (``unitshop``, 300 orders, SELECT granted to PUBLIC) and one dump of it."""
    pg = postgres["pg"]
    if pg.database_state("unitshop")["exists"]:
        pg.admin("DROP DATABASE unitshop WITH (FORCE)", "reset")
    pg.admin("CREATE DATABASE unitshop", "create")
    pg.psql("unitshop", "CREATE TABLE orders (id int primary key, total numeric);"
            "INSERT INTO orders SELECT g, g FROM generate_series(1, 300) g; GRANT SELECT ON orders TO PUBLIC", "seed")
    stored = PG.backup(pg, s3, "unitshop", "restore", now=datetime.datetime(2026, 1, 27, 4, 0, tzinfo=UTC))
    return {"pg": pg, "key": stored["key"], "sha256": stored["sha256"]}


def databases(pg) -> set[str]:
    return set(pg.admin("SELECT datname FROM pg_database", "list").split())


def drop(pg, *names):
    for name in names:
        pg.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', "cleanup")


def test_verify_refuses_the_database_it_verifies_as_scratch(shop, s3):
    """The measured bug: verify with scratch_database == database dropped the live database."""
    pg = shop["pg"]
    with pytest.raises(PG.PgBackupError, match="refusing to use database unitshop as the scratch database"):
        PG.verify(pg, s3, shop["key"], "unitshop", protected=["unitshop"])
    # the dump records its database: refused even when the caller did not say so
    with pytest.raises(PG.PgBackupError, match="refusing to use database unitshop"):
        PG.verify(pg, s3, shop["key"], "unitshop")
    assert pg.psql("unitshop", "SELECT count(*) FROM orders", "probe") == "300"


def test_verify_does_not_drop_a_database_it_did_not_create(shop, s3):
    pg = shop["pg"]
    drop(pg, "unit_foreign")
    pg.admin("CREATE DATABASE unit_foreign", "create")
    pg.psql("unit_foreign", "CREATE TABLE keep (id int); INSERT INTO keep VALUES (1)", "seed")
    try:
        report = PG.verify(pg, s3, shop["key"], "unit_foreign")
        assert report["failed_checks"] == ["scratch_database"]
        assert "refusing to drop database unit_foreign: it exists and pg_backup did not create it" in report["checks"][-1]["reason"]
        assert pg.psql("unit_foreign", "SELECT count(*) FROM keep", "probe") == "1"
    finally:
        drop(pg, "unit_foreign")


def test_restore_into_a_new_database_check_mode_then_again(shop, s3):
    pg, key = shop["pg"], shop["key"]
    target = "unit_restored"
    drop(pg, target)
    before = databases(pg)
    predicted = PG.restore(pg, s3, key, target, check_query="SELECT count(*) FROM orders", minimum=300, check_mode=True,
                           protected=["unitshop"])
    assert predicted["changed"] and predicted["action"] == "restore" and predicted["passed"]
    assert predicted["steps"][-1] == f"in one transaction rename {target}_restoring to {target} and mark it as restored"
    assert databases(pg) == before and predicted["done"] == []
    try:
        done = PG.restore(pg, s3, key, target, check_query="SELECT count(*) FROM orders", minimum=300, protected=["unitshop"])
        assert done["changed"] and done["passed"] and done["check_result"] == "300" and done["previous_database"] is None
        assert databases(pg) == before | {target}
        assert pg.database_state(target)["comment"] == PG.restore_marker(s3.bucket, key, shop["sha256"])
        # GRANTs are kept by default
        assert "=r/" in pg.psql(target, "SELECT relacl::text FROM pg_class WHERE relname = 'orders'", "acl")
        again = PG.restore(pg, s3, key, target, check_query="SELECT count(*) FROM orders", minimum=300)
        assert not again["changed"] and again["action"] == "none" and again["check_result"] == "300" and again["done"] == []
        again_check = PG.restore(pg, s3, key, target, check_mode=True)
        assert not again_check["changed"]
    finally:
        drop(pg, target)


def test_restore_over_a_database_with_tables_is_refused_then_swapped_with_force(shop, s3):
    pg, key = shop["pg"], shop["key"]
    target = "unit_live"
    drop(pg, target)
    pg.admin(f"CREATE DATABASE {target}", "create")
    pg.psql(target, "CREATE TABLE live (id int); INSERT INTO live VALUES (1), (2)", "seed")
    kept = None
    try:
        with pytest.raises(PG.PgBackupError, match=f"refusing to restore dump {key} into database {target}: it exists and holds 1 tables"):
            PG.restore(pg, s3, key, target)
        assert pg.psql(target, "SELECT count(*) FROM live", "probe") == "2"
        now = datetime.datetime(2026, 1, 27, 9, 30, tzinfo=UTC)
        predicted = PG.restore(pg, s3, key, target, force=True, check_mode=True, now=now)
        assert predicted["changed"] and f"rename {target} to {target}_before_20260127093000" in predicted["steps"][-2]
        assert pg.psql(target, "SELECT count(*) FROM live", "probe") == "2"
        done = PG.restore(pg, s3, key, target, force=True, now=now)
        kept = done["previous_database"]
        assert kept == f"{target}_before_20260127093000" and done["target_tables"] == 1 and done["swap_seconds"] > 0
        assert pg.psql(target, "SELECT count(*) FROM orders", "probe") == "300"
        assert pg.psql(kept, "SELECT count(*) FROM live", "probe") == "2"  # the old database is kept, and connectable
        assert f"{target}_restoring" not in databases(pg)
    finally:
        drop(pg, target, kept or "unit_none", f"{target}_restoring")


def test_failing_restore_leaves_the_original_untouched(shop, s3):
    pg, key = shop["pg"], shop["key"]
    target = "unit_keep"
    drop(pg, target)
    pg.admin(f"CREATE DATABASE {target}", "create")
    pg.psql(target, "CREATE TABLE live (id int); INSERT INTO live VALUES (7)", "seed")
    try:
        with pytest.raises(PG.PgBackupError) as err:
            PG.restore(pg, s3, key, target, force=True, check_query="SELECT count(*) FROM no_such_table")
        msg = str(err.value)
        assert f"restore of {key} into {target} failed before the swap" in msg and "no_such_table" in msg
        assert f"Database {target} is untouched; the work database {target}_restoring was dropped" in msg
        assert pg.psql(target, "SELECT id FROM live", "probe") == "7"
        assert not [d for d in databases(pg) if d.startswith(f"{target}_")]
        # a work database of someone else's is refused, not dropped
        pg.admin(f"CREATE DATABASE {target}_restoring", "create")
        with pytest.raises(PG.PgBackupError, match="pg_backup did not create it"):
            PG.restore(pg, s3, key, target, force=True)
        assert f"{target}_restoring" in databases(pg)
    finally:
        drop(pg, target, f"{target}_restoring")


def test_restore_without_owners_and_acls(shop, s3):
    pg, key = shop["pg"], shop["key"]
    target = "unit_noacl"
    drop(pg, target)
    try:
        done = PG.restore(pg, s3, key, target, keep_owners=False, keep_acls=False)
        assert "(objects owned by the login role, GRANTs left out)" in done["steps"][1]
        assert pg.psql(target, "SELECT coalesce(relacl::text, 'none') FROM pg_class WHERE relname = 'orders'", "acl") == "none"
    finally:
        drop(pg, target)


@pytest.mark.parametrize(("line", "mapped"), [
    ("ALTER TABLE public.orders OWNER TO app;", 'ALTER TABLE public.orders OWNER TO "app_new";'),
    ('ALTER SCHEMA "app" OWNER TO "app";', 'ALTER SCHEMA "app" OWNER TO "app_new";'),  # the object's name is left alone
    ("GRANT SELECT ON TABLE public.orders TO reader;", 'GRANT SELECT ON TABLE public.orders TO "reader_new";'),
    ("GRANT ALL ON TABLE public.orders TO app WITH GRANT OPTION;", 'GRANT ALL ON TABLE public.orders TO "app_new" WITH GRANT OPTION;'),
    ("GRANT SELECT ON TABLE public.t TO reader, other, PUBLIC;", 'GRANT SELECT ON TABLE public.t TO "reader_new", other, PUBLIC;'),
    ("REVOKE ALL ON SCHEMA public FROM app;", 'REVOKE ALL ON SCHEMA public FROM "app_new";'),
    ("SET SESSION AUTHORIZATION reader;", 'SET SESSION AUTHORIZATION "reader_new";'),
    ("ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reader;",
     'ALTER DEFAULT PRIVILEGES FOR ROLE "app_new" IN SCHEMA public GRANT SELECT ON TABLES TO "reader_new";'),
    ("CREATE TABLE public.app (id integer);", "CREATE TABLE public.app (id integer);"),
    ("GRANT SELECT ON TABLE public.orders TO other;", "GRANT SELECT ON TABLE public.orders TO other;"),
])
def test_map_roles_line(line, mapped):
    assert PG.map_roles_line(line, {"app": "app_new", "reader": "reader_new"}) == mapped


def test_map_roles_script_leaves_copy_data_alone(tmp_path):
    source, target = tmp_path / "in.sql", tmp_path / "out.sql"
    source.write_text("COPY public.notes (id, body) FROM stdin;\n1\tALTER TABLE x OWNER TO app;\n\\.\n"
                      "ALTER TABLE public.notes OWNER TO app;\n")
    assert PG.map_roles_script(str(source), str(target), {"app": "b"}) == 1
    assert target.read_text() == ("COPY public.notes (id, body) FROM stdin;\n1\tALTER TABLE x OWNER TO app;\n\\.\n"
                                  'ALTER TABLE public.notes OWNER TO "b";\n')


def test_restore_maps_the_roles_of_grants(postgres, s3):
    """The login role may GRANT to any existing role: predefined roles stand in for an application's roles here."""
    pg = postgres["pg"]
    drop(pg, "unit_roles", "unit_roles_mapped")
    pg.admin("CREATE DATABASE unit_roles", "create")
    pg.psql("unit_roles", "CREATE TABLE notes (id int, body text); INSERT INTO notes VALUES (1, 'GRANT x TO pg_monitor;');"
            "GRANT SELECT ON notes TO pg_monitor", "seed")
    stored = PG.backup(pg, s3, "unit_roles", "roles", now=datetime.datetime(2026, 1, 27, 5, 0, tzinfo=UTC))
    try:
        done = PG.restore(pg, s3, stored["key"], "unit_roles_mapped", role_mapping={"pg_monitor": "pg_read_all_stats"})
        assert done["role_mapped_lines"] == 1 and "roles mapped: pg_monitor -> pg_read_all_stats" in done["steps"][1]
        acl = pg.psql("unit_roles_mapped", "SELECT relacl::text FROM pg_class WHERE relname = 'notes'", "acl")
        assert "pg_read_all_stats=r/" in acl and "pg_monitor" not in acl
        assert pg.psql("unit_roles_mapped", "SELECT body FROM notes", "data") == "GRANT x TO pg_monitor;"
    finally:
        drop(pg, "unit_roles", "unit_roles_mapped")
