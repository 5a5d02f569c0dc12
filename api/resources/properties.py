"""``/v1/properties``: create, read, change and withdraw listings; their price and status history.

Who sees what: a listed property (``models.listing_rules.PUBLIC_STATUSES``) is
public; a draft (``Incomplete``) or an off-market one (Withdrawn, Expired,
Canceled) only to its owner, its assigned agent and admins; anyone else gets
404. Those who see a listing but may not change it get 403.

Writes are conditional: ``PATCH`` needs ``If-Match`` with the listing's
``ETag`` (428 without it, 412 when it is stale), and the version bump is an
``UPDATE ... WHERE version = expected``, so a concurrent writer can never be
silently overwritten. Every change marks the listing dirty for search in the
same transaction; the reindex job is submitted after the commit.
"""

from __future__ import annotations

import uuid

import falcon
import msgspec

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import Problem, conflict, forbidden, not_found, validation_error
from api.etags import ANY, parse_if_match
from api.operation import operation
from api.resources.search import SearchMixin
from api.schemas.properties import HistoryList, PageQuery, PropertyCreate, PropertyPatch, PropertyView
from models.db import db
from models.escrows import open_escrow_of
from models.listing_rules import TRANSITIONS, IllegalTransition, InvalidListing, StaleListing
from models.properties import Property, PropertyHistory
from models.search import queue as search_queue

TAGS = ("properties",)
ETAG_HEADER = {
    "description": 'The listing\'s version, `"v{version}"`: send it as `If-Match` to change it, '
    "or as `If-None-Match` to revalidate a copy.",
    "schema": {"type": "string"},
}


def _transition_table() -> str:
    rows = "\n".join(
        f"| {status} | {', '.join(sorted(targets)) or '— (final)'} |" for status, targets in TRANSITIONS.items()
    )
    return "| from | may move to |\n| --- | --- |\n" + rows


STATUS_RULES = (
    "Status changes follow this table; any other move is a 409 (`illegal-transition`):\n\n"
    + _transition_table()
    + "\n\nMoving to `Closed` needs `close_price` and `close_date` (422 otherwise). The first move to "
    "`Active` sets `on_market_timestamp`; a new `list_price` moves the old one to `previous_list_price`. "
    "Every price and status change is kept in the listing's history. While an accepted offer's escrow is "
    "open the listing's status follows the escrow (`ActiveUnderContract`, then `Closed` on release or "
    "`Active` when it falls through): changing it by hand, or withdrawing the listing, is a 409 "
    "(`under-escrow`, with the `escrow_id`)."
)


def load_visible(property_id, principal) -> Property:
    """The listing if the caller may see it; otherwise 404 (whether or not it exists)."""
    listing = Property.get_or_none(Property.id == property_id)
    if listing is None or not listing.is_visible_to(principal):
        raise not_found("property")
    return listing


def load_editable(property_id, principal) -> Property:
    """The listing if the caller may change it: 404 when they cannot see it, 403 when they only see it."""
    listing = load_visible(property_id, principal)
    if not listing.is_managed_by(principal):
        raise forbidden("Only the listing's owner, its agent or an admin may change it.")
    return listing


def expected_version(req, listing: Property, *, required: bool) -> int | None:
    """The version ``If-Match`` names (strong comparison), or None when absent and not required.

    Absent and required: 428. Naming another version: 412. Not an entity-tag list (an unquoted ``v1``): 400.
    """
    tags = parse_if_match(req.get_header("If-Match"))
    if not tags:
        if required:
            raise Problem(
                falcon.HTTP_428,
                "Precondition required",
                "Send If-Match with the listing's ETag, so that a change made meanwhile is not overwritten.",
                slug="precondition-required",
            )
        return None
    if tags == ANY or any(not tag.weak and tag.opaque == f"v{listing.version}" for tag in tags):
        return listing.version
    raise stale_listing()


def stale_listing() -> Problem:
    return Problem(
        falcon.HTTP_412,
        "Precondition failed",
        "The listing changed since you read it; read it again and reapply your change.",
        slug="stale-listing",
    )


def _refused(exc: Exception) -> Problem:
    if isinstance(exc, IllegalTransition):
        problem = conflict(str(exc), slug="illegal-transition")
        problem.extra.update(current_status=exc.current, allowed=sorted(TRANSITIONS.get(exc.current, ())))
        return problem
    if isinstance(exc, InvalidListing):
        return validation_error([{"field": f"body.{name}", "message": message} for name, message in exc.errors])
    return stale_listing()  # another write landed between our read and our conditional update


def refuse_under_escrow(listing) -> None:
    """A listing with an open escrow follows the escrow: its people cannot move its status by hand (409)."""
    escrow = open_escrow_of(listing.id)
    if escrow is not None:
        problem = conflict(
            "The listing is under contract: its status follows its escrow until the escrow is released, "
            "refunded, resolved or cancelled.",
            slug="under-escrow",
        )
        problem.extra.update(escrow_id=str(escrow.id))
        raise problem


def _jsonable(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def audit_admin_change(req, listing: Property, action: str, changed: dict) -> None:
    """An admin acting on a listing that is not theirs leaves an audit row."""
    principal = req.context.principal
    if not principal.is_admin or principal.user_id in (str(listing.owner_id), str(listing.list_agent_id)):
        return
    audit(
        req,
        action,
        listing.id,
        target_type="property",
        before={name: _jsonable(old) for name, (old, _) in changed.items()},
        after={name: _jsonable(new) for name, (_, new) in changed.items()},
    )


def _cleaned(fields: dict) -> dict:
    cleaned = {name: value.strip() if isinstance(value, str) else value for name, value in fields.items()}
    if "features" in cleaned:
        cleaned["features"] = list(dict.fromkeys(feature.strip() for feature in cleaned["features"]))
    return cleaned


def _respond(resp, listing: Property) -> None:
    resp.etag = f"v{listing.version}"
    resp.media = listing.view()


class PropertyCollection(SearchMixin):
    """``/v1/properties``: ``POST`` creates a listing; ``GET`` (search) comes from ``SearchMixin``."""

    @operation(
        "Create a listing",
        body=PropertyCreate,
        response=PropertyView,
        status=201,
        permission="properties:create",
        errors=(422,),
        tags=TAGS,
        response_headers={"ETag": ETAG_HEADER},
        description="Sellers and agents create listings; the caller owns it. A listing starts as "
        "`Incomplete` (a draft, visible only to its people) unless `standard_status` says "
        "`ComingSoon` or `Active`. An agent creating a listing is its `list_agent_id` unless "
        "another agent is named; `list_agent_id` must be a user with the agent role (422). "
        "`original_list_price` is the first `list_price`. Answers 201 with `Location` and "
        "`ETag`.",
    )
    def on_post(self, req, resp):
        body: PropertyCreate = req.context.body
        principal = req.context.principal
        fields = _cleaned({name: value for name, value in msgspec.structs.asdict(body).items() if value is not None})
        if principal.role == "agent" and "list_agent_id" not in fields:
            fields["list_agent_id"] = uuid.UUID(principal.user_id)
        with db.atomic():
            try:
                listing = Property.create_listing(owner_id=principal.user_id, actor_id=principal.user_id, fields=fields)
            except InvalidListing as exc:
                raise _refused(exc) from None
            search_queue.mark_dirty(listing.id)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/properties/{listing.id}"
        _respond(resp, listing)


class PropertyItem:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "property-history")

    @operation(
        "One listing",
        response=PropertyView,
        auth="optional",
        errors=(404,),
        tags=TAGS,
        response_headers={"ETag": ETAG_HEADER},
        also={304: "Not modified: `If-None-Match` names its ETag"},
        description="Public once listed (ComingSoon, Active, ActiveUnderContract, Pending, Closed). A draft "
        "or an off-market listing is shown only to its owner, its agent and admins; anyone "
        "else gets 404. Send `If-None-Match` with a known `ETag` to get 304 when unchanged.",
    )
    def on_get(self, req, resp, property_id):
        listing = load_visible(property_id, req.context.principal)
        # The answer depends on who asks; shared caches must not keep it, clients may revalidate it.
        resp.cache_control = ["private", "no-cache"]
        resp.vary = ["Authorization"]
        tags = req.if_none_match
        if tags and ("*" in tags or any(str(tag) == f"v{listing.version}" for tag in tags)):
            resp.etag = f"v{listing.version}"
            resp.status = falcon.HTTP_304
            return
        _respond(resp, listing)

    @operation(
        "Change a listing",
        body=PropertyPatch,
        response=PropertyView,
        errors=(400, 403, 404, 409, 412, 428),
        tags=TAGS,
        response_headers={"ETag": ETAG_HEADER},
        description="The owner, the assigned agent or an admin changes the fields named in the body "
        "(`null` clears an optional one). Needs `If-Match: <ETag>`: 428 without it, 412 when "
        'the listing changed since, 400 when it is not a quoted entity-tag (`v3` for `"v3"`). '
        "Only the owner or an admin assigns `list_agent_id`. "
        "Admins changing someone else's listing are audited.\n\n" + STATUS_RULES,
    )
    def on_patch(self, req, resp, property_id):
        principal = req.context.principal
        changes = _cleaned(
            {
                name: value
                for name, value in msgspec.structs.asdict(req.context.body).items()
                if value is not msgspec.UNSET
            }
        )
        listing = load_editable(property_id, principal)
        if "list_agent_id" in changes and not (principal.is_admin or principal.user_id == str(listing.owner_id)):
            raise forbidden("Only the listing's owner or an admin assigns its agent.")
        expected = expected_version(req, listing, required=True)
        if "standard_status" in changes:
            refuse_under_escrow(listing)
        with db.atomic():
            try:
                changed = listing.apply_changes(changes, actor_id=principal.user_id, expected_version=expected)
            except (IllegalTransition, InvalidListing, StaleListing) as exc:
                raise _refused(exc) from None
            if changed:
                search_queue.mark_dirty(listing.id)
                audit_admin_change(req, listing, "property.update", changed)
        _respond(resp, listing)

    @operation(
        "Withdraw a listing",
        status=204,
        errors=(400, 403, 404, 409, 412),
        tags=TAGS,
        response_headers={"ETag": ETAG_HEADER},
        description="Takes the listing off the market; nothing is erased and its history stays. A draft "
        "(`Incomplete`) becomes `Canceled`; ComingSoon, Active and ActiveUnderContract become "
        "`Withdrawn`. A listing already Withdrawn or Canceled is left as it is (204). Pending, "
        "Closed and Expired listings cannot be withdrawn (409; cancel with a PATCH where the "
        "table allows it). `If-Match` is optional here; a stale one is a 412, "
        "an unquoted one a 400.",
    )
    def on_delete(self, req, resp, property_id):
        principal = req.context.principal
        listing = load_editable(property_id, principal)
        expected = expected_version(req, listing, required=False)
        refuse_under_escrow(listing)
        with db.atomic():
            try:
                changed = listing.take_off_market(actor_id=principal.user_id, expected_version=expected)
            except (IllegalTransition, StaleListing) as exc:
                raise _refused(exc) from None
            if changed:
                search_queue.mark_dirty(listing.id)
                audit_admin_change(req, listing, "property.withdraw", changed)
        resp.etag = f"v{listing.version}"
        resp.status = falcon.HTTP_204

    @operation(
        "A listing's price and status history",
        query=PageQuery,
        response=HistoryList,
        auth="optional",
        errors=(404,),
        tags=TAGS,
        description="Newest first; pages follow `next_cursor`. Visible to whoever may see the listing. "
        "The first entries (with `old_value: null`) are the price and status it was created "
        "with. `actor_id` is shown only to the listing's owner, agent and admins.",
    )
    def on_get_history(self, req, resp, property_id):
        q: PageQuery = req.context.query
        principal = req.context.principal
        listing = load_visible(property_id, principal)
        query = PropertyHistory.select().where(PropertyHistory.property == listing.id)
        if q.cursor:
            (last_id,) = self.cursors.decode(q.cursor)
            if not isinstance(last_id, int):
                raise validation_error([{"field": "query.cursor", "message": "not a cursor this API issued"}])
            query = query.where(PropertyHistory.id < last_id)
        rows = list(query.order_by(PropertyHistory.id.desc()).limit(q.limit + 1))
        next_cursor = None
        if len(rows) > q.limit:
            rows = rows[: q.limit]
            next_cursor = self.cursors.encode([rows[-1].id])
        with_actor = listing.is_managed_by(principal)
        resp.media = {"items": [row.view(with_actor=with_actor) for row in rows], "next_cursor": next_cursor}
