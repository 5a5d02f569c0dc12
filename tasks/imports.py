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

from celery.exceptions import SoftTimeLimitExceeded

from models.accounts import User
from models.base import utcnow
from models.db import TRANSIENT_ERRORS, db
from models.imports.auth_steps import AUTH_STEPS, USERS, auth_steps
from models.imports.import_map import ImportMapEntry
from models.imports.mapping_rules import OBJECTS_TABLE
from models.imports.report import ImportReportRow
from models.imports.runner import Progress, Runner, since_for, validate
from models.imports.runs import ImportRun
from models.imports.steps import Step
from models.jobs import Job
from services.supabase_source import CONNECTION_ERRORS, SourceError, SupabaseSource, redact_message
from services.supabase_storage import StorageSourceError
from tasks.base import Cancelled, JobContext, LeaseLost, Transient, job_task
from tasks.import_files import file_collaborators
from tasks.runtime import runtime

log = logging.getLogger("hearth.imports")

RUN_KIND = "imports.run_supabase"
# A job may run this long (below the broker's visibility timeout); a longer import is asked for
# again (same options) and resumes where this one stopped, or is run with the CLI.
SOFT_TIME_LIMIT = 3000


class RunStopped(Exception):
    """The run started and then stopped on an error (a bug, the source connection lost, a time limit).

    The run is marked ``failed`` with ``problem`` (no secret in it); asking for the same import again
    resumes it from its checkpoints. ``transient``: the source connection was lost, trying again may work.
    """

    def __init__(self, run_id, problem: str, *, transient: bool):
        super().__init__(problem)
        self.run_id, self.problem, self.transient = run_id, problem, transient
        self.public_detail = f"import {run_id} stopped: {problem}. Ask for the same import again to resume it."[:2000]


class SourceLost(Transient):
    """The job's form of a transient ``RunStopped``: the job is retried later and resumes the run."""

    def __init__(self, stopped: RunStopped):
        super().__init__(stopped.public_detail)
        self.public_detail = stopped.public_detail


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


def _storage_problems(steps: list[Step], collaborators: dict[str, Any] | None) -> list[str]:
    """When files are imported, the storage source must answer before anything is written."""
    storage_source = (collaborators or {}).get("storage_source")
    if storage_source is None or not any(step.name == OBJECTS_TABLE for step in steps):
        return []
    try:
        storage_source.check()
    except StorageSourceError as exc:
        return [str(exc)]
    return []


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
        problems += _storage_problems(steps, collaborators)
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
            else:
                run.resume(job_id)
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
        except LeaseLost:
            raise  # another worker owns the job, and this run with it, now: leave the run to it
        except Cancelled:
            _mark_failed(run, "cancelled")
            raise
        except Exception as exc:
            problem = _problem(exc, source_url, collaborators)
            log.warning("import run stopped", extra={"run_id": str(run.id), "error": type(exc).__name__})
            _mark_failed(run, problem)
            raise RunStopped(run.id, problem, transient=_transient(exc)) from exc
        except BaseException as exc:  # interrupted (Ctrl-C, the worker shutting down): failed, and resumable
            _mark_failed(run, f"interrupted ({type(exc).__name__})")
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


def _problem(exc: BaseException, source_url: str, collaborators: dict[str, Any] | None) -> str:
    """What stopped the run, for people: the error's first line, without the source's credentials."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "the job reached its time limit"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    problem = redact_message(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, source_url)
    storage = (collaborators or {}).get("supabase_storage") or {}
    for secret in (storage.get("secret"), storage.get("key_id")):
        if secret:
            problem = problem.replace(secret, "***")
    return problem[:1000]


def _transient(exc: BaseException) -> bool:
    """A lost connection (the source's or Hearth's) may pass; anything else is a problem to fix first."""
    if isinstance(exc, SourceError):
        return exc.connection_lost
    return isinstance(exc, (*CONNECTION_ERRORS, *TRANSIENT_ERRORS))


def _mark_failed(run: ImportRun, problem: str) -> None:
    try:
        run.finish("failed", problem)
    except Exception:
        # Hearth's database itself went away: the run stays "running", which resumes just the same.
        log.warning("import run not marked failed", extra={"run_id": str(run.id)}, exc_info=True)


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
    # Every step of the run (auth, storage, each mapped table) is an equal share of the job's percentage.
    total_steps = max(1, len(build_steps(request)))

    def progress(update: Progress) -> None:
        if update.done:
            state["steps"] += 1
        done = state["steps"] + (0 if update.done else min(1.0, update.counts["read"] / max(1, update.expected)))
        ctx.progress(int(100 * done / total_steps), f"{update.step}: {update.counts['read']} rows read")

    try:
        files = file_collaborators(storage, runtime().settings, runtime().storage)
    except StorageSourceError as exc:
        raise BadInput([f"SUPABASE_STORAGE_*: {exc}"]) from None
    try:
        run = execute(
            request,
            source_url=source_url,
            on_progress=progress,
            collaborators={"supabase_storage": storage, "scanner": runtime().scanner, **files},
            job_id=ctx.job.id,
            created_by=ctx.job.owner_id,
        )
    except RunStopped as stopped:
        if stopped.transient:
            raise SourceLost(stopped) from stopped
        raise
    return {"import_id": str(run.id), "dry_run": run.dry_run, "reported": run.reported, "tables": run.counts}


__all__ = [
    "RUN_KIND",
    "BadInput",
    "ImportRequest",
    "RunStopped",
    "SourceLost",
    "build_steps",
    "execute",
    "queue_password_links",
    "run_supabase",
]
