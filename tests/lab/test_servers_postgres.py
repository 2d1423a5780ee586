"""The lab PostgreSQL is the Debian server: psycopg connects with the DSN from endpoints.json and writes."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.lab


def test_connect_write_and_read_back(postgres_dsn):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        assert version.split(".")[0] == "15"
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("lab", "lab")
        conn.execute("CREATE TABLE IF NOT EXISTS lab_probe (id serial PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO lab_probe (note) VALUES (%s)", ("written by the lab test",))
    # a second connection sees the committed row
    with psycopg.connect(postgres_dsn) as conn:
        notes = [row[0] for row in conn.execute("SELECT note FROM lab_probe")]
        assert "written by the lab test" in notes
        conn.execute("DROP TABLE lab_probe")
        conn.commit()


def test_password_is_checked_and_settings_are_the_labs(lab_endpoints):
    info = lab_endpoints["postgres"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=info["host"], port=info["port"], user=info["user"], password="wrong", dbname=info["dbname"]).close()
    with psycopg.connect(info["dsn"]) as conn:
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
    data = Path(info["data_dir"])
    assert data.is_relative_to(Path(lab_endpoints["lab_dir"]))
    if os.geteuid() == 0:
        assert pwd.getpwuid(data.stat().st_uid).pw_name == "postgres"
