"""Escrows: the tables, who sees one, opening one for an accepted offer, and recorded transitions.

The rules without rows (statuses, transition table, deadlines) are in
``models/escrow_rules.py``; what the parties and admins do to an escrow in
``models/escrow_actions.py``; the money moves in the ``money`` queue's jobs
(``tasks/escrows.py``), on the ledger (``models/ledger``). Every transition
writes an ``escrow_events`` row: who (NULL for the platform), when and why.
"""

from __future__ import annotations

import builtins
import datetime
import uuid

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    CompositeKey,
    DateField,
    ForeignKeyField,
    IntegerField,
    SmallIntegerField,
    TextField,
)
from playhouse.postgres_ext import BinaryJSONField

from models import domain_events
from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.escrow_rules import (
    DEFAULT_DEPOSIT_BUSINESS_DAYS,
    OPEN,
    EscrowConflict,
    add_business_days,
    can_transition,
    contingency_ends,
)
from models.offers import Offer
from models.properties import Property


class Escrow(UUIDModel):
    offer = ForeignKeyField(Offer, column_name="offer_id", on_delete="CASCADE")
    offer_id: uuid.UUID
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    property_id: uuid.UUID
    buyer = ForeignKeyField(User, column_name="buyer_id", null=True, on_delete="SET NULL")
    buyer_id: uuid.UUID | None
    buyer_agent = ForeignKeyField(User, column_name="buyer_agent_id", null=True, on_delete="SET NULL")
    buyer_agent_id: uuid.UUID | None
    seller = ForeignKeyField(User, column_name="seller_id", null=True, on_delete="SET NULL")
    seller_id: uuid.UUID | None
    list_agent = ForeignKeyField(User, column_name="list_agent_id", null=True, on_delete="SET NULL")
    list_agent_id: uuid.UUID | None
    status = CharField(default="awaiting_deposit")
    currency = CharField(default="USD")
    amount = BigIntegerField()
    held = BigIntegerField(default=0)
    price = BigIntegerField()
    deposit_due_at = DateTimeTZField()
    closing_date = DateField()
    hard_at = DateTimeTZField(null=True)
    settlement = CharField(null=True)
    split_buyer = BigIntegerField(null=True)
    split_seller = BigIntegerField(null=True)
    settled_at = DateTimeTZField(null=True)
    version = IntegerField(default=1)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "escrows"

    @builtins.property
    def account_code(self) -> str:
        """The escrow's holding account on the ledger."""
        return f"escrow:{self.id}"

    def buyer_side(self) -> set[str]:
        return {str(u) for u in (self.buyer_id, self.buyer_agent_id) if u is not None}

    def listing_side(self) -> set[str]:
        return {str(u) for u in (self.seller_id, self.list_agent_id) if u is not None}

    def side_of(self, user_id) -> str | None:
        user_id = str(user_id)
        if user_id in self.buyer_side():
            return "buyer"
        if user_id in self.listing_side():
            return "listing"
        return None

    def parties(self) -> list[str]:
        return sorted(self.buyer_side() | self.listing_side())

    def is_visible_to(self, principal) -> bool:
        return principal is not None and (principal.is_admin or self.side_of(principal.user_id) is not None)

    @builtins.property
    def is_hard(self) -> bool:
        return self.hard_at is not None


class EscrowContingency(BaseModel):
    escrow = ForeignKeyField(Escrow, column_name="escrow_id", on_delete="CASCADE")
    escrow_id: uuid.UUID
    kind = CharField()
    days = SmallIntegerField()
    ends_at = DateTimeTZField()
    status = CharField(default="open")  # open | removed | lapsed
    closed_at = DateTimeTZField(null=True)
    closed_by = ForeignKeyField(User, column_name="closed_by", null=True, on_delete="SET NULL")
    closed_by_id: uuid.UUID | None

    class Meta:
        table_name = "escrow_contingencies"
        primary_key = CompositeKey("escrow", "kind")

    def view(self) -> dict:
        return {
            "kind": self.kind,
            "days": self.days,
            "ends_at": self.ends_at.isoformat(),
            "status": self.status,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": str(self.closed_by_id) if self.closed_by_id else None,
        }


class EscrowInstruction(BaseModel):
    escrow = ForeignKeyField(Escrow, column_name="escrow_id", on_delete="CASCADE")
    escrow_id: uuid.UUID
    action = CharField()  # release | refund
    side = CharField()  # buyer | listing
    user = ForeignKeyField(User, column_name="user_id", null=True, on_delete="SET NULL")
    user_id: uuid.UUID | None
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "escrow_instructions"
        primary_key = CompositeKey("escrow", "action", "side")

    def view(self) -> dict:
        return {
            "action": self.action,
            "side": self.side,
            "user_id": str(self.user_id) if self.user_id else None,
            "at": self.created_at.isoformat(),
        }


class EscrowEvent(BaseModel):
    id = BigAutoField()
    escrow = ForeignKeyField(Escrow, column_name="escrow_id", on_delete="CASCADE")
    escrow_id: uuid.UUID
    action = TextField()
    from_status = TextField(null=True)
    to_status = TextField()
    actor = ForeignKeyField(User, column_name="actor_id", null=True, on_delete="SET NULL")
    actor_id: uuid.UUID | None
    reason = TextField(null=True)
    data = BinaryJSONField(default=dict)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "escrow_events"

    def view(self) -> dict:
        return {
            "action": self.action,
            "from": self.from_status,
            "to": self.to_status,
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "reason": self.reason,
            "data": self.data or {},
            "at": self.created_at.isoformat(),
        }


def lock(escrow_id) -> Escrow | None:
    """The escrow row locked for this transaction (None: no such escrow, or not an id)."""
    try:
        key = escrow_id if isinstance(escrow_id, uuid.UUID) else uuid.UUID(str(escrow_id))
    except ValueError:
        return None
    return next(iter(Escrow.raw("SELECT * FROM escrows WHERE id = %s FOR UPDATE", key)), None)


def open_escrow_of(property_id) -> Escrow | None:
    """The listing's escrow while it is open (at most one: a partial unique index)."""
    return Escrow.get_or_none((Escrow.property == property_id) & Escrow.status.in_(OPEN))


def visible(escrow_id, principal) -> Escrow | None:
    """The escrow if ``principal`` is a party or an admin; None reads exactly like no escrow."""
    try:
        escrow = Escrow.get_or_none(Escrow.id == escrow_id)
    except ValueError:
        return None
    if escrow is None or not escrow.is_visible_to(principal):
        return None
    return escrow


# The status move and its history row in one statement (every settlement runs it): no event when the
# escrow was no longer in ``from_status``. ``{columns}`` are names from this module, never input.
_MOVE = """
WITH moved AS (
    UPDATE escrows SET status = %s, version = version + 1, updated_at = %s{columns}
    WHERE id = %s AND status = %s
    RETURNING id
)
INSERT INTO escrow_events (escrow_id, action, from_status, to_status, actor_id, reason, data, created_at)
SELECT id, %s, %s, %s, %s, %s, %s, %s FROM moved
RETURNING id
"""
_EVENT = """
INSERT INTO escrow_events (escrow_id, action, from_status, to_status, actor_id, reason, data, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


def record(
    escrow: Escrow,
    action: str,
    *,
    actor_id=None,
    reason=None,
    data=None,
    to_status=None,
    now=None,
    values: dict | None = None,
) -> None:
    """An event of the escrow's history; with ``to_status``, move the row there (refusing a bad transition).

    ``values`` (escrow fields) are set on the row with the move, and on ``escrow``.
    """
    now = now or utcnow()
    from_status = escrow.status
    fields = Escrow._meta.fields
    values = values or {}
    history = EscrowEvent.data.db_value(data or {})
    event = [action, from_status, to_status or from_status, actor_id, reason, history, now]
    if to_status is not None and to_status != from_status:
        if not can_transition(from_status, to_status):
            raise EscrowConflict(f"the escrow is {from_status}; it cannot become {to_status}")
        columns = "".join(f", {fields[name].column_name} = %s" for name in values)
        params = [to_status, now, *(fields[name].db_value(value) for name, value in values.items())]
        if not db.execute_sql(_MOVE.format(columns=columns), [*params, escrow.id, from_status, *event]).fetchone():
            raise EscrowConflict("the escrow changed meanwhile; read it again")
        escrow.status, escrow.version, escrow.updated_at = to_status, escrow.version + 1, now
        domain_events.tell("escrow.transition", to=to_status)
    else:
        if values:
            Escrow.update(values).where(Escrow.id == escrow.id).execute()
        db.execute_sql(_EVENT, [escrow.id, *event])
    for name, value in values.items():
        setattr(escrow, name, value)


def open_escrow(offer: Offer, listing: Property, *, actor_id, deposit_business_days=None, now=None) -> Escrow:
    """The escrow of an offer being accepted, with its contingencies and deadlines (caller's transaction)."""
    now = now or utcnow()
    days = DEFAULT_DEPOSIT_BUSINESS_DAYS if deposit_business_days is None else deposit_business_days
    escrow = Escrow.create(
        offer=offer.id,
        property=listing.id,
        buyer=offer.buyer_id,
        buyer_agent=offer.buyer_agent_id,
        seller=listing.owner_id,
        list_agent=listing.list_agent_id,
        currency=offer.currency,
        amount=offer.earnest_money,
        price=offer.price,
        deposit_due_at=add_business_days(now, days),
        closing_date=offer.closing_date,
        created_at=now,
        updated_at=now,
    )
    for contingency in offer.contingencies or ():
        EscrowContingency.create(
            escrow=escrow.id,
            kind=contingency["kind"],
            days=contingency["days"],
            ends_at=contingency_ends(now, contingency["days"]),
        )
    if not offer.contingencies:
        # No contingency at all: the deposit is hard from the start.
        Escrow.update(hard_at=now).where(Escrow.id == escrow.id).execute()
        escrow.hard_at = now
    record(escrow, "opened", actor_id=actor_id, data={"offer_id": str(offer.id)}, now=now)
    return escrow


def contingencies_of(escrow_id) -> list[EscrowContingency]:
    query = EscrowContingency.select().where(EscrowContingency.escrow == escrow_id)
    return list(query.order_by(EscrowContingency.kind))


def instructions_of(escrow_id) -> list[EscrowInstruction]:
    return list(
        EscrowInstruction.select()
        .where(EscrowInstruction.escrow == escrow_id)
        .order_by(EscrowInstruction.created_at, EscrowInstruction.action)
    )


def history_of(escrow_id) -> list[EscrowEvent]:
    return list(EscrowEvent.select().where(EscrowEvent.escrow == escrow_id).order_by(EscrowEvent.id))


def iso(value: datetime.datetime | datetime.date | None) -> str | None:
    return value.isoformat() if value else None
