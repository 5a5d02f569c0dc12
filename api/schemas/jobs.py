"""Schemas of jobs, the personal data export and signed downloads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.schemas import Cursor, Limit, Request, Response, line

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[a-z_]+\.[a-z_]+$", examples=["exports.build_export"])
]


class JobProgress(Response):
    percent: Annotated[int, msgspec.Meta(ge=0, le=100)]
    message: str | None


class JobView(Response):
    """A job as its owner sees it; also the ``data`` of every ``job.*`` event."""

    id: str
    kind: str
    status: JobStatus
    progress: JobProgress
    result: dict[str, Any] | None
    error: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(description="A problem document (`type`, `title`, `detail`) when the job failed; null otherwise"),
    ]
    last_error: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            description="Why a job that has not failed went back to the queue (a transient error it retries, "
            "or its worker stopped); null once it finished"
        ),
    ]
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool
    request_id: Annotated[
        str | None,
        msgspec.Meta(description="The `X-Request-ID` of the request that caused the job; its log lines carry it"),
    ] = None


class JobList(Response):
    items: list[JobView]
    next_cursor: str | None


class JobQuery(Request):
    kind: JobKind | None = None
    status: JobStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class SelftestRequest(Request):
    steps: Annotated[int, msgspec.Meta(ge=1, le=100, description="Progress steps")] = 5
    step_ms: Annotated[int, msgspec.Meta(ge=0, le=10_000, description="Milliseconds per step")] = 200
    owner_id: (
        Annotated[str, line(36, description="Whose job it is (default: yours); its events go to that user's channel")]
        | None
    ) = None


class DownloadQuery(Request):
    expires: Annotated[int, msgspec.Meta(ge=0, description="Unix time the link stops working")]
    sig: Annotated[str, line(100, min_length=1, description="The link's signature")]
