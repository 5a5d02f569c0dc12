"""The Supabase import as Hearth runs it: the plan, one run from start (or resume) to finish, and its job.

``execute(request, ...)`` is what both ``hearth import supabase`` (in its own process) and the
``imports.run_supabase`` job (``POST /v1/admin/imports``) call: it connects to the source inside one
snapshot, builds the steps (``auth.users``, ``auth.identities``, then the mapping file's tables),
checks the source's columns against them before anything is written, and runs them
(``models.imports.runner``). A run that was killed is resumed by asking for the same import again.

The options recorded on the run and the job never hold a secret: the source URL and the storage
keys come from settings (or the CLI's flags and environment), by reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from models.accounts import User
from models.base import utcnow
from models.db import db
from models.imports.auth_steps import AUTH_STEPS, USERS, auth_steps
from models.imports.import_map import ImportMapEntry
from models.imports.report import ImportReportRow
from models.imports.runner import Progress, Runner, since_for, validate
from models.imports.runs import ImportRun
from models.imports.steps import Step
from models.jobs import Job
from services.supabase_source import SourceError, SupabaseSource
from tasks.base import JobContext, job_task
from tasks.import_files import file_collaborators
from tasks.runtime import runtime

log = logging.getLogger("hearth.imports")

RUN_KIND = "imports.run_supabase"
# A job may run this long (below the broker's visibility timeout); a longer import is asked for
# again (same options) and resumes where this one stopped, or is run with the CLI.
SOFT_TIME_LIMIT = 3000


class BadInput(Exception):
    """The import cannot start: nothing was written. ``problems`` lists every reason, for people."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems
        self.public_detail = "; ".join(problems)[:2000]


@dataclasses.dataclass
class ImportRequest:
    """What to import (no secrets). ``mapping`` is the mapping file's TOML text."""

    only: list[str] = dataclasses.field(default_factory=list)
    since: str | None = None
    dry_run: bool = False
    apply_deletes: bool = False
    send_password_links: bool = False
    mapping: str | None = None
    storage: str | None = None  # "s3", "dir" or None: where files come from (keys by reference)

    def options(self) -> dict:
        """The run's recorded options: the mapping by its checksum, never a secret."""
        options = dataclasses.asdict(self)
        mapping = options.pop("mapping")
        options["mapping_sha256"] = hashlib.sha256(mapping.encode()).hexdigest() if mapping else None
        return options


def build_steps(request: ImportRequest) -> list[Step]:
    """The steps in the order they run; ``BadInput`` for an unknown table or an invalid mapping."""
    steps: list[Step] = auth_steps()
    if request.mapping:
        try:
            from models.imports import mapping as mapping_file  # the mapping file's steps
        except ImportError:
            raise BadInput(["this Hearth cannot read mapping files yet"]) from None
        try:
            steps.extend(mapping_file.parse_mapping(request.mapping).steps())
        except mapping_file.MappingError as exc:
            raise BadInput([f"mapping: {problem}" for problem in exc.problems]) from None
    if request.only:
        known = {step.name for step in steps}
        unknown = [name for name in request.only if name not in known]
        if unknown:
            hint = "" if request.mapping else " (app tables need --mapping)"
            raise BadInput([f"--only: no step for {name}{hint}" for name in unknown])
        steps = [step for step in steps if step.name in request.only]
    elif not request.mapping:
        raise BadInput(["--mapping is required unless --only lists auth tables only: " + ", ".join(AUTH_STEPS)])
    return steps


class _DryRunDone(Exception):
    """Leaves the dry run's transaction: everything it wrote is rolled back."""


def execute(
    request: ImportRequest,
    *,
    source_url: str,
    on_progress: Callable[[Progress], None] | None = None,
    report_sink: Callable[[dict], None] | None = None,
    collaborators: dict[str, Any] | None = None,
    job_id=None,
    created_by=None,
    chunk_size: int | None = None,
) -> ImportRun:
    """Run (or resume) one import; ``BadInput`` before anything is written when it cannot start.

    A dry run does everything inside one transaction that is rolled back: the returned run (not
    stored) has the counts, and ``report_sink`` receives its report rows before the rollback.
    """
    steps = build_steps(request)
    try:
        source = SupabaseSource.connect(source_url)
    except SourceError as exc:
        raise BadInput([str(exc)]) from None
    try:
        problems = validate(source, steps)
        if problems:
            raise BadInput(problems)
        since = since_for(request.since)
        options = request.options()
        if request.dry_run:
            return _dry_run(request, source, steps, since, on_progress, report_sink, collaborators, chunk_size)
        with db.atomic():
            run = ImportRun.for_job(job_id) if job_id else None
            run = run or ImportRun.unfinished(options)
            if run is None:
                run = ImportRun.start(options, job_id=job_id, created_by=created_by)
            elif job_id and run.job_id != job_id:
                ImportRun.update(job_id=job_id).where(ImportRun.id == run.id).execute()
        runner = Runner(
            source,
            steps,
            run,
            since=since,
            apply_deletes=request.apply_deletes,
            on_progress=on_progress,
            collaborators=collaborators,
            chunk_size=chunk_size,
        )
        try:
            runner.run()
        except BaseException as exc:
            # The run stays "running": asking for the same import again resumes it.
            log.warning("import run stopped", extra={"run_id": str(run.id), "error": type(exc).__name__})
            raise
        run.finish("succeeded")
        if request.send_password_links:
            run.counts.setdefault("password_links", {})["queued"] = queue_password_links()
            run.save_progress()
        if report_sink is not None:
            for row in ImportReportRow.of_run(run.id):
                report_sink(row)
        return run
    finally:
        source.close()


def _dry_run(request, source, steps, since, on_progress, report_sink, collaborators, chunk_size) -> ImportRun:
    result: dict[str, Any] = {}
    try:
        with db.atomic():
            run = ImportRun.start(request.options(), dry_run=True)
            Runner(
                source,
                steps,
                run,
                since=since,
                apply_deletes=request.apply_deletes,
                on_progress=on_progress,
                collaborators=collaborators,
                chunk_size=chunk_size,
            ).run()
            if report_sink is not None:
                for row in ImportReportRow.of_run(run.id):
                    report_sink(row)
            result.update(counts=run.counts, snapshot_at=run.snapshot_at, id=run.id)
            raise _DryRunDone()
    except _DryRunDone:
        pass
    return ImportRun(
        id=result["id"],
        options=request.options(),
        dry_run=True,
        status="succeeded",
        counts=result["counts"],
        snapshot_at=result["snapshot_at"],
        finished_at=utcnow(),
    )


def queue_password_links(batch: int = 500) -> int:
    """Queue the password-reset email for each imported user without a password, once per user ever."""
    queued = 0
    while True:
        with db.atomic():
            rows = list(
                ImportMapEntry.select(ImportMapEntry.source_key, User.email)
                .join(User, on=(User.id == ImportMapEntry.target_id.cast("uuid")))
                .where(
                    (ImportMapEntry.source_table == USERS)
                    & ImportMapEntry.password_link_at.is_null()
                    & User.password_hash.is_null()
                )
                .order_by(ImportMapEntry.source_key)
                .limit(batch)
                .for_update(of=ImportMapEntry, nowait=False)
                .objects()
            )
            for row in rows:
                Job.create(kind="accounts.send_password_reset", queue="notify", input={"email": row.email})
            ImportMapEntry.update(password_link_at=utcnow()).where(
                (ImportMapEntry.source_table == USERS) & ImportMapEntry.source_key.in_([r.source_key for r in rows])
            ).execute()
        queued += len(rows)
        if len(rows) < batch:
            return queued


def request_from_input(data: dict) -> ImportRequest:
    fields = {f.name for f in dataclasses.fields(ImportRequest)}
    return ImportRequest(**{k: v for k, v in data.items() if k in fields})


def settings_source() -> tuple[str, dict]:
    """The source URL and the storage collaborators' settings, from the worker's settings only."""
    settings = runtime().settings
    storage = {
        "endpoint": settings.supabase_storage_endpoint,
        "region": settings.supabase_storage_region,
        "key_id": settings.supabase_storage_key_id,
        "secret": settings.supabase_storage_secret,
        "dir": settings.supabase_storage_dir,
    }
    return settings.supabase_source_db_url, storage


@job_task(name="tasks.imports.run_supabase", soft_time_limit=SOFT_TIME_LIMIT, time_limit=SOFT_TIME_LIMIT + 60)
def run_supabase(ctx: JobContext) -> dict:
    """The import asked for through ``POST /v1/admin/imports``; progress per chunk on the job channel."""
    request = request_from_input(ctx.input)
    source_url, storage = settings_source()
    state = {"steps": 0}
    total_steps = max(1, len(request.only) if request.only else 2)

    def progress(update: Progress) -> None:
        if update.done:
            state["steps"] += 1
        done = state["steps"] + (0 if update.done else min(1.0, update.counts["read"] / max(1, update.expected)))
        ctx.progress(int(100 * done / total_steps), f"{update.step}: {update.counts['read']} rows read")

    run = execute(
        request,
        source_url=source_url,
        on_progress=progress,
        collaborators={
            "supabase_storage": storage,
            "scanner": runtime().scanner,
            **file_collaborators(storage, runtime().settings, runtime().storage),
        },
        job_id=ctx.job.id,
        created_by=ctx.job.owner_id,
    )
    return {"import_id": str(run.id), "dry_run": run.dry_run, "reported": run.reported, "tables": run.counts}


__all__ = ["RUN_KIND", "BadInput", "ImportRequest", "build_steps", "execute", "queue_password_links", "run_supabase"]
