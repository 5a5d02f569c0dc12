"""The personal data export: an archive of everything Hearth holds about a user.

``POST /v1/me/export`` creates an ``exports.build_export`` job. The task
collects every registered section, writes a zip (one JSON file per section
and a ``manifest.json``) through storage once per job. Its owner reads a
short-lived signed ``download_url`` from ``GET /v1/jobs/{id}``, signed on each
read: never stored on the job nor sent in an event. Later domains add their data with
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
from models.conversations import Conversation, ConversationParticipant, Message
from models.favorites import Favorite
from models.notifications import Notification, NotificationDelivery, NotificationPreference, Preferences
from models.properties import Property, PropertyHistory
from models.saved_searches import SavedSearch, SavedSearchAlert, saved_search_view
from models.uploads import PropertyMedia, Upload
from tasks.base import JobContext, job_task
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
    return dict(
        user.profile(),
        email_verified_at=iso(user.email_verified_at),
        last_login_at=iso(user.last_login_at),
        updated_at=iso(user.updated_at),
        banned=user.is_banned,
        ban_reason=user.ban_reason,
    )


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
    rows = (
        AuditEntry.select()
        .where(((AuditEntry.target_type == "user") & (AuditEntry.target_id == own)) | (AuditEntry.actor == user.id))
        .order_by(AuditEntry.id)
    )
    entries = []
    for row in rows:
        by_user = row.actor_id is not None and str(row.actor_id) == own
        about_user = row.target_type == "user" and row.target_id == own
        entry = {
            "at": row.at.isoformat(),
            "action": row.action,
            "by": "you" if by_user else "hearth",
            "target_type": row.target_type,
        }
        if about_user:
            entry.update(before=row.before, after=row.after)
        else:
            entry["target_id"] = row.target_id
        if by_user:
            entry["ip"] = row.ip
        entries.append(entry)
    return entries


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


@export_section("conversations")
def _conversations(user: User) -> list[dict]:
    """Every conversation I take part in, with all its messages.

    The other participants are named by id, name and role in the conversation
    only; their messages are there because they were written to me.
    """
    mine = (
        ConversationParticipant.select(ConversationParticipant, Conversation)
        .join(Conversation)
        .where(ConversationParticipant.user == user.id)
        .order_by(Conversation.created_at, Conversation.id)
    )
    conversations = []
    for me in mine:
        conversation = me.conversation
        people = (
            ConversationParticipant.select(ConversationParticipant, User)
            .join(User)
            .where(ConversationParticipant.conversation == conversation.id)
            .order_by(ConversationParticipant.joined_at, ConversationParticipant.user)
        )
        messages = Message.select().where(Message.conversation == conversation.id).order_by(Message.id)
        conversations.append(
            {
                "id": str(conversation.id),
                "property_id": str(conversation.property_id),
                "created_at": conversation.created_at.isoformat(),
                "my_role": me.role,
                "last_read_message_id": me.last_read_message_id,
                "last_read_at": _iso(me.last_read_at),
                "participants": [
                    {"user_id": str(p.user_id), "full_name": p.user.full_name, "role": p.role}
                    for p in people
                    if p.user_id != user.id
                ],
                "messages": [
                    {
                        "id": m.id,
                        "sender_id": str(m.sender_id) if m.sender_id else None,
                        "by_me": m.sender_id == user.id,
                        "body": m.body,
                        "attachments": [str(a) for a in m.attachments or ()],
                        "created_at": m.created_at.isoformat(),
                    }
                    for m in messages
                ],
            }
        )
    return conversations


@export_section("notifications")
def _notifications(user: User) -> list[dict]:
    """Every notification made for me, with where it went (email address or phone number, status)."""
    rows = Notification.select().where(Notification.user == user.id).order_by(Notification.created_at, Notification.id)
    deliveries: dict = {}
    for d in (
        NotificationDelivery.select().where(NotificationDelivery.user == user.id).order_by(NotificationDelivery.id)
    ):
        deliveries.setdefault(d.notification_id, []).append(
            {
                "channel": d.channel,
                "status": d.status,
                "recipient": d.recipient,
                "created_at": d.created_at.isoformat(),
                "sent_at": _iso(d.sent_at),
            }
        )
    return [dict(row.view(), in_app=row.in_app, deliveries=deliveries.get(row.id, [])) for row in rows]


@export_section("notification_preferences")
def _notification_preferences(user: User) -> dict:
    """My settings per event type (defaults where I chose nothing), quiet hours and digest hour."""
    prefs = Preferences.of(user.id)
    row = NotificationPreference.get_or_none(NotificationPreference.user == user.id)
    return {
        "types": prefs.types,
        "quiet_start": _iso(prefs.quiet_start),
        "quiet_end": _iso(prefs.quiet_end),
        "timezone": prefs.timezone,
        "digest_hour": prefs.digest_hour,
        "updated_at": _iso(row.updated_at) if row is not None else None,
    }


@export_section("saved_searches")
def _saved_searches(user: User) -> list[dict]:
    """My saved searches, each with the alerts it gave."""
    rows = SavedSearch.select().where(SavedSearch.user == user.id).order_by(SavedSearch.created_at, SavedSearch.id)
    searches = []
    for row in rows:
        alerts = (
            SavedSearchAlert.select()
            .where(SavedSearchAlert.saved_search == row.id)
            .order_by(SavedSearchAlert.created_at, SavedSearchAlert.property)
        )
        searches.append(
            dict(
                saved_search_view(row),
                alerts_sent=[
                    {
                        "property_id": str(a.property_id),
                        "reason": a.reason,
                        "price": a.price or None,
                        "notification_id": str(a.notification_id) if a.notification_id else None,
                        "created_at": a.created_at.isoformat(),
                    }
                    for a in alerts
                ],
            )
        )
    return searches


@export_section("uploads")
def _uploads(user: User) -> list[dict]:
    """What is known about each file I uploaded (not the files themselves) and the listings it is on."""
    rows = Upload.select().where(Upload.owner == user.id).order_by(Upload.created_at, Upload.id)
    attached: dict = {}
    for media in PropertyMedia.select().join(Upload).where(Upload.owner == user.id):
        attached.setdefault(media.upload_id, []).append({"property_id": str(media.property_id), "kind": media.kind})
    return [
        {
            "id": str(u.id),
            "purpose": u.purpose,
            "status": u.status,
            "filename": u.filename,
            "content_type": u.content_type,
            "size": u.size,
            "sha256": u.sha256,
            "width": u.width,
            "height": u.height,
            "signature": u.signature,
            "reject_reason": u.reject_reason,
            "created_at": u.created_at.isoformat(),
            "scanned_at": _iso(u.scanned_at),
            "attached_to": attached.get(u.id, []),
        }
        for u in rows
    ]


@export_section("listings")
def _listings(user: User) -> list[dict]:
    """Listings the user owns or is the assigned agent of, each with its full price/status history.

    History entries name no actor: who else changed a listing (an agent, staff)
    is theirs to know, not part of this user's data.
    """
    rows = (
        Property.select()
        .where((Property.owner == user.id) | (Property.list_agent == user.id))
        .order_by(Property.created_at, Property.id)
    )
    listings = []
    for listing in rows:
        history = PropertyHistory.select().where(PropertyHistory.property == listing.id).order_by(PropertyHistory.id)
        relation = "owner" if listing.owner_id == user.id else "list_agent"
        listings.append(dict(listing.view(), relation=relation, history=[entry.view() for entry in history]))
    return listings


@export_section("favorites")
def _favorites(user: User) -> list[dict]:
    """Saved listings: when, and the listing's summary while it is on the market."""
    rows = (
        Favorite.select(Favorite, Property)
        .join(Property)
        .where(Favorite.user == user.id)
        .order_by(Favorite.created_at, Favorite.property)
    )
    return [
        {
            "property_id": str(row.property_id),
            "favorited_at": row.created_at.isoformat(),
            "listing": row.property.summary() if row.property.is_public else None,
        }
        for row in rows
    ]


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
            return runtime().storage.put(archive_key(ctx.job), spool).as_dict()

    file = ctx.once("archive", store)
    # No signed link in the result: the owner gets a fresh one each time they read the job
    # (``GET /v1/jobs/{id}``), and the job's events (replayed to whoever may join) carry none.
    return {"file": dict(file, filename=ARCHIVE_NAME, content_type="application/zip"), "sections": list(sections)}
