"""Crash loop: pay orders while the service is killed and restarted at random.

    python -m bench.chaos [--seconds N] [--seed S]

For N seconds (default 180) `python server.py` runs as a subprocess on one
SQLite file, wired to the loopback stand-ins (which take a little time per
message, so sends are in flight when the blow falls). A client thread
creates orders and pays them with signed webhooks, a few per second,
retrying each request until it gets an answer, as a gateway retries. At
random moments (a seeded RNG) the service gets SIGKILL or SIGTERM and is
started again on the same database.

At the end the stream stops, the service is killed once more, restarted,
and given up to 60 s to send everything. Then the database (read with
sqlite3) is held against what the stand-ins received: every paid order must
have its three notifications delivered to the right recipient at least once,
no order may be paid twice. The exit code is 1 if anything is missing or
paid twice, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.common import free_port, read_only, stand_ins, state_counts
from tests.client import Client, event_body, order_body
from tests.conftest import ADMIN, service_env
from tests.proc import ServiceProcess

KINDS = ("email_customer", "whatsapp_admin", "whatsapp_courier")
DELAY = 0.02  # each stand-in's answer time per message
ORDERS_PER_SECOND = 4
REQUEST_TIMEOUT = 5.0
REQUEST_DEADLINE = 60.0  # one request retried at most this long
FINAL_DEADLINE = 60.0  # to send everything after the last restart
SETTINGS = {
    "NOTIFIER_THREADS": "4",
    "NOTIFIER_LEASE_SECONDS": "5",
    "NOTIFIER_SWEEP_SECONDS": "0.2",
    "NOTIFIER_DRAIN_SECONDS": "2",
    "SMTP_TIMEOUT": "2",
    "WHATSAPP_CONNECT_TIMEOUT": "1",
    "WHATSAPP_READ_TIMEOUT": "2",
    "LOG_LEVEL": "INFO",
}


def customer_email(n):
    return f"customer-{n}@example.com"


def courier_phone(n):
    return f"96655{n:07d}"


# -- the gateway's side -------------------------------------------------------


@dataclass
class Stream:
    """What the client thread did, as it saw it."""

    created: set = field(default_factory=set)  # references answered 201/409
    acknowledged: dict = field(default_factory=dict)  # reference -> "paid"/...
    statuses: Counter = field(default_factory=Counter)  # non-2xx answers
    errors: Counter = field(default_factory=Counter)  # exception names
    gave_up: list = field(default_factory=list)  # (reference, what) past deadline


class Payer(threading.Thread):
    """Creates and pays orders against whatever port the service is on."""

    def __init__(self, base_url, prefix, rate=ORDERS_PER_SECOND):
        super().__init__(name="chaos-payer", daemon=True)
        self.base_url = base_url
        self.rate = rate
        self.prefix = prefix
        self.stop = threading.Event()
        self.stream = Stream()

    def run(self):
        client = Client(self.base_url)
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    self.one_order(client, n)
                except Exception as exc:  # reported in the summary, not fatal
                    self.stream.errors[f"payer {type(exc).__name__}: {exc}"] += 1
                pause = 1.0 / self.rate - (time.monotonic() - started)
                if pause > 0:
                    self.stop.wait(pause)
        finally:
            client.close()

    def one_order(self, client, n):
        reference = f"{self.prefix}-{n}"
        body = order_body(
            reference,
            customer={
                "name": f"Customer {n}",
                "email": customer_email(n),
                "phone": "966501112233",
            },
            courier={"name": "Omar", "phone": courier_phone(n)},
        )
        response = self.retry(
            reference,
            "create",
            lambda: client.http.post(
                client.url("/orders"),
                json=body,
                headers=client.auth(),
                timeout=REQUEST_TIMEOUT,
            ),
            done=lambda r: r.status_code in (201, 409),
        )
        if response is None:
            return
        self.stream.created.add(reference)
        # One event id for every attempt: a gateway retries the same event.
        event = event_body(reference)
        raw = json.dumps(event).encode()
        response = self.retry(
            reference,
            "pay",
            lambda: client.post_webhook(raw),
            done=lambda r: 200 <= r.status_code < 300,
        )
        if response is not None:
            self.stream.acknowledged[reference] = response.json().get("status")

    def retry(self, reference, what, call, done):
        """`call()` until `done(response)`; None once the deadline passed.

        The stream's stop does not cut a request short: a payment under way is
        retried to its answer (the service is up again within seconds)."""
        deadline = time.monotonic() + REQUEST_DEADLINE
        while time.monotonic() < deadline:
            try:
                response = call()
            except requests.RequestException as exc:
                self.stream.errors[type(exc).__name__] += 1
            else:
                if done(response):
                    return response
                self.stream.statuses[f"{what} {response.status_code}"] += 1
            time.sleep(0.05)
        self.stream.gave_up.append((reference, what))
        return None


# -- the service's side ---------------------------------------------------------


class Service:
    """`python server.py` on one port and one database, started many times."""

    def __init__(self, env, tmp):
        self.env = dict(env)
        self.tmp = tmp
        self.proc = None
        self.starts = 0
        self.kills = Counter()  # "SIGKILL" / "SIGTERM"
        self.timeline = []  # (wall time, signal name, start number) per blow
        self.term_exits = []  # (return code, seconds) after each SIGTERM
        self.odd = []  # things worth a look in the report
        self.log_path = tmp / "server.log"

    def start(self):
        self.starts += 1
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"\n===== start {self.starts} at {time.time():.3f}\n")
        self.proc = ServiceProcess(self.env, self.log_path)
        try:
            self.proc.launch(timeout=30)
        except AssertionError:
            self.proc.close()
            raise
        return self.proc

    def hit(self, sig):
        """Send `sig` and wait for the exit (SIGKILL after 15 s of SIGTERM)."""
        proc, self.proc = self.proc, None
        name = signal.Signals(sig).name
        self.kills[name] += 1
        self.timeline.append((time.time(), name, self.starts))
        sent = time.monotonic()
        try:
            proc.popen.send_signal(sig)
            try:
                code = proc.popen.wait(timeout=15)
            except Exception:
                self.odd.append(f"start {self.starts}: still running 15 s after {name}")
                proc.popen.kill()
                code = proc.popen.wait(timeout=10)
            if sig == signal.SIGTERM:
                took = time.monotonic() - sent
                self.term_exits.append((code, took))
                if code != 0:
                    self.odd.append(f"start {self.starts}: SIGTERM exit code {code}")
        finally:
            proc.close()

    def close(self):
        if self.proc is not None:
            self.proc.close()
            self.proc = None

    def tail(self, lines=40):
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def read_db(db_path):
    with read_only(db_path) as conn:
        orders = conn.execute(
            "SELECT id, reference, status, paid_at, customer_email, courier_phone"
            " FROM orders"
        ).fetchall()
        notes = conn.execute(
            "SELECT id, kind, order_id, state, attempts, created_at, sent_at,"
            " last_error FROM notifications"
        ).fetchall()
        events = conn.execute(
            "SELECT order_id, event_id, outcome FROM payment_events"
        ).fetchall()
    return orders, notes, events


# -- the run ----------------------------------------------------------------------


def run(seconds, seed, out=print, rate=ORDERS_PER_SECOND):
    """One crash loop; returns the summary (a dict)."""
    rng = random.Random(seed)
    offset = time.time() - time.monotonic()  # the stand-ins stamp monotonic
    tmp = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    db_path = tmp / "notifier.db"
    service = None
    payer = None
    try:
        with stand_ins(delay=DELAY) as (smtp, whatsapp):
            port = free_port()
            env = service_env(db_path, smtp, whatsapp, **SETTINGS)
            env.update(HOST="127.0.0.1", PORT=str(port))
            service = Service(env, tmp)
            service.start()
            payer = Payer(f"http://127.0.0.1:{port}", f"chaos-{seed}", rate)
            payer.start()
            began = time.monotonic()
            end = began + seconds
            while time.monotonic() < end:
                up = rng.uniform(0.5, 3.0)
                sig = rng.choice((signal.SIGKILL, signal.SIGTERM))
                down = rng.uniform(0.0, 1.0)
                if time.monotonic() + up >= end:
                    break
                time.sleep(up)
                service.hit(sig)
                time.sleep(down)
                service.start()
            # The stream stops (a payment under way is retried to its answer),
            # then one more blow and the last start.
            payer.stop.set()
            payer.join(timeout=REQUEST_DEADLINE + 10)
            if payer.is_alive():
                service.odd.append("the payer thread did not finish")
            service.hit(rng.choice((signal.SIGKILL, signal.SIGTERM)))
            service.start()
            settle_start = time.monotonic()
            deadline = settle_start + FINAL_DEADLINE
            while True:
                counts = state_counts(db_path)
                if set(counts) <= {"sent"}:
                    break
                if time.monotonic() > deadline:
                    service.odd.append(
                        f"not all sent {FINAL_DEADLINE:.0f} s after the last start:"
                        f" {counts}"
                    )
                    break
                time.sleep(0.1)
            settled = time.monotonic() - settle_start
            time.sleep(0.3)  # the last answers reach the stand-ins' records
            service.hit(signal.SIGTERM)
            summary = check(
                db_path, smtp, whatsapp, payer.stream, offset, service.timeline
            )
            summary.update(
                seed=seed,
                seconds=seconds,
                rate=rate,
                starts=service.starts,
                sigkill=service.kills["SIGKILL"],
                sigterm=service.kills["SIGTERM"],
                kills=sum(service.kills.values()),
                drain_after_last_start=round(settled, 2),
                sigterm_max_exit_seconds=round(
                    max((t for _, t in service.term_exits), default=0.0), 2
                ),
                http_errors=dict(payer.stream.errors),
                http_statuses=dict(payer.stream.statuses),
            )
            summary["odd"] = service.odd + summary["odd"]
            report(summary, out)
            if summary["missing"] or summary["paid_twice"] or summary["lost"]:
                out("--- server log tail ---")
                out(service.tail(60))
            return summary
    finally:
        if payer is not None:
            payer.stop.set()
        if service is not None:
            service.close()
        if payer is not None:
            payer.join(timeout=REQUEST_DEADLINE + 10)
        shutil.rmtree(tmp, ignore_errors=True)


def check(db_path, smtp, whatsapp, stream, offset, timeline=()):
    """Hold the database against the stand-ins' records."""
    orders, notes, events = read_db(db_path)
    by_id = {row[0]: row for row in orders}
    by_reference = {row[1]: row for row in orders}
    paid = {row[0] for row in orders if row[2] == "paid"}
    odd = []

    # What the stand-ins received, by key: [(wall time, recipient, text)].
    received = defaultdict(list)
    for mail in smtp.messages:
        key = mail.message["Message-ID"].strip("<>").partition("@")[0]
        for to in mail.rcpt_tos:
            received[key].append((mail.at + offset, to, ""))
    for call in whatsapp.delivered():
        key = call.body.get("biz_opaque_callback_data", "")
        raw = call.raw.decode("utf-8", "replace")
        received[key].append((call.at + offset, call.body.get("to"), raw))
    deliveries = sum(len(v) for v in received.values())
    duplicate_keys = {k: len(v) - 1 for k, v in received.items() if len(v) > 1}

    rows_of = defaultdict(list)
    for row in notes:
        rows_of[row[2]].append(row)
    known_keys = {f"notification-{row[0]}" for row in notes}
    unknown = sorted(set(received) - known_keys)
    if unknown:
        odd.append(f"messages with keys no row has: {unknown[:5]}")

    missing = []
    misdirected = []
    waits = []
    for order_id in sorted(paid):
        _, reference, _, paid_at, email, courier = by_id[order_id]
        rows = rows_of.get(order_id, [])
        kinds = Counter(row[1] for row in rows)
        for kind in KINDS:
            if kinds[kind] == 0:
                missing.append(f"order {reference}: no {kind} row")
        last = None
        for nid, kind, _, state, attempts, _, _, error in rows:
            got = received.get(f"notification-{nid}", [])
            want = {
                "email_customer": email,
                "whatsapp_admin": ADMIN,
                "whatsapp_courier": courier,
            }.get(kind)
            right = [
                at
                for at, to, text in got
                if to == want and (kind == "email_customer" or reference in text)
            ]
            if len(right) < len(got):
                misdirected.append(f"notification {nid} ({kind}, order {reference})")
            if not right:
                missing.append(
                    f"notification {nid} ({kind}, order {reference}): state {state},"
                    f" {attempts} attempts, last error {error!r}"
                )
                continue
            first = min(right)
            last = first if last is None else max(last, first)
        if last is not None and len(rows) == len(KINDS):
            waits.append((last - paid_at, reference))

    # Paid twice: more than one succeeded event, or rows beyond three, per order.
    succeeded = Counter(order for order, _, outcome in events if outcome == "succeeded")
    paid_twice = sorted(
        by_id[o][1] for o, n in succeeded.items() if n > 1 and o in by_id
    )
    paid_twice += sorted(
        by_id[o][1] for o, rows in rows_of.items() if len(rows) > len(KINDS)
    )
    for order_id in paid:
        if succeeded[order_id] == 0:
            odd.append(f"order {by_id[order_id][1]} paid without a succeeded event")

    # Answers the service gave that the database must still hold.
    lost = [
        f"order {reference} created (201) but not in the database"
        for reference in sorted(stream.created - set(by_reference))
    ]
    for reference, status in sorted(stream.acknowledged.items()):
        row = by_reference.get(reference)
        if row is None or row[2] != "paid":
            lost.append(f"order {reference} answered {status!r} but not paid")
    for reference, what in stream.gave_up:
        odd.append(f"gave up on {what} of {reference} after {REQUEST_DEADLINE} s")

    # Orders that waited over a second: which blows fell in between.
    slow = []
    for wait, reference in sorted(waits, reverse=True)[:10]:
        if wait < 1.0:
            break
        paid_at = by_reference[reference][3]
        blows = [
            f"{name} of start {n} at +{at - paid_at:.2f} s"
            for at, name, n in timeline
            if paid_at <= at <= paid_at + wait
        ]
        slow.append(f"order {reference} {wait:.2f} s; {', '.join(blows) or 'no kill'}")
    waits.sort()
    longest = waits[-1] if waits else (None, None)
    return {
        "orders_created": len(orders),
        "orders_paid": len(paid),
        "notifications": len(notes),
        "states": Counter(row[3] for row in notes),
        "attempts": Counter(row[4] for row in notes),
        "deliveries": deliveries,
        "duplicates": sum(duplicate_keys.values()),
        "duplicate_keys": len(duplicate_keys),
        "missing": len(missing),
        "missing_detail": missing[:20],
        "misdirected": misdirected[:20],
        "paid_twice": len(paid_twice),
        "paid_twice_detail": paid_twice[:20],
        "lost": lost[:20],
        "longest_wait": None if longest[0] is None else round(longest[0], 2),
        "longest_wait_order": longest[1],
        "median_wait": round(waits[len(waits) // 2][0], 3) if waits else None,
        "slow": slow,
        "odd": odd,
    }


def report(s, out=print):
    out(f"chaos: seed {s['seed']}, {s['seconds']} s, {s['rate']} orders/s")
    rows = [
        ("orders created", s["orders_created"]),
        ("orders paid", s["orders_paid"]),
        ("kills", f"{s['kills']} (SIGKILL {s['sigkill']} / SIGTERM {s['sigterm']})"),
        ("service starts", s["starts"]),
        ("notifications", f"{s['notifications']} {dict(s['states'])}"),
        ("attempts per notification", dict(sorted(s["attempts"].items()))),
        ("messages received", s["deliveries"]),
        ("duplicates delivered", f"{s['duplicates']} ({s['duplicate_keys']} keys)"),
        ("missing", s["missing"]),
        ("paid twice", s["paid_twice"]),
        ("answered but lost", len(s["lost"])),
        (
            "longest wait for last message",
            f"{s['longest_wait']} s (order {s['longest_wait_order']})",
        ),
        ("median wait for last message", f"{s['median_wait']} s"),
        ("all sent after last start", f"{s['drain_after_last_start']} s"),
        ("slowest SIGTERM exit", f"{s['sigterm_max_exit_seconds']} s"),
        ("client connection errors", s["http_errors"]),
        ("client non-2xx answers", s["http_statuses"]),
    ]
    for name, value in rows:
        out(f"  {name:<32} {value}")
    for title, items in (
        ("missing", s["missing_detail"]),
        ("misdirected", s["misdirected"]),
        ("paid twice", s["paid_twice_detail"]),
        ("answered but lost", s["lost"]),
        ("waited", s["slow"]),
        ("odd", s["odd"]),
    ):
        for item in items:
            out(f"  {title}: {item}")


def verdict(summary):
    bad = summary["missing"] or summary["paid_twice"] or summary["lost"]
    return 1 if bad else 0


def main(argv=None, out=print):
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--rate",
        type=float,
        default=ORDERS_PER_SECOND,
        help="orders paid per second (more: more sends in flight at a kill)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be above 0")
    seed = (
        args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    )
    summary = run(args.seconds, seed, out, args.rate)
    code = verdict(summary)
    out(f"chaos: {'FAIL' if code else 'OK'} (rerun with --seed {seed})")
    return code


if __name__ == "__main__":
    sys.exit(main())
