"""Signatures of the generic gateway scheme: the webhook header and the return.

Webhook: `X-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, the hex being
HMAC-SHA256(secret, "<t>." + raw body). Return: `signature` = HMAC-SHA256 over
the other query parameters sorted by name, url-encoded as `k=v&k=v`.
Several secrets may be configured while one is rotated out.
"""

import hashlib
import hmac
from urllib.parse import urlencode

from notifier.errors import RequestError

MAX_HEADER = 2048


def _hmac(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def parse_signature_header(header):
    """(t, [v1 ...]) from the header; RequestError(401) if it is malformed."""
    if not header or len(header) > MAX_HEADER:
        raise RequestError("missing or oversized signature header", 401)
    timestamp, signatures = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value.strip()
        elif key == "v1":
            signatures.append(value.strip().lower())
    if (
        timestamp is None
        or not timestamp.isascii()
        or not timestamp.isdigit()
        or len(timestamp) > 12
    ):
        raise RequestError("signature header has no valid timestamp", 401)
    if not signatures:
        raise RequestError("signature header has no v1 signature", 401)
    return int(timestamp), signatures


def _check_fresh(timestamp, now, tolerance):
    if abs(now - timestamp) > tolerance:
        raise RequestError("signature timestamp is outside the tolerance", 401)


def _any_match(expected, offered):
    # Compare every pair so the time taken does not depend on which matched.
    # Bytes, because compare_digest refuses non-ASCII text.
    matched = False
    for want in expected:
        for got in offered:
            matched |= hmac.compare_digest(
                want.encode(), got.encode("utf-8", "replace")
            )
    return matched


def verify_webhook(raw_body, header, secrets, now, tolerance):
    """Raise RequestError(401) unless a v1 matches a secret and t is fresh."""
    timestamp, offered = parse_signature_header(header)
    _check_fresh(timestamp, now, tolerance)
    signed = str(timestamp).encode() + b"." + raw_body
    expected = [_hmac(secret, signed) for secret in secrets]
    if not _any_match(expected, offered):
        raise RequestError("signature does not match", 401)
    return timestamp


def sign_webhook(raw_body, secret, timestamp):
    """The header value a sender would put on `raw_body` (for tools and tests)."""
    signed = str(timestamp).encode() + b"." + raw_body
    return f"t={timestamp},v1={_hmac(secret, signed)}"


def return_payload(params):
    """The signed string of a browser return: sorted `k=v&k=v`, no signature."""
    items = sorted((k, v) for k, v in params.items() if k != "signature")
    return urlencode(items).encode()


def sign_return(params, secret):
    return _hmac(secret, return_payload(params))


def verify_return(params, secrets, now, tolerance):
    """Raise RequestError(401) unless the query's signature and t are good."""
    offered = (params.get("signature") or "").strip().lower()
    stamp = params.get("t") or ""
    if not offered or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise RequestError("missing signature or timestamp", 401)
    _check_fresh(int(stamp), now, tolerance)
    expected = [sign_return(params, secret) for secret in secrets]
    if not _any_match(expected, [offered]):
        raise RequestError("signature does not match", 401)
