"""What the Storage steps of a Supabase import need from the process that runs it (worker or CLI)."""

from __future__ import annotations

from typing import Any

from models.file_rules import purpose_rules
from services.supabase_storage import make_storage_source


def file_collaborators(options: dict, settings, storage) -> dict[str, Any]:
    """The Storage steps' collaborators: ``storage_source`` (Supabase's files, from ``options``: ``dir``,
    or ``endpoint``/``region``/``key_id``/``secret``; None when neither is given), ``storage`` (Hearth's)
    and ``upload_rules`` (each purpose's types and size, from ``settings``).

    ``StorageSourceError`` when the directory does not exist: the import cannot start.
    """
    directory = options.get("dir") or None
    source = make_storage_source(
        directory=directory,
        endpoint=None if directory else options.get("endpoint") or None,
        region=options.get("region") or "us-east-1",
        access_key=options.get("key_id") or "",
        secret_key=options.get("secret") or "",
    )
    return {"storage_source": source, "storage": storage, "upload_rules": purpose_rules(settings)}


__all__ = ["file_collaborators"]
