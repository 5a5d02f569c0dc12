"""Responses stored under a client's ``Idempotency-Key``, per user, replayed on a retry until they expire."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE idempotency_keys (
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
        method text NOT NULL,
        route text NOT NULL,
        request_digest bytea NOT NULL,
        response_status smallint NOT NULL CHECK (response_status BETWEEN 200 AND 499),
        response_headers jsonb NOT NULL DEFAULT '{}',
        response_body bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
    """)


def down(migrator, db):
    db.execute_sql("DROP TABLE idempotency_keys;")
