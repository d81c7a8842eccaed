"""Tap Payments callbacks as Tap sends them: the charge webhook with its
`hashstring` header, confirmed against Tap's API, and the `tap_id` redirect."""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest

from notifier.errors import RequestError
from notifier.gateways import tap
from tests import racing
from tests.fakes.tap_api import TapApiStandIn, encode

SECRET = "sk_test_XKokBfNWv6FIYuTMg5sLPjhJ"  # the sandbox key of Tap's docs


def independent_hash(id_, amount_text, currency, gateway, payment, status, created):
    """The hashstring written out by hand, as Tap's documentation composes it."""
    message = (
        f"x_id{id_}x_amount{amount_text}x_currency{currency}"
        f"x_gateway_reference{gateway}x_payment_reference{payment}"
        f"x_status{status}x_created{created}"
    )
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


def charge(
    reference,
    charge_id="chg_TS02A5720231433Qs1w0809820",
    status="CAPTURED",
    amount="150.00",
    currency="SAR",
    where="reference",
):
    """A charge object shaped as Tap's Charge Response Model documents it."""
    obj = {
        "id": charge_id,
        "object": "charge",
        "live_mode": False,
        "api_version": "V2",
        "method": "GET",
        "status": status,
        "amount": Decimal(amount),
        "currency": currency,
        "threeDSecure": True,
        "card_threeDSecure": False,
        "save_card": False,
        "merchant_id": "",
        "product": "GOSELL",
        "description": "Test Description",
        "metadata": {"udf1": "test 1"},
        "transaction": {
            "timezone": "UTC+03:00",
            "created": "1700032390557",
            "expiry": {"period": 30, "type": "MINUTE"},
            "asynchronous": False,
            "amount": Decimal(amount),
            "currency": currency,
        },
        "reference": {
            "track": "tck_TS02A5720231433Qs1w0809820",
            "payment": "5715231433088098219",
            "gateway": "123456789",
            "acquirer": "331914000018",
            "transaction": "txn_0001",
        },
        "response": {"code": "000", "message": "Captured"},
        "receipt": {"id": "205715231433085369", "email": False, "sms": True},
        "customer": {
            "first_name": "test",
            "email": "test@test.com",
            "phone": {"country_code": "965", "number": "51234567"},
        },
        "merchant": {"country": "KW", "currency": "KWD", "id": "599424"},
        "source": {"object": "source", "type": "CARD_NOT_PRESENT", "id": "src_card"},
        "redirect": {"status": "PENDING", "url": "http://your_website.com/redirect"},
        "post": {"status": "PENDING", "url": "http://your_website.com/post_url"},
    }
    if reference is not None and where == "reference":
        obj["reference"]["order"] = reference
    elif reference is not None:
        obj["metadata"]["order_reference"] = reference
    return obj


def signed(obj, amount_text=None):
    """The hashstring Tap sends with `obj` (amount text given, or its own)."""
    return independent_hash(
        obj["id"],
        amount_text or str(obj["amount"]),
        obj["currency"],
        obj["reference"]["gateway"],
        obj["reference"]["payment"],
        obj["status"],
        obj["transaction"]["created"],
    )


# -- the hashstring ------------------------------------------------------------


def test_hashstring_is_the_documented_composition():
    obj = charge("T-0", charge_id="chg_1", amount="1.5", currency="KWD")
    obj["reference"].update(gateway="gw", payment="py")
    obj["transaction"]["created"] = "1700"
    want = hmac.new(
        SECRET.encode(),
        b"x_idchg_1x_amount1.500x_currencyKWDx_gateway_referencegw"
        b"x_payment_referencepyx_statusCAPTUREDx_created1700",
        hashlib.sha256,
    ).hexdigest()
    assert tap.hashstring(obj, SECRET) == want
    body = encode(obj)
    assert tap.verify(body, want, SECRET)["id"] == "chg_1"
    assert tap.verify(body, want.upper(), SECRET)["id"] == "chg_1"
    for bad in (None, "", want[:-1] + "0", "x" * 300):
        with pytest.raises(RequestError) as err:
            tap.verify(body, bad, SECRET)
        assert err.value.status == 401
    with pytest.raises(RequestError) as err:
        tap.verify(body, want, "sk_test_other")
    assert err.value.status == 401


@pytest.mark.parametrize(
    "amount, currency, text",
    [
        (Decimal("12.345"), "KWD", "12.345"),
        (Decimal("1"), "BHD", "1.000"),
        (Decimal("0.5"), "OMR", "0.500"),
        (10, "SAR", "10.00"),
        (Decimal("150.0"), "AED", "150.00"),
        (Decimal("99.999"), "EGP", "100.00"),  # rounded as Tap rounds
        (Decimal("7.25"), "JOD", "7.250"),
    ],
)
def test_amount_is_written_with_the_currency_decimals(amount, currency, text):
    assert tap.format_amount(amount, currency) == text


@pytest.mark.parametrize(
    "amount, currency, minor",
    [
        ("12.345", "KWD", 12345),
        ("1.000", "BHD", 1000),
        ("150.00", "SAR", 15000),
        ("150", "SAR", 15000),
        ("0.1", "SAR", 10),
        ("12.3456", "KWD", None),  # not a whole number of fils
        ("1.005", "SAR", None),
    ],
)
def test_major_units_become_minor_units_exactly(amount, currency, minor):
    assert tap.to_minor(Decimal(amount), currency) == minor


def test_missing_signed_fields_count_as_empty_as_in_tap_sample():
    obj = charge("T-0", charge_id="chg_2")
    del obj["reference"]["gateway"]
    want = independent_hash(
        "chg_2", "150.00", "SAR", "", obj["reference"]["payment"], "CAPTURED",
        obj["transaction"]["created"],
    )  # fmt: skip
    assert tap.hashstring(obj, SECRET) == want


# -- end to end -----------------------------------------------------------------


@pytest.fixture
def tap_api():
    with TapApiStandIn(SECRET) as api:
        yield api


@pytest.fixture
def live_tap(make_service, tap_api):
    return make_service(
        TAP_SECRET_KEY=SECRET, TAP_API_URL=tap_api.url, GATEWAY_API_TIMEOUT=1
    )


def post(live, body, header):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["hashstring"] = header
    return live.client.http.post(
        live.client.url("/payments/tap/webhook"), data=body, headers=headers, timeout=10
    )


def post_charge(live, obj, amount_text=None):
    return post(live, encode(obj), signed(obj, amount_text))


def back(live, tap_id):
    return live.client.http.get(
        live.client.url(f"/payments/tap/return?tap_id={tap_id}"),
        allow_redirects=False,
        timeout=10,
    )


def test_webhook_as_the_docs_show_it_pays_once(live_tap, tap_api, smtp, whatsapp):
    client = live_tap.client
    client.create_order("TP-1")
    obj = charge("TP-1")
    tap_api.charges[obj["id"]] = obj
    # The body as Tap writes it, amounts as plain JSON numbers.
    raw = encode(obj).replace(b'"amount": 150.0', b'"amount": 150.00')
    assert post(live_tap, raw, signed(obj)).json() == {"status": "paid"}
    assert post(live_tap, raw, signed(obj)).json() == {"status": "duplicate"}
    order = client.wait_for_states("TP-1")
    assert order["status"] == "paid" and order["payment_id"] == obj["id"]
    assert tap_api.calls == [f"/v2/charges/{obj['id']}"] * 2
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and len(whatsapp.requests) == 2


def test_kwd_amounts_carry_three_decimals(live_tap, tap_api):
    live_tap.client.create_order("TK-1", amount=12345, currency="KWD")
    obj = charge("TK-1", charge_id="chg_kwd1", amount="12.345", currency="KWD")
    tap_api.charges[obj["id"]] = obj
    assert post_charge(live_tap, obj, "12.345").json() == {"status": "paid"}
    # Signed with two decimals, as a KWD charge is not: refused.
    live_tap.client.create_order("TK-2", amount=1000, currency="KWD")
    other = charge("TK-2", charge_id="chg_kwd2", amount="1", currency="KWD")
    tap_api.charges[other["id"]] = other
    assert post_charge(live_tap, other, "1.00").status_code == 401
    assert post_charge(live_tap, other, "1.000").json() == {"status": "paid"}


def test_sar_amounts_carry_two_decimals(live_tap, tap_api):
    live_tap.client.create_order("TS-1", amount=1999, currency="SAR")
    obj = charge("TS-1", charge_id="chg_sar1", amount="19.99")
    tap_api.charges[obj["id"]] = obj
    assert post_charge(live_tap, obj, "19.990").status_code == 401
    assert post_charge(live_tap, obj, "19.99").json() == {"status": "paid"}


def test_order_named_in_metadata_is_found(live_tap, tap_api):
    live_tap.client.create_order("TM-1")
    obj = charge("TM-1", charge_id="chg_meta", where="metadata")
    tap_api.charges[obj["id"]] = obj
    assert post_charge(live_tap, obj).json() == {"status": "paid"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw.replace(b'"amount": 150.0', b'"amount": 1.0', 1),
        lambda raw: raw.replace(b"CAPTURED", b"CAPTUREd", 1),
        lambda raw: raw.replace(b"chg_TS02A", b"chg_TS02B", 1),
        lambda raw: b"not json",
    ],
)
def test_tampered_body_is_refused(live_tap, tap_api, tamper):
    live_tap.client.create_order("TT-1")
    obj = charge("TT-1")
    tap_api.charges[obj["id"]] = obj
    response = post(live_tap, tamper(encode(obj)), signed(obj))
    assert response.status_code == 401 and set(response.json()) == {"error"}
    assert tap_api.calls == []
    assert live_tap.client.get_order("TT-1")["status"] == "pending"


def test_missing_or_foreign_hashstring_is_refused(live_tap, tap_api):
    live_tap.client.create_order("TT-2")
    obj = charge("TT-2")
    tap_api.charges[obj["id"]] = obj
    assert post(live_tap, encode(obj), None).status_code == 401
    other = hmac.new(b"sk_test_other", b"x", hashlib.sha256).hexdigest()
    assert post(live_tap, encode(obj), other).status_code == 401
    assert tap_api.calls == []
    assert live_tap.client.get_order("TT-2")["status"] == "pending"


def test_the_api_wins_over_the_webhook_body(live_tap, tap_api):
    live_tap.client.create_order("TA-1")
    said = charge("TA-1", charge_id="chg_lie")
    tap_api.charges[said["id"]] = {
        **charge("TA-1", charge_id="chg_lie", status="FAILED")
    }
    assert post_charge(live_tap, said).json() == {"status": "failed"}
    order = live_tap.client.get_order("TA-1")
    assert order["status"] == "failed" and order["notifications"] == []


@pytest.mark.parametrize("status", ["INITIATED", "IN_PROGRESS"])
def test_charges_not_final_are_ignored(live_tap, tap_api, status):
    live_tap.client.create_order("TI-1")
    obj = charge("TI-1", charge_id="chg_wait", status=status)
    tap_api.charges[obj["id"]] = obj
    assert post_charge(live_tap, obj).json() == {"status": "ignored"}
    assert live_tap.client.get_order("TI-1")["status"] == "pending"
    # Captured later: the same charge id now pays.
    tap_api.charges[obj["id"]] = charge("TI-1", charge_id="chg_wait")
    assert post_charge(live_tap, charge("TI-1", charge_id="chg_wait")).json() == {
        "status": "paid"
    }


@pytest.mark.parametrize(
    "change, status",
    [
        ({"amount": "149.99"}, 422),
        ({"currency": "AED"}, 422),
        ({"reference": "nope"}, 404),
        ({"unknown": True}, 404),
    ],
)
def test_bad_callbacks_change_nothing(live_tap, tap_api, change, status):
    client = live_tap.client
    client.create_order("TB-1")
    obj = charge(
        change.get("reference", "TB-1"),
        amount=change.get("amount", "150.00"),
        currency=change.get("currency", "SAR"),
    )
    if not change.get("unknown"):
        tap_api.charges[obj["id"]] = obj
    response = post_charge(live_tap, obj)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert client.get_order("TB-1")["status"] == "pending"
    good = charge("TB-1")
    tap_api.charges[good["id"]] = good
    assert post_charge(live_tap, good).json() == {"status": "paid"}


@pytest.mark.parametrize("fail", ["500", "hang"])
def test_tap_api_failing_answers_502_and_changes_nothing(live_tap, tap_api, fail):
    live_tap.client.create_order("TF-1")
    obj = charge("TF-1", charge_id="chg_fail")
    tap_api.charges[obj["id"]] = obj
    if fail == "500":
        tap_api.fail_with = 500
    else:
        tap_api.hang_seconds = 5
    started = time.monotonic()
    response = post_charge(live_tap, obj)
    assert response.status_code == 502 and set(response.json()) == {"error"}
    assert time.monotonic() - started < 4
    returned = back(live_tap, "chg_fail")
    assert returned.status_code == 502
    assert live_tap.client.get_order("TF-1")["status"] == "pending"
    tap_api.fail_with, tap_api.hang_seconds = None, 0
    assert post_charge(live_tap, obj).json() == {"status": "paid"}


def test_api_refusing_the_key_answers_502(make_service, tap_api):
    other = "sk_test_not_the_stand_ins"
    live = make_service(TAP_SECRET_KEY=other, TAP_API_URL=tap_api.url)
    live.client.create_order("TW-1")
    obj = charge("TW-1", charge_id="chg_key")
    tap_api.charges[obj["id"]] = obj
    raw = encode(obj)
    assert post(live, raw, tap.hashstring(tap.loads(raw), other)).status_code == 502
    assert back(live, "chg_key").status_code == 502
    assert live.client.get_order("TW-1")["status"] == "pending"


def test_unconfigured_tap_answers_503(make_service):
    live = make_service()
    obj = charge("X")
    assert post(live, encode(obj), signed(obj)).status_code == 503
    assert back(live, "chg_x").status_code == 503


# -- the redirect ---------------------------------------------------------------


def test_return_fetches_the_charge_and_pays(live_tap, tap_api, smtp):
    live_tap.client.create_order("TR-1", amount=12345, currency="KWD")
    obj = charge("TR-1", charge_id="chg_ret1", amount="12.345", currency="KWD")
    tap_api.charges[obj["id"]] = obj
    response = back(live_tap, "chg_ret1")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=TR-1")
    assert live_tap.client.wait_for_states("TR-1")["status"] == "paid"
    # Tap's webhook for the same charge afterwards sends nothing new.
    assert post_charge(live_tap, obj, "12.345").json() == {"status": "duplicate"}
    assert tap_api.calls == ["/v2/charges/chg_ret1"] * 2


@pytest.mark.parametrize(
    "status, target, state",
    [
        ("DECLINED", "/payment-failed?order=TR-2", "failed"),
        ("INITIATED", "/payment-failed?order=TR-2", "pending"),
    ],
)
def test_return_of_an_unpaid_charge(live_tap, tap_api, status, target, state):
    live_tap.client.create_order("TR-2")
    obj = charge("TR-2", charge_id="chg_ret2", status=status)
    tap_api.charges[obj["id"]] = obj
    response = back(live_tap, "chg_ret2")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(target)
    assert live_tap.client.get_order("TR-2")["status"] == state


@pytest.mark.parametrize(
    "tap_id, status",
    [
        ("chg_unknown", 404),
        ("chg_noorder", 404),
        ("src_card", 400),
        ("chg_x/../y", 400),
        ("", 400),
    ],
)
def test_return_errors(live_tap, tap_api, tap_id, status):
    live_tap.client.create_order("TR-3")
    tap_api.charges["chg_noorder"] = charge(None, charge_id="chg_noorder")
    response = back(live_tap, tap_id)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert live_tap.client.get_order("TR-3")["status"] == "pending"


def race(live, obj):
    """The webhook and the redirect of one charge, released together."""
    return racing.race(
        lambda: post_charge(live, obj).json()["status"],
        lambda: back(live, obj["id"]),
    )


def test_webhook_racing_the_return_sends_one_set(live_tap, tap_api, smtp, whatsapp):
    for n in range(4):
        reference = f"TRACE-{n}"
        live_tap.client.create_order(reference)
        obj = charge(reference, charge_id=f"chg_race{n}")
        tap_api.charges[obj["id"]] = obj
        answers = race(live_tap, obj)
        assert answers["webhook"] in ("paid", "duplicate")
        location = answers["return"].headers["Location"]
        assert answers["return"].status_code == 303
        assert location.endswith(f"/paid?order={reference}")
        live_tap.client.wait_for_states(reference)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and len(whatsapp.requests) == 8


# -- simulate -------------------------------------------------------------------


@pytest.mark.parametrize("failed, answer", [(False, "paid"), (True, "failed")])
def test_simulated_webhook_is_accepted(live_tap, tap_api, failed, answer):
    order = live_tap.client.create_order("TSIM-1", amount=12345, currency="KWD")
    sim = tap.simulate(order, failed, live_tap.settings, time.time())
    assert (sim.method, sim.route) == ("POST", "webhook")
    body = json.loads(sim.body)
    assert '"amount": 12.345' in sim.body.decode()
    want = independent_hash(
        body["id"], "12.345", "KWD", body["reference"]["gateway"],
        body["reference"]["payment"], body["status"], body["transaction"]["created"],
    )  # fmt: skip
    assert sim.headers["hashstring"] == want
    tap_api.charges[body["id"]] = tap.loads(sim.body)  # what Tap would hold
    response = post(live_tap, sim.body, sim.headers["hashstring"])
    assert response.json() == {"status": answer}
