"""What each Hearth target of a mapping file accepts: its fields, which of them are references, which are files.

A mapping names a target per source table (``target = "properties"``) and a target field per
column (``field = "list_price"``); the validator checks both against this table, and the writers
in ``models/imports/targets.py`` rely on every field they receive being listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds of field.
VALUE = "value"
USER = "user"  # a Hearth user id: ``ref`` to auth.users or to a table whose target is profiles
PROPERTY = "property"  # ``ref`` to a table whose target is properties
CONVERSATION = "conversation"
UPLOAD = "upload"  # one Supabase Storage reference → the imported upload
UPLOADS = "uploads"  # a list of them (text[] or a JSON array)

# Which target a ``ref`` must lead to for each kind of reference field.
REFERENCE_TARGETS = {USER: ("auth.users", "profiles"), PROPERTY: ("properties",), CONVERSATION: ("conversations",)}

_PROPERTY_VALUES = (
    "standard_status",
    "property_type",
    "property_sub_type",
    "currency",
    "list_price",
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
    "features",
    "association_fee",
    "association_fee_frequency",
    "tax_annual_amount",
    "tax_year",
    "public_remarks",
    "virtual_tour_url_unbranded",
    "listing_contract_date",
    "close_date",
    "created_at",
)


@dataclass(frozen=True)
class Target:
    name: str
    fields: dict[str, str]
    required: tuple[str, ...]
    # Fields named ``<prefix>.<anything>`` (the profile's ``user_metadata.<key>``).
    open_prefixes: tuple[str, ...] = field(default=())

    def kind_of(self, name: str) -> str | None:
        if name in self.fields:
            return self.fields[name]
        prefix, dot, rest = name.partition(".")
        return VALUE if dot and rest and prefix in self.open_prefixes else None


TARGETS: dict[str, Target] = {
    "profiles": Target(
        "profiles",
        {"user": USER, "full_name": VALUE, "role": VALUE, "avatar": UPLOAD},
        required=("user",),
        open_prefixes=("user_metadata",),
    ),
    "properties": Target(
        "properties",
        {"owner": USER, "list_agent": USER, "photos": UPLOADS, **dict.fromkeys(_PROPERTY_VALUES, VALUE)},
        required=("owner", "property_type", "list_price", "city"),
    ),
    "favorites": Target(
        "favorites", {"user": USER, "property": PROPERTY, "created_at": VALUE}, required=("user", "property")
    ),
    "conversations": Target(
        "conversations",
        {"property": PROPERTY, "buyer": USER, "created_at": VALUE},
        required=("property", "buyer"),
    ),
    "messages": Target(
        "messages",
        {"conversation": CONVERSATION, "sender": USER, "body": VALUE, "attachments": UPLOADS, "created_at": VALUE},
        required=("conversation", "sender", "body"),
    ),
    "saved_searches": Target(
        "saved_searches",
        {"user": USER, "name": VALUE, "query": VALUE, "alerts": VALUE, "created_at": VALUE},
        required=("user", "name", "query"),
    ),
}

__all__ = ["CONVERSATION", "PROPERTY", "REFERENCE_TARGETS", "TARGETS", "UPLOAD", "UPLOADS", "USER", "VALUE", "Target"]
