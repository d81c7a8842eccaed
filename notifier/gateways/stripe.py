"""Stripe: signed webhooks (`Stripe-Signature`) and the Checkout return.

The header is read exactly as Stripe's own library reads it, so the two
accept the same callbacks (a test checks this against the `stripe` package):
items split on ",", each on "=", the first `t` taken as a whole number, every
`v1` compared with HMAC-SHA256(secret, "<t>.<body>"); `v0` is never used. As
in that library only a timestamp older than the tolerance fails. Several
secrets may be configured while one is rolled.
"""

import hashlib
import hmac
import json

from notifier import validate
from notifier.errors import RequestError
from notifier.gateways.api import get_json
from notifier.gateways.base import Return, Simulated
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment
from notifier.web import parse_json

NAME = "stripe"
SETTINGS = "STRIPE_WEBHOOK_SECRET"  # what configured() needs
HEADER = "Stripe-Signature"
TOLERANCE = 300
MAX_HEADER = 4096

SUCCEEDED_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "payment_intent.succeeded",
}
FAILED_EVENTS = {
    "checkout.session.async_payment_failed",
    "payment_intent.payment_failed",
}


def configured(settings):
    return bool(settings.stripe_webhook_secrets)


def verify(raw_body, header, secrets, now, tolerance=TOLERANCE):
    """Raise RequestError(401) unless a `v1` matches one of `secrets`."""
    if not header or len(header) > MAX_HEADER:
        raise RequestError(f"missing or oversized {HEADER} header", 401)
    try:
        payload = raw_body.decode("utf-8")
        items = [item.split("=", 2) for item in header.split(",")]
        timestamp = int([item[1] for item in items if item[0] == "t"][0])
        offered = [item[1] for item in items if item[0] == "v1"]
    except (UnicodeDecodeError, IndexError, ValueError):
        raise RequestError(f"{HEADER} header cannot be read", 401) from None
    if not offered:
        raise RequestError(f"{HEADER} has no v1 signature", 401)
    signed = f"{timestamp:d}.{payload}".encode()
    matched = False
    for secret in secrets:
        want = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        for got in offered:
            matched |= hmac.compare_digest(want, got.encode("utf-8", "replace"))
    if not matched:
        raise RequestError("signature does not match", 401)
    if timestamp < now - tolerance:
        raise RequestError("signature timestamp is too old", 401)


def sign(raw_body, secret, timestamp):
    """The header Stripe would send (for `simulate` and the tests)."""
    signed = f"{timestamp:d}.{raw_body.decode()}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _reference(obj):
    metadata = obj.get("metadata")
    reference = obj.get("client_reference_id")
    if not reference and isinstance(metadata, dict):
        reference = metadata.get("order_reference")
    if reference is None:
        return None
    return validate.text({"reference": reference}, "reference", max_length=64)


def _from_object(gateway_id, event_type, outcome, obj):
    """A Payment from a Checkout Session or a PaymentIntent; None to ignore."""
    reference = _reference(obj)
    if reference is None:
        return None  # not one of this shop's orders (or no reference set)
    if obj.get("object") == "checkout.session":
        if outcome == SUCCEEDED and obj.get("payment_status") != "paid":
            return None  # paid later: async_payment_succeeded follows
        amount = obj.get("amount_total")
        payment_id = obj.get("payment_intent") or obj.get("id")
    else:
        amount = obj.get("amount_received") or obj.get("amount")
        payment_id = obj.get("id")
    data = {"amount": amount, "currency": obj.get("currency")}
    optional = outcome != SUCCEEDED
    return Payment(
        gateway=NAME,
        event_id=gateway_id,
        event_type=event_type,
        outcome=outcome,
        reference=reference,
        amount=validate.integer(data, "amount", minimum=0, optional=optional),
        currency=validate.currency(data, "currency", optional=optional),
        payment_id=str(payment_id)[:128] if payment_id else None,
    )


def webhook(callback, settings, http):
    verify(
        callback.raw,
        callback.header(HEADER),
        settings.stripe_webhook_secrets,
        callback.now,
    )
    return parse_event(parse_json(callback.raw))


def parse_event(event):
    """A Payment from a verified event; None for events the shop ignores."""
    if not isinstance(event, dict):
        raise RequestError("body must be a JSON object")
    event_id = validate.text(event, "id", max_length=191)
    event_type = validate.text(event, "type", max_length=100)
    if event_type in SUCCEEDED_EVENTS:
        outcome = SUCCEEDED
    elif event_type in FAILED_EVENTS:
        outcome = FAILED_PAYMENT
    else:
        return None
    data = validate.need(event, "data", dict)
    obj = validate.need(data, "object", dict, where="data.")
    return _from_object(event_id, event_type, outcome, obj)


def fetch_session(session_id, settings, http):
    """The Checkout Session from Stripe's API; RequestError on failure."""
    if not settings.stripe_secret_key:
        raise RequestError("the Stripe return needs STRIPE_SECRET_KEY", 503)
    url = f"{settings.stripe_api_url}/v1/checkout/sessions/{session_id}"
    return get_json(
        http,
        "Stripe",
        "checkout session",
        url,
        settings,
        auth=(settings.stripe_secret_key, ""),
    )


def browser_return(callback, settings, http):
    """The Checkout return `?session_id=cs_...`. The session is fetched from
    Stripe, so nothing in the browser's query is trusted. A session not paid
    yet (a bank transfer, say) changes nothing: its webhook settles it."""
    session_id = callback.query.get("session_id") or ""
    if not (
        session_id.startswith("cs_")
        and session_id.isascii()
        and session_id.replace("_", "").isalnum()
        and len(session_id) <= 200
    ):
        raise RequestError("session_id must be a Checkout Session id")
    session = fetch_session(session_id, settings, http)
    if session.get("id") != session_id:
        raise RequestError("Stripe answered with another session", 502)
    reference = _reference(session)
    if reference is None:
        raise RequestError("the checkout session names no order", 404)
    if session.get("payment_status") != "paid":
        return Return(None, paid=False, reference=reference)
    payment = _from_object(f"return:{session_id}", "return", SUCCEEDED, session)
    return Return(payment, paid=True, reference=reference)


def simulate(order, failed, settings, now):
    """The `checkout.session.completed` (or `payment_intent.payment_failed`)
    Stripe would send for `order`, signed with the first configured secret."""
    stamp = int(now)
    if failed:
        event = {
            "id": f"evt_sim_{stamp}",
            "object": "event",
            "type": "payment_intent.payment_failed",
            "data": {
                "object": {
                    "id": f"pi_sim_{stamp}",
                    "object": "payment_intent",
                    "amount": order["amount"],
                    "currency": order["currency"].lower(),
                    "metadata": {"order_reference": order["reference"]},
                    "status": "requires_payment_method",
                }
            },
        }
    else:
        event = {
            "id": f"evt_sim_{stamp}",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": f"cs_sim_{stamp}",
                    "object": "checkout.session",
                    "amount_total": order["amount"],
                    "currency": order["currency"].lower(),
                    "client_reference_id": order["reference"],
                    "payment_intent": f"pi_sim_{stamp}",
                    "payment_status": "paid",
                    "status": "complete",
                }
            },
        }
    body = json.dumps(event).encode()
    header = sign(body, settings.stripe_webhook_secrets[0], stamp)
    return Simulated(
        "POST",
        "webhook",
        body,
        {HEADER: header, "Content-Type": "application/json"},
    )
