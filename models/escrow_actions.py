"""What the parties and admins do to an escrow, and what its deadlines do.

Each function runs in the caller's transaction on an escrow locked with
``models.escrows.lock``, records the change in the escrow's history and tells
the parties. None of them moves money: when the money must move (a refund, a
release, a split) they set ``escrow.settlement`` and create the ``money`` job
(``escrows.settle``) that posts the ledger and calls the payment provider.
An escrow whose settlement has started takes no further instruction.
"""

from __future__ import annotations

import datetime

from models.escrow_rules import EscrowConflict, EscrowForbidden, InvalidSplit
from models.escrows import Escrow, EscrowContingency, EscrowInstruction, record
from models.jobs import Job
from models.money_notices import amount, escrow_notice
from models.offers import end_backups
from models.properties import Property
from models.search import queue as search_queue

SETTLE_KIND = "escrows.settle"
MONEY_QUEUE = "money"
# Where a listing goes when its escrow ends: sold, or back on the market.
_LISTING_AFTER = {"release": ("Pending", "Closed"), "refund": ("Active",), "split": ("Active",), None: ("Active",)}


def _party(escrow: Escrow, actor_id) -> str:
    side = escrow.side_of(actor_id)
    if side is None:
        raise EscrowForbidden("only the parties of an escrow act on it")
    return side


def _not_settling(escrow: Escrow) -> None:
    if escrow.settlement is not None:
        raise EscrowConflict(f"the escrow's {escrow.settlement} is under way; it takes no further instruction")


def settle_job(escrow: Escrow) -> Job:
    return Job.create(
        kind=SETTLE_KIND,
        queue=MONEY_QUEUE,
        input={"escrow_id": str(escrow.id)},
        max_attempts=10,
        dedupe_key=f"escrow:{escrow.id}:settle",
    )


def _start_settlement(escrow: Escrow, settlement: str, *, buyer: int | None = None, seller: int | None = None) -> Job:
    values = {"settlement": settlement, "split_buyer": buyer, "split_seller": seller, "version": Escrow.version + 1}
    Escrow.update(values).where(Escrow.id == escrow.id).execute()
    escrow.settlement, escrow.split_buyer, escrow.split_seller = settlement, buyer, seller
    escrow.version += 1
    return settle_job(escrow)


def open_contingencies(escrow: Escrow) -> list[EscrowContingency]:
    return list(
        EscrowContingency.select()
        .where((EscrowContingency.escrow == escrow.id) & (EscrowContingency.status == "open"))
        .order_by(EscrowContingency.kind)
    )


def harden_if_done(escrow: Escrow, now: datetime.datetime, *, actor_id=None) -> bool:
    """The last contingency just closed: the deposit is hard from now on."""
    if escrow.hard_at is not None or open_contingencies(escrow):
        return False
    Escrow.update(hard_at=now).where(Escrow.id == escrow.id).execute()
    escrow.hard_at = now
    record(escrow, "deposit_hard", actor_id=actor_id, reason="no contingency is open any more", now=now)
    escrow_notice(
        escrow,
        "escrow.deposit_hard",
        title="Deposit no longer refundable",
        body=f"Every contingency is closed: the {amount(escrow)} deposit goes to the seller at closing, "
        "or back to the buyer only if the seller agrees.",
    )
    return True


def remove_contingency(escrow: Escrow, kind: str, *, actor_id, now: datetime.datetime) -> EscrowContingency:
    """The buyer's side removes one open contingency (recorded); the last one makes the deposit hard."""
    if _party(escrow, actor_id) != "buyer":
        raise EscrowForbidden("only the buyer's side removes contingencies")
    if escrow.status not in ("awaiting_deposit", "funded"):
        raise EscrowConflict(f"the escrow is {escrow.status}; its contingencies are settled")
    _not_settling(escrow)
    row = (
        EscrowContingency.select()
        .where((EscrowContingency.escrow == escrow.id) & (EscrowContingency.kind == kind))
        .for_update()
        .first()
    )
    if row is None:
        raise EscrowConflict(f"the escrow has no {kind} contingency")
    if row.status != "open":
        raise EscrowConflict(f"the {kind} contingency is already {row.status}")
    EscrowContingency.update(status="removed", closed_at=now, closed_by=actor_id).where(
        (EscrowContingency.escrow == escrow.id) & (EscrowContingency.kind == kind)
    ).execute()
    row.status, row.closed_at, row.closed_by_id = "removed", now, actor_id
    record(escrow, "contingency_removed", actor_id=actor_id, data={"kind": kind}, now=now)
    escrow_notice(
        escrow,
        "escrow.contingency_removed",
        title="Contingency removed",
        body=f"The buyer removed the {kind.replace('_', ' ')} contingency.",
        actor_id=actor_id,
        dedupe=kind,
    )
    harden_if_done(escrow, now, actor_id=actor_id)
    return row


def cancel(escrow: Escrow, *, actor_id, reason: str | None, now: datetime.datetime) -> Job | None:
    """The buyer's side walks away: before the deposit, the escrow is cancelled; after it, while a
    contingency is open, the deposit is refunded in full (the settlement job). A hard deposit is not
    the buyer's alone to take back."""
    if _party(escrow, actor_id) != "buyer":
        raise EscrowForbidden("only the buyer's side cancels; the seller's side may instruct a refund")
    _not_settling(escrow)
    if escrow.status == "awaiting_deposit":
        end(escrow, "cancelled", action="cancelled", actor_id=actor_id, reason=reason or "the buyer cancelled", now=now)
        return None
    if escrow.status != "funded":
        raise EscrowConflict(f"the escrow is {escrow.status}; it cannot be cancelled")
    if escrow.is_hard:
        raise EscrowConflict(
            "the deposit is hard (no contingency is open): it goes back to the buyer only if the seller agrees "
            "(both sides instruct a refund) or an admin resolves a dispute"
        )
    record(escrow, "cancel_requested", actor_id=actor_id, reason=reason or "the buyer cancelled", now=now)
    return _start_settlement(escrow, "refund")


def instruct(escrow: Escrow, action: str, *, actor_id, now: datetime.datetime) -> Job | None:
    """One side's instruction to release or refund; when both sides gave the same one, the money moves."""
    side = _party(escrow, actor_id)
    if escrow.status != "funded":
        raise EscrowConflict(f"the escrow is {escrow.status}; instructions are given on a funded escrow")
    _not_settling(escrow)
    # A side changes its mind: its instruction to do the other thing gives way to this one.
    mine = (EscrowInstruction.escrow == escrow.id) & (EscrowInstruction.side == side)
    EscrowInstruction.delete().where(mine & (EscrowInstruction.action != action)).execute()
    created = (
        EscrowInstruction.insert(escrow=escrow.id, action=action, side=side, user=actor_id, created_at=now)
        .on_conflict_ignore()
        .execute()
    )
    if created:
        record(escrow, f"{action}_instructed", actor_id=actor_id, data={"side": side}, now=now)
        escrow_notice(
            escrow,
            "escrow.instructed",
            title=f"{side.capitalize()} side instructs a {action}",
            body=f"The {side} side instructed a {action} of the {amount(escrow)} deposit. "
            f"It happens once the other side instructs the same.",
            actor_id=actor_id,
            dedupe=f"{action}:{side}",
        )
    sides = {
        row.side
        for row in EscrowInstruction.select(EscrowInstruction.side).where(
            (EscrowInstruction.escrow == escrow.id) & (EscrowInstruction.action == action)
        )
    }
    if sides == {"buyer", "listing"}:
        return _start_settlement(escrow, action)
    return None


def dispute(escrow: Escrow, *, actor_id, reason: str, now: datetime.datetime) -> None:
    _party(escrow, actor_id)
    if escrow.status != "funded":
        # record() would let disputed → disputed through as "no change": a second dispute is refused.
        raise EscrowConflict(f"the escrow is {escrow.status}; only a funded escrow can be disputed")
    _not_settling(escrow)
    record(escrow, "disputed", actor_id=actor_id, reason=reason, to_status="disputed", now=now)
    escrow_notice(
        escrow,
        "escrow.disputed",
        title="Escrow disputed",
        body=f"A dispute was opened on the {amount(escrow)} deposit; an admin will resolve it.",
        actor_id=actor_id,
    )


def resolve(escrow: Escrow, *, admin_id, buyer: int, seller: int, reason: str, now: datetime.datetime) -> Job:
    """An admin splits a disputed deposit: the amounts add up to exactly what the escrow holds."""
    if escrow.status != "disputed":
        raise EscrowConflict(f"the escrow is {escrow.status}; an admin resolves disputed escrows")
    _not_settling(escrow)
    if buyer < 0 or seller < 0 or buyer + seller != escrow.held:
        raise InvalidSplit(f"the amounts must add up to exactly what the escrow holds ({escrow.held})")
    record(escrow, "resolution", actor_id=admin_id, reason=reason, data={"buyer": buyer, "seller": seller}, now=now)
    return _start_settlement(escrow, "split", buyer=buyer, seller=seller)


def end(escrow: Escrow, status: str, *, action: str, actor_id=None, reason=None, data=None, now, values=None) -> None:
    """The escrow ends (``released``, ``refunded``, ``resolved`` or ``cancelled``): the listing is sold or
    back on the market, the backups close or come back, the parties are told. ``values`` (escrow fields)
    are written with the end."""
    values = dict(values or {})
    if status != "cancelled":
        values["settled_at"] = now
    record(escrow, action, actor_id=actor_id, reason=reason, data=data, to_status=status, now=now, values=values)
    settlement = escrow.settlement if status != "cancelled" else None
    listing = next(iter(Property.raw("SELECT * FROM properties WHERE id = %s FOR UPDATE", escrow.property_id)), None)
    if listing is not None and listing.standard_status in ("ActiveUnderContract", "Pending"):
        path = [target for target in _LISTING_AFTER[settlement] if target != listing.standard_status]
        extra = {"close_price": escrow.price, "close_date": now.date()} if path[-1] == "Closed" else {}
        # Under contract → Pending → Closed in one write, a history row for each move.
        listing.change_status(path[-1], actor_id=actor_id, via=tuple(path[:-1]), **extra)
        search_queue.mark_dirty(listing.id)
    end_backups(escrow.property_id, sold=settlement == "release", now=now)
    titles = {
        "released": ("Deposit released", f"The {amount(escrow)} deposit was released to the seller."),
        "refunded": ("Deposit refunded", f"The {amount(escrow)} deposit was refunded to the buyer."),
        "resolved": ("Dispute resolved", f"An admin resolved the dispute: {reason or ''}".strip()),
        "cancelled": ("Escrow cancelled", f"The escrow was cancelled: {reason or 'no reason given'}."),
    }
    title, body = titles[status]
    escrow_notice(escrow, f"escrow.{status}", title=title, body=body, actor_id=actor_id)
