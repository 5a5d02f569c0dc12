"""The source database of the ``imports`` benchmark: a Supabase-shaped ``auth`` schema, filled server-side.

``hearth_bench_src`` (BENCH_IMPORT_SOURCE_DB) on the server of BENCH_DATABASE_URL gets the
``auth.users`` / ``auth.identities`` tables of the import tests (``tests.imports.supabase_db``,
GoTrue's column names and types) and rows made by ``INSERT ... SELECT ... FROM generate_series``,
so a million users take seconds and no row passes through Python. User ``i`` is deterministic:

* every 20th signs in with Google only (no password, a ``google`` identity): imported without a
  password and reported (``no-password``), as in a real project;
* every 7th has an email with capitals (the import lowercases it), every 5th a confirmed phone
  stored without its ``+``, every 10th (+3) an unconfirmed email, every 100th a ban still running;
* names in several scripts and an emoji in the metadata; bcrypt-shaped ``$2a$``/``$2b$``/``$2y$``
  hashes (random characters: the benchmark never verifies them);
* each user has one identity (``email`` or ``google``), as GoTrue writes them.

``RAW_USERS`` is the same transformation the ``auth.users`` step applies, written as one SELECT,
for the raw COPY baseline.
"""

from __future__ import annotations

import contextlib

import psycopg2

from bench import stack
from tests.imports.supabase_db import AUTH_SCHEMA

IMPORT_APPLICATION_NAME = "hearth-bench-import"

_USERS = """
INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    confirmation_token, recovery_token, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
    phone, phone_confirmed_at, banned_until, is_sso_user, is_anonymous, last_sign_in_at)
SELECT '00000000-0000-0000-0000-000000000000', md5('hearth-bench-user-' || i)::uuid, 'authenticated',
    'authenticated',
    CASE WHEN i %% 7 = 0 THEN 'Bench.User' || i || '@Example.com' ELSE 'bench.user' || i || '@example.com' END,
    CASE WHEN i %% 20 = 0 THEN NULL
         ELSE (ARRAY['$2a$', '$2b$', '$2y$'])[1 + i %% 3] || '10$'
              || substr(md5('salt' || i) || md5('hash' || i), 1, 53) END,
    CASE WHEN i %% 10 = 3 THEN NULL ELSE t.created + interval '5 minutes' END,
    '', '',
    CASE WHEN i %% 20 = 0 THEN '{"provider": "google", "providers": ["google"]}'::jsonb
         WHEN i %% 9 = 0 THEN '{"provider": "email", "providers": ["email"], "role": "seller"}'::jsonb
         ELSE '{"provider": "email", "providers": ["email"]}'::jsonb END,
    jsonb_build_object(
        'full_name', (ARRAY['Ana Lúcia ', 'Бо Петров ', '陈 静 🏡 ', 'داليا حسن ', 'Bench User '])[1 + i %% 5] || i,
        'avatar_url', 'https://cdn.example.com/avatars/' || i || '.png',
        'newsletter', i %% 2 = 0),
    t.created, t.created + interval '2 days',
    CASE WHEN i %% 5 = 0 THEN (15550000000 + i)::text END,
    CASE WHEN i %% 5 = 0 THEN t.created + interval '1 hour' END,
    CASE WHEN i %% 100 = 0 THEN now() + interval '30 days' END,
    false, false, t.created + interval '1 day'
FROM generate_series(%(first)s, %(last)s) AS i,
    LATERAL (SELECT timestamptz '2023-01-01 00:00+00' + i * interval '37 seconds' AS created) AS t
"""

_IDENTITIES = """
INSERT INTO auth.identities (id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at,
    updated_at)
SELECT md5('hearth-bench-identity-' || u.id)::uuid,
    CASE WHEN u.encrypted_password IS NULL THEN '1000' || md5(u.id::text) ELSE u.id::text END,
    u.id,
    jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', u.email_confirmed_at IS NOT NULL),
    CASE WHEN u.encrypted_password IS NULL THEN 'google' ELSE 'email' END,
    u.last_sign_in_at, u.created_at, u.updated_at
FROM auth.users AS u
WHERE u.created_at > timestamptz '2023-01-01 00:00+00' + %(after)s * interval '37 seconds'
"""

# What the auth.users step writes for each of these users (models/imports/auth_steps.py), in SQL.
RAW_USERS = """
SELECT id, lower(trim(email)),
    CASE WHEN left(encrypted_password, 4) IN ('$2a$', '$2b$', '$2y$') THEN encrypted_password END,
    coalesce(left(nullif(trim(raw_user_meta_data ->> 'full_name'), ''), 200),
             left(nullif(trim(raw_user_meta_data ->> 'name'), ''), 200),
             left(split_part(lower(trim(email)), '@', 1), 200)),
    CASE WHEN raw_app_meta_data ->> 'role' IN ('buyer', 'seller', 'agent') THEN raw_app_meta_data ->> 'role'
         ELSE 'buyer' END,
    CASE WHEN nullif(trim(phone), '') IS NULL THEN NULL WHEN trim(phone) LIKE '+%' THEN trim(phone)
         ELSE '+' || trim(phone) END,
    CASE WHEN nullif(trim(phone), '') IS NOT NULL THEN phone_confirmed_at END,
    email_confirmed_at,
    CASE WHEN banned_until > now() THEN coalesce(updated_at, now()) END,
    CASE WHEN banned_until > now() THEN banned_until END,
    CASE WHEN banned_until > now() THEN 'Banned in the previous backend (imported)' END,
    coalesce(raw_user_meta_data, '{}'), last_sign_in_at, coalesce(created_at, 'epoch'),
    coalesce(updated_at, created_at, 'epoch')
FROM auth.users
WHERE deleted_at IS NULL AND NOT is_anonymous
ORDER BY coalesce(created_at, '-infinity'::timestamptz), id
"""
RAW_USER_COLUMNS = (
    "id, email, password_hash, full_name, role, phone, phone_verified_at, email_verified_at, banned_at,"
    " banned_until, ban_reason, user_metadata, last_login_at, created_at, updated_at"
)

RAW_IDENTITIES = """
SELECT id, user_id, left(provider, 100), left(provider_id, 255), identity_data,
    lower(trim(identity_data ->> 'email')), last_sign_in_at, coalesce(created_at, now()),
    coalesce(updated_at, created_at, now())
FROM auth.identities ORDER BY id
"""
RAW_IDENTITY_COLUMNS = (
    "id, user_id, provider, provider_id, identity_data, email, last_sign_in_at, created_at, updated_at"
)


class BenchSource:
    """The source database: created (or emptied) by ``open``, grown by ``fill``, dropped by ``close``."""

    def __init__(self, name: str, log=print):
        self.name, self.log = name, log
        self.url = stack._database_url(name)
        # The importer's own connections to the source carry this name (``run_import`` finds them by it).
        joiner = "&" if "?" in self.url else "?"
        self.import_url = f"{self.url}{joiner}application_name={IMPORT_APPLICATION_NAME}"
        self.users = 0
        self.conn = None

    def open(self) -> BenchSource:
        admin = stack._admin_connection()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{self.name}"')
        admin.close()
        from models.db import connect_args

        args = connect_args(self.url)
        args["dbname"] = args.pop("database")
        self.conn = psycopg2.connect(**args)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(AUTH_SCHEMA)
        return self

    def fill(self, users: int) -> None:
        """Grow the source to ``users`` users (and their identities), then ANALYZE."""
        if users <= self.users:
            return
        with self.conn.cursor() as cur:
            cur.execute(_USERS, {"first": self.users + 1, "last": users})
            cur.execute(_IDENTITIES, {"after": self.users})
            cur.execute("ANALYZE auth.users")
            cur.execute("ANALYZE auth.identities")
        self.log(f"source {self.name}: {users:,} users and their identities")
        self.users = users

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
            self.conn = None
        admin = stack._admin_connection()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()

    def __enter__(self) -> BenchSource:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()
