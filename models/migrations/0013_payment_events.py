"""Payment events: every verified webhook event of the payments provider, stored once under its own id."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE payment_events (
        id text PRIMARY KEY,
        type text NOT NULL,
        object_type text NOT NULL,
        object_id text NOT NULL,
        created timestamptz NOT NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL
    );
    CREATE INDEX payment_events_object_idx ON payment_events (object_type, object_id, created);
    """)


def down(migrator, db):
    db.execute_sql("DROP TABLE payment_events;")
