"""A small client of the service's HTTP outside, as a shop and a gateway use it."""

import json
import time
import uuid
from urllib.parse import urlencode

import requests

from notifier.signing import sign_return, sign_webhook

TOKEN = "test-api-token"
SECRET = "whsec-test-secret"


def order_body(reference, amount=15000, currency="SAR", courier=True, **extra):
    body = {
        "reference": reference,
        "amount": amount,
        "currency": currency,
        "customer": {
            "name": "ليلى Customer",
            "email": "laila@example.com",
            "phone": "966501112233",
        },
        "address": "حي النخيل، الرياض",
        "items": [{"name": "قهوة", "quantity": 2, "unit_amount": amount // 2}],
    }
    if courier:
        body["courier"] = {"name": "Omar", "phone": "966504445566"}
    body.update(extra)
    return body


def event_body(reference, event_id=None, amount=15000, currency="SAR", kind=None):
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "type": kind or "payment.succeeded",
        "data": {
            "order_reference": reference,
            "amount": amount,
            "currency": currency,
            "payment_id": f"pay_{reference}",
        },
    }


class Client:
    """Talks to one running service at `base_url`."""

    def __init__(self, base_url, token=TOKEN, secret=SECRET):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.secret = secret
        self.http = requests.Session()

    def close(self):
        self.http.close()

    def url(self, path):
        return self.base_url + path

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def create_order(self, reference, **fields):
        response = self.http.post(
            self.url("/orders"),
            json=order_body(reference, **fields),
            headers=self.auth(),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def get_order(self, key):
        response = self.http.get(
            self.url(f"/orders/{key}"), headers=self.auth(), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def post_webhook(self, body, secret=None, timestamp=None, session=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        header = sign_webhook(raw, secret or self.secret, stamp)
        return (session or self.http).post(
            self.url("/payments/webhook"),
            data=raw,
            headers={"X-Signature": header, "Content-Type": "application/json"},
            timeout=30,
        )

    def pay(self, reference, **event):
        return self.post_webhook(event_body(reference, **event))

    def return_url(self, reference, status="paid", payment_id=None, secret=None):
        params = {
            "order_reference": reference,
            "status": status,
            "payment_id": payment_id or f"pay_{reference}",
            "t": str(int(time.time())),
        }
        params["signature"] = sign_return(params, secret or self.secret)
        return self.url("/payments/return?" + urlencode(params))

    def wait_for_states(self, key, states=("sent",), timeout=15.0):
        """Wait until every notification of the order is in one of `states`."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.get_order(key)
            found = [n["state"] for n in order["notifications"]]
            if found and all(state in states for state in found):
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {key} notifications stuck: {found}")
            time.sleep(0.05)
