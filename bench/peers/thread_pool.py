"""Peer 2, the "after" translated literally: a pool and an `atexit` hook.

`python -m bench.peers.serve thread_pool` with the service's environment. After
the commit the ids go to a process-wide ThreadPoolExecutor of
NOTIFIER_THREADS threads; `atexit` shuts it down waiting for its queue.
Nothing is written down: what is queued lives in this process only.
"""

import atexit
from concurrent.futures import ThreadPoolExecutor

from bench.peers.shop import context, send_logged

pool = ThreadPoolExecutor(
    max_workers=context().settings.threads, thread_name_prefix="send"
)
atexit.register(pool.shutdown, wait=True)


def hand_off(ids):
    for notification_id in ids:
        pool.submit(send_logged, notification_id)
