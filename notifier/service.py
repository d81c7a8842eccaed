"""One running service: settings, database, channels and the notifier."""

import logging
import threading

import requests

import models
from models import write_transaction
from notifier import outbox
from notifier.channels import build_channels
from notifier.messages import Context
from notifier.pool import Notifier
from notifier.tasks import registry

log = logging.getLogger("server")


class Service:
    """Owns what a process shares: open it, start it, stop it once."""

    def __init__(self, settings, channels=None, clock=None):
        self.settings = settings
        self.db = models.connect(settings.database_url)
        models.create_tables()
        self.channels = channels or build_channels(settings)
        self.gateway_http = requests.Session()  # for gateways' own APIs
        context = Context(settings=settings, channels=self.channels)
        options = {} if clock is None else {"clock": clock}
        self.notifier = Notifier(settings, registry, context, **options)
        self._stop_lock = threading.Lock()
        self._stopped = False

    def start(self):
        self.notifier.start()
        return self

    def defer(self, kind, payload=None, order=None):
        """Run task `kind` after this call returns, durably; returns the id."""
        claim = self.notifier.fast_claim()
        with write_transaction():
            nid = outbox.enqueue(kind, order=order, payload=payload, claim=claim)
        self.notifier.hand_over([nid], claimed=claim is not None)
        return nid

    def stop(self, deadline=None):
        """Drain and release; returns whether a send was still stuck."""
        with self._stop_lock:
            if self._stopped:
                return False
            self._stopped = True
        left, stuck = self.notifier.shutdown(deadline)
        if not stuck:
            # With a send stuck the process leaves at once instead: saying
            # goodbye to a server that hangs could take a timeout per socket.
            for channel in {id(c): c for c in self.channels.values()}.values():
                channel.close()
            self.gateway_http.close()
            self.db.close()
        return stuck

    def health(self):
        """(ok, reason) for /healthz."""
        try:
            self.db.execute_sql("SELECT 1")
        except Exception as exc:
            return False, f"database unreachable: {type(exc).__name__}"
        if not self.notifier.running:
            return False, "notifier is not running"
        return True, "ok"

    def describe_channels(self):
        return {name: channel.name for name, channel in self.channels.items()}
