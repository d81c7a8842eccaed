"""Request helpers for the Bottle routes: bodies, JSON, tokens, errors."""

import hmac
import json

from notifier.errors import RequestError

MAX_BODY = 64 * 1024


def read_body(request, limit=MAX_BODY):
    """The raw body, at most `limit` bytes; RequestError(413) beyond it."""
    length = request.content_length
    if length > limit:
        raise RequestError("body is larger than 64 KiB", 413)
    stream = request.environ["wsgi.input"]
    data = stream.read(length if length >= 0 else limit + 1)
    if len(data) > limit:
        raise RequestError("body is larger than 64 KiB", 413)
    return data


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(raw):
    """Decode UTF-8 JSON strictly; RequestError(400) for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise RequestError("body is not valid JSON") from None


def raw_header(request, name, default=""):
    """A header as the WSGI server passed it (latin-1 text): never a decode
    error, whatever bytes a client sent."""
    return request.environ.get("HTTP_" + name.upper().replace("-", "_"), default)


def check_bearer(request, token):
    """RequestError unless the Authorization header carries `token`."""
    if not token:
        raise RequestError("the orders API is not configured (API_TOKEN)", 503)
    header = raw_header(request, "Authorization")
    scheme, _, offered = header.partition(" ")
    if scheme.lower() != "bearer" or not offered:
        raise RequestError("missing bearer token", 401)
    if not hmac.compare_digest(offered.strip().encode("latin-1"), token.encode()):
        raise RequestError("bad bearer token", 401)


def single_query(request):
    """Query parameters as a dict of UTF-8 strings; a repeated name is bad."""
    try:
        query = request.query.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("query string is not UTF-8") from None
    params = {}
    for key in query.keys():
        values = query.getall(key)
        if len(values) != 1:
            raise RequestError(f"query parameter {key} is repeated")
        params[key] = values[0]
    return params


def error_body(message):
    return json.dumps({"error": message})
