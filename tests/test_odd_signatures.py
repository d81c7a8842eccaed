"""Signatures in bytes no hex digest holds: refused as bad, never a 5xx."""

import time

import pytest

from notifier.channels.email import mask_addresses


@pytest.mark.parametrize("signature", ["é" * 64, "\udcff", "z" * 64, ""])
def test_non_hex_webhook_signature_is_401(live, signature):
    live.client.create_order("S-1")
    header = f"t={int(time.time())},v1={signature}".encode("utf-8", "surrogateescape")
    response = live.client.http.post(
        live.client.url("/payments/webhook"),
        data=b'{"id": "e"}',
        headers={"X-Signature": header},
        timeout=10,
    )
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert live.client.get_order("S-1")["status"] == "pending"
    assert live.client.pay("S-1", **{"event_id": "after"}).json() == {"status": "paid"}


def test_non_ascii_return_signature_is_401(live):
    live.client.create_order("S-2")
    url = live.client.return_url("S-2").rsplit("&signature=", 1)[0]
    response = live.client.http.get(
        url + "&signature=%C3%A9", allow_redirects=False, timeout=10
    )
    assert response.status_code == 401
    assert live.client.get_order("S-2")["status"] == "pending"


def test_addresses_in_smtp_replies_are_masked():
    reply = "5.1.1 <laila@example.com>: Recipient address rejected"
    assert (
        mask_addresses(reply) == "5.1.1 <l***@example.com>: Recipient address rejected"
    )
    assert "laila" not in mask_addresses("laila@example.com user unknown")
