"""Each job keeps the id of the request that caused it (``X-Request-ID``), so one id finds a user's
action in the web's and the worker's log lines. Shown in the job's view; no index: it is looked up in
logs, not in this table.
"""


def up(migrator, db):
    db.execute_sql("""
    ALTER TABLE jobs ADD COLUMN request_id text CHECK (request_id ~ '^[A-Za-z0-9._-]{1,64}$');
    """)


def down(migrator, db):
    db.execute_sql("""
    ALTER TABLE jobs DROP COLUMN request_id;
    """)
