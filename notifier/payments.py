"""The payment transition: one transaction from callback to outbox rows."""

import logging
import time
from dataclasses import dataclass, field

import peewee

from models import Order, PaymentEvent, write_transaction
from models.db import is_sqlite
from models.order import FAILED, PAID, PENDING
from notifier import outbox
from notifier.errors import RequestError
from notifier.messages import kinds_for

log = logging.getLogger("notifier.payments")

SUCCEEDED = "succeeded"
FAILED_PAYMENT = "failed"


@dataclass(frozen=True)
class Payment:
    """A verified callback, whatever the gateway: what it says happened."""

    gateway: str
    event_id: str
    outcome: str  # SUCCEEDED or FAILED_PAYMENT
    reference: str | None  # the shop's order reference, or else:
    event_type: str = ""
    amount: int | None = None  # None when the callback carries no amount
    currency: str | None = None
    payment_id: str | None = None
    gateway_order_id: str | None = None  # the gateway's own id of the order


@dataclass
class Result:
    status: str  # "paid", "duplicate" or "failed"
    order: Order | None = None
    notification_ids: list = field(default_factory=list)


def apply(payment, settings, now=None, claim=None):
    """Record the event, check it against the order, move the order, enqueue.

    Only the transaction whose conditional update changed the order creates
    notifications, so repeated callbacks and a racing browser return send
    nothing new. Raises RequestError(404/422) and changes nothing then.
    With a `claim` (from `Notifier.fast_claim`) the rows are born claimed.
    """
    now = time.time() if now is None else now
    try:
        with write_transaction():
            return _apply(payment, settings, now, claim)
    except peewee.IntegrityError:
        # Another transaction recorded the same event id first.
        log.info("payment event %s seen twice at once", payment.event_id)
        return Result("duplicate")


def _apply(payment, settings, now, claim):
    if payment.reference is not None:
        query = Order.select().where(Order.reference == payment.reference)
    else:
        # Gateways that sign only their own order id (Paymob).
        query = Order.select().where(Order.gateway_order_id == payment.gateway_order_id)
    if not is_sqlite():
        # Lock the order first: otherwise the event's foreign key takes a
        # shared lock on it, and two callbacks upgrading theirs deadlock
        # (InnoDB). SQLite's IMMEDIATE transaction already holds the file.
        query = query.for_update()
    order = query.get_or_none()
    if order is None:
        raise RequestError("no order has this reference", 404)

    seen = PaymentEvent.get_or_none(
        (PaymentEvent.gateway == payment.gateway)
        & (PaymentEvent.event_id == payment.event_id)
    )
    if seen is not None:
        return Result("duplicate", order)

    if payment.outcome == SUCCEEDED:
        _check_amount(payment, order)
    PaymentEvent.create(
        gateway=payment.gateway,
        event_id=payment.event_id,
        order=order,
        type=payment.event_type or payment.outcome,
        outcome=payment.outcome,
        received_at=now,
    )

    if payment.outcome != SUCCEEDED:
        Order.update(status=FAILED).where(
            (Order.id == order.id) & (Order.status == PENDING)
        ).execute()
        return Result("failed", order)

    # A failed attempt may be followed by a good one; a paid order stays paid.
    changed = (
        Order.update(status=PAID, paid_at=now, payment_id=payment.payment_id)
        .where((Order.id == order.id) & Order.status.in_((PENDING, FAILED)))
        .execute()
    )
    if changed != 1:
        return Result("duplicate", order)

    ids = [
        outbox.enqueue(kind, order=order, now=now, claim=claim)
        for kind in kinds_for(order, settings)
    ]
    log.info(
        "order %s paid by %s event %s; %d notifications scheduling",
        order.reference,
        payment.gateway,
        payment.event_id,
        len(ids),
    )
    return Result("paid", order, ids)


def _check_amount(payment, order):
    if payment.amount is None and payment.currency is None:
        return
    if payment.amount != order.amount:
        raise RequestError("amount differs from the order", 422)
    if (payment.currency or "").upper() != order.currency:
        raise RequestError("currency differs from the order", 422)
