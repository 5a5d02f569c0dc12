"""The runner of the Supabase import: walks the steps in order, in chunks, each chunk one transaction.

A chunk's Hearth writes, its import-map writes, its report rows, the run's counts and its
checkpoint (the last source position done) commit together. A run killed at any point (``kill -9``)
is resumed by running it again: it continues after the last committed checkpoint, and the rows of
the chunk that was lost are done again as if for the first time, so nothing is duplicated. A row
whose checksum equals the one in the import map is ``unchanged`` and nothing is written for it.

The runner does not know where it runs: the CLI calls it in its process, the ``imports`` job in a
worker. ``on_progress`` is called after each chunk (a job reports progress and may stop there when
cancelled).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

from models.db import db
from models.imports import staged
from models.imports.import_map import ImportMap
from models.imports.read_ahead import read_ahead
from models.imports.report import ImportReportRow
from models.imports.runs import ImportRun, add_outcome, empty_counts
from models.imports.steps import FAILED, SKIPPED, UNCHANGED, Outcome, Source, SourceRow, Step, StepContext

log = logging.getLogger("hearth.imports")
T = TypeVar("T")

CHUNK_SIZE = 500
# A staged step's chunk: its cost per chunk (a few statements, a commit) is spread over more rows.
STAGED_CHUNK_SIZE = 20000
# ... but the first is at most this: the source sorts and writes it before Hearth can start, and Hearth
# writes it while the source writes the next ones.
FIRST_STAGED_CHUNK = 5000
KEYS_CHUNK = 5000
# A delta (--since last) starts this much before the previous run's snapshot: rows committed at the
# source just around that instant are read again (and found unchanged) rather than missed.
SINCE_OVERLAP = datetime.timedelta(minutes=5)


@dataclasses.dataclass
class Progress:
    step: str
    counts: dict
    expected: int
    done: bool = False


def batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _error_detail(exc: BaseException) -> str:
    # The first line only: PostgreSQL's DETAIL lines can quote the failing row, password hash included.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:500]


def validate(source: Source, steps: list[Step]) -> list[str]:
    """Every problem with the source's columns for these steps; empty when the run may start."""
    problems: list[str] = []
    for step in steps:
        problems.extend(step.check_columns(source.columns(step.name)))
    return problems


def since_for(value: str | None) -> datetime.datetime | None:
    """``--since``: None (everything), ``last`` (the previous run's snapshot minus an overlap) or a time."""
    if not value:
        return None
    if value == "last":
        last = ImportRun.last_snapshot()
        return last - SINCE_OVERLAP if last else None
    moment = datetime.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class Runner:
    def __init__(
        self,
        source: Source,
        steps: list[Step],
        run: ImportRun,
        *,
        since: datetime.datetime | None = None,
        apply_deletes: bool = False,
        chunk_size: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        collaborators: dict[str, Any] | None = None,
    ):
        self.source, self.steps, self.run_row = source, steps, run
        self.since, self.apply_deletes = since, apply_deletes
        self.chunk_size = chunk_size or CHUNK_SIZE
        self.staged_chunk_size = chunk_size or STAGED_CHUNK_SIZE
        self.on_progress = on_progress or (lambda progress: None)
        self.collaborators = collaborators or {}

    def run(self) -> ImportRun:
        run = self.run_row
        run.counts = dict(run.counts or {})
        run.checkpoint = {"done": [], "at": {}, **(run.checkpoint or {})}
        # A resumed run keeps its first snapshot: what it read before the kill was read then.
        run.snapshot_at = run.snapshot_at or self.source.snapshot_at
        for step in self.steps:
            if step.name in run.checkpoint["done"]:
                continue
            self._run_step(step)
        return run

    def _context(self) -> StepContext:
        return StepContext(
            run_id=str(self.run_row.id),
            snapshot_at=self.run_row.snapshot_at,
            options=dict(self.run_row.options or {}),
            resolve=ImportMap.resolve,
            resolve_many=ImportMap.resolve_many,
            dry_run=self.run_row.dry_run,
            collaborators=self.collaborators,
        )

    def _run_step(self, step: Step) -> None:
        run = self.run_row
        counts = run.counts.setdefault(step.name, empty_counts())
        expected = step.count(self.source, self.since)
        after = run.checkpoint["at"].get(step.name)
        ctx = self._context()
        chunks: Generator[list[Any], None, None]
        with contextlib.closing(self._chunks(step, after)) as chunks:
            for chunk in chunks:
                with db.atomic():
                    if step.staged:
                        self._apply_staged_chunk(step, chunk, ctx, counts)
                        run.checkpoint["at"][step.name] = step.position_of(chunk[-1])
                    else:
                        self._apply_chunk(step, chunk, ctx, counts)
                        run.checkpoint["at"][step.name] = chunk[-1].position
                    run.save_progress()
                self.on_progress(Progress(step.name, counts, expected))
        if self.since is not None:
            self._touch_all_keys(step)
        self._deletions(step, counts, ctx)
        with db.atomic():
            run.checkpoint["done"].append(step.name)
            run.save_progress()
        self.on_progress(Progress(step.name, counts, expected, done=True))

    def _chunks(self, step: Step, after: Any) -> Generator[list[Any], None, None]:
        """The step's rows in chunks: ``SourceRow``s read ahead in a thread, or a staged step's binary COPY rows."""
        if step.staged:
            select, params = step.staged_select(self.source, self.since, after)
            rows = iter(self.source.copy_rows(select, params))
            first = min(self.staged_chunk_size, FIRST_STAGED_CHUNK)
            yield from batched(itertools.islice(rows, first), first)
            yield from batched(rows, self.staged_chunk_size)
        else:
            yield from read_ahead(batched(step.rows(self.source, self.since, after), self.chunk_size))

    def _apply_staged_chunk(self, step: Step, chunk: list[bytes], ctx: StepContext, counts: dict) -> None:
        """A staged step's chunk: as one batch in one savepoint; row by row, each in its own, only when it fails."""
        rows = staged.stage(step, chunk)
        try:
            with db.atomic():
                outcomes = step.apply_staged(1, rows, ctx)
        except Exception as exc:  # noqa: BLE001 - any refusal sends the chunk row by row, where it is reported per row
            log.info(
                "import chunk failed as a batch, applied row by row",
                extra={"table": step.name, "error": _error_detail(exc)},
            )
            outcomes = []
            for ord_ in range(1, rows + 1):
                try:
                    with db.atomic():
                        outcomes.extend(step.apply_staged(ord_, ord_, ctx))
                except Exception as row_exc:  # noqa: BLE001 - the row is reported as failed, with the error's first line
                    detail = _error_detail(row_exc)
                    key = staged.fail_row(step, ord_, detail, self.run_row.id)
                    outcomes.append((FAILED, "error", 1))
                    log.warning("import row failed", extra={"table": step.name, "key": key, "error": detail})
        staged.finish()
        for kind, reason, count in outcomes:
            add_outcome(counts, kind, reason, count)

    def _apply_chunk(self, step: Step, chunk: list[SourceRow], ctx: StepContext, counts: dict) -> None:
        run = self.run_row
        states = ImportMap.states(step.name, [row.key for row in chunk])
        pending: list[tuple[SourceRow, str | None]] = []
        touched = []
        for row in chunk:
            state = states.get(row.key)
            if state is not None and state.checksum == row.checksum and not state.deleted_at_source:
                touched.append(row.key)
                add_outcome(counts, UNCHANGED, None)
            else:
                pending.append((row, state.target_id if state is not None else None))
        mapped, reported = [], []
        for (row, _previous), outcome in zip(pending, self._apply_rows(step, pending, ctx), strict=True):
            if outcome.kind != FAILED:
                skipped_reason = outcome.reason if outcome.kind == SKIPPED else None
                mapped.append((step.name, row.key, step.target, outcome.target_id, skipped_reason, row.checksum))
            if outcome.reason and outcome.kind != UNCHANGED:
                reported.append((step.name, row.key, outcome.kind, outcome.reason, outcome.detail))
            add_outcome(counts, outcome.kind, outcome.reason)
        ImportMap.record(mapped, run.id, run.snapshot_at)
        ImportMap.touch(step.name, touched, run.id, run.snapshot_at)
        ImportReportRow.add_many(run.id, reported)

    def _apply_rows(self, step: Step, pending: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome]:
        """The rows' outcomes: the whole batch in one savepoint; row by row, each in its own, only when it fails.

        A row that raises inside the batch rolls the batch's savepoint back, and the rows are applied
        again one savepoint each, so that row alone is ``failed`` and the rest stand.
        """
        if not pending:
            return []
        if step.writes_outside_database:
            return self._apply_one_by_one(step, pending, ctx)
        try:
            with db.atomic():  # one savepoint for the chunk's writes
                outcomes = step.apply_batch(pending, ctx)
                if outcomes is None:
                    outcomes = []
                    for row, previous_id in pending:
                        ctx.previous_id = previous_id
                        outcomes.append(step.apply(row, ctx))
            return outcomes
        except Exception as exc:  # noqa: BLE001 - any refusal sends the chunk row by row, where it is reported per row
            # No traceback: PostgreSQL's DETAIL lines can quote the failing row, password hash included.
            log.info(
                "import chunk failed as a batch, applied row by row",
                extra={"table": step.name, "error": _error_detail(exc)},
            )
        return self._apply_one_by_one(step, pending, ctx)

    @staticmethod
    def _apply_one_by_one(step: Step, pending: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome]:
        outcomes = []
        for row, previous_id in pending:
            ctx.previous_id = previous_id
            try:
                with db.atomic():  # a savepoint: one row failing leaves the rest of the chunk standing
                    outcome = step.apply(row, ctx)
            except Exception as exc:  # noqa: BLE001 - the row is reported as failed, with the error's first line
                detail = _error_detail(exc)
                log.warning("import row failed", extra={"table": step.name, "key": row.key, "error": detail})
                outcome = Outcome.failed("error", detail)
            outcomes.append(outcome)
        return outcomes

    def _touch_all_keys(self, step: Step) -> None:
        """A delta read only the changed rows; the others are still there: say so, for deletions."""
        run = self.run_row
        keys = step.keys(self.source)
        while chunk := list(itertools.islice(keys, KEYS_CHUNK)):
            with db.atomic():
                ImportMap.touch(step.name, chunk, run.id, run.snapshot_at)

    def _deletions(self, step: Step, counts: dict, ctx: StepContext) -> None:
        """Rows imported earlier and gone from the source: reported, and applied with ``--apply-deletes``."""
        run = self.run_row
        after = ""
        while missing := ImportMap.missing(step.name, run.id, after=after, apply=self.apply_deletes):
            after = missing[-1].source_key
            with db.atomic():
                reported, marked = [], []
                for entry in missing:
                    if self.apply_deletes:
                        with db.atomic():
                            outcome = step.delete(entry.target_id, ctx)
                        applied = outcome.kind != SKIPPED
                        detail = f"Hearth {step.target} {entry.target_id}: " + (
                            "deleted" if applied else (outcome.detail or "kept")
                        )
                        if applied:
                            ImportMap.forget_target(step.name, entry.source_key)
                            counts["deletes_applied"] = counts.get("deletes_applied", 0) + 1
                    else:
                        detail = f"Hearth {step.target} {entry.target_id} kept (run with --apply-deletes)"
                    if entry.deleted_at_source is None:
                        counts["deleted_at_source"] = counts.get("deleted_at_source", 0) + 1
                        counts["reported"] = counts.get("reported", 0) + 1
                        marked.append(entry.source_key)
                    reported.append((step.name, entry.source_key, SKIPPED, "deleted-at-source", detail))
                ImportMap.mark_deleted(step.name, marked, run.snapshot_at)
                ImportReportRow.add_many(run.id, reported)
                run.save_progress()


__all__ = ["CHUNK_SIZE", "SINCE_OVERLAP", "STAGED_CHUNK_SIZE", "Progress", "Runner", "batched", "since_for", "validate"]
