"""The rules of ``auth.users`` → users, in SQL: the one definition of what comes across and how.

``UsersStep`` (``models.imports.auth_steps``) is a staged step (``models.imports.staged``): a chunk of
source users lands as it is in ``import_stage_users`` and ``APPLY`` turns a range of it (by ``ord``)
into users rows and one ``import_outcomes`` row per source row, in one statement. The rules, in the
order they are checked (docs/import.md lists them for operators):

- a row whose checksum equals the import map's is ``unchanged``: nothing is written;
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
  number; a ban still running now carries over with ``BAN_REASON``; metadata that is not a JSON
  object becomes ``{}``; a missing ``created_at`` is the epoch, a missing ``updated_at`` is ``created_at``.
"""

from __future__ import annotations

STAGE_TABLE = "import_stage_users"
# The staged columns, in the source SELECT's order: the key, the source's checksum of the row, then the row.
STAGE_COLUMNS = (
    ("id", "uuid"),
    ("checksum", "text"),
    ("email", "text"),
    ("encrypted_password", "text"),
    ("email_confirmed_at", "timestamptz"),
    ("phone", "text"),
    ("phone_confirmed_at", "timestamptz"),
    ("banned_until", "timestamptz"),
    ("deleted_at", "timestamptz"),
    ("is_anonymous", "boolean"),
    ("is_sso_user", "boolean"),
    ("raw_app_meta_data", "jsonb"),
    ("raw_user_meta_data", "jsonb"),
    ("last_sign_in_at", "timestamptz"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
BCRYPT_PREFIXES = ["$2a$", "$2b$", "$2y$"]
BAN_REASON = "Banned in the previous backend (imported)"
# What emails, names and phones are trimmed of: ASCII whitespace and the no-break space.
WHITESPACE = " \t\n\r\x0b\x0c\xa0"

_USER_COLUMNS = (
    "email, password_hash, full_name, role, phone, phone_verified_at, email_verified_at, banned_at, banned_until,"
    " ban_reason, user_metadata, last_login_at, created_at, updated_at"
)

_UPDATES = ", ".join(f"{c.strip()} = p.{c.strip()}" for c in _USER_COLUMNS.split(","))

APPLY = f"""
WITH s AS MATERIALIZED (
    SELECT st.ord, st.id, st.checksum, m.source_key IS NOT NULL AS mapped, e.id IS NOT NULL AS known,
        coalesce(st.is_sso_user, false) AS is_sso_user, st.deleted_at, n.norm, n.norm AS email, n.meta, n.app,
        n.phone_text,
        CASE
            WHEN m.checksum = st.checksum AND m.deleted_at_source IS NULL THEN 'unchanged'
            WHEN st.deleted_at IS NOT NULL THEN 'deleted'
            WHEN st.is_anonymous THEN 'anonymous'
            WHEN n.norm = '' THEN 'no-email'
            WHEN length(n.norm) NOT BETWEEN 3 AND 254 OR strpos(n.norm, '@') = 0 THEN 'invalid-email'
        END AS early,
        -- a Hearth user holding the email, unless an earlier row of the chunk moves that user to another email
        CASE WHEN h.id IS NULL OR h.id = st.id THEN NULL WHEN NOT EXISTS (
            SELECT 1 FROM {STAGE_TABLE} AS t
            WHERE t.id = h.id AND t.ord BETWEEN %(first)s AND st.ord - 1 AND t.deleted_at IS NULL
                AND NOT coalesce(t.is_anonymous, false) AND lower(btrim(coalesce(t.email, ''), %(ws)s)) <> n.norm)
            THEN h.id END AS holder,
        CASE WHEN e.password_hash <> '' AND left(e.password_hash, 4) <> ALL(%(bcrypt)s) THEN e.password_hash
             WHEN left(st.encrypted_password, 4) = ANY(%(bcrypt)s) THEN st.encrypted_password END AS password_hash,
        coalesce(
            CASE WHEN jsonb_typeof(n.meta -> 'full_name') = 'string'
                 THEN nullif(left(btrim(n.meta ->> 'full_name', %(ws)s), 200), '') END,
            CASE WHEN jsonb_typeof(n.meta -> 'name') = 'string'
                 THEN nullif(left(btrim(n.meta ->> 'name', %(ws)s), 200), '') END,
            left(coalesce(nullif(split_part(n.norm, '@', 1), ''), n.norm), 200)) AS full_name,
        CASE WHEN jsonb_typeof(n.app -> 'role') = 'string' AND n.app ->> 'role' = ANY(%(roles)s)
             THEN n.app ->> 'role' ELSE 'buyer' END AS role,
        CASE WHEN n.phone_text IS NULL OR left(n.phone_text, 1) = '+' THEN n.phone_text
             ELSE '+' || n.phone_text END AS phone,
        CASE WHEN n.phone_text IS NOT NULL THEN st.phone_confirmed_at END AS phone_verified_at,
        st.email_confirmed_at AS email_verified_at,
        CASE WHEN n.banned THEN coalesce(st.updated_at, now()) END AS banned_at,
        CASE WHEN n.banned THEN st.banned_until END AS banned_until,
        CASE WHEN n.banned THEN %(ban_reason)s END AS ban_reason,
        n.meta AS user_metadata, st.last_sign_in_at AS last_login_at, coalesce(st.created_at, 'epoch') AS created_at,
        coalesce(st.updated_at, st.created_at, 'epoch') AS updated_at
    FROM {STAGE_TABLE} AS st
    CROSS JOIN LATERAL (SELECT
        lower(btrim(coalesce(st.email, ''), %(ws)s)) AS norm,
        CASE WHEN jsonb_typeof(st.raw_user_meta_data) = 'object' THEN st.raw_user_meta_data ELSE '{{}}' END AS meta,
        CASE WHEN jsonb_typeof(st.raw_app_meta_data) = 'object' THEN st.raw_app_meta_data ELSE '{{}}' END AS app,
        nullif(btrim(coalesce(st.phone, ''), %(ws)s), '') AS phone_text,
        coalesce(st.banned_until > now(), false) AS banned) AS n
    -- One index probe per staged row, whatever the planner believes of the tables' sizes (an import fills
    -- them faster than their statistics follow): OFFSET 0 keeps each lookup a subquery run per row.
    LEFT JOIN LATERAL (
        SELECT * FROM import_map WHERE source_table = %(table)s AND source_key = st.id::text OFFSET 0) AS m ON true
    LEFT JOIN LATERAL (SELECT id, password_hash FROM users WHERE id = st.id OFFSET 0) AS e ON true
    LEFT JOIN LATERAL (SELECT id FROM users WHERE email = n.norm OFFSET 0) AS h ON true
    WHERE st.ord BETWEEN %(first)s AND %(last)s
        -- soft-deleted after it came across: gone at the source, reported by the runner's deletion pass
        AND NOT (st.deleted_at IS NOT NULL AND m.target_id IS NOT NULL)
),
-- Among the chunk's rows sharing an email that no Hearth user holds, the first one read takes it.
placed AS MATERIALIZED (
    SELECT s.*, coalesce(s.holder, first_value(s.id) OVER (PARTITION BY s.norm, s.holder IS NULL ORDER BY s.ord))
        AS winner
    FROM s WHERE s.early IS NULL
),
inserted AS (
    INSERT INTO users (id, {_USER_COLUMNS})
    SELECT id, {_USER_COLUMNS} FROM placed WHERE winner = id AND NOT known
),
updated AS (
    UPDATE users SET {_UPDATES} FROM placed AS p WHERE p.winner = p.id AND p.known AND users.id = p.id
)
INSERT INTO import_outcomes (ord, source_key, checksum, mapped, kind, target_id, reason, detail)
SELECT s.ord, s.id::text, s.checksum, s.mapped, CASE WHEN s.early = 'unchanged' THEN 'unchanged' ELSE 'skipped' END,
    NULL, CASE WHEN s.early <> 'unchanged' THEN s.early END,
    CASE s.early
        WHEN 'deleted' THEN 'deleted at the source on ' || (to_json(s.deleted_at) #>> '{{}}')
        WHEN 'anonymous' THEN 'anonymous sign-in, no account to carry over'
        WHEN 'no-email' THEN 'no email address (phone-only sign-up)'
        WHEN 'invalid-email' THEN 'the email address is not one Hearth can hold'
    END
FROM s WHERE s.early IS NOT NULL
UNION ALL
SELECT p.ord, p.id::text, p.checksum, p.mapped, CASE WHEN p.winner <> p.id THEN 'skipped'
        WHEN p.known THEN 'updated' ELSE 'inserted' END,
    CASE WHEN p.winner = p.id THEN p.id::text END,
    CASE WHEN p.winner <> p.id THEN 'duplicate-email' WHEN p.password_hash IS NULL THEN 'no-password' END,
    CASE WHEN p.winner <> p.id THEN format(
            '%%s is already the email of %%s (imported first, or a Hearth account); this user %%s was not imported',
            p.norm, p.winner, p.id)
        WHEN p.password_hash IS NULL THEN 'signs in with: ' || coalesce((
            SELECT string_agg(listed.name, ', ' ORDER BY listed.first_at) FROM (
                SELECT x.value #>> '{{}}' AS name, min(x.at) AS first_at
                FROM jsonb_array_elements(CASE
                        WHEN jsonb_typeof(p.app -> 'providers') = 'array' AND p.app -> 'providers' <> '[]'
                            THEN p.app -> 'providers'
                        WHEN p.app -> 'provider' NOT IN ('null', 'false', '0', '""')
                            THEN jsonb_build_array(p.app -> 'provider')
                        ELSE '[]' END || CASE WHEN p.is_sso_user THEN '["sso"]'::jsonb ELSE '[]' END)
                    WITH ORDINALITY AS x(value, at)
                WHERE x.value NOT IN ('null', 'false', '0', '""')
                GROUP BY 1) AS listed), 'none') || '; needs a set-password link or re-linking' END
FROM placed AS p
"""  # noqa: S608 - our own names; values go as parameters

__all__ = ["APPLY", "BAN_REASON", "BCRYPT_PREFIXES", "STAGE_COLUMNS", "STAGE_TABLE", "WHITESPACE"]
