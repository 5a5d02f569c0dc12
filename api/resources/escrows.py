"""``/v1/escrows``: an accepted offer's earnest money, as its parties see it and act on it.

Only the parties (the buyer, the buyer's agent, the seller, the listing agent,
as the escrow recorded them when the offer was accepted) and admins see an
escrow; anyone else gets 404, whatever they ask. Each action runs in one
transaction on the locked escrow row (``models.escrows.lock``), is audited and
recorded in the escrow's history, and is then published as ``escrow.<action>``
on every party's user channel (the view without any client secret). An action
that moves money (a refund, a release, an admin's split) answers ``202`` with
``Location`` of the settlement job, which the caller owns so they can follow it.
The rules themselves are in ``models/escrow_actions.py``; docs/escrow.md.
"""

from __future__ import annotations

import contextlib

import falcon

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import conflict, forbidden, not_found, validation_error
from api.operation import operation
from api.party_events import publish_to_parties
from api.schemas.escrows import (
    CancelRequest,
    DisputeRequest,
    EscrowList,
    EscrowListQuery,
    EscrowView,
    InstructionRequest,
)
from models import escrow_actions
from models.base import utcnow
from models.db import db
from models.escrow_rules import EscrowConflict, EscrowForbidden, InvalidSplit
from models.escrows import (
    Escrow,
    contingencies_of,
    history_of,
    instructions_of,
    iso,
    lock,
    visible,
)
from models.jobs import Job
from models.ledger import entries_for_escrow
from models.offer_rules import CONTINGENCY_KINDS
from models.payments import payments_of

TAGS = ("escrows",)
SETTLING = "The settlement started: `202` with `Location` of the settlement job (yours to follow) and the escrow"


def summary(escrow: Escrow, principal) -> dict:
    return {
        "id": str(escrow.id),
        "offer_id": str(escrow.offer_id),
        "property_id": str(escrow.property_id),
        "status": escrow.status,
        "my_side": escrow.side_of(principal.user_id) if principal is not None else None,
        "currency": escrow.currency,
        "amount": escrow.amount,
        "held": escrow.held,
        "price": escrow.price,
        "deposit_due_at": iso(escrow.deposit_due_at),
        "closing_date": iso(escrow.closing_date),
        "hard_at": iso(escrow.hard_at),
        "settlement": escrow.settlement,
        "created_at": iso(escrow.created_at),
        "updated_at": iso(escrow.updated_at),
    }


def escrow_view(escrow: Escrow, principal=None) -> dict:
    """The whole escrow. The deposit's client secret is shown to the buyer's side only; with no
    ``principal`` (an event for every party) to nobody."""
    escrow = Escrow.get_by_id(escrow.id)  # what was committed, not what a caller holds in memory
    with_secret = principal is not None and escrow.side_of(principal.user_id) == "buyer"
    split = None
    if escrow.split_buyer is not None and escrow.split_seller is not None:
        split = {"buyer": escrow.split_buyer, "seller": escrow.split_seller}
    return dict(
        summary(escrow, principal),
        parties={
            "buyer_id": _id(escrow.buyer_id),
            "buyer_agent_id": _id(escrow.buyer_agent_id),
            "seller_id": _id(escrow.seller_id),
            "list_agent_id": _id(escrow.list_agent_id),
        },
        split=split,
        settled_at=iso(escrow.settled_at),
        contingencies=[row.view() for row in contingencies_of(escrow.id)],
        instructions=[row.view() for row in instructions_of(escrow.id)],
        history=[row.view() for row in history_of(escrow.id)],
        payments=[payment.view(with_secret=with_secret) for payment in payments_of(escrow.id)],
        ledger_entries=entries_for_escrow(escrow.id),
    )


def _id(value) -> str | None:
    return str(value) if value is not None else None


@contextlib.contextmanager
def escrow_rules():
    """The model's refusals as problems: 403 for a party who may not, 409 for the state, 422 for a split."""
    try:
        yield
    except EscrowForbidden as exc:
        raise forbidden(str(exc)) from None
    except EscrowConflict as exc:
        raise conflict(str(exc), slug="escrow-conflict") from None
    except InvalidSplit as exc:
        message = str(exc)
        raise validation_error(
            [{"field": "body.buyer_amount", "message": message}, {"field": "body.seller_amount", "message": message}]
        ) from None


def load_visible(escrow_id, principal) -> Escrow:
    escrow = visible(escrow_id, principal)
    if escrow is None:
        raise not_found("escrow")
    return escrow


def locked(escrow_id) -> Escrow:
    escrow = lock(escrow_id)
    if escrow is None:
        raise not_found("escrow")
    return escrow


def watched_by(job: Job, user_id) -> None:
    """The settlement job becomes the acting user's: they may read it and hear its events."""
    Job.update(owner=user_id).where(Job.id == job.id).execute()
    job.owner = user_id


def publish(req, escrow: Escrow, type_: str) -> None:
    """``type_`` with the escrow's view (no client secret) on each party's channel, once committed."""
    publish_to_parties(req, escrow.parties(), type_, escrow_view(escrow))


def audit_change(req, what: str, before: dict, escrow: Escrow, /, **after) -> None:
    """The audit row of an escrow change: ``escrow.<what>``, its state before and after, and ``after``'s details."""
    audit(
        req,
        f"escrow.{what}",
        escrow.id,
        target_type="escrow",
        before=before,
        after=dict(status=escrow.status, settlement=escrow.settlement, **after),
    )


def state(escrow: Escrow) -> dict:
    return {"status": escrow.status, "settlement": escrow.settlement}


def answer(req, resp, escrow: Escrow, action: str, job: Job | None) -> None:
    """Publish the committed change and answer: 202 + the job's ``Location`` when money moves, else 200."""
    publish(req, escrow, f"escrow.{action}")
    if job is not None:
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
    else:
        resp.status = falcon.HTTP_200
    resp.media = escrow_view(escrow, req.context.principal)


class Escrows:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "escrows")

    @operation(
        "My escrows",
        query=EscrowListQuery,
        response=EscrowList,
        tags=TAGS,
        description="The escrows in which you are a party, on any side; newest first, optionally only those "
        "in one `status`; pages follow `next_cursor`.",
    )
    def on_get(self, req, resp):
        q: EscrowListQuery = req.context.query
        principal = req.context.principal
        me = principal.user_id
        query = Escrow.select().where(
            (Escrow.buyer == me) | (Escrow.buyer_agent == me) | (Escrow.seller == me) | (Escrow.list_agent == me)
        )
        if q.status:
            query = query.where(Escrow.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Escrow.created_at, Escrow.id, q.cursor, q.limit)
        resp.media = {"items": [summary(row, principal) for row in rows], "next_cursor": next_cursor}

    @operation(
        "One escrow",
        response=EscrowView,
        errors=(404,),
        tags=TAGS,
        description="Status, amounts, deadlines, contingencies, instructions, the settlement under way, the "
        "history (who, when, why), the payments and the ledger entries behind them. Its parties and "
        "admins see it; anyone else gets 404. The deposit's `client_secret` (to complete the "
        "PaymentIntent) is shown to the buyer's side only.",
    )
    def on_get_item(self, req, resp, escrow_id):
        resp.media = escrow_view(load_visible(escrow_id, req.context.principal), req.context.principal)

    @operation(
        "Remove a contingency",
        idempotent=True,
        response=EscrowView,
        errors=(403, 404, 409),
        tags=TAGS,
        description="The buyer's side removes one open contingency (`inspection`, `financing`, `appraisal`, "
        "`home_sale`); removing the last one makes the deposit hard. 404 for a kind the escrow does "
        "not have, 403 for the listing's side, 409 when the contingency is closed already or the "
        "escrow is settling or finished.",
    )
    def on_post_contingency(self, req, resp, escrow_id, kind):
        principal = req.context.principal
        load_visible(escrow_id, principal)
        if kind not in CONTINGENCY_KINDS:
            raise not_found("contingency")
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            if kind not in {row.kind for row in contingencies_of(escrow.id)}:
                raise not_found("contingency")
            before = state(escrow)
            escrow_actions.remove_contingency(escrow, kind, actor_id=principal.user_id, now=utcnow())
            audit_change(req, "contingency_removed", before, escrow, kind=kind, hard=escrow.is_hard)
        answer(req, resp, escrow, "contingency_removed", None)

    @operation(
        "Cancel an escrow",
        idempotent=True,
        body=CancelRequest,
        response=EscrowView,
        errors=(403, 404, 409, 422),
        also={202: SETTLING + " (`settlement: refund`)."},
        tags=TAGS,
        description="The buyer's side walks away. Before the deposit arrived the escrow is `cancelled` at once "
        "(200) and the listing is back on the market. After it, while a contingency is open, the "
        "deposit is refunded in full (202, a refund settlement). A hard deposit goes back only if the "
        "seller agrees (both sides instruct `refund`) or an admin resolves a dispute: 409.",
    )
    def on_post_cancel(self, req, resp, escrow_id):
        body: CancelRequest = req.context.body
        principal = req.context.principal
        load_visible(escrow_id, principal)
        reason = body.reason.strip() if body.reason else None
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            before = state(escrow)
            job = escrow_actions.cancel(escrow, actor_id=principal.user_id, reason=reason, now=utcnow())
            if job is not None:
                watched_by(job, principal.user_id)
            audit_change(req, "cancelled", before, escrow, reason=reason)
        answer(req, resp, escrow, "cancelled" if job is None else "cancel_requested", job)

    @operation(
        "Instruct a release or a refund",
        idempotent=True,
        body=InstructionRequest,
        response=EscrowView,
        errors=(403, 404, 409, 422),
        also={202: SETTLING + ": both sides gave the same instruction."},
        tags=TAGS,
        description="Each side (buyer's or listing's, any of its people) confirms `release` (to the seller) or "
        "`refund` (to the buyer) of a funded escrow. The first answers 200 and waits for the other "
        "side; repeating it changes nothing. The other side's matching instruction starts the "
        "settlement (202). 409 unless the escrow is funded and not settling.",
    )
    def on_post_instructions(self, req, resp, escrow_id):
        body: InstructionRequest = req.context.body
        principal = req.context.principal
        load_visible(escrow_id, principal)
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            before = state(escrow)
            given = {(i.action, i.side) for i in instructions_of(escrow.id)}
            job = escrow_actions.instruct(escrow, body.action, actor_id=principal.user_id, now=utcnow())
            repeated = job is None and {(i.action, i.side) for i in instructions_of(escrow.id)} == given
            if job is not None:
                watched_by(job, principal.user_id)
            if not repeated:
                side = escrow.side_of(principal.user_id)
                audit_change(req, "instructed", before, escrow, action=body.action, side=side)
        if repeated:  # this side had given this instruction already: nothing happened, nothing to tell
            resp.media = escrow_view(escrow, principal)
            return
        answer(req, resp, escrow, "instructed", job)

    @operation(
        "Dispute an escrow",
        idempotent=True,
        body=DisputeRequest,
        response=EscrowView,
        errors=(403, 404, 409, 422),
        tags=TAGS,
        description="Either side disputes a funded escrow with a reason; it becomes `disputed` and waits for an "
        "admin's resolution. 409 unless it is funded and not settling (a disputed escrow is not "
        "disputed again).",
    )
    def on_post_disputes(self, req, resp, escrow_id):
        body: DisputeRequest = req.context.body
        principal = req.context.principal
        load_visible(escrow_id, principal)
        reason = body.reason.strip()
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            before = state(escrow)
            escrow_actions.dispute(escrow, actor_id=principal.user_id, reason=reason, now=utcnow())
            audit_change(req, "disputed", before, escrow, reason=reason)
        answer(req, resp, escrow, "disputed", None)
