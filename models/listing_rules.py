"""The rules of a listing that hold without its row: statuses, types, the lifecycle, fields that go together.

``TRANSITIONS`` is the status lifecycle (``can_transition``); ``PUBLIC_STATUSES``
are the statuses anyone may see. ``consistency_errors`` states the rules between
fields that a schema of single fields cannot, ``agent_errors`` who may be a
listing's agent, and ``compose_address`` the RESO ``UnparsedAddress``. A change
these rules refuse raises a ``ListingError``. ``models/properties.py`` applies
them to the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from models.accounts import User

STATUSES = (
    "Incomplete",
    "ComingSoon",
    "Active",
    "ActiveUnderContract",
    "Pending",
    "Closed",
    "Withdrawn",
    "Expired",
    "Canceled",
)
PROPERTY_TYPES = (
    "Residential",
    "ResidentialLease",
    "ResidentialIncome",
    "Land",
    "CommercialSale",
    "CommercialLease",
    "Farm",
    "ManufacturedInPark",
    "BusinessOpportunity",
)
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


# A new listing starts as a draft, or goes straight to one of the draft's next
# statuses; creating a listing as Canceled makes no sense.
INITIAL_STATUSES = ("Incomplete", "ComingSoon", "Active")
# What ``DELETE`` does: a draft is canceled, anything else is withdrawn. A
# listing already in one of these is already off the market (DELETE is a no-op).
OFF_MARKET_ON_DELETE = ("Withdrawn", "Canceled")


class ListingError(Exception):
    """A change the listing's rules refuse; the API maps each kind to its status code."""


class IllegalTransition(ListingError):
    def __init__(self, current: str, new: str):
        self.current, self.new = current, new
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (it is final)"
        super().__init__(f"A listing cannot move from {current} to {new}; from {current} it may move to {allowed}.")


class InvalidListing(ListingError):
    """Field values that cannot hold together; ``errors`` is ``[(field, message)]``."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors))


class StaleListing(ListingError):
    """The listing is no longer at the version the caller changed (another write came first)."""


# The parts ``compose_address`` builds the address from.
ADDRESS_PARTS = frozenset({"street_number", "street_name", "unit_number", "city", "state_or_province", "postal_code"})
# What the rules between fields read: a change is checked against the listing merged with it.
CONSISTENCY_FIELDS = (
    "standard_status",
    "latitude",
    "longitude",
    "association_fee",
    "association_fee_frequency",
    "close_price",
    "close_date",
    *ADDRESS_PARTS,
)


def compose_address(values: dict) -> str | None:
    """RESO ``UnparsedAddress`` from the parts: ``"12 Main St Unit 4, Austin, TX 78701"``."""
    street = " ".join(str(part) for part in (values.get("street_number"), values.get("street_name")) if part)
    if street and values.get("unit_number"):
        street += f" Unit {values['unit_number']}"
    region = " ".join(part for part in (values.get("state_or_province"), values.get("postal_code")) if part)
    parts = [part for part in (street, values.get("city"), region) if part]
    return ", ".join(parts) or None


def consistency_errors(values: dict) -> list[tuple[str, str]]:
    """Rules between fields, which a schema of single fields cannot state."""
    errors = []
    if (values.get("latitude") is None) != (values.get("longitude") is None):
        missing = "longitude" if values.get("longitude") is None else "latitude"
        errors.append((missing, "latitude and longitude go together: give both or neither"))
    if values.get("association_fee") is not None and values.get("association_fee_frequency") is None:
        errors.append(("association_fee_frequency", "is required with association_fee"))
    return errors


def agent_errors(agent_id) -> list[tuple[str, str]]:
    """Why ``agent_id`` cannot be a listing's agent: no such user, not an agent, or banned."""
    return _agent_errors(User.select(User.role, User.banned_at).where(User.id == agent_id).first())


def agent_errors_many(agent_ids: Iterable) -> dict[str, list[tuple[str, str]]]:
    """``agent_errors`` of many users in one read, by ``str(agent_id)``; ``ValueError`` for an id that is no UUID."""
    ids = {str(agent_id): str(uuid.UUID(str(agent_id))) for agent_id in agent_ids}
    if not ids:
        return {}
    agents = User.select(User.id, User.role, User.banned_at).where(User.id.in_(list(set(ids.values()))))
    found = {str(agent.id): agent for agent in agents}
    return {given: _agent_errors(found.get(canonical)) for given, canonical in ids.items()}


def _agent_errors(agent) -> list[tuple[str, str]]:
    if agent is None or agent.role != "agent" or agent.banned_at is not None:
        return [("list_agent_id", "must be the id of an agent")]
    return []


__all__ = [
    "ADDRESS_PARTS",
    "CONSISTENCY_FIELDS",
    "INITIAL_STATUSES",
    "OFF_MARKET_ON_DELETE",
    "PROPERTY_TYPES",
    "PUBLIC_STATUSES",
    "STATUSES",
    "TRANSITIONS",
    "IllegalTransition",
    "InvalidListing",
    "ListingError",
    "StaleListing",
    "agent_errors",
    "agent_errors_many",
    "can_transition",
    "compose_address",
    "consistency_errors",
]
