"""The import map keeps only the indexes its reads use, so that each imported row costs one index write.

``import_map_last_run_idx`` served no read: the deletion pass asks for rows *not* seen by a run, in
source-key order, which the primary key serves. ``import_map_target_idx`` was read only to find the
storage object an upload came from (a scan's verdict is reported on its run): it now covers those rows
alone.
"""


def up(migrator, db):
    db.execute_sql("""
    DROP INDEX import_map_last_run_idx;
    DROP INDEX import_map_target_idx;
    CREATE INDEX import_map_objects_target_idx ON import_map (target_id) WHERE source_table = 'storage.objects';
    """)


def down(migrator, db):
    db.execute_sql("""
    DROP INDEX import_map_objects_target_idx;
    CREATE INDEX import_map_target_idx ON import_map (target_table, target_id);
    CREATE INDEX import_map_last_run_idx ON import_map (source_table, last_run_id);
    """)
