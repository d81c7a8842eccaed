"""4. Resident memory of the service, empty vs. a backlog it cannot drain.

The backlog (paid orders with three pending outbox rows each) is written with
the models while no service runs. Both runs use stand-ins that take 1 s per
send, so the backlog stays; RSS is psutil's for the `python server.py`
process.
"""

import math
import time

import psutil

from bench.common import (
    Figure,
    log,
    seed,
    service_proc,
    stand_ins,
    state_counts,
    temp_dir,
)

SECTION = "memory"
SLOW = 1.0
MB = 1024 * 1024


def _measure(db, tmp, smtp, whatsapp, seconds):
    """(final RSS, peak RSS, CPU seconds) of the service after `seconds`."""
    with service_proc(tmp, db, smtp, whatsapp) as server:
        server.start()
        proc = psutil.Process(server.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        peak = rss = proc.memory_info().rss
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            rss = proc.memory_info().rss
            peak = max(peak, rss)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        counts = state_counts(db) if db.exists() else {}
    return rss, peak, cpu, counts


def run(plan):
    rows = plan.memory_rows
    orders = math.ceil(rows / 3)
    wait = plan.memory_seconds
    with stand_ins(SLOW) as (smtp, whatsapp):
        with temp_dir("memory-empty") as tmp:
            log(
                f"empty database, channels {SLOW:g} s, RSS {plan.memory_settle:g} s "
                "after start-up"
            )
            empty, empty_peak, _, _ = _measure(
                tmp / "notifier.db", tmp, smtp, whatsapp, plan.memory_settle
            )
            log(f"empty: RSS {empty / MB:.1f} MB")
        with temp_dir("memory-backlog") as tmp:
            db = tmp / "notifier.db"
            started = time.monotonic()
            seed(db, orders, prefix="M-", paid=True)
            log(
                f"backlog of {orders * 3} pending notifications written in "
                f"{time.monotonic() - started:.1f} s; running {wait:g} s"
            )
            full, peak, cpu, counts = _measure(db, tmp, smtp, whatsapp, wait)
            log(
                f"backlog: RSS {full / MB:.1f} MB (peak {peak / MB:.1f} MB), "
                f"service CPU {cpu:.1f} s in {wait:g} s, states {counts}"
            )
    growth = (full - empty) / MB
    return [
        Figure(SECTION, "RSS after start-up, empty DB", empty / MB, "MB"),
        Figure(
            SECTION,
            f"RSS with {orders * 3:,} pending, after {wait:g} s",
            full / MB,
            "MB",
            note=f"peak {peak / MB:.1f} MB",
        ),
        Figure(SECTION, "RSS growth", growth, "MB", "< 30", growth < 30),
        Figure(
            SECTION,
            "service CPU with the backlog",
            100 * cpu / wait,
            "% of a core",
            note=f"{counts.get('sent', 0)} sent meanwhile",
        ),
    ]
