"""Jobs: the record of every piece of background work, and the side effects it performed."""


def up(migrator, db):
    db.execute_sql("""
    CREATE TABLE jobs (
        id uuid PRIMARY KEY,
        kind text NOT NULL,
        queue text NOT NULL DEFAULT 'default',
        owner_id uuid REFERENCES users (id) ON DELETE CASCADE,
        status text NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        progress_pct smallint NOT NULL DEFAULT 0 CHECK (progress_pct BETWEEN 0 AND 100),
        progress_message text,
        input jsonb NOT NULL DEFAULT '{}',
        result jsonb,
        error jsonb,
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 5,
        run_after timestamptz,
        lease_expires_at timestamptz,
        cancel_requested_at timestamptz,
        enqueued_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX jobs_owner_idx ON jobs (owner_id, created_at DESC, id DESC);
    CREATE INDEX jobs_sweep_idx ON jobs (status, updated_at) WHERE status IN ('queued', 'running');
    CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

    CREATE TABLE job_effects (
        key text PRIMARY KEY,
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        result jsonb
    );
    """)


def down(migrator, db):
    db.execute_sql("DROP TABLE job_effects; DROP TABLE jobs;")
