"""Moyasar callbacks as Moyasar sends them, over the socket, against a
loopback stand-in of Moyasar's API. Neither the webhook body nor the return's
query is believed: the payment fetched from the API decides."""

import json
import time
import uuid

import pytest

from notifier.errors import RequestError
from notifier.gateways import moyasar
from notifier.settings import Settings
from tests import racing
from tests.fakes.moyasar_api import MoyasarApiStandIn

SECRET_KEY = "sk_test_moyasar_key"
TOKEN = "moyasar-webhook-token"


def payment(reference, status="paid", amount=15000, currency="SAR", payment_id=None):
    """A payment object shaped as Moyasar's Fetch Payment answers it."""
    return {
        "id": payment_id or str(uuid.uuid4()),
        "status": status,
        "amount": amount,
        "fee": 0,
        "currency": currency,
        "refunded": 0,
        "refunded_at": None,
        "captured": 0,
        "captured_at": None,
        "voided_at": None,
        "description": f"Order {reference}",
        "amount_format": f"{amount / 100:.2f} {currency}",
        "invoice_id": None,
        "ip": "203.0.113.7",
        "callback_url": "https://shop.example/payments/moyasar/return",
        "created_at": "2026-12-03T17:00:00.000Z",
        "updated_at": "2026-12-03T17:00:05.000Z",
        "metadata": {} if reference is None else {"order_reference": reference},
        "source": {
            "type": "creditcard",
            "company": "visa",
            "name": "Laila Customer",
            "number": "4111-11XX-XXXX-1111",
            "gateway_id": "moyasar_cc_test",
            "reference_number": None,
            "token": None,
            "message": "APPROVED" if status == "paid" else "Declined",
            "transaction_url": None,
        },
    }


def event(obj, kind="payment_paid", token=TOKEN):
    """A webhook as Moyasar's Webhook Reference shows it."""
    body = {
        "id": str(uuid.uuid4()),
        "type": kind,
        "created_at": "2026-12-03T17:00:06.000Z",
        "account_name": None,
        "live": False,
        "data": obj,
    }
    if token is not None:
        body["secret_token"] = token
    return body


@pytest.fixture
def api():
    with MoyasarApiStandIn(SECRET_KEY) as stand_in:
        yield stand_in


@pytest.fixture
def live(make_service, api):
    return make_service(
        MOYASAR_SECRET_KEY=SECRET_KEY,
        MOYASAR_WEBHOOK_TOKEN=TOKEN,
        MOYASAR_API_URL=api.url,
    )


def stored(api, reference, **fields):
    obj = payment(reference, **fields)
    api.payments[obj["id"]] = obj
    return obj


def post(live, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return live.client.http.post(
        live.client.url("/payments/moyasar/webhook"),
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def back(live, payment_id, status="paid", message="APPROVED"):
    """The browser sent to callback_url, as Moyasar redirects it."""
    return live.client.http.get(
        live.client.url("/payments/moyasar/return"),
        params={"id": payment_id, "status": status, "message": message},
        allow_redirects=False,
        timeout=10,
    )


# -- the webhook -------------------------------------------------------------


def test_webhook_pays_the_order_once(live, api, smtp, whatsapp):
    client = live.client
    client.create_order("MY-1")
    obj = stored(api, "MY-1")
    assert post(live, event(obj)).json() == {"status": "paid"}
    assert post(live, event(obj)).json() == {"status": "duplicate"}  # replay
    # The customer's return of the same payment changes nothing either.
    response = back(live, obj["id"])
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=MY-1")
    order = client.wait_for_states("MY-1")
    assert order["status"] == "paid" and order["payment_id"] == obj["id"]
    assert api.calls == [f"/v1/payments/{obj['id']}"] * 3
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and len(whatsapp.requests) == 2


def test_the_api_wins_over_the_webhook_body(live, api):
    client = live.client
    client.create_order("MY-2")
    obj = stored(api, "MY-2", status="failed")
    claimed = dict(obj, status="paid", source=dict(obj["source"], message="OK"))
    assert post(live, event(claimed)).json() == {"status": "failed"}
    order = client.get_order("MY-2")
    assert order["status"] == "failed" and order["notifications"] == []


def test_a_failed_payment_then_a_paid_one(live, api):
    client = live.client
    client.create_order("MY-3")
    failed = stored(api, "MY-3", status="failed")
    assert post(live, event(failed, "payment_failed")).json() == {"status": "failed"}
    paid = stored(api, "MY-3")
    assert post(live, event(paid)).json() == {"status": "paid"}
    assert client.wait_for_states("MY-3")["status"] == "paid"


@pytest.mark.parametrize(
    "make_event, calls",
    [
        (lambda api: {**event({}, "balance_transferred"), "data": {}}, 0),
        (lambda api: event(stored(api, "MY-4", status="initiated")), 1),
        (lambda api: event(stored(api, "MY-4", status="authorized")), 1),
        (lambda api: event(stored(api, "MY-4", status="refunded")), 1),
        (lambda api: event(stored(api, None)), 1),  # no order_reference: not ours
    ],
)
def test_events_the_shop_does_not_act_on_are_ignored(live, api, make_event, calls):
    live.client.create_order("MY-4")
    response = post(live, make_event(api))
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert len(api.calls) == calls
    assert live.client.get_order("MY-4")["status"] == "pending"


@pytest.mark.parametrize(
    "change, status",
    [
        ({"token": "wrong-token"}, 401),
        ({"token": None}, 401),
        ({"token": TOKEN + "x"}, 401),
        ({"amount": 1}, 422),
        ({"currency": "USD"}, 422),
        ({"unknown": True}, 404),
        ({"reference": "nope"}, 404),
        ({"fail_with": 500}, 502),
        ({"fail_with": 503}, 502),
    ],
)
def test_bad_callbacks_change_nothing(live, api, change, status):
    client = live.client
    client.create_order("MY-5")
    obj = payment(
        change.get("reference", "MY-5"),
        amount=change.get("amount", 15000),
        currency=change.get("currency", "SAR"),
    )
    if not change.get("unknown"):
        api.payments[obj["id"]] = obj
    api.fail_with = change.get("fail_with")
    response = post(live, event(obj, token=change.get("token", TOKEN)))
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    if status == 401:
        assert api.calls == []  # refused before asking Moyasar anything
    assert client.get_order("MY-5")["status"] == "pending"
    assert client.get_order("MY-5")["notifications"] == []
    # Moyasar retries; once the payment is right the same callback pays.
    api.fail_with = None
    api.payments[obj["id"]] = payment("MY-5", payment_id=obj["id"])
    assert post(live, event(obj)).json() == {"status": "paid"}


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", 400),
        (b"[1, 2]", 401),
        (json.dumps({"type": "payment_paid", "secret_token": TOKEN}).encode(), 400),
        (json.dumps(event({"id": "../../v1/x"})).encode(), 400),
        (json.dumps(event({"id": 5})).encode(), 400),
    ],
)
def test_malformed_webhooks(live, api, body, status):
    response = post(live, body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert api.calls == []


# -- the callback redirect ---------------------------------------------------


def test_return_fetches_the_payment_and_pays(live, api, smtp):
    live.client.create_order("MR-1")
    obj = stored(api, "MR-1")
    response = back(live, obj["id"])
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=MR-1")
    assert live.client.wait_for_states("MR-1")["status"] == "paid"
    assert api.calls == [f"/v1/payments/{obj['id']}"]
    # Moyasar's webhook for the same payment comes later: nothing new.
    assert post(live, event(obj)).json() == {"status": "duplicate"}


def test_a_forged_paid_status_in_the_query_pays_nothing(live, api):
    live.client.create_order("MR-2")
    obj = stored(api, "MR-2", status="failed")
    response = back(live, obj["id"], status="paid", message="APPROVED")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/payment-failed?order=MR-2")
    order = live.client.get_order("MR-2")
    assert order["status"] == "failed" and order["notifications"] == []


def test_return_of_a_payment_not_settled_changes_nothing(live, api):
    live.client.create_order("MR-3")
    obj = stored(api, "MR-3", status="initiated")
    response = back(live, obj["id"], status="paid")
    assert response.headers["Location"].endswith("/payment-failed?order=MR-3")
    assert live.client.get_order("MR-3")["status"] == "pending"
    # Its webhook settles it later.
    obj["status"] = "paid"
    assert post(live, event(obj)).json() == {"status": "paid"}


@pytest.mark.parametrize(
    "payment_id, fail_with, status",
    [
        (None, None, 400),
        ("", None, 400),
        ("a/../../b", None, 400),
        ("x" * 101, None, 400),
        (str(uuid.UUID(int=7)), None, 404),
        ("known", 500, 502),
        ("no-reference", None, 404),
        ("wrong-amount", None, 422),
    ],
)
def test_return_errors(live, api, payment_id, fail_with, status):
    live.client.create_order("MR-4")
    api.payments["known"] = payment("MR-4", payment_id="known")
    api.payments["no-reference"] = payment(None, payment_id="no-reference")
    api.payments["wrong-amount"] = payment("MR-4", amount=1, payment_id="wrong-amount")
    api.fail_with = fail_with
    params = {"status": "paid", "message": "APPROVED"}
    if payment_id is not None:
        params["id"] = payment_id
    response = live.client.http.get(
        live.client.url("/payments/moyasar/return"),
        params=params,
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert live.client.get_order("MR-4")["status"] == "pending"


# -- races, an API that hangs, configuration --------------------------------


def race(live, obj):
    """The webhook and the browser return of one payment, released together."""
    return racing.race(
        lambda: post(live, event(obj)).json()["status"],
        lambda: back(live, obj["id"]),
    )


def test_webhook_racing_the_return_sends_one_set(live, api, smtp, whatsapp):
    for n in range(4):
        reference = f"RACE-{n}"
        live.client.create_order(reference)
        answers = race(live, stored(api, reference))
        assert answers["webhook"] in ("paid", "duplicate")
        assert answers["return"].status_code == 303
        assert (
            answers["return"].headers["Location"].endswith(f"/paid?order={reference}")
        )
        live.client.wait_for_states(reference)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and len(whatsapp.requests) == 8


def test_an_api_that_hangs_is_a_502_and_changes_nothing(make_service, api):
    live = make_service(
        MOYASAR_SECRET_KEY=SECRET_KEY,
        MOYASAR_WEBHOOK_TOKEN=TOKEN,
        MOYASAR_API_URL=api.url,
        GATEWAY_API_TIMEOUT=1,
    )
    live.client.create_order("MH-1")
    obj = stored(api, "MH-1")
    api.hang = True
    started = time.monotonic()
    webhook = post(live, event(obj))
    browser = back(live, obj["id"])
    elapsed = time.monotonic() - started
    assert webhook.status_code == 502 and browser.status_code == 502
    assert set(webhook.json()) == {"error"} and set(browser.json()) == {"error"}
    assert 1.5 < elapsed < 6
    assert live.client.get_order("MH-1")["status"] == "pending"
    assert live.client.get_order("MH-1")["notifications"] == []


def test_an_api_that_cannot_be_reached_is_a_502(make_service):
    live = make_service(
        MOYASAR_SECRET_KEY=SECRET_KEY,
        MOYASAR_WEBHOOK_TOKEN=TOKEN,
        MOYASAR_API_URL="http://127.0.0.1:9",
    )
    live.client.create_order("MU-1")
    obj = payment("MU-1")
    assert post(live, event(obj)).status_code == 502
    assert back(live, obj["id"]).status_code == 502
    assert live.client.get_order("MU-1")["status"] == "pending"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"MOYASAR_SECRET_KEY": SECRET_KEY},
        {"MOYASAR_WEBHOOK_TOKEN": TOKEN},
    ],
)
def test_not_configured_answers_503(make_service, env):
    live = make_service(**env)
    webhook = post(live, event(payment("X")))
    assert webhook.status_code == 503 and "moyasar" in webhook.json()["error"]
    assert back(live, str(uuid.uuid4())).status_code == 503


# -- simulate and the token check ------------------------------------------


@pytest.mark.parametrize("failed, status", [(False, "paid"), (True, "failed")])
def test_simulate_builds_the_webhook_moyasar_sends(live, api, failed, status):
    order = live.client.create_order("MS-1")
    settings = live.settings
    obj = moyasar.simulated_payment(order, failed)
    api.payments[obj["id"]] = obj
    call = moyasar.simulate(order, failed, settings, time.time())
    assert (call.method, call.route) == ("POST", "webhook")
    body = json.loads(call.body)
    assert body["secret_token"] == TOKEN and body["data"]["id"] == obj["id"]
    assert body["type"] == ("payment_failed" if failed else "payment_paid")
    response = live.client.http.post(
        live.client.url("/payments/moyasar/webhook"),
        data=call.body,
        headers=call.headers,
        timeout=10,
    )
    assert response.json() == {"status": status}


def test_configured_needs_both_secrets():
    assert not moyasar.configured(Settings())
    assert not moyasar.configured(Settings(moyasar_secret_key=SECRET_KEY))
    assert not moyasar.configured(Settings(moyasar_webhook_token=TOKEN))
    both = Settings(moyasar_secret_key=SECRET_KEY, moyasar_webhook_token=TOKEN)
    assert moyasar.configured(both)


@pytest.mark.parametrize(
    "body", [{}, {"secret_token": ""}, {"secret_token": 5}, {"secret_token": "ü"}, []]
)
def test_verify_token_refuses(body):
    with pytest.raises(RequestError) as caught:
        moyasar.verify_token(body, TOKEN)
    assert caught.value.status == 401
    moyasar.verify_token({"secret_token": TOKEN}, TOKEN)


def test_a_refused_secret_key_is_a_502(make_service, api):
    live = make_service(
        MOYASAR_SECRET_KEY="sk_test_not_the_key",
        MOYASAR_WEBHOOK_TOKEN=TOKEN,
        MOYASAR_API_URL=api.url,
    )
    live.client.create_order("MK-1")
    obj = stored(api, "MK-1")
    assert post(live, event(obj)).status_code == 502  # Moyasar answered 401
    assert live.client.get_order("MK-1")["status"] == "pending"


def test_the_registry_serves_this_adapter():
    from notifier.gateways import ADAPTERS

    assert ADAPTERS["moyasar"] is moyasar and moyasar.NAME == "moyasar"
