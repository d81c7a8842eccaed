"""Bad requests: a clear 4xx JSON error, and nothing changes.

Every refused request must answer `{"error": "<sentence>"}` (that one key, a
non-empty string) with a 4xx status, leave the order `pending` with no
notifications and record no payment: a valid webhook sent afterwards, reusing
the refused event's id, still answers `paid`.

The tables share one service (module scope) for speed; each case works on an
order of its own. Tests that need other settings use `make_service`.
"""

import json
import time
import uuid
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from notifier.settings import Settings
from notifier.signing import sign_return, sign_webhook
from tests.client import SECRET, TOKEN, event_body, order_body
from tests.conftest import Running, service_env
from tests.fakes.smtp import SmtpStandIn
from tests.fakes.whatsapp import WhatsAppStandIn

KIB = 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A response kept alive by a failure report (xfail) would keep its keep-alive
# connection open and stall the server's shutdown for seconds: close each one.
CLOSE = {"Connection": "close"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One running service (with its stand-ins) for the table cases."""
    db = tmp_path_factory.mktemp("bad-input") / "notifier.db"
    with SmtpStandIn() as smtp, WhatsAppStandIn(expected_token="wa-test-token") as wa:
        running = Running(Settings.from_env(service_env(db, smtp, wa)))
        try:
            yield running
        finally:
            running.stop()


def new_reference(prefix="B"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_event_id():
    return f"evt_{uuid.uuid4().hex}"


def assert_error(response, status):
    """`status`, JSON content, exactly {"error": <non-empty string>}."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    assert isinstance(body["error"], str) and body["error"].strip(), body


def assert_untouched(client, reference, event_id=None):
    """Pending, no notifications; a valid webhook (same event id) still pays."""
    order = client.get_order(reference)
    assert order["status"] == "pending", order
    assert order["notifications"] == [], order
    assert order["payment_id"] is None and order["paid_at"] is None, order

    answer = client.pay(reference, event_id=event_id or new_event_id())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "paid"}
    assert len(client.get_order(reference)["notifications"]) == 3


def post_webhook_raw(client, raw, header=None, **kwargs):
    headers = {"Content-Type": "application/json", **CLOSE}
    if header is not None:
        headers["X-Signature"] = header
    return client.http.post(
        client.url("/payments/webhook"), data=raw, headers=headers, timeout=10, **kwargs
    )


# The tests that start a service of their own come first: the models share
# one database proxy per process, so they must not run while the tables'
# module-wide service is up (its notifier would sweep their database).


# -- a service without its secrets -------------------------------------------------


def test_orders_without_api_token_answer_503(make_service):
    client = make_service(API_TOKEN="").client

    created = client.http.post(
        client.url("/orders"), json=order_body("U-1"), headers=AUTH, timeout=10
    )
    read = client.http.get(client.url("/orders/U-1"), headers=AUTH, timeout=10)
    anonymous = client.http.get(client.url("/orders/U-1"), timeout=10)

    assert_error(created, 503)
    assert_error(read, 503)
    assert_error(anonymous, 503)


def test_payments_without_gateway_secret_answer_503(make_service):
    live = make_service(GATEWAY_SECRET="")
    client = live.client
    client.create_order("U-2")

    webhook = client.pay("U-2")
    unsigned = post_webhook_raw(client, b"{}")
    browser = client.http.get(client.return_url("U-2"), allow_redirects=False)

    assert_error(webhook, 503)
    assert_error(unsigned, 503)
    assert_error(browser, 503)
    order = client.get_order("U-2")
    assert order["status"] == "pending" and order["notifications"] == []


# -- property: whatever arrives, no 5xx and no change -------------------------------

PROPERTY_REF = "P-1"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def _not(predicate):
    return lambda value: not predicate(value)


def _is_text(value, *texts):
    return isinstance(value, str) and value.strip() in texts


# Each replacement is invalid for its field, so the event can never pay or
# fail the order: what is tested is that it is refused cleanly. Plausible
# values (another amount, another currency, another reference) reach the
# checks against the order (404, 422), junk the checks of the shape (400).
_field_junk = {
    "id": json_values.filter(
        lambda v: not isinstance(v, str) or not v.strip() or len(v.strip()) > 191
    ),
    "type": (st.text(max_size=20) | json_values).filter(
        _not(lambda v: _is_text(v, "payment.succeeded", "payment.failed"))
    ),
    "data": json_values.filter(
        _not(lambda v: isinstance(v, dict) and "order_reference" in v)
    ),
    "data.order_reference": (st.text(min_size=1, max_size=70) | json_values).filter(
        _not(lambda v: _is_text(v, PROPERTY_REF))
    ),
    "data.amount": (st.integers(-(2**64), 2**64) | json_values).filter(
        lambda v: type(v) is not int or v != 15000
    ),
    "data.currency": (
        st.text(alphabet="SARUDsarud$ ", min_size=2, max_size=4) | json_values
    ).filter(_not(lambda v: isinstance(v, str) and v.upper() == "SAR")),
}
_DROPPABLE = sorted(_field_junk)


@st.composite
def near_valid_events(draw):
    """A valid event for PROPERTY_REF with one field replaced or dropped."""
    body = event_body(PROPERTY_REF, event_id=f"evt_{draw(st.uuids()).hex}")
    path = draw(st.sampled_from(_DROPPABLE))
    parent, _, name = path.rpartition(".")
    target = body["data"] if parent else body
    if draw(st.integers(0, 3)) == 0:
        target.pop(name)
    else:
        target[name] = draw(_field_junk[path])
    # Unknown fields are ignored; they must not put back what was dropped.
    unknown = st.text(max_size=8).filter(lambda k: k not in ("id", "type", "data"))
    body.update(draw(st.dictionaries(unknown, json_values, max_size=2)))
    return json.dumps(body, allow_nan=False).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_valid_events(),
    # Bytes that look like JSON: syntax near-misses, odd numbers, literals.
    st.lists(
        st.sampled_from(
            [
                b"{",
                b"}",
                b"[",
                b"]",
                b'"',
                b":",
                b",",
                b"1e999",
                b"-0",
                b"NaN",
                b"Infinity",
                b"true",
                b"null",
                b'"id"',
                b"\\u0000",
                b"\xc3",
                b" ",
            ]
        ),
        max_size=30,
    ).map(b"".join),
)

# requests refuses control characters and leading spaces in a header value;
# non-UTF-8 bytes are covered by an xfail test of their own.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=120
)
signature_headers = st.one_of(
    header_text,
    st.builds(
        "t={},v1={}".format,
        st.one_of(st.integers(-(10**12), 10**12).map(str), header_text),
        st.one_of(st.text("0123456789abcdef", max_size=70), header_text),
    ),
)


def _now_header(raw):
    return sign_webhook(raw, SECRET, int(time.time()))


requests_to_send = st.one_of(
    # An unsigned or wrongly signed webhook.
    st.tuples(st.just("webhook"), bodies, signature_headers.map(lambda h: h or None)),
    # A fresh t and random v1 values: the signature itself is compared.
    st.tuples(st.just("webhook-fresh"), bodies, st.lists(header_text, max_size=3)),
    # A correctly signed webhook: the body is parsed, mostly a near miss.
    st.tuples(st.just("webhook-signed"), near_valid_events() | bodies, st.none()),
    # An order body, with and without the token.
    st.tuples(st.just("orders"), bodies, st.booleans()),
)


def _send(client, kind, raw, extra):
    if kind == "orders":
        headers = {**CLOSE, **(AUTH if extra else {})}
        return client.http.post(client.url("/orders"), data=raw, headers=headers)
    if kind == "webhook-signed":
        header = _now_header(raw)
    elif kind == "webhook-fresh":
        header = ",".join([f"t={int(time.time())}"] + [f"v1={v}" for v in extra])
    else:
        header = extra
    return post_webhook_raw(client, raw, header)


def _check_property(client, examples):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(requests_to_send)
    def property_holds(request):
        kind, raw, extra = request
        response = _send(client, kind, raw, extra)

        event(f"{kind} {response.status_code}")
        # Nothing here may pay, fail or create an order: every answer is a
        # clean refusal.
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert_error(response, response.status_code)
        order = client.get_order(PROPERTY_REF)
        assert order["status"] == "pending", order
        assert order["notifications"] == [], order

    property_holds()


def _assert_property_left_nothing(client, smtp, whatsapp):
    time.sleep(0.3)
    assert smtp.messages == [] and whatsapp.requests == []
    assert client.pay(PROPERTY_REF).json() == {"status": "paid"}
    order = client.wait_for_states(PROPERTY_REF)
    assert len(order["notifications"]) == 3


def test_random_requests_never_5xx_nor_change_anything(make_service, smtp, whatsapp):
    client = make_service().client
    client.create_order(PROPERTY_REF)

    _check_property(client, examples=200)

    _assert_property_left_nothing(client, smtp, whatsapp)


@pytest.mark.slow
def test_random_requests_never_5xx_long_run(make_service, smtp, whatsapp):
    client = make_service().client
    client.create_order(PROPERTY_REF)

    _check_property(client, examples=3000)

    _assert_property_left_nothing(client, smtp, whatsapp)


# -- POST /payments/webhook ----------------------------------------------------
#
# A case builds (raw body, X-Signature header or None) for an existing order
# `ref` and a fresh event id `evt`; the event id is reused by the valid webhook
# sent afterwards, so a refused event that was recorded anyway shows up as a
# `duplicate` there.


def _raw(ref, evt, **changes):
    """A valid event body for `ref`, with top-level or data.* changes."""
    body = event_body(ref, event_id=evt)
    for path, value in changes.items():
        where, _, name = path.rpartition("__")
        target = body["data"] if where == "data" else body
        if value is _DROP:
            target.pop(name)
        else:
            target[name] = value
    return json.dumps(body).encode()


_DROP = object()


def _signed(raw, secret=SECRET, at=None):
    return raw, sign_webhook(raw, secret, int(time.time()) if at is None else at)


def _signature_only(raw, at=None):
    """The v1 hex a correct sender would compute for `raw`."""
    header = _signed(raw, at=at)[1]
    return header.split("v1=")[1]


def _now():
    return int(time.time())


def _padded_event(ref, evt, size):
    body = json.loads(_raw(ref, evt))
    body["padding"] = ""
    body["padding"] = "x" * (size - len(json.dumps(body)))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


WEBHOOK_CASES = [
    # -- the signature header
    ("no header", lambda r, e: (_raw(r, e), None), 401),
    ("empty header", lambda r, e: (_raw(r, e), ""), 401),
    ("garbage header", lambda r, e: (_raw(r, e), "nonsense"), 401),
    (
        "no t",
        lambda r, e: (_raw(r, e), f"v1={_signature_only(_raw(r, e))}"),
        401,
    ),
    (
        "t not digits",
        lambda r, e: (_raw(r, e), f"t=soon,v1={_signature_only(_raw(r, e))}"),
        401,
    ),
    (
        "t negative",
        lambda r, e: (_raw(r, e), f"t=-{_now()},v1={_signature_only(_raw(r, e))}"),
        401,
    ),
    (
        "t with a fraction",
        lambda r, e: (_raw(r, e), f"t={_now()}.5,v1={_signature_only(_raw(r, e))}"),
        401,
    ),
    ("no v1", lambda r, e: (_raw(r, e), f"t={_now()}"), 401),
    (
        "v0 only",
        lambda r, e: (_raw(r, e), f"t={_now()},v0={_signature_only(_raw(r, e))}"),
        401,
    ),
    ("v1 empty", lambda r, e: (_raw(r, e), f"t={_now()},v1="), 401),
    (
        "oversized header",
        lambda r, e: (
            _raw(r, e),
            f"t={_now()},v1={_signature_only(_raw(r, e))}," + "v1=00" * 500,
        ),
        401,
    ),
    ("wrong secret", lambda r, e: _signed(_raw(r, e), secret="not-the-secret"), 401),
    ("stale t", lambda r, e: _signed(_raw(r, e), at=_now() - 301), 401),
    ("t far in the future", lambda r, e: _signed(_raw(r, e), at=_now() + 3600), 401),
    (
        "body tampered after signing",
        lambda r, e: (_raw(r, e, data__amount=1), _signed(_raw(r, e))[1]),
        401,
    ),
    (
        "signature of another t",
        lambda r, e: (
            _raw(r, e),
            f"t={_now()},v1={_signature_only(_raw(r, e), at=_now() - 10)}",
        ),
        401,
    ),
    # -- the body, signed correctly
    ("empty body", lambda r, e: _signed(b""), 400),
    ("not UTF-8", lambda r, e: _signed(b"\xff\xfe"), 400),
    ("UTF-16 JSON", lambda r, e: _signed(_raw(r, e).decode().encode("utf-16")), 400),
    ("invalid JSON", lambda r, e: _signed(b'{"id": "evt_1", "type": '), 400),
    ("JSON array", lambda r, e: _signed(b"[" + _raw(r, e) + b"]"), 400),
    ("JSON string", lambda r, e: _signed(b'"payment.succeeded"'), 400),
    ("JSON null", lambda r, e: _signed(b"null"), 400),
    (
        "NaN literal",
        lambda r, e: _signed(_raw(r, e).replace(b"15000", b"NaN", 1)),
        400,
    ),
    (
        "Infinity literal",
        lambda r, e: _signed(_raw(r, e).replace(b"15000", b"Infinity", 1)),
        400,
    ),
    (
        "number too large for a float",
        lambda r, e: _signed(_raw(r, e).replace(b"15000", b"1e400", 1)),
        400,
    ),
    (
        "deeply nested",
        lambda r, e: _signed(b"[" * 30000 + b"]" * 30000),
        400,
    ),
    ("missing id", lambda r, e: _signed(_raw(r, e, id=_DROP)), 400),
    ("missing type", lambda r, e: _signed(_raw(r, e, type=_DROP)), 400),
    ("missing data", lambda r, e: _signed(_raw(r, e, data=_DROP)), 400),
    (
        "missing data.order_reference",
        lambda r, e: _signed(_raw(r, e, data__order_reference=_DROP)),
        400,
    ),
    (
        "missing data.amount",
        lambda r, e: _signed(_raw(r, e, data__amount=_DROP)),
        400,
    ),
    (
        "missing data.currency",
        lambda r, e: _signed(_raw(r, e, data__currency=_DROP)),
        400,
    ),
    ("id empty", lambda r, e: _signed(_raw(r, e, id="  ")), 400),
    ("id a number", lambda r, e: _signed(_raw(r, e, id=12345)), 400),
    ("id too long", lambda r, e: _signed(_raw(r, e, id="e" * 192)), 400),
    ("id control characters", lambda r, e: _signed(_raw(r, e, id="evt\x00x")), 400),
    ("data a list", lambda r, e: _signed(_raw(r, e, data=[])), 400),
    ("data a string", lambda r, e: _signed(_raw(r, e, data="paid")), 400),
    ("amount a string", lambda r, e: _signed(_raw(r, e, data__amount="15000")), 400),
    ("amount true", lambda r, e: _signed(_raw(r, e, data__amount=True)), 400),
    ("amount a float", lambda r, e: _signed(_raw(r, e, data__amount=15000.0)), 400),
    ("amount negative", lambda r, e: _signed(_raw(r, e, data__amount=-15000)), 400),
    ("amount null", lambda r, e: _signed(_raw(r, e, data__amount=None)), 400),
    (
        "currency 4 letters",
        lambda r, e: _signed(_raw(r, e, data__currency="SARS")),
        400,
    ),
    ("currency digits", lambda r, e: _signed(_raw(r, e, data__currency="682")), 400),
    ("currency a number", lambda r, e: _signed(_raw(r, e, data__currency=682)), 400),
    (
        "reference a number",
        lambda r, e: _signed(_raw(r, e, data__order_reference=1)),
        400,
    ),
    (
        "reference too long",
        lambda r, e: _signed(_raw(r, e, data__order_reference=r + "x" * 64)),
        400,
    ),
    (
        "payment_id a number",
        lambda r, e: _signed(_raw(r, e, data__payment_id=9)),
        400,
    ),
    ("unknown type", lambda r, e: _signed(_raw(r, e, type="payment.refunded")), 400),
    ("type a list", lambda r, e: _signed(_raw(r, e, type=["payment.succeeded"])), 400),
    # -- well formed, but not this order's payment
    (
        "unknown order reference",
        lambda r, e: _signed(_raw(r, e, data__order_reference="NO-SUCH-ORDER")),
        404,
    ),
    ("wrong amount", lambda r, e: _signed(_raw(r, e, data__amount=14999)), 422),
    ("amount zero", lambda r, e: _signed(_raw(r, e, data__amount=0)), 422),
    ("wrong currency", lambda r, e: _signed(_raw(r, e, data__currency="USD")), 422),
    # -- size
    ("body over 64 KiB, unsigned", lambda r, e: (b"{" + b" " * 64 * KIB, None), 413),
    (
        "body of 70 KiB, signed",
        lambda r, e: _signed(_padded_event(r, e, 70 * KIB)),
        413,
    ),
    (
        "body of 64 KiB + 1, signed",
        lambda r, e: _signed(_padded_event(r, e, 64 * KIB + 1)),
        413,
    ),
]


@pytest.mark.parametrize(
    "build, status",
    [pytest.param(b, s, id=name) for name, b, s in WEBHOOK_CASES],
)
def test_bad_webhook_is_refused_and_changes_nothing(shared, build, status):
    client = shared.client
    ref, evt = new_reference(), new_event_id()
    client.create_order(ref)
    raw, header = build(ref, evt)

    response = post_webhook_raw(client, raw, header)

    assert_error(response, status)
    assert_untouched(client, ref, event_id=evt)


def test_webhook_of_exactly_64_kib_is_read(shared):
    """The limit is "over 64 KiB": a body of exactly 64 KiB is accepted."""
    client = shared.client
    ref, evt = new_reference(), new_event_id()
    client.create_order(ref)

    response = post_webhook_raw(client, *_signed(_padded_event(ref, evt, 64 * KIB)))

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "paid"}


def test_chunked_webhook_over_64_kib_is_refused(shared):
    client = shared.client
    ref = new_reference()
    client.create_order(ref)
    chunks = (b" " * KIB for _ in range(70))

    response = post_webhook_raw(client, chunks)

    assert_error(response, 413)
    assert_untouched(client, ref)


def test_failed_event_for_unknown_order_is_404(shared):
    client = shared.client
    body = event_body("NO-SUCH-ORDER", kind="payment.failed")
    assert_error(client.post_webhook(body), 404)


@pytest.mark.parametrize("field", ["id", "data__order_reference", "data__payment_id"])
def test_webhook_with_lone_surrogate_is_400(shared, field):
    client = shared.client
    ref, evt = new_reference(), new_event_id()
    client.create_order(ref)
    value = "\ud800" if field != "data__order_reference" else ref + "\udcff"
    raw = _raw(ref, evt, **{field: value})
    assert b"\\ud" in raw  # escaped by json.dumps: the body is valid JSON

    response = post_webhook_raw(client, *_signed(raw))

    assert_error(response, 400)
    assert_untouched(client, ref, event_id=evt)


def test_webhook_signature_header_not_utf8_is_401(shared):
    client = shared.client
    ref = new_reference()
    client.create_order(ref)

    response = post_webhook_raw(client, _raw(ref, new_event_id()), "t=\xb9,v1=00")

    assert_error(response, 401)


# -- POST /orders ---------------------------------------------------------------


def _order(ref, **changes):
    """A valid order body for `ref`, with top-level or nested changes."""
    body = order_body(ref)
    for path, value in changes.items():
        *parents, name = path.split("__")
        target = body
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        if value is _DROP:
            target.pop(name)
        else:
            target[name] = value
    return json.dumps(body).encode()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


ORDER_CASES = [
    # -- the token
    ("no token", lambda r: (_order(r), {}), 401),
    ("wrong token", lambda r: (_order(r), _bearer("not-the-token")), 401),
    ("token prefix", lambda r: (_order(r), _bearer(TOKEN[:-1])), 401),
    ("token longer", lambda r: (_order(r), _bearer(TOKEN + "x")), 401),
    ("Basic scheme", lambda r: (_order(r), {"Authorization": f"Basic {TOKEN}"}), 401),
    ("Bearer without token", lambda r: (_order(r), {"Authorization": "Bearer"}), 401),
    ("token without scheme", lambda r: (_order(r), {"Authorization": TOKEN}), 401),
    # -- the body
    ("empty body", lambda r: (b"", AUTH), 400),
    ("malformed JSON", lambda r: (_order(r)[:-1], AUTH), 400),
    ("not UTF-8", lambda r: (b"\xff\xfe" + _order(r), AUTH), 400),
    ("JSON array", lambda r: (b"[" + _order(r) + b"]", AUTH), 400),
    ("NaN amount", lambda r: (_order(r).replace(b"15000", b"NaN", 1), AUTH), 400),
    ("missing reference", lambda r: (_order(r, reference=_DROP), AUTH), 400),
    ("empty reference", lambda r: (_order(r, reference=" "), AUTH), 400),
    ("reference a number", lambda r: (_order(r, reference=1001), AUTH), 400),
    ("reference over 64", lambda r: (_order(r, reference=r + "x" * 64), AUTH), 400),
    (
        "reference control characters",
        lambda r: (_order(r, reference=r + "\x07"), AUTH),
        400,
    ),
    ("missing customer", lambda r: (_order(r, customer=_DROP), AUTH), 400),
    ("customer a string", lambda r: (_order(r, customer="Laila"), AUTH), 400),
    (
        "missing customer.name",
        lambda r: (_order(r, customer__name=_DROP), AUTH),
        400,
    ),
    (
        "missing customer.email",
        lambda r: (_order(r, customer__email=_DROP), AUTH),
        400,
    ),
    *[
        (
            f"bad email {email!r}",
            lambda r, email=email: (_order(r, customer__email=email), AUTH),
            400,
        )
        for email in ["laila", "laila@", "@example.com", "laila@example", "l a@b.co"]
    ],
    *[
        (
            f"bad phone {phone!r}",
            lambda r, phone=phone: (_order(r, customer__phone=phone), AUTH),
            400,
        )
        for phone in ["1234567", "9665011122334455", "9665-0111", "phone", 966501112]
    ],
    ("courier without phone", lambda r: (_order(r, courier__phone=_DROP), AUTH), 400),
    (
        "courier bad phone",
        lambda r: (_order(r, courier__phone="٩٦٦٥٠٤٤٤٥٥٦٦"), AUTH),
        400,
    ),
    ("missing amount", lambda r: (_order(r, amount=_DROP), AUTH), 400),
    *[
        (
            f"amount {amount!r}",
            lambda r, amount=amount: (_order(r, amount=amount), AUTH),
            400,
        )
        for amount in [0, -1, "15000", True, 150.5, 10**16]
    ],
    ("missing currency", lambda r: (_order(r, currency=_DROP), AUTH), 400),
    ("currency 4 letters", lambda r: (_order(r, currency="SARS"), AUTH), 400),
    ("currency non-ASCII", lambda r: (_order(r, currency="ريال"[:3]), AUTH), 400),
    ("items not a list", lambda r: (_order(r, items={"name": "x"}), AUTH), 400),
    ("items a string", lambda r: (_order(r, items="coffee"), AUTH), 400),
    ("item not an object", lambda r: (_order(r, items=["coffee"]), AUTH), 400),
    ("item quantity 0", lambda r: (_order(r, items__0__quantity=0), AUTH), 400),
    ("item quantity string", lambda r: (_order(r, items__0__quantity="2"), AUTH), 400),
    ("item without name", lambda r: (_order(r, items__0__name=_DROP), AUTH), 400),
    (
        "item negative unit amount",
        lambda r: (_order(r, items__0__unit_amount=-1), AUTH),
        400,
    ),
    (
        "too many items",
        lambda r: (
            _order(r, items=[{"name": "x", "quantity": 1, "unit_amount": 1}] * 201),
            AUTH,
        ),
        400,
    ),
    ("gateway_order_id a number", lambda r: (_order(r, gateway_order_id=7), AUTH), 400),
    # -- size
    ("body over 64 KiB", lambda r: (_order(r, address="x" * 64 * KIB), AUTH), 413),
]


@pytest.mark.parametrize(
    "build, status",
    [pytest.param(b, s, id=name) for name, b, s in ORDER_CASES],
)
def test_bad_order_is_refused_and_creates_nothing(shared, build, status):
    client = shared.client
    ref = new_reference("O")
    raw, headers = build(ref)

    response = client.http.post(
        client.url("/orders"),
        data=raw,
        headers={"Content-Type": "application/json", **headers, **CLOSE},
        timeout=10,
    )

    assert_error(response, status)
    missing = client.http.get(client.url(f"/orders/{ref}"), headers=AUTH)
    assert_error(missing, 404)
    # The same reference is still free for a good order.
    client.create_order(ref)


def test_duplicate_reference_is_409_and_keeps_the_first(shared):
    client = shared.client
    ref = new_reference("O")
    first = client.create_order(ref)

    again = client.http.post(
        client.url("/orders"),
        json=order_body(ref, amount=99, courier=False),
        headers=AUTH,
        timeout=10,
    )

    assert_error(again, 409)
    order = client.get_order(ref)
    assert order == first
    assert_untouched(client, ref)


def test_order_with_only_the_required_fields_is_created(shared):
    """The table's base case: a minimal body passes, so the cases test one
    thing each."""
    client = shared.client
    ref = new_reference("O")
    body = {
        "reference": ref,
        "amount": 1,
        "currency": "sar",
        "customer": {"name": "L", "email": "l@example.com"},
    }
    response = client.http.post(client.url("/orders"), json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == "SAR"
    assert response.json()["courier"] is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("reference", "{ref}\nB"),
        ("reference", "{ref}\n\n:B"),
        ("customer__name", "Laila\nBcc: someone@example.com"),
    ],
    ids=["reference", "reference-two", "customer-name"],
)
def test_line_break_in_a_header_field_is_400(shared, field, value):
    client = shared.client
    ref = new_reference("O")
    response = client.http.post(
        client.url("/orders"),
        data=_order(ref, **{field: value.format(ref=ref)}),
        headers={**AUTH, **CLOSE},
        timeout=10,
    )
    assert_error(response, 400)


@pytest.mark.parametrize("field", ["reference", "customer__name", "address"])
def test_order_with_lone_surrogate_is_400(shared, field):
    client = shared.client
    ref = new_reference("O")
    value = ref + "\ud800" if field == "reference" else "x\udfff"
    response = client.http.post(
        client.url("/orders"),
        data=_order(ref, **{field: value}),
        headers={**AUTH, **CLOSE},
        timeout=10,
    )
    assert_error(response, 400)


def test_authorization_header_not_utf8_is_401(shared):
    client = shared.client
    response = client.http.post(
        client.url("/orders"),
        data=_order(new_reference("O")),
        headers={"Authorization": "Bearer \xe9", **CLOSE},
        timeout=10,
    )
    assert_error(response, 401)


# -- GET /orders/<key> ------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["NO-SUCH-ORDER", "999999", "0", "-1", "9" * 40, "%D9%84", "%ff"]
)
def test_unknown_order_is_404(shared, key):
    client = shared.client
    response = client.http.get(client.url(f"/orders/{key}"), headers=AUTH)
    assert_error(response, 404)


@pytest.mark.parametrize("headers", [{}, _bearer("wrong")], ids=["none", "wrong"])
def test_reading_an_order_needs_the_token(shared, headers):
    client = shared.client
    ref = new_reference("G")
    client.create_order(ref)
    assert_error(client.http.get(client.url(f"/orders/{ref}"), headers=headers), 401)


# -- GET /payments/return ---------------------------------------------------------


def _return_params(ref, **changes):
    params = {
        "order_reference": ref,
        "status": "paid",
        "payment_id": f"pay_{ref}",
        "t": str(int(time.time())),
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v is not _DROP}


def _signed_query(params, secret=SECRET):
    return urlencode({**params, "signature": sign_return(params, secret)})


RETURN_CASES = [
    ("no query at all", lambda r: "", 401),
    (
        "no signature",
        lambda r: urlencode(_return_params(r)),
        401,
    ),
    (
        "no t",
        lambda r: _signed_query(_return_params(r, t=_DROP)),
        401,
    ),
    (
        "missing order_reference",
        lambda r: _signed_query(_return_params(r, order_reference=_DROP)),
        400,
    ),
    (
        "missing status",
        lambda r: _signed_query(_return_params(r, status=_DROP)),
        400,
    ),
    (
        "missing payment_id",
        lambda r: _signed_query(_return_params(r, payment_id=_DROP)),
        400,
    ),
    (
        "unknown status",
        lambda r: _signed_query(_return_params(r, status="maybe")),
        400,
    ),
    (
        "bad signature",
        lambda r: _signed_query(_return_params(r), secret="not-the-secret"),
        401,
    ),
    (
        "signature of other params",
        lambda r: urlencode(
            {
                **_return_params(r),
                "signature": sign_return(_return_params(r, status="failed"), SECRET),
            }
        ),
        401,
    ),
    (
        "stale t",
        lambda r: _signed_query(_return_params(r, t=str(int(time.time()) - 301))),
        401,
    ),
    (
        "t in the future",
        lambda r: _signed_query(_return_params(r, t=str(int(time.time()) + 3600))),
        401,
    ),
    (
        "t not digits",
        lambda r: _signed_query(_return_params(r, t="now")),
        401,
    ),
    (
        "repeated parameter",
        lambda r: _signed_query(_return_params(r)) + f"&order_reference={r}",
        400,
    ),
    (
        "repeated signature",
        lambda r: _signed_query(_return_params(r)) + "&signature=00",
        400,
    ),
    (
        "unknown order",
        lambda r: _signed_query(_return_params(r, order_reference="NO-SUCH-ORDER")),
        404,
    ),
]


@pytest.mark.parametrize(
    "build, status",
    [pytest.param(b, s, id=name) for name, b, s in RETURN_CASES],
)
def test_bad_return_is_refused_and_changes_nothing(shared, build, status):
    client = shared.client
    ref = new_reference("R")
    client.create_order(ref)

    response = client.http.get(
        client.url("/payments/return?" + build(ref)),
        headers=CLOSE,
        allow_redirects=False,
        timeout=10,
    )

    assert_error(response, status)
    assert_untouched(client, ref)


def test_return_with_query_not_utf8_is_400(shared):
    client = shared.client
    ref = new_reference("R")
    client.create_order(ref)
    query = _signed_query(_return_params(ref)) + "&note=%ff"

    response = client.http.get(
        client.url("/payments/return?" + query),
        headers=CLOSE,
        allow_redirects=False,
        timeout=10,
    )

    assert_error(response, 400)


def test_return_with_huge_t_is_401(shared):
    client = shared.client
    ref = new_reference("R")
    client.create_order(ref)
    query = _signed_query(_return_params(ref, t="1" * 5000))

    response = client.http.get(
        client.url("/payments/return?" + query),
        headers=CLOSE,
        allow_redirects=False,
        timeout=10,
    )

    assert_error(response, 401)


# -- routes and methods -----------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("POST", "/payments/nope/webhook", 404),
        ("GET", "/orders", 405),
        ("GET", "/orders/", 404),
        ("DELETE", "/orders/1", 405),
        ("PUT", "/orders/1", 405),
        ("PUT", "/orders", 405),
        ("GET", "/payments/webhook", 405),
        ("PUT", "/payments/webhook", 405),
        ("POST", "/payments/return", 405),
        ("POST", "/healthz", 405),
    ],
)
def test_unknown_route_or_method_answers_json(shared, method, path, status):
    client = shared.client
    response = client.http.request(
        method, client.url(path), headers={**AUTH, **CLOSE}, timeout=10
    )
    assert_error(response, status)
