"""The deadlines of offers and escrows, enforced by a beat task (``tasks.money_deadlines.enforce_deadlines``).

* an offer past its expiry closes (``expired``), and its parties are told;
* an escrow whose deposit did not arrive by ``deposit_due_at`` is cancelled and
  the listing goes back to ``Active`` (its backups are live again);
* a contingency past its period lapses; the last one makes the deposit hard;
* the closing date of a funded escrow that has not settled reminds the parties (once).

Each step takes rows with ``FOR UPDATE SKIP LOCKED``, one transaction per row,
so two sweeps never handle the same row and a failure stops only its row.
``publish(channels, type, data)``, when given, is called after each row's
transaction commits with the event its parties' channels get (``offer.expired``,
``escrow.cancelled``, ``escrow.contingency_lapsed``).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from models.db import db
from models.escrow_actions import end, harden_if_done
from models.escrows import Escrow, EscrowContingency, record
from models.money_notices import escrow_notice, offer_notice
from models.offer_views import offer_view
from models.offers import due_to_expire, expire
from models.properties import Property

log = logging.getLogger("hearth.money")
BATCH = 200
Publish = Callable[[list[str], str, dict], None]


def _nothing(channels: list[str], type_: str, data: dict) -> None:
    return None


def _escrow_event(escrow: Escrow, **extra) -> dict:
    return {"id": str(escrow.id), "property_id": str(escrow.property_id), "status": escrow.status, **extra}


def _channels(user_ids) -> list[str]:
    return [f"user:{user_id}" for user_id in user_ids]


def expire_offers(now: datetime.datetime, publish: Publish = _nothing) -> int:
    done = 0
    while True:
        with db.atomic():
            offers = due_to_expire(now, limit=1)
            if not offers:
                return done
            offer = offers[0]
            expire(offer, now=now)
            listing = Property.get_by_id(offer.property_id)
            parties = offer.parties(listing)
            offer_notice(offer, listing, "offer.expired", to=parties)
            view = offer_view(offer)
        publish(_channels(parties), "offer.expired", view)
        done += 1


def _locked(query) -> Escrow | None:
    return query.limit(1).for_update(skip_locked=True).first()


def cancel_overdue_deposits(now: datetime.datetime, publish: Publish = _nothing) -> int:
    done = 0
    while done < BATCH:
        with db.atomic():
            escrow = _locked(
                Escrow.select().where(
                    (Escrow.status == "awaiting_deposit") & (Escrow.deposit_due_at <= now) & Escrow.settlement.is_null()
                )
            )
            if escrow is None:
                break
            end(escrow, "cancelled", action="deposit_overdue", reason="the deposit did not arrive in time", now=now)
        publish(_channels(escrow.parties()), "escrow.cancelled", _escrow_event(escrow, reason="deposit_overdue"))
        done += 1
    return done


def lapse_contingencies(now: datetime.datetime, publish: Publish = _nothing) -> int:
    done = 0
    while done < BATCH:
        with db.atomic():
            row = (
                EscrowContingency.select()
                .join(Escrow)
                .where(
                    (EscrowContingency.status == "open")
                    & (EscrowContingency.ends_at <= now)
                    & Escrow.status.in_(("awaiting_deposit", "funded"))
                )
                .limit(1)
                .for_update(of=(EscrowContingency, Escrow), skip_locked=True)
                .first()
            )
            if row is None:
                break
            escrow = Escrow.select().where(Escrow.id == row.escrow_id).for_update().first()
            EscrowContingency.update(status="lapsed", closed_at=now).where(
                (EscrowContingency.escrow == row.escrow_id) & (EscrowContingency.kind == row.kind)
            ).execute()
            record(escrow, "contingency_lapsed", data={"kind": row.kind}, reason="its period ended", now=now)
            hard = harden_if_done(escrow, now)
        event = _escrow_event(escrow, kind=row.kind, deposit_hard=hard)
        publish(_channels(escrow.parties()), "escrow.contingency_lapsed", event)
        done += 1
    return done


def remind_closing(now: datetime.datetime) -> int:
    done = 0
    escrows = list(
        Escrow.select().where(
            (Escrow.status == "funded") & (Escrow.closing_date <= now.date()) & Escrow.settlement.is_null()
        )
    )
    for escrow in escrows:
        with db.atomic():
            done += escrow_notice(
                escrow,
                "escrow.closing_due",
                title="Closing date reached",
                body="The closing date has come: both sides instruct a release of the deposit to the seller "
                "(or a refund, if the sale does not go ahead).",
                dedupe=escrow.closing_date.isoformat(),
            )
    return done


def enforce(now: datetime.datetime, publish: Publish = _nothing) -> dict[str, int]:
    """Every deadline due at ``now``; returns how many of each were handled."""
    return {
        "offers_expired": expire_offers(now, publish),
        "deposits_overdue": cancel_overdue_deposits(now, publish),
        "contingencies_lapsed": lapse_contingencies(now, publish),
        "closing_reminders": remind_closing(now),
    }
