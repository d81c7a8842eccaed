"""The real databases of this machine, for tests that run on all three.

Each test run works in databases of its own (created on first use, dropped at
the end), so two runs at once on one machine never drop each other's tables.
"""

import os
import re
import uuid

import pytest

import models

SERVERS = {
    "postgres": os.environ.get(
        "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
RUN_NAME = f"notifier_test_{uuid.uuid4().hex[:10]}"
_created = {}


def _unreachable(name, exc):
    message = f"{name} at {SERVERS[name]} unreachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _admin(name):
    """An autocommitting connection to server `name` as its admin user."""
    url = SERVERS[name]
    if name == "postgres":
        import psycopg2

        conn = psycopg2.connect(url.replace("postgresql://", "postgres://"))
        conn.autocommit = True
        return conn, '"'
    import pymysql

    user, host, port = re.match(r"mysql://([^@:]+)@([^:/]+):?(\d*)/", url).groups()
    conn = pymysql.connect(host=host, port=int(port or 3306), user=user)
    return conn, "`"


def server_url(name):
    """URL of this run's own database on server `name` ("postgres"/"mysql")."""
    if name not in _created:
        try:
            conn, quote = _admin(name)
            conn.cursor().execute(f"CREATE DATABASE {quote}{RUN_NAME}{quote}")
            conn.close()
        except Exception as exc:  # any driver's connection error
            _unreachable(name, exc)
        _created[name] = SERVERS[name].rsplit("/", 1)[0] + "/" + RUN_NAME
    return _created[name]


def drop_run_databases():
    """Drop what server_url created; called once at the end of the run."""
    for name in list(_created):
        force = " WITH (FORCE)" if name == "postgres" else ""
        try:
            conn, quote = _admin(name)
            conn.cursor().execute(
                f"DROP DATABASE IF EXISTS {quote}{RUN_NAME}{quote}{force}"
            )
            conn.close()
        except Exception:
            pass  # best effort: a leftover database holds only test rows
        del _created[name]


def open_fresh(url):
    """Connect to `url` with empty tables."""
    db = models.connect(url)
    db.drop_tables(models.TABLES, safe=True)
    models.create_tables()
    return db


def resolve(name, tmp_path):
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return server_url(name)


def database_params(names=("sqlite", "postgres", "mysql")):
    marks = {"postgres": pytest.mark.postgres, "mysql": pytest.mark.mysql}
    return [
        pytest.param(name, id=name, marks=[marks[name]] if name in marks else [])
        for name in names
    ]
