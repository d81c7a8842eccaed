"""Peer 3: Huey with its SQLite storage, a consumer beside the app.

    python -m bench.peers.serve huey                      # the app
    python -m huey.bin.huey_consumer bench.peers.huey_queue.huey \\
        -k thread -w 4 -g TERM                             # the consumer

Both read the service's environment, and PEER_HUEY_DB for Huey's own file.
The app enqueues one task per notification after the commit. The consumer
runs them on threads; SIGTERM asks it for a graceful stop (`-g TERM`, so that
a service manager's stop lets running tasks finish). A task that raises is
retried after a second, at most three times.
"""

import os

from huey import SqliteHuey

from bench.peers.shop import send

huey = SqliteHuey("peers", filename=os.environ.get("PEER_HUEY_DB", "huey.db"))


@huey.task(retries=3, retry_delay=1, name="send_notification")
def send_notification(notification_id):
    send(notification_id)


def hand_off(ids):
    for notification_id in ids:
        send_notification(notification_id)
