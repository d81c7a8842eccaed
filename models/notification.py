"""The outbox: one row per message (or other after-response job) to deliver."""

import peewee

from models.base import BaseModel
from models.order import Order

PENDING, RUNNING, SENT, DEAD = "pending", "running", "sent", "dead"
STATES = (PENDING, RUNNING, SENT, DEAD)


class Notification(BaseModel):
    kind = peewee.CharField(max_length=64)
    order = peewee.ForeignKeyField(
        Order, backref="notifications", null=True, on_delete="CASCADE"
    )
    payload = peewee.TextField(default="{}")
    state = peewee.CharField(max_length=16, default=PENDING)
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DoubleField()
    lease_until = peewee.DoubleField(null=True)
    owner = peewee.CharField(max_length=64, null=True)
    last_error = peewee.TextField(null=True)
    provider_id = peewee.CharField(max_length=255, null=True)
    created_at = peewee.DoubleField()
    sent_at = peewee.DoubleField(null=True)

    class Meta:
        table_name = "notifications"
        indexes = (
            (("order", "kind"), True),
            (("state", "next_attempt_at"), False),
            (("state", "lease_until"), False),
        )

    def __repr__(self):
        return f"<Notification {self.id} {self.kind} {self.state}>"
