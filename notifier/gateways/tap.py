"""Tap Payments: the charge webhook (`hashstring` header) and the redirect.

Tap posts the charge object to the charge's `post.url`, with a header
`hashstring`: hex HMAC-SHA256, keyed with the secret API key, over

    x_id{id}x_amount{amount}x_currency{currency}
    x_gateway_reference{reference.gateway}x_payment_reference{reference.payment}
    x_status{status}x_created{transaction.created}

(one string, no separators), the amount written with the currency's
decimals (3 for KWD, BHD, OMR, JOD...; 2 for SAR, AED...). A field that is
absent counts as the empty string, as in Tap's PHP sample. An `invoice`
object is signed over `x_updated{updated}` in place of the two references.

The body is trusted for nothing but the charge id: once the hashstring
matches, the charge is fetched with GET /v2/charges/{id} (Bearer secret
key) and the status, amount and currency are taken from Tap's answer. The
browser comes back to `redirect.url` with `?tap_id=chg_...` and is settled
the same way. Both use the event id `charge:{id}`, so they are idempotent
together.

The order is the charge's `reference.order` (set it when creating the
charge); `metadata.order_reference` is read when that is absent.
"""

import hashlib
import hmac
import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from notifier import validate
from notifier.errors import RequestError
from notifier.gateways.api import get_json
from notifier.gateways.base import Return, Simulated
from notifier.money import decimals
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment

NAME = "tap"
SETTINGS = "TAP_SECRET_KEY"  # what configured() needs
MAX_DIGITS = 30  # digits of an amount; more is no real charge
HEADER = "hashstring"
MAX_HEADER = 256
MAX_ID = 128

SUCCEEDED_STATUSES = frozenset({"CAPTURED"})
FAILED_STATUSES = frozenset(
    {
        "ABANDONED",
        "CANCELLED",
        "DECLINED",
        "FAILED",
        "RESTRICTED",
        "TIMEDOUT",
        "VOID",
    }
)
# INITIATED, IN_PROGRESS, AUTHORIZED, UNKNOWN and anything new: not final
# for the shop, so nothing changes (a later callback settles the charge).


def configured(settings):
    return bool(settings.tap_secret_key)


# -- the hashstring ----------------------------------------------------------


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def loads(raw):
    """JSON with every non-integer number as an exact Decimal."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)


def _decimal(value):
    """An exact Decimal from a JSON number (or numeric string); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def format_amount(amount, currency):
    """`12.345, "KWD"` -> `"12.345"`; `10, "SAR"` -> `"10.00"`."""
    number = _decimal(amount)
    if number is None:
        raise ValueError("amount is not a number")
    places = decimals(currency)
    exponent = Decimal(1).scaleb(-places)
    return f"{number.quantize(exponent, rounding=ROUND_HALF_UP):f}"


def _part(obj, *path):
    """A nested field as text; "" when absent (as PHP concatenates null)."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    if obj is None:
        return ""
    if isinstance(obj, bool) or not isinstance(obj, (str, int, Decimal)):
        raise ValueError(f"{'.'.join(path)} cannot be signed")
    return str(obj)


def signed_string(obj):
    """The string Tap signs for a charge (or authorize, or invoice) object."""
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    currency = obj.get("currency")
    if not isinstance(currency, str) or not currency:
        raise ValueError("currency is missing")
    amount = format_amount(obj.get("amount"), currency)
    head = f"x_id{_part(obj, 'id')}x_amount{amount}x_currency{currency}"
    if obj.get("object") == "invoice":
        middle = f"x_updated{_part(obj, 'updated')}"
    else:
        middle = (
            f"x_gateway_reference{_part(obj, 'reference', 'gateway')}"
            f"x_payment_reference{_part(obj, 'reference', 'payment')}"
        )
    tail = (
        f"x_status{_part(obj, 'status')}x_created{_part(obj, 'transaction', 'created')}"
    )
    return head + middle + tail


def hashstring(obj, secret):
    """The `hashstring` header Tap sends with `obj`."""
    message = signed_string(obj).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(raw_body, header, secret):
    """The verified body (a dict); RequestError(401) unless the header
    matches. A body from which the signed string cannot be built cannot be
    verified either, so it is refused the same way."""
    if not header or len(header) > MAX_HEADER:
        raise RequestError(f"missing or oversized {HEADER} header", 401)
    try:
        body = loads(raw_body)
        want = hashstring(body, secret).encode()
    except (UnicodeDecodeError, ValueError, RecursionError, ArithmeticError):
        raise RequestError(f"the body cannot be verified by {HEADER}", 401) from None
    got = header.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(want, got):
        raise RequestError(f"{HEADER} does not match", 401)
    return body


# -- the charge from Tap's API -------------------------------------------------


def _charge_id(value):
    """A `chg_...` id fit for a URL path; None otherwise."""
    if not isinstance(value, str):
        return None
    ok = (
        value.startswith("chg_")
        and len(value) <= MAX_ID
        and value.isascii()
        and value.replace("_", "").isalnum()
    )
    return value if ok else None


def fetch_charge(charge_id, settings, http):
    """GET /v2/charges/{id}; RequestError 404 (unknown) or 502 on failure."""
    url = f"{settings.tap_api_url}/v2/charges/{charge_id}"
    charge = get_json(
        http,
        "Tap",
        "charge",
        url,
        settings,
        loads=loads,
        headers={
            "Authorization": f"Bearer {settings.tap_secret_key}",
            "Accept": "application/json",
        },
    )
    if charge.get("id") != charge_id:
        raise RequestError("Tap answered with another or no charge", 502)
    return charge


def _reference(charge):
    """`reference.order`, else `metadata.order_reference`; None if neither."""
    for holder, key in (("reference", "order"), ("metadata", "order_reference")):
        container = charge.get(holder)
        if isinstance(container, dict) and container.get(key) not in (None, ""):
            return validate.text(container, key, max_length=64, where=f"{holder}.")
    return None


def to_minor(amount, currency):
    """Major units (an exact Decimal) -> an int of minor units, or None when
    the amount is not a whole number of them."""
    number = _decimal(amount)
    if number is None or len(number.as_tuple().digits) > MAX_DIGITS:
        return None
    with localcontext() as exact:  # no rounding to the default 28 digits
        exact.prec = 2 * MAX_DIGITS
        minor = number.scaleb(decimals(currency))
        if minor != minor.to_integral_value():
            return None
    return int(minor)


def _payment(charge):
    """A Payment from a fetched charge; None when its status is not final."""
    status = charge.get("status")
    if status in SUCCEEDED_STATUSES:
        outcome = SUCCEEDED
    elif status in FAILED_STATUSES:
        outcome = FAILED_PAYMENT
    else:
        return None
    currency = charge.get("currency")
    data = {"currency": currency}
    currency = validate.currency(data, "currency", optional=outcome != SUCCEEDED)
    amount = to_minor(charge.get("amount"), currency) if currency else None
    if outcome == SUCCEEDED and amount is None:
        raise RequestError(
            "the charge amount is not a whole number of minor units", 422
        )
    return Payment(
        gateway=NAME,
        event_id=f"charge:{charge['id']}",
        event_type=f"charge.{status}".lower(),
        outcome=outcome,
        reference=_reference(charge),
        amount=amount if outcome == SUCCEEDED else None,
        currency=currency if outcome == SUCCEEDED else None,
        payment_id=charge["id"],
    )


# -- the routes ----------------------------------------------------------------


def webhook(callback, settings, http):
    body = verify(callback.raw, callback.header(HEADER), settings.tap_secret_key)
    charge_id = _charge_id(body.get("id"))
    if charge_id is None or body.get("object", "charge") != "charge":
        return None  # an invoice, an authorize...: nothing the shop acts on
    charge = fetch_charge(charge_id, settings, http)
    payment = _payment(charge)
    if payment is None or payment.reference is None:
        return None  # not final yet, or not one of this shop's orders
    return payment


def browser_return(callback, settings, http):
    """The redirect `?tap_id=chg_...`: the charge is fetched from Tap, so
    nothing in the browser's query is trusted."""
    charge_id = _charge_id(callback.query.get("tap_id"))
    if charge_id is None:
        raise RequestError("tap_id must be a charge id")
    charge = fetch_charge(charge_id, settings, http)
    reference = _reference(charge)
    if reference is None:
        raise RequestError("the charge names no order", 404)
    payment = _payment(charge)
    if payment is None:
        return Return(None, paid=False, reference=reference)
    return Return(
        payment, paid=payment.outcome == SUCCEEDED, reference=payment.reference
    )


# -- simulate ------------------------------------------------------------------

_AMOUNT = "__tap_amount__"


def charge_body(charge):
    """`charge` as Tap posts it: JSON with the amount as an exact number."""
    amount = format_amount(charge["amount"], charge["currency"])
    text = json.dumps({**charge, "amount": _AMOUNT}, ensure_ascii=False)
    return text.replace(json.dumps(_AMOUNT), amount, 1).encode("utf-8")


def simulated_charge(order, failed, now):
    """The charge object Tap would hold for `order`."""
    stamp = int(now)
    currency = order["currency"].upper()
    places = decimals(currency)
    return {
        "id": f"chg_sim_{stamp}",
        "object": "charge",
        "live_mode": False,
        "api_version": "V2",
        "status": "DECLINED" if failed else "CAPTURED",
        "amount": Decimal(order["amount"]).scaleb(-places),
        "currency": currency,
        "reference": {
            "gateway": f"sim{stamp}",
            "payment": f"sim{stamp}01",
            "order": order["reference"],
        },
        "transaction": {"created": str(stamp * 1000), "timezone": "UTC+03:00"},
        "metadata": {"order_reference": order["reference"]},
    }


def simulate(order, failed, settings, now):
    """The charge webhook Tap would post for `order`, with its hashstring.
    The service then asks Tap's API (TAP_API_URL) for the same charge."""
    charge = simulated_charge(order, failed, now)
    return Simulated(
        "POST",
        "webhook",
        charge_body(charge),
        {
            HEADER: hashstring(charge, settings.tap_secret_key),
            "Content-Type": "application/json",
        },
    )
