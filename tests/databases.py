"""The real databases of this machine, for tests that run on all three."""

import os

import peewee
import pytest

import models

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def open_fresh(url):
    """Connect to `url` with empty tables; skip (fail under CI) if it is down."""
    try:
        db = models.connect(url)
        db.connect(reuse_if_open=True)
    except (peewee.OperationalError, peewee.InterfaceError, ImportError) as exc:
        message = f"database {url} unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    db.drop_tables(models.TABLES, safe=True)
    models.create_tables()
    return db


def database_params():
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(POSTGRES_URL, id="postgres", marks=pytest.mark.postgres),
        pytest.param(MYSQL_URL, id="mysql", marks=pytest.mark.mysql),
    ]
