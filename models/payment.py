"""Payment events: one row per gateway event id, the idempotency record."""

import peewee

from models.base import BaseModel
from models.order import Order


class PaymentEvent(BaseModel):
    gateway = peewee.CharField(max_length=32)
    event_id = peewee.CharField(max_length=191)
    order = peewee.ForeignKeyField(Order, backref="payment_events", null=True)
    type = peewee.CharField(max_length=64)
    outcome = peewee.CharField(max_length=16)
    received_at = peewee.DoubleField()

    class Meta:
        table_name = "payment_events"
        indexes = ((("gateway", "event_id"), True),)
