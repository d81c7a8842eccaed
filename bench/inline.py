"""The "before": a callback that sends its three messages before answering.

`python -m bench.inline` reads the service's own environment (DATABASE_URL,
HOST, PORT, GATEWAY_SECRET, SMTP_*, WHATSAPP_*, HTTP_THREADS) and serves
POST /payments/webhook with the product's own code: the same signature check
(notifier.signing.verify_webhook), the same transition in one transaction
(notifier.payments.apply), then the same three tasks (email to the customer,
WhatsApp to the admin and to the courier) through the product's channels,
one after the other, isolated from each other, and only then the answer.
There is no pool and no sweeper: what the original shop did before it moved
the sends behind the response.
"""

import logging
import os
import sys
import time

import bottle
import waitress

import models
from models import Notification
from notifier import outbox, payments
from notifier.channels import build_channels
from notifier.errors import RequestError, SettingsError
from notifier.gateways import generic
from notifier.messages import Context
from notifier.settings import Settings
from notifier.signing import verify_webhook
from notifier.tasks import registry
from notifier.web import parse_json, read_body

log = logging.getLogger("bench.inline")
OWNER = "inline"


def create_app(settings, channels):
    context = Context(settings=settings, channels=channels)
    app = bottle.Bottle()

    @app.post("/payments/webhook")
    def webhook():
        try:
            raw = read_body(bottle.request)
            verify_webhook(
                raw,
                bottle.request.get_header("X-Signature"),
                settings.gateway_secrets,
                time.time(),
                settings.signature_tolerance,
            )
            payment = generic.parse_webhook(parse_json(raw))
            result = payments.apply(payment, settings)
        except RequestError as exc:
            bottle.response.status = exc.status
            return {"error": str(exc)}
        for nid in result.notification_ids:
            _send_now(nid, context)
        return {"status": result.status}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def _send_now(nid, context):
    """One send, synchronously; a failure is logged and the others go on."""
    row = Notification.get_by_id(nid)
    try:
        provider_id = registry.get(row.kind)(row, context)
    except Exception as exc:
        log.warning("notification %s (%s) failed inline: %s", nid, row.kind, exc)
        return
    outbox.mark_sent(nid, OWNER, provider_id)


def main():
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, stream=sys.stderr)
    db = models.connect(settings.database_url)
    models.create_tables()
    channels = build_channels(settings)
    try:
        waitress.serve(
            create_app(settings, channels),
            host=settings.host,
            port=settings.port,
            threads=settings.http_threads,
            _quiet=True,
        )
    finally:
        for channel in {id(c): c for c in channels.values()}.values():
            channel.close()
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
