"""``/v1/properties``: create, read, change, withdraw; who sees and changes what; ETags; history."""

from __future__ import annotations

import functools
import uuid

import pytest

from models.accounts import User
from models.audit import AuditEntry
from models.base import utcnow
from models.jobs import Job
from models.passwords import hash_password
from models.properties import Property, PropertyHistory
from tests.api.conftest import assert_problem
from tests.factories import PASSWORD

HOUSE = {
    "property_type": "Residential",
    "property_sub_type": "SingleFamilyResidence",
    "list_price": 450_000_00,
    "currency": "USD",
    "city": "Austin",
    "state_or_province": "TX",
    "postal_code": "78704",
    "street_number": "1200",
    "street_name": "South Lamar Boulevard",
    "bedrooms_total": 3,
    "bathrooms_full": 2,
    "bathrooms_half": 1,
    "living_area": 1850,
    "lot_size_square_feet": 6500,
    "year_built": 1998,
    "latitude": 30.2501,
    "longitude": -97.7652,
    "features": ["Pool", "Fireplace"],
    "association_fee": 85_00,
    "association_fee_frequency": "Monthly",
    "tax_annual_amount": 8_100_00,
    "tax_year": 2025,
    "public_remarks": "Sun-filled home near Zilker Park.",
    "virtual_tour_url_unbranded": "https://tours.example.com/1200-lamar",
}


def make_listing(owner, *, status: str = "Active", agent=None, **fields) -> Property:
    """A listing created through the model, then put in ``status`` directly (a test fixture, not a transition)."""
    values = {k: v for k, v in HOUSE.items() if k not in ("currency",)}
    values.update(fields)
    if agent is not None:
        values["list_agent_id"] = agent.id
    listing = Property.create_listing(owner_id=owner.id, actor_id=owner.id, fields=values)
    if status != "Incomplete":
        extra = {"close_price": values["list_price"], "close_date": "2026-06-01"} if status == "Closed" else {}
        Property.update(standard_status=status, **extra).where(Property.id == listing.id).execute()
    return Property.get_by_id(listing.id)


@functools.lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)


def quick_user(role: str) -> User:
    """A user who logs in with ``PASSWORD``; the hash is computed once per run, not per user."""
    return User.create(
        id=uuid.uuid4(),
        email=f"{role}-{uuid.uuid4().hex[:10]}@example.com",
        password_hash=_password_hash(),
        full_name=f"Test {role.title()}",
        role=role,
        email_verified_at=utcnow(),
    )


class People(dict):
    """Users made on first use: ``seller``, ``agent``, ``buyer``, ``admin``, ``other_seller``, ...

    ``headers(name)`` logs one in (once); ``headers(None)`` is an anonymous caller.
    """

    def __init__(self, auth_headers):
        super().__init__()
        self._auth_headers = auth_headers
        self._headers = {}

    def __missing__(self, name):
        self[name] = user = quick_user(name.rsplit("_", 1)[-1])
        return user

    def headers(self, name):
        if name is None:
            return {}
        if name not in self._headers:
            self._headers[name] = self._auth_headers(self[name])
        return self._headers[name]


@pytest.fixture
def people(auth_headers):
    return People(auth_headers)


def _url(listing) -> str:
    return f"/v1/properties/{listing.id if hasattr(listing, 'id') else listing}"


def _patch(client, listing, body, headers, etag=None):
    headers = dict(headers)
    if etag is not False:
        headers["If-Match"] = etag or f'"v{Property.get_by_id(listing.id).version}"'
    return client.simulate_patch(_url(listing), json=body, headers=headers)


def _reindex_jobs(listing) -> int:
    return (
        Job.select().where((Job.kind == "search.reindex_property") & (Job.dedupe_key == f"search:{listing.id}")).count()
    )


# --- create ---------------------------------------------------------------------------------------


def test_a_seller_creates_a_draft_with_location_etag_and_its_first_history(client, people, jobs):
    resp = client.simulate_post("/v1/properties", json=HOUSE, headers=people.headers("seller"))
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert resp.headers["Location"] == f"/v1/properties/{body['id']}"
    assert resp.headers["ETag"] == '"v1"'
    assert body["standard_status"] == "Incomplete"
    assert body["owner_id"] == str(people["seller"].id) and body["list_agent_id"] is None
    assert body["list_price"] == body["original_list_price"] == 450_000_00
    assert body["previous_list_price"] is None and body["on_market_timestamp"] is None
    assert body["unparsed_address"] == "1200 South Lamar Boulevard, Austin, TX 78704"
    assert body["features"] == ["Pool", "Fireplace"]
    # What was sent is what is stored, field for field.
    for name, value in HOUSE.items():
        assert body[name] == value, name
    history = PropertyHistory.select().where(PropertyHistory.property == body["id"])
    assert sorted((h.field, h.old_value, h.new_value) for h in history) == [
        ("list_price", None, "45000000"),
        ("standard_status", None, "Incomplete"),
    ]
    # Search hears about it: one reindex job, handed over after the commit.
    job = Job.get(Job.dedupe_key == f"search:{body['id']}")
    assert job.kind == "search.reindex_property" and str(job.id) in jobs.submitted


def test_an_agent_creating_a_listing_is_its_agent_and_active_sets_on_market(client, people):
    resp = client.simulate_post(
        "/v1/properties", json=dict(HOUSE, standard_status="Active"), headers=people.headers("agent")
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["list_agent_id"] == str(people["agent"].id)
    assert resp.json["on_market_timestamp"] is not None


@pytest.mark.parametrize(("role", "status"), [("buyer", 403), (None, 401)])
def test_buyers_and_anonymous_callers_cannot_create(client, people, role, status):
    before = Property.select().count()
    assert_problem(client.simulate_post("/v1/properties", json=HOUSE, headers=people.headers(role)), status)
    assert Property.select().count() == before


def test_the_assigned_agent_must_be_an_agent(client, people):
    headers = people.headers("seller")
    for agent_id in (str(people["buyer"].id), str(uuid.uuid4())):
        resp = client.simulate_post("/v1/properties", json=dict(HOUSE, list_agent_id=agent_id), headers=headers)
        assert_problem(resp, 422, field="body.list_agent_id")
    resp = client.simulate_post(
        "/v1/properties", json=dict(HOUSE, list_agent_id=str(people["agent"].id)), headers=headers
    )
    assert resp.status_code == 201 and resp.json["list_agent_id"] == str(people["agent"].id)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latitude": 90.5}, "body.latitude"),
        ({"longitude": -180.01}, "body.longitude"),
        ({"longitude": None}, "body.longitude"),  # latitude without longitude
        ({"list_price": -1}, "body.list_price"),
        ({"list_price": 10**13 + 1}, "body.list_price"),
        ({"list_price": 12.5}, "body.list_price"),
        ({"currency": "ZZZ"}, "body.currency"),
        ({"currency": "usd"}, "body.currency"),
        ({"virtual_tour_url_unbranded": "javascript:alert(1)"}, "body.virtual_tour_url_unbranded"),
        ({"virtual_tour_url_unbranded": "ftp://tours.example.com/x"}, "body.virtual_tour_url_unbranded"),
        ({"features": ["Pool"] * 51}, "body.features"),
        ({"features": ["x" * 61]}, "body.features[0]"),
        ({"features": ["  "]}, "body.features[0]"),
        ({"public_remarks": "x" * 5001}, "body.public_remarks"),
        ({"city": "  "}, "body.city"),
        ({"year_built": 1492}, "body.year_built"),
        ({"bedrooms_total": -1}, "body.bedrooms_total"),
        ({"property_type": "Castle"}, "body.property_type"),
        ({"standard_status": "Closed"}, "body.standard_status"),
        ({"association_fee_frequency": None}, "body.association_fee_frequency"),
        ({"listing_contract_date": "2026-02-30"}, "body.listing_contract_date"),
        ({"owner_id": str(uuid.uuid4())}, "body.owner_id"),
    ],
)
def test_bad_listings_are_422_naming_the_field_and_nothing_is_written(client, people, changes, field):
    before = (Property.select().count(), PropertyHistory.select().count(), Job.select().count())
    body = {k: v for k, v in dict(HOUSE, **changes).items() if v is not None}
    assert_problem(
        client.simulate_post("/v1/properties", json=body, headers=people.headers("seller")), 422, field=field
    )
    assert (Property.select().count(), PropertyHistory.select().count(), Job.select().count()) == before


def test_malformed_and_oversize_bodies_are_4xx_problems(client, people):
    headers = people.headers("seller")
    assert_problem(
        client.simulate_post(
            "/v1/properties", body=b'{"city": ', headers=dict(headers, **{"Content-Type": "application/json"})
        ),
        400,
    )
    assert_problem(
        client.simulate_post(
            "/v1/properties",
            body=b"city=Austin",
            headers=dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"}),
        ),
        415,
    )
    assert_problem(client.simulate_post("/v1/properties", json=[], headers=headers), 422, field="body")
    assert_problem(client.simulate_post("/v1/properties", json={}, headers=headers), 422, field="body.property_type")
    assert_problem(
        client.simulate_post("/v1/properties", json=dict(HOUSE, city="Aus\x00tin"), headers=headers),
        422,
        field="body.city",
    )


# --- read: who sees what --------------------------------------------------------------------------


def test_a_draft_is_seen_only_by_its_owner_agent_and_admins(client, people):
    draft = make_listing(people["seller"], status="Incomplete", agent=people["agent"])
    for name in ("seller", "agent", "admin"):
        resp = client.simulate_get(_url(draft), headers=people.headers(name))
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json["standard_status"] == "Incomplete"
    for name in ("buyer", "other_seller", None):
        assert_problem(client.simulate_get(_url(draft), headers=people.headers(name)), 404)
        assert_problem(client.simulate_get(_url(draft) + "/history", headers=people.headers(name)), 404)
    assert_problem(client.simulate_get(_url(uuid.uuid4())), 404)  # same answer as for a missing listing


@pytest.mark.parametrize(
    ("status", "public"),
    [
        ("ComingSoon", True),
        ("Active", True),
        ("ActiveUnderContract", True),
        ("Pending", True),
        ("Closed", True),
        ("Withdrawn", False),
        ("Expired", False),
        ("Canceled", False),
    ],
)
def test_listed_properties_are_public_and_off_market_ones_are_not(client, people, status, public):
    listing = make_listing(people["seller"], status=status)
    resp = client.simulate_get(_url(listing))
    if public:
        assert resp.status_code == 200 and resp.json["id"] == str(listing.id)
        assert resp.headers["ETag"] == f'"v{listing.version}"'
    else:
        assert_problem(resp, 404)
        assert client.simulate_get(_url(listing), headers=people.headers("seller")).status_code == 200


def test_if_none_match_gives_304_until_the_listing_changes(client, people):
    listing = make_listing(people["seller"])
    first = client.simulate_get(_url(listing))
    etag = first.headers["ETag"]
    assert "no-cache" in first.headers["Cache-Control"]
    unchanged = client.simulate_get(_url(listing), headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["ETag"] == etag
    assert _patch(client, listing, {"list_price": 440_000_00}, people.headers("seller")).status_code == 200
    changed = client.simulate_get(_url(listing), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json["list_price"] == 440_000_00
    assert changed.headers["ETag"] != etag


# --- change: permissions, preconditions, rules -------------------------------------------------------


def test_owner_agent_and_admin_may_patch_strangers_may_not(client, people):
    listing = make_listing(people["seller"], agent=people["agent"])
    for name, price in (("seller", 449_000_00), ("agent", 448_000_00), ("admin", 447_000_00)):
        resp = _patch(client, listing, {"list_price": price}, people.headers(name))
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json["list_price"] == price
    for name in ("buyer", "other_seller"):
        assert_problem(_patch(client, listing, {"list_price": 1}, people.headers(name)), 403)
        assert_problem(client.simulate_delete(_url(listing), headers=people.headers(name)), 403)
    draft = make_listing(people["seller"], status="Incomplete")
    for name in ("buyer", "other_seller"):
        assert_problem(_patch(client, draft, {"list_price": 1}, people.headers(name)), 404)
        assert_problem(client.simulate_delete(_url(draft), headers=people.headers(name)), 404)
    assert_problem(_patch(client, listing, {"list_price": 1}, {}), 401)
    assert Property.get_by_id(listing.id).list_price == 447_000_00
    assert Property.get_by_id(draft.id).standard_status == "Incomplete"


def test_only_the_owner_or_an_admin_assigns_the_agent(client, people):
    listing = make_listing(people["seller"], agent=people["agent"])
    other_agent = people["other_agent"]
    assert_problem(_patch(client, listing, {"list_agent_id": str(other_agent.id)}, people.headers("agent")), 403)
    assert_problem(
        _patch(client, listing, {"list_agent_id": str(people["buyer"].id)}, people.headers("seller")),
        422,
        field="body.list_agent_id",
    )
    resp = _patch(client, listing, {"list_agent_id": str(other_agent.id)}, people.headers("seller"))
    assert resp.status_code == 200 and resp.json["list_agent_id"] == str(other_agent.id)
    # The former agent no longer manages it.
    assert_problem(_patch(client, listing, {"list_price": 1}, people.headers("agent")), 403)


def test_patch_needs_if_match_and_a_stale_one_is_412(client, people):
    listing = make_listing(people["seller"])
    headers = people.headers("seller")
    body = assert_problem(_patch(client, listing, {"list_price": 1}, headers, etag=False), 428)
    assert body["type"].endswith("/precondition-required")
    ok = _patch(client, listing, {"list_price": 430_000_00}, headers, etag='"v1"')
    assert ok.status_code == 200 and ok.headers["ETag"] == '"v2"' and ok.json["version"] == 2
    # A second writer still holding v1 is refused, not silently applied.
    stale = assert_problem(_patch(client, listing, {"list_price": 999_00}, headers, etag='"v1"'), 412)
    assert stale["type"].endswith("/stale-listing")
    assert_problem(_patch(client, listing, {"list_price": 999_00}, headers, etag='W/"v2"'), 412)  # weak never matches
    fresh = Property.get_by_id(listing.id)
    assert (fresh.list_price, fresh.version) == (430_000_00, 2)
    assert _patch(client, listing, {"public_remarks": "New"}, headers, etag='"v1", "v2"').status_code == 200
    assert _patch(client, listing, {"public_remarks": "Newer"}, headers, etag="*").status_code == 200


def test_a_patch_that_changes_nothing_keeps_the_version(client, people):
    listing = make_listing(people["seller"])
    resp = _patch(client, listing, {"list_price": listing.list_price, "city": "Austin"}, people.headers("seller"))
    assert resp.status_code == 200 and resp.headers["ETag"] == f'"v{listing.version}"'
    assert _reindex_jobs(listing) == 0


def test_price_changes_keep_previous_price_and_history(client, people):
    listing = make_listing(people["seller"])
    headers = people.headers("seller")
    for price in (440_000_00, 425_000_00, 429_000_00):
        assert _patch(client, listing, {"list_price": price}, headers).status_code == 200
    fresh = client.simulate_get(_url(listing)).json
    assert (fresh["list_price"], fresh["previous_list_price"], fresh["original_list_price"]) == (
        429_000_00,
        425_000_00,
        450_000_00,
    )
    # Anonymous callers read a public listing's history, newest first, a page at a time, without actors.
    seen, cursor = [], None
    while True:
        page = client.simulate_get(
            _url(listing) + "/history", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    prices = [(e["old_value"], e["new_value"]) for e in seen if e["field"] == "list_price"]
    assert prices == [(425_000_00, 429_000_00), (440_000_00, 425_000_00), (450_000_00, 440_000_00), (None, 450_000_00)]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
    assert all(e["actor_id"] is None for e in seen)
    mine = client.simulate_get(_url(listing) + "/history", headers=headers).json["items"]
    assert mine[0]["actor_id"] == str(people["seller"].id)
    assert_problem(
        client.simulate_get(_url(listing) + "/history", params={"cursor": "forged"}), 422, field="query.cursor"
    )


def test_closing_needs_the_close_price_and_date(client, people):
    listing = make_listing(people["seller"], status="Pending")
    headers = people.headers("seller")
    body = assert_problem(_patch(client, listing, {"standard_status": "Closed"}, headers), 422)
    assert {e["field"] for e in body["errors"]} == {"body.close_price", "body.close_date"}
    assert_problem(
        _patch(client, listing, {"standard_status": "Active", "close_price": 1}, headers), 422, field="body.close_price"
    )
    resp = _patch(
        client, listing, {"standard_status": "Closed", "close_price": 445_000_00, "close_date": "2026-10-15"}, headers
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json["standard_status"], resp.json["close_price"], resp.json["close_date"]) == (
        "Closed",
        445_000_00,
        "2026-10-15",
    )


def test_an_illegal_transition_is_409_and_changes_nothing(client, people):
    listing = make_listing(people["seller"], status="Closed")
    body = assert_problem(
        _patch(client, listing, {"standard_status": "Active", "list_price": 1}, people.headers("seller")), 409
    )
    assert body["type"].endswith("/illegal-transition")
    assert body["current_status"] == "Closed" and body["allowed"] == []
    fresh = Property.get_by_id(listing.id)
    assert (fresh.standard_status, fresh.list_price, fresh.version) == ("Closed", listing.list_price, 1)


def test_first_activation_sets_on_market_once(client, people):
    listing = make_listing(people["seller"], status="Incomplete")
    headers = people.headers("seller")
    first = _patch(client, listing, {"standard_status": "Active"}, headers).json["on_market_timestamp"]
    assert first is not None
    _patch(client, listing, {"standard_status": "Withdrawn"}, headers)
    again = _patch(client, listing, {"standard_status": "Active"}, headers).json
    assert again["on_market_timestamp"] == first


def test_null_clears_optional_fields_but_not_required_ones(client, people):
    listing = make_listing(people["seller"])
    headers = people.headers("seller")
    resp = _patch(client, listing, {"virtual_tour_url_unbranded": None, "public_remarks": None}, headers)
    assert resp.status_code == 200
    assert resp.json["virtual_tour_url_unbranded"] is None and resp.json["public_remarks"] is None
    assert_problem(_patch(client, listing, {"list_price": None}, headers), 422, field="body.list_price")
    assert_problem(_patch(client, listing, {"version": 7}, headers), 422, field="body.version")


def test_address_changes_recompose_the_unparsed_address(client, people):
    listing = make_listing(people["seller"])
    resp = _patch(client, listing, {"street_number": "1300", "unit_number": "4B"}, people.headers("seller"))
    assert resp.json["unparsed_address"] == "1300 South Lamar Boulevard Unit 4B, Austin, TX 78704"


def test_changes_mark_the_listing_dirty_for_search_once_per_pending_reindex(client, people, jobs):
    listing = make_listing(people["seller"])
    headers = people.headers("seller")
    _patch(client, listing, {"list_price": 1_00}, headers)
    _patch(client, listing, {"list_price": 2_00}, headers)
    # The queued reindex reads the latest row, so the second change adds no job.
    assert _reindex_jobs(listing) == 1
    assert len([j for j in jobs.submitted if Job.get_by_id(j).dedupe_key == f"search:{listing.id}"]) == 1


def test_admin_edits_of_other_peoples_listings_are_audited(client, people):
    listing = make_listing(people["seller"])
    _patch(client, listing, {"list_price": 400_000_00}, people.headers("seller"))
    assert AuditEntry.select().where(AuditEntry.target_type == "property").count() == 0
    resp = _patch(client, listing, {"list_price": 390_000_00, "public_remarks": "Edited"}, people.headers("admin"))
    assert resp.status_code == 200
    entry = AuditEntry.get((AuditEntry.target_type == "property") & (AuditEntry.target_id == str(listing.id)))
    assert entry.action == "property.update" and str(entry.actor_id) == str(people["admin"].id)
    assert entry.before["list_price"] == 400_000_00 and entry.after["list_price"] == 390_000_00
    assert entry.after["public_remarks"] == "Edited"
    assert client.simulate_delete(_url(listing), headers=people.headers("admin")).status_code == 204
    assert AuditEntry.get(AuditEntry.action == "property.withdraw").after["standard_status"] == "Withdrawn"


# --- withdraw ------------------------------------------------------------------------------------


def test_delete_withdraws_or_cancels_keeps_history_and_is_idempotent(client, people):
    headers = people.headers("seller")
    active, draft = make_listing(people["seller"]), make_listing(people["seller"], status="Incomplete")
    assert client.simulate_delete(_url(active), headers=headers).status_code == 204
    assert client.simulate_delete(_url(draft), headers=headers).status_code == 204
    assert Property.get_by_id(active.id).standard_status == "Withdrawn"
    assert Property.get_by_id(draft.id).standard_status == "Canceled"
    history = PropertyHistory.select().where(PropertyHistory.property == active.id).count()
    again = client.simulate_delete(_url(active), headers=headers)
    assert again.status_code == 204
    assert PropertyHistory.select().where(PropertyHistory.property == active.id).count() == history
    assert_problem(client.simulate_get(_url(active)), 404)  # off the market: gone for the public
    assert client.simulate_get(_url(active), headers=headers).json["standard_status"] == "Withdrawn"
    assert_problem(client.simulate_delete(_url(active), headers=dict(headers, **{"If-Match": '"v1"'})), 412)


@pytest.mark.parametrize("status", ["Pending", "Closed", "Expired"])
def test_listings_that_cannot_be_withdrawn_are_409(client, people, status):
    listing = make_listing(people["seller"], status=status)
    assert_problem(client.simulate_delete(_url(listing), headers=people.headers("seller")), 409)
    assert Property.get_by_id(listing.id).standard_status == status


def test_bad_patches_are_4xx_problems_and_change_nothing(client, people):
    listing = make_listing(people["seller"])
    headers = dict(people.headers("seller"), **{"If-Match": f'"v{listing.version}"'})
    url = _url(listing)
    history = PropertyHistory.select().where(PropertyHistory.property == listing.id).count()
    json_headers = dict(headers, **{"Content-Type": "application/json"})
    assert_problem(client.simulate_patch(url, body=b'{"list_price": ', headers=json_headers), 400)
    assert_problem(
        client.simulate_patch(url, body=b"list_price=1", headers=dict(headers, **{"Content-Type": "text/plain"})), 415
    )
    for body, field in (
        ({"list_price": "cheap"}, "body.list_price"),
        ({"standard_status": "Sold"}, "body.standard_status"),
        ({"features": "Pool"}, "body.features"),
        ({"latitude": None}, "body.latitude"),
        ({"owner_id": str(people["buyer"].id)}, "body.owner_id"),
        ({"public_remarks": "x" * 5001}, "body.public_remarks"),
    ):
        assert_problem(client.simulate_patch(url, json=body, headers=headers), 422, field=field)
    fresh = Property.get_by_id(listing.id)
    assert (fresh.version, fresh.list_price, fresh.owner_id) == (listing.version, listing.list_price, listing.owner_id)
    assert PropertyHistory.select().where(PropertyHistory.property == listing.id).count() == history
    assert _reindex_jobs(listing) == 0


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_every_field_refuses_a_wrong_type_or_a_nul_naming_itself(client, people, method):
    """The same promises as tests/api/test_bad_input.py, for every field of a listing body."""
    listing = make_listing(people["seller"])
    headers = dict(people.headers("seller"), **{"If-Match": f'"v{listing.version}"'})
    path = "/v1/properties" if method == "POST" else _url(listing)
    before = (Property.select().count(), PropertyHistory.select().count(), Job.select().count())
    for name, value in HOUSE.items():
        wrong = "yes" if isinstance(value, int) else 12345
        if isinstance(value, float):
            wrong = "north"
        resp = client.simulate_request(method, path, json=dict(HOUSE, **{name: wrong}), headers=headers)
        assert_problem(resp, 422, field=f"body.{name}")
        if isinstance(value, str):
            poisoned = dict(HOUSE, **{name: value[:2] + "\x00" + value[2:]})
            assert_problem(
                client.simulate_request(method, path, json=poisoned, headers=headers), 422, field=f"body.{name}"
            )
    assert (Property.select().count(), PropertyHistory.select().count(), Job.select().count()) == before
    assert Property.get_by_id(listing.id).version == listing.version


@pytest.mark.parametrize("value", ["v1", 'v1, "v1"', "W/v1", '"v1', "'v1'", "", '*, "v1"', 'W/ "v1"'])
def test_an_if_match_that_is_not_a_quoted_entity_tag_is_400_and_changes_nothing(client, people, value):
    listing = make_listing(people["seller"])
    headers = people.headers("seller")
    body = assert_problem(_patch(client, listing, {"list_price": 1}, headers, etag=value or " "), 400)
    assert body["type"].endswith("/malformed-if-match")
    assert_problem(client.simulate_delete(_url(listing), headers=dict(headers, **{"If-Match": value or " "})), 400)
    fresh = Property.get_by_id(listing.id)
    assert (fresh.list_price, fresh.version, fresh.standard_status) == (
        listing.list_price,
        listing.version,
        listing.standard_status,
    )
    # The same tag quoted, with list whitespace around it, is what RFC 9110 asks for.
    assert _patch(client, listing, {"list_price": 2}, headers, etag=' "v0" ,\t"v1" ').status_code == 200
