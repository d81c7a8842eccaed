"""`python -m bench.compare [--quick] [--only PEER,...] [--doc PATH]`.

The service next to what shops use instead (bench/peers/), all in one run,
against the same loopback stand-ins, one peer at a time:

1. webhook latency, one keep-alive client, one webhook at a time, with
   channels answering at once and with each channel taking 2 s;
2. webhooks per second at 8 connections with instant channels, and as a
   share of a bare Bottle+waitress hello measured in the same run;
3. a backlog of 300 paid orders, SIGKILL to every process of the peer in the
   middle of it, a restart (bench/backlog.py);
4. the same with SIGTERM, and how long the stop took.

Prints the table, and writes it with a plot of the latency distributions,
the command, the core count and the versions to docs/benchmarks.md. A peer
that cannot run here (Redis down, a package missing) gets the reason in its
row instead of figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import backlog
from bench.common import (
    ROOT,
    env_for,
    free_port,
    log,
    run_load,
    temp_dir,
)
from bench.peers.procs import BY_NAME, PEERS, up
from bench.report import machine, table_lines, write_doc

SLOW = 2.0  # seconds each channel takes for the slow latency run
CONNECTIONS = 8
REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/13")
# One set of settings for every peer: the service's defaults but for send
# timeouts that fit the 15 s a dead sender's work waits before it is taken
# again (the service's lease; Celery's visibility timeout).
SETTINGS = {
    "LOG_LEVEL": "WARNING",
    "HTTP_THREADS": "8",
    "NOTIFIER_THREADS": "4",
    "SMTP_TIMEOUT": "5",
    "WHATSAPP_CONNECT_TIMEOUT": "2",
    "WHATSAPP_READ_TIMEOUT": "5",
    "NOTIFIER_LEASE_SECONDS": "15",
    "NOTIFIER_SWEEP_SECONDS": "2",
    "PEER_VISIBILITY_SECONDS": "15",
}


@dataclass(frozen=True)
class Plan:
    name: str
    latency_requests: int
    slow_requests: int  # with 2 s channels; the inline peer takes 6 s each
    inline_slow_requests: int
    warmup: int
    throughput_seconds: float
    throughput_warmup: int
    throughput_orders: int
    backlog_orders: int


FULL = Plan("full", 300, 100, 10, 10, 10, 5, 20000, 300)
QUICK = Plan("quick", 40, 20, 2, 3, 2, 2, 4000, 60)


def make_env(peer):
    """A function (db, smtp, whatsapp, tmp) -> environment for `peer`; for a
    peer on Redis it empties the comparison's database there first."""

    def build(db, smtp, whatsapp, tmp):
        env = env_for(db, smtp, whatsapp, free_port(), **SETTINGS)
        env["PEER_HUEY_DB"] = str(tmp / "huey.db")
        env["PEER_CELERY_BROKER"] = REDIS_URL
        if peer.broker == "redis":
            _flush_redis()
        return env

    return build


MARK = "bench:peers"  # set in the Redis database the comparison may empty


def _flush_redis():
    """Empty the comparison's Redis database, never one holding other data."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    if _foreign_keys(client):
        raise RuntimeError(f"{REDIS_URL} holds keys the comparison did not write")
    client.flushdb()
    client.set(MARK, "emptied before each Celery run by python -m bench.compare")


def _foreign_keys(client):
    return client.dbsize() and not client.exists(MARK)


def why_not(peer):
    """Why `peer` cannot run on this machine, or None."""
    if peer.package:
        try:
            importlib.import_module(peer.package)
        except ImportError:
            return (
                f"{peer.package} is not installed "
                "(pip install -r bench/requirements-peers.txt)"
            )
    if peer.broker == "redis":
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
            client.ping()
        except Exception as exc:
            return f"no Redis at {REDIS_URL.rsplit('/', 1)[0]}: {exc}"
        if _foreign_keys(client):
            return (
                f"{REDIS_URL} holds keys the comparison did not write; point "
                "PEER_REDIS_URL at an empty database"
            )
    return None


# -- measurements ------------------------------------------------------------


def latency(peer, plan, delay, requests):
    count = requests + plan.warmup
    with up(peer, make_env(peer), delay, count, "L-") as on:
        result = run_load(
            on.running.port,
            "/payments/webhook",
            "L-",
            count,
            threads=1,
            requests=requests,
            warmup=plan.warmup if delay == 0 else 0,
            expect="paid",
            latencies=True,
        )
        if delay == 0:
            _wait_for_messages(peer, on, 3 * count)
    _check(peer, result)
    return result


def _wait_for_messages(peer, on, count, timeout=60.0):
    """Every paid order's three messages arrive: the peer really sends."""
    deadline = time.monotonic() + timeout
    while len(backlog.received(on.smtp, on.whatsapp)) < count:
        if time.monotonic() > deadline:
            got = len(backlog.received(on.smtp, on.whatsapp))
            raise RuntimeError(
                f"{peer.name}: {got} of {count} messages arrived:\n{on.running.tail()}"
            )
        time.sleep(0.1)


def throughput(peer, plan):
    orders = plan.throughput_orders
    with up(peer, make_env(peer), 0.0, orders, "T-") as on:
        result = run_load(
            on.running.port,
            "/payments/webhook",
            "T-",
            orders,
            threads=CONNECTIONS,
            seconds=plan.throughput_seconds,
            warmup=plan.throughput_warmup,
            expect="paid",
        )
    _check(peer, result)
    return result


def _check(peer, result):
    if result["unexpected"] or result["errors"] or result["exhausted"]:
        raise RuntimeError(
            f"{peer.name}: {result['unexpected']} unexpected answers, "
            f"{result['errors']} errors, orders exhausted: {result['exhausted']}; "
            f"{result['samples']}"
        )


def hello_rate(plan):
    from bench.throughput import measure_hello

    with temp_dir("cmp-hello") as tmp:
        return measure_hello(plan, tmp)


def measure(peer, plan):
    """Every figure of one peer; a figure that failed holds its error."""
    row = {"peer": peer.name, "title": peer.title}
    reason = why_not(peer)
    if reason:
        row["skipped"] = reason
        log(f"{peer.title}: not run: {reason}")
        return row
    slow_requests = (
        plan.inline_slow_requests if peer.name == "inline" else plan.slow_requests
    )
    steps = (
        ("instant", lambda: latency(peer, plan, 0.0, plan.latency_requests)),
        ("slow", lambda: latency(peer, plan, SLOW, slow_requests)),
        ("throughput", lambda: throughput(peer, plan)),
        ("sigkill", lambda: _blow(peer, plan, signal.SIGKILL)),
        ("sigterm", lambda: _blow(peer, plan, signal.SIGTERM)),
    )
    for key, step in steps:
        started = time.monotonic()
        try:
            row[key] = step()
        except Exception as exc:
            row[key] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
            traceback.print_exc()
        _say(peer, key, row[key], time.monotonic() - started)
    return row


def _blow(peer, plan, sig):
    outcome = backlog.run(
        peer, sig, make_env(peer), orders=plan.backlog_orders, out=log
    )
    return outcome.as_dict()


def _say(peer, key, value, took):
    if "error" in value:
        log(f"{peer.title} {key}: ERROR {value['error'][:300]}")
    elif key in ("instant", "slow"):
        log(
            f"{peer.title} {key}: {value['requests']} webhooks, p50 "
            f"{value['p50']:.1f} ms, p99 {value['p99']:.1f} ms ({took:.0f} s)"
        )
    elif key == "throughput":
        log(f"{peer.title}: {value['rate']:.0f} webhooks/s ({took:.0f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--only", default="", help="peers, comma-separated")
    parser.add_argument(
        "--doc",
        default=str(ROOT / "docs" / "benchmarks.md"),
        help="where to write the Markdown (the plot and the raw figures beside "
        "it); '' for none",
    )
    parser.add_argument(
        "--render",
        metavar="JSON",
        default="",
        help="write the doc again from a saved run (its .json), measuring nothing",
    )
    args = parser.parse_args(argv)
    if args.render and not args.doc:
        parser.error("--render writes a doc: give --doc PATH")
    if args.render:
        run = json.loads(Path(args.render).read_text(encoding="utf-8"))
        print(f"compare: wrote {write_doc(Path(args.doc), run)}")
        return 0
    plan = QUICK if args.quick else FULL
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [name for name in chosen if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown peer {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
    peers = [p for p in PEERS if not chosen or p.name in chosen]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    print(f"compare: {plan.name} run, {os.cpu_count()} cores", flush=True)
    try:
        hello = hello_rate(plan)
        log(f"bare hello: {hello['rate']:.0f} requests/s")
    except Exception as exc:
        hello = {"error": f"{type(exc).__name__}: {exc}"[:600]}
        traceback.print_exc()
    rows = [measure(peer, plan) for peer in peers]
    command = "python -m bench.compare" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {args.only}"
    run = {
        "command": command,
        "seconds": round(time.monotonic() - started, 1),
        "plan": asdict(plan),
        "quiet": backlog.QUIET,
        "delay": backlog.DELAY,
        "machine": machine(),
        "hello": hello,
        "rows": rows,
    }
    print()
    for line in table_lines(rows, hello):
        print(line)
    print(f"\ncompare: done in {run['seconds'] / 60:.1f} min", flush=True)
    if args.doc:
        doc = Path(args.doc)
        saved = doc.with_suffix(".json")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(run, indent=1, default=str), encoding="utf-8")
        print(f"compare: wrote {write_doc(doc, run)} and {saved}")
    failed = [r["peer"] for r in rows if any("error" in v for v in _cells(r))]
    return 1 if failed or "error" in hello else 0


def _cells(row):
    return [v for v in row.values() if isinstance(v, dict)]


if __name__ == "__main__":
    sys.exit(main())
