"""Unit tests of the small pure parts: backoff, classification, signing,
settings, masking and money."""

import json
import smtplib
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from notifier.backoff import parse_retry_after, retry_delay
from notifier.channels.email import classify_smtp
from notifier.channels.whatsapp import FINAL_CODES, RETRY_CODES, classify_response
from notifier.errors import PermanentError, RequestError, SettingsError, TransientError
from notifier.masking import mask_email, mask_phone
from notifier.money import format_amount
from notifier.settings import Settings
from notifier.signing import (
    parse_signature_header,
    sign_return,
    sign_webhook,
    verify_return,
    verify_webhook,
)

# -- backoff ------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 5, 10, 40, 100])
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_retry_delay_never_exceeds_the_cap(attempts, draw):
    delay = retry_delay(attempts, base=2.0, cap=60.0, rand=lambda: draw)
    assert 0.0 <= delay <= 60.0


def test_retry_delay_ceiling_doubles_with_each_attempt_until_the_cap():
    top = [retry_delay(n, base=1.0, cap=10.0, rand=lambda: 1.0) for n in range(1, 7)]
    assert top == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retry_delay_is_a_uniform_draw_below_the_ceiling():
    assert retry_delay(3, base=1.0, cap=100.0, rand=lambda: 0.25) == 1.0
    assert retry_delay(3, base=1.0, cap=100.0, rand=lambda: 0.0) == 0.0


@pytest.mark.parametrize("attempts", [0, -3])
def test_retry_delay_treats_attempts_below_one_as_the_first(attempts):
    assert retry_delay(attempts, base=3.0, cap=100.0, rand=lambda: 1.0) == 3.0


@pytest.mark.parametrize("draw", [0.0, 0.3, 1.0])
def test_retry_after_is_a_floor_the_draw_never_shortens(draw):
    delay = retry_delay(1, base=0.5, cap=600.0, retry_after=7, rand=lambda: draw)
    assert delay >= 7.0


def test_retry_after_below_the_draw_leaves_the_draw():
    assert retry_delay(5, 1.0, 600.0, retry_after=1, rand=lambda: 1.0) == 16.0


def test_retry_after_above_the_cap_is_still_honoured():
    assert retry_delay(1, base=0.05, cap=0.5, retry_after=1, rand=lambda: 0.0) >= 1.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("0", 0.0), ("1", 1.0), ("120", 120.0), (" 30 ", 30.0)],
)
def test_parse_retry_after_reads_delta_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo"])
def test_parse_retry_after_ignores_what_it_cannot_read(header):
    assert parse_retry_after(header) is None


def test_parse_retry_after_reads_an_http_date_in_the_future():
    when = datetime.now(timezone.utc) + timedelta(seconds=90)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert 80.0 <= seconds <= 91.0


def test_parse_retry_after_of_a_past_http_date_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_parse_retry_after_ignores_non_ascii_digits():
    assert parse_retry_after("\xb2") is None


# -- WhatsApp answers ---------------------------------------------------------


def _response(status, body=None, retry_after=None):
    response = requests.Response()
    response.status_code = status
    if body is None:
        response._content = b""
    elif isinstance(body, bytes):
        response._content = body
    else:
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _graph_error(code, message="(#x) something"):
    return {"error": {"message": message, "type": "OAuthException", "code": code}}


@pytest.mark.parametrize("code", sorted(RETRY_CODES))
@pytest.mark.parametrize("status", [400, 403, 429, 500])
def test_retryable_cloud_api_codes_are_transient_whatever_the_status(code, status):
    error = classify_response(_response(status, _graph_error(code)))
    assert isinstance(error, TransientError)
    assert f"code {code}" in str(error)


@pytest.mark.parametrize("code", sorted(FINAL_CODES))
@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_final_cloud_api_codes_are_permanent_whatever_the_status(code, status):
    error = classify_response(_response(status, _graph_error(code)))
    assert isinstance(error, PermanentError)
    assert f"code {code}" in str(error)


def test_the_code_tables_name_the_documented_codes():
    assert RETRY_CODES == {4, 80007, 130429, 131000, 131016, 131056, 131057, 2}
    assert FINAL_CODES == {131026, 131047, 100, 132000, 132001, 190, 10}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, None, TransientError),
        (502, b"<html>bad gateway</html>", TransientError),
        (503, _graph_error(999999), TransientError),
        (429, None, TransientError),
        (429, _graph_error(999999), TransientError),
        (400, _graph_error(999999), PermanentError),
        (404, None, PermanentError),
        (401, b"not json", PermanentError),
        (400, ["a", "list"], PermanentError),
        (500, {"error": "a string"}, TransientError),
        (400, {"error": "a string"}, PermanentError),
    ],
    ids=[
        "500-empty",
        "502-html",
        "503-unknown-code",
        "429-empty",
        "429-unknown-code",
        "400-unknown-code",
        "404-empty",
        "401-not-json",
        "400-json-list",
        "500-error-not-object",
        "400-error-not-object",
    ],
)
def test_unknown_codes_fall_back_to_the_http_status(status, body, expected):
    error = classify_response(_response(status, body))
    assert type(error) is expected
    assert f"HTTP {status}" in str(error)


def test_retry_after_header_is_carried_on_a_transient_error():
    error = classify_response(_response(429, _graph_error(130429), retry_after="7"))
    assert isinstance(error, TransientError)
    assert error.retry_after == 7.0


def test_transient_error_without_retry_after_has_none():
    assert classify_response(_response(500)).retry_after is None


def test_cloud_api_message_is_kept_and_bounded():
    error = classify_response(_response(400, _graph_error(131026, "x" * 1000)))
    assert "x" * 300 in str(error)
    assert "x" * 301 not in str(error)


# -- SMTP errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (smtplib.SMTPResponseException(451, b"4.3.0 try later"), TransientError),
        (smtplib.SMTPResponseException(421, "closing"), TransientError),
        (smtplib.SMTPResponseException(550, b"5.1.1 no such user"), PermanentError),
        (smtplib.SMTPResponseException(554, b"rejected"), PermanentError),
        (smtplib.SMTPDataError(452, b"mailbox full"), TransientError),
        (smtplib.SMTPSenderRefused(553, b"bad sender", "a@b"), PermanentError),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), PermanentError),
        (smtplib.SMTPConnectError(421, b"too busy"), TransientError),
        (
            smtplib.SMTPRecipientsRefused({"a@b.example": (550, b"no user")}),
            PermanentError,
        ),
        (
            smtplib.SMTPRecipientsRefused({"a@b.example": (450, b"greylisted")}),
            TransientError,
        ),
        (
            smtplib.SMTPRecipientsRefused(
                {"a@b.example": (450, b"later"), "c@d.example": (550, b"no")}
            ),
            PermanentError,
        ),
        (smtplib.SMTPRecipientsRefused({}), PermanentError),
        (smtplib.SMTPServerDisconnected("unexpectedly closed"), TransientError),
        # The name smtplib's callers know; an alias of TimeoutError since 3.10.
        (socket.timeout("timed out"), TransientError),  # noqa: UP041
        (OSError(101, "Network is unreachable"), TransientError),
        (ConnectionRefusedError(111, "Connection refused"), TransientError),
        (ConnectionResetError(104, "reset"), TransientError),
        (smtplib.SMTPNotSupportedError("STARTTLS not supported"), PermanentError),
    ],
    ids=[
        "451",
        "421",
        "550",
        "554",
        "data-452",
        "sender-553",
        "auth-535",
        "connect-421",
        "rcpt-550",
        "rcpt-450",
        "rcpt-mixed",
        "rcpt-empty",
        "disconnected",
        "socket-timeout",
        "unreachable",
        "refused",
        "reset",
        "not-supported",
    ],
)
def test_classify_smtp(exc, expected):
    error = classify_smtp(exc)
    assert type(error) is expected


def test_classify_smtp_reply_names_code_and_text():
    error = classify_smtp(smtplib.SMTPResponseException(550, b"5.1.1 no such user"))
    assert str(error) == "SMTP 550 5.1.1 no such user"


def test_classify_smtp_leaves_foreign_exceptions_alone():
    assert classify_smtp(ValueError("not mine")) is None


# -- signatures ---------------------------------------------------------------

SECRET_OLD, SECRET_NEW = "whsec-old", "whsec-new"
BODY = b'{"id": "evt_1", "type": "payment.succeeded"}'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("t=123,v1=abc", (123, ["abc"])),
        ("t=123, v1=abc", (123, ["abc"])),
        (" t=123 , v1=ABC ", (123, ["abc"])),
        ("v1=abc,t=123", (123, ["abc"])),
        ("t=123,v1=aa,v1=bb", (123, ["aa", "bb"])),
        ("t=123,v0=zz,v1=aa", (123, ["aa"])),
        ("t=123,junk,v1=aa", (123, ["aa"])),
        ("t=123,v1=aa,v2=bb", (123, ["aa"])),
    ],
)
def test_parse_signature_header(header, expected):
    assert parse_signature_header(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=abc",
        "t=,v1=abc",
        "t=12a,v1=abc",
        "t=-5,v1=abc",
        "t=1.5,v1=abc",
        "t=\u0661\u0662\u0663,v1=abc",
        "t=123",
        "t=123,v0=abc",
        "t=123,v1=" + "a" * 3000,
    ],
    ids=[
        "none",
        "empty",
        "missing-t",
        "empty-t",
        "non-digit-t",
        "negative-t",
        "fraction-t",
        "arabic-digits-t",
        "missing-v1",
        "only-v0",
        "oversized",
    ],
)
def test_parse_signature_header_refuses_malformed(header):
    with pytest.raises(RequestError) as caught:
        parse_signature_header(header)
    assert caught.value.status == 401


@pytest.mark.parametrize("secret", [SECRET_OLD, SECRET_NEW])
def test_verify_webhook_accepts_either_secret_during_rotation(secret):
    now = 1_700_000_000
    header = sign_webhook(BODY, secret, now)
    assert verify_webhook(BODY, header, (SECRET_OLD, SECRET_NEW), now, 300) == now


def test_verify_webhook_accepts_any_of_several_v1():
    now = 1_700_000_000
    good = sign_webhook(BODY, SECRET_NEW, now).split("v1=")[1]
    header = f"t={now},v1={'0' * 64},v1={good}"
    assert verify_webhook(BODY, header, (SECRET_NEW,), now, 300) == now


@pytest.mark.parametrize(
    ("signed_at", "now", "ok"),
    [
        (1_700_000_000, 1_700_000_300, True),
        (1_700_000_000, 1_700_000_301, False),
        (1_700_000_300, 1_700_000_000, True),
        (1_700_000_301, 1_700_000_000, False),
        (1_700_000_000, 1_700_086_400, False),
    ],
    ids=["edge-stale", "stale", "edge-future", "future", "a-day-old"],
)
def test_verify_webhook_timestamp_tolerance(signed_at, now, ok):
    header = sign_webhook(BODY, SECRET_NEW, signed_at)
    if ok:
        verify_webhook(BODY, header, (SECRET_NEW,), now, 300)
    else:
        with pytest.raises(RequestError) as caught:
            verify_webhook(BODY, header, (SECRET_NEW,), now, 300)
        assert caught.value.status == 401


@pytest.mark.parametrize(
    ("body", "secret", "secrets"),
    [
        (BODY.replace(b"succeeded", b"failed"), SECRET_NEW, (SECRET_NEW,)),
        (BODY + b" ", SECRET_NEW, (SECRET_NEW,)),
        (BODY, "whsec-other", (SECRET_OLD, SECRET_NEW)),
        (BODY, SECRET_OLD, (SECRET_NEW,)),
    ],
    ids=["tampered", "trailing-space", "unknown-secret", "retired-secret"],
)
def test_verify_webhook_refuses_a_bad_signature(body, secret, secrets):
    now = 1_700_000_000
    header = sign_webhook(BODY, secret, now)
    with pytest.raises(RequestError) as caught:
        verify_webhook(body, header, secrets, now, 300)
    assert caught.value.status == 401


def test_verify_webhook_signature_binds_the_timestamp():
    now = 1_700_000_000
    header = sign_webhook(BODY, SECRET_NEW, now)
    moved = header.replace(f"t={now}", f"t={now + 1}")
    with pytest.raises(RequestError):
        verify_webhook(BODY, moved, (SECRET_NEW,), now, 300)


def _return_params(now, **extra):
    params = {
        "order_reference": "A-1",
        "status": "paid",
        "payment_id": "pay_1",
        "t": str(now),
    }
    params.update(extra)
    return params


def test_sign_return_ignores_the_signature_parameter_and_order():
    params = _return_params(1_700_000_000)
    signature = sign_return(params, SECRET_NEW)
    shuffled = dict(reversed(list(params.items())), signature="whatever")
    assert sign_return(shuffled, SECRET_NEW) == signature
    assert len(signature) == 64


@pytest.mark.parametrize("secret", [SECRET_OLD, SECRET_NEW])
def test_verify_return_accepts_either_secret(secret):
    now = int(time.time())
    params = _return_params(now)
    params["signature"] = sign_return(params, secret).upper()
    verify_return(params, (SECRET_OLD, SECRET_NEW), now, 300)


@pytest.mark.parametrize(
    "change",
    [
        {"status": "failed"},
        {"order_reference": "A-2"},
        {"extra": "1"},
        {"signature": ""},
        {"t": "abc"},
        {"t": ""},
    ],
    ids=["status", "reference", "added-param", "no-signature", "bad-t", "no-t"],
)
def test_verify_return_refuses_changed_parameters(change):
    now = 1_700_000_000
    params = _return_params(now)
    params["signature"] = sign_return(params, SECRET_NEW)
    params.update(change)
    with pytest.raises(RequestError) as caught:
        verify_return(params, (SECRET_NEW,), now, 300)
    assert caught.value.status == 401


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_return_refuses_a_timestamp_outside_the_tolerance(offset):
    now = 1_700_000_000
    params = _return_params(now + offset)
    params["signature"] = sign_return(params, SECRET_NEW)
    with pytest.raises(RequestError):
        verify_return(params, (SECRET_NEW,), now, 300)


# -- settings -----------------------------------------------------------------


def test_settings_defaults_from_an_empty_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == "sqlite:///notifier.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.api_token is None and settings.gateway_secrets == ()
    assert (settings.success_url, settings.failure_url) == ("/paid", "/payment-failed")
    assert settings.smtp_host is None and not settings.smtp_configured
    assert (settings.smtp_port, settings.smtp_security) == (587, "starttls")
    assert settings.mail_from == "shop@localhost"
    assert settings.whatsapp_api_url == "https://graph.facebook.com/v21.0"
    assert settings.whatsapp_token is None and not settings.whatsapp_configured
    assert settings.admin_whatsapp is None
    assert settings.whatsapp_language == "ar"
    assert settings.threads == 4
    assert settings.drain_seconds == 10.0
    assert settings.max_attempts == 8
    assert settings.lease_seconds == 60.0


def test_settings_read_good_values():
    settings = Settings.from_env(
        {
            "PORT": " 9090 ",
            "GATEWAY_SECRET": "new, old ,",
            "SMTP_SECURITY": "SSL",
            "ADMIN_WHATSAPP": "+966500000001",
            "WHATSAPP_API_URL": "http://127.0.0.1:9/v21.0/",
            "WHATSAPP_TOKEN": "t",
            "WHATSAPP_PHONE_NUMBER_ID": "123",
            "NOTIFIER_THREADS": "2",
            "API_TOKEN": "   ",
        }
    )
    assert settings.port == 9090
    assert settings.gateway_secrets == ("new", "old")
    assert settings.smtp_security == "ssl"
    assert settings.admin_whatsapp == "966500000001"
    assert settings.whatsapp_api_url == "http://127.0.0.1:9/v21.0"
    assert settings.threads == 2
    assert settings.api_token is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"SMTP_PORT": "x"}, "SMTP_PORT"),
        ({"SMTP_SECURITY": "tls"}, "SMTP_SECURITY"),
        ({"NOTIFIER_THREADS": "0"}, "NOTIFIER_THREADS"),
        ({"NOTIFIER_MAX_ATTEMPTS": "0"}, "NOTIFIER_MAX_ATTEMPTS"),
        ({"ADMIN_WHATSAPP": "abc"}, "ADMIN_WHATSAPP"),
        ({"ADMIN_WHATSAPP": "1234"}, "ADMIN_WHATSAPP"),
        ({"SMTP_TIMEOUT": "nan"}, "SMTP_TIMEOUT"),
        ({"SMTP_TIMEOUT": "inf"}, "SMTP_TIMEOUT"),
        ({"NOTIFIER_DRAIN_SECONDS": "-1"}, "NOTIFIER_DRAIN_SECONDS"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"WHATSAPP_TOKEN": "t"}, "WHATSAPP_PHONE_NUMBER_ID"),
        ({"WHATSAPP_API_URL": "graph.facebook.com"}, "WHATSAPP_API_URL"),
        ({"DATABASE_URL": "notifier.db"}, "DATABASE_URL"),
        ({"MAIL_FROM": "shop"}, "MAIL_FROM"),
        ({"NOTIFIER_LEASE_SECONDS": "20"}, "NOTIFIER_LEASE_SECONDS"),
        (
            {"NOTIFIER_LEASE_SECONDS": "30", "SMTP_TIMEOUT": "30"},
            "NOTIFIER_LEASE_SECONDS",
        ),
        (
            {"NOTIFIER_LEASE_SECONDS": "10", "WHATSAPP_READ_TIMEOUT": "9.5"},
            "NOTIFIER_LEASE_SECONDS",
        ),
    ],
    ids=lambda v: (
        v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items())
    ),
)
def test_bad_setting_raises_one_line_naming_the_variable(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(variable + " ") or f" {variable} " in f" {message} "
    assert "\n" not in message


def test_admin_whatsapp_in_non_ascii_digits_is_refused():
    with pytest.raises(SettingsError, match="ADMIN_WHATSAPP"):
        Settings.from_env({"ADMIN_WHATSAPP": "٩٦٦٥٠٠٠٠٠٠٠١"})


def test_lease_just_longer_than_the_longest_send_is_accepted():
    settings = Settings.from_env(
        {
            "NOTIFIER_LEASE_SECONDS": "3.5",
            "SMTP_TIMEOUT": "3",
            "WHATSAPP_CONNECT_TIMEOUT": "1",
            "WHATSAPP_READ_TIMEOUT": "2",
        }
    )
    assert settings.lease_seconds == 3.5


# -- masking ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("966501112233", "9665*****233"),
        ("12345678", "1234*678"),
        ("123456789012345", "1234********345"),
        ("123456", "******"),
        ("12", "**"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("laila@example.com", "l***@example.com"),
        ("a@b.example", "a***@b.example"),
        ("@example.com", "*" + "***@example.com"),
        ('"odd@local"@example.com', '"***@example.com'),
        ("not-an-address", "-"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_email(address, masked):
    assert mask_email(address) == masked


def test_masks_hide_most_of_the_secret_part():
    assert "laila" not in mask_email("laila@example.com")
    assert "50111" not in mask_phone("966501112233")


# -- money --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (15000, "SAR", "150.00 SAR"),
        (5, "SAR", "0.05 SAR"),
        (100, "sar", "1.00 SAR"),
        (-250, "SAR", "-2.50 SAR"),
        (-5, "USD", "-0.05 USD"),
        (1234, "KWD", "1.234 KWD"),
        (5, "KWD", "0.005 KWD"),
        (1000, "BHD", "1.000 BHD"),
        (1500, "JPY", "1500 JPY"),
        (0, "JPY", "0 JPY"),
        (10**15, "SAR", "10000000000000.00 SAR"),
    ],
)
def test_format_amount(amount, currency, text):
    assert format_amount(amount, currency) == text
