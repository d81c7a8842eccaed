"""What a gateway adapter is given and gives back.

An adapter is a module with:

- `NAME`, the `<gateway>` of its routes, and `SETTINGS`, the variables that
  `configured` needs (named in the 503 answer);
- `configured(settings)`: whether its secrets are set (else its routes 503);
- `webhook(callback, settings, http)`: verify the server-to-server callback
  (before parsing anything else), then return the `Payment` it reports, or
  None for an event the shop does not act on (answered 200 `ignored`);
- `browser_return(callback, settings, http)`: the customer's return, as a
  `Return` (a Payment to apply, or none, and where to send the browser);
- `simulate(order, failed, settings, now)`: the `Simulated` callback the
  gateway would send for `order` (a dict as GET /orders shows it), signed
  with the configured secret, for `python server.py simulate`.

Failures are RequestError: 401 for a bad signature, 400 for a malformed
callback, 404 for an unknown order or payment, 502 when the gateway's API
answers badly or cannot be reached (the gateway then retries).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Callback:
    """One request as the gateway sent it."""

    raw: bytes  # the body, unparsed
    query: dict  # query parameters, one value each, UTF-8 text
    headers: object  # callable: header name -> value as received, or None
    now: float  # unix seconds when it arrived

    def header(self, name):
        return self.headers(name)


@dataclass(frozen=True)
class Return:
    """What a browser return comes to."""

    payment: object  # a Payment to apply, or None when nothing changes
    paid: bool  # redirect to SUCCESS_URL (True) or FAILURE_URL
    reference: str | None = None  # the order, when `payment` is None


@dataclass(frozen=True)
class Simulated:
    """A callback to send to the running service."""

    method: str  # "POST" or "GET"
    route: str  # "webhook" or "return"
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
