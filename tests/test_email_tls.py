"""The SMTP channel against the loopback SMTP stand-in: TLS modes and MIME."""

import ssl

import pytest

from notifier.channels.email import Email, EmailChannel
from notifier.errors import PermanentError
from notifier.settings import Settings
from tests.fakes.smtp import SmtpStandIn, make_self_signed_cert

SUBJECT = "تم استلام طلبك A-1001 ✓"
TEXT = "مرحبا ليلى،\nتم الدفع: 150.00 SAR\nشكرا لك."
HTML = '<html dir="rtl"><body><p>مرحبا ليلى</p><p>150.00 SAR</p></body></html>'


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture
def server_ctx(cert):
    cert_path, key_path = cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def channel_for(stand_in, security, ca_file=None, **extra):
    settings = Settings(
        smtp_host=stand_in.host,
        smtp_port=stand_in.port,
        smtp_security=security,
        smtp_ca_file=None if ca_file is None else str(ca_file),
        smtp_timeout=5.0,
        mail_from="shop@example.com",
        **extra,
    )
    return EmailChannel(settings)


def an_email(message_id="<notification-7@example.com>"):
    return Email(
        to="laila@example.com",
        to_name="ليلى",
        subject=SUBJECT,
        text=TEXT,
        html=HTML,
        message_id=message_id,
    )


@pytest.mark.parametrize(
    ("security", "implicit_tls"),
    [("starttls", False), ("ssl", True)],
)
def test_tls_with_trusted_ca_file_delivers_over_tls(
    cert, server_ctx, security, implicit_tls
):
    with SmtpStandIn(tls_context=server_ctx, implicit_tls=implicit_tls) as smtp:
        channel = channel_for(smtp, security, ca_file=cert[0])
        assert channel.send_email(an_email()) == "<notification-7@example.com>"
        (got,) = smtp.wait_for(1)
    assert got.tls is True
    assert got.rcpt_tos == ["laila@example.com"]
    assert got.mail_from == "shop@example.com"
    assert got.message["Message-ID"] == "<notification-7@example.com>"


@pytest.mark.parametrize(
    ("security", "implicit_tls"),
    [("starttls", False), ("ssl", True)],
)
def test_tls_without_the_ca_refuses_the_self_signed_certificate(
    server_ctx, security, implicit_tls
):
    with SmtpStandIn(tls_context=server_ctx, implicit_tls=implicit_tls) as smtp:
        channel = channel_for(smtp, security)
        with pytest.raises(PermanentError, match="certificate not trusted"):
            channel.send_email(an_email())
        assert smtp.messages == []
        assert smtp.attempts == 0


def test_starttls_against_a_server_without_tls_refuses_to_send_in_clear():
    with SmtpStandIn() as smtp:
        channel = channel_for(smtp, "starttls")
        with pytest.raises(PermanentError):
            channel.send_email(an_email())
        assert smtp.messages == []
        assert smtp.attempts == 0


def test_security_none_delivers_in_clear():
    with SmtpStandIn() as smtp:
        channel = channel_for(smtp, "none")
        channel.send_email(an_email())
        (got,) = smtp.wait_for(1)
    assert got.tls is False
    assert got.message["Message-ID"] == "<notification-7@example.com>"


def test_security_none_does_not_upgrade_even_when_offered(server_ctx):
    with SmtpStandIn(tls_context=server_ctx) as smtp:
        channel_for(smtp, "none").send_email(an_email())
        (got,) = smtp.wait_for(1)
    assert got.tls is False


def test_arabic_multipart_alternative_round_trips(cert, server_ctx):
    with SmtpStandIn(tls_context=server_ctx) as smtp:
        channel = channel_for(smtp, "starttls", ca_file=cert[0], shop_name="متجر")
        channel.send_email(an_email())
        (got,) = smtp.wait_for(1)

    message = got.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == SUBJECT
    assert message["To"].addresses[0].display_name == "ليلى"
    assert message["To"].addresses[0].addr_spec == "laila@example.com"
    assert message["From"].addresses[0].display_name == "متجر"
    assert message["From"].addresses[0].addr_spec == "shop@example.com"

    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain.get_content_charset() == "utf-8"
    assert html.get_content_charset() == "utf-8"
    assert plain.get_content().rstrip("\n") == TEXT
    assert html.get_content().rstrip("\n") == HTML


def test_raw_message_headers_are_ascii_on_the_wire(cert, server_ctx):
    with SmtpStandIn(tls_context=server_ctx) as smtp:
        channel_for(smtp, "starttls", ca_file=cert[0]).send_email(an_email())
        (got,) = smtp.wait_for(1)
    head = got.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"Message-ID: <notification-7@example.com>" in head
