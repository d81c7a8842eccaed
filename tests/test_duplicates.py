"""Repeated and racing callbacks: one set of messages per paid order.

Everything runs over a socket against the real waitress server, and the
messages are counted where they land: the SMTP and WhatsApp stand-ins. A set
is one email and two WhatsApp messages (admin and courier); each message is
tied to its notification by the key it carries (email `Message-ID`,
WhatsApp `biz_opaque_callback_data`), so a message sent twice or sent for the
wrong order is seen, not only a wrong total.
"""

import json
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from notifier.signing import sign_webhook
from tests.client import SECRET, TOKEN, event_body, order_body

KINDS = ["email_customer", "whatsapp_admin", "whatsapp_courier"]
SETTLE = 0.5
MESSAGE_ID = re.compile(r"^<notification-(\d+)@")


def _reference(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _ids_in_email(smtp):
    found = Counter()
    for mail in smtp.messages:
        match = MESSAGE_ID.match(mail.message["Message-ID"] or "")
        assert match, f"email without a notification Message-ID: {mail.message}"
        found[int(match.group(1))] += 1
    return found


def _ids_in_whatsapp(whatsapp):
    found = Counter()
    for call in whatsapp.requests:
        key = call.body["biz_opaque_callback_data"]
        assert key.startswith("notification-"), key
        found[int(key.removeprefix("notification-"))] += 1
    return found


def assert_one_set_each(client, smtp, whatsapp, references):
    """Every order paid, its 3 notifications sent once, nothing else sent."""
    orders = [client.wait_for_states(ref) for ref in references]
    time.sleep(SETTLE)

    emails, texts = _ids_in_email(smtp), _ids_in_whatsapp(whatsapp)
    for order in orders:
        order = client.get_order(order["reference"])
        assert order["status"] == "paid", order
        notes = order["notifications"]
        assert sorted(n["kind"] for n in notes) == KINDS, notes
        assert all(n["state"] == "sent" and n["attempts"] == 1 for n in notes), notes
        for note in notes:
            seen = emails if note["kind"] == "email_customer" else texts
            assert seen[note["id"]] == 1, (order["reference"], note, seen)
    assert len(smtp.messages) == len(references)
    assert len(whatsapp.requests) == 2 * len(references)
    return orders


def _signed_post(base_url, body, session):
    raw = json.dumps(body).encode()
    header = sign_webhook(raw, SECRET, int(time.time()))
    return session.post(
        base_url + "/payments/webhook",
        data=raw,
        headers={"X-Signature": header, "Content-Type": "application/json"},
        timeout=30,
    )


def _release_together(jobs):
    """Run each job in its own thread, started at the same instant.

    A job gets a fresh requests.Session and returns a response; the
    responses come back in job order.
    """
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def run(index, job):
        with requests.Session() as session:
            try:
                barrier.wait(timeout=10)
                results[index] = job(session)
            except Exception as exc:  # reported by the caller
                errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, job), daemon=True)
        for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert all(r is not None for r in results)
    return results


# -- the same payment told several times ---------------------------------------


def test_repeated_event_is_paid_once_then_duplicate(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-1")
    body = event_body("D-1", event_id="evt_same_1")

    answers = [client.post_webhook(body) for _ in range(5)]

    assert [r.status_code for r in answers] == [200] * 5
    assert [r.json() for r in answers] == [{"status": "paid"}] + [
        {"status": "duplicate"}
    ] * 4
    assert_one_set_each(client, smtp, whatsapp, ["D-1"])


def test_repeated_event_after_delivery_sends_nothing_new(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-1b")
    body = event_body("D-1b", event_id="evt_same_1b")
    assert client.post_webhook(body).json() == {"status": "paid"}
    assert_one_set_each(client, smtp, whatsapp, ["D-1b"])

    # The gateway retries hours later, after everything went out.
    assert client.post_webhook(body).json() == {"status": "duplicate"}
    assert_one_set_each(client, smtp, whatsapp, ["D-1b"])


def test_new_event_id_for_a_paid_order_is_duplicate(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-2")

    first = client.pay("D-2", event_id="evt_first")
    second = client.pay("D-2", event_id="evt_second")
    third = client.pay("D-2", event_id="evt_third")

    assert first.json() == {"status": "paid"}
    assert second.status_code == third.status_code == 200
    assert second.json() == third.json() == {"status": "duplicate"}
    assert_one_set_each(client, smtp, whatsapp, ["D-2"])


def _concurrent_callbacks(live, reference, count):
    """`count` webhooks at once for one order: half share one event id."""
    live.client.create_order(reference)
    shared = event_body(reference, event_id=f"evt_shared_{reference}")
    bodies = [
        shared if i % 2 == 0 else event_body(reference, event_id=f"evt_{reference}_{i}")
        for i in range(count)
    ]
    base = live.client.base_url
    jobs = [lambda s, b=body: _signed_post(base, b, s) for body in bodies]
    return _release_together(jobs)


def _assert_one_paid(answers):
    statuses = [r.status_code for r in answers]
    assert all(s < 500 for s in statuses), [r.text for r in answers]
    assert statuses == [200] * len(answers), [r.text for r in answers]
    found = Counter(r.json()["status"] for r in answers)
    assert found == {"paid": 1, "duplicate": len(answers) - 1}, found


def test_twenty_concurrent_callbacks_pay_once(live, smtp, whatsapp):
    answers = _concurrent_callbacks(live, "D-3", 20)

    _assert_one_paid(answers)
    assert_one_set_each(live.client, smtp, whatsapp, ["D-3"])


@pytest.mark.slow
def test_many_rounds_of_concurrent_callbacks_pay_once(make_service, smtp, whatsapp):
    live = make_service(NOTIFIER_THREADS="8")
    references = [f"D-3-{round_}" for round_ in range(10)]
    for reference in references:
        _assert_one_paid(_concurrent_callbacks(live, reference, 40))
    assert_one_set_each(live.client, smtp, whatsapp, references)


# -- the webhook and the customer's browser at the same moment -----------------


def _race_webhook_and_return(live, reference):
    client = live.client
    client.create_order(reference)
    body = event_body(reference)
    return_url = client.return_url(reference)
    base = client.base_url
    webhook, browser = _release_together(
        [
            lambda s: _signed_post(base, body, s),
            lambda s: s.get(return_url, allow_redirects=False, timeout=30),
        ]
    )
    assert webhook.status_code == 200, webhook.text
    assert webhook.json()["status"] in ("paid", "duplicate")
    assert browser.status_code == 303, browser.text
    assert browser.headers["Location"].endswith(f"/paid?order={reference}")
    return webhook.json()["status"]


def test_webhook_racing_browser_return_sends_once(live, smtp, whatsapp):
    references = [f"D-4-{i}" for i in range(6)]

    for reference in references:
        _race_webhook_and_return(live, reference)

    assert_one_set_each(live.client, smtp, whatsapp, references)


def test_browser_return_then_webhook_then_return_again(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-4b")
    first = client.http.get(client.return_url("D-4b"), allow_redirects=False)
    assert first.status_code == 303

    assert client.pay("D-4b").json() == {"status": "duplicate"}
    again = client.http.get(client.return_url("D-4b"), allow_redirects=False)

    assert again.status_code == 303
    assert again.headers["Location"].endswith("/paid?order=D-4b")
    assert_one_set_each(client, smtp, whatsapp, ["D-4b"])


@pytest.mark.slow
def test_webhook_racing_browser_return_many_orders(live, smtp, whatsapp):
    references = [f"D-4s-{i}" for i in range(60)]
    winners = Counter(_race_webhook_and_return(live, ref) for ref in references)
    assert sum(winners.values()) == len(references)
    assert_one_set_each(live.client, smtp, whatsapp, references)


# -- failed and succeeded events for the same order ----------------------------


def test_failed_then_succeeded_pays_once(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-5")

    failed = client.pay("D-5", kind="payment.failed")
    assert failed.json() == {"status": "failed"}
    assert client.get_order("D-5")["status"] == "failed"
    assert client.get_order("D-5")["notifications"] == []

    succeeded = client.pay("D-5")
    assert succeeded.json() == {"status": "paid"}
    assert client.pay("D-5").json() == {"status": "duplicate"}
    assert_one_set_each(client, smtp, whatsapp, ["D-5"])


def test_failed_after_paid_keeps_order_paid(live, smtp, whatsapp):
    client = live.client
    client.create_order("D-6")
    assert client.pay("D-6").json() == {"status": "paid"}
    assert_one_set_each(client, smtp, whatsapp, ["D-6"])

    late = client.pay("D-6", kind="payment.failed")
    failed_return = client.http.get(
        client.return_url("D-6", status="failed"), allow_redirects=False
    )

    # CONTRACT names "failed" for payment.failed and "duplicate" for an order
    # already paid; either is an honest answer, neither may move the order.
    assert late.status_code == 200
    assert late.json()["status"] in ("failed", "duplicate")
    assert failed_return.status_code == 303
    order = client.get_order("D-6")
    assert order["status"] == "paid"
    assert order["paid_at"] is not None
    assert_one_set_each(client, smtp, whatsapp, ["D-6"])


# -- many orders at once: SQLite write contention -------------------------------


def _pay_many(live, count, threads):
    base = live.client.base_url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    local = threading.local()
    sessions = []
    references = [_reference("D-7") for _ in range(count)]

    def create_and_pay(reference):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)
        created = session.post(
            base + "/orders", json=order_body(reference), headers=auth, timeout=30
        )
        paid = _signed_post(base, event_body(reference), session)
        return reference, created, paid

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(create_and_pay, references))
    finally:
        for session in sessions:
            session.close()

    for reference, created, paid in results:
        assert created.status_code == 201, (reference, created.text)
        assert paid.status_code == 200, (reference, paid.text)
        assert paid.json() == {"status": "paid"}, (reference, paid.text)
    return references


def test_many_orders_paid_concurrently_each_sent_once(live, smtp, whatsapp):
    references = _pay_many(live, count=30, threads=8)
    assert_one_set_each(live.client, smtp, whatsapp, references)


@pytest.mark.slow
def test_hundreds_of_orders_paid_concurrently(make_service, smtp, whatsapp):
    live = make_service(NOTIFIER_THREADS="8")
    references = _pay_many(live, count=300, threads=24)
    assert_one_set_each(live.client, smtp, whatsapp, references)
