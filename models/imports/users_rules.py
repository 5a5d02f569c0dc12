"""The rules of ``auth.users`` → users, in SQL: the one definition of what comes across and how.

``UsersStep`` (``models.imports.auth_steps``) is a staged step (``models.imports.staged``). The rules
come in two halves:

- what a row alone decides is computed by the source in ``source_select``, on the source's own
  backend while Hearth writes the previous chunk: the normalized email, the password hash when it is
  bcrypt, the name, role, phone and metadata, and the reason a row is not imported (``early``);
- what needs Hearth's tables is ``APPLY``: a range of staged rows (by ``ord``) against the import map
  and the users already there, in one statement that writes the users, the import map and the report,
  and returns the range's counts by outcome and reason.

``APPLY`` with ``fresh`` true is for a batch of a pass over ``auth.users`` that began with no import
map entry for the table (a first import): none of its rows can be in the import map (a pass reads
each source row once), and none can share its id with a Hearth user but by chance, so the import map
and users are not probed by id. The unique keys of ``import_map`` and ``users`` still guard both:
a row that breaks either fails that statement, and the batch is applied again with the probes, as
is the rest of the pass.

The rules, in the order they are checked (docs/import.md lists them for operators):

- a row whose checksum equals the import map's is ``unchanged``: nothing is written but the map's
  ``last_run_id``/``last_seen_at``;
- a user soft-deleted after an earlier run imported them is not read at all (the runner's deletion
  pass reports it ``deleted-at-source``); other soft-deleted users are skipped ``deleted``;
  anonymous sign-ins ``anonymous``; users without an email ``no-email``; emails Hearth cannot hold
  (not 3-254 characters, no ``@``) ``invalid-email``. Emails are trimmed and lowercased;
- two users with the same email (after lowercasing): the one read first (users are read oldest
  first) is imported, the other skipped ``duplicate-email`` with both ids. A Hearth user holding the
  email counts as first, unless an earlier row of the chunk moves that user to another email;
- the password hash is kept when it is bcrypt (``$2a$``/``$2b$``/``$2y$``), else dropped; a Hearth
  user whose hash is no longer bcrypt (logged in to Hearth, or changed there) keeps Hearth's. A user
  left without a password comes across with the note ``no-password`` and the providers they sign
  in with;
- ``full_name``/``name`` from the user's metadata (trimmed, 200 characters), else the email's local
  part; the role is ``raw_app_meta_data.role`` when it is a self-service role, else ``buyer``; a
  phone gets its ``+`` back (GoTrue stores E.164 without it) and keeps its confirmation only with a
  number; a ban still running when the chunk is written carries over with ``BAN_REASON``; metadata
  that is not a JSON object becomes ``{}``; a missing ``created_at`` is the epoch, a missing
  ``updated_at`` is ``created_at``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from models.imports import import_map, report

STAGE_TABLE = "import_stage_users"
# The staged columns, in the source SELECT's order: the key, the source's checksum of the row, the reason
# the row alone gives for not importing it, then the users columns as the row alone makes them (times raw).
STAGE_COLUMNS = (
    ("id", "uuid"),
    ("checksum", "text"),
    ("early", "text"),
    ("deleted_at", "timestamptz"),
    ("email", "text"),
    ("password_hash", "text"),
    ("full_name", "text"),
    ("role", "text"),
    ("phone", "text"),
    ("phone_verified_at", "timestamptz"),
    ("email_verified_at", "timestamptz"),
    ("banned_until", "timestamptz"),
    ("user_metadata", "jsonb"),
    ("last_login_at", "timestamptz"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    # the providers a user without a bcrypt hash signs in with, for the ``no-password`` note
    ("providers", "text"),
)
BCRYPT_PREFIXES = ["$2a$", "$2b$", "$2y$"]
BAN_REASON = "Banned in the previous backend (imported)"
# What emails, names and phones are trimmed of: ASCII whitespace and the no-break space.
WHITESPACE = " \t\n\r\x0b\x0c\xa0"
# Oldest first (the first of two case-duplicates wins); NULL created_at first, as the oldest.
SOURCE_ORDER = "coalesce(u.created_at, '-infinity'::timestamptz), u.id"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Each column is cast to its staging column's type: the rows travel in binary COPY format, which carries no types.
_SOURCE_SELECT = """
SELECT u.id::uuid, {checksum}::text,
    CASE
        WHEN u.deleted_at IS NOT NULL THEN 'deleted'
        WHEN u.is_anonymous THEN 'anonymous'
        WHEN n.norm = '' THEN 'no-email'
        WHEN length(n.norm) NOT BETWEEN 3 AND 254 OR strpos(n.norm, '@') = 0 THEN 'invalid-email'
    END,
    u.deleted_at::timestamptz, n.norm,
    CASE WHEN n.bcrypt THEN u.encrypted_password::text END,
    coalesce(
        CASE WHEN jsonb_typeof(n.meta -> 'full_name') = 'string'
             THEN nullif(left(btrim(n.meta ->> 'full_name', k.ws), 200), '') END,
        CASE WHEN jsonb_typeof(n.meta -> 'name') = 'string'
             THEN nullif(left(btrim(n.meta ->> 'name', k.ws), 200), '') END,
        left(coalesce(nullif(split_part(n.norm, '@', 1), ''), n.norm), 200)),
    CASE WHEN jsonb_typeof(n.app -> 'role') = 'string' AND n.app ->> 'role' = ANY(k.roles)
         THEN n.app ->> 'role' ELSE 'buyer' END,
    CASE WHEN n.phone_text IS NULL OR left(n.phone_text, 1) = '+' THEN n.phone_text ELSE '+' || n.phone_text END,
    CASE WHEN n.phone_text IS NOT NULL THEN u.phone_confirmed_at::timestamptz END,
    u.email_confirmed_at::timestamptz, u.banned_until::timestamptz, n.meta::jsonb, u.last_sign_in_at::timestamptz,
    u.created_at::timestamptz, u.updated_at::timestamptz,
    CASE WHEN NOT n.bcrypt THEN (
        SELECT string_agg(listed.name, ', ' ORDER BY listed.first_at) FROM (
            SELECT x.value #>> '{{}}' AS name, min(x.at) AS first_at
            FROM jsonb_array_elements(CASE
                    WHEN jsonb_typeof(n.app -> 'providers') = 'array' AND n.app -> 'providers' <> '[]'
                        THEN n.app -> 'providers'
                    WHEN n.app -> 'provider' NOT IN ('null', 'false', '0', '""')
                        THEN jsonb_build_array(n.app -> 'provider')
                    ELSE '[]' END || CASE WHEN coalesce(u.is_sso_user, false) THEN '["sso"]'::jsonb ELSE '[]' END)
                WITH ORDINALITY AS x(value, at)
            WHERE x.value NOT IN ('null', 'false', '0', '""')
            GROUP BY 1) AS listed) END
FROM auth.users AS u
CROSS JOIN (SELECT %s::text AS ws, %s::text[] AS bcrypt, %s::text[] AS roles) AS k
-- OFFSET 0: each of these is computed once per row (pulled up, each would be computed wherever it is used)
CROSS JOIN LATERAL (SELECT
    lower(btrim(coalesce(u.email, ''), k.ws)) AS norm,
    coalesce(left(u.encrypted_password, 4) = ANY(k.bcrypt), false) AS bcrypt,
    CASE WHEN jsonb_typeof(u.raw_user_meta_data) = 'object' THEN u.raw_user_meta_data ELSE '{{}}' END AS meta,
    CASE WHEN jsonb_typeof(u.raw_app_meta_data) = 'object' THEN u.raw_app_meta_data ELSE '{{}}' END AS app,
    nullif(btrim(coalesce(u.phone, ''), k.ws), '') AS phone_text
    OFFSET 0) AS n
{where}ORDER BY {order}
"""


# The source's checksum of a row: PostgreSQL's own 64-bit hash of the row's values (``hash_record_extended``,
# PostgreSQL 14 and later: no value is written out as text for it, about a third of what the md5 of the row's text
# cost the source), in hex; before 14, the md5 of the row's text (the session is in UTC, so it is stable). The
# hash functions are the ones hash partitioning relies on, kept the same across PostgreSQL versions.
HASHED_FROM_VERSION = 140000
_HASHED = "to_hex(hash_record_extended(ROW({row}), 0))"
_MD5 = "md5(ROW({row})::text)"


def source_select(
    checksummed: Sequence[str],
    roles: Sequence[str],
    since: datetime.datetime | None,
    after: Any = None,
    *,
    server_version: int = HASHED_FROM_VERSION,
) -> tuple[str, list]:
    """The source's ``COPY`` SELECT of the users after ``after`` (changed since ``since``), oldest first.

    Its columns are ``STAGE_COLUMNS``. The checksum is the source's hash of the row of ``checksummed``
    columns (``server_version``: the source's ``server_version_num``, which says which hash).
    """
    where, params = [], [WHITESPACE, BCRYPT_PREFIXES, list(roles)]
    if since is not None:
        where.append("u.updated_at > %s")
        params.append(since)
    if after:
        where.append("(coalesce(u.created_at, '-infinity'::timestamptz), u.id) > (%s::timestamptz, %s::uuid)")
        params.extend(after)
    clause = f"WHERE {' AND '.join(where)}\n" if where else ""
    row = ", ".join(f"u.{_quoted(name)}" for name in checksummed)
    checksum = (_HASHED if server_version >= HASHED_FROM_VERSION else _MD5).format(row=row)
    return _SOURCE_SELECT.format(checksum=checksum, where=clause, order=SOURCE_ORDER), params


_USER_COLUMNS = (
    "email, password_hash, full_name, role, phone, phone_verified_at, email_verified_at, banned_at, banned_until,"
    " ban_reason, user_metadata, last_login_at, created_at, updated_at"
)

_UPDATES = ", ".join(f"{c.strip()} = p.{c.strip()}" for c in _USER_COLUMNS.split(","))

# ``winner``, the user who takes a row's email: the Hearth user holding it, else the first row read among the
# range's rows that share it. Where no two of the range's rows (not skipped by the source) share an email, the
# first is the row itself, and the window (a sort of the whole range by email) is left out.
_FIRST_READ = "first_value(d.id) OVER (PARTITION BY d.early IS NULL, d.norm, d.holder IS NULL ORDER BY d.ord)"
_ITSELF = "d.id"

# Whether two of the range's rows that the source did not skip share an email (a hash of the emails, no sort).
SHARED_EMAILS = f"""
SELECT EXISTS (SELECT FROM {STAGE_TABLE} WHERE ord BETWEEN %(first)s AND %(last)s AND early IS NULL
               GROUP BY email HAVING count(*) > 1)
"""  # noqa: S608 - our own names

_APPLY = f"""
-- One materialization of the range: each staged row with what Hearth holds for it, its outcome's inputs and,
-- among the rows sharing an email that no Hearth user holds, the first one read (``winner``: it takes the email).
WITH placed AS MATERIALIZED (
    SELECT d.*, CASE WHEN d.early IS NULL THEN coalesce(d.holder, {{first_read}}) END AS winner
    FROM (
        SELECT st.ord, st.id, st.checksum, m.source_key IS NOT NULL AS mapped, e.id IS NOT NULL AS known,
            st.deleted_at, st.email AS norm, st.email, st.providers,
            CASE WHEN m.checksum = st.checksum AND m.deleted_at_source IS NULL THEN 'unchanged' ELSE st.early END
                AS early,
            -- a Hearth user holding the email, unless an earlier row of the chunk moves that user to another email
            CASE WHEN h.id IS NULL OR h.id = st.id THEN NULL WHEN NOT EXISTS (
                SELECT 1 FROM {STAGE_TABLE} AS t
                WHERE t.id = h.id AND t.ord BETWEEN %(first)s AND st.ord - 1
                    AND coalesce(t.early, '') NOT IN ('deleted', 'anonymous') AND t.email <> st.email)
                THEN h.id END AS holder,
            CASE WHEN e.password_hash <> '' AND left(e.password_hash, 4) <> ALL(%(bcrypt)s) THEN e.password_hash
                 ELSE st.password_hash END AS password_hash,
            st.full_name, st.role, st.phone, st.phone_verified_at, st.email_verified_at,
            CASE WHEN b.banned THEN coalesce(st.updated_at, now()) END AS banned_at,
            CASE WHEN b.banned THEN st.banned_until END AS banned_until,
            CASE WHEN b.banned THEN %(ban_reason)s END AS ban_reason,
            st.user_metadata, st.last_login_at, coalesce(st.created_at, 'epoch') AS created_at,
            coalesce(st.updated_at, st.created_at, 'epoch') AS updated_at
        FROM {STAGE_TABLE} AS st
        CROSS JOIN LATERAL (SELECT coalesce(st.banned_until > now(), false) AS banned) AS b
        -- One index probe per staged row, whatever the planner believes of the tables' sizes (an import fills
        -- them faster than their statistics follow): OFFSET 0 keeps each lookup a subquery run per row.
        -- ``fresh`` (see above): neither probe can find a row, and neither is made.
        LEFT JOIN LATERAL (
            SELECT * FROM import_map
            WHERE NOT %(fresh)s AND source_table = %(table)s AND source_key = st.id::text OFFSET 0
        ) AS m ON true
        LEFT JOIN LATERAL (SELECT id, password_hash FROM users WHERE NOT %(fresh)s AND id = st.id OFFSET 0) AS e ON true
        LEFT JOIN LATERAL (SELECT id FROM users WHERE email = st.email OFFSET 0) AS h ON true
        WHERE st.ord BETWEEN %(first)s AND %(last)s
            -- soft-deleted after it came across: gone at the source, reported by the runner's deletion pass
            AND NOT (st.deleted_at IS NOT NULL AND m.target_id IS NOT NULL)
        OFFSET 0  -- each row's values computed once (pulled up, each would be computed wherever it is used)
    ) AS d
),
inserted AS (
    INSERT INTO users (id, {_USER_COLUMNS})
    SELECT id, {_USER_COLUMNS} FROM placed WHERE winner = id AND NOT known
),
updated AS (
    -- ``fresh``: no row is known (nor mapped, below), and the range is not scanned for them
    UPDATE users SET {_UPDATES} FROM placed AS p
    WHERE NOT %(fresh)s AND p.winner = p.id AND p.known AND users.id = p.id
),
-- One row per source row: what became of it (the import map's and the report's source), computed where read.
outcomes AS NOT MATERIALIZED (
    SELECT p.ord, p.id::text AS source_key, p.checksum, p.mapped,
        CASE WHEN p.early = 'unchanged' THEN 'unchanged' WHEN p.early IS NOT NULL OR p.winner <> p.id THEN 'skipped'
             WHEN p.known THEN 'updated' ELSE 'inserted' END AS kind,
        CASE WHEN p.winner = p.id THEN p.id::text END AS target_id,
        CASE WHEN p.early = 'unchanged' THEN NULL WHEN p.early IS NOT NULL THEN p.early
             WHEN p.winner <> p.id THEN 'duplicate-email' WHEN p.password_hash IS NULL THEN 'no-password' END AS reason,
        CASE p.early
            WHEN 'unchanged' THEN NULL
            WHEN 'deleted' THEN 'deleted at the source on ' || (to_json(p.deleted_at) #>> '{{}}')
            WHEN 'anonymous' THEN 'anonymous sign-in, no account to carry over'
            WHEN 'no-email' THEN 'no email address (phone-only sign-up)'
            WHEN 'invalid-email' THEN 'the email address is not one Hearth can hold'
            ELSE CASE
                WHEN p.winner <> p.id THEN format('%%s is already the email of %%s (imported first, or a Hearth'
                    ' account); this user %%s was not imported', p.norm, p.winner, p.id)
                WHEN p.password_hash IS NULL THEN 'signs in with: ' || coalesce(p.providers, 'none')
                    || '; needs a set-password link or re-linking' END
        END AS detail
    FROM placed AS p
),
{import_map.OUTCOME_WRITES},
{report.OUTCOME_WRITES}
SELECT kind, reason, count(*) FROM outcomes GROUP BY kind, reason
"""  # noqa: S608 - our own names; values go as parameters
# ``APPLY``: any range; ``APPLY_UNIQUE_EMAILS``: a range where ``SHARED_EMAILS`` found no shared email.
APPLY = _APPLY.replace("{first_read}", _FIRST_READ)
APPLY_UNIQUE_EMAILS = _APPLY.replace("{first_read}", _ITSELF)

__all__ = [
    "APPLY",
    "APPLY_UNIQUE_EMAILS",
    "BAN_REASON",
    "BCRYPT_PREFIXES",
    "HASHED_FROM_VERSION",
    "SHARED_EMAILS",
    "SOURCE_ORDER",
    "STAGE_COLUMNS",
    "STAGE_TABLE",
    "WHITESPACE",
    "source_select",
]
