"""Paymob callbacks as Paymob sends them, verified as its docs describe."""

import hashlib
import hmac
import json
import time

import pytest

from notifier.errors import NotifierError, RequestError
from notifier.gateways import paymob
from notifier.settings import Settings
from tests import racing

SECRET = "paymob-test-hmac-secret"

# The sample of "HMAC Transaction Callback" (developers.paymob.com,
# webhook-callbacks-and-hmac/hmac/hmac-transaction-callback): the fields of
# its sample processed callback and the concatenated string it publishes.
# (Its HMAC sample cannot be checked: the secret behind it is not published.)
PUBLISHED_CONCATENATION = (
    "1000002024-06-13T11:33:44.592345EGPfalsefalse1920364654097558truefalse"
    "falsefalsetruefalse217503754302852false2346MasterCardcardtrue"
)


def sample_obj(**changes):
    """The docs' sample transaction (the signed fields, and some others)."""
    obj = {
        "id": 192036465,
        "pending": False,
        "amount_cents": 100000,
        "success": True,
        "is_auth": False,
        "is_capture": False,
        "is_standalone_payment": True,
        "is_voided": False,
        "is_refunded": False,
        "is_3d_secure": True,
        "integration_id": 4097558,
        "profile_id": 302852,
        "has_parent_transaction": False,
        "order": {
            "id": 217503754,
            "created_at": "2024-06-13T11:32:09.628623",
            "merchant_order_id": "not signed",
            "amount_cents": 100000,
            "currency": "EGP",
        },
        "created_at": "2024-06-13T11:33:44.592345",
        "currency": "EGP",
        "source_data": {"pan": "2346", "type": "card", "sub_type": "MasterCard"},
        "error_occured": False,
        "owner": 302852,
        "data": {"message": "Approved", "txn_response_code": "APPROVED"},
    }
    order = changes.pop("order_id", None)
    if order is not None:
        obj["order"]["id"] = order
    obj.update(changes)
    return obj


def flattened(obj, order_key="order", source_sep="."):
    """The response callback's query for `obj`, as Paymob flattens it."""
    query = {}
    for field in paymob.TRANSACTION_FIELDS:
        value = paymob._path(obj, field)
        key = field
        if field == "order.id":
            key = order_key
        elif field.startswith("source_data."):
            key = field.replace(".", source_sep)
        query[key] = paymob.render(value)
    query["merchant_order_id"] = "not signed"
    query["data.message"] = obj["data"]["message"]
    return query


# -- the HMAC itself ------------------------------------------------------


def test_the_published_sample_concatenates_as_documented():
    assert paymob.processed_message(sample_obj()) == PUBLISHED_CONCATENATION
    # The response callback carries the same values flattened; the order id
    # is `order` in what Paymob sends and `order_id` in the current docs.
    for order_key in ("order", "order_id"):
        for sep in (".", "_"):
            query = flattened(sample_obj(), order_key, sep)
            assert paymob.response_message(query) == PUBLISHED_CONCATENATION


def test_signature_is_lower_hex_hmac_sha512_of_the_concatenation():
    digest = paymob.sign(PUBLISHED_CONCATENATION, SECRET)
    expected = hmac.new(
        SECRET.encode(), PUBLISHED_CONCATENATION.encode(), hashlib.sha512
    ).hexdigest()
    assert digest == expected and len(digest) == 128 and digest == digest.lower()
    paymob.verify(PUBLISHED_CONCATENATION, digest, SECRET)
    paymob.verify(PUBLISHED_CONCATENATION, digest.upper(), SECRET)


@pytest.mark.parametrize(
    "offered",
    [None, "", "abc", "g" * 128, "0" * 128, "0" * 127, "é" * 128, "0" * 129],
)
def test_missing_or_malformed_hmac_is_401(offered):
    with pytest.raises(RequestError) as caught:
        paymob.verify(PUBLISHED_CONCATENATION, offered, SECRET)
    assert caught.value.status == 401


def test_nulls_and_missing_fields_concatenate_as_empty():
    obj = sample_obj(source_data={"pan": None, "type": "wallet"})
    message = paymob.processed_message(obj)
    assert message.endswith("302852falsewallettrue")


def test_configured():
    assert not paymob.configured(Settings.from_env({}))
    assert paymob.configured(Settings.from_env({"PAYMOB_HMAC_SECRET": SECRET}))


# -- end to end -------------------------------------------------------------


@pytest.fixture
def live_paymob(make_service):
    return make_service(PAYMOB_HMAC_SECRET=SECRET)


def order_obj(gateway_order_id, txn_id=5001, amount=15000, currency="SAR", **changes):
    return sample_obj(
        id=txn_id,
        amount_cents=amount,
        currency=currency,
        order_id=int(gateway_order_id),
        **changes,
    )


def post(live, obj, digest=None, kind="TRANSACTION", body=None, secret=SECRET):
    if digest is None:
        digest = paymob.sign(paymob.processed_message(obj), secret)
    raw = body if body is not None else json.dumps({"type": kind, "obj": obj})
    params = {} if digest is False else {"hmac": digest}
    return live.client.http.post(
        live.client.url("/payments/paymob/webhook"),
        params=params,
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def back(live, obj=None, query=None, digest=None, secret=SECRET):
    query = dict(query if query is not None else flattened(obj))
    if digest is None:
        digest = paymob.sign(paymob.response_message(query), secret)
    if digest is not False:
        query["hmac"] = digest
    return live.client.http.get(
        live.client.url("/payments/paymob/return"),
        params=query,
        allow_redirects=False,
        timeout=10,
    )


def test_processed_callback_pays_once(live_paymob, smtp, whatsapp):
    client = live_paymob.client
    client.create_order("PM-1", gateway_order_id="700001")
    obj = order_obj("700001")
    assert post(live_paymob, obj).json() == {"status": "paid"}
    assert post(live_paymob, obj).json() == {"status": "duplicate"}  # replay
    order = client.wait_for_states("PM-1")
    assert order["status"] == "paid" and order["payment_id"] == "5001"
    # Paymob retries, and a second successful transaction of the same order.
    again = order_obj("700001", txn_id=5002)
    assert post(live_paymob, again).json() == {"status": "duplicate"}
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and len(whatsapp.requests) == 2


def test_response_callback_pays_and_redirects(live_paymob, smtp):
    client = live_paymob.client
    client.create_order("PM-2", gateway_order_id="700002")
    obj = order_obj("700002", txn_id=5003)
    response = back(live_paymob, obj)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/paid?order=PM-2")
    assert client.wait_for_states("PM-2")["status"] == "paid"
    # The processed callback of the same transaction comes after.
    assert post(live_paymob, obj).json() == {"status": "duplicate"}
    again = back(live_paymob, obj)
    assert again.headers["Location"].endswith("/paid?order=PM-2")
    time.sleep(0.3)
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("order_key, sep", [("order_id", "."), ("order", "_")])
def test_response_callback_spellings_of_the_docs_are_accepted(
    live_paymob, order_key, sep
):
    live_paymob.client.create_order("PM-3", gateway_order_id="700003")
    query = flattened(order_obj("700003", txn_id=5004), order_key, sep)
    response = back(live_paymob, query=query)
    assert response.headers["Location"].endswith("/paid?order=PM-3")
    assert live_paymob.client.get_order("PM-3")["status"] == "paid"


def race(live, reference, gateway_order_id, txn_id):
    obj = order_obj(gateway_order_id, txn_id=txn_id)
    return racing.race(
        lambda: post(live, obj).json()["status"],
        lambda: back(live, obj),
    )


def test_webhook_racing_the_return_sends_one_set(live_paymob, smtp, whatsapp):
    for n in range(4):
        reference, gateway_order_id = f"PMR-{n}", f"71000{n}"
        live_paymob.client.create_order(reference, gateway_order_id=gateway_order_id)
        answers = race(live_paymob, reference, gateway_order_id, 6000 + n)
        assert answers["webhook"] in ("paid", "duplicate")
        assert answers["return"].status_code == 303
        location = answers["return"].headers["Location"]
        assert location.endswith(f"/paid?order={reference}")
        live_paymob.client.wait_for_states(reference)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and len(whatsapp.requests) == 8


def test_failed_transaction_fails_the_order_and_sends_nothing(live_paymob, smtp):
    client = live_paymob.client
    client.create_order("PM-4", gateway_order_id="700004")
    declined = order_obj("700004", txn_id=5005, success=False)
    assert post(live_paymob, declined).json() == {"status": "failed"}
    order = client.get_order("PM-4")
    assert order["status"] == "failed" and order["notifications"] == []
    client.create_order("PM-5", gateway_order_id="700005")
    response = back(live_paymob, order_obj("700005", txn_id=5006, success=False))
    assert response.headers["Location"].endswith("/payment-failed?order=PM-5")
    assert client.get_order("PM-5")["status"] == "failed"
    time.sleep(0.2)
    assert smtp.messages == []


@pytest.mark.parametrize(
    "changes",
    [
        {"pending": True, "success": False},
        {"is_refunded": True},
        {"is_voided": True},
        {"has_parent_transaction": True},  # e.g. a refund transaction
        {"is_auth": True},  # an authorization takes no money yet
    ],
)
def test_pending_and_follow_up_transactions_are_ignored(live_paymob, changes):
    client = live_paymob.client
    client.create_order("PM-6", gateway_order_id="700006")
    obj = order_obj("700006", txn_id=5007, **changes)
    response = post(live_paymob, obj)
    assert response.status_code == 200 and response.json() == {"status": "ignored"}
    returned = back(live_paymob, obj)
    assert returned.headers["Location"].endswith("/payment-failed?order=PM-6")
    assert client.get_order("PM-6")["status"] == "pending"
    # The final callback of the same transaction still counts.
    assert post(live_paymob, order_obj("700006", txn_id=5007)).json() == {
        "status": "paid"
    }


def tampered(live):
    obj = order_obj("700007")
    digest = paymob.sign(paymob.processed_message(obj), SECRET)
    return post(live, order_obj("700007", amount=1), digest)


@pytest.mark.parametrize(
    "send, status",
    [
        (tampered, 401),
        (lambda live: post(live, order_obj("700007"), digest=False), 401),
        (lambda live: post(live, order_obj("700007"), digest="zz" * 64), 401),
        (lambda live: post(live, order_obj("700007"), digest="ab" * 32), 401),
        (lambda live: post(live, order_obj("700007"), secret="wrong"), 401),
        (lambda live: post(live, order_obj("700007", amount=14999)), 422),
        (lambda live: post(live, order_obj("700007", currency="EGP")), 422),
        (lambda live: post(live, order_obj("799999")), 404),
        (lambda live: post(live, None, digest="ab" * 64, body="{not json"), 400),
        (lambda live: post(live, order_obj("700007"), kind="OTHER"), 400),
        (lambda live: back(live, order_obj("700007", amount=1), digest="0" * 128), 401),
        (lambda live: back(live, order_obj("700007"), digest=False), 401),
        (lambda live: back(live, order_obj("700007", amount=14999)), 422),
        (lambda live: back(live, order_obj("799999")), 404),
    ],
)
def test_bad_callbacks_change_nothing(live_paymob, smtp, send, status):
    client = live_paymob.client
    client.create_order("PM-7", gateway_order_id="700007")
    response = send(live_paymob)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert client.get_order("PM-7")["status"] == "pending"
    assert post(live_paymob, order_obj("700007")).json() == {"status": "paid"}


def test_response_callback_with_a_tampered_field_is_refused(live_paymob):
    live_paymob.client.create_order("PM-8", gateway_order_id="700008")
    query = flattened(order_obj("700008", success=False))
    digest = paymob.sign(paymob.response_message(query), SECRET)
    query["success"] = "true"
    response = back(live_paymob, query=query, digest=digest)
    assert response.status_code == 401
    # Two different spellings of the order id are not a choice to make.
    query = flattened(order_obj("700008"))
    query["order_id"] = "799999"
    assert back(live_paymob, query=query, digest="0" * 128).status_code == 400
    assert live_paymob.client.get_order("PM-8")["status"] == "pending"


def test_card_token_callback_is_verified_then_ignored(live_paymob):
    token = {
        "id": 1,
        "token": "tok_abc",
        "masked_pan": "xxxx-xxxx-xxxx-2346",
        "merchant_id": 302852,
        "card_subtype": "MasterCard",
        "created_at": "2024-06-13T11:33:44.592345",
        "email": "laila@example.com",
        "order_id": "217503754",
    }
    digest = paymob.sign(paymob.processed_message(token, paymob.TOKEN_FIELDS), SECRET)
    answer = post(live_paymob, token, digest=digest, kind="TOKEN")
    assert answer.json() == {"status": "ignored"}
    bad = post(live_paymob, token, digest="0" * 128, kind="TOKEN")
    assert bad.status_code == 401


def test_simulated_callbacks_are_accepted(live_paymob, smtp):
    client = live_paymob.client
    order = client.create_order("PM-9", gateway_order_id="700009")
    settings = live_paymob.settings
    for failed, status in ((True, "failed"), (False, "paid")):
        call = paymob.simulate(order, failed, settings, time.time() + failed)
        assert (call.method, call.route) == ("POST", "webhook")
        response = client.http.post(
            client.url("/payments/paymob/webhook"),
            params=call.query,
            data=call.body,
            headers=call.headers,
            timeout=10,
        )
        assert response.json() == {"status": status}
    assert client.wait_for_states("PM-9")["status"] == "paid"


def test_simulate_needs_the_gateway_order_id():
    order = {"reference": "PM-X", "amount": 100, "currency": "EGP"}
    with pytest.raises(NotifierError, match="gateway_order_id"):
        paymob.simulate(order, False, None, time.time())


def test_a_verified_callback_without_success_is_malformed(live_paymob):
    live_paymob.client.create_order("PM-11", gateway_order_id="700011")
    obj = order_obj("700011")
    del obj["success"]
    response = post(live_paymob, obj)
    assert response.status_code == 400 and "success" in response.json()["error"]
    assert live_paymob.client.get_order("PM-11")["status"] == "pending"


def test_unconfigured_paymob_answers_503(make_service):
    live = make_service()
    obj = order_obj("700010")
    assert post(live, obj).status_code == 503
    answer = back(live, obj)
    assert answer.status_code == 503 and "paymob" in answer.json()["error"]
