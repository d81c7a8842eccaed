"""What every measurement shares: figures, processes, stand-ins, seeding."""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

# The bench drives the service exactly as the tests wire it.
from tests.client import SECRET  # noqa: E402
from tests.conftest import WA_TOKEN, service_env  # noqa: E402
from tests.proc import KEEP_ENV  # noqa: E402

# Settings that differ from the tests' fast timings: sends of 2 s must not time
# out, the sweeper keeps its production interval, and logs stay quiet.
BENCH_OVERRIDES = {
    "LOG_LEVEL": "WARNING",
    "SMTP_TIMEOUT": "15",
    "WHATSAPP_CONNECT_TIMEOUT": "5",
    "WHATSAPP_READ_TIMEOUT": "15",
    "NOTIFIER_LEASE_SECONDS": "60",
    "NOTIFIER_SWEEP_SECONDS": "2",
    "NOTIFIER_DRAIN_SECONDS": "3",
    "HTTP_THREADS": "8",
}
HTTP_THREADS = 8


def log(message):
    print(f"  {message}", flush=True)


# -- figures ---------------------------------------------------------------


@dataclass
class Figure:
    """One measured number, next to its target when it has one."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None  # None: no target (context only)
    note: str = ""

    @property
    def verdict(self):
        if self.value is None:
            return "ERROR"
        if self.passed is None:
            return ""
        return "PASS" if self.passed else "MISS"

    def shown(self):
        if self.value is None:
            return "-"
        value = self.value
        if self.unit == "ms":
            text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
        elif self.unit in ("x", "%"):
            text = f"{value:.2f}" if value < 10 else f"{value:.0f}"
        elif abs(value) >= 100 or value == int(value):
            text = f"{value:.0f}"
        else:
            text = f"{value:.1f}"
        return f"{text} {self.unit}".strip()

    def as_dict(self):
        data = asdict(self)
        data["verdict"] = self.verdict
        return data


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- places and ports --------------------------------------------------------


@contextlib.contextmanager
def temp_dir(name):
    path = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def stand_ins(delay=0.0):
    """Both loopback stand-ins, each answering after `delay` seconds."""
    from tests.fakes.smtp import SmtpStandIn
    from tests.fakes.whatsapp import WhatsAppStandIn

    smtp = SmtpStandIn()
    whatsapp = WhatsAppStandIn(expected_token=WA_TOKEN)
    smtp.delay = whatsapp.delay = delay
    try:
        smtp.start()
        whatsapp.start()
        yield smtp, whatsapp
    finally:
        whatsapp.stop()
        smtp.stop()


def env_for(db_path, smtp, whatsapp, port, **overrides):
    """The service's environment: the tests' wiring plus the bench's timings."""
    env = service_env(db_path, smtp, whatsapp, **BENCH_OVERRIDES)
    env.update(HOST=HOST, PORT=str(port))
    env.update({k: str(v) for k, v in overrides.items()})
    return env


# -- processes -------------------------------------------------------------


class Proc:
    """A child process serving HTTP on 127.0.0.1, stopped (or killed) on exit.

    `build(port)` returns the (argv, env) for a given port; a port another
    process took between the choice and the bind is chosen again.
    """

    ATTEMPTS = 3

    def __init__(self, build, log_path, ready_path="/healthz"):
        self.build = build
        self.log_path = Path(log_path)
        self.ready_path = ready_path
        self.name = "?"
        self.port = None
        self.proc = None
        self.started_at = None
        self._log = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=30.0):
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                self.stop()
                if attempt == self.ATTEMPTS:
                    raise RuntimeError(f"{self.name}: no free port") from None
        return self

    def _start_once(self, timeout):
        self.port = free_port()
        argv, env = self.build(self.port)
        self.name = " ".join(str(a) for a in argv[1:3])
        # Only what a child needs from ours: no stray setting from the shell
        # (a NOTIFIER_* or WHATSAPP_* left exported) may change a figure.
        full_env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.tail()
                if "already in use" in tail:
                    raise _PortTaken()
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} at "
                    f"start-up:\n{tail}"
                )
            status = http_status(self.port, self.ready_path)
            if status == 200:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not ready after {timeout:.0f} s "
                    f"(last status {status}):\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()  # SIGTERM: the service drains, then exits
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def tail(self, lines=30):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


class _PortTaken(Exception):
    pass


def service_proc(tmp, db_path, smtp, whatsapp, **overrides):
    """`python server.py` wired to the stand-ins, with the bench's settings."""

    def build(port):
        env = env_for(db_path, smtp, whatsapp, port, **overrides)
        return [PYTHON, "server.py"], env

    return Proc(build, tmp / "server.log")


def module_proc(tmp, module, *args, db_path=None, smtp=None, whatsapp=None):
    """`python -m MODULE ARGS`, "PORT" in ARGS standing for the chosen port.

    With `db_path` it gets the service's environment, like server.py."""

    def build(port):
        argv = [PYTHON, "-m", module]
        argv += [str(port) if a == "PORT" else str(a) for a in args]
        env = {}
        if db_path is not None:
            env = env_for(db_path, smtp, whatsapp, port)
        return argv, env

    return Proc(build, tmp / f"{module.rpartition('.')[2]}.log")


class CpuSampler:
    """Samples a process's CPU seconds in a thread, to read over any window."""

    def __init__(self, pid, interval=0.1):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples = []  # (wall time, CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _take(self):
        try:
            times = self.proc.cpu_times()
        except Exception:  # the process ended
            return
        self.samples.append((time.time(), times.user + times.system))

    def _loop(self):
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=5)

    def _at(self, when):
        samples = self.samples
        if not samples:
            return None
        if when <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in zip(samples, samples[1:], strict=False):
            if t0 <= when <= t1:
                return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-9)
        return samples[-1][1]

    def between(self, start, end):
        """CPU seconds the process used from `start` to `end` (wall times)."""
        a, b = self._at(start), self._at(end)
        return None if a is None or b is None else b - a


def http_status(port, path, timeout=2.0):
    """Status of GET `path`, or None when nothing answers yet."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def run_load(
    port,
    path,
    prefix,
    count,
    threads,
    seconds=None,
    requests=None,
    warmup=0,
    expect=None,
    cycle=False,
    timeout=None,
    latencies=False,
):
    """Run bench.load in its own process; return its JSON summary."""
    argv = [
        PYTHON, "-m", "bench.load",
        "--port", str(port), "--path", path,
        "--prefix", prefix, "--count", str(count),
        "--threads", str(threads), "--warmup", str(warmup),
        "--secret", SECRET,
    ]  # fmt: skip
    if seconds is not None:
        argv += ["--seconds", str(seconds)]
    if requests is not None:
        argv += ["--requests", str(requests)]
    if expect:
        argv += ["--expect", expect]
    if cycle:
        argv.append("--cycle")
    if latencies:
        argv.append("--latencies")
    if timeout is None:
        timeout = (seconds or 0) + 120 + (requests or 0) * 10
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if not result["requests"]:
        raise RuntimeError(f"no request to {path} was answered: {result['samples']}")
    return result


# -- data ------------------------------------------------------------------

KINDS = ("email_customer", "whatsapp_admin", "whatsapp_courier")
ORDERS_PER_TRANSACTION = 10_000
ROWS_PER_INSERT = 500  # well under SQLite's limit of bound parameters


def seed(db_path, count, prefix, paid=False, items=True):
    """Insert `count` orders (references prefix0..), directly with the models.

    With `paid`, the orders are paid and each gets the three pending outbox
    rows a paid order gets. A few big transactions, each of several
    multi-row INSERTs. Call it while no service holds the database.
    """
    from peewee import fn

    import models
    from models import Notification, Order, OrderItem, write_transaction

    db = models.connect(f"sqlite:///{db_path}")
    try:
        models.create_tables()
        now = time.time()
        first = (Order.select(fn.MAX(Order.id)).scalar() or 0) + 1
        for start in range(0, count, ORDERS_PER_TRANSACTION):
            ids = range(
                first + start, first + min(count, start + ORDERS_PER_TRANSACTION)
            )
            with write_transaction():
                orders = [_order_row(i, f"{prefix}{i - first}", now, paid) for i in ids]
                for rows in _chunks(orders, ROWS_PER_INSERT):
                    Order.insert_many(rows).execute()
                if items:
                    lines = [_item_row(i) for i in ids]
                    for rows in _chunks(lines, ROWS_PER_INSERT):
                        OrderItem.insert_many(rows).execute()
                if paid:
                    outbox = [_outbox_row(i, kind, now) for i in ids for kind in KINDS]
                    for rows in _chunks(outbox, ROWS_PER_INSERT):
                        Notification.insert_many(rows).execute()
    finally:
        db.close()


def _item_row(order_id):
    return {"order": order_id, "name": "قهوة", "quantity": 2, "unit_amount": 7500}


def _chunks(rows, size):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _order_row(order_id, reference, now, paid):
    return {
        "id": order_id,
        "reference": reference,
        "amount": 15000,
        "currency": "SAR",
        "status": "paid" if paid else "pending",
        "customer_name": "ليلى Customer",
        "customer_email": "laila@example.com",
        "customer_phone": "966501112233",
        "courier_name": "Omar",
        "courier_phone": "966504445566",
        "address": "حي النخيل، الرياض",
        "payment_id": f"pay_{reference}" if paid else None,
        "created_at": now,
        "paid_at": now if paid else None,
    }


def _outbox_row(order_id, kind, now):
    return {
        "kind": kind,
        "order": order_id,
        "payload": "{}",
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


@contextlib.contextmanager
def read_only(db_path):
    """A plain sqlite3 connection that can only read, closed on exit."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=15)
    try:
        yield conn
    finally:
        conn.close()


def state_counts(db_path):
    """Outbox rows per state, read with a plain sqlite3 connection."""
    with read_only(db_path) as conn:
        rows = conn.execute(
            "SELECT state, COUNT(*) FROM notifications GROUP BY state"
        ).fetchall()
    return dict(rows)


def sent_times(db_path):
    with read_only(db_path) as conn:
        return conn.execute(
            "SELECT MIN(sent_at), MAX(sent_at), COUNT(*) FROM notifications "
            "WHERE state = 'sent'"
        ).fetchone()
