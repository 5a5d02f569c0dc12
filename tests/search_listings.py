"""Listings for search tests: ``Property`` rows written through the model, then indexed.

Search tests do not go through the listings API: they insert rows directly and
either index them at once (``index_now``) or mark them dirty and let the
reindex job do it (``mark``), as the listings API does after every change.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import uuid

from models.accounts import User
from models.base import utcnow
from models.passwords import hash_password
from models.properties import Property
from models.search.index import index_listings
from models.search.queue import mark_dirty
from tests.factories import PASSWORD

_seq = itertools.count(1)
BASE_TIME = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # once: search tests make many owners


def make_owner(role: str = "seller") -> User:
    """A verified user whose password is ``tests.factories.PASSWORD``."""
    return User.create(
        id=uuid.uuid4(),
        email=f"owner{next(_seq)}-{uuid.uuid4().hex[:6]}@example.com",
        password_hash=_password_hash(),
        full_name="Listing Owner",
        role=role,
        email_verified_at=utcnow(),
    )


def make_listing(owner=None, *, index: bool = True, **fields) -> Property:
    """A listing with plausible defaults; ``listed_minutes`` sets ``on_market_timestamp`` relative to BASE_TIME."""
    n = next(_seq)
    owner = owner or make_owner()
    minutes = fields.pop("listed_minutes", n)
    values = {
        "id": uuid.uuid4(),
        "owner": owner.id,
        "standard_status": "Active",
        "property_type": "Residential",
        "list_price": 30_000_000,
        "original_list_price": 30_000_000,
        "bedrooms_total": 3,
        "bathrooms_full": 2,
        "bathrooms_half": 0,
        "living_area": 1500,
        "year_built": 1990,
        "street_number": str(100 + n),
        "street_name": "Main Street",
        "city": "Austin",
        "state_or_province": "TX",
        "postal_code": "78701",
        "latitude": 30.27,
        "longitude": -97.74,
        "features": [],
        "public_remarks": "A house.",
        "on_market_timestamp": BASE_TIME + datetime.timedelta(minutes=minutes),
    }
    values.update(fields)
    values.setdefault("unparsed_address", f"{values['street_number']} {values['street_name']}, {values['city']}")
    values["original_list_price"] = values["list_price"]
    listing = Property.create(**values)
    if index:
        index_listings([listing.id])
    return listing


def update_listing(listing: Property, **changes) -> Property:
    """Change a listing the way the listings API does (version bump) and mark it dirty; returns the job or None."""
    Property.update(version=Property.version + 1, **changes).where(Property.id == listing.id).execute()
    return mark_dirty(listing.id)


def index_now(*listings) -> None:
    index_listings([listing.id for listing in listings])
