"""The rules of an offer that hold without its row: terms, statuses, who acts, what a change may be.

An offer is written by one side of a deal, the buyer's (the buyer or the
buyer's agent) or the listing's (the owner or the listing agent), and answered
by the other. A counter-offer answers the live offer of its chain and replaces
it; only the latest offer of a chain is live (``submitted``). When another
offer of the listing is accepted, live offers become ``backup``: they stay, but
cannot be accepted until that escrow ends (sold: ``closed``; fell through: live
again).

    submitted → countered | accepted | rejected | withdrawn | expired | backup
    backup    → submitted | closed | withdrawn | expired
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace

FINANCING = ("cash", "conventional", "fha", "va")
CONTINGENCY_KINDS = ("inspection", "financing", "appraisal", "home_sale")
MAX_CONTINGENCY_DAYS = 90
MAX_EXPIRY = datetime.timedelta(days=7)
MIN_EXPIRY = datetime.timedelta(minutes=5)
MAX_CLOSING = datetime.timedelta(days=365)
SIDES = ("buyer", "listing")
STATUSES = ("submitted", "backup", "countered", "accepted", "rejected", "withdrawn", "expired", "closed")
LIVE = ("submitted", "backup")

TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"countered", "accepted", "rejected", "withdrawn", "expired", "backup"}),
    "backup": frozenset({"submitted", "closed", "withdrawn", "expired"}),
    "countered": frozenset(),
    "accepted": frozenset(),
    "rejected": frozenset(),
    "withdrawn": frozenset(),
    "expired": frozenset(),
    "closed": frozenset(),
}


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def other_side(side: str) -> str:
    return "listing" if side == "buyer" else "buyer"


@dataclass(frozen=True)
class Contingency:
    kind: str
    days: int


@dataclass(frozen=True)
class OfferTerms:
    price: int
    earnest_money: int
    financing: str
    closing_date: datetime.date
    expires_at: datetime.datetime
    contingencies: tuple[Contingency, ...] = ()
    message: str | None = None
    documents: tuple = field(default=())
    currency: str = "USD"

    def with_changes(self, **changes) -> OfferTerms:
        return replace(self, **{name: value for name, value in changes.items() if value is not None})

    def contingencies_json(self) -> list[dict]:
        return [{"kind": c.kind, "days": c.days} for c in self.contingencies]


class OfferError(Exception):
    """A change the rules refuse."""


class InvalidOffer(OfferError):
    """Terms that break a rule between fields: ``errors`` is ``[(field, message)]`` (a 422)."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors))
        self.errors = errors


class OfferConflict(OfferError):
    """The offer or its listing is not in a state that allows this (a 409); ``str()`` says why."""


class NotYourTurn(OfferError):
    """The caller is a party, but not the one who may do this (a 403; ``str()`` says who may)."""


def term_errors(terms: OfferTerms, *, now: datetime.datetime) -> list[tuple[str, str]]:
    """The rules between fields and against the clock that a schema of single fields cannot state."""
    errors = []
    if terms.earnest_money > terms.price:
        errors.append(("earnest_money", "the earnest money cannot exceed the offer price"))
    if terms.expires_at <= now + MIN_EXPIRY:
        errors.append(("expires_at", "an offer must stay open for at least 5 minutes"))
    elif terms.expires_at > now + MAX_EXPIRY:
        errors.append(("expires_at", "an offer may stay open for at most 7 days"))
    today = now.date()
    if terms.closing_date <= today:
        errors.append(("closing_date", "the closing date must be in the future"))
    elif terms.closing_date > today + MAX_CLOSING:
        errors.append(("closing_date", "the closing date must be within a year"))
    kinds = [c.kind for c in terms.contingencies]
    if len(set(kinds)) != len(kinds):
        errors.append(("contingencies", "each kind of contingency may appear once"))
    for index, contingency in enumerate(terms.contingencies):
        if contingency.kind == "financing" and terms.financing == "cash":
            errors.append((f"contingencies[{index}]", "a cash offer has no financing contingency"))
        ends = today + datetime.timedelta(days=contingency.days)
        if ends > terms.closing_date:
            errors.append((f"contingencies[{index}]", "a contingency must end by the closing date"))
    return errors
