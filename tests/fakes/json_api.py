"""The common part of the loopback stand-ins for gateways' own APIs: a small
real HTTP server on 127.0.0.1 that records each call and answers JSON."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonApiStandIn:
    """Subclasses define `answer(request, body) -> (status, object or bytes)`;
    `hold()` may stall an answer (a timeout test), `record()` what is kept."""

    def __init__(self):
        self.fail_with = None  # an HTTP status to answer every request with
        self.calls = []
        self._release = threading.Event()  # set when the stand-in closes
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in._handle(self)

            do_POST = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def record(self, request, body):
        self.calls.append(request.path)

    def hold(self):
        pass

    def encode(self, answer):
        return json.dumps(answer).encode()

    def answer(self, request, body):
        raise NotImplementedError

    def _handle(self, request):
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.record(request, body)
        self.hold()
        status, answer = self.answer(request, body)
        data = answer if isinstance(answer, bytes) else self.encode(answer)
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client gave up waiting

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
