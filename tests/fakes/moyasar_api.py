"""A loopback stand-in for the part of Moyasar's API the service asks:
`GET /v1/payments/<id>` with the secret key as basic-auth user (empty
password), answering the payment object, 404 for an unknown payment."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MoyasarApiStandIn:
    def __init__(self, secret_key):
        self.secret_key = secret_key
        self.payments = {}  # id -> the payment object to answer with
        self.fail_with = None  # an HTTP status to answer every request with
        self.hang = False  # hold every answer until the stand-in closes
        self.calls = []
        self._release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.calls.append(self.path)
                if stand_in.hang:
                    stand_in._release.wait(10)
                status, body = stand_in._answer(self)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _answer(self, request):
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

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
