"""A loopback stand-in for the part of Tap's API the service asks:
`GET /v2/charges/<id>` with `Authorization: Bearer <secret key>`."""

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def encode(charge):
    """JSON as Tap writes it: amounts are plain numbers (Decimal -> number)."""
    return json.dumps(
        charge, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)
    ).encode()


class TapApiStandIn:
    def __init__(self, secret_key):
        self.secret_key = secret_key
        self.charges = {}  # id -> the charge object to answer with
        self.fail_with = None  # an HTTP status to answer every request with
        self.hang_seconds = 0  # how long to stall before answering
        self.calls = []
        self._released = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.calls.append(self.path)
                if stand_in.hang_seconds:
                    stand_in._released.wait(stand_in.hang_seconds)
                status, data = stand_in._answer(self)
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
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return 401, b'{"errors": [{"code": "2107", "description": "Unauthorized"}]}'
        if self.fail_with:
            return self.fail_with, b'{"errors": [{"code": "500"}]}'
        prefix = "/v2/charges/"
        charge = self.charges.get(request.path[len(prefix) :])
        if not request.path.startswith(prefix) or charge is None:
            return 404, b'{"errors": [{"code": "1140", "description": "Not Found"}]}'
        return 200, encode(charge)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
