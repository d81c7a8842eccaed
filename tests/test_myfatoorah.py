"""MyFatoorah callbacks as MyFatoorah sends them: Webhook V2
(PAYMENT_STATUS_CHANGED, `MyFatoorah-Signature`) and the callback URL
`?paymentId=...` checked with GetPaymentStatus on a loopback stand-in."""

import json
import time
from decimal import Decimal

import pytest

from notifier.errors import RequestError
from notifier.gateways import ADAPTERS
from notifier.gateways import myfatoorah as mf
from notifier.settings import Settings
from tests import racing
from tests.fakes.myfatoorah_api import MyFatoorahApiStandIn

SECRET = "mf-webhook-secret"
API_KEY = "mf-test-api-key"


# -- the signature ---------------------------------------------------------------

EXAMPLE_DATA = {
    "Invoice": {"Id": "6389662", "Status": "PAID", "ExternalIdentifier": "ORDER-12345"},
    "Transaction": {"Status": "SUCCESS", "PaymentId": "07076389662123456789"},
    "Amount": {"BaseCurrency": "QAR", "ValueInBaseCurrency": "150.00"},
}
DOCUMENTED_TEXT = (
    "Invoice.Id=6389662,Invoice.Status=PAID,Transaction.Status=SUCCESS,"
    "Transaction.PaymentId=07076389662123456789,"
    "Invoice.ExternalIdentifier=ORDER-12345"
)
# Computed outside Python: printf '<text>' | openssl dgst -sha256 -hmac
# mf-webhook-secret -binary | base64
DOCUMENTED_SIGNATURE = "w+kG+1Hcc75HLcGDJOGEO6ZWFCYmWpwA5NrAiSrdOMA="
SORTED_SIGNATURE = "aVF7TvybnoAb6rAn5d9f5dB5Q+NNsJM+kCqi0m7omRA="


def test_signed_text_is_the_documented_five_fields_in_order():
    assert mf.signed_texts(EXAMPLE_DATA)[0] == DOCUMENTED_TEXT
    assert mf.sign(EXAMPLE_DATA, SECRET) == DOCUMENTED_SIGNATURE


def test_both_the_documented_order_and_the_sorted_order_verify():
    mf.verify(EXAMPLE_DATA, DOCUMENTED_SIGNATURE, SECRET)
    mf.verify(EXAMPLE_DATA, SORTED_SIGNATURE, SECRET)
    for bad in ("", "x", DOCUMENTED_SIGNATURE[:-2], "é" * 44):
        with pytest.raises(RequestError) as caught:
            mf.verify(EXAMPLE_DATA, bad, SECRET)
        assert caught.value.status == 401
    with pytest.raises(RequestError):
        mf.verify(EXAMPLE_DATA, DOCUMENTED_SIGNATURE, "another-secret")


def test_nulls_are_empty_and_numbers_are_rendered_as_written():
    data = {
        "Invoice": {"Id": 6389662, "Status": "PAID", "ExternalIdentifier": None},
        "Transaction": {"Status": "SUCCESS"},
    }
    assert mf.signed_texts(data)[0] == (
        "Invoice.Id=6389662,Invoice.Status=PAID,Transaction.Status=SUCCESS,"
        "Transaction.PaymentId=,Invoice.ExternalIdentifier="
    )


@pytest.mark.parametrize(
    "value, currency, minor",
    [
        ("1.250", "KWD", 1250),
        (Decimal("1.25"), "KWD", 1250),
        ("0.005", "KWD", 5),
        ("150.00", "SAR", 15000),
        (150, "SAR", 15000),
        ("7", "JPY", 7),
    ],
)
def test_amounts_convert_to_minor_units_exactly(value, currency, minor):
    assert mf.to_minor(value, currency) == minor


@pytest.mark.parametrize(
    "value, currency",
    [
        ("1.2505", "KWD"),
        ("1.005", "SAR"),
        ("-1", "SAR"),
        ("NaN", "SAR"),
        ("x", "SAR"),
        (1.25, "KWD"),
        (True, "SAR"),
        ("1e400", "SAR"),
    ],
)
def test_unreadable_amounts_are_refused(value, currency):
    with pytest.raises(RequestError) as caught:
        mf.to_minor(value, currency)
    assert caught.value.status == 400


# -- end to end ------------------------------------------------------------------


def data_for(
    reference, amount=15000, currency="SAR", payment_id="0707100", failed=False
):
    return mf.event_data(
        reference,
        amount,
        currency,
        payment_id=payment_id,
        invoice_id=6389662,
        failed=failed,
    )


@pytest.fixture
def mf_api():
    with MyFatoorahApiStandIn(API_KEY) as api:
        yield api


@pytest.fixture
def live_mf(make_service, mf_api):
    """Webhooks only: without an API key the signed data decides."""
    return make_service(
        MYFATOORAH_WEBHOOK_SECRET=SECRET,
        MYFATOORAH_API_URL=mf_api.url,
        GATEWAY_API_TIMEOUT=1,
    )


@pytest.fixture
def live_mf_api(make_service, mf_api):
    """With the API key: returns, and webhooks confirmed with GetPaymentStatus."""
    return make_service(
        MYFATOORAH_WEBHOOK_SECRET=SECRET,
        MYFATOORAH_API_KEY=API_KEY,
        MYFATOORAH_API_URL=mf_api.url,
        GATEWAY_API_TIMEOUT=1,
    )


def post(live, data, secret=SECRET, body=None, header=None, headers=None):
    raw = body if body is not None else json.dumps(mf.event(data)).encode()
    sent = {"Content-Type": "application/json"}
    if headers is not None:
        sent.update(headers)
    else:
        sent[mf.HEADER] = header or mf.sign(data, secret)
    return live.client.http.post(
        live.client.url("/payments/myfatoorah/webhook"),
        data=raw,
        headers=sent,
        timeout=10,
    )


def test_adapter_is_registered():
    assert ADAPTERS["myfatoorah"] is mf
    assert not mf.configured(Settings())
    assert mf.configured(Settings(myfatoorah_webhook_secret="s"))


def test_payment_status_changed_pays_the_order_once(live_mf, smtp, whatsapp):
    client = live_mf.client
    client.create_order("MF-1")
    data = data_for("MF-1")
    assert post(live_mf, data).json() == {"status": "paid"}
    assert post(live_mf, data).json() == {"status": "duplicate"}  # a retry
    order = client.wait_for_states("MF-1")
    assert order["status"] == "paid" and order["payment_id"] == "0707100"
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and len(whatsapp.requests) == 2


def test_kwd_three_decimal_amounts(live_mf):
    client = live_mf.client
    client.create_order("MF-KW1", amount=1250, currency="KWD")
    client.create_order("MF-KW2", amount=1250, currency="KWD")
    assert post(live_mf, data_for("MF-KW1", 1250, "KWD")).json() == {"status": "paid"}
    # The same amount as a JSON number, as some senders write it.
    data = data_for("MF-KW2", 1250, "KWD", payment_id="0707200")
    event = mf.event(data)
    body = json.dumps(event).replace('"1.250"', "1.250").encode()
    assert b"1.250," in body or b"1.250}" in body
    assert post(live_mf, data, body=body).json() == {"status": "paid"}
    # More decimals than KWD has is malformed, not rounded.
    client.create_order("MF-KW3", amount=1250, currency="KWD")
    bad = data_for("MF-KW3", 1250, "KWD", payment_id="0707300")
    bad["Amount"]["ValueInDisplayCurrency"] = "1.2501"
    assert post(live_mf, bad).status_code == 400
    assert client.get_order("MF-KW3")["status"] == "pending"


TAMPERED = [
    (("Invoice", "ExternalIdentifier"), "MF-OTHER"),
    (("Invoice", "Id"), "6389663"),
    (("Transaction", "Status"), "FAILED"),
    (("Transaction", "PaymentId"), "0707999"),
]


def test_a_tampered_signed_field_or_a_bad_header_is_refused(live_mf):
    client = live_mf.client
    client.create_order("MF-2")
    client.create_order("MF-OTHER")
    for (obj, name), value in TAMPERED:
        data = data_for("MF-2")
        header = mf.sign(data, SECRET)
        data[obj][name] = value
        response = post(live_mf, data, header=header)
        assert response.status_code == 401, (obj, name)
        assert set(response.json()) == {"error"}
    bad_headers = [
        {},
        {mf.HEADER: ""},
        {mf.HEADER: "not-a-signature"},
        {mf.HEADER: "A" * 600},
        {mf.HEADER: mf.sign(data_for("MF-2"), "wrong-secret")},
    ]
    for headers in bad_headers:
        response = post(live_mf, data_for("MF-2"), headers=headers)
        assert response.status_code == 401, headers
    assert client.get_order("MF-2")["status"] == "pending"
    assert client.get_order("MF-OTHER")["status"] == "pending"
    # The untouched event still pays: nothing above was recorded.
    assert post(live_mf, data_for("MF-2")).json() == {"status": "paid"}


def test_bad_payments_change_nothing(live_mf):
    client = live_mf.client
    client.create_order("MF-5")
    cases = [
        (data_for("MF-5", amount=15001), 422),
        (data_for("MF-5", amount=15000, currency="KWD"), 422),
        (data_for("MF-NOPE"), 404),
    ]
    for data, status in cases:
        response = post(live_mf, data)
        assert response.status_code == status
        assert set(response.json()) == {"error"}
        assert client.get_order("MF-5")["status"] == "pending"
    # Refused events are not recorded: the right one for the same payment pays.
    assert post(live_mf, data_for("MF-5")).json() == {"status": "paid"}


def test_failed_payment_fails_the_order_and_sends_nothing(live_mf, smtp):
    client = live_mf.client
    client.create_order("MF-6")
    failed = data_for("MF-6", payment_id="0707601", failed=True)
    assert post(live_mf, failed).json() == {"status": "failed"}
    order = client.get_order("MF-6")
    assert order["status"] == "failed" and order["notifications"] == []
    # The customer tries again on the same invoice and pays.
    assert post(live_mf, data_for("MF-6", payment_id="0707602")).json() == {
        "status": "paid"
    }
    assert client.wait_for_states("MF-6")["status"] == "paid"


def test_other_statuses_and_events_are_ignored(live_mf):
    live_mf.client.create_order("MF-7")
    for status in ("AUTHORIZE", "PENDING", "INPROGRESS"):
        data = data_for("MF-7")
        data["Transaction"]["Status"] = status
        assert post(live_mf, data).json() == {"status": "ignored"}
    assert live_mf.client.get_order("MF-7")["status"] == "pending"
    body = json.dumps(
        {"Event": {"Code": 2, "Name": "REFUND_STATUS_CHANGED"}, "Data": {}}
    ).encode()
    response = post(live_mf, None, body=body, header="x")
    assert response.json() == {"status": "ignored"}


def test_malformed_bodies(live_mf):
    v1 = {"EventType": 1, "Event": "TransactionsStatusChanged", "Data": {}}
    bodies = [
        b"not json",
        b"[]",
        b'{"Event": {"Code": 1}, "Data": NaN}',
        json.dumps(v1).encode(),
        b"\xff",
    ]
    for body in bodies:
        response = post(live_mf, None, body=body, header="x")
        assert response.status_code == 400, body
        assert set(response.json()) == {"error"}


def test_unconfigured_gateway_answers_503(make_service):
    live = make_service()
    data = data_for("X")
    response = post(live, data)
    assert response.status_code == 503 and "myfatoorah" in response.json()["error"]
    back = live.client.http.get(
        live.client.url("/payments/myfatoorah/return?paymentId=1"),
        allow_redirects=False,
        timeout=10,
    )
    assert back.status_code == 503


def test_simulate_builds_a_webhook_the_service_accepts(live_mf):
    order = live_mf.client.create_order("MF-SIM", amount=2500, currency="KWD")
    settings = live_mf.settings
    sim = mf.simulate(order, False, settings, time.time())
    assert sim.method == "POST" and sim.route == "webhook"
    response = live_mf.client.http.post(
        live_mf.client.url("/payments/myfatoorah/webhook"),
        data=sim.body,
        headers=sim.headers,
        timeout=10,
    )
    assert response.json() == {"status": "paid"}
    order = live_mf.client.create_order("MF-SIMF")
    sim = mf.simulate(order, True, settings, time.time() + 1)
    response = live_mf.client.http.post(
        live_mf.client.url("/payments/myfatoorah/webhook"),
        data=sim.body,
        headers=sim.headers,
        timeout=10,
    )
    assert response.json() == {"status": "failed"}


# -- the callback URL -------------------------------------------------------------


def payment_status(
    reference,
    payment_id,
    amount="150.000",
    display="150.000 SR",
    status="Succss",
    invoice_status="Paid",
):
    """GetPaymentStatus's `Data`, shaped as MyFatoorah's inquiry answers it."""
    return {
        "InvoiceId": 6389662,
        "InvoiceStatus": invoice_status,
        "InvoiceReference": "2025000197",
        "CustomerReference": reference,
        "CreatedDate": "2025-06-17T19:04:33.37",
        "ExpiryDate": "June 20, 2025",
        "InvoiceValue": Decimal(amount),
        "Comments": None,
        "CustomerName": "Customer",
        "CustomerMobile": "+965",
        "CustomerEmail": None,
        "UserDefinedField": None,
        "InvoiceDisplayValue": display,
        "InvoiceItems": [],
        "InvoiceTransactions": [
            {
                "TransactionDate": "2025-06-17T19:07:05.15",
                "PaymentGateway": "KNET",
                "ReferenceId": payment_id,
                "TrackId": "17-06-2025_2793316",
                "TransactionId": "125800000024",
                "PaymentId": payment_id,
                "AuthorizationId": "B12345",
                "TransactionStatus": status,
                "TransationValue": amount,
                "CustomerServiceCharge": "0.000",
                "DueValue": amount,
                "PaidCurrency": "SR",
                "PaidCurrencyValue": amount,
                "Currency": "SR",
                "Error": None,
                "CardNumber": None,
                "ErrorCode": "",
            }
        ],
    }


def browser_return(live, payment_id):
    return live.client.http.get(
        live.client.url(f"/payments/myfatoorah/return?paymentId={payment_id}"),
        allow_redirects=False,
        timeout=10,
    )


def test_return_fetches_the_payment_and_pays(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-1")
    mf_api.payments["0707501"] = payment_status("MR-1", "0707501")
    response = browser_return(live_mf_api, "0707501")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=MR-1")
    assert live_mf_api.client.wait_for_states("MR-1")["status"] == "paid"
    assert mf_api.calls == [
        ("/v2/getPaymentStatus", {"Key": "0707501", "KeyType": "PaymentId"})
    ]
    # The webhook of the same payment comes after: nothing new.
    assert post(live_mf_api, data_for("MR-1", payment_id="0707501")).json() == {
        "status": "duplicate"
    }


def test_return_in_kwd_reads_the_display_value(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-KW", amount=1250, currency="KWD")
    mf_api.payments["0707502"] = payment_status(
        "MR-KW", "0707502", amount="1.250", display="1.250 KD"
    )
    response = browser_return(live_mf_api, "0707502")
    assert response.headers["Location"].endswith("/paid?order=MR-KW")
    assert live_mf_api.client.get_order("MR-KW")["status"] == "paid"


def test_return_of_a_failed_payment(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-2")
    mf_api.payments["0707503"] = payment_status(
        "MR-2", "0707503", status="Failed", invoice_status="Pending"
    )
    response = browser_return(live_mf_api, "0707503")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/payment-failed?order=MR-2")
    order = live_mf_api.client.get_order("MR-2")
    assert order["status"] == "failed" and order["notifications"] == []


def test_return_of_a_payment_in_progress_changes_nothing(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-3")
    mf_api.payments["0707504"] = payment_status(
        "MR-3", "0707504", status="InProgress", invoice_status="Pending"
    )
    response = browser_return(live_mf_api, "0707504")
    assert response.headers["Location"].endswith("/payment-failed?order=MR-3")
    assert live_mf_api.client.get_order("MR-3")["status"] == "pending"


RETURN_ERRORS = [
    ("0707999", None, 0, 404),  # MyFatoorah knows no such payment
    ("0707505", 500, 0, 502),
    ("0707505", 503, 0, 502),
    ("0707505", None, 1.5, 502),  # past GATEWAY_API_TIMEOUT=1
    ("07/../x", None, 0, 400),
    ("", None, 0, 400),
]


def test_return_errors_change_nothing(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-4")
    mf_api.payments["0707505"] = payment_status("MR-4", "0707505")
    for payment_id, fail_with, hang, status in RETURN_ERRORS:
        mf_api.fail_with = fail_with
        mf_api.hang = hang
        started = time.monotonic()
        response = browser_return(live_mf_api, payment_id)
        assert response.status_code == status, (payment_id, fail_with, hang)
        assert set(response.json()) == {"error"}
        if hang:
            assert time.monotonic() - started < hang + 1
        assert live_mf_api.client.get_order("MR-4")["status"] == "pending"
    mf_api.fail_with = None
    mf_api.hang = 0
    # Once MyFatoorah answers again, the same return pays.
    assert browser_return(live_mf_api, "0707505").status_code == 303
    assert live_mf_api.client.get_order("MR-4")["status"] == "paid"


def test_return_with_a_wrong_amount_is_refused(live_mf_api, mf_api):
    live_mf_api.client.create_order("MR-5")
    mf_api.payments["0707506"] = payment_status(
        "MR-5", "0707506", amount="1.000", display="1.000 SR"
    )
    assert browser_return(live_mf_api, "0707506").status_code == 422
    assert live_mf_api.client.get_order("MR-5")["status"] == "pending"


def test_return_with_a_wrong_api_key_is_a_gateway_failure(make_service, mf_api):
    live = make_service(
        MYFATOORAH_WEBHOOK_SECRET=SECRET,
        MYFATOORAH_API_KEY="wrong-key",
        MYFATOORAH_API_URL=mf_api.url,
    )
    mf_api.payments["0707507"] = payment_status("MR-6", "0707507")
    assert browser_return(live, "0707507").status_code == 502


def test_return_without_an_api_key_answers_503(make_service, mf_api):
    live = make_service(MYFATOORAH_WEBHOOK_SECRET=SECRET, MYFATOORAH_API_URL=mf_api.url)
    response = browser_return(live, "0707508")
    assert response.status_code == 503
    assert "MYFATOORAH_API_KEY" in response.json()["error"]
    assert mf_api.calls == []


def race(live, reference, payment_id):
    """The webhook and the browser return of one payment, released together."""
    return racing.race(
        lambda: post(live, data_for(reference, payment_id=payment_id)),
        lambda: browser_return(live, payment_id),
    )


def test_webhook_racing_the_return_sends_one_set(live_mf_api, mf_api, smtp, whatsapp):
    for n in range(4):
        reference = f"MF-RACE-{n}"
        payment_id = f"07078{n}"
        live_mf_api.client.create_order(reference)
        mf_api.payments[payment_id] = payment_status(reference, payment_id)
        answers = race(live_mf_api, reference, payment_id)
        assert answers["webhook"].json()["status"] in ("paid", "duplicate")
        assert answers["return"].status_code == 303
        assert answers["return"].headers["Location"].endswith(f"?order={reference}")
        live_mf_api.client.wait_for_states(reference)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and len(whatsapp.requests) == 8


def test_with_the_api_key_the_webhook_amount_comes_from_myfatoorah(live_mf_api, mf_api):
    # The Amount object is not signed: a delivery whose Amount was rewritten
    # to match the order still pays only what MyFatoorah says was paid.
    live_mf_api.client.create_order("MC-1")
    data = data_for("MC-1", payment_id="0707601")
    mf_api.payments["0707601"] = payment_status(
        "MC-1", "0707601", amount="1.000", display="1.000 SR"
    )
    response = post(live_mf_api, data)
    assert response.status_code == 422
    assert live_mf_api.client.get_order("MC-1")["status"] == "pending"
    mf_api.payments["0707601"] = payment_status("MC-1", "0707601")
    assert post(live_mf_api, data).json() == {"status": "paid"}


def test_with_the_api_key_a_webhook_myfatoorah_denies_pays_nothing(live_mf_api, mf_api):
    live_mf_api.client.create_order("MC-2")
    mf_api.payments["0707602"] = payment_status(
        "MC-2", "0707602", status="Failed", invoice_status="Pending"
    )
    answer = post(live_mf_api, data_for("MC-2", payment_id="0707602"))
    assert answer.json() == {"status": "failed"}
    assert live_mf_api.client.get_order("MC-2")["status"] == "failed"


def test_a_signed_success_on_an_unpaid_invoice_is_ignored(live_mf):
    live_mf.client.create_order("MC-3")
    data = data_for("MC-3", payment_id="0707603")
    data["Invoice"]["Status"] = "PENDING"
    assert post(live_mf, data).json() == {"status": "ignored"}
    assert live_mf.client.get_order("MC-3")["status"] == "pending"
