"""What every peer shares: the callback up to the commit, and one send.

The callback is the product's own: `notifier.signing.verify_webhook`, the
generic gateway's parsing, and `notifier.payments.apply`, which records the
event, marks the order paid and writes its three notification rows in one
transaction. A peer passes the rows' ids to `hand_off`; `send(id)` reloads
the row and its order and runs the product's task for its kind through the
product's channels. The rows give each message the key the service gives it
(email Message-ID, WhatsApp biz_opaque_callback_data), which is how the
comparison counts what arrived; no peer reads them for anything else.
"""

import logging
import os
import sys
import threading
import time

import bottle
import waitress

import models
from models import Notification
from notifier import payments
from notifier.channels import build_channels
from notifier.errors import RequestError, SettingsError
from notifier.gateways import generic
from notifier.messages import Context
from notifier.settings import Settings
from notifier.signing import verify_webhook
from notifier.tasks import registry
from notifier.web import parse_json, read_body

log = logging.getLogger("bench.peers")

_contexts = {}  # pid -> Context: a forked worker builds its own
_lock = threading.Lock()


def settings():
    try:
        return Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def context():
    """This process's settings, database and channels, made on first use."""
    pid = os.getpid()
    with _lock:
        found = _contexts.get(pid)
        if found is None:
            chosen = settings()
            logging.basicConfig(level=chosen.log_level, stream=sys.stderr)
            models.connect(chosen.database_url)
            found = Context(settings=chosen, channels=build_channels(chosen))
            _contexts.clear()
            _contexts[pid] = found
    return found


def send(notification_id):
    """One message, now: reload the row by id and run its task."""
    found = context()  # first: it connects the database
    row = Notification.get_by_id(notification_id)
    return registry.get(row.kind)(row, found)


def send_logged(notification_id):
    """`send`, a failure logged and swallowed so the other sends go on."""
    try:
        send(notification_id)
    except Exception as exc:
        log.warning("notification %s failed: %s", notification_id, exc)


def create_app(hand_off):
    """The callback: verify, commit, `hand_off(ids)`, answer."""
    chosen = context().settings
    app = bottle.Bottle()

    @app.post("/payments/webhook")
    def webhook():
        try:
            raw = read_body(bottle.request)
            verify_webhook(
                raw,
                bottle.request.get_header("X-Signature"),
                chosen.gateway_secrets,
                time.time(),
                chosen.signature_tolerance,
            )
            payment = generic.parse_webhook(parse_json(raw))
            result = payments.apply(payment, chosen)
        except RequestError as exc:
            bottle.response.status = exc.status
            return {"error": str(exc)}
        if result.notification_ids:
            hand_off(result.notification_ids)
        return {"status": result.status}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def serve(hand_off):
    """waitress with the service's HOST, PORT and HTTP_THREADS; no handler
    for SIGTERM, as a plain `waitress.serve` has none."""
    app = create_app(hand_off)
    models.create_tables()
    chosen = context().settings
    waitress.serve(
        app,
        host=chosen.host,
        port=chosen.port,
        threads=chosen.http_threads,
        _quiet=True,
    )
    return 0
