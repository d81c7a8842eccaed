"""The payment-callback service: HTTP routes, commands, start and stop.

`python server.py` serves with waitress and runs the notifier in the same
process; `server:app` is the WSGI callable for other servers.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from urllib.parse import urlencode

import bottle
import waitress

from notifier import orders, payments
from notifier.errors import NotifierError, RequestError, SettingsError
from notifier.gateways import ADAPTERS, generic
from notifier.gateways.base import Callback
from notifier.settings import Settings
from notifier.web import (
    check_bearer,
    error_body,
    parse_json,
    raw_header,
    read_body,
    single_query,
)

log = logging.getLogger("server")

# waitress refuses larger bodies itself; the app answers 413 above 64 KiB.
WAITRESS_BODY_LIMIT = 8 * 1024 * 1024


def create_app(get_service):
    """The Bottle app; `get_service()` returns the running Service."""
    app = bottle.Bottle()
    app.config["catchall"] = False
    app.install(_json_errors)

    def _error(res):
        bottle.response.content_type = "application/json"
        messages = {404: "no such route", 405: "method not allowed"}
        return error_body(messages.get(res.status_code, res.body or "error"))

    app.default_error_handler = _error

    @app.post("/orders")
    def create_order():
        service = get_service()
        check_bearer(bottle.request, service.settings.api_token)
        fields = orders.parse_order(parse_json(read_body(bottle.request)))
        order = orders.create_order(fields)
        bottle.response.status = 201
        return orders.order_json(order)

    @app.get("/orders/<key>")
    def get_order(key):
        service = get_service()
        check_bearer(bottle.request, service.settings.api_token)
        order = orders.find_order(key)
        if order is None:
            raise RequestError("no such order", 404)
        return orders.order_json(order)

    def payment_service():
        service = get_service()
        if not service.settings.gateway_secrets:
            raise RequestError("payments are not configured (GATEWAY_SECRET)", 503)
        return service, service.settings

    def callback(raw):
        request = bottle.request
        return Callback(
            raw=raw,
            query=single_query(request),
            headers=lambda name: raw_header(request, name, None),
            now=time.time(),
        )

    def adapter_service(name):
        adapter = generic if name == generic.NAME else ADAPTERS.get(name)
        if adapter is None:
            raise RequestError("no such gateway", 404)
        service = get_service()
        if not adapter.configured(service.settings):
            raise RequestError(
                f"the {name} gateway is not configured ({adapter.SETTINGS})", 503
            )
        return adapter, service

    # The service's own scheme keeps the routes without a gateway name.
    @app.post("/payments/webhook")
    @app.post("/payments/<name>/webhook")
    def gateway_webhook(name=generic.NAME):
        adapter, service = adapter_service(name)
        call = callback(read_body(bottle.request))
        payment = adapter.webhook(call, service.settings, service.gateway_http)
        if payment is None:
            return {"status": "ignored"}
        return {"status": _apply(service, payment).status}

    @app.get("/payments/return")
    @app.get("/payments/<name>/return")
    def gateway_return(name=generic.NAME):
        adapter, service = adapter_service(name)
        call = callback(b"")
        back = adapter.browser_return(call, service.settings, service.gateway_http)
        reference = back.reference
        if back.payment is not None:
            result = _apply(service, back.payment)
            reference = result.order.reference if result.order else reference
        if reference is None and back.payment is not None:
            # A race lost before the order was read.
            reference = back.payment.reference or back.payment.gateway_order_id
        _redirect(service.settings, reference, paid=back.paid)

    @app.get("/healthz")
    def healthz():
        service = get_service()
        ok, reason = service.health()
        if not ok:
            bottle.response.status = 503
            return {"status": "unavailable", "error": reason}
        return {
            "status": "ok",
            "in_flight": service.notifier.in_flight(),
            "channels": service.describe_channels(),
        }

    return app


def _redirect(settings, reference, paid):
    """303 to SUCCESS_URL or FAILURE_URL with `order=<reference>` added."""
    target = settings.success_url if paid else settings.failure_url
    joiner = "&" if "?" in target else "?"
    bottle.redirect(target + joiner + urlencode({"order": reference}), 303)


def _apply(service, payment):
    """Commit the transition, then hand the new rows to the pool."""
    claim = service.notifier.fast_claim()
    result = payments.apply(payment, service.settings, claim=claim)
    if result.notification_ids:
        try:
            service.notifier.hand_over(
                result.notification_ids, claimed=claim is not None
            )
        except Exception:
            # Committed already: the sweeper (or the lease) brings them back.
            log.exception(
                "order %s: hand-over to the pool failed",
                payment.reference or payment.gateway_order_id,
            )
    return result


def _json_errors(callback):
    """Route plugin: RequestError -> its status; anything else -> a bare 500."""

    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except bottle.HTTPResponse:
            raise
        except RequestError as exc:
            bottle.response.status = exc.status
            return {"error": str(exc)}
        except Exception:
            log.exception("%s %s failed", bottle.request.method, bottle.request.path)
            bottle.response.status = 500
            return {"error": "internal error"}

    return wrapper


# -- the module-level app for `waitress-serve server:app` -------------------

_service = None
_service_lock = threading.Lock()


def default_service():
    """The process's Service, started on first use from the environment."""
    global _service
    with _service_lock:
        if _service is None:
            from notifier.exit import stop_at_exit
            from notifier.service import Service

            settings = Settings.from_env(os.environ)
            configure_logging(settings)
            _service = Service(settings).start()
            stop_at_exit(_service)
        return _service


app = create_app(default_service)


# -- commands ---------------------------------------------------------------


def configure_logging(settings):
    """Log to stderr unless the host (waitress-serve, say) set logging up;
    either way our own loggers take LOG_LEVEL."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in ("server", "notifier"):
        logging.getLogger(name).setLevel(settings.log_level)


class _Stop(SystemExit):
    """Raised in the main thread by a stop signal. A SystemExit, because
    waitress lets only that (and KeyboardInterrupt) out of its loop."""


def _install_signals():
    def stop(signum, frame):
        # Later signals while draining are only acknowledged.
        for sig in _stop_signals():
            signal.signal(sig, _ignore)
        log.info("signal %s received; stopping", signal.Signals(signum).name)
        raise _Stop()

    for sig in _stop_signals():
        signal.signal(sig, stop)


def _ignore(signum, frame):
    log.info("signal %s received while stopping", signal.Signals(signum).name)


def _stop_signals():
    names = ("SIGTERM", "SIGINT", "SIGBREAK")  # SIGBREAK: Ctrl-Break on Windows
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def serve(settings):
    global _service
    from notifier.service import Service

    service = Service(settings).start()
    _service = service
    server = waitress.create_server(
        create_app(lambda: service),
        host=settings.host,
        port=settings.port,
        threads=settings.http_threads,
        max_request_body_size=WAITRESS_BODY_LIMIT,
        clear_untrusted_proxy_headers=True,
    )
    _install_signals()
    _warn_unconfigured(settings)
    log.info(
        "serving on http://%s:%s, channels %s",
        settings.host,
        server.effective_port,
        service.describe_channels(),
    )
    try:
        server.run()
    except (_Stop, KeyboardInterrupt, SystemExit):
        pass
    finally:
        # Requests in progress finish first: they still use the server's
        # trigger, which close() closes.
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
        server.close()
        stuck = service.stop()
    return _finish(stuck)


def _warn_unconfigured(settings):
    if not settings.api_token:
        log.warning("API_TOKEN is not set: /orders answers 503")
    if not settings.gateway_secrets:
        log.warning("GATEWAY_SECRET is not set: the payment routes answer 503")
    ready = [n for n, a in ADAPTERS.items() if a.configured(settings)]
    unset = [n for n, a in ADAPTERS.items() if not a.configured(settings)]
    log.info(
        "gateways configured: %s; not configured (their routes answer 503): %s",
        ", ".join(ready) or "none",
        ", ".join(unset) or "none",
    )


def work(settings):
    """Deliver only, no HTTP: `python server.py worker` on extra hosts."""
    from notifier.service import Service

    service = Service(settings).start()
    _install_signals()
    log.info("worker running, channels %s", service.describe_channels())
    try:
        while True:
            time.sleep(3600)
    except (_Stop, KeyboardInterrupt, SystemExit):
        pass
    finally:
        stuck = service.stop()
    return _finish(stuck)


def _finish(stuck):
    log.info("stopped")
    if stuck:
        # A send outlived the drain deadline; the pool's own exit join has no
        # deadline, so leave now. Its lease is already released.
        logging.shutdown()
        os._exit(0)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="server.py", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP and deliver (the default)")
    commands.add_parser("worker", help="deliver only, no HTTP")
    commands.add_parser("status", help="notifications per state")
    retry = commands.add_parser("retry", help="send notifications again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--dead", action="store_true", help="every dead one")
    simulate = commands.add_parser(
        "simulate", help="send a gateway's signed callback for an order"
    )
    simulate.add_argument("gateway", help="generic, stripe, paymob, ...")
    simulate.add_argument("reference", help="the order's reference")
    simulate.add_argument(
        "--failed", action="store_true", help="a failed payment instead"
    )
    args = parser.parse_args(argv)
    if args.command == "retry" and not args.ids and not args.dead:
        parser.error("retry needs notification ids or --dead")

    try:
        settings = Settings.from_env(os.environ)
        configure_logging(settings)
        if args.command in (None, "serve"):
            return serve(settings)
        if args.command == "worker":
            return work(settings)
        from notifier import cli

        return cli.run(args, settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
