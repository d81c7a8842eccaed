"""Two calls released at the same moment: a gateway's webhook and the
customer's browser return for one payment, as they race in production."""

import threading


def race(webhook, browser_return, timeout=10.0):
    """Run both at once (a barrier lets them go together); their results as
    {"webhook": ..., "return": ...}. A call that raised has no entry."""
    barrier = threading.Barrier(2)
    answers = {}

    def run(key, call):
        barrier.wait()
        answers[key] = call()

    threads = [
        threading.Thread(target=run, args=("webhook", webhook)),
        threading.Thread(target=run, args=("return", browser_return)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return answers
