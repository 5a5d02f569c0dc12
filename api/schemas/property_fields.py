"""The constrained field types of a listing, shared by its request and response schemas.

Each type carries its limits and documentation (``msgspec.Meta``), so a field
means the same wherever a schema names it. Money is integer minor units of the
listing's ``currency`` (cents for USD).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import CONTROL_AND_SPACE, line, text
from models.listing_rules import PROPERTY_TYPES, STATUSES

MAX_MONEY = 10**13  # minor units: 100 billion in a two-decimal currency; far above any real listing
MAX_FEATURES = 50
MAX_FEATURE_LENGTH = 60
MAX_REMARKS = 5000

# The models own these lists; a Literal built from a tuple is valid at run time but opaque to mypy.
StandardStatus = Literal[STATUSES]  # type: ignore[valid-type]  # values from models.properties
PropertyType = Literal[PROPERTY_TYPES]  # type: ignore[valid-type]  # values from models.properties
# RESO PropertySubType (a lookup, not a free text).
PropertySubType = Literal[
    "Apartment",
    "Cabin",
    "Condominium",
    "Duplex",
    "FarmHouse",
    "ManufacturedHome",
    "ManufacturedOnLand",
    "MobileHome",
    "OwnYourOwn",
    "Quadruplex",
    "SingleFamilyResidence",
    "StockCooperative",
    "Timeshare",
    "Townhouse",
    "Triplex",
    "Agriculture",
    "Business",
    "HotelMotel",
    "Industrial",
    "MixedUse",
    "MultiFamily",
    "Office",
    "Retail",
    "UnimprovedLand",
    "Warehouse",
]
# ISO 4217 codes of currencies in use (no funds, metals or test codes).
CurrencyCode = Literal[
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BHD",
    "BIF",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CLP",
    "CNY",
    "COP",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DJF",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GNF",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IQD",
    "IRR",
    "ISK",
    "JMD",
    "JOD",
    "JPY",
    "KES",
    "KGS",
    "KHR",
    "KMF",
    "KPW",
    "KRW",
    "KWD",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "LYD",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "OMR",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "PYG",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "RWF",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TND",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "UGX",
    "USD",
    "UYU",
    "UZS",
    "VES",
    "VND",
    "VUV",
    "WST",
    "XAF",
    "XCD",
    "XCG",
    "XOF",
    "XPF",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
AreaUnits = Literal["SquareFeet", "SquareMeters"]
# A fee needs its frequency; JSON Schema cannot say it of two members whose values may be null.
FEE_NEEDS_FREQUENCY = "Needs `association_fee_frequency`, given here or already on the listing (422 without it)"
FeeFrequency = Literal["Monthly", "Quarterly", "SemiAnnually", "Annually"]

Money = Annotated[
    int, msgspec.Meta(ge=0, le=MAX_MONEY, description="Integer minor units of `currency` (cents)", examples=[45000000])
]
Currency = Annotated[CurrencyCode, msgspec.Meta(description="ISO 4217 currency code", examples=["USD"])]
Count = Annotated[int, msgspec.Meta(ge=0, le=100)]
Text100 = Annotated[str, line(100, min_length=1)]
Short = Annotated[str, line(20, min_length=1)]
City = Annotated[str, line(100, min_length=1, examples=["Austin"])]
Region = Annotated[str, line(50, min_length=1, examples=["TX"])]
PostalCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{1,10}$", examples=["78701"])]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2", examples=["US"])]
Address = Annotated[str, line(255, min_length=1)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
LivingArea = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
LotSize = Annotated[int, msgspec.Meta(ge=0, le=100_000_000_000, description="Square feet")]
YearBuilt = Annotated[int, msgspec.Meta(ge=1600, le=2100)]
TaxYear = Annotated[int, msgspec.Meta(ge=1900, le=2100)]
Feature = Annotated[str, line(MAX_FEATURE_LENGTH, min_length=1, examples=["Pool"])]
Features = Annotated[
    list[Feature], msgspec.Meta(max_length=MAX_FEATURES, description=f"At most {MAX_FEATURES} features/amenities")
]
Remarks = Annotated[str, text(MAX_REMARKS, description="RESO PublicRemarks")]
_URL = f"^https?://[^/?#@{CONTROL_AND_SPACE}]+(?:[/?#][^{CONTROL_AND_SPACE}]*)?$"
TourUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=2048, pattern=_URL, description="An http(s) URL", examples=["https://tours.example.com/123"]
    ),
]
