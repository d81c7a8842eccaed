"""A loopback stand-in for the part of MyFatoorah's API the service asks:
`POST /v2/getPaymentStatus` with `{"Key": ..., "KeyType": "PaymentId"}` and
`Authorization: Bearer <API key>`, answered in MyFatoorah's envelope
`{"IsSuccess", "Message", "ValidationErrors", "Data"}`."""

import json
from decimal import Decimal

from tests.fakes.json_api import JsonApiStandIn


def _number(value):
    """Decimal amounts are written as JSON numbers, as MyFatoorah writes them."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class MyFatoorahApiStandIn(JsonApiStandIn):
    def __init__(self, api_key):
        super().__init__()
        self.api_key = api_key
        self.payments = {}  # PaymentId -> the `Data` object to answer with
        self.hang = 0.0  # seconds to wait before answering

    def record(self, request, body):
        self.calls.append((request.path, body))

    def hold(self):
        if self.hang:
            self._release.wait(self.hang)

    def encode(self, answer):
        return json.dumps(answer, default=_number).encode()

    @staticmethod
    def _error(message):
        return {
            "IsSuccess": False,
            "Message": message,
            "ValidationErrors": None,
            "Data": None,
        }

    def answer(self, request, body):
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, self._error("Unauthorized")
        if self.fail_with:
            return self.fail_with, self._error("Internal server error")
        if request.path != "/v2/getPaymentStatus" or not isinstance(body, dict):
            return 404, self._error("Not found")
        if body.get("KeyType") != "PaymentId":
            return 400, self._error("Invalid KeyType")
        data = self.payments.get(body.get("Key"))
        if data is None:
            return 400, {
                "IsSuccess": False,
                "Message": "Invalid data",
                "ValidationErrors": [{"Name": "Key", "Error": "Invalid Key"}],
                "Data": None,
            }
        return 200, {
            "IsSuccess": True,
            "Message": "",
            "ValidationErrors": None,
            "Data": data,
        }
