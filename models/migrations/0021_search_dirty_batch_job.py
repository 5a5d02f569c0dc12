"""A listing marked for the search index may be covered by a reindex job of many listings.

A bulk import queues one ``search.reindex_properties`` job per chunk of new listings instead of
one ``search.reindex_property`` job per listing; ``search_dirty.batch_job_id`` names that job, so
that the sweep for stuck listings (``requeue_stale``) leaves a listing alone while its batch job is
still queued or running, as it does for a listing's own job.
"""


def up(migrator, db):
    db.execute_sql("ALTER TABLE search_dirty ADD COLUMN batch_job_id uuid")


def down(migrator, db):
    db.execute_sql("ALTER TABLE search_dirty DROP COLUMN batch_job_id")
