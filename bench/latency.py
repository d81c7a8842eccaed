"""1. Webhook latency: instant channels, 2 s channels, and the sends inline.

One client, one keep-alive connection, one webhook at a time, each paying a
new order (created before the clock starts). (a) and (b) are the service,
`python server.py`; (c) is bench/peers/inline.py, the same callback doing the three
sends before it answers.
"""

from bench.common import (
    Figure,
    log,
    module_proc,
    run_load,
    seed,
    service_proc,
    stand_ins,
    temp_dir,
)

SECTION = "latency"
SLOW = 2.0  # seconds each channel takes in (b) and (c)


def _service(plan, delay, label):
    warmup = plan.latency_warmup
    with temp_dir(f"latency-{label}") as tmp, stand_ins(delay) as (smtp, whatsapp):
        db = tmp / "notifier.db"
        count = plan.latency_requests + warmup
        seed(db, count, prefix="L-")
        with service_proc(tmp, db, smtp, whatsapp) as server:
            server.start()
            result = run_load(
                server.port,
                "/payments/webhook",
                "L-",
                count,
                threads=1,
                requests=plan.latency_requests,
                warmup=warmup,
                expect="paid",
            )
        result["smtp_messages"] = len(smtp.messages)
        result["whatsapp_calls"] = len(whatsapp.requests)
        return result


def _inline(plan):
    with temp_dir("latency-inline") as tmp, stand_ins(SLOW) as (smtp, whatsapp):
        db = tmp / "notifier.db"
        count = plan.inline_requests
        seed(db, count, prefix="I-")
        app = module_proc(
            tmp, "bench.peers.serve", "inline", db_path=db, smtp=smtp, whatsapp=whatsapp
        )
        with app:
            app.start()
            result = run_load(
                app.port,
                "/payments/webhook",
                "I-",
                count,
                threads=1,
                requests=count,
                expect="paid",
            )
        result["smtp_messages"] = len(smtp.messages)
        result["whatsapp_calls"] = len(whatsapp.requests)
        return result


def _describe(label, result):
    log(
        f"{label}: {result['requests']} webhooks, p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms, "
        f"unexpected {result['unexpected']}, errors {result['errors']}, "
        f"stand-ins got {result['smtp_messages']} emails / "
        f"{result['whatsapp_calls']} WhatsApp calls"
    )
    if result["samples"]:
        log(f"{label}: samples of bad answers: {result['samples']}")


def run(plan):
    n = plan.latency_requests
    log(f"(a) service, channels answering at once: {n} sequential webhooks")
    fast = _service(plan, 0.0, "fast")
    _describe("(a)", fast)
    log(f"(b) service, each channel taking {SLOW:g} s: {n} sequential webhooks")
    slow = _service(plan, SLOW, "slow")
    _describe("(b)", slow)
    m = plan.inline_requests
    log(f"(c) inline sends, each channel taking {SLOW:g} s: {m} sequential webhooks")
    inline = _inline(plan)
    _describe("(c)", inline)

    def bad(result):
        wrong = result["unexpected"] + result["errors"]
        return f"{wrong} bad answers" if wrong else ""

    within = slow["p99"] / fast["p99"]
    ratio = inline["p99"] / slow["p99"]
    return [
        Figure(SECTION, "(a) p50, channels instant", fast["p50"], "ms", note=bad(fast)),
        Figure(SECTION, "(a) p99, channels instant", fast["p99"], "ms"),
        Figure(SECTION, "(b) p50, channels 2 s", slow["p50"], "ms", note=bad(slow)),
        Figure(SECTION, "(b) p99, channels 2 s", slow["p99"], "ms"),
        Figure(
            SECTION,
            "p99(b) / p99(a)",
            within,
            "x",
            "<= 1.2",
            within <= 1.2,
        ),
        Figure(
            SECTION,
            "(c) p50, inline sends, channels 2 s",
            inline["p50"],
            "ms",
            note=bad(inline),
        ),
        Figure(
            SECTION,
            "(c) p99, inline sends, channels 2 s",
            inline["p99"],
            "ms",
            note=f"n={inline['requests']}",
        ),
        Figure(SECTION, "p99(c) / p99(b)", ratio, "x", "> 100", ratio > 100),
    ]
