"""The rules of an escrow that hold without its row: statuses, the transition table, deadlines.

An escrow holds an accepted offer's earnest money::

    awaiting_deposit ──deposit arrives──▶ funded ──both sides (or an admin)──▶ released | refunded
           │                                 │
           │ deadline passes / buyer cancels └──either side──▶ disputed ──admin split──▶ resolved
           ▼
       cancelled

While a contingency is open the buyer may cancel a funded escrow and is
refunded in full. When the last contingency is removed or has lapsed the
deposit is *hard*: it goes to the seller at closing, or back to the buyer only
if the seller agrees (both sides instruct a refund). Release and refund always
need both sides' instruction, or an admin's resolution.
"""

from __future__ import annotations

import datetime

STATUSES = ("awaiting_deposit", "funded", "released", "refunded", "disputed", "resolved", "cancelled")
OPEN = ("awaiting_deposit", "funded", "disputed")
FINISHED = ("released", "refunded", "resolved", "cancelled")

TRANSITIONS: dict[str, frozenset[str]] = {
    "awaiting_deposit": frozenset({"funded", "cancelled"}),
    "funded": frozenset({"released", "refunded", "disputed"}),
    "disputed": frozenset({"resolved"}),
    "released": frozenset(),
    "refunded": frozenset(),
    "resolved": frozenset(),
    "cancelled": frozenset(),
}
INSTRUCTIONS = ("release", "refund")
DEFAULT_DEPOSIT_BUSINESS_DAYS = 3


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def add_business_days(start: datetime.datetime, days: int) -> datetime.datetime:
    """``start`` plus ``days`` business days (Monday to Friday, UTC; public holidays are not skipped).

    The time of day is kept: accepted on Friday 15:00 with 3 days → due Wednesday 15:00.
    """
    if days < 0:
        raise ValueError("days must not be negative")
    at = start
    left = days
    while left:
        at += datetime.timedelta(days=1)
        if at.weekday() < 5:
            left -= 1
    return at


def contingency_ends(accepted_at: datetime.datetime, days: int) -> datetime.datetime:
    """A contingency's period runs in calendar days from acceptance."""
    return accepted_at + datetime.timedelta(days=days)


class EscrowError(Exception):
    """A change the rules refuse."""


class EscrowConflict(EscrowError):
    """The escrow is not in a state that allows this (a 409); ``str()`` says why."""


class EscrowForbidden(EscrowError):
    """The caller is a party but not the one who may do this (a 403); ``str()`` says who may."""


class InvalidSplit(EscrowError):
    """A resolution whose amounts do not add up to exactly what the escrow holds (a 422)."""
