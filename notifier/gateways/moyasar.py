"""Moyasar (Saudi Arabia): webhooks with a `secret_token`, and the payment
callback redirect. Neither is trusted for what it says about the payment.

As Moyasar documents them (docs.moyasar.com, "Webhook Reference",
"Setting up Webhooks", "Fetch Payment", "Payment Status Reference"):

- A webhook is a JSON body `{"id", "type", "created_at", "secret_token",
  "account_name", "live", "data": <payment object>}`, `type` being
  `payment_paid`, `payment_failed` (spelt `payment_faild` in one docs table),
  `payment_refunded`, ... The `secret_token` is the one set on the webhook in
  the dashboard; it must equal MOYASAR_WEBHOOK_TOKEN (constant-time compare).
  Moyasar retries a delivery that is not answered 2xx.
- After paying, the customer's browser is sent to the payment's
  `callback_url` with `?id=<payment id>&status=<status>&message=<text>`.
- `GET /v1/payments/<id>` with the secret key as basic-auth user answers the
  payment object: `id`, `status` (`initiated`, `paid`, `failed`,
  `authorized`, `captured`, `refunded`, `voided`, `verified`), `amount` in
  the minor unit (halalas), `currency`, `metadata` (string values the shop set
  when it created the payment).

So both callbacks are reduced to a payment id, and the payment is fetched from
Moyasar's API: its status, amount, currency and `metadata.order_reference`
(the shop's order, passed as metadata when the payment is created) decide.
The event id is `payment:<payment id>` for both, so a webhook and a return of
one payment (and replays of either) apply once. `paid` and `captured`
succeed, `failed` fails, any other status changes nothing. Moyasar's API
failing (unreachable, timeout, 5xx, an odd answer) is a 502, so the webhook
is retried; a payment Moyasar does not know is a 404.
"""

import datetime
import hmac
import json
import uuid

from notifier import validate
from notifier.errors import RequestError
from notifier.gateways.api import get_json
from notifier.gateways.base import Return, Simulated
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment
from notifier.web import parse_json

NAME = "moyasar"
SETTINGS = "MOYASAR_SECRET_KEY and MOYASAR_WEBHOOK_TOKEN"  # what configured() needs
MAX_PAYMENT_ID = 100
# `captured` is an authorized payment the shop captured later: money taken.
OUTCOMES = {"paid": SUCCEEDED, "captured": SUCCEEDED, "failed": FAILED_PAYMENT}


def configured(settings):
    return bool(settings.moyasar_secret_key and settings.moyasar_webhook_token)


def verify_token(event, token):
    """Raise RequestError(401) unless the body's `secret_token` is `token`."""
    offered = event.get("secret_token") if isinstance(event, dict) else None
    if not isinstance(offered, str) or not offered:
        raise RequestError("the webhook carries no secret_token", 401)
    if not hmac.compare_digest(
        offered.encode("utf-8", "replace"), token.encode("utf-8")
    ):
        raise RequestError("the webhook's secret_token does not match", 401)


def _payment_id(value, where):
    """A payment id safe to put in the API's path (Moyasar's are UUIDs)."""
    if not (
        isinstance(value, str)
        and 0 < len(value) <= MAX_PAYMENT_ID
        and value.isascii()
        and value.replace("-", "").replace("_", "").isalnum()
    ):
        raise RequestError(f"{where} must be a Moyasar payment id")
    return value


def fetch_payment(payment_id, settings, http):
    """The payment object from Moyasar's API; RequestError on failure."""
    url = f"{settings.moyasar_api_url}/v1/payments/{payment_id}"
    payment = get_json(
        http,
        "Moyasar",
        "payment",
        url,
        settings,
        auth=(settings.moyasar_secret_key, ""),
        headers={"Accept": "application/json"},
    )
    if payment.get("id") != payment_id:
        raise RequestError("Moyasar answered something unexpected", 502)
    return payment


def _reference(payment):
    metadata = payment.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("order_reference") is None:
        return None
    return validate.text(metadata, "order_reference", max_length=64)


def _from_payment(payment, event_type):
    """A Payment from a fetched payment object; None when nothing changes."""
    outcome = OUTCOMES.get(payment.get("status"))
    reference = _reference(payment)
    if outcome is None or reference is None:
        return None
    optional = outcome != SUCCEEDED
    try:
        amount = validate.integer(payment, "amount", minimum=0, optional=optional)
        currency = validate.currency(payment, "currency", optional=optional)
    except RequestError as exc:  # Moyasar's answer, not the caller's request
        raise RequestError(f"Moyasar answered an odd payment: {exc}", 502) from None
    return Payment(
        gateway=NAME,
        event_id=f"payment:{payment['id']}",
        event_type=event_type,
        outcome=outcome,
        reference=reference,
        amount=amount,
        currency=currency,
        payment_id=payment["id"],
    )


def webhook(callback, settings, http):
    """Check the token, take the payment id from the event, fetch the payment.
    Events that are not about a payment are ignored without asking Moyasar;
    so is a payment that names no order of this shop."""
    event = parse_json(callback.raw)  # the token travels inside the body
    verify_token(event, settings.moyasar_webhook_token)
    event_type = validate.text(event, "type", max_length=100)
    if not event_type.startswith("payment_"):
        return None
    data = validate.need(event, "data", dict)
    payment_id = _payment_id(data.get("id"), "data.id")
    payment = fetch_payment(payment_id, settings, http)
    return _from_payment(payment, event_type)


def browser_return(callback, settings, http):
    """The callback redirect `?id=...&status=...&message=...`. Only `id` is
    used: `status` and `message` come from the browser and prove nothing."""
    payment_id = _payment_id(callback.query.get("id"), "id")
    payment = fetch_payment(payment_id, settings, http)
    reference = _reference(payment)
    if reference is None:
        raise RequestError("the payment names no order", 404)
    result = _from_payment(payment, "return")
    if result is None:  # initiated, authorized, ...: nothing to do yet
        return Return(None, paid=False, reference=reference)
    return Return(result, paid=result.outcome == SUCCEEDED, reference=result.reference)


def simulated_payment_id(reference, failed):
    """The payment id `simulate` uses for an order (stable, UUID-shaped)."""
    outcome = "failed" if failed else "paid"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"moyasar-sim:{reference}:{outcome}"))


def simulated_payment(order, failed):
    """The payment object Moyasar would answer for `simulate`'s payment, for
    a stand-in of the API to serve."""
    return {
        "id": simulated_payment_id(order["reference"], failed),
        "status": "failed" if failed else "paid",
        "amount": order["amount"],
        "fee": 0,
        "currency": order["currency"],
        "refunded": 0,
        "captured": 0,
        "description": f"Order {order['reference']}",
        "amount_format": "",
        "invoice_id": None,
        "ip": None,
        "callback_url": None,
        "metadata": {"order_reference": order["reference"]},
        "source": {
            "type": "creditcard",
            "company": "visa",
            "name": "Simulated",
            "number": "4111-11XX-XXXX-1111",
            "message": "Declined" if failed else "APPROVED",
        },
    }


def simulate(order, failed, settings, now):
    """The `payment_paid` (or `payment_failed`) webhook Moyasar would send for
    `order`, with the configured secret_token.

    The service does not believe the webhook's body: it fetches the payment
    (`simulated_payment_id(...)`) from MOYASAR_API_URL. So this works only if
    that payment exists there: point MOYASAR_API_URL at a stand-in serving
    `simulated_payment(order, failed)` (as tests/fakes/moyasar_api.py does);
    against the real Moyasar the answer is 404.
    """
    payment = simulated_payment(order, failed)
    event = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"moyasar-sim-event:{now}")),
        "type": "payment_failed" if failed else "payment_paid",
        "created_at": _iso(now),
        "secret_token": settings.moyasar_webhook_token,
        "account_name": None,
        "live": False,
        "data": payment,
    }
    return Simulated(
        "POST",
        "webhook",
        json.dumps(event).encode(),
        {"Content-Type": "application/json"},
    )


def _iso(now):
    moment = datetime.datetime.fromtimestamp(int(now), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
