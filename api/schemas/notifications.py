"""Schemas of in-app notifications, notification preferences, phone verification, unsubscribe links
and the operators' views of deliveries and email suppressions."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from api.schemas import Cursor, Email, Limit, Phone, Request, Response, line
from models.notifications import DELIVERY_STATUSES, DIGEST_MODES, TYPES

DigestMode = Literal[DIGEST_MODES]  # type: ignore[valid-type]
DeliveryStatus = Literal[DELIVERY_STATUSES]  # type: ignore[valid-type]
SuppressionReason = Literal["bounce", "spamreport", "dropped", "unsubscribe", "manual"]
Clock = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local wall-clock time, HH:MM (24 h)",
        examples=["22:00"],
    ),
]
TimeZone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
        description="An IANA time zone",
        examples=["Europe/Paris"],
    ),
]
UnsubscribeToken = Annotated[str, line(300, min_length=1, description="The token of an unsubscribe link")]


# --- In-app notifications ------------------------------------------------------------------


class NotificationQuery(Request):
    unread: Annotated[bool, msgspec.Meta(description="true: only unread; false: only read")] | None = None
    cursor: Cursor | None = None
    limit: Limit = 20


class NotificationView(Response):
    id: str
    type: str
    title: str
    body: str
    data: dict
    read: bool
    read_at: str | None
    created_at: str


class NotificationPage(Response):
    items: list[NotificationView]
    unread_count: Annotated[int, msgspec.Meta(description="All my unread notifications, not only this page's")]
    next_cursor: str | None


class ReadAll(Response):
    marked: Annotated[int, msgspec.Meta(description="How many were unread until now")]


# --- Preferences ---------------------------------------------------------------------------


class ChannelChoice(Request):
    """Leave a field out to keep its current value."""

    in_app: bool | None = None
    email: bool | None = None
    sms: Annotated[bool, msgspec.Meta(description="Needs a verified phone number")] | None = None
    digest: (
        Annotated[
            DigestMode,
            msgspec.Meta(description=("instant: each email on its own; daily: one email a day at `digest_hour`")),
        ]
        | None
    ) = None


def _field(type_: str) -> str:
    return type_.replace(".", "__")


# One optional member per known event type: an unknown type is a 422 naming it.
if TYPE_CHECKING:
    # Built at run time from TYPES, so its members are unknown to a type checker: a request struct,
    # each member a ChannelChoice or None.
    TypeChoices = Request
else:
    TypeChoices = msgspec.defstruct(
        "TypeChoices",
        [(_field(name), ChannelChoice | None, None) for name in TYPES],
        bases=(Request,),
        rename={_field(name): name for name in TYPES},
        module=__name__,
    )


class QuietHours(Request):
    """Local times in `timezone`; `start` after `end` spans midnight (22:00 to 07:00); `end` differs from `start`."""

    start: Clock
    end: Clock


class PreferencesPatch(Request):
    """Every member is optional; a type names only the channels it changes."""

    types: TypeChoices | None = None
    quiet_hours: (
        Annotated[
            QuietHours | None,
            msgspec.Meta(
                description=("No email or text message in these hours (they wait until the end); null: no quiet hours")
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    timezone: TimeZone | None = None
    digest_hour: Annotated[int, msgspec.Meta(ge=0, le=23, description="Local hour of the daily digest")] | None = None


class ChannelSettings(Response):
    in_app: bool
    email: bool
    sms: bool
    digest: DigestMode


class QuietHoursView(Response):
    start: str
    end: str


class PhoneState(Response):
    number: str | None
    verified: bool


class PreferencesView(Response):
    types: dict[str, ChannelSettings]
    quiet_hours: QuietHoursView | None
    timezone: str
    digest_hour: int
    phone: PhoneState


# --- Phone verification --------------------------------------------------------------------


class PhoneRequest(Request):
    phone: Phone


class PhoneCode(Request):
    code: Annotated[
        str, msgspec.Meta(pattern=r"^[0-9]{6}$", description="The 6-digit code we texted", examples=["123456"])
    ]


class PhoneVerified(Response):
    number: str
    verified: bool


# --- Unsubscribe links ---------------------------------------------------------------------


class UnsubscribeQuery(Request):
    token: UnsubscribeToken


class UnsubscribePostQuery(Request):
    token: (
        Annotated[
            UnsubscribeToken,
            msgspec.Meta(
                description=(
                    'Or in the body: JSON `{"token"}`; the one-click form body `List-Unsubscribe=One-Click` '
                    "(RFC 8058) comes with the token here"
                )
            ),
        ]
        | None
    ) = None


class UnsubscribeBody(Request):
    token: UnsubscribeToken


class UnsubscribeState(Response):
    type: Annotated[str, msgspec.Meta(description="The event type, or `*` for every email")]
    email: Annotated[str, msgspec.Meta(description="The address, masked", examples=["j***@example.com"])]
    unsubscribed: bool


# --- Operators -----------------------------------------------------------------------------


class DeliveryQuery(Request):
    status: DeliveryStatus | None = None
    channel: Literal["email", "sms"] | None = None
    user_id: uuid.UUID | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class DeliveryView(Response):
    id: int
    notification_id: str
    user_id: str
    type: str
    channel: str
    status: str
    recipient: str
    attempts: int
    provider_message_id: str | None
    provider_status: str | None
    error: str | None
    sent_at: str | None
    created_at: str
    updated_at: str


class DeliveryPage(Response):
    items: list[DeliveryView]
    next_cursor: str | None


class SuppressionQuery(Request):
    email: Email | None = None
    reason: SuppressionReason | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class SuppressionView(Response):
    email: str
    reason: str
    detail: str | None
    created_at: str


class SuppressionPage(Response):
    items: list[SuppressionView]
    next_cursor: str | None
