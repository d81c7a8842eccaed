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


def server_url(name):
    """URL of this run's own database on server `name` ("postgres"/"mysql")."""
    if name not in _created:
        admin = SERVERS[name]
        try:
            if name == "postgres":
                import psycopg2

                conn = psycopg2.connect(admin.replace("postgresql://", "postgres://"))
                conn.autocommit = True
                conn.cursor().execute(f'CREATE DATABASE "{RUN_NAME}"')
            else:
                import pymysql

                parts = re.match(r"mysql://([^@:]+)@([^:/]+):?(\d*)/", admin)
                user, host, port = parts.group(1), parts.group(2), parts.group(3)
                conn = pymysql.connect(host=host, port=int(port or 3306), user=user)
                conn.cursor().execute(f"CREATE DATABASE `{RUN_NAME}`")
            conn.close()
        except Exception as exc:  # any driver's connection error
            _unreachable(name, exc)
        _created[name] = admin.rsplit("/", 1)[0] + "/" + RUN_NAME
    return _created[name]


def drop_run_databases():
    """Drop what server_url created; called once at the end of the run."""
    for name in list(_created):
        admin = SERVERS[name]
        try:
            if name == "postgres":
                import psycopg2

                conn = psycopg2.connect(admin.replace("postgresql://", "postgres://"))
                conn.autocommit = True
                conn.cursor().execute(
                    f'DROP DATABASE IF EXISTS "{RUN_NAME}" WITH (FORCE)'
                )
            else:
                import pymysql

                parts = re.match(r"mysql://([^@:]+)@([^:/]+):?(\d*)/", admin)
                conn = pymysql.connect(
                    host=parts.group(2),
                    port=int(parts.group(3) or 3306),
                    user=parts.group(1),
                )
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{RUN_NAME}`")
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
