"""Stopping and killing the real `python server.py` mid-delivery.

Each test serves the app in a subprocess wired to the loopback stand-ins,
pays orders over HTTP, stops or kills the process while sends run, starts it
again on the same SQLite file and checks the outbox's promise: every
notification ends `sent`, every recipient got every message at least once,
and repeats are bounded by what was in flight when the process went away.
"""

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.client import Client
from tests.conftest import ADMIN, service_env
from tests.proc import (
    delivery_keys,
    duplicates,
    ids_in_state,
    key_of,
    notification_rows,
)

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals (SIGTERM, SIGKILL)"
)

COURIER = "966504445566"
KINDS = ["email_customer", "whatsapp_admin", "whatsapp_courier"]


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "notifier.db"


def pay_orders(client, prefix, count):
    """Create `count` orders, then pay them all; their references."""
    refs = [f"{prefix}-{i:03d}" for i in range(count)]
    for ref in refs:
        client.create_order(ref)
    for ref in refs:
        response = client.pay(ref)
        assert response.json() == {"status": "paid"}, response.text
    return refs


def wait_all_sent(client, refs, timeout):
    """{reference: order} once every notification of every order is sent."""
    deadline = time.monotonic() + timeout
    orders = {}
    for ref in refs:
        left = max(0.5, deadline - time.monotonic())
        orders[ref] = client.wait_for_states(ref, ("sent",), timeout=left)
    return orders


def check_everything_arrived(orders, smtp, whatsapp):
    """Each notification reached its recipient at least once, and no key was
    delivered more often than the service attempted it. Returns the keys."""
    keys = delivery_keys(smtp, whatsapp)
    recipients = {}
    for call in whatsapp.delivered():
        recipients.setdefault(call.body["biz_opaque_callback_data"], set()).add(
            call.body["to"]
        )
    for mail in smtp.messages:
        key = mail.message["Message-ID"].strip("<>").partition("@")[0]
        recipients.setdefault(key, set()).update(mail.rcpt_tos)
    expected_to = {
        "email_customer": "laila@example.com",
        "whatsapp_admin": ADMIN,
        "whatsapp_courier": COURIER,
    }

    for ref, order in orders.items():
        notes = order["notifications"]
        assert sorted(n["kind"] for n in notes) == KINDS, ref
        for note in notes:
            key = key_of(note["id"])
            assert keys[key] >= 1, f"{ref}: {note['kind']} never arrived"
            assert recipients[key] == {expected_to[note["kind"]]}, (ref, note)
            # A provider cannot see more sends than the service attempted.
            assert keys[key] <= note["attempts"], (ref, note, keys[key])
    return keys


def all_ids(orders):
    return {n["id"] for order in orders.values() for n in order["notifications"]}


# -- SIGTERM / SIGINT: drain, then hand back the rest ------------------------


def drain_then_restart(launcher, db_path, smtp, whatsapp, sig, orders, threads):
    """Stop on `sig` while slow sends run; restart and check the outcome."""
    drain = 2.0
    whatsapp.delay = 1.0
    env = service_env(
        db_path,
        smtp,
        whatsapp,
        NOTIFIER_THREADS=threads,
        NOTIFIER_DRAIN_SECONDS=drain,
    )
    first = launcher.launch(env)
    refs = pay_orders(first.client, "T", orders)
    whatsapp.wait_for(1)

    # A repeat needs a send that reached the provider while its row was not
    # marked sent: one still executing when the drain deadline passed (its
    # lease is released, the stand-in still answers it later). Queued ids
    # never start once stopping, and at most NOTIFIER_THREADS sends execute
    # at any moment, so repeats <= threads. The stand-in answers in 1 s <
    # drain, so a healthy run shows 0: the sends in flight finish and are
    # recorded before the exit.
    answering = [c for c in whatsapp.requests if c.status is None]
    code, took = first.stop(sig, timeout=drain + 15)
    log = first.log

    assert code == 0, first.tail()
    assert took < drain + 5, f"stopping took {took:.1f} s\n{first.tail()}"
    assert f"signal {sig.name} received; stopping" in log
    assert f"draining up to {drain:.1f} s" in log
    # The shutdown says what it left behind (leases handed back, or none).
    assert (
        "notifications left for the next start" in log
        or "stopped; nothing left in flight" in log
    ), first.tail()
    assert "sends still running" not in log, first.tail()
    rows = notification_rows(db_path)
    assert len(rows) == 3 * orders
    # A clean stop leaves no lease behind: nothing waits for one to run out.
    held = {
        nid: row
        for nid, row in rows.items()
        if row[0] == "running" or (row[0] == "pending" and (row[2] or row[3]))
    }
    assert held == {}, held
    unsent = [nid for nid, row in rows.items() if row[0] != "sent"]
    assert unsent, "the backlog was delivered before the signal; slow it down"

    whatsapp.delay = 0.0
    second = launcher.launch(env)
    done = wait_all_sent(second.client, refs, timeout=30)
    keys = check_everything_arrived(done, smtp, whatsapp)
    repeated = duplicates(keys)
    assert sum(repeated.values()) <= threads, (repeated, len(answering))
    code, _ = second.stop()
    assert code == 0, second.tail()
    return repeated


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signal_drains_sends_in_flight_and_restart_sends_the_rest(
    launcher, db_path, smtp, whatsapp, sig
):
    drain_then_restart(launcher, db_path, smtp, whatsapp, sig, orders=4, threads=2)


def test_sigterm_during_a_backlog_of_slow_sends_loses_nothing(
    launcher, db_path, smtp, whatsapp
):
    drain_then_restart(
        launcher, db_path, smtp, whatsapp, signal.SIGTERM, orders=10, threads=2
    )


def test_send_stuck_past_the_drain_deadline_does_not_hang_the_exit(
    launcher, db_path, smtp, whatsapp
):
    lease = 60.0
    whatsapp.delay = 30.0
    env = service_env(
        db_path,
        smtp,
        whatsapp,
        WHATSAPP_READ_TIMEOUT=25,
        NOTIFIER_LEASE_SECONDS=lease,
        NOTIFIER_DRAIN_SECONDS=1,
    )
    first = launcher.launch(env)
    (ref,) = pay_orders(first.client, "S", 1)
    whatsapp.wait_for(2)  # admin and courier: both held for 30 s
    smtp.wait_for(1)
    first.client.wait_for_states(ref, ("sent", "running"))

    # Sweeper join (<= 1 s) + drain (1 s); the executor's own exit join
    # would wait for the 25 s read timeout if the process did not leave.
    code, took = first.stop(signal.SIGTERM, timeout=30)
    assert code == 0, first.tail()
    assert took < 5, f"stopping took {took:.1f} s\n{first.tail()}"
    assert "sends still running after 1.0 s" in first.log, first.tail()

    rows = notification_rows(db_path)
    stuck = {nid for nid, row in rows.items() if row[0] != "sent"}
    assert len(stuck) == 2
    for nid in stuck:
        state, _attempts, owner, lease_until, _error = rows[nid]
        assert (state, owner, lease_until) == ("pending", None, None), rows[nid]

    whatsapp.delay = 0.0
    restarted = time.monotonic()
    second = launcher.launch(env)
    done = wait_all_sent(second.client, [ref], timeout=15)
    took = time.monotonic() - restarted
    assert took < lease / 4, f"sent {took:.1f} s after the restart"
    keys = check_everything_arrived(done, smtp, whatsapp)
    assert all(keys[key_of(nid)] == 1 for nid in stuck)
    assert second.stop()[0] == 0, second.tail()


# -- SIGKILL: nothing runs at exit; leases bring the rows back ----------------


def kill_env(db_path, smtp, whatsapp, **extra):
    return service_env(
        db_path,
        smtp,
        whatsapp,
        NOTIFIER_LEASE_SECONDS=3,
        WHATSAPP_CONNECT_TIMEOUT=0.5,
        WHATSAPP_READ_TIMEOUT=1,
        SMTP_TIMEOUT=1,
        **extra,
    )


def kill_mid_delivery(launcher, db_path, whatsapp, env, prefix, count, sends=3):
    """Launch, pay `count` orders, SIGKILL once `sends` more WhatsApp sends
    began. Returns the new references and the suspects at the kill."""
    proc = launcher.launch(env)
    before = len(whatsapp.requests)
    refs = pay_orders(proc.client, prefix, count)
    whatsapp.wait_for(before + sends)
    assert proc.kill() == -signal.SIGKILL
    return refs, suspects(db_path)


def suspects(db_path):
    """Rows that may have reached a provider without being marked sent.

    Read right after a kill, while nothing writes the file: those `running`
    (claimed by the dead process, maybe mid-send), and any whose attempt
    failed (a timeout can hide a send the provider took). A pending row never
    tried and a sent row cannot be delivered twice."""
    return {
        nid
        for nid, (state, _n, _owner, _lease, error) in notification_rows(
            db_path
        ).items()
        if state == "running" or (state == "pending" and error)
    }


def test_sigkill_mid_delivery_loses_nothing_and_repeats_only_what_ran(
    launcher, db_path, smtp, whatsapp
):
    whatsapp.delay = 0.5
    env = kill_env(db_path, smtp, whatsapp)
    refs, suspect = kill_mid_delivery(launcher, db_path, whatsapp, env, "K", 10)
    rows = notification_rows(db_path)
    assert any(row[0] == "running" for row in rows.values()), rows
    assert any(row[0] == "pending" for row in rows.values()), rows

    whatsapp.delay = 0.0
    second = launcher.launch(env)
    done = wait_all_sent(second.client, refs, timeout=30)
    keys = check_everything_arrived(done, smtp, whatsapp)
    repeated = duplicates(keys)
    assert set(repeated) <= {key_of(nid) for nid in suspect}, (repeated, suspect)
    assert sum(repeated.values()) <= len(suspect)
    assert second.stop()[0] == 0, second.tail()


def test_rows_never_handed_to_the_pool_are_sent_after_a_crash(
    launcher, db_path, smtp, whatsapp
):
    # With one id in the pool at a time the rest of each payment's rows stay
    # on disk only: as after a crash between commit and submit.
    whatsapp.delay = 1.0
    env = kill_env(db_path, smtp, whatsapp, NOTIFIER_MAX_IN_FLIGHT=1)
    first = launcher.launch(env)
    refs = pay_orders(first.client, "C", 5)
    whatsapp.wait_for(1)
    first.kill()

    rows = notification_rows(db_path)
    running = [nid for nid, row in rows.items() if row[0] == "running"]
    untouched = [nid for nid, row in rows.items() if row[:2] == ("pending", 0)]
    assert len(running) <= 1, rows
    assert len(untouched) >= 10, rows
    suspect = suspects(db_path)

    whatsapp.delay = 0.0
    second = launcher.launch(kill_env(db_path, smtp, whatsapp))
    done = wait_all_sent(second.client, refs, timeout=30)
    keys = check_everything_arrived(done, smtp, whatsapp)
    assert set(duplicates(keys)) <= {key_of(nid) for nid in suspect}
    assert second.stop()[0] == 0, second.tail()


@pytest.mark.slow
def test_repeated_sigkills_under_load_lose_nothing(launcher, db_path, smtp, whatsapp):
    # Restarts come faster than the 3 s leases run out: each run finds the
    # last one's claims still held and must leave them to their lease.
    whatsapp.delay = 0.3
    env = kill_env(db_path, smtp, whatsapp, NOTIFIER_THREADS=6)
    refs, suspect = [], set()
    for round_ in range(10):
        new, held = kill_mid_delivery(
            launcher, db_path, whatsapp, env, f"R{round_}", 20, sends=3 + round_
        )
        refs += new
        suspect |= held

    whatsapp.delay = 0.0
    final = launcher.launch(env)
    done = wait_all_sent(final.client, refs, timeout=90)
    assert len(all_ids(done)) == 3 * len(refs)
    keys = check_everything_arrived(done, smtp, whatsapp)
    repeated = duplicates(keys)
    assert set(repeated) <= {key_of(nid) for nid in suspect}, (repeated, suspect)
    assert final.stop()[0] == 0, final.tail()


@pytest.mark.slow
def test_sigterm_during_a_large_backlog_loses_nothing(
    launcher, db_path, smtp, whatsapp
):
    drain_then_restart(
        launcher, db_path, smtp, whatsapp, signal.SIGTERM, orders=60, threads=8
    )


@pytest.mark.slow
def test_repeated_sigterm_restarts_under_load_lose_nothing(
    launcher, db_path, smtp, whatsapp
):
    threads, drain, cycles = 3, 1.5, 6
    whatsapp.delay = 0.7
    env = service_env(
        db_path,
        smtp,
        whatsapp,
        NOTIFIER_THREADS=threads,
        NOTIFIER_DRAIN_SECONDS=drain,
    )
    refs = []
    for cycle in range(cycles):
        proc = launcher.launch(env)
        before = len(whatsapp.requests)
        refs += pay_orders(proc.client, f"G{cycle}", 12)
        whatsapp.wait_for(before + 2 + cycle)
        code, took = proc.stop(signal.SIGTERM, timeout=drain + 15)
        assert code == 0, proc.tail()
        assert took < drain + 5, f"cycle {cycle}: {took:.1f} s\n{proc.tail()}"
        assert ids_in_state(db_path, "running") == []

    whatsapp.delay = 0.0
    final = launcher.launch(env)
    done = wait_all_sent(final.client, refs, timeout=60)
    keys = check_everything_arrived(done, smtp, whatsapp)
    # At most `threads` sends outlive each drain (see drain_then_restart).
    assert sum(duplicates(keys).values()) <= threads * cycles
    assert final.stop()[0] == 0, final.tail()


# -- the HTTP side of a stop --------------------------------------------------


def stream_chunks(port, stop):
    """Upload a chunked body of 1-byte chunks until `stop` is set: waitress
    decodes chunks in Python in its main loop, which stays busy throughout."""
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /orders HTTP/1.1\r\nHost: shop\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            burst = b"1\r\nx\r\n" * 2000
            while not stop.is_set():
                sock.sendall(burst)
    except OSError:
        pass  # the server closed the connection


def test_sigterm_while_the_main_loop_is_busy_still_stops_the_service(
    launcher, db_path, smtp, whatsapp
):
    proc = launcher.launch(service_env(db_path, smtp, whatsapp))
    stop = threading.Event()
    uploader = threading.Thread(target=stream_chunks, args=(proc.port, stop))
    uploader.start()
    try:
        time.sleep(0.3)
        proc.send(signal.SIGTERM)
        code = proc.popen.wait(timeout=4)
    except subprocess.TimeoutExpired:
        swallowed = "uncaptured python exception" in proc.log
        raise AssertionError(
            f"still serving 4 s after SIGTERM (swallowed: {swallowed})\n" + proc.tail(3)
        ) from None
    finally:
        stop.set()
        uploader.join(timeout=10)
    assert code == 0, proc.tail()


def hold_write_lock(db_path):
    """Take SQLite's write lock from outside, as a long transaction would."""
    db = sqlite3.connect(db_path, timeout=15, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    return db


def sigterm_during_a_callback(launcher, db_path, smtp, whatsapp, kind):
    """SIGTERM while a webhook waits for the database in a waitress thread;
    returns the process and what the gateway got (a response or an error)."""
    proc = launcher.launch(service_env(db_path, smtp, whatsapp))
    proc.client.create_order("H-1")
    gateway = Client(proc.url(""))
    answer = {}

    def pay():
        try:
            answer["response"] = gateway.pay("H-1", kind=kind)
        except requests.RequestException as exc:
            answer["error"] = exc

    lock = hold_write_lock(db_path)
    try:
        caller = threading.Thread(target=pay)
        caller.start()
        time.sleep(0.5)  # the callback now waits for the lock
        proc.send(signal.SIGTERM)
        time.sleep(0.5)
    finally:
        lock.rollback()
        lock.close()
    code = proc.wait(timeout=20)
    caller.join(timeout=20)
    gateway.close()
    assert code == 0, proc.tail()
    return proc, answer


def test_sigterm_during_a_callback_answers_it_and_sends_its_messages(
    launcher, db_path, smtp, whatsapp
):
    # serve() waits for the request threads (up to 5 s) before it stops the
    # notifier, and waitress writes the answer from the request's thread.
    proc, answer = sigterm_during_a_callback(
        launcher, db_path, smtp, whatsapp, "payment.succeeded"
    )
    assert "response" in answer, f"{answer.get('error')!r}\n{proc.tail(20)}"
    assert answer["response"].json() == {"status": "paid"}

    second = launcher.launch(service_env(db_path, smtp, whatsapp))
    done = wait_all_sent(second.client, ["H-1"], timeout=15)
    check_everything_arrived(done, smtp, whatsapp)
    assert second.stop()[0] == 0, second.tail()


def test_sigterm_during_a_callback_stops_without_a_traceback(
    launcher, db_path, smtp, whatsapp
):
    # A failed payment creates no notifications: no thread opens a file or
    # socket after the signal, so the closed fd stays closed and the stray
    # write shows as EBADF instead of landing in a reused fd.
    proc, answer = sigterm_during_a_callback(
        launcher, db_path, smtp, whatsapp, "payment.failed"
    )
    assert answer["response"].json() == {"status": "failed"}
    assert "Traceback" not in proc.log, proc.tail(20)
