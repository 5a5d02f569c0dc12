"""Imported offers: a source row's terms, parties and status become an ``Offer``; never an escrow, never money.

An offer keeps its terms (price and earnest money in cents, financing, contingencies, closing date,
expiry, message), its buyer and listing (through the import map) and its status. What a status
means in Hearth decides how it comes across:

- ``submitted`` stays live, so the listing's side can answer it in Hearth, under the rules an offer
  made through the API keeps between its fields (earnest money at most the price, contingencies of
  known kinds, each once, no financing contingency on a cash offer), on an
  ``Active`` listing, one live offer per buyer and listing. One whose expiry has passed comes across
  ``expired``. The clock rules of a new offer (expiry within 7 days) do not apply: it was made then.
- ``countered``, ``rejected``, ``withdrawn``, ``expired`` and ``closed`` are history, kept as they are.
- ``accepted``: in Hearth an accepted offer holds an escrow funded through the payment provider, and
  no money comes from Supabase. An imported accepted offer is therefore history: it is stored
  ``closed`` with the decision reason ``ACCEPTED_REASON``, and when its listing is not ``Closed`` (the
  deal was still going at the source) it is reported ``needs-manual-escrow``: the parties' earnest
  money is handled outside the import. No escrow, payment or ledger entry is ever created here.
- ``backup`` exists only beside a Hearth escrow: a mapping must send it to another status.

Each imported offer is its own chain (counter-offer links are not imported). Imported offers notify
nobody. An offer Hearth has since given an escrow (accepted in Hearth after cut-over) is never
changed by a later run.
"""

from __future__ import annotations

import datetime
import uuid

from models.base import utcnow
from models.escrows import Escrow
from models.imports.steps import Outcome
from models.offer_rules import CONTINGENCY_KINDS, FINANCING, LIVE, MAX_CONTINGENCY_DAYS, STATUSES
from models.offers import Offer
from models.properties import Property

ACCEPTED_REASON = "accepted before the move to Hearth (imported without its escrow)"
EXPIRED_REASON = "the offer expired"
# Statuses an imported offer may have; ``accepted`` is stored as ``closed`` (see above).
IMPORTABLE = tuple(status for status in STATUSES if status != "backup")
_DECIDED = ("countered", "accepted", "rejected", "withdrawn", "expired", "closed")
MAX_MESSAGE = 4000


def write_offer(fields: dict, previous_id: str | None, source_key: str) -> Outcome:
    """Create or update the offer ``fields`` describe; skipped with a reason when a rule refuses it."""
    status = fields.get("status") or "submitted"
    if status not in IMPORTABLE:
        return Outcome.skipped("invalid-value", f"status {status!r}: one of {', '.join(IMPORTABLE)}")
    contingencies, problems = _contingencies(fields.get("contingencies"))
    problems += _term_problems(fields, contingencies)
    if problems:
        return Outcome.skipped("offer-rule", "; ".join(problems))
    listing = Property.get_or_none(Property.id == fields["property"])
    if listing is None:
        return Outcome.skipped("missing-reference", f"listing {fields['property']} does not exist")
    buyer = str(fields["buyer"])
    people = {str(u) for u in (listing.owner_id, listing.list_agent_id) if u is not None}
    if people & {buyer, str(fields.get("buyer_agent") or "")}:
        return Outcome.skipped("offer-rule", "the buyer's side is one of the listing's own people")
    now = utcnow()
    note: tuple[str | None, str | None] = (None, None)
    decided_at, reason = fields.get("decided_at"), fields.get("decision_reason")
    if status == "submitted" and fields["expires_at"] <= now:
        status, decided_at, reason = "expired", fields["expires_at"], EXPIRED_REASON
    elif status == "accepted":
        status, reason = "closed", ACCEPTED_REASON
        if listing.standard_status != "Closed":
            note = ("needs-manual-escrow", f"accepted at the source; listing {listing.id} is {listing.standard_status}")
    existing = Offer.get_or_none(Offer.id == previous_id) if previous_id else None
    if existing is not None and Escrow.select().where(Escrow.offer == existing.id).exists():
        return Outcome.skipped("offer-rule", f"offer {existing.id} was accepted in Hearth; the import leaves it")
    if status in LIVE:
        if listing.standard_status != "Active":
            return Outcome.skipped("offer-rule", f"a live offer on a listing that is {listing.standard_status}")
        mine = (Offer.property == listing.id) & (Offer.buyer == buyer) & Offer.status.in_(LIVE)
        if existing is not None:
            mine &= Offer.id != existing.id
        if Offer.select().where(mine).exists():
            return Outcome.skipped("offer-rule", "this buyer already has a live offer on the listing")
    values = {
        "property": listing.id,
        "buyer": buyer,
        "buyer_agent": fields.get("buyer_agent"),
        "author": fields.get("buyer_agent") or buyer,
        "side": "buyer",
        "status": status,
        "currency": fields.get("currency") or "USD",
        "price": fields["price"],
        "earnest_money": fields["earnest_money"],
        "financing": fields["financing"],
        "contingencies": contingencies,
        "closing_date": fields["closing_date"],
        "expires_at": fields["expires_at"],
        "message": fields.get("message"),
        "decided_at": (decided_at or fields.get("created_at") or now) if status in _DECIDED else None,
        "decision_reason": reason[:2000] if reason and status in _DECIDED else None,
        "updated_at": now,
    }
    if existing is not None:
        Offer.update(values).where(Offer.id == existing.id).execute()
        return Outcome.updated(existing.id, *note)
    offer_id = _offer_id(source_key)
    created = fields.get("created_at") or now
    Offer.insert(id=offer_id, root_id=offer_id, created_at=created, **values).execute()
    return Outcome.inserted(offer_id, *note)


def _offer_id(source_key: str) -> uuid.UUID:
    """The source's UUID when the key is one (so links to the offer keep working), else a new one."""
    try:
        candidate = uuid.UUID(source_key)
    except ValueError:
        return uuid.uuid4()
    return uuid.uuid4() if Offer.select().where(Offer.id == candidate).exists() else candidate


def _contingencies(value) -> tuple[list[dict], list[str]]:
    """``[{"kind", "days"}]`` from a JSON list; problems for anything else (never guessed at)."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], ["contingencies: a JSON list of {kind, days}"]
    out, problems = [], []
    for index, item in enumerate(value):
        kind = item.get("kind") if isinstance(item, dict) else None
        days = item.get("days") if isinstance(item, dict) else None
        if kind not in CONTINGENCY_KINDS:
            problems.append(f"contingencies[{index}]: kind one of {', '.join(CONTINGENCY_KINDS)}")
        elif not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_CONTINGENCY_DAYS:
            problems.append(f"contingencies[{index}]: days from 1 to {MAX_CONTINGENCY_DAYS}")
        else:
            out.append({"kind": kind, "days": days})
    return out, problems


def _term_problems(fields: dict, contingencies: list[dict]) -> list[str]:
    """The rules between an offer's fields that hold whenever it was made (not the clock's)."""
    problems = []
    price, earnest = fields["price"], fields["earnest_money"]
    for name, amount in (("price", price), ("earnest_money", earnest)):
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            problems.append(f"{name}: a positive amount in cents")
    if not problems and earnest > price:
        problems.append("earnest_money: cannot exceed the offer price")
    if fields["financing"] not in FINANCING:
        problems.append(f"financing: one of {', '.join(FINANCING)}")
    for name, kind in (("closing_date", datetime.date), ("expires_at", datetime.datetime)):
        if not isinstance(fields[name], kind):
            problems.append(f"{name}: a {'date' if kind is datetime.date else 'timestamp'}")
    if len(str(fields.get("message") or "")) > MAX_MESSAGE:
        problems.append(f"message: at most {MAX_MESSAGE} characters")
    kinds = [c["kind"] for c in contingencies]
    if len(set(kinds)) != len(kinds):
        problems.append("contingencies: each kind may appear once")
    if "financing" in kinds and fields["financing"] == "cash":
        problems.append("contingencies: a cash offer has no financing contingency")
    return problems


__all__ = ["ACCEPTED_REASON", "EXPIRED_REASON", "IMPORTABLE", "write_offer"]
