"""A chunk of listings is written set-wise; its outcomes and rows are those of writing them one at a time."""

from __future__ import annotations

import decimal
import logging
import uuid

import pytest

from models.accounts import User
from models.db import db
from models.imports.import_map import ImportMap
from models.imports.mapping import parse_mapping
from models.imports.report import ImportReportRow
from models.imports.steps import StepContext
from models.jobs import Job
from models.properties import Property, PropertyHistory
from models.search import queue as search_queue
from services.supabase_source import SupabaseSource
from tasks.imports import ImportRequest, execute
from tests.imports.supabase_app import create_app_schemas, insert

TABLE = "public.listings"
# ``title`` holds the source id of the listing's agent; statuses and kinds include values Hearth refuses.
MAPPING = """
version = 1

[tables."public.listings"]
target = "properties"
ignore = ["updated_at"]
constants = { currency = "USD", association_fee_frequency = "Monthly" }

[tables."public.listings".columns]
owner_id = { field = "owner", ref = "auth.users" }
title = { field = "list_agent", ref = "auth.users" }
description = "public_remarks"
price = { field = "list_price", transform = "money" }
sold_price = { field = "close_price", transform = "money" }
sold_on = { field = "close_date", transform = "date" }
status = { field = "standard_status", values = { for_sale = "Active", sold = "Closed", draft = "Incomplete", x = "X" } }
kind = { field = "property_type", values = { house = "Residential", boat = "Boat" } }
beds = { field = "bedrooms_total", transform = "int" }
baths = { field = "bathrooms_full", transform = "int" }
street = "street_name"
city = "city"
state = "state_or_province"
zip = "postal_code"
lat = { field = "latitude", transform = "float" }
lng = { field = "longitude", transform = "float" }
details = { field = "features", json = "amenities" }
hoa_fee = { field = "association_fee", transform = "money" }
created_at = { field = "created_at", transform = "timestamp" }
photos = { field = "photos", transform = "storage_url" }
"""


@pytest.fixture
def listings_source(source, source_users):
    create_app_schemas(source)
    execute(ImportRequest(only=["auth.users"]), source_url=source.url)
    User.update(role="agent").where(User.id == source_users["bcrypt_2y"].id).execute()
    return source


def add_listing(source, seller: str, **values) -> str:
    row = {
        "id": str(uuid.uuid4()),
        "owner_id": seller,
        "title": None,
        "description": "Casa 🏡 — 海景 — بيت",
        "price": decimal.Decimal("250000.50"),
        "status": "for_sale",
        "kind": "house",
        "beds": 3,
        "baths": 2,
        "street": "Rua Augusta",
        "city": "São Paulo",
        "state": "SP",
        "zip": "01305-000",
        "lat": -23.55,
        "lng": -46.65,
        "details": {"amenities": ["pool", 'garage \\ "two"\tcars']},
        "hoa_fee": "120.50",
    }
    row.update(values)
    insert(source, TABLE, **row)
    return row["id"]


def run(source):
    return execute(ImportRequest(mapping=MAPPING, only=[TABLE]), source_url=source.url)


def written() -> dict:
    """What the writes left, but their own clock (``modification_timestamp``, the history's ``at``)."""
    listings = {}
    for row in Property.select().dicts():
        del row["modification_timestamp"]
        listings[str(row.pop("id"))] = row
    history = sorted(
        (str(h.property_id), h.field, str(h.old_value), h.new_value, str(h.actor_id)) for h in PropertyHistory.select()
    )
    dirty = sorted(str(row[0]) for row in db.execute_sql("SELECT property_id FROM search_dirty").fetchall())
    return {"listings": listings, "history": history, "dirty": dirty, "jobs": reindexed_by_jobs()}


def reindexed_by_jobs() -> list[str]:
    """The listings a queued reindex job will index: a listing's own job, or one job for a chunk's new listings."""
    kinds = (search_queue.REINDEX_KIND, search_queue.REINDEX_BATCH_KIND)
    ids = []
    for job in Job.select().where(Job.kind.in_(kinds) & (Job.status == "queued")):
        ids += job.input["property_ids"] if job.kind == search_queue.REINDEX_BATCH_KIND else [job.input["property_id"]]
    return sorted(ids)


def both_ways(source):
    """The chunk's outcomes and writes applied row by row, then as a batch, each rolled back."""
    [step] = parse_mapping(MAPPING).steps()
    reader = SupabaseSource.connect(source.url)
    try:
        rows = list(step.rows(reader, None))
    finally:
        reader.close()
    states = ImportMap.states(step.name, [row.key for row in rows])
    pending = [
        (row, states[row.key].target_id if row.key in states else None)
        for row in rows
        if row.key not in states or states[row.key].checksum != row.checksum
    ]
    ctx = StepContext(
        run_id=str(uuid.uuid4()), options={}, resolve=ImportMap.resolve, resolve_many=ImportMap.resolve_many
    )
    results = []
    for batch in (False, True):
        with db.atomic() as savepoint:
            if batch:
                outcomes = step.apply_batch(pending, ctx)
            else:
                outcomes = []
                for row, previous_id in pending:
                    ctx.previous_id = previous_id
                    outcomes.append(step.apply(row, ctx))
            results.append(([row.key for row, _ in pending], outcomes, written()))
            savepoint.rollback()
    return results


def test_a_mixed_chunk_gives_the_outcomes_and_rows_of_the_row_by_row_path(listings_source, source_users):
    source = listings_source
    seller, agent = source_users["bcrypt_2a"].id, source_users["bcrypt_2y"].id
    unchanged = add_listing(source, seller)
    updated = add_listing(source, seller, status="draft", lat=None, lng=None)
    first = run(source)
    assert first.counts[TABLE]["inserted"] == 2
    source.execute(
        f"UPDATE {TABLE} SET price = 199000, status = 'for_sale', lat = 1, lng = 2 WHERE id = %s",  # noqa: S608
        (updated,),
    )
    keys = {
        "new": add_listing(source, seller, title=agent),
        "new_draft": add_listing(source, seller, status="draft", lat=None, lng=None, details=None, hoa_fee=None),
        "new_sold": add_listing(source, seller, status="sold", sold_price="240000", sold_on="2025-03-01"),
        "bad_status": add_listing(source, seller, status="x"),
        "bad_kind": add_listing(source, seller, kind="boat"),
        "half_coordinates": add_listing(source, seller, lng=None),
        "sold_without_price": add_listing(source, seller, status="sold"),
        "not_an_agent": add_listing(source, seller, title=seller),
        "ghost_owner": add_listing(source, str(uuid.uuid4())),
        "ghost_agent": add_listing(source, seller, title=str(uuid.uuid4())),
        "deleted_owner": add_listing(source, source_users["deleted"].id),
        "bad_money": add_listing(source, seller, hoa_fee="about 100"),
        "no_photos": add_listing(source, seller, photos=[]),
        "photo_not_imported": add_listing(source, seller, photos=[f"listing-photos/{seller}/gone.png"]),
    }

    (row_keys, one_by_one, rows_one), (batch_keys, batch, rows_batch) = both_ways(source)
    assert row_keys == batch_keys and unchanged not in row_keys and updated in row_keys
    assert batch == one_by_one
    for rows in (rows_one, rows_batch):  # the updated listing went on the market when its update ran
        assert rows["listings"][updated].pop("on_market_timestamp") is not None
    assert rows_batch == rows_one
    assert len(rows_batch["listings"]) == 7 and set(rows_batch["jobs"]) == set(rows_batch["listings"])

    imported = run(source)
    counts = imported.counts[TABLE]
    assert counts["read"] == 16
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (5, 1, 1)
    assert counts["skipped"] == {"listing-rule": 5, "missing-reference": 3, "invalid-value": 1}
    report = {row["source_key"]: (row["reason"], row["detail"]) for row in ImportReportRow.of_run(imported.id)}
    assert report[keys["bad_status"]] == ("listing-rule", "standard_status 'X' is not a RESO status")
    assert report[keys["bad_kind"]] == ("listing-rule", "property_type 'Boat' is not a RESO property type")
    assert report[keys["not_an_agent"]][1] == "list_agent_id: must be the id of an agent"
    assert "close_price: is required for a Closed listing" in report[keys["sold_without_price"]][1]
    assert "latitude and longitude go together" in report[keys["half_coordinates"]][1]
    assert report[keys["ghost_agent"]][0] == report[keys["deleted_owner"]][0] == "missing-reference"
    assert report[keys["bad_money"]][0] == "invalid-value"
    assert report[keys["photo_not_imported"]] == (
        "missing-file",
        f"column photos: listing-photos/{seller}/gone.png did not come across",
    )
    new = Property.get_by_id(keys["new"])
    assert (str(new.list_agent_id), new.features) == (agent, ["pool", 'garage \\ "two"\tcars'])
    assert new.public_remarks == "Casa 🏡 — 海景 — بيت" and new.on_market_timestamp is not None
    assert Property.get_by_id(keys["new_draft"]).features == []
    assert Property.get_by_id(updated).list_price == 19900000
    batch_jobs = Job.select().where(Job.kind == search_queue.REINDEX_BATCH_KIND)
    [batch_job] = [job for job in batch_jobs if keys["new"] in job.input["property_ids"]]  # the chunk's new listings
    assert batch_job.input["property_ids"] == sorted(
        key for name, key in keys.items() if name in ("new", "new_draft", "new_sold", "no_photos", "photo_not_imported")
    )
    # The first run's two listings are in its own batch job; the update has a job of its own.
    assert set(reindexed_by_jobs()) == {*batch_job.input["property_ids"], unchanged, updated}
    for key in (keys["new"], keys["new_draft"], keys["new_sold"]):
        assert search_queue.pending_seq(key) > 0
        # The batch job holds no listing's key: a change now has a job of its own, which the next coalesces into.
        assert search_queue.mark_dirty(key) is not None and search_queue.mark_dirty(key) is None

    again = run(source)
    assert again.counts[TABLE]["unchanged"] == 16  # refused rows too: they are reported again only once changed
    assert Property.select().count() == 7


def test_a_row_the_database_refuses_inside_the_bulk_write_is_reported_and_the_chunk_comes_across(
    listings_source, source_users, caplog
):
    source = listings_source
    seller = source_users["bcrypt_2a"].id
    good = [add_listing(source, seller) for _ in range(3)]
    too_many_beds = add_listing(source, seller, beds=500)  # an int, refused by the table's CHECK
    caplog.set_level(logging.INFO, logger="hearth.imports")
    imported = run(source)
    counts = imported.counts[TABLE]
    assert counts["inserted"] == 3 and counts["skipped"] == {"constraint": 1} and counts["failed"] == {}
    assert "failed as a batch" in caplog.text
    assert sorted(str(p.id) for p in Property.select()) == sorted(good)
    [row] = list(ImportReportRow.of_run(imported.id))
    assert (row["source_key"], row["reason"]) == (too_many_beds, "constraint")
    assert search_queue.pending_seq(too_many_beds) == 0
    assert all(search_queue.pending_seq(key) > 0 for key in good)


def test_marking_many_listings_makes_one_reindex_job_each_and_none_while_one_is_queued(listings_source, source_users):
    seller = source_users["bcrypt_2a"].id
    keys = [add_listing(listings_source, seller) for _ in range(2)]
    run(listings_source)
    assert search_queue.mark_dirty(keys[0]) is not None  # imported with one job for the chunk: now one of its own
    marked_before = search_queue.pending_seq(keys[0])
    fresh = Property.create(
        owner=seller, property_type="Residential", list_price=1, original_list_price=1, city="Austin"
    )
    jobs = search_queue.mark_dirty_many([fresh.id, keys[0], fresh.id])
    assert [job.input for job in jobs] == [{"property_id": str(fresh.id)}]  # keys[0]'s job is still queued
    assert search_queue.pending_seq(keys[0]) > marked_before
    assert search_queue.mark_dirty_many([]) == []


def test_a_value_copy_would_read_otherwise_than_an_insert_sends_the_chunk_row_by_row(
    listings_source, source_users, caplog
):
    source = listings_source
    seller = source_users["bcrypt_2a"].id
    numbers = add_listing(source, seller, details={"amenities": [1, 2.5]})  # not text: COPY is not used for it
    fine = add_listing(source, seller)
    caplog.set_level(logging.INFO, logger="hearth.imports")
    imported = run(source)
    assert "failed as a batch" in caplog.text
    assert imported.counts[TABLE]["inserted"] == 2 and not list(ImportReportRow.of_run(imported.id))
    assert Property.get_by_id(numbers).features == ["1", "2.5"]  # as an INSERT of the row has them
    assert Property.get_by_id(fine).features == ["pool", 'garage \\ "two"\tcars']
