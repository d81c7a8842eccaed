"""`python server.py ...` as a real subprocess, for crash and command tests.

The service runs exactly as an operator starts it: its own interpreter, its
own signal handlers, its environment built by `tests.conftest.service_env`.
Its stdout and stderr go to a log file under the test's tmp_path, so a test
can read what it said and a failure can show the tail.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from tests.client import Client

ROOT = Path(__file__).resolve().parent.parent
SERVER = "server.py"
HOST = "127.0.0.1"

# What a child process needs from ours; everything else comes from the test.
KEEP_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TEMP",
    "TMP",
    "SYSTEMROOT",  # Windows: sockets and random need it
    "COMSPEC",
)


def free_port():
    """A port nothing listens on right now (bound to 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def base_env():
    """A minimal copy of our environment, with unbuffered UTF-8 output."""
    env = {name: os.environ[name] for name in KEEP_ENV if name in os.environ}
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def child_env(overrides):
    env = base_env()
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def run_command(args, env, timeout=30):
    """Run `python server.py ARGS` to the end; a CompletedProcess with text."""
    return subprocess.run(
        [sys.executable, SERVER, *args],
        cwd=ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


class ServiceProcess:
    """One `python server.py [ARGS]` serving on a free port.

    `env` is the service's own settings (`service_env(...)`); PORT is added
    unless given. Use `start()` then `wait_healthy()` (or `launch()`), and
    `stop()` or `kill()`; `close()` makes sure nothing is left running.
    """

    def __init__(self, env, log_path, args=()):
        self.env = dict(env)
        self.env.setdefault("PORT", str(free_port()))
        self.port = int(self.env["PORT"])
        self.log_path = Path(log_path)
        self.args = list(args)
        self.popen = None
        self.returncode = None
        self.client = Client(f"http://{HOST}:{self.port}")

    # -- life cycle -------------------------------------------------------

    def start(self):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, SERVER, *self.args],
                cwd=ROOT,
                env=child_env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def launch(self, timeout=15.0):
        """Start and wait until /healthz answers 200; returns self."""
        self.start()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=15.0):
        """The /healthz body once it answers 200; fails with the log's tail."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                self.fail(f"exited with {self.popen.returncode} before it was healthy")
            try:
                # The client's keep-alive session: no connection is closed
                # (no FIN for the server to handle) between polls.
                response = self.client.http.get(self.url("/healthz"), timeout=1)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    return response.json()
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(0.05)
        self.fail(f"not healthy within {timeout} s (last: {last})")

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig):
        """Send `sig`; returns the monotonic time it was sent."""
        sent = time.monotonic()
        self.popen.send_signal(sig)
        return sent

    def wait(self, timeout):
        """Wait for the exit; the return code. Kills and fails on timeout."""
        try:
            self.returncode = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            lost = ""
            if "uncaptured python exception" in self.log:
                lost = " (the signal was swallowed by waitress's loop)"
            self.fail(f"still running {timeout} s after it was asked to stop{lost}")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=20.0, settle=0.2):
        """Signal and wait: (return code, seconds from signal to exit).

        `settle` lets the main loop finish the I/O of the last answer first:
        a stop signal that lands inside a waitress handler is lost (see
        test_crash.py::test_sigterm_while_the_main_loop_is_busy_...)."""
        time.sleep(settle)
        sent = self.send(sig)
        code = self.wait(timeout)
        return code, time.monotonic() - sent

    def kill(self):
        """SIGKILL (TerminateProcess on Windows) and reap; the return code."""
        self.popen.kill()
        self.returncode = self.popen.wait(timeout=10)
        return self.returncode

    def close(self):
        """Kill the process if a test left it running; close the client."""
        self.client.close()
        if self.alive():
            self.popen.kill()
            self.popen.wait(timeout=10)

    # -- what it said ---------------------------------------------------------

    def url(self, path):
        return f"http://{HOST}:{self.port}{path}"

    @property
    def log(self):
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=40):
        return "\n".join(self.log.splitlines()[-lines:])

    def fail(self, why):
        raise AssertionError(
            f"server.py {' '.join(self.args)} (pid {self.popen.pid}) {why}; "
            f"log {self.log_path}:\n{self.tail()}"
        )


class Launcher:
    """Starts service processes for one test and cleans up after it.

    Each start gets its own log file (`server-1.log`, `server-2.log`, ...)
    and a fresh free port; the database is whatever `env` names.
    """

    def __init__(self, tmp_path):
        self.tmp_path = Path(tmp_path)
        self.started = []

    def process(self, env, args=()):
        n = len(self.started) + 1
        proc = ServiceProcess(env, self.tmp_path / f"server-{n}.log", args)
        self.started.append(proc)
        return proc

    def launch(self, env, args=(), timeout=15.0):
        return self.process(env, args).launch(timeout)

    def close(self):
        for proc in self.started:
            proc.close()


# -- reading the database behind a stopped (or running) service -------------


def notification_rows(db_path):
    """{id: (state, attempts, owner, lease_until, last_error)} from the file."""
    db = sqlite3.connect(db_path, timeout=15)
    try:
        rows = db.execute(
            "SELECT id, state, attempts, owner, lease_until, last_error"
            " FROM notifications"
        ).fetchall()
    finally:
        db.close()
    return {row[0]: row[1:] for row in rows}


def ids_in_state(db_path, state):
    return sorted(
        nid for nid, row in notification_rows(db_path).items() if row[0] == state
    )


# -- what the stand-ins received ------------------------------------------------


def delivery_keys(smtp, whatsapp):
    """Counter of `notification-<id>` keys of every accepted message.

    WhatsApp messages carry the key in `biz_opaque_callback_data`, emails in
    their Message-ID (`<notification-<id>@domain>`); both are the same on
    every attempt of one notification.
    """
    keys = Counter()
    for call in whatsapp.delivered():
        keys[call.body["biz_opaque_callback_data"]] += 1
    for mail in smtp.messages:
        keys[mail.message["Message-ID"].strip("<>").partition("@")[0]] += 1
    return keys


def key_of(notification_id):
    return f"notification-{notification_id}"


def duplicates(keys):
    """{key: extra deliveries} for keys delivered more than once."""
    return {key: n - 1 for key, n in keys.items() if n > 1}
