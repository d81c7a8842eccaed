"""The data: orders, payment events and the notification outbox."""

from models.db import connect, database, write_transaction
from models.notification import Notification
from models.order import Order, OrderItem
from models.payment import PaymentEvent

TABLES = (Order, OrderItem, PaymentEvent, Notification)


def create_tables():
    """Create what is missing; safe to call at every start."""
    database.create_tables(TABLES, safe=True)


__all__ = [
    "Notification",
    "Order",
    "OrderItem",
    "PaymentEvent",
    "TABLES",
    "connect",
    "create_tables",
    "database",
    "write_transaction",
]
