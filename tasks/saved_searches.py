"""Saved-search alerts: new listings and price drops matching a user's saved search.

``scan_alerts`` (beat, every two minutes) reads the listings' price and status
history past its watermark, batch by batch, and for each saved search with
alerts on evaluates the search on that batch's candidates only
(``models.saved_searches``). Each alert is recorded once and creates one
notification (``saved_search.new_match`` or ``saved_search.price_drop``); how
and when it reaches the user (instantly, in the daily digest, after quiet
hours) is the fan-out's decision (``tasks.notifications``).

One scan runs at a time: a run holds the ``saved_search_state`` row, and a run
that finds it held returns at once. The alerts of a batch and the watermark
past it commit together, so a crash repeats a batch at worst, and repeating
one changes nothing (an alert is recorded once).
"""

from __future__ import annotations

import logging

from models.base import utcnow
from models.db import connection, db
from models.saved_searches import (
    Batch,
    SavedSearch,
    SavedSearchState,
    alerting_searches,
    history_horizon,
    listing_people,
    lock_state,
    matching_listings,
    read_batch,
    record_alert,
)
from models.search import InvalidSearch, SearchFilters, parse_query
from tasks.app import app

log = logging.getLogger("hearth.saved_searches")
HISTORY_BATCH = 5_000
# A run stops after this many batches; the next run (two minutes later) goes on from there.
MAX_BATCHES = 20


@app.task(
    name="tasks.saved_searches.scan_alerts", acks_late=True, ignore_result=True, soft_time_limit=100, time_limit=110
)
def scan_alerts() -> dict:
    """Alert saved searches about the history since the last scan; returns what it did.

    ``busy``: another scan holds the state (or listing writes held the history
    too long), and this one did nothing.
    """
    totals = {
        "busy": False,
        "batches": 0,
        "history_rows": 0,
        "candidates": 0,
        "searches_evaluated": 0,
        "alerts": 0,
        "notifications": 0,
        "waiting_for_index": False,
        "last_history_id": None,
    }
    with connection():
        horizon = history_horizon()
        if horizon is None:
            totals["busy"] = True
            return totals
        for _ in range(MAX_BATCHES):
            counts, _ = _scan_batch(horizon)  # its notification jobs were submitted when it committed
            if counts is None:
                totals["busy"] = totals["batches"] == 0
                break
            totals["batches"] += 1
            for name in ("history_rows", "candidates", "searches_evaluated", "alerts", "notifications"):
                totals[name] += counts[name]
            totals["waiting_for_index"] = counts["waiting_for_index"]
            totals["last_history_id"] = counts["last_history_id"]
            if not counts["more"]:
                break
    if totals["alerts"]:
        log.info("saved-search alerts", extra={k: v for k, v in totals.items() if k != "busy"})
    return totals


def _scan_batch(horizon: int) -> tuple[dict | None, list]:
    """One batch in one transaction: ``(counts, the notification jobs it created)``; None counts when busy."""
    with db.atomic():
        state = lock_state()
        if state is None:
            return None, []
        batch = read_batch(state.last_history_id, horizon, HISTORY_BATCH)
        counts, jobs = _alert(batch) if batch.candidates else (_counts(), [])
        SavedSearchState.update(last_history_id=batch.last_history_id, last_run_at=utcnow()).where(
            SavedSearchState.id == True  # noqa: E712 - a peewee expression (SQL `id = true`), not a Python test
        ).execute()
    counts.update(
        history_rows=batch.rows,
        candidates=len(batch.candidates),
        last_history_id=batch.last_history_id,
        waiting_for_index=batch.waiting_for_index,
        more=batch.full,
    )
    return counts, jobs


def _counts() -> dict:
    return {"searches_evaluated": 0, "alerts": 0, "notifications": 0}


def _alert(batch: Batch) -> tuple[dict, list]:
    counts, jobs = _counts(), []
    people = listing_people({c.property_id for c in batch.candidates})
    for saved in alerting_searches():
        user = str(saved.user_id)
        # Only what happened since the search was saved, and never the user's own listings.
        candidates = [
            c for c in batch.candidates if c.at >= saved.created_at and user not in people.get(c.property_id, ())
        ]
        filters = _filters(saved) if candidates else None
        if filters is None:
            continue
        candidates = [c for c in candidates if c.is_news_to(filters[0].statuses)]
        if not candidates:
            continue
        counts["searches_evaluated"] += 1
        found = matching_listings(*filters, {c.property_id for c in candidates})
        told = set()  # listings this run alerted as new to this search: a drop of theirs adds nothing
        for candidate in sorted(candidates, key=lambda c: c.reason != "new"):
            listing = found.get(candidate.property_id)
            if listing is None:
                continue
            if candidate.reason == "price_drop" and listing.list_price != candidate.price:
                continue  # the price moved on since (up, or down again: that drop is its own candidate)
            recorded, job = record_alert(saved, candidate, listing, silent=candidate.property_id in told)
            if recorded:
                counts["alerts"] += 1
                if candidate.reason == "new":
                    told.add(candidate.property_id)
            if job is not None:
                counts["notifications"] += 1
                jobs.append(job)
    return counts, jobs


def _filters(saved: SavedSearch) -> tuple[SearchFilters, str] | None:
    """The saved query as search filters; None (and a warning) if today's rules refuse it."""
    try:
        return parse_query(saved.query)
    except InvalidSearch:
        log.warning("a saved search's query is no longer valid; skipped", extra={"saved_search_id": str(saved.id)})
        return None


__all__ = ["HISTORY_BATCH", "scan_alerts"]
