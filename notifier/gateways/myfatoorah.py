"""MyFatoorah: Webhook V2 (`PAYMENT_STATUS_CHANGED`) and the callback URL.

The webhook
-----------
MyFatoorah's Webhook V2 posts `{"Event": {"Code": 1, "Name":
"PAYMENT_STATUS_CHANGED", ...}, "Data": {"Invoice": {...}, "Transaction":
{...}, "Customer": {...}, "Amount": {...}}}` with a `MyFatoorah-Signature`
header (the secret is mandatory in V2). Sources:
https://docs.myfatoorah.com/docs/webhook-v2,
https://docs.myfatoorah.com/docs/webhook-v2-payment-status-data-model,
https://docs.myfatoorah.com/docs/webhook-signature.

The signature is base64(HMAC-SHA256(secret, text)), secret and text UTF-8,
where text is `key=value` pairs joined with "," and a null value rendered as
the empty string. The body itself is NOT signed. Which pairs:

- the documented V2 form, used by every V2 implementation we found, is five
  fields of `Data` in this fixed order: `Invoice.Id`, `Invoice.Status`,
  `Transaction.Status`, `Transaction.PaymentId`, `Invoice.ExternalIdentifier`;
- the generic signature page says the properties are "ordered", and its V1
  sample code sorts the keys (case-insensitively). Read that way the same five
  pairs come sorted by key. The two readings disagree, so both are accepted:
  either is a MAC over the same five values under the same secret, so taking
  both lets nothing unsigned in.

Numbers are rendered as they stand in the JSON text (`6389662`, `1.250`),
strings as they are, null/missing as "".

What is signed and what is not: the five fields bind the invoice, the
payment attempt, their statuses and the merchant's reference
(`Invoice.ExternalIdentifier`, the reference the shop gave the invoice: our
order reference). The `Amount` object is NOT covered by the signature; it
is still checked against the order (422 on a difference), which catches a
wrong invoice but is not a proof. The invoice's amount is whatever the shop
created it with, so a genuine signed PAID event is a genuine payment of one
of the shop's invoices. There is no signed timestamp in V2: a replay is
harmless because the event id is recorded (`duplicate`).

The amount is `Amount.ValueInDisplayCurrency` with `Amount.DisplayCurrency`
(the currency the invoice was created in, which is the order's), falling back
to `ValueInBaseCurrency`/`BaseCurrency`; decimal major units, converted to
minor units exactly (`notifier.money.decimals`; 3 places for KWD/BHD/OMR).

Status: `Transaction.Status` SUCCESS (the invoice is then PAID) pays the
order; FAILED, EXPIRED, CANCELED/CANCELLED fail it (a later success still
pays it); anything else (AUTHORIZE, PENDING, ...) is ignored, as are events
other than PAYMENT_STATUS_CHANGED (they are answered 200 `ignored` without
acting on anything in them, so MyFatoorah stops retrying them).

The event id is `payment:<PaymentId>` for both the webhook and the return,
so the two are idempotent together, while a failed attempt and a later
successful one (different PaymentIds) are two events.

The return
----------
After payment MyFatoorah sends the browser to the CallBackUrl (or ErrorUrl)
with `?paymentId=...` (https://docs.myfatoorah.com/docs/payment-inquiry).
Nothing in that query is trusted: the payment is fetched with
`POST {MYFATOORAH_API_URL}/v2/getPaymentStatus` `{"Key": paymentId,
"KeyType": "PaymentId"}`, `Authorization: Bearer MYFATOORAH_API_KEY`. The
order is the response's `ExternalIdentifier` when it has one, else its
`CustomerReference` (the V2 inquiry's name for the merchant's reference).
So the shop creates each invoice (SendPayment/ExecutePayment) with the order
reference as its CustomerReference and, where the API takes it, as its
ExternalIdentifier: the webhook signs only the latter. (That the V2 webhook's
ExternalIdentifier carries the CustomerReference is our reading; we could not
confirm it from the documentation.) The transaction is the
one with that PaymentId in `InvoiceTransactions`; its `TransactionStatus` is
spelt "Succss" by MyFatoorah (both spellings are accepted). The amount is
`InvoiceDisplayValue` ("1.250 KD") when it can be read, else `InvoiceValue`
with the transaction's currency; MyFatoorah writes some currencies as
`KD`/`SR`/`BD`/`QR`/`RO`, mapped to ISO codes here.
"""

import base64
import hashlib
import hmac
import json
import re
from decimal import Decimal, InvalidOperation, localcontext

import requests

from notifier import validate
from notifier.errors import RequestError
from notifier.gateways.base import Return, Simulated
from notifier.money import decimals
from notifier.payments import FAILED_PAYMENT, SUCCEEDED, Payment

NAME = "myfatoorah"
SETTINGS = "MYFATOORAH_WEBHOOK_SECRET"  # what configured() needs
MAX_DIGITS = 30  # digits of an amount; more is no real payment
HEADER = "MyFatoorah-Signature"
MAX_HEADER = 512
PAYMENT_EVENT = "PAYMENT_STATUS_CHANGED"

# The documented order of the signed fields of PAYMENT_STATUS_CHANGED.
SIGNED_FIELDS = (
    ("Invoice", "Id"),
    ("Invoice", "Status"),
    ("Transaction", "Status"),
    ("Transaction", "PaymentId"),
    ("Invoice", "ExternalIdentifier"),
)

SUCCEEDED_STATUSES = {"SUCCESS", "SUCCSS"}
FAILED_STATUSES = {"FAILED", "EXPIRED", "CANCELED", "CANCELLED"}

# MyFatoorah's own currency spellings in GetPaymentStatus answers.
CURRENCY_ALIASES = {"KD": "KWD", "SR": "SAR", "BD": "BHD", "QR": "QAR", "RO": "OMR"}

PAYMENT_ID = re.compile(r"[A-Za-z0-9-]{1,100}")


def configured(settings):
    return bool(settings.myfatoorah_webhook_secret)


# -- the signature -------------------------------------------------------------


def _render(value):
    """A value as it goes into the signed text: null -> "", numbers as written."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signed_pairs(data):
    """The five `key=value` pairs of a PAYMENT_STATUS_CHANGED `Data` object."""
    pairs = []
    for obj, name in SIGNED_FIELDS:
        part = data.get(obj) if isinstance(data, dict) else None
        value = part.get(name) if isinstance(part, dict) else None
        pairs.append((f"{obj}.{name}", _render(value)))
    return pairs


def signed_texts(data):
    """Every text accepted as signed: the documented order, and sorted by key."""
    pairs = signed_pairs(data)
    documented = ",".join(f"{k}={v}" for k, v in pairs)
    ordered = sorted(pairs, key=lambda pair: pair[0].lower())
    by_key = ",".join(f"{k}={v}" for k, v in ordered)
    return [documented] if by_key == documented else [documented, by_key]


def signature(text, secret):
    """base64(HMAC-SHA256(secret, text)), both UTF-8."""
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate: no match
    digest = hmac.new(secret.encode(), data, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(data, secret):
    """The header MyFatoorah sends for `data` (documented field order)."""
    return signature(signed_texts(data)[0], secret)


def verify(data, header, secret):
    """Raise RequestError(401) unless `header` signs `data` with `secret`."""
    if not header or len(header) > MAX_HEADER:
        raise RequestError(f"missing or oversized {HEADER} header", 401)
    offered = header.strip().encode("latin-1", "replace")
    matched = False
    for text in signed_texts(data):
        want = signature(text, secret).encode("ascii")
        matched |= hmac.compare_digest(want, offered)
    if not matched:
        raise RequestError("signature does not match", 401)


# -- amounts -----------------------------------------------------------------


def to_minor(value, currency, where="amount"):
    """Decimal major units (text or JSON number) -> integer minor units, exactly."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise RequestError(f"{where} must be a decimal number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RequestError(f"{where} must be a decimal number") from None
    if not amount.is_finite() or amount < 0 or amount > Decimal(10) ** 13:
        raise RequestError(f"{where} must be a decimal number")
    if len(amount.as_tuple().digits) > MAX_DIGITS:
        raise RequestError(f"{where} must be a decimal number")
    with localcontext() as exact:  # no rounding to the default 28 digits
        exact.prec = 2 * MAX_DIGITS
        minor = amount.scaleb(decimals(currency))
        if minor != minor.to_integral_value():
            raise RequestError(f"{where} has more decimals than {currency} allows")
    return int(minor)


def _currency(value, where):
    if isinstance(value, str):
        value = CURRENCY_ALIASES.get(value.strip().upper(), value.strip())
    return validate.currency({"currency": value}, "currency", where=where)


def _parse(raw):
    """The body as JSON with decimals kept as written (no float rounding)."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=lambda name: _bad_constant(),
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError("body is not valid JSON") from None


def _bad_constant():
    raise ValueError("NaN and Infinity are not JSON")


def _reference(value):
    if value is None or value == "":
        return None
    return validate.text({"reference": _render(value)}, "reference", max_length=64)


# -- the webhook ---------------------------------------------------------------


def _outcome(status):
    status = (status or "").strip().upper()
    if status in SUCCEEDED_STATUSES:
        return SUCCEEDED
    if status in FAILED_STATUSES:
        return FAILED_PAYMENT
    return None


def webhook(callback, settings, http):
    header = callback.header(HEADER)
    if not header:
        raise RequestError(f"missing {HEADER} header", 401)
    event = _parse(callback.raw)
    if not isinstance(event, dict):
        raise RequestError("body must be a JSON object")
    head = event.get("Event")
    if not isinstance(head, dict):
        # A Webhook V1 body ("EventType", "Event": "TransactionsStatusChanged")
        # or something else: refused, so the portal shows the failures.
        raise RequestError("body is not a MyFatoorah Webhook V2 event")
    if head.get("Name") != PAYMENT_EVENT and head.get("Code") != 1:
        return None  # refunds, transfers, ...: nothing here acts on them
    data = event.get("Data")
    verify(data, header, settings.myfatoorah_webhook_secret)
    payment = parse_event(data)
    if payment is None or payment.outcome != SUCCEEDED:
        return payment
    if _render(data["Invoice"].get("Status")).upper() != "PAID":
        return None  # the signed invoice status says not yet
    if settings.myfatoorah_api_key:
        # The amount is not signed: take it from MyFatoorah's own answer.
        return confirmed(payment.payment_id, settings, http).payment
    return payment


def parse_event(data):
    """A Payment from a verified PAYMENT_STATUS_CHANGED `Data`; None to ignore."""
    invoice = validate.need(data, "Invoice", dict, where="Data.")
    transaction = validate.need(data, "Transaction", dict, where="Data.")
    outcome = _outcome(_render(transaction.get("Status")))
    if outcome is None:
        return None
    reference = _reference(invoice.get("ExternalIdentifier"))
    if reference is None:
        return None  # not an invoice this shop created with a reference
    payment_id = _render(transaction.get("PaymentId")).strip()
    if not PAYMENT_ID.fullmatch(payment_id):
        raise RequestError("Data.Transaction.PaymentId must be a payment id")
    amount = currency = None
    money = data.get("Amount")
    if isinstance(money, dict):
        for kind in ("Display", "Base"):
            value = money.get(f"ValueIn{kind}Currency")
            if money.get(f"{kind}Currency") and value not in (None, ""):
                currency = _currency(money[f"{kind}Currency"], "Data.Amount.")
                amount = to_minor(
                    money[f"ValueIn{kind}Currency"],
                    currency,
                    f"Data.Amount.ValueIn{kind}Currency",
                )
                break
    if outcome == SUCCEEDED and amount is None:
        raise RequestError("Data.Amount is required for a successful payment")
    return Payment(
        gateway=NAME,
        event_id=f"payment:{payment_id}",
        event_type=PAYMENT_EVENT,
        outcome=outcome,
        reference=reference,
        amount=amount,
        currency=currency,
        payment_id=payment_id,
    )


# -- the return ------------------------------------------------------------------


def fetch_payment(payment_id, settings, http):
    """GetPaymentStatus's `Data` for a PaymentId; RequestError on failure."""
    if not settings.myfatoorah_api_key:
        raise RequestError("the MyFatoorah return needs MYFATOORAH_API_KEY", 503)
    try:
        response = http.post(
            f"{settings.myfatoorah_api_url}/v2/getPaymentStatus",
            json={"Key": payment_id, "KeyType": "PaymentId"},
            headers={"Authorization": f"Bearer {settings.myfatoorah_api_key}"},
            timeout=settings.gateway_api_timeout,
        )
    except requests.RequestException:
        raise RequestError("MyFatoorah cannot be reached", 502) from None
    try:
        answer = json.loads(response.content.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        answer = None
    if response.status_code in (400, 404) and not (
        isinstance(answer, dict) and answer.get("IsSuccess")
    ):
        # MyFatoorah answers an unknown key with 400 and IsSuccess false.
        raise RequestError("MyFatoorah knows no such payment", 404)
    if response.status_code != 200:
        raise RequestError(f"MyFatoorah answered {response.status_code}", 502)
    if not isinstance(answer, dict) or not isinstance(answer.get("Data"), dict):
        raise RequestError("MyFatoorah answered something unexpected", 502)
    if not answer.get("IsSuccess"):
        raise RequestError("MyFatoorah knows no such payment", 404)
    return answer["Data"]


def _display_amount(status, transaction):
    """(minor units, currency) of the invoice, from the inquiry's answer."""
    shown = status.get("InvoiceDisplayValue")
    if isinstance(shown, str):
        parts = shown.replace(",", "").split()
        if len(parts) == 2:
            number, code = parts
            if not number[:1].isdigit():
                code, number = number, code
            try:
                currency = _currency(code, "")
            except RequestError:
                currency = None
            if currency:
                return to_minor(number, currency, "InvoiceDisplayValue"), currency
    code = transaction.get("Currency") or transaction.get("PaidCurrency")
    try:
        currency = _currency(code, "")
    except RequestError:
        raise RequestError(
            "MyFatoorah answered a currency it cannot read", 502
        ) from None
    return to_minor(status.get("InvoiceValue"), currency, "InvoiceValue"), currency


def browser_return(callback, settings, http):
    payment_id = callback.query.get("paymentId") or callback.query.get("PaymentId")
    if not payment_id or not PAYMENT_ID.fullmatch(payment_id):
        raise RequestError("paymentId must be a MyFatoorah payment id")
    return confirmed(payment_id, settings, http)


def confirmed(payment_id, settings, http):
    """What MyFatoorah's own GetPaymentStatus says of one payment (a Return)."""
    status = fetch_payment(payment_id, settings, http)
    # The webhook's signed reference is ExternalIdentifier; GetPaymentStatus
    # (V2) names the merchant's reference CustomerReference.
    reference = _reference(
        status.get("ExternalIdentifier") or status.get("CustomerReference")
    )
    if reference is None:
        raise RequestError("the payment names no order", 404)
    transactions = status.get("InvoiceTransactions")
    transaction = next(
        (
            t
            for t in (transactions if isinstance(transactions, list) else [])
            if isinstance(t, dict) and _render(t.get("PaymentId")) == payment_id
        ),
        None,
    )
    if transaction is None:
        return Return(None, paid=False, reference=reference)
    outcome = _outcome(_render(transaction.get("TransactionStatus")))
    invoice_paid = _render(status.get("InvoiceStatus")).upper() == "PAID"
    if outcome == SUCCEEDED and invoice_paid:
        amount, currency = _display_amount(status, transaction)
        payment = Payment(
            gateway=NAME,
            event_id=f"payment:{payment_id}",
            event_type="return",
            outcome=SUCCEEDED,
            reference=reference,
            amount=amount,
            currency=currency,
            payment_id=payment_id,
        )
        return Return(payment, paid=True, reference=reference)
    if outcome == FAILED_PAYMENT:
        payment = Payment(
            gateway=NAME,
            event_id=f"payment:{payment_id}",
            event_type="return",
            outcome=FAILED_PAYMENT,
            reference=reference,
            payment_id=payment_id,
        )
        return Return(payment, paid=False, reference=reference)
    return Return(None, paid=False, reference=reference)


# -- simulate --------------------------------------------------------------------


def major(amount, currency):
    """Integer minor units -> the decimal text MyFatoorah writes ("1.250")."""
    places = decimals(currency)
    return str(Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def event_data(reference, amount, currency, payment_id, invoice_id, failed=False):
    """A PAYMENT_STATUS_CHANGED `Data` object shaped as the data model shows it."""
    value = major(amount, currency)
    return {
        "Invoice": {
            "Id": str(invoice_id),
            "Status": "PENDING" if failed else "PAID",
            "Reference": f"2025{invoice_id}",
            "CreationDate": "2025-06-17T19:04:33.000Z",
            "ExpirationDate": "2025-06-20T19:04:33.000Z",
            "ExternalIdentifier": reference,
            "UserDefinedField": None,
            "MetaData": None,
        },
        "Transaction": {
            "Id": f"{payment_id}1",
            "Status": "FAILED" if failed else "SUCCESS",
            "PaymentMethod": "KNET",
            "PaymentId": str(payment_id),
            "ReferenceId": str(payment_id),
            "TrackId": "17-06-2025_2793316",
            "AuthorizationId": None if failed else "B12345",
            "TransactionDate": "2025-06-17T19:07:05.000Z",
            "ECI": None,
            "IP": {"Address": "127.0.0.1", "Country": "Kuwait"},
            "Error": {"Code": "MF020", "Message": "Declined"} if failed else None,
            "Card": None,
        },
        "Customer": {
            "Reference": reference,
            "Name": "Customer",
            "Mobile": "+965-50000000",
            "Email": None,
        },
        "Amount": {
            "BaseCurrency": currency,
            "ValueInBaseCurrency": value,
            "ServiceCharge": "0.000",
            "ServiceChargeVAT": "0.000",
            "ReceivableAmount": value,
            "DisplayCurrency": currency,
            "ValueInDisplayCurrency": value,
            "PayCurrency": currency,
            "ValueInPayCurrency": value,
        },
        "Suppliers": [],
    }


def event(data, country="KWT"):
    """The whole V2 webhook body around `data`."""
    return {
        "Event": {
            "Code": 1,
            "Name": PAYMENT_EVENT,
            "CountryIsoCode": country,
            "CreationDate": "2025-06-17T19:07:06.000Z",
            "Reference": "WH-" + str(data["Transaction"]["PaymentId"]),
        },
        "Data": data,
    }


def simulate(order, failed, settings, now):
    """The PAYMENT_STATUS_CHANGED MyFatoorah would send for `order`, signed."""
    stamp = int(now)
    data = event_data(
        order["reference"],
        order["amount"],
        order["currency"],
        payment_id=f"0707{stamp}",
        invoice_id=stamp % 10**7,
        failed=failed,
    )
    body = json.dumps(event(data)).encode()
    header = sign(data, settings.myfatoorah_webhook_secret)
    return Simulated(
        "POST",
        "webhook",
        body,
        {HEADER: header, "Content-Type": "application/json"},
    )
