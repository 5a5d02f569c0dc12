"""Properties (listings): RESO-shaped fields, changes under the listing's rules, price/status history.

Field names are the RESO Data Dictionary names in snake_case (``ListPrice`` →
``list_price``). Money is integer minor units (cents) with an ISO 4217
``currency``. ``version`` increments on every change and is the ETag.

Every change goes through ``Property.create_listing`` or
``Property.apply_changes``: they enforce the rules of ``models/listing_rules.py``
(the transition table, values that must hold together), keep
``previous_list_price`` / ``on_market_timestamp`` right, write one history row
per price or status change, and bump ``version`` with a conditional update so
that of two concurrent writers at the same version exactly one wins.
"""

from __future__ import annotations

import datetime
import itertools
import uuid

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DateField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    SmallIntegerField,
    TextField,
)
from playhouse.postgres_ext import ArrayField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.listing_rules import (
    ADDRESS_PARTS,
    CONSISTENCY_FIELDS,
    INITIAL_STATUSES,
    OFF_MARKET_ON_DELETE,
    PUBLIC_STATUSES,
    IllegalTransition,
    InvalidListing,
    StaleListing,
    agent_errors,
    can_transition,
    compose_address,
    consistency_errors,
)

# Fields whose changes are kept in ``property_history``.
HISTORY_FIELDS = ("list_price", "standard_status")
# A change and its history rows in one statement (no history when the version moved on meanwhile).
_WRITE = """WITH updated AS (UPDATE properties SET version = version + 1, modification_timestamp = %s{sets}
WHERE id = %s AND version = %s RETURNING *){history} SELECT * FROM updated"""
_HISTORY = """, history AS (INSERT INTO property_history (property_id, at, actor_id, field, old_value, new_value)
SELECT updated.id, %s, %s, h.field, h.old, h.new FROM updated, (VALUES {rows}) AS h (field, old, new))"""


class Property(UUIDModel):
    owner = ForeignKeyField(User, column_name="owner_id")
    owner_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    list_agent = ForeignKeyField(User, column_name="list_agent_id", null=True)
    list_agent_id: uuid.UUID | None
    version = IntegerField(default=1)
    standard_status = CharField(default="Incomplete")
    property_type = CharField()
    property_sub_type = TextField(null=True)
    currency = CharField(default="USD")
    list_price = BigIntegerField()
    original_list_price = BigIntegerField()
    previous_list_price = BigIntegerField(null=True)
    close_price = BigIntegerField(null=True)
    bedrooms_total = SmallIntegerField(null=True)
    bathrooms_full = SmallIntegerField(null=True)
    bathrooms_half = SmallIntegerField(null=True)
    living_area = IntegerField(null=True)
    living_area_units = CharField(default="SquareFeet")
    lot_size_square_feet = BigIntegerField(null=True)
    year_built = SmallIntegerField(null=True)
    street_number = TextField(null=True)
    street_name = TextField(null=True)
    unit_number = TextField(null=True)
    unparsed_address = TextField(null=True)
    city = TextField()
    state_or_province = TextField(null=True)
    postal_code = TextField(null=True)
    country = CharField(default="US")
    latitude = FloatField(null=True)
    longitude = FloatField(null=True)
    features = ArrayField(TextField, default=list)
    association_fee = BigIntegerField(null=True)
    association_fee_frequency = TextField(null=True)
    tax_annual_amount = BigIntegerField(null=True)
    tax_year = SmallIntegerField(null=True)
    public_remarks = TextField(null=True)
    virtual_tour_url_unbranded = TextField(null=True)
    listing_contract_date = DateField(null=True)
    on_market_timestamp = DateTimeTZField(null=True)
    close_date = DateField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    modification_timestamp = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "properties"

    @property
    def is_public(self) -> bool:
        return self.standard_status in PUBLIC_STATUSES

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def people(self) -> list[tuple[str, str]]:
        """``[(user_id, role)]``: the owner, and the agent when there is one other than the owner."""
        people = [(str(self.owner_id), "owner")]
        if self.list_agent_id is not None and str(self.list_agent_id) != str(self.owner_id):
            people.append((str(self.list_agent_id), "agent"))
        return people

    def is_managed_by(self, principal) -> bool:
        """Owner, assigned agent or admin: who may see a draft and change the listing."""
        if principal is None:
            return False
        return principal.is_admin or principal.user_id in (str(self.owner_id), str(self.list_agent_id))

    def is_visible_to(self, principal) -> bool:
        """Anyone sees a listed property; drafts and off-market ones only their managers."""
        return self.is_public or self.is_managed_by(principal)

    # --- changes ------------------------------------------------------------------------

    @classmethod
    def create_listing(cls, *, owner_id, actor_id, fields: dict) -> Property:
        """Insert a listing from ``fields`` (column names; ``list_agent_id`` for the agent).

        ``original_list_price`` is the list price; a listing created Active is on
        the market now; its first price and status are its first history rows.
        Raises ``InvalidListing`` for values that do not hold together.
        """
        values = dict(fields)
        status = values.setdefault("standard_status", "Incomplete")
        errors = []
        if status not in INITIAL_STATUSES:
            errors.append(("standard_status", f"a new listing starts as one of {', '.join(INITIAL_STATUSES)}"))
        errors += consistency_errors(values)
        if values.get("list_agent_id") is not None:
            errors += agent_errors(values["list_agent_id"])
        if errors:
            raise InvalidListing(errors)
        now = utcnow()
        values.update(
            owner=owner_id,
            list_agent=values.pop("list_agent_id", None),
            version=1,
            original_list_price=values["list_price"],
            created_at=now,
            modification_timestamp=now,
        )
        values.setdefault("unparsed_address", compose_address(values))
        if status == "Active":
            values["on_market_timestamp"] = now
        with db.atomic():
            listing = cls.create(**values)
            PropertyHistory.insert_many(
                [
                    {
                        "property": listing.id,
                        "at": now,
                        "actor": actor_id,
                        "field": "standard_status",
                        "old_value": None,
                        "new_value": status,
                    },
                    {
                        "property": listing.id,
                        "at": now,
                        "actor": actor_id,
                        "field": "list_price",
                        "old_value": None,
                        "new_value": str(listing.list_price),
                    },
                ]
            ).execute()
        return listing

    def apply_changes(self, changes: dict, *, actor_id, expected_version: int | None = None, via=()) -> dict:
        """Apply ``changes`` (column names; ``list_agent_id`` for the agent) to this listing.

        Returns ``{field: (old, new)}`` for what actually changed (empty: nothing
        did, and the version stays). The row is updated only if it is still at
        ``expected_version`` (default: the version this object was read at);
        otherwise ``StaleListing``. An illegal status move is ``IllegalTransition``,
        values that cannot hold together are ``InvalidListing``. ``self`` is
        refreshed from the updated row. ``via``: statuses the listing passes through
        on its way to the new one, each move checked and kept in the history (one write).
        """
        expected = self.version if expected_version is None else expected_version
        if expected != self.version:
            raise StaleListing()
        current = {name: getattr(self, name) for name in changes}
        diff = {name: value for name, value in changes.items() if current[name] != value}
        if not diff:
            return {}
        merged = {name: getattr(self, name) for name in CONSISTENCY_FIELDS}
        merged.update(changes)
        errors = []
        new_status = diff.get("standard_status")
        steps = [self.standard_status, *via, new_status] if new_status is not None else []
        moves = list(itertools.pairwise(steps))
        for before, after in moves:
            if not can_transition(before, after):
                raise IllegalTransition(before, after)
        errors += consistency_errors(merged)
        final_status = merged["standard_status"]
        for name in ("close_price", "close_date"):
            if final_status == "Closed" and merged.get(name) is None:
                errors.append((name, "is required to close a listing"))
            elif final_status != "Closed" and name in diff and diff[name] is not None:
                errors.append((name, "may only be set when the listing is Closed"))
        if diff.get("list_agent_id") is not None:
            errors += agent_errors(diff["list_agent_id"])
        if errors:
            raise InvalidListing(errors)

        now = utcnow()
        derived = {}
        if "list_price" in diff:
            derived["previous_list_price"] = self.list_price
        if new_status == "Active" and self.on_market_timestamp is None:
            derived["on_market_timestamp"] = now
        if ADDRESS_PARTS & diff.keys() and "unparsed_address" not in changes:
            derived["unparsed_address"] = compose_address(merged)
        values = {
            ("list_agent" if name == "list_agent_id" else name): value for name, value in {**diff, **derived}.items()
        }
        fields = Property._meta.fields
        history = [("list_price", str(current["list_price"]), str(diff["list_price"]))] if "list_price" in diff else []
        history += [("standard_status", before, after) for before, after in moves]
        sql = _WRITE.format(
            sets="".join(f", {fields[name].column_name} = %s" for name in values),
            history=_HISTORY.format(rows=", ".join(["(%s, %s, %s)"] * len(history))) if history else "",
        )
        params = [now, *(fields[name].db_value(value) for name, value in values.items()), self.id, expected]
        if history:
            params += [now, actor_id, *(part for row in history for part in row)]
        rows = list(Property.raw(sql, *params))
        if not rows:
            raise StaleListing()
        changed = {name: (current.get(name, getattr(self, name)), value) for name, value in {**diff, **derived}.items()}
        self.__data__.update(rows[0].__data__)
        self._dirty.clear()
        return changed

    def change_status(
        self,
        new_status: str,
        *,
        actor_id,
        expected_version: int | None = None,
        close_price: int | None = None,
        close_date: datetime.date | None = None,
        via: tuple[str, ...] = (),
    ) -> dict:
        """Move to ``new_status`` (with the closing figures when it is Closed); see ``apply_changes``."""
        changes = {"standard_status": new_status}
        if close_price is not None:
            changes["close_price"] = close_price
        if close_date is not None:
            changes["close_date"] = close_date
        return self.apply_changes(changes, actor_id=actor_id, expected_version=expected_version, via=via)

    def take_off_market(self, *, actor_id, expected_version: int | None = None) -> dict:
        """What ``DELETE`` does: a draft is Canceled, a listing on the market Withdrawn.

        Already Withdrawn or Canceled: nothing changes (``{}``). Anything else
        follows the transition table (``IllegalTransition``: e.g. Pending, Closed).
        """
        if self.standard_status in OFF_MARKET_ON_DELETE:
            if expected_version is not None and expected_version != self.version:
                raise StaleListing()
            return {}
        target = "Canceled" if self.standard_status == "Incomplete" else "Withdrawn"
        return self.change_status(target, actor_id=actor_id, expected_version=expected_version)

    # --- views --------------------------------------------------------------------------

    def view(self) -> dict:
        """The listing as ``GET /v1/properties/{id}`` shows it (the same to everyone who may see it)."""
        data = {name: _jsonable(getattr(self, name)) for name in VIEW_FIELDS}
        data.update(
            id=str(self.id),
            owner_id=str(self.owner_id),
            list_agent_id=str(self.list_agent_id) if self.list_agent_id else None,
            features=list(self.features or ()),
        )
        return data

    def summary(self) -> dict:
        """The compact form used in lists (favorites)."""
        data = {name: _jsonable(getattr(self, name)) for name in SUMMARY_FIELDS}
        data["id"] = str(self.id)
        return data


class PropertyHistory(BaseModel):
    id = BigAutoField()
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    at = DateTimeTZField(default=utcnow)
    actor = ForeignKeyField(User, column_name="actor_id", null=True, on_delete="SET NULL")
    field = TextField()
    old_value = TextField(null=True)
    new_value = TextField()

    class Meta:
        table_name = "property_history"

    def view(self, *, with_actor: bool = False) -> dict:
        """One change; prices as integers. Who made it is shown only to the listing's managers."""
        typed = int if self.field == "list_price" else str
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "field": self.field,
            "old_value": typed(self.old_value) if self.old_value is not None else None,
            "new_value": typed(self.new_value),
            "actor_id": str(self.actor_id) if with_actor and self.actor_id else None,
        }


VIEW_FIELDS = (
    "version",
    "standard_status",
    "property_type",
    "property_sub_type",
    "currency",
    "list_price",
    "original_list_price",
    "previous_list_price",
    "close_price",
    "bedrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "living_area_units",
    "lot_size_square_feet",
    "year_built",
    "street_number",
    "street_name",
    "unit_number",
    "unparsed_address",
    "city",
    "state_or_province",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "association_fee",
    "association_fee_frequency",
    "tax_annual_amount",
    "tax_year",
    "public_remarks",
    "virtual_tour_url_unbranded",
    "listing_contract_date",
    "on_market_timestamp",
    "close_date",
    "created_at",
    "modification_timestamp",
)
SUMMARY_FIELDS = (
    "standard_status",
    "property_type",
    "currency",
    "list_price",
    "bedrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "living_area_units",
    "unparsed_address",
    "city",
    "state_or_province",
    "postal_code",
    "latitude",
    "longitude",
    "modification_timestamp",
)


def _jsonable(value):
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value


__all__ = ["Property", "PropertyHistory"]
