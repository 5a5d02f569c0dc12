"""Backups that restore: a populated Hearth → ``hearth backup`` → ``hearth restore`` into a fresh database and
storage → every table's rows and every object's bytes are equal. Real PostgreSQL, pg_dump/pg_restore, the
test S3 server, and the ``hearth`` command as a process.

The data is committed (pg_dump sees only committed rows), in a database of this module's own.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
from psycopg2 import sql

from models import migrate
from models.conversations import Conversation, ConversationParticipant, Message
from models.db import connect_args, db, make_database
from models.escrow_ledger import post_deposit
from models.jobs import Job
from models.ledger import check_invariants
from models.uploads import Upload
from services.storage import LocalDiskStorage, S3Storage
from settings import ROOT
from tests.conftest import create_database, drop_database
from tests.escrow_deals import deposit_payment, fund, make_deal
from tests.factories import make_user
from tests.services.backends import S3_CREDENTIALS, s3_endpoint

# Bytes of every kind an upload holds: text, binary with every byte value, empty, and larger than a chunk.
OBJECTS = {
    "files/aa/photo.png": bytes(range(256)) * 40,
    "files/bb/contract.pdf": b"%PDF-1.7 contract\n" * 1000,
    "quarantine/cc/empty.pdf": b"",
    "exports/u1/big.zip": os.urandom(2 * 1024 * 1024 + 17),
}
BASE_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("HEARTH_", "BACKUP_", "AWS_")) and k not in ("DATABASE_URL", "REDIS_URL", "STORAGE_URL")
}


def hearth(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=ROOT,
        env=BASE_ENV | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def environment(database_url: str, storage_url: str, var_dir: pathlib.Path) -> dict[str, str]:
    return {
        "HEARTH_ENV": "test",
        "HEARTH_VAR_DIR": str(var_dir),
        "DATABASE_URL": database_url,
        "STORAGE_URL": storage_url,
        "PUBLIC_URL": "http://hearth.test",
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
    }


def new_bucket() -> tuple[S3Storage, str]:
    endpoint = s3_endpoint()
    bucket = f"hearth-backup-{uuid.uuid4().hex[:12]}"
    store = S3Storage(bucket, endpoint=endpoint, access_key="testing", secret_key="testing")
    store.create_bucket()
    return store, f"s3://{bucket}?endpoint={endpoint}&region=us-east-1"


def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of all its rows in a fixed order."""
    with contextlib.closing(psycopg2.connect(**_psycopg(url))) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        digests = {}
        for schema, name in sorted(cur.fetchall()):
            table = sql.Identifier(schema, name)
            cur.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
                ).format(table)
            )
            count, digest = cur.fetchone()
            digests[f"{schema}.{name}"] = (count, digest)
    return digests


def _psycopg(url: str) -> dict:
    return {("dbname" if k == "database" else k): v for k, v in connect_args(url).items()}


def stored(storage) -> dict[str, str]:
    return {key: hashlib.sha256(storage.get(key)).hexdigest() for key, _ in storage.list_objects()}


@contextlib.contextmanager
def bound_to(url: str):
    """The models' database proxy on ``url`` for a while (the session's database afterwards)."""
    previous = db.obj
    database = make_database(url, max_connections=2)
    db.initialize(database)
    try:
        with database.connection_context():
            yield database
    finally:
        database.close_all()
        db.initialize(previous)


def populate() -> None:
    """Users, listings, an accepted offer and its escrow funded through the ledger, a conversation,
    uploads whose bytes are stored, and jobs."""
    deal = make_deal(backup_buyers=1)
    payment = deposit_payment(deal)
    post_deposit(deal.escrow, payment.id, deal.escrow.amount)
    fund(deal)
    chat = Conversation.create(property=deal.listing.id, buyer=deal.buyer.id)
    for person, role in ((deal.buyer, "buyer"), (deal.seller, "owner")):
        ConversationParticipant.create(conversation=chat.id, user=person.id, role=role)
    Message.create(conversation=chat.id, sender=deal.buyer.id, body="Is the roof new? Ünïcode ✓")
    Message.create(conversation=chat.id, sender=deal.seller.id, body="Yes.\nTwo lines, a tab\there.")
    types = {"png": "image/png", "pdf": "application/pdf"}
    for key, data in OBJECTS.items():
        if key.startswith("exports/"):
            continue  # an export archive: no upload row
        clean = key.startswith("files/")
        Upload.create(
            owner=deal.buyer.id,
            purpose="document",
            status="clean" if clean else "pending_scan",
            content_type=types[key.rsplit(".", 1)[1]] if clean else None,
            filename=key.rsplit("/", 1)[1],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            storage_key=key,
        )
    owner = make_user()
    Job.create(kind="exports.build_export", queue="exports", owner=owner.id, input={"n": 1})
    Job.create(kind="search.rebuild_index", status="succeeded", result={"generation": 3})
    assert check_invariants() == []


@pytest.fixture(scope="module")
def hearth_data(tmp_path_factory):
    """A populated Hearth: its database URL and its objects in a directory and in a bucket."""
    name, url = create_database("hearth_backup_src")
    try:
        with bound_to(url) as database:
            migrate.upgrade(database)
            with database.atomic():
                populate()
        local_root = tmp_path_factory.mktemp("live-storage")
        local = LocalDiskStorage(local_root, public_url="http://hearth.test", secret="s" * 32)
        bucket, bucket_url = new_bucket()
        for key, data in OBJECTS.items():
            local.put(key, data)
            bucket.put(key, data)
        yield {"url": url, "local": f"file://{local_root}", "s3": bucket_url, "bucket": bucket}
    finally:
        drop_database(name)


@pytest.fixture
def fresh_database():
    names = []

    def make() -> str:
        name, url = create_database("hearth_backup_dst")
        names.append(name)
        return url

    yield make
    for name in names:
        drop_database(name)


def test_a_backup_in_a_directory_restores_every_row_and_every_object_byte(hearth_data, fresh_database, tmp_path):
    source = environment(hearth_data["url"], hearth_data["local"], tmp_path / "var")
    done = hearth("backup", str(tmp_path / "backups"), "--with-objects", env=source)
    assert done.returncode == 0, done.stderr
    [folder] = (tmp_path / "backups").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["migration_head"] == sorted(migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))[-1].stem
    assert manifest["tables"]["public.users"] >= 6 and manifest["tables"]["public.uploads"] == 3
    assert manifest["objects"] == {"count": len(OBJECTS), "bytes": sum(map(len, OBJECTS.values())), "included": True}

    target_url, target_storage = fresh_database(), tmp_path / "restored-storage"
    started = time.monotonic()
    restored = hearth(
        "restore", str(tmp_path / "backups"), env=environment(target_url, f"file://{target_storage}", tmp_path)
    )
    elapsed = time.monotonic() - started
    assert restored.returncode == 0, restored.stderr
    print(f"restore of {sum(manifest['tables'].values())} rows and {len(OBJECTS)} objects: {elapsed:.2f}s")

    assert table_digests(target_url) == table_digests(hearth_data["url"])
    restored_storage = LocalDiskStorage(target_storage, public_url="http://x", secret="s" * 32)
    assert {key: restored_storage.get(key) for key, _ in restored_storage.list_objects()} == OBJECTS


def test_a_backup_in_s3_restores_into_a_fresh_database_and_bucket(hearth_data, fresh_database, tmp_path):
    backups, _ = new_bucket()
    target = f"s3://{backups.bucket}/hearth/prod?endpoint={s3_endpoint()}"
    done = hearth("backup", target, "--with-objects", env=environment(hearth_data["url"], hearth_data["s3"], tmp_path))
    assert done.returncode == 0, done.stderr
    assert any(key.endswith("/manifest.json") and key.startswith("hearth/prod/") for key, _ in backups.list_objects())

    restored_bucket, restored_bucket_url = new_bucket()
    target_url = fresh_database()
    restored = hearth("restore", target, env=environment(target_url, restored_bucket_url, tmp_path))
    assert restored.returncode == 0, restored.stderr
    assert table_digests(target_url) == table_digests(hearth_data["url"])
    assert stored(restored_bucket) == stored(hearth_data["bucket"])
    assert {key: restored_bucket.get(key) for key, _ in restored_bucket.list_objects()} == OBJECTS


def test_restore_refuses_a_database_or_storage_with_data_unless_forced(hearth_data, fresh_database, tmp_path):
    source = environment(hearth_data["url"], hearth_data["local"], tmp_path / "var")
    assert hearth("backup", str(tmp_path / "b"), "--with-objects", env=source).returncode == 0
    before = table_digests(hearth_data["url"])

    refused = hearth("restore", str(tmp_path / "b"), env=source)
    assert refused.returncode == 2
    assert "refusing to restore over existing data" in refused.stderr and "--force" in refused.stderr
    assert table_digests(hearth_data["url"]) == before

    # A database holding something else is replaced whole with --force.
    target_url = fresh_database()
    with contextlib.closing(psycopg2.connect(**_psycopg(target_url))) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE leftovers (id int); INSERT INTO leftovers VALUES (1)")
        conn.commit()
    storage_url = f"file://{tmp_path / 'other-storage'}"
    env = environment(target_url, storage_url, tmp_path)
    assert hearth("restore", str(tmp_path / "b"), env=env).returncode == 2
    forced = hearth("restore", str(tmp_path / "b"), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert table_digests(target_url) == before


def test_without_the_objects_restore_checks_the_live_storage_has_them(hearth_data, fresh_database, tmp_path):
    source = environment(hearth_data["url"], hearth_data["local"], tmp_path / "var")
    assert hearth("backup", str(tmp_path / "b"), env=source).returncode == 0
    [folder] = (tmp_path / "b").iterdir()
    assert not (folder / "objects").exists()

    # The storage the objects live in is still there: it is only read, and every checksum matches.
    fine = hearth("restore", str(folder), env=environment(fresh_database(), hearth_data["local"], tmp_path))
    assert fine.returncode == 0, fine.stderr
    # An empty storage: every object is reported missing.
    empty = hearth("restore", str(folder), env=environment(fresh_database(), f"file://{tmp_path / 'none'}", tmp_path))
    assert empty.returncode == 1
    assert all(f"object {key}: missing" in empty.stderr for key in OBJECTS)


def test_verify_restores_into_a_scratch_database_and_finds_a_tampered_object(hearth_data, tmp_path):
    source = environment(hearth_data["url"], hearth_data["local"], tmp_path / "var")
    assert hearth("backup", str(tmp_path / "b"), "--with-objects", env=source).returncode == 0
    before = table_digests(hearth_data["url"])

    good = hearth("backup", "verify", str(tmp_path / "b"), env=source)
    assert good.returncode == 0, good.stderr
    assert "match the manifest" in good.stdout

    [folder] = (tmp_path / "b").iterdir()
    (folder / "objects" / "files" / "bb" / "contract.pdf").write_bytes(b"%PDF-1.7 altered")
    bad = hearth("backup", "verify", str(tmp_path / "b"), env=source)
    assert bad.returncode == 1
    assert "files/bb/contract.pdf" in bad.stderr
    assert table_digests(hearth_data["url"]) == before
    with contextlib.closing(psycopg2.connect(**_psycopg(hearth_data["url"]))) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'hearth_verify_%%'")
        assert cur.fetchone()[0] == 0

    # A damaged dump is refused before anything is restored.
    (folder / "database.dump").write_bytes(b"not a dump")
    damaged = hearth("backup", "verify", str(folder), env=source)
    assert damaged.returncode == 1 and "database.dump does not match its checksum" in damaged.stderr


def test_retention_keeps_the_newest_complete_backups_and_cleans_incomplete_ones(hearth_data, tmp_path):
    from ops.backup import complete_backups, create_backup
    from ops.backup_target import open_target
    from tests.conftest import make_settings

    settings = make_settings(hearth_data["url"], tmp_path, storage_url=hearth_data["local"])
    target = open_target(str(tmp_path / "b"), settings)
    made = [create_backup(settings, hearth_data["url"], target, with_objects=False, keep=2).name for _ in range(3)]
    # A run that died half way: a folder without a manifest.
    (tmp_path / "b" / "20000101T000000Z").mkdir()
    (tmp_path / "b" / "20000101T000000Z" / "database.dump").write_bytes(b"partial")
    assert complete_backups(target) == made[1:]

    done = hearth(
        "backup",
        str(tmp_path / "b"),
        "--keep",
        "2",
        env=environment(hearth_data["url"], hearth_data["local"], tmp_path),
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(names) == 2 and names[0] == made[2] and "20000101T000000Z" not in names
    assert complete_backups(target) == names


def test_backups_made_in_one_second_are_named_in_the_order_they_were_made():
    from ops.backup import _name_for

    moment = datetime.datetime(2026, 12, 7, 20, 21, 44, tzinfo=datetime.UTC)
    taken: list[str] = []
    for _ in range(11):
        taken.append(_name_for(moment, taken))
    assert taken[:3] == ["20261207T202144Z", "20261207T202144Z-002", "20261207T202144Z-003"]
    assert sorted(taken) == taken  # retention keeps the last ones by name: the tenth sorts after the ninth
    # Retention removed the first ones: their names are not handed out again in that second.
    assert _name_for(moment, taken[-2:]) == "20261207T202144Z-012"
