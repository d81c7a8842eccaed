"""Email over SMTP: STARTTLS, implicit TLS or plain, always verifying TLS."""

import logging
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr

from notifier.errors import PermanentError, TransientError
from notifier.masking import mask_email

log = logging.getLogger("notifier.channels.email")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    to_name: str = ""


def build_message(email, sender, sender_name=""):
    """The MIME message: text and HTML alternatives, UTF-8 throughout."""
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = formataddr((email.to_name, email.to)) if email.to_name else email.to
    msg["Subject"] = email.subject
    msg["Message-ID"] = email.message_id
    msg.set_content(email.text, charset="utf-8")
    msg.add_alternative(email.html, subtype="html", charset="utf-8")
    return msg


EMAIL_IN_TEXT = re.compile(r"[^\s<>@]+@[^\s<>@]+")


def mask_addresses(text):
    """A server's reply with the addresses in it masked (it goes to logs)."""
    return EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)


def classify_smtp(exc):
    """Translate an smtplib/socket error into Transient or PermanentError."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        worst = max(codes) if codes else 550
        text = f"recipient refused ({worst})"
        return (TransientError if worst < 500 else PermanentError)(text)
    code = getattr(exc, "smtp_code", None)
    if isinstance(code, int):
        reply = getattr(exc, "smtp_error", b"")
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        text = f"SMTP {code} {mask_addresses(reply)}".strip()
        return (TransientError if 400 <= code < 500 else PermanentError)(text)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"SMTP server does not support it: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"TLS certificate not trusted: {exc.verify_message}")
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        # Disconnects, refused connections and timeouts pass with time.
        return TransientError(f"{type(exc).__name__}: {exc}")
    return None


class EmailChannel:
    """Sends over SMTP, keeping one connection per pool thread between sends."""

    name = "smtp"
    idle_seconds = 30.0  # a kept connection idle longer is replaced before use
    recheck_seconds = 5.0  # one idle longer is asked for a NOOP before use

    def __init__(self, settings):
        self.settings = settings
        self.context = ssl.create_default_context(cafile=settings.smtp_ca_file)
        self._local = threading.local()
        self._open = set()
        self._open_lock = threading.Lock()

    def _connect(self):
        s = self.settings
        if s.smtp_security == "ssl":
            client = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=self.context
            )
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            if s.smtp_security == "starttls":
                client.starttls(context=self.context)
            if s.smtp_username:
                client.login(s.smtp_username, s.smtp_password or "")
        except BaseException:
            client.close()
            raise
        with self._open_lock:
            self._open.add(client)
        return client

    def _client(self):
        """This thread's connection: the kept one if it still answers."""
        client = getattr(self._local, "client", None)
        if client is not None:
            idle = time.monotonic() - self._local.used
            if idle < self.idle_seconds and (
                idle < self.recheck_seconds or self._answers(client)
            ):
                return client
            self._drop(client)
        self._local.client = self._connect()
        self._local.used = time.monotonic()
        return self._local.client

    @staticmethod
    def _answers(client):
        # A NOOP before reusing a connection that sat idle finds one the
        # server closed meanwhile, which would otherwise cost an attempt. A
        # failed send is never repeated here: after DATA it may have arrived.
        try:
            return client.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def _drop(self, client):
        self._local.client = None
        with self._open_lock:
            self._open.discard(client)
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _send(self, msg):
        client = self._client()
        try:
            client.send_message(msg)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            self._local.used = time.monotonic()
            raise  # the server answered; the connection stays good
        except BaseException:
            self._drop(client)
            raise
        self._local.used = time.monotonic()

    def send_email(self, email):
        try:
            msg = build_message(email, self.settings.mail_from, self.settings.shop_name)
        except ValueError as exc:  # e.g. a header that cannot be encoded
            raise PermanentError(f"message cannot be built: {exc}") from exc
        try:
            self._send(msg)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            error = classify_smtp(exc)
            log.debug("email to %s failed: %s", mask_email(email.to), error)
            raise error from exc
        return email.message_id

    def close(self):
        """Say goodbye on every kept connection (at shutdown)."""
        with self._open_lock:
            clients, self._open = list(self._open), set()
        for client in clients:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
