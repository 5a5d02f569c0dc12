"""Jobs: ``error`` only on failed jobs (a retry's error becomes ``last_error``), and a mark on
finished jobs whose final event could not be published (Redis was away), for the sweep to publish."""


def up(migrator, db):
    db.execute_sql("""
    ALTER TABLE jobs ADD COLUMN last_error jsonb;
    ALTER TABLE jobs ADD COLUMN final_event_pending boolean NOT NULL DEFAULT false;
    -- Jobs waiting out a retry used to keep the retry's error beside status queued.
    UPDATE jobs SET last_error = error, error = NULL WHERE status <> 'failed' AND error IS NOT NULL;
    CREATE INDEX jobs_final_event_pending_idx ON jobs (finished_at) WHERE final_event_pending;
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP INDEX jobs_final_event_pending_idx;
    UPDATE jobs SET error = last_error WHERE status = 'queued' AND last_error IS NOT NULL;
    ALTER TABLE jobs DROP COLUMN final_event_pending;
    ALTER TABLE jobs DROP COLUMN last_error;
    """)
