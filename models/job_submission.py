"""Jobs are handed to the broker after the transaction that created them commits, here and nowhere else.

Each unit of work opens a submission scope: the API around every request
(``api.middleware.DatabaseConnection``), the worker around every task run
(``tasks.base``), commands that create jobs around their work::

    with jobs_submitted_after_commit(queue.submit):
        with db.atomic():
            job = Job.create(...)  # registered with the scope
        # committed: the job was submitted

Creating a job (``Job.create``, ``Job.create_or_get_active``, ``Job.save(force_insert=True)``;
a raw insert calls ``submit_after_commit`` itself) registers it with the
thread's innermost scope, which submits it once the transaction and
savepoints opened since the scope began have committed (``models.db.after_commit_to``):
never before its row is committed, and never when its block rolls back. A job
created with no such block open (autocommit) is submitted at once. Inside a
test's transaction the scope begins one level down, so a resource's
``db.atomic()`` (a savepoint there) submits its jobs when it is released,
as a commit would in production.

A job created outside any scope, or whose submission fails (the broker is
down), stays ``queued``: the beat sweep (``tasks.jobs.sweep_jobs``) submits it.
Submitting a job again later (a retry's countdown, the sweeps) goes to the
queue directly; this module is about new jobs.
"""

from __future__ import annotations

import logging
import threading

from models.db import after_commit_to, open_blocks

log = logging.getLogger("hearth.jobs")


class _Scopes(threading.local):
    def __init__(self):
        self.open: list[JobSubmission] = []


_scopes = _Scopes()


class JobSubmission:
    """One unit of work's submission scope (see the module docstring); use it as a context manager.

    ``submit(job) -> bool`` hands a job to the broker (``services.jobqueue``);
    ``announce(job)``, if given, runs just before for jobs whose owner is told
    they are queued (``Job.announced``), so that announcement precedes any
    event of the worker that runs the job. ``submitted`` and ``left_queued``
    list what happened to each job of the scope.
    """

    __slots__ = ("_announce", "_submit", "base", "left_queued", "submitted")

    def __init__(self, submit, *, announce=None):
        self._submit = submit
        self._announce = announce
        self.base = 0
        self.submitted: list = []
        self.left_queued: list = []

    def open(self) -> JobSubmission:
        """Begin the scope on this thread (``with`` does it); it counts blocks from those open now."""
        self.base = open_blocks()
        _scopes.open.append(self)
        return self

    def close(self) -> None:
        scopes = _scopes.open
        if scopes and scopes[-1] is self:
            scopes.pop()
        elif self in scopes:
            scopes.remove(self)

    def __enter__(self) -> JobSubmission:
        return self.open()

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()

    def register(self, job) -> None:
        after_commit_to(self.base, lambda: self._hand_over(job))

    def _hand_over(self, job) -> None:
        try:
            if self._announce is not None and job.announced:
                self._announce(job)
            submitted = self._submit(job)
        except Exception:
            log.warning(
                "could not submit a job; it stays queued for the sweep", extra={"job_id": str(job.id)}, exc_info=True
            )
            submitted = False
        (self.submitted if submitted else self.left_queued).append(job)


def jobs_submitted_after_commit(submit, *, announce=None) -> JobSubmission:
    """A submission scope for this thread: jobs created inside it are submitted after their commit."""
    return JobSubmission(submit, announce=announce)


def current_submission() -> JobSubmission | None:
    """This thread's innermost open submission scope, if any."""
    return _scopes.open[-1] if _scopes.open else None


def submit_after_commit(job) -> None:
    """Have a just-created job submitted once its transaction commits (every job constructor calls this)."""
    scope = current_submission()
    if scope is None:
        log.info(
            "job created outside a submission scope; the sweep will submit it",
            extra={"job_id": str(job.id), "kind": job.kind},
        )
        return
    scope.register(job)


__all__ = ["JobSubmission", "current_submission", "jobs_submitted_after_commit", "submit_after_commit"]
