"""3. Delivery rate against channels that take 50 ms, next to threads / 50 ms.

Paid orders with their three pending outbox rows each are written with the
models while no service runs; then `python server.py` starts with
NOTIFIER_THREADS=4 and the rate is the count of sent rows over the time
between the first and the last `sent_at` (start-up left out).
"""

import time

from bench.common import (
    Figure,
    log,
    seed,
    sent_times,
    service_proc,
    stand_ins,
    state_counts,
    temp_dir,
)

SECTION = "delivery"
LATENCY = 0.05
THREADS = 4


def run(plan):
    ideal = THREADS / LATENCY
    orders = max(1, round(ideal * plan.delivery_seconds / 3))
    rows = orders * 3
    log(
        f"{rows} pending notifications ({orders} paid orders), channels "
        f"{LATENCY * 1000:.0f} ms, NOTIFIER_THREADS={THREADS}, ideal {ideal:.0f}/s"
    )
    with temp_dir("delivery") as tmp, stand_ins(LATENCY) as (smtp, whatsapp):
        db = tmp / "notifier.db"
        seed(db, orders, prefix="D-", paid=True)
        with service_proc(tmp, db, smtp, whatsapp, NOTIFIER_THREADS=THREADS) as server:
            server.start()
            spawned = server.started_at
            # Bounded: four times the ideal duration plus a margin.
            deadline = time.monotonic() + 4 * rows / ideal + 30
            counts = {}
            while time.monotonic() < deadline:
                counts = state_counts(db)
                if counts.get("sent", 0) + counts.get("dead", 0) >= rows:
                    break
                time.sleep(0.25)
            first, last, sent = sent_times(db)
        log(f"outbox states at the end: {counts}")
        log(
            f"stand-ins got {len(smtp.messages)} emails, "
            f"{len(whatsapp.requests)} WhatsApp calls"
        )

    if not sent or sent < 2 or last <= first:
        rate = None
    else:
        rate = (sent - 1) / (last - first)
    whole = sent / (last - spawned) if sent and last else None
    note = "" if sent == rows else f"only {sent} of {rows} sent in time"
    if rate is not None:
        log(
            f"{sent} sent between first and last in {last - first:.1f} s = "
            f"{rate:.1f}/s ({100 * rate / ideal:.0f}% of ideal); from process "
            f"start {whole:.1f}/s"
        )
    share = None if rate is None else 100 * rate / ideal
    return [
        Figure(SECTION, "ideal, 4 threads / 50 ms", ideal, "msg/s"),
        Figure(SECTION, "delivered, first to last sent_at", rate, "msg/s", note=note),
        Figure(
            SECTION,
            "delivered / ideal",
            share,
            "%",
            ">= 90",
            None if share is None else share >= 90,
        ),
        Figure(SECTION, "delivered, from process start", whole, "msg/s"),
        Figure(
            SECTION,
            "time per send, one thread (channel: 50 ms)",
            None if rate is None else 1000 * THREADS / rate,
            "ms",
        ),
    ]
