"""A loopback stand-in for the part of Moyasar's API the service asks:
`GET /v1/payments/<id>` with the secret key as basic-auth user (empty
password), answering the payment object, 404 for an unknown payment."""

import base64

from tests.fakes.json_api import JsonApiStandIn


class MoyasarApiStandIn(JsonApiStandIn):
    def __init__(self, secret_key):
        super().__init__()
        self.secret_key = secret_key
        self.payments = {}  # id -> the payment object to answer with
        self.hang = False  # hold every answer until the stand-in closes

    def hold(self):
        if self.hang:
            self._release.wait(10)

    def answer(self, request, body):
        expected = base64.b64encode(f"{self.secret_key}:".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return 401, {"type": "authentication_error", "message": "Invalid key"}
        if self.fail_with:
            return self.fail_with, {"type": "api_error", "message": "Server error"}
        prefix = "/v1/payments/"
        payment = self.payments.get(request.path[len(prefix) :])
        if not request.path.startswith(prefix) or payment is None:
            return 404, {"type": "invalid_request_error", "message": "Not found"}
        return 200, payment
