"""The pool on its own: bounded ids in flight, retries, dead rows, shutdown."""

import threading
import time

import pytest

import models
from models import Notification, write_transaction
from notifier import outbox
from notifier.errors import PermanentError, TransientError
from notifier.pool import Notifier
from notifier.settings import Settings
from notifier.tasks import TaskRegistry


@pytest.fixture
def db(tmp_path):
    database = models.connect(f"sqlite:///{tmp_path / 'pool.db'}")
    models.create_tables()
    yield database
    database.close()


def settings(**changes):
    base = Settings(
        threads=4,
        sweep_seconds=0.05,
        backoff_base=0.01,
        backoff_max=0.05,
        max_attempts=3,
        lease_seconds=30,
        drain_seconds=2,
    )
    return base.replace(**changes)


def enqueue(kind, count):
    with write_transaction():
        return [outbox.enqueue(kind, payload={"n": i}) for i in range(count)]


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def states():
    return outbox.counts()


class Recorder:
    """A task that records each run and how many ran at once."""

    def __init__(self, seconds=0.0):
        self.seconds = seconds
        self.runs = []
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0

    def __call__(self, row, ctx):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.runs.append(row.id)
        time.sleep(self.seconds)
        with self.lock:
            self.active -= 1
        return f"done-{row.id}"


def test_backlog_is_delivered_once_with_bounded_ids_in_flight(db):
    registry = TaskRegistry()
    task = registry.task("thumbnail")(Recorder(seconds=0.002))
    ids = enqueue("thumbnail", 400)
    notifier = Notifier(settings(max_in_flight=10), registry, context=None)
    most_in_flight = 0
    notifier.start()
    try:
        while states()["sent"] < 400:
            most_in_flight = max(most_in_flight, notifier.in_flight())
            time.sleep(0.001)
    finally:
        notifier.shutdown()
    assert sorted(task.runs) == ids
    assert most_in_flight <= 10
    assert task.most_active <= 4
    assert {r.provider_id for r in Notification.select()} == {f"done-{i}" for i in ids}


def test_submit_beyond_the_limit_leaves_rows_for_the_sweeper(db):
    gate = threading.Event()
    registry = TaskRegistry()
    registry.task("slow")(lambda row, ctx: gate.wait(10) and "ok")
    ids = enqueue("slow", 6)
    notifier = Notifier(
        settings(max_in_flight=2, sweep_seconds=30), registry, context=None
    )
    notifier.start()
    try:
        assert len(notifier.submit(ids)) <= 2
        assert notifier.in_flight() <= 2
        gate.set()  # finishing jobs wake the sweeper long before its 30 s
        wait_until(lambda: states()["sent"] == 6)
    finally:
        notifier.shutdown()


def test_transient_errors_retry_then_die_after_max_attempts(db):
    registry = TaskRegistry()
    calls = []

    @registry.task("flaky")
    def flaky(row, ctx):
        calls.append(row.id)
        raise TransientError("try later")

    (nid,) = enqueue("flaky", 1)
    notifier = Notifier(settings(max_attempts=3), registry, context=None)
    notifier.start()
    try:
        notifier.submit([nid])
        wait_until(lambda: states()["dead"] == 1)
    finally:
        notifier.shutdown()
    row = Notification.get_by_id(nid)
    assert calls == [nid] * 3
    assert row.attempts == 3 and "try later" in row.last_error


@pytest.mark.parametrize(
    "error, attempts",
    [(PermanentError("bad recipient"), 1), (RuntimeError("bug in task"), 3)],
)
def test_permanent_errors_die_at_once_and_bugs_are_retried(db, error, attempts):
    registry = TaskRegistry()

    @registry.task("failing")
    def failing(row, ctx):
        raise error

    (nid,) = enqueue("failing", 1)
    notifier = Notifier(settings(max_attempts=3), registry, context=None)
    notifier.start()
    try:
        notifier.submit([nid])
        wait_until(lambda: states()["dead"] == 1)
    finally:
        notifier.shutdown()
    row = Notification.get_by_id(nid)
    assert row.attempts == attempts
    assert str(error) in row.last_error


def test_unknown_kind_is_dead_with_a_clear_error(db):
    (nid,) = enqueue("nobody-handles-this", 1)
    notifier = Notifier(settings(), TaskRegistry(), context=None)
    notifier.start()
    try:
        wait_until(lambda: states()["dead"] == 1)
    finally:
        notifier.shutdown()
    assert "no task is registered" in Notification.get_by_id(nid).last_error


def test_shutdown_waits_up_to_the_deadline_and_releases_the_rest(db):
    release = threading.Event()
    started = []
    registry = TaskRegistry()

    @registry.task("stuck")
    def stuck_task(row, ctx):
        started.append(row.id)
        return release.wait(30) and "late"

    enqueue("stuck", 12)
    notifier = Notifier(settings(threads=2, max_in_flight=12), registry, None)
    notifier.start()
    wait_until(lambda: len(started) == 2)

    began = time.monotonic()
    left, stuck = notifier.shutdown(deadline=0.5)
    took = time.monotonic() - began
    release.set()

    assert stuck is True
    assert 0.4 < took < 5
    assert len(left) == 12  # every claimed row is handed back
    rows = list(Notification.select())
    assert all(r.state == "pending" and r.owner is None for r in rows)
    assert all(r.next_attempt_at <= time.time() for r in rows)
    # The two sends that began used an attempt; the queued ones got theirs back.
    attempts = {r.id: r.attempts for r in rows}
    assert sorted(attempts[i] for i in started) == [1, 1]
    assert {a for i, a in attempts.items() if i not in started} == {0}


def test_shutdown_with_nothing_running_is_quick(db):
    notifier = Notifier(settings(), TaskRegistry(), context=None)
    notifier.start()
    started = time.monotonic()
    left, stuck = notifier.shutdown(deadline=5)
    assert (left, stuck) == ([], False)
    assert time.monotonic() - started < 2
    assert not notifier.running
