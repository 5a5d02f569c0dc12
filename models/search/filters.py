"""What a listing search asks for: its parameters, the rules they follow, and the filters they become.

The same rules check ``GET /v1/properties`` and a saved search's ``query``
(when it is saved, and each time its alerts are evaluated):

* ``SearchParameters``: every parameter with its limits (lengths, ranges,
  enums). The API's query schema (``api.schemas.search``) extends it and adds
  only documentation and its text rules (no control characters);
* ``filters_of``: the rules between parameters (ranges in order, a radius needs
  a centre, a sort needs what it sorts by) and the parsing of the map filters,
  giving ``SearchFilters`` and the sort, or ``InvalidSearch`` naming the
  parameter; ``parse_query`` does both for a query kept as JSON.

``SearchFilters.normalised()`` is the filters' canonical form, used for cache
keys and cursor fingerprints. ``radius_boxes`` gives the boxes a GiST index can
search for "within r km of a point".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from models.listing_rules import PROPERTY_TYPES, PUBLIC_STATUSES

SORTS = ("newest", "price_asc", "price_desc", "distance", "relevance")
DEFAULT_STATUSES = ("Active", "ComingSoon")
EARTH_RADIUS_KM = 6371.0088

MAX_TEXT_LENGTH = 200
MAX_PRICE = 10**13  # minor units
MAX_ROOMS = 100
MIN_YEAR, MAX_YEAR = 1600, 2100
MAX_AREA = 10_000_000
MAX_CITY_LENGTH = 100
MAX_POSTAL_CODE_LENGTH = 12
MAX_FEATURES = 20
MAX_FEATURE_LENGTH = 60
MAX_BBOX_LENGTH = 200
MAX_NEAR_LENGTH = 100
MAX_RADIUS_KM = 500
MIN_POLYGON_POINTS = 3
MAX_POLYGON_POINTS = 100
MAX_POLYGON_LENGTH = 6000

Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]
Price = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
Rooms = Annotated[int, msgspec.Meta(ge=0, le=MAX_ROOMS)]
Year = Annotated[int, msgspec.Meta(ge=MIN_YEAR, le=MAX_YEAR)]
Area = Annotated[int, msgspec.Meta(ge=0, le=MAX_AREA)]
PropertyType = Literal[PROPERTY_TYPES]  # type: ignore[valid-type]
PropertyTypes = Annotated[list[PropertyType], msgspec.Meta(max_length=len(PROPERTY_TYPES))]
PublicStatus = Literal[PUBLIC_STATUSES]  # type: ignore[valid-type]
Statuses = Annotated[list[PublicStatus], msgspec.Meta(max_length=len(PUBLIC_STATUSES))]
City = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CITY_LENGTH)]
PostalCode = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_POSTAL_CODE_LENGTH)]
Feature = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FEATURE_LENGTH)]
Bbox = Annotated[str, msgspec.Meta(max_length=MAX_BBOX_LENGTH)]
Near = Annotated[str, msgspec.Meta(max_length=MAX_NEAR_LENGTH)]
RadiusKm = Annotated[float, msgspec.Meta(gt=0, le=MAX_RADIUS_KM)]
Polygon = Annotated[str, msgspec.Meta(max_length=MAX_POLYGON_LENGTH)]
Sort = Literal[SORTS]  # type: ignore[valid-type]


class SearchParameters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The parameters of a listing search, each with its limits; all optional (``None``: no such filter)."""

    q: Text | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    min_beds: Rooms | None = None
    min_baths: Rooms | None = None
    property_type: PropertyTypes | None = None
    status: Statuses | None = None
    city: City | None = None
    postal_code: PostalCode | None = None
    features: Annotated[list[Feature], msgspec.Meta(max_length=MAX_FEATURES)] | None = None
    min_year_built: Year | None = None
    max_year_built: Year | None = None
    min_living_area: Area | None = None
    max_living_area: Area | None = None
    bbox: Bbox | None = None
    near: Near | None = None
    radius_km: RadiusKm | None = None
    polygon: Polygon | None = None
    sort: Sort | None = None


class InvalidSearch(ValueError):
    """Parameters the search rules refuse: ``errors`` is ``[(parameter, message), ...]``.

    A parameter is named as given (``bbox``, ``status[0]``); empty for the
    query as a whole (an unknown parameter, for one).
    """

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {message}" if field else message for field, message in errors))
        self.errors = errors


@dataclass(frozen=True)
class SearchFilters:
    """Validated filters (``filters_of`` checks ranges and combinations first).

    ``bbox`` is (min_lon, min_lat, max_lon, max_lat); ``near`` is (lat, lon);
    ``polygon`` is ((lat, lon), ...). Text filters are matched case-insensitively.
    """

    q: str | None = None
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    min_price: int | None = None
    max_price: int | None = None
    min_beds: int | None = None
    min_baths: int | None = None
    property_types: tuple[str, ...] = ()
    city: str | None = None
    postal_code: str | None = None
    features: tuple[str, ...] = ()
    min_year_built: int | None = None
    max_year_built: int | None = None
    min_living_area: int | None = None
    max_living_area: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    polygon: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        refused = set(self.statuses) - set(PUBLIC_STATUSES)
        if refused:
            raise ValueError(f"not searchable: {sorted(refused)}")

    def normalised(self) -> dict:
        """The filters as plain, canonical data (cache keys and cursor fingerprints)."""
        return {
            "q": " ".join(self.q.lower().split()) if self.q else None,
            "statuses": sorted(set(self.statuses)),
            "price": [self.min_price, self.max_price],
            "beds": self.min_beds,
            "baths": self.min_baths,
            "types": sorted(set(self.property_types)),
            "city": city_key(self.city) if self.city else None,
            "postal": postal_key(self.postal_code) if self.postal_code else None,
            "features": sorted({feature_key(f) for f in self.features}),
            "year": [self.min_year_built, self.max_year_built],
            "area": [self.min_living_area, self.max_living_area],
            "bbox": list(self.bbox) if self.bbox else None,
            "near": list(self.near) if self.near else None,
            "radius": self.radius_km,
            "polygon": [list(p) for p in self.polygon] if self.polygon else None,
        }


def filters_of(params: SearchParameters) -> tuple[SearchFilters, str]:
    """The validated filters and sort of ``params``; ``InvalidSearch`` naming the first parameter refused."""
    for low, high in (
        ("min_price", "max_price"),
        ("min_year_built", "max_year_built"),
        ("min_living_area", "max_living_area"),
    ):
        _check_range(params, low, high)
    near = parse_near(params.near) if params.near is not None else None
    if params.radius_km is not None and near is None:
        raise _invalid("radius_km", "needs near")
    text = params.q.strip() if params.q else None
    sort = params.sort or ("relevance" if text else "newest")
    if sort == "distance" and near is None:
        raise _invalid("sort", "distance sort needs near")
    if sort == "relevance" and not text:
        raise _invalid("sort", "relevance sort needs q")
    filters = SearchFilters(
        q=text or None,
        statuses=tuple(dict.fromkeys(params.status)) if params.status else DEFAULT_STATUSES,
        min_price=params.min_price,
        max_price=params.max_price,
        min_beds=params.min_beds,
        min_baths=params.min_baths,
        property_types=tuple(dict.fromkeys(params.property_type or ())),
        city=params.city,
        postal_code=params.postal_code,
        features=tuple(params.features or ()),
        min_year_built=params.min_year_built,
        max_year_built=params.max_year_built,
        min_living_area=params.min_living_area,
        max_living_area=params.max_living_area,
        bbox=parse_bbox(params.bbox) if params.bbox is not None else None,
        near=near,
        radius_km=params.radius_km,
        polygon=parse_polygon(params.polygon) if params.polygon is not None else None,
    )
    return filters, sort


def parse_query(query: dict[str, Any]) -> tuple[SearchFilters, str]:
    """A query kept as JSON (a saved search's) checked by the same rules: its filters and sort, or ``InvalidSearch``."""
    try:
        params = msgspec.convert(query, SearchParameters)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise InvalidSearch([(path.rstrip("`").lstrip("."), message)]) from None
    return filters_of(params)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    min_lon, min_lat, max_lon, max_lat = _numbers("bbox", text, 4)
    _check_lat_lon("bbox", min_lat, min_lon)
    _check_lat_lon("bbox", max_lat, max_lon)
    if min_lat > max_lat:
        raise _invalid("bbox", "minLat must not exceed maxLat")
    if min_lon > max_lon:
        raise _invalid("bbox", "minLon must not exceed maxLon (split a box across the antimeridian in two)")
    return min_lon, min_lat, max_lon, max_lat


def parse_near(text: str) -> tuple[float, float]:
    lat, lon = _numbers("near", text, 2)
    _check_lat_lon("near", lat, lon)
    return lat, lon


def parse_polygon(text: str) -> tuple[tuple[float, float], ...]:
    pairs = [pair for pair in text.split(",") if pair.strip()]
    if len(pairs) > MAX_POLYGON_POINTS + 1:
        raise _invalid("polygon", f"at most {MAX_POLYGON_POINTS} points")
    points = []
    for pair in pairs:
        lat, lon = _numbers("polygon", pair.strip(), 2, separator=None)
        _check_lat_lon("polygon", lat, lon)
        points.append((lat, lon))
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()  # a closed ring: the last point repeats the first
    if len(points) < MIN_POLYGON_POINTS:
        raise _invalid("polygon", f"at least {MIN_POLYGON_POINTS} points")
    if len(points) > MAX_POLYGON_POINTS:
        raise _invalid("polygon", f"at most {MAX_POLYGON_POINTS} points")
    return tuple(points)


def _invalid(field: str, message: str) -> InvalidSearch:
    return InvalidSearch([(field, message)])


def _numbers(field: str, text: str, count: int, separator: str | None = ",") -> list[float]:
    parts = text.split(separator)
    if len(parts) != count:
        raise _invalid(field, f"expected {count} numbers")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise _invalid(field, "not a number") from None
    if not all(math.isfinite(value) for value in values):
        raise _invalid(field, "not a finite number")
    return values


def _check_lat_lon(field: str, lat: float, lon: float) -> None:
    if not -90 <= lat <= 90:
        raise _invalid(field, "latitude must be between -90 and 90")
    if not -180 <= lon <= 180:
        raise _invalid(field, "longitude must be between -180 and 180")


def _check_range(params: SearchParameters, low: str, high: str) -> None:
    a, b = getattr(params, low), getattr(params, high)
    if a is not None and b is not None and a > b:
        raise _invalid(low, f"must not exceed {high}")


def city_key(city: str) -> str:
    return city.strip().lower()


def postal_key(code: str) -> str:
    return code.strip().upper()


def feature_key(feature: str) -> str:
    return feature.strip().lower()


def radius_boxes(lat: float, lon: float, radius_km: float) -> list[tuple[float, float, float, float]]:
    """Boxes (min_lon, min_lat, max_lon, max_lat) that together hold every point within ``radius_km``.

    Two boxes when the circle crosses the antimeridian. The longitude half-width
    is exact for a sphere: hav(dlon) <= hav(d/R) / cos^2(the latitude farthest from the equator).
    """
    angle = radius_km / EARTH_RADIUS_KM
    dlat = math.degrees(angle)
    low, high = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    far = max(abs(low), abs(high))
    ratio = math.sin(min(angle, math.pi) / 2) / max(1e-12, math.cos(math.radians(far)))
    if far >= 90.0 or ratio >= 1.0:
        return [(-180.0, low, 180.0, high)]
    dlon = math.degrees(2 * math.asin(ratio))
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        return [(-180.0, low, east, high), (west + 360.0, low, 180.0, high)]
    if east > 180.0:
        return [(west, low, 180.0, high), (-180.0, low, east - 360.0, high)]
    return [(west, low, east, high)]


def box_literal(box: tuple[float, float, float, float]) -> str:
    return f"(({box[0]!r},{box[1]!r}),({box[2]!r},{box[3]!r}))"


__all__ = [
    "DEFAULT_STATUSES",
    "EARTH_RADIUS_KM",
    "SORTS",
    "InvalidSearch",
    "SearchFilters",
    "SearchParameters",
    "box_literal",
    "city_key",
    "feature_key",
    "filters_of",
    "parse_bbox",
    "parse_near",
    "parse_polygon",
    "parse_query",
    "postal_key",
    "radius_boxes",
]
