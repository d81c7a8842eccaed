"""A loopback stand-in for the part of Stripe's API the service asks:
`GET /v1/checkout/sessions/<id>` with the secret key as basic-auth user."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StripeApiStandIn:
    def __init__(self, secret_key):
        self.secret_key = secret_key
        self.sessions = {}  # id -> the session object to answer with
        self.fail_with = None  # an HTTP status to answer every request with
        self.wrong_id = False  # answer with another session's id
        self.calls = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.calls.append(self.path)
                status, body = stand_in._answer(self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, request):
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

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
