"""The escrow's money on the ledger: the chart of accounts and the postings of a deposit and a settlement.

Accounts (``models.ledger`` codes, opened on first use):

* ``escrow:<escrow_id>``: what the escrow holds; never below zero;
* ``user:<user_id>:payable``: what the platform owes a user (a seller's proceeds, a
  buyer's refund) until the provider paid it out; never below zero;
* ``provider:clearing:<CUR>``: money at the payment provider (a deposit arrives here
  and leaves from here); its debit balance is what the provider holds for us;
* ``platform:fees:<CUR>``: the platform's fees (no posting uses it yet).

Transfer ids derive from what they post (``transfer_id``): the same posting
written twice is the same transfer, so a replayed job writes nothing new.
Everything here runs in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from models.escrows import Escrow, EscrowEvent
from models.ledger import (
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountSpec,
    TransferSpec,
    open_account,
    open_accounts,
    transfer,
    transfer_linked,
)

NAMESPACE = uuid.UUID("0f4b7a52-6a57-4c1e-93b1-2d5e8c7f1a90")


def transfer_id(*parts: object) -> uuid.UUID:
    """The deterministic id of one posting, named by its parts (``"deposit", payment_id``)."""
    return uuid.uuid5(NAMESPACE, ":".join(str(part) for part in parts))


HELD = frozenset({DEBITS_MUST_NOT_EXCEED_CREDITS})


def _escrow_spec(escrow: Escrow) -> AccountSpec:
    return AccountSpec(escrow.account_code, "escrow", escrow.currency, HELD)


def _payable_spec(user_id, currency: str) -> AccountSpec:
    return AccountSpec(f"user:{user_id}:payable", "payable", currency, HELD)


def _clearing_spec(currency: str) -> AccountSpec:
    return AccountSpec(f"provider:clearing:{currency}", "clearing", currency)


def _opened(*specs: AccountSpec) -> list[str]:
    """Open the accounts (one round trip); their codes."""
    open_accounts(specs)
    return [spec.code for spec in specs]


def escrow_account(escrow: Escrow) -> str:
    return _opened(_escrow_spec(escrow))[0]


def payable_account(user_id, currency: str) -> str:
    return _opened(_payable_spec(user_id, currency))[0]


def clearing_account(currency: str) -> str:
    return _opened(_clearing_spec(currency))[0]


def fees_account(currency: str) -> str:
    return open_account(f"platform:fees:{currency}", kind="fees", currency=currency).code


def post_deposit(escrow: Escrow, payment_id, amount: int) -> None:
    """The deposit arrived at the provider: clearing → the escrow's holding account."""
    clearing, held = _clearing_spec(escrow.currency), _escrow_spec(escrow)
    transfer(
        TransferSpec(
            id=transfer_id("deposit", payment_id),
            debit=clearing.code,
            credit=held.code,
            amount=amount,
            currency=escrow.currency,
            kind="deposit",
            escrow_id=escrow.id,
        ),
        opening=[clearing, held],
    )


def refund_late_deposit(escrow: Escrow, payment_id, amount: int) -> None:
    """A deposit that arrived after its escrow ended goes straight on to the buyer's payable account."""
    transfer(
        TransferSpec(
            id=transfer_id("late-deposit", payment_id),
            debit=escrow_account(escrow),
            credit=payable_account(escrow.buyer_id, escrow.currency),
            amount=amount,
            currency=escrow.currency,
            kind="late_deposit_refund",
            escrow_id=escrow.id,
        )
    )


def settlement_legs(escrow: Escrow) -> dict[str, int]:
    """Who gets what of the held amount (``{"buyer": cents, "seller": cents}``, zero legs left out)."""
    if escrow.settlement == "release":
        legs = {"seller": escrow.held}
    elif escrow.settlement == "refund":
        legs = {"buyer": escrow.held}
    elif escrow.settlement == "split":
        legs = {"buyer": escrow.split_buyer or 0, "seller": escrow.split_seller or 0}
    else:
        raise ValueError(f"the escrow has no settlement to post ({escrow.settlement!r})")
    return {side: amount for side, amount in legs.items() if amount > 0}


@dataclass(frozen=True)
class Reservation:
    """A payout or refund reserved with the settlement: its payment row's id, who gets it, how much."""

    payment_id: uuid.UUID
    user_id: object  # a user id, as the escrow row holds it
    amount: int


def post_settlement(
    escrow: Escrow, legs: dict[str, int] | None = None, reservations: Sequence[Reservation] = ()
) -> dict[str, int]:
    """Move what the escrow holds to the payable accounts of its settlement (linked: all or nothing).

    ``legs`` (default ``settlement_legs(escrow)``) are given by a caller that ended the
    escrow first. Each of ``reservations`` adds, in the same linked batch, the pending
    transfer that pays it out (``payout_transfers``): the accounts are opened in one
    round trip that locks them, in id order, so the shared clearing account is held
    only for the postings. A refusal raises with part of the batch written: the
    caller's transaction must roll back as a whole then (a ``once`` step's does).
    """
    legs = settlement_legs(escrow) if legs is None else legs
    recipients = {"buyer": escrow.buyer_id, "seller": escrow.seller_id}
    specs = [_payable_spec(recipients[side], escrow.currency) for side in legs]
    specs += [_payable_spec(r.user_id, escrow.currency) for r in reservations]
    if reservations:
        specs.append(_clearing_spec(escrow.currency))
    held = _escrow_spec(escrow).code
    transfers = [
        TransferSpec(
            id=transfer_id("settle", escrow.id, side),
            debit=held,
            credit=_payable_spec(recipients[side], escrow.currency).code,
            amount=amount,
            currency=escrow.currency,
            kind=f"{escrow.settlement}_to_{side}",
            escrow_id=escrow.id,
        )
        for side, amount in legs.items()
    ]
    clearing = _clearing_spec(escrow.currency).code
    transfers += [
        _pending_spec(escrow, r.payment_id, _payable_spec(r.user_id, escrow.currency).code, clearing, r.amount)
        for r in reservations
    ]
    # The caller's transaction (the settlement's ledger step) rolls back as a whole on a refusal.
    transfer_linked(transfers, savepoint=False, opening=[_escrow_spec(escrow), *specs])
    return legs


def resolution_reason(escrow: Escrow) -> str | None:
    """The admin's written reason for the escrow's split (its latest ``resolution`` event)."""
    event = (
        EscrowEvent.select(EscrowEvent.reason)
        .where((EscrowEvent.escrow == escrow.id) & (EscrowEvent.action == "resolution"))
        .order_by(EscrowEvent.id.desc())
        .first()
    )
    return event.reason if event is not None else None


def _pending_spec(escrow: Escrow, payment_id, payable: str, clearing: str, amount: int) -> TransferSpec:
    return TransferSpec(
        id=transfer_id("provider", payment_id),
        debit=payable,
        credit=clearing,
        amount=amount,
        currency=escrow.currency,
        kind="provider_payment",
        escrow_id=escrow.id,
        pending=True,
    )


def payout_transfers(escrow: Escrow, payment_id, user_id, amount: int) -> tuple[TransferSpec, uuid.UUID, uuid.UUID]:
    """The pending transfer of a payout or refund (payable → clearing) and the ids that post or void it."""
    payable, clearing = _opened(_payable_spec(user_id, escrow.currency), _clearing_spec(escrow.currency))
    spec = _pending_spec(escrow, payment_id, payable, clearing, amount)
    return spec, transfer_id("provider-post", payment_id), transfer_id("provider-void", payment_id)


def post_reversal(escrow: Escrow, payment_id, user_id, amount: int) -> None:
    """The provider gave back money it had paid out (a failed refund, a reversed transfer): owed again."""
    transfer(
        TransferSpec(
            id=transfer_id("reversal", payment_id),
            debit=clearing_account(escrow.currency),
            credit=payable_account(user_id, escrow.currency),
            amount=amount,
            currency=escrow.currency,
            kind="provider_reversal",
            escrow_id=escrow.id,
        )
    )


__all__ = [
    "Reservation",
    "clearing_account",
    "escrow_account",
    "fees_account",
    "payable_account",
    "payout_transfers",
    "post_deposit",
    "post_reversal",
    "post_settlement",
    "refund_late_deposit",
    "resolution_reason",
    "settlement_legs",
    "transfer_id",
]
