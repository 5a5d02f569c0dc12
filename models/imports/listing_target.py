"""Imported listings: a source row's fields become a ``Property`` under the listing's rules, with its photos.

A listing comes across in the status it has at the source (a sold house is imported ``Closed``,
not walked through the lifecycle with invented history), but every rule between fields holds:
``consistency_errors``, who may be the agent, the closing figures of a Closed listing. A later run
changes the listing through ``Property.apply_changes``, so its history, version and transition
rules stay Hearth's; a status reached at the source through steps a delta did not see is reached
here through the lifecycle's shortest path. Every write marks the listing for the search index, so it becomes searchable
like one created through the API. Photos are the imported uploads, attached in the source's order;
a photo shows only once its scan is clean (``photos_view`` reads clean uploads only).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

from models.base import utcnow
from models.imports.steps import Outcome
from models.listing_rules import (
    PROPERTY_TYPES,
    STATUSES,
    TRANSITIONS,
    InvalidListing,
    ListingError,
    agent_errors,
    can_transition,
    compose_address,
    consistency_errors,
)
from models.properties import Property, PropertyHistory
from models.search import queue as search_queue
from models.uploads import PropertyMedia, Upload

# Fields a later run does not change: they describe how the listing began.
_FIRST_ONLY = ("created_at",)


def write_listing(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    """Create or update the listing ``fields`` describe; an ``Outcome`` (skipped when a rule refuses it)."""
    values, problems = listing_values(fields)
    if problems:
        return Outcome.skipped("listing-rule", "; ".join(problems))
    listing = Property.get_or_none(Property.id == previous_id) if previous_id else None
    try:
        if listing is None:
            listing = _create(values, source_key)
            created = True
        else:
            changes = {name: value for name, value in values.items() if name not in (*_FIRST_ONLY, "owner_id")}
            changes["list_agent_id"] = values["list_agent_id"]
            _walk_to(listing, changes.get("standard_status"))
            listing.apply_changes(changes, actor_id=None)
            created = False
    except ListingError as exc:
        return Outcome.skipped("listing-rule", str(exc))
    photos = fields.get("photos")
    if photos is not None:
        problem = _attach_photos(listing, photos)
        if problem:
            return Outcome.skipped("listing-rule", problem)
    search_queue.mark_dirty(listing.id)
    return Outcome.inserted(listing.id) if created else Outcome.updated(listing.id)


def _walk_to(listing: Property, status: str | None) -> None:
    """Move ``listing`` through the statuses between its own and ``status`` (a delta that missed a step:
    Active, then Closed at the next run, goes through Pending), each step in its history. The last
    move is left to the caller's change; a status the lifecycle cannot reach stays for it to refuse."""
    if status is None or status == listing.standard_status or can_transition(listing.standard_status, status):
        return
    path = _shortest_path(listing.standard_status, status)
    for step in path[:-1]:
        listing.change_status(step, actor_id=None)


def _shortest_path(start: str, goal: str) -> list[str]:
    """The statuses after ``start`` up to ``goal`` along the lifecycle (empty when it cannot get there)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for status in frontier:
            for nxt in sorted(TRANSITIONS.get(status, ())):
                if nxt not in paths:
                    paths[nxt] = [*paths[status], nxt]
                    following.append(nxt)
        frontier = following
    return paths.get(goal, [start])[1:]


def listing_values(fields: dict) -> tuple[dict, list[str]]:
    """A mapped row's fields as the listing's columns (``owner_id``, ``list_agent_id``; no photos), and the
    problems of single values that refuse it (empty: none)."""
    values = {name: value for name, value in fields.items() if name != "photos"}
    values["owner_id"] = values.pop("owner")
    values["list_agent_id"] = values.pop("list_agent", None)
    return values, _value_problems(values)


def _value_problems(values: dict) -> list[str]:
    problems = []
    if values.get("standard_status", "Incomplete") not in STATUSES:
        problems.append(f"standard_status {values['standard_status']!r} is not a RESO status")
    if values.get("property_type") not in PROPERTY_TYPES:
        problems.append(f"property_type {values.get('property_type')!r} is not a RESO property type")
    for name in ("list_price", "close_price", "association_fee", "tax_annual_amount"):
        if values.get(name) is not None and values[name] < 0:
            problems.append(f"{name} may not be negative")
    return problems


def _create(values: dict, source_key: str) -> Property:
    row, history = new_listing(values, source_key, utcnow(), agent_errors)
    listing = Property.create(**row)
    PropertyHistory.insert_many(history).execute()
    return listing


def new_listing(
    values: dict, source_key: str, now: datetime.datetime, agent_problems: Callable[[Any], list[tuple[str, str]]]
) -> tuple[dict, list[dict]]:
    """The ``Property`` row (by field name) a new listing of ``values`` is, and its first history rows.

    ``InvalidListing`` when a rule between its fields refuses it; ``agent_problems(agent_id)`` says why
    its agent cannot be one (``agent_errors``, or a lookup of a chunk's agents read at once).
    """
    status = values.setdefault("standard_status", "Incomplete")
    values = {name: value for name, value in values.items() if value is not None or name == "list_agent_id"}
    values.setdefault("standard_status", status)
    errors = consistency_errors(values)
    if values.get("list_agent_id") is not None:
        errors += agent_problems(values["list_agent_id"])
    for name in ("close_price", "close_date"):
        if status == "Closed" and values.get(name) is None:
            errors.append((name, "is required for a Closed listing"))
    if errors:
        raise InvalidListing(errors)
    created_at = values.pop("created_at", None) or now
    values.update(
        id=_listing_id(source_key),
        owner=values.pop("owner_id"),
        list_agent=values.pop("list_agent_id", None),
        version=1,
        original_list_price=values["list_price"],
        created_at=created_at,
        modification_timestamp=now,
    )
    values.setdefault("unparsed_address", compose_address(values))
    if status not in ("Incomplete", "ComingSoon"):
        values.setdefault("on_market_timestamp", created_at)
    listing_id = values["id"]
    history = [
        {"property": listing_id, "at": now, "field": "standard_status", "old_value": None, "new_value": status},
        {
            "property": listing_id,
            "at": now,
            "field": "list_price",
            "old_value": None,
            "new_value": str(values["list_price"]),
        },
    ]
    return values, history


def _listing_id(source_key: str) -> uuid.UUID:
    """The source's id when it is a UUID (links to the listing keep working), else a new one."""
    try:
        return uuid.UUID(source_key)
    except ValueError:
        return uuid.uuid4()


def _attach_photos(listing: Property, upload_ids: list[str]) -> str | None:
    """The listing's photos become ``upload_ids`` in order, the first one the cover; a problem, or None."""
    ids = list(dict.fromkeys(str(upload_id) for upload_id in upload_ids))
    uploads = {str(u.id): u for u in Upload.select().where(Upload.id.in_(ids))} if ids else {}
    elsewhere = [
        str(media.upload_id)
        for media in PropertyMedia.select().where(
            PropertyMedia.upload.in_(ids) & (PropertyMedia.property != listing.id)
        )
    ]
    if elsewhere:
        return f"photos {', '.join(elsewhere)} belong to another listing"
    wrong = [i for i in ids if i not in uploads or uploads[i].purpose != "listing_photo"]
    if wrong:
        return f"photos {', '.join(wrong)} are not listing photos (their bucket is not imported as listing_photo)"
    PropertyMedia.delete().where((PropertyMedia.property == listing.id) & (PropertyMedia.kind == "photo")).execute()
    if ids:
        PropertyMedia.insert_many(
            [
                {
                    "property": listing.id,
                    "upload": upload_id,
                    "kind": "photo",
                    "position": position,
                    "is_cover": position == 0,
                    "attached_by": listing.owner_id,
                }
                for position, upload_id in enumerate(ids)
            ]
        ).execute()
    return None


__all__ = ["listing_values", "new_listing", "write_listing"]
