"""App tables and files through the example mapping: a Supabase-shaped source (auth, storage, public) whose files
sit on the local S3 server, imported in process, its files scanned by the real clamd."""

from __future__ import annotations

import contextlib
import pathlib
import uuid

import boto3
import pytest

from api.resources.property_media import photos_view
from models.accounts import User
from models.conversations import Conversation, ConversationParticipant, Message
from models.db import db
from models.favorites import Favorite
from models.file_rules import purpose_rules
from models.imports.mapping import parse_mapping
from models.imports.report import ImportReportRow
from models.imports.runs import total
from models.imports.targets import AVATAR_KEY
from models.jobs import Job
from models.properties import Property, PropertyHistory
from models.saved_searches import SavedSearch
from models.uploads import SCAN_KIND, PropertyMedia, Upload
from services.supabase_source import SupabaseSource
from services.supabase_storage import S3StorageSource
from tasks.imports import BadInput, ImportRequest, execute
from tasks.runtime import init_runtime
from tasks.uploads import scan_upload
from tests.api.conftest import RecordingJobQueue
from tests.conftest import make_settings
from tests.imports.supabase_app import PROJECT, create_app_schemas, load_app
from tests.services.backends import S3_CREDENTIALS, clamd_url, eicar, pdf, png, s3_endpoint, stored_keys

MAPPING = (pathlib.Path(__file__).parents[2] / "ops" / "import" / "example-mapping.toml").read_text()


@pytest.fixture(scope="session")
def app_schemas(source_database):
    create_app_schemas(source_database)
    return source_database


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, clamd_url=clamd_url())


@pytest.fixture
def runtime(settings, redis):
    return init_runtime(settings, redis=redis, init_db=False, jobs=RecordingJobQueue())


@pytest.fixture
def s3_source():
    """Supabase's buckets on the local S3 server (path-style, as Supabase's S3 endpoint is addressed)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint(), region_name="us-east-1", **S3_CREDENTIALS)
    for bucket in ("avatars", "listing-photos", "chat-files", "old-exports"):
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
    source = S3StorageSource(
        s3_endpoint(),
        region="us-east-1",
        access_key=S3_CREDENTIALS["aws_access_key_id"],
        secret_key=S3_CREDENTIALS["aws_secret_access_key"],
    )
    return client, source


@pytest.fixture
def world(source, app_schemas, source_users, s3_source):
    """The source's rows and files; every object but ``missing.png`` has its bytes on the S3 server."""
    client, _ = s3_source
    seller, buyer = source_users["bcrypt_2a"].id, source_users["bcrypt_2b"].id
    files = {
        f"avatars/{seller}/me.png": png((40, 40)),
        f"listing-photos/{seller}/front.png": png((80, 60)),
        f"listing-photos/{seller}/фото 2.png": png((60, 80)),
        f"listing-photos/{seller}/eicar.png": b"\x89PNG\r\n\x1a\n" + eicar(),
        f"listing-photos/{seller}/missing.png": None,
        f"listing-photos/{seller}/ghost.png": png(),
        f"listing-photos/{seller}/.emptyFolderPlaceholder": b"",
        f"chat-files/{buyer}/pre-approval.pdf": pdf(b"approved"),
        "old-exports/dump.bin": b"old",
    }
    for path, data in files.items():
        bucket, _, name = path.partition("/")
        if data is not None:
            client.put_object(Bucket=bucket, Key=name, Body=data)
    return load_app(app_schemas, source_users, files)


def run(source, runtime, s3_source, mapping=MAPPING, **options):
    collaborators = {
        "storage_source": s3_source[1],
        "storage": runtime.storage,
        "upload_rules": purpose_rules(runtime.settings),
    }
    return execute(ImportRequest(mapping=mapping, **options), source_url=source.url, collaborators=collaborators)


def scan_all() -> None:
    for job in Job.select().where((Job.kind == SCAN_KIND) & (Job.status == "queued")):
        scan_upload(str(job.id))


def reasons(run_row) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {
        (r["source_table"], r["source_key"]): (r["outcome"], r["reason"], r["detail"])
        for r in ImportReportRow.of_run(run_row.id)
    }


def test_app_tables_and_files_come_across_or_are_reported(source, source_users, world, runtime, s3_source):
    imported = run(source, runtime, s3_source)
    counts = imported.counts
    for table, row in counts.items():
        came = total(row, "inserted") + total(row, "updated") + total(row, "unchanged")
        assert row["read"] == came + total(row, "skipped") + total(row, "failed"), table
        assert total(row, "failed") == 0, (table, row)
    seller, buyer, agent = (source_users[n].id for n in ("bcrypt_2a", "bcrypt_2b", "bcrypt_2y"))
    report = reasons(imported)

    # Buckets and objects.
    assert counts["storage.buckets"]["read"] == 4 and counts["storage.buckets"]["skipped"] == {"bucket-not-mapped": 1}
    assert counts["storage.objects"]["read"] == 9
    assert counts["storage.objects"]["skipped"] == {
        "missing-object": 1,
        "missing-reference": 1,
        "folder-placeholder": 1,
        "bucket-not-mapped": 1,
    }
    assert total(counts["storage.objects"], "inserted") == 5
    assert report[("storage.objects", f'["listing-photos", "{seller}/missing.png"]')][1] == "missing-object"

    # Profiles: the avatar is the imported upload; text in every script survives.
    ana = User.get_by_id(seller)
    avatar = Upload.get_by_id(ana.user_metadata[AVATAR_KEY])
    assert (avatar.owner_id, avatar.purpose) == (uuid.UUID(seller), "avatar")
    assert ana.full_name == "Ana Lúcia Ferreira" and ana.user_metadata["bio"] == "Corretora 🏡 — São Paulo"
    assert User.get_by_id(agent).role == "agent" and User.get_by_id(agent).full_name == "陈 静"
    assert counts["public.profiles"]["skipped"] == {"missing-reference": 1}

    # Listings: money exact, enums mapped, JSON paths read, ghosts and bad values reported.
    ok = Property.get_by_id(world.listing_ok)
    assert (ok.list_price, ok.association_fee, ok.standard_status) == (125000050, 12050, "Active")
    assert (ok.living_area, ok.year_built, ok.features) == (1850, 1998, ["pool", "garage"])
    assert ok.public_remarks == "Casa 🏡 — 海景 — بيت" and ok.city == "São Paulo"
    sold = Property.get_by_id(world.listing_sold)
    assert (sold.standard_status, sold.list_price, sold.close_price, sold.living_area) == (
        "Closed",
        34999999,
        34000000,
        1200,
    )
    assert report[("public.listings", world.listing_ghost_owner)][1] == "missing-reference"
    assert "owner_id" in report[("public.listings", world.listing_ghost_owner)][2]
    assert report[("public.listings", world.listing_bad_money)][1] == "invalid-value"
    assert "hoa_fee" in report[("public.listings", world.listing_bad_money)][2]
    assert report[("public.listings", world.listing_bad_status)][1] == "invalid-value"
    assert not Property.select().where(Property.id == world.listing_ghost_owner).exists()
    assert report[("public.listings", world.listing_ok)][1] == "missing-file"  # came across, one photo did not
    assert db.execute_sql("SELECT 1 FROM search_dirty WHERE property_id = %s", (world.listing_ok,)).fetchone()

    # Photos: attached in the source's order; shown only once clean; the infected one never.
    media = list(PropertyMedia.select().where(PropertyMedia.property == ok.id).order_by(PropertyMedia.position))
    names = [Upload.get_by_id(m.upload_id).filename for m in media]
    assert names == ["front.png", "фото 2.png", "eicar.png"] and media[0].is_cover
    assert all(Upload.get_by_id(m.upload_id).status == "pending_scan" for m in media)
    assert photos_view(ok, None)["items"] == []  # nothing is shown before its scan
    scan_all()
    shown = [item["upload_id"] for item in photos_view(ok, None)["items"]]
    assert shown == [str(media[0].upload_id), str(media[1].upload_id)]
    statuses = [Upload.get_by_id(m.upload_id).status for m in media]
    assert statuses == ["clean", "clean", "infected"]
    infected = Upload.get_by_id(media[2].upload_id)
    assert infected.storage_key is None and "Eicar" in (infected.signature or "")
    quarantined = reasons(imported)[("storage.objects", f'["listing-photos", "{seller}/eicar.png"]')]
    assert quarantined[:2] == ("skipped", "infected")

    # Favorites, conversations, messages, saved searches.
    assert Favorite.select().where((Favorite.user == buyer) & (Favorite.property == ok.id)).exists()
    assert counts["public.favorites"]["skipped"] == {"missing-reference": 2}
    conversation = Conversation.get(property=ok.id)
    participants = ConversationParticipant.select().where(ConversationParticipant.conversation == conversation.id)
    people = {str(p.user_id) for p in participants}
    assert people == {buyer, seller}
    messages = list(Message.select().where(Message.conversation == conversation.id).order_by(Message.id))
    assert [m.body for m in messages] == ["Здравствуйте! Is it still available? 🙂", "Sim, está disponível."]
    attachment = Upload.get_by_id(messages[1].attachments[0])
    assert (attachment.purpose, attachment.filename, attachment.status) == ("attachment", "pre-approval.pdf", "clean")
    assert Conversation.get_by_id(conversation.id).last_message_id == messages[1].id
    assert counts["public.messages"]["skipped"] == {"missing-reference": 1}
    saved = SavedSearch.get(user=buyer)
    assert counts["public.saved_searches"]["skipped"] == {"invalid-value": 1}  # a query the search refuses
    assert (saved.name, saved.alerts) == ("São Paulo houses", True)
    assert saved.query == {"city": "São Paulo", "min_price": 100000}

    # A second run changes nothing and says so.
    uploads_before = Upload.select().count()
    again = run(source, runtime, s3_source)
    for table, row in again.counts.items():
        assert total(row, "inserted") == total(row, "updated") == 0, (table, row)
        assert total(row, "unchanged") + total(row, "skipped") == row["read"], table
    assert Upload.select().count() == uploads_before


def test_a_column_neither_mapped_nor_ignored_stops_the_import_before_anything_is_written(
    source, world, runtime, s3_source
):
    mapping = MAPPING.replace('bio = "user_metadata.bio"\n', "")
    with pytest.raises(BadInput) as caught:
        run(source, runtime, s3_source, mapping=mapping)
    assert any("columns neither mapped nor ignored: bio" in problem for problem in caught.value.problems)
    assert not Upload.select().exists() and not Property.select().exists()


def test_a_storage_url_in_a_text_column_is_rewritten_to_the_imported_file(source, world, runtime, s3_source):
    # The remarks column holds a public URL of an imported photo: it becomes the Hearth download link.
    source.execute(
        "UPDATE public.listings SET description = %s WHERE id = %s",
        (f"{PROJECT}/storage/v1/object/public/listing-photos/{world_seller(source)}/front.png", world.listing_sold),
    )
    rule = 'description = { field = "public_remarks", transform = "storage_url" }'
    mapping = MAPPING.replace('description = "public_remarks"', rule)
    run(source, runtime, s3_source, mapping=mapping)
    remarks = Property.get_by_id(world.listing_sold).public_remarks
    front = Upload.get(filename="front.png")
    assert remarks == f"/v1/uploads/{front.id}/download"
    # A listing whose remarks are ordinary text keeps them.
    assert Property.get_by_id(world.listing_ok).public_remarks == "Casa 🏡 — 海景 — بيت"


def world_seller(source) -> str:
    with source.conn.cursor() as cur:
        cur.execute("SELECT owner_id FROM public.listings LIMIT 1")
        return str(cur.fetchone()[0])


def test_a_delta_picks_up_a_sale_a_new_row_and_a_deletion(source, source_users, world, runtime, s3_source):
    for table in ("public.listings", "storage.objects"):
        source.execute(f"UPDATE {table} SET updated_at = now() - interval '1 day'")  # noqa: S608 - fixed names
    run(source, runtime, s3_source)
    buyer = source_users["bcrypt_2b"].id
    listing = Property.get_by_id(world.listing_ok)
    assert listing.standard_status == "Active"
    source.execute(
        "UPDATE public.listings SET status = 'sold', sold_price = '1200000.00', sold_on = '2026-11-30',"
        " updated_at = now() WHERE id = %s",
        (world.listing_ok,),
    )
    source.execute("INSERT INTO public.favorites (user_id, listing_id) VALUES (%s, %s)", (buyer, world.listing_sold))
    source.execute("DELETE FROM public.saved_searches WHERE id = %s", (world.search,))

    delta = run(source, runtime, s3_source, since="last", apply_deletes=True)
    listings = delta.counts["public.listings"]
    assert total(listings, "updated") == 1 and listings["read"] == 1  # only the changed row was read
    sold = Property.get_by_id(world.listing_ok)
    assert (sold.standard_status, sold.close_price, sold.version) == ("Closed", 120000000, listing.version + 2)
    statuses = [
        h.new_value
        for h in PropertyHistory.select()
        .where((PropertyHistory.property == sold.id) & (PropertyHistory.field == "standard_status"))
        .order_by(PropertyHistory.id)
    ]
    assert statuses == ["Active", "Pending", "Closed"]  # the step the delta did not see, walked through
    assert Favorite.select().where((Favorite.user == buyer) & (Favorite.property == world.listing_sold)).exists()
    assert total(delta.counts["public.favorites"], "inserted") == 1
    assert not SavedSearch.select().where(SavedSearch.user == buyer).exists()
    assert delta.counts["public.saved_searches"]["deletes_applied"] == 1
    assert delta.counts["storage.objects"]["read"] == 0  # no file changed


def test_a_dry_run_reports_what_a_run_would_and_copies_nothing(source, world, runtime, s3_source):
    dry = run(source, runtime, s3_source, dry_run=True)
    assert not Upload.select().exists() and not Property.select().exists()
    assert stored_keys(runtime.storage) == []
    real = run(source, runtime, s3_source)
    for table in ("public.listings", "public.profiles", "public.messages", "storage.objects"):
        assert dry.counts[table] == real.counts[table], table


def test_a_resumed_table_continues_after_its_checkpoint_whatever_its_key(source, world):
    steps = {step.name: step for step in parse_mapping(MAPPING).steps()}
    reader = SupabaseSource.connect(source.url)
    try:
        for name in ("public.messages", "public.favorites", "public.listings", "storage.objects"):
            rows = list(steps[name].rows(reader, None))
            assert len(rows) >= 3, name
            rest = list(steps[name].rows(reader, None, after=rows[0].position))
            assert [row.key for row in rest] == [row.key for row in rows[1:]], name
    finally:
        reader.close()
