"""Saved searches: a user's ``GET /v1/properties`` query kept under a name, and what it was alerted about.

``SavedSearch.add`` keeps a user at ``MAX_PER_USER``. The alert scan
(``tasks.saved_searches.scan_alerts``) reads ``property_history`` past the
watermark in ``saved_search_state`` (``read_batch``), turns price and status
changes into candidates (``Candidate``), evaluates each alerting saved search
on the candidates only (``matching_listings``), and records each alert once
(``record_alert``): a listing is alerted to a saved search once as ``new`` and
once per dropped-to price.
"""

from __future__ import annotations

import datetime
import time
import urllib.parse
from dataclasses import dataclass

from peewee import BigIntegerField, BooleanField, CharField, CompositeKey, ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.jobs import Job
from models.listing_rules import PUBLIC_STATUSES
from models.notifications import notify
from models.properties import Property, PropertyHistory
from models.search import ListingSearch, SearchFilters
from models.search.index import LIVE_TABLE

MAX_PER_USER = 25
ALERT_REASONS = ("new", "price_drop")


class SavedSearch(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    name = TextField()
    query = BinaryJSONField()
    alerts = BooleanField(default=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "saved_searches"


class SavedSearchAlert(BaseModel):
    saved_search = ForeignKeyField(SavedSearch, column_name="saved_search_id", on_delete="CASCADE")
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    reason = CharField()
    price = BigIntegerField(default=0)
    notification_id = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "saved_search_alerts"
        primary_key = CompositeKey("saved_search", "property", "reason", "price")


class SavedSearchState(BaseModel):
    id = BooleanField(primary_key=True, default=True)
    last_history_id = BigIntegerField(default=0)
    last_run_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "saved_search_state"


# --- Saved searches ------------------------------------------------------------------------

SEARCH_PATH = "/v1/properties"
# Parameters of a saved query whose values are lists (comma-separated in a query string).
LIST_PARAMS = ("property_type", "status", "features")


class LimitReached(Exception):
    """The user already has ``MAX_PER_USER`` saved searches."""


def stored_query(params: dict) -> dict:
    """What is kept of accepted search parameters: the given ones (``None`` means not given)."""
    return {name: value for name, value in params.items() if value is not None}


def search_url(query: dict) -> str:
    """``GET /v1/properties`` with ``query`` as its query string (names in order, lists comma-separated)."""
    pairs = [
        (name, ",".join(value) if name in LIST_PARAMS else _query_value(value)) for name, value in sorted(query.items())
    ]
    return f"{SEARCH_PATH}?{urllib.parse.urlencode(pairs, safe=',')}" if pairs else SEARCH_PATH


def _query_value(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def add_saved_search(user_id, *, name: str, query: dict, alerts: bool) -> SavedSearch:
    """A new saved search of ``user_id``; ``LimitReached`` when they have ``MAX_PER_USER`` already."""
    with db.atomic():
        # Two concurrent saves must not both see room for one more.
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"saved_searches:{user_id}",))
        if SavedSearch.select().where(SavedSearch.user == user_id).count() >= MAX_PER_USER:
            raise LimitReached()
        now = utcnow()
        return SavedSearch.create(user=user_id, name=name, query=query, alerts=alerts, created_at=now, updated_at=now)


def own_saved_search(user_id, search_id) -> SavedSearch | None:
    return SavedSearch.get_or_none((SavedSearch.id == search_id) & (SavedSearch.user == user_id))


def saved_search_view(saved: SavedSearch) -> dict:
    return {
        "id": str(saved.id),
        "name": saved.name,
        "query": saved.query,
        "alerts": saved.alerts,
        "search_url": search_url(saved.query),
        "created_at": saved.created_at.isoformat(),
        "updated_at": saved.updated_at.isoformat(),
    }


# --- The alert scan ------------------------------------------------------------------------

# A listing entering the market: a new listing, or one back from off the market (or a draft).
# ComingSoon → Active is a candidate too: it is news to a search of Active listings only
# (``Candidate.is_news_to``).
NEW_STATUSES = ("Active", "ComingSoon")
# How long a scan waits for transactions writing history (listing changes take milliseconds).
HISTORY_WRITERS_WAIT = 1.0
_LAST_HISTORY_ID = (
    "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('property_history', 'id')::regclass), 0)"
)
_HISTORY_WRITERS = (
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
    "AND relation = 'property_history'::regclass AND mode = 'RowExclusiveLock' AND granted "
    "AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class Candidate:
    """A history row that may interest saved searches: ``new`` (``price`` 0) or ``price_drop`` to ``price``."""

    history_id: int
    property_id: str
    reason: str
    price: int
    previous_price: int | None
    at: datetime.datetime
    old_status: str | None = None  # for ``new``: where the listing came from

    def is_news_to(self, statuses) -> bool:
        """False for a listing that only moved between statuses a search (``statuses``) finds anyway."""
        return self.reason != "new" or self.old_status not in statuses


@dataclass
class Batch:
    rows: int  # history rows consumed (up to and including ``last_history_id``)
    last_history_id: int
    candidates: list[Candidate]
    waiting_for_index: bool  # stopped at a candidate whose listing is not reindexed yet
    full: bool  # the read hit its limit: more rows may follow


@dataclass(frozen=True)
class MatchedListing:
    property_id: str
    list_price: int
    currency: str
    address: str | None
    city: str


def candidate_of(row: PropertyHistory) -> Candidate | None:
    """The candidate a history row is, if any."""
    common = {"history_id": row.id, "property_id": str(row.property_id), "at": row.at}
    old, new = row.old_value, row.new_value
    if row.field == "standard_status" and new in NEW_STATUSES:
        if old is None or old not in PUBLIC_STATUSES or (old, new) == ("ComingSoon", "Active"):
            return Candidate(reason="new", price=0, previous_price=None, old_status=old, **common)
    elif row.field == "list_price" and old is not None and int(new) < int(old):
        return Candidate(reason="price_drop", price=int(new), previous_price=int(old), **common)
    return None


def history_horizon(wait: float | None = None) -> int | None:
    """An id up to which every history row is committed or never will be; None if writers took too long.

    Ids are drawn when a row is inserted, not when it commits, so a watermark
    moved past a row whose transaction is still open would skip that row for
    good. A transaction writing history holds ``RowExclusiveLock`` on the table
    from before it draws an id until it ends: read the last id drawn, then wait
    (at most ``wait`` seconds) for the transactions holding that lock at that
    moment to end. Nothing is locked, so listing writes and vacuum never wait
    for this. The caller's own transaction does not count (its rows are its own).
    """
    last = db.execute_sql(_LAST_HISTORY_ID).fetchone()[0]
    writers = [row[0] for row in db.execute_sql(_HISTORY_WRITERS).fetchall()]
    deadline = time.monotonic() + (HISTORY_WRITERS_WAIT if wait is None else wait)
    while writers:
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)
        writers = [
            row[0]
            for row in db.execute_sql(_HISTORY_WRITERS + " AND virtualtransaction = ANY(%s)", (writers,)).fetchall()
        ]
    return last


def lock_state() -> SavedSearchState | None:
    """The scan's state row, locked for this transaction; None while another scan holds it."""
    return (
        SavedSearchState.select()
        .where(SavedSearchState.id == True)  # noqa: E712 - a peewee expression (SQL `id = true`), not a Python test
        .for_update(skip_locked=True)
        .first()
    )


def read_batch(after_id: int, horizon: int, limit: int) -> Batch:
    """Candidates among the history rows after ``after_id`` (up to ``horizon``, at most ``limit`` rows).

    The batch stops before the first candidate whose listing the search index
    has not caught up with (``search_dirty``): saved searches are evaluated on
    the index, so that row is read again by a later scan instead of being
    judged on a stale row.
    """
    rows = list(
        PropertyHistory.select()
        .where((PropertyHistory.id > after_id) & (PropertyHistory.id <= horizon))
        .order_by(PropertyHistory.id)
        .limit(limit)
    )
    found = [(row, candidate_of(row)) for row in rows]
    ids = list({c.property_id for _, c in found if c is not None})
    dirty = set()
    if ids:
        dirty = {
            str(pid)
            for (pid,) in db.execute_sql(
                "SELECT property_id FROM search_dirty WHERE property_id = ANY(%s::uuid[]) AND seq > indexed_seq", (ids,)
            ).fetchall()
        }
    candidates, last, consumed = [], after_id, 0
    for row, candidate in found:
        if candidate is not None and candidate.property_id in dirty:
            return Batch(consumed, last, _distinct(candidates), True, False)
        if candidate is not None:
            candidates.append(candidate)
        last, consumed = row.id, consumed + 1
    return Batch(consumed, last, _distinct(candidates), False, len(rows) == limit)


def _distinct(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per (listing, reason, price, status it came from): the earliest.

    The earliest drop to a price is told from the price before it.
    """
    seen, kept = set(), []
    for candidate in candidates:
        key = (candidate.property_id, candidate.reason, candidate.price, candidate.old_status)
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
    return kept


def listing_people(property_ids) -> dict[str, set[str]]:
    """Each listing's owner and agent: nobody is alerted about their own listing."""
    rows = Property.select(Property.id, Property.owner, Property.list_agent).where(Property.id.in_(list(property_ids)))
    return {str(row.id): {user_id for user_id, _ in row.people()} for row in rows}


def alerting_searches():
    """Saved searches with alerts on whose owner is not banned (oldest first)."""
    return (
        SavedSearch.select(SavedSearch)
        .join(User)
        .where(SavedSearch.alerts & User.banned_at.is_null())
        .order_by(SavedSearch.created_at, SavedSearch.id)
        .iterator()
    )


def matching_listings(filters: SearchFilters, sort: str, property_ids) -> dict[str, MatchedListing]:
    """The listings among ``property_ids`` that the search (``filters``) finds now, from the index."""
    search = ListingSearch(filters, sort)
    params = dict(search.params, alert_candidates=list(property_ids))
    rows = db.execute_sql(
        f"SELECT id, list_price, currency, address, city FROM {LIVE_TABLE} "  # noqa: S608 - constant table; ListingQuery.where is constant SQL with placeholders
        f"WHERE {search.where} AND id = ANY(%(alert_candidates)s::uuid[])",
        params,
    ).fetchall()
    return {str(row[0]): MatchedListing(str(row[0]), row[1], row[2], row[3], row[4]) for row in rows}


def record_alert(
    saved: SavedSearch, candidate: Candidate, listing: MatchedListing, *, silent: bool = False
) -> tuple[bool, Job | None]:
    """Record that ``saved`` was alerted about ``candidate``: ``(new, its fan-out job)``.

    Only the first record of (search, listing, reason, price) notifies; a
    ``silent`` record notifies nobody (another alert of the same run told it).
    """
    inserted = list(
        SavedSearchAlert.insert(
            saved_search=saved.id, property=candidate.property_id, reason=candidate.reason, price=candidate.price
        )
        .on_conflict_ignore()
        .returning(SavedSearchAlert.saved_search)
        .execute()
    )
    if not inserted or silent:
        return bool(inserted), None
    place = listing.address or listing.city
    if candidate.reason == "new":
        type_, title = "saved_search.new_match", f"New listing for “{saved.name}”"
        body, price, previous = f"{place}: {money(listing.list_price, listing.currency)}", listing.list_price, None
    else:
        type_, title = "saved_search.price_drop", f"Price drop for “{saved.name}”"
        price, previous = candidate.price, candidate.previous_price
        body = f"{place}: now {money(price, listing.currency)}, was {money(previous, listing.currency)}"
    job = notify(
        saved.user_id,
        type_,
        title=title,
        body=body,
        data={
            "saved_search_id": str(saved.id),
            "saved_search_name": saved.name,
            "property_id": candidate.property_id,
            "price": price,
            "previous_price": previous,
            "currency": listing.currency,
        },
        dedupe_key=f"saved_search:{saved.id}:{candidate.property_id}:{candidate.reason}:{candidate.price}",
    )
    if job is not None:
        (
            SavedSearchAlert.update(notification_id=job.input["notification_id"])
            .where(
                (SavedSearchAlert.saved_search == saved.id)
                & (SavedSearchAlert.property == candidate.property_id)
                & (SavedSearchAlert.reason == candidate.reason)
                & (SavedSearchAlert.price == candidate.price)
            )
            .execute()
        )
    return True, job


# Currencies whose minor unit is the unit itself (ISO 4217 exponent 0).
_WHOLE_UNITS = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)


def money(minor: int, currency: str) -> str:
    """``$425,000`` / ``425,000.50 EUR`` for a message (the data keeps exact minor units)."""
    if currency in _WHOLE_UNITS:
        amount = f"{minor:,}"
    else:
        units, cents = divmod(minor, 100)
        amount = f"{units:,}" + (f".{cents:02d}" if cents else "")
    return f"${amount}" if currency == "USD" else f"{amount} {currency}"


__all__ = [
    "ALERT_REASONS",
    "LIST_PARAMS",
    "MAX_PER_USER",
    "Batch",
    "Candidate",
    "LimitReached",
    "MatchedListing",
    "SavedSearch",
    "SavedSearchAlert",
    "SavedSearchState",
    "add_saved_search",
    "alerting_searches",
    "candidate_of",
    "history_horizon",
    "listing_people",
    "lock_state",
    "matching_listings",
    "money",
    "own_saved_search",
    "read_batch",
    "record_alert",
    "saved_search_view",
    "search_url",
    "stored_query",
]
