"""The base model every table shares."""

import peewee

from models.db import database


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
