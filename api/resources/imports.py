"""``/v1/admin/imports``: the Supabase import, started and followed by an admin (docs/import.md)."""

from __future__ import annotations

import csv
import io
import json
import uuid

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import conflict, not_found
from api.operation import operation
from api.resources.jobs import JobViews
from api.schemas.imports import ImportCreate, ImportList, ImportQuery, ImportView, ReportQuery
from api.schemas.jobs import JobView
from models.db import db
from models.imports.report import COLUMNS, ImportReportRow
from models.imports.runs import ImportRun
from models.jobs import Job

RUN_KIND = "imports.run_supabase"
TAGS = ("admin",)


def _run_or_404(import_id: str) -> ImportRun:
    """The run by its id, or by the id of the job that runs it; 404 otherwise."""
    try:
        key = uuid.UUID(import_id)
    except ValueError:
        raise not_found("import") from None
    run = ImportRun.get_or_none(ImportRun.id == key) or ImportRun.for_job(key)
    if run is None:
        raise not_found("import")
    return run


class AdminImports:
    def __init__(self, secret: str, views: JobViews):
        self.cursors = CursorCodec(secret, "admin-imports")
        self.views = views

    @operation(
        "Start a Supabase import",
        body=ImportCreate,
        response=JobView,
        status=202,
        permission="admin:imports",
        errors=(409, 422),
        tags=TAGS,
        description="Queues an `imports.run_supabase` job on the `imports` queue and answers 202 with "
        "`Location: /v1/jobs/{id}`; progress comes as `job.progress` events. The source database URL and the "
        "storage keys are not accepted here: the worker reads them from its settings. `mapping` is the mapping "
        "file's TOML text (required unless `only` lists auth tables only). While an import is queued or running, "
        "another is a 409. Asking again for an import that stopped resumes it.",
    )
    def on_post(self, req, resp):
        body: ImportCreate = req.context.body
        principal = req.context.principal
        options = {
            "only": list(body.only),
            "since": body.since,
            "dry_run": body.dry_run,
            "apply_deletes": body.apply_deletes,
            "send_password_links": body.send_password_links,
            "mapping": body.mapping,
            "storage": body.storage,
        }
        with db.atomic():
            job, created = Job.create_or_get_active(
                dedupe_key="imports:supabase",
                kind=RUN_KIND,
                queue="imports",
                owner=principal.user_id,
                input=options,
                max_attempts=3,
            )
            if not created:
                raise conflict(f"An import is already {job.status} (job {job.id}).", slug="import-running")
            logged = {k: v for k, v in options.items() if k != "mapping"}
            audit(req, "import.started", job.id, target_type="job", after=logged)
        self.views.accept(req, resp, job)

    @operation("Imports, newest first", query=ImportQuery, response=ImportList, permission="admin:imports", tags=TAGS)
    def on_get(self, req, resp):
        q: ImportQuery = req.context.query
        rows, next_cursor = self.cursors.newest_first(
            ImportRun.select(), ImportRun.started_at, ImportRun.id, q.cursor, q.limit
        )
        resp.media = {"items": [run.view() for run in rows], "next_cursor": next_cursor}

    @operation(
        "One import with its per-table counts",
        response=ImportView,
        permission="admin:imports",
        errors=(404,),
        tags=TAGS,
        description="By the import's id or by its job's id.",
    )
    def on_get_item(self, req, resp, import_id):
        resp.media = _run_or_404(import_id).view()

    @operation(
        "Download an import's report",
        query=ReportQuery,
        permission="admin:imports",
        errors=(404,),
        tags=TAGS,
        content_type="application/x-ndjson",
        description="Every source row that did not come across, or came across with something to know "
        "(`no-password`): `source_table`, `source_key`, `outcome`, `reason`, `detail`. JSON lines, or CSV "
        "with `format=csv`.",
    )
    def on_get_report(self, req, resp, import_id):
        q: ReportQuery = req.context.query
        run = _run_or_404(import_id)
        rows = ImportReportRow.of_run(run.id)
        if q.format == "csv":
            resp.content_type = "text/csv; charset=utf-8"
            resp.downloadable_as = f"import-{run.id}.csv"
            resp.stream = _csv_lines(rows)
        else:
            resp.content_type = "application/x-ndjson"
            resp.downloadable_as = f"import-{run.id}.jsonl"
            resp.stream = ((json.dumps(row, ensure_ascii=False) + "\n").encode() for row in rows)
        resp.status = falcon.HTTP_200


def _csv_lines(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
