"""A loopback stand-in for the part of MyFatoorah's API the service asks:
`POST /v2/getPaymentStatus` with `{"Key": ..., "KeyType": "PaymentId"}` and
`Authorization: Bearer <API key>`, answered in MyFatoorah's envelope
`{"IsSuccess", "Message", "ValidationErrors", "Data"}`."""

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _number(value):
    """Decimal amounts are written as JSON numbers, as MyFatoorah writes them."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class MyFatoorahApiStandIn:
    def __init__(self, api_key):
        self.api_key = api_key
        self.payments = {}  # PaymentId -> the `Data` object to answer with
        self.fail_with = None  # an HTTP status to answer every request with
        self.hang = 0.0  # seconds to wait before answering
        self.calls = []  # (path, parsed body)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                stand_in.calls.append((self.path, body))
                if stand_in.hang:
                    time.sleep(stand_in.hang)
                status, answer = stand_in._answer(self, body)
                data = json.dumps(answer, default=_number).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _error(message):
        return {
            "IsSuccess": False,
            "Message": message,
            "ValidationErrors": None,
            "Data": None,
        }

    def _answer(self, request, body):
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

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
