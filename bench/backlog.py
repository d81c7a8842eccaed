"""A backlog of paid orders, a blow in the middle of it, a restart.

The gateway's side: 300 orders (created before the peer starts) are paid
with signed webhooks over 8 connections, each retried until it is answered
2xx, as a gateway retries a callback it could not deliver. Each stand-in
takes DELAY per message, so the sends trail the answers. Once a third of the
messages has arrived, every process of the peer gets the signal (SIGKILL to
whole process groups, as when the app and the worker crash; SIGTERM to each
main process, as a service manager stops a unit; a broker keeps running),
and is started again as soon as all are gone. Then the run waits until
nothing has arrived for QUIET seconds, longer than any peer waits before it
hands a dead sender's work out again.

Counted against the stand-ins' own records, by each message's key: rows of
paid orders with no message (missing), messages beyond the first per row
(duplicated), the seconds from the restart to the last message, and for
SIGTERM the seconds until the app's and the worker's main processes exited.
A message counts as received when its stand-in has it: a WhatsApp request on
arrival, an email once the SMTP server accepted its data.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

from bench.common import read_only
from bench.peers.procs import up
from tests.client import Client, event_body

ORDERS = 300
DELAY = 0.05  # seconds each stand-in takes per message
BLOW_AT = 1 / 3  # of the messages arrived
CONNECTIONS = 8
QUIET = 25.0  # longer than the 15 s the service and Celery wait for a dead taker
LIMIT = 180.0  # after the restart, at most
PAY_DEADLINE = 240.0  # one webhook retried at most this long


@dataclass
class Outcome:
    orders: int
    paid: int
    expected: int  # notification rows of paid orders
    missing: int
    duplicated: int
    last_seconds: float | None  # restart to the last message; None: none came
    stop_seconds: float  # signal to the last exit
    received_at_blow: int
    unanswered: int  # webhooks the gateway gave up on

    def as_dict(self):
        return dict(self.__dict__)


class Gateway:
    """Pays each order once, over a few connections, retrying until 2xx."""

    def __init__(self, port, references):
        self.base = f"http://127.0.0.1:{port}"
        self.todo = list(references)
        self.lock = threading.Lock()
        self.answered = Counter()
        self.gave_up = []
        self.stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(CONNECTIONS)
        ]

    def start(self):
        for thread in self.threads:
            thread.start()

    def done(self):
        return not any(thread.is_alive() for thread in self.threads)

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next(self):
        with self.lock:
            return self.todo.pop(0) if self.todo else None

    def _run(self):
        client = Client(self.base)
        try:
            while (reference := self._next()) is not None:
                self._pay(client, reference)
        finally:
            client.close()

    def _pay(self, client, reference):
        raw = json.dumps(event_body(reference)).encode()  # one event id throughout
        deadline = time.monotonic() + PAY_DEADLINE
        while time.monotonic() < deadline and not self.stopped.is_set():
            try:
                response = client.post_webhook(raw)
            except requests.RequestException:
                client.http.close()  # a fresh connection for the next try
            else:
                if 200 <= response.status_code < 300:
                    with self.lock:
                        self.answered[response.json().get("status")] += 1
                    return
            time.sleep(0.2)
        with self.lock:
            self.gave_up.append(reference)


def received(smtp, whatsapp):
    """[(monotonic time, key)] for every message the stand-ins accepted."""
    out = []
    for mail in list(smtp.messages):
        key = (mail.message["Message-ID"] or "").strip("<>").partition("@")[0]
        out.append((mail.at, key))
    for call in whatsapp.delivered():
        out.append((call.at, call.body.get("biz_opaque_callback_data", "")))
    return out


def expected_keys(db_path):
    """The keys of every notification row of a paid order."""
    with read_only(db_path) as conn:
        rows = conn.execute(
            "SELECT n.id FROM notifications n JOIN orders o ON o.id = n.order_id"
            " WHERE o.status = 'paid'"
        ).fetchall()
        paid = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE status = 'paid'"
        ).fetchone()[0]
    return {f"notification-{nid}" for (nid,) in rows}, paid


def run(peer, sig, make_env, orders=ORDERS, quiet=QUIET, out=print):
    """One blow to `peer` mid-backlog; returns an Outcome."""
    references = [f"B-{i}" for i in range(orders)]
    with up(peer, make_env, DELAY, orders, "B-") as on:
        running, smtp, wa, db = on.running, on.smtp, on.whatsapp, on.db
        gateway = Gateway(running.port, references)
        try:
            gateway.start()
            goal = int(orders * 3 * BLOW_AT)
            deadline = time.monotonic() + LIMIT
            while len(received(smtp, wa)) < goal:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{peer.name}: only {len(received(smtp, wa))} of {goal} "
                        f"messages before the blow:\n{running.tail()}"
                    )
                time.sleep(0.02)
            at_blow = len(received(smtp, wa))
            stop_seconds = running.hit(sig)
            restarted = time.monotonic()
            running.start()
            # Until nothing arrives for `quiet` seconds: longer than any peer
            # waits before it hands a dead sender's work out again, so late
            # duplicates are counted alike for every peer.
            last_count, last_change = -1, restarted
            while True:
                now = time.monotonic()
                count = len(received(smtp, wa))
                if count != last_count:
                    last_count, last_change = count, now
                if now - last_change > quiet or now - restarted > LIMIT:
                    break
                time.sleep(0.2)
            got = received(smtp, wa)  # before the stop: what the run sent
            keys, paid = expected_keys(db)
            per_key = Counter(key for _, key in got)
            after = [at for at, _ in got if at >= restarted]
            with gateway.lock:
                answered = sum(gateway.answered.values())
            outcome = Outcome(
                orders=orders,
                paid=paid,
                expected=len(keys),
                missing=len(keys - set(per_key)) + 3 * (orders - paid),
                duplicated=sum(n - 1 for key, n in per_key.items() if key in keys),
                last_seconds=round(max(after) - restarted, 2) if after else None,
                stop_seconds=round(stop_seconds, 2),
                received_at_blow=at_blow,
                unanswered=orders - answered,
            )
            out(
                f"    {signal.Signals(sig).name}: {outcome.missing} missing, "
                f"{outcome.duplicated} duplicated, last message "
                f"{outcome.last_seconds} s after the restart, stop took "
                f"{outcome.stop_seconds} s ({at_blow} messages before the blow, "
                f"{paid}/{orders} paid)"
            )
            return outcome
        finally:
            gateway.stopped.set()
            with gateway.lock:
                gateway.todo.clear()
