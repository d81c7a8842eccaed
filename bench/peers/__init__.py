"""Peers: the same payment callback with the sends leaving it another way.

Each serves POST /payments/webhook with the product's own signature check,
order table, payment transition and channel code (bench/peers/shop.py) and
differs only in what happens to the three sends once the order is paid:

- inline: sent inside the request, before the answer;
- thread_pool: submitted to a ThreadPoolExecutor after the commit, with an
  `atexit` hook, and nothing on disk;
- huey_queue: enqueued to Huey's SQLite storage, a consumer beside the app;
- celery_queue: enqueued to Celery on Redis (acks_late,
  reject_on_worker_lost), a worker beside the app.

The fifth is the service itself, `python server.py`. `python -m
bench.compare` runs them all against the same stand-ins.
"""
