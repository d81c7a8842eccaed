"""The five contenders as processes: an app, and for two of them a worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import PYTHON, ROOT, http_status, seed, stand_ins, temp_dir
from tests.proc import KEEP_ENV

STOP_TIMEOUT = 60.0  # a SIGTERM'd peer still running after this is killed


@dataclass(frozen=True)
class Peer:
    name: str
    title: str  # the table's row name
    app: str  # the app's command line after the interpreter
    worker: str = ""  # the worker's, if it has one
    package: str = ""  # the library it needs (bench/requirements-peers.txt)
    broker: str = ""  # "redis" when it needs the Redis server


PEERS = (
    Peer("inline", "inline sends", "-m bench.peers.serve inline"),
    Peer("thread_pool", "thread pool + atexit", "-m bench.peers.serve thread_pool"),
    Peer(
        "huey",
        "Huey (SQLite)",
        "-m bench.peers.serve huey",
        "-m huey.bin.huey_consumer bench.peers.huey_queue.huey"
        " -k thread -w 4 -g TERM --quiet",
        package="huey",
    ),
    Peer(
        "celery",
        "Celery (Redis)",
        "-m bench.peers.serve celery",
        "-m celery -A bench.peers.celery_queue worker"
        " --concurrency 4 --loglevel WARNING",
        package="celery",
        broker="redis",
    ),
    Peer("service", "this service", "server.py"),
)
BY_NAME = {peer.name: peer for peer in PEERS}


class Running:
    """A peer's processes on one port, each in a session of its own so a
    SIGKILL can take a worker's children with it, as a crash of the worker
    would."""

    def __init__(self, peer, env, log_dir):
        self.peer = peer
        self.env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        self.env.update(env, PYTHONUNBUFFERED="1")
        self.port = int(env["PORT"])
        self.log_dir = Path(log_dir)
        self.procs = []
        self.starts = 0

    def start(self, timeout=60.0):
        self.starts += 1
        for role, line in (("app", self.peer.app), ("worker", self.peer.worker)):
            if not line:
                continue
            log = open(self.log_dir / f"{self.peer.name}-{role}.log", "ab")
            log.write(f"\n===== start {self.starts}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [PYTHON, *line.split()],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while http_status(self.port, "/healthz") != 200:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.peer.name}: a process exited with "
                        f"{proc.returncode} at start-up:\n{self.tail()}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.peer.name}: not ready:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def hit(self, sig):
        """Send `sig` (SIGKILL: to every process of every group) and wait for
        the exits; return the seconds until the last one was gone."""
        procs, self.procs = self.procs, []
        sent = time.monotonic()
        for proc in procs:
            if proc.poll() is not None:
                continue
            if sig == signal.SIGKILL:
                _killpg(proc, signal.SIGKILL)
            else:
                proc.send_signal(sig)
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, STOP_TIMEOUT - (time.monotonic() - sent)))
            except subprocess.TimeoutExpired:
                pass
        took = time.monotonic() - sent
        for proc in procs:  # what is left: a hung stop, orphaned children
            _killpg(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return took

    def stop(self):
        if self.procs:
            self.hit(signal.SIGTERM)

    def tail(self, lines=20):
        out = []
        for path in sorted(self.log_dir.glob(f"{self.peer.name}-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def _killpg(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Up:
    running: Running
    smtp: object  # the stand-ins the peer sends to
    whatsapp: object
    db: Path


@contextlib.contextmanager
def up(peer, make_env, delay, orders, prefix):
    """`peer` started on a fresh database of `orders` pending orders (references
    PREFIX0, PREFIX1, ...) beside stand-ins taking `delay` per message, and
    stopped on exit. `make_env(db, smtp, whatsapp, tmp)` gives its settings."""
    with temp_dir(f"peer-{peer.name}") as tmp, stand_ins(delay) as (smtp, wa):
        db = tmp / "shop.db"
        seed(db, orders, prefix=prefix)
        with Running(peer, make_env(db, smtp, wa, tmp), tmp) as running:
            running.start()
            yield Up(running, smtp, wa, db)
