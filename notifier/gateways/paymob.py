"""Paymob (Accept): the transaction processed and response callbacks.

Paymob signs no body and no header. It sends `?hmac=<hex>` in the query:
HMAC-SHA512 (lower-case hex) with the account's HMAC secret over the values
of 20 transaction fields, concatenated without separators in this fixed
(lexicographic) order, booleans as `true`/`false`, as documented in
"HMAC Transaction Callback"
(https://developers.paymob.com/paymob-docs/developers/webhook-callbacks-and-hmac/hmac/hmac-transaction-callback)
and the older "HMAC Calculation" (https://docs.paymob.com/docs/hmac-calculation).

- The processed callback is a POST of `{"type": "TRANSACTION", "obj": {...}}`:
  the fields are read from `obj`, nested (`order.id`, `source_data.pan`).
- The response callback is the customer's browser coming back with a GET:
  the same fields flattened into the query string.

Only `order.id`, Paymob's own id of the order, is signed (`merchant_order_id`
is not), so the order is found by its `gateway_order_id`. The transaction
`id` is the event id of both callbacks, so they are idempotent together.
"""

import hashlib
import hmac
import json
import string
from datetime import UTC, datetime

from models import Order
from notifier import validate
from notifier.errors import NotifierError, RequestError
from notifier.gateways.base import Return, Simulated
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment
from notifier.web import parse_json

NAME = "paymob"
SETTINGS = "PAYMOB_HMAC_SECRET"  # what configured() needs
DIGEST_LENGTH = 128  # SHA-512 in hex
MAX_ID = 64  # Order.gateway_order_id is a CharField(64)

# The 20 signed fields, in the documented order (POST paths into `obj`).
TRANSACTION_FIELDS = (
    "amount_cents",
    "created_at",
    "currency",
    "error_occured",  # sic: Paymob's spelling
    "has_parent_transaction",
    "id",
    "integration_id",
    "is_3d_secure",
    "is_auth",
    "is_capture",
    "is_refunded",
    "is_standalone_payment",
    "is_voided",
    "order.id",
    "owner",
    "pending",
    "source_data.pan",
    "source_data.sub_type",
    "source_data.type",
    "success",
)

# The response callback (GET) carries the same fields flattened. Where its
# key for a field is not the same everywhere, each spelling is accepted:
# - the order id: `order` in the query Paymob sends, in the older docs'
#   sample and in most integrations; the current docs name it `order_id`;
# - `source_data.pan` etc. as sent; `source_data_pan` is how PHP's $_GET
#   mangles the dots, and some published guides copy that spelling.
# Only one spelling may be present (two that differ are refused), and the
# value looked up is the one that was signed.
RESPONSE_ALIASES = {
    "order.id": ("order", "order_id"),
    "source_data.pan": ("source_data.pan", "source_data_pan"),
    "source_data.sub_type": ("source_data.sub_type", "source_data_sub_type"),
    "source_data.type": ("source_data.type", "source_data_type"),
}

# The card token callback (`"type": "TOKEN"`), documented as "HMAC Card
# Token": Paymob may post it to the same processed-callback URL when a card
# is saved. It is verified with its own fields, then ignored.
TOKEN_FIELDS = (
    "card_subtype",
    "created_at",
    "email",
    "id",
    "masked_pan",
    "merchant_id",
    "order_id",
    "token",
)


def configured(settings):
    return bool(settings.paymob_hmac_secret)


# -- the HMAC ---------------------------------------------------------------


def render(value):
    """A field's value as Paymob concatenates it: JSON booleans as
    `true`/`false`, a missing or null value as "" (as the widely used
    implementations do), numbers as JavaScript prints them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | str):
        return str(value)
    raise RequestError("a signed field of the callback is not a plain value")


def _path(obj, dotted):
    value = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def processed_message(obj, fields=TRANSACTION_FIELDS):
    """The concatenated string of a processed (POST) callback's `obj`."""
    return "".join(render(_path(obj, field)) for field in fields)


def _response_key(query, field):
    """The query key the response callback uses for `field`, if any."""
    present = [key for key in RESPONSE_ALIASES.get(field, (field,)) if key in query]
    if len({query[key] for key in present}) > 1:
        raise RequestError(f"the callback names {field} twice, differently")
    return present[0] if present else None


def response_message(query):
    """The concatenated string of a response (GET) callback's query."""
    keys = [_response_key(query, field) for field in TRANSACTION_FIELDS]
    return "".join(query[key] if key else "" for key in keys)


def sign(message, secret):
    """Lower-case hex HMAC-SHA512 of `message` with `secret`."""
    # surrogatepass: a lone surrogate from a forged body simply fails to match.
    data = message.encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), data, hashlib.sha512).hexdigest()


def _check_shape(offered):
    """Refuse (401) a missing `hmac` or one that is not SHA-512 hex."""
    if not offered:
        raise RequestError("the hmac query parameter is missing", 401)
    if len(offered) != DIGEST_LENGTH or not all(c in string.hexdigits for c in offered):
        raise RequestError("the hmac query parameter is not a SHA-512 hex digest", 401)
    return offered


def verify(message, offered, secret):
    """Raise RequestError(401) unless `offered` is the HMAC of `message`.
    The docs give the digest in lower case; upper-case hex is accepted too."""
    _check_shape(offered)
    want = sign(message, secret).encode()
    if not hmac.compare_digest(want, offered.lower().encode("ascii")):
        raise RequestError("hmac does not match", 401)


# -- reading the verified fields ----------------------------------------------


def _flag(value, name, required=False):
    """A signed boolean: JSON true/false (POST) or "true"/"false" (GET)."""
    if value is True or value == "true":
        return True
    if value is False or value == "false" or (not required and value in (None, "")):
        return False
    raise RequestError(f"{name} must be true or false")


def _identifier(value, name):
    """A Paymob id (a number in JSON, digits in a query) as text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RequestError(f"{name} must be an id")
    text = str(value).strip()
    if not text or len(text) > MAX_ID or not text.isascii() or not text.isalnum():
        raise RequestError(f"{name} must be an id")
    return text


def _amount(value):
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return validate.integer({"amount_cents": value}, "amount_cents", minimum=0)


def _transaction(get):
    """What a verified transaction says; `get(field)` reads a signed field.
    None for a transaction the shop does not act on."""
    pending = _flag(get("pending"), "pending", required=True)
    success = _flag(get("success"), "success", required=True)
    transaction_id = _identifier(get("id"), "id")
    gateway_order_id = _identifier(get("order.id"), "order.id")
    amount = _amount(get("amount_cents"))
    currency = validate.currency({"currency": get("currency")}, "currency")
    refund_or_void = _flag(get("is_refunded"), "is_refunded") or _flag(
        get("is_voided"), "is_voided"
    )
    child = _flag(get("has_parent_transaction"), "has_parent_transaction")
    capture = _flag(get("is_capture"), "is_capture")
    return {
        "transaction_id": transaction_id,
        "gateway_order_id": gateway_order_id,
        "amount": amount,
        "currency": currency,
        # Pending (kiosk, some wallets): the final callback follows. Refunds,
        # voids and other follow-up transactions (has_parent_transaction,
        # except a capture) are not payments of the order.
        "ignored": pending
        or refund_or_void
        or (child and not capture)
        # An authorization alone takes no money (auth/capture integrations):
        # the capture's own callback pays the order.
        or _flag(get("is_auth"), "is_auth"),
        "outcome": SUCCEEDED if success else FAILED_PAYMENT,
    }


def _payment(txn, event_type, reference=None):
    return Payment(
        gateway=NAME,
        event_id=f"txn:{txn['transaction_id']}",
        event_type=event_type,
        outcome=txn["outcome"],
        reference=reference,
        amount=txn["amount"],
        currency=txn["currency"],
        payment_id=txn["transaction_id"],
        gateway_order_id=txn["gateway_order_id"],
    )


# -- the adapter ----------------------------------------------------------------


def webhook(callback, settings, http):
    """The transaction processed callback (POST, JSON, `?hmac=`)."""
    offered = _check_shape(callback.query.get("hmac"))
    body = parse_json(callback.raw)
    if not isinstance(body, dict) or not isinstance(body.get("obj"), dict):
        raise RequestError("body must be an object with an obj object")
    obj = body["obj"]
    kind = body.get("type")
    if kind == "TOKEN":
        verify(
            processed_message(obj, TOKEN_FIELDS), offered, settings.paymob_hmac_secret
        )
        return None  # a saved card, not a payment
    if kind != "TRANSACTION":
        raise RequestError("type must be TRANSACTION")
    verify(processed_message(obj), offered, settings.paymob_hmac_secret)
    txn = _transaction(lambda field: _path(obj, field))
    if txn["ignored"]:
        return None
    return _payment(txn, "TRANSACTION")


def browser_return(callback, settings, http):
    """The transaction response callback: the browser's GET with the
    transaction flattened into the query and `hmac`."""
    query = callback.query
    offered = _check_shape(query.get("hmac"))
    verify(response_message(query), offered, settings.paymob_hmac_secret)

    def get(field):
        key = _response_key(query, field)
        return query[key] if key else None

    txn = _transaction(get)
    order = Order.get_or_none(Order.gateway_order_id == txn["gateway_order_id"])
    if order is None:
        raise RequestError("no order has this Paymob order id", 404)
    if txn["ignored"]:
        return Return(None, paid=False, reference=order.reference)
    payment = _payment(txn, "return")
    return Return(payment, paid=txn["outcome"] == SUCCEEDED, reference=order.reference)


def transaction_obj(order, failed, now):
    """A transaction `obj` shaped as Paymob's processed callback sample."""
    gateway_order_id = order.get("gateway_order_id")
    if not gateway_order_id:
        raise NotifierError(
            f"order {order['reference']} has no gateway_order_id: Paymob names"
            " orders only by its own order id"
        )
    stamp = int(now * 1000)
    digits = gateway_order_id.isascii() and gateway_order_id.isdigit()
    order_id = int(gateway_order_id) if digits else gateway_order_id
    return {
        "id": stamp % 10**9,
        "pending": False,
        "amount_cents": order["amount"],
        "success": not failed,
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
            "id": order_id,
            "merchant_order_id": order["reference"],
            "amount_cents": order["amount"],
            "currency": order["currency"],
        },
        "created_at": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "currency": order["currency"],
        "source_data": {"pan": "2346", "type": "card", "sub_type": "MasterCard"},
        "error_occured": False,
        "owner": 302852,
        "data": {"message": "Declined" if failed else "Approved"},
    }


def simulate(order, failed, settings, now):
    """The processed callback Paymob would send for `order`, signed."""
    obj = transaction_obj(order, failed, now)
    body = json.dumps({"type": "TRANSACTION", "obj": obj}).encode()
    digest = sign(processed_message(obj), settings.paymob_hmac_secret)
    return Simulated(
        "POST",
        "webhook",
        body,
        {"Content-Type": "application/json"},
        query={"hmac": digest},
    )
