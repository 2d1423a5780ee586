"""playbooks/backup_verify.yml and playbooks/disaster_recovery.yml run by ansible-playbook against the lab (API emulator,
simulated Velero writing its bucket layout to moto S3, the lab's PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.integration.canary_support import run_playbook
from tests.integration.velero_support import VeleroLab, run_steps

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "playbooks" / "backup_verify.yml"
DR = ROOT / "playbooks" / "disaster_recovery.yml"


def playbook(endpoints: dict, path: Path, extra: dict, check: bool = False) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run a playbook with ``extra`` vars; returns the process and the JSON report it wrote (None when it wrote none)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        key = "dr_report_file" if path == DR else "backup_verify_report_file"
        proc = run_playbook(endpoints, path, {key: str(report), **extra}, check=check)
        return proc, json.loads(report.read_text()) if report.exists() else None


def recap(proc: subprocess.CompletedProcess) -> dict:
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("localhost") and "ok=" in ln][-1]
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


@pytest.fixture(scope="module")
def lab(lab_endpoints):
    return VeleroLab(lab_endpoints)


@pytest.fixture
def app(lab):
    """A namespace with two Deployments, two Services and three ConfigMaps, and a daily Schedule that backed it up."""
    tag = uuid.uuid4().hex[:6]
    ns = f"drp-{tag}"
    lab.app_namespace(ns, configmaps=3)
    schedule = f"dr-daily-{tag}"
    backup = lab.schedule_with_backup(schedule, [ns])
    yield {"ns": ns, "schedule": schedule, "backup": backup}
    for name in lab.namespaces():
        if name == ns or name.startswith(f"{ns}-"):
            lab.delete_namespace(name, wait=False)


def schedules_var(app: dict, **extra) -> list[dict]:
    return [{"name": app["schedule"], "cron": "0 2 * * *", "namespaces": [app["ns"]], "ttl": "720h", "max_age_hours": 26, **extra}]


# -- backup_verify.yml ---------------------------------------------------------------------------------------------
def test_backup_verify_passes_then_fails_when_the_tarball_is_gone(lab_endpoints, lab, app):
    schedules = schedules_var(app, expected_resources=["deployments.apps", "services", "configmaps"])
    before = lab.namespaces()
    proc, report = playbook(lab_endpoints, VERIFY, {"backup_verify_schedules": schedules})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert report["passed"] and report["failures"] == []
    (entry,) = report["schedules"]
    assert entry["backup"] == app["backup"] and entry["s3_passed"] and entry["restore_test"] == "passed"
    assert entry["restored_objects"] >= 7 and entry["failed_checks"] == []
    assert "Backup verification: PASSED" in proc.stdout
    # the restore test (it created and removed a Restore, its ConfigMap and scratch namespaces) and the report file
    assert recap(proc)["changed"] == 2
    # the scratch namespaces of the restore test are gone, the restore test's Restore too
    assert lab.namespaces() == before
    assert not [r for r in lab.restores() if r.startswith(app["backup"])]

    # check mode: the bucket checks run, the restore test is predicted, nothing is created
    proc, report = playbook(lab_endpoints, VERIFY, {"backup_verify_schedules": schedules}, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["passed"] and report["check_mode"] and report["schedules"][0]["restore_test"] == "skipped (check mode)"
    assert lab.namespaces() == before

    # a schedule whose configuration drifted is named, without being changed
    drifted = [dict(schedules[0], ttl="168h")]
    proc, report = playbook(lab_endpoints, VERIFY, {"backup_verify_schedules": drifted, "backup_verify_restore_test": False})
    assert proc.returncode != 0
    assert report["failures"] == [f"Schedule {app['schedule']} differs from its configuration in template.ttl"]
    sched = lab.custom.get_namespaced_custom_object("velero.io", "v1", "velero", "schedules", app["schedule"])
    assert sched["spec"]["template"]["ttl"] in ("720h", "720h0m0s")

    # the Backup object still says Completed, but the tarball was deleted from the bucket
    key = f"{lab.prefix.strip('/') + '/' if lab.prefix.strip('/') else ''}backups/{app['backup']}/{app['backup']}.tar.gz"
    lab.s3.delete_object(Bucket=lab.bucket, Key=key)
    proc, report = playbook(lab_endpoints, VERIFY, {"backup_verify_schedules": schedules})
    assert proc.returncode != 0
    assert not report["passed"]
    assert "tarball_present" in report["schedules"][0]["failed_checks"]
    assert any(f"backup {app['backup']} tarball_present" in f and "does not exist although the Backup object says Completed" in f
               for f in report["failures"]), report["failures"]
    assert "backup verification failed:" in proc.stdout and key in proc.stdout
    assert lab.namespaces() == before


def test_backup_verify_names_missing_schedules(lab_endpoints, app):
    proc, report = playbook(lab_endpoints, VERIFY, {"backup_verify_schedules": [{"name": f"{app['schedule']}-missing", "namespaces": [app["ns"]]}]})
    assert proc.returncode != 0
    assert report["failures"] == [f"Schedule velero/{app['schedule']}-missing does not exist",
                                  f"schedule {app['schedule']}-missing has no Completed backup (newest: none)"]


# -- disaster_recovery.yml: namespaces -----------------------------------------------------------------------------
def test_namespace_restore_refuses_predicts_restores_and_is_idempotent(lab_endpoints, lab, app):
    ns = app["ns"]
    original = lab.names(ns)
    extra = {"dr_mode": "namespace", "dr_namespaces": [ns], "dr_schedule_name": app["schedule"], "dr_health_delay": 1}

    # a restore over the live namespace is refused, even when confirmed
    proc, _report = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
    assert proc.returncode != 0 and f"refusing to restore backup {app['backup']} over target namespaces that are not empty: {ns} holds 7" in proc.stdout

    lab.delete_namespace(ns, wait=True)
    restores_before = lab.restores()
    # no confirmation: refused, nothing happens
    proc, _report = playbook(lab_endpoints, DR, extra)
    assert proc.returncode != 0 and "refusing to run a namespace restore without confirmation" in proc.stdout
    # check mode predicts the restore and changes nothing
    proc, report = playbook(lab_endpoints, DR, extra, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["check_mode"] and report["restore_created"] and report["restore_phase"] == "New" and report["backup"] == app["backup"]
    assert not lab.namespace_exists(ns) and lab.restores() == restores_before

    proc, report = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert report["problems"] == [] and report["restore_phase"] == "Completed" and report["restore_created"]
    assert report["health"] == "healthy" and report["items_restored"] == report["items_selected"] > 0
    assert report["counts"]["deployments.apps"] == 2 and report["counts"]["configmaps"] == len(original["configmaps"])
    assert report["expected_counts"]["services"] == 2
    assert lab.namespace_exists(ns) and lab.names(ns) == original
    assert recap(proc)["changed"] == 1

    # the same recovery again: the Restore of the first run is found, nothing is restored twice
    proc, again = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc)["changed"] == 0 and not again["restore_created"] and again["restore"] == report["restore"]
    assert again["problems"] == [] and lab.names(ns) == original


def test_cluster_restore_brings_every_namespace_of_the_backup_back(lab_endpoints, lab):
    tag = uuid.uuid4().hex[:6]
    namespaces = [lab.app_namespace(f"drc-{tag}-a", configmaps=3), lab.app_namespace(f"drc-{tag}-b", deployments=1, configmaps=1)]
    try:
        originals = {ns: lab.names(ns) for ns in namespaces}
        backup = lab.schedule_with_backup(f"dr-cluster-{tag}", namespaces)
        for ns in namespaces:
            lab.delete_namespace(ns, wait=True)
        extra = {"dr_mode": "cluster", "dr_backup_name": backup, "dr_cluster_namespaces": namespaces, "dr_health_delay": 1}
        proc, _report = playbook(lab_endpoints, DR, extra)
        assert proc.returncode != 0 and "without confirmation" in proc.stdout
        assert not any(lab.namespace_exists(ns) for ns in namespaces)

        proc, report = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert report["problems"] == [] and report["restore_phase"] == "Completed" and report["backup"] == backup
        assert report["health"] == "healthy" and report["items_restored"] == report["items_selected"] > 0
        assert {ns: lab.names(ns) for ns in namespaces} == originals
        assert recap(proc)["changed"] == 1
    finally:
        for ns in namespaces:
            lab.delete_namespace(ns)


def test_namespace_restore_with_mapping_into_a_new_namespace(lab_endpoints, lab, app):
    ns, target = app["ns"], f"{app['ns']}-copy"
    extra = {"dr_mode": "namespace", "dr_namespaces": [ns], "dr_namespace_mapping": {ns: target}, "dr_backup_name": app["backup"],
             "dr_confirm": True, "dr_health_delay": 1}
    proc, report = playbook(lab_endpoints, DR, extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["namespaces"] == {ns: target} and report["problems"] == []
    assert lab.names(target) == lab.names(ns)


def test_restore_of_a_missing_backup_fails_clearly(lab_endpoints, lab, app):
    lab.delete_namespace(app["ns"], wait=True)
    key = f"{lab.prefix.strip('/') + '/' if lab.prefix.strip('/') else ''}backups/{app['backup']}/{app['backup']}.tar.gz"
    lab.s3.delete_object(Bucket=lab.bucket, Key=key)
    proc, _report = playbook(lab_endpoints, DR, {"dr_mode": "namespace", "dr_namespaces": [app["ns"]], "dr_schedule_name": app["schedule"],
                                                 "dr_confirm": True})
    assert proc.returncode != 0 and f"backup velero/{app['backup']} failed verification: tarball_present" in proc.stdout
    assert not lab.namespace_exists(app["ns"])


# -- disaster_recovery.yml: database -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg(lab_endpoints):
    info = lab_endpoints["postgres"]
    psql = [f"{info['bindir']}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    db = f"drshop_{uuid.uuid4().hex[:6]}"
    subprocess.run([*psql, info["dsn"], "-c", f"CREATE DATABASE {db}"], check=True)
    dsn = info["dsn"].rsplit("/", 1)[0]
    subprocess.run([*psql, f"{dsn}/{db}", "-c", "CREATE TABLE orders (id int primary key, total numeric);"
                    "INSERT INTO orders SELECT g, g * 3 FROM generate_series(1, 120) g"], check=True)
    step = {"module": "pg_backup", "args": {"action": "backup", "database": db, "login_host": info["host"], "login_port": info["port"],
                                            "login_user": info["user"], "login_password": info["password"], "ssl_mode": "disable",
                                            "maintenance_db": info["dbname"], "key_prefix": "dr-postgres"}}
    (taken,) = run_steps(lab_endpoints, [step], timeout=300)
    assert not taken.get("failed"), taken.get("msg")
    return {"info": info, "db": db, "key": taken["dump"]["key"], "psql": psql, "dsn": dsn,
            "vars": {"dr_pg_ssl_mode": "disable", "dr_database_key_prefix": "dr-postgres", "backup_verify_pg_ssl_mode": "disable",
                     "backup_verify_pg_key_prefix": "dr-postgres"}}


def query(pg: dict, db: str, sql: str) -> str:
    return subprocess.run([*pg["psql"], "-At", f"{pg['dsn']}/{db}", "-c", sql], capture_output=True, text=True, check=True).stdout.strip()


def test_backup_verify_checks_the_database_dump(lab_endpoints, pg):
    proc, report = playbook(lab_endpoints, VERIFY, {**pg["vars"], "backup_verify_schedules": [], "backup_verify_pg_database": pg["db"],
                                                    "backup_verify_pg_check_query": "SELECT count(*) FROM orders",
                                                    "backup_verify_pg_check_min": 120})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["passed"] and report["database"]["key"] == pg["key"] and report["database"]["check_result"] == "120"


def test_database_restore_into_a_new_database_and_again(lab_endpoints, pg):
    target = f"{pg['db']}_restored"
    extra = {**pg["vars"], "dr_mode": "database", "dr_database": pg["db"], "dr_database_target": target,
             "dr_database_check_query": "SELECT count(*) FROM orders", "dr_database_check_min": 120}
    proc, _report = playbook(lab_endpoints, DR, extra)
    assert proc.returncode != 0 and "refusing to run a database restore without confirmation" in proc.stdout
    proc, report = playbook(lab_endpoints, DR, extra, check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["dump"] == pg["key"] and report["restored_now"]
    assert query(pg, pg["info"]["dbname"], f"SELECT count(*) FROM pg_database WHERE datname = '{target}'") == "0"

    proc, report = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report["problems"] == [] and report["restored_now"] and report["check_result"] == "120"
    assert query(pg, target, "SELECT sum(total) FROM orders") == str(sum(g * 3 for g in range(1, 121)))

    proc, again = playbook(lab_endpoints, DR, {**extra, "dr_confirm": True})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc)["changed"] == 0 and not again["restored_now"] and again["check_result"] == "120"

    # the source database holds tables: restoring over it is refused
    proc, _report = playbook(lab_endpoints, DR, {**extra, "dr_database_target": pg["db"], "dr_confirm": True})
    assert proc.returncode != 0 and f"refusing to restore dump {pg['key']} into database {pg['db']}: it exists and holds 1 tables" in proc.stdout


def test_database_restore_over_the_live_database_keeps_it(lab_endpoints, pg):
    """dr_database_target == dr_database with dr_allow_non_empty: the live database is never dropped. A restore that fails
    its check leaves it as it was; one that passes swaps it out and keeps it as <db>_before_<time>."""
    db = f"{pg['db']}_live"
    subprocess.run([*pg["psql"], pg["info"]["dsn"], "-c", f"CREATE DATABASE {db}"], check=True)
    subprocess.run([*pg["psql"], f"{pg['dsn']}/{db}", "-c", "CREATE TABLE orders (id int primary key, total numeric);"
                    "INSERT INTO orders SELECT g, g * 3 FROM generate_series(1, 120) g"], check=True)
    step = {"module": "pg_backup", "args": {"action": "backup", "database": db, "login_host": pg["info"]["host"],
                                            "login_port": pg["info"]["port"], "login_user": pg["info"]["user"],
                                            "login_password": pg["info"]["password"], "ssl_mode": "disable",
                                            "maintenance_db": pg["info"]["dbname"], "key_prefix": "dr-postgres"}}
    (taken,) = run_steps(lab_endpoints, [step], timeout=300)
    assert not taken.get("failed"), taken.get("msg")
    query(pg, db, "INSERT INTO orders VALUES (121, 0)")  # written after the dump: tells the live database from the restored one
    extra = {**pg["vars"], "dr_mode": "database", "dr_database": db, "dr_allow_non_empty": True, "dr_confirm": True,
             "dr_database_check_query": "SELECT count(*) FROM orders", "dr_database_check_min": 120}
    try:
        proc, report = playbook(lab_endpoints, DR, {**extra, "dr_confirm": False}, check=True)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert report["restored_now"] and report["done"] == [] and f"rename {db} to {db}_before_" in " ".join(report["steps"])
        assert query(pg, db, "SELECT count(*) FROM orders") == "121"

        proc, _report = playbook(lab_endpoints, DR, {**extra, "dr_database_check_min": 1000})
        assert proc.returncode != 0 and f"Database {db} is untouched" in proc.stdout, proc.stdout[-4000:]
        assert query(pg, db, "SELECT count(*) FROM orders") == "121"

        proc, report = playbook(lab_endpoints, DR, extra)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert report["restored_now"] and report["check_result"] == "120" and report["previous_database"].startswith(f"{db}_before_")
        assert query(pg, db, "SELECT count(*) FROM orders") == "120"
        assert query(pg, report["previous_database"], "SELECT count(*) FROM orders") == "121"

        proc, again = playbook(lab_endpoints, DR, extra)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert recap(proc)["changed"] == 0 and not again["restored_now"]
    finally:
        names = query(pg, pg["info"]["dbname"], f"SELECT datname FROM pg_database WHERE datname LIKE '{db}%'").split()
        for name in names:
            query(pg, pg["info"]["dbname"], f"DROP DATABASE {name} WITH (FORCE)")
