"""machinenativeops.platform.pg_backup through ansible-playbook against the lab's PostgreSQL and S3."""

from __future__ import annotations

import subprocess

import pytest

from lab.s3 import s3_client
from tests.integration.velero_support import run_steps

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def pg(lab_endpoints):
    info = lab_endpoints["postgres"]
    psql = [f"{info['bindir']}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    # A database of its own (the lab's database name equals its throwaway password, which Ansible masks in results).
    exists = subprocess.run([*psql, "-At", info["dsn"], "-c", "SELECT 1 FROM pg_database WHERE datname = 'shop'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if not exists:
        subprocess.run([*psql, info["dsn"], "-c", "CREATE DATABASE shop"], check=True)
    shop_dsn = info["dsn"].rsplit("/", 1)[0] + "/shop"
    subprocess.run([*psql, shop_dsn, "-c",
                    "CREATE TABLE IF NOT EXISTS shop_orders (id int primary key, total numeric);"
                    "INSERT INTO shop_orders SELECT g, g * 2 FROM generate_series(1, 250) g ON CONFLICT DO NOTHING;"], check=True)
    return info


def args(pg: dict, **extra) -> dict:
    base = {"database": "shop", "login_host": pg["host"], "login_port": pg["port"], "login_user": pg["user"],
            "login_password": pg["password"], "ssl_mode": "disable", "maintenance_db": pg["dbname"], "key_prefix": "it-postgres"}
    base.update(extra)
    return base


def step(pg: dict, check: bool = False, **extra) -> dict:
    return {"module": "pg_backup", "args": args(pg, **extra), "check": check}


def test_dump_to_s3_then_restore_and_check(lab_endpoints, pg):
    db = "shop"
    results = run_steps(lab_endpoints, [
        step(pg, check=True, action="backup", max_age=14400),
        step(pg, action="backup", max_age=14400),
        step(pg, action="backup", max_age=14400),
        step(pg, check=True, action="backup", max_age=14400),
        step(pg, action="list"),
        step(pg, check=True, action="verify", check_query="SELECT count(*) FROM shop_orders", check_min=250),
        step(pg, action="verify", check_query="SELECT count(*) FROM shop_orders", check_min=250),
        step(pg, action="verify", check_query="SELECT count(*) FROM shop_orders", check_expect="999"),
    ])
    predicted, taken, skipped, predicted_skip, listed, verify_check, verified, wrong = results
    assert predicted["changed"] and predicted["plan"]["due"] and predicted["dump"] is None
    assert taken["changed"] and not taken.get("failed"), taken.get("msg")
    key = taken["dump"]["key"]
    assert key.startswith(f"it-postgres/{db}/{db}-") and key.endswith(".dump") and taken["dump"]["size"] > 0
    assert not skipped["changed"] and not skipped["plan"]["due"] and skipped["dump"]["key"] == key
    assert not predicted_skip["changed"]
    assert [d["key"] for d in listed["dumps"]] == [key]
    s3 = s3_client(lab_endpoints["s3"])
    head = s3.head_object(Bucket=lab_endpoints["s3"]["bucket"], Key=key)
    assert head["Metadata"]["sha256"] == taken["dump"]["sha256"]
    sidecar = s3.get_object(Bucket=lab_endpoints["s3"]["bucket"], Key=key + ".sha256")["Body"].read().decode()
    assert sidecar.split()[0] == taken["dump"]["sha256"]

    assert not verify_check["changed"] and verify_check["verification"]["restore_skipped"]
    assert [c["name"] for c in verify_check["verification"]["checks"]] == ["dump_present", "checksum", "archive_readable"]
    assert not verified.get("failed"), verified.get("msg")
    report = verified["verification"]
    assert report["passed"] and report["key"] == key and report["check_result"] == "250"
    assert [c["name"] for c in report["checks"]] == ["dump_present", "checksum", "archive_readable", "restore", "tables_restored", "check_query"]
    assert report["scratch_dropped"] and not verified["changed"]
    assert wrong.get("failed") and wrong["verification"]["failed_checks"] == ["check_query"]
    assert "check query returned '250', expected '999'" in wrong["msg"]


def test_dump_errors_name_the_database(lab_endpoints, pg):
    (missing,) = run_steps(lab_endpoints, [step(pg, action="backup", database="no_such_db")])
    assert missing.get("failed") and "pg_dump of database no_such_db failed" in missing["msg"]
    (nothing,) = run_steps(lab_endpoints, [step(pg, action="verify", database="no_such_db")])
    assert nothing.get("failed") and "no dump of database no_such_db" in nothing["msg"]


def test_kept_scratch_database_is_a_change_check_mode_predicts(lab_endpoints, pg):
    scratch = "shop_kept_it"
    psql = [f"{pg['bindir']}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", pg["dsn"]]

    def exists() -> bool:
        sql = f"SELECT 1 FROM pg_database WHERE datname = '{scratch}'"
        return subprocess.run([*psql, "-c", sql], capture_output=True, text=True, check=True).stdout.strip() == "1"

    run_steps(lab_endpoints, [step(pg, action="backup", max_age=14400)])
    (predicted,) = run_steps(lab_endpoints, [step(pg, check=True, action="verify", keep_scratch=True, scratch_database=scratch)])
    assert predicted["changed"] and not predicted.get("failed"), predicted.get("msg")
    assert not exists()
    try:
        (kept,) = run_steps(lab_endpoints, [step(pg, action="verify", keep_scratch=True, scratch_database=scratch)])
        assert kept["changed"] and kept["verification"]["passed"], kept.get("msg")
        assert exists()
    finally:
        subprocess.run([*psql, "-c", f"DROP DATABASE IF EXISTS {scratch}"], check=True)


PREFIX = "it-postgres-restore"  # dumps of their own: the first test expects none under it-postgres


def count_orders(pg: dict, db: str) -> str:
    dsn = pg["dsn"].rsplit("/", 1)[0] + f"/{db}"
    return subprocess.run([f"{pg['bindir']}/psql", "-X", "-q", "-At", dsn, "-c", "SELECT count(*) FROM shop_orders"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_verify_refuses_the_live_database_as_its_scratch_database(lab_endpoints, pg):
    """The measured bug: verify with scratch_database == database dropped the live database and its rows."""
    run_steps(lab_endpoints, [step(pg, action="backup", max_age=14400, key_prefix=PREFIX)])
    (refused,) = run_steps(lab_endpoints, [step(pg, action="verify", scratch_database="shop", key_prefix=PREFIX)])
    assert refused.get("failed")
    assert "refusing to use database shop as the scratch database" in refused["msg"]
    assert count_orders(pg, "shop") == "250"


def test_restore_action_predicts_restores_swaps_and_is_idempotent(lab_endpoints, pg):
    target = "shop_it_restore"
    psql = [f"{pg['bindir']}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", pg["dsn"]]

    def databases() -> set[str]:
        return set(subprocess.run([*psql, "-c", "SELECT datname FROM pg_database"], capture_output=True, text=True, check=True).stdout.split())

    def sql(statement: str) -> None:
        subprocess.run([*psql, "-c", statement], check=True, capture_output=True)

    run_steps(lab_endpoints, [step(pg, action="backup", max_age=14400, key_prefix=PREFIX)])
    for name in databases():
        if name.startswith(target):
            sql(f"DROP DATABASE {name} WITH (FORCE)")
    before = databases()
    restore = {"action": "restore", "key_prefix": PREFIX, "target": target, "check_query": "SELECT count(*) FROM shop_orders", "check_min": 250}
    try:
        (predicted,) = run_steps(lab_endpoints, [step(pg, check=True, **restore)])
        assert predicted["changed"] and not predicted.get("failed"), predicted.get("msg")
        assert predicted["restore"]["steps"][0] == f"create database {target}_restoring"
        assert predicted["restore"]["done"] == [] and databases() == before
        restored, again, again_check = run_steps(lab_endpoints, [step(pg, **restore), step(pg, **restore), step(pg, check=True, **restore)])
        assert restored["changed"] and restored["restore"]["check_result"] == "250", restored.get("msg")
        assert databases() == before | {target} and count_orders(pg, target) == "250"
        assert not again["changed"] and again["restore"]["action"] == "none" and again["restore"]["check_result"] == "250"
        assert not again_check["changed"]

        # over a database that holds tables: refused without force, swapped with it, the old one kept
        sql(f"DROP DATABASE {target} WITH (FORCE)")
        sql(f"CREATE DATABASE {target}")
        subprocess.run([*psql[:-1], pg["dsn"].rsplit("/", 1)[0] + f"/{target}", "-c",
                        "CREATE TABLE shop_orders (id int); INSERT INTO shop_orders VALUES (1)"], check=True, capture_output=True)
        refused, failing = run_steps(lab_endpoints, [
            step(pg, **restore), step(pg, **{**restore, "force": True, "check_query": "SELECT count(*) FROM missing_table"})])
        assert refused.get("failed") and f"into database {target}: it exists and holds 1 tables" in refused["msg"]
        assert "nothing was changed" in refused["msg"]
        assert failing.get("failed") and f"Database {target} is untouched" in failing["msg"] and "missing_table" in failing["msg"]
        assert count_orders(pg, target) == "1" and f"{target}_restoring" not in databases()
        (forced,) = run_steps(lab_endpoints, [step(pg, **restore, force=True)])
        assert forced["changed"] and not forced.get("failed"), forced.get("msg")
        kept = forced["restore"]["previous_database"]
        assert kept.startswith(f"{target}_before_") and count_orders(pg, kept) == "1" and count_orders(pg, target) == "250"
    finally:
        for name in databases():
            if name.startswith(target):
                sql(f"DROP DATABASE {name} WITH (FORCE)")
