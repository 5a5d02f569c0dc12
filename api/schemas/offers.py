"""Schemas of offers on listings, counter-offers and the answers to them.

Amounts are integer cents. The rules between fields (earnest money at most the
price, expiry within 7 days, a closing date in the future, contingencies once
each and none on financing for a cash offer) are checked by the model
(``models.offer_rules.term_errors``) and answered 422 like the single-field limits here.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Cursor, Limit, Request, Response, text
from models.offer_rules import MAX_CONTINGENCY_DAYS

MAX_MESSAGE = 4000
MAX_REASON = 2000
MAX_DOCUMENTS = 10
MAX_CONTINGENCIES = 4
MAX_CENTS = 10**12

Cents = Annotated[int, msgspec.Meta(ge=1, le=MAX_CENTS, description="An amount in cents (1 to 10^12)")]
EarnestMoney = Annotated[int, msgspec.Meta(ge=1, le=MAX_CENTS, description="Cents (1 to 10^12); at most the price")]
Financing = Annotated[
    Literal["cash", "conventional", "fha", "va"], msgspec.Meta(description="How the buyer pays the price")
]
ContingencyKind = Literal["inspection", "financing", "appraisal", "home_sale"]
OfferStatus = Literal["submitted", "backup", "countered", "accepted", "rejected", "withdrawn", "expired", "closed"]
ExpiresAt = Annotated[
    datetime.datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 time with its offset: the offer closes then unless answered; "
        "at least 5 minutes and at most 7 days from now",
        examples=["2027-03-01T17:00:00Z"],
    ),
]
ClosingDate = Annotated[
    datetime.date,
    msgspec.Meta(description="Proposed closing date (YYYY-MM-DD): after today, within a year", examples=["2027-04-15"]),
]
OfferMessage = Annotated[
    str, text(MAX_MESSAGE, description=f"A note to the other side, up to {MAX_MESSAGE} characters (line breaks kept)")
]
Reason = Annotated[str, text(MAX_REASON, description=f"Why, up to {MAX_REASON} characters, shown to the other side")]
Documents = Annotated[
    list[uuid.UUID],
    msgspec.Meta(
        max_length=MAX_DOCUMENTS,
        description=f"Up to {MAX_DOCUMENTS} ids of your own uploads (purpose `document` or `attachment`) whose scan "
        "found them clean; the parties of the offer may download them",
    ),
]


class ContingencyTerm(Request):
    kind: Annotated[ContingencyKind, msgspec.Meta(description="Each kind at most once; no `financing` on cash")]
    days: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_CONTINGENCY_DAYS,
            description="The period from acceptance, in days; it must end by the closing date",
        ),
    ]


Contingencies = Annotated[
    list[ContingencyTerm],
    msgspec.Meta(max_length=MAX_CONTINGENCIES, description=f"Up to {MAX_CONTINGENCIES} contingencies, one per kind"),
]


class OfferCreate(Request):
    """An offer on a listing. The earnest money cannot exceed the price.

    A buyer makes it for themself (optionally naming their agent in
    `buyer_agent_id`); an agent makes it for a buyer named in `buyer_id`.
    """

    price: Cents
    earnest_money: EarnestMoney
    financing: Financing
    closing_date: ClosingDate
    expires_at: ExpiresAt
    contingencies: Contingencies = msgspec.field(default_factory=list)
    message: OfferMessage | None = None
    documents: Documents = msgspec.field(default_factory=list)
    buyer_id: Annotated[
        uuid.UUID | None,
        msgspec.Meta(description="The buyer an agent offers for (a user whose role is buyer); required of agents"),
    ] = None
    buyer_agent_id: Annotated[
        uuid.UUID | None,
        msgspec.Meta(description="A buyer's agent (a user whose role is agent); an agent offering is the agent"),
    ] = None


class OfferCounter(Request):
    """The terms a counter-offer changes; the others stay as the offer it answers had them.

    At least one term is given. `contingencies: []` removes every contingency. The
    message and documents are the counter's own.
    """

    price: Cents | None = None
    earnest_money: EarnestMoney | None = None
    financing: Financing | None = None
    closing_date: ClosingDate | None = None
    expires_at: ExpiresAt | None = None
    contingencies: Contingencies | None = None
    message: OfferMessage | None = None
    documents: Documents = msgspec.field(default_factory=list)


TERM_FIELDS = ("price", "earnest_money", "financing", "closing_date", "expires_at", "contingencies")


class OfferDecision(Request):
    """An answer (reject) or a withdrawal, with an optional reason."""

    reason: Reason | None = None


class OfferListQuery(Request):
    status: Annotated[OfferStatus | None, msgspec.Meta(description="Only offers in this status")] = None
    cursor: Cursor | None = None
    limit: Limit = 20


class MyOffersQuery(OfferListQuery):
    role: Annotated[
        Literal["buyer", "listing"] | None,
        msgspec.Meta(
            description="`buyer`: offers where you are the buyer or the buyer's agent; `listing`: offers on "
            "listings you own or represent; default both"
        ),
    ] = None


class ContingencyView(Response):
    kind: str
    days: int


class ChainLink(Response):
    id: str
    side: Annotated[str, msgspec.Meta(description="`buyer` or `listing`: whose offer or counter it is")]
    status: str
    price: int
    created_at: str


class OfferView(Response):
    """An offer; also the ``data`` of the ``offer.*`` events on the parties' ``user:{id}`` channels."""

    id: str
    property_id: str
    buyer_id: str
    buyer_agent_id: str | None
    author_id: str | None
    side: Annotated[str, msgspec.Meta(description="Who wrote it: `buyer` (buyer's side) or `listing`")]
    parent_id: Annotated[str | None, msgspec.Meta(description="The offer this counter answers")]
    root_id: Annotated[str, msgspec.Meta(description="The first offer of the chain")]
    status: Annotated[
        str, msgspec.Meta(description="`submitted` (live), `backup`, `countered`, `accepted`, `rejected`, …")
    ]
    currency: str
    price: int
    earnest_money: int
    financing: str
    contingencies: list[ContingencyView]
    closing_date: str
    expires_at: str
    message: str | None
    documents: list[str]
    decided_by: str | None
    decided_at: str | None
    decision_reason: str | None
    created_at: str
    updated_at: str
    chain: Annotated[list[ChainLink], msgspec.Meta(description="The offers of this chain, oldest first")]
    escrow_id: Annotated[
        str | None, msgspec.Meta(description="The escrow opened when this offer was accepted, else null")
    ]


class OfferPage(Response):
    items: Annotated[list[OfferView], msgspec.Meta(description="Newest first")]
    next_cursor: str | None
