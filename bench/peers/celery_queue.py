"""Peer 4: Celery on the Redis broker, a worker beside the app.

    python -m bench.peers.serve celery                     # the app
    python -m celery -A bench.peers.celery_queue worker \\
        --concurrency 4 --loglevel WARNING                 # the worker

Both read the service's environment, and PEER_CELERY_BROKER for the Redis
URL. As Celery's documentation advises for tasks that must not be lost:
`task_acks_late` (a message is acknowledged after its task ran),
`task_reject_on_worker_lost` (a task whose worker process died goes back on
the queue) and a prefetch of one. Redis redelivers a message that was taken
but never acknowledged once its visibility timeout passes; that timeout is
PEER_VISIBILITY_SECONDS, the same span the service waits before it takes
back a row whose sender died (NOTIFIER_LEASE_SECONDS). A task that raises
is retried with backoff, at most three times.
"""

import os

from celery import Celery

from bench.peers.shop import send

app = Celery(
    "peers", broker=os.environ.get("PEER_CELERY_BROKER", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("PEER_VISIBILITY_SECONDS", 3600)),
        # kombu's advice with a low visibility timeout: look for messages to
        # hand out again every second, not every 100 s.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    worker_hijack_root_logger=False,
)


@app.task(
    name="send_notification",
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=3,
)
def send_notification(notification_id):
    send(notification_id)


def hand_off(ids):
    for notification_id in ids:
        send_notification.delay(notification_id)
