"""The load generator, run in a process of its own: `python -m bench.load`.

Each thread holds one keep-alive connection and posts signed webhooks, one
per order reference (`PREFIX0`, `PREFIX1`, ...; thread k takes k, k+T, ...).
Bodies and signatures are made before the clock starts. Prints one JSON
object: counts, elapsed seconds, rate and latency percentiles in ms.
"""

import argparse
import http.client
import itertools
import json
import sys
import threading
import time

from bench.common import percentile
from notifier.signing import sign_webhook
from tests.client import event_body

HOST = "127.0.0.1"
MAX_FAILED_IN_A_ROW = 20


def _requests_for(refs, secret):
    stamp = int(time.time())
    out = []
    for ref in refs:
        raw = json.dumps(event_body(ref)).encode()
        headers = {
            "X-Signature": sign_webhook(raw, secret, stamp),
            "Content-Type": "application/json",
        }
        out.append((raw, headers))
    return out


class Worker(threading.Thread):
    def __init__(self, args, todo, start_barrier):
        super().__init__(daemon=True)
        self.args = args
        self.todo = todo
        self.barrier = start_barrier
        self.latencies = []
        self.ok = 0
        self.errors = 0
        self.unexpected = 0
        self.samples = []
        self.finished_at = None
        self.exhausted = False

    def _one(self, conn, raw, headers):
        conn.request("POST", self.args.path, body=raw, headers=headers)
        response = conn.getresponse()
        data = response.read()
        good = response.status == 200
        if good and self.args.expect:
            try:
                good = json.loads(data).get("status") == self.args.expect
            except ValueError:
                good = False
        if not good and len(self.samples) < 3:
            self.samples.append(f"{response.status} {data[:200]!r}")
        if response.will_close:
            conn.close()
        return good

    def _error(self, exc):
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(f"{type(exc).__name__}: {exc}")

    def run(self):
        todo = itertools.cycle(self.todo) if self.args.cycle else iter(self.todo)
        # http.client connects again by itself after a close().
        conn = http.client.HTTPConnection(HOST, self.args.port, timeout=60)
        try:
            conn.connect()
            for _, (raw, headers) in zip(range(self.args.warmup), todo, strict=False):
                self._one(conn, raw, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._error(exc)
            conn.close()
        try:
            self.barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            return
        start = time.perf_counter()
        deadline = start + (self.args.seconds or 1e9)
        limit = self.args.requests or float("inf")
        done = failed_in_a_row = 0
        while done < limit and time.perf_counter() < deadline:
            try:
                raw, headers = next(todo)
            except StopIteration:
                self.exhausted = True
                break
            t0 = time.perf_counter()
            try:
                good = self._one(conn, raw, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._error(exc)
                conn.close()
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    break
                time.sleep(0.05)
                continue
            failed_in_a_row = 0
            self.latencies.append(time.perf_counter() - t0)
            done += 1
            if good:
                self.ok += 1
            else:
                self.unexpected += 1
        self.finished_at = time.perf_counter()
        conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/payments/webhook")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True, help="references")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--requests", type=int, default=None, help="per thread")
    parser.add_argument("--warmup", type=int, default=0, help="per thread")
    parser.add_argument("--expect", default=None, help='e.g. "paid"')
    parser.add_argument("--secret", required=True)
    parser.add_argument(
        "--cycle",
        action="store_true",
        help="reuse the bodies (routes that ignore them)",
    )
    parser.add_argument(
        "--latencies", action="store_true", help="print every latency too"
    )
    args = parser.parse_args(argv)
    if args.seconds is None and args.requests is None:
        parser.error("give --seconds or --requests")

    refs = [f"{args.prefix}{i}" for i in range(args.count)]
    barrier = threading.Barrier(args.threads + 1)
    workers = [
        Worker(args, _requests_for(refs[k :: args.threads], args.secret), barrier)
        for k in range(args.threads)
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=120)
    start = time.perf_counter()
    wall_start, cpu_start = time.time(), time.process_time()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu_start
    end = max((w.finished_at or start) for w in workers)
    elapsed = max(end - start, 1e-9)
    latencies = [x * 1000 for w in workers for x in w.latencies]
    done = len(latencies)
    result = {
        "threads": args.threads,
        "requests": done,
        "ok": sum(w.ok for w in workers),
        "unexpected": sum(w.unexpected for w in workers),
        "errors": sum(w.errors for w in workers),
        "exhausted": any(w.exhausted for w in workers),
        "elapsed": elapsed,
        "wall_start": wall_start,
        "wall_end": wall_start + elapsed,
        "client_cpu": cpu,
        "rate": done / elapsed,
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else None,
        "samples": [s for w in workers for s in w.samples][:5],
    }
    if args.latencies:
        result["latencies"] = latencies
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
