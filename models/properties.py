"""Properties (listings): RESO-shaped fields, the status lifecycle, price/status history, favorites.

Field names are the RESO Data Dictionary names in snake_case (``ListPrice`` →
``list_price``). Money is integer minor units (cents) with an ISO 4217
``currency``. ``version`` increments on every change and is the ETag.
"""
from __future__ import annotations

from peewee import (BigAutoField, BigIntegerField, CharField, CompositeKey, DateField, FloatField, ForeignKeyField,
                    IntegerField, SmallIntegerField, TextField)
from playhouse.postgres_ext import ArrayField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow

STATUSES = ("Incomplete", "ComingSoon", "Active", "ActiveUnderContract", "Pending", "Closed",
            "Withdrawn", "Expired", "Canceled")
PROPERTY_TYPES = ("Residential", "ResidentialLease", "ResidentialIncome", "Land", "CommercialSale",
                  "CommercialLease", "Farm", "ManufacturedInPark", "BusinessOpportunity")
# Which listings anyone may see. ``Incomplete`` is a draft; withdrawn, expired
# and canceled listings are off the market and visible only to their people.
PUBLIC_STATUSES = ("ComingSoon", "Active", "ActiveUnderContract", "Pending", "Closed")

# The lifecycle: from → the statuses it may move to. Anything else is a 409.
TRANSITIONS: dict[str, frozenset[str]] = {
    "Incomplete": frozenset({"ComingSoon", "Active", "Canceled"}),
    "ComingSoon": frozenset({"Active", "Withdrawn", "Canceled"}),
    "Active": frozenset({"ActiveUnderContract", "Pending", "Withdrawn", "Expired", "Canceled"}),
    "ActiveUnderContract": frozenset({"Active", "Pending", "Withdrawn", "Canceled"}),
    "Pending": frozenset({"Active", "Closed", "Canceled"}),
    "Withdrawn": frozenset({"Active", "Expired", "Canceled"}),
    "Expired": frozenset({"Active", "Canceled"}),
    "Closed": frozenset(),
    "Canceled": frozenset(),
}


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


class Property(UUIDModel):
    owner = ForeignKeyField(User, column_name="owner_id")
    list_agent = ForeignKeyField(User, column_name="list_agent_id", null=True)
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

    def is_managed_by(self, principal) -> bool:
        """Owner, assigned agent or admin: who may see a draft and change the listing."""
        if principal is None:
            return False
        return principal.is_admin or principal.user_id in (str(self.owner_id), str(self.list_agent_id))


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


class Favorite(BaseModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "favorites"
        primary_key = CompositeKey("user", "property")


__all__ = ["Property", "PropertyHistory", "Favorite", "STATUSES", "PROPERTY_TYPES", "PUBLIC_STATUSES",
           "TRANSITIONS", "can_transition"]
