"""Asking a gateway's own API about a payment."""

import json

import requests

from notifier.errors import RequestError


def get_json(http, gateway, what, url, settings, loads=json.loads, **options):
    """GET one object from a gateway's API as a dict.

    RequestError 404 when the gateway knows no such `what`, 502 when it cannot
    be reached or answers anything else (so a webhook is retried later).
    """
    try:
        response = http.get(url, timeout=settings.gateway_api_timeout, **options)
    except requests.RequestException:
        raise RequestError(f"{gateway} cannot be reached", 502) from None
    if response.status_code == 404:
        raise RequestError(f"{gateway} knows no such {what}", 404)
    if response.status_code != 200:
        raise RequestError(f"{gateway} answered {response.status_code}", 502)
    try:
        body = loads(response.content)
    except (UnicodeDecodeError, ValueError, RecursionError, ArithmeticError):
        raise RequestError(
            f"{gateway} answered something that is not JSON", 502
        ) from None
    if not isinstance(body, dict):
        raise RequestError(f"{gateway} answered something unexpected", 502)
    return body
