"""Orders as the shop created them, with their items."""

import peewee

from models.base import BaseModel

PENDING, PAID, FAILED = "pending", "paid", "failed"


class Order(BaseModel):
    reference = peewee.CharField(max_length=64, unique=True)
    gateway_order_id = peewee.CharField(max_length=64, null=True, unique=True)
    amount = peewee.BigIntegerField()
    currency = peewee.CharField(max_length=3)
    status = peewee.CharField(max_length=16, default=PENDING, index=True)
    customer_name = peewee.CharField(max_length=200)
    customer_email = peewee.CharField(max_length=254)
    customer_phone = peewee.CharField(max_length=20, null=True)
    courier_name = peewee.CharField(max_length=200, null=True)
    courier_phone = peewee.CharField(max_length=20, null=True)
    address = peewee.TextField(default="")
    payment_id = peewee.CharField(max_length=128, null=True)
    created_at = peewee.DoubleField()
    paid_at = peewee.DoubleField(null=True)

    class Meta:
        table_name = "orders"

    def __repr__(self):
        return f"<Order {self.id} {self.reference} {self.status}>"


class OrderItem(BaseModel):
    order = peewee.ForeignKeyField(Order, backref="items", on_delete="CASCADE")
    name = peewee.CharField(max_length=200)
    quantity = peewee.IntegerField()
    unit_amount = peewee.BigIntegerField()

    class Meta:
        table_name = "order_items"
