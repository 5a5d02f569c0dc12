"""``/v1/me/saved-searches``: my named searches, checked like a search, runnable from ``search_url``."""

from __future__ import annotations

import pytest

from api.schemas.search import SearchParams
from models.saved_searches import MAX_PER_USER, SavedSearch
from models.search import SearchParameters
from tests.api.conftest import assert_problem
from tests.factories import make_user
from tests.search_listings import make_listing, make_owner

PATH = "/v1/me/saved-searches"


def _save(client, headers, **body):
    body.setdefault("name", "Homes")
    body.setdefault("query", {})
    return client.simulate_post(PATH, headers=headers, json=body)


def _saved(client, headers, **body) -> dict:
    resp = _save(client, headers, **body)
    assert resp.status_code == 201, resp.text
    return resp.json


def test_save_read_list_change_and_delete_a_search(client, user, auth_headers):
    headers = auth_headers(user)
    query = {"city": "Austin", "min_beds": 3, "property_type": ["Residential", "Land"], "sort": "price_asc"}
    resp = _save(client, headers, name="  Family homes  ", query=query)
    assert resp.status_code == 201, resp.text
    first = resp.json
    assert resp.headers["Location"] == f"{PATH}/{first['id']}"
    assert (first["name"], first["query"], first["alerts"]) == ("Family homes", query, True)
    assert first["search_url"] == "/v1/properties?city=Austin&min_beds=3&property_type=Residential,Land&sort=price_asc"
    assert first["created_at"] == first["updated_at"]
    assert client.simulate_get(f"{PATH}/{first['id']}", headers=headers).json == first

    second = _saved(client, headers, name="Anything", alerts=False)
    assert (second["query"], second["alerts"], second["search_url"]) == ({}, False, "/v1/properties")
    page = client.simulate_get(PATH, headers=headers, params={"limit": "1"}).json
    assert [item["id"] for item in page["items"]] == [second["id"]]  # newest first
    rest = client.simulate_get(PATH, headers=headers, params={"limit": "1", "cursor": page["next_cursor"]}).json
    assert [item["id"] for item in rest["items"]] == [first["id"]] and rest["next_cursor"] is None

    changed = client.simulate_patch(f"{PATH}/{first['id']}", headers=headers, json={"alerts": False})
    assert changed.status_code == 200, changed.text
    assert (changed.json["alerts"], changed.json["name"], changed.json["query"]) == (False, "Family homes", query)
    assert changed.json["updated_at"] > first["updated_at"]
    replaced = client.simulate_patch(
        f"{PATH}/{first['id']}", headers=headers, json={"name": "Dallas", "query": {"city": "Dallas"}}
    ).json
    assert (replaced["name"], replaced["query"], replaced["alerts"]) == ("Dallas", {"city": "Dallas"}, False)
    assert client.simulate_get(f"{PATH}/{first['id']}", headers=headers).json == replaced

    assert client.simulate_delete(f"{PATH}/{first['id']}", headers=headers).status_code == 204
    assert client.simulate_delete(f"{PATH}/{first['id']}", headers=headers).status_code == 204  # idempotent
    assert_problem(client.simulate_get(f"{PATH}/{first['id']}", headers=headers), 404)
    assert [item["id"] for item in client.simulate_get(PATH, headers=headers).json["items"]] == [second["id"]]


def test_the_search_url_runs_the_saved_query(client, user, auth_headers):
    owner = make_owner()
    near = make_listing(
        owner,
        city="Austin",
        bedrooms_total=4,
        features=["Pool", "Garage"],
        latitude=30.27,
        longitude=-97.74,
        list_price=50_000_000,
    )
    nearer = make_listing(
        owner,
        city="Austin",
        bedrooms_total=3,
        features=["pool"],
        latitude=30.268,
        longitude=-97.742,
        list_price=40_000_000,
    )
    make_listing(owner, city="Austin", bedrooms_total=2, features=["Pool"])  # too few bedrooms
    make_listing(owner, city="Austin", bedrooms_total=5, features=[])  # no pool
    make_listing(owner, city="Austin", bedrooms_total=5, features=["Pool"], standard_status="Pending")
    make_listing(owner, city="Austin", bedrooms_total=5, features=["Pool"], latitude=31.5, longitude=-97.74)
    query = {
        "q": "house",
        "min_beds": 3,
        "features": ["POOL"],
        "status": ["Active", "ComingSoon"],
        "near": "30.2672,-97.7431",
        "radius_km": 25.5,
        "sort": "distance",
        "max_price": 60_000_000,
    }
    saved = _saved(client, auth_headers(user), query=query)
    assert saved["query"] == query
    found = client.simulate_get(saved["search_url"])
    assert found.status_code == 200, found.text
    assert [item["id"] for item in found.json["items"]] == [str(nearer.id), str(near.id)]
    assert found.json["sort"] == "distance"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"min_price": 500, "max_price": 100}, "body.query.min_price"),
        ({"min_year_built": 2000, "max_year_built": 1990}, "body.query.min_year_built"),
        ({"bbox": "-97.8,30.2,-97.6"}, "body.query.bbox"),
        ({"bbox": "-97.6,30.2,-97.8,30.3"}, "body.query.bbox"),
        ({"near": "91,0"}, "body.query.near"),
        ({"radius_km": 5}, "body.query.radius_km"),
        ({"near": "30,-97", "radius_km": 501}, "body.query.radius_km"),
        ({"polygon": "30 -97,31 -97"}, "body.query.polygon"),
        ({"sort": "distance"}, "body.query.sort"),
        ({"sort": "relevance"}, "body.query.sort"),
        ({"sort": "cheapest"}, "body.query.sort"),
        ({"status": ["Withdrawn"]}, "body.query.status[0]"),
        ({"features": "Pool"}, "body.query.features"),  # a list is a JSON array in a body
        ({"features": ["Pool, heated"]}, "body.query.features[0]"),
        ({"min_beds": -1}, "body.query.min_beds"),
        ({"cursor": "abc"}, "body.query.cursor"),  # paging is not part of a saved search
        ({"limit": 10}, "body.query.limit"),
        ({"facets": True}, "body.query.facets"),
        ({"bedrooms": 3}, "body.query.bedrooms"),
    ],
)
def test_a_query_is_checked_like_a_search_and_errors_name_the_parameter(client, user, auth_headers, query, field):
    headers = auth_headers(user)
    assert_problem(_save(client, headers, query=query), 422, field=field)
    saved = _saved(client, headers, query={"city": "Austin"})
    assert_problem(
        client.simulate_patch(f"{PATH}/{saved['id']}", headers=headers, json={"query": query}), 422, field=field
    )
    assert client.simulate_get(f"{PATH}/{saved['id']}", headers=headers).json == saved  # unchanged
    assert SavedSearch.select().where(SavedSearch.user == user.id).count() == 1


def test_every_parameter_the_api_accepts_is_one_the_alert_scan_checks():
    """The alert scan re-checks a stored query with the models' rules alone: a parameter only the API knew
    would make every saved search using it stop alerting."""
    assert issubclass(SearchParams, SearchParameters)
    assert SearchParams.__struct_fields__ == SearchParameters.__struct_fields__


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   ", "query": {}}, "body.name"),
        ({"name": "n" * 101, "query": {}}, "body.name"),
        ({"name": "Homes"}, "body.query"),
        ({"name": "Homes", "query": {}, "alerts": "yes"}, "body.alerts"),
        ({"name": "Homes", "query": {}, "alerts": None}, "body.alerts"),
    ],
)
def test_names_and_alerts_are_checked(client, user, auth_headers, body, field):
    assert_problem(client.simulate_post(PATH, headers=auth_headers(user), json=body), 422, field=field)
    assert SavedSearch.select().count() == 0


def test_at_most_25_saved_searches_each(client, user, auth_headers):
    headers = auth_headers(user)
    ids = [_saved(client, headers, name=f"Search {n}")["id"] for n in range(MAX_PER_USER)]
    full = assert_problem(_save(client, headers, name="One too many"), 409)
    assert full["type"].endswith("/limit-reached")
    assert SavedSearch.select().where(SavedSearch.user == user.id).count() == MAX_PER_USER
    # Someone else is not limited by my searches.
    assert _save(client, auth_headers(make_user()), name="Theirs").status_code == 201
    assert client.simulate_delete(f"{PATH}/{ids[0]}", headers=headers).status_code == 204
    assert _save(client, headers, name="Room again").status_code == 201
    assert len(client.simulate_get(PATH, headers=headers).json["items"]) == MAX_PER_USER  # one page holds them


def test_another_users_saved_search_is_not_found(client, user, auth_headers):
    mine = _saved(client, auth_headers(user), name="Mine", query={"city": "Austin"})
    other = auth_headers(make_user(role="agent"))
    item = f"{PATH}/{mine['id']}"
    assert_problem(client.simulate_get(item, headers=other), 404)
    assert_problem(client.simulate_patch(item, headers=other, json={"name": "Taken"}), 404)
    assert_problem(client.simulate_delete(item, headers=other), 404)
    assert client.simulate_get(PATH, headers=other).json == {"items": [], "next_cursor": None}
    assert client.simulate_get(item, headers=auth_headers(user)).json == mine  # untouched
    admin = auth_headers(make_user(role="admin"))
    assert_problem(client.simulate_get(item, headers=admin), 404)  # only the owner's, even for admins


def test_saved_searches_need_a_signed_in_user(client):
    assert_problem(client.simulate_get(PATH), 401)
    assert_problem(client.simulate_post(PATH, json={"name": "Homes", "query": {}}), 401)
    assert SavedSearch.select().count() == 0
