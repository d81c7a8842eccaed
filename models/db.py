"""Opening the database named by DATABASE_URL, and write transactions."""

from contextlib import contextmanager

import peewee
from playhouse import db_url
from playhouse.shortcuts import ReconnectMixin

from models.turns import WriterTurns
from notifier.errors import NotifierError, SettingsError

database = peewee.DatabaseProxy()

# A paid order must survive a power cut: WAL with a full sync on every commit.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
}
SQLITE_BUSY_SECONDS = 15


def connect(url):
    """Open `url`, bind it to the models' proxy and return the database."""
    options = {}
    if url.startswith("sqlite"):
        # Writers begin IMMEDIATE so two of them never both read first and
        # then fail to upgrade their lock ("database is locked").
        options = {
            "pragmas": SQLITE_PRAGMAS,
            "timeout": SQLITE_BUSY_SECONDS,
            "lock_type": "IMMEDIATE",
        }
    try:
        db = db_url.connect(url, **options)
    except (RuntimeError, ValueError) as exc:
        raise SettingsError(f"DATABASE_URL cannot be used: {exc}") from None
    if isinstance(db, peewee.SqliteDatabase) and db.database in ("", ":memory:"):
        # Each thread would get a database of its own.
        raise SettingsError("DATABASE_URL must name a file, not in-memory SQLite")
    if not isinstance(db, peewee.SqliteDatabase):
        db = _reconnecting(db)
    try:
        db.connect(reuse_if_open=True)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(db, peewee.SqliteDatabase):
            raise SettingsError(f"DATABASE_URL cannot be opened: {reason}") from None
        raise NotifierError(f"database unreachable: {reason}") from None
    database.initialize(db)
    return db


class _Reconnect(ReconnectMixin):
    # A statement outside a transaction that meets a connection the server
    # closed (a restart, an idle timeout) reconnects once and runs again.
    reconnect_errors = ReconnectMixin.reconnect_errors + (
        (peewee.OperationalError, "server closed the connection"),
        (peewee.OperationalError, "terminating connection"),
        (peewee.OperationalError, "connection already closed"),
        (peewee.InterfaceError, "connection already closed"),
        (peewee.OperationalError, "ssl connection has been closed"),
    )


def _reconnecting(db):
    kind = type(db)
    cls = type(f"Reconnecting{kind.__name__}", (_Reconnect, kind), {})
    return cls(db.database, **db.connect_params)


def is_sqlite():
    return isinstance(database.obj, peewee.SqliteDatabase)


_turns = WriterTurns()


@contextmanager
def write_transaction(background=False):
    """A transaction for writes: IMMEDIATE on SQLite, the default elsewhere.

    On SQLite the writers of this process take turns (see models.turns);
    `background` writers (the notifier's own) yield to the others.
    """
    if is_sqlite():
        with _turns.turn(background), database.atomic():
            yield
    else:
        try:
            with database.atomic():
                yield
        except (peewee.OperationalError, peewee.InterfaceError):
            # The connection may be dead; the next use opens a new one
            # rather than failing for the rest of this thread's life.
            database.close()
            raise
