"""Peer 1, the "before": the three sends inside the request, then the answer.

`python -m bench.peers.serve inline` with the service's environment. One send
failing is logged and the others go on; nothing retries.
"""

from bench.peers.shop import send_logged


def hand_off(ids):
    for notification_id in ids:
        send_logged(notification_id)
