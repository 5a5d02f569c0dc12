"""The Supabase import: the import map (every source row → its Hearth row and the checksum it had),
the runs (options without secrets, snapshot time, per-table counts, checkpoint) and each run's
report (every row that did not come across, or came across with something to know, and why).
"""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE import_runs (
        id uuid PRIMARY KEY,
        source text NOT NULL DEFAULT 'supabase',
        -- The options as given, never a secret (URLs and keys are read from settings by reference).
        options jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
        dry_run boolean NOT NULL DEFAULT false,
        status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        created_by uuid REFERENCES users (id) ON DELETE SET NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        -- now() inside the source snapshot: what the next run's --since last starts from.
        snapshot_at timestamptz,
        -- {"auth.users": {"read": n, "inserted": n, ..., "skipped": {"reason": n}, "failed": {...}}}
        counts jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(counts) = 'object'),
        -- {"done": [tables], "at": {table: last position committed}}: where a resumed run goes on.
        checkpoint jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(checkpoint) = 'object'),
        error text
    );
    CREATE INDEX import_runs_started_idx ON import_runs (started_at DESC);
    CREATE UNIQUE INDEX import_runs_job_key ON import_runs (job_id) WHERE job_id IS NOT NULL;

    CREATE TABLE import_map (
        source_table text NOT NULL CHECK (length(source_table) BETWEEN 1 AND 200),
        source_key text NOT NULL CHECK (length(source_key) BETWEEN 1 AND 1000),
        target_table text NOT NULL,
        -- NULL when the row was seen but not imported (its reason is in skipped_reason).
        target_id text,
        skipped_reason text,
        checksum text NOT NULL,
        first_run_id uuid NOT NULL REFERENCES import_runs (id),
        last_run_id uuid NOT NULL REFERENCES import_runs (id),
        last_seen_at timestamptz NOT NULL,
        deleted_at_source timestamptz,
        -- auth.users without a password: when --send-password-links queued their email (once each).
        password_link_at timestamptz,
        PRIMARY KEY (source_table, source_key)
    );
    CREATE INDEX import_map_target_idx ON import_map (target_table, target_id);
    CREATE INDEX import_map_last_run_idx ON import_map (source_table, last_run_id);

    CREATE TABLE import_report (
        id bigserial PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES import_runs (id) ON DELETE CASCADE,
        source_table text NOT NULL,
        source_key text NOT NULL,
        -- skipped / failed: did not come across; inserted / updated: came across with a note.
        outcome text NOT NULL CHECK (outcome IN ('inserted', 'updated', 'skipped', 'failed')),
        reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 100),
        detail text CHECK (length(detail) <= 2000),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX import_report_run_idx ON import_report (run_id, id);
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP TABLE import_report;
    DROP TABLE import_map;
    DROP TABLE import_runs;
    """)
