"""The listing's rules in the model: transitions, history, derived prices, and race-safe version bumps."""

from __future__ import annotations

import datetime
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.db import db
from models.listing_rules import (
    INITIAL_STATUSES,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    InvalidListing,
    StaleListing,
    can_transition,
)
from models.properties import Property, PropertyHistory
from tests.factories import make_user

CLOSE = {"close_price": 500_000_00, "close_date": datetime.date(2026, 10, 1)}
BASE = {"property_type": "Residential", "list_price": 500_000_00, "city": "Denver"}


@pytest.fixture
def owner(database):
    return make_user(role="seller")


def _reachable(start: str) -> set[str]:
    seen, frontier = {start}, [start]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def _status_rows(listing) -> list[tuple]:
    return [
        (r.old_value, r.new_value)
        for r in PropertyHistory.select()
        .where((PropertyHistory.property == listing.id) & (PropertyHistory.field == "standard_status"))
        .order_by(PropertyHistory.id)
    ]


def _at(owner, status: str) -> Property:
    listing = Property.create_listing(owner_id=owner.id, actor_id=owner.id, fields=dict(BASE))
    extra = CLOSE if status == "Closed" else {}
    Property.update(standard_status=status, **extra).where(Property.id == listing.id).execute()
    return Property.get_by_id(listing.id)


def test_the_table_is_closed_and_everything_is_reachable_from_a_draft():
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())
    assert _reachable("Incomplete") == set(STATUSES)
    assert {s for s, targets in TRANSITIONS.items() if not targets} == {"Closed", "Canceled"}


@pytest.mark.parametrize(
    ("current", "new"), [pair for pair in itertools.product(STATUSES, STATUSES) if pair[0] != pair[1]]
)
def test_each_pair_of_statuses_moves_only_when_the_table_says_so(owner, current, new):
    listing = _at(owner, current)
    before = _status_rows(listing)
    closing = CLOSE if new == "Closed" else {}
    if can_transition(current, new):
        changed = listing.change_status(new, actor_id=owner.id, **closing)
        assert changed["standard_status"] == (current, new)
        assert listing.standard_status == new and listing.version == 2
        assert _status_rows(listing) == [*before, (current, new)]
    else:
        with pytest.raises(IllegalTransition):
            listing.change_status(new, actor_id=owner.id, **closing)
        fresh = Property.get_by_id(listing.id)
        assert (fresh.standard_status, fresh.version) == (current, 1)
        assert _status_rows(listing) == before


# Actions: ("status", target) or ("price", new price in cents).
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.sampled_from(STATUSES)),
        st.tuples(st.just("price"), st.integers(min_value=0, max_value=10**10)),
    ),
    max_size=15,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.sampled_from(INITIAL_STATUSES), actions=ACTIONS)
def test_no_sequence_of_changes_breaks_the_lifecycle(owner, initial, actions):
    with db.atomic() as savepoint:
        listing = Property.create_listing(
            owner_id=owner.id, actor_id=owner.id, fields=dict(BASE, standard_status=initial)
        )
        reachable = _reachable("Incomplete")
        expected_status_rows = [(None, initial)]
        prices = [listing.list_price]
        for kind, value in actions:
            version = listing.version
            if kind == "status":
                old = listing.standard_status
                try:
                    changed = listing.change_status(value, actor_id=owner.id, **(CLOSE if value == "Closed" else {}))
                except IllegalTransition:
                    assert not can_transition(old, value)
                    assert listing.standard_status == old and listing.version == version
                    continue
                if old == value:
                    assert changed == {} and listing.version == version
                    continue
                assert can_transition(old, value) and listing.version == version + 1
                expected_status_rows.append((old, value))
                if value == "Active":
                    assert listing.on_market_timestamp is not None
            else:
                old_price = listing.list_price
                listing.apply_changes({"list_price": value}, actor_id=owner.id)
                if value != old_price:
                    assert listing.previous_list_price == old_price and listing.version == version + 1
                    prices.append(value)
                else:
                    assert listing.version == version
            assert listing.standard_status in reachable
        # One history row per change, forming a legal path; the row matches the listing.
        assert _status_rows(listing) == expected_status_rows
        path = [new for _, new in expected_status_rows]
        assert all(can_transition(a, b) for a, b in itertools.pairwise(path))
        fresh = Property.get_by_id(listing.id)
        assert fresh.standard_status == path[-1] and fresh.list_price == prices[-1]
        assert fresh.original_list_price == prices[0]
        price_rows = (
            PropertyHistory.select()
            .where((PropertyHistory.property == listing.id) & (PropertyHistory.field == "list_price"))
            .count()
        )
        assert price_rows == len(prices)
        assert fresh.version == 1 + (len(expected_status_rows) - 1) + (len(prices) - 1)
        savepoint.rollback()


def test_two_writers_at_one_version_one_wins_the_other_is_stale(owner):
    first = Property.create_listing(owner_id=owner.id, actor_id=owner.id, fields=dict(BASE))
    second = Property.get_by_id(first.id)
    first.apply_changes({"list_price": 490_000_00}, actor_id=owner.id)
    with pytest.raises(StaleListing):
        second.apply_changes({"list_price": 1_00}, actor_id=owner.id)
    with pytest.raises(StaleListing):  # a caller naming an old version is refused before any work
        first.apply_changes({"list_price": 1_00}, actor_id=owner.id, expected_version=1)
    fresh = Property.get_by_id(first.id)
    assert (fresh.list_price, fresh.version, fresh.previous_list_price) == (490_000_00, 2, 500_000_00)
    prices = [
        r.new_value
        for r in PropertyHistory.select().where(
            (PropertyHistory.property == first.id) & (PropertyHistory.field == "list_price")
        )
    ]
    assert sorted(prices) == ["49000000", "50000000"]


def test_rules_between_fields_name_each_field(owner):
    with pytest.raises(InvalidListing) as caught:
        Property.create_listing(
            owner_id=owner.id,
            actor_id=owner.id,
            fields=dict(BASE, standard_status="Pending", latitude=39.7, association_fee=100_00, list_agent_id=owner.id),
        )
    assert {name for name, _ in caught.value.errors} == {
        "standard_status",
        "longitude",
        "association_fee_frequency",
        "list_agent_id",
    }
    assert Property.select().where(Property.owner == owner.id).count() == 0


def test_take_off_market_cancels_drafts_and_withdraws_the_rest(owner):
    draft, active = _at(owner, "Incomplete"), _at(owner, "Active")
    assert draft.take_off_market(actor_id=owner.id)["standard_status"] == ("Incomplete", "Canceled")
    assert active.take_off_market(actor_id=owner.id)["standard_status"] == ("Active", "Withdrawn")
    assert active.take_off_market(actor_id=owner.id) == {}
    with pytest.raises(IllegalTransition):
        _at(owner, "Pending").take_off_market(actor_id=owner.id)


def test_a_move_through_statuses_checks_each_move_and_writes_one_version_with_a_history_row_each(owner):
    listing = _at(owner, "ActiveUnderContract")
    before = _status_rows(listing)
    changed = listing.change_status("Closed", actor_id=owner.id, via=("Pending",), **CLOSE)
    assert changed["standard_status"] == ("ActiveUnderContract", "Closed")
    fresh = Property.get_by_id(listing.id)
    assert (fresh.standard_status, fresh.version, fresh.close_price) == ("Closed", 2, CLOSE["close_price"])
    assert _status_rows(listing) == [*before, ("ActiveUnderContract", "Pending"), ("Pending", "Closed")]
    # A move the table refuses anywhere on the way changes nothing.
    active = _at(owner, "Active")
    before = _status_rows(active)
    with pytest.raises(IllegalTransition) as refused:
        active.change_status("Closed", actor_id=owner.id, via=("Withdrawn",), **CLOSE)
    assert (refused.value.current, refused.value.new) == ("Withdrawn", "Closed")
    assert (Property.get_by_id(active.id).standard_status, Property.get_by_id(active.id).version) == ("Active", 1)
    assert _status_rows(active) == before
