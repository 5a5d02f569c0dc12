"""The personal data export: an archive of everything Hearth holds about a user.

``POST /v1/me/export`` creates an ``exports.build_export`` job. The task
collects every registered section, writes a zip (one JSON file per section
and a ``manifest.json``) through storage once per job, and finishes with a
short-lived signed ``download_url``. Later domains add their data with
``@export_section("name")``: a function ``(user) -> JSON-able`` that returns
only what belongs to that user, and never a secret (password hashes, token
hashes, other users' details).
"""
from __future__ import annotations

import tempfile
import zipfile

import msgspec

from models.accounts import AuthSession, User
from models.audit import AuditEntry
from models.base import utcnow
from tasks.base import JobContext, job_task
from tasks.jobs import storage
from tasks.runtime import runtime

FORMAT_VERSION = 1
ARCHIVE_NAME = "hearth-export.zip"
SECTIONS: list[tuple[str, object]] = []


def export_section(name: str):
    """Register ``fn(user)`` as the section ``name`` (``<name>.json`` in the archive)."""
    def register(fn):
        if any(existing == name for existing, _ in SECTIONS):
            raise ValueError(f"export section {name!r} is registered twice")
        SECTIONS.append((name, fn))
        return fn
    return register


def archive_key(job) -> str:
    return f"exports/{job.owner_id}/{job.id}/{ARCHIVE_NAME}"


@export_section("profile")
def _profile(user: User) -> dict:
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return dict(user.profile(), email_verified_at=iso(user.email_verified_at),
                last_login_at=iso(user.last_login_at), updated_at=iso(user.updated_at),
                banned=user.is_banned, ban_reason=user.ban_reason)


@export_section("sessions")
def _sessions(user: User) -> list[dict]:
    rows = AuthSession.select().where(AuthSession.user == user.id).order_by(AuthSession.created_at)
    return [dict(s.view(), revoked_reason=s.revoked_reason) for s in rows]


@export_section("audit")
def _audit(user: User) -> list[dict]:
    """What was done to the account, and what the user did.

    Entries about the account are complete, except who else acted (staff
    accounts stay private) and from where. Entries about other people that the
    user made keep only what happened, not the other person's data.
    """
    own = str(user.id)
    rows = (AuditEntry.select()
            .where(((AuditEntry.target_type == "user") & (AuditEntry.target_id == own))
                   | (AuditEntry.actor == user.id))
            .order_by(AuditEntry.id))
    entries = []
    for row in rows:
        by_user = row.actor_id is not None and str(row.actor_id) == own
        about_user = row.target_type == "user" and row.target_id == own
        entry = {"at": row.at.isoformat(), "action": row.action, "by": "you" if by_user else "hearth",
                 "target_type": row.target_type}
        if about_user:
            entry.update(before=row.before, after=row.after)
        else:
            entry["target_id"] = row.target_id
        if by_user:
            entry["ip"] = row.ip
        entries.append(entry)
    return entries


def write_archive(out, user: User, sections: dict) -> None:
    manifest = {
        "format": "hearth-export",
        "version": FORMAT_VERSION,
        "user_id": str(user.id),
        "generated_at": utcnow().isoformat(),
        "sections": [f"{name}.json" for name in sections],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", msgspec.json.format(msgspec.json.encode(manifest)))
        for name, data in sections.items():
            archive.writestr(f"{name}.json", msgspec.json.format(msgspec.json.encode(data)))


@job_task()
def build_export(ctx: JobContext) -> dict:
    user = User.get_or_none(User.id == ctx.input["user_id"])
    if user is None:  # the account was deleted; its jobs go with it
        return {"exported": False}
    sections = {}
    for index, (name, collect) in enumerate(SECTIONS):
        ctx.progress(5 + 70 * index // max(1, len(SECTIONS)), f"Collecting {name}")
        sections[name] = collect(user)
    ctx.progress(80, "Writing the archive")

    def store(key):
        with tempfile.TemporaryFile() as spool:
            write_archive(spool, user, sections)
            spool.seek(0)
            return storage().put(archive_key(ctx.job), spool).as_dict()

    file = ctx.once("archive", store)
    ctx.progress(95, "Signing the download link")
    url, expires_at = storage().signed_url(file["key"], runtime().settings.export_url_ttl)
    return {"file": dict(file, filename=ARCHIVE_NAME, content_type="application/zip"),
            "download_url": url, "expires_at": expires_at.isoformat(), "sections": list(sections)}
