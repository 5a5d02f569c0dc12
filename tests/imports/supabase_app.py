"""The ``storage`` schema (Supabase Storage's columns, from its migrations) and a small real-estate app schema
(the one ops/import/example-mapping.toml expects), with rows that exercise every transform and every report."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

from tests.imports.supabase_db import NOW, SourceDatabase

STORAGE_SCHEMA = """
DROP SCHEMA IF EXISTS storage CASCADE;
CREATE SCHEMA storage;
CREATE TABLE storage.buckets (
    id text NOT NULL PRIMARY KEY,
    name text NOT NULL,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    public boolean DEFAULT false,
    avif_autodetection boolean DEFAULT false,
    file_size_limit bigint,
    allowed_mime_types text[],
    owner_id text,
    type text NOT NULL DEFAULT 'STANDARD'
);
CREATE TABLE storage.objects (
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    bucket_id text REFERENCES storage.buckets (id),
    name text,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    last_accessed_at timestamptz DEFAULT now(),
    metadata jsonb,
    path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
    version text,
    owner_id text,
    user_metadata jsonb,
    level int
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects (bucket_id, name);
"""

APP_SCHEMA = """
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA public;
CREATE TABLE public.profiles (
    id uuid PRIMARY KEY, full_name text, role text, phone text, avatar_url text, bio text,
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now()
);
CREATE TABLE public.listings (
    id uuid PRIMARY KEY, owner_id uuid, title text, description text, price numeric(12,2), sold_price text,
    sold_on date, status text, kind text, beds int, baths int, street text, city text, state text, zip text,
    lat float8, lng float8, details jsonb, hoa_fee text, photos text[],
    created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now()
);
CREATE TABLE public.favorites (user_id uuid, listing_id uuid, created_at timestamptz DEFAULT now(),
    PRIMARY KEY (user_id, listing_id));
CREATE TABLE public.conversations (id uuid PRIMARY KEY, listing_id uuid, buyer_id uuid,
    created_at timestamptz DEFAULT now());
CREATE TABLE public.messages (id bigint PRIMARY KEY, conversation_id uuid, sender_id uuid, content text,
    attachment_url text, created_at timestamptz DEFAULT now(), read_at timestamptz);
CREATE TABLE public.saved_searches (id uuid PRIMARY KEY, user_id uuid, name text, filters jsonb, notify boolean,
    created_at timestamptz DEFAULT now());
"""

PROJECT = "https://abcdefghijklmnop.supabase.co"
BUCKETS = {"avatars": True, "listing-photos": True, "chat-files": False, "old-exports": False}


def create_app_schemas(source: SourceDatabase) -> None:
    source.execute(STORAGE_SCHEMA)
    source.execute(APP_SCHEMA)


def insert(source: SourceDatabase, table: str, **values) -> None:
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    params = [json.dumps(v) if isinstance(v, dict) else v for v in values.values()]
    source.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", params)  # noqa: S608 - test names only


def add_object(source: SourceDatabase, bucket: str, name: str, owner: str | None, data: bytes | None) -> dict:
    """A ``storage.objects`` row (as Supabase writes it: ``owner`` and ``owner_id`` both set)."""
    metadata = {"mimetype": "image/png", "size": len(data or b""), "eTag": f'"{uuid.uuid4().hex}"'}
    insert(
        source,
        "storage.objects",
        bucket_id=bucket,
        name=name,
        owner=owner,
        owner_id=owner,
        metadata=metadata,
        version=str(uuid.uuid4()),
        level=name.count("/") + 1,
    )
    return {"bucket": bucket, "name": name, "data": data}


class AppData:
    """Ids of the rows ``load_app`` wrote, by what the tests call them."""

    def __init__(self):
        self.listing_ok = str(uuid.uuid4())
        self.listing_sold = str(uuid.uuid4())
        self.listing_ghost_owner = str(uuid.uuid4())
        self.listing_bad_money = str(uuid.uuid4())
        self.listing_bad_status = str(uuid.uuid4())
        self.conversation = str(uuid.uuid4())
        self.conversation_ghost = str(uuid.uuid4())
        self.search = str(uuid.uuid4())
        self.ghost_user = str(uuid.uuid4())


def load_app(source: SourceDatabase, users: dict, files: dict[str, bytes]) -> AppData:
    """Buckets, objects (``files`` by object name; None: a row without bytes) and app rows."""
    source.execute(
        "TRUNCATE storage.objects, storage.buckets, public.profiles, public.listings, public.favorites,"
        " public.conversations, public.messages, public.saved_searches"
    )
    for bucket, public in BUCKETS.items():
        insert(source, "storage.buckets", id=bucket, name=bucket, public=public, file_size_limit=5 * 1024 * 1024)
    seller, buyer, agent = users["bcrypt_2a"].id, users["bcrypt_2b"].id, users["bcrypt_2y"].id
    owners = {"avatars/": seller, "listing-photos/": seller, "chat-files/": buyer, "old-exports/": seller}
    for path, data in files.items():
        bucket, _, name = path.partition("/")
        owner = users["deleted"].id if "ghost" in name else owners[bucket + "/"]
        add_object(source, bucket, name, owner, data)
    ids = AppData()

    insert(
        source,
        "public.profiles",
        id=seller,
        full_name="Ana Lúcia Ferreira",
        role="seller",
        phone="15550001111",
        avatar_url=f"{PROJECT}/storage/v1/object/public/avatars/{seller}/me.png",
        bio="Corretora 🏡 — São Paulo",
    )
    insert(source, "public.profiles", id=buyer, full_name="Бо Петров", role="buyer", avatar_url=None, bio="")
    insert(source, "public.profiles", id=agent, full_name="陈 静", role="realtor", avatar_url=None, bio="经纪人")
    insert(source, "public.profiles", id=ids.ghost_user, full_name="Ghost", role="buyer")

    def listing(listing_id, **values):
        base = {
            "id": listing_id,
            "owner_id": seller,
            "title": "t",
            "description": "Casa 🏡 — 海景 — بيت",
            "price": None,
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
            "details": {"sqft": 1850, "year_built": 1998, "amenities": ["pool", "garage"]},
            "hoa_fee": "120.50",
            "photos": [],
        }
        base.update(values)
        insert(source, "public.listings", **base)

    listing(
        ids.listing_ok,
        price=decimal.Decimal("1250000.50"),
        photos=[
            f"{PROJECT}/storage/v1/object/public/listing-photos/{seller}/front.png",
            f"/storage/v1/object/sign/listing-photos/{seller}/%D1%84%D0%BE%D1%82%D0%BE%202.png?token=eyJhbGciOi.x.y",
            f"listing-photos/{seller}/eicar.png",
            f"{PROJECT}/storage/v1/object/public/listing-photos/{seller}/missing.png",
        ],
    )
    listing(
        ids.listing_sold,
        price=decimal.Decimal("349999.99"),
        sold_price="340000",
        sold_on=datetime.date(2025, 3, 1),
        status="sold",
        hoa_fee=None,
        details={"sqft": "1200"},
    )
    listing(ids.listing_ghost_owner, owner_id=ids.ghost_user, price=decimal.Decimal("100000"))
    listing(ids.listing_bad_money, price=decimal.Decimal("5000"), hoa_fee="12.345")
    listing(ids.listing_bad_status, price=decimal.Decimal("5000"), status="auction")

    insert(source, "public.favorites", user_id=buyer, listing_id=ids.listing_ok)
    insert(source, "public.favorites", user_id=buyer, listing_id=ids.listing_ghost_owner)  # a listing not imported
    insert(source, "public.favorites", user_id=ids.ghost_user, listing_id=ids.listing_ok)

    insert(
        source,
        "public.conversations",
        id=ids.conversation,
        listing_id=ids.listing_ok,
        buyer_id=buyer,
        created_at=NOW - datetime.timedelta(days=3),
    )
    insert(
        source, "public.conversations", id=ids.conversation_ghost, listing_id=ids.listing_ok, buyer_id=ids.ghost_user
    )
    insert(
        source,
        "public.messages",
        id=1,
        conversation_id=ids.conversation,
        sender_id=buyer,
        content="Здравствуйте! Is it still available? 🙂",
        created_at=NOW - datetime.timedelta(days=3),
    )
    insert(
        source,
        "public.messages",
        id=2,
        conversation_id=ids.conversation,
        sender_id=seller,
        content="Sim, está disponível.",
        attachment_url=f"chat-files/{buyer}/pre-approval.pdf",
    )
    insert(
        source, "public.messages", id=3, conversation_id=ids.conversation_ghost, sender_id=ids.ghost_user, content="boo"
    )

    insert(
        source,
        "public.saved_searches",
        id=ids.search,
        user_id=buyer,
        name="São Paulo houses",
        filters={"city": "São Paulo", "min_price": 100000},
        notify=None,
    )
    insert(source, "public.saved_searches", id=str(uuid.uuid4()), user_id=buyer, name="bad", filters={"colour": "red"})
    return ids
