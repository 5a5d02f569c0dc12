"""Schemas of the Supabase import (``/v1/admin/imports``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.schemas import MULTI_LINE, Cursor, Limit, Request, Response

# A mapping file is a few kilobytes; this leaves room for hundreds of tables.
MAPPING_MAX_CHARS = 256 * 1024
SourceTable = Annotated[
    str, msgspec.Meta(min_length=3, max_length=200, pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
]
Since = Annotated[
    str,
    msgspec.Meta(
        max_length=40,
        pattern=r"^(last|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)$",
        description="`last`: rows changed since the previous run's snapshot; or an ISO 8601 time",
    ),
]


class ImportCreate(Request):
    """The import's options. The source database URL and the storage keys are never sent: the
    worker reads them from its settings (``SUPABASE_SOURCE_DB_URL``, ``SUPABASE_STORAGE_*``)."""

    only: Annotated[list[SourceTable], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    since: Since | None = None
    dry_run: bool = False
    apply_deletes: bool = False
    send_password_links: bool = False
    mapping: (
        Annotated[
            str,
            msgspec.Meta(max_length=MAPPING_MAX_CHARS, pattern=MULTI_LINE, description="The mapping file's TOML text"),
        ]
        | None
    ) = None
    storage: Literal["s3", "dir"] | None = None


class ImportQuery(Request):
    cursor: Cursor | None = None
    limit: Limit = 20


class ReportQuery(Request):
    format: Literal["csv", "jsonl"] = "jsonl"


class ImportView(Response):
    id: str
    status: Literal["running", "succeeded", "failed"]
    dry_run: bool
    options: dict[str, Any]
    job_id: str | None
    started_at: str | None
    finished_at: str | None
    snapshot_at: str | None
    tables: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(
            description="Per source table: `read`, `inserted`, `updated`, `unchanged`, `skipped` and `failed` "
            "(each by reason), `reported`, and `deleted_at_source` when rows disappeared at the source"
        ),
    ]
    reported: int
    error: Annotated[
        str | None,
        msgspec.Meta(
            description="Why a `failed` run stopped (no secret in it); asking for the same import again resumes it"
        ),
    ] = None


class ImportList(Response):
    items: list[ImportView]
    next_cursor: str | None
