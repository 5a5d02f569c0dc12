"""The wide app table of the ``imports`` benchmark: ``public.listings`` → properties through a mapping file.

``public.listings`` has the import tests' columns (``tests.imports.supabase_app``: 22 columns, money
as numeric and as text, an enum, a JSON object read by three paths) and is filled server-side;
listing ``i`` belongs to bench user ``1 + i % users`` (imported before, as the mapping's owner
reference requires). ``MAPPING`` maps every column but the photos (no Storage in the benchmark);
``RAW_LISTINGS`` is the same transformation written as one SELECT, for the raw COPY baseline into
``properties``.
"""

from __future__ import annotations

from tests.imports.supabase_app import APP_SCHEMA

LISTINGS_TABLE = "public.listings"

_STATUSES = {
    "draft": "Incomplete",
    "coming_soon": "ComingSoon",
    "for_sale": "Active",
    "under_contract": "ActiveUnderContract",
    "pending": "Pending",
    "sold": "Closed",
    "off_market": "Withdrawn",
}
_KINDS = {"house": "Residential", "condo": "Residential", "townhouse": "Residential", "land": "Land"}


def _toml_map(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f'{key} = "{value}"' for key, value in values.items()) + " }"


MAPPING = f"""
version = 1

[tables."public.listings"]
target = "properties"
key = "id"
ignore = ["title", "updated_at", "photos"]
constants = {{ currency = "USD", association_fee_frequency = "Monthly" }}

[tables."public.listings".columns]
owner_id = {{ field = "owner", ref = "auth.users" }}
description = "public_remarks"
price = {{ field = "list_price", transform = "money" }}
sold_price = {{ field = "close_price", transform = "money" }}
sold_on = {{ field = "close_date", transform = "date" }}
status = {{ field = "standard_status", transform = "enum", values = {_toml_map(_STATUSES)} }}
kind = {{ field = "property_type", values = {_toml_map(_KINDS)}, default = "Residential" }}
beds = {{ field = "bedrooms_total", transform = "int" }}
baths = {{ field = "bathrooms_full", transform = "int" }}
street = "street_name"
city = "city"
state = "state_or_province"
zip = {{ field = "postal_code", transform = "text" }}
lat = {{ field = "latitude", transform = "float" }}
lng = {{ field = "longitude", transform = "float" }}
details = [
  {{ field = "living_area", json = "sqft", transform = "int" }},
  {{ field = "year_built", json = "year_built", transform = "int" }},
  {{ field = "features", json = "amenities" }},
]
hoa_fee = {{ field = "association_fee", transform = "money" }}
created_at = {{ field = "created_at", transform = "timestamp" }}
"""

# Only the listings table of the tests' app schema (the other app tables stay empty).
SCHEMA = APP_SCHEMA

_FILL = """
INSERT INTO public.listings (id, owner_id, title, description, price, sold_price, sold_on, status, kind, beds, baths,
    street, city, state, zip, lat, lng, details, hoa_fee, photos, created_at, updated_at)
SELECT md5('hearth-bench-listing-' || i)::uuid, md5('hearth-bench-user-' || (1 + i %% %(users)s))::uuid,
    'Listing ' || i, (ARRAY['Casa 🏡 — 海景 — بيت ', 'Bright corner unit ', 'Дом у озера '])[1 + i %% 3] || i,
    (150000 + (i %% 5000) * 100)::numeric(12,2) + 0.50, NULL, NULL,
    CASE WHEN i %% 10 = 0 THEN 'coming_soon' ELSE 'for_sale' END,
    (ARRAY['house', 'condo', 'townhouse', 'land'])[1 + i %% 4], 1 + i %% 6, 1 + i %% 3,
    i || ' Rua Augusta', (ARRAY['São Paulo', 'Austin', 'Lisboa'])[1 + i %% 3], 'SP', lpad((i %% 99999)::text, 5, '0'),
    -23.55 + (i %% 1000) / 10000.0, -46.65 + (i %% 1000) / 10000.0,
    jsonb_build_object('sqft', 800 + i %% 3000, 'year_built', 1950 + i %% 70, 'amenities',
                       CASE WHEN i %% 2 = 0 THEN '["pool", "garage"]'::jsonb ELSE '["garden"]'::jsonb END),
    (50 + i %% 400) || '.50', '{}', timestamptz '2024-01-01 00:00+00' + i * interval '11 seconds',
    timestamptz '2024-01-01 00:00+00' + i * interval '11 seconds'
FROM generate_series(1, %(listings)s) AS i
"""


def fill(conn, listings: int, users: int) -> None:
    """The source's app schema with ``listings`` listings spread over the first ``users`` bench users."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute(_FILL, {"listings": listings, "users": users})
        cur.execute("ANALYZE public.listings")


# What the mapping makes of each listing (models/imports/transforms.py, listing_target.py), in SQL.
RAW_LISTINGS = f"""
SELECT id, owner_id,
    CASE status {" ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _STATUSES.items())} END,
    coalesce(CASE kind {" ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _KINDS.items())} END, 'Residential'),
    'USD', (price * 100)::bigint, (price * 100)::bigint, (sold_price::numeric * 100)::bigint, sold_on,
    beds, baths, street, city, state, zip, lat, lng, (details ->> 'sqft')::int, (details ->> 'year_built')::int,
    ARRAY(SELECT jsonb_array_elements_text(details -> 'amenities')), (hoa_fee::numeric * 100)::bigint, 'Monthly',
    description, created_at
FROM public.listings ORDER BY id
"""  # noqa: S608 - our own constants
RAW_LISTING_COLUMNS = (
    "id, owner_id, standard_status, property_type, currency, list_price, original_list_price, close_price,"
    " close_date, bedrooms_total, bathrooms_full, street_name, city, state_or_province, postal_code, latitude,"
    " longitude, living_area, year_built, features, association_fee, association_fee_frequency, public_remarks,"
    " created_at"
)

__all__ = ["LISTINGS_TABLE", "MAPPING", "RAW_LISTINGS", "RAW_LISTING_COLUMNS", "fill"]
