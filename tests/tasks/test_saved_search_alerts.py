"""The saved-search alert scan: new listings and price drops, each told once, never lost to index lag.

Listings change through the model as the listings API changes them (history
rows, a dirty mark and its reindex job); the reindex jobs run when the test
says so, which is how index lag is played out.
"""

from __future__ import annotations

import psycopg2

from models.db import connect_args
from models.jobs import Job
from models.notifications import Notification
from models.properties import Property, PropertyHistory
from models.saved_searches import SavedSearchAlert, SavedSearchState, add_saved_search
from models.search.queue import mark_dirty
from tasks.saved_searches import scan_alerts
from tests.factories import make_user
from tests.search_listings import make_owner

AUSTIN_3_BEDS = {"city": "Austin", "min_beds": 3}


def _submit(queue, job) -> None:
    if job is not None:
        queue.submit(job)


def list_home(queue, owner, *, status="Active", agent=None, **fields) -> Property:
    values = {
        "property_type": "Residential",
        "list_price": 50_000_000,
        "city": "Austin",
        "bedrooms_total": 3,
        "street_number": "12",
        "street_name": "Main Street",
        "state_or_province": "TX",
        "postal_code": "78701",
        "standard_status": status,
    }
    if agent is not None:
        values["list_agent_id"] = agent.id
    values.update(fields)
    listing = Property.create_listing(owner_id=owner.id, actor_id=owner.id, fields=values)
    _submit(queue, mark_dirty(listing.id))
    return listing


def change(queue, listing: Property, **changes) -> None:
    listing.apply_changes(changes, actor_id=listing.owner_id)
    _submit(queue, mark_dirty(listing.id))


def reindex(queue) -> None:
    assert all(Job.get_by_id(job_id).kind == "search.reindex_property" for job_id in queue.submitted)
    queue.run_pending()


def scan(queue) -> dict:
    """One scan; the fan-out jobs it submitted (one per notification) are taken off the queue."""
    before = len(queue.submitted)
    result = scan_alerts()
    fan_outs = queue.submitted[before:]
    del queue.submitted[before:]
    assert [Job.get_by_id(job_id).kind for job_id in fan_outs] == ["notifications.fan_out"] * len(fan_outs)
    assert len(fan_outs) == result["notifications"]
    return result


def told(user) -> list[tuple]:
    """What ``user`` was told: (type, listing, price, previous price, saved search name), oldest first."""
    rows = Notification.select().where(Notification.user == user.id).order_by(Notification.created_at, Notification.id)
    return [
        (
            n.type.removeprefix("saved_search."),
            n.data["property_id"],
            n.data["price"],
            n.data["previous_price"],
            n.data["saved_search_name"],
        )
        for n in rows
    ]


def save(user, query=None, *, name="Austin family homes", alerts=True):
    return add_saved_search(user.id, name=name, query=AUSTIN_3_BEDS if query is None else query, alerts=alerts)


def test_a_new_listing_is_alerted_exactly_once(runtime, queue):
    buyer, seller = make_user(), make_owner()
    saved = save(buyer)
    save(buyer, {"property_type": ["Residential"], "max_price": 46_000_000}, name="Under 460k")
    home = list_home(queue, seller, street_number="7", list_price=45_000_000)
    list_home(queue, seller, city="Dallas")  # another city
    list_home(queue, seller, bedrooms_total=2)  # too small
    reindex(queue)

    first = scan(queue)
    assert (first["alerts"], first["notifications"], first["waiting_for_index"]) == (2, 2, False)
    assert told(buyer) == [
        ("new_match", str(home.id), 45_000_000, None, "Austin family homes"),
        ("new_match", str(home.id), 45_000_000, None, "Under 460k"),
    ]
    note = Notification.get((Notification.user == buyer.id) & (Notification.data["saved_search_id"] == str(saved.id)))
    assert note.title == "New listing for “Austin family homes”"
    assert note.body == "7 Main Street, Austin, TX 78701: $450,000"
    assert note.data["currency"] == "USD"
    assert SavedSearchAlert.get(SavedSearchAlert.saved_search == saved.id).notification_id == str(note.id)

    assert scan(queue)["notifications"] == 0  # nothing new
    # Changes that are not news: a price rise, under contract and back, other fields.
    change(queue, home, list_price=47_000_000)
    change(queue, home, standard_status="ActiveUnderContract")
    change(queue, home, standard_status="Active")
    change(queue, home, public_remarks="Now with a new roof.")
    reindex(queue)
    again = scan(queue)
    assert again["history_rows"] == 3 and again["notifications"] == 0
    assert len(told(buyer)) == 2
    assert (
        SavedSearchState.get().last_history_id
        == PropertyHistory.select().order_by(PropertyHistory.id.desc()).first().id
    )


def test_a_listing_back_on_the_market_or_out_of_draft_is_news(runtime, queue):
    buyer, seller = make_user(), make_owner()
    returning = list_home(queue, seller, street_number="1")
    change(queue, returning, standard_status="Withdrawn")
    draft = list_home(queue, seller, status="Incomplete", street_number="2")
    soon = list_home(queue, seller, status="ComingSoon", street_number="3")
    reindex(queue)
    save(buyer)  # after all that: only what happens from now on is news
    active_only = save(buyer, dict(AUSTIN_3_BEDS, status=["Active"]), name="Active only")
    assert scan(queue)["notifications"] == 0

    change(queue, returning, standard_status="Active")
    change(queue, draft, standard_status="Active")
    reindex(queue)
    assert scan(queue)["notifications"] == 4
    assert {(kind, listing, name) for kind, listing, _, _, name in told(buyer)} == {
        ("new_match", str(returning.id), "Austin family homes"),
        ("new_match", str(draft.id), "Austin family homes"),
        ("new_match", str(returning.id), "Active only"),
        ("new_match", str(draft.id), "Active only"),
    }

    # Coming soon, then active: news to a search of Active listings only, and told once to the others.
    later = list_home(queue, seller, status="ComingSoon", street_number="4")
    reindex(queue)
    assert scan(queue)["notifications"] == 1  # "Austin family homes" covers ComingSoon
    change(queue, later, standard_status="Active")
    change(queue, soon, standard_status="Active")  # coming soon since before the searches were saved
    reindex(queue)
    assert scan(queue)["notifications"] == 2  # to "Active only": coming soon is not news to the other
    assert [(listing, name) for _, listing, _, _, name in told(buyer)[-3:]] == [
        (str(later.id), "Austin family homes"),
        (str(later.id), "Active only"),
        (str(soon.id), "Active only"),
    ]
    assert SavedSearchAlert.select().where(SavedSearchAlert.saved_search == active_only.id).count() == 4


def test_a_price_drop_is_alerted_once_per_lower_price(runtime, queue):
    buyer, seller = make_user(), make_owner()
    home = list_home(queue, seller, list_price=50_000_000)
    reindex(queue)
    save(buyer)  # the listing was already on the market: only its drops are news
    assert scan(queue)["notifications"] == 0

    change(queue, home, list_price=45_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    assert told(buyer) == [("price_drop", str(home.id), 45_000_000, 50_000_000, "Austin family homes")]
    note = Notification.get(Notification.user == buyer.id)
    assert (note.title, note.body) == (
        "Price drop for “Austin family homes”",
        "12 Main Street, Austin, TX 78701: now $450,000, was $500,000",
    )
    assert scan(queue)["notifications"] == 0

    # Back up and down to the same price: already told.
    change(queue, home, list_price=48_000_000)
    change(queue, home, list_price=45_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 0
    # A new lower price is news again; two drops before a scan are one alert, at the current price.
    change(queue, home, list_price=42_000_000)
    change(queue, home, list_price=40_000_050)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    assert told(buyer)[-1] == ("price_drop", str(home.id), 40_000_050, 42_000_000, "Austin family homes")
    assert (
        Notification.select()
        .where(Notification.user == buyer.id)
        .order_by(Notification.created_at.desc())
        .first()
        .body.endswith("now $400,000.50, was $420,000")
    )
    # Dropped and raised again before the scan: the listing is not at the dropped price any more.
    change(queue, home, list_price=39_000_000)
    change(queue, home, list_price=41_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 0
    assert len(told(buyer)) == 2


def test_a_new_listing_whose_price_drops_before_the_scan_is_told_once(runtime, queue):
    buyer, seller = make_user(), make_owner()
    save(buyer)
    home = list_home(queue, seller, list_price=50_000_000)
    change(queue, home, list_price=46_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    assert told(buyer) == [("new_match", str(home.id), 46_000_000, None, "Austin family homes")]
    change(queue, home, list_price=48_000_000)
    change(queue, home, list_price=46_000_000)  # the drop the news already carried
    reindex(queue)
    assert scan(queue)["notifications"] == 0


def test_listings_that_do_not_match_and_searches_without_alerts_give_nothing(runtime, queue):
    buyer, banned, seller = make_user(), make_user(banned=True), make_owner()
    quiet = save(buyer, alerts=False)
    save(buyer, {"city": "Dallas"}, name="Dallas")
    save(buyer, {"q": "garden", "min_price": 10_000_000}, name="Garden")
    save(banned)
    home = list_home(queue, seller, public_remarks="A sunny kitchen.")
    list_home(queue, seller, status="Incomplete")  # a draft is not on the market
    reindex(queue)
    change(queue, home, list_price=40_000_000)
    reindex(queue)
    result = scan(queue)
    assert (result["candidates"], result["alerts"], result["notifications"]) == (2, 0, 0)
    assert Notification.select().count() == 0 and SavedSearchAlert.select().count() == 0
    assert result["last_history_id"] == SavedSearchState.get().last_history_id  # read, and done with

    # Alerts switched on later: from then on.
    quiet.alerts = True
    quiet.save()
    change(queue, home, list_price=39_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    assert told(buyer) == [("price_drop", str(home.id), 39_000_000, 40_000_000, "Austin family homes")]


def test_a_saved_query_todays_rules_refuse_is_skipped_and_the_others_still_alerted(runtime, queue, caplog):
    """Stored queries are re-checked by the rules of a search: a type, a limit or a rule between parameters."""
    buyer, seller = make_user(), make_owner()
    refused = [
        save(buyer, query, name=f"Refused {n}")
        for n, query in enumerate(
            [
                {"city": "Austin", "min_price": 500, "max_price": 100},  # a range out of order
                {"city": "Austin", "status": ["Withdrawn"]},  # not a listed status
                {"city": "Austin", "radius_km": 5},  # a radius without a centre
                {"city": "Austin", "bedrooms": 3},  # no such parameter
            ]
        )
    ]
    save(buyer)
    home = list_home(queue, seller)
    reindex(queue)
    with caplog.at_level("WARNING", logger="hearth.saved_searches"):
        result = scan(queue)
    assert (result["searches_evaluated"], result["notifications"]) == (1, 1)
    assert told(buyer) == [("new_match", str(home.id), 50_000_000, None, "Austin family homes")]
    skipped = [r.saved_search_id for r in caplog.records if "no longer valid" in r.getMessage()]
    assert sorted(skipped) == sorted(str(saved.id) for saved in refused)


def test_a_listing_not_yet_reindexed_is_alerted_on_the_next_run(runtime, queue):
    buyer, seller = make_user(), make_owner()
    save(buyer)
    ready = list_home(queue, seller, street_number="1")
    reindex(queue)
    lagging = list_home(queue, seller, street_number="2")  # its reindex job has not run yet
    stop = PropertyHistory.select().where(PropertyHistory.property == lagging.id).order_by(PropertyHistory.id).first()
    list_home(queue, make_owner(), city="Dallas")  # later rows wait behind it

    first = scan(queue)
    assert first["waiting_for_index"] is True
    assert told(buyer) == [("new_match", str(ready.id), 50_000_000, None, "Austin family homes")]
    assert SavedSearchState.get().last_history_id < stop.id  # the lagging listing will be read again
    assert scan(queue)["notifications"] == 0  # still waiting: nothing lost, nothing repeated

    reindex(queue)
    second = scan(queue)
    assert (second["notifications"], second["waiting_for_index"]) == (1, False)
    assert [listing for _, listing, _, _, _ in told(buyer)] == [str(ready.id), str(lagging.id)]


def test_nobody_is_alerted_about_their_own_listing(runtime, queue):
    seller, agent, buyer = make_owner(), make_user(role="agent"), make_user()
    for person in (seller, agent, buyer):
        save(person)
    home = list_home(queue, seller, agent=agent)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    change(queue, home, list_price=40_000_000)
    reindex(queue)
    assert scan(queue)["notifications"] == 1
    assert told(seller) == [] and told(agent) == []
    assert [kind for kind, *_ in told(buyer)] == ["new_match", "price_drop"]


def test_a_second_scan_while_one_runs_returns_at_once(runtime, queue, database):
    buyer = make_user()
    save(buyer)
    list_home(queue, make_owner())
    reindex(queue)
    before = SavedSearchState.get().last_history_id
    running = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in connect_args(database).items()})
    try:
        running.cursor().execute("SELECT 1 FROM saved_search_state FOR UPDATE")  # what a running scan holds
        result = scan(queue)
        assert result["busy"] is True and result["batches"] == 0
        assert told(buyer) == [] and SavedSearchState.get().last_history_id == before
    finally:
        running.rollback()
        running.close()
    assert scan(queue)["notifications"] == 1


def test_the_scan_never_moves_past_history_still_being_written(runtime, queue, database):
    """A listing change that drew its history id but has not committed yet holds the scan back."""
    buyer = make_user()
    save(buyer)
    before = SavedSearchState.get().last_history_id
    writer = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in connect_args(database).items()})
    try:
        open_change = writer.cursor()
        open_change.execute("LOCK TABLE property_history IN ROW EXCLUSIVE MODE")  # what its INSERT holds...
        open_change.execute("SELECT nextval(pg_get_serial_sequence('property_history', 'id'))")  # ...and its id
        home = list_home(queue, make_owner())  # committed-looking rows after it
        reindex(queue)
        result = scan(queue)
        assert result["busy"] is True
        assert SavedSearchState.get().last_history_id == before and told(buyer) == []
    finally:
        writer.rollback()
        writer.close()
    assert scan(queue)["notifications"] == 1
    assert told(buyer) == [("new_match", str(home.id), 50_000_000, None, "Austin family homes")]
