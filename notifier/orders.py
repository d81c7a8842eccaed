"""Orders as the shop sends them in, and as the API shows them."""

import time
from datetime import datetime, timezone

import peewee

from models import Notification, Order, OrderItem, write_transaction
from notifier import validate
from notifier.errors import RequestError

MAX_ITEMS = 200


def parse_order(body):
    """The fields of a new order from a decoded JSON body; RequestError(400)."""
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    v = validate
    customer = v.need(body, "customer", dict)
    courier = v.need(body, "courier", dict, optional=True)
    fields = {
        "reference": v.text(body, "reference", max_length=64),
        "amount": v.integer(body, "amount", minimum=1),
        "currency": v.currency(body, "currency"),
        "gateway_order_id": v.text(
            body, "gateway_order_id", max_length=64, optional=True
        ),
        "address": v.text(
            body, "address", max_length=2000, optional=True, multiline=True
        )
        or "",
        "customer_name": v.text(customer, "name", max_length=200, where="customer."),
        "customer_email": v.email(customer, "email", where="customer."),
        "customer_phone": v.phone(customer, "phone", optional=True, where="customer."),
    }
    if courier is not None:
        fields["courier_name"] = v.text(
            courier, "name", max_length=200, optional=True, where="courier."
        )
        fields["courier_phone"] = v.phone(courier, "phone", where="courier.")
    items = v.need(body, "items", list, optional=True) or []
    if len(items) > MAX_ITEMS:
        raise RequestError(f"an order holds at most {MAX_ITEMS} items")
    fields["items"] = [
        {
            "name": v.text(item, "name", max_length=200, where=f"items[{i}]."),
            "quantity": v.integer(
                item, "quantity", minimum=1, maximum=10**6, where=f"items[{i}]."
            ),
            "unit_amount": v.integer(
                item, "unit_amount", minimum=0, where=f"items[{i}]."
            ),
        }
        for i, item in enumerate(items)
    ]
    return fields


def create_order(fields, now=None):
    """Insert the order and its items; RequestError(409) for a known reference."""
    now = time.time() if now is None else now
    fields = dict(fields)
    items = fields.pop("items")
    try:
        with write_transaction():
            order = Order.create(created_at=now, **fields)
            for item in items:
                OrderItem.create(order=order, **item)
    except peewee.IntegrityError:
        raise RequestError(
            "an order with this reference (or gateway_order_id) exists", 409
        ) from None
    return order


def find_order(key):
    """By numeric id, else by reference; None if neither matches."""
    order = None
    if key.isascii() and key.isdigit() and len(key) < 19:
        order = Order.get_or_none(Order.id == int(key))
    if order is None:
        order = Order.get_or_none(Order.reference == key)
    return order


def _when(epoch):
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(
        timespec="milliseconds"
    )


def order_json(order):
    notifications = (
        Notification.select()
        .where(Notification.order == order.id)
        .order_by(Notification.id)
    )
    courier = None
    if order.courier_phone:
        courier = {"name": order.courier_name, "phone": order.courier_phone}
    return {
        "id": order.id,
        "reference": order.reference,
        "status": order.status,
        "amount": order.amount,
        "currency": order.currency,
        "gateway_order_id": order.gateway_order_id,
        "payment_id": order.payment_id,
        "customer": {
            "name": order.customer_name,
            "email": order.customer_email,
            "phone": order.customer_phone,
        },
        "courier": courier,
        "address": order.address,
        "items": [
            {"name": i.name, "quantity": i.quantity, "unit_amount": i.unit_amount}
            for i in order.items.order_by(OrderItem.id)
        ],
        "created_at": _when(order.created_at),
        "paid_at": _when(order.paid_at),
        "notifications": [
            {
                "id": n.id,
                "kind": n.kind,
                "state": n.state,
                "attempts": n.attempts,
                "last_error": n.last_error,
                "sent_at": _when(n.sent_at),
            }
            for n in notifications
        ],
    }
