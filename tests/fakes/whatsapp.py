"""A real HTTP server on 127.0.0.1 standing in for the WhatsApp Cloud API."""

from __future__ import annotations

import itertools
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"
API_VERSION = "v21.0"
_MESSAGES_PATH = re.compile(r"^/[^/?]+/(?P<phone_id>[^/?]+)/messages/?(\?.*)?$")
_HANG = re.compile(r"^hang:(\d+(\.\d*)?|\.\d+)$")

Response = tuple[int, Any, dict[str, str]]


@dataclass
class Call:
    """One HTTP request as received by the stand-in."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float
    method: str = "POST"
    status: int | None = None
    response: Any = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def phone_number_id(self) -> str | None:
        match = _MESSAGES_PATH.match(self.path)
        return match.group("phone_id") if match else None


def _graph_error(
    code: int,
    message: str,
    subcode: int | None = None,
    details: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "A1"
    return {"error": error}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], stand_in: WhatsAppStandIn) -> None:
        self.stand_in = stand_in
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.accepted = 0
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)
            self.accepted += 1

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.stand_in._handle(self)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _dispatch

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, status: int, body: Any, headers: dict[str, str]) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class WhatsAppStandIn:
    """HTTP server speaking the Cloud API `POST /{version}/{phone_id}/messages`.

    The port is chosen on the first start() and kept across restarts, so a
    test can stop the server to simulate an outage and start it again.
    """

    def __init__(self, expected_token: str | None = None) -> None:
        self.host = HOST
        self.port: int | None = None
        self.expected_token = expected_token
        self.delay = 0.0
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._script: list[Response | str] = []
        self._ids = itertools.count(1)
        self._accepted_before = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> WhatsAppStandIn:
        """Start listening; returns self."""
        if self._server is not None:
            raise RuntimeError("WhatsAppStandIn is already running")
        server = _Server((HOST, self.port or 0), self)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"whatsapp-stand-in-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections; safe to call twice."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.drop_connections()
        server.server_close()
        self._accepted_before += server.accepted
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> WhatsAppStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL; clients post to f"{url}/{phone_number_id}/messages"."""
        if self.port is None:
            raise RuntimeError("WhatsAppStandIn was never started")
        return f"http://{HOST}:{self.port}/{API_VERSION}"

    # inspection and scripting

    @property
    def requests(self) -> list[Call]:
        """Snapshot of received requests in arrival order."""
        with self._cond:
            return list(self._calls)

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted so far (keep-alive reuse check)."""
        server = self._server
        return self._accepted_before + (server.accepted if server else 0)

    def delivered(self) -> list[Call]:
        """Requests the stand-in answered with a 200 (message sent)."""
        with self._cond:
            return [call for call in self._calls if call.status == 200]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Call]:
        """Wait until at least `count` requests arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self._calls) >= count, timeout=timeout
            ):
                raise AssertionError(
                    f"WhatsApp stand-in: expected at least {count} request(s) "
                    f"within {timeout}s, got {len(self._calls)}"
                )
            return list(self._calls)

    def script(self, *responses: Response | tuple[int, Any] | str) -> None:
        """Queue answers for the next valid requests.

        Each answer is `(status, json_body_or_None, headers)`, "hang:SECONDS"
        (wait, then answer success) or "close" (drop the connection without
        answering). Once the queue is empty, requests succeed again.
        """
        queued: list[Response | str] = []
        for response in responses:
            if isinstance(response, str):
                if response != "close" and not _HANG.match(response):
                    raise ValueError(f"unknown scripted response: {response!r}")
                queued.append(response)
            elif isinstance(response, tuple) and len(response) in (2, 3):
                status, body, *rest = response
                queued.append((int(status), body, dict(rest[0]) if rest else {}))
            else:
                raise ValueError(f"unknown scripted response: {response!r}")
        with self._cond:
            self._script.extend(queued)

    @staticmethod
    def error(
        code: int,
        status: int = 400,
        message: str | None = None,
        *,
        subcode: int | None = None,
        details: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A Cloud API error answer, e.g. `error(131056, status=400)`."""
        body = _graph_error(
            code, message or f"(#{code}) Stand-in error", subcode, details
        )
        return (status, body, dict(headers or {}))

    # server side, runs on a handler thread per connection

    def _handle(self, req: _Handler) -> None:
        raw = req.read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        call = Call(
            path=req.path,
            headers=dict(req.headers.items()),
            body=body,
            raw=raw,
            at=time.monotonic(),
            method=req.command,
        )
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
            plan = self._plan(call)
            delay = self.delay
        if isinstance(plan, str) and plan.startswith("hang:"):
            delay += float(plan.split(":", 1)[1])
            plan = "ok"
        stopped = delay > 0 and req.server.stopping.wait(delay)
        if stopped or plan == "close":
            req.close_connection = True
            return
        if plan == "ok":
            plan = self._success(call)
        status, response_body, headers = plan
        with self._cond:
            call.status, call.response = status, response_body
        req.answer(status, response_body, headers)

    def _plan(self, call: Call) -> Response | str:
        if self.expected_token is not None:
            if call.header("Authorization") != f"Bearer {self.expected_token}":
                return self.error(
                    190,
                    status=401,
                    message="Invalid OAuth access token - Cannot parse access token",
                    headers={
                        "WWW-Authenticate": 'OAuth "Facebook Platform" '
                        '"invalid_token" "Invalid OAuth access token"'
                    },
                )
        if call.method != "POST" or call.phone_number_id is None:
            return self.error(
                100,
                status=400,
                message=f"Unsupported {call.method.lower()} request.",
                subcode=33,
            )
        problem = self._invalid(call.body)
        if problem:
            return self.error(100, message=problem)
        return self._script.pop(0) if self._script else "ok"

    @staticmethod
    def _invalid(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "(#100) Invalid parameter"
        for name in ("messaging_product", "to"):
            if not body.get(name):
                return f"(#100) The parameter {name} is required."
        if body["messaging_product"] != "whatsapp":
            return "(#100) Param messaging_product must be one of {WHATSAPP}"
        return None

    def _success(self, call: Call) -> Response:
        to = call.body["to"]
        with self._cond:
            wamid = f"wamid.{next(self._ids)}"
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid}],
            },
            {},
        )
