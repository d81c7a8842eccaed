"""`python -m bench [--quick] [--only NAME] [--json PATH]`.

Runs the measurements on this machine, prints each figure next to its target
with PASS or MISS, a compact table, and the same table as Markdown for the
README. A MISS is a finding, not a failure: the exit status is 0 unless a
measurement could not be taken at all.
"""

import argparse
import datetime as dt
import json
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version


@dataclass(frozen=True)
class Plan:
    name: str
    latency_requests: int
    latency_warmup: int
    inline_requests: int
    throughput_seconds: float
    throughput_warmup: int
    throughput_orders: int
    delivery_seconds: float
    memory_rows: int
    memory_seconds: float
    memory_settle: float


FULL = Plan(
    name="full",
    latency_requests=300,
    latency_warmup=10,
    inline_requests=10,
    throughput_seconds=10,
    throughput_warmup=5,
    throughput_orders=20000,
    delivery_seconds=15,
    memory_rows=100_000,
    memory_seconds=10,
    memory_settle=2,
)
QUICK = Plan(
    name="quick",
    latency_requests=40,
    latency_warmup=5,
    inline_requests=2,
    throughput_seconds=2,
    throughput_warmup=2,
    throughput_orders=6000,
    delivery_seconds=3,
    memory_rows=10_000,
    memory_seconds=5,
    memory_settle=1,
)

SECTIONS = ("latency", "throughput", "delivery", "memory")
TITLES = {
    "latency": "1. Webhook latency, sequential, one keep-alive client",
    "throughput": "2. Webhooks per second at 8 connections, delivery running",
    "delivery": "3. Delivery rate against 50 ms channels",
    "memory": "4. Resident memory with a backlog that cannot drain",
}


def _version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def machine():
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "peewee": _version("peewee"),
        "waitress": _version("waitress"),
        "bottle": _version("bottle"),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in load] if load else None,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _sections(values):
    chosen = []
    for value in values or SECTIONS:
        for name in value.split(","):
            name = name.strip()
            if name not in SECTIONS:
                raise SystemExit(
                    f"unknown section {name!r}; choose from {', '.join(SECTIONS)}"
                )
            if name not in chosen:
                chosen.append(name)
    return [s for s in SECTIONS if s in chosen]


def _run_section(name, plan):
    from bench import delivery, latency, memory, throughput
    from bench.common import Figure

    module = {
        "latency": latency,
        "throughput": throughput,
        "delivery": delivery,
        "memory": memory,
    }[name]
    started = time.monotonic()
    print(f"\n== {TITLES[name]}", flush=True)
    try:
        figures = module.run(plan)
    except Exception as exc:
        traceback.print_exc()
        figures = [Figure(name, "measurement failed", None, "", note=str(exc)[:200])]
    print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    for figure in figures:
        target = f"  target {figure.target}" if figure.target else ""
        verdict = f"  {figure.verdict}" if figure.verdict else ""
        note = f"  ({figure.note})" if figure.note else ""
        print(f"   {figure.name}: {figure.shown()}{target}{verdict}{note}")
    return figures


def table(figures):
    rows = [("section", "figure", "value", "target", "", "note")]
    rows += [
        (f.section, f.name, f.shown(), f.target, f.verdict, f.note) for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            cell.rjust(w) if col == 2 and i else cell.ljust(w)
            for col, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(figures, info, plan):
    lines = [
        f"Measured with `python -m bench{' --quick' if plan.name == 'quick' else ''}`"
        f" on {info['date'][:10]}: {info['cores']} cores, Python {info['python']}, "
        f"peewee {info['peewee']}, waitress {info['waitress']}, "
        f"bottle {info['bottle']} ({plan.name} run).",
        "",
        "| measure | figure | value | target | |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for f in figures:
        name = f.name + (f" ({f.note})" if f.note else "")
        lines.append(
            f"| {f.section} | {name} | {f.shown()} | {f.target} | {f.verdict} |"
        )
    return "\n".join(lines)


def _stop_on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so every child is stopped and dir removed."""

    def stop(signum, frame):
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, stop)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a much shorter run, for smoke checks"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these sections ({', '.join(SECTIONS)}); "
        "repeat or separate with commas",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    _stop_on_sigterm()
    sections = _sections(args.only)

    info = machine()
    print(
        f"bench ({plan.name}): {info['cores']} cores, Python {info['python']}, "
        f"peewee {info['peewee']}, waitress {info['waitress']}, "
        f"bottle {info['bottle']}; {info['platform']}"
    )
    if info["load_average"]:
        print(f"load average at start: {info['load_average']}")
    started = time.monotonic()
    figures = []
    for name in sections:
        figures += _run_section(name, plan)
    elapsed = time.monotonic() - started

    print(f"\n== Summary ({plan.name} run, {elapsed:.0f} s)\n")
    print(table(figures))
    print("\n## README figures\n")
    print(markdown(figures, info, plan))

    if args.json:
        document = {
            "plan": plan.__dict__,
            "machine": info,
            "elapsed_seconds": round(elapsed, 1),
            "figures": [f.as_dict() for f in figures],
        }
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
    failed = any(f.value is None for f in figures)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped, temporary files removed", flush=True)
        sys.exit(130)
