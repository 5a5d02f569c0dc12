"""What the Storage steps of a Supabase import need from the process that runs it (worker or CLI)."""

from __future__ import annotations

from typing import Any

from models.file_rules import purpose_rules
from services.supabase_storage import make_storage_source


def file_collaborators(settings, storage) -> dict[str, Any]:
    """``storage_source`` (Supabase's files: its S3 endpoint or an export directory, from settings),
    ``storage`` (Hearth's) and ``upload_rules`` (each purpose's types and size) for the Storage steps."""
    source = make_storage_source(
        endpoint=settings.supabase_storage_endpoint or None,
        directory=settings.supabase_storage_dir or None,
        region=settings.supabase_storage_region or "us-east-1",
        access_key=settings.supabase_storage_key_id,
        secret_key=settings.supabase_storage_secret,
    )
    return {"storage_source": source, "storage": storage, "upload_rules": purpose_rules(settings)}


__all__ = ["file_collaborators"]
