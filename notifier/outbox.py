"""The outbox rows' life: enqueue, claim, and record what a send did.

Every change of state is one conditional UPDATE whose row count says whether
this process still owned the row; a lease that ran out belongs to whoever
claims it next.
"""

import json
import logging
import time
from dataclasses import dataclass

from peewee import fn

from models import Notification, write_transaction
from models.db import is_sqlite
from models.notification import DEAD, PENDING, RUNNING, SENT, STATES

log = logging.getLogger("notifier.outbox")

ERROR_LIMIT = 2000


@dataclass(frozen=True)
class Claim:
    """Who takes new rows at once, and for how long (see `enqueue`)."""

    owner: str
    lease_seconds: float


def enqueue(kind, order=None, payload=None, now=None, claim=None):
    """Add a job; call inside the caller's write transaction. Returns its id.

    With a `claim` the row is born claimed by that owner, which saves the
    pool a write per row; if the process dies before handing it over, the
    row comes back when its lease runs out.
    """
    now = time.time() if now is None else now
    fields = {"state": PENDING}
    if claim is not None:
        fields = {
            "state": RUNNING,
            "owner": claim.owner,
            "lease_until": now + claim.lease_seconds,
            "attempts": 1,
        }
    row = Notification.create(
        kind=kind,
        order=order,
        payload=json.dumps(payload or {}, ensure_ascii=False),
        next_attempt_at=now,
        created_at=now,
        **fields,
    )
    return row.id


def _due(now):
    N = Notification
    waiting = (N.state == PENDING) & (N.next_attempt_at <= now)
    abandoned = (N.state == RUNNING) & (N.lease_until < now)
    return waiting | abandoned


def _claim_update(owner, now, lease_seconds):
    N = Notification
    return N.update(
        state=RUNNING,
        owner=owner,
        lease_until=now + lease_seconds,
        attempts=N.attempts + 1,
    )


def claim_one(notification_id, owner, lease_seconds, now=None):
    """Take one due row by id. True if this call won it."""
    now = time.time() if now is None else now
    query = _claim_update(owner, now, lease_seconds).where(
        (Notification.id == notification_id) & _due(now)
    )
    with write_transaction(background=True):
        return query.execute() == 1


def claim_due(owner, lease_seconds, limit, exclude=(), now=None):
    """Claim up to `limit` due rows, oldest first; return their ids.

    PostgreSQL and MySQL lock the candidates with SKIP LOCKED, so hosts that
    sweep at the same moment take different rows. SQLite has one writer at a
    time: the IMMEDIATE transaction already makes select-then-update atomic.
    """
    if limit <= 0:
        return []
    now = time.time() if now is None else now
    N = Notification
    query = N.select(N.id).where(_due(now))
    if exclude:
        query = query.where(N.id.not_in(list(exclude)))
    query = query.order_by(N.next_attempt_at, N.id).limit(limit)
    if not is_sqlite():
        query = query.for_update(skip_locked=True)

    with write_transaction(background=True):
        ids = [row.id for row in query]
        if ids:
            update = _claim_update(owner, now, lease_seconds).where(N.id.in_(ids))
            update.execute()
    return ids


def _owned(notification_id, owner):
    # A row released at shutdown (owner cleared) may still be finished by the
    # send that was running; one that another process claimed may not.
    N = Notification
    mine = (N.owner == owner) | N.owner.is_null()
    return (N.id == notification_id) & N.state.in_((RUNNING, PENDING)) & mine


def mark_sent(notification_id, owner, provider_id, now=None):
    now = time.time() if now is None else now
    query = Notification.update(
        state=SENT,
        provider_id=provider_id,
        sent_at=now,
        lease_until=None,
        last_error=None,
    ).where(_owned(notification_id, owner))
    with write_transaction(background=True):
        return query.execute() == 1


def mark_retry(notification_id, owner, error, at):
    query = Notification.update(
        state=PENDING,
        next_attempt_at=at,
        lease_until=None,
        owner=None,
        last_error=error[:ERROR_LIMIT],
    ).where(_owned(notification_id, owner))
    with write_transaction(background=True):
        return query.execute() == 1


def mark_dead(notification_id, owner, error):
    query = Notification.update(
        state=DEAD,
        lease_until=None,
        last_error=error[:ERROR_LIMIT],
    ).where(_owned(notification_id, owner))
    with write_transaction(background=True):
        return query.execute() == 1


def release(owner, unstarted=(), only=None, now=None):
    """Hand back the rows this owner holds (or just `only`), due at once.

    Rows in `unstarted` were claimed but never sent, so their attempt is
    given back too. Returns the released ids.
    """
    now = time.time() if now is None else now
    N = Notification
    held = (N.owner == owner) & (N.state == RUNNING)
    if only is not None:
        held &= N.id.in_(list(only))
    with write_transaction(background=True):
        ids = [row.id for row in N.select(N.id).where(held)]
        if unstarted:
            N.update(attempts=N.attempts - 1).where(
                held & N.id.in_(list(unstarted)) & (N.attempts > 0)
            ).execute()
        N.update(
            state=PENDING, owner=None, lease_until=None, next_attempt_at=now
        ).where(held).execute()
    return ids


def requeue(ids=None, dead=False, now=None):
    """Put dead (or pending) rows back for a new round of attempts.

    Returns (requeued ids, refused ids with their state)."""
    now = time.time() if now is None else now
    N = Notification
    if dead:
        rows = list(N.select(N.id, N.state).where(N.state == DEAD))
    else:
        rows = list(N.select(N.id, N.state).where(N.id.in_(list(ids))))
    allowed = [r.id for r in rows if r.state in (DEAD, PENDING)]
    refused = {r.id: r.state for r in rows if r.state not in (DEAD, PENDING)}
    if allowed:
        with write_transaction():
            N.update(state=PENDING, attempts=0, next_attempt_at=now, owner=None).where(
                N.id.in_(allowed) & N.state.in_((DEAD, PENDING))
            ).execute()
    return allowed, refused


def counts():
    """Rows per state, every state present (zero where none)."""
    N = Notification
    found = dict.fromkeys(STATES, 0)
    query = N.select(N.state, fn.COUNT(N.id).alias("n"))
    for row in query.group_by(N.state):
        found[row.state] = row.n
    return found


def oldest_pending_age(now=None):
    """Seconds since the oldest still-unsent row was created, or None."""
    now = time.time() if now is None else now
    N = Notification
    row = (
        N.select(N.created_at)
        .where(N.state.in_((PENDING, RUNNING)))
        .order_by(N.created_at)
        .first()
    )
    return None if row is None else max(0.0, now - row.created_at)


def latest_dead(limit=20):
    """The most recent dead rows with their order, for the operator."""
    N = Notification
    query = N.select().where(N.state == DEAD).order_by(N.id.desc()).limit(limit)
    return list(query)
