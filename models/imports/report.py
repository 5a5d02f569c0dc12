"""The report of a run: every row that did not come across (or came across with a note), and why."""

from __future__ import annotations

from collections.abc import Iterator

from peewee import BigAutoField, ForeignKeyField, TextField
from psycopg2.extras import execute_values

from models.base import BaseModel, DateTimeTZField, utcnow
from models.db import db
from models.imports.runs import ImportRun

COLUMNS = ("source_table", "source_key", "outcome", "reason", "detail")
# A staged step's report rows (``models.imports.users_rules``): a data-modifying CTE of its statement, from
# its ``outcomes`` CTE: every row with a reason but the unchanged, in the order they were read.
OUTCOME_WRITES = """
report_added AS (
    INSERT INTO import_report (run_id, source_table, source_key, outcome, reason, detail)
    SELECT %(run)s, %(table)s, o.source_key, o.kind, left(o.reason, 100), left(o.detail, 2000)
    FROM outcomes AS o WHERE o.reason IS NOT NULL AND o.kind <> 'unchanged' ORDER BY o.ord
)"""


class ImportReportRow(BaseModel):
    id = BigAutoField()
    run = ForeignKeyField(ImportRun, column_name="run_id", on_delete="CASCADE")
    source_table = TextField()
    source_key = TextField()
    outcome = TextField()
    reason = TextField()
    detail = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "import_report"

    @staticmethod
    def add_many(run_id, rows: list[tuple]) -> None:
        """Insert ``(source_table, source_key, outcome, reason, detail)`` rows for ``run_id``."""
        if rows:
            params = [(run_id, t, k, o, r[:100], (d or None) and d[:2000]) for t, k, o, r, d in rows]
            execute_values(
                db.cursor(),
                "INSERT INTO import_report (run_id, source_table, source_key, outcome, reason, detail) VALUES %s",
                params,
                page_size=len(params),
            )

    @classmethod
    def of_run(cls, run_id, batch: int = 1000) -> Iterator[dict]:
        """Every report row of a run, in order, fetched in batches (a report can be long)."""
        last = 0
        while True:
            rows = list(cls.select().where((cls.run == run_id) & (cls.id > last)).order_by(cls.id).limit(batch))
            for row in rows:
                yield {name: getattr(row, name) for name in COLUMNS}
            if len(rows) < batch:
                return
            last = rows[-1].id


__all__ = ["COLUMNS", "OUTCOME_WRITES", "ImportReportRow"]
