"""The comparison's table, its plot, and docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib.metadata import PackageNotFoundError, version

from bench import backlog

PACKAGES = (
    "peewee", "waitress", "bottle", "requests",
    "huey", "celery", "kombu", "redis", "matplotlib",
)  # fmt: skip
HEADERS = (
    "peer",
    "p50 / p99 ms, instant",
    "p50 / p99 ms, 2 s channels",
    "webhooks/s, 8 conns",
    "÷ hello",
    "kill -9: missing / dup / last msg s",
    "SIGTERM: missing / dup / last msg s",
    "stop s",
)


def _latency(cell):
    if "error" in cell:
        return "error"
    return f"{_ms(cell['p50'])} / {_ms(cell['p99'])}"


def _ms(value):
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _blow(cell):
    if "error" in cell:
        return "error"
    last = cell["last_seconds"]
    last = "none" if last is None else f"{last:.1f}"
    return f"{cell['missing']} / {cell['duplicated']} / {last}"


def cells(row, hello):
    """The table's cells for one peer, as text."""
    if "skipped" in row:
        return [row["title"], f"not run: {row['skipped']}"] + [""] * (len(HEADERS) - 2)
    rate = row["throughput"]
    if "error" in rate:
        rate_text = share = "error"
    else:
        rate_text = f"{rate['rate']:.0f}"
        share = (
            "n/a" if "error" in hello else f"{100 * rate['rate'] / hello['rate']:.1f}%"
        )
    term = row["sigterm"]
    return [
        row["title"],
        _latency(row["instant"]),
        _latency(row["slow"]),
        rate_text,
        share,
        _blow(row["sigkill"]),
        _blow(term),
        "error" if "error" in term else f"{term['stop_seconds']:.2f}",
    ]


def table_lines(rows, hello):
    """The table as fixed-width text, then each error in full."""
    grid = [list(HEADERS)] + [cells(row, hello) for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADERS))]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        for line in grid
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append(f"bare Bottle+waitress hello: {_hello(hello)}")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dict) and "error" in value:
                out.append(f"{row['title']} {key}: {value['error']}")
    return out


def _hello(hello):
    if "error" in hello:
        return f"not measured: {hello['error'].splitlines()[0]}"
    return f"{hello['rate']:.0f} requests/s"


def markdown_table(rows, hello):
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(cells(row, hello)) + " |")
    return "\n".join(lines)


def versions():
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    found["redis-server"] = _redis_server()
    return found


def _redis_server():
    try:
        import redis

        from bench.compare import REDIS_URL

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        found = client.info("server").get("redis_version", "?")
        kept = client.config_get("appendonly").get("appendonly")
        saves = client.config_get("save").get("save")
        return f"{found} (appendonly {kept}, save {saves!r})"
    except Exception:
        return "not reachable"


def plot(rows, path):
    """ECDFs of the webhook latencies, channels instant and 2 s; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, sharey=True)
    for ax, key, title in (
        (axes[0], "instant", "channels answer at once"),
        (axes[1], "slow", "each channel takes 2 s"),
    ):
        for row in rows:
            values = sorted(row.get(key, {}).get("latencies") or [])
            if not values:
                continue
            share = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, share, where="post", label=row["title"])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("webhook latency, ms (log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("share of webhooks answered within")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Webhook latency, one client, one webhook at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine():
    """Where and with what a run was taken, read at its end."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "load": ", ".join(f"{x:.2f}" for x in load) if load else "unknown",
        "versions": versions(),
    }


def write_doc(path, run):
    """docs/benchmarks.md and its plot, from one run's record (see compare)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = path.with_name(path.stem + "-latency.png")
    rows, hello, plan, info = run["rows"], run["hello"], run["plan"], run["machine"]
    plot(rows, image)
    text = TEMPLATE.format(
        command=run["command"],
        date=info["date"],
        cores=info["cores"],
        python=info["python"],
        system=info["system"],
        load=info["load"],
        took=f"{run['seconds'] / 60:.1f}",
        plan=plan["name"],
        versions=", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        table=markdown_table(rows, hello),
        hello=_hello(hello),
        image=image.name,
        latency_requests=plan["latency_requests"],
        slow_requests=plan["slow_requests"],
        inline_slow=plan["inline_slow_requests"],
        seconds=f"{plan['throughput_seconds']:g}",
        orders=plan["backlog_orders"],
        quiet=run.get("quiet", backlog.QUIET),
        delay_ms=1000 * run.get("delay", backlog.DELAY),
        errors="\n".join(
            f"- {row['title']}, {key}: {value['error'].splitlines()[0]}"
            for row in rows
            for key, value in row.items()
            if isinstance(value, dict) and "error" in value
        )
        or "None.",
    )
    path.write_text(text, encoding="utf-8")
    return path


TEMPLATE = """\
# The service next to what shops use instead

Every figure below is what one run of `{command}` measured on this machine
({plan} run, {took} minutes); rerun it to get your own. `make compare`
installs the peers' pinned packages (`bench/requirements-peers.txt`) and
runs the full version.

- Machine: {cores} cores, Python {python}, {system}; load average at the end
  {load}; {date}.
- Versions: {versions}.

## The table

{table}

A bare Bottle+waitress hello route, 8 connections, same run: {hello};
"÷ hello" is each peer's webhook rate over it.

Figures that could not be taken:

{errors}

![Webhook latency distributions](./{image})

## What each peer is

All five serve the same `POST /payments/webhook` with the product's own
signature check, order table, payment transition (one transaction marks the
order paid and writes its three notification rows) and channel code, against
the same loopback SMTP and WhatsApp stand-ins. They differ only in how the
three sends (email to the customer, WhatsApp to the admin and to the
courier) leave the request. Four send threads each: `NOTIFIER_THREADS`,
the pool's size, Huey's `-w`, Celery's `--concurrency`; 8 waitress threads.

1. **inline sends** (`bench/peers/inline.py`): the sends inside the request,
   then the answer.
2. **thread pool + atexit** (`bench/peers/thread_pool.py`): after the commit,
   `ThreadPoolExecutor.submit` per send, `atexit.register(pool.shutdown)`,
   nothing on disk. waitress installs no SIGTERM handler, so SIGTERM ends the
   process without `atexit`.
3. **Huey (SQLite)** (`bench/peers/huey_queue.py`): one task per send,
   enqueued after the commit into Huey's `SqliteHuey`; the consumer beside
   the app, `huey_consumer -k thread -w 4 -g TERM` (SIGTERM is its graceful
   stop), three retries.
4. **Celery (Redis)** (`bench/peers/celery_queue.py`): one task per send,
   `.delay()` after the commit, the Redis broker on this machine,
   `task_acks_late`, `task_reject_on_worker_lost`, prefetch 1, a visibility
   timeout of 15 s (a taken message not acknowledged by then is handed out
   again; 1 h by default) with kombu looking for such messages every second,
   `celery worker --concurrency 4` (prefork).
5. **this service**: `python server.py`, with the outbox, the pool and the
   sweeper, and a lease of 15 s (`NOTIFIER_LEASE_SECONDS`): the span after
   which a dead sender's rows are taken again, the same as Celery's
   visibility timeout.

## How each figure is taken

- **Latency**: one client, one keep-alive connection, one signed webhook at a
  time, each paying a new order created before the peer started:
  {latency_requests} webhooks with channels that answer at once, then
  {slow_requests} with each channel taking 2 s ({inline_slow} for the inline
  peer, whose webhooks take 6 s each). p50 and p99 are nearest-rank.
- **Webhooks/s**: 8 keep-alive connections for {seconds} s after a warm-up,
  channels instant, each webhook paying a new order (`bench/load.py` in a
  process of its own). It counts answers; the sends go on meanwhile on the
  same cores: in the app's own process for the inline peer, the thread pool
  and this service (which answers callbacks first and lets its rows wait in
  the database while it is saturated), in the worker's processes for Huey
  and Celery.
- **kill -9 and SIGTERM** (`bench/backlog.py`): {orders} orders paid over 8
  connections, each webhook retried until it is answered 2xx, as a gateway
  retries; each channel takes {delay_ms:g} ms per message. Once a third of the
  messages has arrived, the peer gets the signal: SIGKILL to every process of
  the app and of the worker (their whole process groups, as when they crash;
  the Redis server keeps running), or SIGTERM to the app's and the worker's
  main processes (as a service manager stops them). As soon as all have
  exited the peer is started again, and the run waits until nothing has
  arrived for {quiet:g} s, longer than any peer waits before it hands a dead
  sender's work out again. Counted from the stand-ins' own records by each
  message's key: **missing** (notifications of paid orders that never
  arrived), **dup** (messages beyond the first per notification), **last msg
  s** (seconds from the restart to the last message; "none" when nothing
  came after the restart), **stop s** (seconds from SIGTERM until the app's
  and the worker's main processes had exited). A message counts once its
  stand-in has it: a WhatsApp request on arrival, an email once the SMTP
  server accepted its data. For the inline peer the last message mostly
  marks the gateway's retries paying the orders left, not a recovery.
"""
