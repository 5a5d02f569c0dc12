"""Jobs: one active job per deduplication key, and an index for the lease sweep."""


def up(migrator, db):
    db.execute_sql("""
    ALTER TABLE jobs ADD COLUMN dedupe_key text;
    -- At most one queued or running job per key (e.g. one export per user at a time);
    -- the unique index decides even between concurrent requests.
    CREATE UNIQUE INDEX jobs_active_dedupe_idx ON jobs (dedupe_key)
        WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
    CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP INDEX jobs_lease_idx;
    DROP INDEX jobs_active_dedupe_idx;
    ALTER TABLE jobs DROP COLUMN dedupe_key;
    """)
