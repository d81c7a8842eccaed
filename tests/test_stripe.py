"""Stripe callbacks as Stripe sends them, verified as its own library does."""

import json
import time

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.errors import RequestError
from notifier.gateways.stripe import verify
from tests import racing
from tests.fakes.stripe_api import StripeApiStandIn

SECRET = "whsec_test_secret"
OLD_SECRET = "whsec_old_secret"
API_KEY = "sk_test_key"


def official_accepts(payload, header, secret, now):
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=300)
    except Exception:  # noqa: BLE001 - any refusal of the official library
        return False
    return True


def ours_accepts(payload, header, secrets, now):
    try:
        verify(payload, header, secrets, now)
    except RequestError as exc:
        assert exc.status == 401
        return False
    return True


def official_header(payload, secret=SECRET, timestamp=None):
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    return stripe.WebhookSignature.generate_signature_header(
        text, secret, timestamp=timestamp
    )


headers = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda t, sigs, extra: ",".join([f"t={t}", *sigs, *extra]),
        st.one_of(
            st.integers(0, 2 * 10**9).map(str),
            st.sampled_from(["", "x", " 5", "+5", "1_0", "٥"]),
        ),
        st.lists(st.text(max_size=70).map(lambda s: f"v1={s}"), max_size=3),
        st.lists(st.sampled_from(["v0=abc", "t=1", "=", "v1", ""]), max_size=2),
    ),
)


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=200), header=headers)
def test_random_headers_are_judged_as_the_official_library_judges_them(payload, header):
    now = time.time()
    assert ours_accepts(payload, header, (SECRET,), now) == official_accepts(
        payload, header, SECRET, now
    )


@settings(max_examples=200, deadline=None)
@given(
    payload=st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    age=st.integers(-(10**6), 10**6).filter(lambda a: abs(a - 300) > 5),
    tamper=st.booleans(),
    also=st.sampled_from(["", ",v0=00", ",v1=deadbeef", ",x=y"]),
)
def test_signed_headers_are_judged_as_the_official_library_judges_them(
    payload, age, tamper, also
):
    now = time.time()
    try:
        header = official_header(payload, timestamp=int(now) - age) + also
    except UnicodeDecodeError:
        return
    body = payload + b" " if tamper else payload
    ours = ours_accepts(body, header, (SECRET,), now)
    assert ours == official_accepts(body, header, SECRET, now)
    assert ours == (not tamper and age <= 300)


def test_any_configured_secret_passes_during_rotation():
    payload = b'{"id": "evt_1"}'
    now = time.time()
    header = official_header(payload, OLD_SECRET, int(now))
    assert ours_accepts(payload, header, (SECRET, OLD_SECRET), now)
    assert not ours_accepts(payload, header, (SECRET,), now)


def test_v0_signatures_are_never_accepted():
    payload = b'{"id": "evt_1"}'
    now = int(time.time())
    v1 = official_header(payload, timestamp=now).split("v1=")[1]
    assert not ours_accepts(payload, f"t={now},v0={v1}", (SECRET,), now)


# -- end to end ------------------------------------------------------------


def checkout_completed(reference, event_id="evt_cs", amount=15000, paid=True):
    """`checkout.session.completed` shaped as Stripe documents it."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": "cs_test_a1b2c3",
                "object": "checkout.session",
                "amount_total": amount,
                "currency": "sar",
                "client_reference_id": reference,
                "metadata": {},
                "mode": "payment",
                "payment_intent": "pi_3Abc",
                "payment_status": "paid" if paid else "unpaid",
                "status": "complete",
            }
        },
    }


def payment_intent(reference, kind="succeeded", event_id="evt_pi", amount=15000):
    return {
        "id": event_id,
        "object": "event",
        "type": f"payment_intent.{kind}",
        "data": {
            "object": {
                "id": "pi_3Abc",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount if kind == "succeeded" else 0,
                "currency": "sar",
                "metadata": {"order_reference": reference},
                "status": kind,
            }
        },
    }


@pytest.fixture
def stripe_api():
    with StripeApiStandIn(API_KEY) as api:
        yield api


@pytest.fixture
def live_stripe(make_service, stripe_api):
    return make_service(
        STRIPE_WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}",
        STRIPE_SECRET_KEY=API_KEY,
        STRIPE_API_URL=stripe_api.url,
    )


def post(live, event, secret=SECRET, timestamp=None, body=None):
    raw = body if body is not None else json.dumps(event).encode()
    header = official_header(raw, secret, timestamp)
    return live.client.http.post(
        live.client.url("/payments/stripe/webhook"),
        data=raw,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=10,
    )


def test_checkout_completed_pays_the_order_once(live_stripe, smtp, whatsapp):
    client = live_stripe.client
    client.create_order("ST-1")
    response = post(live_stripe, checkout_completed("ST-1"))
    assert response.json() == {"status": "paid"}
    assert post(live_stripe, checkout_completed("ST-1")).json() == {
        "status": "duplicate"
    }
    # Stripe also sends payment_intent.succeeded for the same payment.
    assert post(live_stripe, payment_intent("ST-1")).json() == {"status": "duplicate"}
    order = client.wait_for_states("ST-1")
    assert order["payment_id"] == "pi_3Abc"
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and len(whatsapp.requests) == 2


def test_payment_intent_events_pay_and_fail(live_stripe):
    client = live_stripe.client
    client.create_order("ST-2")
    client.create_order("ST-3")
    assert post(live_stripe, payment_intent("ST-2")).json() == {"status": "paid"}
    failed = payment_intent("ST-3", "payment_failed", event_id="evt_f")
    assert post(live_stripe, failed).json() == {"status": "failed"}
    assert client.get_order("ST-3")["status"] == "failed"
    assert client.get_order("ST-3")["notifications"] == []


@pytest.mark.parametrize(
    "event, status",
    [
        ({"id": "evt_x", "type": "customer.created", "data": {"object": {}}}, 200),
        (checkout_completed("ST-4", paid=False), 200),  # async: wait for the next
        (payment_intent(None), 200),  # no order reference: not ours
    ],
)
def test_events_the_shop_does_not_act_on_are_ignored(live_stripe, event, status):
    live_stripe.client.create_order("ST-4")
    response = post(live_stripe, event)
    assert response.status_code == status
    assert response.json() == {"status": "ignored"}
    assert live_stripe.client.get_order("ST-4")["status"] == "pending"


@pytest.mark.parametrize(
    "change, status",
    [
        ({"secret": "whsec_wrong"}, 401),
        ({"timestamp": int(time.time()) - 301}, 401),
        ({"amount": 1}, 422),
        ({"reference": "nope"}, 404),
    ],
)
def test_bad_callbacks_change_nothing(live_stripe, change, status):
    client = live_stripe.client
    client.create_order("ST-5")
    event = checkout_completed(
        change.get("reference", "ST-5"), amount=change.get("amount", 15000)
    )
    response = post(
        live_stripe,
        event,
        secret=change.get("secret", SECRET),
        timestamp=change.get("timestamp"),
    )
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert client.get_order("ST-5")["status"] == "pending"
    assert post(live_stripe, checkout_completed("ST-5")).json() == {"status": "paid"}


def test_tampered_body_is_refused(live_stripe):
    live_stripe.client.create_order("ST-6")
    raw = json.dumps(checkout_completed("ST-6")).encode()
    header = official_header(raw)
    response = live_stripe.client.http.post(
        live_stripe.client.url("/payments/stripe/webhook"),
        data=raw.replace(b"15000", b"15001"),
        headers={"Stripe-Signature": header},
        timeout=10,
    )
    assert response.status_code == 401


def test_unconfigured_and_unknown_gateways(make_service):
    live = make_service()
    event = json.dumps(checkout_completed("X")).encode()
    answer = live.client.http.post(
        live.client.url("/payments/stripe/webhook"), data=event, timeout=10
    )
    assert answer.status_code == 503 and "stripe" in answer.json()["error"]
    unknown = live.client.http.post(
        live.client.url("/payments/nogateway/webhook"), data=event, timeout=10
    )
    assert unknown.status_code == 404


# -- the Checkout return -----------------------------------------------------


def session(reference, paid=True, amount=15000):
    return checkout_completed(reference, amount=amount, paid=paid)["data"]["object"]


def browser_return(live, session_id):
    return live.client.http.get(
        live.client.url(f"/payments/stripe/return?session_id={session_id}"),
        allow_redirects=False,
        timeout=10,
    )


def test_return_fetches_the_session_and_pays(live_stripe, stripe_api, smtp):
    live_stripe.client.create_order("SR-1")
    stripe_api.sessions["cs_test_1"] = session("SR-1")
    response = browser_return(live_stripe, "cs_test_1")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=SR-1")
    assert live_stripe.client.wait_for_states("SR-1")["status"] == "paid"
    assert stripe_api.calls == ["/v1/checkout/sessions/cs_test_1"]


def test_return_of_an_unpaid_session_changes_nothing(live_stripe, stripe_api):
    live_stripe.client.create_order("SR-2")
    stripe_api.sessions["cs_test_2"] = session("SR-2", paid=False)
    response = browser_return(live_stripe, "cs_test_2")
    assert response.headers["Location"].endswith("/payment-failed?order=SR-2")
    assert live_stripe.client.get_order("SR-2")["status"] == "pending"


@pytest.mark.parametrize(
    "session_id, fail_with, status",
    [
        ("cs_test_unknown", None, 404),
        ("cs_test_3", 500, 502),
        ("cs_test_3", "wrong id", 502),
        ("pi_not_a_session", None, 400),
        ("cs_test_3/../x", None, 400),
    ],
)
def test_return_errors(live_stripe, stripe_api, session_id, fail_with, status):
    live_stripe.client.create_order("SR-3")
    stripe_api.sessions["cs_test_3"] = session("SR-3", amount=1)
    stripe_api.wrong_id = fail_with == "wrong id"
    stripe_api.fail_with = None if stripe_api.wrong_id else fail_with
    response = browser_return(live_stripe, session_id)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert live_stripe.client.get_order("SR-3")["status"] == "pending"


def race(live, reference, n):
    """The webhook and the browser return of one payment, released together."""
    event = checkout_completed(reference, event_id=f"evt_r{n}")
    return racing.race(
        lambda: post(live, event).json()["status"],
        lambda: browser_return(live, f"cs_test_r{n}"),
    )


def test_webhook_racing_the_return_sends_one_set(
    live_stripe, stripe_api, smtp, whatsapp
):
    for n in range(4):
        reference = f"RACE-{n}"
        live_stripe.client.create_order(reference)
        stripe_api.sessions[f"cs_test_r{n}"] = session(reference)
        answers = race(live_stripe, reference, n)
        assert answers["webhook"] in ("paid", "duplicate")
        assert answers["return"].status_code == 303
        live_stripe.client.wait_for_states(reference)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and len(whatsapp.requests) == 8
