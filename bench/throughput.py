"""2. Webhooks per second at 8 connections, next to a bare `hello` route.

The load generator runs in its own process (bench/load.py), 8 threads, each
with its own keep-alive connection. The service pays orders created before
the clock starts and delivers to instant stand-ins meanwhile; the `hello`
app (bench/hello.py) is posted the same signed bodies on the same waitress
thread count.
"""

import os

from bench.common import (
    HTTP_THREADS,
    CpuSampler,
    Figure,
    log,
    module_proc,
    run_load,
    seed,
    service_proc,
    stand_ins,
    state_counts,
    temp_dir,
)

SECTION = "throughput"
CONNECTIONS = 8
HELLO_BODIES = 2000  # the hello route ignores them: posted round and round


def measure_hello(plan, tmp):
    app = module_proc(tmp, "bench.hello", "PORT", HTTP_THREADS)
    with app:
        app.start()
        with CpuSampler(app.pid) as cpu:
            result = run_load(
                app.port,
                "/hello",
                "H-",
                HELLO_BODIES,
                threads=CONNECTIONS,
                seconds=plan.throughput_seconds,
                warmup=plan.throughput_warmup,
                cycle=True,
            )
    result["server_cpu"] = cpu.between(result["wall_start"], result["wall_end"])
    return result


def _service(plan, tmp):
    db = tmp / "notifier.db"
    seed(db, plan.throughput_orders, prefix="T-")
    with stand_ins(0.0) as (smtp, whatsapp):
        with service_proc(tmp, db, smtp, whatsapp) as server:
            server.start()
            with CpuSampler(server.pid) as cpu, CpuSampler(os.getpid()) as own:
                result = run_load(
                    server.port,
                    "/payments/webhook",
                    "T-",
                    plan.throughput_orders,
                    threads=CONNECTIONS,
                    seconds=plan.throughput_seconds,
                    warmup=plan.throughput_warmup,
                    expect="paid",
                )
            result["states"] = state_counts(db)
    window = result["wall_start"], result["wall_end"]
    result["server_cpu"] = cpu.between(*window)
    result["stand_in_cpu"] = own.between(*window)
    return result


def _describe(label, result):
    log(
        f"{label}: {result['requests']} requests in {result['elapsed']:.1f} s = "
        f"{result['rate']:.0f}/s, p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, unexpected {result['unexpected']}, "
        f"errors {result['errors']}"
        + (", ran out of orders" if result["exhausted"] else "")
    )
    elapsed = result["elapsed"]
    parts = [f"server {_share(result['server_cpu'], elapsed)}"]
    if "stand_in_cpu" in result:
        parts.append(
            f"stand-ins (bench process) {_share(result['stand_in_cpu'], elapsed)}"
        )
    parts.append(f"load generator {_share(result['client_cpu'], elapsed)}")
    log(f"{label}: CPU, in cores: " + ", ".join(parts))
    if result["samples"]:
        log(f"{label}: samples of bad answers: {result['samples']}")


def _share(cpu, elapsed):
    return "?" if cpu is None else f"{cpu / elapsed:.2f}"


def _per_request(result):
    cpu = result["server_cpu"]
    return (
        None
        if cpu is None or not result["requests"]
        else 1000 * cpu / result["requests"]
    )


def run(plan):
    seconds = plan.throughput_seconds
    with temp_dir("throughput") as tmp:
        log(f"hello route, {CONNECTIONS} connections, {seconds:g} s")
        hello = measure_hello(plan, tmp)
        _describe("hello", hello)
        log(f"service webhooks with delivery, {CONNECTIONS} connections, {seconds:g} s")
        service = _service(plan, tmp)
        _describe("service", service)
        log(f"service: outbox states when the load stopped: {service['states']}")

    ratio = 100 * service["rate"] / hello["rate"]
    wrong = service["unexpected"] + service["errors"]
    note = f"{wrong} bad answers" if wrong else ""
    if service["exhausted"]:
        note = (note + "; " if note else "") + "ran out of orders"
    return [
        Figure(SECTION, "hello route, 8 connections", hello["rate"], "req/s"),
        Figure(
            SECTION,
            "webhooks, 8 connections, delivery on",
            service["rate"],
            "req/s",
            note=note,
        ),
        Figure(SECTION, "webhooks / hello", ratio, "%", ">= 20", ratio >= 20),
        Figure(SECTION, "webhook p50 under load", service["p50"], "ms"),
        Figure(
            SECTION,
            "webhook p99 under load",
            service["p99"],
            "ms",
            "< 100",
            service["p99"] < 100,
        ),
        Figure(SECTION, "hello p99 under load", hello["p99"], "ms"),
        Figure(
            SECTION,
            "service CPU per webhook, deliveries included",
            _per_request(service),
            "ms",
        ),
        Figure(SECTION, "hello CPU per request", _per_request(hello), "ms"),
    ]
