"""A loopback stand-in for the part of Tap's API the service asks:
`GET /v2/charges/<id>` with `Authorization: Bearer <secret key>`."""

import json
from decimal import Decimal

from tests.fakes.json_api import JsonApiStandIn


def encode(charge):
    """JSON as Tap writes it: amounts are plain numbers (Decimal -> number)."""
    return json.dumps(
        charge, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)
    ).encode()


class TapApiStandIn(JsonApiStandIn):
    def __init__(self, secret_key):
        super().__init__()
        self.secret_key = secret_key
        self.charges = {}  # id -> the charge object to answer with
        self.hang_seconds = 0  # how long to stall before answering

    def hold(self):
        if self.hang_seconds:
            self._release.wait(self.hang_seconds)

    def answer(self, request, body):
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return 401, b'{"errors": [{"code": "2107", "description": "Unauthorized"}]}'
        if self.fail_with:
            return self.fail_with, b'{"errors": [{"code": "500"}]}'
        prefix = "/v2/charges/"
        charge = self.charges.get(request.path[len(prefix) :])
        if not request.path.startswith(prefix) or charge is None:
            return 404, b'{"errors": [{"code": "1140", "description": "Not Found"}]}'
        return 200, encode(charge)
