"""Schemas of escrows: the escrow view, the parties' actions, an admin's resolution, payments to act on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.schemas import Cursor, Limit, Request, Response, line
from models.escrow_rules import INSTRUCTIONS, STATUSES
from models.offer_rules import CONTINGENCY_KINDS
from models.payments import KINDS as PAYMENT_KINDS
from models.payments import STATUSES as PAYMENT_STATUSES

EscrowStatus = Literal[STATUSES]  # type: ignore[valid-type]
Instruction = Literal[INSTRUCTIONS]  # type: ignore[valid-type]
ContingencyKind = Literal[CONTINGENCY_KINDS]  # type: ignore[valid-type]
PaymentKind = Literal[PAYMENT_KINDS]  # type: ignore[valid-type]
PaymentStatus = Literal[PAYMENT_STATUSES]  # type: ignore[valid-type]
Side = Literal["buyer", "listing"]
# Minor units (cents); a trillion dollars is more than any escrow holds.
Cents = Annotated[int, msgspec.Meta(ge=0, le=100_000_000_000_000, description="An amount in minor units (cents)")]
Reason = Annotated[str, line(1000, min_length=1)]


class EscrowParties(Response):
    """Who the escrow's parties are: a snapshot taken when the offer was accepted."""

    buyer_id: str | None
    buyer_agent_id: str | None
    seller_id: str | None
    list_agent_id: str | None


class ContingencyView(Response):
    kind: ContingencyKind
    days: int
    ends_at: str
    status: Literal["open", "removed", "lapsed"]
    closed_at: str | None
    closed_by: str | None


class InstructionView(Response):
    action: Instruction
    side: Side
    user_id: str | None
    at: str


class EscrowEventView(Response):
    """One entry of the escrow's history: what happened, who did it (null: the platform), when and why."""

    action: str
    from_: str | None = msgspec.field(name="from")
    to: EscrowStatus
    actor_id: str | None
    reason: str | None
    data: dict[str, Any]
    at: str


class PaymentView(Response):
    id: str
    kind: PaymentKind
    recipient_id: str | None
    amount: int
    currency: str
    status: PaymentStatus
    provider: str
    provider_ref: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: str
    updated_at: str
    client_secret: Annotated[
        str | None,
        msgspec.Meta(
            description="The deposit's PaymentIntent client secret, for the buyer's side only: the frontend "
            "completes the payment with it (Stripe.js). Absent for everyone else and in every event."
        ),
    ] = None


class AdminPaymentView(PaymentView, kw_only=True):
    escrow_id: str


class LedgerEntry(Response):
    """A ledger transfer that names the escrow: ``amount`` moved from account ``debit`` to account ``credit``."""

    id: str
    kind: Annotated[str, msgspec.Meta(examples=["deposit", "release_to_seller", "provider_payment"])]
    debit: Annotated[str, msgspec.Meta(description="The account debited", examples=["provider:clearing:USD"])]
    credit: Annotated[str, msgspec.Meta(description="The account credited", examples=["escrow:<id>"])]
    amount: int
    currency: str
    state: Annotated[
        str, msgspec.Meta(description="`posted`, or `pending` until `post_pending` / `void_pending` resolves it")
    ]
    pending_id: Annotated[str | None, msgspec.Meta(description="The pending transfer this one resolves")]
    escrow_id: str | None
    memo: str | None
    created_at: str


class EscrowSplit(Response):
    buyer: int
    seller: int


class EscrowSummary(Response):
    """An escrow in a list."""

    id: str
    offer_id: str
    property_id: str
    status: EscrowStatus
    my_side: Annotated[Side | None, msgspec.Meta(description="Your side of the deal; null for an admin")]
    currency: str
    amount: Annotated[int, msgspec.Meta(description="The earnest money due, in minor units")]
    held: Annotated[int, msgspec.Meta(description="What the escrow holds now, in minor units")]
    price: int
    deposit_due_at: str
    closing_date: str
    hard_at: Annotated[
        str | None, msgspec.Meta(description="When the deposit became hard (no contingency open); null while not")
    ]
    settlement: Annotated[
        Literal["release", "refund", "split"] | None,
        msgspec.Meta(description="The settlement under way or done; once set, the escrow takes no instruction"),
    ]
    created_at: str
    updated_at: str


class EscrowView(EscrowSummary):
    """An escrow as its parties and admins see it (the data of every ``escrow.*`` event, without secrets)."""

    parties: EscrowParties
    split: EscrowSplit | None
    settled_at: str | None
    contingencies: list[ContingencyView]
    instructions: Annotated[list[InstructionView], msgspec.Meta(description="The instructions each side gave")]
    history: Annotated[list[EscrowEventView], msgspec.Meta(description="Every change, oldest first")]
    payments: list[PaymentView]
    ledger_entries: Annotated[
        list[LedgerEntry], msgspec.Meta(description="The ledger transfers that back the escrow, oldest first")
    ]


class EscrowList(Response):
    items: list[EscrowSummary]
    next_cursor: str | None


class EscrowListQuery(Request):
    status: EscrowStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class CancelRequest(Request):
    reason: Annotated[Reason | None, msgspec.Meta(description="Why the buyer walks away (kept in the history)")] = None


class InstructionRequest(Request):
    action: Annotated[
        Instruction,
        msgspec.Meta(description="`release` to the seller, or `refund` to the buyer; both sides must agree"),
    ]


class DisputeRequest(Request):
    reason: Annotated[Reason, msgspec.Meta(description="What the dispute is about")]


class ResolutionRequest(Request):
    """An admin's split of a disputed deposit; `buyer_amount` + `seller_amount` must equal what the escrow holds."""

    buyer_amount: Cents
    seller_amount: Cents
    reason: Annotated[Reason, msgspec.Meta(description="Why this split: written to the history and the audit log")]


class PaymentListQuery(Request):
    status: PaymentStatus | None = None
    kind: PaymentKind | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class PaymentList(Response):
    items: list[AdminPaymentView]
    next_cursor: str | None
