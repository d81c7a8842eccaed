"""Claims, leases and the payment transition on SQLite, PostgreSQL and MariaDB."""

import threading
import time

import pytest

from models import Notification, Order
from notifier import outbox, payments
from notifier.orders import create_order, parse_order
from notifier.settings import Settings
from tests.client import order_body
from tests.databases import database_params, open_fresh, resolve

SETTINGS = Settings(admin_whatsapp="966500000001")


@pytest.fixture(params=database_params())
def db(request, tmp_path):
    database = open_fresh(resolve(request.param, tmp_path))
    yield database
    database.close()


def paid(reference, event_id=None):
    return payments.Payment(
        gateway="generic",
        event_id=event_id or f"evt-{reference}",
        outcome=payments.SUCCEEDED,
        reference=reference,
        amount=15000,
        currency="SAR",
        payment_id=f"pay-{reference}",
    )


def make_orders(count, prefix="R"):
    for i in range(count):
        create_order(parse_order(order_body(f"{prefix}-{i}")))


def all_at_once(count, func):
    """Run func(i) in `count` threads released together; return the results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        try:
            results[i] = func(i)
        finally:
            Notification._meta.database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_payment_commits_order_and_three_notifications(db):
    make_orders(1)
    result = payments.apply(paid("R-0"), SETTINGS)
    assert result.status == "paid"
    assert len(result.notification_ids) == 3
    assert Order.get(Order.reference == "R-0").status == "paid"
    rows = Notification.select().order_by(Notification.id)
    assert [r.kind for r in rows] == [
        "email_customer",
        "whatsapp_admin",
        "whatsapp_courier",
    ]
    assert {r.state for r in rows} == {"pending"}
    assert payments.apply(paid("R-0"), SETTINGS).status == "duplicate"
    assert payments.apply(paid("R-0", "other"), SETTINGS).status == "duplicate"
    assert Notification.select().count() == 3


def test_wrong_amount_changes_nothing(db):
    make_orders(1)
    wrong = payments.Payment(
        gateway="generic",
        event_id="evt-x",
        outcome=payments.SUCCEEDED,
        reference="R-0",
        amount=1,
        currency="SAR",
    )
    with pytest.raises(Exception) as caught:
        payments.apply(wrong, SETTINGS)
    assert getattr(caught.value, "status", None) == 422
    assert Order.get(Order.reference == "R-0").status == "pending"
    assert Notification.select().count() == 0
    assert payments.apply(paid("R-0", "evt-x"), SETTINGS).status == "paid"


def test_concurrent_callbacks_pay_once(db):
    make_orders(1)
    results = all_at_once(
        10, lambda i: payments.apply(paid("R-0", f"evt-{i % 3}"), SETTINGS).status
    )
    assert sorted(results) == ["duplicate"] * 9 + ["paid"]
    assert Notification.select().count() == 3


def test_only_one_claimer_wins_a_row(db):
    make_orders(1)
    ids = payments.apply(paid("R-0"), SETTINGS).notification_ids
    won = all_at_once(8, lambda i: outbox.claim_one(ids[0], f"host-{i}", 30))
    assert won.count(True) == 1
    row = Notification.get_by_id(ids[0])
    assert row.state == "running" and row.attempts == 1


def test_hosts_sweeping_together_take_disjoint_rows(db):
    make_orders(10)
    for i in range(10):
        payments.apply(paid(f"R-{i}"), SETTINGS)
    claimed = all_at_once(4, lambda i: outbox.claim_due(f"host-{i}", 30, limit=10))
    flat = [nid for ids in claimed for nid in ids]
    assert len(flat) == len(set(flat)) == 30
    owners = {r.id: r.owner for r in Notification.select()}
    for i, ids in enumerate(claimed):
        assert all(owners[nid] == f"host-{i}" for nid in ids)


def test_expired_lease_goes_to_the_next_claimer(db):
    make_orders(1)
    (nid, *_) = payments.apply(paid("R-0"), SETTINGS).notification_ids
    now = time.time()
    assert outbox.claim_one(nid, "dead-host", 5, now=now)
    assert nid not in outbox.claim_due("live-host", 5, limit=10, now=now + 1)
    assert outbox.claim_due("live-host", 5, limit=10, now=now + 6) == [nid]
    assert not outbox.mark_sent(nid, "dead-host", "late")
    assert outbox.mark_sent(nid, "live-host", "wamid.1")
    row = Notification.get_by_id(nid)
    assert (row.state, row.attempts, row.provider_id) == ("sent", 2, "wamid.1")


def test_release_hands_rows_back_due_now(db):
    make_orders(1)
    ids = payments.apply(paid("R-0"), SETTINGS).notification_ids
    claimed = outbox.claim_due("me", 60, limit=10)
    assert sorted(claimed) == sorted(ids)
    released = outbox.release("me", unstarted=ids[:1])
    assert sorted(released) == sorted(ids)
    rows = {r.id: r for r in Notification.select()}
    assert all(r.state == "pending" and r.owner is None for r in rows.values())
    assert rows[ids[0]].attempts == 0
    assert rows[ids[1]].attempts == 1
    assert sorted(outbox.claim_due("next", 60, limit=10)) == sorted(ids)


def test_retry_and_dead_rows_are_counted_and_requeued(db):
    make_orders(1)
    a, b, c = payments.apply(paid("R-0"), SETTINGS).notification_ids
    outbox.claim_due("me", 60, limit=10)
    assert outbox.mark_dead(a, "me", "PermanentError: 131026")
    assert outbox.mark_retry(b, "me", "TransientError: 500", at=time.time() + 3600)
    assert outbox.mark_sent(c, "me", "x")
    assert outbox.counts() == {"pending": 1, "running": 0, "sent": 1, "dead": 1}
    assert outbox.claim_due("me", 60, limit=10) == []
    requeued, refused = outbox.requeue([a, b, c])
    assert sorted(requeued) == sorted([a, b]) and refused == {c: "sent"}
    assert sorted(outbox.claim_due("me", 60, limit=10)) == sorted([a, b])
