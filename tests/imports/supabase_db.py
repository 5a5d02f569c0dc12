"""A Supabase-shaped source database for the import tests.

The ``auth`` schema has GoTrue's column names and types (from its migrations): ``auth.users`` with
its token columns, generated ``confirmed_at``, ``is_sso_user``, ``deleted_at``, ``is_anonymous``;
``auth.identities`` with its generated ``email``. The users cover every kind the import must treat
differently. Passwords are made with the ``bcrypt`` library, one user per prefix.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid

import bcrypt
import psycopg2

AUTH_SCHEMA = """
CREATE SCHEMA auth;
CREATE TABLE auth.users (
    instance_id uuid,
    id uuid NOT NULL PRIMARY KEY,
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token varchar(255),
    confirmation_sent_at timestamptz,
    recovery_token varchar(255),
    recovery_sent_at timestamptz,
    email_change_token_new varchar(255),
    email_change varchar(255),
    email_change_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz,
    updated_at timestamptz,
    phone text UNIQUE DEFAULT NULL,
    phone_confirmed_at timestamptz,
    phone_change text DEFAULT '',
    phone_change_token varchar(255) DEFAULT '',
    phone_change_sent_at timestamptz,
    confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current varchar(255) DEFAULT '',
    email_change_confirm_status smallint DEFAULT 0,
    banned_until timestamptz,
    reauthentication_token varchar(255) DEFAULT '',
    reauthentication_sent_at timestamptz,
    is_sso_user boolean NOT NULL DEFAULT false,
    deleted_at timestamptz,
    is_anonymous boolean NOT NULL DEFAULT false
);
CREATE TABLE auth.identities (
    provider_id text NOT NULL,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    identity_data jsonb NOT NULL,
    provider text NOT NULL,
    last_sign_in_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    email text GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider)
);
"""

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def bcrypt_hash(password: str, prefix: str) -> str:
    """A bcrypt hash with ``prefix`` ($2a$, $2b$ or $2y$; PHP's $2y$ is $2b$ under another name)."""
    salt = bcrypt.gensalt(rounds=4, prefix=b"2a" if prefix == "$2a$" else b"2b")
    hashed = bcrypt.hashpw(password.encode(), salt).decode()
    return prefix + hashed[4:]


@dataclasses.dataclass
class SourceUser:
    email: str | None
    password: str | None = None
    prefix: str = "$2b$"
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    confirmed: bool = True
    created_at: datetime.datetime = NOW - 30 * DAY
    meta: dict = dataclasses.field(default_factory=dict)
    app_meta: dict = dataclasses.field(default_factory=lambda: {"provider": "email", "providers": ["email"]})
    phone: str | None = None
    phone_confirmed: bool = False
    banned_until: datetime.datetime | None = None
    deleted_at: datetime.datetime | None = None
    anonymous: bool = False
    sso: bool = False
    identities: list[tuple[str, str, dict]] = dataclasses.field(default_factory=list)


def population() -> dict[str, SourceUser]:
    """Every kind of user, by a name the tests use."""
    users = {
        "bcrypt_2a": SourceUser("ana@example.com", "old-pass-2a-quartz", "$2a$", meta={"full_name": "Ana Lúcia"}),
        "bcrypt_2b": SourceUser("bo@example.com", "old-pass-2b-quartz", "$2b$", meta={"name": "Бо Петров"}),
        "bcrypt_2y": SourceUser("cy@example.com", "old-pass-2y-quartz", "$2y$", meta={"full_name": "陈 静 🏡"}),
        "arabic": SourceUser("dalia@example.com", "old-pass-dalia-1", meta={"full_name": "داليا حسن"}),
        "no_name": SourceUser("emoji.person@example.com", "old-pass-emoji-1", meta={"avatar": "🙂"}),
        "unconfirmed": SourceUser("unconfirmed@example.com", "old-pass-unconf-1", confirmed=False),
        "phone": SourceUser(
            "phone@example.com",
            "old-pass-phone-1",
            phone="15551234567",
            phone_confirmed=True,
            app_meta={"provider": "email", "providers": ["email", "phone"], "role": "seller"},
        ),
        "oauth": SourceUser(
            "gina@example.com",
            None,
            app_meta={"provider": "google", "providers": ["google"]},
            meta={"full_name": "Gina Google", "avatar_url": "https://lh3.example/a.png"},
        ),
        "sso": SourceUser("sam@corp.example", None, sso=True, app_meta={"provider": "sso:corp", "providers": []}),
        "anonymous": SourceUser(None, None, anonymous=True, app_meta={}),
        "deleted": SourceUser("gone@example.com", "old-pass-gone-1", deleted_at=NOW - 2 * DAY),
        "banned_future": SourceUser("banned@example.com", "old-pass-banned-1", banned_until=NOW + 10 * DAY),
        "banned_past": SourceUser("was.banned@example.com", "old-pass-wasban-1", banned_until=NOW - 10 * DAY),
        "dup_first": SourceUser("Twin@Example.com", "old-pass-twin-1", created_at=NOW - 40 * DAY),
        "dup_second": SourceUser("twin@example.com", "old-pass-twin-2", created_at=NOW - 20 * DAY),
        "admin_claim": SourceUser("claims.admin@example.com", "old-pass-admin-1", app_meta={"role": "admin"}),
    }
    users["oauth"].identities.append(("google", "109876543210", {"email": "gina@example.com", "sub": "109876543210"}))
    users["sso"].identities.append(("sso:corp", "sam-at-corp", {"email": "sam@corp.example"}))
    users["bcrypt_2a"].identities.append(("email", users["bcrypt_2a"].id, {"email": "ana@example.com"}))
    return users


# Imported (no-password ones included) versus not imported, by population name.
IMPORTED = {
    "bcrypt_2a",
    "bcrypt_2b",
    "bcrypt_2y",
    "arabic",
    "no_name",
    "unconfirmed",
    "phone",
    "oauth",
    "sso",
    "banned_future",
    "banned_past",
    "dup_first",
    "admin_claim",
}
NOT_IMPORTED = {"anonymous": "anonymous", "deleted": "deleted", "dup_second": "duplicate-email"}


class SourceDatabase:
    """The source database: created once, its rows replaced per test (committed: the import reads it)."""

    def __init__(self, url: str):
        self.url = url
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True

    def create_schema(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS auth CASCADE")
            cur.execute(AUTH_SCHEMA)

    def reset(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("TRUNCATE auth.identities, auth.users")

    def add(self, user: SourceUser) -> None:
        confirmed_at = user.created_at + datetime.timedelta(minutes=5) if user.confirmed else None
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
                " confirmation_token, recovery_token, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,"
                " phone, phone_confirmed_at, banned_until, is_sso_user, deleted_at, is_anonymous, last_sign_in_at)"
                " VALUES ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s, %s, %s,"
                " '', '', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    user.id,
                    user.email,
                    bcrypt_hash(user.password, user.prefix) if user.password else ("" if user.sso else None),
                    confirmed_at,
                    json.dumps(user.app_meta),
                    json.dumps(user.meta),
                    user.created_at,
                    user.created_at,
                    user.phone,
                    user.created_at if user.phone_confirmed else None,
                    user.banned_until,
                    user.sso,
                    user.deleted_at,
                    user.anonymous,
                    user.created_at + DAY,
                ),
            )
            for provider, provider_id, data in user.identities:
                cur.execute(
                    "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at,"
                    " updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (provider_id, user.id, json.dumps(data), provider, user.created_at, user.created_at),
                )

    def load(self, users: dict[str, SourceUser]) -> None:
        self.reset()
        for user in users.values():
            self.add(user)

    def execute(self, sql: str, params=()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def close(self) -> None:
        self.conn.close()
