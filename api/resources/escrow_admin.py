"""``/v1/admin/escrows`` and ``/v1/admin/payments``: every escrow, an admin's resolution of a dispute, and
the payments that need someone to act on them (``?status=failed``).

Admins read any escrow through ``GET /v1/escrows/{id}``; here they list them
all and split a disputed deposit. A resolution's amounts add up to exactly what
the escrow holds; it starts the settlement job (owned by the admin) and is
audited with its written reason.
"""

from __future__ import annotations

from api.cursor import CursorCodec
from api.operation import operation
from api.resources.escrows import answer, audit_change, escrow_rules, locked, state, summary, watched_by
from api.schemas.escrows import (
    EscrowList,
    EscrowListQuery,
    EscrowView,
    PaymentList,
    PaymentListQuery,
    ResolutionRequest,
)
from models import escrow_actions
from models.base import utcnow
from models.db import db
from models.escrows import Escrow
from models.payments import Payment

TAGS = ("escrows", "admin")
PERMISSION = "admin:escrows"


class AdminEscrows:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-escrows")

    @operation(
        "Every escrow",
        query=EscrowListQuery,
        response=EscrowList,
        permission=PERMISSION,
        tags=TAGS,
        description="Newest first, optionally only those in one `status` (`disputed`: waiting for a "
        "resolution); pages follow `next_cursor`. Read one through `GET /v1/escrows/{id}`.",
    )
    def on_get(self, req, resp):
        q: EscrowListQuery = req.context.query
        query = Escrow.select()
        if q.status:
            query = query.where(Escrow.status == q.status)
        rows, next_cursor = self.cursors.newest_first(query, Escrow.created_at, Escrow.id, q.cursor, q.limit)
        resp.media = {"items": [summary(row, req.context.principal) for row in rows], "next_cursor": next_cursor}

    @operation(
        "Resolve a disputed escrow",
        idempotent=True,
        body=ResolutionRequest,
        response=EscrowView,
        status=202,
        permission=PERMISSION,
        errors=(404, 409, 422),
        tags=TAGS,
        description="Splits what a disputed escrow holds between the buyer and the seller: `buyer_amount` + "
        "`seller_amount` must equal its `held` exactly (422 otherwise), with a written reason. "
        "Starts the settlement job (`settlement: split`; 202 with its `Location`, yours to follow); "
        "the escrow becomes `resolved` when the money has moved. 409 unless it is disputed and not "
        "settling. Audited.",
    )
    def on_post_resolution(self, req, resp, escrow_id):
        body: ResolutionRequest = req.context.body
        principal = req.context.principal
        reason = body.reason.strip()
        with db.atomic(), escrow_rules():
            escrow = locked(escrow_id)
            before = state(escrow)
            job = escrow_actions.resolve(
                escrow,
                admin_id=principal.user_id,
                buyer=body.buyer_amount,
                seller=body.seller_amount,
                reason=reason,
                now=utcnow(),
            )
            watched_by(job, principal.user_id)
            audit_change(
                req, "resolution", before, escrow, buyer=body.buyer_amount, seller=body.seller_amount, reason=reason
            )
        answer(req, resp, escrow, "resolution", job)


class AdminPayments:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-payments")

    @operation(
        "Payments to act on",
        query=PaymentListQuery,
        response=PaymentList,
        permission=PERMISSION,
        tags=TAGS,
        description="Deposits, refunds and payouts of every escrow, newest first, filtered by `status` "
        "(`failed`: what the provider refused, to act on) and `kind`; pages follow `next_cursor`. "
        "No client secret is ever shown here.",
    )
    def on_get(self, req, resp):
        q: PaymentListQuery = req.context.query
        query = Payment.select()
        if q.status:
            query = query.where(Payment.status == q.status)
        if q.kind:
            query = query.where(Payment.kind == q.kind)
        rows, next_cursor = self.cursors.newest_first(query, Payment.created_at, Payment.id, q.cursor, q.limit)
        resp.media = {
            "items": [dict(row.view(), escrow_id=str(row.escrow_id)) for row in rows],
            "next_cursor": next_cursor,
        }
