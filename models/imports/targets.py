"""Target writers: a mapped source row becomes Hearth rows, under the rules Hearth keeps for them.

``write(target, mapped, previous_id)`` returns the row's ``Outcome``. Each write runs in its own
savepoint: a row that breaks a rule (a database constraint included) is skipped with a reason and
leaves nothing behind, and the run goes on. Rows of the same source row written by an earlier run
(``previous_id``, from the import map) are updated in place, never duplicated.

Decisions an operator sees: a profile's avatar is kept as ``user_metadata.avatar_upload_id`` (Hearth
has no avatar column; the API reads profile data from ``user_metadata``); imported messages notify
nobody; a conversation's participants are the buyer and the listing's people, as in the API. A
profile does not carry a phone: ``auth.users`` does, with its confirmation.
"""

from __future__ import annotations

import uuid

from peewee import IntegrityError

from models.accounts import SELF_SERVICE_ROLES, User
from models.base import utcnow
from models.conversations import MAX_BODY, Conversation, ConversationParticipant, Message
from models.db import db
from models.favorites import Favorite
from models.imports.listing_target import write_listing
from models.imports.mapping_rules import MappedRow
from models.imports.offer_target import write_offer
from models.imports.steps import Outcome
from models.listing_rules import ListingError
from models.messages import OwnListing, open_conversation
from models.properties import Property
from models.saved_searches import LIST_PARAMS, MAX_PER_USER, SavedSearch
from models.search import InvalidSearch, parse_query
from models.search import queue as search_queue

AVATAR_KEY = "avatar_upload_id"


def write(target: str, mapped: MappedRow, previous_id: str | None) -> Outcome:
    """Write ``mapped`` into ``target``; the outcome, with the row's notes (files that did not come across)."""
    writer = _WRITERS[target]
    try:
        with db.atomic():
            outcome = writer(mapped.fields, previous_id, mapped.key)
            if not outcome.came_across:
                raise _Undo(outcome)
    except _Undo as undo:
        return undo.outcome
    except IntegrityError as exc:
        return Outcome.skipped("constraint", str(exc).splitlines()[0][:200])
    return with_notes(mapped, outcome)


def with_notes(mapped: MappedRow, outcome: Outcome) -> Outcome:
    """The outcome of a row that came across, with its notes as its reason when it has no other."""
    if mapped.notes and outcome.reason is None:
        reason = mapped.notes[0][0]
        detail = "; ".join(detail for _, detail in mapped.notes)
        return Outcome(outcome.kind, outcome.target_id, reason, detail)
    return outcome


class _Undo(Exception):
    """Rolls the row's savepoint back when its writer skipped it after writing part of it."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome


def _profile(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    user = User.get_or_none(User.id == fields["user"])
    if user is None:
        return Outcome.skipped("missing-reference", f"user {fields['user']} does not exist")
    role = fields.get("role")
    if role is not None and role not in SELF_SERVICE_ROLES:
        return Outcome.skipped("invalid-value", f"role {role!r} is not one of {', '.join(SELF_SERVICE_ROLES)}")
    changes: dict = {name: fields[name] for name in ("full_name", "role") if fields.get(name) is not None}
    metadata = dict(user.user_metadata or {})
    for name, value in fields.items():
        if name.startswith("user_metadata."):
            metadata[name.partition(".")[2]] = value
    if "avatar" in fields:
        if fields["avatar"] is None:
            metadata.pop(AVATAR_KEY, None)
        else:
            metadata[AVATAR_KEY] = str(fields["avatar"])
    changes["user_metadata"] = metadata
    changes["updated_at"] = utcnow()
    User.update(**changes).where(User.id == user.id).execute()
    return Outcome.updated(user.id) if previous_id else Outcome.inserted(user.id)


def _favorite(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    user, listing = str(fields["user"]), str(fields["property"])
    values = {"user": user, "property": listing}
    if fields.get("created_at") is not None:
        values["created_at"] = fields["created_at"]
    inserted = Favorite.insert(**values).on_conflict_ignore().execute()
    target_id = f"{user}/{listing}"
    return (
        Outcome.unchanged(target_id)
        if previous_id
        else Outcome.inserted(target_id)
        if inserted
        else Outcome.updated(target_id)
    )


def _conversation(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    listing = Property.get_or_none(Property.id == fields["property"])
    if listing is None:
        return Outcome.skipped("missing-reference", f"listing {fields['property']} does not exist")
    try:
        conversation, created = open_conversation(listing, fields["buyer"])
    except OwnListing:
        return Outcome.skipped("listing-rule", "the buyer is one of the listing's own people")
    if created and fields.get("created_at") is not None:
        Conversation.update(created_at=fields["created_at"]).where(Conversation.id == conversation.id).execute()
    if created:
        return Outcome.inserted(conversation.id)
    if previous_id is None:
        # Two source conversations of one buyer about one listing: Hearth keeps one, the operator is told.
        return Outcome.updated(conversation.id, "merged", "the buyer already has a conversation about this listing")
    return Outcome.updated(conversation.id)


def _message(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    body = str(fields["body"]).strip()
    if not body or len(body) > MAX_BODY:
        return Outcome.skipped("invalid-value", f"a message body has 1 to {MAX_BODY} characters")
    conversation, sender = str(fields["conversation"]), str(fields["sender"])
    takes_part = (
        ConversationParticipant.select()
        .where((ConversationParticipant.conversation == conversation) & (ConversationParticipant.user == sender))
        .exists()
    )
    if not takes_part:
        return Outcome.skipped("not-a-participant", f"user {sender} takes no part in conversation {conversation}")
    attachments = [uuid.UUID(str(upload_id)) for upload_id in fields.get("attachments") or ()]
    if previous_id is not None and Message.select().where(Message.id == int(previous_id)).exists():
        Message.update(body=body, attachments=attachments).where(Message.id == int(previous_id)).execute()
        return Outcome.updated(previous_id)
    at = fields.get("created_at") or utcnow()
    message = Message.create(
        conversation=conversation, sender=sender, body=body, attachments=attachments, created_at=at
    )
    Conversation.update(last_message_id=message.id, last_message_at=at).where(
        (Conversation.id == conversation)
        & (Conversation.last_message_at.is_null() | (Conversation.last_message_at <= at))
    ).execute()
    return Outcome.inserted(message.id)


def _saved_search(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    query = fields["query"]
    if not isinstance(query, dict):
        return Outcome.skipped("invalid-value", "a saved search's query is a JSON object of search parameters")
    query = {name: value for name, value in query.items() if value is not None}
    # The rules of GET /v1/properties, as for a search saved through the API: the alerts run it later.
    try:
        parse_query(query)
    except InvalidSearch as exc:
        return Outcome.skipped("invalid-value", f"the saved query: {exc}")
    commas = [name for name in LIST_PARAMS for value in query.get(name) or () if "," in str(value)]
    if commas:
        return Outcome.skipped("invalid-value", f"the saved query: {', '.join(commas)} values must not hold a comma")
    values = {"name": str(fields["name"])[:200], "query": query, "alerts": bool(fields.get("alerts", True))}
    existing = SavedSearch.get_or_none(SavedSearch.id == previous_id) if previous_id else None
    if existing is not None:
        SavedSearch.update(**values, updated_at=utcnow()).where(SavedSearch.id == existing.id).execute()
        return Outcome.updated(existing.id)
    user = str(fields["user"])
    db.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"saved_searches:{user}",))
    if SavedSearch.select().where(SavedSearch.user == user).count() >= MAX_PER_USER:
        return Outcome.skipped("limit-reached", f"user {user} already has {MAX_PER_USER} saved searches")
    at = fields.get("created_at") or utcnow()
    saved = SavedSearch.create(user=user, created_at=at, updated_at=at, **values)
    return Outcome.inserted(saved.id)


def delete(target: str, target_id: str) -> Outcome:
    """Apply a row's deletion at the source (``--apply-deletes``) to what it became in Hearth.

    A listing is taken off the market as ``DELETE /v1/properties/{id}`` does (its history, offers and
    conversations stay); a favorite and a saved search are deleted. Users' profiles, conversations,
    messages and offers are kept (other people's records refer to them; an offer is a deal's history)
    and the deletion is only reported.
    """
    if target == "properties":
        listing = Property.get_or_none(Property.id == target_id)
        if listing is not None:
            try:
                listing.take_off_market(actor_id=None)
            except ListingError as exc:
                return Outcome.skipped("deleted-at-source", f"kept: {exc}")
            search_queue.mark_dirty(listing.id)
        return Outcome.updated(target_id)
    if target == "favorites":
        user, _, listing_id = target_id.partition("/")
        Favorite.delete().where((Favorite.user == user) & (Favorite.property == listing_id)).execute()
        return Outcome.updated(target_id)
    if target == "saved_searches":
        SavedSearch.delete().where(SavedSearch.id == target_id).execute()
        return Outcome.updated(target_id)
    return Outcome.skipped("deleted-at-source", f"{target} are kept in Hearth when deleted at the source")


_WRITERS = {
    "profiles": _profile,
    "properties": write_listing,
    "favorites": _favorite,
    "conversations": _conversation,
    "messages": _message,
    "saved_searches": _saved_search,
    "offers": write_offer,
}

__all__ = ["AVATAR_KEY", "delete", "with_notes", "write"]
