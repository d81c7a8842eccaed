"""The service's own callback scheme (CONTRACT: /payments/webhook, /return)."""

import json

from notifier import validate
from notifier.errors import RequestError
from notifier.gateways.base import Return, Simulated
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment
from notifier.signing import sign_webhook, verify_return, verify_webhook
from notifier.web import parse_json

NAME = "generic"
SETTINGS = "GATEWAY_SECRET"  # what configured() needs
OUTCOMES = {"payment.succeeded": SUCCEEDED, "payment.failed": FAILED_PAYMENT}
RETURN_STATUS = {"paid": SUCCEEDED, "failed": FAILED_PAYMENT}


def configured(settings):
    return bool(settings.gateway_secrets)


def webhook(callback, settings, http):
    """`X-Signature` over the raw body first, then the JSON event."""
    verify_webhook(
        callback.raw,
        callback.header("X-Signature"),
        settings.gateway_secrets,
        callback.now,
        settings.signature_tolerance,
    )
    return parse_webhook(parse_json(callback.raw))


def browser_return(callback, settings, http):
    """The signed query of the customer's return."""
    verify_return(
        callback.query,
        settings.gateway_secrets,
        callback.now,
        settings.signature_tolerance,
    )
    payment = parse_return(callback.query)
    return Return(
        payment, paid=payment.outcome == SUCCEEDED, reference=payment.reference
    )


def parse_webhook(body):
    """A Payment from the decoded JSON of a verified webhook."""
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    event_id = validate.text(body, "id", max_length=191)
    event_type = validate.text(body, "type", max_length=64)
    if event_type not in OUTCOMES:
        raise RequestError("type must be payment.succeeded or payment.failed")
    outcome = OUTCOMES[event_type]
    data = validate.need(body, "data", dict)
    optional = outcome != SUCCEEDED
    return Payment(
        gateway=NAME,
        event_id=event_id,
        event_type=event_type,
        outcome=outcome,
        reference=validate.text(data, "order_reference", max_length=64, where="data."),
        amount=validate.integer(
            data, "amount", minimum=0, optional=optional, where="data."
        ),
        currency=validate.currency(data, "currency", optional=optional, where="data."),
        payment_id=validate.text(
            data, "payment_id", max_length=128, optional=True, where="data."
        ),
    )


def parse_return(params):
    """A Payment from the verified query of a browser return."""
    for name in ("order_reference", "status", "payment_id"):
        if not params.get(name):
            raise RequestError(f"{name} is required")
    status = params["status"]
    if status not in RETURN_STATUS:
        raise RequestError("status must be paid or failed")
    reference = validate.text(params, "order_reference", max_length=64)
    payment_id = validate.text(params, "payment_id", max_length=128)
    return Payment(
        gateway=NAME,
        event_id=f"return:{payment_id}:{status}",
        event_type=f"return.{status}",
        outcome=RETURN_STATUS[status],
        reference=reference,
        payment_id=payment_id,
    )


def simulate(order, failed, settings, now):
    """The webhook of the service's own scheme for `order`, signed with the
    first GATEWAY_SECRET."""
    stamp = int(now)
    event = {
        "id": f"evt_sim_{stamp}",
        "type": "payment.failed" if failed else "payment.succeeded",
        "data": {
            "order_reference": order["reference"],
            "amount": order["amount"],
            "currency": order["currency"],
            "payment_id": f"pay_sim_{stamp}",
        },
    }
    body = json.dumps(event).encode()
    header = sign_webhook(body, settings.gateway_secrets[0], stamp)
    return Simulated(
        "POST",
        "webhook",
        body,
        {"X-Signature": header, "Content-Type": "application/json"},
    )
