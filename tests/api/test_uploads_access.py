"""Who sees which upload; listing photos (order, cover) and documents; the operators' rescan."""

from __future__ import annotations

import pytest

from models.audit import AuditEntry
from models.properties import Property
from models.uploads import PropertyMedia, Upload
from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import make_user
from tests.services.backends import backend_overrides, eicar, jpeg_with_gps, pdf, png
from tests.services.uploads_api import download, upload, uploaded


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **backend_overrides("local"))


def _listing(owner, status: str = "Active", agent=None) -> Property:
    return Property.create(
        owner=owner.id,
        list_agent=agent.id if agent else None,
        standard_status=status,
        property_type="Residential",
        list_price=500_000_00,
        original_list_price=500_000_00,
        city="Springfield",
    )


def _photos(client, jobs, headers, count: int) -> list[str]:
    return [uploaded(client, jobs, headers, png((40 + i, 30)), filename=f"room{i}.png")["id"] for i in range(count)]


def test_another_users_document_is_404_for_everyone_but_its_owner_and_admins(client, jobs, auth_headers, admin):
    owner, stranger = make_user(role="seller"), make_user()
    mine = uploaded(client, jobs, auth_headers(owner), pdf(b"deed of sale"), purpose="document", filename="deed.pdf")
    assert mine["status"] == "clean"
    for headers in (auth_headers(stranger), {}):
        assert_problem(client.simulate_get(f"/v1/uploads/{mine['id']}", headers=headers), 404)
        assert_problem(client.simulate_get(f"/v1/uploads/{mine['id']}/download", headers=headers), 404)
        assert_problem(
            client.simulate_delete(f"/v1/uploads/{mine['id']}", headers=headers), 401 if not headers else 404
        )
    # Attached to a public listing, a document is still only its owner's.
    listing = _listing(owner)
    resp = client.simulate_post(
        f"/v1/properties/{listing.id}/documents", headers=auth_headers(owner), json={"upload_id": mine["id"]}
    )
    assert resp.status_code == 201, resp.text
    assert [d["upload_id"] for d in resp.json["items"]] == [mine["id"]]
    assert (
        client.simulate_get(f"/v1/properties/{listing.id}/documents", headers=auth_headers(stranger)).json["items"]
        == []
    )
    assert_problem(client.simulate_get(f"/v1/uploads/{mine['id']}/download", headers=auth_headers(stranger)), 404)
    assert download(client, mine["id"], auth_headers(admin)) == (302, pdf(b"deed of sale"))
    assert download(client, mine["id"], auth_headers(owner)) == (302, pdf(b"deed of sale"))
    # Nobody learns about other people's uploads from the list either.
    assert client.simulate_get("/v1/uploads", headers=auth_headers(stranger)).json["items"] == []
    assert [u["id"] for u in client.simulate_get("/v1/uploads", headers=auth_headers(owner)).json["items"]] == [
        mine["id"]
    ]


def test_photos_of_a_public_listing_are_public_previews_only(client, jobs, auth_headers):
    owner = make_user(role="seller")
    photo = uploaded(client, jobs, auth_headers(owner), jpeg_with_gps(), filename="Home of the Smiths.jpg")
    listing, draft = _listing(owner), _listing(owner, status="Incomplete")
    assert_problem(client.simulate_get(f"/v1/uploads/{photo['id']}"), 404)  # not on a listing yet
    resp = client.simulate_put(
        f"/v1/properties/{listing.id}/photos", headers=auth_headers(owner), json={"upload_ids": [photo["id"]]}
    )
    assert resp.status_code == 200, resp.text

    public = client.simulate_get(f"/v1/uploads/{photo['id']}")
    assert public.status_code == 200
    assert public.json["filename"] == "photo" and public.json["sha256"] is None
    assert [v["name"] for v in public.json["variants"]] == ["w320", "w1280"]
    assert download(client, photo["id"], variant="w1280")[0] == 302
    assert_problem(client.simulate_get(f"/v1/uploads/{photo['id']}/download"), 404)  # the original keeps GPS
    listed = client.simulate_get(f"/v1/properties/{listing.id}/photos").json["items"]
    assert [(p["upload_id"], p["is_cover"]) for p in listed] == [(photo["id"], True)]
    assert [v["name"] for v in listed[0]["variants"]] == ["w320", "w1280"]

    # A draft's photos are its people's only.
    other = uploaded(client, jobs, auth_headers(owner), png(), filename="draft.png")
    client.simulate_put(
        f"/v1/properties/{draft.id}/photos", headers=auth_headers(owner), json={"upload_ids": [other["id"]]}
    )
    assert_problem(client.simulate_get(f"/v1/uploads/{other['id']}"), 404)
    assert_problem(client.simulate_get(f"/v1/properties/{draft.id}/photos"), 404)
    # Withdrawing the listing takes its photos off the public web.
    Property.update(standard_status="Withdrawn").where(Property.id == listing.id).execute()
    assert_problem(client.simulate_get(f"/v1/uploads/{photo['id']}/download", params={"variant": "w320"}), 404)


def test_photo_order_and_cover_are_set_by_the_listings_people_only(client, jobs, auth_headers, admin):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user()
    listing = _listing(owner, agent=agent)
    a, b, c = _photos(client, jobs, auth_headers(owner), 3)
    url = f"/v1/properties/{listing.id}/photos"

    resp = client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [b, a, c], "cover": c})
    assert resp.status_code == 200, resp.text
    assert [(p["upload_id"], p["position"], p["is_cover"]) for p in resp.json["items"]] == [
        (b, 0, False),
        (a, 1, False),
        (c, 2, True),
    ]
    # The agent reorders the owner's photos and drops one; the upload itself remains.
    resp = client.simulate_put(url, headers=auth_headers(agent), json={"upload_ids": [c, b]})
    assert [(p["upload_id"], p["is_cover"]) for p in resp.json["items"]] == [(c, True), (b, False)]
    assert Upload.get_by_id(a).status == "clean"
    # A buyer may look but not touch; unknown listings are 404.
    assert_problem(client.simulate_put(url, headers=auth_headers(buyer), json={"upload_ids": []}), 403)
    assert_problem(
        client.simulate_put(f"/v1/properties/{owner.id}/photos", headers=auth_headers(owner), json={"upload_ids": []}),
        404,
    )
    entry = AuditEntry.select().where(AuditEntry.action == "property.photos_set").order_by(AuditEntry.id.desc()).get()
    assert entry.actor_id == agent.id and entry.after["upload_ids"] == [c, b]


def test_only_clean_listing_photos_of_the_caller_may_be_attached(client, jobs, auth_headers):
    owner, stranger = make_user(role="seller"), make_user(role="seller")
    listing, elsewhere = _listing(owner), _listing(stranger)
    url = f"/v1/properties/{listing.id}/photos"
    theirs = _photos(client, jobs, auth_headers(stranger), 1)[0]
    body = assert_problem(
        client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [theirs]}),
        422,
        field="body.upload_ids[0]",
    )
    assert body["errors"][0]["message"] == "no such upload of yours"
    document = uploaded(client, jobs, auth_headers(owner), pdf(), purpose="document")["id"]
    assert_problem(
        client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [document]}),
        422,
        field="body.upload_ids[0]",
    )
    pending = upload(client, auth_headers(owner), png()).json["id"]  # not scanned yet
    assert_problem(client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [pending]}), 409)
    jobs.submitted.clear()  # its scan never runs in this test
    infected = uploaded(client, jobs, auth_headers(owner), b"\x89PNG\r\n\x1a\n" + eicar())["id"]
    assert_problem(client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [infected]}), 409)
    mine = _photos(client, jobs, auth_headers(owner), 1)[0]
    assert_problem(client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [mine, mine]}), 422)
    assert_problem(
        client.simulate_put(url, headers=auth_headers(owner), json={"upload_ids": [mine], "cover": theirs}),
        422,
        field="body.cover",
    )
    client.simulate_put(
        f"/v1/properties/{elsewhere.id}/photos", headers=auth_headers(stranger), json={"upload_ids": [theirs]}
    )
    assert PropertyMedia.select().where(PropertyMedia.property == listing.id).count() == 0


def test_documents_attach_to_a_listing_and_detach(client, jobs, auth_headers, admin):
    owner, agent = make_user(role="seller"), make_user(role="agent")
    listing = _listing(owner, agent=agent)
    url = f"/v1/properties/{listing.id}/documents"
    deed = uploaded(client, jobs, auth_headers(owner), pdf(b"deed"), purpose="document")["id"]
    report = uploaded(client, jobs, auth_headers(agent), pdf(b"inspection"), purpose="document")["id"]
    assert client.simulate_post(url, headers=auth_headers(owner), json={"upload_id": deed}).status_code == 201
    assert client.simulate_post(url, headers=auth_headers(agent), json={"upload_id": report}).status_code == 201
    assert_problem(client.simulate_post(url, headers=auth_headers(agent), json={"upload_id": report}), 409)
    assert_problem(client.simulate_post(url, headers=auth_headers(agent), json={"upload_id": deed}), 422)
    # Each sees their own; an admin sees both.
    assert [d["upload_id"] for d in client.simulate_get(url, headers=auth_headers(owner)).json["items"]] == [deed]
    assert [d["upload_id"] for d in client.simulate_get(url, headers=auth_headers(agent)).json["items"]] == [report]
    assert len(client.simulate_get(url, headers=auth_headers(admin)).json["items"]) == 2
    assert_problem(client.simulate_delete(f"{url}/{deed}", headers=auth_headers(agent)), 404)
    assert client.simulate_delete(f"{url}/{deed}", headers=auth_headers(owner)).status_code == 204
    assert Upload.get_by_id(deed).status == "clean"


def test_an_admin_rescans_an_upload(client, jobs, auth_headers, admin, user):
    photo = uploaded(client, jobs, auth_headers(user), png(), filename="p.png")
    resp = client.simulate_post(f"/v1/admin/uploads/{photo['id']}/rescan", headers=auth_headers(admin))
    assert resp.status_code == 202, resp.text
    assert resp.json["status"] == "pending_scan" and resp.json["scan_job_id"] != photo["scan_job_id"]
    assert download(client, photo["id"], auth_headers(user))[0] == 404  # not served while it is rescanned
    assert_problem(
        client.simulate_post(f"/v1/admin/uploads/{photo['id']}/rescan", headers=auth_headers(admin)), 409
    )  # one scan at a time
    assert jobs.run_pending() == 1
    assert download(client, photo["id"], auth_headers(user)) == (302, png())
    infected = uploaded(client, jobs, auth_headers(user), pdf(eicar()), purpose="document")
    assert_problem(client.simulate_post(f"/v1/admin/uploads/{infected['id']}/rescan", headers=auth_headers(admin)), 409)
    assert (
        AuditEntry.select()
        .where((AuditEntry.action == "upload.rescan_requested") & (AuditEntry.actor == admin.id))
        .count()
        == 1
    )


def test_deleting_an_upload_removes_its_files(client, jobs, auth_headers, user):
    from tests.services.uploads_api import keys_of

    photo = uploaded(client, jobs, auth_headers(user), jpeg_with_gps())
    assert len(keys_of(photo["id"])) == 3
    assert client.simulate_delete(f"/v1/uploads/{photo['id']}", headers=auth_headers(user)).status_code == 204
    assert keys_of(photo["id"]) == [] and Upload.get_or_none(Upload.id == photo["id"]) is None
