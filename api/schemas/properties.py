"""Schemas of listings (RESO Data Dictionary names in snake_case), their history, and favorites.

The field types and their limits are in ``api.schemas.property_fields``. Money
is integer minor units of ``currency`` (cents for USD). A PATCH body changes
only the fields it names; ``null`` clears an optional field.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Cursor, Limit, Request, Response
from api.schemas.property_fields import (
    FEE_NEEDS_FREQUENCY,
    Address,
    AreaUnits,
    City,
    Count,
    Country,
    Currency,
    Features,
    FeeFrequency,
    Latitude,
    LivingArea,
    Longitude,
    LotSize,
    Money,
    PostalCode,
    PropertySubType,
    PropertyType,
    Region,
    Remarks,
    Short,
    StandardStatus,
    TaxYear,
    Text100,
    TourUrl,
    YearBuilt,
)


class PropertyCreate(Request):
    """A new listing. ``standard_status`` defaults to ``Incomplete`` (a draft)."""

    property_type: PropertyType
    list_price: Money
    city: City
    currency: Currency = "USD"
    standard_status: StandardStatus = "Incomplete"
    property_sub_type: PropertySubType | None = None
    list_agent_id: uuid.UUID | None = None
    bedrooms_total: Count | None = None
    bathrooms_full: Count | None = None
    bathrooms_half: Count | None = None
    living_area: LivingArea | None = None
    living_area_units: AreaUnits = "SquareFeet"
    lot_size_square_feet: LotSize | None = None
    year_built: YearBuilt | None = None
    street_number: Short | None = None
    street_name: Text100 | None = None
    unit_number: Short | None = None
    unparsed_address: Address | None = None
    state_or_province: Region | None = None
    postal_code: PostalCode | None = None
    country: Country = "US"
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    features: Features = msgspec.field(default_factory=list)
    association_fee: Annotated[Money | None, msgspec.Meta(description=FEE_NEEDS_FREQUENCY)] = None
    association_fee_frequency: FeeFrequency | None = None
    tax_annual_amount: Money | None = None
    tax_year: TaxYear | None = None
    public_remarks: Remarks | None = None
    virtual_tour_url_unbranded: TourUrl | None = None
    listing_contract_date: datetime.date | None = None


_U = msgspec.UnsetType


class PropertyPatch(Request):
    """Only the fields named change; ``null`` clears an optional one. Send ``If-Match``."""

    property_type: PropertyType | _U = msgspec.UNSET
    list_price: Money | _U = msgspec.UNSET
    city: City | _U = msgspec.UNSET
    currency: Currency | _U = msgspec.UNSET
    standard_status: StandardStatus | _U = msgspec.UNSET
    close_price: Money | _U | None = msgspec.UNSET
    close_date: datetime.date | _U | None = msgspec.UNSET
    property_sub_type: PropertySubType | _U | None = msgspec.UNSET
    list_agent_id: uuid.UUID | _U | None = msgspec.UNSET
    bedrooms_total: Count | _U | None = msgspec.UNSET
    bathrooms_full: Count | _U | None = msgspec.UNSET
    bathrooms_half: Count | _U | None = msgspec.UNSET
    living_area: LivingArea | _U | None = msgspec.UNSET
    living_area_units: AreaUnits | _U = msgspec.UNSET
    lot_size_square_feet: LotSize | _U | None = msgspec.UNSET
    year_built: YearBuilt | _U | None = msgspec.UNSET
    street_number: Short | _U | None = msgspec.UNSET
    street_name: Text100 | _U | None = msgspec.UNSET
    unit_number: Short | _U | None = msgspec.UNSET
    unparsed_address: Address | _U | None = msgspec.UNSET
    state_or_province: Region | _U | None = msgspec.UNSET
    postal_code: PostalCode | _U | None = msgspec.UNSET
    country: Country | _U = msgspec.UNSET
    latitude: Latitude | _U | None = msgspec.UNSET
    longitude: Longitude | _U | None = msgspec.UNSET
    features: Features | _U = msgspec.UNSET
    association_fee: Annotated[Money | None, msgspec.Meta(description=FEE_NEEDS_FREQUENCY)] | _U = msgspec.UNSET
    association_fee_frequency: FeeFrequency | _U | None = msgspec.UNSET
    tax_annual_amount: Money | _U | None = msgspec.UNSET
    tax_year: TaxYear | _U | None = msgspec.UNSET
    public_remarks: Remarks | _U | None = msgspec.UNSET
    virtual_tour_url_unbranded: TourUrl | _U | None = msgspec.UNSET
    listing_contract_date: datetime.date | _U | None = msgspec.UNSET


class PropertyView(Response):
    """A listing. ``version`` is also its ``ETag`` (``"v{version}"``)."""

    id: str
    owner_id: str
    list_agent_id: str | None
    version: int
    standard_status: StandardStatus
    property_type: PropertyType
    property_sub_type: str | None
    currency: str
    list_price: int
    original_list_price: int
    previous_list_price: int | None
    close_price: int | None
    bedrooms_total: int | None
    bathrooms_full: int | None
    bathrooms_half: int | None
    living_area: int | None
    living_area_units: AreaUnits
    lot_size_square_feet: int | None
    year_built: int | None
    street_number: str | None
    street_name: str | None
    unit_number: str | None
    unparsed_address: str | None
    city: str
    state_or_province: str | None
    postal_code: str | None
    country: str
    latitude: float | None
    longitude: float | None
    features: list[str]
    association_fee: int | None
    association_fee_frequency: FeeFrequency | None
    tax_annual_amount: int | None
    tax_year: int | None
    public_remarks: str | None
    virtual_tour_url_unbranded: str | None
    listing_contract_date: str | None
    on_market_timestamp: str | None
    close_date: str | None
    created_at: str
    modification_timestamp: str


class ListingCard(Response):
    """What every compact form of a listing in a list holds (``PropertySummary``, ``api.schemas.search.SearchHit``).

    Not a response of its own: the documented schemas are the forms that extend it.
    """

    id: str
    standard_status: str
    property_type: str
    currency: str
    list_price: int
    bedrooms_total: int | None
    bathrooms_full: int | None
    bathrooms_half: int | None
    living_area: int | None
    living_area_units: str
    unparsed_address: str | None
    city: str
    state_or_province: str | None
    postal_code: str | None
    latitude: float | None
    longitude: float | None
    modification_timestamp: str


class PropertySummary(ListingCard):
    """The compact form of a listing used in lists."""

    # Documented here with the values they take; a search hit documents them as plain strings.
    standard_status: StandardStatus
    property_type: PropertyType
    living_area_units: AreaUnits


class HistoryEntry(Response):
    id: int
    at: str
    field: Literal["list_price", "standard_status"]
    old_value: int | str | None
    new_value: int | str
    actor_id: str | None = None


class HistoryList(Response):
    items: list[HistoryEntry]
    next_cursor: str | None


class PageQuery(Request):
    cursor: Cursor | None = None
    limit: Limit = 50


class FavoriteView(Response):
    property_id: str
    favorited_at: str
    available: bool
    listing: PropertySummary | None


class FavoriteList(Response):
    items: list[FavoriteView]
    next_cursor: str | None
