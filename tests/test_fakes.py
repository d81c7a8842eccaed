"""Checks that the SMTP and WhatsApp stand-ins behave like real servers."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage

import pytest
import requests

from tests.fakes.smtp import SmtpStandIn, make_self_signed_cert
from tests.fakes.whatsapp import WhatsAppStandIn


def _mail(subject: str = "Order 42 paid") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "shop@example.com"
    msg["To"] = "buyer@example.com"
    msg["Subject"] = subject
    msg.set_content("Thanks for your payment.\n")
    return msg


def _send(smtp: SmtpStandIn, msg: EmailMessage, timeout: float = 5.0) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as client:
        client.send_message(msg)


# SMTP


def test_smtp_records_message():
    with SmtpStandIn() as smtp:
        assert smtp.host == "127.0.0.1"
        _send(smtp, _mail())
        [got] = smtp.wait_for(1)
    assert got.mail_from == "shop@example.com"
    assert got.rcpt_tos == ["buyer@example.com"]
    assert got.message["Subject"] == "Order 42 paid"
    assert got.message.get_content() == "Thanks for your payment.\n"
    assert b"Subject: Order 42 paid" in got.raw
    assert got.tls is False
    assert smtp.attempts == 1


def test_smtp_scripted_451_then_250():
    with SmtpStandIn() as smtp:
        smtp.script("451 4.3.0 Try again later")
        with pytest.raises(smtplib.SMTPDataError) as err:
            _send(smtp, _mail("first"))
        assert err.value.smtp_code == 451
        assert smtp.messages == []
        _send(smtp, _mail("second"))
        [got] = smtp.wait_for(1)
        assert got.message["Subject"] == "second"
        assert smtp.attempts == 2


def test_smtp_script_rejects_garbage():
    with pytest.raises(ValueError):
        SmtpStandIn().script("try again")


def test_smtp_hang_keeps_server_responsive():
    with SmtpStandIn() as smtp:
        smtp.script("hang:0.6")
        started = time.monotonic()
        sender = threading.Thread(target=_send, args=(smtp, _mail()))
        sender.start()
        while smtp.attempts == 0 and time.monotonic() - started < 5:
            time.sleep(0.01)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as other:
            assert other.noop()[0] == 250
        assert time.monotonic() - started < 0.5
        assert smtp.messages == []
        sender.join()
        assert time.monotonic() - started >= 0.6
        assert len(smtp.wait_for(1)) == 1


def test_smtp_delay_slows_every_data():
    with SmtpStandIn() as smtp:
        smtp.delay = 0.2
        started = time.monotonic()
        _send(smtp, _mail())
        assert time.monotonic() - started >= 0.2


def test_smtp_wait_for_times_out_with_message():
    with SmtpStandIn() as smtp:
        with pytest.raises(AssertionError, match="expected at least 1 message"):
            smtp.wait_for(1, timeout=0.1)


def test_smtp_restart_keeps_port():
    smtp = SmtpStandIn().start()
    port = smtp.port
    smtp.stop()
    with pytest.raises(OSError):
        smtplib.SMTP(smtp.host, port, timeout=2)
    smtp.start()
    try:
        assert smtp.port == port
        _send(smtp, _mail())
        assert len(smtp.wait_for(1)) == 1
    finally:
        smtp.stop()
    smtp.stop()


def test_smtp_starttls_with_self_signed_cert(tmp_path):
    cert, key = make_self_signed_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with SmtpStandIn(tls_context=server_ctx) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=trusting)
            client.ehlo()
            client.send_message(_mail())
        [got] = smtp.wait_for(1)
        assert got.tls is True

        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            with pytest.raises(ssl.SSLCertVerificationError):
                client.starttls(context=ssl.create_default_context())


def test_smtp_implicit_tls(tmp_path):
    cert, key = make_self_signed_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    with SmtpStandIn(tls_context=server_ctx, implicit_tls=True) as smtp:
        with smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=5, context=trusting
        ) as client:
            client.send_message(_mail())
        [got] = smtp.wait_for(1)
        assert got.tls is True


# WhatsApp


def _payload(to: str = "15551234567") -> dict:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": "Order 42 paid"},
    }


def test_whatsapp_default_success_and_keep_alive():
    with WhatsAppStandIn() as wa, requests.Session() as http:
        assert wa.url == f"http://127.0.0.1:{wa.port}/v21.0"
        first = http.post(f"{wa.url}/1234/messages", json=_payload(), timeout=5)
        second = http.post(f"{wa.url}/1234/messages", json=_payload(), timeout=5)
        assert first.status_code == second.status_code == 200
        assert first.json() == {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "15551234567", "wa_id": "15551234567"}],
            "messages": [{"id": "wamid.1"}],
        }
        assert second.json()["messages"][0]["id"] == "wamid.2"
        assert wa.connections == 1
        calls = wa.wait_for(2)
        assert calls[0].path == "/v21.0/1234/messages"
        assert calls[0].phone_number_id == "1234"
        assert calls[0].body == _payload()
        assert calls[0].header("content-type") == "application/json"
        assert calls[0].at <= calls[1].at
        assert wa.delivered() == calls


def test_whatsapp_scripted_429_with_retry_after():
    with WhatsAppStandIn() as wa:
        limited = wa.error(
            130429,
            status=429,
            message="(#130429) Rate limit hit",
            headers={"Retry-After": "2"},
        )
        wa.script(limited)
        url = f"{wa.url}/1234/messages"
        r = requests.post(url, json=_payload(), timeout=5)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "2"
        error = r.json()["error"]
        assert error["code"] == 130429
        assert error["type"] == "OAuthException"
        assert error["fbtrace_id"] == "A1"
        assert requests.post(url, json=_payload(), timeout=5).status_code == 200
        assert len(wa.requests) == 2
        assert [c.status for c in wa.delivered()] == [200]


def test_whatsapp_close_drops_connection():
    with WhatsAppStandIn() as wa, requests.Session() as http:
        wa.script("close")
        url = f"{wa.url}/1234/messages"
        with pytest.raises(requests.ConnectionError):
            http.post(url, json=_payload(), timeout=5)
        assert http.post(url, json=_payload(), timeout=5).status_code == 200
        first, second = wa.wait_for(2)
        assert first.status is None
        assert wa.delivered() == [second]


def test_whatsapp_hang_outlives_client_timeout():
    with WhatsAppStandIn() as wa:
        wa.script("hang:0.4")
        with pytest.raises(requests.ReadTimeout):
            requests.post(f"{wa.url}/1234/messages", json=_payload(), timeout=0.1)
        assert len(wa.wait_for(1)) == 1
        deadline = time.monotonic() + 5
        while not wa.delivered() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(wa.delivered()) == 1


def test_whatsapp_delay_does_not_serialize_requests():
    with WhatsAppStandIn() as wa:
        wa.delay = 0.4
        url = f"{wa.url}/1234/messages"
        codes: list[int] = []

        def post() -> None:
            codes.append(requests.post(url, json=_payload(), timeout=5).status_code)

        started = time.monotonic()
        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert codes == [200] * 8
        assert 0.4 <= elapsed < 1.5


def test_whatsapp_token_and_validation():
    with WhatsAppStandIn(expected_token="s3cret") as wa:
        wa.script(wa.error(131056))
        url = f"{wa.url}/1234/messages"
        r = requests.post(url, json=_payload(), timeout=5)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 190
        good = {"Authorization": "Bearer s3cret"}
        r = requests.post(url, json={"messaging_product": "whatsapp"}, headers=good)
        assert r.status_code == 400
        assert "to is required" in r.json()["error"]["message"]
        r = requests.post(url, json=_payload(), headers=good, timeout=5)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == 131056
        r = requests.post(url, json=_payload(), headers=good, timeout=5)
        assert r.status_code == 200
        assert len(wa.requests) == 4
        assert len(wa.delivered()) == 1


def test_whatsapp_stop_drops_keep_alive_and_restarts_on_same_url():
    wa = WhatsAppStandIn().start()
    url = f"{wa.url}/1234/messages"
    with requests.Session() as http:
        assert http.post(url, json=_payload(), timeout=5).status_code == 200
        wa.stop()
        with pytest.raises(requests.ConnectionError):
            http.post(url, json=_payload(), timeout=5)
        wa.start()
        try:
            assert http.post(url, json=_payload(), timeout=5).status_code == 200
        finally:
            wa.stop()
    assert len(wa.delivered()) == 2


def test_stand_ins_bind_loopback_only():
    with SmtpStandIn() as smtp, WhatsAppStandIn() as wa:
        for port in (smtp.port, wa.port):
            probe = socket.socket()
            try:
                with pytest.raises(OSError):
                    probe.bind(("127.0.0.1", port))
            finally:
                probe.close()
