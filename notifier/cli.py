"""The operator's commands: status and retry."""

import time

import requests

import models
from notifier import outbox
from notifier.errors import NotifierError
from notifier.orders import find_order, order_json

DEAD_SHOWN = 20


def run(args, settings):
    models.connect(settings.database_url)
    models.create_tables()
    if args.command == "status":
        return status()
    if args.command == "retry":
        return retry(args.ids, args.dead)
    if args.command == "simulate":
        return simulate(args.gateway, args.reference, args.failed, settings)
    raise ValueError(args.command)


def status():
    counts = outbox.counts()
    for state, count in counts.items():
        print(f"{state:8} {count}")
    age = outbox.oldest_pending_age()
    if age is None:
        print("oldest pending: none")
    else:
        print(f"oldest pending: {age:.0f} s")
    dead = outbox.latest_dead(DEAD_SHOWN)
    if dead:
        print("\nlatest dead (retry with: server.py retry ID ... or --dead):")
        for row in dead:
            reference = row.order.reference if row.order_id is not None else "-"
            error = (row.last_error or "").replace("\n", " ")[:160]
            print(
                f"  {row.id} {row.kind} order {reference}, "
                f"{row.attempts} attempts: {error}"
            )
    return 0


def retry(ids, dead):
    requeued, refused = outbox.requeue(ids=ids, dead=dead)
    missing = sorted(set(ids) - set(requeued) - set(refused))
    if requeued:
        shown = ", ".join(map(str, requeued[:50]))
        more = "" if len(requeued) <= 50 else f" and {len(requeued) - 50} more"
        print(f"requeued {len(requeued)}: {shown}{more}")
    elif dead:
        print("no dead notifications")
    for nid, state in sorted(refused.items()):
        print(f"notification {nid} is {state}; not requeued")
    for nid in missing:
        print(f"no notification {nid}")
    return 0 if not refused and not missing else 1


def simulate(gateway, reference, failed, settings):
    """Post the callback `gateway` would send for the order to the running
    service, signed with the configured secret; print the answer."""
    from notifier.gateways import ADAPTERS, generic

    adapter = generic if gateway == "generic" else ADAPTERS.get(gateway)
    if adapter is None:
        names = ", ".join(["generic", *ADAPTERS])
        raise NotifierError(f"no gateway {gateway!r}; known: {names}")
    if not adapter.configured(settings):
        raise NotifierError(f"the {gateway} gateway has no secret configured")
    order = find_order(reference)
    if order is None:
        raise NotifierError(f"no order {reference!r} in {settings.database_url}")
    call = adapter.simulate(order_json(order), failed, settings, time.time())

    prefix = "/payments" if gateway == "generic" else f"/payments/{gateway}"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{host}:{settings.port}{prefix}/{call.route}"
    try:
        response = requests.request(
            call.method,
            url,
            params=call.query or None,
            data=call.body or None,
            headers=call.headers,
            allow_redirects=False,
            timeout=30,
        )
    except requests.RequestException as exc:
        raise NotifierError(f"the service at {url} cannot be reached: {exc}") from None
    print(f"{call.method} {url} -> {response.status_code}")
    if response.headers.get("Location"):
        print(f"Location: {response.headers['Location']}")
    if response.text:
        print(response.text)
    return 0 if response.status_code < 400 else 1
