"""The base model every Hearth table derives from."""

from __future__ import annotations

import datetime
import uuid

from peewee import Model, UUIDField
from playhouse.postgres_ext import DateTimeTZField

from models.db import db


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class UUIDModel(BaseModel):
    id = UUIDField(primary_key=True, default=uuid.uuid4)


__all__ = ["BaseModel", "DateTimeTZField", "UUIDModel", "utcnow"]
