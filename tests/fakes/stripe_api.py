"""A loopback stand-in for the part of Stripe's API the service asks:
`GET /v1/checkout/sessions/<id>` with the secret key as basic-auth user."""

import base64

from tests.fakes.json_api import JsonApiStandIn


class StripeApiStandIn(JsonApiStandIn):
    def __init__(self, secret_key):
        super().__init__()
        self.secret_key = secret_key
        self.sessions = {}  # id -> the session object to answer with
        self.wrong_id = False  # answer with another session's id

    def answer(self, request, body):
        expected = base64.b64encode(f"{self.secret_key}:".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return 401, {"error": {"type": "invalid_request_error"}}
        if self.fail_with:
            return self.fail_with, {"error": {"type": "api_error"}}
        prefix = "/v1/checkout/sessions/"
        key = request.path[len(prefix) :]
        session = self.sessions.get(key)
        if not request.path.startswith(prefix) or session is None:
            return 404, {"error": {"type": "invalid_request_error"}}
        return 200, dict(session, id="cs_test_other" if self.wrong_id else key)
