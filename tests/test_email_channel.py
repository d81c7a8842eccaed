"""The SMTP channel keeps one connection per thread and recovers a dropped one."""

import pytest

from notifier.channels.email import Email, EmailChannel
from notifier.errors import PermanentError, TransientError
from notifier.settings import Settings


def email(n):
    return Email(
        to="laila@example.com",
        subject=f"Order A-{n}",
        text="نص",
        html="<p>نص</p>",
        message_id=f"<notification-{n}@localhost>",
    )


@pytest.fixture
def channel(smtp):
    settings = Settings(smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none")
    channel = EmailChannel(settings)
    yield channel
    channel.close()


def test_consecutive_emails_share_one_connection(channel, smtp):
    for n in range(3):
        channel.send_email(email(n))
    received = smtp.wait_for(3)
    assert len({m.peer for m in received}) == 1
    assert [m.message["Message-ID"] for m in received] == [
        f"<notification-{n}@localhost>" for n in range(3)
    ]


def test_a_rejected_message_keeps_the_connection(channel, smtp):
    channel.send_email(email(0))
    smtp.script("451 4.3.0 Try again later")
    with pytest.raises(TransientError):
        channel.send_email(email(1))
    channel.send_email(email(2))
    received = smtp.wait_for(2)
    assert len({m.peer for m in received}) == 1


def test_an_idle_connection_the_server_dropped_is_replaced(channel, smtp):
    channel.recheck_seconds = 0.0  # as if it sat idle
    channel.send_email(email(0))
    smtp.stop()  # closes every open connection
    smtp.start()
    channel.send_email(email(1))
    before, after = smtp.wait_for(2)
    assert after.message["Message-ID"] == email(1).message_id
    assert before.peer != after.peer
    assert smtp.attempts == 2  # the dropped connection cost no failed send


def test_server_gone_is_transient(channel, smtp):
    channel.send_email(email(0))
    smtp.stop()
    with pytest.raises(TransientError):
        channel.send_email(email(1))


def test_idle_connection_is_replaced_before_use(channel, smtp):
    channel.idle_seconds = 0.0
    channel.send_email(email(0))
    channel.send_email(email(1))
    received = smtp.wait_for(2)
    assert len({m.peer for m in received}) == 2


def test_a_refused_first_message_keeps_a_usable_connection(channel, smtp):
    smtp.script("550 5.7.1 Rejected")
    with pytest.raises(PermanentError):
        channel.send_email(email(0))
    channel.send_email(email(1))
    (received,) = smtp.wait_for(1)
    assert received.message["Message-ID"] == email(1).message_id


def test_a_send_on_a_connection_dropped_just_now_fails_for_a_later_retry(channel, smtp):
    channel.send_email(email(0))
    smtp.stop()
    smtp.start()
    with pytest.raises(TransientError):
        channel.send_email(email(1))  # not resent on the spot
    channel.send_email(email(2))  # a new connection
    assert [m.message["Message-ID"] for m in smtp.wait_for(2)] == [
        email(0).message_id,
        email(2).message_id,
    ]
