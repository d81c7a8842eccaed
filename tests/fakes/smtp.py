"""A real SMTP server on 127.0.0.1 for tests, built on aiosmtpd."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
_REPLY = re.compile(r"^[2-5]\d\d( .*)?$")
_HANG = re.compile(r"^hang:(\d+(\.\d*)?|\.\d+)$")


@dataclass
class Received:
    """One message the server accepted with a 2xx reply.

    `raw` is the DATA payload as sent on the wire (CRLF line ends, dot
    stuffing removed); `message` is parsed from it with LF line ends.
    """

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    tls: bool = False
    at: float = field(default_factory=time.monotonic)
    peer: tuple | None = None  # the client's (host, port): one per connection


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _parse(raw: bytes) -> EmailMessage:
    """Parse wire bytes (CRLF lines) the way the email package expects (LF)."""
    return BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))


class _Handler:
    def __init__(self, owner: SmtpStandIn) -> None:
        self._owner = owner

    async def handle_DATA(self, server, session, envelope) -> str:
        return await self._owner._on_data(session, envelope)


class SmtpStandIn:
    """SMTP server that records accepted messages and plays scripted replies.

    With `tls_context` the server offers STARTTLS; with `implicit_tls=True`
    as well it speaks TLS from the first byte instead (SMTPS). The port is
    chosen on the first start() and kept across restarts, so a test can stop
    the server to simulate an outage and start it again.
    """

    def __init__(
        self,
        tls_context: ssl.SSLContext | None = None,
        *,
        implicit_tls: bool = False,
        ready_timeout: float = 10.0,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.host = HOST
        self.implicit_tls = implicit_tls
        self.port: int | None = None
        self.tls_context = tls_context
        self.ready_timeout = ready_timeout
        self.delay = 0.0
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._script: list[str] = []
        self._attempts = 0
        self._controller: Controller | None = None

    # lifecycle

    def start(self) -> SmtpStandIn:
        """Start listening; returns self."""
        if self._controller is not None:
            raise RuntimeError("SmtpStandIn is already running")
        if self.port is None:
            self.port = _free_port()
        kwargs: dict = {}
        if self.implicit_tls:
            kwargs = {"ssl_context": self.tls_context}
        elif self.tls_context is not None:
            kwargs = {"tls_context": self.tls_context, "require_starttls": False}
        controller = Controller(
            _Handler(self),
            hostname=HOST,
            port=self.port,
            ready_timeout=self.ready_timeout,
            server_hostname="localhost",
            **kwargs,
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening; safe to call twice."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # inspection and scripting

    @property
    def messages(self) -> list[Received]:
        """Snapshot of accepted messages in arrival order."""
        with self._cond:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        """Number of DATA commands completed by clients, rejected ones included."""
        with self._cond:
            return self._attempts

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` messages were accepted; return them all."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self._messages) >= count, timeout=timeout
            ):
                raise AssertionError(
                    f"SMTP stand-in: expected at least {count} message(s) within "
                    f"{timeout}s, got {len(self._messages)} "
                    f"({self._attempts} DATA attempt(s))"
                )
            return list(self._messages)

    def script(self, *replies: str) -> None:
        """Queue replies for the next DATA commands.

        Each reply is an SMTP reply line such as "451 4.3.0 Try again later"
        or "hang:SECONDS" (wait, then accept with 250). Once the queue is
        empty, DATA is accepted with "250 OK" again.
        """
        for reply in replies:
            if not (_REPLY.match(reply) or _HANG.match(reply)):
                raise ValueError(f"not an SMTP reply or hang:SECONDS: {reply!r}")
        with self._cond:
            self._script.extend(replies)

    # server side, runs on the controller's event loop thread

    async def _on_data(self, session, envelope) -> str:
        with self._cond:
            self._attempts += 1
            reply = self._script.pop(0) if self._script else "250 OK"
            delay = self.delay
        hang = _HANG.match(reply)
        if hang:
            delay += float(hang.group(1))
            reply = "250 OK"
        if delay > 0:
            await asyncio.sleep(delay)
        if reply.startswith("2"):
            raw = bytes(envelope.original_content or b"")
            received = Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=_parse(raw),
                tls=self.implicit_tls or session.ssl is not None,
                peer=tuple(session.peer) if session.peer else None,
            )
            with self._cond:
                self._messages.append(received)
                self._cond.notify_all()
        return reply


def make_self_signed_cert(tmp_dir: str | Path) -> tuple[Path, Path]:
    """Write a self-signed cert for localhost/127.0.0.1 valid for a day.

    Returns (cert_path, key_path), both PEM. A client trusts it with
    `ssl.create_default_context(cafile=cert_path)`.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    out = Path(tmp_dir)
    cert_path = out / "localhost-cert.pem"
    key_path = out / "localhost-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
