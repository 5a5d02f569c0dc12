"""What a listing search asks for: validated filters, and the geometry of radius searches.

``SearchFilters`` holds filters that already passed the API's checks
(``api.resources.search``); ``normalised()`` is their canonical form, used for
cache keys and cursor fingerprints. ``radius_boxes`` gives the boxes a GiST
index can search for "within r km of a point".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from models.properties import PUBLIC_STATUSES

SORTS = ("newest", "price_asc", "price_desc", "distance", "relevance")
DEFAULT_STATUSES = ("Active", "ComingSoon")
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class SearchFilters:
    """Validated filters (``api.resources.search`` checks ranges and combinations first).

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
            "beds": self.min_beds, "baths": self.min_baths,
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



__all__ = ["SearchFilters", "SORTS", "DEFAULT_STATUSES", "EARTH_RADIUS_KM", "city_key", "postal_key", "feature_key",
           "radius_boxes", "box_literal"]
