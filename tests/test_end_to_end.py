"""Orders paid over a socket; every message reaches the loopback stand-ins once."""

import json
import threading
import time

from models import Notification
from notifier.tasks import registry
from tests.conftest import ADMIN, PHONE_NUMBER_ID, WA_TOKEN


def test_paid_order_sends_each_message_once(live, smtp, whatsapp):
    client = live.client
    order = client.create_order("A-1001")
    assert order["status"] == "pending"
    assert order["notifications"] == []

    response = client.pay("A-1001")
    assert response.status_code == 200
    assert response.json() == {"status": "paid"}

    paid = client.wait_for_states("A-1001")
    assert paid["status"] == "paid"
    kinds = sorted(n["kind"] for n in paid["notifications"])
    assert kinds == ["email_customer", "whatsapp_admin", "whatsapp_courier"]
    assert all(n["attempts"] == 1 and n["sent_at"] for n in paid["notifications"])

    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ["laila@example.com"]
    assert "A-1001" in mail.message["Subject"]
    email_id = next(
        n["id"] for n in paid["notifications"] if n["kind"] == "email_customer"
    )
    assert mail.message["Message-ID"].startswith(f"<notification-{email_id}@")
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    assert "150.00 SAR" in text and "ليلى" in text
    assert 'dir="rtl"' in html

    calls = whatsapp.wait_for(2)
    assert {c.body["to"] for c in calls} == {ADMIN, "966504445566"}
    for call in calls:
        assert call.path.endswith(f"/{PHONE_NUMBER_ID}/messages")
        assert call.headers["Authorization"] == f"Bearer {WA_TOKEN}"
        assert call.body["messaging_product"] == "whatsapp"
        assert call.body["type"] == "template"
        assert call.body["template"]["language"] == {"code": "ar"}
        assert call.body["biz_opaque_callback_data"].startswith("notification-")


def test_order_without_courier_gets_no_courier_message(live, smtp, whatsapp):
    live.client.create_order("A-1002", courier=False)
    assert live.client.pay("A-1002").json() == {"status": "paid"}
    order = live.client.wait_for_states("A-1002")
    assert sorted(n["kind"] for n in order["notifications"]) == [
        "email_customer",
        "whatsapp_admin",
    ]
    smtp.wait_for(1)
    (call,) = whatsapp.wait_for(1)
    assert call.body["to"] == ADMIN


def test_browser_return_redirects_and_pays(live, smtp, whatsapp):
    live.client.create_order("A-1003")
    response = live.client.http.get(
        live.client.return_url("A-1003"), allow_redirects=False, timeout=10
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=A-1003")
    order = live.client.wait_for_states("A-1003")
    assert order["status"] == "paid"
    smtp.wait_for(1)
    whatsapp.wait_for(2)


def test_failed_payment_marks_order_failed_and_sends_nothing(live, smtp, whatsapp):
    live.client.create_order("A-1004")
    response = live.client.pay("A-1004", kind="payment.failed")
    assert response.json() == {"status": "failed"}
    order = live.client.get_order("A-1004")
    assert order["status"] == "failed"
    assert order["notifications"] == []
    failed_return = live.client.http.get(
        live.client.return_url("A-1004", status="failed"),
        allow_redirects=False,
        timeout=10,
    )
    assert failed_return.headers["Location"].endswith("/payment-failed?order=A-1004")
    assert smtp.messages == [] and whatsapp.requests == []


def test_healthz_reports_running_notifier(live):
    response = live.client.http.get(live.client.url("/healthz"), timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["channels"] == {"email": "smtp", "whatsapp": "whatsapp"}


def test_other_after_response_work_runs_by_id_through_the_same_pool(live):
    done = threading.Event()
    seen = []
    if "test_counter" not in registry:

        @registry.task("test_counter")
        def count(notification, ctx):
            seen.append(json.loads(notification.payload))
            done.set()
            return "counted"

    nid = live.service.defer("test_counter", payload={"page": "home"})
    assert done.wait(10)
    assert seen == [{"page": "home"}]
    deadline = time.monotonic() + 10
    while Notification.get_by_id(nid).state != "sent":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert Notification.get_by_id(nid).provider_id == "counted"
