"""Delivery failures, each through a real paid order on the served app.

The stand-ins answer from their scripts; the service retries, gives up or
sends, and the order's notifications say which.
"""

import time

import pytest

from notifier import outbox
from tests.conftest import ADMIN

COURIER = "966504445566"


def by_kind(order):
    return {n["kind"]: n for n in order["notifications"]}


def wait_until(client, reference, predicate, timeout=10.0):
    """Poll the order until `predicate(notifications by kind)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        order = client.get_order(reference)
        found = by_kind(order)
        if found and predicate(found):
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {reference} never got there: {found}")
        time.sleep(0.05)


def pay(client, reference, courier=True):
    client.create_order(reference, courier=courier)
    response = client.pay(reference)
    assert response.status_code == 200
    assert response.json() == {"status": "paid"}
    return response


def wait_settled(client, reference, timeout=15.0):
    return client.wait_for_states(reference, ("sent", "dead"), timeout=timeout)


# -- WhatsApp -------------------------------------------------------------------


def test_whatsapp_500_without_body_is_retried_then_sent(make_service, whatsapp):
    client = make_service().client
    whatsapp.script((500, None))
    pay(client, "F-500", courier=False)

    order = client.wait_for_states("F-500")
    admin = by_kind(order)["whatsapp_admin"]
    assert admin["attempts"] == 2
    assert admin["last_error"] is None and admin["sent_at"]
    assert [c.status for c in whatsapp.requests] == [500, 200]
    assert by_kind(order)["email_customer"]["attempts"] == 1


def retry_after_gap(make_service, whatsapp, reference, **settings):
    client = make_service(**settings).client
    whatsapp.script(
        whatsapp.error(130429, status=429, headers={"Retry-After": "1"}),
    )
    pay(client, reference, courier=False)
    order = client.wait_for_states(reference)
    assert by_kind(order)["whatsapp_admin"]["attempts"] == 2
    first, second = whatsapp.requests
    assert (first.status, second.status) == (429, 200)
    return second.at - first.at


def test_retry_after_is_waited_for_when_the_backoff_cap_allows(make_service, whatsapp):
    gap = retry_after_gap(
        make_service, whatsapp, "F-429-cap", NOTIFIER_BACKOFF_MAX_SECONDS=5
    )
    assert gap >= 0.95


def test_429_retry_after_one_second_is_not_retried_sooner(make_service, whatsapp):
    gap = retry_after_gap(make_service, whatsapp, "F-429")
    assert gap >= 0.95


RETRYABLE = [
    (4, 400),
    (80007, 400),
    (130429, 429),
    (131000, 500),
    (131016, 503),
    (131056, 400),
    (131057, 400),
    (2, 400),
]
PERMANENT = [
    (131026, 400),
    (131047, 400),
    (100, 400),
    (132000, 400),
    (132001, 404),
    (190, 401),
    (10, 403),
    # Decided on the code, not on a 5xx status.
    (131026, 500),
]


@pytest.mark.parametrize(("code", "status"), RETRYABLE)
def test_retryable_cloud_api_code_is_retried_then_sent(
    make_service, whatsapp, smtp, code, status
):
    client = make_service().client
    reference = f"F-R{code}-{status}"
    whatsapp.script(whatsapp.error(code, status=status))
    pay(client, reference)

    order = client.wait_for_states(reference)
    found = by_kind(order)
    attempts = sorted(
        found[k]["attempts"] for k in ("whatsapp_admin", "whatsapp_courier")
    )
    assert attempts == [1, 2]
    assert found["email_customer"]["attempts"] == 1
    calls = whatsapp.requests
    assert len(calls) == 3
    assert calls[0].status == status
    assert {c.body["to"] for c in whatsapp.delivered()} == {ADMIN, COURIER}
    smtp.wait_for(1)


@pytest.mark.parametrize(("code", "status"), PERMANENT)
def test_permanent_cloud_api_code_is_dead_after_one_attempt(
    make_service, whatsapp, smtp, code, status
):
    client = make_service().client
    reference = f"F-P{code}-{status}"
    whatsapp.script(whatsapp.error(code, status=status))
    pay(client, reference)

    order = wait_settled(client, reference)
    found = by_kind(order)
    dead = [n for n in found.values() if n["state"] == "dead"]
    assert len(dead) == 1
    (gone,) = dead
    assert gone["kind"] in ("whatsapp_admin", "whatsapp_courier")
    assert gone["attempts"] == 1
    assert str(code) in gone["last_error"]
    assert gone["sent_at"] is None
    others = [n for n in found.values() if n is not gone]
    assert [n["state"] for n in others] == ["sent", "sent"]
    assert found["email_customer"]["state"] == "sent"
    assert len(whatsapp.requests) == 2
    smtp.wait_for(1)


def test_dropped_connection_is_retried_then_sent(make_service, whatsapp):
    client = make_service().client
    whatsapp.script("close")
    pay(client, "F-CLOSE", courier=False)

    order = client.wait_for_states("F-CLOSE")
    assert by_kind(order)["whatsapp_admin"]["attempts"] == 2
    calls = whatsapp.requests
    assert len(calls) == 2
    assert calls[0].status is None and calls[1].status == 200


def test_send_hanging_past_read_timeout_is_retried_at_least_once(
    make_service, whatsapp
):
    client = make_service(WHATSAPP_READ_TIMEOUT=1).client
    whatsapp.script("hang:3")
    pay(client, "F-HANG", courier=False)

    order = client.wait_for_states("F-HANG")
    admin = by_kind(order)["whatsapp_admin"]
    assert admin["attempts"] == 2

    # Let the hung request finish so the count of deliveries is final.
    deadline = time.monotonic() + 6
    while any(c.status is None for c in whatsapp.requests):
        assert time.monotonic() < deadline, "the hung request never finished"
        time.sleep(0.05)
    delivered = whatsapp.delivered()
    assert 1 <= len(delivered) <= 2
    keys = {c.body["biz_opaque_callback_data"] for c in delivered}
    assert keys == {f"notification-{admin['id']}"}


def test_transient_failures_up_to_max_attempts_make_it_dead(make_service, whatsapp):
    client = make_service(NOTIFIER_MAX_ATTEMPTS=3).client
    whatsapp.script((500, None), (503, None), (500, None))
    pay(client, "F-MAX", courier=False)

    order = wait_settled(client, "F-MAX")
    admin = by_kind(order)["whatsapp_admin"]
    assert admin["state"] == "dead"
    assert admin["attempts"] == 3
    assert "500" in admin["last_error"]
    assert len(whatsapp.requests) == 3
    assert by_kind(order)["email_customer"]["state"] == "sent"


# -- SMTP -----------------------------------------------------------------------


def test_smtp_451_is_retried_with_the_same_message_id(make_service, smtp):
    client = make_service().client
    smtp.script("451 4.3.0 Try again later")
    pay(client, "F-451")

    order = client.wait_for_states("F-451")
    email = by_kind(order)["email_customer"]
    assert email["attempts"] == 2
    assert smtp.attempts == 2
    (mail,) = smtp.messages
    assert mail.message["Message-ID"] == f"<notification-{email['id']}@localhost>"


def test_smtp_550_is_dead_and_whatsapp_still_sent(make_service, smtp, whatsapp):
    client = make_service().client
    smtp.script("550 5.1.1 No such user")
    pay(client, "F-550")

    order = wait_settled(client, "F-550")
    found = by_kind(order)
    email = found["email_customer"]
    assert email["state"] == "dead"
    assert email["attempts"] == 1
    assert "550" in email["last_error"]
    assert found["whatsapp_admin"]["state"] == "sent"
    assert found["whatsapp_courier"]["state"] == "sent"
    assert smtp.messages == [] and smtp.attempts == 1
    assert len(whatsapp.delivered()) == 2


def test_smtp_hang_past_timeout_is_retried_then_sent(make_service, smtp):
    client = make_service(SMTP_TIMEOUT=1).client
    smtp.script("hang:4")
    pay(client, "F-SMTP-HANG", courier=False)

    order = client.wait_for_states("F-SMTP-HANG")
    email = by_kind(order)["email_customer"]
    assert email["attempts"] == 2
    messages = smtp.wait_for(1)
    assert 1 <= len(messages) <= 2
    assert {m.message["Message-ID"] for m in messages} == {
        f"<notification-{email['id']}@localhost>"
    }


def test_smtp_down_keeps_it_pending_until_the_server_is_back(make_service, smtp):
    client = make_service(NOTIFIER_MAX_ATTEMPTS=100).client
    smtp.stop()
    pay(client, "F-DOWN", courier=False)

    order = wait_until(
        client,
        "F-DOWN",
        lambda n: (
            n["email_customer"]["state"] == "pending"
            and n["email_customer"]["last_error"] is not None
            and n["whatsapp_admin"]["state"] != "running"
        ),
    )
    email = by_kind(order)["email_customer"]
    assert "refused" in email["last_error"].lower()
    assert email["sent_at"] is None
    assert by_kind(order)["whatsapp_admin"]["state"] == "sent"

    smtp.start()
    order = client.wait_for_states("F-DOWN")
    email = by_kind(order)["email_customer"]
    assert email["attempts"] >= 2
    assert email["last_error"] is None
    (mail,) = smtp.wait_for(1)
    assert mail.message["Message-ID"] == f"<notification-{email['id']}@localhost>"


# -- isolation ------------------------------------------------------------------


def test_slow_whatsapp_touches_neither_the_webhook_nor_the_email(
    make_service, smtp, whatsapp
):
    client = make_service(WHATSAPP_READ_TIMEOUT=5).client
    client.create_order("F-SLOW")
    whatsapp.delay = 3

    started = time.monotonic()
    response = client.pay("F-SLOW")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"status": "paid"}
    assert elapsed < 2.0

    smtp.wait_for(1, timeout=2)
    order = wait_until(
        client, "F-SLOW", lambda n: n["email_customer"]["state"] == "sent", timeout=2
    )
    assert all(c.status is None for c in whatsapp.requests)
    assert by_kind(order)["whatsapp_admin"]["state"] in ("pending", "running")

    order = client.wait_for_states("F-SLOW", timeout=10)
    assert all(n["attempts"] == 1 for n in order["notifications"])


# -- putting a dead one back -----------------------------------------------------


@pytest.mark.parametrize("how", ["by_id", "all_dead"])
def test_requeued_dead_notification_is_sent_by_the_sweeper(make_service, smtp, how):
    client = make_service().client
    smtp.script("550 5.7.1 Rejected for now")
    pay(client, "F-REQ-" + how)
    order = wait_settled(client, "F-REQ-" + how)
    found = by_kind(order)
    email = found["email_customer"]
    assert email["state"] == "dead"

    sent_id = found["whatsapp_admin"]["id"]
    if how == "by_id":
        allowed, refused = outbox.requeue([email["id"], sent_id])
        assert refused == {sent_id: "sent"}
    else:
        allowed, refused = outbox.requeue(dead=True)
        assert refused == {}
    assert allowed == [email["id"]]

    order = client.wait_for_states("F-REQ-" + how)
    email = by_kind(order)["email_customer"]
    assert email["attempts"] == 1
    assert email["last_error"] is None and email["sent_at"]
    (mail,) = smtp.wait_for(1)
    assert mail.message["Message-ID"] == f"<notification-{email['id']}@localhost>"
    assert smtp.attempts == 2
