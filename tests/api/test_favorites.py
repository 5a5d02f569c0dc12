"""``/v1/me/favorites``: idempotent save/remove, visibility, pagination, and the account export."""

from __future__ import annotations

import io
import uuid
import zipfile

import msgspec
import pytest

from models.favorites import Favorite
from tasks.exports import build_export
from tests.api.conftest import assert_problem
from tests.api.test_properties import People, make_listing


@pytest.fixture
def people(auth_headers):
    return People(auth_headers)


def _favorites(client, headers, **params) -> dict:
    resp = client.simulate_get("/v1/me/favorites", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


def _walk(client, headers) -> list[str]:
    seen, cursor = [], None
    while True:
        page = _favorites(client, headers, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [item["property_id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            return seen


def test_saving_and_removing_are_idempotent(client, people):
    listing = make_listing(people["seller"])
    headers = people.headers("buyer")
    url = f"/v1/me/favorites/{listing.id}"
    for _ in range(2):
        assert client.simulate_put(url, headers=headers).status_code == 204
    assert Favorite.select().where(Favorite.user == people["buyer"].id).count() == 1
    items = _favorites(client, headers)["items"]
    assert [(i["property_id"], i["available"]) for i in items] == [(str(listing.id), True)]
    summary = items[0]["listing"]
    assert (summary["id"], summary["list_price"], summary["city"], summary["bedrooms_total"]) == (
        str(listing.id),
        listing.list_price,
        "Austin",
        3,
    )
    for _ in range(2):
        assert client.simulate_delete(url, headers=headers).status_code == 204
    assert _favorites(client, headers)["items"] == []


def test_listings_i_cannot_see_cannot_be_saved(client, people):
    draft = make_listing(people["seller"], status="Incomplete")
    headers = people.headers("buyer")
    assert_problem(client.simulate_put(f"/v1/me/favorites/{draft.id}", headers=headers), 404)
    assert_problem(client.simulate_put(f"/v1/me/favorites/{uuid.uuid4()}", headers=headers), 404)
    assert_problem(client.simulate_delete(f"/v1/me/favorites/{draft.id}", headers=headers), 404)
    assert Favorite.select().count() == 0
    # The owner may save their own draft.
    assert client.simulate_put(f"/v1/me/favorites/{draft.id}", headers=people.headers("seller")).status_code == 204
    assert_problem(client.simulate_put(f"/v1/me/favorites/{draft.id}"), 401)
    assert_problem(client.simulate_get("/v1/me/favorites"), 401)


def test_a_saved_listing_that_goes_off_the_market_stays_listed_as_unavailable(client, people):
    listing = make_listing(people["seller"])
    headers = people.headers("buyer")
    client.simulate_put(f"/v1/me/favorites/{listing.id}", headers=headers)
    assert client.simulate_delete(f"/v1/properties/{listing.id}", headers=people.headers("seller")).status_code == 204
    item = _favorites(client, headers)["items"][0]
    assert (item["property_id"], item["available"], item["listing"]) == (str(listing.id), False, None)
    # Saving it again is refused (it cannot be seen), removing it still works.
    assert_problem(client.simulate_put(f"/v1/me/favorites/{listing.id}", headers=headers), 404)
    assert client.simulate_delete(f"/v1/me/favorites/{listing.id}", headers=headers).status_code == 204
    assert _favorites(client, headers)["items"] == []


def test_favorites_page_newest_first(client, people):
    listings = [make_listing(people["seller"]) for _ in range(5)]
    headers = people.headers("buyer")
    for listing in listings:
        assert client.simulate_put(f"/v1/me/favorites/{listing.id}", headers=headers).status_code == 204
    assert _walk(client, headers) == [str(listing.id) for listing in reversed(listings)]  # no repeats, no gaps
    # Saved at the same instant (an import, say): the listing id breaks the tie, still without gaps.
    Favorite.update(created_at=Favorite.select(Favorite.created_at).limit(1)).execute()
    assert _walk(client, headers) == sorted((str(listing.id) for listing in listings), reverse=True)
    # Someone else's favorites are not mine.
    assert _favorites(client, people.headers("other_buyer"))["items"] == []
    assert_problem(
        client.simulate_get("/v1/me/favorites", headers=headers, params={"cursor": "nope"}), 422, field="query.cursor"
    )


def test_the_account_export_holds_my_listings_and_favorites(client, people, jobs):
    mine = make_listing(people["seller"], agent=people["agent"])
    other = make_listing(people["other_seller"])
    seller = people.headers("seller")
    client.simulate_patch(
        f"/v1/properties/{mine.id}",
        json={"list_price": 420_000_00},
        headers=dict(seller, **{"If-Match": f'"v{mine.version}"'}),
    )
    client.simulate_put(f"/v1/me/favorites/{other.id}", headers=seller)
    resp = client.simulate_post("/v1/me/export", headers=seller)
    assert resp.status_code == 202, resp.text
    build_export(resp.json["id"])  # only the export job; reindex jobs belong to search
    done = client.simulate_get(f"/v1/jobs/{resp.json['id']}", headers=seller).json
    assert done["status"] == "succeeded", done
    assert {"listings", "favorites"} <= set(done["result"]["sections"])
    url = done["result"]["download_url"].split("http://hearth.test", 1)[1]
    with zipfile.ZipFile(io.BytesIO(client.simulate_get(url).content)) as archive:
        listings = msgspec.json.decode(archive.read("listings.json"))
        favorites = msgspec.json.decode(archive.read("favorites.json"))
    assert [(item["id"], item["relation"], item["list_price"]) for item in listings] == [
        (str(mine.id), "owner", 420_000_00)
    ]
    assert [(h["field"], h["new_value"]) for h in listings[0]["history"]][-1] == ("list_price", 420_000_00)
    assert all(h["actor_id"] is None for h in listings[0]["history"])
    assert [(f["property_id"], f["listing"]["id"]) for f in favorites] == [(str(other.id), str(other.id))]
    # The agent's export has the listing they are assigned to.
    agent_listings = _export_section(client, people.headers("agent"), "listings")
    assert [(item["id"], item["relation"]) for item in agent_listings] == [(str(mine.id), "list_agent")]


def _export_section(client, headers, name):
    job = client.simulate_post("/v1/me/export", headers=headers).json
    build_export(job["id"])
    done = client.simulate_get(f"/v1/jobs/{job['id']}", headers=headers).json
    url = done["result"]["download_url"].split("http://hearth.test", 1)[1]
    with zipfile.ZipFile(io.BytesIO(client.simulate_get(url).content)) as archive:
        return msgspec.json.decode(archive.read(f"{name}.json"))
