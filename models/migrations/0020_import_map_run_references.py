"""The import map's run ids are no longer foreign keys, so that an imported row costs no lookup of its run.

Each map row written checked ``first_run_id`` and ``last_run_id`` against ``import_runs``: two key
lookups and two row locks per imported row, more than the row's own write. The runner is the only
writer of those columns and writes its own run's id (a row it created before the first chunk), and
runs are never deleted, so the checks could not fail. The report keeps its reference (one row per
reported source row, and its ``ON DELETE CASCADE``).
"""


def up(migrator, db):
    db.execute_sql("""
    ALTER TABLE import_map DROP CONSTRAINT import_map_first_run_id_fkey,
        DROP CONSTRAINT import_map_last_run_id_fkey;
    """)


def down(migrator, db):
    db.execute_sql("""
    ALTER TABLE import_map ADD CONSTRAINT import_map_first_run_id_fkey
            FOREIGN KEY (first_run_id) REFERENCES import_runs (id),
        ADD CONSTRAINT import_map_last_run_id_fkey FOREIGN KEY (last_run_id) REFERENCES import_runs (id);
    """)
